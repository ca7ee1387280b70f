//! The BGP session with one peer: the RFC 4271 finite state machine (section 8), its timers,
//! collision detection (section 6.8), the send hold timer (RFC 9687) and the graceful restart
//! helper role (RFC 4724). Sans-I/O: the caller feeds TCP events and the time, and takes out
//! bytes to write and session events.
//!
//! ```text
//!            start                      TCP up (ours or theirs)
//!   Idle ──────────────▶ Connect ◀──▶ Active ───────────────────▶ OpenSent ──OPEN ok──▶ OpenConfirm
//!    ▲   ConnectRetry expiry: Connect again;                       │                      │ KEEPALIVE
//!    │   our connect failed: Active                                 │                      ▼
//!    └──── error, NOTIFICATION, TCP closed, hold timer, stop ◀──────┴──────────────── Established
//! ```
//!
//! Up to two connections exist at once (one we opened, one the peer opened). Each has its own
//! state from OpenSent on; the session state is that of the most advanced one. When an OPEN
//! tells the peer's BGP identifier, any other connection past TCP setup collides with it: the
//! higher identifier's connection survives (section 6.8), the other gets Cease subcode 7.
//!
//! Bounds, and what happens at each:
//! - input: each connection's `Framer` holds at most one maximum message (4096 octets, or
//!   65535 with extended messages); `tcp_received` always takes all it is given, framing in
//!   steps, so the caller bounds the work of one call by the size of what it passes.
//! - output: each connection's unsent bytes are bounded by `output_limit` for UPDATEs
//!   (`send_update` refuses with `SendError::OutputFull`, the caller retries later) plus
//!   `CONTROL_HEADROOM` for KEEPALIVE / NOTIFICATION / OPEN (beyond it a KEEPALIVE is not
//!   queued). Output that the caller cannot write for the send hold time drops the session
//!   with NOTIFICATION code 8.
//! - actions: the queue holds what the last calls produced (one per message received plus a
//!   few); the caller drains it with `pop_action` after each call.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_base::time::{Duration, Instant};

use crate::packet::attribute::{SessionContext, AS_TRANS};
use crate::packet::error::{CeaseSubcode, ErrorCode, FsmSubcode, HeaderError, MessageError, OpenError};
use crate::packet::message::{Framer, Header, Message, MessageType, RouteRefresh, EXTENDED_MAX_LEN, MAX_LEN};
use crate::packet::nlri::Family;
use crate::packet::notification::Notification;
use crate::packet::open::{Capability, GracefulRestart, Open};
use crate::packet::update::{ParsedUpdate, Update};

/// Room beyond `output_limit` kept for KEEPALIVE, OPEN and NOTIFICATION.
pub const CONTROL_HEADROOM: usize = 8 * 1024;
/// The hold timer while waiting for the peer's OPEN (RFC 4271 section 8: "4 minutes").
pub const LARGE_HOLD: Duration = Duration::from_secs(240);
/// The least send hold time (RFC 9687: max(8 minutes, 2 x hold time)).
pub const MIN_SEND_HOLD: Duration = Duration::from_secs(480);

/// One peer's session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub local_id: Ipv4Addr,
    /// Hold time proposed in our OPEN, seconds: 0 (none) or at least 3.
    pub hold_time: u16,
    pub connect_retry: Duration,
    /// Wait this long after TCP is up before sending OPEN (DelayOpen, RFC 4271 8.1.1).
    pub delay_open: Option<Duration>,
    /// Never open a connection; wait for the peer's.
    pub passive: bool,
    /// Wait between a session going down and trying again.
    pub idle_hold: Duration,
    /// Families announced with Multiprotocol capabilities.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub extended_message: bool,
    /// Announce Graceful Restart with this restart time (seconds), as a helper: no family
    /// claims preserved forwarding state.
    pub graceful_restart: Option<u16>,
    /// `None`: max(8 minutes, 2 x negotiated hold time).
    pub send_hold_time: Option<Duration>,
    /// Bound on unsent UPDATE octets per connection.
    pub output_limit: usize,
    /// From an external peer, an UPDATE whose AS_PATH does not start with the peer's AS is
    /// treated as a withdrawal (RFC 4271 6.3, RFC 7606 7.2: [`Update::check_first_as`]). On by
    /// default; turn it off for a route server (RFC 7947), which does not put its AS in the path.
    pub enforce_first_as: bool,
}

impl NeighborConfig {
    /// RFC 4271's suggested timers (hold 90 s, connect retry 120 s), IPv4 and IPv6 unicast,
    /// route refresh, extended messages, graceful restart helper with 120 s.
    pub fn new(local_as: u32, peer_as: u32, local_id: Ipv4Addr) -> NeighborConfig {
        NeighborConfig {
            local_as,
            peer_as,
            local_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(120),
            delay_open: None,
            passive: false,
            idle_hold: Duration::from_secs(5),
            families: alloc::vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            route_refresh: true,
            extended_message: true,
            graceful_restart: Some(120),
            send_hold_time: None,
            output_limit: 1024 * 1024,
            enforce_first_as: true,
        }
    }

    /// The OPEN this speaker sends.
    pub fn open(&self) -> Open {
        let mut caps: Vec<Capability> = self.families.iter().map(|f| Capability::multiprotocol(*f)).collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(restart_time) = self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time,
                families: Vec::new(),
            }));
        }
        caps.push(Capability::FourOctetAs { asn: self.local_as });
        Open::new(self.local_as, self.hold_time, self.local_id, caps)
    }

    fn external(&self) -> bool {
        self.local_as != self.peer_as
    }
}

/// What both OPENs agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    /// Seconds; 0 means no hold timer and no KEEPALIVEs.
    pub hold_time: u16,
    /// Families both sides announced.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// Both sides announced extended messages: messages up to 65535 octets.
    pub extended_message: bool,
    /// How UPDATEs are encoded and decoded on this session.
    pub ctx: SessionContext,
    /// The peer's Graceful Restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// The peer's OPEN as a message (header included), for BMP's Peer Up (RFC 7854 4.10).
    pub received_open: Vec<u8>,
}

impl Negotiated {
    /// The largest message on this session.
    pub fn max_len(&self) -> usize {
        if self.extended_message {
            EXTENDED_MAX_LEN
        } else {
            MAX_LEN
        }
    }

    /// One third of the hold time (RFC 4271 10), `None` when the hold time is 0.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time != 0).then(|| Duration::from_millis(u64::from(self.hold_time) * 1000 / 3))
    }
}

/// Checks the peer's OPEN against our configuration (RFC 4271 6.2, RFC 5492, RFC 6793).
pub fn validate_open(cfg: &NeighborConfig, open: &Open) -> Result<Negotiated, OpenError> {
    let peer_as = open.asn();
    if peer_as != cfg.peer_as
        || (open.four_octet_as().is_some() && peer_as > 0xffff && u32::from(open.my_as) != AS_TRANS)
    {
        return Err(OpenError::BadPeerAs { asn: peer_as });
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(OpenError::UnacceptableHoldTime { hold_time: open.hold_time });
    }
    let id = open.bgp_id.to_bits();
    // RFC 6286: any non-zero value; equal to ours only across different ASes.
    if id == 0 || (id == cfg.local_id.to_bits() && !cfg.external()) {
        return Err(OpenError::BadBgpIdentifier { id });
    }
    let ours = cfg.open();
    let peer_families = open.families();
    let families: Vec<Family> = ours.families().into_iter().filter(|f| peer_families.contains(f)).collect();
    if families.is_empty() {
        // Nothing in common to exchange: say which families we wanted (RFC 5492).
        let mut data = Vec::new();
        for f in &cfg.families {
            let cap = Capability::multiprotocol(*f);
            let at = data.len();
            data.resize(at + cap.wire_len(), 0);
            cap.emit(&mut data[at..]);
        }
        return Err(OpenError::UnsupportedCapability { data });
    }
    let hold_time =
        if open.hold_time == 0 || cfg.hold_time == 0 { 0 } else { open.hold_time.min(cfg.hold_time) };
    Ok(Negotiated {
        peer_as,
        peer_id: open.bgp_id,
        hold_time,
        families,
        route_refresh: cfg.route_refresh && open.has(crate::packet::open::capability_code::ROUTE_REFRESH),
        extended_message: cfg.extended_message
            && open.has(crate::packet::open::capability_code::EXTENDED_MESSAGE),
        ctx: SessionContext { four_octet_as: open.four_octet_as().is_some(), external: cfg.external() },
        peer_graceful_restart: open.graceful_restart().cloned(),
        received_open: message_bytes(&Message::Open(open.clone())),
    })
}

/// The caller's name for a TCP connection (a socket handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// The session state (RFC 4271 section 8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// Why a session went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (an error we found, a timer, a stop).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// TCP closed without a NOTIFICATION.
    TcpClosed,
}

/// Graceful restart helper (RFC 4724 section 4.2): keep the peer's routes, marked stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRoutes {
    /// Keep them this long for the session to come back; `DropStale` follows if it does not.
    pub restart_time: Duration,
    pub families: Vec<Family>,
}

/// What the caller must do or know, in order. (`Update` is the large variant; actions are
/// drained right after each call, so it is not boxed.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer; report `tcp_connected(.., Outgoing)` or
    /// `tcp_connect_failed`.
    Connect,
    /// Write `last` (a NOTIFICATION, possibly empty) if possible, then close the connection.
    Close { conn: ConnId, last: Vec<u8> },
    /// The session is up.
    Established(Negotiated),
    /// An UPDATE, with what RFC 7606 made of it. Apply `update`; it is already corrected.
    Update(ParsedUpdate),
    /// The peer asks us to send our routes of this family again (RFC 2918).
    RouteRefresh(Family),
    /// The peer finished its initial routes of this family: remove its routes of this family
    /// that are still marked stale (RFC 4724).
    EndOfRib(Family),
    /// The session went down. With `stale`, keep the peer's routes marked stale; without,
    /// remove them.
    Down { reason: DownReason, stale: Option<StaleRoutes> },
    /// Remove the peer's routes of this family still marked stale (the restart time ran out,
    /// or the peer came back without preserving this family).
    DropStale(Family),
    /// A connection that had not reached Established ended with a NOTIFICATION (an OPEN we
    /// refused, or the peer refused ours): the session's "last error". Not reported for
    /// connections closed by collision resolution.
    Failed(DownReason),
}

/// Why an UPDATE could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    NotEstablished,
    /// The unsent output is at `output_limit`; try again once the caller wrote some.
    OutputFull,
    /// Longer than the session's maximum message length.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// TCP is up, DelayOpen running.
    Delay {
        until: Instant,
    },
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    dir: Direction,
    state: ConnState,
    framer: Framer,
    out: Vec<u8>,
    /// When the output last went from empty to non-empty, or last made progress.
    stuck_since: Option<Instant>,
    hold_deadline: Option<Instant>,
    keepalive_deadline: Option<Instant>,
    negotiated: Option<Negotiated>,
}

/// The session with one peer.
#[derive(Debug)]
pub struct Neighbor {
    cfg: NeighborConfig,
    /// Started by the operator (ManualStart) and not stopped.
    started: bool,
    /// Connect or Active while no connection is up.
    waiting: State,
    connect_retry_deadline: Option<Instant>,
    idle_until: Option<Instant>,
    conns: Vec<Conn>,
    actions: VecDeque<Action>,
    /// Families whose routes are kept stale for a restarting peer, and until when.
    stale: Vec<Family>,
    stale_deadline: Option<Instant>,
    /// Whether our own Connect is outstanding.
    connecting: bool,
}

impl Neighbor {
    pub fn new(cfg: NeighborConfig) -> Neighbor {
        Neighbor {
            cfg,
            started: false,
            waiting: State::Idle,
            connect_retry_deadline: None,
            idle_until: None,
            conns: Vec::new(),
            actions: VecDeque::new(),
            stale: Vec::new(),
            stale_deadline: None,
            connecting: false,
        }
    }

    pub fn config(&self) -> &NeighborConfig {
        &self.cfg
    }

    /// The session state: that of the most advanced connection, else Idle, Connect or Active.
    pub fn state(&self) -> State {
        let best = self.conns.iter().map(|c| match c.state {
            ConnState::Delay { .. } => self.waiting.max(State::Connect),
            ConnState::OpenSent => State::OpenSent,
            ConnState::OpenConfirm => State::OpenConfirm,
            ConnState::Established => State::Established,
        });
        best.max().unwrap_or(self.waiting)
    }

    /// What was negotiated, once Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established().and_then(|c| c.negotiated.as_ref())
    }

    /// The next action, in order.
    pub fn pop_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// ManualStart (RFC 4271 event 1, or event 4 when passive).
    pub fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        self.idle_until = None;
        self.begin(now);
    }

    /// ManualStop: Cease with `subcode` (and a Shutdown Communication for Administrative
    /// Shutdown / Reset, RFC 9003) on every connection; the session goes to Idle and stays.
    pub fn stop(&mut self, now: Instant, subcode: CeaseSubcode, message: Option<&str>) {
        self.started = false;
        let notification = match message {
            Some(m) => Notification::cease_with_message(subcode, m),
            None => Notification::cease(subcode),
        };
        let was_up = self.established().is_some();
        for conn in core::mem::take(&mut self.conns) {
            self.close(conn, Some(&notification));
        }
        if was_up {
            self.actions
                .push_back(Action::Down { reason: DownReason::NotificationSent(notification), stale: None });
        }
        self.drop_all_stale();
        self.waiting = State::Idle;
        self.connect_retry_deadline = None;
        self.idle_until = None;
        self.connecting = false;
        let _ = now;
    }

    /// A TCP connection is up: ours (`Outgoing`, after `Action::Connect`) or the peer's.
    pub fn tcp_connected(&mut self, now: Instant, id: ConnId, dir: Direction) {
        if dir == Direction::Outgoing {
            self.connecting = false;
        }
        let busy = self.conns.iter().any(|c| c.dir == dir || c.state == ConnState::Established);
        if !self.started || busy || self.conns.len() >= 2 {
            // Idle refuses connections; an Established session keeps its connection (6.8).
            let n = Notification::cease(if self.started {
                CeaseSubcode::ConnectionCollisionResolution
            } else {
                CeaseSubcode::ConnectionRejected
            });
            self.actions
                .push_back(Action::Close { conn: id, last: message_bytes(&Message::Notification(n)) });
            return;
        }
        self.connect_retry_deadline = None;
        let mut conn = Conn {
            id,
            dir,
            state: ConnState::OpenSent,
            framer: Framer::new(MAX_LEN),
            out: Vec::new(),
            stuck_since: None,
            hold_deadline: None,
            keepalive_deadline: None,
            negotiated: None,
        };
        match self.cfg.delay_open {
            Some(delay) => conn.state = ConnState::Delay { until: now + delay },
            None => self.send_open(now, &mut conn),
        }
        self.conns.push(conn);
    }

    /// Our connection attempt failed: wait for the peer's (Active) until ConnectRetry.
    pub fn tcp_connect_failed(&mut self, now: Instant) {
        self.connecting = false;
        if self.started && self.conns.is_empty() {
            self.waiting = State::Active;
            if self.connect_retry_deadline.is_none() {
                self.connect_retry_deadline = Some(now + self.cfg.connect_retry);
            }
        }
    }

    /// TCP closed (by the peer, or failed).
    pub fn tcp_closed(&mut self, now: Instant, id: ConnId) {
        let Some(at) = self.conns.iter().position(|c| c.id == id) else { return };
        let conn = self.conns.remove(at);
        if conn.state == ConnState::Established {
            let stale = self.stale_for(conn.negotiated.as_ref(), now);
            self.actions.push_back(Action::Down { reason: DownReason::TcpClosed, stale });
            self.go_idle(now);
        } else {
            self.after_conn_loss(now);
        }
    }

    /// Octets from a connection. All of `data` is taken; messages are handled as they
    /// complete.
    pub fn tcp_received(&mut self, now: Instant, id: ConnId, mut data: &[u8]) {
        loop {
            let Some(at) = self.conns.iter().position(|c| c.id == id) else { return };
            let taken = self.conns[at].framer.feed(data);
            data = data.get(taken..).unwrap_or_default();
            let mut progressed = taken > 0;
            loop {
                let Some(at) = self.conns.iter().position(|c| c.id == id) else { return };
                match self.conns[at].framer.next_message() {
                    None => break,
                    Some(Ok(bytes)) => {
                        progressed = true;
                        self.message(now, at, &bytes);
                    }
                    Some(Err(e)) => {
                        self.error(now, at, MessageError::Header(e).notification());
                        return;
                    }
                }
            }
            if data.is_empty() || !progressed {
                return;
            }
        }
    }

    /// The octets waiting to be written on a connection.
    pub fn pending_output(&self, id: ConnId) -> &[u8] {
        self.conns.iter().find(|c| c.id == id).map_or(&[][..], |c| &c.out)
    }

    /// The caller wrote the first `n` octets of `pending_output`.
    pub fn output_written(&mut self, now: Instant, id: ConnId, n: usize) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
            let n = n.min(c.out.len());
            c.out.drain(..n);
            c.stuck_since = if c.out.is_empty() {
                None
            } else if n > 0 {
                Some(now)
            } else {
                c.stuck_since
            };
        }
    }

    /// Room for UPDATE octets on the established connection.
    pub fn output_room(&self) -> usize {
        self.established().map_or(0, |c| self.cfg.output_limit.saturating_sub(c.out.len()))
    }

    /// Queues one encoded UPDATE (from `update::pack_announce` / `pack_withdraw`).
    pub fn send_update(&mut self, now: Instant, message: &[u8]) -> Result<(), SendError> {
        let limit = self.cfg.output_limit;
        let conn = self.established_mut().ok_or(SendError::NotEstablished)?;
        let max = conn.negotiated.as_ref().map_or(MAX_LEN, Negotiated::max_len);
        if message.len() > max {
            return Err(SendError::TooLong);
        }
        if conn.out.len() + message.len() > limit {
            return Err(SendError::OutputFull);
        }
        push_output(conn, now, message);
        restart_keepalive(conn, now);
        Ok(())
    }

    /// Asks the peer to send its routes of `family` again (RFC 2918).
    pub fn send_route_refresh(&mut self, now: Instant, family: Family) -> Result<(), SendError> {
        let conn = self.established_mut().ok_or(SendError::NotEstablished)?;
        if !conn.negotiated.as_ref().is_some_and(|n| n.route_refresh) {
            return Err(SendError::NotEstablished);
        }
        push_output(conn, now, &message_bytes(&Message::RouteRefresh(RouteRefresh::new(family))));
        Ok(())
    }

    /// The next time `poll` has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        add(self.connect_retry_deadline);
        add(self.idle_until);
        add(self.stale_deadline);
        for c in &self.conns {
            add(c.hold_deadline);
            add(c.keepalive_deadline);
            if let ConnState::Delay { until } = c.state {
                add(Some(until));
            }
            add(c.stuck_since.map(|s| s + self.send_hold(c)));
        }
        at
    }

    /// Runs the timers that are due.
    pub fn poll(&mut self, now: Instant) {
        if self.stale_deadline.is_some_and(|d| now >= d) {
            self.drop_all_stale();
        }
        if self.idle_until.is_some_and(|d| now >= d) {
            self.idle_until = None;
            if self.started && self.conns.is_empty() {
                self.begin(now);
            }
        }
        if self.connect_retry_deadline.is_some_and(|d| now >= d) && self.conns.is_empty() {
            // ConnectRetryTimer_Expires: try again.
            self.connect_retry_deadline = Some(now + self.cfg.connect_retry);
            if !self.cfg.passive {
                self.waiting = State::Connect;
                if !self.connecting {
                    self.connecting = true;
                    self.actions.push_back(Action::Connect);
                }
            }
        }
        let mut at = 0;
        while at < self.conns.len() {
            let before = self.conns.len();
            self.conn_timers(now, at);
            if self.conns.len() == before {
                at += 1;
            }
        }
    }

    fn conn_timers(&mut self, now: Instant, at: usize) {
        let send_hold = self.send_hold(&self.conns[at]);
        let conn = &mut self.conns[at];
        if conn.stuck_since.is_some_and(|s| now >= s + send_hold) {
            // RFC 9687: the peer has not taken our output for the send hold time.
            self.error(now, at, Notification::new(ErrorCode::SendHoldTimerExpired));
            return;
        }
        if conn.hold_deadline.is_some_and(|d| now >= d) {
            self.error(now, at, Notification::new(ErrorCode::HoldTimerExpired));
            return;
        }
        if let ConnState::Delay { until } = conn.state {
            if now >= until {
                let mut conn = self.conns.remove(at);
                self.send_open(now, &mut conn);
                self.conns.insert(at, conn);
            }
            return;
        }
        let conn = &mut self.conns[at];
        if conn.keepalive_deadline.is_some_and(|d| now >= d) {
            if conn.out.len() + 19 <= self.cfg.output_limit + CONTROL_HEADROOM {
                push_output(conn, now, &message_bytes(&Message::Keepalive));
            }
            restart_keepalive(conn, now);
        }
    }

    fn send_hold(&self, conn: &Conn) -> Duration {
        if let Some(t) = self.cfg.send_hold_time {
            return t;
        }
        let hold = conn.negotiated.as_ref().map_or(0, |n| n.hold_time);
        MIN_SEND_HOLD.max(Duration::from_secs(2 * u64::from(hold)))
    }

    /// Leaves Idle: Connect (and ask for a connection) or, passive, Active.
    fn begin(&mut self, now: Instant) {
        self.connect_retry_deadline = Some(now + self.cfg.connect_retry);
        if self.cfg.passive {
            self.waiting = State::Active;
        } else {
            self.waiting = State::Connect;
            if !self.connecting {
                self.connecting = true;
                self.actions.push_back(Action::Connect);
            }
        }
    }

    /// After the session went down: Idle for `idle_hold`, then start over.
    fn go_idle(&mut self, now: Instant) {
        for conn in core::mem::take(&mut self.conns) {
            self.close(conn, None);
        }
        self.waiting = State::Idle;
        self.connect_retry_deadline = None;
        self.connecting = false;
        self.idle_until = self.started.then(|| now + self.cfg.idle_hold);
    }

    /// A connection that never reached Established is gone.
    fn after_conn_loss(&mut self, now: Instant) {
        if self.conns.is_empty() && self.started {
            self.waiting = State::Active;
            if self.connect_retry_deadline.is_none() {
                self.connect_retry_deadline = Some(now + self.cfg.connect_retry);
            }
        }
    }

    fn established(&self) -> Option<&Conn> {
        self.conns.iter().find(|c| c.state == ConnState::Established)
    }

    fn established_mut(&mut self) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.state == ConnState::Established)
    }

    fn send_open(&mut self, now: Instant, conn: &mut Conn) {
        push_output(conn, now, &message_bytes(&Message::Open(self.cfg.open())));
        conn.state = ConnState::OpenSent;
        conn.hold_deadline = Some(now + LARGE_HOLD);
    }

    /// Queues `notification` (if any) as the connection's last words and closes it.
    fn close(&mut self, mut conn: Conn, notification: Option<&Notification>) {
        if let Some(n) = notification {
            let max = conn.negotiated.as_ref().map_or(MAX_LEN, Negotiated::max_len);
            if let Ok(bytes) = Message::Notification(n.clone()).to_bytes(SessionContext::default(), max) {
                conn.out.extend_from_slice(&bytes);
            }
        }
        self.actions.push_back(Action::Close { conn: conn.id, last: conn.out });
    }

    /// An error on connection `at`: send `notification`, close, and go down or on.
    fn error(&mut self, now: Instant, at: usize, notification: Notification) {
        let conn = self.conns.remove(at);
        let was_up = conn.state == ConnState::Established;
        self.close(conn, Some(&notification));
        if !was_up && notification.code != ErrorCode::Cease(CeaseSubcode::ConnectionCollisionResolution) {
            self.actions.push_back(Action::Failed(DownReason::NotificationSent(notification.clone())));
        }
        if was_up || self.conns.is_empty() {
            if was_up {
                self.actions.push_back(Action::Down {
                    reason: DownReason::NotificationSent(notification),
                    stale: None,
                });
                self.drop_all_stale();
            }
            self.go_idle(now);
        }
    }

    fn message(&mut self, now: Instant, at: usize, bytes: &[u8]) {
        let conn = &self.conns[at];
        let max_len = conn.framer.max_len();
        let header = match Header::parse(bytes, max_len) {
            Some(Ok(h)) => h,
            Some(Err(e)) => return self.error(now, at, e.notification()),
            None => return self.error(now, at, HeaderError::BadMessageLength { length: 0 }.notification()),
        };
        let body = bytes.get(crate::packet::message::HEADER_LEN..).unwrap_or_default();
        let ctx = conn.negotiated.as_ref().map_or(SessionContext::default(), |n| n.ctx);
        let state = conn.state;
        // An UPDATE keeps its RFC 7606 report; the rest go through `Message`.
        if header.kind == MessageType::Update && state == ConnState::Established {
            match Update::parse(body, ctx) {
                Ok(mut parsed) => {
                    if self.cfg.external() && self.cfg.enforce_first_as {
                        Update::check_first_as(&mut parsed, self.cfg.peer_as);
                    }
                    self.restart_hold(now, at);
                    if let Some(family) = parsed.update.end_of_rib_family() {
                        self.stale.retain(|f| *f != family);
                        if self.stale.is_empty() {
                            self.stale_deadline = None;
                        }
                        self.actions.push_back(Action::EndOfRib(family));
                    } else {
                        self.actions.push_back(Action::Update(parsed));
                    }
                }
                Err(e) => self.error(now, at, e.notification()),
            }
            return;
        }
        let message = match Message::parse_body(header, body, ctx) {
            Ok(m) => m,
            Err(e) => return self.error(now, at, e.notification()),
        };
        match (state, message) {
            (_, Message::Notification(n)) => {
                let conn = self.conns.remove(at);
                let was_up = conn.state == ConnState::Established;
                self.close(conn, None);
                if was_up {
                    self.actions
                        .push_back(Action::Down { reason: DownReason::NotificationReceived(n), stale: None });
                    self.drop_all_stale();
                    self.go_idle(now);
                } else {
                    self.actions.push_back(Action::Failed(DownReason::NotificationReceived(n)));
                    if self.conns.is_empty() {
                        self.go_idle(now);
                    }
                }
            }
            (ConnState::Delay { .. }, Message::Open(open)) => {
                // An OPEN while DelayOpen runs: answer with ours now (RFC 4271 8.2.2).
                let mut conn = self.conns.remove(at);
                self.send_open(now, &mut conn);
                self.conns.insert(at, conn);
                self.open_received(now, at, open);
            }
            (ConnState::OpenSent, Message::Open(open)) => self.open_received(now, at, open),
            (ConnState::OpenConfirm, Message::Keepalive) => {
                let conn = &mut self.conns[at];
                conn.state = ConnState::Established;
                let negotiated = conn.negotiated.clone();
                self.restart_hold(now, at);
                if let Some(n) = negotiated {
                    self.established_with(now, n);
                }
            }
            (ConnState::Established, Message::Keepalive) => self.restart_hold(now, at),
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now, at);
                let negotiated = self.conns[at].negotiated.as_ref();
                if let (Some(family), true) = (rr.family(), negotiated.is_some_and(|n| n.route_refresh)) {
                    // Subtypes 1 and 2 (RFC 7313 BoRR/EoRR) are markers, not requests.
                    if rr.subtype == 0 {
                        self.actions.push_back(Action::RouteRefresh(family));
                    }
                }
            }
            (state, _) => {
                let subcode = match state {
                    ConnState::Delay { .. } => FsmSubcode::Unspecific,
                    ConnState::OpenSent => FsmSubcode::UnexpectedInOpenSent,
                    ConnState::OpenConfirm => FsmSubcode::UnexpectedInOpenConfirm,
                    ConnState::Established => FsmSubcode::UnexpectedInEstablished,
                };
                self.error(now, at, Notification::new(ErrorCode::FiniteStateMachine(subcode)));
            }
        }
    }

    fn open_received(&mut self, now: Instant, at: usize, open: Open) {
        let negotiated = match validate_open(&self.cfg, &open) {
            Ok(n) => n,
            Err(e) => return self.error(now, at, e.notification()),
        };
        // Collision detection (6.8): the peer's identifier is now known.
        let id = self.conns[at].id;
        let other = self.conns.iter().position(|c| c.id != id);
        if let Some(other_at) = other {
            let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
            if self.conns[other_at].state == ConnState::Established {
                return self.error(now, at, cease);
            }
            // The connection opened by the side with the higher identifier survives.
            let keep_dir = if self.cfg.local_id.to_bits() < negotiated.peer_id.to_bits() {
                Direction::Incoming
            } else {
                Direction::Outgoing
            };
            if self.conns[at].dir == keep_dir {
                let loser = self.conns.remove(other_at);
                self.close(loser, Some(&cease));
            } else {
                return self.error(now, at, cease);
            }
        }
        let at = self.conns.iter().position(|c| c.id == id).unwrap_or(0);
        let Some(conn) = self.conns.get_mut(at) else { return };
        conn.framer.set_max_len(negotiated.max_len());
        conn.state = ConnState::OpenConfirm;
        conn.hold_deadline =
            (negotiated.hold_time != 0).then(|| now + Duration::from_secs(u64::from(negotiated.hold_time)));
        conn.negotiated = Some(negotiated);
        push_output(conn, now, &message_bytes(&Message::Keepalive));
        restart_keepalive(conn, now);
    }

    fn established_with(&mut self, now: Instant, negotiated: Negotiated) {
        self.waiting = State::Idle;
        self.connect_retry_deadline = None;
        // RFC 4724 4.2: stale families the peer did not keep forwarding state for go now.
        if !self.stale.is_empty() {
            let kept: Vec<Family> = match &negotiated.peer_graceful_restart {
                Some(gr) => gr
                    .families
                    .iter()
                    .filter(|f| f.forwarding_preserved)
                    .filter_map(|f| Family::from_numbers(f.afi, f.safi))
                    .collect(),
                None => Vec::new(),
            };
            let (keep, drop): (Vec<Family>, Vec<Family>) = self.stale.iter().partition(|f| kept.contains(f));
            for family in drop {
                self.actions.push_back(Action::DropStale(family));
            }
            self.stale = keep;
            // Wait for End-of-RIB at most the restart time again.
            let restart = negotiated.peer_graceful_restart.as_ref().map_or(0, |g| g.restart_time);
            self.stale_deadline =
                (!self.stale.is_empty()).then(|| now + Duration::from_secs(u64::from(restart)));
        }
        self.actions.push_back(Action::Established(negotiated));
    }

    fn restart_hold(&mut self, now: Instant, at: usize) {
        if let Some(conn) = self.conns.get_mut(at) {
            let hold = conn.negotiated.as_ref().map_or(0, |n| n.hold_time);
            conn.hold_deadline = (hold != 0).then(|| now + Duration::from_secs(u64::from(hold)));
        }
    }

    /// The routes to keep when an Established session drops without NOTIFICATION.
    fn stale_for(&mut self, negotiated: Option<&Negotiated>, now: Instant) -> Option<StaleRoutes> {
        let n = negotiated?;
        let gr = n.peer_graceful_restart.as_ref()?;
        // Routes of the families the peer listed in its capability are kept (RFC 4724 4.2).
        let families: Vec<Family> = gr
            .families
            .iter()
            .filter_map(|f| Family::from_numbers(f.afi, f.safi))
            .filter(|f| n.families.contains(f))
            .collect();
        if self.cfg.graceful_restart.is_none() || families.is_empty() {
            return None;
        }
        let restart_time = Duration::from_secs(u64::from(gr.restart_time));
        self.stale = families.clone();
        self.stale_deadline = Some(now + restart_time);
        Some(StaleRoutes { restart_time, families })
    }

    fn drop_all_stale(&mut self) {
        for family in core::mem::take(&mut self.stale) {
            self.actions.push_back(Action::DropStale(family));
        }
        self.stale_deadline = None;
    }
}

fn message_bytes(m: &Message) -> Vec<u8> {
    m.to_bytes(SessionContext::default(), MAX_LEN).unwrap_or_default()
}

fn push_output(conn: &mut Conn, now: Instant, bytes: &[u8]) {
    if conn.out.is_empty() {
        conn.stuck_since = Some(now);
    }
    conn.out.extend_from_slice(bytes);
}

fn restart_keepalive(conn: &mut Conn, now: Instant) {
    conn.keepalive_deadline =
        conn.negotiated.as_ref().and_then(Negotiated::keepalive_interval).map(|k| now + k);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::error::{HeaderSubcode, OpenSubcode, UpdateSubcode};
    use crate::packet::open::GracefulRestartFamily;
    use alloc::vec;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const OUT: ConnId = ConnId(1);
    const IN: ConnId = ConnId(2);

    fn t(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    fn cfg() -> NeighborConfig {
        NeighborConfig::new(65001, 65002, LOCAL)
    }

    fn peer_open(hold: u16, id: Ipv4Addr, extra: Vec<Capability>) -> Vec<u8> {
        let mut caps = vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs { asn: 65002 },
        ];
        caps.extend(extra);
        message_bytes(&Message::Open(Open::new(65002, hold, id, caps)))
    }

    fn keepalive() -> Vec<u8> {
        message_bytes(&Message::Keepalive)
    }

    fn actions(n: &mut Neighbor) -> Vec<Action> {
        core::iter::from_fn(|| n.pop_action()).collect()
    }

    /// Takes what the neighbor wrote on `conn` and reads it as messages.
    fn sent(n: &mut Neighbor, now: Instant, conn: ConnId) -> Vec<Message> {
        let bytes = n.pending_output(conn).to_vec();
        n.output_written(now, conn, bytes.len());
        parse_all(&bytes)
    }

    fn parse_all(mut bytes: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
            out.push(Message::parse(&bytes[..len], SessionContext::default(), EXTENDED_MAX_LEN).unwrap());
            bytes = &bytes[len..];
        }
        out
    }

    fn closed_with(action: &Action) -> Option<(ConnId, Option<(u8, u8)>)> {
        match action {
            Action::Close { conn, last } => {
                let code = parse_all(last).into_iter().find_map(|m| match m {
                    Message::Notification(n) => Some(n.code.to_u8()),
                    _ => None,
                });
                Some((*conn, code))
            }
            _ => None,
        }
    }

    /// A neighbor taken to Established over our connection, peer hold time 30 s.
    fn established(cfg: NeighborConfig, extra: Vec<Capability>) -> Neighbor {
        let mut n = Neighbor::new(cfg);
        n.start(t(0));
        assert_eq!(actions(&mut n), vec![Action::Connect]);
        assert_eq!(n.state(), State::Connect);
        n.tcp_connected(t(1), OUT, Direction::Outgoing);
        assert_eq!(n.state(), State::OpenSent);
        let open = sent(&mut n, t(1), OUT);
        assert!(matches!(&open[..], [Message::Open(o)] if o.asn() == 65001 && o.hold_time == 90));
        n.tcp_received(t(2), OUT, &peer_open(30, PEER, extra));
        assert_eq!(n.state(), State::OpenConfirm);
        assert_eq!(sent(&mut n, t(2), OUT), vec![Message::Keepalive]);
        n.tcp_received(t(2), OUT, &keepalive());
        assert_eq!(n.state(), State::Established);
        n
    }

    #[test]
    fn session_comes_up_and_keeps_alive() {
        let mut n = established(cfg(), vec![]);
        let [Action::Established(neg)] = &actions(&mut n)[..] else { panic!() };
        assert_eq!(neg.hold_time, 30);
        assert_eq!(neg.keepalive_interval(), Some(Duration::from_secs(10)));
        assert_eq!(neg.families, vec![Family::Ipv4Unicast]);
        assert!(neg.route_refresh && !neg.extended_message && neg.ctx.four_octet_as && neg.ctx.external);
        // KEEPALIVE every 10 s; the peer's keep the hold timer (30 s) from expiring.
        assert_eq!(n.poll_at(), Some(t(12)));
        n.poll(t(12));
        assert_eq!(sent(&mut n, t(12), OUT), vec![Message::Keepalive]);
        n.tcp_received(t(20), OUT, &keepalive());
        n.poll(t(45));
        assert_eq!(n.state(), State::Established);
        assert!(actions(&mut n).is_empty());
    }

    #[test]
    fn hold_timer_expiry_then_retry() {
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.poll(t(32));
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[0]), Some((OUT, Some((4, 0)))));
        assert_eq!(
            acts[1],
            Action::Down {
                reason: DownReason::NotificationSent(Notification::new(ErrorCode::HoldTimerExpired)),
                stale: None
            }
        );
        assert_eq!(n.state(), State::Idle);
        // Idle hold (5 s), then Connect again.
        assert_eq!(n.poll_at(), Some(t(37)));
        n.poll(t(37));
        assert_eq!(actions(&mut n), vec![Action::Connect]);
        assert_eq!(n.state(), State::Connect);
    }

    #[test]
    fn hold_time_zero_means_no_timers() {
        let mut n = Neighbor::new(cfg());
        n.start(t(0));
        n.tcp_connected(t(0), OUT, Direction::Outgoing);
        n.tcp_received(t(0), OUT, &peer_open(0, PEER, vec![]));
        n.tcp_received(t(0), OUT, &keepalive());
        assert_eq!(n.state(), State::Established);
        assert_eq!(n.negotiated().unwrap().keepalive_interval(), None);
        sent(&mut n, t(0), OUT);
        assert_eq!(n.poll_at(), None);
        n.poll(t(100_000));
        assert_eq!(n.state(), State::Established);
    }

    #[test]
    fn updates_end_of_rib_and_malformed_update() {
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        let attrs = crate::packet::attribute::PathAttributes {
            as_path: crate::packet::attribute::AsPath::from_sequence(&[65002]),
            next_hop: Some(crate::packet::attribute::NextHop::V4(PEER)),
            ..Default::default()
        };
        let p = crate::packet::nlri::Prefix::V4(
            crate::packet::nlri::Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap(),
        );
        let msgs =
            crate::packet::update::pack_announce(&attrs, &[p], SessionContext::default(), MAX_LEN).unwrap();
        let eor = message_bytes(&Message::Update(Update::end_of_rib(Family::Ipv4Unicast)));
        // Both in one read, cut in the middle of the second.
        let stream = [&msgs[0][..], &eor].concat();
        n.tcp_received(t(3), OUT, &stream[..stream.len() - 2]);
        n.tcp_received(t(3), OUT, &stream[stream.len() - 2..]);
        let acts = actions(&mut n);
        assert!(matches!(&acts[0], Action::Update(u) if u.action.is_none() && u.update.nlri.len() == 1));
        assert_eq!(acts[1], Action::EndOfRib(Family::Ipv4Unicast));
        // An NLRI with a /33: session reset with UPDATE error 10.
        let mut bad = msgs[0].clone();
        let last = bad.len() - 2;
        bad[last] = 33;
        n.tcp_received(t(4), OUT, &bad);
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[0]), Some((OUT, Some((3, 10)))));
        assert!(matches!(&acts[1], Action::Down { reason: DownReason::NotificationSent(x), .. }
            if x.code == ErrorCode::UpdateMessage(UpdateSubcode::InvalidNetworkField)));
    }

    /// RFC 4271 6.3 / RFC 7606 7.2: from an external peer, a path that does not start with
    /// its AS withdraws what the UPDATE announces and keeps the session; a route server's
    /// neighbor (`enforce_first_as` off) takes the route.
    #[test]
    fn first_as_of_an_external_peer_is_enforced_unless_turned_off() {
        use crate::packet::attribute::{AsPath, NextHop, PathAttributes};
        use crate::packet::error::{Rfc7606Action, UpdateErrorKind};
        use crate::packet::nlri::{Ipv4Prefix, Prefix};
        let prefix = Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap();
        let update = |path: &[u32]| {
            let attrs = PathAttributes {
                as_path: AsPath::from_sequence(path),
                next_hop: Some(NextHop::V4(PEER)),
                ..Default::default()
            };
            let ctx = SessionContext::default();
            crate::packet::update::pack_announce(&attrs, &[Prefix::V4(prefix)], ctx, MAX_LEN)
                .unwrap()
                .remove(0)
        };
        for (enforce, path, kept) in [
            (true, &[65002, 65010][..], true),
            (true, &[65010, 65002][..], false),
            (true, &[][..], false),
            (false, &[65010][..], true),
        ] {
            let mut config = cfg();
            config.enforce_first_as = enforce;
            let mut n = established(config, vec![]);
            actions(&mut n);
            n.tcp_received(t(3), OUT, &update(path));
            let acts = actions(&mut n);
            let [Action::Update(parsed)] = &acts[..] else { panic!("{acts:?}") };
            assert_eq!(n.state(), State::Established, "{path:?}: the session stays");
            if kept {
                assert_eq!((parsed.update.nlri.as_slice(), parsed.action), (&[prefix][..], None), "{path:?}");
            } else {
                assert!(parsed.update.nlri.is_empty(), "{path:?}");
                assert_eq!(parsed.update.withdrawn, [prefix]);
                assert_eq!(parsed.update.attributes, None);
                assert_eq!(parsed.action, Some(Rfc7606Action::TreatAsWithdraw));
                let first = path.first().copied();
                assert_eq!(parsed.errors[0].kind, UpdateErrorKind::FirstAsMismatch { first, peer_as: 65002 });
                assert_eq!(parsed.errors[0].subcode(), UpdateSubcode::MalformedAsPath);
            }
        }
    }

    fn open_error(open: Vec<u8>) -> (u8, u8) {
        let mut n = Neighbor::new(cfg());
        n.start(t(0));
        n.tcp_connected(t(0), OUT, Direction::Outgoing);
        actions(&mut n);
        n.tcp_received(t(0), OUT, &open);
        let acts = actions(&mut n);
        assert_eq!(n.state(), State::Idle);
        let code = closed_with(&acts[0]).unwrap().1.unwrap();
        assert!(
            matches!(&acts[1], Action::Failed(DownReason::NotificationSent(x)) if x.code.to_u8() == code)
        );
        code
    }

    #[test]
    fn open_validation_subcodes() {
        let as_wrong = message_bytes(&Message::Open(Open::new(65003, 90, PEER, vec![])));
        assert_eq!(open_error(as_wrong), (2, OpenSubcode::BadPeerAs.to_u8()));
        assert_eq!(open_error(peer_open(2, PEER, vec![])), (2, 6));
        assert_eq!(open_error(peer_open(90, Ipv4Addr::UNSPECIFIED, vec![])), (2, 3));
        let mut v3 = peer_open(90, PEER, vec![]);
        v3[19] = 3;
        assert_eq!(open_error(v3), (2, 1));
        // An optional parameter of type 1 (authentication, deprecated).
        let mut auth = peer_open(90, PEER, vec![]);
        auth[29] = 1;
        assert_eq!(open_error(auth), (2, 4));
        // Only IPv6 multicast in common with us: unsupported capability.
        let v6m = message_bytes(&Message::Open(Open::new(
            65002,
            90,
            PEER,
            vec![Capability::Multiprotocol { afi: 2, safi: 2 }],
        )));
        assert_eq!(open_error(v6m), (2, 7));
        // Same identifier as ours on iBGP.
        let mut c = cfg();
        c.peer_as = 65001;
        let open = Open::new(65001, 90, LOCAL, vec![]);
        assert_eq!(validate_open(&c, &open), Err(OpenError::BadBgpIdentifier { id: LOCAL.to_bits() }));
        // A 4-octet peer behind AS_TRANS.
        c.peer_as = 4_200_000_000;
        let open = Open::new(4_200_000_000, 90, PEER, vec![Capability::FourOctetAs { asn: 4_200_000_000 }]);
        assert_eq!(validate_open(&c, &open).unwrap().peer_as, 4_200_000_000);
        // A 2-octet peer: 2-octet AS_PATH encoding.
        c.peer_as = 65002;
        let open = Open::new(65002, 90, PEER, vec![]);
        assert!(!validate_open(&c, &open).unwrap().ctx.four_octet_as);
    }

    #[test]
    fn unexpected_messages_are_fsm_errors() {
        let mut n = Neighbor::new(cfg());
        n.start(t(0));
        n.tcp_connected(t(0), OUT, Direction::Outgoing);
        n.tcp_received(t(0), OUT, &keepalive());
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[1]), Some((OUT, Some((5, 1)))));
        // An OPEN in Established.
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.tcp_received(t(5), OUT, &peer_open(30, PEER, vec![]));
        assert_eq!(closed_with(&actions(&mut n)[0]), Some((OUT, Some((5, 3)))));
        // A bad marker.
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.tcp_received(t(5), OUT, &[0u8; 19]);
        let acts = actions(&mut n);
        assert_eq!(
            closed_with(&acts[0]),
            Some((OUT, Some((1, HeaderSubcode::ConnectionNotSynchronized.to_u8()))))
        );
    }

    #[test]
    fn peer_refusing_our_open_is_the_last_error() {
        let mut n = Neighbor::new(cfg());
        n.start(t(0));
        n.tcp_connected(t(0), OUT, Direction::Outgoing);
        actions(&mut n);
        let refusal = Notification::new(ErrorCode::OpenMessage(OpenSubcode::BadPeerAs));
        n.tcp_received(t(1), OUT, &message_bytes(&Message::Notification(refusal.clone())));
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[0]), Some((OUT, None)));
        assert_eq!(acts[1], Action::Failed(DownReason::NotificationReceived(refusal)));
        assert_eq!(n.state(), State::Idle);
    }

    #[test]
    fn notification_received_and_stop() {
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        let cease = Notification::cease(CeaseSubcode::PeerDeconfigured);
        n.tcp_received(t(5), OUT, &message_bytes(&Message::Notification(cease.clone())));
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[0]), Some((OUT, None)));
        assert_eq!(acts[1], Action::Down { reason: DownReason::NotificationReceived(cease), stale: None });

        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.stop(t(5), CeaseSubcode::AdministrativeShutdown, Some("maintenance"));
        let acts = actions(&mut n);
        let Action::Close { last, .. } = &acts[0] else { panic!() };
        let [Message::Notification(sent)] = &parse_all(last)[..] else { panic!() };
        assert_eq!(sent.shutdown_communication(), Some("maintenance"));
        assert!(matches!(&acts[1], Action::Down { reason: DownReason::NotificationSent(_), .. }));
        n.poll(t(1000));
        assert_eq!((n.state(), actions(&mut n)), (State::Idle, vec![]));
        // Stopped: an incoming connection is rejected (Cease 5).
        n.tcp_connected(t(1001), IN, Direction::Incoming);
        assert_eq!(closed_with(&actions(&mut n)[0]), Some((IN, Some((6, 5)))));
    }

    fn collide(local_id: Ipv4Addr) -> (Neighbor, Vec<Action>) {
        let mut c = cfg();
        c.local_id = local_id;
        let mut n = Neighbor::new(c);
        n.start(t(0));
        n.tcp_connected(t(1), OUT, Direction::Outgoing);
        n.tcp_connected(t(1), IN, Direction::Incoming);
        actions(&mut n);
        sent(&mut n, t(1), OUT);
        sent(&mut n, t(1), IN);
        n.tcp_received(t(2), OUT, &peer_open(90, PEER, vec![]));
        n.tcp_received(t(2), IN, &peer_open(90, PEER, vec![]));
        (n, Vec::new())
    }

    #[test]
    fn collision_keeps_the_higher_identifiers_connection() {
        // Our identifier is lower: the peer's connection (incoming) survives.
        let (mut n, _) = collide(Ipv4Addr::new(192, 0, 2, 1));
        let acts = actions(&mut n);
        assert_eq!(closed_with(&acts[0]), Some((OUT, Some((6, 7)))));
        assert_eq!(n.state(), State::OpenConfirm);
        assert_eq!(sent(&mut n, t(2), IN), vec![Message::Keepalive]);
        n.tcp_received(t(3), IN, &keepalive());
        assert!(matches!(actions(&mut n)[..], [Action::Established(_)]));
        // Our identifier is higher: ours (outgoing) survives, the incoming one is ceased.
        let (mut n, _) = collide(Ipv4Addr::new(192, 0, 2, 9));
        let acts = actions(&mut n);
        assert_eq!(acts.len(), 1);
        assert_eq!(closed_with(&acts[0]), Some((IN, Some((6, 7)))));
        n.tcp_received(t(3), OUT, &keepalive());
        assert_eq!(n.state(), State::Established);
        // A connection arriving while Established is closed with Cease 7.
        n.tcp_connected(t(4), IN, Direction::Incoming);
        let acts = actions(&mut n);
        assert_eq!(closed_with(acts.last().unwrap()), Some((IN, Some((6, 7)))));
        assert_eq!(n.state(), State::Established);
    }

    #[test]
    fn send_hold_timer_and_bounded_output() {
        let mut c = cfg();
        c.output_limit = 10_000;
        let mut n = established(c, vec![]);
        actions(&mut n);
        let update = message_bytes(&Message::Update(Update::end_of_rib(Family::Ipv4Unicast)));
        let mut queued = 0;
        while n.send_update(t(3), &update) == Ok(()) {
            queued += 1;
        }
        assert_eq!(queued, 10_000 / 23);
        assert_eq!(n.send_update(t(3), &update), Err(SendError::OutputFull));
        assert!(n.output_room() < 23);
        // The caller writes a little at t=100 s: the send hold time restarts from there.
        n.output_written(t(100), OUT, 100);
        assert_eq!(n.send_update(t(100), &update), Ok(()));
        // The peer keeps its hold timer alive but never reads: 8 minutes (2 x 30 s is less).
        for s in (110..580).step_by(10) {
            n.tcp_received(t(s), OUT, &keepalive());
            n.poll(t(s));
            assert_eq!(n.state(), State::Established, "at {s}");
        }
        assert!(n.pending_output(OUT).len() <= 10_000 + CONTROL_HEADROOM);
        n.poll(t(580));
        let acts = actions(&mut n);
        // The NOTIFICATION goes after the unsent UPDATEs (which start mid-message here).
        let Action::Close { last, .. } = &acts[0] else { panic!() };
        assert_eq!(
            parse_all(&last[last.len() - 21..]),
            vec![Message::Notification(Notification::new(ErrorCode::SendHoldTimerExpired))]
        );
        assert!(matches!(&acts[1], Action::Down { reason: DownReason::NotificationSent(x), .. }
            if x.code == ErrorCode::SendHoldTimerExpired));
    }

    fn gr(forwarding: bool) -> Vec<Capability> {
        vec![Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 120,
            families: vec![GracefulRestartFamily { afi: 1, safi: 1, forwarding_preserved: forwarding }],
        })]
    }

    #[test]
    fn graceful_restart_helper() {
        let mut n = established(cfg(), gr(true));
        actions(&mut n);
        n.tcp_closed(t(10), OUT);
        let stale =
            StaleRoutes { restart_time: Duration::from_secs(120), families: vec![Family::Ipv4Unicast] };
        assert_eq!(actions(&mut n), vec![Action::Down { reason: DownReason::TcpClosed, stale: Some(stale) }]);
        // The peer comes back within the restart time, keeping forwarding state; its
        // End-of-RIB ends the stale period and no DropStale follows.
        n.poll(t(15));
        assert_eq!(actions(&mut n), vec![Action::Connect]);
        n.tcp_connected(t(16), OUT, Direction::Outgoing);
        n.tcp_received(t(16), OUT, &peer_open(30, PEER, gr(true)));
        n.tcp_received(t(16), OUT, &keepalive());
        assert!(matches!(actions(&mut n)[..], [Action::Established(_)]));
        n.tcp_received(t(17), OUT, &message_bytes(&Message::Update(Update::end_of_rib(Family::Ipv4Unicast))));
        assert_eq!(actions(&mut n), vec![Action::EndOfRib(Family::Ipv4Unicast)]);
        n.tcp_received(t(200), OUT, &keepalive());
        n.poll(t(200));
        assert!(actions(&mut n).iter().all(|a| !matches!(a, Action::DropStale(_))));

        // The peer does not come back: the stale routes go after the restart time.
        let mut n = established(cfg(), gr(true));
        actions(&mut n);
        n.tcp_closed(t(10), OUT);
        actions(&mut n);
        n.stop(t(11), CeaseSubcode::AdministrativeShutdown, None);
        assert_eq!(actions(&mut n), vec![Action::DropStale(Family::Ipv4Unicast)]);
        let mut n = established(cfg(), gr(true));
        actions(&mut n);
        n.tcp_closed(t(10), OUT);
        actions(&mut n);
        n.poll(t(130));
        assert!(actions(&mut n).contains(&Action::DropStale(Family::Ipv4Unicast)));

        // Back without the F bit: the stale routes go at once.
        let mut n = established(cfg(), gr(true));
        actions(&mut n);
        n.tcp_closed(t(10), OUT);
        n.poll(t(15));
        actions(&mut n);
        n.tcp_connected(t(16), OUT, Direction::Outgoing);
        n.tcp_received(t(16), OUT, &peer_open(30, PEER, gr(false)));
        n.tcp_received(t(16), OUT, &keepalive());
        let acts = actions(&mut n);
        assert_eq!(acts[0], Action::DropStale(Family::Ipv4Unicast));
        assert!(matches!(acts[1], Action::Established(_)));

        // Without GR from the peer, a TCP loss removes the routes.
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.tcp_closed(t(10), OUT);
        assert_eq!(actions(&mut n), vec![Action::Down { reason: DownReason::TcpClosed, stale: None }]);
    }

    #[test]
    fn delay_open_passive_and_connect_retry() {
        let mut c = cfg();
        c.delay_open = Some(Duration::from_secs(5));
        let mut n = Neighbor::new(c);
        n.start(t(0));
        n.tcp_connected(t(1), OUT, Direction::Outgoing);
        assert!(n.pending_output(OUT).is_empty());
        assert_eq!(n.poll_at(), Some(t(6)));
        n.poll(t(6));
        assert!(matches!(&sent(&mut n, t(6), OUT)[..], [Message::Open(_)]));
        assert_eq!(n.state(), State::OpenSent);

        // The peer's OPEN while DelayOpen runs: ours goes out at once.
        let mut c = cfg();
        c.delay_open = Some(Duration::from_secs(5));
        let mut n = Neighbor::new(c);
        n.start(t(0));
        n.tcp_connected(t(1), IN, Direction::Incoming);
        n.tcp_received(t(2), IN, &peer_open(90, PEER, vec![]));
        assert_eq!(sent(&mut n, t(2), IN).len(), 2);
        assert_eq!(n.state(), State::OpenConfirm);

        let mut c = cfg();
        c.passive = true;
        let mut n = Neighbor::new(c);
        n.start(t(0));
        assert_eq!((n.state(), actions(&mut n)), (State::Active, vec![]));

        let mut n = Neighbor::new(cfg());
        n.start(t(0));
        actions(&mut n);
        n.tcp_connect_failed(t(1));
        assert_eq!(n.state(), State::Active);
        assert_eq!(n.poll_at(), Some(t(120)));
        n.poll(t(120));
        assert_eq!((n.state(), actions(&mut n)), (State::Connect, vec![Action::Connect]));
    }

    #[test]
    fn route_refresh_both_ways() {
        let mut n = established(cfg(), vec![]);
        actions(&mut n);
        n.tcp_received(
            t(3),
            OUT,
            &message_bytes(&Message::RouteRefresh(RouteRefresh::new(Family::Ipv4Unicast))),
        );
        assert_eq!(actions(&mut n), vec![Action::RouteRefresh(Family::Ipv4Unicast)]);
        n.send_route_refresh(t(3), Family::Ipv4Unicast).unwrap();
        assert_eq!(
            sent(&mut n, t(3), OUT),
            vec![Message::RouteRefresh(RouteRefresh::new(Family::Ipv4Unicast))]
        );
    }
}
