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
use crate::flows::{FlowKey, FlowTable, FlowTimeouts, Micros};
use crate::neighbour::{Neighbours, Resolution};

pub const MAX_INTERFACES: usize = 4;

const ETHERNET_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IPV4_MIN_HEADER: usize = 20;
const PROTOCOL_ICMP: u8 = 1;
const PROTOCOL_TCP: u8 = 6;
const PROTOCOL_UDP: u8 = 17;
const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const CODE_NET_UNREACHABLE: u8 = 0;
const CODE_HOST_UNREACHABLE: u8 = 1;
const CODE_FRAGMENTATION_NEEDED: u8 = 4;
/// Largest ICMP error frame: Ethernet, IP, ICMP header, the quoted header (≤ 60) and 8 bytes.
const ICMP_ERROR_MAX: usize = ETHERNET_HEADER + IPV4_MIN_HEADER + 8 + 60 + 8;
/// Flow-table slots swept per poll.
const FLOW_SWEEP: usize = 1024;
/// The longest `poll` waits with nothing scheduled (flow expiry makes progress at least this often).
const SWEEP_INTERVAL: Micros = 1_000_000;

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
}

impl DropReason {
    pub const COUNT: usize = 14;
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

/// Why a route was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    Fib(FibError),
    /// The gateway is not on any connected subnet.
    GatewayNotConnected,
    NoSuchInterface,
}

/// Where frames go out. `false`: the ring was full and the frame was not sent.
pub trait Sink {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> bool;
}

/// The forwarder's tunables.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub flow_capacity: usize,
    pub flow_timeouts: FlowTimeouts,
    /// ICMP errors per second; 0 sends none.
    pub icmp_rate: u32,
    /// Asks the forwarder's memory domain for room before a packet is queued for resolution
    /// (the one place per-packet work allocates): `false` drops it as `over_quota`.
    pub admit: fn(usize) -> bool,
}

/// Admission that always grants (tests, and before a domain has quotas).
pub fn admit_always(_bytes: usize) -> bool {
    true
}

pub struct Forwarder {
    interfaces: [Option<Interface>; MAX_INTERFACES],
    fib: Fib,
    next_hops: Vec<NextHop>,
    neighbours: Neighbours,
    flows: FlowTable,
    icmp: TokenBucket,
    admit: fn(usize) -> bool,
    ip_id: u16,
    counters: [Counters; MAX_INTERFACES],
}

impl Forwarder {
    pub fn new(settings: Settings) -> Forwarder {
        Forwarder {
            interfaces: [None; MAX_INTERFACES],
            fib: Fib::new(),
            next_hops: Vec::new(),
            neighbours: Neighbours::new(),
            flows: FlowTable::new(settings.flow_capacity, settings.flow_timeouts),
            icmp: TokenBucket::new(settings.icmp_rate),
            admit: settings.admit,
            ip_id: 0,
            counters: [Counters::default(); MAX_INTERFACES],
        }
    }

    /// Configures interface `iface` and installs its connected route.
    pub fn set_interface(&mut self, iface: u8, interface: Interface) -> Result<(), RouteError> {
        let slot = self.interfaces.get_mut(usize::from(iface)).ok_or(RouteError::NoSuchInterface)?;
        *slot = Some(interface);
        if let Some((addr, len)) = interface.address {
            let prefix = Prefix::new(addr & mask(len), len).map_err(RouteError::Fib)?;
            let id = self.next_hop_id(NextHop::Connected { iface });
            self.fib.insert(prefix, id).map_err(RouteError::Fib)?;
        }
        Ok(())
    }

    /// Adds a route via `gateway`, which must lie on a connected subnet.
    pub fn add_route(&mut self, prefix: Prefix, gateway: u32) -> Result<(), RouteError> {
        let iface = self
            .interfaces
            .iter()
            .enumerate()
            .find_map(|(i, x)| {
                let (addr, len) = x.as_ref()?.address?;
                (gateway & mask(len) == addr & mask(len)).then_some(i as u8)
            })
            .ok_or(RouteError::GatewayNotConnected)?;
        let id = self.next_hop_id(NextHop::Via { gateway, iface });
        self.fib.insert(prefix, id).map_err(RouteError::Fib)?;
        Ok(())
    }

    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    pub fn next_hop(&self, id: u32) -> Option<NextHop> {
        self.next_hops.get(id as usize).copied()
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
    pub fn handle(&mut self, now: Micros, iface: u8, frame: &mut [u8], sink: &mut impl Sink) {
        let header = match validate(frame) {
            Ok(h) => h,
            Err(reason) => return self.drop(iface, reason),
        };
        let (src, dst) = (read_u32(frame, 26), read_u32(frame, 30));
        if is_martian_source(src) || is_martian_destination(dst) {
            return self.drop(iface, DropReason::Martian);
        }
        let ttl = frame.get(ETHERNET_HEADER + 8).copied().unwrap_or(0);
        if ttl <= 1 {
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
                let mtu = u32::from(out_interface.mtu);
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
        self.flows.touch(now, flow_key(frame, header), header.total_length as u64);
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
                if !(self.admit)(len) {
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

    /// Learns from an ARP frame received on `iface` (smoltcp answers it; this only listens)
    /// and sends whatever was waiting for the sender.
    pub fn handle_arp(&mut self, now: Micros, iface: u8, frame: &[u8], sink: &mut impl Sink) {
        let Some(arp) = frame.get(ETHERNET_HEADER..ETHERNET_HEADER + 28) else { return };
        if read_u16(frame, 12) != ETHERTYPE_ARP || arp[0..6] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&arp[8..14]);
        let sender_ip = u32::from_be_bytes([arp[14], arp[15], arp[16], arp[17]]);
        let target_ip = u32::from_be_bytes([arp[24], arp[25], arp[26], arp[27]]);
        let Some(interface) = self.interface(iface) else { return };
        let for_us = interface.address.is_some_and(|(addr, _)| addr == target_ip);
        let waiting = self.neighbours.learn(now, iface, sender_ip, sender_mac, for_us);
        for mut queued in waiting {
            // Counted against the interface the packet came in on (where its source lives).
            let ingress = self.ingress_for(read_u32(&queued, 26)).unwrap_or(iface);
            self.send(ingress, iface, sender_mac, &mut queued, sink);
        }
    }

    /// Timers: ARP retries and give-ups, flow expiry in a bounded slice. Returns when to
    /// come back.
    pub fn poll(&mut self, now: Micros, sink: &mut impl Sink) -> Micros {
        let mut requests: Vec<(u8, u32)> = Vec::new();
        let mut failed: Vec<(u8, Vec<u8>)> = Vec::new();
        let next = self.neighbours.poll(now, |i, ip| requests.push((i, ip)), |i, f| failed.push((i, f)));
        for (iface, ip) in requests {
            self.send_arp_request(iface, ip, sink);
        }
        for (out, mut frame) in failed {
            // The queued frame was already rewritten up to its TTL; answer its sender.
            if let Ok(header) = validate(&frame) {
                let ingress = self.ingress_for(read_u32(&frame, 26)).unwrap_or(out);
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

    fn next_hop_id(&mut self, next_hop: NextHop) -> u32 {
        match self.next_hops.iter().position(|n| *n == next_hop) {
            Some(i) => i as u32,
            None => {
                self.next_hops.push(next_hop);
                self.next_hops.len() as u32 - 1
            }
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
        if sink.transmit(out, frame) {
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
        let mut frame = [0u8; ETHERNET_HEADER + 28];
        frame[0..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&interface.mac);
        frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
        frame[22..28].copy_from_slice(&interface.mac);
        frame[28..32].copy_from_slice(&addr.to_be_bytes());
        frame[38..42].copy_from_slice(&target.to_be_bytes());
        sink.transmit(iface, &frame);
    }

    /// Sends an ICMP error about `frame` (received on `iface`) back to its previous hop, if
    /// RFC 1812 allows one and the rate limit has a token.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Micros,
        iface: u8,
        frame: &[u8],
        header: Header,
        icmp_type: u8,
        code: u8,
        next_hop_mtu: u32,
        sink: &mut impl Sink,
    ) {
        let Some(interface) = self.interface(iface) else { return };
        let Some((our_addr, _)) = interface.address else { return };
        let src = read_u32(frame, 26);
        if !may_answer(frame, header, src) {
            return;
        }
        if !self.icmp.take(now) {
            if let Some(c) = self.counters.get_mut(usize::from(iface)) {
                c.icmp_errors_rate_limited += 1;
            }
            return;
        }
        let quoted_len = (header.ihl + 8).min(header.total_length);
        let Some(quoted) = frame.get(ETHERNET_HEADER..ETHERNET_HEADER + quoted_len) else { return };
        let ip_len = IPV4_MIN_HEADER + 8 + quoted.len();
        let mut out = [0u8; ICMP_ERROR_MAX];
        let total = ETHERNET_HEADER + ip_len;
        let Some(buf) = out.get_mut(..total) else { return };
        buf[0..6].copy_from_slice(frame.get(6..12).unwrap_or(&[0; 6]));
        buf[6..12].copy_from_slice(&interface.mac);
        buf[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        self.ip_id = self.ip_id.wrapping_add(1);
        let ip = &mut buf[ETHERNET_HEADER..];
        ip[0] = 0x45;
        ip[1] = 0xc0; // internetwork control
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[8] = 64;
        ip[9] = PROTOCOL_ICMP;
        ip[12..16].copy_from_slice(&our_addr.to_be_bytes());
        ip[16..20].copy_from_slice(&src.to_be_bytes());
        let ip_checksum = checksum(&ip[..IPV4_MIN_HEADER]);
        ip[10..12].copy_from_slice(&ip_checksum.to_be_bytes());
        let icmp = &mut ip[IPV4_MIN_HEADER..];
        icmp[0] = icmp_type;
        icmp[1] = code;
        icmp[4..8].copy_from_slice(&next_hop_mtu.to_be_bytes());
        icmp[8..8 + quoted.len()].copy_from_slice(quoted);
        let icmp_checksum = checksum(icmp);
        icmp[2..4].copy_from_slice(&icmp_checksum.to_be_bytes());
        if sink.transmit(iface, buf) {
            if let Some(c) = self.counters.get_mut(usize::from(iface)) {
                c.icmp_errors_sent += 1;
            }
        }
    }
}

/// What validation learnt about an IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    ihl: usize,
    total_length: usize,
    dont_fragment: bool,
    fragment_offset: u16,
    protocol: u8,
}

/// RFC 1812 §5.2.2 checks, in order; each failure names its counter.
fn validate(frame: &[u8]) -> Result<Header, DropReason> {
    let ip = frame.get(ETHERNET_HEADER..).ok_or(DropReason::Truncated)?;
    let first = *ip.first().ok_or(DropReason::Truncated)?;
    if ip.len() < IPV4_MIN_HEADER {
        return Err(DropReason::Truncated);
    }
    if first >> 4 != 4 {
        return Err(DropReason::BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_MIN_HEADER {
        return Err(DropReason::BadIhl);
    }
    let header = ip.get(..ihl).ok_or(DropReason::Truncated)?;
    let total_length = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total_length < ihl {
        return Err(DropReason::BadTotalLength);
    }
    if total_length > ip.len() {
        return Err(DropReason::Truncated);
    }
    if checksum(header) != 0 {
        return Err(DropReason::BadChecksum);
    }
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    Ok(Header {
        ihl,
        total_length,
        dont_fragment: flags & 0x4000 != 0,
        fragment_offset: flags & 0x1fff,
        protocol: ip[9],
    })
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
fn may_answer(frame: &[u8], header: Header, src: u32) -> bool {
    if header.fragment_offset != 0 || is_martian_source(src) {
        return false;
    }
    if header.protocol == PROTOCOL_ICMP {
        let icmp_type = frame.get(ETHERNET_HEADER + header.ihl).copied();
        // Only queries and replies may be answered: echo, timestamp, information, mask.
        return matches!(icmp_type, Some(0 | 8 | 13 | 14 | 15 | 16 | 17 | 18));
    }
    true
}

fn flow_key(frame: &[u8], header: Header) -> FlowKey {
    let l4 = ETHERNET_HEADER + header.ihl;
    let (src_port, dst_port) = match header.protocol {
        PROTOCOL_TCP | PROTOCOL_UDP if header.fragment_offset == 0 => {
            (read_u16(frame, l4), read_u16(frame, l4 + 2))
        }
        PROTOCOL_ICMP if header.fragment_offset == 0 => {
            let id = read_u16(frame, l4 + 4);
            (id, id)
        }
        _ => (0, 0),
    };
    FlowKey {
        src: read_u32(frame, 26),
        dst: read_u32(frame, 30),
        src_port,
        dst_port,
        protocol: header.protocol,
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
    let (Some(&ttl), Some(&protocol)) = (frame.get(ETHERNET_HEADER + 8), frame.get(ETHERNET_HEADER + 9))
    else {
        return;
    };
    let old = u16::from_be_bytes([ttl, protocol]);
    let new = u16::from_be_bytes([change(ttl), protocol]);
    let hc = read_u16(frame, ETHERNET_HEADER + 10);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let updated = !(sum as u16);
    if let Some(field) = frame.get_mut(ETHERNET_HEADER + 8..ETHERNET_HEADER + 12) {
        field[0] = change(ttl);
        field[2..4].copy_from_slice(&updated.to_be_bytes());
    }
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

fn read_u16(frame: &[u8], at: usize) -> u16 {
    match frame.get(at..at + 2) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

fn read_u32(frame: &[u8], at: usize) -> u32 {
    match frame.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// ICMP error rate limit: `rate` tokens a second, a burst of one second's worth.
struct TokenBucket {
    rate: u32,
    tokens: u64,
    updated: Micros,
}

impl TokenBucket {
    fn new(rate: u32) -> TokenBucket {
        TokenBucket { rate, tokens: u64::from(rate) * 1_000_000, updated: 0 }
    }

    /// Takes a token (tokens are kept in millionths).
    fn take(&mut self, now: Micros) -> bool {
        let capacity = u64::from(self.rate) * 1_000_000;
        let elapsed = now.saturating_sub(self.updated);
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
