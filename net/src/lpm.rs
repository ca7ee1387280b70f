//! The IPv4 FIB: longest-prefix match over a 16-8-8 multibit trie with prefix expansion,
//! updated in place (a router takes BGP churn while it forwards).
//!
//! ```text
//!  addr:  [ 31 ........ 16 | 15 .... 8 | 7 .... 0 ]
//!            level 0            level 1    level 2
//!          65,536 entries     256-entry nodes, allocated where a prefix longer than /16
//!                             (/24) needs them, freed again when they become uniform
//! ```
//!
//! Every entry is a `u32`: a child node, or a leaf holding the next-hop value and the length of
//! the prefix that painted it. A lookup is at most three array reads. An insert paints the
//! entries its prefix covers whose painter is no longer than it; a delete repaints the entries
//! it painted with the longest remaining prefix that covers it, found in the exact route set
//! (`routes`, which also serves `show route`).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// The largest next-hop value a route can carry.
pub const MAX_NEXT_HOP: u32 = (1 << 24) - 2;

const CHILD: u32 = 1 << 31;
const EMPTY: u32 = 0;
const NODE_ENTRIES: usize = 256;
const LEVEL0_ENTRIES: usize = 1 << 16;

/// An IPv4 prefix: address and length, host bits zero.
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
    /// A next-hop value above `MAX_NEXT_HOP`.
    BadNextHop,
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

    fn key(self) -> u64 {
        (u64::from(self.addr) << 8) | u64::from(self.len)
    }

    fn from_key(key: u64) -> Prefix {
        Prefix { addr: (key >> 8) as u32, len: (key & 0xff) as u8 }
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
    level0: Box<[u32]>,
    nodes: Vec<Option<Box<[u32; NODE_ENTRIES]>>>,
    free_nodes: Vec<u32>,
    routes: BTreeMap<u64, u32>,
}

impl Default for Fib {
    fn default() -> Self {
        Fib::new()
    }
}

impl Fib {
    pub fn new() -> Fib {
        Fib {
            level0: vec![EMPTY; LEVEL0_ENTRIES].into_boxed_slice(),
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            routes: BTreeMap::new(),
        }
    }

    /// Adds or replaces the route for `prefix`; returns the value it replaced.
    pub fn insert(&mut self, prefix: Prefix, next_hop: u32) -> Result<Option<u32>, FibError> {
        if next_hop > MAX_NEXT_HOP {
            return Err(FibError::BadNextHop);
        }
        let old = self.routes.insert(prefix.key(), next_hop);
        self.paint(prefix, |leaf_len| leaf_len <= prefix.len, leaf(next_hop, prefix.len));
        Ok(old)
    }

    /// Removes the route for `prefix`; returns its value.
    pub fn remove(&mut self, prefix: Prefix) -> Option<u32> {
        let old = self.routes.remove(&prefix.key())?;
        let replacement = self.covering(prefix).map_or(EMPTY, |(p, nh)| leaf(nh, p.len));
        self.paint(prefix, |leaf_len| leaf_len == prefix.len, replacement);
        Some(old)
    }

    /// The value of the longest prefix that contains `addr`, and that prefix's length.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<(u32, u8)> {
        let mut entry = self.level0.get((addr >> 16) as usize).copied().unwrap_or(EMPTY);
        if entry & CHILD != 0 {
            entry = self.node_entry(entry, (addr >> 8) & 0xff);
            if entry & CHILD != 0 {
                entry = self.node_entry(entry, addr & 0xff);
            }
        }
        decode(entry)
    }

    /// The value of exactly `prefix`.
    pub fn get(&self, prefix: Prefix) -> Option<u32> {
        self.routes.get(&prefix.key()).copied()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route, sorted by address then length.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, u32)> + '_ {
        self.routes.iter().map(|(k, v)| (Prefix::from_key(*k), *v))
    }

    /// Heap bytes held: the level-0 array, the nodes, and an estimate of the route set's
    /// B-tree (its nodes hold 11 keys of 8 bytes and 11 values of 4 bytes, plus links; about
    /// 24 bytes a route when two-thirds full).
    pub fn memory_bytes(&self) -> usize {
        let live_nodes = self.nodes.iter().filter(|n| n.is_some()).count();
        LEVEL0_ENTRIES * 4
            + live_nodes * NODE_ENTRIES * 4
            + self.nodes.capacity() * core::mem::size_of::<Option<Box<[u32; NODE_ENTRIES]>>>()
            + self.free_nodes.capacity() * 4
            + self.routes.len() * 24
    }

    /// Nodes allocated below level 0.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_some()).count()
    }

    // ---- private ----------------------------------------------------------------------------

    fn node_entry(&self, child: u32, index: u32) -> u32 {
        self.nodes
            .get((child & !CHILD) as usize)
            .and_then(Option::as_ref)
            .and_then(|n| n.get(index as usize).copied())
            .unwrap_or(EMPTY)
    }

    /// The longest route strictly shorter than `prefix` that contains it.
    fn covering(&self, prefix: Prefix) -> Option<(Prefix, u32)> {
        (0..prefix.len).rev().find_map(|len| {
            let p = Prefix { addr: prefix.addr & mask(len), len };
            self.routes.get(&p.key()).map(|nh| (p, *nh))
        })
    }

    /// Sets every leaf that `prefix` covers and whose painter's length passes `repaint` to
    /// `value`, creating nodes where the prefix is longer than a level, and collapsing nodes
    /// that end up uniform.
    fn paint(&mut self, prefix: Prefix, repaint: impl Fn(u8) -> bool + Copy, value: u32) {
        let addr = prefix.addr;
        if prefix.len <= 16 {
            let first = (addr >> 16) as usize;
            let count = 1usize << (16 - prefix.len);
            for index in first..first + count {
                let entry = self.level0[index];
                if entry & CHILD != 0 {
                    self.paint_node(entry, 0, NODE_ENTRIES, repaint, value);
                    self.level0[index] = self.collapse(entry);
                } else if repaint(leaf_len(entry)) {
                    self.level0[index] = value;
                }
            }
            return;
        }
        let index0 = (addr >> 16) as usize;
        let child1 = self.child_of_level0(index0);
        if prefix.len <= 24 {
            let first = ((addr >> 8) & 0xff) as usize;
            let count = 1usize << (24 - prefix.len);
            self.paint_node(child1, first, count, repaint, value);
        } else {
            let index1 = ((addr >> 8) & 0xff) as usize;
            let child2 = self.child_of_node(child1, index1);
            let first = (addr & 0xff) as usize;
            let count = 1usize << (32 - prefix.len);
            self.paint_node(child2, first, count, repaint, value);
            let collapsed = self.collapse(child2);
            self.set_node_entry(child1, index1, collapsed);
        }
        self.level0[index0] = self.collapse(child1);
    }

    fn paint_node(
        &mut self,
        child: u32,
        first: usize,
        count: usize,
        repaint: impl Fn(u8) -> bool + Copy,
        value: u32,
    ) {
        for index in first..first + count {
            let entry = self.node_entry(child, index as u32);
            if entry & CHILD != 0 {
                self.paint_node(entry, 0, NODE_ENTRIES, repaint, value);
                let collapsed = self.collapse(entry);
                self.set_node_entry(child, index, collapsed);
            } else if repaint(leaf_len(entry)) {
                self.set_node_entry(child, index, value);
            }
        }
    }

    fn set_node_entry(&mut self, child: u32, index: usize, value: u32) {
        if let Some(Some(node)) = self.nodes.get_mut((child & !CHILD) as usize) {
            if let Some(slot) = node.get_mut(index) {
                *slot = value;
            }
        }
    }

    /// The level-1 node under level-0 entry `index`, created from its leaf if needed.
    fn child_of_level0(&mut self, index: usize) -> u32 {
        let entry = self.level0[index];
        if entry & CHILD != 0 {
            return entry;
        }
        let child = self.new_node(entry);
        self.level0[index] = child;
        child
    }

    fn child_of_node(&mut self, parent: u32, index: usize) -> u32 {
        let entry = self.node_entry(parent, index as u32);
        if entry & CHILD != 0 {
            return entry;
        }
        let child = self.new_node(entry);
        self.set_node_entry(parent, index, child);
        child
    }

    fn new_node(&mut self, fill: u32) -> u32 {
        let node = Box::new([fill; NODE_ENTRIES]);
        match self.free_nodes.pop() {
            Some(index) => {
                if let Some(slot) = self.nodes.get_mut(index as usize) {
                    *slot = Some(node);
                }
                CHILD | index
            }
            None => {
                self.nodes.push(Some(node));
                CHILD | (self.nodes.len() as u32 - 1)
            }
        }
    }

    /// A node whose entries are one and the same leaf is replaced by that leaf.
    fn collapse(&mut self, child: u32) -> u32 {
        let index = (child & !CHILD) as usize;
        let uniform = match self.nodes.get(index).and_then(Option::as_ref) {
            Some(node) => {
                let first = node[0];
                (first & CHILD == 0 && node.iter().all(|e| *e == first)).then_some(first)
            }
            None => return EMPTY,
        };
        match uniform {
            Some(leaf) => {
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = None;
                }
                self.free_nodes.push(index as u32);
                leaf
            }
            None => child,
        }
    }
}

fn leaf(next_hop: u32, len: u8) -> u32 {
    (u32::from(len) << 24) | (next_hop + 1)
}

fn leaf_len(entry: u32) -> u8 {
    ((entry >> 24) & 0x3f) as u8
}

fn decode(entry: u32) -> Option<(u32, u8)> {
    let value = entry & 0x00ff_ffff;
    (entry & CHILD == 0 && value != 0).then(|| (value - 1, leaf_len(entry)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
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
    fn longest_match_across_levels_and_removal_restores_the_cover() {
        let mut fib = Fib::new();
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
        assert_eq!(fib.remove(p("10.1.2.0/24")), Some(4));
        assert_eq!(fib.lookup(a("10.1.2.1")), Some((3, 16)));
        assert_eq!(fib.lookup(a("10.1.2.129")), Some((6, 32)));
        assert_eq!(fib.remove(p("0.0.0.0/0")), Some(1));
        assert_eq!(fib.lookup(a("11.0.0.1")), None);
        for prefix in ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25", "10.1.2.129/32"] {
            fib.remove(p(prefix)).unwrap();
        }
        assert!(fib.is_empty());
        assert_eq!(fib.node_count(), 0, "empty nodes are freed");
        assert_eq!(fib.lookup(a("10.1.2.129")), None);
    }

    #[test]
    fn replacing_a_route_changes_its_value_only() {
        let mut fib = Fib::new();
        fib.insert(p("192.0.2.0/24"), 1).unwrap();
        fib.insert(p("192.0.2.64/26"), 2).unwrap();
        assert_eq!(fib.insert(p("192.0.2.0/24"), 7).unwrap(), Some(1));
        assert_eq!(fib.lookup(a("192.0.2.1")), Some((7, 24)));
        assert_eq!(fib.lookup(a("192.0.2.65")), Some((2, 26)));
    }

    #[test]
    fn refuses_bad_prefixes() {
        assert_eq!(Prefix::new(1, 24), Err(FibError::NotCanonical));
        assert_eq!(Prefix::new(0, 33), Err(FibError::BadLength));
        assert_eq!(Fib::new().insert(p("1.0.0.0/8"), MAX_NEXT_HOP + 1), Err(FibError::BadNextHop));
    }

    #[test]
    fn matches_the_reference_on_random_tables_with_churn() {
        for seed in 1..=8u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut fib = Fib::new();
            let mut naive = Naive(Vec::new());
            // Few top bits so that prefixes overlap a lot.
            let base = |rng: &mut Rng| ((rng.next() as u32) & 0x0307_ffff) | 0x0a00_0000;
            for step in 0..3000 {
                let len = [0, 8, 12, 15, 16, 17, 20, 23, 24, 25, 28, 31, 32][(rng.next() % 13) as usize];
                let prefix = Prefix::new(base(&mut rng) & mask(len), len).unwrap();
                if rng.next().is_multiple_of(4) && !naive.0.is_empty() {
                    let victim = naive.0.swap_remove((rng.next() as usize) % naive.0.len()).0;
                    assert!(fib.remove(victim).is_some());
                } else {
                    let nh = (rng.next() % 1000) as u32;
                    fib.insert(prefix, nh).unwrap();
                    naive.0.retain(|(q, _)| *q != prefix);
                    naive.0.push((prefix, nh));
                }
                if step % 50 == 0 {
                    for _ in 0..200 {
                        let addr = base(&mut rng);
                        assert_eq!(
                            fib.lookup(addr),
                            naive.lookup(addr),
                            "seed {seed} step {step} addr {addr:#x}"
                        );
                    }
                }
            }
            assert_eq!(fib.len(), naive.0.len());
            for (prefix, _) in core::mem::take(&mut naive.0) {
                fib.remove(prefix).unwrap();
            }
            assert_eq!(fib.node_count(), 0, "seed {seed}: nodes left after every route was removed");
        }
    }
}
