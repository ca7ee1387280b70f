//! The receive side of an association: reassembly of fragmented user messages (RFC 9260
//! section 6.9), ordering per inbound stream by Stream Sequence Number (6.5, 6.6), and the
//! queue of whole messages waiting for the application.
//!
//! Every held object is charged its true footprint through the endpoint's
//! [`Footprint`](crate::endpoint::Footprint) function: its payload's block
//! (`footprint(capacity)`), plus what holds it: the B-tree nodes of `fragments` and `pending`
//! ([`btree_cost`], an upper bound) and the segments of `ready` ([`SegQueue::footprint`],
//! exact). So [`Reassembly::held`] is what the allocator gave up for the queues, not a sum of
//! per-item guesses.
//!
//! Bounds (owner: the association): the sum of the three queues below is kept under the
//! association's receive limit by the caller, which asks [`Reassembly::fragment_cost`] and
//! [`Reassembly::held`] before it accepts a DATA chunk and otherwise drops it (counted as
//! `rwnd_full`; the peer retransmits once the window opens). The window advertised to the
//! peer is the budget left, so a well-behaved peer stops before the bound.
//! - `fragments`: DATA chunks of messages not yet whole, keyed by TSN.
//! - per stream `pending`: whole ordered messages that arrived before an earlier SSN.
//! - `ready`: whole messages in delivery order; drained by the application one at a time. If
//!   the application does not read, it fills, the window closes and the peer stalls.
//! - `deliverable`: the streams whose `pending` holds their next SSN, each at most once. When
//!   the message that fills an SSN gap arrives, the thousands of messages that waited behind
//!   it are not moved to `ready` in one go (that was a millisecond of one loop turn with a
//!   256 KiB window of 1-byte messages): [`Reassembly::pop`] takes them from `pending` one at
//!   a time, so the work follows the application's reads, which the caller bounds per turn.
//!   Until then their bytes are counted as reassembly, not delivery.
//! - `partial`: a message too large to be held whole (partial delivery, 6.9). When a chunk in
//!   order finds no room and the first fragment held begins the next message in order, `pop`
//!   hands that message out in pieces of at most [`MAX_PIECE_FRAGMENTS`] fragments as they
//!   arrive, the last one marked `end`, so the window opens again instead of waiting forever
//!   for room the message can never have. One message at a time.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::segq::{btree_cost, SegQueue};
use super::tsnmap::unwrap_serial16;
use crate::endpoint::Footprint;

/// Fragments handed out in one piece of a partially delivered message, at most.
pub const MAX_PIECE_FRAGMENTS: usize = 64;

/// One received DATA chunk that is part of a message not yet whole.
#[derive(Debug)]
pub struct RxFragment {
    pub stream: u16,
    pub ssn: u16,
    pub ppid: u32,
    pub unordered: bool,
    pub begin: bool,
    pub end: bool,
    pub data: Box<[u8]>,
}

/// A whole user message, or a piece of one delivered in part.
#[derive(Debug, PartialEq, Eq)]
pub struct RxMessage {
    pub stream: u16,
    pub ppid: u32,
    pub unordered: bool,
    /// The message ends here: always, but for the pieces of a partial delivery before its last.
    pub end: bool,
    /// The first piece of a message delivered in pieces.
    pub first_piece: bool,
    pub data: Vec<u8>,
}

/// The message being delivered in pieces.
#[derive(Clone, Copy, Debug)]
struct Partial {
    stream: u16,
    ssn: u16,
    ppid: u32,
    unordered: bool,
    /// The TSN of its next fragment.
    next_tsn: u64,
}

#[derive(Debug)]
struct InStream {
    /// The next SSN to deliver, unwrapped.
    next_ssn: u64,
    pending: BTreeMap<u64, RxMessage>,
}

/// Why a DATA chunk was not taken by [`Reassembly::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxRefusal {
    /// The Stream Identifier is not below the number of inbound streams (3.3.10.1 cause 1).
    InvalidStream(u16),
    /// An ordered message whose SSN was already delivered.
    StaleSsn,
    /// An ordered message under an SSN that another message already holds, waiting: the
    /// first is kept (replacing it would lose its bytes from the books).
    ReusedSsn,
}

#[derive(Debug)]
pub struct Reassembly {
    footprint: Footprint,
    fragments: BTreeMap<u64, RxFragment>,
    streams: Vec<InStream>,
    ready: SegQueue<RxMessage>,
    /// Streams whose `pending` holds their next SSN, each at most once; its capacity is the
    /// number of inbound streams, reserved at the start, so it never grows.
    deliverable: VecDeque<u16>,
    partial: Option<Partial>,
    /// The TSN of the first fragment of the message to hand out in pieces, once wanted.
    partial_wanted: Option<u64>,
    /// Payload blocks of `fragments`, of every stream's `pending`, of `ready`.
    reassembly_bytes: usize,
    pending_bytes: usize,
    ready_bytes: usize,
    /// [`btree_cost`] of every stream's `pending`, summed.
    pending_nodes: usize,
}

impl Reassembly {
    pub fn new(footprint: Footprint, inbound_streams: u16) -> Self {
        let streams = (0..inbound_streams).map(|_| InStream { next_ssn: 1 << 16, pending: BTreeMap::new() });
        Reassembly {
            footprint,
            fragments: BTreeMap::new(),
            streams: streams.collect(),
            ready: SegQueue::new(),
            deliverable: VecDeque::with_capacity(usize::from(inbound_streams)),
            partial: None,
            partial_wanted: None,
            reassembly_bytes: 0,
            pending_bytes: 0,
            ready_bytes: 0,
            pending_nodes: 0,
        }
    }

    /// What a DATA chunk with `payload_len` bytes of user data costs once delivered in order
    /// (the usual case): its payload and its share of a `ready` segment. An estimate for the
    /// window arithmetic of a sender; admission uses [`admission_cost`](Self::admission_cost).
    pub fn fragment_cost(&self, payload_len: usize) -> usize {
        (self.footprint)(payload_len) + SegQueue::<RxMessage>::item_share(self.footprint)
    }

    /// What accepting a DATA chunk with `payload_len` bytes adds to [`held`](Self::held) at
    /// most: its payload, and where it goes: a node of `fragments` (part of a message), a
    /// segment of `ready` (a whole message that can be delivered), or a node of its stream's
    /// `pending` (an ordered message that waits for an earlier one).
    pub fn admission_cost(
        &self,
        payload_len: usize,
        stream: u16,
        ssn: u16,
        unordered: bool,
        whole: bool,
    ) -> usize {
        let fp = self.footprint;
        let delta = |cost: fn(Footprint, usize) -> usize, n: usize| cost(fp, n + 1) - cost(fp, n);
        let place = if !whole {
            delta(btree_cost::<u64, RxFragment>, self.fragments.len())
        } else {
            match self.streams.get(usize::from(stream)) {
                Some(s) if !unordered && unwrap_serial16(s.next_ssn, ssn) != s.next_ssn => {
                    delta(btree_cost::<u64, RxMessage>, s.pending.len())
                }
                _ => self.next_segment_cost(),
            }
        };
        fp(payload_len) + place
    }

    /// The room the chunk that fills the first gap may need: a payload of `max_payload` bytes
    /// and the dearest place it can land in (a node of `fragments`, of a stream's `pending`,
    /// or the next segment of `ready`). Chunks out of order are taken only while it stays free.
    pub fn gap_reserve(&self, max_payload: usize) -> usize {
        let fp = self.footprint;
        let node = btree_cost::<u64, RxFragment>(fp, 1).max(btree_cost::<u64, RxMessage>(fp, 1));
        fp(max_payload) + node.max(self.next_segment_cost())
    }

    /// What the next whole message delivered in order costs besides its payload: a new segment
    /// of `ready` when the last one is full, else nothing.
    pub fn next_segment_cost(&self) -> usize {
        self.ready.growth(1, self.footprint)
    }

    /// A message's payload block.
    fn message_cost(&self, m: &RxMessage) -> usize {
        (self.footprint)(m.data.capacity())
    }

    /// True bytes held in all queues: payloads, B-tree nodes, segments.
    pub fn held(&self) -> usize {
        self.reassembly_bytes() + self.delivery_bytes()
    }

    /// True bytes of fragments and of ordered messages waiting for an earlier SSN.
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembly_bytes
            + btree_cost::<u64, RxFragment>(self.footprint, self.fragments.len())
            + self.pending_bytes
            + self.pending_nodes
    }

    /// True bytes of whole messages waiting for the application.
    pub fn delivery_bytes(&self) -> usize {
        self.ready_bytes + self.ready.footprint(self.footprint)
    }

    /// Whether a message, or a piece of one, waits for the application.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.deliverable.is_empty() || self.next_piece().is_some()
    }

    /// The window is closing with nothing to read: if the first fragment held begins the next
    /// message in order, and that message already holds `point` true bytes in one run of
    /// fragments (the partial delivery point), it is handed out in pieces. A smaller one waits
    /// to be whole (the window has room for the fragment that fills a gap; an echo can send
    /// back only a whole message). Looks at no more fragments than make up `point`.
    pub fn want_partial_delivery(&mut self, point: usize) {
        if self.partial.is_some() || self.partial_wanted.is_some() {
            return;
        }
        let Some((first, head)) = self.first_in_order() else { return };
        let mut held = 0usize;
        let mut tsn = first;
        let mut next = Some(head);
        while let Some(f) = next {
            held += (self.footprint)(f.data.len());
            if held >= point {
                self.partial_wanted = Some(first);
                return;
            }
            if f.end {
                return;
            }
            tsn += 1;
            next = self.fragments.get(&tsn).filter(|f| !f.begin && Self::same_message(head, f));
        }
    }

    /// The first fragment held, when it begins the next message in order on its stream.
    fn first_in_order(&self) -> Option<(u64, &RxFragment)> {
        let (&tsn, f) = self.fragments.first_key_value()?;
        let in_order = f.unordered
            || self
                .streams
                .get(usize::from(f.stream))
                .is_some_and(|s| unwrap_serial16(s.next_ssn, f.ssn) == s.next_ssn);
        (f.begin && in_order).then_some((tsn, f))
    }

    pub fn inbound_streams(&self) -> u16 {
        self.streams.len() as u16
    }

    /// Take an accepted DATA chunk with unwrapped TSN `tsn`.
    pub fn insert(&mut self, tsn: u64, frag: RxFragment) -> Result<(), RxRefusal> {
        let stream =
            self.streams.get(usize::from(frag.stream)).ok_or(RxRefusal::InvalidStream(frag.stream))?;
        if !frag.unordered {
            let ssn = unwrap_serial16(stream.next_ssn, frag.ssn);
            if ssn < stream.next_ssn {
                return Err(RxRefusal::StaleSsn);
            }
            let in_partial_delivery =
                self.partial.is_some_and(|p| !p.unordered && p.stream == frag.stream && p.ssn == frag.ssn);
            if stream.pending.contains_key(&ssn) || (frag.begin && in_partial_delivery) {
                return Err(RxRefusal::ReusedSsn);
            }
        }
        if frag.begin && frag.end {
            let ssn = frag.ssn;
            let message = RxMessage {
                stream: frag.stream,
                ppid: frag.ppid,
                unordered: frag.unordered,
                end: true,
                first_piece: false,
                data: Vec::from(frag.data),
            };
            self.complete_with_ssn(message, ssn);
            return Ok(());
        }
        self.reassembly_bytes += (self.footprint)(frag.data.len());
        self.fragments.insert(tsn, frag);
        self.try_assemble(tsn);
        Ok(())
    }

    /// The next whole message for the application, in delivery order within each stream:
    /// from `ready`, else the next SSN of the first `deliverable` stream.
    pub fn pop(&mut self) -> Option<RxMessage> {
        if let Some(m) = self.ready.pop_front() {
            self.ready_bytes -= self.message_cost(&m);
            return Some(m);
        }
        match self.deliverable.pop_front() {
            Some(id) => self.pop_pending(id),
            None => self.pop_piece(),
        }
    }

    /// The next SSN of stream `id`, from its `pending`.
    fn pop_pending(&mut self, id: u16) -> Option<RxMessage> {
        let footprint = self.footprint;
        let nodes = |len: usize| btree_cost::<u64, RxMessage>(footprint, len);
        let stream = self.streams.get_mut(usize::from(id))?;
        let before = nodes(stream.pending.len());
        let m = stream.pending.remove(&stream.next_ssn)?;
        stream.next_ssn += 1;
        let more = stream.pending.contains_key(&stream.next_ssn);
        self.pending_bytes -= footprint(m.data.capacity());
        self.pending_nodes = self.pending_nodes + nodes(stream.pending.len()) - before;
        if more {
            self.deliverable.push_back(id);
        }
        Some(m)
    }

    /// The message a piece would come from: the one in partial delivery when its next
    /// fragment is here, else (partial delivery wanted) the message whose first fragment is
    /// the first held, when it is next in order on its stream.
    fn next_piece(&self) -> Option<Partial> {
        match self.partial {
            Some(p) => {
                let f = self.fragments.get(&p.next_tsn)?;
                Self::continues(&p, f).then_some(p)
            }
            None => {
                let wanted = self.partial_wanted?;
                let (tsn, f) = self.first_in_order().filter(|&(tsn, _)| tsn == wanted)?;
                Some(Partial {
                    stream: f.stream,
                    ssn: f.ssn,
                    ppid: f.ppid,
                    unordered: f.unordered,
                    next_tsn: tsn,
                })
            }
        }
    }

    /// Whether `f`, at the TSN `p` waits for, is the next fragment of `p`'s message.
    fn continues(p: &Partial, f: &RxFragment) -> bool {
        !f.begin && f.stream == p.stream && f.unordered == p.unordered && (p.unordered || f.ssn == p.ssn)
    }

    /// A piece of the message in partial delivery: the fragments held from its next TSN on,
    /// at most [`MAX_PIECE_FRAGMENTS`]. After its last piece the stream goes on in order.
    fn pop_piece(&mut self) -> Option<RxMessage> {
        let mut p = self.next_piece()?;
        let first_piece = self.partial.is_none();
        let mut data = Vec::new();
        let mut end = false;
        for _ in 0..MAX_PIECE_FRAGMENTS {
            let Some(f) = self.fragments.get(&p.next_tsn) else { break };
            if !data.is_empty() && !Self::continues(&p, f) {
                break;
            }
            let Some(f) = self.fragments.remove(&p.next_tsn) else { break };
            self.reassembly_bytes -= (self.footprint)(f.data.len());
            data.extend_from_slice(&f.data);
            p.next_tsn += 1;
            if f.end {
                end = true;
                break;
            }
        }
        self.partial_wanted = None;
        self.partial = if end { None } else { Some(p) };
        if end && !p.unordered {
            if let Some(stream) = self.streams.get_mut(usize::from(p.stream)) {
                stream.next_ssn += 1;
                if stream.pending.contains_key(&stream.next_ssn) {
                    self.deliverable.push_back(p.stream);
                }
            }
        }
        Some(RxMessage { stream: p.stream, ppid: p.ppid, unordered: p.unordered, end, first_piece, data })
    }

    /// Whether `a` and `b` (at the next TSN) belong to the same message.
    fn same_message(a: &RxFragment, b: &RxFragment) -> bool {
        a.stream == b.stream && a.unordered == b.unordered && (a.unordered || a.ssn == b.ssn)
    }

    fn try_assemble(&mut self, tsn: u64) {
        let Some(start_frag) = self.fragments.get(&tsn) else { return };
        let mut first = tsn;
        let mut cur = start_frag;
        while !cur.begin {
            match self.fragments.get(&(first - 1)) {
                Some(prev) if !prev.end && Self::same_message(prev, cur) => {
                    first -= 1;
                    cur = prev;
                }
                _ => return,
            }
        }
        let mut last = tsn;
        let mut cur = start_frag;
        while !cur.end {
            match self.fragments.get(&(last + 1)) {
                Some(next) if !next.begin && Self::same_message(cur, next) => {
                    last += 1;
                    cur = next;
                }
                _ => return,
            }
        }
        let mut data = Vec::new();
        let mut head = None;
        for t in first..=last {
            if let Some(f) = self.fragments.remove(&t) {
                self.reassembly_bytes -= (self.footprint)(f.data.len());
                data.extend_from_slice(&f.data);
                if head.is_none() {
                    head = Some((f.stream, f.ppid, f.unordered, f.ssn));
                }
            }
        }
        data.shrink_to_fit();
        if let Some((stream, ppid, unordered, ssn)) = head {
            self.complete_with_ssn(
                RxMessage { stream, ppid, unordered, end: true, first_piece: false, data },
                ssn,
            );
        }
    }

    fn complete_with_ssn(&mut self, message: RxMessage, ssn: u16) {
        let id = message.stream;
        let cost = self.message_cost(&message);
        if message.unordered {
            self.ready_bytes += cost;
            self.ready.push_back(message);
            return;
        }
        let Some(stream) = self.streams.get_mut(usize::from(message.stream)) else { return };
        let s = unwrap_serial16(stream.next_ssn, ssn);
        if s < stream.next_ssn {
            return;
        }
        let footprint = self.footprint;
        let nodes = |len: usize| btree_cost::<u64, RxMessage>(footprint, len);
        // A second message under an SSN already waiting (a peer reusing SSNs with new TSNs) is
        // dropped: replacing the first would lose its bytes from the books.
        if stream.pending.contains_key(&s) {
            return;
        }
        if s != stream.next_ssn {
            let before = nodes(stream.pending.len());
            stream.pending.insert(s, message);
            self.pending_bytes += cost;
            self.pending_nodes = self.pending_nodes + nodes(stream.pending.len()) - before;
            return;
        }
        self.ready_bytes += cost;
        self.ready.push_back(message);
        stream.next_ssn += 1;
        // The messages that waited for this one stay in `pending`; `pop` takes them in turn.
        if stream.pending.contains_key(&stream.next_ssn) {
            self.deliverable.push_back(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    fn fp(n: usize) -> usize {
        n.next_multiple_of(16) + 16
    }

    fn frag(stream: u16, ssn: u16, unordered: bool, begin: bool, end: bool, data: &[u8]) -> RxFragment {
        RxFragment { stream, ssn, ppid: 7, unordered, begin, end, data: data.into() }
    }

    #[test]
    fn fragments_reassemble_in_any_arrival_order() {
        let mut r = Reassembly::new(fp, 2);
        r.insert(12, frag(1, 0, false, false, true, b"cd")).unwrap();
        assert!(r.pop().is_none());
        assert_eq!(r.held(), fp(2) + btree_cost::<u64, RxFragment>(fp, 1));
        r.insert(10, frag(1, 0, false, true, false, b"a")).unwrap();
        assert!(r.pop().is_none());
        r.insert(11, frag(1, 0, false, false, false, b"b")).unwrap();
        let m = r.pop().unwrap();
        assert_eq!(
            m,
            RxMessage {
                stream: 1,
                ppid: 7,
                unordered: false,
                end: true,
                first_piece: false,
                data: b"abcd".to_vec()
            }
        );
        assert_eq!(r.held(), 0, "every byte credited back");
    }

    #[test]
    fn ordered_messages_wait_for_the_earlier_ssn_unordered_do_not() {
        let mut r = Reassembly::new(fp, 1);
        r.insert(2, frag(0, 1, false, true, true, b"second")).unwrap();
        r.insert(3, frag(0, 0, true, true, true, b"urgent")).unwrap();
        assert_eq!(r.pop().unwrap().data, b"urgent");
        assert!(r.pop().is_none());
        assert!(r.reassembly_bytes() > 0);
        r.insert(1, frag(0, 0, false, true, true, b"first")).unwrap();
        assert_eq!(r.pop().unwrap().data, b"first");
        assert_eq!(r.pop().unwrap().data, b"second");
        assert_eq!(r.held(), 0);
    }

    /// A peer reusing an SSN still waiting (a new TSN, the same SSN) does not replace the
    /// first message: the second is dropped, and the books stay exact.
    #[test]
    fn a_reused_ssn_is_dropped_and_the_books_stay_exact() {
        let mut r = Reassembly::new(fp, 1);
        r.insert(2, frag(0, 1, false, true, true, b"first")).unwrap();
        let held = r.held();
        assert_eq!(r.insert(3, frag(0, 1, false, true, true, b"impostor")), Err(RxRefusal::ReusedSsn));
        assert_eq!(r.held(), held);
        r.insert(1, frag(0, 0, false, true, true, b"zero")).unwrap();
        assert_eq!(r.insert(4, frag(0, 1, false, true, true, b"again")), Err(RxRefusal::ReusedSsn));
        assert_eq!(r.pop().unwrap().data, b"zero");
        assert_eq!(r.pop().unwrap().data, b"first");
        assert!(r.pop().is_none());
        assert_eq!(r.held(), 0, "every byte credited back");
    }

    /// The message that fills a gap does not move the messages behind it: they stay counted
    /// as reassembly and leave one `pop` at a time, in SSN order per stream, with other
    /// streams' messages in between.
    #[test]
    fn a_filled_gap_releases_the_waiting_messages_one_pop_at_a_time() {
        let mut r = Reassembly::new(fp, 2);
        let mut tsn = 10;
        for ssn in 1..=1000u16 {
            tsn += 1;
            r.insert(tsn, frag(0, ssn, false, true, true, &ssn.to_be_bytes())).unwrap();
        }
        let waiting = r.reassembly_bytes();
        assert!(!r.has_ready());
        r.insert(1, frag(0, 0, false, true, true, &0u16.to_be_bytes())).unwrap();
        assert_eq!(r.reassembly_bytes(), waiting, "nothing moved when the gap filled");
        assert_eq!(r.ready.len(), 1);
        r.insert(2, frag(1, 0, false, true, true, b"other")).unwrap();
        let mut stream0 = vec![];
        let mut other = 0;
        while let Some(m) = r.pop() {
            match m.stream {
                0 => stream0.push(u16::from_be_bytes(m.data.try_into().unwrap())),
                _ => other += 1,
            }
        }
        assert_eq!(stream0, (0..=1000).collect::<Vec<_>>());
        assert_eq!(other, 1);
        assert_eq!(r.held(), 0, "every byte credited back");
        // The stream goes on in order after the released run.
        r.insert(5000, frag(0, 1001, false, true, true, b"next")).unwrap();
        assert_eq!(r.pop().unwrap().data, b"next");
    }

    /// Partial delivery: only once wanted, only for the first fragment held when it begins
    /// the next message in order; pieces as fragments come, then the stream goes on.
    #[test]
    fn a_message_without_room_is_handed_out_in_pieces() {
        let mut r = Reassembly::new(fp, 1);
        r.insert(2, frag(0, 1, false, false, false, b"b")).unwrap();
        r.insert(1, frag(0, 1, false, true, false, b"a")).unwrap();
        r.insert(9, frag(0, 2, false, true, true, b"next")).unwrap();
        assert!(!r.has_ready(), "no piece before partial delivery is wanted");
        r.want_partial_delivery(1);
        assert!(!r.has_ready(), "SSN 0 is not here: SSN 1 is not next in order");
        r.insert(0, frag(0, 0, false, true, true, b"zero")).unwrap();
        assert_eq!(r.pop().unwrap().data, b"zero");
        r.want_partial_delivery(3 * fp(1));
        assert!(!r.has_ready(), "two fragments held, below the partial delivery point");
        r.want_partial_delivery(2 * fp(1));
        let piece = r.pop().unwrap();
        assert_eq!((piece.data.as_slice(), piece.end, piece.first_piece), (&b"ab"[..], false, true));
        assert!(!r.has_ready(), "the next fragment is not here");
        assert_eq!(r.insert(5, frag(0, 1, false, true, true, b"x")), Err(RxRefusal::ReusedSsn));
        r.insert(3, frag(0, 1, false, false, false, b"c")).unwrap();
        r.insert(4, frag(0, 1, false, false, true, b"d")).unwrap();
        let piece = r.pop().unwrap();
        assert_eq!((piece.data.as_slice(), piece.end, piece.first_piece), (&b"cd"[..], true, false));
        assert_eq!(r.pop().unwrap().data, b"next");
        assert!(r.pop().is_none());
        assert_eq!(r.held(), 0, "every byte credited back");
    }

    #[test]
    fn ssn_wraps() {
        let mut r = Reassembly::new(fp, 1);
        let mut tsn = 0;
        let mut got = vec![];
        for i in 0..70_000u32 {
            tsn += 1;
            r.insert(tsn, frag(0, i as u16, false, true, true, &i.to_be_bytes())).unwrap();
            got.push(u32::from_be_bytes(r.pop().unwrap().data.try_into().unwrap()));
        }
        assert_eq!(got, (0..70_000).collect::<Vec<_>>());
    }

    #[test]
    fn refusals() {
        let mut r = Reassembly::new(fp, 1);
        assert_eq!(r.insert(1, frag(3, 0, false, true, true, b"x")), Err(RxRefusal::InvalidStream(3)));
        r.insert(1, frag(0, 0, false, true, true, b"x")).unwrap();
        assert_eq!(r.insert(2, frag(0, 0, false, true, true, b"x")), Err(RxRefusal::StaleSsn));
    }

    #[test]
    fn mismatched_neighbours_do_not_assemble() {
        let mut r = Reassembly::new(fp, 2);
        r.insert(1, frag(0, 0, false, true, false, b"a")).unwrap();
        r.insert(2, frag(1, 0, false, false, true, b"b")).unwrap();
        assert!(r.pop().is_none());
        assert_eq!(r.held(), 2 * fp(1) + btree_cost::<u64, RxFragment>(fp, 2));
    }

    #[test]
    fn one_byte_messages_cost_their_true_footprint() {
        let mut r = Reassembly::new(fp, 1);
        for i in 0..100u16 {
            r.insert(u64::from(i) + 1, frag(0, i, false, true, true, b"x")).unwrap();
        }
        // Each payload's block, and the segments holding the messages (64 to a 2 KiB segment).
        let segments = 100usize.div_ceil(SegQueue::<RxMessage>::per_segment());
        let want = 100 * fp(1) + segments * SegQueue::<RxMessage>::segment_cost(fp);
        assert!(r.delivery_bytes() >= want && r.delivery_bytes() <= want + 256, "{}", r.delivery_bytes());
        assert!(r.delivery_bytes() / 100 > 40, "a 1-byte message costs far more than a byte");
        while r.pop().is_some() {}
        assert_eq!(r.held(), 0);
    }

    /// Random messages on 3 streams (one unordered), cut into random fragments, arriving in
    /// a random order: each is delivered once, whole, in SSN order on ordered streams, and
    /// every byte is credited back.
    #[test]
    fn random_fragmentation_and_arrival_order() {
        let mut rng = Csprng::seed_from_u64(3);
        let mut next = move || rng.next_u64();
        for _ in 0..50 {
            let mut r = Reassembly::new(fp, 3);
            let mut chunks = Vec::new();
            let mut ssn = [0u16; 3];
            let mut sent = Vec::new();
            let mut tsn = 1u64 << 32;
            for m in 0..40u32 {
                let stream = (next() % 3) as u16;
                let unordered = stream == 2;
                let len = 1 + (next() % 50) as usize;
                let data: Vec<u8> = (0..len).map(|i| (m as u8) ^ (i as u8)).collect();
                let pieces = 1 + (next() % 4) as usize;
                let size = len.div_ceil(pieces);
                let parts: Vec<&[u8]> = data.chunks(size).collect();
                let n = parts.len();
                for (i, part) in parts.into_iter().enumerate() {
                    chunks
                        .push((tsn, frag(stream, ssn[stream as usize], unordered, i == 0, i + 1 == n, part)));
                    tsn += 1;
                }
                if !unordered {
                    ssn[stream as usize] += 1;
                }
                sent.push((stream, data));
            }
            // Shuffle the arrival order.
            for i in (1..chunks.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                chunks.swap(i, j);
            }
            let mut got: Vec<(u16, Vec<u8>)> = Vec::new();
            for (t, f) in chunks {
                r.insert(t, f).unwrap();
                while let Some(m) = r.pop() {
                    got.push((m.stream, m.data));
                }
            }
            assert_eq!(r.held(), 0);
            assert_eq!(got.len(), sent.len());
            for stream in 0..3u16 {
                let s: Vec<_> = sent.iter().filter(|m| m.0 == stream).map(|m| &m.1).collect();
                let mut g: Vec<_> = got.iter().filter(|m| m.0 == stream).map(|m| &m.1).collect();
                if stream == 2 {
                    let mut s = s.clone();
                    s.sort();
                    g.sort();
                    assert_eq!(g, s);
                } else {
                    assert_eq!(g, s, "stream {stream} in order");
                }
            }
        }
    }
}
