//! Loc-RIB: the best route to each prefix, chosen by [`super::decision`], with the reason it
//! won. 7 bytes of value per prefix, packed with alignment 1: the peer it came from, its
//! accepted attribute set (a reference the Loc-RIB holds) and the reason.
//!
//! Bound: one entry per prefix that has an eligible route in some Adj-RIB-In.

use alloc::vec::Vec;

use super::attr_store::AttrId;
use super::cursor::RibCursor;
use super::decision::BestReason;
use super::table::Table;
use super::PeerId;

/// The best route to one prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocRoute {
    pub peer: PeerId,
    pub attrs: AttrId,
    pub reason: BestReason,
}

impl LocRoute {
    /// Same route (peer and attributes), whatever the reason.
    pub fn same_route(&self, other: &LocRoute) -> bool {
        self.peer == other.peer && self.attrs == other.attrs
    }
}

/// [`LocRoute`] as stored: 7 bytes, alignment 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedLocRoute {
    attrs: [u8; 4],
    peer: [u8; 2],
    reason: BestReason,
}

impl PackedLocRoute {
    fn pack(route: &LocRoute) -> PackedLocRoute {
        PackedLocRoute { attrs: route.attrs.to_bytes(), peer: route.peer.to_bytes(), reason: route.reason }
    }

    fn unpack(&self) -> Option<LocRoute> {
        Some(LocRoute {
            peer: PeerId::from_bytes(self.peer),
            attrs: AttrId::from_bytes(self.attrs)?,
            reason: self.reason,
        })
    }
}

/// What [`LocRib::set`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LocSet {
    /// The best route is the same as before (its reason may have been updated).
    Unchanged,
    /// The best route changed; this one (if any) was replaced.
    Replaced(Option<LocRoute>),
}

#[derive(Debug)]
pub struct LocRib<P> {
    pub(crate) routes: Table<P, PackedLocRoute>,
}

impl<P> Default for LocRib<P> {
    fn default() -> Self {
        LocRib { routes: Table::default() }
    }
}

impl<P: Ord + Copy> LocRib<P> {
    pub fn get(&self, prefix: &P) -> Option<LocRoute> {
        self.routes.get(prefix).and_then(PackedLocRoute::unpack)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Up to `max` routes after `cursor` (see [`RibCursor`]).
    pub fn slice(&self, cursor: &mut RibCursor<P>, max: usize) -> Vec<(P, LocRoute)> {
        let mut out = Vec::with_capacity(max.min(self.len()));
        self.page(cursor, max, &mut out, |prefix, route| Some((prefix, route)));
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
        mut each: impl FnMut(P, LocRoute) -> Option<T>,
    ) {
        cursor.next_page(&self.routes, max, out, |prefix, packed| each(prefix, packed.unpack()?));
    }

    /// Every route, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (P, LocRoute)> + '_ {
        self.routes.iter().filter_map(|(prefix, r)| Some((*prefix, r.unpack()?)))
    }

    /// Makes `new` the best route to `prefix` (`None`: there is none), in one search of the
    /// table. The same route (peer and attributes) as before only has its reason updated and
    /// counts as unchanged.
    pub(crate) fn set(&mut self, prefix: P, new: Option<LocRoute>) -> LocSet {
        let Some(slot) = self.routes.get_mut(&prefix) else {
            if let Some(new) = new {
                self.routes.insert(prefix, PackedLocRoute::pack(&new));
                return LocSet::Replaced(None);
            }
            return LocSet::Unchanged;
        };
        let old = slot.unpack();
        let Some(new) = new else {
            self.routes.remove(&prefix);
            return LocSet::Replaced(old);
        };
        let same = old.is_some_and(|old| old.same_route(&new));
        *slot = PackedLocRoute::pack(&new);
        if same {
            LocSet::Unchanged
        } else {
            LocSet::Replaced(old)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::attr_store::AttrStore;
    use super::super::decision::Step;
    use super::*;

    #[test]
    fn set_reports_changes_and_updates_a_reason_in_place() {
        let mut store = AttrStore::new();
        let (a, b) = (store.intern(1u8), store.intern(2u8));
        let route = |attrs, reason| LocRoute { peer: PeerId::from_bytes([0, 1]), attrs, reason };
        let mut loc = LocRib::default();
        assert_eq!(loc.set(7u32, None), LocSet::Unchanged);
        assert_eq!(loc.set(7u32, Some(route(a, BestReason::OnlyRoute))), LocSet::Replaced(None));
        let tie = route(a, BestReason::Step(Step::Med));
        assert_eq!(loc.set(7, Some(tie)), LocSet::Unchanged, "same route");
        assert_eq!(loc.get(&7), Some(tie), "its reason updated");
        assert_eq!(loc.set(7, Some(route(b, BestReason::OnlyRoute))), LocSet::Replaced(Some(tie)));
        assert_eq!(loc.set(7, None), LocSet::Replaced(Some(route(b, BestReason::OnlyRoute))));
        assert!(loc.is_empty());
    }

    #[test]
    fn packed_route_is_seven_bytes_and_round_trips() {
        assert_eq!(core::mem::size_of::<PackedLocRoute>(), 7);
        assert_eq!(core::mem::align_of::<PackedLocRoute>(), 1);
        let mut store = AttrStore::new();
        let _skip = store.intern(0u8);
        let attrs = store.intern(1u8);
        for reason in [BestReason::OnlyRoute, BestReason::Tie, BestReason::Step(Step::PeerAddr)] {
            let route = LocRoute { peer: PeerId::from_bytes([1, 2]), attrs, reason };
            assert_eq!(PackedLocRoute::pack(&route).unpack(), Some(route));
        }
    }
}
