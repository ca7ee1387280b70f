//! The send side of an association: user messages fragmented into DATA chunks (6.9), the
//! queue of chunks not yet sent, the chunks in flight awaiting acknowledgement, and SACK
//! processing (6.2.1, 7.2.4).
//!
//! Charges: a chunk's payload block (`footprint(len)`) and the segments of the queue that
//! holds it ([`SegQueue::footprint`], exact); admission counts a chunk waiting to be sent at
//! what it will cost in flight (its payload and its share of an `inflight` segment).
//!
//! Bounds (owner: the association): the true bytes of `queue` plus `inflight` stay under the
//! association's send limit; [`SendQueue::enqueue`] refuses a message (or a part of one) that
//! would cross it with [`SendError::Full`] and queues nothing of it.
//!
//! A message may be queued in parts (an echo of one received in pieces, larger than the send
//! limit allows at once): its first part takes the SSN and the B flag, its last the E flag, and
//! while it is open nothing else is queued, so its fragments keep consecutive TSNs (6.9). Chunks leave `inflight` only when acknowledged
//! by the Cumulative TSN Ack, or when the association ends.

use alloc::boxed::Box;
use alloc::vec::Vec;

use bulkhead_base::time::Instant;

use super::segq::SegQueue;
use crate::endpoint::{Footprint, SendError};

/// A DATA chunk waiting for its first transmission (no TSN yet).
#[derive(Debug)]
pub struct OutChunk {
    pub stream: u16,
    pub ssn: u16,
    pub ppid: u32,
    pub unordered: bool,
    pub begin: bool,
    pub end: bool,
    pub data: Box<[u8]>,
}

/// A DATA chunk sent at least once and not yet covered by the Cumulative TSN Ack.
#[derive(Debug)]
pub struct SentChunk {
    /// Unwrapped TSN.
    pub tsn: u64,
    pub chunk: OutChunk,
    /// Index of the path it was last sent on.
    pub path: usize,
    pub sent_at: Instant,
    pub transmissions: u32,
    /// Covered by a Gap Ack Block of the latest SACK.
    pub acked: bool,
    /// Counted in its path's flight size.
    pub in_flight: bool,
    /// Marked for retransmission (T3-rtx or fast retransmit).
    pub retransmit: bool,
    /// Miss indications (7.2.4).
    pub missing: u32,
    /// Already fast-retransmitted once.
    pub fast_retransmitted: bool,
}

#[derive(Debug)]
pub struct SendQueue {
    footprint: Footprint,
    limit: usize,
    pub queue: SegQueue<OutChunk>,
    pub inflight: SegQueue<SentChunk>,
    /// Payload blocks of `queue` and of `inflight`.
    queue_data: usize,
    inflight_data: usize,
    out_ssn: Vec<u16>,
    /// Unwrapped TSN of the next new chunk.
    pub next_tsn: u64,
    /// Unwrapped Cumulative TSN Ack Point received from the peer.
    pub cum_acked: u64,
    /// Chunks of `inflight` with `retransmit` set (kept by whoever sets or clears it), so
    /// that building a packet does not scan the queue to learn whether any is.
    pub marked_for_retransmission: usize,
    /// A message queued in parts whose last part has not come yet.
    open: Option<OpenMessage>,
}

/// What the parts of an open message share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OpenMessage {
    stream: u16,
    ssn: u16,
    ppid: u32,
    unordered: bool,
}

impl SendQueue {
    pub fn new(footprint: Footprint, limit: usize, initial_tsn: u32, outbound_streams: u16) -> Self {
        let next_tsn = (1u64 << 32) + u64::from(initial_tsn);
        SendQueue {
            footprint,
            limit,
            queue: SegQueue::new(),
            inflight: SegQueue::new(),
            queue_data: 0,
            inflight_data: 0,
            out_ssn: alloc::vec![0; usize::from(outbound_streams)],
            next_tsn,
            cum_acked: next_tsn - 1,
            marked_for_retransmission: 0,
            open: None,
        }
    }

    /// The number of outbound streams (after negotiation).
    pub fn set_outbound_streams(&mut self, n: u16) {
        self.out_ssn.resize(usize::from(n), 0);
    }

    pub fn outbound_streams(&self) -> u16 {
        self.out_ssn.len() as u16
    }

    /// A chunk of `len` bytes in flight: its payload and its share of a segment.
    pub fn sent_cost(&self, len: usize) -> usize {
        SegQueue::<SentChunk>::item_share(self.footprint) + (self.footprint)(len)
    }

    /// The true cost of a message of `len` bytes cut into `max_payload` pieces, once all of
    /// them are in flight (the larger of its two costs, so admission never undercounts).
    pub fn message_cost(&self, len: usize, max_payload: usize) -> usize {
        self.pieces_cost(len, max_payload, Self::sent_cost)
    }

    /// Whether a message of `len` bytes cut into `max_payload` pieces fits the limit.
    fn fits(&self, len: usize, max_payload: usize) -> bool {
        let pieces = len.div_ceil(max_payload.max(1));
        let data = self.pieces_cost(len, max_payload, |q, n| (q.footprint)(n));
        self.committed_with(pieces, data) <= self.limit
    }

    fn pieces_cost(&self, len: usize, max_payload: usize, cost: fn(&Self, usize) -> usize) -> usize {
        let max_payload = max_payload.max(1);
        let full = len / max_payload;
        let rest = len % max_payload;
        full * cost(self, max_payload) + if rest > 0 { cost(self, rest) } else { 0 }
    }

    /// True bytes of chunks not yet sent.
    pub fn queue_bytes(&self) -> usize {
        self.queue_data + self.queue.footprint(self.footprint)
    }

    /// True bytes of chunks sent and not yet cumulatively acknowledged.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight_data + self.inflight.footprint(self.footprint)
    }

    /// The most the two queues can hold without another `enqueue`, with `pieces` more chunks
    /// of `data` payload bytes (true bytes) queued: the payloads, the segments of `queue` (they
    /// only shrink) and of `inflight` once every queued chunk has moved there.
    fn committed_with(&self, pieces: usize, data: usize) -> usize {
        let fp = self.footprint;
        self.queue_data
            + data
            + self.queue.footprint(fp)
            + self.queue.growth(pieces, fp)
            + self.inflight_data
            + self.inflight.footprint(fp)
            + self.inflight.growth(self.queue.len() + pieces, fp)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a message of `len` bytes would be taken now.
    pub fn can_take(&self, len: usize, max_payload: usize) -> bool {
        len > 0 && self.fits(len, max_payload)
    }

    /// Fragment and queue one user message.
    pub fn enqueue(
        &mut self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
        max_payload: usize,
    ) -> Result<(), SendError> {
        if self.open.is_some() {
            return Err(SendError::MessageOpen);
        }
        if data.is_empty() {
            return Err(SendError::Empty);
        }
        let cost = self.message_cost(data.len(), max_payload.max(1));
        if cost > self.limit {
            return Err(SendError::TooBig { cost, limit: self.limit });
        }
        if !self.fits(data.len(), max_payload.max(1)) {
            return Err(SendError::Full);
        }
        self.queue_part(stream, ppid, unordered, data, max_payload.max(1), true)?;
        Ok(())
    }

    /// Fragment and queue what fits of one part of a message: the first part opens it (when
    /// none is open), a `last` part taken whole closes it. Returns the bytes taken: all of
    /// `data`, or as many whole fragments as fit under the limit (the caller offers the rest
    /// later); [`SendError::Full`] when not one fits. The parts of an open message go on its
    /// stream with its ordering and PPID; anything else is refused with
    /// [`SendError::MessageOpen`] until it is closed.
    pub fn enqueue_part(
        &mut self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
        max_payload: usize,
        last: bool,
    ) -> Result<usize, SendError> {
        if data.is_empty() {
            return Err(SendError::Empty);
        }
        if self.open.is_some_and(|o| o.stream != stream || o.unordered != unordered) {
            return Err(SendError::MessageOpen);
        }
        let max_payload = max_payload.max(1);
        let take = if self.fits(data.len(), max_payload) {
            data.len()
        } else {
            let mut n = data.len() / max_payload;
            while n > 0 && !self.fits(n * max_payload, max_payload) {
                n -= 1;
            }
            if n == 0 {
                return Err(SendError::Full);
            }
            n * max_payload
        };
        let part = data.get(..take).unwrap_or(data);
        self.queue_part(stream, ppid, unordered, part, max_payload, last && take == data.len())?;
        Ok(take)
    }

    fn queue_part(
        &mut self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
        max_payload: usize,
        last: bool,
    ) -> Result<(), SendError> {
        let first = self.open.is_none();
        let message = match self.open {
            Some(o) => o,
            None => {
                let Some(next_ssn) = self.out_ssn.get_mut(usize::from(stream)) else {
                    return Err(SendError::InvalidStream(stream));
                };
                let ssn = if unordered { 0 } else { *next_ssn };
                if !unordered {
                    *next_ssn = next_ssn.wrapping_add(1);
                }
                OpenMessage { stream, ssn, ppid, unordered }
            }
        };
        let pieces = data.chunks(max_payload);
        let n = pieces.len();
        for (i, piece) in pieces.enumerate() {
            self.queue.push_back(OutChunk {
                stream,
                ssn: message.ssn,
                ppid: message.ppid,
                unordered,
                begin: first && i == 0,
                end: last && i + 1 == n,
                data: piece.into(),
            });
        }
        self.queue_data += self.pieces_cost(data.len(), max_payload, |q, len| (q.footprint)(len));
        self.open = (!last).then_some(message);
        Ok(())
    }

    /// Whether a message queued in parts still waits for its last part.
    pub fn has_open_message(&self) -> bool {
        self.open.is_some()
    }

    /// Move the head of the queue into flight with the next TSN.
    pub fn send_next(&mut self, now: Instant, path: usize) -> Option<&mut SentChunk> {
        let chunk = self.queue.pop_front()?;
        let data = (self.footprint)(chunk.data.len());
        self.queue_data -= data;
        self.inflight_data += data;
        let tsn = self.next_tsn;
        self.next_tsn += 1;
        self.inflight.push_back(SentChunk {
            tsn,
            chunk,
            path,
            sent_at: now,
            transmissions: 1,
            acked: false,
            in_flight: true,
            retransmit: false,
            missing: 0,
            fast_retransmitted: false,
        });
        self.inflight.back_mut()
    }

    /// Drop every chunk with a TSN at or below `cum`; returns them for the caller's books.
    pub fn release_through(&mut self, cum: u64) -> Vec<SentChunk> {
        let mut out = Vec::new();
        while self.inflight.front().is_some_and(|c| c.tsn <= cum) {
            if let Some(c) = self.inflight.pop_front() {
                self.inflight_data -= (self.footprint)(c.chunk.data.len());
                if c.retransmit {
                    self.marked_for_retransmission -= 1;
                }
                out.push(c);
            }
        }
        if cum > self.cum_acked {
            self.cum_acked = cum;
        }
        out
    }

    /// The highest TSN sent so far (unwrapped).
    pub fn highest_sent(&self) -> u64 {
        self.next_tsn - 1
    }

    /// Whether nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.inflight.is_empty()
    }

    /// Drop everything (the association ended).
    pub fn clear(&mut self) {
        self.open = None;
        self.queue.clear();
        self.inflight.clear();
        self.queue_data = 0;
        self.inflight_data = 0;
        self.marked_for_retransmission = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: usize) -> usize {
        n.next_multiple_of(16) + 16
    }

    #[test]
    fn fragments_and_ssns() {
        let mut q = SendQueue::new(fp, 1 << 20, 7, 2);
        q.enqueue(1, 9, false, &[1u8; 2500], 1000).unwrap();
        q.enqueue(1, 9, false, &[2u8; 10], 1000).unwrap();
        q.enqueue(1, 9, true, &[3u8; 10], 1000).unwrap();
        let flags: Vec<_> = q.queue.iter().map(|c| (c.ssn, c.begin, c.end, c.data.len())).collect();
        assert_eq!(
            flags,
            [
                (0, true, false, 1000),
                (0, false, false, 1000),
                (0, false, true, 500),
                (1, true, true, 10),
                (0, true, true, 10)
            ]
        );
        let segments = q.queue.footprint(fp);
        assert!(segments >= SegQueue::<OutChunk>::segment_cost(fp));
        assert_eq!(q.queue_bytes(), 2 * fp(1000) + fp(500) + 2 * fp(10) + segments);
        assert_eq!(q.enqueue(2, 0, false, b"x", 1000), Err(SendError::InvalidStream(2)));
        assert_eq!(q.enqueue(0, 0, false, b"", 1000), Err(SendError::Empty));
    }

    #[test]
    fn full_at_the_true_byte_limit_not_the_payload_limit() {
        let mut q = SendQueue::new(fp, 10_000, 0, 1);
        let mut n = 0;
        while q.enqueue(0, 0, false, b"x", 1000).is_ok() {
            n += 1;
        }
        assert_eq!(q.enqueue(0, 0, false, b"x", 1000), Err(SendError::Full));
        // What is admitted, counted as in flight, plus the queue's own segment and spine.
        // Everything counted (payloads, the queue's segments, the in-flight segments it will
        // need) is within the limit, and one more does not fit.
        assert!(q.committed_with(0, 0) <= 10_000 && !q.fits(1, 1000), "{}", q.committed_with(0, 0));
        assert!(n > 40, "{n}");
        assert!(n < 200, "1-byte messages cost what they cost: {n}");
        assert!(!q.can_take(1, 1000));
        assert!(matches!(q.enqueue(0, 0, false, &[0; 20_000], 1000), Err(SendError::TooBig { .. })));
    }

    #[test]
    fn a_message_in_parts_shares_its_ssn_and_keeps_its_fragments_together() {
        let mut q = SendQueue::new(fp, 1 << 20, 0, 2);
        q.enqueue(0, 5, false, b"before", 1000).unwrap();
        assert_eq!(q.enqueue_part(1, 7, false, &[1u8; 1500], 1000, false), Ok(1500));
        // Nothing else while it is open: another stream, the other ordering, a whole message.
        assert_eq!(q.enqueue(1, 7, false, b"x", 1000), Err(SendError::MessageOpen));
        assert_eq!(q.enqueue_part(0, 7, false, b"x", 1000, true), Err(SendError::MessageOpen));
        assert_eq!(q.enqueue_part(1, 7, true, b"x", 1000, true), Err(SendError::MessageOpen));
        assert!(q.has_open_message());
        // Its next parts (the first part's PPID is kept), the last one closing it.
        assert_eq!(q.enqueue_part(1, 8, false, &[2u8; 10], 1000, false), Ok(10));
        assert_eq!(q.enqueue_part(1, 8, false, &[3u8; 1200], 1000, true), Ok(1200));
        assert!(!q.has_open_message());
        q.enqueue(1, 9, false, b"after", 1000).unwrap();
        let chunks: Vec<_> =
            q.queue.iter().map(|c| (c.stream, c.ssn, c.ppid, c.begin, c.end, c.data.len())).collect();
        assert_eq!(
            chunks,
            [
                (0, 0, 5, true, true, 6),
                (1, 0, 7, true, false, 1000),
                (1, 0, 7, false, false, 500),
                (1, 0, 7, false, false, 10),
                (1, 0, 7, false, false, 1000),
                (1, 0, 7, false, true, 200),
                (1, 1, 9, true, true, 5),
            ]
        );
        // A part larger than the room: the whole fragments that fit are taken, the message
        // stays open (no E flag), and once nothing fits the part is refused as Full.
        let mut small = SendQueue::new(fp, 20_000, 0, 1);
        assert_eq!(small.enqueue_part(0, 1, false, &[0u8; 8000], 1000, false), Ok(8000));
        let taken = small.enqueue_part(0, 1, false, &[0u8; 12_000], 1000, true).unwrap();
        assert!(taken > 0 && taken < 12_000 && taken.is_multiple_of(1000), "{taken}");
        assert!(small.has_open_message() && small.queue.iter().all(|c| !c.end));
        assert!(small.committed_with(0, 0) <= 20_000);
        assert_eq!(small.enqueue_part(0, 1, false, &[0u8; 1000], 1000, true), Err(SendError::Full));
        small.clear();
        assert!(!small.has_open_message());
    }

    #[test]
    fn tsns_and_release() {
        let mut q = SendQueue::new(fp, 1 << 20, u32::MAX, 1);
        for _ in 0..3 {
            q.enqueue(0, 0, false, b"abc", 1000).unwrap();
        }
        for _ in 0..3 {
            q.send_next(Instant::ZERO, 0).unwrap();
        }
        assert_eq!(q.queue_bytes(), 0);
        let segment = q.inflight.footprint(fp);
        assert_eq!(q.inflight_bytes(), 3 * fp(3) + segment);
        let first = q.inflight.get(0).unwrap().tsn;
        assert_eq!(first as u32, u32::MAX);
        let released = q.release_through(first + 1);
        assert_eq!(released.len(), 2);
        assert_eq!(q.inflight_bytes(), fp(3) + segment);
        assert_eq!(q.cum_acked, first + 1);
    }
}
