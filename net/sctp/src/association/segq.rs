//! A FIFO of queued chunks or messages in fixed-size segments, so that what it costs is known
//! exactly and grows in small steps.
//!
//! A `VecDeque` of 1-byte messages grows by doubling: its buffer holds up to twice the items it
//! has, and each doubling copies the whole queue. Charged per item, that slack went uncounted
//! (the seed test's domain grew 1.44 MB for 1.05 MB counted); charged by capacity, one message
//! could double the bill. [`SegQueue`] keeps items in segments of [`SEGMENT_BYTES`] (one slot of
//! the allocator's largest small class), allocated when the last is full and freed when the
//! first is empty, plus a spine of segment handles. [`SegQueue::footprint`] is the exact cost
//! of those allocations; an item's own heap data (a payload) is charged by its owner.
//!
//! Bound: none of its own; the owner bounds the number of items (the send and receive limits
//! in true bytes, which include this footprint).

use alloc::collections::VecDeque;
use core::mem::size_of;

use crate::endpoint::Footprint;

/// Bytes of one segment's buffer.
pub const SEGMENT_BYTES: usize = 2048;

/// Entries of a node of the standard library's B-tree at most (`2 * B - 1`, B = 6).
const BTREE_NODE_CAPACITY: usize = 11;
/// Entries of a node other than the root at least (`B - 1`).
const BTREE_NODE_MIN: usize = 5;

/// What a `BTreeMap<K, V>` holding `len` entries costs at most, in true bytes: every node
/// other than the root holds at least [`BTREE_NODE_MIN`] entries, so there are at most
/// `ceil(len / 5)` nodes, each charged as an internal node (a leaf plus 12 edges), the larger
/// kind. An upper bound (a tree filled in order is nearer one node per 11 entries), exact
/// enough that the domain never holds more than the books say.
pub fn btree_cost<K, V>(footprint: Footprint, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let leaf = 2 * size_of::<usize>() + BTREE_NODE_CAPACITY * (size_of::<K>() + size_of::<V>());
    let internal = leaf + (BTREE_NODE_CAPACITY + 1) * size_of::<usize>();
    len.div_ceil(BTREE_NODE_MIN) * footprint(internal)
}

#[derive(Debug)]
pub struct SegQueue<T> {
    /// Every segment has capacity [`SegQueue::per_segment`]; all but the first and the last
    /// are full.
    segments: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for SegQueue<T> {
    fn default() -> Self {
        SegQueue::new()
    }
}

impl<T> SegQueue<T> {
    pub const fn new() -> Self {
        SegQueue { segments: VecDeque::new(), len: 0 }
    }

    /// Items per segment.
    pub const fn per_segment() -> usize {
        let n = SEGMENT_BYTES / if size_of::<T>() == 0 { 1 } else { size_of::<T>() };
        if n == 0 {
            1
        } else {
            n
        }
    }

    /// The true bytes of one segment's buffer.
    pub fn segment_cost(footprint: Footprint) -> usize {
        footprint(Self::per_segment() * size_of::<T>())
    }

    /// An item's share of a full segment (what a queued item costs besides its own data).
    pub fn item_share(footprint: Footprint) -> usize {
        Self::segment_cost(footprint).div_ceil(Self::per_segment())
    }

    /// The true bytes of the queue's own allocations: its segments and its spine.
    pub fn footprint(&self, footprint: Footprint) -> usize {
        let spine = match self.segments.capacity() {
            0 => 0,
            n => footprint(n * size_of::<VecDeque<T>>()),
        };
        spine + self.segments.len() * Self::segment_cost(footprint)
    }

    /// What pushing `n` more items adds to [`footprint`](Self::footprint) at most: new
    /// segments, and a larger spine when it must grow (it doubles, from 4).
    pub fn growth(&self, n: usize, footprint: Footprint) -> usize {
        let per = Self::per_segment();
        let room = self.segments.back().map_or(0, |s| per.saturating_sub(s.len()));
        let new = n.saturating_sub(room).div_ceil(per);
        let needed = self.segments.len() + new;
        let mut cap = self.segments.capacity();
        if needed > cap {
            cap = cap.max(4);
            while cap < needed {
                cap *= 2;
            }
        }
        let spine = |cap: usize| if cap == 0 { 0 } else { footprint(cap * size_of::<VecDeque<T>>()) };
        new * Self::segment_cost(footprint) + spine(cap) - spine(self.segments.capacity())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, item: T) {
        let per = Self::per_segment();
        match self.segments.back_mut() {
            Some(last) if last.len() < per => last.push_back(item),
            _ => {
                let mut s = VecDeque::with_capacity(per);
                s.push_back(item);
                self.segments.push_back(s);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.segments.front_mut()?;
        let item = first.pop_front()?;
        if first.is_empty() {
            self.segments.pop_front();
            if self.segments.is_empty() {
                // The spine's buffer goes with the last segment.
                self.segments = VecDeque::new();
            }
        }
        self.len -= 1;
        Some(item)
    }

    pub fn front(&self) -> Option<&T> {
        self.segments.front().and_then(|s| s.front())
    }

    pub fn back_mut(&mut self) -> Option<&mut T> {
        self.segments.back_mut().and_then(|s| s.back_mut())
    }

    /// Where item `i` is: (segment, index in it).
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        let first = self.segments.front()?.len();
        if i < first {
            return Some((0, i));
        }
        let rest = i - first;
        let per = Self::per_segment();
        Some((1 + rest / per, rest % per))
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        let (s, j) = self.locate(i)?;
        self.segments.get(s)?.get(j)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let (s, j) = self.locate(i)?;
        self.segments.get_mut(s)?.get_mut(j)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.segments.iter().flat_map(|s| s.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.segments.iter_mut().flat_map(|s| s.iter_mut())
    }

    /// Drop every item and every allocation.
    pub fn clear(&mut self) {
        self.segments = VecDeque::new();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn fp(n: usize) -> usize {
        n.next_multiple_of(16)
    }

    #[test]
    fn fifo_with_indexing_across_segments() {
        let mut q: SegQueue<u64> = SegQueue::new();
        assert_eq!(SegQueue::<u64>::per_segment(), 256);
        assert_eq!(q.footprint(fp), 0);
        for i in 0..1000u64 {
            q.push_back(i);
        }
        assert_eq!(q.len(), 1000);
        for _ in 0..300 {
            q.pop_front();
        }
        assert_eq!(q.front(), Some(&300));
        for i in 0..700 {
            assert_eq!(q.get(i), Some(&(300 + i as u64)), "{i}");
        }
        assert_eq!(q.get(700), None);
        *q.get_mut(699).unwrap() = 7;
        *q.back_mut().unwrap() += 1;
        assert_eq!(q.get(699), Some(&8));
        let all: Vec<u64> = q.iter().copied().collect();
        assert_eq!(all.len(), 700);
        assert_eq!(all[0], 300);
        for x in q.iter_mut() {
            *x = 0;
        }
        assert!(q.iter().all(|x| *x == 0));
        while q.pop_front().is_some() {}
        assert!(q.is_empty());
        assert_eq!(q.footprint(fp), 0, "the last segment and the spine are freed");
    }

    #[test]
    fn btree_cost_bounds_what_the_tree_allocates() {
        assert_eq!(btree_cost::<u64, ()>(fp, 0), 0);
        let one = btree_cost::<u64, ()>(fp, 1);
        assert!(one >= 16 + 11 * 8, "{one}");
        assert_eq!(btree_cost::<u64, ()>(fp, 5), one);
        assert_eq!(btree_cost::<u64, ()>(fp, 6), 2 * one);
    }

    #[test]
    fn footprint_is_segments_and_spine() {
        let mut q: SegQueue<[u8; 32]> = SegQueue::new();
        let per = SegQueue::<[u8; 32]>::per_segment();
        assert_eq!(per, 64);
        assert_eq!(SegQueue::<[u8; 32]>::item_share(fp), 32);
        assert_eq!(
            q.growth(1, fp),
            2048 + fp(4 * size_of::<VecDeque<[u8; 32]>>()),
            "a segment and the spine"
        );
        q.push_back([0; 32]);
        assert_eq!((q.growth(per - 1, fp), q.growth(per, fp)), (0, 2048));
        let spine = fp(q.segments.capacity() * size_of::<VecDeque<[u8; 32]>>());
        assert_eq!(q.footprint(fp), spine + 2048);
        for _ in 0..per {
            q.push_back([0; 32]);
        }
        assert_eq!(q.segments.len(), 2);
        assert!(q.footprint(fp) >= 2 * 2048);
        q.clear();
        assert_eq!((q.len(), q.footprint(fp)), (0, 0));
    }
}
