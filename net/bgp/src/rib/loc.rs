//! Loc-RIB: the best route to each prefix, chosen by [`super::decision`], with the reason it
//! won. 8 bytes of value per prefix: the peer it came from, its accepted attribute set (a
//! reference the Loc-RIB holds) and the reason.
//!
//! Bound: one entry per prefix that has an eligible route in some Adj-RIB-In.

use alloc::collections::BTreeMap;

use super::attr_store::AttrId;
use super::decision::BestReason;
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

#[derive(Debug)]
pub struct LocRib<P> {
    pub(crate) routes: BTreeMap<P, LocRoute>,
}

impl<P> Default for LocRib<P> {
    fn default() -> Self {
        LocRib { routes: BTreeMap::new() }
    }
}

impl<P: Ord + Copy> LocRib<P> {
    pub fn get(&self, prefix: &P) -> Option<&LocRoute> {
        self.routes.get(prefix)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
