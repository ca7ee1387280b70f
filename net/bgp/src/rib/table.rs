//! The ordered table behind the Adj-RIBs-In and the Loc-RIB: prefix to a small packed value,
//! read in key order by [`super::RibCursor`].
//!
//! ```text
//!  firsts: [k0,      k40,      k168 ]   the first key of each leaf, searched by bisection
//!  leaves: [keys[..] keys[..]  keys[..]]  each sorted, at most LEAF_MAX, never empty
//!          [vals[..] vals[..]  vals[..]]  the values beside their keys
//! ```
//!
//! Two levels, each a sorted array searched by bisection: a lookup compares about 20 keys held
//! side by side, where a B-tree of 11-key nodes compares some 50 in nodes spread over memory.
//! Keys and values sit in separate arrays with no padding between them (a 7-byte value costs
//! 7 bytes), and a key added after the last one starts a new leaf when the last is full rather
//! than splitting it, so a table loaded in order (a peer's initial table usually is) has full
//! leaves. A key inserted elsewhere into a full leaf splits it in two halves.
//!
//! Bounds and costs: `len` entries; a leaf holds at most [`LEAF_MAX`]; an insertion or removal
//! moves at most `LEAF_MAX` entries of its leaf and, when a leaf is added or removed, one slot
//! per leaf of `firsts` and `leaves` (a table of a million prefixes has about 8,000 leaves).
//! A leaf emptied is dropped, a leaf that falls to a quarter of its capacity gives half of it
//! back, and an emptied table frees everything.

use alloc::vec::Vec;

/// Most entries in one leaf.
pub(crate) const LEAF_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Leaf<K, V> {
    keys: Vec<K>,
    vals: Vec<V>,
}

impl<K, V> Leaf<K, V> {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Gives capacity back when at most a quarter of it is used.
    fn shrink(&mut self) {
        if self.keys.len() * 4 <= self.keys.capacity() {
            self.keys.shrink_to(self.keys.len() * 2);
            self.vals.shrink_to(self.vals.len() * 2);
        }
    }
}

/// An ordered map from `K` to `V` (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table<K, V> {
    firsts: Vec<K>,
    leaves: Vec<Leaf<K, V>>,
    len: usize,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { firsts: Vec::new(), leaves: Vec::new(), len: 0 }
    }
}

impl<K: Ord + Copy, V> Table<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        if self.is_past_last(key) {
            return None;
        }
        let leaf = self.leaves.get(self.leaf_of(key))?;
        let at = leaf.keys.binary_search(key).ok()?;
        leaf.vals.get(at)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.is_past_last(key) {
            return None;
        }
        let index = self.leaf_of(key);
        let leaf = self.leaves.get_mut(index)?;
        let at = leaf.keys.binary_search(key).ok()?;
        leaf.vals.get_mut(at)
    }

    /// The least key.
    pub fn first_key(&self) -> Option<K> {
        self.firsts.first().copied()
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.is_past_last(&key) {
            // Loading in order: after the last key, no search.
            self.len += 1;
            match self.leaves.last_mut() {
                Some(leaf) if leaf.len() < LEAF_MAX => {
                    leaf.keys.push(key);
                    leaf.vals.push(value);
                }
                _ => {
                    self.firsts.push(key);
                    self.leaves.push(Leaf { keys: alloc::vec![key], vals: alloc::vec![value] });
                }
            }
            return None;
        }
        let index = self.leaf_of(&key);
        let last = index + 1 == self.leaves.len();
        let Some(leaf) = self.leaves.get_mut(index) else {
            self.firsts.push(key);
            self.leaves.push(Leaf { keys: alloc::vec![key], vals: alloc::vec![value] });
            self.len = 1;
            return None;
        };
        let at = match leaf.keys.binary_search(&key) {
            Ok(at) => return leaf.vals.get_mut(at).map(|slot| core::mem::replace(slot, value)),
            Err(at) => at,
        };
        self.len += 1;
        if leaf.len() < LEAF_MAX {
            leaf.keys.insert(at, key);
            leaf.vals.insert(at, value);
            if at == 0 {
                if let Some(first) = self.firsts.get_mut(index) {
                    *first = key;
                }
            }
            return None;
        }
        if at == leaf.len() && last {
            // After the last key of a full last leaf: a new leaf (loading in order fills each).
            self.firsts.push(key);
            self.leaves.push(Leaf { keys: alloc::vec![key], vals: alloc::vec![value] });
            return None;
        }
        let half = LEAF_MAX / 2;
        let right = Leaf { keys: leaf.keys.split_off(half), vals: leaf.vals.split_off(half) };
        let (target, at) = if at <= half { (index, at) } else { (index + 1, at - half) };
        let right_first = right.keys.first().copied();
        self.leaves.insert(index + 1, right);
        if let Some(first) = right_first {
            self.firsts.insert(index + 1, first);
        }
        if let Some(leaf) = self.leaves.get_mut(target) {
            leaf.keys.insert(at, key);
            leaf.vals.insert(at, value);
            if at == 0 {
                if let Some(first) = self.firsts.get_mut(target) {
                    *first = key;
                }
            }
        }
        None
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let index = self.leaf_of(key);
        let leaf = self.leaves.get_mut(index)?;
        let at = leaf.keys.binary_search(key).ok()?;
        leaf.keys.remove(at);
        let value = leaf.vals.remove(at);
        self.len -= 1;
        if self.len == 0 {
            *self = Table::default(); // memory back whole (a peer gone from an empty box)
        } else if let Some(first) = leaf.keys.first().copied() {
            leaf.shrink();
            if let Some(slot) = self.firsts.get_mut(index) {
                *slot = first;
            }
        } else {
            self.leaves.remove(index);
            self.firsts.remove(index);
        }
        Some(value)
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.leaves.iter().flat_map(|leaf| leaf.keys.iter().zip(leaf.vals.iter()))
    }

    /// The entries after `after` (all of them for `None`), in key order.
    pub fn iter_after(&self, after: Option<K>) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (index, at) = match after {
            None => (0, 0),
            Some(key) => {
                let index = self.leaf_of(&key);
                let at = self.leaves.get(index).map_or(0, |leaf| leaf.keys.partition_point(|k| *k <= key));
                (index, at)
            }
        };
        let leaves = self.leaves.get(index..).unwrap_or_default();
        leaves.iter().enumerate().flat_map(move |(n, leaf)| {
            let skip = if n == 0 { at } else { 0 };
            let keys = leaf.keys.get(skip..).unwrap_or_default();
            let vals = leaf.vals.get(skip..).unwrap_or_default();
            keys.iter().zip(vals)
        })
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.leaves.iter_mut().flat_map(|leaf| leaf.vals.iter_mut())
    }

    /// Whether `key` is above every key held (false for an empty table).
    fn is_past_last(&self, key: &K) -> bool {
        self.leaves.last().and_then(|leaf| leaf.keys.last()).is_some_and(|last| last < key)
    }

    /// The leaf that holds `key` or would: the last whose first key is not above it (leaf 0
    /// for a key below every other).
    fn leaf_of(&self, key: &K) -> usize {
        self.firsts.partition_point(|first| first <= key).saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    /// Random inserts, replacements and removals, in order and out of it, against a BTreeMap.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut rng = Csprng::seed_from_u64(1);
        let mut next = move |bound: u64| rng.next_u64() % bound;
        let mut table: Table<u32, u64> = Table::default();
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        for round in 0..40_000u64 {
            let key = match round / 10_000 {
                0 => round as u32,            // in order: full leaves
                1 => next(20_000) as u32,     // anywhere: splits
                _ => next(25_000) as u32 * 2, // churn
            };
            if round >= 20_000 && next(2) == 0 {
                assert_eq!(table.remove(&key), model.remove(&key), "remove {key}");
            } else {
                assert_eq!(table.insert(key, round), model.insert(key, round), "insert {key}");
            }
            assert_eq!(table.len(), model.len());
            if round % 997 == 0 {
                assert!(table.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
                assert!(table.leaves.iter().all(|l| !l.keys.is_empty() && l.len() <= LEAF_MAX));
                assert!(table.firsts.iter().zip(&table.leaves).all(|(f, l)| l.keys.first() == Some(f)));
                let probe = next(40_000) as u32;
                assert_eq!(table.get(&probe), model.get(&probe));
                let after: Vec<u32> = table.iter_after(Some(probe)).map(|(k, _)| *k).take(300).collect();
                let want: Vec<u32> = model.range(probe + 1..).map(|(k, _)| *k).take(300).collect();
                assert_eq!(after, want, "after {probe}");
                assert_eq!(table.first_key(), model.keys().next().copied());
            }
        }
        if let Some(v) = table.get_mut(&2) {
            *v = 7;
        }
        if let Some(v) = model.get_mut(&2) {
            *v = 7;
        }
        assert_eq!(table.get(&2), model.get(&2));
        for v in table.values_mut() {
            *v = 1;
        }
        assert!(table.iter().all(|(_, v)| *v == 1));
        let keys: Vec<u32> = model.keys().copied().collect();
        for key in keys {
            assert!(table.remove(&key).is_some());
        }
        assert!(table.is_empty());
        assert_eq!(table, Table::default(), "an emptied table holds no memory");
    }

    #[test]
    fn loading_in_order_fills_every_leaf() {
        let mut table: Table<u32, u8> = Table::default();
        for key in 0..(LEAF_MAX as u32 * 10) {
            table.insert(key, 0);
        }
        assert_eq!(table.leaves.len(), 10);
        assert!(table.leaves.iter().all(|l| l.len() == LEAF_MAX));
        assert_eq!(table.iter_after(None).count(), LEAF_MAX * 10);
        assert_eq!(table.iter_after(Some(LEAF_MAX as u32 * 10)).count(), 0);
    }
}
