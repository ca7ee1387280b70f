//! The BGP subsystem: the `bulkhead-bgp` sessions and RIBs behind the contract, over TCP 179,
//! installing best paths into the forwarder's FIB as route source `bgp`.
//!
//! ```text
//!   TCP 179 (listener, active opens) ──bytes──▶ Neighbor (FSM) ──Action::Update──▶ Rib<Ipv4Prefix>
//!        ▲                                         │                              Rib<Ipv6Prefix>
//!        └──── pending_output (bounded) ◀── send_update ◀── drain_adj_rib_out ◀──────┤
//!                                                                                    ▼
//!                                           cx.route(Add / Remove) ◀── drain_loc_changes (IPv4)
//! ```
//!
//! One [`Speaker`] (all its state, in the `bgp` domain) per start; `shed` drops it whole, so
//! when every session is gone the domain is back to its baseline.
//!
//! Bounds, and what happens at each:
//! - connections: one listening socket; per neighbor at most [`MAX_CONNS_PER_PEER`] sockets
//!   (ours, the peer's, one being refused); a connection from an address that is not a
//!   configured (and enabled) neighbor is released at once (the peer gets an RST) and counted
//!   in `refused`.
//! - input: at most [`READ_PER_POLL`] octets read per poll over all sessions, in
//!   [`READ_CHUNK`] pieces, each followed by its UPDATEs applied to the RIB; nothing is read
//!   while the domain's room below its soft threshold is under [`SOFT_MARGIN`], while the
//!   supervisor reports pressure, or while a peer's prefix limit says Block (then that peer is
//!   not read for [`BLOCK_PAUSE`]): the peer's TCP window closes (backpressure).
//! - output: each session's unsent octets are bounded by the FSM (`output_limit`); the RIB is
//!   drained for a peer only while a whole slice fits ([`EXPORT_SLICE`] prefixes, each at worst
//!   one maximum message); output the peer does not take for the send hold time drops it
//!   (RFC 9687, in the FSM).
//! - FIB: at most [`FIB_SLICE`] Loc-RIB changes drained per step into `fib_pending`; a full
//!   route queue leaves them there for the next poll (nothing else is drained meanwhile).
//! - table work after a session drops: [`FLUSH_SLICE`] routes per poll per peer.
//! - closing connections linger at most [`CLOSE_LINGER`] for their last NOTIFICATION, then are
//!   released.
//!
//! TTL security (RFC 5082, GTSM), per neighbor: its segments go out with TTL 255 (the listener
//! too, so that our SYN-ACK passes the peer's check), and the host stack drops the peer's
//! segments on port 179 below 255 - (hops - 1) before smoltcp sees them, counting them; the
//! guard is asked for through the context at start and goes with a shed. A neighbor whose
//! guard the platform refuses is never started: without its check, GTSM would be a TTL only.

mod bmp;
mod config;
mod show;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_bgp::neighbor::{Action, ConnId, Direction, DownReason, Neighbor, NeighborConfig, State};
use bulkhead_bgp::packet::attribute::{NextHop, PathAttributes, SessionContext};
use bulkhead_bgp::packet::error::{CeaseSubcode, ErrorCode, Rfc7606Action};
use bulkhead_bgp::packet::message::Message;
use bulkhead_bgp::packet::nlri::{Family, Ipv4Prefix, Ipv6Prefix, Prefix};
use bulkhead_bgp::packet::update::{self, Update};
use bulkhead_bgp::policy::{LimitOutcome, Policy};
use bulkhead_bgp::rib::{
    AttrId, LocConsumer, OutChange, PeerConfig, PeerId, Rib, RibConfig, RibCursor, RibPrefix,
};
use smoltcp::socket::tcp::State as TcpState;
use smoltcp::wire::IpAddress;

pub use config::{BgpConfig, NeighborSettings, PolicyRef, SpeakerConfig};

use crate::addr::Ipv4Cidr;
use crate::context::{Context, RouteChange, SocketId, TcpBuffers, TtlGuard, TtlGuardError};
use crate::domain::Domain;
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem};
use crate::time::{Duration, Instant};

/// The BGP port (RFC 4271).
pub const BGP_PORT: u16 = 179;
/// Socket buffers of every BGP connection, allocated in the `bgp` domain. The receive side holds
/// a feeding peer's data in flight while each poll reads only [`READ_PER_POLL`]: with 64 KiB
/// read a poll and a 64 KiB window, one loop turn applied ~16k prefixes (about 90 ms under TCG)
/// and a single peer's 1M-prefix feed took 0.53-0.66x as long as BIRD's in the Linux VM; with
/// 16 KiB a poll and a 256 KiB window, 0.42x (one run), and turns a quarter as long.
pub const BUFFERS: TcpBuffers = TcpBuffers { rx: 256 * 1024, tx: 32 * 1024 };
pub const MAX_CONNS_PER_PEER: usize = 3;
pub const READ_PER_POLL: usize = 16 * 1024;
pub const READ_CHUNK: usize = 4096;
/// Below this room under the soft threshold, no session is read.
pub const SOFT_MARGIN: usize = 128 * 1024;
pub const BLOCK_PAUSE: Duration = Duration::from_secs(1);
/// After a prefix limit with action Restart closed a session, it starts again after this.
pub const LIMIT_RESTART_DELAY: Duration = Duration::from_secs(10);
pub const EXPORT_SLICE: usize = 256;
pub const FIB_SLICE: usize = 256;
pub const FLUSH_SLICE: usize = 1024;
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Unsent UPDATE octets per session (the FSM's `output_limit`).
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// The `bgp` domain's subsystem.
pub struct BgpSubsystem {
    config: BgpConfig,
    speaker: Option<Speaker>,
    /// The last BMP session number given out, kept across sheds so none is reused.
    next_session: u64,
}

impl BgpSubsystem {
    pub fn new(config: BgpConfig) -> BgpSubsystem {
        BgpSubsystem { config, speaker: None, next_session: 0 }
    }
}

/// Why a session was last down or refused, for `show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastError {
    NotificationSent(ErrorCode),
    NotificationReceived(ErrorCode),
    TcpClosed,
    ConnectFailed,
    PrefixLimit(LimitOutcome),
    /// TTL security is configured but the platform refused its guard: never started.
    TtlSecurity(TtlGuardError),
}

/// A neighbor's TTL security (RFC 5082), as the platform granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gtsm {
    Off,
    /// The host drops the peer's segments below `min_ttl`.
    Guarded {
        min_ttl: u8,
    },
    /// Configured, refused by the platform: the neighbor is not started.
    Refused(TtlGuardError),
}

/// One TCP connection of a neighbor.
#[derive(Clone, Copy, Debug)]
struct Conn {
    id: ConnId,
    socket: SocketId,
    dir: Direction,
    /// Reported to the FSM as connected.
    up: bool,
}

/// One configured neighbor: its session, its place in both RIBs, its sockets.
pub struct Peer {
    pub settings: NeighborSettings,
    /// Our address towards it (our next hop for it).
    local: Ipv4Addr,
    /// Its BMP session number while established (0: none).
    bmp_session: u64,
    gtsm: Gtsm,
    fsm: Neighbor,
    id4: PeerId,
    id6: PeerId,
    conns: Vec<Conn>,
    up_since: Option<Instant>,
    ctx: SessionContext,
    max_len: usize,
    families: Vec<Family>,
    last_error: Option<LastError>,
    blocked_until: Option<Instant>,
    disabled: bool,
    restart_at: Option<Instant>,
    flushing: bool,
    sweep4: Option<RibCursor<Ipv4Prefix>>,
    sweep6: Option<RibCursor<Ipv6Prefix>>,
    updates: u64,
    /// UPDATEs treated as withdraw (RFC 7606) this session, and the prefixes they announced:
    /// BMP statistics 11 and 12.
    treated_as_withdraw: (u64, u64),
    sessions: u64,
}

impl Peer {
    /// Not disabled, and its TTL security (if any) in force.
    fn startable(&self) -> bool {
        !self.disabled && !matches!(self.gtsm, Gtsm::Refused(_))
    }
}

/// Everything BGP holds while it runs.
pub struct Speaker {
    asn: u32,
    router_id: Ipv4Addr,
    rib4: Rib<Ipv4Prefix>,
    rib6: Rib<Ipv6Prefix>,
    peers: Vec<Peer>,
    listener: Option<SocketId>,
    /// The listener's TTL: 255 while a neighbor has TTL security (our SYN-ACK must pass).
    listen_ttl: Option<u8>,
    closing: Vec<(SocketId, Instant)>,
    fib: Option<LocConsumer>,
    fib_pending: VecDeque<RouteChange>,
    connected: Vec<Ipv4Cidr>,
    pressure: bool,
    refused: u64,
    next_conn: u32,
    fib_refused: u64,
    /// The last BMP session number given out.
    next_session: u64,
    /// Events BMP did not take (its channel full, or BMP down).
    bmp_refused: u64,
}

/// The IGP cost of a next hop: 0 on a connected subnet, 1 beyond (the forwarder resolves it
/// through the FIB when the route is installed); our own or an unspecified address is
/// unusable.
fn igp(connected: &[Ipv4Cidr]) -> impl Fn(&NextHop) -> Option<u32> + '_ {
    move |nh: &NextHop| match nh {
        NextHop::V4(a) if a.is_unspecified() || connected.iter().any(|c| c.addr == *a) => None,
        NextHop::V4(a) if connected.iter().any(|c| c.contains(*a)) => Some(0),
        NextHop::V4(_) => Some(1),
        NextHop::V6 { .. } => Some(0),
    }
}

impl Speaker {
    fn new(cfg: &SpeakerConfig, cx: &mut Context<'_>) -> Result<Speaker, StartError> {
        let connected: Vec<Ipv4Cidr> = cx.addresses().to_vec();
        // The attribute sets' hash is keyed per start: peers cannot precompute collisions.
        let rib_config = RibConfig { hash_seed: cx.rng.next_u64(), ..RibConfig::new(cfg.asn, cfg.router_id) };
        let mut rib4 = Rib::new(rib_config);
        let mut rib6 = Rib::new(rib_config);
        let mut peers = Vec::with_capacity(cfg.neighbors.len());
        for n in &cfg.neighbors {
            let local = n
                .local_address
                .or_else(|| connected.iter().find(|c| c.contains(n.address)).map(|c| c.addr))
                .unwrap_or(cfg.router_id);
            let import = n.import.policy();
            let peer4 = PeerConfig {
                addr: IpAddr::V4(n.address),
                remote_as: n.asn,
                next_hop_self: NextHop::V4(local),
                rr_client: false,
                import: import.clone(),
                export: n.export.policy(),
                prefix_limit: n.prefix_limit,
            };
            // IPv6 routes are kept and shown, never advertised: the appliance has no IPv6
            // address to put as their next hop.
            let peer6 = PeerConfig {
                next_hop_self: NextHop::V6 { global: Ipv6Addr::UNSPECIFIED, link_local: None },
                export: Some(Policy::default()),
                ..peer4.clone()
            };
            let id4 = rib4.add_peer(peer4).map_err(|_| StartError::Failed)?;
            let id6 = rib6.add_peer(peer6).map_err(|_| StartError::Failed)?;
            let mut nc = NeighborConfig::new(cfg.asn, n.asn, cfg.router_id);
            nc.hold_time = n.hold_time;
            nc.connect_retry = cfg.connect_retry;
            nc.passive = n.passive;
            nc.graceful_restart = n.graceful_restart.then_some(120);
            nc.enforce_first_as = n.enforce_first_as;
            nc.output_limit = OUTPUT_LIMIT;
            let gtsm = match n.ttl_security {
                None => Gtsm::Off,
                Some(min_ttl) => match cx.ttl_guard(TtlGuard { peer: n.address, port: BGP_PORT, min_ttl }) {
                    Ok(()) => Gtsm::Guarded { min_ttl },
                    Err(e) => Gtsm::Refused(e),
                },
            };
            peers.push(Peer {
                settings: n.clone(),
                local,
                bmp_session: 0,
                gtsm,
                last_error: match gtsm {
                    Gtsm::Refused(e) => Some(LastError::TtlSecurity(e)),
                    _ => None,
                },
                fsm: Neighbor::new(nc),
                id4,
                id6,
                conns: Vec::with_capacity(MAX_CONNS_PER_PEER),
                up_since: None,
                ctx: SessionContext::default(),
                max_len: bulkhead_bgp::packet::message::MAX_LEN,
                families: Vec::new(),
                blocked_until: None,
                disabled: false,
                restart_at: None,
                flushing: false,
                sweep4: None,
                sweep6: None,
                updates: 0,
                treated_as_withdraw: (0, 0),
                sessions: 0,
            });
        }
        if !cfg.networks.is_empty() {
            let local4 = rib4.add_local_source().map_err(|_| StartError::Failed)?;
            let local6 = rib6.add_local_source().map_err(|_| StartError::Failed)?;
            let attrs = PathAttributes::default();
            let cost = igp(&connected);
            let v4: Vec<Ipv4Prefix> = cfg
                .networks
                .iter()
                .filter_map(|p| if let Prefix::V4(p) = p { Some(*p) } else { None })
                .collect();
            let v6: Vec<Ipv6Prefix> = update::ipv6_prefixes(&cfg.networks).collect();
            rib4.update(local4, &[], &v4, &attrs, &cost).map_err(|_| StartError::Failed)?;
            rib6.update(local6, &[], &v6, &attrs, &cost).map_err(|_| StartError::Failed)?;
        }
        let fib = rib4.add_loc_consumer().ok();
        let listen_ttl = peers.iter().any(|p| matches!(p.gtsm, Gtsm::Guarded { .. })).then_some(255);
        Ok(Speaker {
            asn: cfg.asn,
            router_id: cfg.router_id,
            rib4,
            rib6,
            peers,
            listener: None,
            listen_ttl,
            closing: Vec::new(),
            fib,
            fib_pending: VecDeque::with_capacity(FIB_SLICE),
            connected,
            pressure: false,
            refused: 0,
            next_conn: 0,
            fib_refused: 0,
            next_session: 0,
            bmp_refused: 0,
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        let now = cx.now;
        self.connected.clear();
        self.connected.extend_from_slice(cx.addresses());
        if cx.take_route_resync() {
            self.resync_fib();
        }
        self.accept(cx);
        let mut read_budget = READ_PER_POLL;
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else { continue };
            if p.restart_at.is_some_and(|t| now >= t) {
                p.restart_at = None;
                if p.startable() {
                    p.fsm.start(now);
                }
            }
            if p.blocked_until.is_some_and(|t| now >= t) {
                p.blocked_until = None;
            }
            p.fsm.poll(now);
            self.actions(i, cx);
            self.io(i, cx, &mut read_budget);
        }
        let mut left = read_budget == 0;
        left |= self.export(cx);
        left |= self.table_work();
        left |= self.feed_fib(cx);
        self.reap_closing(cx);
        left
    }

    /// Moves a connection off the listener: to its neighbor, or refused with an RST.
    fn accept(&mut self, cx: &mut Context<'_>) {
        if let Some(l) = self.listener {
            let (state, remote) = match cx.tcp(l) {
                Ok(s) => (Some(s.state()), s.remote_endpoint()),
                Err(_) => (None, None),
            };
            if state != Some(TcpState::Listen) {
                self.listener = None;
                let from = match remote.map(|e| e.addr) {
                    Some(IpAddress::Ipv4(a)) => Some(a),
                    _ => None,
                };
                let peer = from.and_then(|a| {
                    self.peers.iter().position(|p| {
                        p.settings.address == a && p.startable() && p.conns.len() < MAX_CONNS_PER_PEER
                    })
                });
                match (state, peer) {
                    (Some(_), Some(i)) => {
                        let id = self.conn_id();
                        if let Some(p) = self.peers.get_mut(i) {
                            if let Ok(s) = cx.tcp(l) {
                                s.set_hop_limit(Some(p.settings.ttl));
                            }
                            p.conns.push(Conn { id, socket: l, dir: Direction::Incoming, up: false });
                        }
                    }
                    _ => {
                        let _ = cx.tcp_release(l);
                        self.refused += 1;
                    }
                }
            }
        }
        if self.listener.is_none() {
            self.listener = cx.tcp_listen(BGP_PORT, BUFFERS).ok();
            if let (Some(l), Some(ttl)) = (self.listener, self.listen_ttl) {
                if let Ok(s) = cx.tcp(l) {
                    s.set_hop_limit(Some(ttl));
                }
            }
        }
    }

    fn conn_id(&mut self) -> ConnId {
        self.next_conn = self.next_conn.wrapping_add(1);
        ConnId(self.next_conn)
    }

    /// Carries out what the FSM of peer `i` asked for.
    fn actions(&mut self, i: usize, cx: &mut Context<'_>) {
        let now = cx.now;
        loop {
            let Some(p) = self.peers.get_mut(i) else { return };
            let Some(action) = p.fsm.pop_action() else { return };
            match action {
                Action::Connect => {
                    let remote = (p.settings.address, BGP_PORT);
                    match cx.tcp_connect(p.settings.local_address, remote, BUFFERS) {
                        Ok(socket) => {
                            if let Ok(s) = cx.tcp(socket) {
                                s.set_hop_limit(Some(p.settings.ttl));
                            }
                            let id = self.conn_id();
                            if let Some(p) = self.peers.get_mut(i) {
                                p.conns.push(Conn { id, socket, dir: Direction::Outgoing, up: false });
                            }
                        }
                        Err(_) => {
                            p.last_error = Some(LastError::ConnectFailed);
                            p.fsm.tcp_connect_failed(now);
                        }
                    }
                }
                Action::Close { conn, last } => {
                    if let Some(at) = p.conns.iter().position(|c| c.id == conn) {
                        let c = p.conns.remove(at);
                        if let Ok(s) = cx.tcp(c.socket) {
                            if !last.is_empty() {
                                let _ = s.send_slice(&last);
                            }
                            s.close();
                        }
                        self.closing.push((c.socket, now + CLOSE_LINGER));
                    }
                }
                Action::Established(n) => {
                    if p.flushing {
                        // A new session before the old routes were flushed: finish now.
                        let cost = igp(&self.connected);
                        let _ = self.rib4.peer_down(p.id4, &cost);
                        let _ = self.rib6.peer_down(p.id6, &cost);
                        p.flushing = false;
                    }
                    p.up_since = Some(now);
                    p.sessions += 1;
                    p.treated_as_withdraw = (0, 0);
                    p.ctx = n.ctx;
                    p.max_len = n.max_len();
                    p.families = n.families.clone();
                    if n.families.contains(&Family::Ipv4Unicast) {
                        let _ = self.rib4.peer_up(p.id4, n.peer_id);
                    }
                    if n.families.contains(&Family::Ipv6Unicast) {
                        let _ = self.rib6.peer_up(p.id6, n.peer_id);
                    }
                    self.bmp_up(i, cx);
                }
                Action::Update(parsed) => {
                    p.updates += 1;
                    if parsed.action == Some(Rfc7606Action::TreatAsWithdraw) {
                        p.treated_as_withdraw.0 += 1;
                        p.treated_as_withdraw.1 += parsed.treated_as_withdrawn as u64;
                    }
                    self.apply_update(i, cx, &parsed.update);
                    self.bmp_update(i, cx, &parsed.update);
                }
                Action::RouteRefresh(Family::Ipv4Unicast) => {
                    let _ = self.rib4.route_refresh(p.id4);
                }
                Action::RouteRefresh(Family::Ipv6Unicast) => {
                    let _ = self.rib6.route_refresh(p.id6);
                }
                Action::EndOfRib(family) => {
                    match family {
                        Family::Ipv4Unicast => p.sweep4 = Some(RibCursor::new()),
                        Family::Ipv6Unicast => p.sweep6 = Some(RibCursor::new()),
                    }
                    self.bmp_end_of_rib(i, cx, family);
                }
                Action::DropStale(family) => match family {
                    Family::Ipv4Unicast => p.sweep4 = Some(RibCursor::new()),
                    Family::Ipv6Unicast => p.sweep6 = Some(RibCursor::new()),
                },
                Action::Down { reason, stale } => {
                    p.up_since = None;
                    // Nothing of a session outlives it (the domain goes back to its baseline).
                    p.families = Vec::new();
                    p.last_error = Some(last_error(&reason));
                    p.blocked_until = None;
                    let _ = self.rib4.session_down(p.id4);
                    let _ = self.rib6.session_down(p.id6);
                    match stale {
                        Some(stale) => {
                            // Graceful restart helper: every route kept, marked stale; the
                            // families the peer does not preserve are swept at once.
                            let _ = self.rib4.mark_stale(p.id4);
                            let _ = self.rib6.mark_stale(p.id6);
                            if !stale.families.contains(&Family::Ipv4Unicast) {
                                p.sweep4 = Some(RibCursor::new());
                            }
                            if !stale.families.contains(&Family::Ipv6Unicast) {
                                p.sweep6 = Some(RibCursor::new());
                            }
                        }
                        None => p.flushing = true,
                    }
                    self.bmp_down(i, cx, &reason);
                }
                Action::Failed(reason) => p.last_error = Some(last_error(&reason)),
            }
        }
    }

    /// Applies one UPDATE of peer `i` to the RIBs, and the prefix limit's outcome.
    fn apply_update(&mut self, i: usize, cx: &mut Context<'_>, u: &Update) {
        let now = cx.now;
        let Some(p) = self.peers.get_mut(i) else { return };
        let cost = igp(&self.connected);
        let empty = PathAttributes::default();
        let attrs = u.attributes.as_ref().unwrap_or(&empty);
        let mut outcomes = [None, None];
        if !u.withdrawn.is_empty() || !u.nlri.is_empty() {
            outcomes[0] =
                self.rib4.update(p.id4, &u.withdrawn, &u.nlri, attrs, &cost).ok().and_then(|o| o.limit);
        }
        let withdrawn6: Vec<Ipv6Prefix> =
            u.mp_unreach.iter().flat_map(|m| update::ipv6_prefixes(&m.withdrawn)).collect();
        let (announced6, next_hop6) = match &u.mp_reach {
            Some(r) if r.family == Family::Ipv6Unicast => {
                (update::ipv6_prefixes(&r.nlri).collect(), Some(r.next_hop))
            }
            _ => (Vec::new(), None),
        };
        if !withdrawn6.is_empty() || !announced6.is_empty() {
            let mut attrs6 = attrs.clone();
            attrs6.next_hop = next_hop6;
            outcomes[1] =
                self.rib6.update(p.id6, &withdrawn6, &announced6, &attrs6, &cost).ok().and_then(|o| o.limit);
        }
        for outcome in outcomes.into_iter().flatten() {
            p.last_error = Some(LastError::PrefixLimit(outcome));
            match outcome {
                LimitOutcome::Warn { .. } => {}
                LimitOutcome::Block { .. } => p.blocked_until = Some(now + BLOCK_PAUSE),
                LimitOutcome::Restart { .. } => {
                    p.fsm.stop(now, CeaseSubcode::MaxPrefixesReached, None);
                    p.restart_at = Some(now + LIMIT_RESTART_DELAY);
                }
                LimitOutcome::Disable { .. } => {
                    p.fsm.stop(now, CeaseSubcode::MaxPrefixesReached, None);
                    p.disabled = true;
                }
            }
        }
    }

    /// The sockets of peer `i`: connection progress, output, input (within `read_budget`).
    fn io(&mut self, i: usize, cx: &mut Context<'_>, read_budget: &mut usize) {
        let now = cx.now;
        let mut at = 0;
        loop {
            let Some(p) = self.peers.get_mut(i) else { return };
            let Some(&conn) = p.conns.get(at) else { return };
            let state = cx.tcp(conn.socket).map(|s| s.state()).unwrap_or(TcpState::Closed);
            if !conn.up {
                match state {
                    TcpState::Established => {
                        if let Some(c) = p.conns.get_mut(at) {
                            c.up = true;
                        }
                        p.fsm.tcp_connected(now, conn.id, conn.dir);
                        self.actions(i, cx);
                        continue; // the FSM may have closed it: look at slot `at` again
                    }
                    TcpState::Closed | TcpState::TimeWait | TcpState::CloseWait => {
                        p.conns.remove(at);
                        let _ = cx.tcp_release(conn.socket);
                        if conn.dir == Direction::Outgoing {
                            p.last_error = Some(LastError::ConnectFailed);
                            p.fsm.tcp_connect_failed(now);
                            self.actions(i, cx);
                        }
                        continue;
                    }
                    _ => {
                        at += 1;
                        continue;
                    }
                }
            }
            self.write(i, conn, cx);
            let may_read = !self.pressure
                && cx.room().soft >= SOFT_MARGIN
                && self.fib_pending.len() < FIB_SLICE
                && self.peers.get(i).is_some_and(|p| p.blocked_until.is_none());
            let mut buf = [0u8; READ_CHUNK];
            while may_read && *read_budget > 0 {
                let Ok(s) = cx.tcp(conn.socket) else { break };
                let want = READ_CHUNK.min(*read_budget);
                let n = match s.recv_slice(buf.get_mut(..want).unwrap_or_default()) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                *read_budget -= n;
                let Some(p) = self.peers.get_mut(i) else { return };
                p.fsm.tcp_received(now, conn.id, buf.get(..n).unwrap_or_default());
                self.actions(i, cx);
                let Some(p) = self.peers.get(i) else { return };
                if !p.conns.iter().any(|c| c.id == conn.id) || p.blocked_until.is_some() {
                    break;
                }
                if cx.room().soft < SOFT_MARGIN {
                    break;
                }
            }
            let Some(p) = self.peers.get_mut(i) else { return };
            if !p.conns.iter().any(|c| c.id == conn.id) {
                continue; // closed by the FSM while reading: slot `at` holds the next one
            }
            self.write(i, conn, cx);
            let (state, queued) =
                cx.tcp(conn.socket).map(|s| (s.state(), s.recv_queue())).unwrap_or((TcpState::Closed, 0));
            let gone = matches!(state, TcpState::Closed | TcpState::TimeWait)
                || (matches!(state, TcpState::CloseWait | TcpState::LastAck | TcpState::Closing)
                    && queued == 0);
            let Some(p) = self.peers.get_mut(i) else { return };
            if gone {
                p.conns.retain(|c| c.id != conn.id);
                let _ = cx.tcp_release(conn.socket);
                p.fsm.tcp_closed(now, conn.id);
                self.actions(i, cx);
                continue;
            }
            at += 1;
        }
    }

    /// Writes what the FSM has for `conn`.
    fn write(&mut self, i: usize, conn: Conn, cx: &mut Context<'_>) {
        let Some(p) = self.peers.get_mut(i) else { return };
        let out = p.fsm.pending_output(conn.id);
        if out.is_empty() {
            return;
        }
        let n = cx.tcp(conn.socket).ok().and_then(|s| s.send_slice(out).ok()).unwrap_or(0);
        p.fsm.output_written(cx.now, conn.id, n);
    }

    /// Drains each established peer's Adj-RIB-Out into UPDATEs while its output has room for a
    /// whole slice. True when a peer has more to send.
    fn export(&mut self, cx: &mut Context<'_>) -> bool {
        let now = cx.now;
        let mut left = false;
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else { continue };
            if p.fsm.state() != State::Established {
                continue;
            }
            for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                if !p.families.contains(&family) {
                    continue;
                }
                let room = p.fsm.output_room();
                let slice = (room / p.max_len.max(1)).min(EXPORT_SLICE);
                let pending = match family {
                    Family::Ipv4Unicast => self.rib4.adj_rib_out(p.id4).is_ok_and(|o| !o.is_idle()),
                    Family::Ipv6Unicast => self.rib6.adj_rib_out(p.id6).is_ok_and(|o| !o.is_idle()),
                };
                if !pending {
                    continue;
                }
                if slice == 0 {
                    left = true;
                    continue;
                }
                let messages = match family {
                    Family::Ipv4Unicast => pack(&mut self.rib4, p.id4, slice, p.ctx, p.max_len, family),
                    Family::Ipv6Unicast => pack(&mut self.rib6, p.id6, slice, p.ctx, p.max_len, family),
                };
                for m in messages {
                    if p.fsm.send_update(now, &m).is_err() {
                        // Out of room after all: what was drained is lost to this peer, so
                        // send the whole table again (only differences are skipped).
                        let _ = match family {
                            Family::Ipv4Unicast => self.rib4.route_refresh(p.id4),
                            Family::Ipv6Unicast => self.rib6.route_refresh(p.id6),
                        };
                        break;
                    }
                }
                left = true;
            }
            let conns: Vec<Conn> = p.conns.iter().copied().filter(|c| c.up).collect();
            for c in conns {
                self.write(i, c, cx);
            }
        }
        left
    }

    /// Flushes the routes of sessions that went down and sweeps stale ones, a slice per peer.
    fn table_work(&mut self) -> bool {
        let mut left = false;
        let cost = igp(&self.connected);
        for p in &mut self.peers {
            if p.flushing {
                let l4 = self.rib4.flush_peer(p.id4, FLUSH_SLICE, &cost).unwrap_or(0);
                let l6 = self.rib6.flush_peer(p.id6, FLUSH_SLICE, &cost).unwrap_or(0);
                p.flushing = l4 + l6 > 0;
                left |= p.flushing;
            }
            if let Some(cursor) = p.sweep4.as_mut() {
                let _ = self.rib4.sweep_stale(p.id4, cursor, FLUSH_SLICE, &cost);
                if cursor.is_done() {
                    p.sweep4 = None;
                } else {
                    left = true;
                }
            }
            if let Some(cursor) = p.sweep6.as_mut() {
                let _ = self.rib6.sweep_stale(p.id6, cursor, FLUSH_SLICE, &cost);
                if cursor.is_done() {
                    p.sweep6 = None;
                } else {
                    left = true;
                }
            }
        }
        left
    }

    /// Hands Loc-RIB changes to the FIB. True when changes are left.
    fn feed_fib(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(fib) = self.fib else { return false };
        for _ in 0..4 {
            while let Some(change) = self.fib_pending.front().copied() {
                match cx.route(change) {
                    Ok(()) => {
                        self.fib_pending.pop_front();
                    }
                    Err(crate::context::RouteQueueError::Full) => return true,
                    Err(crate::context::RouteQueueError::NotASource) => {
                        self.fib_refused += self.fib_pending.len() as u64;
                        self.fib_pending.clear();
                    }
                }
            }
            let changes = self.rib4.drain_loc_changes(fib, FIB_SLICE).unwrap_or_default();
            if changes.is_empty() {
                return false;
            }
            for change in changes {
                let Ok(prefix) =
                    bulkhead_net::fib::Prefix::new(change.prefix.addr().to_bits(), change.prefix.len())
                else {
                    continue;
                };
                let via =
                    change.best.and_then(|best| fib_next_hop(self.rib4.attrs(best.attrs)?, &self.connected));
                self.fib_pending.push_back(match via {
                    Some(via) => RouteChange::Add { prefix, via },
                    None => RouteChange::Remove { prefix },
                });
            }
        }
        true
    }

    /// The forwarder restarted: announce every best route again.
    fn resync_fib(&mut self) {
        if let Some(fib) = self.fib.take() {
            let _ = self.rib4.remove_loc_consumer(fib);
        }
        self.fib_pending.clear();
        self.fib = self.rib4.add_loc_consumer().ok();
    }

    fn reap_closing(&mut self, cx: &mut Context<'_>) {
        cx.reap_closing(&mut self.closing);
    }

    fn poll_at(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a: Instant| a.min(t)));
            }
        };
        for p in &self.peers {
            add(p.fsm.poll_at());
            add(p.restart_at);
            add(p.blocked_until);
        }
        for &(_, until) in &self.closing {
            add(Some(until));
        }
        at
    }

    /// Last words before a shed: Cease "Out of Resources" to every session.
    fn farewell(&mut self, cx: &mut Context<'_>) {
        for i in 0..self.peers.len() {
            if let Some(p) = self.peers.get_mut(i) {
                p.fsm.stop(cx.now, CeaseSubcode::OutOfResources, None);
            }
            self.actions(i, cx);
        }
    }

    /// `bgp enable ADDR` / `bgp disable ADDR` / `bgp restart ADDR` / `bgp refresh ADDR`.
    fn operate(&mut self, cx: &mut Context<'_>, verb: &str, addr: Ipv4Addr) -> Result<(), &'static str> {
        let now = cx.now;
        let i = self.peers.iter().position(|p| p.settings.address == addr).ok_or("no such neighbor")?;
        let Some(p) = self.peers.get_mut(i) else { return Err("no such neighbor") };
        if matches!(p.gtsm, Gtsm::Refused(_)) && matches!(verb, "enable" | "restart") {
            return Err("its TTL security is refused by the platform");
        }
        match verb {
            "enable" => {
                p.disabled = false;
                p.restart_at = None;
                p.fsm.start(now);
            }
            "disable" => {
                p.disabled = true;
                p.restart_at = None;
                p.fsm.stop(now, CeaseSubcode::AdministrativeShutdown, None);
            }
            "restart" => {
                p.fsm.stop(now, CeaseSubcode::AdministrativeReset, None);
                if !p.disabled {
                    p.restart_at = Some(now);
                }
            }
            "refresh" => {
                for family in p.families.clone() {
                    p.fsm.send_route_refresh(now, family).map_err(|_| "the session cannot refresh")?;
                }
            }
            _ => return Err("unknown operation"),
        }
        self.actions(i, cx);
        Ok(())
    }
}

/// The IPv4 next hop a best path is installed with in the FIB, if it has a usable one (not
/// unspecified, not one of our addresses). IPv6 paths never are: the forwarder is IPv4 only.
fn fib_next_hop(attrs: &PathAttributes, connected: &[Ipv4Cidr]) -> Option<Ipv4Addr> {
    match attrs.next_hop? {
        NextHop::V4(a) if !a.is_unspecified() && !connected.iter().any(|c| c.addr == a) => Some(a),
        _ => None,
    }
}

/// Drains up to `max` changes of a peer's Adj-RIB-Out and packs them into UPDATE messages.
fn pack<P: RibPrefix>(
    rib: &mut Rib<P>,
    peer: PeerId,
    max: usize,
    ctx: SessionContext,
    max_len: usize,
    family: Family,
) -> Vec<Vec<u8>> {
    let Ok(changes) = rib.drain_adj_rib_out(peer, max) else { return Vec::new() };
    let mut withdrawn: Vec<Prefix> = Vec::new();
    let mut groups: Vec<(AttrId, Vec<Prefix>)> = Vec::new();
    let mut end_of_rib = false;
    for change in changes {
        match change {
            OutChange::Advertise { prefix, attrs } => match groups.iter_mut().find(|(a, _)| *a == attrs) {
                Some((_, list)) => list.push(prefix.into()),
                None => groups.push((attrs, alloc::vec![prefix.into()])),
            },
            OutChange::Withdraw { prefix } => withdrawn.push(prefix.into()),
            OutChange::EndOfRib => end_of_rib = true,
        }
    }
    let mut out = Vec::new();
    if let Ok(messages) = update::pack_withdraw(&withdrawn, ctx, max_len) {
        out.extend(messages);
    }
    for (attrs, prefixes) in &groups {
        if let Some(a) = rib.attrs(*attrs) {
            if let Ok(messages) = update::pack_announce(a, prefixes, ctx, max_len) {
                out.extend(messages);
            }
        }
    }
    if end_of_rib {
        if let Ok(m) = Message::Update(Update::end_of_rib(family)).to_bytes(ctx, max_len) {
            out.push(m);
        }
    }
    out
}

fn last_error(reason: &DownReason) -> LastError {
    match reason {
        DownReason::NotificationSent(n) => LastError::NotificationSent(n.code),
        DownReason::NotificationReceived(n) => LastError::NotificationReceived(n.code),
        DownReason::TcpClosed => LastError::TcpClosed,
    }
}

impl Subsystem for BgpSubsystem {
    fn name(&self) -> &'static str {
        "bgp"
    }

    fn domain(&self) -> Domain {
        Domain::Bgp
    }

    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        let Some(cfg) = self.config.speaker.as_ref() else { return Ok(()) };
        let mut speaker = Speaker::new(cfg, cx)?;
        speaker.next_session = self.next_session;
        for p in speaker.peers.iter_mut().filter(|p| p.startable()) {
            p.fsm.start(cx.now);
        }
        speaker.accept(cx);
        self.speaker = Some(speaker);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        let left = self.speaker.as_mut().is_some_and(|s| s.poll(cx));
        if left {
            PollOutcome::Pending
        } else {
            PollOutcome::Idle
        }
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        self.speaker.as_ref().and_then(Speaker::poll_at)
    }

    fn pressure(&mut self, _cx: &mut Context<'_>, on: bool) {
        if let Some(s) = self.speaker.as_mut() {
            s.pressure = on;
        }
    }

    fn farewell(&mut self, cx: &mut Context<'_>) {
        if let Some(s) = self.speaker.as_mut() {
            s.farewell(cx);
        }
    }

    fn peek(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }

    fn shed(&mut self) {
        if let Some(s) = self.speaker.take() {
            self.next_session = s.next_session;
        }
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match &self.speaker {
            None if self.config.speaker.is_none() => write!(out, "not configured"),
            None => write!(out, "not running"),
            Some(s) => {
                let up = s.peers.iter().filter(|p| p.up_since.is_some()).count();
                write!(
                    out,
                    "AS{} id {}: {} of {} sessions established, {} IPv4 and {} IPv6 best routes, {} refused connections",
                    s.asn,
                    s.router_id,
                    up,
                    s.peers.len(),
                    s.rib4.loc_rib().len(),
                    s.rib6.loc_rib().len(),
                    s.refused
                )
            }
        }
    }

    fn command(&mut self, cx: &mut Context<'_>, words: &[&str], out: &mut dyn Write) -> Option<fmt::Result> {
        command(self.speaker.as_mut()?, cx, words, out)
    }

    fn help(&self) -> &'static str {
        "  show protocols [json]        BGP sessions: state, uptime, prefixes, last error\n  show route count [json]      BGP routes per family\n  show route PREFIX [json]     BGP's best path to PREFIX, its attributes and alternatives\n  bgp enable|disable|restart|refresh ADDR   operate the session with neighbor ADDR\n"
    }
}

/// BGP's console commands (`None`: not one of them).
fn command(
    s: &mut Speaker,
    cx: &mut Context<'_>,
    words: &[&str],
    out: &mut dyn Write,
) -> Option<fmt::Result> {
    {
        let (json, words) = match words.split_last() {
            Some((&"json", rest)) => (true, rest),
            _ => (false, words),
        };
        match words {
            ["show", "protocols"] => Some(show::protocols(s, cx, json, out)),
            ["show", "route", "count"] => Some(show::route_count(s, json, out)),
            ["show", "route", prefix] => show::route(s, prefix, json, out),
            ["bgp", verb @ ("enable" | "disable" | "restart" | "refresh"), addr] if !json => {
                Some(match crate::addr::parse_ipv4(addr) {
                    None => writeln!(out, "bgp {}: not an IPv4 address", verb),
                    Some(a) => match s.operate(cx, verb, a) {
                        Ok(()) => writeln!(out, "bgp {} {}: done", verb, a),
                        Err(e) => writeln!(out, "bgp {} {}: {}", verb, a, e),
                    },
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
