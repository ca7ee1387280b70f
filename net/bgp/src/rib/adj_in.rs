//! Adj-RIB-In: the routes one peer announced, kept as received (pre-policy, what BMP reports
//! with the L flag clear) beside the result of import policy (post-policy).
//!
//! One entry per prefix in a [`Table`], 9 bytes of value packed with alignment 1 (with an IPv4
//! key, 17 bytes a route in a full leaf): the received attribute set, the accepted one (none when
//! import policy rejected the route or it failed a loop check; often the same id as the
//! received set, shared), and a stale mark for graceful restart. The attribute sets themselves
//! live once in the RIB's [`super::AttrStore`]; this table holds references to them, which its
//! owner (the [`super::Rib`]) takes and releases.
//!
//! Bound: one entry per prefix the peer announced, capped by the peer's
//! [`crate::policy::PrefixLimit`] when it has one (the RIB refuses new prefixes beyond it).

use alloc::vec::Vec;

use super::attr_store::AttrId;
use super::cursor::RibCursor;
use super::table::Table;

/// One route as a peer announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InRoute {
    /// The attributes as received.
    pub received: AttrId,
    /// The attributes after import policy; `None` when the route is not usable.
    pub accepted: Option<AttrId>,
    /// Marked by graceful restart; cleared when the peer announces the prefix again.
    pub stale: bool,
}

/// [`InRoute`] as stored: 9 bytes, alignment 1; an accepted id of 0 is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedInRoute {
    received: [u8; 4],
    accepted: [u8; 4],
    stale: bool,
}

impl PackedInRoute {
    fn pack(route: &InRoute) -> PackedInRoute {
        PackedInRoute {
            received: route.received.to_bytes(),
            accepted: route.accepted.map_or([0; 4], AttrId::to_bytes),
            stale: route.stale,
        }
    }

    fn unpack(&self) -> Option<InRoute> {
        Some(InRoute {
            received: AttrId::from_bytes(self.received)?,
            accepted: AttrId::from_bytes(self.accepted),
            stale: self.stale,
        })
    }
}

/// One peer's Adj-RIB-In, ordered by prefix.
#[derive(Debug)]
pub struct AdjRibIn<P> {
    routes: Table<P, PackedInRoute>,
    accepted: usize,
    stale: usize,
}

impl<P> Default for AdjRibIn<P> {
    fn default() -> Self {
        AdjRibIn { routes: Table::default(), accepted: 0, stale: 0 }
    }
}

impl<P: Ord + Copy> AdjRibIn<P> {
    pub fn get(&self, prefix: &P) -> Option<InRoute> {
        self.routes.get(prefix).and_then(PackedInRoute::unpack)
    }

    /// Prefixes held (pre-policy).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Prefixes accepted by import policy.
    pub fn accepted_len(&self) -> usize {
        self.accepted
    }

    /// Prefixes marked stale and not yet announced again.
    pub fn stale_len(&self) -> usize {
        self.stale
    }

    /// The first prefix held.
    pub fn first(&self) -> Option<P> {
        self.routes.first_key()
    }

    /// Up to `max` routes after `cursor` that `keep` accepts (see [`RibCursor`]).
    pub fn slice(
        &self,
        cursor: &mut RibCursor<P>,
        max: usize,
        keep: impl Fn(&InRoute) -> bool,
    ) -> Vec<(P, InRoute)> {
        let mut out = Vec::with_capacity(max.min(self.len()));
        self.page(cursor, max, &mut out, |prefix, route| keep(&route).then_some((prefix, route)));
        out
    }

    /// One pass over up to `max` routes after `cursor` (see [`RibCursor::next_page`]): each
    /// route is unpacked once and given to `each`, and what it returns (`None`: not kept) is
    /// pushed onto `out`; every route looked at counts towards `max`.
    pub(crate) fn page<T>(
        &self,
        cursor: &mut RibCursor<P>,
        max: usize,
        out: &mut Vec<T>,
        mut each: impl FnMut(P, InRoute) -> Option<T>,
    ) {
        cursor.next_page(&self.routes, max, out, |prefix, packed| each(prefix, packed.unpack()?));
    }

    /// Stores `route`, returning the route it replaces.
    pub(crate) fn insert(&mut self, prefix: P, route: InRoute) -> Option<InRoute> {
        self.count(&route);
        let old = self.routes.insert(prefix, PackedInRoute::pack(&route)).and_then(|old| old.unpack());
        if let Some(old) = &old {
            self.uncount(old);
        }
        old
    }

    pub(crate) fn remove(&mut self, prefix: &P) -> Option<InRoute> {
        let old = self.routes.remove(prefix)?.unpack()?;
        self.uncount(&old);
        Some(old)
    }

    /// Marks every route stale; returns how many.
    pub(crate) fn mark_all_stale(&mut self) -> usize {
        for route in self.routes.values_mut() {
            route.stale = true;
        }
        self.stale = self.routes.len();
        self.stale
    }

    /// Replaces the accepted set of `prefix`, returning the old one.
    pub(crate) fn set_accepted(&mut self, prefix: &P, accepted: Option<AttrId>) -> Option<AttrId> {
        let packed = self.routes.get_mut(prefix)?;
        let old = AttrId::from_bytes(packed.accepted);
        packed.accepted = accepted.map_or([0; 4], AttrId::to_bytes);
        match (old.is_some(), accepted.is_some()) {
            (false, true) => self.accepted += 1,
            (true, false) => self.accepted -= 1,
            _ => {}
        }
        old
    }

    fn count(&mut self, route: &InRoute) {
        self.accepted += usize::from(route.accepted.is_some());
        self.stale += usize::from(route.stale);
    }

    fn uncount(&mut self, route: &InRoute) {
        self.accepted -= usize::from(route.accepted.is_some());
        self.stale -= usize::from(route.stale);
    }
}

#[cfg(test)]
mod tests {
    use super::super::attr_store::AttrStore;
    use super::*;

    #[test]
    fn packed_route_is_nine_bytes_and_round_trips() {
        assert_eq!(core::mem::size_of::<PackedInRoute>(), 9);
        assert_eq!(core::mem::align_of::<PackedInRoute>(), 1);
        let mut store = AttrStore::new();
        let a = store.intern(1u8);
        let b = store.intern(2u8);
        for route in [
            InRoute { received: a, accepted: Some(b), stale: true },
            InRoute { received: b, accepted: None, stale: false },
        ] {
            assert_eq!(PackedInRoute::pack(&route).unpack(), Some(route));
        }
    }

    #[test]
    fn counters_follow_inserts_removals_and_stale_marks() {
        let mut store = AttrStore::new();
        let a = store.intern(1u8);
        let mut table = AdjRibIn::default();
        table.insert(1u32, InRoute { received: a, accepted: Some(a), stale: false });
        table.insert(2u32, InRoute { received: a, accepted: None, stale: false });
        assert_eq!((table.len(), table.accepted_len(), table.stale_len()), (2, 1, 0));
        assert_eq!(table.mark_all_stale(), 2);
        let old = table.insert(1u32, InRoute { received: a, accepted: None, stale: false });
        assert_eq!(old.map(|r| r.stale), Some(true));
        assert_eq!((table.accepted_len(), table.stale_len()), (0, 1));
        assert_eq!(table.set_accepted(&2, Some(a)), None);
        assert_eq!(table.accepted_len(), 1);
        assert!(table.remove(&2).is_some());
        assert_eq!((table.len(), table.accepted_len(), table.stale_len()), (1, 0, 0));
        let mut cursor = RibCursor::new();
        assert_eq!(table.slice(&mut cursor, 10, |_| true).len(), 1);
    }
}
