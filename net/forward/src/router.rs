//! The forwarding core: IPv4 between the appliance's interfaces, as RFC 1812 asks.
//!
//! Sans-I/O: the run loop hands in a transit Ethernet frame (`handle`) or an ARP frame
//! (`handle_arp`) with the time, and the core rewrites the frame in place and hands frames to a
//! [`Sink`]; `poll` runs its timers. Per packet it allocates nothing except while a next hop is
//! being resolved (a bounded queue, see `neighbour`).
//!
//! For each transit packet: validate the header (drop and count by reason), drop martians,
//! answer TTL ≤ 1 with ICMP time exceeded, look the destination up in the FIB (no route: ICMP
//! net unreachable), check the egress MTU (DF set: ICMP fragmentation needed with the next-hop
//! MTU; DF clear: dropped and counted as `too_big` — the appliance does not fragment), decrement
//! the TTL with an incremental checksum update (RFC 1624), account the flow, resolve the next
//! hop (ARP, bounded queue) and send. Packets with IP options and fragments are forwarded as
//! they are. ICMP errors are rate-limited by a token bucket and never sent about ICMP errors,
//! non-first fragments, or packets from a non-unicast source (RFC 1812 §4.3.2.7); they are
//! sent from the ingress interface's address back to the frame's previous hop.

use alloc::vec::Vec;

use crate::fib::{mask, Fib, FibError, Prefix};
use crate::flows::{Duration, FlowKey, FlowTable, FlowTimeouts, Instant};
use crate::neighbour::{Neighbours, Resolution};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Message,
    Icmpv4Packet, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket,
};

pub const MAX_INTERFACES: usize = 4;

const ETHERNET_HEADER: usize = 14;
const IPV4_MIN_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
const UDP_HEADER: usize = 8;
/// The largest IP packet the appliance sends (the largest MTU it supports).
pub const MAX_IP_PACKET: usize = 1500;
const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const CODE_NET_UNREACHABLE: u8 = 0;
const CODE_HOST_UNREACHABLE: u8 = 1;
const CODE_FRAGMENTATION_NEEDED: u8 = 4;
/// Largest ICMP error frame: Ethernet, IP, ICMP header, the quoted header (≤ 60) and 8 bytes.
const ICMP_ERROR_MAX: usize = ETHERNET_HEADER + IPV4_MIN_HEADER + 8 + 60 + 8;
/// What one new FIB prefix may cost at most (tree-bitmap nodes), asked of the domain before
/// a route is installed.
const FIB_ROUTE_ESTIMATE: usize = 256;
/// Flow-table slots swept per poll.
const FLOW_SWEEP: usize = 1024;
/// The longest `poll` waits with nothing scheduled (flow expiry makes progress at least this often).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Why a transit frame was dropped: one counter each, per ingress interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Truncated,
    BadVersion,
    BadIhl,
    BadTotalLength,
    BadChecksum,
    Martian,
    TtlExpired,
    NoRoute,
    TooBig,
    NeighbourUnreachable,
    NeighbourQueueFull,
    NeighbourTableFull,
    OverQuota,
    TxFull,
    /// A first fragment whose TCP, UDP or ICMP header is cut short.
    L4Truncated,
}

impl DropReason {
    pub const COUNT: usize = 15;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLength,
        DropReason::BadChecksum,
        DropReason::Martian,
        DropReason::TtlExpired,
        DropReason::NoRoute,
        DropReason::TooBig,
        DropReason::NeighbourUnreachable,
        DropReason::NeighbourQueueFull,
        DropReason::NeighbourTableFull,
        DropReason::OverQuota,
        DropReason::TxFull,
        DropReason::L4Truncated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "ip_truncated",
            DropReason::BadVersion => "ip_bad_version",
            DropReason::BadIhl => "ip_bad_ihl",
            DropReason::BadTotalLength => "ip_bad_total_length",
            DropReason::BadChecksum => "ip_bad_checksum",
            DropReason::Martian => "martian",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoRoute => "no_route",
            DropReason::TooBig => "too_big",
            DropReason::NeighbourUnreachable => "neighbour_unreachable",
            DropReason::NeighbourQueueFull => "neighbour_queue_full",
            DropReason::NeighbourTableFull => "neighbour_table_full",
            DropReason::OverQuota => "over_quota",
            DropReason::TxFull => "tx_full",
            DropReason::L4Truncated => "l4_truncated",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Per ingress interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
    pub icmp_errors_sent: u64,
    pub icmp_errors_rate_limited: u64,
}

impl Counters {
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }
}

/// An interface as the forwarder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub mac: [u8; 6],
    /// Address and prefix length, if numbered.
    pub address: Option<(u32, u8)>,
    pub mtu: u16,
}

/// Where a route leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// The destination is on the interface's subnet.
    Connected { iface: u8 },
    /// Through a gateway on a connected subnet (a static route, later BGP).
    Via { gateway: u32, iface: u8 },
}

impl NextHop {
    pub fn iface(self) -> u8 {
        match self {
            NextHop::Connected { iface } | NextHop::Via { iface, .. } => iface,
        }
    }
}

/// Where a route came from. Sources are ranked in this order: a route from a preferred
/// source is never replaced by one from a later source, and each source has its own route limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteSource {
    /// An interface's own subnet.
    Connected,
    /// `[[route]]` in the configuration.
    Static,
    /// The BGP speaker's best paths.
    Bgp,
}

impl RouteSource {
    pub const ALL: [RouteSource; 3] = [RouteSource::Connected, RouteSource::Static, RouteSource::Bgp];
    pub const COUNT: usize = RouteSource::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            RouteSource::Connected => "connected",
            RouteSource::Static => "static",
            RouteSource::Bgp => "bgp",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A FIB entry's target: where it leads and who put it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub next_hop: NextHop,
    pub source: RouteSource,
}

/// Per route source: how many routes it has in the FIB, its limit, and what was refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounters {
    pub routes: usize,
    pub limit: usize,
    /// Refused at the limit.
    pub refused_limit: u64,
    /// Refused because a preferred source holds the prefix.
    pub shadowed: u64,
    /// Refused because the gateway resolves to no connected next hop.
    pub unresolved: u64,
    /// Refused because the forwarder's domain had no room.
    pub refused_memory: u64,
}

/// Why a route was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    Fib(FibError),
    /// The gateway is neither on a connected subnet nor reachable through one.
    GatewayNotConnected,
    NoSuchInterface,
    /// The source already has as many routes as its limit allows.
    LimitReached(RouteSource),
    /// A preferred source holds the prefix.
    Shadowed {
        by: RouteSource,
    },
    /// The forwarder's domain refused the memory for the route.
    OverQuota,
}

/// What happened to a packet the appliance itself sent (TCP, UDP, SCTP, ICMP replies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalCounters {
    pub sent: u64,
    /// Waiting for ARP, in the neighbour queue.
    pub queued: u64,
    pub no_route: u64,
    pub malformed: u64,
    pub neighbour_queue_full: u64,
    pub tx_full: u64,
    pub over_quota: u64,
}

/// Why a frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Every transmit buffer is in flight.
    RingFull,
    /// Larger than the NIC's largest frame.
    Oversize,
    /// No such NIC.
    NoLink,
}

/// Where frames go out, and the forwarder domain's admission: before a packet is queued for
/// resolution (the one place per-packet work allocates) the core asks for room, and a refusal
/// drops it as `over_quota`.
pub trait Sink {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError>;
    /// Room for `bytes` more in the forwarder's domain.
    fn admit(&mut self, bytes: usize) -> bool;
}

/// The forwarder's tunables.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub flow_capacity: usize,
    pub flow_timeouts: FlowTimeouts,
    /// ICMP errors per second; 0 sends none.
    pub icmp_rate: u32,
    /// The most routes each source may install, indexed by [`RouteSource::index`].
    pub route_limits: [usize; RouteSource::COUNT],
}

pub struct Forwarder {
    interfaces: [Option<Interface>; MAX_INTERFACES],
    fib: Fib,
    routes: Vec<Route>,
    neighbours: Neighbours,
    flows: FlowTable,
    icmp: TokenBucket,
    ip_id: u16,
    counters: [Counters; MAX_INTERFACES],
    sources: [SourceCounters; RouteSource::COUNT],
    local: LocalCounters,
    arp_replies: u64,
}

impl Forwarder {
    pub fn new(settings: Settings) -> Forwarder {
        Forwarder {
            interfaces: [None; MAX_INTERFACES],
            fib: Fib::new(),
            routes: Vec::new(),
            neighbours: Neighbours::new(),
            flows: FlowTable::new(settings.flow_capacity, settings.flow_timeouts),
            icmp: TokenBucket::new(settings.icmp_rate),
            ip_id: 0,
            counters: [Counters::default(); MAX_INTERFACES],
            sources: core::array::from_fn(|i| SourceCounters {
                limit: settings.route_limits.get(i).copied().unwrap_or(0),
                ..SourceCounters::default()
            }),
            local: LocalCounters::default(),
            arp_replies: 0,
        }
    }

    /// Configures interface `iface` and installs its connected route.
    pub fn set_interface(&mut self, iface: u8, interface: Interface) -> Result<(), RouteError> {
        let slot = self.interfaces.get_mut(usize::from(iface)).ok_or(RouteError::NoSuchInterface)?;
        *slot = Some(interface);
        if let Some((addr, len)) = interface.address {
            let prefix = Prefix::new(addr & mask(len), len).map_err(RouteError::Fib)?;
            let route = Route { next_hop: NextHop::Connected { iface }, source: RouteSource::Connected };
            self.install(prefix, route, &mut |_| true)?;
        }
        Ok(())
    }

    /// Adds or replaces `source`'s route to `prefix` via `gateway`. The gateway must lie on a
    /// connected subnet, or be reached through a route to one (BGP multihop and iBGP next hops:
    /// resolved once, when the route is installed). Refused, and counted against the source,
    /// when the source is at its limit, a preferred source holds the prefix, or the domain has
    /// no room; a refusal leaves the FIB as it was.
    pub fn add_route(
        &mut self,
        prefix: Prefix,
        gateway: u32,
        source: RouteSource,
        admit: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), RouteError> {
        let Some(next_hop) = self.resolve_gateway(gateway) else {
            self.source_mut(source).unresolved += 1;
            return Err(RouteError::GatewayNotConnected);
        };
        self.install(prefix, Route { next_hop, source }, admit)
    }

    /// Removes `source`'s route to `prefix`; a route another source installed stays.
    pub fn remove_route(&mut self, prefix: Prefix, source: RouteSource) -> bool {
        let holder = self.fib.get(prefix).and_then(|id| self.route(id));
        if holder.is_none_or(|r| r.source != source) {
            return false;
        }
        self.fib.remove(prefix);
        let counters = self.source_mut(source);
        counters.routes = counters.routes.saturating_sub(1);
        true
    }

    /// Removes every route of `source` (its subsystem was shed); returns how many went.
    pub fn withdraw_source(&mut self, source: RouteSource) -> usize {
        let doomed: Vec<Prefix> = self
            .fib
            .iter()
            .filter(|(_, id)| self.route(*id).is_some_and(|r| r.source == source))
            .map(|(p, _)| p)
            .collect();
        for prefix in &doomed {
            self.fib.remove(*prefix);
        }
        self.source_mut(source).routes = 0;
        doomed.len()
    }

    /// Each source's figures, indexed by [`RouteSource::index`].
    pub fn source_counters(&self) -> [SourceCounters; RouteSource::COUNT] {
        self.sources
    }

    pub fn local_counters(&self) -> LocalCounters {
        self.local
    }

    pub fn arp_replies(&self) -> u64 {
        self.arp_replies
    }

    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    pub fn next_hop(&self, id: u32) -> Option<NextHop> {
        self.route(id).map(|r| r.next_hop)
    }

    /// The route behind a FIB value.
    pub fn route(&self, id: u32) -> Option<Route> {
        self.routes.get(id as usize).copied()
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    pub fn counters(&self, iface: u8) -> Counters {
        self.counters.get(usize::from(iface)).copied().unwrap_or_default()
    }

    /// Soft-threshold pressure: the flow table uses less of its capacity.
    pub fn set_pressure(&mut self, on: bool) {
        self.flows.set_pressure(on);
    }

    /// Forwards one transit frame (Ethernet, IPv4, not addressed to us) that arrived on `iface`.
    pub fn handle(&mut self, now: Instant, iface: u8, frame: &mut [u8], sink: &mut impl Sink) {
        let header = match validate(frame) {
            Ok(h) => h,
            Err(reason) => return self.drop(iface, reason),
        };
        let (src, dst) = (header.src, header.dst);
        if is_martian_source(src) || is_martian_destination(dst) {
            return self.drop(iface, DropReason::Martian);
        }
        if header.ttl <= 1 {
            self.icmp_error(now, iface, frame, header, ICMP_TIME_EXCEEDED, 0, 0, sink);
            return self.drop(iface, DropReason::TtlExpired);
        }
        let Some((id, _)) = self.fib.lookup(dst) else {
            self.icmp_error(now, iface, frame, header, ICMP_DEST_UNREACHABLE, CODE_NET_UNREACHABLE, 0, sink);
            return self.drop(iface, DropReason::NoRoute);
        };
        let Some(next_hop) = self.next_hop(id) else { return self.drop(iface, DropReason::NoRoute) };
        let out = next_hop.iface();
        let Some(out_interface) = self.interface(out) else { return self.drop(iface, DropReason::NoRoute) };
        if header.total_length > usize::from(out_interface.mtu) {
            if header.dont_fragment {
                let mtu = out_interface.mtu;
                self.icmp_error(
                    now,
                    iface,
                    frame,
                    header,
                    ICMP_DEST_UNREACHABLE,
                    CODE_FRAGMENTATION_NEEDED,
                    mtu,
                    sink,
                );
            }
            return self.drop(iface, DropReason::TooBig);
        }
        decrement_ttl(frame);
        self.flows.touch(now, flow_key(header), header.total_length as u64);
        let len = ETHERNET_HEADER + header.total_length;
        let gateway = match next_hop {
            NextHop::Connected { .. } => dst,
            NextHop::Via { gateway, .. } => gateway,
        };
        match self.neighbours.resolve(now, out, gateway) {
            Resolution::Known { mac, refresh } => {
                if refresh {
                    self.send_arp_request(out, gateway, sink);
                }
                self.send(iface, out, mac, frame.get_mut(..len).unwrap_or(&mut []), sink);
            }
            Resolution::Pending { request } => {
                if request {
                    self.send_arp_request(out, gateway, sink);
                }
                if !sink.admit(len) {
                    self.drop(iface, DropReason::OverQuota);
                } else if self.neighbours.enqueue(out, gateway, frame.get(..len).unwrap_or(&[])).is_err() {
                    self.drop(iface, DropReason::NeighbourQueueFull);
                }
            }
            Resolution::Failed => {
                self.icmp_error(
                    now,
                    iface,
                    frame,
                    header,
                    ICMP_DEST_UNREACHABLE,
                    CODE_HOST_UNREACHABLE,
                    0,
                    sink,
                );
                self.drop(iface, DropReason::NeighbourUnreachable);
            }
            Resolution::TableFull => self.drop(iface, DropReason::NeighbourTableFull),
        }
    }

    /// An ARP frame received on `iface`: learns the sender, answers a request for the
    /// interface's own address (the appliance's ARP responder), and sends whatever was waiting
    /// for the sender. A malformed frame is ignored.
    pub fn handle_arp(&mut self, now: Instant, iface: u8, frame: &[u8], sink: &mut impl Sink) {
        let Ok(ethernet) = EthernetFrame::new_checked(frame) else { return };
        let Ok(packet) = ArpPacket::new_checked(ethernet.payload()) else { return };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&packet)
        else {
            return;
        };
        let Some(interface) = self.interface(iface) else { return };
        let sender_ip = u32::from(source_protocol_addr);
        let target_ip = u32::from(target_protocol_addr);
        let ours = interface.address.is_some_and(|(addr, _)| addr == target_ip);
        if !source_hardware_addr.is_unicast() || sender_ip == 0 {
            return; // a probe (RFC 5227) or a bogus sender: nothing to learn or answer
        }
        let sender_mac = source_hardware_addr.0;
        let waiting = self.neighbours.learn(now, iface, sender_ip, sender_mac, ours);
        if ours && operation == ArpOperation::Request {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(interface.mac),
                source_protocol_addr: target_protocol_addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            if send_arp(&interface, source_hardware_addr, &reply, iface, sink) {
                self.arp_replies += 1;
            }
        }
        for mut queued in waiting {
            // Counted against the interface the packet came in on (where its source lives);
            // a packet the appliance sent itself has its own counters.
            let src = packet_source(&queued).unwrap_or(0);
            if self.is_own_address(src) {
                self.send_local_frame(iface, sender_mac, &mut queued, sink);
            } else {
                let ingress = self.ingress_for(src).unwrap_or(iface);
                self.send(ingress, iface, sender_mac, &mut queued, sink);
            }
        }
    }

    /// Routes an IPv4 packet the appliance itself sent (`packet` starts at the IP header):
    /// through the FIB, with the next hop resolved by ARP (queued, bounded, while it is).
    /// The packet's TTL is left as its sender set it.
    pub fn send_local(&mut self, now: Instant, packet: &[u8], sink: &mut impl Sink) {
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            self.local.malformed += 1;
            return;
        };
        let dst = u32::from(ip.dst_addr());
        let len = usize::from(ip.total_len());
        let mut frame = [0u8; ETHERNET_HEADER + MAX_IP_PACKET];
        let (Some(out_ip), Some(body)) =
            (frame.get_mut(ETHERNET_HEADER..ETHERNET_HEADER + len), packet.get(..len))
        else {
            self.local.malformed += 1;
            return;
        };
        out_ip.copy_from_slice(body);
        let frame = &mut frame[..ETHERNET_HEADER + len];
        EthernetFrame::new_unchecked(&mut *frame).set_ethertype(EthernetProtocol::Ipv4);
        let Some(next_hop) = self.fib.lookup(dst).and_then(|(id, _)| self.next_hop(id)) else {
            self.local.no_route += 1;
            return;
        };
        let (out, gateway) = match next_hop {
            NextHop::Connected { iface } => (iface, dst),
            NextHop::Via { gateway, iface } => (iface, gateway),
        };
        match self.neighbours.resolve(now, out, gateway) {
            Resolution::Known { mac, refresh } => {
                if refresh {
                    self.send_arp_request(out, gateway, sink);
                }
                self.send_local_frame(out, mac, frame, sink);
            }
            Resolution::Pending { request } => {
                if request {
                    self.send_arp_request(out, gateway, sink);
                }
                if !sink.admit(frame.len()) {
                    self.local.over_quota += 1;
                } else if self.neighbours.enqueue(out, gateway, frame).is_err() {
                    self.local.neighbour_queue_full += 1;
                } else {
                    self.local.queued += 1;
                }
            }
            Resolution::Failed | Resolution::TableFull => self.local.no_route += 1,
        }
    }

    /// Timers: ARP retries and give-ups, flow expiry in a bounded slice. Returns when to
    /// come back.
    pub fn poll(&mut self, now: Instant, sink: &mut impl Sink) -> Instant {
        let mut requests: Vec<(u8, u32)> = Vec::new();
        let mut failed: Vec<(u8, Vec<u8>)> = Vec::new();
        let next = self.neighbours.poll(now, |i, ip| requests.push((i, ip)), |i, f| failed.push((i, f)));
        for (iface, ip) in requests {
            self.send_arp_request(iface, ip, sink);
        }
        for (out, mut frame) in failed {
            // The queued frame was already rewritten up to its TTL; answer its sender.
            if let Ok(header) = validate(&frame) {
                let ingress = self.ingress_for(header.src).unwrap_or(out);
                restore_ttl(&mut frame);
                self.icmp_error(
                    now,
                    ingress,
                    &frame,
                    header,
                    ICMP_DEST_UNREACHABLE,
                    CODE_HOST_UNREACHABLE,
                    0,
                    sink,
                );
                self.drop(ingress, DropReason::NeighbourUnreachable);
            }
        }
        self.flows.expire(now, FLOW_SWEEP);
        next.map_or(now + SWEEP_INTERVAL, |n| n.min(now + SWEEP_INTERVAL))
    }

    // ---- private ----------------------------------------------------------------------------

    fn interface(&self, iface: u8) -> Option<Interface> {
        self.interfaces.get(usize::from(iface)).copied().flatten()
    }

    /// The interface whose subnet holds `addr` (where an error about its packet goes back).
    fn ingress_for(&self, addr: u32) -> Option<u8> {
        let (id, _) = self.fib.lookup(addr)?;
        self.next_hop(id).map(NextHop::iface)
    }

    fn route_id(&mut self, route: Route, admit: &mut dyn FnMut(usize) -> bool) -> Result<u32, RouteError> {
        if let Some(i) = self.routes.iter().position(|r| *r == route) {
            return Ok(i as u32);
        }
        if !admit(core::mem::size_of::<Route>() * self.routes.len().max(4)) {
            return Err(RouteError::OverQuota);
        }
        self.routes.try_reserve(1).map_err(|_| RouteError::OverQuota)?;
        self.routes.push(route);
        Ok(self.routes.len() as u32 - 1)
    }

    fn source_mut(&mut self, source: RouteSource) -> &mut SourceCounters {
        // `sources` has one entry per variant, so the index is always in range.
        let i = source.index().min(RouteSource::COUNT - 1);
        &mut self.sources[i]
    }

    /// Puts `route` in the FIB for `prefix`, with the source's limit and ranking applied.
    fn install(
        &mut self,
        prefix: Prefix,
        route: Route,
        admit: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), RouteError> {
        let holder = self.fib.get(prefix).and_then(|id| self.route(id));
        if let Some(h) = holder {
            if h.source < route.source {
                self.source_mut(route.source).shadowed += 1;
                return Err(RouteError::Shadowed { by: h.source });
            }
        }
        let replaces_own = holder.is_some_and(|h| h.source == route.source);
        let counters = self.source_mut(route.source);
        if !replaces_own && counters.routes >= counters.limit {
            counters.refused_limit += 1;
            return Err(RouteError::LimitReached(route.source));
        }
        // A new prefix may need FIB nodes: ask the domain first (a generous estimate).
        if holder.is_none() && !admit(FIB_ROUTE_ESTIMATE) {
            self.source_mut(route.source).refused_memory += 1;
            return Err(RouteError::OverQuota);
        }
        let id = match self.route_id(route, admit) {
            Ok(id) => id,
            Err(e) => {
                self.source_mut(route.source).refused_memory += 1;
                return Err(e);
            }
        };
        self.fib.insert(prefix, id).map_err(RouteError::Fib)?;
        if let Some(h) = holder.filter(|h| h.source != route.source) {
            // A less preferred source lost the prefix.
            let lost = self.source_mut(h.source);
            lost.routes = lost.routes.saturating_sub(1);
        }
        if !replaces_own {
            self.source_mut(route.source).routes += 1;
        }
        Ok(())
    }

    /// The connected next hop for `gateway`: its own subnet, or the next hop of the route
    /// that covers it (one level of recursion, as a multihop or iBGP next hop needs).
    fn resolve_gateway(&self, gateway: u32) -> Option<NextHop> {
        let connected = |addr: u32| {
            self.interfaces.iter().enumerate().find_map(|(i, x)| {
                let (a, len) = x.as_ref()?.address?;
                (addr & mask(len) == a & mask(len) && addr != a).then_some(i as u8)
            })
        };
        if let Some(iface) = connected(gateway) {
            return Some(NextHop::Via { gateway, iface });
        }
        let (id, _) = self.fib.lookup(gateway)?;
        match self.route(id)?.next_hop {
            NextHop::Connected { iface } => Some(NextHop::Via { gateway, iface }),
            NextHop::Via { gateway: g, iface } => Some(NextHop::Via { gateway: g, iface }),
        }
    }

    fn drop(&mut self, iface: u8, reason: DropReason) {
        if let Some(c) = self.counters.get_mut(usize::from(iface)) {
            if let Some(n) = c.drops.get_mut(reason.index()) {
                *n += 1;
            }
        }
    }

    /// Rewrites the Ethernet header for `out` and the neighbour `mac`, and sends.
    fn send(&mut self, ingress: u8, out: u8, mac: [u8; 6], frame: &mut [u8], sink: &mut impl Sink) {
        let Some(interface) = self.interface(out) else { return self.drop(ingress, DropReason::NoRoute) };
        if frame.len() < ETHERNET_HEADER {
            return self.drop(ingress, DropReason::Truncated);
        }
        frame[0..6].copy_from_slice(&mac);
        frame[6..12].copy_from_slice(&interface.mac);
        if sink.transmit(out, frame).is_ok() {
            if let Some(c) = self.counters.get_mut(usize::from(ingress)) {
                c.forwarded_packets += 1;
                c.forwarded_bytes += frame.len() as u64;
            }
        } else {
            self.drop(ingress, DropReason::TxFull);
        }
    }

    fn send_arp_request(&mut self, iface: u8, target: u32, sink: &mut impl Sink) {
        let Some(interface) = self.interface(iface) else { return };
        let Some((addr, _)) = interface.address else { return };
        let request = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(interface.mac),
            source_protocol_addr: Ipv4Address::from(addr),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::from(target),
        };
        send_arp(&interface, EthernetAddress::BROADCAST, &request, iface, sink);
    }

    /// A packet the appliance sent, its Ethernet header rewritten for `out` and `mac`.
    fn send_local_frame(&mut self, out: u8, mac: [u8; 6], frame: &mut [u8], sink: &mut impl Sink) {
        let Some(interface) = self.interface(out) else {
            self.local.no_route += 1;
            return;
        };
        if let Some(header) = frame.get_mut(..12) {
            header[0..6].copy_from_slice(&mac);
            header[6..12].copy_from_slice(&interface.mac);
        }
        if sink.transmit(out, frame).is_ok() {
            self.local.sent += 1;
        } else {
            self.local.tx_full += 1;
        }
    }

    fn is_own_address(&self, addr: u32) -> bool {
        self.interfaces.iter().flatten().any(|i| i.address.is_some_and(|(a, _)| a == addr))
    }

    /// Sends an ICMP error about `frame` (received on `iface`) back to its previous hop, if
    /// RFC 1812 allows one and the rate limit has a token.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Instant,
        iface: u8,
        frame: &[u8],
        header: Header,
        icmp_type: u8,
        code: u8,
        next_hop_mtu: u16,
        sink: &mut impl Sink,
    ) {
        let Some(interface) = self.interface(iface) else { return };
        let Some((our_addr, _)) = interface.address else { return };
        let Ok(received) = EthernetFrame::new_checked(frame) else { return };
        if !may_answer(header) {
            return;
        }
        if !self.icmp.take(now) {
            if let Some(c) = self.counters.get_mut(usize::from(iface)) {
                c.icmp_errors_rate_limited += 1;
            }
            return;
        }
        // The offending packet's header and the first 8 bytes of its payload (RFC 1812 4.3.2.3).
        let quoted_len = (header.ihl + 8).min(header.total_length);
        let Some(quoted) = received.payload().get(..quoted_len) else { return };
        let ip_len = IPV4_MIN_HEADER + ICMP_HEADER + quoted.len();
        let mut out = [0u8; ICMP_ERROR_MAX];
        let Some(buf) = out.get_mut(..ETHERNET_HEADER + ip_len) else { return };
        let mut ethernet = EthernetFrame::new_unchecked(&mut buf[..]);
        ethernet.set_dst_addr(received.src_addr());
        ethernet.set_src_addr(EthernetAddress(interface.mac));
        ethernet.set_ethertype(EthernetProtocol::Ipv4);
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut ip = Ipv4Packet::new_unchecked(ethernet.payload_mut());
        ip.set_version(4);
        ip.set_header_len(IPV4_MIN_HEADER as u8);
        ip.set_dscp(0x30); // internetwork control (precedence 6)
        ip.set_ecn(0);
        ip.set_total_len(ip_len as u16);
        ip.set_ident(self.ip_id);
        ip.clear_flags();
        ip.set_frag_offset(0);
        ip.set_hop_limit(64);
        ip.set_next_header(IpProtocol::Icmp);
        ip.set_src_addr(Ipv4Address::from(our_addr));
        ip.set_dst_addr(Ipv4Address::from(header.src));
        ip.fill_checksum();
        let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
        icmp.set_msg_type(Icmpv4Message::from(icmp_type));
        icmp.set_msg_code(code);
        // The "rest of header": unused, or the next-hop MTU in its low 16 bits (RFC 1191).
        icmp.set_echo_ident(0);
        icmp.set_echo_seq_no(next_hop_mtu);
        icmp.data_mut().copy_from_slice(quoted);
        icmp.fill_checksum();
        if sink.transmit(iface, buf).is_ok() {
            if let Some(c) = self.counters.get_mut(usize::from(iface)) {
                c.icmp_errors_sent += 1;
            }
        }
    }
}

/// Builds an ARP frame from `repr` and hands it to the sink; `false` if the ring was full.
fn send_arp(
    interface: &Interface,
    dst: EthernetAddress,
    repr: &ArpRepr,
    iface: u8,
    sink: &mut impl Sink,
) -> bool {
    let mut frame = [0u8; ETHERNET_HEADER + 28];
    let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
    ethernet.set_dst_addr(dst);
    ethernet.set_src_addr(EthernetAddress(interface.mac));
    ethernet.set_ethertype(EthernetProtocol::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
    sink.transmit(iface, &frame).is_ok()
}

/// What validation learnt about a transit packet: everything the forwarder reads of it, taken
/// from checked views once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    ihl: usize,
    total_length: usize,
    dont_fragment: bool,
    fragment_offset: u16,
    protocol: IpProtocol,
    ttl: u8,
    src: u32,
    dst: u32,
    /// Ports for TCP and UDP, the identifier for ICMP (first fragments); else zero.
    ports: (u16, u16),
    /// The ICMP message type, for ICMP first fragments.
    icmp_type: Option<Icmpv4Message>,
}

/// RFC 1812 §5.2.2 checks, in order; each failure names its counter. Then the transport
/// header of a first fragment must hold what the flow table reads of it.
fn validate(frame: &[u8]) -> Result<Header, DropReason> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
    let bytes = ethernet.payload();
    let first = *bytes.first().ok_or(DropReason::Truncated)?;
    if bytes.len() < IPV4_MIN_HEADER {
        return Err(DropReason::Truncated);
    }
    if first >> 4 != 4 {
        return Err(DropReason::BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_MIN_HEADER {
        return Err(DropReason::BadIhl);
    }
    if ihl > bytes.len() {
        return Err(DropReason::Truncated);
    }
    // Version, header length and the header's presence are checked: the view's accessors of
    // the fixed header cannot fail from here on.
    let ip = Ipv4Packet::new_unchecked(bytes);
    let total_length = usize::from(ip.total_len());
    if total_length < ihl {
        return Err(DropReason::BadTotalLength);
    }
    if total_length > bytes.len() {
        return Err(DropReason::Truncated);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let fragment_offset = ip.frag_offset();
    let protocol = ip.next_header();
    let l4 = bytes.get(ihl..total_length).unwrap_or(&[]);
    let (mut ports, mut icmp_type) = ((0, 0), None);
    if fragment_offset == 0 {
        match protocol {
            IpProtocol::Tcp => {
                let tcp = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Truncated)?;
                ports = (tcp.src_port(), tcp.dst_port());
            }
            IpProtocol::Udp if l4.len() >= UDP_HEADER => {
                let udp = UdpPacket::new_unchecked(l4);
                ports = (udp.src_port(), udp.dst_port());
            }
            IpProtocol::Udp => return Err(DropReason::L4Truncated),
            IpProtocol::Icmp => {
                let icmp = Icmpv4Packet::new_checked(l4).map_err(|_| DropReason::L4Truncated)?;
                let id = icmp.echo_ident();
                ports = (id, id);
                icmp_type = Some(icmp.msg_type());
            }
            _ => {}
        }
    }
    Ok(Header {
        ihl,
        total_length,
        dont_fragment: ip.dont_frag(),
        fragment_offset,
        protocol,
        ttl: ip.hop_limit(),
        src: u32::from(ip.src_addr()),
        dst: u32::from(ip.dst_addr()),
        ports,
        icmp_type,
    })
}

/// The IPv4 source of a frame the forwarder queued itself (already validated once).
fn packet_source(frame: &[u8]) -> Option<u32> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
    Some(u32::from(ip.src_addr()))
}

/// Sources a router must not forward from (RFC 1812 §5.3.7): "this network", loopback,
/// multicast and class E, limited broadcast.
fn is_martian_source(src: u32) -> bool {
    let first = src >> 24;
    first == 0 || first == 127 || first >= 224
}

fn is_martian_destination(dst: u32) -> bool {
    let first = dst >> 24;
    first == 0 || first == 127 || (240..255).contains(&first)
}

/// RFC 1812 §4.3.2.7: no ICMP error about an ICMP error, a non-first fragment, or a packet
/// from a source that is not a unicast host.
fn may_answer(header: Header) -> bool {
    if header.fragment_offset != 0 || is_martian_source(header.src) {
        return false;
    }
    match header.icmp_type {
        // Only queries and replies may be answered: echo, timestamp, information, mask.
        Some(t) => matches!(u8::from(t), 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
        None => true,
    }
}

fn flow_key(header: Header) -> FlowKey {
    FlowKey {
        src: header.src,
        dst: header.dst,
        src_port: header.ports.0,
        dst_port: header.ports.1,
        protocol: u8::from(header.protocol),
    }
}

/// TTL − 1 with the header checksum updated incrementally (RFC 1624: HC' = ~(~HC + ~m + m')).
fn decrement_ttl(frame: &mut [u8]) {
    adjust_ttl(frame, |ttl| ttl.wrapping_sub(1));
}

fn restore_ttl(frame: &mut [u8]) {
    adjust_ttl(frame, |ttl| ttl.wrapping_add(1));
}

fn adjust_ttl(frame: &mut [u8], change: impl Fn(u8) -> u8) {
    let Ok(mut ethernet) = EthernetFrame::new_checked(frame) else { return };
    let Ok(mut ip) = Ipv4Packet::new_checked(ethernet.payload_mut()) else { return };
    let (ttl, protocol) = (ip.hop_limit(), u8::from(ip.next_header()));
    let old = u16::from_be_bytes([ttl, protocol]);
    let new = u16::from_be_bytes([change(ttl), protocol]);
    let mut sum = u32::from(!ip.checksum()) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.set_hop_limit(change(ttl));
    ip.set_checksum(!(sum as u16));
}

/// The Internet checksum (RFC 1071) of `data`: 0 over a header that carries a valid one.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMP error rate limit: `rate` tokens a second, a burst of one second's worth.
pub struct TokenBucket {
    rate: u32,
    tokens: u64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32) -> TokenBucket {
        TokenBucket { rate, tokens: u64::from(rate) * 1_000_000, updated: Instant::ZERO }
    }

    /// Takes a token (tokens are kept in millionths).
    pub fn take(&mut self, now: Instant) -> bool {
        let capacity = u64::from(self.rate) * 1_000_000;
        let elapsed = now.saturating_since(self.updated).total_micros();
        self.updated = now;
        self.tokens = (self.tokens + elapsed.saturating_mul(u64::from(self.rate))).min(capacity);
        if self.rate > 0 && self.tokens >= 1_000_000 {
            self.tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
