//! The send queue of one collector: encoded BMP messages waiting for the TCP socket.
//!
//! Bound, and what happens at it: the queue holds at most `bound` **true bytes**: every chunk
//! it allocates is counted at its capacity rounded up to the heap's 8-byte granule plus
//! [`BLOCK_OVERHEAD`], and so is the ring of chunk handles; never the payload alone. A message
//! that would take the queue past its bound is refused with [`QueueFull`], and the owner (the
//! exporter) drops that collector's session: the queue is [`SendQueue::clear`]ed, which frees
//! every chunk and the ring itself, and the collector is re-synchronised by a fresh dump when
//! it reconnects. Other collectors have their own queues and are untouched.
//!
//! Messages are appended back to back into chunks of `chunk_size` bytes allocated with exactly
//! that capacity (a message larger than a chunk gets a chunk of its own size), so a queue of
//! many small messages costs little more than their bytes, and a chunk is freed as soon as
//! the socket has taken all of it; a drained queue frees its ring of chunk handles too, so an
//! idle queue holds nothing. A message never straddles two chunks, so the queue can
//! count whole messages sent from the BMP length in each message's header.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::mem::size_of;

use crate::packet::{message_len, HEADER_LEN};

/// What the heap keeps beside each block it hands out, as the quota allocator charges it: its
/// trailer and the alignment slack of a large block (see `kernel/mem`). An overestimate errs on
/// the side of the bound.
pub const BLOCK_OVERHEAD: usize = 16;

/// The true footprint of a block of `bytes` bytes.
pub const fn block_cost(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes.div_ceil(8) * 8 + BLOCK_OVERHEAD
    }
}

/// A message did not fit under the queue's bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull {
    /// The queue's footprint when the message came.
    pub footprint: usize,
    /// The footprint the message would have needed.
    pub needed: usize,
}

/// A byte-bounded FIFO of encoded messages; see the module documentation for its bound.
#[derive(Debug)]
pub struct SendQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already taken by the socket.
    head_sent: usize,
    /// Offset in the front chunk of the first message not yet wholly sent.
    head_message: usize,
    chunk_size: usize,
    bound: usize,
    /// Sum of `block_cost` over the chunks (the ring's own block is added on demand).
    chunk_cost: usize,
    /// Bytes queued and not yet sent.
    queued: usize,
    messages_sent: u64,
    bytes_sent: u64,
}

impl SendQueue {
    /// An empty queue that allocates nothing until the first message. Chunks are at most a
    /// quarter of the bound, so that a small bound still holds several messages.
    pub fn new(bound: usize, chunk_size: usize) -> SendQueue {
        SendQueue {
            chunks: VecDeque::new(),
            head_sent: 0,
            head_message: 0,
            chunk_size: chunk_size.min(bound / 4).max(HEADER_LEN),
            bound,
            chunk_cost: 0,
            queued: 0,
            messages_sent: 0,
            bytes_sent: 0,
        }
    }

    /// The bound, in true bytes.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// What the queue holds now, in true bytes (chunks and the ring of chunk handles).
    pub fn footprint(&self) -> usize {
        self.chunk_cost + block_cost(self.chunks.capacity() * size_of::<Vec<u8>>())
    }

    /// Bytes waiting for the socket.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Whole messages the socket has taken since the queue was made.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Bytes the socket has taken since the queue was made.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Appends one whole message (its header included), or refuses it at the bound.
    pub fn push(&mut self, message: &[u8]) -> Result<(), QueueFull> {
        if let Some(back) = self.chunks.back_mut() {
            if back.capacity() - back.len() >= message.len() {
                back.extend_from_slice(message);
                self.queued += message.len();
                return Ok(());
            }
        }
        let capacity = message.len().max(self.chunk_size);
        let ring_after = if self.chunks.len() == self.chunks.capacity() {
            // The ring grows: at least doubling, at least 4 handles.
            (self.chunks.capacity() * 2).max(4)
        } else {
            self.chunks.capacity()
        };
        let needed = self.chunk_cost + block_cost(capacity) + block_cost(ring_after * size_of::<Vec<u8>>());
        if needed > self.bound {
            return Err(QueueFull { footprint: self.footprint(), needed });
        }
        if self.chunks.len() == self.chunks.capacity() {
            self.chunks.reserve_exact(ring_after - self.chunks.len());
        }
        let mut chunk = Vec::with_capacity(capacity);
        chunk.extend_from_slice(message);
        self.chunk_cost += block_cost(chunk.capacity());
        self.chunks.push_back(chunk);
        self.queued += message.len();
        Ok(())
    }

    /// The next bytes to write to the socket (empty when nothing waits).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().and_then(|c| c.get(self.head_sent..)).unwrap_or(&[])
    }

    /// The socket took `n` bytes of [`SendQueue::front`]; more than that is taken as all of it.
    pub fn consume(&mut self, n: usize) {
        let Some(front) = self.chunks.front() else { return };
        let n = n.min(front.len().saturating_sub(self.head_sent));
        self.head_sent += n;
        self.queued -= n;
        self.bytes_sent += n as u64;
        // Count the messages now wholly sent.
        while let Some(len) = front.get(self.head_message..).and_then(message_len) {
            let end = self.head_message.saturating_add(len.max(1) as usize);
            if end > self.head_sent {
                break;
            }
            self.head_message = end;
            self.messages_sent += 1;
        }
        if self.head_sent >= front.len() {
            if let Some(done) = self.chunks.pop_front() {
                self.chunk_cost -= block_cost(done.capacity());
            }
            self.head_sent = 0;
            self.head_message = 0;
            if self.chunks.is_empty() {
                // Drained: the ring goes too, so that an idle queue holds no block at all and
                // BMP's memory at rest does not depend on how busy a session once was.
                self.chunks = VecDeque::new();
            }
        }
    }

    /// Drops everything queued and frees every block the queue holds.
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.head_sent = 0;
        self.head_message = 0;
        self.chunk_cost = 0;
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    /// A BMP-shaped message of `len` bytes (an Initiation padded with a string TLV).
    fn message(len: usize, fill: u8) -> Vec<u8> {
        let mut m = vec![fill; len];
        m[0] = 3;
        m[1..5].copy_from_slice(&(len as u32).to_be_bytes());
        m[5] = 4;
        m
    }

    #[test]
    fn fifo_across_chunks_and_partial_writes() {
        let mut q = SendQueue::new(1 << 20, 64);
        for i in 0..10u8 {
            q.push(&message(40, i)).unwrap();
        }
        assert_eq!(q.queued_bytes(), 400);
        let mut out = Vec::new();
        while !q.front().is_empty() {
            // The socket takes at most 7 bytes at a time.
            let take = q.front().len().min(7);
            out.extend_from_slice(&q.front()[..take]);
            q.consume(take);
        }
        let expected: Vec<u8> = (0..10u8).flat_map(|i| message(40, i)).collect();
        assert_eq!(out, expected);
        assert_eq!(q.messages_sent(), 10);
        assert_eq!(q.bytes_sent(), 400);
        assert_eq!(q.queued_bytes(), 0);
        // Every chunk is freed once sent, and the drained queue's ring with them.
        assert_eq!(q.footprint(), 0);
        assert_eq!(q.chunks.capacity(), 0, "no block held at rest");
    }

    #[test]
    fn bound_counts_true_bytes_and_clear_frees_all() {
        let chunk = 1024;
        let bound = 4 * block_cost(chunk) + block_cost(4 * size_of::<Vec<u8>>());
        let mut q = SendQueue::new(bound, chunk);
        // 1000-byte messages: one per chunk (two do not fit in 1024), so the fifth is refused
        // although the payload (4000 bytes) is far below the bound in payload bytes.
        for _ in 0..4 {
            q.push(&message(1000, 1)).unwrap();
        }
        assert_eq!(q.footprint(), bound);
        let full = q.push(&message(1000, 1)).unwrap_err();
        assert_eq!(full.footprint, bound);
        assert!(full.needed > bound);
        // A small message still fits in a chunk's tail without a new block.
        q.push(&message(24, 2)).unwrap();
        assert_eq!(q.footprint(), bound);
        q.clear();
        assert_eq!(q.footprint(), 0);
        assert_eq!(q.queued_bytes(), 0);
        assert!(q.front().is_empty());
    }

    #[test]
    fn random_pushes_and_writes_match_a_model() {
        let mut rng = Csprng::seed_from_u64(1);
        let mut next = move || rng.next_u64();
        for round in 0..20 {
            let bound = 2_000 + (next() % 40_000) as usize;
            let mut q = SendQueue::new(bound, 256 + (next() % 4096) as usize);
            let (mut accepted, mut written, mut ends) = (Vec::new(), Vec::new(), Vec::new());
            for step in 0..2_000 {
                if next() % 3 != 0 {
                    let m = message(6 + (next() % 700) as usize, step as u8);
                    if q.push(&m).is_ok() {
                        accepted.extend_from_slice(&m);
                        ends.push(accepted.len());
                    }
                } else {
                    let take = (next() % 900) as usize;
                    let front = q.front();
                    let n = take.min(front.len());
                    written.extend_from_slice(&front[..n]);
                    q.consume(n);
                }
                assert!(q.footprint() <= bound, "round {round} step {step}");
                assert_eq!(q.queued_bytes(), accepted.len() - written.len());
                let whole = ends.iter().filter(|&&e| e <= written.len()).count() as u64;
                assert_eq!(q.messages_sent(), whole);
            }
            assert_eq!(&accepted[..written.len()], &written[..]);
            if q.is_empty() {
                assert_eq!(q.footprint(), 0, "a drained queue holds nothing");
            }
            q.clear();
            assert_eq!(q.footprint(), 0);
        }
    }

    #[test]
    fn a_message_larger_than_a_chunk_gets_its_own() {
        let mut q = SendQueue::new(1 << 20, 64);
        q.push(&message(500, 9)).unwrap();
        q.push(&message(10, 8)).unwrap();
        assert_eq!(q.front().len(), 500);
        q.consume(500);
        assert_eq!(q.front(), &message(10, 8)[..]);
        assert_eq!(q.messages_sent(), 1);
    }
}
