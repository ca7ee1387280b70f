//! The IPv4 FIB: longest-prefix match over a tree bitmap (Eatherton, Varghese and Dittia, 2004)
//! of stride 4, updated in place (a router takes BGP churn while it forwards).
//!
//! ```text
//!  addr: [ 31..28 | 27..24 | 23..20 | 19..16 | 15..12 | 11..8 | 7..4 | 3..0 ]
//!          depth 0  depth 1  depth 2  ...                              depth 7
//!
//!  node (16 bytes): internal  30 bits  the prefixes stored here: /4d+1 (2 bits), /4d+2 (4),
//!                                      /4d+3 (8), /4d+4 (16); bit (2^l - 2 + v) for the
//!                                      prefix of relative length l and value v
//!                   external  16 bits  which of the 16 nibbles has a child node
//!                   children  u32      first of the node's children, contiguous, in nibble order
//!                   results   u32      first of the node's next hops, contiguous, in bit order
//! ```
//!
//! Every prefix is stored exactly once, as one bit and one 4-byte next hop: the structure is its
//! own route set, so `get`, `iter` (for `show route`) and `remove` need no second table. The
//! /0 route sits beside the root. A lookup reads at most 8 nodes (one per 4 bits of the
//! longest prefix on its path) and then one next hop: within a node, a mask per nibble selects
//! the 4 candidate bits and the highest one set is the longest match; a population count gives
//! its rank in the results block. An insert or a remove touches one node's results block and,
//! at most, one children block per level on its path; a node left with no prefix and no child
//! is freed, so a table emptied of routes holds no memory at all.
//!
//! Memory grows with the table: nodes and next hops live in two arenas of fixed-size chunks
//! (1,024 slots), blocks of 1 to 30 slots are carved from them and recycled through a free list
//! per block size (a larger free block is split when a size has none). Chunks are reserved with
//! `try_reserve_exact`: an allocation refused is `FibError::NoMemory` and leaves the table as it
//! was. A block moves to a block of its new size when it grows or shrinks, so under steady churn
//! every size is freed about as often as it is taken and memory plateaus (free blocks are not
//! merged); every chunk is returned when the table empties.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// An IPv4 prefix: address and length, host bits zero. Ordered by address, then length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: u32,
    len: u8,
}

/// Why a FIB operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FibError {
    /// Length above 32.
    BadLength,
    /// Host bits set below the prefix length.
    NotCanonical,
    /// The allocator refused a chunk: the route was not added, the table is unchanged.
    NoMemory,
}

impl Prefix {
    pub fn new(addr: u32, len: u8) -> Result<Prefix, FibError> {
        if len > 32 {
            return Err(FibError::BadLength);
        }
        if addr & !mask(len) != 0 {
            return Err(FibError::NotCanonical);
        }
        Ok(Prefix { addr, len })
    }

    pub fn addr(self) -> u32 {
        self.addr
    }

    pub fn length(self) -> u8 {
        self.len
    }

    pub fn contains(self, addr: u32) -> bool {
        addr & mask(self.len) == self.addr
    }
}

/// The netmask of a prefix length (0..=32).
pub fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - u32::from(l)),
    }
}

/// The longest-prefix-match table. Values are next-hop ids chosen by the caller.
pub struct Fib {
    default: Option<u32>,
    root: Node,
    nodes: Arena<Node>,
    results: Arena<u32>,
    len: usize,
}

impl Default for Fib {
    fn default() -> Self {
        Fib::new()
    }
}

impl Fib {
    /// An empty table; it allocates nothing until a route longer than /0 arrives.
    pub fn new() -> Fib {
        Fib { default: None, root: Node::BLANK, nodes: Arena::new(), results: Arena::new(), len: 0 }
    }

    /// Adds or replaces the route for `prefix`; returns the value it replaced.
    pub fn insert(&mut self, prefix: Prefix, value: u32) -> Result<Option<u32>, FibError> {
        if prefix.len == 0 {
            let old = self.default.replace(value);
            if old.is_none() {
                self.len += 1;
            }
            return Ok(old);
        }
        let (depth, bit) = position(prefix);
        let mut path = [Step::default(); DEPTHS];
        let mut at = ROOT;
        for (d, step) in path.iter_mut().enumerate().take(depth) {
            let nibble = nibble(prefix.addr, d);
            *step = Step { parent: at, nibble };
            at = match self.child_or_new(at, nibble) {
                Ok(child) => child,
                Err(e) => {
                    self.prune(&path[..d], at);
                    return Err(e);
                }
            };
        }
        let node = self.node(at);
        let rank = rank(node.internal, bit);
        if node.internal & (1 << bit) != 0 {
            let slot = self.results.get_mut(node.results + rank);
            return Ok(slot.map(|v| core::mem::replace(v, value)));
        }
        match self.results.insert(node.results, node.internal.count_ones(), rank, value) {
            Ok(start) => {
                if let Some(node) = self.node_mut(at) {
                    node.internal |= 1 << bit;
                    node.results = start;
                }
                self.len += 1;
                Ok(None)
            }
            Err(e) => {
                self.prune(&path[..depth], at);
                Err(e)
            }
        }
    }

    /// Removes the route for `prefix`; returns its value. Never allocates.
    pub fn remove(&mut self, prefix: Prefix) -> Option<u32> {
        if prefix.len == 0 {
            let old = self.default.take();
            if old.is_some() {
                self.len -= 1;
            }
            return old;
        }
        let (depth, bit) = position(prefix);
        let mut path = [Step::default(); DEPTHS];
        let mut at = ROOT;
        for (d, step) in path.iter_mut().enumerate().take(depth) {
            let nibble = nibble(prefix.addr, d);
            *step = Step { parent: at, nibble };
            at = self.child(at, nibble)?;
        }
        let node = self.node(at);
        if node.internal & (1 << bit) == 0 {
            return None;
        }
        let rank = rank(node.internal, bit);
        let old = self.results.get(node.results + rank).copied();
        let start = self.results.remove(node.results, node.internal.count_ones(), rank);
        if let Some(node) = self.node_mut(at) {
            node.internal &= !(1 << bit);
            node.results = start;
        }
        self.len -= 1;
        self.prune(&path[..depth], at);
        old
    }

    /// The value of the longest prefix that contains `addr`, and that prefix's length.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<(u32, u8)> {
        // The best match so far: its node's prefixes and results block, its bit and depth. Its
        // rank (a population count) is taken once, at the end.
        let mut best: Option<(Node, u32, u32)> = None;
        let mut node = self.root;
        let mut depth = 0;
        loop {
            let nibble = (addr >> (28 - 4 * depth)) & 0xf;
            let hits = node.internal & MATCHES[nibble as usize];
            if hits != 0 {
                best = Some((node, 31 - hits.leading_zeros(), depth));
            }
            if depth == DEPTHS as u32 - 1 || u32::from(node.external) & (1 << nibble) == 0 {
                break;
            }
            match self.nodes.get(node.children + rank(u32::from(node.external), nibble)) {
                Some(child) => node = *child,
                None => break,
            }
            depth += 1;
        }
        let Some((node, bit, depth)) = best else { return self.default.map(|v| (v, 0)) };
        let value = self.results.get(node.results + rank(node.internal, bit))?;
        Some((*value, (4 * depth + relative_length(bit)) as u8))
    }

    /// The value of exactly `prefix`.
    pub fn get(&self, prefix: Prefix) -> Option<u32> {
        if prefix.len == 0 {
            return self.default;
        }
        let (depth, bit) = position(prefix);
        let mut at = ROOT;
        for d in 0..depth {
            at = self.child(at, nibble(prefix.addr, d))?;
        }
        let node = self.node(at);
        if node.internal & (1 << bit) == 0 {
            return None;
        }
        self.results.get(node.results + rank(node.internal, bit)).copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every route, sorted by address then length.
    pub fn iter(&self) -> Iter<'_> {
        let mut stack = [Frame::default(); DEPTHS];
        stack[0] = Frame { at: ROOT, base: 0, nibble: 0, length: 1 };
        Iter { fib: self, stack, top: 1, default: self.default }
    }

    /// Heap bytes held, from the arenas' capacities (chunks and the chunk lists).
    pub fn memory_bytes(&self) -> usize {
        self.nodes.memory_bytes() + self.results.memory_bytes()
    }

    /// Nodes allocated below the root.
    pub fn node_count(&self) -> usize {
        self.nodes.live
    }

    // ---- private ----------------------------------------------------------------------------

    fn node(&self, at: u32) -> Node {
        if at == ROOT {
            return self.root;
        }
        self.nodes.get(at).copied().unwrap_or(Node::BLANK)
    }

    fn node_mut(&mut self, at: u32) -> Option<&mut Node> {
        if at == ROOT {
            return Some(&mut self.root);
        }
        self.nodes.get_mut(at)
    }

    fn child(&self, at: u32, nibble: u32) -> Option<u32> {
        let node = self.node(at);
        let external = u32::from(node.external);
        (external & (1 << nibble) != 0).then(|| node.children + rank(external, nibble))
    }

    /// The child of `at` for `nibble`, created empty if there is none.
    fn child_or_new(&mut self, at: u32, nibble: u32) -> Result<u32, FibError> {
        if let Some(child) = self.child(at, nibble) {
            return Ok(child);
        }
        let node = self.node(at);
        let external = u32::from(node.external);
        let rank = rank(external, nibble);
        let start = self.nodes.insert(node.children, external.count_ones(), rank, Node::BLANK)?;
        if let Some(node) = self.node_mut(at) {
            node.external |= 1 << nibble;
            node.children = start;
        }
        Ok(start + rank)
    }

    /// Frees `at` if it holds nothing, then its parent if that leaves it empty, up the path.
    fn prune(&mut self, path: &[Step], mut at: u32) {
        for step in path.iter().rev() {
            let node = self.node(at);
            if node.internal != 0 || node.external != 0 {
                return;
            }
            let parent = self.node(step.parent);
            let external = u32::from(parent.external);
            let rank = rank(external, step.nibble);
            let start = self.nodes.remove(parent.children, external.count_ones(), rank);
            if let Some(parent) = self.node_mut(step.parent) {
                parent.external &= !(1 << step.nibble);
                parent.children = start;
            }
            at = step.parent;
        }
    }
}

/// Routes in order, by a depth-first walk that emits a node's prefixes starting at a nibble
/// (shortest first) before the child under that nibble.
pub struct Iter<'a> {
    fib: &'a Fib,
    stack: [Frame; DEPTHS],
    top: usize,
    default: Option<u32>,
}

#[derive(Clone, Copy, Default)]
struct Frame {
    at: u32,
    /// The address bits above this node.
    base: u32,
    nibble: u32,
    /// 1..=4: the node's prefix length to try next at `nibble`; 5: its child.
    length: u32,
}

impl Iterator for Iter<'_> {
    type Item = (Prefix, u32);

    fn next(&mut self) -> Option<(Prefix, u32)> {
        if let Some(value) = self.default.take() {
            return Some((Prefix { addr: 0, len: 0 }, value));
        }
        while self.top > 0 {
            let depth = self.top - 1;
            let frame = self.stack.get_mut(depth)?;
            if frame.nibble == 16 {
                self.top -= 1;
                continue;
            }
            let node = self.fib.node(frame.at);
            let (nibble, length) = (frame.nibble, frame.length);
            if length == 5 {
                frame.nibble += 1;
                frame.length = 1;
                let base = frame.base | (nibble << (28 - 4 * depth));
                if let Some(child) = self.fib.child(frame.at, nibble) {
                    if let Some(next) = self.stack.get_mut(depth + 1) {
                        *next = Frame { at: child, base, nibble: 0, length: 1 };
                        self.top += 1;
                    }
                }
                continue;
            }
            frame.length += 1;
            // The prefix of this length that starts exactly at `nibble`, if it is stored.
            let shift = 4 - length;
            if nibble & ((1 << shift) - 1) != 0 {
                continue;
            }
            let bit = (1 << length) - 2 + (nibble >> shift);
            if node.internal & (1 << bit) == 0 {
                continue;
            }
            let addr = frame.base | (nibble << (28 - 4 * depth));
            let value = self.fib.results.get(node.results + rank(node.internal, bit)).copied()?;
            return Some((Prefix { addr, len: (4 * depth as u32 + length) as u8 }, value));
        }
        None
    }
}

// ---- the trie's layout ----------------------------------------------------------------------

const DEPTHS: usize = 8;
/// Where the root is, among node positions (it is not in the arena).
const ROOT: u32 = u32::MAX;
/// No slot (an empty block, the end of a free list).
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Node {
    internal: u32,
    external: u16,
    children: u32,
    results: u32,
}

impl Node {
    const BLANK: Node = Node { internal: 0, external: 0, children: NONE, results: NONE };
}

#[derive(Clone, Copy, Default)]
struct Step {
    parent: u32,
    nibble: u32,
}

/// For each nibble, the internal bits of the four prefixes (one per length) that contain it.
const MATCHES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut nibble = 0;
    while nibble < 16 {
        let mut length = 1;
        while length <= 4 {
            table[nibble] |= 1 << ((1 << length) - 2 + (nibble >> (4 - length)));
            length += 1;
        }
        nibble += 1;
    }
    table
};

/// The node depth and internal bit of a prefix of length 1..=32.
fn position(prefix: Prefix) -> (usize, u32) {
    let depth = (usize::from(prefix.len) - 1) / 4;
    let length = u32::from(prefix.len) - 4 * depth as u32;
    let value = nibble(prefix.addr, depth) >> (4 - length);
    (depth, (1 << length) - 2 + value)
}

fn nibble(addr: u32, depth: usize) -> u32 {
    (addr >> (28 - 4 * depth)) & 0xf
}

/// The relative length (1..=4) of internal bit `bit`.
fn relative_length(bit: u32) -> u32 {
    31 - (bit + 2).leading_zeros()
}

/// How many bits of `bitmap` are set below `bit`.
fn rank(bitmap: u32, bit: u32) -> u32 {
    (bitmap & ((1u32 << bit) - 1)).count_ones()
}

// ---- the arenas ---------------------------------------------------------------------------

const CHUNK_BITS: u32 = 10;
const CHUNK: u32 = 1 << CHUNK_BITS;
/// The largest block: 30 prefixes in a node (16 children is less).
const MAX_BLOCK: usize = 30;

/// Something an arena holds; a free block keeps the next free block of its size in its first
/// slot.
trait Slot: Copy {
    const BLANK: Self;
    fn link(&self) -> u32;
    fn set_link(&mut self, next: u32);
}

impl Slot for Node {
    const BLANK: Node = Node::BLANK;
    fn link(&self) -> u32 {
        self.children
    }
    fn set_link(&mut self, next: u32) {
        self.children = next;
    }
}

impl Slot for u32 {
    const BLANK: u32 = 0;
    fn link(&self) -> u32 {
        *self
    }
    fn set_link(&mut self, next: u32) {
        *self = next;
    }
}

/// Contiguous blocks of 1..=`MAX_BLOCK` slots, in chunks of `CHUNK` that never move.
struct Arena<T> {
    chunks: Vec<Box<[T; CHUNK as usize]>>,
    /// The first free block of each size.
    free: [u32; MAX_BLOCK + 1],
    /// Slots below this have been handed out at least once.
    top: u32,
    /// Slots in blocks now in use.
    live: usize,
}

impl<T: Slot> Arena<T> {
    fn new() -> Arena<T> {
        Arena { chunks: Vec::new(), free: [NONE; MAX_BLOCK + 1], top: 0, live: 0 }
    }

    #[inline]
    fn get(&self, at: u32) -> Option<&T> {
        // The offset is masked to the chunk's fixed length: only the chunk index is checked.
        let chunk = self.chunks.get((at >> CHUNK_BITS) as usize)?;
        Some(&chunk[(at & (CHUNK - 1)) as usize])
    }

    fn get_mut(&mut self, at: u32) -> Option<&mut T> {
        let chunk = self.chunks.get_mut((at >> CHUNK_BITS) as usize)?;
        Some(&mut chunk[(at & (CHUNK - 1)) as usize])
    }

    fn memory_bytes(&self) -> usize {
        self.chunks.capacity() * core::mem::size_of::<Box<[T; CHUNK as usize]>>()
            + self.chunks.len() * core::mem::size_of::<[T; CHUNK as usize]>()
    }

    /// A copy of block (`start`, `len`) with `value` inserted at `rank`, in a block one longer;
    /// the old block is freed. On `NoMemory` nothing has changed.
    fn insert(&mut self, start: u32, len: u32, rank: u32, value: T) -> Result<u32, FibError> {
        let grown = self.alloc(len as usize + 1)?;
        for i in 0..len {
            let moved = self.get(start + i).copied().unwrap_or(T::BLANK);
            self.set(grown + i + u32::from(i >= rank), moved);
        }
        self.set(grown + rank, value);
        if len > 0 {
            self.free(start, len as usize);
        }
        Ok(grown)
    }

    /// A copy of block (`start`, `len`) without the slot at `rank`, in a block one shorter
    /// (`NONE` when that is empty); the old block is freed. Blocks move to their exact size
    /// both ways, so every size is freed as often as it is taken and the free lists balance.
    /// If no block can be had, the block shrinks where it is and its last slot is freed: a
    /// remove never fails.
    fn remove(&mut self, start: u32, len: u32, rank: u32) -> u32 {
        if len > 1 {
            if let Ok(shrunk) = self.alloc(len as usize - 1) {
                for i in (0..len).filter(|&i| i != rank) {
                    let moved = self.get(start + i).copied().unwrap_or(T::BLANK);
                    self.set(shrunk + i - u32::from(i > rank), moved);
                }
                self.free(start, len as usize);
                return shrunk;
            }
        }
        for i in rank + 1..len {
            let moved = self.get(start + i).copied().unwrap_or(T::BLANK);
            self.set(start + i - 1, moved);
        }
        self.free(start + len - 1, 1);
        if len == 1 {
            NONE
        } else {
            start
        }
    }

    fn set(&mut self, at: u32, value: T) {
        if let Some(slot) = self.get_mut(at) {
            *slot = value;
        }
    }

    /// A block of `len` slots: a free one of that size, else one split from a larger free
    /// block, else fresh slots from the last chunk, else a new chunk.
    fn alloc(&mut self, len: usize) -> Result<u32, FibError> {
        if let Some(start) = self.pop_free(len) {
            self.live += len;
            return Ok(start);
        }
        if let Some(larger) = (len + 1..=MAX_BLOCK).find(|&size| self.free[size] != NONE) {
            if let Some(start) = self.pop_free(larger) {
                self.push_free(start + len as u32, larger - len);
                self.live += len;
                return Ok(start);
            }
        }
        let in_chunk = self.top & (CHUNK - 1);
        let room = if in_chunk == 0 { 0 } else { CHUNK - in_chunk };
        if room < len as u32 {
            self.chunks.try_reserve(1).map_err(|_| FibError::NoMemory)?;
            let mut slots = Vec::new();
            slots.try_reserve_exact(CHUNK as usize).map_err(|_| FibError::NoMemory)?;
            slots.resize(CHUNK as usize, T::BLANK);
            let chunk: Box<[T; CHUNK as usize]> =
                slots.into_boxed_slice().try_into().map_err(|_| FibError::NoMemory)?;
            if room > 0 {
                self.push_free(self.top, room as usize);
            }
            self.top = self.chunks.len() as u32 * CHUNK;
            self.chunks.push(chunk);
        }
        let start = self.top;
        self.top += len as u32;
        self.live += len;
        Ok(start)
    }

    fn free(&mut self, start: u32, len: usize) {
        self.live -= len;
        if self.live == 0 {
            // Empty: give every chunk back, so an emptied table holds nothing.
            *self = Arena::new();
            return;
        }
        self.push_free(start, len);
    }

    fn pop_free(&mut self, len: usize) -> Option<u32> {
        let head = *self.free.get(len)?;
        if head == NONE {
            return None;
        }
        let next = self.get(head).map_or(NONE, Slot::link);
        self.free[len] = next;
        Some(head)
    }

    fn push_free(&mut self, start: u32, len: usize) {
        let Some(&head) = self.free.get(len) else { return };
        if let Some(slot) = self.get_mut(start) {
            slot.set_link(head);
            self.free[len] = start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;
    extern crate std;
    use std::vec::Vec;

    /// The reference: every route, longest match by a linear scan.
    struct Naive(Vec<(Prefix, u32)>);

    impl Naive {
        fn lookup(&self, addr: u32) -> Option<(u32, u8)> {
            self.0
                .iter()
                .filter(|(p, _)| p.contains(addr))
                .max_by_key(|(p, _)| p.len)
                .map(|(p, nh)| (*nh, p.len))
        }
    }

    fn p(text: &str) -> Prefix {
        let (addr, len) = text.split_once('/').unwrap();
        let octets: Vec<u32> = addr.split('.').map(|o| o.parse().unwrap()).collect();
        Prefix::new(octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3], len.parse().unwrap())
            .unwrap()
    }

    fn a(text: &str) -> u32 {
        p(&alloc::format!("{text}/32")).addr
    }

    #[test]
    fn match_masks_select_one_bit_per_length() {
        for (nibble, m) in MATCHES.iter().enumerate() {
            assert_eq!(m.count_ones(), 4);
            for length in 1..=4u32 {
                let bit = (1 << length) - 2 + (nibble as u32 >> (4 - length));
                assert!(m & (1 << bit) != 0);
                assert_eq!(relative_length(bit), length);
            }
        }
    }

    #[test]
    fn longest_match_across_levels_and_removal_restores_the_cover() {
        let mut fib = Fib::new();
        assert_eq!(fib.memory_bytes(), 0, "an empty table holds nothing");
        fib.insert(p("0.0.0.0/0"), 1).unwrap();
        fib.insert(p("10.0.0.0/8"), 2).unwrap();
        fib.insert(p("10.1.0.0/16"), 3).unwrap();
        fib.insert(p("10.1.2.0/24"), 4).unwrap();
        fib.insert(p("10.1.2.128/25"), 5).unwrap();
        fib.insert(p("10.1.2.129/32"), 6).unwrap();
        assert_eq!(fib.lookup(a("10.1.2.129")), Some((6, 32)));
        assert_eq!(fib.lookup(a("10.1.2.130")), Some((5, 25)));
        assert_eq!(fib.lookup(a("10.1.2.1")), Some((4, 24)));
        assert_eq!(fib.lookup(a("10.1.3.1")), Some((3, 16)));
        assert_eq!(fib.lookup(a("10.2.0.1")), Some((2, 8)));
        assert_eq!(fib.lookup(a("11.0.0.1")), Some((1, 0)));
        assert_eq!(fib.get(p("10.1.2.0/24")), Some(4));
        assert_eq!(fib.get(p("10.1.2.0/23")), None);
        assert_eq!(fib.remove(p("10.1.2.0/24")), Some(4));
        assert_eq!(fib.remove(p("10.1.2.0/24")), None);
        assert_eq!(fib.lookup(a("10.1.2.1")), Some((3, 16)));
        assert_eq!(fib.lookup(a("10.1.2.129")), Some((6, 32)));
        assert_eq!(fib.remove(p("0.0.0.0/0")), Some(1));
        assert_eq!(fib.lookup(a("11.0.0.1")), None);
        for prefix in ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25", "10.1.2.129/32"] {
            fib.remove(p(prefix)).unwrap();
        }
        assert!(fib.is_empty());
        assert_eq!(fib.node_count(), 0, "empty nodes are freed");
        assert_eq!(fib.memory_bytes(), 0, "and so are the chunks");
        assert_eq!(fib.lookup(a("10.1.2.129")), None);
    }

    #[test]
    fn extremes_of_the_address_space() {
        let mut fib = Fib::new();
        fib.insert(p("255.255.255.255/32"), 1).unwrap();
        fib.insert(p("0.0.0.0/32"), 2).unwrap();
        fib.insert(p("128.0.0.0/1"), 3).unwrap();
        fib.insert(p("0.0.0.0/1"), 4).unwrap();
        assert_eq!(fib.lookup(u32::MAX), Some((1, 32)));
        assert_eq!(fib.lookup(u32::MAX - 1), Some((3, 1)));
        assert_eq!(fib.lookup(0), Some((2, 32)));
        assert_eq!(fib.lookup(1), Some((4, 1)));
        let all: Vec<_> = fib.iter().collect();
        assert_eq!(
            all,
            [(p("0.0.0.0/1"), 4), (p("0.0.0.0/32"), 2), (p("128.0.0.0/1"), 3), (p("255.255.255.255/32"), 1)]
        );
    }

    #[test]
    fn replacing_a_route_changes_its_value_only() {
        let mut fib = Fib::new();
        fib.insert(p("192.0.2.0/24"), 1).unwrap();
        fib.insert(p("192.0.2.64/26"), 2).unwrap();
        assert_eq!(fib.insert(p("192.0.2.0/24"), 7).unwrap(), Some(1));
        assert_eq!(fib.len(), 2);
        assert_eq!(fib.lookup(a("192.0.2.1")), Some((7, 24)));
        assert_eq!(fib.lookup(a("192.0.2.65")), Some((2, 26)));
    }

    #[test]
    fn refuses_bad_prefixes() {
        assert_eq!(Prefix::new(1, 24), Err(FibError::NotCanonical));
        assert_eq!(Prefix::new(0, 33), Err(FibError::BadLength));
        assert_eq!(Prefix::new(0x0a00_0000, 8).map(Prefix::length), Ok(8));
    }

    #[test]
    fn matches_the_reference_on_random_tables_with_churn() {
        for seed in 1..=24u64 {
            let mut rng = Csprng::seed_from_u64(seed);
            let mut fib = Fib::new();
            let mut naive = Naive(Vec::new());
            // Few top bits vary, so that prefixes overlap a lot; every length occurs.
            let spread = if seed % 2 == 0 { 0x0307_ffff } else { 0xffff_ffff };
            let base = move |rng: &mut Csprng| (rng.next_u64() as u32) & spread | 0x0a00_0000 & !spread;
            for step in 0..4000 {
                let len = (rng.next_u64() % 33) as u8;
                let prefix = Prefix::new(base(&mut rng) & mask(len), len).unwrap();
                if rng.next_u64().is_multiple_of(3) && !naive.0.is_empty() {
                    let (victim, value) = naive.0.swap_remove((rng.next_u64() as usize) % naive.0.len());
                    assert_eq!(fib.remove(victim), Some(value));
                } else {
                    let value = (rng.next_u64() % 1000) as u32;
                    let old =
                        naive.0.iter().position(|(q, _)| *q == prefix).map(|i| naive.0.swap_remove(i).1);
                    assert_eq!(fib.insert(prefix, value), Ok(old));
                    naive.0.push((prefix, value));
                }
                if step % 40 == 0 {
                    for _ in 0..200 {
                        let addr = base(&mut rng);
                        assert_eq!(fib.lookup(addr), naive.lookup(addr), "seed {seed} step {step} {addr:#x}");
                    }
                    // Addresses next to the routes' edges.
                    for (q, _) in naive.0.iter().take(20) {
                        for addr in [q.addr, q.addr | !mask(q.len), q.addr.wrapping_sub(1)] {
                            assert_eq!(fib.lookup(addr), naive.lookup(addr), "seed {seed} edge {addr:#x}");
                        }
                    }
                }
            }
            assert_eq!(fib.len(), naive.0.len());
            let mut sorted = naive.0.clone();
            sorted.sort();
            assert_eq!(fib.iter().collect::<Vec<_>>(), sorted, "seed {seed}: iter is the route set, sorted");
            for (prefix, value) in &naive.0 {
                assert_eq!(fib.get(*prefix), Some(*value));
            }
            for (prefix, _) in core::mem::take(&mut naive.0) {
                fib.remove(prefix).unwrap();
            }
            assert_eq!(fib.node_count(), 0, "seed {seed}: nodes left after every route was removed");
            assert_eq!(fib.memory_bytes(), 0, "seed {seed}: memory left after every route was removed");
        }
    }

    #[test]
    fn every_prefix_of_one_address() {
        // All 33 lengths on one path: the deepest node chain, removed shortest first.
        let addr = a("203.0.113.77");
        let mut fib = Fib::new();
        for len in 0..=32u8 {
            fib.insert(Prefix::new(addr & mask(len), len).unwrap(), u32::from(len)).unwrap();
        }
        assert_eq!(fib.lookup(addr), Some((32, 32)));
        assert_eq!(fib.lookup(addr ^ 1), Some((31, 31)));
        assert_eq!(fib.lookup(addr ^ (1 << 31)), Some((0, 0)));
        for len in (1..=32u8).rev() {
            assert_eq!(fib.remove(Prefix::new(addr & mask(len), len).unwrap()), Some(u32::from(len)));
            assert_eq!(fib.lookup(addr), Some((u32::from(len) - 1, len - 1)), "after /{len} went");
        }
        assert_eq!(fib.node_count(), 0);
    }

    #[test]
    fn memory_is_reused_under_churn() {
        let mut rng = Csprng::seed_from_u64(77);
        let mut fib = Fib::new();
        let mut live = Vec::new();
        for _ in 0..20_000 {
            let len = 16 + (rng.next_u64() % 17) as u8;
            let prefix = Prefix::new(rng.next_u64() as u32 & mask(len), len).unwrap();
            if fib.insert(prefix, 1).unwrap().is_none() {
                live.push(prefix);
            }
        }
        let settled = fib.memory_bytes();
        // Replace half the table, many times over: the free lists absorb the churn.
        for _ in 0..20 {
            for _ in 0..10_000 {
                let victim = live.swap_remove((rng.next_u64() as usize) % live.len());
                fib.remove(victim).unwrap();
            }
            while live.len() < 20_000 {
                let len = 16 + (rng.next_u64() % 17) as u8;
                let prefix = Prefix::new(rng.next_u64() as u32 & mask(len), len).unwrap();
                if fib.insert(prefix, 2).unwrap().is_none() {
                    live.push(prefix);
                }
            }
        }
        assert!(fib.memory_bytes() <= settled * 115 / 100, "{} vs {settled}", fib.memory_bytes());
    }
}
