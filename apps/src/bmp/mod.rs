//! The BMP subsystem: the `bulkhead-bmp` exporter behind the contract, one TCP session per
//! collector, fed by BGP through a bounded channel and reading BGP's tables through a view.
//!
//! ```text
//!  bgp domain                          │ bmp domain (everything below is charged here)
//!                                      │
//!  BGP ── cx.tell(Bmp, &Event) ────────┼──▶ accept: Event cloned ──try_push──▶ EventChannel
//!                                      │                        (full: dropped, every collector
//!                                      │                         re-synchronised; BGP never waits)
//!  BGP's peek() ◀── cx.peek(Bgp) ──────┼─── BgpView: sessions, Peer Up, a page of a table after a
//!  (read in place, never copied whole) │    cursor ──▶ Exporter::poll ──▶ per collector SendQueue
//!                                      │                                      │ (bounded, true bytes)
//!                                      │    cx.tcp_connect / tcp(id).send ◀───┘ as the socket takes it
//! ```
//!
//! Lifecycle of one collector (the exporter's state machine, in `bulkhead_bmp::exporter`):
//! Backoff ─connect─▶ Connecting ─TCP up─▶ Dumping (Initiation, then per peer: Peer Up, its
//! table in slices, End-of-RIB) ─▶ Up (incremental updates) ─▶ back to Backoff when the
//! collector closes, the queue hits its bound, or the channel overflowed (Termination first).
//!
//! Bounds, and what happens at each:
//! - the event channel: `[bmp] channel_events` events and `channel_limit` true bytes; at the
//!   bound the event is refused (`tell` returns false at once, BGP goes on) and every
//!   collector is re-synchronised from the tables (Termination, reconnect, fresh dump).
//!   Each collector reads the channel at its own pace; an event is freed when every
//!   connected collector has read it. A collector that is reading (its socket took bytes in
//!   the last 5 s) but whose queue is past half lets its events wait there, unless the
//!   channel is past half: a burst does not drop a collector that is only a burst behind,
//!   and a stalled one holds only its own events, for at most those 5 s.
//! - each collector's send queue: `queue_limit` true bytes; a collector that stops reading
//!   fills it and its session alone is dropped (RST, counted in `drops`, logged), the queue
//!   freed, and it is dumped afresh when it connects again (counted in `resyncs`).
//! - a dump reads [`DUMP_SLICE`] routes at a time, [`DUMP_STEPS_PER_POLL`] slices a poll, and
//!   only while that queue is below half its bound; the attribute sets of one slice are the
//!   only copies BMP makes of BGP's table.
//! - socket writes: at most [`WRITE_PER_POLL`] bytes per poll over all collectors; socket
//!   buffers [`BUFFERS`] each, in the `bmp` domain.
//! - closing sockets linger at most [`CLOSE_LINGER`] for their last bytes, then are reset.
//! - memory pressure (`pressure(true)`): the session holding the largest queue is dropped, and
//!   one more each poll while the domain has no room left below its soft threshold.
//!
//! At rest (every collector up and idle, no BGP session) BMP holds what its configuration
//! says and nothing its history left: a drained queue frees its ring, an emptied peer map its
//! node, a finished dump its buffers, the closing list its block. So after a feed `bmp` is
//! back at its pre-feed bytes and blocks exactly (the seed test asserts it).
//!
//! Peers: BGP names each BMP peer with [`peer_id`]: the session number (unique per session,
//! never reused) and the [`View`] (pre-policy Adj-RIB-In, post-policy, or the Loc-RIB, which is
//! [`LOC_RIB`]). Events of a view that is not configured are taken and dropped at once.
//!
//! # What BGP does for BMP (in `crate::bgp`, not here)
//!
//! - `Subsystem::peek` returns `Some(self)`, and `BgpSubsystem` implements [`BgpView`]: its
//!   established peers by a BMP session number (a counter bumped at each `Established`); their
//!   Peer Up (per-peer header with the V flag for IPv6, both OPENs as sent and received); a page
//!   of `rib4.adj_rib_in_page(id4, view, &mut cursor.v4, max)`, then of `rib6` once `cursor.v4`
//!   is done (likewise `loc_rib_page`); `attrs` may return `None` when events carry
//!   `Attrs::Bytes`; `stats` from `peer_counts` and the Loc-RIB's size; `up_since` (the
//!   Peer Up of a dump is stamped with it).
//! - Per-peer timestamps (RFC 7854 4.2): the `tell_*` helpers stamp each event with
//!   `cx.wall_clock()` in BGP's poll, the time BGP received what it tells; Peer Up, Peer Down
//!   and incremental Route Monitoring carry it. Routes of an initial dump carry zero ("not
//!   available": BGP keeps no receive time per route); Statistics Reports carry the time they
//!   are sent. Without a wall clock (host simulations) everything carries zero.
//! - it tells its events (the result is only counted: BGP never waits on it) with the helpers
//!   here: [`tell_peer_up`] at `Action::Established`, [`tell_update`] after each
//!   `Action::Update` is applied, [`tell_end_of_rib`] at `Action::EndOfRib`, [`tell_peer_down`]
//!   at `Action::Down` (the NOTIFICATION sent or received, whole, else `RemoteNoData`).
//!   Loc-RIB changes, if wanted, from a `LocConsumer`, told as `Routes` of [`LOC_RIB`].
//! - The image registers the view: `BmpSubsystem::new(..).reading::<bgp::BgpSubsystem>()`.

pub mod config;
mod show;

use alloc::vec::Vec;
use core::any::Any;
use core::cell::RefCell;
use core::fmt::{self, Write};
use core::net::IpAddr;

use bulkhead_bgp::packet::attribute::{NextHop, PathAttributes, SessionContext};
use bulkhead_bgp::packet::nlri::{Family as BgpFamily, Ipv4Prefix, Ipv6Prefix, Prefix as BgpPrefix};
use bulkhead_bgp::packet::update::{self, Update};
use bulkhead_bgp::rib::{RibCursor, RibView};
use bulkhead_bmp::exporter::Config as ExporterConfig;
use bulkhead_bmp::packet::{PeerFlags, Stat};
use bulkhead_bmp::{
    Action, Attrs, CollectorId, EncodeError, Encoded, Event, EventChannel, Exporter, PeerId, PeerUpInfo,
    Prefix, RouteGroup, Stamped, Tables, Timestamp, UpdateEncoder,
};
use smoltcp::socket::tcp::State as TcpState;

pub use config::{BmpConfig, Collector};

use crate::context::{Context, SocketId, TcpBuffers};
use crate::domain::Domain;
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem};
use crate::time::{Duration, Instant};

/// Socket buffers of each collector connection (a collector sends BMP nothing but its
/// window: the receive buffer is small), in the `bmp` domain.
pub const BUFFERS: TcpBuffers = TcpBuffers { rx: 1024, tx: 64 * 1024 };
/// Bytes written to sockets per poll, over all collectors.
pub const WRITE_PER_POLL: usize = 256 * 1024;
/// Routes read from BGP's tables per dump step.
pub const DUMP_SLICE: usize = 512;
/// Dump steps per poll, over all collectors: about 2k routes, well under a millisecond of
/// work even under emulation, so that a dump is many short turns (the socket written after
/// each) rather than a few long ones that send nothing while they encode.
pub const DUMP_STEPS_PER_POLL: usize = 4;
/// A connection attempt or an unacknowledged send gives up after this.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(10);
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Which table of BGP a BMP peer stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// A session's Adj-RIB-In as received.
    PrePolicy = 0,
    /// A session's Adj-RIB-In after import policy (the L flag).
    PostPolicy = 1,
    /// The Loc-RIB (RFC 9069), session 0.
    LocRib = 2,
}

/// The BMP peer of a BGP session's table: `session` must be unique per session (a new one
/// after a session went down and came back) and below 2^62.
pub const fn peer_id(session: u64, view: View) -> PeerId {
    PeerId(session << 2 | view as u64)
}

/// The Loc-RIB's peer.
pub const LOC_RIB: PeerId = peer_id(0, View::LocRib);

/// The session and view of a BMP peer.
pub const fn split_peer(peer: PeerId) -> (u64, View) {
    let view = match peer.0 & 3 {
        1 => View::PostPolicy,
        2 => View::LocRib,
        _ => View::PrePolicy,
    };
    (peer.0 >> 2, view)
}

/// Where a walk over one of BGP's tables resumes: IPv4 first, then IPv6.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BgpCursor {
    pub v4: RibCursor<Ipv4Prefix>,
    pub v6: RibCursor<Ipv6Prefix>,
}

impl BgpCursor {
    pub const fn is_done(&self) -> bool {
        self.v4.is_done() && self.v6.is_done()
    }
}

/// What BMP reads of BGP, through `Context::peek(Domain::Bgp)`: every method reads in place
/// and returns at most what it was asked for (never a copy of a table). It runs in the `bmp`
/// domain, so whatever it allocates is BMP's.
pub trait BgpView {
    /// Appends the sessions that are established now.
    fn sessions(&self, out: &mut Vec<u64>);
    /// The Peer Up of `session` (its pre-policy per-peer header, both OPENs); `None` when it
    /// is not up.
    fn peer_up(&self, session: u64) -> Option<PeerUpInfo>;
    /// The Loc-RIB's Peer Up (RFC 9069: peer type 3, our OPEN twice, a table name); `None`
    /// when BGP has no Loc-RIB to offer.
    fn loc_rib_up(&self) -> Option<PeerUpInfo>;
    /// Appends at most `max` routes of `session`'s Adj-RIB-In after `cursor` and moves it
    /// (`cursor.is_done()` when the table has been read).
    fn adj_rib_in_page<'a>(
        &'a self,
        session: u64,
        view: RibView,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(BgpPrefix, &'a PathAttributes)>,
    );
    /// The same over the Loc-RIB's best routes.
    fn loc_rib_page<'a>(
        &'a self,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(BgpPrefix, &'a PathAttributes)>,
    );
    /// An attribute set named by an event's `Attrs::Id` (ids below 2^63).
    fn attrs(&self, id: u64) -> Option<&PathAttributes>;
    /// Appends the Statistics Report of `session` (nothing by default).
    fn stats(&self, session: u64, out: &mut Vec<Stat<'static>>) {
        let _ = (session, out);
    }
    /// When `session` came up, for the timestamp of its Peer Up in a dump (none by default:
    /// "not available").
    fn up_since(&self, session: u64) -> Option<Instant> {
        let _ = session;
        None
    }
}

/// BGP's side of the channel: what `crate::bgp` calls at its hooks, in its own domain (what
/// these build is freed as soon as BMP has copied it). Each returns whether BMP took
/// everything; BGP only counts a refusal, it never waits or retries.
///
/// Each is told with the time BGP received what it tells (`cx.wall_clock()`, the poll in
/// which BGP read it): the per-peer header's timestamp of the Peer Up, Peer Down or Route
/// Monitoring it becomes ("not available" where the platform has no wall clock).
///
/// After `Action::Established`: a Peer Up of `session`'s pre-policy peer.
pub fn tell_peer_up(cx: &mut Context<'_>, session: u64, info: PeerUpInfo) -> bool {
    tell(cx, Event::PeerUp { peer: peer_id(session, View::PrePolicy), info: alloc::boxed::Box::new(info) })
}

/// After `Action::Down`.
pub fn tell_peer_down(cx: &mut Context<'_>, session: u64, reason: bulkhead_bmp::DownReason) -> bool {
    tell(cx, Event::PeerDown { peer: peer_id(session, View::PrePolicy), reason })
}

/// Hands `event` to BMP, stamped with the wall clock now.
fn tell(cx: &mut Context<'_>, event: Event) -> bool {
    let at = wall_timestamp(cx);
    cx.tell(Domain::Bmp, &Stamped { at, event })
}

/// The wall clock now as a BMP timestamp, or "not available".
pub fn wall_timestamp(cx: &Context<'_>) -> Timestamp {
    cx.wall_clock().map_or(Timestamp::UNAVAILABLE, |(secs, micros)| Timestamp::from_unix(secs, micros))
}

/// After `Action::EndOfRib`.
pub fn tell_end_of_rib(cx: &mut Context<'_>, session: u64, family: BgpFamily) -> bool {
    let family = match family {
        BgpFamily::Ipv4Unicast => bulkhead_bmp::Family::IPV4_UNICAST,
        BgpFamily::Ipv6Unicast => bulkhead_bmp::Family::IPV6_UNICAST,
    };
    tell(cx, Event::EndOfRib { peer: peer_id(session, View::PrePolicy), family })
}

/// After an UPDATE of `session` was applied (pre-policy, as received): one `Routes` for what
/// it withdrew, one per family for what it announced, with the attributes as UPDATE bytes.
pub fn tell_update(cx: &mut Context<'_>, session: u64, update: &Update) -> bool {
    let peer = peer_id(session, View::PrePolicy);
    let mut all = true;
    let withdrawn: Vec<Prefix> = update.withdrawn_all().map(to_bmp).collect();
    if !withdrawn.is_empty() {
        all &= tell(cx, Event::Routes { peer, routes: RouteGroup { attrs: None, prefixes: withdrawn } });
    }
    let Some(attrs) = &update.attributes else { return all };
    let v4: Vec<BgpPrefix> = update.nlri.iter().map(|p| BgpPrefix::V4(*p)).collect();
    let mut v6_attrs = attrs.clone();
    let v6: Vec<BgpPrefix> = match &update.mp_reach {
        Some(reach) => {
            v6_attrs.next_hop = Some(reach.next_hop);
            reach.nlri.clone()
        }
        None => Vec::new(),
    };
    for (attrs, prefixes) in [(attrs, v4), (&v6_attrs, v6)] {
        let Some(bytes) = prefixes.first().and_then(|p| attr_bytes(attrs, *p)) else { continue };
        let routes = RouteGroup {
            attrs: Some(Attrs::Bytes(bytes)),
            prefixes: prefixes.into_iter().map(to_bmp).collect(),
        };
        all &= tell(cx, Event::Routes { peer, routes });
    }
    all
}

/// The path attributes of an UPDATE announcing `prefix` with `attrs` (MP_REACH_NLRI with its
/// next hop for IPv6), as BGP's packer writes them.
fn attr_bytes(attrs: &PathAttributes, prefix: BgpPrefix) -> Option<alloc::boxed::Box<[u8]>> {
    let messages = update::pack_announce(attrs, &[prefix], CTX, 4096).ok()?;
    let body = messages.first()?.get(19..)?;
    let withdrawn = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let at = 2 + withdrawn;
    let len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    Some(body.get(at + 2..at + 2 + len)?.into())
}

/// Finds the [`BgpView`] in what the `bgp` domain's subsystem offers with `peek`.
pub type ViewFinder = for<'a> fn(&'a dyn Any) -> Option<&'a dyn BgpView>;

/// A [`ViewFinder`] for a concrete type that implements [`BgpView`].
pub fn view_of<T: BgpView + 'static>(any: &dyn Any) -> Option<&dyn BgpView> {
    any.downcast_ref::<T>().map(|t| t as &dyn BgpView)
}

/// The `bmp` domain's subsystem.
pub struct BmpSubsystem {
    config: BmpConfig,
    finders: Vec<ViewFinder>,
    running: Option<Running>,
}

/// Everything BMP holds while it runs, all of it in the `bmp` domain.
struct Running {
    exporter: Exporter<BgpCursor>,
    channel: EventChannel,
    links: Vec<Link>,
    closing: Vec<(SocketId, Instant)>,
    /// The attribute sets of the current dump slice (see [`SLAB`]).
    slab: RefCell<Vec<PathAttributes>>,
    pressure: bool,
    discarded: u64,
}

/// One collector's socket.
struct Link {
    collector: Collector,
    id: CollectorId,
    socket: Option<SocketId>,
    up: bool,
    /// The exporter's drop count when this link last looked: a Close after a drop resets.
    drops_seen: u64,
}

/// `Attrs::Id` values with this bit name an entry of the dump slice's attribute slab, not one
/// of BGP's ids.
const SLAB: u64 = 1 << 63;

/// Attributes are written as a 4-octet-AS internal session would see them: AS numbers whole,
/// LOCAL_PREF kept (the A flag is clear).
const CTX: SessionContext = SessionContext { four_octet_as: true, external: false };

impl BmpSubsystem {
    /// A subsystem that reads no BGP view yet: add the types BGP's `peek` may offer with
    /// [`BmpSubsystem::reading`]. Without one, collectors get Initiation, events and
    /// statistics, but an initial dump finds no peers.
    pub fn new(config: BmpConfig) -> BmpSubsystem {
        BmpSubsystem { config, finders: Vec::new(), running: None }
    }

    /// Also looks for `T` in what BGP's `peek` offers (tests: a fake BGP).
    pub fn reading<T: BgpView + 'static>(mut self) -> BmpSubsystem {
        self.finders.push(view_of::<T>);
        self
    }

    /// Looks for a view with `finder` in what BGP's `peek` offers.
    pub fn with_finder(mut self, finder: ViewFinder) -> BmpSubsystem {
        self.finders.push(finder);
        self
    }

    pub fn config(&self) -> &BmpConfig {
        &self.config
    }
}

impl Running {
    /// `epoch_micros`: the wall clock's Unix time at `Instant::ZERO`, if the platform has one
    /// (Statistics Reports are stamped with it).
    fn new(config: &BmpConfig, now: Instant, epoch_micros: Option<u64>) -> Running {
        let exporter_config = ExporterConfig {
            sys_name: config.sys_name.clone(),
            sys_descr: config.sys_descr.clone(),
            queue_bound: config.queue_limit,
            dump_slice: DUMP_SLICE,
            dump_steps_per_poll: DUMP_STEPS_PER_POLL,
            stats_interval: config.stats_interval,
            epoch_micros,
            ..ExporterConfig::default()
        };
        let mut exporter = Exporter::new(exporter_config);
        let links = config
            .collectors
            .iter()
            .map(|&collector| Link {
                collector,
                id: exporter.add_collector(now),
                socket: None,
                up: false,
                drops_seen: 0,
            })
            .collect();
        Running {
            exporter,
            channel: EventChannel::new(config.channel_events, config.channel_limit),
            links,
            closing: Vec::new(),
            slab: RefCell::new(Vec::new()),
            pressure: false,
            discarded: 0,
        }
    }

    /// Carries out the exporter's connects and closes.
    fn actions(&mut self, cx: &mut Context<'_>) {
        let now = cx.now;
        while let Some(action) = self.exporter.poll_action(now) {
            match action {
                Action::Connect(id) => {
                    let Some(link) = self.links.get_mut(id.0) else { continue };
                    let remote = (link.collector.address, link.collector.port);
                    match cx.tcp_connect(None, remote, BUFFERS) {
                        Ok(socket) => {
                            if let Ok(s) = cx.tcp(socket) {
                                s.set_timeout(Some(smoltcp::time::Duration::from_micros(
                                    TCP_TIMEOUT.total_micros(),
                                )));
                            }
                            link.socket = Some(socket);
                            link.up = false;
                        }
                        Err(e) => {
                            log::warn!("bmp: collector {}:{} connect refused: {:?}", remote.0, remote.1, e);
                            self.exporter.connect_failed(id, now);
                        }
                    }
                }
                Action::Close(id) => {
                    let drops = self.exporter.collector_status(id).map_or(0, |s| s.counters.drops);
                    let Some(link) = self.links.get_mut(id.0) else { continue };
                    let dropped = drops > link.drops_seen;
                    link.drops_seen = drops;
                    link.up = false;
                    let Some(socket) = link.socket.take() else { continue };
                    if dropped {
                        log::warn!(
                            "bmp: collector {}:{} dropped ({:?}), re-synchronised when it is back",
                            link.collector.address,
                            link.collector.port,
                            self.exporter.collector_status(id).and_then(|s| s.last_drop)
                        );
                        let _ = cx.tcp_release(socket);
                    } else {
                        if let Ok(s) = cx.tcp(socket) {
                            s.close();
                        }
                        self.closing.push((socket, now + CLOSE_LINGER));
                    }
                }
            }
        }
    }

    /// Connection progress, what collectors send (discarded), and their closes.
    fn sockets(&mut self, cx: &mut Context<'_>) {
        let now = cx.now;
        for link in &mut self.links {
            let Some(socket) = link.socket else { continue };
            let Ok(s) = cx.tcp(socket) else {
                link.socket = None;
                if link.up {
                    self.exporter.closed(link.id, now);
                } else {
                    self.exporter.connect_failed(link.id, now);
                }
                link.up = false;
                continue;
            };
            while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
                self.discarded += n as u64;
            }
            let state = s.state();
            if !link.up {
                match state {
                    TcpState::Established => {
                        link.up = true;
                        self.exporter.connected(link.id, now);
                    }
                    TcpState::SynSent | TcpState::SynReceived => {}
                    _ => {
                        let _ = cx.tcp_release(socket);
                        link.socket = None;
                        self.exporter.connect_failed(link.id, now);
                    }
                }
            } else if state != TcpState::Established {
                // The collector closed (or the connection broke): answer its FIN, linger.
                s.close();
                self.closing.push((socket, now + CLOSE_LINGER));
                link.socket = None;
                link.up = false;
                self.exporter.closed(link.id, now);
            }
        }
    }

    /// Writes the queues to the sockets as they take them. True when bytes are left that a
    /// socket could take on the next poll.
    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        let now = cx.now;
        let mut budget = WRITE_PER_POLL;
        for link in &self.links {
            let (Some(socket), true) = (link.socket, link.up) else { continue };
            loop {
                let data = self.exporter.transmit(link.id);
                if data.is_empty() {
                    break;
                }
                if budget == 0 {
                    return true;
                }
                let take = data.get(..budget.min(data.len())).unwrap_or_default();
                let n = cx.tcp(socket).ok().and_then(|s| s.send_slice(take).ok()).unwrap_or(0);
                if n == 0 {
                    break;
                }
                budget -= n;
                self.exporter.sent(link.id, n, now);
            }
        }
        false
    }

    fn reap(&mut self, cx: &mut Context<'_>) {
        cx.reap_closing(&mut self.closing);
    }

    /// Queues what BGP told, and the post-policy peer's Peer Up / Down that follow from it.
    fn accept(&mut self, config: &BmpConfig, at: Timestamp, event: &Event) -> bool {
        let peer = match event {
            Event::PeerUp { peer, .. }
            | Event::PeerDown { peer, .. }
            | Event::Routes { peer, .. }
            | Event::EndOfRib { peer, .. } => *peer,
        };
        let (session, view) = split_peer(peer);
        let wanted = match view {
            View::PrePolicy => true,
            View::PostPolicy => config.post_policy,
            View::LocRib => config.loc_rib,
        };
        if !wanted {
            return true;
        }
        if self.channel.try_push_stamped(Stamped { at, event: event.clone() }).is_err() {
            return false;
        }
        if view == View::PrePolicy && config.post_policy {
            let post = peer_id(session, View::PostPolicy);
            let derived = match event {
                Event::PeerUp { info, .. } => {
                    let mut info = info.clone();
                    info.header.flags = PeerFlags(info.header.flags.0 | PeerFlags::L);
                    Some(Event::PeerUp { peer: post, info })
                }
                Event::PeerDown { reason, .. } => {
                    Some(Event::PeerDown { peer: post, reason: reason.clone() })
                }
                Event::EndOfRib { family, .. } => Some(Event::EndOfRib { peer: post, family: *family }),
                Event::Routes { .. } => None,
            };
            if let Some(event) = derived {
                return self.channel.try_push_stamped(Stamped { at, event }).is_ok();
            }
        }
        true
    }
}

/// The exporter's [`Tables`]: BGP's view as it is this poll (none while BGP is down: no peers).
struct ViewTables<'v> {
    view: Option<&'v dyn BgpView>,
    slab: &'v RefCell<Vec<PathAttributes>>,
    post_policy: bool,
    loc_rib: bool,
    /// The wall clock's Unix micros at `Instant::ZERO`, if any.
    epoch_micros: Option<u64>,
}

impl Tables for ViewTables<'_> {
    type Cursor = BgpCursor;

    fn peers(&mut self, out: &mut Vec<PeerId>) {
        let Some(view) = self.view else { return };
        let mut sessions = Vec::new();
        view.sessions(&mut sessions);
        for s in sessions {
            out.push(peer_id(s, View::PrePolicy));
            if self.post_policy {
                out.push(peer_id(s, View::PostPolicy));
            }
        }
        if self.loc_rib && view.loc_rib_up().is_some() {
            out.push(LOC_RIB);
        }
    }

    fn peer_up(&mut self, peer: PeerId) -> Option<PeerUpInfo> {
        let view = self.view?;
        let mut info = match split_peer(peer) {
            (s, View::PrePolicy) => view.peer_up(s),
            (s, View::PostPolicy) => view.peer_up(s).map(|mut info| {
                info.header.flags = PeerFlags(info.header.flags.0 | PeerFlags::L);
                info
            }),
            (_, View::LocRib) => view.loc_rib_up(),
        }?;
        // A session's Peer Up in a dump: the time it came up, where BGP and the clock know it.
        let (session, _) = split_peer(peer);
        if let (Some(epoch), Some(up), 0, 0) = (
            self.epoch_micros,
            view.up_since(session),
            info.header.timestamp_secs,
            info.header.timestamp_micros,
        ) {
            let t = epoch.saturating_add(up.total_micros());
            let at = Timestamp::from_unix(t / 1_000_000, (t % 1_000_000) as u32);
            (info.header.timestamp_secs, info.header.timestamp_micros) = (at.secs, at.micros);
        }
        Some(info)
    }

    fn next_routes(
        &mut self,
        peer: PeerId,
        cursor: &BgpCursor,
        max: usize,
        out: &mut Vec<RouteGroup>,
    ) -> Option<BgpCursor> {
        let view = self.view?;
        let mut next = *cursor;
        let mut page = Vec::new();
        match split_peer(peer) {
            (s, View::PrePolicy) => view.adj_rib_in_page(s, RibView::PrePolicy, &mut next, max, &mut page),
            (s, View::PostPolicy) => view.adj_rib_in_page(s, RibView::PostPolicy, &mut next, max, &mut page),
            (_, View::LocRib) => view.loc_rib_page(&mut next, max, &mut page),
        }
        // The groups of the previous slice are encoded by now: its slab goes.
        let mut slab = self.slab.borrow_mut();
        slab.clear();
        // Interned sets: one set, one address. Neighbours mostly share theirs, so the last
        // one is tried first. Counted first, so that each group is allocated once, whole.
        let mut sets: Vec<(&PathAttributes, usize)> = Vec::new();
        let mut last = 0;
        for (_, attrs) in &page {
            let g = set_of(&sets, last, attrs).unwrap_or_else(|| {
                sets.push((attrs, 0));
                sets.len() - 1
            });
            if let Some((_, n)) = sets.get_mut(g) {
                *n += 1;
            }
            last = g;
        }
        let first = out.len();
        for &(attrs, n) in &sets {
            out.push(RouteGroup {
                attrs: Some(Attrs::Id(SLAB | slab.len() as u64)),
                prefixes: Vec::with_capacity(n),
            });
            slab.push(attrs.clone());
        }
        let mut last = 0;
        for (prefix, attrs) in page {
            let Some(g) = set_of(&sets, last, attrs) else { continue };
            if let Some(group) = out.get_mut(first + g) {
                group.prefixes.push(to_bmp(prefix));
            }
            last = g;
        }
        if next.is_done() {
            None
        } else {
            Some(next)
        }
    }

    fn stats(&mut self, peer: PeerId, out: &mut Vec<Stat<'static>>) {
        if let (Some(view), (s, View::PrePolicy)) = (self.view, split_peer(peer)) {
            view.stats(s, out);
        }
    }
}

/// The index in `sets` of the set at `attrs`'s address, trying `last` first.
fn set_of(sets: &[(&PathAttributes, usize)], last: usize, attrs: &PathAttributes) -> Option<usize> {
    match sets.get(last) {
        Some((a, _)) if core::ptr::eq(*a, attrs) => Some(last),
        _ => sets.iter().position(|(a, _)| core::ptr::eq(*a, attrs)),
    }
}

/// The exporter's [`UpdateEncoder`], one UPDATE at a time: IPv4 announcements (a dump's bulk)
/// written in place after their attribute set's bytes, emitted once per set
/// ([`V4Attrs`]); everything else through BGP's own packer.
struct ViewEncoder<'v> {
    view: Option<&'v dyn BgpView>,
    slab: &'v RefCell<Vec<PathAttributes>>,
    run: Vec<BgpPrefix>,
    v4: V4Attrs,
}

impl<'v> ViewEncoder<'v> {
    fn new(view: Option<&'v dyn BgpView>, slab: &'v RefCell<Vec<PathAttributes>>) -> ViewEncoder<'v> {
        ViewEncoder { view, slab, run: Vec::new(), v4: V4Attrs::default() }
    }
}

/// The last attribute set written for IPv4 NLRI and its bytes as BGP's packer writes them
/// (NEXT_HOP included): the consecutive UPDATEs of a dump slice share one set, so it is
/// emitted once, not once per UPDATE. One set, freed with the encoder at the end of a poll.
#[derive(Default)]
struct V4Attrs {
    set: Option<PathAttributes>,
    bytes: Vec<u8>,
}

/// The fixed part of an UPDATE: the BGP header, the withdrawn routes' and the attributes'
/// lengths.
const UPDATE_FIXED: usize = 19 + 2 + 2;

impl V4Attrs {
    /// `attrs`'s bytes for IPv4 NLRI; `None` when BGP's packer must write them (an IPv6 next
    /// hop, which it refuses for IPv4).
    fn bytes(&mut self, attrs: &PathAttributes) -> Option<&[u8]> {
        if matches!(attrs.next_hop, Some(NextHop::V6 { .. })) {
            return None;
        }
        if self.set.as_ref() != Some(attrs) {
            self.bytes.clear();
            match attrs.next_hop {
                Some(_) => attrs.emit(CTX, true, &[], &mut self.bytes),
                None => {
                    // As `pack_one` does: the unspecified next hop of the family.
                    let mut patched = attrs.clone();
                    patched.next_hop = Some(NextHop::V4(core::net::Ipv4Addr::UNSPECIFIED));
                    patched.emit(CTX, true, &[], &mut self.bytes);
                }
            }
            self.set = Some(attrs.clone());
        }
        Some(&self.bytes)
    }
}

/// Writes one UPDATE announcing as many of the IPv4 prefixes at the head of `rest` as fit in
/// `out`, with the attribute bytes `attrs`: the same bytes as BGP's packer (a test compares
/// them), without building an `Update` per message.
fn announce_v4(attrs: &[u8], rest: &[Prefix], out: &mut [u8]) -> Result<Encoded, EncodeError> {
    let attrs_len = u16::try_from(attrs.len()).map_err(|_| EncodeError::TooLarge)?;
    let mut at = UPDATE_FIXED + attrs.len();
    let mut carried = 0;
    for p in rest {
        let IpAddr::V4(addr) = p.addr else { break };
        if p.len > 32 {
            return Err(EncodeError::TooLarge);
        }
        // RFC 4271 4.3: the length, then the fewest octets that hold it, host bits clear.
        let octets = usize::from(p.len).div_ceil(8);
        let mask = u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
        let bits = (u32::from(addr) & mask).to_be_bytes();
        let Some(dst) = out.get_mut(at..at + 1 + octets) else { break };
        let (len, rest) = dst.split_at_mut(1);
        len.copy_from_slice(&[p.len]);
        rest.copy_from_slice(bits.get(..octets).unwrap_or_default());
        at += 1 + octets;
        carried += 1;
    }
    let total = u16::try_from(at).map_err(|_| EncodeError::TooLarge)?;
    if carried == 0 {
        return Err(EncodeError::TooLarge);
    }
    let head = out.get_mut(..UPDATE_FIXED).ok_or(EncodeError::TooLarge)?;
    head[..16].fill(0xff);
    head[16..18].copy_from_slice(&total.to_be_bytes());
    head[18] = 2; // UPDATE
    head[19..21].copy_from_slice(&[0, 0]); // no withdrawn routes
    head[21..23].copy_from_slice(&attrs_len.to_be_bytes());
    out.get_mut(UPDATE_FIXED..UPDATE_FIXED + attrs.len())
        .ok_or(EncodeError::TooLarge)?
        .copy_from_slice(attrs);
    Ok(Encoded { len: at, prefixes: carried })
}

impl UpdateEncoder for ViewEncoder<'_> {
    fn encode(
        &mut self,
        _peer: PeerId,
        group: &RouteGroup,
        start: usize,
        out: &mut [u8],
    ) -> Result<Encoded, EncodeError> {
        // A run of one family from `start`, no longer than could fit (a prefix takes a byte
        // at least).
        let rest = group.prefixes.get(start..).unwrap_or_default();
        let v6 = rest.first().ok_or(EncodeError::TooLarge)?.addr.is_ipv6();
        if !v6 {
            // IPv4 announcements of a set BMP holds (a dump's slab, or BGP's by id): in place.
            let (slab, view) = (self.slab, self.view);
            let fast = match &group.attrs {
                Some(Attrs::Id(id)) if id & SLAB != 0 => {
                    let slab = slab.borrow();
                    let index = usize::try_from(id & !SLAB).map_err(|_| EncodeError::UnknownAttrs)?;
                    let attrs = slab.get(index).ok_or(EncodeError::UnknownAttrs)?;
                    self.v4.bytes(attrs).map(|bytes| announce_v4(bytes, rest, out))
                }
                Some(Attrs::Id(id)) => {
                    let attrs = view.and_then(|v| v.attrs(*id)).ok_or(EncodeError::UnknownAttrs)?;
                    self.v4.bytes(attrs).map(|bytes| announce_v4(bytes, rest, out))
                }
                _ => None,
            };
            if let Some(result) = fast {
                return result;
            }
        }
        self.run.clear();
        for p in rest.iter().take_while(|p| p.addr.is_ipv6() == v6).take(out.len()) {
            self.run.push(to_bgp(*p).ok_or(EncodeError::TooLarge)?);
        }
        let (run, view) = (&self.run, self.view);
        match &group.attrs {
            None => pack_one(None, run, out),
            Some(Attrs::Id(id)) if id & SLAB != 0 => {
                let slab = self.slab.borrow();
                let index = usize::try_from(id & !SLAB).map_err(|_| EncodeError::UnknownAttrs)?;
                pack_one(Some(slab.get(index).ok_or(EncodeError::UnknownAttrs)?), run, out)
            }
            Some(Attrs::Id(id)) => {
                let attrs = view.and_then(|v| v.attrs(*id)).ok_or(EncodeError::UnknownAttrs)?;
                pack_one(Some(attrs), run, out)
            }
            Some(Attrs::Bytes(bytes)) => {
                let attrs = parse_attrs(bytes).ok_or(EncodeError::UnknownAttrs)?;
                pack_one(Some(&attrs), run, out)
            }
        }
    }
}

/// Writes one UPDATE with as many of `run` as fit in `out`.
fn pack_one(
    attrs: Option<&PathAttributes>,
    run: &[BgpPrefix],
    out: &mut [u8],
) -> Result<Encoded, EncodeError> {
    let first = run.first().ok_or(EncodeError::TooLarge)?;
    // A route without a next hop (one this speaker originates) gets the unspecified one of
    // its family, so that the UPDATE is well formed.
    let patched;
    let attrs = match attrs {
        Some(a) if a.next_hop.is_none() => {
            let mut a = a.clone();
            a.next_hop = Some(match first {
                BgpPrefix::V4(_) => NextHop::V4(core::net::Ipv4Addr::UNSPECIFIED),
                BgpPrefix::V6(_) => {
                    NextHop::V6 { global: core::net::Ipv6Addr::UNSPECIFIED, link_local: None }
                }
            });
            patched = a;
            Some(&patched)
        }
        other => other,
    };
    let max = out.len();
    let pack = |prefixes: &[BgpPrefix]| match attrs {
        Some(a) => update::pack_announce(a, prefixes, CTX, max),
        None => update::pack_withdraw(prefixes, CTX, max),
    };
    let one = pack(run.get(..1).unwrap_or_default()).map_err(|_| EncodeError::TooLarge)?;
    let single = one.first().ok_or(EncodeError::TooLarge)?;
    // What the UPDATE costs besides its prefixes; then as many prefixes as the rest holds.
    let fixed = single.len().saturating_sub(first.wire_len());
    let mut room = max.saturating_sub(fixed);
    let mut take = 0;
    for p in run {
        if p.wire_len() > room {
            break;
        }
        room -= p.wire_len();
        take += 1;
    }
    let many;
    let (message, carried) = if take > 1 {
        many = pack(run.get(..take).unwrap_or_default()).map_err(|_| EncodeError::TooLarge)?;
        match many.as_slice() {
            [m] => (m, take),
            _ => (single, 1),
        }
    } else {
        (single, 1)
    };
    let dst = out.get_mut(..message.len()).ok_or(EncodeError::TooLarge)?;
    dst.copy_from_slice(message);
    Ok(Encoded { len: message.len(), prefixes: carried })
}

/// Path attributes as they appear in an UPDATE, read through BGP's own parser: with
/// MP_REACH_NLRI, its next hop; without, read again with one stand-in prefix (0.0.0.0/0) so
/// that the parser keeps NEXT_HOP.
fn parse_attrs(bytes: &[u8]) -> Option<PathAttributes> {
    let parse = |stand_in: bool| {
        let len = u16::try_from(bytes.len()).ok()?;
        let mut body = Vec::with_capacity(bytes.len() + 5);
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(bytes);
        if stand_in {
            body.push(0);
        }
        Update::parse(&body, CTX).ok().map(|p| p.update)
    };
    let update = parse(false)?;
    match update.mp_reach {
        Some(reach) => {
            let mut attrs = update.attributes?;
            attrs.next_hop = Some(reach.next_hop);
            Some(attrs)
        }
        None => parse(true)?.attributes,
    }
}

fn to_bmp(prefix: BgpPrefix) -> Prefix {
    match prefix {
        BgpPrefix::V4(p) => Prefix { addr: IpAddr::V4(p.addr()), len: p.len() },
        BgpPrefix::V6(p) => Prefix { addr: IpAddr::V6(p.addr()), len: p.len() },
    }
}

fn to_bgp(prefix: Prefix) -> Option<BgpPrefix> {
    match prefix.addr {
        IpAddr::V4(a) => Ipv4Prefix::new_truncating(a, prefix.len).ok().map(BgpPrefix::V4),
        IpAddr::V6(a) => Ipv6Prefix::new_truncating(a, prefix.len).ok().map(BgpPrefix::V6),
    }
}

impl Subsystem for BmpSubsystem {
    fn name(&self) -> &'static str {
        "bmp"
    }

    fn domain(&self) -> Domain {
        Domain::Bmp
    }

    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        if self.config.collectors.is_empty() {
            return Ok(());
        }
        cx.admit(self.config.channel_events * EventChannel::slot_size())
            .map_err(|_| StartError::OverQuota)?;
        let epoch = cx.wall_clock().map(|(secs, micros)| {
            (secs * 1_000_000 + u64::from(micros)).saturating_sub(cx.now.total_micros())
        });
        let mut running = Running::new(&self.config, cx.now, epoch);
        running.actions(cx);
        self.running = Some(running);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, budget: Budget) -> PollOutcome {
        let BmpSubsystem { config, finders, running } = self;
        let Some(r) = running.as_mut() else { return PollOutcome::Idle };
        let now = cx.now;
        // Still over the soft threshold after a drop: the next largest queue goes, one a poll.
        if r.pressure && cx.room().soft == 0 && r.exporter.relieve_pressure(now).is_some() {
            log::warn!("bmp: memory pressure persists: another session dropped");
        }
        r.actions(cx);
        r.sockets(cx);
        let work = {
            let view = cx.peek(Domain::Bgp).and_then(|any| finders.iter().find_map(|f| f(any)));
            let mut tables = ViewTables {
                view,
                slab: &r.slab,
                post_policy: config.post_policy,
                loc_rib: config.loc_rib,
                epoch_micros: r.exporter.config().epoch_micros,
            };
            let mut encoder = ViewEncoder::new(view, &r.slab);
            let budget = usize::try_from(budget.0).unwrap_or(usize::MAX).max(1);
            r.exporter.poll(now, &mut tables, &mut encoder, &mut r.channel, budget)
        };
        // Only one slice's sets were ever kept: give them back.
        *r.slab.borrow_mut() = Vec::new();
        let mut left = r.write(cx);
        r.actions(cx);
        r.reap(cx);
        left |= work == bulkhead_bmp::Poll::Pending;
        if left {
            PollOutcome::Pending
        } else {
            PollOutcome::Idle
        }
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        let r = self.running.as_ref()?;
        let closing = r.closing.iter().map(|&(_, t)| t).min();
        match (r.exporter.poll_at(), closing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pressure(&mut self, cx: &mut Context<'_>, on: bool) {
        let Some(r) = self.running.as_mut() else { return };
        r.pressure = on;
        if on {
            if let Some(id) = r.exporter.relieve_pressure(cx.now) {
                log::warn!("bmp: memory pressure: the session of collector {} dropped", id.0);
                r.actions(cx);
            }
        }
    }

    fn farewell(&mut self, cx: &mut Context<'_>) {
        let Some(r) = self.running.as_mut() else { return };
        r.exporter.shutdown(cx.now);
        r.write(cx);
        for link in &r.links {
            if let Some(socket) = link.socket {
                if let Ok(s) = cx.tcp(socket) {
                    s.close();
                }
            }
        }
    }

    fn shed(&mut self) {
        self.running = None;
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match &self.running {
            None if self.config.collectors.is_empty() => write!(out, "no collectors configured"),
            None => write!(out, "not running"),
            Some(r) => show::status_line(out, r),
        }
    }

    fn command(&mut self, _cx: &mut Context<'_>, words: &[&str], out: &mut dyn Write) -> Option<fmt::Result> {
        match words {
            ["show", "bmp"] => Some(show::text(out, self.running.as_ref(), &self.config)),
            ["show", "bmp", "json"] => Some(show::json(out, self.running.as_ref(), &self.config)),
            _ => None,
        }
    }

    fn help(&self) -> &'static str {
        "  show bmp [json]              BMP collectors: state, queued bytes, messages and bytes sent, drops, re-synchronisations\n"
    }

    fn accept(&mut self, from: Domain, message: &dyn Any) -> bool {
        let (Domain::Bgp, Some(r)) = (from, self.running.as_mut()) else { return false };
        // BGP tells `Stamped` events (see `tell_peer_up` and the others); a bare `Event` has
        // no time.
        if let Some(s) = message.downcast_ref::<Stamped>() {
            return r.accept(&self.config, s.at, &s.event);
        }
        match message.downcast_ref::<Event>() {
            Some(event) => r.accept(&self.config, Timestamp::UNAVAILABLE, event),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
