//! Adj-RIB-In: the routes one peer announced, kept as received (pre-policy, what BMP reports
//! with the L flag clear) beside the result of import policy (post-policy).
//!
//! One entry per prefix, 9 bytes of value: the received attribute set, the accepted one (`None`
//! when import policy rejected the route or it failed a loop check; often the same id as the
//! received set, shared), and a stale mark for graceful restart. The attribute sets themselves
//! live once in the RIB's [`super::AttrStore`]; this table holds references to them, which its
//! owner (the [`super::Rib`]) takes and releases.
//!
//! Bound: one entry per prefix the peer announced, capped by the peer's
//! [`crate::policy::PrefixLimit`] when it has one (the RIB refuses new prefixes beyond it).

use alloc::collections::BTreeMap;

use super::attr_store::AttrId;

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

/// One peer's Adj-RIB-In, ordered by prefix.
#[derive(Debug)]
pub struct AdjRibIn<P> {
    pub(crate) routes: BTreeMap<P, InRoute>,
    accepted: usize,
    stale: usize,
}

impl<P> Default for AdjRibIn<P> {
    fn default() -> Self {
        AdjRibIn { routes: BTreeMap::new(), accepted: 0, stale: 0 }
    }
}

impl<P: Ord + Copy> AdjRibIn<P> {
    pub fn get(&self, prefix: &P) -> Option<&InRoute> {
        self.routes.get(prefix)
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

    /// Stores `route`, returning the route it replaces.
    pub(crate) fn insert(&mut self, prefix: P, route: InRoute) -> Option<InRoute> {
        self.count(&route);
        let old = self.routes.insert(prefix, route);
        if let Some(old) = &old {
            self.uncount(old);
        }
        old
    }

    pub(crate) fn remove(&mut self, prefix: &P) -> Option<InRoute> {
        let old = self.routes.remove(prefix)?;
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
        let route = self.routes.get_mut(prefix)?;
        let old = core::mem::replace(&mut route.accepted, accepted);
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
