//! The SCTP endpoint (RFC 9260): one local port on every local address, holding its
//! associations. Sans-I/O: the integrator hands it packets ([`Endpoint::handle`]), calls
//! [`Endpoint::handle_timeout`] at [`Endpoint::poll_at`], and drains
//! [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`].
//!
//! No state is kept for a peer before its COOKIE ECHO carries a valid State Cookie (5.1.3):
//! an INIT is answered from the cookie secret alone.
//!
//! Bounds (owner: the endpoint, payer: the SCTP domain):
//! - associations: at most [`Config::max_associations`]; a COOKIE ECHO beyond is answered
//!   with ABORT "Out of Resource" and counted (`association_limit`).
//! - stateless replies (INIT ACK, ABORT, SHUTDOWN COMPLETE, ERROR to packets without an
//!   association): at most [`MAX_STATELESS_REPLIES`] queued and
//!   [`Config::ootb_replies_per_sec`] a second; more are dropped and counted.
//! - events: at most a few per association between polls (Up, Down, Restarted, SendReady);
//!   messages are not copied into events but pulled one at a time from each association's
//!   delivery queue, so a backlog drains across loop turns.
//! - per association: see [`crate::association`].
//!
//! Association lookup is a linear scan by peer address and port, fine for the hundreds of
//! associations an appliance serves.
//!
//! Memory: every chunk queued for sending, retransmission, reassembly or delivery is charged
//! `footprint(size_of::<its struct>()) + footprint(payload)` with the [`Footprint`] function
//! of the [`Config`] (the integrator passes the allocator's size-class rounding). The window
//! advertised to a peer is the receive budget left in those true bytes, bounded by the share
//! of [`Endpoint::set_memory_room`]; a receiver that is not read fills, closes its window and
//! stalls its peer; a sender past its limit gets [`SendError::Full`] and later
//! [`Event::SendReady`].
//!
//! One loop turn of the integrator, with two endpoints wired back to back:
//!
//! ```
//! use core::net::Ipv4Addr;
//! use bulkhead_base::rand_core::SeedableRng;
//! use bulkhead_base::rng::Csprng;
//! use bulkhead_base::time::{Duration, Instant};
//! use bulkhead_sctp::endpoint::{Config, Endpoint, Event, Received, Transport};
//!
//! let (a_addr, b_addr) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
//! let fp = |n: usize| n.next_multiple_of(16) + 16;
//! // The platform's generator, seeded: a test replays the same run.
//! let (mut rng, mut now) = (Csprng::seed_from_u64(1), Instant::ZERO);
//! let mut a = Endpoint::new(Config::new(5000, fp), &[a_addr], now, &mut rng);
//! let mut b = Endpoint::new(Config::new(5000, fp), &[b_addr], now, &mut rng);
//! let assoc = a.connect(now, &mut rng, &[b_addr], 5000, Transport::Ip).unwrap();
//! // Hand every packet `from` has to send to `to`.
//! fn exchange(from: &mut Endpoint, to: &mut Endpoint, now: Instant, rng: &mut Csprng) {
//!     let mut buf = [0u8; 1500];
//!     while let Some(t) = from.poll_transmit(now, &mut buf) {
//!         let rx = Received { src: t.src, dst: t.dst, transport: t.transport, bytes: &buf[..t.len] };
//!         to.handle(now, rng, rx);
//!     }
//! }
//! let mut got = None;
//! for _ in 0..10 {
//!     exchange(&mut a, &mut b, now, &mut rng);
//!     exchange(&mut b, &mut a, now, &mut rng);
//!     while let Some(e) = a.poll_event() {
//!         if e == Event::AssociationUp(assoc) {
//!             a.send(assoc, 0, 51, false, b"hello").unwrap();
//!         }
//!     }
//!     while let Some(e) = b.poll_event() {
//!         if let Event::Message { data, .. } = e { got = Some(data); }
//!     }
//!     now = now + Duration::from_millis(10);
//!     if a.poll_at().is_some_and(|t| t <= now) { a.handle_timeout(now, &mut rng); }
//!     if b.poll_at().is_some_and(|t| t <= now) { b.handle_timeout(now, &mut rng); }
//! }
//! assert_eq!(got.as_deref(), Some(&b"hello"[..]));
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_base::rand_core::RngCore;
use bulkhead_base::time::{Duration, Instant};

use crate::association::rto::RtoConfig;
use crate::association::{
    nonzero_u32, AssocEvent, Association, AssociationStatus, CollisionReply, QueueBytes, State,
};
use crate::cookie::{CookieError, CookieKeys, StateCookie, MAX_PEER_ADDRS};
use crate::wire::{
    CauseRepr, ChunkRepr, ChunkType, InitChunk, List, Packet, PacketBuilder, PacketRepr, ParamRepr, RawParam,
    Tsn, UnrecognizedAction, COMMON_HEADER_LEN,
};

/// The allocator's true cost of a block of `n` bytes (its size class, header and alignment).
pub type Footprint = fn(usize) -> usize;

/// Stateless replies waiting for `poll_transmit` at most.
pub const MAX_STATELESS_REPLIES: usize = 32;
/// Chunks of one packet looked at, at most.
const MAX_CHUNKS_PER_PACKET: usize = 256;

/// How a packet travels between us and a peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Directly over IP, protocol number 132.
    Ip,
    /// Inside UDP (RFC 6951); `peer_port` is the peer's UDP port (its source port as we saw
    /// it), our side uses the encapsulation port the integrator listens on (9899).
    Udp { peer_port: u16 },
}

/// The endpoint's configuration (RFC 9260 section 16 names in brackets).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Our SCTP port, on every local address.
    pub local_port: u16,
    /// Accept associations that peers start (a server); otherwise INITs are answered with
    /// ABORT.
    pub listen: bool,
    /// The allocator's true cost of an allocation of n bytes.
    pub footprint: Footprint,
    /// True bytes per association of chunks queued and in flight.
    pub send_limit: usize,
    /// True bytes per association of reassembly and delivery queues.
    pub receive_limit: usize,
    /// The path MTU (IP packet size) on every path.
    pub mtu: u16,
    /// Outbound streams we ask for (OS) and inbound streams we accept (MIS).
    pub outbound_streams: u16,
    pub inbound_streams: u16,
    /// RTO.Initial, RTO.Min, RTO.Max.
    pub rto: RtoConfig,
    /// Max.Init.Retransmits.
    pub max_init_retransmits: u32,
    /// Association.Max.Retrans.
    pub association_max_retrans: u32,
    /// Path.Max.Retrans.
    pub path_max_retrans: u32,
    /// HB.interval.
    pub heartbeat_interval: Duration,
    /// The delayed SACK timer (at most 500 ms; 200 ms is usual).
    pub sack_delay: Duration,
    /// Valid.Cookie.Life.
    pub cookie_lifetime: Duration,
    /// How often the cookie secret is replaced.
    pub cookie_rotation: Duration,
    pub max_associations: usize,
    /// Replies to out-of-the-blue packets and INITs per second (8.4 asks for a limit).
    pub ootb_replies_per_sec: u32,
}

impl Config {
    /// RFC 9260 defaults for `local_port`, with 256 KiB limits each way (RTO.Min 1 s, so a
    /// delayed SACK is never taken for a loss).
    pub fn new(local_port: u16, footprint: Footprint) -> Self {
        Config {
            local_port,
            listen: true,
            footprint,
            send_limit: 256 * 1024,
            receive_limit: 256 * 1024,
            mtu: 1500,
            outbound_streams: 16,
            inbound_streams: 16,
            rto: RtoConfig::default(),
            max_init_retransmits: 8,
            association_max_retrans: 10,
            path_max_retrans: 5,
            heartbeat_interval: Duration::from_secs(30),
            sack_delay: Duration::from_millis(200),
            cookie_lifetime: Duration::from_secs(60),
            cookie_rotation: Duration::from_secs(60),
            max_associations: 256,
            ootb_replies_per_sec: 100,
        }
    }
}

/// Why a [`Config`] is refused by [`Config::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `outbound_streams` or `inbound_streams` is 0 (an INIT must ask for at least one).
    ZeroStreams,
    /// The MTU leaves no room for a DATA chunk with UDP encapsulation (at least 576).
    MtuTooSmall(u16),
    /// A send or receive limit below what one full-sized chunk costs.
    LimitTooSmall { limit: usize, need: usize },
    /// RTO.Min above RTO.Max, or RTO.Initial outside them.
    RtoOrder,
    /// No association may ever be created.
    ZeroAssociations,
}

impl Config {
    /// Check the values that the protocol or the true-byte accounting depend on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.outbound_streams == 0 || self.inbound_streams == 0 {
            return Err(ConfigError::ZeroStreams);
        }
        if self.mtu < 576 {
            return Err(ConfigError::MtuTooSmall(self.mtu));
        }
        let need = 2 * ((self.footprint)(256) + (self.footprint)(usize::from(self.mtu)));
        for limit in [self.send_limit, self.receive_limit] {
            if limit < need {
                return Err(ConfigError::LimitTooSmall { limit, need });
            }
        }
        let r = &self.rto;
        if r.min > r.max || r.initial < r.min || r.initial > r.max {
            return Err(ConfigError::RtoOrder);
        }
        if self.max_associations == 0 {
            return Err(ConfigError::ZeroAssociations);
        }
        Ok(())
    }
}

/// An association's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssocId(pub u32);

/// Why an association ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// The SHUTDOWN sequence completed.
    Shutdown,
    /// The peer sent ABORT, with its first cause code if any.
    PeerAborted { cause: Option<u16> },
    /// `abort()` or `shutdown()` before the association was up.
    LocalAbort,
    /// Association.Max.Retrans consecutive timeouts.
    RetransmitLimit,
    /// Max.Init.Retransmits INITs went unanswered.
    InitTimeout,
    /// Max.Init.Retransmits COOKIE ECHOs went unanswered.
    CookieTimeout,
    /// The peer broke the protocol; we sent ABORT.
    ProtocolViolation,
    /// `abort_all()` (the subsystem is being shed or stopped).
    EndpointClosed,
    /// An ICMP "protocol unreachable" for our packet: the peer's host has no SCTP (appendix C,
    /// ICMP8), taken as an ABORT.
    ProtocolUnreachable,
}

/// Why `send` refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The association's send limit (true bytes) would be crossed; wait for `SendReady`.
    Full,
    /// The message alone costs more than the send limit.
    TooBig {
        cost: usize,
        limit: usize,
    },
    /// The stream is not below the negotiated number of outbound streams.
    InvalidStream(u16),
    /// Zero-length messages are not allowed (RFC 9260 6.2).
    Empty,
    /// The handshake has not completed.
    NotEstablished,
    /// `shutdown()` was called or the peer is shutting down.
    ShuttingDown,
    Closed,
    NoSuchAssociation,
    /// A message sent in parts is open (on another stream, or with the other ordering): its
    /// fragments must keep consecutive TSNs, so nothing else goes until its last part.
    MessageOpen,
}

/// What the endpoint tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    AssociationUp(AssocId),
    AssociationDown(AssocId, DownReason),
    /// The peer restarted the association: what was queued is gone.
    AssociationRestarted(AssocId),
    /// The association has room again after `send` returned `Full`.
    SendReady(AssocId),
    /// A message, or a piece of one too large to be held whole (partial delivery, RFC 9260
    /// 6.9): its pieces come in order, the last with `end`, and no other message of its stream
    /// comes between them.
    Message {
        assoc: AssocId,
        stream: u16,
        ppid: u32,
        unordered: bool,
        /// The message ends with this data (true unless a piece before the last).
        end: bool,
        data: Vec<u8>,
    },
}

/// One packet from the network.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub transport: Transport,
    /// The SCTP packet (common header and chunks), after the IP or UDP header.
    pub bytes: &'a [u8],
}

/// One packet to send: the SCTP packet is the first `len` bytes of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub transport: Transport,
    pub len: usize,
    /// `None`: the packet fits the path MTU, send it with DF set. `Some(mtu)`: it holds a chunk
    /// cut before the path MTU fell to `mtu`; send it with DF clear, in IP fragments of at
    /// most `mtu` bytes (RFC 9260 7.3).
    pub fragment_to: Option<u16>,
}

/// An ICMP error that quotes a packet we sent (RFC 9260 appendix C), as the caller read it.
#[derive(Clone, Copy, Debug)]
pub struct IcmpError<'a> {
    /// The quoted packet's source (ours) and destination (the peer's).
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The quoted IP header's Total Length: the size of the packet that did not pass.
    pub ip_len: u16,
    pub kind: IcmpKind,
    /// The quoted SCTP packet from its common header on, as much as the ICMP carried.
    pub sctp: &'a [u8],
}

/// The ICMP errors SCTP acts on (appendix C); every other kind is ignored by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpKind {
    /// Destination unreachable, fragmentation needed and DF set, with the next hop's MTU (0
    /// when the router did not say).
    FragmentationNeeded { mtu: u16 },
    /// Destination unreachable, protocol unreachable.
    ProtocolUnreachable,
}

/// Packets and chunks dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Addressed to none of the endpoint's local addresses.
    pub not_local: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
    pub non_unicast: u64,
    pub too_many_chunks: u64,
    pub init_bundled: u64,
    pub init_invalid: u64,
    pub init_refused: u64,
    pub bad_vtag: u64,
    pub ootb: u64,
    pub cookie_bad_signature: u64,
    pub cookie_malformed: u64,
    pub cookie_stale: u64,
    pub cookie_discarded: u64,
    pub association_limit: u64,
    pub reply_queue_full: u64,
    pub reply_rate_limited: u64,
    pub unknown_peer_address: u64,
    pub unknown_chunk: u64,
    pub unexpected_init_ack: u64,
    pub data_in_wrong_state: u64,
    pub rwnd_full: u64,
    pub tsn_too_far: u64,
    pub duplicate_data: u64,
    pub invalid_stream: u64,
    pub stale_ssn: u64,
    pub stale_sack: u64,
    pub protocol_violation: u64,
    pub bad_heartbeat_ack: u64,
    pub error_chunks_received: u64,
    /// ICMP errors that name no association, or quote a wrong tag (appendix C, ICMP5 and 6).
    pub icmp_ignored: u64,
}

/// Endpoint-wide figures for `show sctp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub associations_created: u64,
    pub init_acks_sent: u64,
    pub ootb_aborts_sent: u64,
    /// ICMP "fragmentation needed" taken (whether or not a path MTU fell).
    pub icmp_too_big: u64,
    /// ICMP "protocol unreachable" taken: its association ended.
    pub icmp_protocol_unreachable: u64,
}

struct StatelessReply {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    transport: Transport,
    bytes: Vec<u8>,
}

pub struct Endpoint {
    cfg: Config,
    local_addrs: Vec<Ipv4Addr>,
    keys: CookieKeys,
    associations: BTreeMap<AssocId, Association>,
    next_id: u32,
    /// Round-robin cursors for fairness in transmit and delivery.
    tx_cursor: u32,
    rx_cursor: u32,
    paused: Vec<AssocId>,
    events: VecDeque<Event>,
    replies: VecDeque<StatelessReply>,
    reply_tokens: u32,
    reply_refill_at: Instant,
    memory_room: usize,
    drops: Drops,
    counters: EndpointCounters,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addrs", &self.local_addrs)
            .field("associations", &self.associations.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn new(config: Config, local_addrs: &[Ipv4Addr], now: Instant, rng: &mut dyn RngCore) -> Self {
        Endpoint {
            cfg: config,
            local_addrs: local_addrs.iter().copied().take(MAX_PEER_ADDRS).collect(),
            keys: CookieKeys::new(now, rng, config.cookie_rotation, config.cookie_lifetime),
            associations: BTreeMap::new(),
            next_id: 1,
            tx_cursor: 0,
            rx_cursor: 0,
            paused: Vec::new(),
            events: VecDeque::new(),
            // Reserved whole: the first reply out of the blue must not grow the endpoint.
            replies: VecDeque::with_capacity(MAX_STATELESS_REPLIES),
            reply_tokens: config.ootb_replies_per_sec,
            reply_refill_at: now + Duration::from_secs(1),
            memory_room: usize::MAX,
            drops: Drops::default(),
            counters: EndpointCounters::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    pub fn counters(&self) -> &EndpointCounters {
        &self.counters
    }

    /// Start an association to `peer_addrs` (the first is the primary path).
    pub fn connect(
        &mut self,
        now: Instant,
        rng: &mut dyn RngCore,
        peer_addrs: &[Ipv4Addr],
        peer_port: u16,
        transport: Transport,
    ) -> Result<AssocId, ConnectError> {
        if peer_addrs.is_empty() {
            return Err(ConnectError::NoAddress);
        }
        if self.associations.len() >= self.cfg.max_associations {
            return Err(ConnectError::TooManyAssociations);
        }
        if peer_addrs.iter().any(|a| self.find(*a, peer_port).is_some()) {
            return Err(ConnectError::Exists);
        }
        let a =
            Association::connect(&self.cfg, now, rng, &self.local_addrs, peer_addrs, peer_port, transport);
        Ok(self.insert(a))
    }

    fn insert(&mut self, a: Association) -> AssocId {
        let id = AssocId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.counters.associations_created += 1;
        self.associations.insert(id, a);
        self.share_memory_room();
        self.collect_events(id);
        id
    }

    /// Queue a message on `assoc`.
    pub fn send(
        &mut self,
        assoc: AssocId,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
    ) -> Result<(), SendError> {
        self.associations
            .get_mut(&assoc)
            .ok_or(SendError::NoSuchAssociation)?
            .send(stream, ppid, unordered, data)
    }

    /// Queue a part of a message on `assoc`, as a stream is written: the first part opens the
    /// message (its SSN and B flag), a `last` part taken whole closes it (its E flag). Returns
    /// the bytes taken: all of `data`, or the whole fragments that fit under the send limit
    /// (offer the rest after `SendReady`); `Full` when none fits. The parts share the stream
    /// and ordering (the first part's PPID is kept), and nothing else is taken meanwhile
    /// ([`SendError::MessageOpen`]): its fragments keep consecutive TSNs. For an echo of a
    /// message received in pieces, or any message larger than the send limit. A `shutdown`
    /// while a message is open sends what was queued of it; the peer never sees its end.
    pub fn send_part(
        &mut self,
        assoc: AssocId,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: &[u8],
        last: bool,
    ) -> Result<usize, SendError> {
        self.associations
            .get_mut(&assoc)
            .ok_or(SendError::NoSuchAssociation)?
            .send_part(stream, ppid, unordered, data, last)
    }

    /// Whether `send` of `len` bytes would be accepted now.
    pub fn can_send(&self, assoc: AssocId, len: usize) -> bool {
        self.associations.get(&assoc).is_some_and(|a| a.can_send(len))
    }

    pub fn shutdown(&mut self, now: Instant, assoc: AssocId) {
        if let Some(a) = self.associations.get_mut(&assoc) {
            a.shutdown(now);
        }
        self.collect_events(assoc);
    }

    /// ABORT `assoc` with a User-Initiated Abort cause carrying `reason`.
    pub fn abort(&mut self, assoc: AssocId, reason: &[u8]) {
        if let Some(a) = self.associations.get_mut(&assoc) {
            a.abort(reason);
        }
        self.collect_events(assoc);
    }

    /// ABORT every association (the subsystem stops). Their ABORTs are still returned by
    /// `poll_transmit`; the events say `EndpointClosed`.
    pub fn abort_all(&mut self) {
        let ids: Vec<AssocId> = self.associations.keys().copied().collect();
        for id in ids {
            if let Some(a) = self.associations.get_mut(&id) {
                a.abort(b"endpoint closed");
                while a.take_event().is_some() {}
            }
            self.events.push_back(Event::AssociationDown(id, DownReason::EndpointClosed));
        }
    }

    /// Hold (true) or release messages of `assoc` in its delivery queue: a paused
    /// association's window closes as its queue fills. `recv` still reads it.
    pub fn set_paused(&mut self, assoc: AssocId, paused: bool) {
        self.paused.retain(|a| *a != assoc);
        if paused && self.associations.contains_key(&assoc) {
            self.paused.push(assoc);
        }
    }

    /// The room (true bytes) the SCTP domain has under its soft threshold; every
    /// association's advertised window is bounded by its share of it.
    pub fn set_memory_room(&mut self, bytes: usize) {
        self.memory_room = bytes;
        self.share_memory_room();
    }

    fn share_memory_room(&mut self) {
        let n = self.associations.len().max(1);
        let share = self.memory_room / n;
        for a in self.associations.values_mut() {
            a.set_memory_room(share);
        }
    }

    /// The next message of one association, whether paused or not.
    pub fn recv(&mut self, assoc: AssocId) -> Option<Event> {
        let a = self.associations.get_mut(&assoc)?;
        let m = a.pop_message()?;
        Some(Event::Message {
            assoc,
            stream: m.stream,
            ppid: m.ppid,
            unordered: m.unordered,
            end: m.end,
            data: m.data,
        })
    }

    /// The next event: state changes first, then one message from the next unpaused
    /// association with one (round robin).
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        let start = self.rx_cursor;
        let next = self
            .associations
            .range(AssocId(start)..)
            .chain(self.associations.range(..AssocId(start)))
            .find(|(id, a)| a.has_message() && !self.paused.contains(id))
            .map(|(id, _)| *id)?;
        self.rx_cursor = next.0.wrapping_add(1);
        self.recv(next)
    }

    /// The earliest time `handle_timeout` has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.associations.values().filter_map(|a| a.poll_at()).min()
    }

    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.keys.maybe_rotate(now, rng);
        let ids: Vec<AssocId> = self.associations.keys().copied().collect();
        for id in ids {
            if let Some(a) = self.associations.get_mut(&id) {
                if a.poll_at().is_some_and(|t| t <= now) {
                    a.handle_timeout(now, rng);
                }
            }
            self.collect_events(id);
        }
    }

    /// Write the next packet to send into `buf` (at least the path MTU long).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(r) = self.replies.pop_front() {
            let out = buf.get_mut(..r.bytes.len())?;
            out.copy_from_slice(&r.bytes);
            self.counters.packets_sent += 1;
            let (src, dst, transport, len) = (r.src, r.dst, r.transport, r.bytes.len());
            return Some(Transmit { src, dst, transport, len, fragment_to: None });
        }
        let start = self.tx_cursor;
        let ids: Vec<AssocId> = self
            .associations
            .range(AssocId(start)..)
            .chain(self.associations.range(..AssocId(start)))
            .map(|(id, _)| *id)
            .collect();
        let mut found = None;
        for id in ids {
            let Some(a) = self.associations.get_mut(&id) else { continue };
            if let Some(t) = a.poll_transmit(now, buf) {
                self.tx_cursor = id.0.wrapping_add(1);
                found = Some(t);
                self.collect_events(id);
                break;
            }
            self.collect_events(id);
        }
        if found.is_some() {
            self.counters.packets_sent += 1;
        }
        found
    }

    pub fn status(&self, assoc: AssocId) -> Option<AssociationStatus> {
        self.associations.get(&assoc).map(|a| a.status())
    }

    /// Every association's id.
    pub fn associations(&self) -> impl Iterator<Item = AssocId> + '_ {
        self.associations.keys().copied()
    }

    /// True bytes held by all associations, per queue.
    pub fn queue_bytes(&self) -> QueueBytes {
        let mut total = QueueBytes::default();
        for a in self.associations.values() {
            let q = a.queue_bytes();
            total.send += q.send;
            total.in_flight += q.in_flight;
            total.reassembly += q.reassembly;
            total.delivery += q.delivery;
        }
        total
    }

    // ----- Receiving -----

    /// One SCTP packet from the network.
    pub fn handle(&mut self, now: Instant, rng: &mut dyn RngCore, packet: Received<'_>) {
        self.counters.packets_received += 1;
        self.keys.maybe_rotate(now, rng);
        self.refill_tokens(now);
        if !is_unicast(packet.src) || !is_unicast(packet.dst) {
            self.drops.non_unicast += 1;
            return;
        }
        if !self.local_addrs.contains(&packet.dst) {
            self.drops.not_local += 1;
            return;
        }
        let Ok(view) = Packet::new_checked(packet.bytes) else {
            self.drops.malformed += 1;
            return;
        };
        let header = match PacketRepr::parse(&view) {
            Ok(h) => h,
            Err(crate::wire::WireError::BadChecksum { .. }) => {
                self.drops.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.drops.malformed += 1;
                return;
            }
        };
        let mut chunks: Vec<ChunkRepr<'_>> = Vec::new();
        let mut raws: Vec<&[u8]> = Vec::new();
        for chunk in view.chunks() {
            if chunks.len() == MAX_CHUNKS_PER_PACKET {
                self.drops.too_many_chunks += 1;
                break;
            }
            let Ok(chunk) = chunk else {
                self.drops.malformed += 1;
                break;
            };
            match ChunkRepr::parse(&chunk) {
                Ok(repr) => {
                    raws.push(chunk.bytes_ref());
                    chunks.push(repr);
                }
                Err(_) => {
                    self.drops.malformed += 1;
                    break;
                }
            }
        }
        if chunks.is_empty() {
            return;
        }
        let has_init = chunks.iter().any(|c| matches!(c, ChunkRepr::Init(_)));
        if has_init && chunks.len() > 1 {
            // 6.10: an INIT travels alone.
            self.drops.init_bundled += 1;
            return;
        }
        if header.dst_port != self.cfg.local_port {
            self.handle_ootb(now, rng, &packet, &header, &chunks, &raws, false);
            return;
        }
        let mut found = self.find(packet.src, header.src_port);
        if found.is_none() && matches!(chunks.first(), Some(ChunkRepr::InitAck(_))) {
            // An INIT ACK from another address of the peer: match it by our tag.
            found = self
                .associations
                .iter()
                .find(|(_, a)| {
                    a.state() == State::CookieWait
                        && a.my_tag() == header.verification_tag
                        && a.peer_port() == header.src_port
                })
                .map(|(id, _)| *id);
            if let Some(a) = found.and_then(|id| self.associations.get_mut(&id)) {
                a.add_peer_address(now, packet.src, packet.dst, packet.transport);
            }
        }
        match found {
            Some(id) => self.handle_for(now, rng, id, &packet, &header, &chunks, &raws),
            None => self.handle_ootb(now, rng, &packet, &header, &chunks, &raws, self.cfg.listen),
        }
    }

    /// An ICMP error about a packet we sent (appendix C): the quoted packet must name one of
    /// our associations (ICMP5) and carry its peer's tag, or be our INIT with our own tag
    /// (ICMP6); else it is dropped and counted. "Fragmentation needed" lowers the path MTU
    /// (7.3); "protocol unreachable" ends the association as an ABORT would (ICMP8).
    pub fn handle_icmp(&mut self, now: Instant, icmp: IcmpError<'_>) {
        let Some(id) = self.icmp_association(&icmp) else {
            self.drops.icmp_ignored += 1;
            return;
        };
        let Some(a) = self.associations.get_mut(&id) else { return };
        match icmp.kind {
            IcmpKind::FragmentationNeeded { mtu } => {
                self.counters.icmp_too_big += 1;
                a.on_packet_too_big(now, icmp.dst, mtu, icmp.ip_len);
            }
            IcmpKind::ProtocolUnreachable => {
                self.counters.icmp_protocol_unreachable += 1;
                a.on_protocol_unreachable();
            }
        }
        self.collect_events(id);
    }

    fn icmp_association(&self, icmp: &IcmpError<'_>) -> Option<AssocId> {
        let field = |at: usize| icmp.sctp.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let ports = u32::from_be_bytes(field(0)?);
        let (src_port, dst_port) = ((ports >> 16) as u16, ports as u16);
        let tag = u32::from_be_bytes(field(4)?);
        if src_port != self.cfg.local_port || !self.local_addrs.contains(&icmp.src) {
            return None;
        }
        let id = self.find(icmp.dst, dst_port)?;
        let a = self.associations.get(&id)?;
        let matches = if tag != 0 {
            tag == a.peer_tag()
        } else {
            // Our INIT: its chunk type and Initiate Tag (ours) must be quoted.
            let chunk = field(COMMON_HEADER_LEN)?;
            chunk[0] == ChunkType::Init as u8 && field(COMMON_HEADER_LEN + 4)? == a.my_tag().to_be_bytes()
        };
        matches.then_some(id)
    }

    fn find(&self, addr: Ipv4Addr, port: u16) -> Option<AssocId> {
        self.associations
            .iter()
            .find(|(_, a)| a.peer_port() == port && a.has_peer_addr(addr))
            .map(|(id, _)| *id)
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_for(
        &mut self,
        now: Instant,
        rng: &mut dyn RngCore,
        id: AssocId,
        packet: &Received<'_>,
        header: &PacketRepr,
        chunks: &[ChunkRepr<'_>],
        raws: &[&[u8]],
    ) {
        let Some(a) = self.associations.get_mut(&id) else { return };
        let vtag = header.verification_tag;
        let (my_tag, peer_tag) = (a.my_tag(), a.peer_tag());
        let mut rest = chunks;
        let mut rest_raw = raws;
        match chunks.first() {
            Some(ChunkRepr::Init(init)) => {
                if vtag != 0 {
                    self.drops.bad_vtag += 1;
                    return;
                }
                match a.on_init(rng) {
                    Some(reply) => self.answer_init(now, rng, packet, header, init, Some(reply)),
                    None => self.collect_events(id),
                }
                return;
            }
            Some(ChunkRepr::CookieEcho { cookie }) => {
                let Some(c) = self.open_cookie(now, packet, header, cookie) else { return };
                let Some(a) = self.associations.get_mut(&id) else { return };
                if !a.on_cookie_echo(now, &c, packet.src, packet.dst) {
                    self.drops.cookie_discarded += 1;
                    return;
                }
                rest = chunks.get(1..).unwrap_or_default();
                rest_raw = raws.get(1..).unwrap_or_default();
            }
            Some(ChunkRepr::Abort { t_bit, .. }) | Some(ChunkRepr::ShutdownComplete { t_bit }) => {
                let ok = if *t_bit { vtag == peer_tag } else { vtag == my_tag };
                if !ok {
                    self.drops.bad_vtag += 1;
                    return;
                }
            }
            _ => {
                if vtag != my_tag {
                    self.drops.bad_vtag += 1;
                    return;
                }
            }
        }
        if let Some(a) = self.associations.get_mut(&id) {
            a.handle_chunks(now, packet.src, packet.dst, packet.transport, rest, rest_raw, &mut self.drops);
        }
        self.collect_events(id);
    }

    /// 8.4: a packet that belongs to no association.
    #[allow(clippy::too_many_arguments)]
    fn handle_ootb(
        &mut self,
        now: Instant,
        rng: &mut dyn RngCore,
        packet: &Received<'_>,
        header: &PacketRepr,
        chunks: &[ChunkRepr<'_>],
        raws: &[&[u8]],
        listening: bool,
    ) {
        // (2) An ABORT is never answered.
        if chunks.iter().any(|c| matches!(c, ChunkRepr::Abort { .. })) {
            self.drops.ootb += 1;
            return;
        }
        match chunks.first() {
            // (3) INIT.
            Some(ChunkRepr::Init(init)) => {
                if header.verification_tag != 0 || init.initiate_tag == 0 {
                    self.drops.init_invalid += 1;
                    return;
                }
                if !listening {
                    self.drops.init_refused += 1;
                    self.reply_abort(packet, header, init.initiate_tag, false, None);
                    return;
                }
                self.answer_init(now, rng, packet, header, init, None);
            }
            // (4) COOKIE ECHO.
            Some(ChunkRepr::CookieEcho { cookie }) if listening => {
                let Some(c) = self.open_cookie(now, packet, header, cookie) else { return };
                if c.peer_port != header.src_port || c.local_port != header.dst_port {
                    self.drops.cookie_discarded += 1;
                    return;
                }
                if self.associations.len() >= self.cfg.max_associations {
                    self.drops.association_limit += 1;
                    self.reply_abort(packet, header, c.peer_tag, false, Some(CauseRepr::OutOfResource));
                    return;
                }
                let a = Association::from_cookie(
                    &self.cfg,
                    now,
                    &self.local_addrs,
                    &c,
                    packet.src,
                    packet.dst,
                    packet.transport,
                );
                let id = self.insert(a);
                if let Some(a) = self.associations.get_mut(&id) {
                    let rest = chunks.get(1..).unwrap_or_default();
                    let rest_raw = raws.get(1..).unwrap_or_default();
                    a.handle_chunks(
                        now,
                        packet.src,
                        packet.dst,
                        packet.transport,
                        rest,
                        rest_raw,
                        &mut self.drops,
                    );
                }
                self.collect_events(id);
            }
            _ => {
                self.drops.ootb += 1;
                // (5) SHUTDOWN ACK: SHUTDOWN COMPLETE with the T bit.
                if chunks.iter().any(|c| matches!(c, ChunkRepr::ShutdownAck)) {
                    self.reply_single(
                        packet,
                        header,
                        header.verification_tag,
                        &ChunkRepr::ShutdownComplete { t_bit: true },
                    );
                    return;
                }
                // (6) SHUTDOWN COMPLETE, (7) COOKIE ACK or a Stale Cookie ERROR: discard.
                let silent = chunks.iter().any(|c| match c {
                    ChunkRepr::ShutdownComplete { .. } | ChunkRepr::CookieAck => true,
                    ChunkRepr::Error { causes } => {
                        causes.iter().any(|c| matches!(c, CauseRepr::StaleCookie { .. }))
                    }
                    _ => false,
                });
                if silent {
                    return;
                }
                // (8) Anything else: ABORT with the T bit.
                self.reply_abort(packet, header, header.verification_tag, true, None);
            }
        }
    }

    /// Check a State Cookie; answers a stale one with an ERROR (5.1.5 step 3).
    fn open_cookie(
        &mut self,
        now: Instant,
        packet: &Received<'_>,
        header: &PacketRepr,
        cookie: &[u8],
    ) -> Option<StateCookie> {
        match self.keys.verify(now, cookie) {
            Ok(c) if c.local_tag == header.verification_tag => Some(c),
            Ok(_) => {
                self.drops.bad_vtag += 1;
                None
            }
            Err(CookieError::BadSignature) => {
                self.drops.cookie_bad_signature += 1;
                None
            }
            Err(CookieError::Malformed) => {
                self.drops.cookie_malformed += 1;
                None
            }
            Err(CookieError::Stale { by, peer_tag }) => {
                self.drops.cookie_stale += 1;
                let staleness_us = u32::try_from(by.total_micros()).unwrap_or(u32::MAX);
                let causes = [CauseRepr::StaleCookie { staleness_us }];
                self.reply_single(
                    packet,
                    header,
                    peer_tag,
                    &ChunkRepr::Error { causes: List::Items(&causes) },
                );
                None
            }
        }
    }

    /// 5.1: answer an INIT with an INIT ACK carrying a State Cookie; no state is kept.
    fn answer_init(
        &mut self,
        now: Instant,
        rng: &mut dyn RngCore,
        packet: &Received<'_>,
        header: &PacketRepr,
        init: &InitChunk<'_>,
        collision: Option<CollisionReply>,
    ) {
        if init.outbound_streams == 0 || init.inbound_streams == 0 {
            self.drops.init_invalid += 1;
            let cause = CauseRepr::InvalidMandatoryParameter;
            self.reply_abort(packet, header, init.initiate_tag, false, Some(cause));
            return;
        }
        let mut peer_addrs = vec![packet.src];
        let mut unrecognized: Vec<RawParam<'_>> = Vec::new();
        for param in init.params.iter() {
            match param {
                ParamRepr::Ipv4Address(a)
                    if is_unicast(a) && !peer_addrs.contains(&a) && peer_addrs.len() < MAX_PEER_ADDRS =>
                {
                    peer_addrs.push(a);
                }
                ParamRepr::HostNameAddress(name) => {
                    self.drops.init_invalid += 1;
                    let address = RawParam { param_type: 11, value: name };
                    let cause = CauseRepr::UnresolvableAddress { address };
                    self.reply_abort(packet, header, init.initiate_tag, false, Some(cause));
                    return;
                }
                ParamRepr::Unknown(raw) => match raw.action() {
                    UnrecognizedAction::Stop | UnrecognizedAction::StopAndReport => {
                        self.drops.init_invalid += 1;
                        return;
                    }
                    UnrecognizedAction::Skip => {}
                    UnrecognizedAction::SkipAndReport => {
                        if unrecognized.len() < 4 {
                            unrecognized.push(raw);
                        }
                    }
                },
                _ => {}
            }
        }
        let reply = collision.unwrap_or_else(|| CollisionReply {
            local_tag: nonzero_u32(rng),
            local_tsn: rng.next_u32(),
            local_tie_tag: 0,
            peer_tie_tag: 0,
        });
        let outbound = self.cfg.outbound_streams.min(init.inbound_streams);
        let inbound = self.cfg.inbound_streams.min(init.outbound_streams);
        let cookie = StateCookie {
            created: now,
            local_tag: reply.local_tag,
            peer_tag: init.initiate_tag,
            local_tsn: reply.local_tsn,
            peer_tsn: init.initial_tsn.0,
            peer_rwnd: init.a_rwnd,
            outbound_streams: init.outbound_streams,
            inbound_streams: init.inbound_streams,
            local_tie_tag: reply.local_tie_tag,
            peer_tie_tag: reply.peer_tie_tag,
            local_port: header.dst_port,
            peer_port: header.src_port,
            transport: packet.transport,
            peer_addrs,
        };
        let signed = self.keys.sign(&cookie);
        let mut params: Vec<ParamRepr<'_>> =
            self.local_addrs.iter().map(|a| ParamRepr::Ipv4Address(*a)).collect();
        params.push(ParamRepr::StateCookie(&signed));
        for raw in unrecognized {
            params.push(ParamRepr::UnrecognizedParameter(raw));
        }
        let rwnd = self.cfg.receive_limit.min(self.memory_room / (self.associations.len() + 1));
        let chunk = ChunkRepr::InitAck(InitChunk {
            initiate_tag: reply.local_tag,
            a_rwnd: u32::try_from(rwnd).unwrap_or(u32::MAX),
            outbound_streams: outbound,
            inbound_streams: inbound,
            initial_tsn: Tsn(reply.local_tsn),
            params: List::Items(&params),
        });
        if self.reply_single(packet, header, init.initiate_tag, &chunk) {
            self.counters.init_acks_sent += 1;
        }
    }

    fn reply_abort(
        &mut self,
        packet: &Received<'_>,
        header: &PacketRepr,
        tag: u32,
        t_bit: bool,
        cause: Option<CauseRepr<'_>>,
    ) {
        let storage: Vec<CauseRepr<'_>> = cause.into_iter().collect();
        let chunk = ChunkRepr::Abort { t_bit, causes: List::Items(&storage) };
        if self.reply_single(packet, header, tag, &chunk) {
            self.counters.ootb_aborts_sent += 1;
        }
    }

    /// Queue a one-chunk packet back to the sender of `packet` (rate limited, bounded).
    fn reply_single(
        &mut self,
        packet: &Received<'_>,
        header: &PacketRepr,
        tag: u32,
        chunk: &ChunkRepr<'_>,
    ) -> bool {
        if self.reply_tokens == 0 {
            self.drops.reply_rate_limited += 1;
            return false;
        }
        if self.replies.len() >= MAX_STATELESS_REPLIES {
            self.drops.reply_queue_full += 1;
            return false;
        }
        let mut buf = vec![0u8; usize::from(self.cfg.mtu)];
        let out = PacketRepr { src_port: header.dst_port, dst_port: header.src_port, verification_tag: tag };
        let Ok(mut b) = PacketBuilder::new(&mut buf, &out, usize::from(self.cfg.mtu).saturating_sub(28))
        else {
            return false;
        };
        if b.push(chunk).is_err() {
            return false;
        }
        let len = b.finish();
        buf.truncate(len);
        self.reply_tokens -= 1;
        self.replies.push_back(StatelessReply {
            src: packet.dst,
            dst: packet.src,
            transport: packet.transport,
            bytes: buf,
        });
        true
    }

    fn refill_tokens(&mut self, now: Instant) {
        if now >= self.reply_refill_at {
            self.reply_tokens = self.cfg.ootb_replies_per_sec;
            self.reply_refill_at = now + Duration::from_secs(1);
        }
    }

    /// Move an association's events to the endpoint queue; forget it once it is closed and
    /// has nothing left to send.
    fn collect_events(&mut self, id: AssocId) {
        let Some(a) = self.associations.get_mut(&id) else { return };
        while let Some(e) = a.take_event() {
            self.events.push_back(match e {
                AssocEvent::Up => Event::AssociationUp(id),
                AssocEvent::Down(r) => Event::AssociationDown(id, r),
                AssocEvent::Restarted => Event::AssociationRestarted(id),
                AssocEvent::SendReady => Event::SendReady(id),
            });
        }
        if a.is_finished() {
            self.associations.remove(&id);
            self.paused.retain(|p| *p != id);
            self.share_memory_room();
        }
    }
}

/// Why `connect` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    NoAddress,
    TooManyAssociations,
    /// An association with this peer address and port exists.
    Exists,
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}
