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
                Ok(parsed) => {
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
                } else if self.conns.is_empty() {
                    self.go_idle(now);
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
