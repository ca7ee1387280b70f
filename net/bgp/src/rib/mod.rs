//! The RIBs of one address family: per peer an Adj-RIB-In (pre- and post-policy) and an
//! Adj-RIB-Out, one Loc-RIB chosen by the decision process, and the attribute sets they share.
//!
//! ```text
//!  UPDATE ──► Rib::update ──► AdjRibIn[peer]  { prefix -> received, accepted, stale }
//!                 │  import policy (RFC 8212), loop checks, prefix limit
//!                 ▼
//!            decision::select over the accepted routes of every peer
//!                 ▼
//!            LocRib { prefix -> peer, attrs, reason } ──► change feeds (FIB, BMP): drain_loc_changes
//!                 │ marks the prefix dirty in every established peer's AdjRibOut
//!                 ▼
//!            drain_adj_rib_out(peer, max): export rules + export policy, compared with what
//!            was advertised, out as OutChange (Advertise / Withdraw) for the caller's UPDATEs
//!
//!  AttrStore: every table holds AttrIds; each distinct PathAttributes is stored once.
//! ```
//!
//! The RIB is a sans-I/O core: it never reads a clock or the FIB. The IGP cost of a next hop
//! comes in through [`IgpCost`] on every call that may run the decision process. All work that
//! grows with the table is done in slices the caller bounds (`max`): draining changes, dumping
//! a table ([`RibCursor`]), flushing a peer, sweeping stale routes, re-running import policy.
//!
//! Bounds and owners (all owned by the [`Rib`], charged to the BGP domain):
//! - each Adj-RIB-In: one entry per prefix the peer announced; at most
//!   [`PrefixLimit::max`](crate::policy::PrefixLimit) when the peer has a limit whose action
//!   refuses the excess (the outcome is reported to the caller);
//! - the Loc-RIB: one entry per prefix with an eligible route;
//! - each Adj-RIB-Out: one entry per prefix advertised, plus a dirty set with each prefix at
//!   most once (a slow peer holds a bounded set of prefixes, not a growing list of messages);
//! - each Loc-RIB change feed: a dirty set with each prefix at most once;
//! - the attribute store: one slot per distinct attribute set in use.

pub mod adj_in;
pub mod adj_out;
pub mod attr_store;
pub mod cursor;
pub mod decision;
pub mod loc;
pub mod table;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt::Debug;
use core::net::{IpAddr, Ipv4Addr};

use crate::packet::attribute::{Community, NextHop, PathAttributes};
use crate::packet::nlri::{Ipv4Prefix, Ipv6Prefix, Prefix};
use crate::policy::{self, Decision, LimitOutcome, Policy, PrefixLimit};

pub use adj_in::{AdjRibIn, InRoute};
pub use adj_out::{AdjRibOut, OutChange};
pub use attr_store::{AttrId, AttrStore};
pub use cursor::RibCursor;
pub use decision::{BestReason, Candidate, DecisionConfig, Step};
pub use loc::{LocRib, LocRoute};

use loc::LocSet;

use adj_out::Feed;

/// A prefix type a RIB can be keyed by.
pub trait RibPrefix: Copy + Ord + Debug + Into<Prefix> {}

impl RibPrefix for Ipv4Prefix {}
impl RibPrefix for Ipv6Prefix {}

/// The IGP cost to reach a next hop; `None` when it is unreachable (routes through it are then
/// not eligible). Closures `Fn(&NextHop) -> Option<u32>` implement it.
pub trait IgpCost {
    fn cost(&self, next_hop: &NextHop) -> Option<u32>;
}

impl<F: Fn(&NextHop) -> Option<u32>> IgpCost for F {
    fn cost(&self, next_hop: &NextHop) -> Option<u32> {
        self(next_hop)
    }
}

/// A peer of the RIB (an index into its peer table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(u16);

impl PeerId {
    pub const fn index(self) -> u16 {
        self.0
    }

    pub(crate) const fn to_bytes(self) -> [u8; 2] {
        self.0.to_ne_bytes()
    }

    pub(crate) const fn from_bytes(bytes: [u8; 2]) -> PeerId {
        PeerId(u16::from_ne_bytes(bytes))
    }
}

/// A reader of Loc-RIB changes (the FIB, BMP's Loc-RIB monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocConsumer(u8);

/// This speaker, as the RIB needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RibConfig {
    pub local_as: u32,
    /// Our BGP identifier (also the ORIGINATOR_ID we set when reflecting).
    pub router_id: Ipv4Addr,
    /// Route reflection (RFC 4456) is on when a cluster ID is set.
    pub cluster_id: Option<Ipv4Addr>,
    /// LOCAL_PREF of a route that has none (eBGP-learned, before import policy sets one).
    pub default_local_pref: u32,
    pub decision: DecisionConfig,
    /// The key of the hash that interns attribute sets: set it from a random source once per
    /// process (0, the default, is a fixed key: fine for tests, open to precomputed collisions).
    pub hash_seed: u64,
}

impl RibConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> RibConfig {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            default_local_pref: 100,
            decision: DecisionConfig::default(),
            hash_seed: 0,
        }
    }
}

/// One configured peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub addr: IpAddr,
    pub remote_as: u32,
    /// The next hop we put on routes exported to this peer over eBGP (our address on its link).
    pub next_hop_self: NextHop,
    /// A route reflection client (meaningful when [`RibConfig::cluster_id`] is set).
    pub rr_client: bool,
    /// Import policy; `None` imports nothing from an eBGP peer (RFC 8212), all from iBGP.
    pub import: Option<Policy>,
    /// Export policy; `None` exports nothing to an eBGP peer (RFC 8212), all to iBGP.
    pub export: Option<Policy>,
    pub prefix_limit: Option<PrefixLimit>,
}

/// Why a RIB call was refused; the RIB is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RibError {
    UnknownPeer(PeerId),
    /// The call needs an established session (`peer_up` first).
    PeerNotUp(PeerId),
    /// No peer id left (65,536 peers).
    TooManyPeers,
    /// No change feed id left (256 feeds).
    TooManyConsumers,
    UnknownConsumer(LocConsumer),
}

/// What one UPDATE did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// Prefixes stored (new or replaced).
    pub announced: u32,
    /// Prefixes removed.
    pub withdrawn: u32,
    /// Set when the update crossed the peer's prefix limit: what the caller must do.
    pub limit: Option<LimitOutcome>,
}

/// Which Adj-RIB-In to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RibView {
    /// As received.
    PrePolicy,
    /// Accepted by import policy, with its changes.
    PostPolicy,
}

/// One Adj-RIB-In route, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRef<'a, P> {
    pub prefix: P,
    pub attrs: &'a PathAttributes,
    pub stale: bool,
}

/// One Loc-RIB route, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BestRef<'a, P> {
    pub prefix: P,
    pub route: LocRoute,
    pub attrs: &'a PathAttributes,
}

/// The Loc-RIB state of a prefix that changed: its best route now, `None` when withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocChange<P> {
    pub prefix: P,
    pub best: Option<LocRoute>,
}

/// Counters of one peer, for `show protocols`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounts {
    pub received: usize,
    pub accepted: usize,
    pub stale: usize,
    pub advertised: usize,
    /// Prefixes marked for export and not yet drained.
    pub export_pending: usize,
    /// What the peer's UPDATEs met since its session came up.
    pub stats: PeerStats,
}

/// What a peer's UPDATEs met since its session came up: the counters of a BMP Statistics
/// Report (RFC 7854 section 4.8, its type in brackets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Prefixes the import policy rejected [0] (not those of a looped UPDATE).
    pub rejected: u64,
    /// Prefixes announced again with the attributes they already had [1].
    pub duplicate_advertisements: u64,
    /// Prefixes withdrawn that the peer had not announced [2].
    pub duplicate_withdraws: u64,
    /// UPDATEs whose CLUSTER_LIST holds our cluster ID [3].
    pub cluster_list_loops: u64,
    /// UPDATEs from an external peer whose AS_PATH holds our AS [4].
    pub as_path_loops: u64,
    /// UPDATEs whose ORIGINATOR_ID is our router ID [5].
    pub originator_id_loops: u64,
}

/// Why an UPDATE's routes loop back to us (RFC 4271 9.1.2, RFC 4456 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loop {
    AsPath,
    OriginatorId,
    ClusterList,
}

#[derive(Debug)]
struct Peer<P> {
    config: PeerConfig,
    external: bool,
    /// Routes this speaker originates (configured networks), not a session.
    local: bool,
    /// The peer's BGP identifier, from its OPEN.
    router_id: Ipv4Addr,
    up: bool,
    /// A prefix-limit warning was given and the count has not fallen back since.
    limit_warned: bool,
    /// The export policy refuses every route ([`policy::exports_nothing`]): prefixes are not
    /// marked for export to this peer.
    exports_nothing: bool,
    stats: PeerStats,
    adj_in: AdjRibIn<P>,
    adj_out: AdjRibOut<P>,
}

/// The RIBs of one address family.
#[derive(Debug)]
pub struct Rib<P> {
    config: RibConfig,
    attrs: AttrStore<PathAttributes>,
    peers: Vec<Option<Peer<P>>>,
    loc: LocRib<P>,
    /// Loc-RIB change feeds by [`LocConsumer`]; a removed one leaves `None` for reuse.
    consumers: Vec<Option<Feed<P>>>,
}

impl<P: RibPrefix> Rib<P> {
    pub fn new(config: RibConfig) -> Rib<P> {
        Rib {
            attrs: AttrStore::with_seed(config.hash_seed),
            config,
            peers: Vec::new(),
            loc: LocRib::default(),
            consumers: Vec::new(),
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Adds a peer (its session down).
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, RibError> {
        let index = match self.peers.iter().position(Option::is_none) {
            Some(index) => index,
            None => self.peers.len(),
        };
        let id = PeerId(u16::try_from(index).map_err(|_| RibError::TooManyPeers)?);
        let external = config.remote_as != self.config.local_as;
        let peer = Peer {
            external,
            exports_nothing: policy::exports_nothing(config.export.as_ref(), external),
            local: false,
            config,
            router_id: Ipv4Addr::UNSPECIFIED,
            up: false,
            limit_warned: false,
            stats: PeerStats::default(),
            adj_in: AdjRibIn::default(),
            adj_out: AdjRibOut::default(),
        };
        match self.peers.get_mut(index) {
            Some(slot) => *slot = Some(peer),
            None => self.peers.push(Some(peer)),
        }
        Ok(id)
    }

    /// A source for the routes this speaker originates itself (configured networks): feed it
    /// with [`Rib::update`] like a peer (no session needed; an empty AS_PATH and no next hop are
    /// normal). Its routes compete in the decision process as internal routes of IGP cost 0 from
    /// our own router ID, and are exported to every peer (to iBGP peers with our address as the
    /// next hop when they have none).
    pub fn add_local_source(&mut self) -> Result<PeerId, RibError> {
        let id = self.add_peer(PeerConfig {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_as: self.config.local_as,
            next_hop_self: NextHop::V4(Ipv4Addr::UNSPECIFIED),
            rr_client: false,
            import: None,
            export: None,
            prefix_limit: None,
        })?;
        let router_id = self.config.router_id;
        let source = self.peer_mut(id)?;
        source.local = true;
        source.router_id = router_id;
        Ok(id)
    }

    /// Removes a peer and all its routes (work proportional to its table; flush it in slices
    /// first with [`Rib::flush_peer`] to bound a single call).
    pub fn remove_peer(&mut self, peer: PeerId, cost: &impl IgpCost) -> Result<(), RibError> {
        self.peer_down(peer, cost)?;
        if let Some(slot) = self.peers.get_mut(usize::from(peer.0)) {
            *slot = None;
        }
        Ok(())
    }

    /// The session is established: updates are accepted and the whole Loc-RIB is scheduled for
    /// export to the peer, followed by [`OutChange::EndOfRib`] (RFC 4724).
    pub fn peer_up(&mut self, peer: PeerId, router_id: Ipv4Addr) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        p.router_id = router_id;
        p.up = true;
        p.stats = PeerStats::default();
        p.adj_out.feed.start_sync();
        p.adj_out.initial = true;
        Ok(())
    }

    /// The session went down: forgets what was advertised to the peer and stops exporting to
    /// it. Its Adj-RIB-In stays (graceful restart keeps it, marked stale with
    /// [`Rib::mark_stale`]); remove it with [`Rib::flush_peer`] or use [`Rib::peer_down`].
    pub fn session_down(&mut self, peer: PeerId) -> Result<(), RibError> {
        let Rib { peers, attrs, .. } = self;
        let p =
            peers.get_mut(usize::from(peer.0)).and_then(Option::as_mut).ok_or(RibError::UnknownPeer(peer))?;
        p.up = false;
        p.limit_warned = false;
        for (_, id) in core::mem::take(&mut p.adj_out.advertised) {
            attrs.release(id);
        }
        p.adj_out.feed.clear();
        p.adj_out.initial = false;
        p.adj_out.resend = false;
        Ok(())
    }

    /// Session down without graceful restart: [`Rib::session_down`] and every route of the peer
    /// withdrawn.
    pub fn peer_down(&mut self, peer: PeerId, cost: &impl IgpCost) -> Result<(), RibError> {
        self.session_down(peer)?;
        while self.flush_peer(peer, 1024, cost)? > 0 {}
        Ok(())
    }

    /// Withdraws up to `max` routes of the peer's Adj-RIB-In; returns how many are left.
    pub fn flush_peer(&mut self, peer: PeerId, max: usize, cost: &impl IgpCost) -> Result<usize, RibError> {
        for _ in 0..max {
            let p = self.peer_mut(peer)?;
            let Some(prefix) = p.adj_in.first() else { break };
            self.remove_route(peer, prefix);
            self.decide(prefix, cost);
        }
        Ok(self.peer_ref(peer)?.adj_in.len())
    }

    /// Applies one UPDATE from an established peer: `withdrawn` prefixes go, `announced` ones
    /// get `attrs` (with `next_hop` set to the route's next hop, whichever of NEXT_HOP or
    /// MP_REACH_NLRI carried it).
    pub fn update(
        &mut self,
        peer: PeerId,
        withdrawn: &[P],
        announced: &[P],
        attrs: &PathAttributes,
        cost: &impl IgpCost,
    ) -> Result<UpdateOutcome, RibError> {
        let source = self.peer_ref(peer)?;
        if !source.up && !source.local {
            return Err(RibError::PeerNotUp(peer));
        }
        let mut outcome = UpdateOutcome::default();
        for &prefix in withdrawn {
            if self.remove_route(peer, prefix) {
                outcome.withdrawn += 1;
                self.decide(prefix, cost);
            } else {
                self.peer_mut(peer)?.stats.duplicate_withdraws += 1;
            }
        }
        let mut dropped = 0u32;
        if let Some(&first) = announced.first() {
            let received = self.attrs.intern(attrs.clone());
            // The loop checks and, unless the import policy looks at prefixes, the policy
            // itself give one answer for every prefix of the UPDATE: work it out once.
            let Rib { peers, attrs: store, config, .. } = self;
            let source =
                peers.get(usize::from(peer.0)).and_then(Option::as_ref).ok_or(RibError::UnknownPeer(peer))?;
            let looped = loop_of(config, source, attrs);
            let shared = if looped.is_some() {
                Some(None)
            } else {
                (!policy::matches_prefixes(source.config.import.as_ref()))
                    .then(|| import_policy(store, source, first, received, attrs))
            };
            if let Some(kind) = looped {
                let stats = &mut self.peer_mut(peer)?.stats;
                match kind {
                    Loop::AsPath => stats.as_path_loops += 1,
                    Loop::OriginatorId => stats.originator_id_loops += 1,
                    Loop::ClusterList => stats.cluster_list_loops += 1,
                }
            }
            for &prefix in announced {
                let Some(p) = self.peers.get(usize::from(peer.0)).and_then(Option::as_ref) else { break };
                if let Some(limit) = p.config.prefix_limit {
                    let is_new = p.adj_in.get(&prefix).is_none();
                    if is_new && !limit.admits_excess() && p.adj_in.len() >= limit.max as usize {
                        dropped = dropped.saturating_add(1);
                        continue;
                    }
                }
                let accepted = match shared {
                    Some(accepted) => {
                        if let Some(id) = accepted {
                            self.attrs.retain(id);
                        }
                        accepted
                    }
                    None => import_policy(&mut self.attrs, p, prefix, received, attrs),
                };
                self.attrs.retain(received);
                let route = InRoute { received, accepted, stale: false };
                let p = self.peer_mut(peer)?;
                let old = p.adj_in.insert(prefix, route);
                if accepted.is_none() && looped.is_none() {
                    p.stats.rejected += 1;
                }
                if old.is_some_and(|o| o.received == received) {
                    p.stats.duplicate_advertisements += 1;
                }
                if let Some(old) = old {
                    self.release_in_route(&old);
                }
                outcome.announced += 1;
                self.decide_with(prefix, Some((peer, accepted)), cost);
            }
            if let Some(Some(id)) = shared {
                self.attrs.release(id);
            }
            self.attrs.release(received);
        }
        let p = self.peer_mut(peer)?;
        if let Some(limit) = p.config.prefix_limit {
            let count = u32::try_from(p.adj_in.len()).unwrap_or(u32::MAX);
            outcome.limit = limit.outcome(count, dropped, p.limit_warned);
            if matches!(outcome.limit, Some(LimitOutcome::Warn { .. })) {
                p.limit_warned = true;
            }
            if count <= limit.max {
                p.limit_warned = false;
            }
        }
        Ok(outcome)
    }

    /// Graceful restart (RFC 4724): marks every route of the peer stale; returns how many.
    pub fn mark_stale(&mut self, peer: PeerId) -> Result<usize, RibError> {
        Ok(self.peer_mut(peer)?.adj_in.mark_all_stale())
    }

    /// Removes the routes still stale among the next `max` of the peer's Adj-RIB-In after
    /// `cursor` (End-of-RIB or the restart timer: call until `cursor.is_done()`); returns how
    /// many were removed.
    pub fn sweep_stale(
        &mut self,
        peer: PeerId,
        cursor: &mut RibCursor<P>,
        max: usize,
        cost: &impl IgpCost,
    ) -> Result<usize, RibError> {
        let mut stale: Vec<P> = Vec::new();
        self.peer_ref(peer)?.adj_in.page(cursor, max, &mut stale, |prefix, r| r.stale.then_some(prefix));
        for &prefix in &stale {
            self.remove_route(peer, prefix);
            self.decide(prefix, cost);
        }
        Ok(stale.len())
    }

    /// Replaces the peer's import policy. The routes already held keep their old result until
    /// [`Rib::refresh_import`] has run over the peer's table.
    pub fn set_import_policy(&mut self, peer: PeerId, policy: Option<Policy>) -> Result<(), RibError> {
        self.peer_mut(peer)?.config.import = policy;
        Ok(())
    }

    /// Replaces the peer's export policy and schedules the whole Loc-RIB for export again
    /// (only the differences come out of [`Rib::drain_adj_rib_out`]).
    pub fn set_export_policy(&mut self, peer: PeerId, policy: Option<Policy>) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        p.exports_nothing = policy::exports_nothing(policy.as_ref(), p.external);
        p.config.export = policy;
        if p.up {
            p.adj_out.feed.start_sync();
        }
        Ok(())
    }

    /// Runs import policy and the decision process again for the next `max` routes of the
    /// peer's Adj-RIB-In after `cursor` (soft reconfiguration from the pre-policy table, or an
    /// IGP cost change: call for every peer until `cursor.is_done()`); returns how many routes
    /// were looked at.
    pub fn refresh_import(
        &mut self,
        peer: PeerId,
        cursor: &mut RibCursor<P>,
        max: usize,
        cost: &impl IgpCost,
    ) -> Result<usize, RibError> {
        let adj_in = &self.peer_ref(peer)?.adj_in;
        let mut slice: Vec<(P, AttrId)> = Vec::with_capacity(max.min(adj_in.len()));
        adj_in.page(cursor, max, &mut slice, |prefix, r| Some((prefix, r.received)));
        for &(prefix, received) in &slice {
            let Some(p) = self.peers.get(usize::from(peer.0)).and_then(Option::as_ref) else { break };
            let Some(received_attrs) = self.attrs.get(received) else { continue };
            let received_attrs = received_attrs.clone();
            let accepted = import(&mut self.attrs, &self.config, p, prefix, received, &received_attrs);
            let old = self.peer_mut(peer)?.adj_in.set_accepted(&prefix, accepted);
            if let Some(old) = old {
                self.attrs.release(old);
            }
            self.decide(prefix, cost);
        }
        Ok(slice.len())
    }

    /// Up to `max` changes to send to the peer, computed from the Loc-RIB now and recorded as
    /// advertised. Returns nothing once the peer is in sync.
    pub fn drain_adj_rib_out(&mut self, peer: PeerId, max: usize) -> Result<Vec<OutChange<P>>, RibError> {
        let Rib { peers, loc, .. } = self;
        let p =
            peers.get_mut(usize::from(peer.0)).and_then(Option::as_mut).ok_or(RibError::UnknownPeer(peer))?;
        if !p.up {
            return Err(RibError::PeerNotUp(peer));
        }
        let prefixes = p.adj_out.feed.next(&loc.routes, max);
        let walk_done = !p.adj_out.feed.is_walking();
        let resend = p.adj_out.resend;
        // Unless the export policy looks at prefixes, what is exported depends only on the best
        // route's source and attribute set: a run of prefixes sharing them (a table is mostly
        // such runs) is exported, cloned and interned once. The cache holds a reference of
        // its own, given back at the end.
        let by_route = !policy::matches_prefixes(p.config.export.as_ref());
        let mut last: Option<((PeerId, AttrId), Option<AttrId>)> = None;
        let mut out = Vec::new();
        for prefix in prefixes {
            let route = self.loc.get(&prefix).map(|best| (best.peer, best.attrs));
            let new = match (last, route) {
                (Some((key, id)), Some(route)) if by_route && key == route => {
                    if let Some(id) = id {
                        self.attrs.retain(id);
                    }
                    id
                }
                _ => {
                    let new = self.export(peer, prefix).map(|attrs| self.attrs.intern(attrs));
                    if let (true, Some(route)) = (by_route, route) {
                        if let Some(id) = new {
                            self.attrs.retain(id);
                        }
                        if let Some((_, Some(cached))) = last.replace((route, new)) {
                            self.attrs.release(cached);
                        }
                    }
                    new
                }
            };
            let p = self.peer_mut(peer)?;
            let old = p.adj_out.advertised.get(&prefix).copied();
            if new == old && !(resend && new.is_some()) {
                if let Some(id) = new {
                    self.attrs.release(id);
                }
                continue;
            }
            match new {
                Some(attrs) => {
                    p.adj_out.advertised.insert(prefix, attrs);
                    out.push(OutChange::Advertise { prefix, attrs });
                }
                None => {
                    p.adj_out.advertised.remove(&prefix);
                    if p.adj_out.advertised.is_empty() {
                        p.adj_out.advertised = BTreeMap::new(); // an emptied B-tree keeps its root leaf
                    }
                    out.push(OutChange::Withdraw { prefix });
                }
            }
            if let Some(old) = old {
                self.attrs.release(old);
            }
        }
        if let Some((_, Some(cached))) = last {
            self.attrs.release(cached);
        }
        let p = self.peer_mut(peer)?;
        if walk_done {
            p.adj_out.resend = false;
            if core::mem::take(&mut p.adj_out.initial) {
                out.push(OutChange::EndOfRib);
            }
        }
        Ok(out)
    }

    /// The peer asked for our routes again (ROUTE-REFRESH, RFC 2918): every route exportable to
    /// it is sent again by the next drains, changed or not.
    pub fn route_refresh(&mut self, peer: PeerId) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        if !p.up {
            return Err(RibError::PeerNotUp(peer));
        }
        p.adj_out.resend = true;
        p.adj_out.feed.start_sync();
        Ok(())
    }

    /// The attributes this speaker would advertise to `peer` for `prefix` now, `None` when it
    /// would advertise nothing (the export rules, then the export policy).
    pub fn export(&self, peer: PeerId, prefix: P) -> Option<PathAttributes> {
        let to = self.peer_ref(peer).ok()?;
        let best = self.loc.get(&prefix)?;
        if !to.up || best.peer == peer {
            return None; // never back to the peer it came from
        }
        let from = self.peer_ref(best.peer).ok()?;
        let attrs = self.attrs.get(best.attrs)?;
        if attrs.communities.contains(&Community::NO_ADVERTISE) {
            return None;
        }
        let no_export = [Community::NO_EXPORT, Community::NO_EXPORT_SUBCONFED];
        if to.external && attrs.communities.iter().any(|c| no_export.contains(c)) {
            return None;
        }
        let reflected = !from.external && !from.local && !to.external;
        if reflected && (self.config.cluster_id.is_none() || !(from.config.rr_client || to.config.rr_client))
        {
            return None; // iBGP split horizon (RFC 4271 9.2; RFC 4456 when reflecting)
        }
        let mut out = attrs.clone();
        if to.external {
            out.local_pref = None;
            out.med = None;
            out.originator_id = None;
            out.cluster_list.clear();
        }
        match policy::export_default(to.config.export.as_ref(), to.external, prefix.into(), &out) {
            Decision::Reject => return None,
            Decision::Accept(actions) => policy::apply(actions, &mut out),
        }
        if to.external {
            out.as_path.prepend(self.config.local_as);
            out.next_hop = Some(to.config.next_hop_self);
        } else {
            out.local_pref = Some(out.local_pref.unwrap_or(self.config.default_local_pref));
            if out.next_hop.is_none() {
                out.next_hop = Some(to.config.next_hop_self); // a route we originate
            }
            if reflected {
                out.originator_id.get_or_insert(from.router_id);
                if let Some(cluster_id) = self.config.cluster_id {
                    out.cluster_list.insert(0, cluster_id);
                }
            }
        }
        Some(out)
    }

    /// A new reader of Loc-RIB changes; its feed starts with a walk over the whole Loc-RIB.
    /// A reader that goes away (a BMP session shed) must be removed with
    /// [`Rib::remove_loc_consumer`], or its dirty set keeps every changed prefix.
    pub fn add_loc_consumer(&mut self) -> Result<LocConsumer, RibError> {
        let index = self.consumers.iter().position(Option::is_none).unwrap_or(self.consumers.len());
        let id = LocConsumer(u8::try_from(index).map_err(|_| RibError::TooManyConsumers)?);
        let mut feed = Feed::default();
        feed.start_sync();
        match self.consumers.get_mut(index) {
            Some(slot) => *slot = Some(feed),
            None => self.consumers.push(Some(feed)),
        }
        Ok(id)
    }

    /// Forgets a reader of Loc-RIB changes and frees its dirty set.
    pub fn remove_loc_consumer(&mut self, consumer: LocConsumer) -> Result<(), RibError> {
        let slot = self.consumers.get_mut(usize::from(consumer.0)).filter(|slot| slot.is_some());
        *slot.ok_or(RibError::UnknownConsumer(consumer))? = None;
        while self.consumers.last().is_some_and(Option::is_none) {
            self.consumers.pop();
        }
        if self.consumers.is_empty() {
            self.consumers = Vec::new();
        }
        Ok(())
    }

    /// Up to `max` Loc-RIB changes for `consumer`, each the prefix's state now (so repeated
    /// changes to one prefix come out once).
    pub fn drain_loc_changes(
        &mut self,
        consumer: LocConsumer,
        max: usize,
    ) -> Result<Vec<LocChange<P>>, RibError> {
        let Rib { consumers, loc, .. } = self;
        let feed = consumers
            .get_mut(usize::from(consumer.0))
            .and_then(Option::as_mut)
            .ok_or(RibError::UnknownConsumer(consumer))?;
        let prefixes = feed.next(&loc.routes, max);
        Ok(prefixes.into_iter().map(|prefix| LocChange { prefix, best: loc.get(&prefix) }).collect())
    }

    /// Up to `max` routes of the peer's Adj-RIB-In after `cursor`, read in place.
    pub fn adj_rib_in_page(
        &self,
        peer: PeerId,
        view: RibView,
        cursor: &mut RibCursor<P>,
        max: usize,
    ) -> Result<Vec<RouteRef<'_, P>>, RibError> {
        let adj_in = &self.peer_ref(peer)?.adj_in;
        let mut out = Vec::with_capacity(max.min(adj_in.len()));
        adj_in.page(cursor, max, &mut out, |prefix, route| {
            let id = match view {
                RibView::PrePolicy => route.received,
                RibView::PostPolicy => route.accepted?,
            };
            Some(RouteRef { prefix, attrs: self.attrs.get(id)?, stale: route.stale })
        });
        Ok(out)
    }

    /// Up to `max` Loc-RIB routes after `cursor`, read in place.
    pub fn loc_rib_page(&self, cursor: &mut RibCursor<P>, max: usize) -> Vec<BestRef<'_, P>> {
        let mut out = Vec::with_capacity(max.min(self.loc.len()));
        self.loc.page(cursor, max, &mut out, |prefix, route| {
            Some(BestRef { prefix, route, attrs: self.attrs.get(route.attrs)? })
        });
        out
    }

    /// The best route to `prefix` and why it won.
    pub fn best(&self, prefix: &P) -> Option<BestRef<'_, P>> {
        let route = self.loc.get(prefix)?;
        Some(BestRef { prefix: *prefix, route, attrs: self.attrs.get(route.attrs)? })
    }

    /// Every route to `prefix` that import policy accepted, by peer (for `show route all`).
    pub fn routes(&self, prefix: &P) -> Vec<(PeerId, &PathAttributes)> {
        let mut out = Vec::new();
        for (index, slot) in self.peers.iter().enumerate() {
            let Some(peer) = slot else { continue };
            let Some(accepted) = peer.adj_in.get(prefix).and_then(|r| r.accepted) else { continue };
            if let (Ok(id), Some(attrs)) = (u16::try_from(index), self.attrs.get(accepted)) {
                out.push((PeerId(id), attrs));
            }
        }
        out
    }

    /// An interned attribute set (of an [`OutChange`] or a [`LocRoute`]).
    pub fn attrs(&self, id: AttrId) -> Option<&PathAttributes> {
        self.attrs.get(id)
    }

    pub fn loc_rib(&self) -> &LocRib<P> {
        &self.loc
    }

    pub fn adj_rib_in(&self, peer: PeerId) -> Result<&AdjRibIn<P>, RibError> {
        Ok(&self.peer_ref(peer)?.adj_in)
    }

    pub fn adj_rib_out(&self, peer: PeerId) -> Result<&AdjRibOut<P>, RibError> {
        Ok(&self.peer_ref(peer)?.adj_out)
    }

    /// The peer's configuration as the RIB holds it (policies as last set).
    pub fn peer_config(&self, peer: PeerId) -> Result<&PeerConfig, RibError> {
        Ok(&self.peer_ref(peer)?.config)
    }

    /// Replaces the peer's prefix limit; it applies from the next UPDATE.
    pub fn set_prefix_limit(&mut self, peer: PeerId, limit: Option<PrefixLimit>) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        p.config.prefix_limit = limit;
        p.limit_warned = false;
        Ok(())
    }

    pub fn peer_counts(&self, peer: PeerId) -> Result<PeerCounts, RibError> {
        let p = self.peer_ref(peer)?;
        Ok(PeerCounts {
            received: p.adj_in.len(),
            accepted: p.adj_in.accepted_len(),
            stale: p.adj_in.stale_len(),
            advertised: p.adj_out.len(),
            export_pending: p.adj_out.pending(),
            stats: p.stats,
        })
    }

    /// Distinct attribute sets alive.
    pub fn attr_sets(&self) -> usize {
        self.attrs.len()
    }

    #[cfg(test)]
    fn attrs_refs(&self, id: AttrId) -> u32 {
        self.attrs.refs(id)
    }

    fn peer_ref(&self, peer: PeerId) -> Result<&Peer<P>, RibError> {
        self.peers.get(usize::from(peer.0)).and_then(Option::as_ref).ok_or(RibError::UnknownPeer(peer))
    }

    fn peer_mut(&mut self, peer: PeerId) -> Result<&mut Peer<P>, RibError> {
        self.peers.get_mut(usize::from(peer.0)).and_then(Option::as_mut).ok_or(RibError::UnknownPeer(peer))
    }

    /// Removes the peer's route to `prefix` from its Adj-RIB-In; whether there was one.
    fn remove_route(&mut self, peer: PeerId, prefix: P) -> bool {
        let Ok(p) = self.peer_mut(peer) else { return false };
        let Some(old) = p.adj_in.remove(&prefix) else { return false };
        self.release_in_route(&old);
        true
    }

    fn release_in_route(&mut self, route: &InRoute) {
        self.attrs.release(route.received);
        if let Some(accepted) = route.accepted {
            self.attrs.release(accepted);
        }
    }

    /// Runs the decision process for `prefix` and records a change of best route.
    fn decide(&mut self, prefix: P, cost: &impl IgpCost) {
        self.decide_with(prefix, None, cost);
    }

    /// [`Rib::decide`], told the accepted route of one peer (`known`) that the caller has just
    /// stored, so that its Adj-RIB-In is not searched again.
    ///
    /// The work per call: one Adj-RIB-In search per other peer that holds routes, one Loc-RIB
    /// search, and, when the best route changes, one dirty mark per change feed and per peer
    /// that may be sent the prefix. Nothing is allocated unless more than [`INLINE_CANDIDATES`]
    /// peers hold a route to the prefix.
    fn decide_with(&mut self, prefix: P, known: Option<(PeerId, Option<AttrId>)>, cost: &impl IgpCost) {
        let mut candidates = Candidates::new();
        for (index, slot) in self.peers.iter().enumerate() {
            let Some(peer) = slot else { continue };
            let Ok(id) = u16::try_from(index).map(PeerId) else { continue };
            let accepted = match known {
                Some((from, accepted)) if from == id => accepted,
                _ if peer.adj_in.is_empty() => None,
                _ => peer.adj_in.get(&prefix).and_then(|r| r.accepted),
            };
            let Some(accepted) = accepted else { continue };
            let Some(attrs) = self.attrs.get(accepted) else { continue };
            candidates.push(candidate(&self.config, peer, attrs, cost), id, accepted);
        }
        let new =
            decision::select(candidates.as_slice(), self.config.decision).and_then(|(winner, reason)| {
                candidates.source(winner).map(|(peer, attrs)| LocRoute { peer, attrs, reason })
            });
        let old = match self.loc.set(prefix, new) {
            LocSet::Unchanged => return,
            LocSet::Replaced(old) => old,
        };
        if let Some(new) = new {
            self.attrs.retain(new.attrs);
        }
        if let Some(old) = old {
            self.attrs.release(old.attrs);
        }
        for feed in self.consumers.iter_mut().flatten() {
            feed.mark_behind_walk(prefix);
        }
        let (old_from, new_from) = (old.map(|r| r.peer), new.map(|r| r.peer));
        for (index, slot) in self.peers.iter_mut().enumerate() {
            let Some(peer) = slot else { continue };
            if !peer.up {
                continue;
            }
            // A peer that was the source of the old best (or there was none) and is the source
            // of the new one (or there is none) was sent nothing and is sent nothing.
            let id = u16::try_from(index).ok().map(PeerId);
            let unchanged_for_peer =
                old_from.is_none_or(|p| Some(p) == id) && new_from.is_none_or(|p| Some(p) == id);
            // A peer whose export policy refuses every route is sent nothing either, unless it
            // still holds the prefix from an earlier policy (a new policy walks the whole
            // Loc-RIB, which does not meet prefixes that left it meanwhile).
            let exports_nothing = peer.exports_nothing && !peer.adj_out.advertised.contains_key(&prefix);
            if !unchanged_for_peer && !exports_nothing {
                peer.adj_out.feed.mark(prefix);
            }
        }
    }
}

/// Candidates of one decision held without allocating, up to this many.
const INLINE_CANDIDATES: usize = 8;

/// The routes to one prefix that go into the decision process, and where each came from.
struct Candidates {
    inline: [Candidate; INLINE_CANDIDATES],
    sources: [(PeerId, Option<AttrId>); INLINE_CANDIDATES],
    len: usize,
    /// Every candidate once there are more than fit inline.
    spilled: Vec<(Candidate, PeerId, AttrId)>,
    spilled_candidates: Vec<Candidate>,
}

impl Candidates {
    fn new() -> Candidates {
        Candidates {
            inline: [Candidate::NONE; INLINE_CANDIDATES],
            sources: [(PeerId(0), None); INLINE_CANDIDATES],
            len: 0,
            spilled: Vec::new(),
            spilled_candidates: Vec::new(),
        }
    }

    fn push(&mut self, candidate: Candidate, peer: PeerId, attrs: AttrId) {
        if self.len < INLINE_CANDIDATES {
            if let (Some(slot), Some(source)) =
                (self.inline.get_mut(self.len), self.sources.get_mut(self.len))
            {
                *slot = candidate;
                *source = (peer, Some(attrs));
            }
        } else {
            if self.spilled.is_empty() {
                for (c, (p, a)) in self.inline.iter().zip(self.sources.iter()) {
                    if let Some(a) = a {
                        self.spilled.push((*c, *p, *a));
                    }
                }
            }
            self.spilled.push((candidate, peer, attrs));
        }
        self.len += 1;
    }

    fn as_slice(&mut self) -> &[Candidate] {
        if self.spilled.is_empty() {
            return self.inline.get(..self.len).unwrap_or_default();
        }
        self.spilled_candidates = self.spilled.iter().map(|(c, _, _)| *c).collect();
        &self.spilled_candidates
    }

    fn source(&self, index: usize) -> Option<(PeerId, AttrId)> {
        if self.spilled.is_empty() {
            let (peer, attrs) = self.sources.get(index).filter(|_| index < self.len)?;
            return Some((*peer, (*attrs)?));
        }
        self.spilled.get(index).map(|&(_, peer, attrs)| (peer, attrs))
    }
}

/// The accepted attribute set for a route from `peer` (a new reference), or `None` when the
/// route fails a loop check or import policy rejects it.
fn import<P: RibPrefix>(
    store: &mut AttrStore<PathAttributes>,
    config: &RibConfig,
    peer: &Peer<P>,
    prefix: P,
    received: AttrId,
    attrs: &PathAttributes,
) -> Option<AttrId> {
    if loop_of(config, peer, attrs).is_some() {
        return None;
    }
    import_policy(store, peer, prefix, received, attrs)
}

/// [`import`] for a route whose attributes passed the loop checks: import policy alone.
fn import_policy<P: RibPrefix>(
    store: &mut AttrStore<PathAttributes>,
    peer: &Peer<P>,
    prefix: P,
    received: AttrId,
    attrs: &PathAttributes,
) -> Option<AttrId> {
    let actions =
        match policy::import_default(peer.config.import.as_ref(), peer.external, prefix.into(), attrs) {
            Decision::Reject => return None,
            Decision::Accept(actions) => actions,
        };
    // LOCAL_PREF from an external peer is ignored (RFC 4271 5.1.5).
    let strip_local_pref = peer.external && attrs.local_pref.is_some();
    if actions.is_empty() && !strip_local_pref {
        store.retain(received);
        return Some(received);
    }
    let mut accepted = attrs.clone();
    if strip_local_pref {
        accepted.local_pref = None;
    }
    policy::apply(actions, &mut accepted);
    Some(store.intern(accepted))
}

/// Whether the routes of an UPDATE from `peer` with `attrs` loop back to us.
fn loop_of<P>(config: &RibConfig, peer: &Peer<P>, attrs: &PathAttributes) -> Option<Loop> {
    if peer.external && attrs.as_path.contains(config.local_as) {
        Some(Loop::AsPath) // our own AS (RFC 4271 9.1.2)
    } else if attrs.originator_id == Some(config.router_id) {
        Some(Loop::OriginatorId) // reflected back to us (RFC 4456 8)
    } else if config.cluster_id.is_some_and(|id| attrs.cluster_list.contains(&id)) {
        Some(Loop::ClusterList)
    } else {
        None
    }
}

/// What the decision process compares about an accepted route from `peer`.
fn candidate<P>(
    config: &RibConfig,
    peer: &Peer<P>,
    attrs: &PathAttributes,
    cost: &impl IgpCost,
) -> Candidate {
    Candidate {
        local_pref: attrs.local_pref.unwrap_or(config.default_local_pref),
        as_path_len: u32::try_from(attrs.as_path.path_len()).unwrap_or(u32::MAX),
        origin: attrs.origin.to_u8(),
        med: attrs.med.unwrap_or(0),
        neighbor_as: attrs.as_path.first_as(),
        external: peer.external,
        igp_cost: if peer.local { Some(0) } else { attrs.next_hop.as_ref().and_then(|nh| cost.cost(nh)) },
        router_id: attrs.originator_id.unwrap_or(peer.router_id),
        cluster_list_len: u32::try_from(attrs.cluster_list.len()).unwrap_or(u32::MAX),
        peer_addr: peer.config.addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::attribute::AsPath;
    use crate::policy::{Action, LimitAction, Match, Term, Verdict};
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    const LOCAL_AS: u32 = 65000;

    fn reachable(_: &NextHop) -> Option<u32> {
        Some(1)
    }

    fn pfx(a: u8, b: u8, c: u8, len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(Ipv4Addr::new(a, b, c, 0), len).unwrap()
    }

    fn nh(last: u8) -> NextHop {
        NextHop::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn route(path: &[u32], next_hop: u8) -> PathAttributes {
        PathAttributes {
            as_path: AsPath::from_sequence(path),
            next_hop: Some(nh(next_hop)),
            ..PathAttributes::default()
        }
    }

    fn peer_config(last: u8, remote_as: u32, import: Option<Policy>, export: Option<Policy>) -> PeerConfig {
        PeerConfig {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
            remote_as,
            next_hop_self: NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)),
            rr_client: false,
            import,
            export,
            prefix_limit: None,
        }
    }

    fn rib() -> Rib<Ipv4Prefix> {
        Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(10, 255, 0, 1)))
    }

    /// An established eBGP peer that accepts and exports everything.
    fn ebgp(rib: &mut Rib<Ipv4Prefix>, last: u8, remote_as: u32) -> PeerId {
        let all = Some(Policy::accept_all());
        let id = rib.add_peer(peer_config(last, remote_as, all.clone(), all)).unwrap();
        rib.peer_up(id, Ipv4Addr::new(10, 0, 0, last)).unwrap();
        id
    }

    fn ibgp(rib: &mut Rib<Ipv4Prefix>, last: u8, rr_client: bool) -> PeerId {
        let mut config = peer_config(last, LOCAL_AS, None, None);
        config.rr_client = rr_client;
        let id = rib.add_peer(config).unwrap();
        rib.peer_up(id, Ipv4Addr::new(10, 0, 0, last)).unwrap();
        id
    }

    fn announce(rib: &mut Rib<Ipv4Prefix>, peer: PeerId, prefixes: &[Ipv4Prefix], attrs: &PathAttributes) {
        rib.update(peer, &[], prefixes, attrs, &reachable).unwrap();
    }

    /// Everything pending for `peer`, End-of-RIB left out.
    fn drain_all(rib: &mut Rib<Ipv4Prefix>, peer: PeerId) -> Vec<OutChange<Ipv4Prefix>> {
        let mut changes = rib.drain_adj_rib_out(peer, usize::MAX).unwrap();
        changes.retain(|c| *c != OutChange::EndOfRib);
        changes
    }

    fn advertised(rib: &Rib<Ipv4Prefix>, peer: PeerId, prefix: Ipv4Prefix) -> Option<PathAttributes> {
        rib.adj_rib_out(peer).unwrap().get(&prefix).and_then(|id| rib.attrs(id)).cloned()
    }

    #[test]
    fn rfc8212_ebgp_peer_without_policy_imports_nothing_but_is_kept_pre_policy() {
        let mut rib = rib();
        let peer = rib.add_peer(peer_config(1, 65001, None, None)).unwrap();
        rib.peer_up(peer, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        announce(&mut rib, peer, &[pfx(10, 0, 0, 8)], &route(&[65001], 1));
        assert_eq!(rib.loc_rib().len(), 0);
        let counts = rib.peer_counts(peer).unwrap();
        assert_eq!((counts.received, counts.accepted), (1, 0));
        let mut pre = RibCursor::new();
        assert_eq!(rib.adj_rib_in_page(peer, RibView::PrePolicy, &mut pre, 10).unwrap().len(), 1);
        let mut post = RibCursor::new();
        assert!(rib.adj_rib_in_page(peer, RibView::PostPolicy, &mut post, 10).unwrap().is_empty());
    }

    #[test]
    fn update_needs_an_established_known_peer() {
        let mut rib = rib();
        let peer = rib.add_peer(peer_config(1, 65001, None, None)).unwrap();
        let attrs = route(&[65001], 1);
        assert_eq!(
            rib.update(peer, &[], &[pfx(10, 0, 0, 8)], &attrs, &reachable),
            Err(RibError::PeerNotUp(peer))
        );
        let ghost = PeerId(9);
        assert_eq!(rib.update(ghost, &[], &[], &attrs, &reachable), Err(RibError::UnknownPeer(ghost)));
        assert_eq!(rib.drain_adj_rib_out(peer, 1), Err(RibError::PeerNotUp(peer)));
    }

    #[test]
    fn best_path_follows_announcements_and_withdrawals() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let b = ebgp(&mut rib, 2, 65002);
        let p = pfx(10, 0, 0, 8);
        announce(&mut rib, a, &[p], &route(&[65001, 65010, 65020], 1));
        assert_eq!(rib.best(&p).unwrap().route.reason, BestReason::OnlyRoute);
        announce(&mut rib, b, &[p], &route(&[65002, 65020], 2));
        let best = rib.best(&p).unwrap();
        assert_eq!((best.route.peer, best.route.reason), (b, BestReason::Step(Step::AsPathLen)));
        assert_eq!(rib.routes(&p).len(), 2);
        let out = rib.update(b, &[p, pfx(11, 0, 0, 8)], &[], &PathAttributes::default(), &reachable).unwrap();
        assert_eq!(out.withdrawn, 1);
        assert_eq!(rib.best(&p).unwrap().route.peer, a);
        rib.update(a, &[p], &[], &PathAttributes::default(), &reachable).unwrap();
        assert!(rib.best(&p).is_none());
        assert_eq!(rib.attr_sets(), 0, "every attribute set freed with its last route");
    }

    #[test]
    fn loc_changes_are_coalesced_per_prefix_and_include_withdrawals() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let p = pfx(10, 0, 0, 8);
        announce(&mut rib, a, &[pfx(9, 0, 0, 8)], &route(&[65001], 1));
        let fib = rib.add_loc_consumer().unwrap();
        // The new consumer first walks the table as it is.
        let first = rib.drain_loc_changes(fib, 10).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].prefix, pfx(9, 0, 0, 8));
        for hop in 1..=5 {
            announce(&mut rib, a, &[p], &route(&[65001], hop));
        }
        let changes = rib.drain_loc_changes(fib, 10).unwrap();
        assert_eq!(changes.len(), 1);
        let best = changes[0].best.unwrap();
        assert_eq!(rib.attrs(best.attrs).unwrap().next_hop, Some(nh(5)));
        rib.update(a, &[p], &[], &PathAttributes::default(), &reachable).unwrap();
        assert_eq!(rib.drain_loc_changes(fib, 10).unwrap(), [LocChange { prefix: p, best: None }]);
        assert!(rib.drain_loc_changes(fib, 10).unwrap().is_empty());
        assert_eq!(rib.drain_loc_changes(LocConsumer(7), 1), Err(RibError::UnknownConsumer(LocConsumer(7))));
        // A second reader comes and goes; the first is not disturbed and the slot is reused.
        let bmp = rib.add_loc_consumer().unwrap();
        announce(&mut rib, a, &[p], &route(&[65001], 9));
        rib.remove_loc_consumer(bmp).unwrap();
        assert_eq!(rib.drain_loc_changes(bmp, 1), Err(RibError::UnknownConsumer(bmp)));
        assert_eq!(rib.remove_loc_consumer(bmp), Err(RibError::UnknownConsumer(bmp)));
        assert_eq!(rib.drain_loc_changes(fib, 10).unwrap().len(), 1);
        assert_eq!(rib.add_loc_consumer().unwrap(), bmp);
    }

    /// The counters of a BMP Statistics Report: loops per UPDATE, policy rejections and
    /// duplicates per prefix, all from zero again when the session comes back.
    #[test]
    fn peer_stats_count_loops_rejections_and_duplicates() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let (p, q) = (pfx(10, 0, 0, 8), pfx(11, 0, 0, 8));
        announce(&mut rib, a, &[p, q], &route(&[65001, LOCAL_AS], 1));
        announce(&mut rib, a, &[p], &route(&[65001], 1));
        announce(&mut rib, a, &[p], &route(&[65001], 1));
        rib.update(a, &[q, pfx(12, 0, 0, 8)], &[], &PathAttributes::default(), &reachable).unwrap();
        let stats = rib.peer_counts(a).unwrap().stats;
        let want = PeerStats {
            as_path_loops: 1,
            duplicate_advertisements: 1,
            duplicate_withdraws: 1,
            ..PeerStats::default()
        };
        assert_eq!(stats, want, "a looped UPDATE counts once, its prefixes are not policy rejections");
        // RFC 8212: an eBGP peer without an import policy gets nothing accepted.
        let strict = rib.add_peer(peer_config(2, 65002, None, None)).unwrap();
        rib.peer_up(strict, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        announce(&mut rib, strict, &[p, q], &route(&[65002], 2));
        assert_eq!(rib.peer_counts(strict).unwrap().stats.rejected, 2);
        rib.session_down(a).unwrap();
        rib.peer_up(a, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        assert_eq!(rib.peer_counts(a).unwrap().stats, PeerStats::default());
    }

    /// A new consumer's walk reads each prefix once, as it is when the walk gets there: a
    /// change ahead of the walk is not reported a second time, one behind it is.
    #[test]
    fn a_loc_consumer_walking_the_table_reads_each_prefix_once() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let prefixes: Vec<_> = (1..=6).map(|n| pfx(10, n, 0, 16)).collect();
        announce(&mut rib, a, &prefixes, &route(&[65001], 1));
        let fib = rib.add_loc_consumer().unwrap();
        let first = rib.drain_loc_changes(fib, 2).unwrap();
        assert_eq!(first.iter().map(|c| c.prefix).collect::<Vec<_>>(), prefixes[..2]);
        // Behind the walk (10.1), ahead of it (10.5), and one ahead that leaves (10.6).
        announce(&mut rib, a, &[prefixes[0], prefixes[4]], &route(&[65001], 2));
        rib.update(a, &[prefixes[5]], &[], &PathAttributes::default(), &reachable).unwrap();
        let mut rest = rib.drain_loc_changes(fib, 100).unwrap();
        rest.sort_by_key(|c| c.prefix);
        let seen: Vec<_> = rest.iter().map(|c| c.prefix).collect();
        assert_eq!(seen, [prefixes[0], prefixes[2], prefixes[3], prefixes[4]]);
        let hop = |c: &LocChange<_>| rib.attrs(c.best.unwrap().attrs).unwrap().next_hop;
        assert_eq!((hop(&rest[0]), hop(&rest[3])), (Some(nh(2)), Some(nh(2))), "read as they are now");
        assert!(rib.drain_loc_changes(fib, 100).unwrap().is_empty());
    }

    #[test]
    fn ebgp_export_prepends_sets_next_hop_self_and_strips_local_pref_and_med() {
        let mut rib = rib();
        let from = ibgp(&mut rib, 1, false);
        let to = ebgp(&mut rib, 2, 65002);
        let p = pfx(10, 0, 0, 8);
        let mut attrs = route(&[65010], 1);
        attrs.local_pref = Some(300);
        attrs.med = Some(50);
        announce(&mut rib, from, &[p], &attrs);
        assert_eq!(drain_all(&mut rib, from), [], "never sent back to the peer it came from");
        let changes = drain_all(&mut rib, to);
        assert!(matches!(changes[..], [OutChange::Advertise { prefix, .. }] if prefix == p));
        let sent = advertised(&rib, to, p).unwrap();
        assert_eq!(sent.as_path, AsPath::from_sequence(&[LOCAL_AS, 65010]));
        assert_eq!(sent.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 254))));
        assert_eq!((sent.local_pref, sent.med), (None, None));
    }

    #[test]
    fn export_policy_med_survives_the_ebgp_strip() {
        let mut rib = rib();
        let from = ebgp(&mut rib, 1, 65001);
        let set_med = Policy {
            terms: alloc::vec![Term {
                matches: alloc::vec![],
                actions: alloc::vec![Action::SetMed(7)],
                verdict: Verdict::Accept
            }],
        };
        let to = rib.add_peer(peer_config(2, 65002, None, Some(set_med))).unwrap();
        rib.peer_up(to, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        let mut attrs = route(&[65001], 1);
        attrs.med = Some(99);
        announce(&mut rib, from, &[pfx(10, 0, 0, 8)], &attrs);
        drain_all(&mut rib, to);
        assert_eq!(advertised(&rib, to, pfx(10, 0, 0, 8)).unwrap().med, Some(7));
    }

    #[test]
    fn rfc8212_ebgp_peer_without_export_policy_gets_nothing() {
        let mut rib = rib();
        let from = ebgp(&mut rib, 1, 65001);
        let to = rib.add_peer(peer_config(2, 65002, Some(Policy::accept_all()), None)).unwrap();
        rib.peer_up(to, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        announce(&mut rib, from, &[pfx(10, 0, 0, 8)], &route(&[65001], 1));
        assert_eq!(drain_all(&mut rib, to), []);
    }

    #[test]
    fn ibgp_export_keeps_next_hop_and_sets_local_pref() {
        let mut rib = rib();
        let from = ebgp(&mut rib, 1, 65001);
        let to = ibgp(&mut rib, 2, false);
        announce(&mut rib, from, &[pfx(10, 0, 0, 8)], &route(&[65001], 1));
        drain_all(&mut rib, to);
        let sent = advertised(&rib, to, pfx(10, 0, 0, 8)).unwrap();
        assert_eq!(sent.next_hop, Some(nh(1)));
        assert_eq!(sent.local_pref, Some(100));
        assert_eq!(sent.as_path, AsPath::from_sequence(&[65001]), "no prepend towards iBGP");
    }

    #[test]
    fn ibgp_split_horizon_without_route_reflection() {
        let mut rib = rib();
        let a = ibgp(&mut rib, 1, true);
        let b = ibgp(&mut rib, 2, true);
        let e = ebgp(&mut rib, 3, 65003);
        announce(&mut rib, a, &[pfx(10, 0, 0, 8)], &route(&[65010], 1));
        assert_eq!(drain_all(&mut rib, b), [], "no iBGP route to another iBGP peer");
        assert_eq!(drain_all(&mut rib, e).len(), 1, "but to eBGP");
    }

    #[test]
    fn route_reflection_reflects_client_routes_with_originator_and_cluster() {
        let mut config = RibConfig::new(LOCAL_AS, Ipv4Addr::new(10, 255, 0, 1));
        config.cluster_id = Some(Ipv4Addr::new(10, 255, 0, 100));
        let mut rib: Rib<Ipv4Prefix> = Rib::new(config);
        let client = ibgp(&mut rib, 1, true);
        let other_client = ibgp(&mut rib, 2, true);
        let non_client = ibgp(&mut rib, 3, false);
        let other_non_client = ibgp(&mut rib, 4, false);
        announce(&mut rib, client, &[pfx(10, 0, 0, 8)], &route(&[], 1));
        announce(&mut rib, non_client, &[pfx(11, 0, 0, 8)], &route(&[], 3));
        // From a client: to clients and non-clients.
        let sent = advertised(&rib, non_client, pfx(10, 0, 0, 8));
        assert!(sent.is_none(), "nothing before the drain");
        drain_all(&mut rib, non_client);
        drain_all(&mut rib, other_client);
        drain_all(&mut rib, other_non_client);
        let sent = advertised(&rib, non_client, pfx(10, 0, 0, 8)).unwrap();
        assert_eq!(sent.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(sent.cluster_list, [Ipv4Addr::new(10, 255, 0, 100)]);
        assert!(advertised(&rib, other_client, pfx(10, 0, 0, 8)).is_some());
        // From a non-client: to clients only.
        assert!(advertised(&rib, other_client, pfx(11, 0, 0, 8)).is_some());
        assert!(advertised(&rib, other_non_client, pfx(11, 0, 0, 8)).is_none());
        // A route carrying our cluster id or our router id as originator is a loop.
        let mut looped = route(&[], 1);
        looped.cluster_list = alloc::vec![Ipv4Addr::new(10, 255, 0, 100)];
        announce(&mut rib, client, &[pfx(12, 0, 0, 8)], &looped);
        let mut own = route(&[], 1);
        own.originator_id = Some(Ipv4Addr::new(10, 255, 0, 1));
        announce(&mut rib, client, &[pfx(13, 0, 0, 8)], &own);
        assert!(rib.best(&pfx(12, 0, 0, 8)).is_none());
        assert!(rib.best(&pfx(13, 0, 0, 8)).is_none());
    }

    #[test]
    fn well_known_communities_limit_export() {
        let mut rib = rib();
        let from = ebgp(&mut rib, 1, 65001);
        let e = ebgp(&mut rib, 2, 65002);
        let i = ibgp(&mut rib, 3, false);
        let mut no_export = route(&[65001], 1);
        no_export.communities = alloc::vec![Community::NO_EXPORT];
        let mut no_advertise = route(&[65001], 1);
        no_advertise.communities = alloc::vec![Community::NO_ADVERTISE];
        announce(&mut rib, from, &[pfx(10, 0, 0, 8)], &no_export);
        announce(&mut rib, from, &[pfx(11, 0, 0, 8)], &no_advertise);
        assert_eq!(drain_all(&mut rib, e), []);
        let to_ibgp = drain_all(&mut rib, i);
        assert!(matches!(to_ibgp[..], [OutChange::Advertise { prefix, .. }] if prefix == pfx(10, 0, 0, 8)));
    }

    #[test]
    fn adj_rib_out_withdraws_and_coalesces_for_a_slow_peer() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let b = ebgp(&mut rib, 2, 65002);
        let to = ebgp(&mut rib, 3, 65003);
        let p = pfx(10, 0, 0, 8);
        announce(&mut rib, a, &[p], &route(&[65001, 1], 1));
        assert_eq!(drain_all(&mut rib, to).len(), 1);
        assert_eq!(drain_all(&mut rib, b).len(), 1, "a's route to b");
        // Many changes while the peer is not drained: it holds one dirty prefix, not messages.
        for hop in 10..20 {
            announce(&mut rib, b, &[p], &route(&[65002], hop));
        }
        assert_eq!(rib.peer_counts(to).unwrap().export_pending, 1);
        let changes = drain_all(&mut rib, to);
        assert_eq!(changes.len(), 1);
        assert_eq!(advertised(&rib, to, p).unwrap().as_path, AsPath::from_sequence(&[LOCAL_AS, 65002]));
        // b's own route is now best: what b was sent is withdrawn, nothing goes back to it.
        assert_eq!(drain_all(&mut rib, b), [OutChange::Withdraw { prefix: p }]);
        // A change that does not change the best route sends nothing.
        announce(&mut rib, a, &[p], &route(&[65001, 1], 2));
        assert_eq!(drain_all(&mut rib, b), []);
        assert_eq!(drain_all(&mut rib, to), []);
        // Everything gone: withdrawals.
        rib.peer_down(a, &reachable).unwrap();
        rib.peer_down(b, &reachable).unwrap();
        assert_eq!(drain_all(&mut rib, to), [OutChange::Withdraw { prefix: p }]);
        assert!(rib.adj_rib_out(to).unwrap().is_empty());
        assert_eq!(rib.attr_sets(), 0);
    }

    #[test]
    fn drain_is_bounded_and_a_new_session_gets_the_whole_table() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let prefixes: Vec<Ipv4Prefix> = (0..50).map(|n| pfx(10, n, 0, 16)).collect();
        announce(&mut rib, a, &prefixes, &route(&[65001], 1));
        let late = ebgp(&mut rib, 2, 65002);
        let mut total = 0;
        let mut end_of_rib = 0;
        loop {
            let slice = rib.drain_adj_rib_out(late, 8).unwrap();
            assert!(slice.len() <= 8 + 1);
            if slice.is_empty() && rib.adj_rib_out(late).unwrap().is_idle() {
                break;
            }
            for change in slice {
                match change {
                    OutChange::Advertise { .. } => total += 1,
                    OutChange::EndOfRib => {
                        assert_eq!(total, 50, "End-of-RIB after the whole table");
                        end_of_rib += 1;
                    }
                    OutChange::Withdraw { .. } => panic!("nothing to withdraw"),
                }
            }
        }
        assert_eq!((total, end_of_rib), (50, 1));
        // ROUTE-REFRESH: everything again, though unchanged; no second End-of-RIB.
        rib.route_refresh(late).unwrap();
        let again = rib.drain_adj_rib_out(late, usize::MAX).unwrap();
        assert_eq!(again.len(), 50);
        assert!(again.iter().all(|c| matches!(c, OutChange::Advertise { .. })));
        assert_eq!(rib.drain_adj_rib_out(late, usize::MAX).unwrap(), []);
        rib.session_down(late).unwrap();
        assert!(rib.adj_rib_out(late).unwrap().is_empty());
        assert_eq!(rib.attr_sets(), 1, "the export sets were released with the session");
    }

    #[test]
    fn locally_originated_routes_go_to_every_peer() {
        let mut rib = rib();
        let local = rib.add_local_source().unwrap();
        let e = ebgp(&mut rib, 1, 65001);
        let i = ibgp(&mut rib, 2, false);
        let p = pfx(198, 51, 100, 24);
        let attrs = PathAttributes::default();
        announce(&mut rib, local, &[p], &attrs);
        assert_eq!(rib.best(&p).unwrap().route.peer, local);
        drain_all(&mut rib, e);
        drain_all(&mut rib, i);
        let to_e = advertised(&rib, e, p).unwrap();
        assert_eq!(to_e.as_path, AsPath::from_sequence(&[LOCAL_AS]));
        assert_eq!(to_e.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 254))));
        let to_i = advertised(&rib, i, p).unwrap();
        assert_eq!(to_i.as_path, AsPath::default());
        assert_eq!(to_i.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 254))));
        assert_eq!(to_i.local_pref, Some(100));
        assert_eq!(rib.drain_adj_rib_out(local, 10), Err(RibError::PeerNotUp(local)));
        // A learned route with a shorter path does not beat ours: ours has the empty path.
        announce(&mut rib, e, &[p], &route(&[65001], 1));
        assert_eq!(rib.best(&p).unwrap().route.peer, local);
    }

    #[test]
    fn ipv6_rib_works_the_same() {
        use core::net::Ipv6Addr;
        let mut rib: Rib<Ipv6Prefix> = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(10, 255, 0, 1)));
        let our_hop =
            NextHop::V6 { global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe), link_local: None };
        let mut config = peer_config(1, 65001, Some(Policy::accept_all()), Some(Policy::accept_all()));
        config.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        config.next_hop_self = our_hop;
        let from = rib.add_peer(config.clone()).unwrap();
        config.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        config.remote_as = 65002;
        let to = rib.add_peer(config).unwrap();
        rib.peer_up(from, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        rib.peer_up(to, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        let p = Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), 48).unwrap();
        let attrs = PathAttributes {
            as_path: AsPath::from_sequence(&[65001]),
            next_hop: Some(NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                link_local: None,
            }),
            ..PathAttributes::default()
        };
        rib.update(from, &[], &[p], &attrs, &reachable).unwrap();
        assert_eq!(rib.best(&p).unwrap().route.peer, from);
        let changes = rib.drain_adj_rib_out(to, 10).unwrap();
        let Some(OutChange::Advertise { attrs: id, .. }) = changes.first() else { panic!("{changes:?}") };
        assert_eq!(rib.attrs(*id).unwrap().next_hop, Some(our_hop));
        assert_eq!(changes.last(), Some(&OutChange::EndOfRib));
    }

    /// A run of prefixes with one best route is exported once: every advertisement shares one
    /// set, and the references the export cache took are all given back.
    #[test]
    fn a_run_of_prefixes_with_one_route_shares_one_exported_set() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let b = ebgp(&mut rib, 2, 65002);
        let prefixes: Vec<Ipv4Prefix> = (0..50).map(|n| pfx(10, n, 0, 16)).collect();
        announce(&mut rib, a, &prefixes, &route(&[65001, 7], 1));
        announce(&mut rib, b, &prefixes[..1], &route(&[65002], 2)); // b's best: not sent back to b
        let changes = drain_all(&mut rib, b);
        assert_eq!(changes.len(), 49);
        let ids: Vec<AttrId> = changes
            .iter()
            .filter_map(|c| match c {
                OutChange::Advertise { attrs, .. } => Some(*attrs),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 49);
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(rib.attrs(ids[0]).unwrap().as_path, AsPath::from_sequence(&[LOCAL_AS, 65001, 7]));
        assert_eq!(rib.attrs_refs(ids[0]), 49, "one reference per advertised prefix, none left over");
        rib.remove_peer(a, &reachable).unwrap();
        rib.remove_peer(b, &reachable).unwrap();
        assert_eq!(rib.attr_sets(), 0);
    }

    #[test]
    fn own_as_in_path_is_a_loop() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        announce(&mut rib, a, &[pfx(10, 0, 0, 8)], &route(&[65001, LOCAL_AS, 3], 1));
        assert!(rib.best(&pfx(10, 0, 0, 8)).is_none());
        assert_eq!(rib.peer_counts(a).unwrap().received, 1);
    }

    #[test]
    fn import_policy_changes_are_post_policy_only_and_ebgp_local_pref_is_ignored() {
        let mut rib = rib();
        let prefer = Policy {
            terms: alloc::vec![
                Term {
                    matches: alloc::vec![Match::AsPathContains(65099)],
                    actions: alloc::vec![Action::SetLocalPref(200)],
                    verdict: Verdict::Accept,
                },
                Term { matches: alloc::vec![], actions: alloc::vec![], verdict: Verdict::Accept },
            ],
        };
        let a = rib.add_peer(peer_config(1, 65001, Some(prefer), None)).unwrap();
        rib.peer_up(a, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        let b = ebgp(&mut rib, 2, 65002);
        let p = pfx(10, 0, 0, 8);
        let mut long = route(&[65001, 65099, 3], 1);
        long.local_pref = Some(500); // from eBGP: ignored
        announce(&mut rib, a, &[p], &long);
        let mut short = route(&[65002], 2);
        short.local_pref = Some(1000);
        announce(&mut rib, b, &[p], &short);
        let best = rib.best(&p).unwrap();
        assert_eq!((best.route.peer, best.route.reason), (a, BestReason::Step(Step::LocalPref)));
        assert_eq!(best.attrs.local_pref, Some(200));
        let pre = rib.adj_rib_in_page(a, RibView::PrePolicy, &mut RibCursor::new(), 1).unwrap();
        assert_eq!(pre[0].attrs.local_pref, Some(500), "pre-policy kept as received");
        let post = rib.adj_rib_in_page(b, RibView::PostPolicy, &mut RibCursor::new(), 1).unwrap();
        assert_eq!(post[0].attrs.local_pref, None);
        // Soft reconfiguration: a new import policy applied from the pre-policy table.
        rib.set_import_policy(a, Some(Policy::default())).unwrap();
        let mut cursor = RibCursor::new();
        rib.refresh_import(a, &mut cursor, 10, &reachable).unwrap();
        assert!(cursor.is_done());
        assert_eq!(rib.best(&p).unwrap().route.peer, b);
    }

    #[test]
    fn unreachable_next_hop_is_not_eligible_until_the_igp_says_so() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let b = ebgp(&mut rib, 2, 65002);
        let p = pfx(10, 0, 0, 8);
        let only_b = |hop: &NextHop| if *hop == nh(2) { Some(1) } else { None };
        rib.update(a, &[], &[p], &route(&[65001], 1), &only_b).unwrap();
        assert!(rib.best(&p).is_none());
        rib.update(b, &[], &[p], &route(&[65002, 5, 6], 2), &only_b).unwrap();
        assert_eq!(rib.best(&p).unwrap().route.peer, b);
        rib.refresh_import(a, &mut RibCursor::new(), 10, &reachable).unwrap();
        assert_eq!(rib.best(&p).unwrap().route.peer, a);
    }

    #[test]
    fn prefix_limit_actions() {
        for (action, expect_kept) in [
            (LimitAction::Warn, 5),
            (LimitAction::Block, 3),
            (LimitAction::Restart, 3),
            (LimitAction::Disable, 3),
        ] {
            let mut rib = rib();
            let mut config = peer_config(1, 65001, Some(Policy::accept_all()), None);
            config.prefix_limit = Some(PrefixLimit { max: 3, action });
            let peer = rib.add_peer(config).unwrap();
            rib.peer_up(peer, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
            let attrs = route(&[65001], 1);
            let first: Vec<Ipv4Prefix> = (0..3).map(|n| pfx(10, n, 0, 16)).collect();
            let out = rib.update(peer, &[], &first, &attrs, &reachable).unwrap();
            assert_eq!(out.limit, None, "{action:?} at the limit is fine");
            let more: Vec<Ipv4Prefix> = (0..5).map(|n| pfx(10, n, 0, 16)).collect();
            let out = rib.update(peer, &[], &more, &attrs, &reachable).unwrap();
            assert_eq!(rib.peer_counts(peer).unwrap().received, expect_kept, "{action:?}");
            let expected = match action {
                LimitAction::Warn => LimitOutcome::Warn { count: 5, max: 3 },
                LimitAction::Block => LimitOutcome::Block { dropped: 2, max: 3 },
                LimitAction::Restart => LimitOutcome::Restart { dropped: 2, max: 3 },
                LimitAction::Disable => LimitOutcome::Disable { dropped: 2, max: 3 },
            };
            assert_eq!(out.limit, Some(expected));
            // Updates to prefixes already held still apply, and are no new crossing.
            let out = rib.update(peer, &[], &first, &route(&[65001], 2), &reachable).unwrap();
            assert_eq!(out.limit, None, "{action:?}");
            assert_eq!(out.announced, 3);
        }
    }

    #[test]
    fn graceful_restart_keeps_stale_routes_until_the_sweep() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let keep = pfx(10, 0, 0, 8);
        let lose = pfx(11, 0, 0, 8);
        announce(&mut rib, a, &[keep, lose], &route(&[65001], 1));
        rib.session_down(a).unwrap();
        assert_eq!(rib.mark_stale(a).unwrap(), 2);
        assert!(rib.best(&lose).is_some(), "stale routes still forward");
        rib.peer_up(a, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        announce(&mut rib, a, &[keep], &route(&[65001], 1));
        assert_eq!(rib.peer_counts(a).unwrap().stale, 1);
        let mut cursor = RibCursor::new();
        let mut removed = 0;
        while !cursor.is_done() {
            removed += rib.sweep_stale(a, &mut cursor, 1, &reachable).unwrap();
        }
        assert_eq!(removed, 1);
        assert!(rib.best(&lose).is_none());
        assert!(rib.best(&keep).is_some());
        assert_eq!(rib.peer_counts(a).unwrap().stale, 0);
    }

    #[test]
    fn flush_in_slices_and_remove_peer_free_everything() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let prefixes: Vec<Ipv4Prefix> = (0..20).map(|n| pfx(10, n, 0, 16)).collect();
        announce(&mut rib, a, &prefixes, &route(&[65001], 1));
        rib.session_down(a).unwrap();
        assert_eq!(rib.flush_peer(a, 5, &reachable).unwrap(), 15);
        assert_eq!(rib.loc_rib().len(), 15);
        rib.remove_peer(a, &reachable).unwrap();
        assert_eq!(rib.loc_rib().len(), 0);
        assert_eq!(rib.attr_sets(), 0);
        assert_eq!(rib.peer_counts(a), Err(RibError::UnknownPeer(a)));
        assert_eq!(rib.add_peer(peer_config(2, 65002, None, None)), Ok(a), "slot reused");
    }

    #[test]
    fn loc_rib_cursor_under_churn_reads_each_stable_prefix_once() {
        let mut rib = rib();
        let a = ebgp(&mut rib, 1, 65001);
        let stable: Vec<Ipv4Prefix> = (0..=255).map(|n| pfx(10, n, 0, 16)).collect();
        announce(&mut rib, a, &stable, &route(&[65001], 1));
        let mut cursor = RibCursor::new();
        let mut seen = Vec::new();
        let mut round = 0u8;
        while !cursor.is_done() {
            seen.extend(rib.loc_rib_page(&mut cursor, 7).iter().map(|r| r.prefix));
            // Churn between slices: flapping prefixes interleaved with the stable ones.
            round = round.wrapping_add(37);
            let flap = pfx(10, round, 128, 24);
            announce(&mut rib, a, &[flap], &route(&[65001], 2));
            rib.update(
                a,
                &[pfx(10, round.wrapping_add(100), 128, 24)],
                &[],
                &PathAttributes::default(),
                &reachable,
            )
            .unwrap();
        }
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "nothing read twice");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
        for prefix in &stable {
            assert!(seen.contains(prefix), "{prefix:?} present throughout must be read");
        }
    }

    /// Random announcements, withdrawals and session flaps from several peers, with the
    /// Loc-RIB feed and every Adj-RIB-Out drained in random small slices on the way. At the end
    /// the FIB's view must equal the Loc-RIB, each peer's view (built only from the changes it
    /// was sent) must equal what a fresh export computes, and every attribute set must be freed.
    #[test]
    fn seeded_churn_keeps_every_view_consistent_and_frees_all_attributes() {
        use alloc::collections::BTreeMap;
        let mut rng = Csprng::seed_from_u64(1);
        let mut next = move |bound: u64| rng.next_u64() % bound;
        let mut config = RibConfig::new(LOCAL_AS, Ipv4Addr::new(10, 255, 0, 1));
        config.cluster_id = Some(Ipv4Addr::new(10, 255, 0, 100));
        let mut rib: Rib<Ipv4Prefix> = Rib::new(config);
        let peers = [
            ebgp(&mut rib, 1, 65001),
            ebgp(&mut rib, 2, 65002),
            ibgp(&mut rib, 3, false),
            ibgp(&mut rib, 4, true),
            ebgp(&mut rib, 5, 65005),
        ];
        let local = rib.add_local_source().unwrap();
        let fib = rib.add_loc_consumer().unwrap();
        let mut fib_view: BTreeMap<Ipv4Prefix, LocRoute> = BTreeMap::new();
        let mut sent: Vec<BTreeMap<Ipv4Prefix, PathAttributes>> = alloc::vec![BTreeMap::new(); peers.len()];
        let prefixes: Vec<Ipv4Prefix> = (0..16).map(|n| pfx(10, n, 0, 16)).collect();
        let apply = |rib: &Rib<Ipv4Prefix>, view: &mut BTreeMap<Ipv4Prefix, PathAttributes>, changes| {
            for change in changes {
                match change {
                    OutChange::Advertise { prefix, attrs } => {
                        view.insert(prefix, rib.attrs(attrs).unwrap().clone())
                    }
                    OutChange::Withdraw { prefix } => view.remove(&prefix),
                    OutChange::EndOfRib => None,
                };
            }
        };
        for _ in 0..3000 {
            let which = next(peers.len() as u64 + 1) as usize;
            let source = peers.get(which).copied().unwrap_or(local);
            let prefix = prefixes[next(16) as usize];
            match next(20) {
                0 if source != local => {
                    rib.peer_down(source, &reachable).unwrap();
                    sent[which].clear();
                    rib.peer_up(source, Ipv4Addr::new(10, 0, 0, which as u8 + 1)).unwrap();
                }
                1..=6 => {
                    rib.update(source, &[prefix], &[], &PathAttributes::default(), &reachable).unwrap();
                }
                _ => {
                    let mut attrs =
                        route(&[65001 + next(3) as u32; 2][..1 + next(2) as usize], next(3) as u8);
                    attrs.med = Some(next(3) as u32);
                    attrs.local_pref = Some(100 + next(2) as u32);
                    announce(&mut rib, source, &[prefix], &attrs);
                }
            }
            for change in rib.drain_loc_changes(fib, next(4) as usize).unwrap() {
                match change.best {
                    Some(best) => fib_view.insert(change.prefix, best),
                    None => fib_view.remove(&change.prefix),
                };
            }
            for (index, &peer) in peers.iter().enumerate() {
                let changes = rib.drain_adj_rib_out(peer, next(3) as usize).unwrap();
                apply(&rib, &mut sent[index], changes);
            }
            let check = prefixes[next(16) as usize];
            assert_eq!(rib.best(&check).is_some(), !rib.routes(&check).is_empty());
        }
        for change in rib.drain_loc_changes(fib, usize::MAX).unwrap() {
            match change.best {
                Some(best) => fib_view.insert(change.prefix, best),
                None => fib_view.remove(&change.prefix),
            };
        }
        let loc: Vec<(Ipv4Prefix, PeerId, AttrId)> =
            rib.loc_rib().iter().map(|(p, r)| (p, r.peer, r.attrs)).collect();
        let seen: Vec<(Ipv4Prefix, PeerId, AttrId)> =
            fib_view.iter().map(|(p, r)| (*p, r.peer, r.attrs)).collect();
        assert_eq!(loc, seen, "the FIB's view is the Loc-RIB");
        let mut exported = 0;
        for (index, &peer) in peers.iter().enumerate() {
            let changes = rib.drain_adj_rib_out(peer, usize::MAX).unwrap();
            apply(&rib, &mut sent[index], changes);
            for prefix in &prefixes {
                let fresh = rib.export(peer, *prefix);
                assert_eq!(sent[index].get(prefix), fresh.as_ref(), "peer {index} {prefix:?}");
                exported += usize::from(fresh.is_some());
            }
        }
        assert!(exported > 20, "the test exercised export ({exported})");
        for peer in peers {
            rib.remove_peer(peer, &reachable).unwrap();
        }
        rib.remove_peer(local, &reachable).unwrap();
        assert_eq!(rib.loc_rib().len(), 0);
        assert_eq!(rib.attr_sets(), 0);
    }
}
