//! The SCTP subsystem: the `bulkhead-sctp` endpoint behind the contract, over raw IP protocol
//! 132 and UDP encapsulation (RFC 6951), with the echo, discard and sink services.
//!
//! One [`Endpoint`] per configured service (its SCTP port), all on every configured address
//! (INIT and INIT ACK list them all: multi-homing), all reached over both transports. At
//! `start` the subsystem binds `IpProtocol(132)` and `Udp(udp_port)`; datagrams arrive through
//! `receive` and go to the endpoint whose port the SCTP common header names (a packet for a
//! port no service has goes to the first endpoint, which answers it as out of the blue, 8.4).
//!
//! Inbound packets cost in proportion to their chunks (a packet of 1-byte messages holds about
//! seventy). A loop turn handles at most [`CHUNKS_PER_TURN`] chunks (and at least one packet):
//! `receive` hands packets to the endpoint at once while the turn's allowance lasts, and
//! queues the rest, in order, in [`Running::inbound`] ([`MAX_INBOUND`] packets, copied; at the
//! bound a packet is dropped and counted, and the peer retransmits it); `poll` takes them
//! from the queue with the allowance of the next turn.
//!
//! One `poll`:
//! 0. inbound: queued packets, within the turn's chunk allowance;
//! 1. timers: `handle_timeout` of every endpoint that is due;
//! 2. memory: every endpoint gets its share (by associations) of the domain's room below the
//!    soft threshold (`set_memory_room`), so windows shrink as the domain fills;
//! 3. events: at most [`MESSAGES_PER_POLL`] events over all services, round robin, so a large
//!    backlog (the seed's paused sink, resumed) drains over many loop turns;
//! 4. packets: `poll_transmit` into one MTU-sized buffer, handed to `send_datagram`, at most
//!    [`PACKETS_PER_POLL`]. When the local-out queue is full the packet stays in the buffer
//!    ([`Running::held`]) and goes first on the next turn: nothing is lost or copied.
//!
//! Bounds (owner: this subsystem, payer: the `sctp` domain):
//! - associations: `max_associations` per service (the endpoint refuses more, "Out of Resource");
//! - queued chunks: the endpoint's per-association send and receive limits, in true bytes;
//! - an echo that finds its association's send queue full (`SendError::Full`) is held, ONE
//!   message per association, and the association is paused (`set_paused`: its window closes
//!   as its delivery queue fills) until `SendReady`; nothing else is buffered;
//! - one held outgoing packet (the transmit buffer);
//! - [`MAX_INBOUND`] queued inbound packets (beyond: dropped, counted as `inbound_dropped`).
//!
//! Pressure: the soft threshold's room is handed to the endpoints on every poll, and at once
//! when pressure changes; over it, the room is zero and every association advertises the
//! smallest window its queues allow. Over the hard quota the supervisor sheds the subsystem:
//! `farewell` ABORTs every association (as many ABORTs as the local-out queue takes), `shed`
//! drops every endpoint, and the restart starts from nothing.

mod config;
mod show;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use bulkhead_sctp::endpoint::{
    AssocId, Endpoint, Event, IcmpError as SctpIcmpError, IcmpKind, Received, SendError as SctpSendError,
    Transmit, Transport,
};
use bulkhead_sctp::wire::Packet;

use crate::context::{Binding, Context, Datagram, Delivery, IcmpError, Inbound, OutDatagram, SendError};
use crate::domain::Domain;
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem};
use crate::time::Instant;

pub use config::{footprint, SctpConfig, Service, ServiceKind, DEFAULT_UDP_PORT};

/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// ICMP destination unreachable codes (RFC 792) SCTP acts on.
const ICMP_PROTOCOL_UNREACHABLE: u8 = 2;
const ICMP_FRAGMENTATION_NEEDED: u8 = 4;
/// Events (messages and state changes) handled per poll, over all services.
pub const MESSAGES_PER_POLL: usize = 64;
/// Packets handed to the local-out queue per poll, at most.
pub const PACKETS_PER_POLL: usize = 256;
/// Chunks of inbound packets handled per loop turn (at least one packet is).
pub const CHUNKS_PER_TURN: usize = 64;
/// Inbound packets queued for a later turn, at most.
pub const MAX_INBOUND: usize = 64;

/// The SCTP subsystem of the `sctp` domain.
pub struct SctpSubsystem {
    config: SctpConfig,
    running: Option<Running>,
}

/// Everything the subsystem holds while it is up, all of it in the `sctp` domain.
struct Running {
    services: Vec<Served>,
    /// Our UDP encapsulation port: the source port of every encapsulated packet.
    udp_port: u16,
    /// One packet's room (the path MTU); a packet the local-out queue refused waits here.
    tx_buf: Vec<u8>,
    held: Option<(usize, Transmit)>,
    /// Round-robin cursors over the services.
    rx_cursor: usize,
    tx_cursor: usize,
    /// The last poll stopped with work left.
    busy: bool,
    /// Packets beyond this turn's allowance, in arrival order: at most [`MAX_INBOUND`].
    inbound: VecDeque<QueuedPacket>,
    /// Chunks handled since the last poll.
    chunks_this_turn: usize,
    counters: Counters,
}

/// A packet waiting in [`Running::inbound`].
struct QueuedPacket {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    transport: Transport,
    bytes: Vec<u8>,
}

/// The subsystem's own counters (the endpoints keep theirs).
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    /// Packets for a port no service has (answered by the first endpoint).
    no_service: u64,
    /// Packets too short for an SCTP common header.
    runt: u64,
    /// Times the local-out queue was full (the packet waited for the next turn).
    queue_full: u64,
    /// Packets `send_datagram` refused for good (too big, source not local).
    send_failed: u64,
    /// Packets queued for a later turn, and those dropped with the queue full.
    inbound_queued: u64,
    inbound_dropped: u64,
    /// ICMP errors about our packets that SCTP does not act on (port unreachable, host
    /// unreachable, ...: appendix C, ICMP3 and ICMP9), or that quote no service's port.
    icmp_not_acted_on: u64,
}

/// One service: its endpoint and what it did.
struct Served {
    service: Service,
    endpoint: Endpoint,
    /// The reader is paused from the console (`sctp pause PORT`).
    paused: bool,
    /// Echoes (or what is left of one) that found their send queue full: one per association,
    /// which stops reading until `SendReady` lets it go.
    stalled: BTreeMap<AssocId, Echo>,
    stats: ServiceStats,
}

/// A message, or a piece of one received in pieces, to send back. Pieces go back as parts of
/// one message (`send_part`), so an echo of a message larger than any limit is whole again
/// at the peer.
struct Echo {
    stream: u16,
    ppid: u32,
    unordered: bool,
    data: Vec<u8>,
    /// The message ends with this data.
    end: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct ServiceStats {
    messages: u64,
    bytes: u64,
    echoed: u64,
    /// Echoes refused for another reason than `Full` (the association going away, a message
    /// larger than the send limit, ...).
    echo_dropped: u64,
    echo_stalls: u64,
    associations_up: u64,
    associations_down: u64,
}

impl SctpSubsystem {
    pub fn new(config: SctpConfig) -> SctpSubsystem {
        SctpSubsystem { config, running: None }
    }

    pub fn config(&self) -> &SctpConfig {
        &self.config
    }
}

impl Served {
    /// An association's messages are held while the service is paused or its echo stalled.
    fn apply_pause(&mut self, assoc: AssocId) {
        self.endpoint.set_paused(assoc, self.paused || self.stalled.contains_key(&assoc));
    }

    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        let ids: Vec<AssocId> = self.endpoint.associations().collect();
        for id in ids {
            self.apply_pause(id);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::AssociationUp(id) => {
                self.stats.associations_up += 1;
                self.apply_pause(id);
            }
            Event::AssociationDown(id, _) => {
                self.stats.associations_down += 1;
                self.stalled.remove(&id);
            }
            Event::AssociationRestarted(id) => {
                // The peer restarted: what it sent before (and our echo of it) is gone.
                self.stalled.remove(&id);
                self.apply_pause(id);
            }
            Event::SendReady(id) => {
                if let Some(echo) = self.stalled.remove(&id) {
                    self.echo(id, echo);
                    self.apply_pause(id);
                }
            }
            Event::Message { assoc, stream, ppid, unordered, end, data } => {
                self.stats.bytes += data.len() as u64;
                if end {
                    self.stats.messages += 1;
                }
                if self.service.kind != ServiceKind::Echo {
                    return;
                }
                self.echo(assoc, Echo { stream, ppid, unordered, data, end });
                if self.stalled.contains_key(&assoc) {
                    self.stats.echo_stalls += 1;
                    self.apply_pause(assoc);
                }
            }
        }
    }

    /// Sends `echo` back as a part of its message; what the send queue does not take waits in
    /// `stalled` (the association stops reading) until `SendReady`.
    fn echo(&mut self, assoc: AssocId, mut echo: Echo) {
        let Echo { stream, ppid, unordered, end, .. } = echo;
        match self.endpoint.send_part(assoc, stream, ppid, unordered, &echo.data, end) {
            Ok(n) if n == echo.data.len() => {
                if end {
                    self.stats.echoed += 1;
                }
            }
            Ok(n) => {
                echo.data.drain(..n);
                self.stalled.insert(assoc, echo);
            }
            Err(SctpSendError::Full) => {
                self.stalled.insert(assoc, echo);
            }
            Err(_) => self.stats.echo_dropped += 1,
        }
    }
}

impl Running {
    /// Hands the held packet, then new ones, to the local-out queue. True when work is left.
    fn transmit(&mut self, cx: &mut Context<'_>) -> bool {
        let n = self.services.len();
        let mut sent = 0;
        let mut idle_in_a_row = 0;
        while sent < PACKETS_PER_POLL {
            let (index, t) = match self.held.take() {
                Some(h) => h,
                None => {
                    if idle_in_a_row >= n {
                        return false;
                    }
                    let index = self.tx_cursor % n.max(1);
                    self.tx_cursor = self.tx_cursor.wrapping_add(1);
                    let Some(s) = self.services.get_mut(index) else { return false };
                    match s.endpoint.poll_transmit(cx.now, &mut self.tx_buf) {
                        Some(t) => {
                            idle_in_a_row = 0;
                            (index, t)
                        }
                        None => {
                            idle_in_a_row += 1;
                            continue;
                        }
                    }
                }
            };
            let payload = self.tx_buf.get(..t.len).unwrap_or(&[]);
            let ports = match t.transport {
                Transport::Ip => None,
                Transport::Udp { peer_port } => Some((self.udp_port, peer_port)),
            };
            let out = OutDatagram {
                src: t.src,
                dst: t.dst,
                protocol: IPPROTO_SCTP,
                ports,
                payload,
                fragment_to: t.fragment_to,
            };
            match cx.send_datagram(out) {
                Ok(()) => sent += 1,
                Err(SendError::QueueFull) => {
                    self.counters.queue_full += 1;
                    self.held = Some((index, t));
                    return true;
                }
                Err(_) => self.counters.send_failed += 1,
            }
        }
        true
    }

    /// At most `budget` events over all services, round robin. True when the budget ran out.
    fn events(&mut self, budget: usize) -> bool {
        let n = self.services.len();
        let mut taken = 0;
        let mut empty_in_a_row = 0;
        while taken < budget {
            if empty_in_a_row >= n {
                return false;
            }
            let index = self.rx_cursor % n.max(1);
            self.rx_cursor = self.rx_cursor.wrapping_add(1);
            let Some(s) = self.services.get_mut(index) else { return false };
            match s.endpoint.poll_event() {
                Some(e) => {
                    empty_in_a_row = 0;
                    taken += 1;
                    s.event(e);
                }
                None => empty_in_a_row += 1,
            }
        }
        true
    }

    /// One packet to the endpoint its destination port names (the first for a port no service
    /// has: it answers out of the blue, 8.4); counts its chunks against the turn's allowance.
    fn handle(
        &mut self,
        cx: &mut Context<'_>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        transport: Transport,
        bytes: &[u8],
    ) {
        let Ok(packet) = Packet::new_checked(bytes) else {
            self.counters.runt += 1;
            return;
        };
        self.chunks_this_turn += packet.chunks().count().max(1);
        let port = packet.dst_port();
        let index = match self.services.iter().position(|s| s.service.port == port) {
            Some(i) => i,
            None => {
                self.counters.no_service += 1;
                0
            }
        };
        if let Some(s) = self.services.get_mut(index) {
            s.endpoint.handle(cx.now, cx.rng, Received { src, dst, transport, bytes });
        }
    }

    /// An ICMP error about one of our packets, to the endpoint of the quoted source port:
    /// "fragmentation needed" and (over raw IP) "protocol unreachable" are acted on.
    fn icmp_error(&mut self, now: Instant, e: &IcmpError<'_>) {
        let raw = e.quoted.ports.is_none();
        let kind = match e.code {
            ICMP_FRAGMENTATION_NEEDED => IcmpKind::FragmentationNeeded { mtu: e.next_hop_mtu },
            ICMP_PROTOCOL_UNREACHABLE if raw => IcmpKind::ProtocolUnreachable,
            _ => {
                self.counters.icmp_not_acted_on += 1;
                return;
            }
        };
        let sctp = e.quoted.payload;
        let port = sctp.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let Some(s) = self.services.iter_mut().find(|s| Some(s.service.port) == port) else {
            self.counters.icmp_not_acted_on += 1;
            return;
        };
        let error = SctpIcmpError { src: e.quoted.src, dst: e.quoted.dst, ip_len: e.ip_len, kind, sctp };
        s.endpoint.handle_icmp(now, error);
        self.busy = true;
    }

    /// Queued packets within the turn's allowance. True when some are left.
    fn drain_inbound(&mut self, cx: &mut Context<'_>) -> bool {
        while self.chunks_this_turn < CHUNKS_PER_TURN {
            let Some(p) = self.inbound.pop_front() else { return false };
            self.handle(cx, p.src, p.dst, p.transport, &p.bytes);
        }
        !self.inbound.is_empty()
    }

    /// Each endpoint's share of the room below the soft threshold, by associations.
    fn share_room(&mut self, room: usize) {
        let total: usize = self.services.iter().map(|s| s.endpoint.associations().count()).sum();
        for s in &mut self.services {
            let mine = s.endpoint.associations().count();
            let share = room.checked_div(total).map_or(room, |each| each * mine.max(1));
            s.endpoint.set_memory_room(share);
        }
    }

    fn service_mut(&mut self, port: u16) -> Option<&mut Served> {
        self.services.iter_mut().find(|s| s.service.port == port)
    }
}

impl Subsystem for SctpSubsystem {
    fn name(&self) -> &'static str {
        "sctp"
    }

    fn domain(&self) -> Domain {
        Domain::Sctp
    }

    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        cx.bind(Binding::IpProtocol(IPPROTO_SCTP)).map_err(|_| StartError::Failed)?;
        cx.bind(Binding::Udp(self.config.udp_port)).map_err(|_| StartError::Failed)?;
        let addrs: Vec<Ipv4Addr> = cx.addresses().iter().map(|c| c.addr).collect();
        let mut services = Vec::with_capacity(self.config.services.len());
        let mut mtu = 0u16;
        for service in &self.config.services {
            let ec = self.config.endpoint(service.port);
            ec.validate().map_err(|_| StartError::Failed)?;
            mtu = mtu.max(ec.mtu);
            services.push(Served {
                service: *service,
                endpoint: Endpoint::new(ec, &addrs, cx.now, cx.rng),
                paused: false,
                stalled: BTreeMap::new(),
                stats: ServiceStats::default(),
            });
        }
        let mut running = Running {
            services,
            udp_port: self.config.udp_port,
            tx_buf: vec![0; usize::from(mtu)],
            held: None,
            rx_cursor: 0,
            tx_cursor: 0,
            busy: false,
            inbound: VecDeque::with_capacity(MAX_INBOUND),
            chunks_this_turn: 0,
            counters: Counters::default(),
        };
        running.share_room(cx.room().soft);
        self.running = Some(running);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        let Some(r) = self.running.as_mut() else { return PollOutcome::Idle };
        let more_inbound = r.drain_inbound(cx);
        r.chunks_this_turn = 0;
        for s in &mut r.services {
            if s.endpoint.poll_at().is_some_and(|t| t <= cx.now) {
                s.endpoint.handle_timeout(cx.now, cx.rng);
            }
        }
        r.share_room(cx.room().soft);
        let more_events = r.events(MESSAGES_PER_POLL);
        let more_packets = r.transmit(cx);
        r.busy = more_inbound || more_events || more_packets;
        if r.busy {
            PollOutcome::Pending
        } else {
            PollOutcome::Idle
        }
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        let r = self.running.as_ref()?;
        if r.busy || r.held.is_some() {
            return Some(now);
        }
        r.services.iter().filter_map(|s| s.endpoint.poll_at()).min()
    }

    fn receive(&mut self, cx: &mut Context<'_>, inbound: Inbound<'_>) -> Delivery {
        let Some(r) = self.running.as_mut() else { return Delivery::Refused };
        let d = match inbound {
            Inbound::Datagram(d) => d,
            Inbound::IcmpError(e) => {
                r.icmp_error(cx.now, &e);
                return Delivery::Taken;
            }
            _ => return Delivery::Refused,
        };
        let Some(transport) = transport_of(&d, self.config.udp_port) else { return Delivery::Refused };
        if Packet::new_checked(d.payload).is_err() {
            r.counters.runt += 1;
            return Delivery::Taken;
        }
        r.busy = true;
        if r.inbound.is_empty() && r.chunks_this_turn < CHUNKS_PER_TURN {
            r.handle(cx, d.src, d.dst, transport, d.payload);
        } else if r.inbound.len() < MAX_INBOUND {
            r.counters.inbound_queued += 1;
            let bytes = d.payload.to_vec();
            r.inbound.push_back(QueuedPacket { src: d.src, dst: d.dst, transport, bytes });
        } else {
            r.counters.inbound_dropped += 1;
        }
        Delivery::Taken
    }

    fn pressure(&mut self, cx: &mut Context<'_>, _on: bool) {
        // The room below the soft threshold is what bounds every window: handing it over now
        // (zero when over it) shrinks them before the next poll.
        if let Some(r) = self.running.as_mut() {
            r.share_room(cx.room().soft);
        }
    }

    fn farewell(&mut self, cx: &mut Context<'_>) {
        let Some(r) = self.running.as_mut() else { return };
        r.held = None;
        r.inbound.clear();
        for s in &mut r.services {
            s.endpoint.abort_all();
        }
        // As many ABORTs as the local-out queue takes; the rest of the peers time out.
        r.transmit(cx);
    }

    fn shed(&mut self) {
        self.running = None;
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match &self.running {
            Some(r) => show::status_line(out, r, self.config.udp_port),
            None => write!(out, "not running"),
        }
    }

    fn command(&mut self, _cx: &mut Context<'_>, words: &[&str], out: &mut dyn Write) -> Option<fmt::Result> {
        let r = self.running.as_mut()?;
        match words {
            ["show", "sctp"] => Some(show::text(out, r, &self.config)),
            ["show", "sctp", "json"] => Some(show::json(out, r, &self.config)),
            ["sctp", verb @ ("pause" | "resume"), port] => {
                let paused = *verb == "pause";
                Some(match port.parse::<u16>().ok().and_then(|p| r.service_mut(p)) {
                    Some(s) => {
                        s.set_paused(paused);
                        writeln!(
                            out,
                            "sctp: {} on port {} {}",
                            s.service.kind.name(),
                            s.service.port,
                            if paused { "paused" } else { "resumed" }
                        )
                    }
                    None => writeln!(out, "sctp: no service on port {}", port),
                })
            }
            ["sctp", ..] => Some(writeln!(out, "usage: sctp pause PORT | sctp resume PORT")),
            _ => None,
        }
    }

    fn help(&self) -> &'static str {
        "show sctp [json]          SCTP associations: state, paths, streams, windows, true bytes queued\n\
         sctp pause PORT           stop reading the messages of the service on PORT (its windows close)\n\
         sctp resume PORT          read them again\n"
    }
}

/// How a datagram reached us: raw protocol 132, or UDP to the encapsulation port.
fn transport_of(d: &Datagram<'_>, udp_port: u16) -> Option<Transport> {
    match d.ports {
        None if d.protocol == IPPROTO_SCTP => Some(Transport::Ip),
        Some((src_port, dst_port)) if dst_port == udp_port => Some(Transport::Udp { peer_port: src_port }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
