//! One SCTP association (RFC 9260): its state machine, its paths, and its send and receive
//! queues. Sans-I/O: it takes `(now, chunks)` and timeouts, and is polled for packets.
//!
//! ```text
//!  connect ─► COOKIE-WAIT ──INIT ACK──► COOKIE-ECHOED ──COOKIE ACK──► ESTABLISHED
//!  valid COOKIE ECHO (endpoint) ──────────────────────────────────────► ESTABLISHED
//!  ESTABLISHED ─shutdown()─► SHUTDOWN-PENDING ─all acked─► SHUTDOWN-SENT ─SHUTDOWN ACK─► CLOSED
//!  ESTABLISHED ─SHUTDOWN─► SHUTDOWN-RECEIVED ─all acked─► SHUTDOWN-ACK-SENT ─COMPLETE─► CLOSED
//!  any ─ABORT, retransmission limit, abort()─► CLOSED
//! ```
//!
//! Queues and their bounds (owner: this association, payer: the SCTP domain):
//! - send queue and chunks in flight ([`tx::SendQueue`]): the send limit in true bytes;
//!   `send` beyond it returns [`SendError::Full`].
//! - reassembly, out-of-order ordered messages and delivery ([`rx::Reassembly`]): the receive
//!   limit in true bytes (and the domain's room); a DATA chunk beyond it is dropped and
//!   counted, the window advertised is what is left.
//! - pending control: at most one of each (SACK, SHUTDOWN…) plus [`MAX_PENDING_REPLIES`]
//!   HEARTBEAT ACKs and ERROR causes; more are dropped and counted.
//! - events for the endpoint: at most one of each kind between two polls.

pub mod cc;
pub mod path;
pub mod rto;
pub mod rx;
pub mod segq;
pub mod tsnmap;
pub mod tx;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_base::rand_core::RngCore;
use bulkhead_base::time::{Duration, Instant};

use crate::cookie::{StateCookie, MAX_PEER_ADDRS};
use crate::endpoint::{Config, DownReason, Drops, SendError, Transmit, Transport};
use crate::wire::{
    CauseRepr, ChunkRepr, DataChunk, GapAckBlock, HeartbeatChunk, InitChunk, List, PacketBuilder, PacketRepr,
    ParamRepr, RawChunk, SackChunk, Ssn, Tsn, COMMON_HEADER_LEN,
};
use path::{HeartbeatKind, MtuProbe, Path, PathState, LARGE_PROBES};
use rx::{Reassembly, RxFragment, RxMessage, RxRefusal};
use tsnmap::{unwrap_serial32, TsnClass, TsnMap};
use tx::SendQueue;

/// HEARTBEAT ACKs and ERROR causes waiting to be sent, each at most.
pub const MAX_PENDING_REPLIES: usize = 4;
/// Gap Ack Blocks in one SACK at most.
const MAX_GAP_BLOCKS: usize = 64;
/// The IPv4 header, without options.
const IPV4_HEADER_LEN: usize = 20;
/// The UDP header of RFC 6951 encapsulation.
const UDP_HEADER_LEN: usize = 8;
/// Bytes of an unrecognized chunk copied back in an ERROR at most.
const MAX_REPORTED_CHUNK: usize = 256;
/// The smallest path MTU an ICMP can set (a smaller figure is taken as this).
pub const MIN_PATH_MTU: u16 = 576;
/// How long a lowered path MTU holds before the configured one is tried again.
pub const PMTU_RAISE_AFTER: Duration = Duration::from_secs(600);
/// The path MTU taken when full-sized packets vanish without an ICMP while small ones pass
/// (RFC 8899's BASE_PLPMTU for IPv4: what practically every path carries).
pub const BASE_PLPMTU: u16 = 1200;
/// RFC 1191 section 7's plateaus, for an ICMP without the next hop's MTU.
const MTU_PLATEAUS: [u16; 6] = [8166, 4352, 2002, 1492, 1006, 576];

/// The user data one DATA chunk carries in a packet of `mtu` bytes (UDP encapsulation
/// counted, whichever transport: the size must not depend on the path).
fn chunk_payload(mtu: u16) -> usize {
    let limit = usize::from(mtu).saturating_sub(IPV4_HEADER_LEN + UDP_HEADER_LEN + COMMON_HEADER_LEN);
    DataChunk::max_user_data(limit).unwrap_or(1).max(1)
}

/// The largest plateau below a packet of `len` bytes (RFC 1191 section 5), at least
/// [`MIN_PATH_MTU`].
fn plateau_below(len: u16) -> u16 {
    MTU_PLATEAUS.into_iter().find(|p| *p < len).unwrap_or(MIN_PATH_MTU)
}

/// The association states of RFC 9260 section 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    CookieWait,
    CookieEchoed,
    Established,
    ShutdownPending,
    ShutdownSent,
    ShutdownReceived,
    ShutdownAckSent,
    Closed,
}

/// What an association tells its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssocEvent {
    Up,
    Down(DownReason),
    /// The peer restarted (5.2.4 case A): queues were dropped, new tags are in use.
    Restarted,
    /// The send queue has room again after a `send` was refused as full.
    SendReady,
}

/// The tags and TSN an INIT ACK answering an INIT for an existing association carries
/// (5.2.1, 5.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollisionReply {
    pub local_tag: u32,
    pub local_tsn: u32,
    pub local_tie_tag: u32,
    pub peer_tie_tag: u32,
}

/// Counters of one association, for `show sctp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssocCounters {
    pub data_chunks_sent: u64,
    pub data_chunks_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub retransmissions: u64,
    pub fast_retransmits: u64,
    pub t3_expiries: u64,
    pub sacks_sent: u64,
    pub sacks_received: u64,
    pub duplicate_tsns_received: u64,
    pub heartbeats_sent: u64,
    pub failovers: u64,
    /// Messages received in pieces (partial delivery, 6.9), counted at their first piece.
    pub partial_deliveries: u64,
    /// Path MTUs lowered (7.3): by an ICMP "fragmentation needed", or by black-hole detection.
    pub pmtu_decreases: u64,
    /// Of those, black holes: full-sized packets lost without an ICMP while small ones pass.
    pub pmtu_black_holes: u64,
}

/// A path's figures for `show sctp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathStatus {
    pub addr: Ipv4Addr,
    pub local: Ipv4Addr,
    pub transport: Transport,
    pub state: PathState,
    pub primary: bool,
    pub current: bool,
    pub confirmed: bool,
    pub rto: Duration,
    pub srtt: Option<Duration>,
    pub error_count: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub flight: u32,
    /// The path MTU (7.3).
    pub mtu: u16,
}

/// True bytes held per queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueBytes {
    /// Chunks waiting for their first transmission.
    pub send: usize,
    /// Chunks sent and not yet cumulatively acknowledged (the retransmission queue).
    pub in_flight: usize,
    /// Fragments of incomplete messages and ordered messages waiting for an earlier one.
    pub reassembly: usize,
    /// Whole messages waiting for the application.
    pub delivery: usize,
}

/// A snapshot of one association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationStatus {
    pub state: State,
    pub local_port: u16,
    pub peer_port: u16,
    pub paths: Vec<PathStatus>,
    pub outbound_streams: u16,
    pub inbound_streams: u16,
    /// Our latest view of the peer's receive window.
    pub peer_rwnd: u32,
    /// The window we advertise now.
    pub local_rwnd: u32,
    pub bytes: QueueBytes,
    pub send_limit: usize,
    pub receive_limit: usize,
    pub error_count: u32,
    pub counters: AssocCounters,
}

#[derive(Debug)]
enum PendingError {
    InvalidStream(u16),
    UnrecognizedChunk { chunk_type: u8, flags: u8, value: Vec<u8> },
    CookieWhileShuttingDown,
}

pub struct Association {
    cfg: Config,
    state: State,
    local_port: u16,
    peer_port: u16,
    my_tag: u32,
    peer_tag: u32,
    my_initial_tsn: u32,
    local_addrs: Vec<Ipv4Addr>,
    paths: Vec<Path>,
    primary: usize,
    /// The path currently used for new data (the primary unless it is inactive).
    current: usize,
    /// The path the last DATA came from: SACKs go back there (6.4).
    sack_path: usize,
    // Handshake.
    t1_at: Option<Instant>,
    init_retries: u32,
    /// Handshakes restarted after a Stale Cookie error.
    stale_restarts: u32,
    send_init: bool,
    cookie: Vec<u8>,
    send_cookie_echo: bool,
    // Sending.
    sendq: SendQueue,
    peer_rwnd: u32,
    /// A SACK arrived since the last T3-rtx expiry (zero window probing, 6.1 A).
    sack_since_t3: bool,
    fast_recovery_exit: Option<u64>,
    fast_rtx_pending: bool,
    /// Where retransmissions go after a T3-rtx expiry (an alternate path), until sent.
    rtx_path: Option<usize>,
    want_send_ready: bool,
    // Receiving.
    tsns: TsnMap,
    rx: Reassembly,
    /// The domain's room for this association (set by the endpoint).
    memory_room: usize,
    sack_now: bool,
    sack_at: Option<Instant>,
    packets_since_sack: u32,
    last_advertised: u32,
    // Control.
    send_cookie_ack: bool,
    send_shutdown: bool,
    send_shutdown_ack: bool,
    send_shutdown_complete: Option<bool>,
    abort: Option<Option<Vec<u8>>>,
    heartbeat_acks: VecDeque<(usize, Vec<u8>)>,
    errors: VecDeque<PendingError>,
    t2_at: Option<Instant>,
    error_count: u32,
    events: VecDeque<AssocEvent>,
    counters: AssocCounters,
    /// Closed by the SHUTDOWN sequence: received messages are still delivered.
    closed_gracefully: bool,
}

impl core::fmt::Debug for Association {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Association")
            .field("state", &self.state)
            .field("my_tag", &self.my_tag)
            .field("peer_tag", &self.peer_tag)
            .finish_non_exhaustive()
    }
}

/// A random non-zero 32-bit value (verification tags, 5.3.1).
pub fn nonzero_u32(rng: &mut dyn RngCore) -> u32 {
    loop {
        let v = rng.next_u32();
        if v != 0 {
            return v;
        }
    }
}

impl Association {
    /// Start an association towards `peer_addrs` (the first is the primary): COOKIE-WAIT with
    /// an INIT due now.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        cfg: &Config,
        now: Instant,
        rng: &mut dyn RngCore,
        local_addrs: &[Ipv4Addr],
        peer_addrs: &[Ipv4Addr],
        peer_port: u16,
        transport: Transport,
    ) -> Self {
        let my_tag = nonzero_u32(rng);
        let my_tsn = rng.next_u32();
        let mut a = Association::blank(cfg, now, local_addrs, peer_port, my_tag, my_tsn);
        let local = local_addrs.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
        for addr in peer_addrs.iter().take(MAX_PEER_ADDRS) {
            a.add_path(now, *addr, local, transport);
        }
        a.send_init = true;
        a.t1_at = Some(now + a.primary_rto());
        a
    }

    /// Create the association a valid COOKIE ECHO describes (5.1.5 step 5): ESTABLISHED.
    /// `src` and `dst` are the addresses of the packet that carried the cookie.
    pub fn from_cookie(
        cfg: &Config,
        now: Instant,
        local_addrs: &[Ipv4Addr],
        cookie: &StateCookie,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        transport: Transport,
    ) -> Self {
        let mut a =
            Association::blank(cfg, now, local_addrs, cookie.peer_port, cookie.local_tag, cookie.local_tsn);
        a.add_path(now, src, dst, transport);
        for addr in &cookie.peer_addrs {
            a.add_path(now, *addr, dst, transport);
        }
        a.apply_peer(
            cookie.peer_tag,
            cookie.peer_tsn,
            cookie.peer_rwnd,
            cookie.outbound_streams,
            cookie.inbound_streams,
        );
        a.state = State::Established;
        a.send_cookie_ack = true;
        a.events.push_back(AssocEvent::Up);
        a
    }

    fn blank(
        cfg: &Config,
        now: Instant,
        local_addrs: &[Ipv4Addr],
        peer_port: u16,
        my_tag: u32,
        my_tsn: u32,
    ) -> Self {
        let _ = now;
        Association {
            cfg: *cfg,
            state: State::CookieWait,
            local_port: cfg.local_port,
            peer_port,
            my_tag,
            peer_tag: 0,
            my_initial_tsn: my_tsn,
            local_addrs: local_addrs.to_vec(),
            paths: Vec::new(),
            primary: 0,
            current: 0,
            sack_path: 0,
            t1_at: None,
            init_retries: 0,
            stale_restarts: 0,
            send_init: false,
            cookie: Vec::new(),
            send_cookie_echo: false,
            sendq: SendQueue::new(cfg.footprint, cfg.send_limit, my_tsn, cfg.outbound_streams),
            peer_rwnd: 0,
            sack_since_t3: false,
            fast_recovery_exit: None,
            fast_rtx_pending: false,
            rtx_path: None,
            want_send_ready: false,
            tsns: TsnMap::new(0),
            rx: Reassembly::new(cfg.footprint, cfg.inbound_streams),
            memory_room: usize::MAX,
            sack_now: false,
            sack_at: None,
            packets_since_sack: 0,
            last_advertised: 0,
            send_cookie_ack: false,
            send_shutdown: false,
            send_shutdown_ack: false,
            send_shutdown_complete: None,
            abort: None,
            heartbeat_acks: VecDeque::new(),
            errors: VecDeque::new(),
            t2_at: None,
            error_count: 0,
            events: VecDeque::new(),
            counters: AssocCounters::default(),
            closed_gracefully: false,
        }
    }

    /// An INIT ACK came from an address we did not send the INIT to (a multi-homed peer
    /// answering from another address): take it as a path before processing the packet.
    pub fn add_peer_address(&mut self, now: Instant, addr: Ipv4Addr, local: Ipv4Addr, transport: Transport) {
        if self.state == State::CookieWait {
            self.add_path(now, addr, local, transport);
        }
    }

    fn add_path(&mut self, now: Instant, addr: Ipv4Addr, local: Ipv4Addr, transport: Transport) {
        if self.paths.len() >= MAX_PEER_ADDRS || self.paths.iter().any(|p| p.addr == addr) {
            return;
        }
        if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
            return;
        }
        let mut p = Path::new(
            addr,
            local,
            transport,
            self.cfg.rto,
            self.cfg.mtu,
            u32::try_from(self.cfg.receive_limit).unwrap_or(u32::MAX),
            now,
            self.cfg.heartbeat_interval,
        );
        // The address the handshake ran over is confirmed; the others need a heartbeat (5.4).
        p.confirmed = self.paths.is_empty();
        // Spread the first heartbeats: alternates are probed early to learn their state.
        if !self.paths.is_empty() {
            p.heartbeat_at = now + p.rto.rto();
        }
        self.paths.push(p);
    }

    /// The peer's parameters from its INIT, INIT ACK or our cookie.
    fn apply_peer(&mut self, peer_tag: u32, peer_tsn: u32, peer_rwnd: u32, peer_out: u16, peer_in: u16) {
        self.peer_tag = peer_tag;
        self.peer_rwnd = peer_rwnd;
        self.tsns = TsnMap::new(peer_tsn);
        let inbound = self.cfg.inbound_streams.min(peer_out).max(1);
        self.rx = Reassembly::new(self.cfg.footprint, inbound);
        self.sendq.set_outbound_streams(self.cfg.outbound_streams.min(peer_in).max(1));
        for p in &mut self.paths {
            p.cc = cc::Congestion::new(u32::from(p.mtu), peer_rwnd);
        }
        self.last_advertised = self.advertised_rwnd();
    }

    // ----- Public operations -----

    pub fn state(&self) -> State {
        self.state
    }

    pub fn my_tag(&self) -> u32 {
        self.my_tag
    }

    pub fn peer_tag(&self) -> u32 {
        self.peer_tag
    }

    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// Whether `addr` is one of the peer's addresses.
    pub fn has_peer_addr(&self, addr: Ipv4Addr) -> bool {
        self.paths.iter().any(|p| p.addr == addr)
    }

    pub fn peer_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.paths.iter().map(|p| p.addr)
    }

    /// Closed, and nothing left to send: the endpoint may forget it.
    ///
    /// After a graceful close the messages already received (and acknowledged) stay readable
    /// until the application has them all: the association is kept, closed, until then (its
    /// queue is bounded by the receive limit, and a shed drops it whole).
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
            && self.abort.is_none()
            && self.send_shutdown_complete.is_none()
            && (!self.rx.has_ready() || !self.closed_gracefully)
    }

    /// The largest user data one DATA chunk we send carries (the fragmentation size): what fits
    /// the smallest path MTU of the association (7.3), whichever path a chunk ends up on.
    pub fn max_payload(&self) -> usize {
        let mtu = self.paths.iter().map(|p| p.mtu).min().unwrap_or(self.cfg.mtu);
        chunk_payload(mtu)
    }

    /// The largest user data we expect in one of the peer's DATA chunks: what fits our
    /// configured MTU (the peer's own path MTU towards us is not known).
    fn peer_max_payload(&self) -> usize {
        chunk_payload(self.cfg.mtu)
    }

    /// An ICMP "protocol unreachable" quoted one of our packets: the peer has no SCTP.
    pub fn on_protocol_unreachable(&mut self) {
        self.close(DownReason::ProtocolUnreachable);
    }

    /// An ICMP "fragmentation needed" (type 3 code 4) came back for a packet of `sent_len`
    /// bytes we sent to `addr`, with the next hop's `mtu` (0 from a router older than RFC
    /// 1191). The caller has checked that the quoted packet carries the peer's verification
    /// tag (appendix C). The path MTU drops to it (at least [`MIN_PATH_MTU`]; a figure of 0, or
    /// one no smaller than the packet, takes RFC 1191's plateau below the packet's size); new
    /// messages are cut to fit, and what is in
    /// flight on the path is sent again at once, since the packets that carried it did not
    /// pass: chunks cut before the change that are still too large leave alone in a packet
    /// marked for IP fragmentation ([`Transmit::fragment_to`]); a SACK goes at once, since the
    /// lost packet may have carried one. Returns whether the MTU fell.
    pub fn on_packet_too_big(&mut self, now: Instant, addr: Ipv4Addr, mtu: u16, sent_len: u16) -> bool {
        let Some(i) = self.paths.iter().position(|p| p.addr == addr) else { return false };
        let Some(p) = self.paths.get_mut(i) else { return false };
        let reported = if mtu == 0 || mtu >= sent_len { plateau_below(sent_len) } else { mtu };
        let mtu = reported.max(MIN_PATH_MTU).min(self.cfg.mtu);
        if !p.lower_mtu(mtu, now + PMTU_RAISE_AFTER) {
            return false;
        }
        self.counters.pmtu_decreases += 1;
        self.retransmit_all_on(i);
        if let Some(p) = self.paths.get_mut(i) {
            p.rtt_probe = None;
        }
        // The lost packet may have carried our SACK with its DATA, and the peer's data may be
        // waiting for it: one goes again now, not at the peer's T3.
        if self.takes_data() {
            self.sack_now = true;
        }
        true
    }

    /// Queue one user message.
    pub fn send(&mut self, stream: u16, ppid: u32, unordered: bool, data: &[u8]) -> Result<(), SendError> {
        self.may_send()?;
        let max = self.max_payload();
        let r = self.sendq.enqueue(stream, ppid, unordered, data, max);
        match r {
            Ok(()) => self.counters.messages_sent += 1,
            Err(SendError::Full) => self.want_send_ready = true,
            Err(_) => {}
        }
        r
    }

    /// Queue what fits of a part of a message (see [`tx::SendQueue::enqueue_part`]); a
    /// `last` part taken whole closes it. Returns the bytes taken.
    pub fn send_part(
        &mut self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
        last: bool,
    ) -> Result<usize, SendError> {
        self.may_send()?;
        let max = self.max_payload();
        let r = self.sendq.enqueue_part(stream, ppid, unordered, data, max, last);
        match r {
            Ok(n) if last && n == data.len() => self.counters.messages_sent += 1,
            Ok(n) if n < data.len() => self.want_send_ready = true,
            Ok(_) => {}
            Err(SendError::Full) => self.want_send_ready = true,
            Err(_) => {}
        }
        r
    }

    fn may_send(&self) -> Result<(), SendError> {
        match self.state {
            State::Established => Ok(()),
            State::CookieWait | State::CookieEchoed => Err(SendError::NotEstablished),
            State::Closed => Err(SendError::Closed),
            _ => Err(SendError::ShuttingDown),
        }
    }

    /// Whether a message of `len` bytes would be taken by [`send`](Self::send) now.
    pub fn can_send(&self, len: usize) -> bool {
        self.state == State::Established && self.sendq.can_take(len, self.max_payload())
    }

    /// Graceful close (9.2): SHUTDOWN once everything sent is acknowledged.
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::Established => {
                self.state = State::ShutdownPending;
                self.maybe_send_shutdown(now);
            }
            State::CookieWait => self.close(DownReason::LocalAbort),
            // The peer may already hold the association: tell it.
            State::CookieEchoed => self.abort(b"shutdown before established"),
            _ => {}
        }
    }

    /// Abortive close (9.1): an ABORT with a User-Initiated Abort cause carrying `reason`.
    pub fn abort(&mut self, reason: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        // In COOKIE-WAIT the peer has no state and we have no tag of its to use.
        if self.state != State::CookieWait {
            let keep = reason.len().min(128);
            self.abort = Some(Some(reason[..keep].to_vec()));
        }
        self.close(DownReason::LocalAbort);
    }

    /// The next whole message for the application.
    pub fn pop_message(&mut self) -> Option<RxMessage> {
        let m = self.rx.pop()?;
        if m.end {
            self.counters.messages_received += 1;
        }
        if m.first_piece {
            self.counters.partial_deliveries += 1;
        }
        // Window update (6.2): tell the peer when the window opened by a packet's worth from
        // a small value, so a sender stalled on a closed window resumes.
        let now_rwnd = self.advertised_rwnd();
        let step = u32::from(self.cfg.mtu).min(u32::try_from(self.cfg.receive_limit / 4).unwrap_or(u32::MAX));
        if now_rwnd >= self.last_advertised.saturating_add(step) && self.last_advertised < step * 2 {
            self.sack_now = true;
        }
        Some(m)
    }

    pub fn has_message(&self) -> bool {
        self.rx.has_ready()
    }

    pub fn take_event(&mut self) -> Option<AssocEvent> {
        self.events.pop_front()
    }

    /// The domain's room (true bytes) granted to this association.
    pub fn set_memory_room(&mut self, bytes: usize) {
        let before = self.advertised_rwnd();
        self.memory_room = bytes;
        if self.advertised_rwnd() > before.saturating_add(u32::from(self.cfg.mtu))
            && before < u32::from(self.cfg.mtu)
        {
            self.sack_now = true;
        }
    }

    /// True bytes of the receive side: the queues and the record of TSNs above the ack point.
    fn rx_held(&self) -> usize {
        self.rx.held() + self.tsns.footprint(self.cfg.footprint)
    }

    /// The true-byte receive budget left, bounded by the domain's room.
    fn rx_room(&self) -> usize {
        self.cfg.receive_limit.saturating_sub(self.rx_held()).min(self.memory_room)
    }

    /// What the first message held must hold, in one run of fragments, before it is handed
    /// out in pieces: half the receive limit (as usrsctp's default).
    fn partial_delivery_point(&self) -> usize {
        self.cfg.receive_limit / 2
    }

    /// The receive window: the true-byte budget left, bounded by the domain's room.
    pub fn advertised_rwnd(&self) -> u32 {
        // Less the segment the next message in order would need: a window that says there is
        // room means a small message fits.
        let left = self.rx_room().saturating_sub(self.rx.next_segment_cost());
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    pub fn status(&self) -> AssociationStatus {
        AssociationStatus {
            state: self.state,
            local_port: self.local_port,
            peer_port: self.peer_port,
            paths: self
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| PathStatus {
                    addr: p.addr,
                    local: p.local,
                    transport: p.transport,
                    state: p.state,
                    primary: i == self.primary,
                    current: i == self.current,
                    confirmed: p.confirmed,
                    rto: p.rto.rto(),
                    srtt: p.rto.srtt(),
                    error_count: p.error_count,
                    cwnd: p.cc.cwnd,
                    ssthresh: p.cc.ssthresh,
                    flight: p.flight,
                    mtu: p.mtu,
                })
                .collect(),
            outbound_streams: self.sendq.outbound_streams(),
            inbound_streams: self.rx.inbound_streams(),
            peer_rwnd: self.peer_rwnd,
            local_rwnd: self.advertised_rwnd(),
            bytes: self.queue_bytes(),
            send_limit: self.cfg.send_limit,
            receive_limit: self.cfg.receive_limit,
            error_count: self.error_count,
            counters: self.counters,
        }
    }

    pub fn queue_bytes(&self) -> QueueBytes {
        QueueBytes {
            send: self.sendq.queue_bytes(),
            in_flight: self.sendq.inflight_bytes(),
            reassembly: self.rx.reassembly_bytes() + self.tsns.footprint(self.cfg.footprint),
            delivery: self.rx.delivery_bytes(),
        }
    }

    // ----- Handshake collisions (5.2) -----

    /// An INIT arrived for this association (5.2.1, 5.2.2): the tags for the INIT ACK, or
    /// `None` when the INIT is answered otherwise (SHUTDOWN-ACK-SENT resends SHUTDOWN ACK).
    pub fn on_init(&mut self, rng: &mut dyn RngCore) -> Option<CollisionReply> {
        match self.state {
            State::CookieWait => Some(CollisionReply {
                local_tag: self.my_tag,
                local_tsn: self.my_initial_tsn,
                local_tie_tag: self.my_tag,
                peer_tie_tag: 0,
            }),
            State::CookieEchoed => Some(CollisionReply {
                local_tag: self.my_tag,
                local_tsn: self.my_initial_tsn,
                local_tie_tag: self.my_tag,
                peer_tie_tag: self.peer_tag,
            }),
            State::ShutdownAckSent => {
                self.send_shutdown_ack = true;
                None
            }
            State::Closed => None,
            _ => Some(CollisionReply {
                local_tag: nonzero_u32(rng),
                local_tsn: rng.next_u32(),
                local_tie_tag: self.my_tag,
                peer_tie_tag: self.peer_tag,
            }),
        }
    }

    /// A valid COOKIE ECHO for this association (5.2.4). Returns false when it is discarded.
    pub fn on_cookie_echo(
        &mut self,
        now: Instant,
        cookie: &StateCookie,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> bool {
        let local_match = cookie.local_tag == self.my_tag;
        let peer_match = cookie.peer_tag == self.peer_tag;
        let ties_match = cookie.local_tie_tag == self.my_tag && cookie.peer_tie_tag == self.peer_tag;
        if !local_match && !peer_match && ties_match {
            // Case A: the peer restarted.
            if self.state == State::ShutdownAckSent {
                self.send_shutdown_ack = true;
                self.push_error(PendingError::CookieWhileShuttingDown);
                return true;
            }
            let transport = self.paths.first().map(|p| p.transport).unwrap_or(Transport::Ip);
            let fresh =
                Association::from_cookie(&self.cfg, now, &self.local_addrs, cookie, src, dst, transport);
            let room = self.memory_room;
            *self = fresh;
            self.memory_room = room;
            self.events.clear();
            self.events.push_back(AssocEvent::Restarted);
            return true;
        }
        if local_match && !peer_match {
            // Case B: an INIT collision; take the peer's new parameters.
            self.apply_peer(
                cookie.peer_tag,
                cookie.peer_tsn,
                cookie.peer_rwnd,
                cookie.outbound_streams,
                cookie.inbound_streams,
            );
            self.enter_established();
            self.send_cookie_ack = true;
            return true;
        }
        if local_match && peer_match {
            // Case D: a duplicate, or the COOKIE ACK was lost.
            if matches!(self.state, State::CookieWait | State::CookieEchoed) {
                self.apply_peer(
                    cookie.peer_tag,
                    cookie.peer_tsn,
                    cookie.peer_rwnd,
                    cookie.outbound_streams,
                    cookie.inbound_streams,
                );
                self.enter_established();
            }
            self.send_cookie_ack = true;
            return true;
        }
        // Case C and every other combination: silently discard.
        false
    }

    fn enter_established(&mut self) {
        if matches!(self.state, State::CookieWait | State::CookieEchoed) {
            self.state = State::Established;
            self.t1_at = None;
            self.send_init = false;
            self.send_cookie_echo = false;
            self.cookie = Vec::new();
            self.events.push_back(AssocEvent::Up);
        }
    }

    // ----- Receiving -----

    /// The chunks of one packet whose verification tag the endpoint has checked, in order.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_chunks<'a>(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        transport: Transport,
        chunks: &[ChunkRepr<'a>],
        raw: &[&'a [u8]],
        drops: &mut Drops,
    ) {
        let Some(path) = self.paths.iter().position(|p| p.addr == src) else {
            drops.unknown_peer_address += 1;
            return;
        };
        // Learn the transport and local address the peer uses on this path (RFC 6951 5.4).
        if let Some(p) = self.paths.get_mut(path) {
            p.transport = transport;
            p.local = dst;
        }
        let mut had_data = false;
        for (i, chunk) in chunks.iter().enumerate() {
            if self.state == State::Closed {
                break;
            }
            match chunk {
                ChunkRepr::Data(d) => {
                    // DATA counts towards a SACK only in the states that take it (`on_data`): a
                    // late one in SHUTDOWN-ACK-SENT drew a SACK that the peer, closed already,
                    // answered with an ABORT (8.4 rule 8), ending a clean shutdown as aborted.
                    had_data |= self.takes_data();
                    if !self.on_data(now, path, d, drops) {
                        break;
                    }
                }
                ChunkRepr::Sack(s) => self.on_sack(now, s, drops),
                ChunkRepr::Heartbeat(h) => {
                    if self.heartbeat_acks.len() < MAX_PENDING_REPLIES {
                        self.heartbeat_acks.push_back((path, h.info.to_vec()));
                    } else {
                        drops.reply_queue_full += 1;
                    }
                }
                ChunkRepr::HeartbeatAck(h) => self.on_heartbeat_ack(now, h.info, drops),
                ChunkRepr::InitAck(init) => self.on_init_ack(now, init, drops),
                ChunkRepr::CookieAck => {
                    if self.state == State::CookieEchoed {
                        self.enter_established();
                    }
                }
                ChunkRepr::Shutdown { cumulative_tsn_ack } => {
                    self.on_shutdown(now, *cumulative_tsn_ack, drops)
                }
                ChunkRepr::ShutdownAck => self.on_shutdown_ack(),
                ChunkRepr::ShutdownComplete { .. } => {
                    if self.state == State::ShutdownAckSent {
                        self.close(DownReason::Shutdown);
                    }
                }
                ChunkRepr::Abort { causes, .. } => {
                    let cause = causes.iter().next().map(|c| c.code());
                    self.close(DownReason::PeerAborted { cause });
                    self.abort = None;
                }
                ChunkRepr::Error { causes } => self.on_error(now, causes, drops),
                ChunkRepr::Init(_) | ChunkRepr::CookieEcho { .. } => {
                    // Handled by the endpoint before the association sees the packet.
                }
                ChunkRepr::Unknown(u) => {
                    drops.unknown_chunk += 1;
                    let action = u.action();
                    if action.reports() {
                        let bytes = raw.get(i).copied().unwrap_or_default();
                        let keep = bytes.len().min(MAX_REPORTED_CHUNK);
                        let value = bytes.get(4..keep).unwrap_or_default().to_vec();
                        self.push_error(PendingError::UnrecognizedChunk {
                            chunk_type: u.chunk_type,
                            flags: u.flags,
                            value,
                        });
                    }
                    if !action.skips() {
                        break;
                    }
                }
            }
        }
        if had_data {
            self.packets_since_sack = self.packets_since_sack.saturating_add(1);
            self.sack_path = path;
            if self.state == State::ShutdownSent {
                // 9.2: every packet with DATA in SHUTDOWN-SENT is answered with SHUTDOWN too.
                self.send_shutdown = true;
                self.t2_at = Some(now + self.primary_rto());
            }
            if self.packets_since_sack >= 2 || self.tsns.has_gaps() || self.state != State::Established {
                self.sack_now = true;
            } else if self.sack_at.is_none() {
                self.sack_at = Some(now + self.cfg.sack_delay);
            }
        }
    }

    fn push_error(&mut self, e: PendingError) {
        if self.errors.len() < MAX_PENDING_REPLIES {
            self.errors.push_back(e);
        }
    }

    /// Whether DATA from the peer is taken in this state (6.2, 9.2).
    fn takes_data(&self) -> bool {
        matches!(self.state, State::Established | State::ShutdownPending | State::ShutdownSent)
    }

    /// One DATA chunk (6.2). Returns false when the rest of the packet is to be ignored.
    fn on_data(&mut self, now: Instant, path: usize, d: &DataChunk<'_>, drops: &mut Drops) -> bool {
        let _ = (now, path);
        if !self.takes_data() {
            drops.data_in_wrong_state += 1;
            return true;
        }
        if d.user_data.is_empty() {
            // 6.2: a DATA chunk without user data: ABORT with "No User Data".
            drops.protocol_violation += 1;
            self.abort = Some(None);
            self.close(DownReason::ProtocolViolation);
            return false;
        }
        self.counters.data_chunks_received += 1;
        let t = match self.tsns.classify(d.tsn.0) {
            TsnClass::Duplicate(_) => {
                self.tsns.note_duplicate(d.tsn.0);
                self.counters.duplicate_tsns_received += 1;
                self.sack_now = true;
                drops.duplicate_data += 1;
                return true;
            }
            TsnClass::TooFar => {
                drops.tsn_too_far += 1;
                self.sack_now = true;
                return true;
            }
            TsnClass::New(t) => t,
        };
        if usize::from(d.stream_id) >= usize::from(self.rx.inbound_streams()) {
            // 6.5: report, and treat the TSN as received when it is the next in order (an
            // out-of-order one is dropped: the peer sends it again, and the map of TSNs above
            // the ack point only ever holds chunks that the receive budget paid for).
            self.push_error(PendingError::InvalidStream(d.stream_id));
            if t == self.tsns.cum() + 1 {
                self.tsns.insert(t);
            }
            self.sack_now = true;
            drops.invalid_stream += 1;
            return true;
        }
        let next_in_order = t == self.tsns.cum() + 1;
        // At most what holding it adds to the receive side's true bytes, so the window is a
        // bound: its payload, a segment or node of a queue, a node of the TSN record.
        let whole = d.beginning && d.ending;
        let cost = self.rx.admission_cost(d.user_data.len(), d.stream_id, d.ssn.0, d.unordered, whole)
            + if next_in_order { 0 } else { self.tsns.growth(self.cfg.footprint) };
        let window = self.rx_room();
        // A chunk out of order leaves room for the one that fills the first gap, whatever
        // its size: messages held behind a gap must never take the room the gap's chunk needs
        // (6.2), or the association waits for a window that cannot open. That includes a
        // chunk dropped here for want of room: a chunk's cost depends on where it lands (a new
        // segment or B-tree node, or none), and a later, cheaper one taken in its place would
        // hold the room it needs.
        let reserve = if next_in_order { 0 } else { self.rx.gap_reserve(self.peer_max_payload()) };
        let fits = cost + reserve <= window
            || (next_in_order
                && !self.rx.has_ready()
                && self.rx_held() + cost <= self.cfg.receive_limit.saturating_mul(2));
        if !fits {
            // 6.2: no room; drop, the peer retransmits once the window opens. The next chunk
            // in order without room: a message past the partial delivery point goes in pieces.
            if next_in_order {
                self.rx.want_partial_delivery(self.partial_delivery_point());
            }
            drops.rwnd_full += 1;
            self.sack_now = true;
            return true;
        }
        let frag = RxFragment {
            stream: d.stream_id,
            ssn: d.ssn.0,
            ppid: d.ppid,
            unordered: d.unordered,
            begin: d.beginning,
            end: d.ending,
            data: d.user_data.into(),
        };
        match self.rx.insert(t, frag) {
            Ok(()) => {
                // The window is closing with nothing to read: the first message held, when
                // it is next in order and past the partial delivery point, is handed out in
                // pieces before the peer must probe a closed window (6.9).
                if !self.rx.has_ready() && self.rx_room() < self.rx.gap_reserve(self.peer_max_payload()) {
                    self.rx.want_partial_delivery(self.partial_delivery_point());
                }
            }
            Err(RxRefusal::StaleSsn | RxRefusal::ReusedSsn) => drops.stale_ssn += 1,
            Err(RxRefusal::InvalidStream(s)) => {
                self.push_error(PendingError::InvalidStream(s));
                drops.invalid_stream += 1;
            }
        }
        self.tsns.insert(t);
        if d.immediate {
            self.sack_now = true;
        }
        true
    }

    fn on_sack(&mut self, now: Instant, s: &SackChunk<'_>, drops: &mut Drops) {
        if !matches!(
            self.state,
            State::Established | State::ShutdownPending | State::ShutdownSent | State::ShutdownReceived
        ) {
            return;
        }
        let cum = unwrap_serial32(self.sendq.cum_acked, s.cumulative_tsn_ack.0);
        if cum < self.sendq.cum_acked {
            drops.stale_sack += 1;
            return;
        }
        if cum > self.sendq.highest_sent() {
            // 6.2.1: acknowledging a TSN never sent is a protocol violation.
            drops.protocol_violation += 1;
            self.abort = Some(None);
            self.close(DownReason::ProtocolViolation);
            return;
        }
        self.counters.sacks_received += 1;
        self.sack_since_t3 = true;
        let cum_advanced = cum > self.sendq.cum_acked;
        let flight_before: Vec<u32> = self.paths.iter().map(|p| p.flight).collect();
        // Per path, the earliest TSN outstanding on it (6.3.2 R3 restarts a path's T3-rtx only
        // when the SACK acknowledges that one).
        let mut earliest: Vec<Option<u64>> = alloc::vec![None; self.paths.len()];
        for c in self.sendq.inflight.iter().filter(|c| c.in_flight && !c.acked) {
            if let Some(e @ None) = earliest.get_mut(c.path) {
                *e = Some(c.tsn);
            }
        }
        let mut acked_bytes: Vec<u32> = alloc::vec![0; self.paths.len()];

        // Chunks covered by the Cumulative TSN Ack.
        for c in self.sendq.release_through(cum) {
            let len = c.chunk.data.len() as u32;
            if let Some(p) = self.paths.get_mut(c.path) {
                if c.in_flight {
                    p.flight = p.flight.saturating_sub(len);
                }
                if !c.acked {
                    if let Some(b) = acked_bytes.get_mut(c.path) {
                        *b += len;
                    }
                }
                if c.transmissions == 1 && p.rtt_probe.is_some_and(|(t, _)| t == c.tsn) {
                    p.rto.measure(now.saturating_since(c.sent_at));
                    p.rtt_probe = None;
                }
                p.on_data_acked();
            }
        }
        // Gap Ack Blocks.
        let blocks: Vec<(u64, u64)> = s
            .gap_blocks
            .iter()
            .filter(|b| b.start <= b.end && b.start > 0)
            .map(|b| (cum + u64::from(b.start), cum + u64::from(b.end)))
            .collect();
        let mut highest_newly_acked: Option<u64> = None;
        for c in self.sendq.inflight.iter_mut() {
            let in_block = blocks.iter().any(|&(a, b)| c.tsn >= a && c.tsn <= b);
            if in_block && !c.acked {
                c.acked = true;
                if core::mem::take(&mut c.retransmit) {
                    self.sendq.marked_for_retransmission -= 1;
                }
                let len = c.chunk.data.len() as u32;
                if let Some(p) = self.paths.get_mut(c.path) {
                    if c.in_flight {
                        p.flight = p.flight.saturating_sub(len);
                    }
                    p.on_data_acked();
                    if c.transmissions == 1 && p.rtt_probe.is_some_and(|(t, _)| t == c.tsn) {
                        p.rto.measure(now.saturating_since(c.sent_at));
                        p.rtt_probe = None;
                    }
                }
                c.in_flight = false;
                if let Some(b) = acked_bytes.get_mut(c.path) {
                    *b += len;
                }
                highest_newly_acked = Some(highest_newly_acked.map_or(c.tsn, |h: u64| h.max(c.tsn)));
            } else if !in_block && c.acked {
                // Reneged (6.2.1), or an older SACK overtaken by a newer one: outstanding
                // again, so a T3-rtx must run on its path to recover it.
                c.acked = false;
                if let Some(p) = self.paths.get_mut(c.path) {
                    if p.t3_at.is_none() {
                        p.t3_at = Some(now + p.rto.rto());
                    }
                }
            }
        }
        // Miss indications and fast retransmit (7.2.4).
        let highest_acked = blocks.iter().map(|&(_, b)| b).max();
        let mut fast_paths: Vec<usize> = Vec::new();
        if let Some(h) = highest_acked {
            let in_recovery = self.fast_recovery_exit.is_some();
            for c in self.sendq.inflight.iter_mut() {
                if c.tsn >= h {
                    break;
                }
                if c.acked || c.fast_retransmitted {
                    continue;
                }
                if in_recovery && highest_newly_acked.is_none_or(|n| c.tsn > n) {
                    continue;
                }
                c.missing += 1;
                if c.missing >= 3 {
                    c.missing = 0;
                    if !core::mem::replace(&mut c.retransmit, true) {
                        self.sendq.marked_for_retransmission += 1;
                    }
                    c.fast_retransmitted = true;
                    if c.in_flight {
                        c.in_flight = false;
                        if let Some(p) = self.paths.get_mut(c.path) {
                            p.flight = p.flight.saturating_sub(c.chunk.data.len() as u32);
                        }
                    }
                    if !fast_paths.contains(&c.path) {
                        fast_paths.push(c.path);
                    }
                    self.counters.fast_retransmits += 1;
                }
            }
        }
        if !fast_paths.is_empty() {
            if self.fast_recovery_exit.is_none() {
                for &i in &fast_paths {
                    if let Some(p) = self.paths.get_mut(i) {
                        p.cc.on_fast_retransmit();
                    }
                }
                self.fast_recovery_exit = Some(self.sendq.highest_sent());
            }
            self.fast_rtx_pending = true;
        }
        if self.fast_recovery_exit.is_some_and(|exit| cum >= exit) {
            self.fast_recovery_exit = None;
        }
        // Congestion windows.
        if cum_advanced {
            for (i, p) in self.paths.iter_mut().enumerate() {
                let acked = acked_bytes.get(i).copied().unwrap_or(0);
                let before = flight_before.get(i).copied().unwrap_or(0);
                if acked > 0 && self.fast_recovery_exit.is_none() {
                    p.cc.on_ack(acked, before >= p.cc.cwnd, p.flight);
                }
            }
            self.error_count = 0;
        }
        // Timers (6.3.2 R2, R3): a path whose earliest outstanding chunk was acknowledged
        // restarts its timer; one whose earliest chunk is still missing keeps it running (a
        // path that went dead is not kept alive by acknowledgements of what other paths carry).
        let front = self.sendq.inflight.front().map(|c| c.tsn);
        for (i, p) in self.paths.iter_mut().enumerate() {
            if p.flight == 0 {
                p.t3_at = None;
                continue;
            }
            let acked = earliest.get(i).copied().flatten().is_some_and(|t| {
                t <= cum
                    || front
                        .and_then(|f| usize::try_from(t - f).ok())
                        .and_then(|k| self.sendq.inflight.get(k))
                        .is_some_and(|c| c.tsn == t && c.acked)
            });
            if acked || p.t3_at.is_none() {
                p.t3_at = Some(now + p.rto.rto());
            }
        }
        // Peer's window (6.2.1).
        let outstanding: usize = self
            .sendq
            .inflight
            .iter()
            .filter(|c| c.in_flight)
            .map(|c| self.rx.fragment_cost(c.chunk.data.len()))
            .sum();
        self.peer_rwnd = s.a_rwnd.saturating_sub(u32::try_from(outstanding).unwrap_or(u32::MAX));
        self.update_current_path();
        self.maybe_send_ready();
        self.maybe_send_shutdown(now);
        if self.state == State::ShutdownReceived && self.sendq.is_empty() {
            self.send_shutdown_ack_now(now);
        }
    }

    fn maybe_send_ready(&mut self) {
        if self.want_send_ready && self.sendq.can_take(1, self.max_payload()) {
            self.want_send_ready = false;
            self.events.push_back(AssocEvent::SendReady);
        }
    }

    fn on_heartbeat_ack(&mut self, now: Instant, info: &[u8], drops: &mut Drops) {
        // Our Heartbeat Info: peer address (4), nonce (8), sent time (8).
        let (Some(addr), Some(nonce), Some(sent)) = (
            info.get(0..4).and_then(|b| <[u8; 4]>::try_from(b).ok()),
            info.get(4..12).and_then(|b| <[u8; 8]>::try_from(b).ok()),
            info.get(12..20).and_then(|b| <[u8; 8]>::try_from(b).ok()),
        ) else {
            drops.bad_heartbeat_ack += 1;
            return;
        };
        let addr = Ipv4Addr::from(addr);
        let nonce = u64::from_be_bytes(nonce);
        let sent = Instant::from_micros(u64::from_be_bytes(sent));
        let Some(p) = self.paths.iter_mut().find(|p| p.addr == addr) else {
            drops.bad_heartbeat_ack += 1;
            return;
        };
        if p.heartbeat_outstanding.is_none_or(|(n, _)| n != nonce) {
            drops.bad_heartbeat_ack += 1;
            return;
        }
        p.heartbeat_outstanding = None;
        p.rto.measure(now.saturating_since(sent));
        p.on_reachable();
        match p.probe {
            // Full-sized packets pass: the data's losses were random.
            MtuProbe::Large(_) if matches!(p.heartbeat_kind, HeartbeatKind::Padded(_)) => {
                p.probe = MtuProbe::Idle;
                p.data_timeouts = 0;
            }
            // The path takes the configured MTU again.
            MtuProbe::Raise if matches!(p.heartbeat_kind, HeartbeatKind::Padded(_)) => {
                p.probe = MtuProbe::Idle;
                p.raise_mtu(self.cfg.mtu);
            }
            // Small packets pass: now the padded probes, the first at once.
            MtuProbe::Small if p.heartbeat_kind == HeartbeatKind::Small => {
                p.probe = MtuProbe::Large(0);
                p.heartbeat_at = now;
            }
            _ => {}
        }
        self.error_count = 0;
        self.update_current_path();
    }

    fn on_init_ack(&mut self, now: Instant, init: &InitChunk<'_>, drops: &mut Drops) {
        if self.state != State::CookieWait {
            // 5.2.3: an unexpected INIT ACK is discarded.
            drops.unexpected_init_ack += 1;
            return;
        }
        // An ABORT for a malformed INIT ACK goes to the tag it announced.
        self.peer_tag = init.initiate_tag;
        let Some(cookie) = init.state_cookie() else {
            drops.malformed += 1;
            self.abort = Some(None);
            self.close(DownReason::ProtocolViolation);
            return;
        };
        if init.initiate_tag == 0 || init.outbound_streams == 0 || init.inbound_streams == 0 {
            drops.malformed += 1;
            self.abort = Some(None);
            self.close(DownReason::ProtocolViolation);
            return;
        }
        let local = self.paths.first().map(|p| p.local).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let transport = self.paths.first().map(|p| p.transport).unwrap_or(Transport::Ip);
        for param in init.params.iter() {
            if let ParamRepr::Ipv4Address(a) = param {
                self.add_path(now, a, local, transport);
            }
        }
        self.apply_peer(
            init.initiate_tag,
            init.initial_tsn.0,
            init.a_rwnd,
            init.outbound_streams,
            init.inbound_streams,
        );
        self.cookie = cookie.to_vec();
        self.state = State::CookieEchoed;
        self.send_init = false;
        self.send_cookie_echo = true;
        self.init_retries = 0;
        self.t1_at = Some(now + self.primary_rto());
    }

    fn on_shutdown(&mut self, now: Instant, cum: Tsn, drops: &mut Drops) {
        match self.state {
            State::Established | State::ShutdownPending | State::ShutdownReceived => {
                // The Cumulative TSN Ack acts as a SACK without gaps.
                let sack = SackChunk {
                    cumulative_tsn_ack: cum,
                    a_rwnd: self.peer_rwnd,
                    gap_blocks: List::EMPTY,
                    duplicate_tsns: List::EMPTY,
                };
                let state = self.state;
                self.state = State::Established;
                self.on_sack(now, &sack, drops);
                if self.state == State::Closed {
                    return;
                }
                let _ = state;
                self.state = State::ShutdownReceived;
                self.sack_now = true;
                if self.sendq.is_empty() {
                    self.send_shutdown_ack_now(now);
                }
            }
            State::ShutdownSent => {
                // 9.2: both sides shut down: answer with SHUTDOWN ACK.
                self.send_shutdown_ack_now(now);
            }
            _ => {}
        }
    }

    fn send_shutdown_ack_now(&mut self, now: Instant) {
        self.state = State::ShutdownAckSent;
        self.send_shutdown_ack = true;
        self.t2_at = Some(now + self.primary_rto());
    }

    fn on_shutdown_ack(&mut self) {
        match self.state {
            State::ShutdownSent | State::ShutdownAckSent => {
                self.send_shutdown_complete = Some(false);
                self.close(DownReason::Shutdown);
            }
            _ => {}
        }
    }

    fn on_error(&mut self, now: Instant, causes: &List<'_, CauseRepr<'_>>, drops: &mut Drops) {
        for c in causes.iter() {
            drops.error_chunks_received += 1;
            if let CauseRepr::StaleCookie { .. } = c {
                if self.state == State::CookieEchoed {
                    // 5.2.6: start over with a fresh INIT, at most Max.Init.Retransmits times.
                    self.stale_restarts += 1;
                    if self.stale_restarts > self.cfg.max_init_retransmits {
                        self.close(DownReason::CookieTimeout);
                        return;
                    }
                    self.state = State::CookieWait;
                    self.send_cookie_echo = false;
                    self.send_init = true;
                    self.t1_at = Some(now + self.primary_rto());
                }
            }
        }
    }

    fn close(&mut self, reason: DownReason) {
        if self.state == State::Closed {
            return;
        }
        let was_up = !matches!(self.state, State::CookieWait | State::CookieEchoed);
        self.state = State::Closed;
        self.closed_gracefully = reason == DownReason::Shutdown;
        self.sendq.clear();
        self.t1_at = None;
        self.t2_at = None;
        self.sack_at = None;
        for p in &mut self.paths {
            p.t3_at = None;
            p.flight = 0;
        }
        let _ = was_up;
        self.events.push_back(AssocEvent::Down(reason));
    }

    // ----- Timers -----

    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut at = [self.t1_at, self.t2_at, self.sack_at].into_iter().flatten().min();
        for p in &self.paths {
            for t in [p.t3_at, self.heartbeat_deadline(p), p.mtu_raise_at].into_iter().flatten() {
                at = Some(at.map_or(t, |a: Instant| a.min(t)));
            }
        }
        at
    }

    fn heartbeat_deadline(&self, p: &Path) -> Option<Instant> {
        if !matches!(self.state, State::Established | State::ShutdownPending | State::ShutdownReceived) {
            return None;
        }
        Some(match p.heartbeat_outstanding {
            Some((_, sent)) => sent + p.rto.rto(),
            None => p.heartbeat_at,
        })
    }

    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn RngCore) {
        if self.state == State::Closed {
            return;
        }
        if self.t1_at.is_some_and(|t| t <= now) {
            self.init_retries += 1;
            if let Some(p) = self.paths.get_mut(self.primary) {
                p.rto.back_off();
            }
            if self.init_retries > self.cfg.max_init_retransmits {
                let reason = if self.state == State::CookieWait {
                    DownReason::InitTimeout
                } else {
                    DownReason::CookieTimeout
                };
                self.close(reason);
                return;
            }
            match self.state {
                State::CookieWait => self.send_init = true,
                State::CookieEchoed => self.send_cookie_echo = true,
                _ => {}
            }
            self.t1_at = Some(now + self.primary_rto());
        }
        if self.t2_at.is_some_and(|t| t <= now) {
            if let Some(p) = self.paths.get_mut(self.current) {
                p.on_timeout(self.cfg.path_max_retrans);
            }
            if self.count_error() {
                return;
            }
            match self.state {
                State::ShutdownSent => self.send_shutdown = true,
                State::ShutdownAckSent => self.send_shutdown_ack = true,
                _ => {}
            }
            self.update_current_path();
            self.t2_at = Some(now + self.primary_rto());
        }
        if self.sack_at.is_some_and(|t| t <= now) {
            self.sack_at = None;
            self.sack_now = true;
        }
        for p in self.paths.iter_mut() {
            if p.mtu_raise_at.is_some_and(|t| t <= now) {
                p.mtu_raise_at = None;
                // Not while a black hole is being looked for: its own timeouts will ask again.
                if p.probe == MtuProbe::Idle {
                    p.probe = MtuProbe::Raise;
                    if p.heartbeat_outstanding.is_none() {
                        p.heartbeat_at = now;
                    }
                }
            }
        }
        for i in 0..self.paths.len() {
            if self.paths.get(i).and_then(|p| p.t3_at).is_some_and(|t| t <= now) {
                self.on_t3_expiry(now, i);
                if self.state == State::Closed {
                    return;
                }
            }
            let due = self.paths.get(i).and_then(|p| self.heartbeat_deadline(p)).is_some_and(|t| t <= now);
            if due {
                self.on_heartbeat_due(now, i, rng);
                if self.state == State::Closed {
                    return;
                }
            }
        }
    }

    /// Counts one error against the association; closes it past Association.Max.Retrans.
    fn count_error(&mut self) -> bool {
        self.error_count += 1;
        if self.error_count > self.cfg.association_max_retrans {
            self.abort = Some(None);
            self.close(DownReason::RetransmitLimit);
            return true;
        }
        false
    }

    fn on_t3_expiry(&mut self, now: Instant, i: usize) {
        self.counters.t3_expiries += 1;
        // Zero window probing (6.1 A): the peer keeps answering but its window is too small
        // for a full chunk.
        let probing =
            self.sack_since_t3 && (self.peer_rwnd as usize) < self.rx.fragment_cost(self.max_payload());
        self.sack_since_t3 = false;
        let Some(p) = self.paths.get_mut(i) else { return };
        p.t3_at = None;
        p.cc.on_t3_expiry();
        p.rtt_probe = None;
        if probing {
            // 6.1 A: unanswered zero window probes do not count as errors while SACKs come.
            p.rto.back_off();
        } else {
            if p.on_timeout(self.cfg.path_max_retrans) {
                self.counters.failovers += 1;
            }
            // Data timed out twice in a row with no ICMP to say why: black-hole detection
            // starts (see MtuProbe), with a padded HEARTBEAT now.
            p.data_timeouts = p.data_timeouts.saturating_add(1);
            if p.data_timeouts >= 2 && p.mtu > BASE_PLPMTU && p.probe == MtuProbe::Idle {
                p.probe = MtuProbe::Small;
                if p.heartbeat_outstanding.is_none() {
                    p.heartbeat_at = now;
                }
            }
            if self.count_error() {
                return;
            }
        }
        self.retransmit_all_on(i);
        self.fast_recovery_exit = None;
        self.update_current_path();
        // 6.4.1: retransmit to an alternate active address when there is one.
        self.rtx_path = self
            .paths
            .iter()
            .enumerate()
            .find(|(j, p)| *j != i && p.is_active() && p.confirmed)
            .map(|(j, _)| j);
        let _ = now;
    }

    /// Every chunk sent on path `i` and not acknowledged is to go again (T3-rtx, 6.3.3 E3; a
    /// path MTU that fell under the packets that carried them); none counts in flight there.
    fn retransmit_all_on(&mut self, i: usize) {
        for c in self.sendq.inflight.iter_mut() {
            if c.path == i && !c.acked {
                if !core::mem::replace(&mut c.retransmit, true) {
                    self.sendq.marked_for_retransmission += 1;
                }
                c.in_flight = false;
            }
        }
        if let Some(p) = self.paths.get_mut(i) {
            p.flight = 0;
        }
    }

    fn on_heartbeat_due(&mut self, now: Instant, i: usize, rng: &mut dyn RngCore) {
        let Some(p) = self.paths.get_mut(i) else { return };
        if p.heartbeat_outstanding.is_some() && p.heartbeat_kind != HeartbeatKind::Regular {
            // A probe went unanswered: no error (RFC 8899 3; the data's timeouts count). The
            // small one lost: a dead path, not a black hole. Every padded one lost while the
            // small one passed: a black hole, the MTU falls. Either way the detection ends
            // (a later timeout starts it again) and the heartbeats go back to their interval.
            p.heartbeat_outstanding = None;
            match p.probe {
                MtuProbe::Large(n) if n < LARGE_PROBES => {}
                MtuProbe::Raise => {
                    // Still too large for the path: ask again later.
                    p.probe = MtuProbe::Idle;
                    p.mtu_raise_at = Some(now + PMTU_RAISE_AFTER);
                    return;
                }
                MtuProbe::Large(_) => {
                    p.probe = MtuProbe::Idle;
                    if p.lower_mtu(BASE_PLPMTU, now + PMTU_RAISE_AFTER) {
                        self.counters.pmtu_decreases += 1;
                        self.counters.pmtu_black_holes += 1;
                    }
                    return;
                }
                MtuProbe::Small | MtuProbe::Idle => {
                    p.probe = MtuProbe::Idle;
                    return;
                }
            }
        } else if p.heartbeat_outstanding.is_some() {
            // The previous HEARTBEAT went unanswered (8.3).
            p.heartbeat_outstanding = None;
            if p.on_timeout(self.cfg.path_max_retrans) {
                self.counters.failovers += 1;
            }
            if p.confirmed && self.count_error() {
                return;
            }
            self.update_current_path();
        }
        let nonce = rng.next_u64();
        if let Some(p) = self.paths.get_mut(i) {
            p.heartbeat_outstanding = Some((nonce, now));
            p.heartbeat_to_send = true;
            p.heartbeat_kind = match p.probe {
                MtuProbe::Idle => HeartbeatKind::Regular,
                MtuProbe::Small => HeartbeatKind::Small,
                MtuProbe::Large(n) => {
                    p.probe = MtuProbe::Large(n + 1);
                    HeartbeatKind::Padded(p.mtu)
                }
                MtuProbe::Raise => HeartbeatKind::Padded(self.cfg.mtu),
            };
            // 8.3: the next one after HB.interval + RTO, jittered by up to +-RTO/2.
            let rto = p.rto.rto().total_micros();
            let jitter = rng.next_u64() % rto.saturating_add(1);
            p.heartbeat_at =
                now + self.cfg.heartbeat_interval + Duration::from_micros((rto / 2).saturating_add(jitter));
        }
        self.counters.heartbeats_sent += 1;
    }

    /// The primary if it is active, else the first active alternate (8.2 failover), else the
    /// primary.
    fn update_current_path(&mut self) {
        // Prefer a confirmed alternate (5.4: data goes only to confirmed addresses).
        let next = if self.paths.get(self.primary).is_some_and(|p| p.is_active()) {
            self.primary
        } else {
            self.paths
                .iter()
                .position(|p| p.is_active() && p.confirmed)
                .or_else(|| self.paths.iter().position(|p| p.is_active()))
                .unwrap_or(self.primary)
        };
        self.current = next;
    }

    fn primary_rto(&self) -> Duration {
        self.paths.get(self.primary).map_or(self.cfg.rto.initial, |p| p.rto.rto())
    }

    fn maybe_send_shutdown(&mut self, now: Instant) {
        if self.state == State::ShutdownPending && self.sendq.is_empty() {
            self.state = State::ShutdownSent;
            self.send_shutdown = true;
            self.t2_at = Some(now + self.primary_rto());
        }
    }

    // ----- Transmitting -----

    /// Write the next packet this association has to send into `buf`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(reason) = self.abort.take() {
            let cause_storage;
            let causes: &[CauseRepr<'_>] = match &reason {
                Some(r) => {
                    cause_storage = [CauseRepr::UserInitiatedAbort { reason: r }];
                    &cause_storage
                }
                None => &[],
            };
            let chunk = ChunkRepr::Abort { t_bit: false, causes: List::Items(causes) };
            return self.single(self.current, self.peer_tag, &chunk, buf);
        }
        if let Some(t_bit) = self.send_shutdown_complete.take() {
            return self.single(self.current, self.peer_tag, &ChunkRepr::ShutdownComplete { t_bit }, buf);
        }
        if self.state == State::Closed {
            return None;
        }
        if self.send_init {
            self.send_init = false;
            let params: Vec<ParamRepr<'_>> =
                self.local_addrs.iter().map(|a| ParamRepr::Ipv4Address(*a)).collect();
            let chunk = ChunkRepr::Init(InitChunk {
                initiate_tag: self.my_tag,
                a_rwnd: self.advertised_rwnd(),
                outbound_streams: self.cfg.outbound_streams,
                inbound_streams: self.cfg.inbound_streams,
                initial_tsn: Tsn(self.my_initial_tsn),
                params: List::Items(&params),
            });
            return self.single(self.primary, 0, &chunk, buf);
        }
        if self.send_cookie_echo {
            self.send_cookie_echo = false;
            let cookie = core::mem::take(&mut self.cookie);
            let t = self.single(self.primary, self.peer_tag, &ChunkRepr::CookieEcho { cookie: &cookie }, buf);
            self.cookie = cookie;
            return t;
        }
        if matches!(self.state, State::CookieWait | State::CookieEchoed) {
            return None;
        }
        if let Some((path, info)) = self.heartbeat_acks.pop_front() {
            let chunk = ChunkRepr::HeartbeatAck(HeartbeatChunk { info: &info });
            return self.single(path, self.peer_tag, &chunk, buf);
        }
        if let Some(i) = self.paths.iter().position(|p| p.heartbeat_to_send) {
            let headers = self.headers(i);
            let p = self.paths.get_mut(i)?;
            p.heartbeat_to_send = false;
            let (nonce, sent) = p.heartbeat_outstanding?;
            // A probe fills a packet of its MTU: the SCTP common header, the chunk and
            // parameter headers (4 each) and the info, padded to a multiple of 4. It leaves
            // with DF set, whatever the path's MTU: the question is whether it passes.
            let (limit, info_len) = match p.heartbeat_kind {
                HeartbeatKind::Padded(mtu) => {
                    let limit = usize::from(mtu).saturating_sub(headers);
                    (limit, (limit.saturating_sub(COMMON_HEADER_LEN + 8) / 4 * 4).max(20))
                }
                HeartbeatKind::Regular | HeartbeatKind::Small => (self.packet_limit(i), 20),
            };
            let p = self.paths.get(i)?;
            let mut info = alloc::vec![0u8; info_len];
            info[0..4].copy_from_slice(&p.addr.octets());
            info[4..12].copy_from_slice(&nonce.to_be_bytes());
            info[12..20].copy_from_slice(&sent.total_micros().to_be_bytes());
            let chunk = ChunkRepr::Heartbeat(HeartbeatChunk { info: &info });
            let mut b = PacketBuilder::new(buf, &self.header(self.peer_tag), limit).ok()?;
            b.push(&chunk).ok()?;
            let len = b.finish();
            return Some(Transmit {
                src: p.local,
                dst: p.addr,
                transport: p.transport,
                len,
                fragment_to: None,
            });
        }
        self.build_main(now, buf)
    }

    fn header(&self, tag: u32) -> PacketRepr {
        PacketRepr { src_port: self.local_port, dst_port: self.peer_port, verification_tag: tag }
    }

    /// The SCTP packet's size limit on `path`: its MTU less the IP (and UDP) header.
    fn packet_limit(&self, path: usize) -> usize {
        let mtu = self.paths.get(path).map_or(self.cfg.mtu, |p| p.mtu);
        usize::from(mtu).saturating_sub(self.headers(path))
    }

    /// The limit for a chunk cut before the path MTU fell: the configured MTU's.
    fn oversize_limit(&self, path: usize) -> usize {
        usize::from(self.cfg.mtu).saturating_sub(self.headers(path))
    }

    fn headers(&self, path: usize) -> usize {
        match self.paths.get(path).map(|p| p.transport) {
            Some(Transport::Udp { .. }) => IPV4_HEADER_LEN + UDP_HEADER_LEN,
            _ => IPV4_HEADER_LEN,
        }
    }

    fn transmit_for(&self, path: usize, len: usize) -> Option<Transmit> {
        let p = self.paths.get(path)?;
        let fragment_to = (len + self.headers(path) > usize::from(p.mtu)).then_some(p.mtu);
        Some(Transmit { src: p.local, dst: p.addr, transport: p.transport, len, fragment_to })
    }

    /// A packet holding one chunk, to `path`.
    fn single(&mut self, path: usize, tag: u32, chunk: &ChunkRepr<'_>, buf: &mut [u8]) -> Option<Transmit> {
        let limit = self.packet_limit(path);
        let mut b = PacketBuilder::new(buf, &self.header(tag), limit).ok()?;
        b.push(chunk).ok()?;
        let len = b.finish();
        self.transmit_for(path, len)
    }

    /// The bundle to the current path: control chunks, retransmissions, then new DATA.
    fn build_main(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        debug_assert_eq!(
            self.sendq.marked_for_retransmission,
            self.sendq.inflight.iter().filter(|c| c.retransmit).count()
        );
        // A count, not a scan: this runs for every packet built.
        let pending_rtx = self.sendq.marked_for_retransmission > 0;
        if !pending_rtx {
            self.rtx_path = None;
        }
        // Retransmissions after a T3-rtx go to the alternate chosen then, new data stays on
        // the current path.
        let rtx_elsewhere = self.rtx_path.filter(|&j| j != self.current);
        let path = rtx_elsewhere.unwrap_or(self.current);
        let header = self.header(self.peer_tag);
        let sack_elsewhere = self.sack_path != path
            && self.paths.get(self.sack_path).is_some_and(|p| p.is_active())
            && matches!(self.state, State::Established | State::ShutdownPending | State::ShutdownSent);
        if self.sack_now && sack_elsewhere {
            // 6.4: a SACK goes back to the address the DATA came from.
            let to = self.sack_path;
            let mut b = PacketBuilder::new(buf, &header, self.packet_limit(to)).ok()?;
            if self.push_sack(&mut b) {
                self.sack_now = false;
                self.sack_at = None;
                self.packets_since_sack = 0;
                self.counters.sacks_sent += 1;
                let len = b.finish();
                return self.transmit_for(to, len);
            }
            return None;
        }
        let limit = self.packet_limit(path);
        let mut b = PacketBuilder::new(buf, &header, limit).ok()?;

        if self.send_cookie_ack && b.push(&ChunkRepr::CookieAck).is_ok() {
            self.send_cookie_ack = false;
        }
        while let Some(e) = self.errors.front() {
            let cause = match e {
                PendingError::InvalidStream(s) => CauseRepr::InvalidStreamIdentifier { stream_id: *s },
                PendingError::UnrecognizedChunk { chunk_type, flags, value } => {
                    CauseRepr::UnrecognizedChunkType {
                        chunk: RawChunk { chunk_type: *chunk_type, flags: *flags, value },
                    }
                }
                PendingError::CookieWhileShuttingDown => CauseRepr::CookieReceivedWhileShuttingDown,
            };
            let causes = [cause];
            if b.push(&ChunkRepr::Error { causes: List::Items(&causes) }).is_err() {
                break;
            }
            self.errors.pop_front();
        }
        if self.send_shutdown_ack && b.push(&ChunkRepr::ShutdownAck).is_ok() {
            self.send_shutdown_ack = false;
        }
        let has_data = !self.sendq.queue.is_empty() || self.sendq.marked_for_retransmission > 0;
        let want_sack = self.sack_now || (self.sack_at.is_some() && has_data);
        if want_sack && self.push_sack(&mut b) {
            self.sack_now = false;
            self.sack_at = None;
            self.packets_since_sack = 0;
            self.counters.sacks_sent += 1;
        }
        if self.send_shutdown {
            let cum = Tsn(self.tsns.cumulative_tsn_ack());
            if b.push(&ChunkRepr::Shutdown { cumulative_tsn_ack: cum }).is_ok() {
                self.send_shutdown = false;
            }
        }
        if matches!(self.state, State::Established | State::ShutdownPending | State::ShutdownReceived) {
            self.push_data(now, path, &mut b, rtx_elsewhere.is_none());
        }
        if b.is_empty() {
            return None;
        }
        let len = b.finish();
        self.transmit_for(path, len)
    }

    fn push_sack(&mut self, b: &mut PacketBuilder<'_>) -> bool {
        let dups: Vec<Tsn> = self.tsns.take_duplicates().into_iter().map(Tsn).collect();
        let room = b.room();
        let fixed = 16 + 4 * dups.len();
        let max_blocks = (room.saturating_sub(fixed) / 4).min(MAX_GAP_BLOCKS);
        let blocks: Vec<GapAckBlock> = self
            .tsns
            .gap_blocks(max_blocks)
            .into_iter()
            .map(|(start, end)| GapAckBlock { start, end })
            .collect();
        let rwnd = self.advertised_rwnd();
        let dup_list = if fixed + 4 * blocks.len() <= room { &dups[..] } else { &[] };
        let chunk = ChunkRepr::Sack(SackChunk {
            cumulative_tsn_ack: Tsn(self.tsns.cumulative_tsn_ack()),
            a_rwnd: rwnd,
            gap_blocks: List::Items(&blocks),
            duplicate_tsns: List::Items(dup_list),
        });
        if b.push(&chunk).is_ok() {
            self.last_advertised = rwnd;
            true
        } else {
            false
        }
    }

    fn push_data(&mut self, now: Instant, path: usize, b: &mut PacketBuilder<'_>, new_data: bool) {
        let fast = core::mem::take(&mut self.fast_rtx_pending);
        // Retransmissions first (6.3.3 E3, 7.2.4).
        let mut i = 0;
        while i < self.sendq.inflight.len() {
            let Some(c) = self.sendq.inflight.get(i) else { break };
            if !c.retransmit {
                i += 1;
                continue;
            }
            let len = c.chunk.data.len() as u32;
            let Some(p) = self.paths.get(path) else { return };
            if !fast && p.flight >= p.cc.cwnd {
                return;
            }
            let chunk = data_repr(c, false);
            if !push_data_chunk(b, &chunk, self.oversize_limit(path)) {
                return;
            }
            let tsn = c.tsn;
            if let Some(c) = self.sendq.inflight.get_mut(i) {
                if core::mem::take(&mut c.retransmit) {
                    self.sendq.marked_for_retransmission -= 1;
                }
                c.in_flight = true;
                c.transmissions += 1;
                c.path = path;
                c.sent_at = now;
            }
            self.counters.retransmissions += 1;
            if let Some(p) = self.paths.get_mut(path) {
                p.flight += len;
                if p.rtt_probe.is_some_and(|(t, _)| t == tsn) {
                    p.rtt_probe = None;
                }
                if p.t3_at.is_none() {
                    p.t3_at = Some(now + p.rto.rto());
                }
            }
            i += 1;
        }
        // New data (6.1 A and B).
        if !new_data {
            return;
        }
        loop {
            let Some(head) = self.sendq.queue.front() else { return };
            let len = head.data.len();
            let Some(p) = self.paths.get(path) else { return };
            if p.flight >= p.cc.cwnd {
                return;
            }
            let cost = self.rx.fragment_cost(len) as u32;
            let nothing_outstanding = self.paths.iter().all(|p| p.flight == 0);
            if self.peer_rwnd < cost && !nothing_outstanding {
                return;
            }
            // RFC 7053: the last chunk before a SHUTDOWN asks for an immediate SACK.
            let immediate = self.state == State::ShutdownPending && self.sendq.queue.len() == 1;
            let probe = DataChunk {
                unordered: head.unordered,
                beginning: head.begin,
                ending: head.end,
                immediate,
                tsn: Tsn(self.sendq.next_tsn as u32),
                stream_id: head.stream,
                ssn: Ssn(head.ssn),
                ppid: head.ppid,
                user_data: &head.data,
            };
            if !push_data_chunk(b, &ChunkRepr::Data(probe), self.oversize_limit(path)) {
                return;
            }
            let Some(sent) = self.sendq.send_next(now, path) else { return };
            let tsn = sent.tsn;
            self.counters.data_chunks_sent += 1;
            self.peer_rwnd = self.peer_rwnd.saturating_sub(cost);
            if let Some(p) = self.paths.get_mut(path) {
                if now.saturating_since(p.last_data_sent) > p.rto.rto() && p.flight == 0 {
                    p.cc.on_idle();
                }
                p.flight += len as u32;
                p.last_data_sent = now;
                if p.rtt_probe.is_none() {
                    p.rtt_probe = Some((tsn, now));
                }
                if p.t3_at.is_none() {
                    p.t3_at = Some(now + p.rto.rto());
                }
            }
        }
    }
}

/// Bundles a DATA chunk; one cut before the path MTU fell, too large for it even alone,
/// goes alone in a packet that may grow to `oversize_limit` (sent for IP fragmentation),
/// closed to any other chunk.
fn push_data_chunk(b: &mut PacketBuilder<'_>, chunk: &ChunkRepr<'_>, oversize_limit: usize) -> bool {
    if b.push(chunk).is_ok() {
        return true;
    }
    if !b.is_empty() {
        return false;
    }
    b.set_limit(oversize_limit);
    let pushed = b.push(chunk).is_ok();
    b.set_limit(0);
    pushed
}

fn data_repr<'c>(c: &'c tx::SentChunk, immediate: bool) -> ChunkRepr<'c> {
    ChunkRepr::Data(DataChunk {
        unordered: c.chunk.unordered,
        beginning: c.chunk.begin,
        ending: c.chunk.end,
        immediate,
        tsn: Tsn(c.tsn as u32),
        stream_id: c.chunk.stream,
        ssn: Ssn(c.chunk.ssn),
        ppid: c.chunk.ppid,
        user_data: &c.chunk.data,
    })
}
