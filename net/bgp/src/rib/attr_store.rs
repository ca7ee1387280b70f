//! Interned path attributes: every distinct attribute set is stored once, however many routes
//! carry it, and freed when the last route using it goes.
//!
//! ```text
//!  index: BTreeMap<hash, AttrId>  ──► slot[id] { attrs, refs, hash, next ─► slot[..] (same hash) }
//! ```
//!
//! A route holds an [`AttrId`] (4 bytes) instead of its attributes; the store keeps a
//! reference count per set. [`AttrStore::intern`] takes a set and returns the id of an equal
//! set already stored (one more reference) or of a new slot; [`AttrStore::release`] drops one
//! reference and frees the slot, and its attributes, at zero. Freed slots are reused before the
//! slot vector grows, so the store's size follows the number of distinct sets alive, never the
//! number of routes. Sets with the same 64-bit hash are chained through their slots.
//!
//! Bounds: at most `u32::MAX - 1` distinct sets (an id is a `u32`); a set that reaches
//! `u32::MAX` references is pinned (never freed) rather than counted past the bound.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash};

use core::num::NonZeroU32;
use foldhash::quality::FixedState;

/// A handle on one interned attribute set. Valid while its holder owns a reference. Non-zero
/// inside, so that `Option<AttrId>` is 4 bytes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrId(NonZeroU32);

impl AttrId {
    /// The slot number, for display (`show route` prints it as the set's name).
    pub const fn index(self) -> u32 {
        self.0.get() - 1
    }

    /// The id as 4 bytes of alignment 1, for packed table entries; never all zero.
    pub(crate) fn to_bytes(self) -> [u8; 4] {
        self.0.get().to_ne_bytes()
    }

    /// The id from [`AttrId::to_bytes`]; `None` for all zero bytes.
    pub(crate) fn from_bytes(bytes: [u8; 4]) -> Option<AttrId> {
        NonZeroU32::new(u32::from_ne_bytes(bytes)).map(AttrId)
    }

    fn from_slot(slot: u32) -> AttrId {
        AttrId(NonZeroU32::MIN.saturating_add(slot))
    }

    fn slot(self) -> usize {
        self.index() as usize
    }
}

/// The interning table. `A` is the attribute set type (the RIB uses
/// [`crate::packet::attribute::PathAttributes`]).
#[derive(Debug)]
pub struct AttrStore<A> {
    slots: Vec<Slot<A>>,
    /// Free slot numbers, reused last-freed first. Bounded by `slots.len()`.
    free: Vec<u32>,
    /// Hash -> first slot with that hash; the rest are chained by `Slot::next`.
    index: BTreeMap<u64, u32>,
    live: usize,
    /// The hash's key ([`AttrStore::with_seed`]).
    seed: u64,
}

#[derive(Debug)]
struct Slot<A> {
    attrs: Option<A>,
    refs: u32,
    hash: u64,
    next: Option<u32>,
}

const PINNED: u32 = u32::MAX;

impl<A: Hash + Eq> Default for AttrStore<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Hash + Eq> AttrStore<A> {
    /// A store whose hash has the fixed seed 0 (tests; see [`AttrStore::with_seed`]).
    pub const fn new() -> Self {
        Self::with_seed(0)
    }

    /// A store hashing with `seed`: take it from a random source once per process, so that
    /// peers cannot precompute attribute sets that collide.
    pub const fn with_seed(seed: u64) -> Self {
        AttrStore { slots: Vec::new(), free: Vec::new(), index: BTreeMap::new(), live: 0, seed }
    }

    /// Returns the id of a set equal to `attrs`, taking one reference to it; stores `attrs` if
    /// no equal set is alive.
    pub fn intern(&mut self, attrs: A) -> AttrId {
        let hash = hash_of(self.seed, &attrs);
        let mut cursor = self.index.get(&hash).copied();
        while let Some(id) = cursor {
            let Some(slot) = self.slots.get_mut(id as usize) else { break };
            if slot.attrs.as_ref() == Some(&attrs) {
                slot.refs = slot.refs.saturating_add(1);
                return AttrId::from_slot(id);
            }
            cursor = slot.next;
        }
        let head = self.index.get(&hash).copied();
        let slot = Slot { attrs: Some(attrs), refs: 1, hash, next: head };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(old) = self.slots.get_mut(id as usize) {
                    *old = slot;
                }
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, id);
        self.live += 1;
        AttrId::from_slot(id)
    }

    /// Takes one more reference to `id` (a route copied into a second table).
    pub fn retain(&mut self, id: AttrId) {
        if let Some(slot) = self.live_slot_mut(id) {
            slot.refs = slot.refs.saturating_add(1);
        }
    }

    /// Drops one reference to `id`; the set is freed when none is left. A pinned set (one that
    /// reached `u32::MAX` references) is never freed.
    pub fn release(&mut self, id: AttrId) {
        let Some(slot) = self.live_slot_mut(id) else { return };
        if slot.refs == PINNED {
            return;
        }
        slot.refs -= 1;
        if slot.refs > 0 {
            return;
        }
        let hash = slot.hash;
        let next = slot.next.take();
        slot.attrs = None;
        self.unlink(hash, id.index(), next);
        self.free.push(id.index());
        self.live -= 1;
        if self.live == 0 {
            // Give the memory back whole when the last set goes (a peer flap on an empty box).
            self.slots = Vec::new();
            self.free = Vec::new();
            self.index = BTreeMap::new(); // an emptied B-tree keeps its root leaf
        } else if id.slot() + 1 == self.slots.len() {
            self.trim();
        }
    }

    /// The attributes behind `id`; `None` only for an id that was already freed.
    pub fn get(&self, id: AttrId) -> Option<&A> {
        self.slots.get(id.slot()).and_then(|slot| slot.attrs.as_ref())
    }

    /// How many references `id` has (0 once freed).
    pub fn refs(&self, id: AttrId) -> u32 {
        self.slots.get(id.slot()).filter(|slot| slot.attrs.is_some()).map_or(0, |slot| slot.refs)
    }

    /// The number of distinct sets alive.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Drops the free slots at the end of the slot vector, and halves its capacity when it is
    /// twice what is used: the sets a session added and took away again (its export sets) give
    /// their memory back, not only their attributes.
    fn trim(&mut self) {
        while self.slots.last().is_some_and(|slot| slot.attrs.is_none()) {
            self.slots.pop();
        }
        let len = self.slots.len();
        self.free.retain(|&slot| (slot as usize) < len);
        if self.slots.capacity() >= 2 * len {
            self.slots.shrink_to_fit();
        }
        if self.free.capacity() >= 2 * self.free.len() {
            self.free.shrink_to_fit();
        }
    }

    fn live_slot_mut(&mut self, id: AttrId) -> Option<&mut Slot<A>> {
        self.slots.get_mut(id.slot()).filter(|slot| slot.attrs.is_some())
    }

    /// Removes slot `id` from the chain of `hash`; `next` is what followed it.
    fn unlink(&mut self, hash: u64, id: u32, next: Option<u32>) {
        if self.index.get(&hash) == Some(&id) {
            match next {
                Some(next) => {
                    self.index.insert(hash, next);
                }
                None => {
                    self.index.remove(&hash);
                }
            }
            return;
        }
        let mut cursor = self.index.get(&hash).copied();
        while let Some(at) = cursor {
            let Some(slot) = self.slots.get_mut(at as usize) else { return };
            if slot.next == Some(id) {
                slot.next = next;
                return;
            }
            cursor = slot.next;
        }
    }
}

/// The hash of an attribute set under the store's seed: foldhash (a fast, non-cryptographic
/// hash that takes a seed), keyed per process.
///
/// Hash flooding: the attribute sets come from peers, and through them from anyone whose routes
/// they pass on (communities, AS paths), so an unkeyed hash would let a sender precompute many
/// sets with one 64-bit hash and make each `intern` of them walk a long chain. With a secret
/// seed such sets cannot be computed offline, and a collision costs a chain walk, never
/// correctness (sets are compared whole). The index is a B-tree on the hash, so a flood of
/// distinct hashes costs `log n`, not a degraded bucket.
fn hash_of<A: Hash>(seed: u64, attrs: &A) -> u64 {
    FixedState::with_seed(seed).hash_one(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::Hasher;

    /// Every value hashes the same: forces the collision chain.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Colliding(u32);

    impl Hash for Colliding {
        fn hash<H: Hasher>(&self, state: &mut H) {
            state.write_u8(7);
        }
    }

    #[test]
    fn equal_sets_share_one_slot() {
        let mut store = AttrStore::new();
        let a = store.intern(alloc::vec![1u32, 2, 3]);
        let b = store.intern(alloc::vec![1u32, 2, 3]);
        let c = store.intern(alloc::vec![4u32]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(store.len(), 2);
        assert_eq!(store.refs(a), 2);
        assert_eq!(store.get(c), Some(&alloc::vec![4u32]));
    }

    #[test]
    fn last_release_frees_and_slot_is_reused() {
        let mut store = AttrStore::new();
        let a = store.intern(10u64);
        let b = store.intern(20u64);
        store.retain(a);
        store.release(a);
        assert_eq!(store.refs(a), 1);
        store.release(a);
        assert_eq!(store.refs(a), 0);
        assert_eq!(store.get(a), None);
        assert_eq!(store.len(), 1);
        let c = store.intern(30u64);
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(store.get(b), Some(&20));
        // Interning an old value again must not find the freed entry.
        let d = store.intern(10u64);
        assert_ne!(d, c);
        assert_eq!(store.get(d), Some(&10));
    }

    #[test]
    fn collisions_chain_and_unlink_in_any_order() {
        let mut store = AttrStore::new();
        let ids: Vec<AttrId> = (0..5).map(|n| store.intern(Colliding(n))).collect();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(store.intern(Colliding(n as u32)), *id);
            store.release(*id);
        }
        // Free the middle, the head and the tail of the chain; the rest stay findable.
        for n in [2usize, 4, 0] {
            store.release(ids[n]);
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.intern(Colliding(1)), ids[1]);
        assert_eq!(store.intern(Colliding(3)), ids[3]);
        let fresh = store.intern(Colliding(9));
        assert_eq!(store.get(fresh), Some(&Colliding(9)));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn empty_store_gives_its_memory_back() {
        let mut store = AttrStore::new();
        let ids: Vec<AttrId> = (0..100u32).map(|n| store.intern(n)).collect();
        for id in ids {
            store.release(id);
        }
        assert!(store.is_empty());
        assert_eq!(store.slots.capacity(), 0);
        assert!(store.index.is_empty());
    }

    #[test]
    fn sets_freed_at_the_end_give_their_slots_back() {
        let mut store = AttrStore::new();
        let kept: Vec<AttrId> = (0..16u32).map(|n| store.intern(n)).collect();
        store.slots.shrink_to_fit();
        let capacity = store.slots.capacity();
        let added: Vec<AttrId> = (100..116u32).map(|n| store.intern(n)).collect();
        assert!(store.slots.capacity() > capacity);
        // Freed in any order: the trailing run goes once its last member is free.
        for id in added.iter().rev().skip(1).chain(added.last()) {
            store.release(*id);
        }
        assert_eq!(store.slots.len(), 16);
        assert_eq!(store.slots.capacity(), capacity);
        assert!(store.free.is_empty());
        // A hole in the middle stays a free slot and is reused.
        store.release(kept[3]);
        assert_eq!(store.intern(500), kept[3]);
        assert_eq!(store.get(kept[15]), Some(&15));
    }

    #[test]
    fn the_seed_keys_the_hash() {
        let set = alloc::vec![1u32, 2, 3];
        assert_eq!(hash_of(7, &set), hash_of(7, &set));
        assert_ne!(hash_of(7, &set), hash_of(8, &set), "another seed, another hash");
        let mut store = AttrStore::with_seed(0x5eed);
        let a = store.intern(set.clone());
        assert_eq!(store.intern(set), a);
    }

    #[test]
    fn stale_ids_are_ignored() {
        let mut store = AttrStore::new();
        let a = store.intern(1u8);
        let _keep = store.intern(2u8);
        store.release(a);
        store.release(a);
        store.retain(a);
        assert_eq!(store.refs(a), 0);
        assert_eq!(store.len(), 1);
    }
}
