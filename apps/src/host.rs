//! The appliance as an IP host: one smoltcp interface at the IP layer that holds every
//! configured address, whichever NIC a packet came in on, and the registry of who owns what.
//!
//! ```text
//!  dispatch ──local IPv4──▶ Host::classify ──bound protocol / UDP port──▶ owner's receive()
//!                                   └──everything else──▶ smoltcp (TCP, ICMP echo, and the
//!                                        answers a host gives: RST, port/protocol unreachable)
//!  smoltcp, send_datagram ──▶ local-out queue ──▶ (the platform) ──▶ forwarder: FIB, ARP, NIC
//! ```
//!
//! Bounds, and what happens at each:
//! - [`MAX_SOCKETS`] TCP sockets, their table reserved in `net` when the host is built (it never
//!   grows); a listen or connect beyond it is refused with `TooManySockets`. A socket's buffers are
//!   allocated in its owner's domain, and freed with the socket, so they die with a shed.
//! - [`MAX_BINDINGS`] protocol and UDP-port bindings; beyond: `BindError::TableFull`.
//! - [`OUT_SLOTS`] packets waiting for the forwarder in the local-out queue, reserved in `net`:
//!   when it is full smoltcp holds its segments (it retransmits them) and `send_datagram` is
//!   refused with `SendError::QueueFull`; smoltcp's own replies that find it full are counted.
//! - ICMP errors (port and protocol unreachable) are limited to [`ICMP_ERRORS_PER_SECOND`].
//! - [`MAX_TTL_GUARDS`] TTL guards (GTSM, RFC 5082), in a fixed table; beyond:
//!   `TtlGuardError::TableFull`. A TCP segment from a guarded peer, with the guarded port on
//!   either side, whose TTL is below the guard's minimum is dropped here, where the IP header
//!   is still at hand, and counted per guard and in `ttl_security_dropped`.
//! - A listening port has one listening socket at a time, which a SYN turns into its connection;
//!   its owner listens again on its next poll. A SYN that arrives in between (peers that connect
//!   at once, after a restart say) is dropped and counted in `listen_drops`, as a full accept
//!   queue drops it: the peer sends it again a second later, where an RST would have sent it
//!   into its connect-retry wait (two minutes for BIRD and FRR).
//! - An ICMP destination unreachable that quotes a packet sent from one of our addresses
//!   through a binding (its protocol, or its UDP source port) goes to the binding's owner
//!   ([`Local::IcmpError`]); every other ICMP is smoltcp's. A datagram sent with
//!   `fragment_to` leaves in IPv4 fragments, all of them or none (`QueueFull`).

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_net::router::{TokenBucket, MAX_IP_PACKET};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    HardwareAddress, Icmpv4Packet, IpAddress, IpCidr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
    UdpRepr,
};

use crate::addr::Ipv4Cidr;
use crate::context::{
    BindError, Binding, Datagram, IcmpError, OutDatagram, SendError, SocketId, TcpBuffers, TcpError,
    TtlGuard, TtlGuardError,
};
use crate::domain::Domain;
use crate::time::Instant;

pub const MAX_SOCKETS: usize = 64;
pub const MAX_BINDINGS: usize = 16;
pub const OUT_SLOTS: usize = 128;
/// Rounds of smoltcp's egress per call (each sends at most one segment per socket).
pub const EGRESS_ROUNDS: usize = 32;
pub const ICMP_ERRORS_PER_SECOND: u32 = 100;
/// One per BGP neighbor at most.
pub const MAX_TTL_GUARDS: usize = 64;
const EPHEMERAL_FIRST: u16 = 49152;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Where a local packet goes.
#[derive(Debug)]
pub enum Local<'a> {
    /// To the owner of a binding.
    Bound(Domain, Datagram<'a>),
    /// An ICMP error about a packet the owner sent through its binding.
    IcmpError(Domain, IcmpError<'a>),
    /// To smoltcp.
    Stack,
    /// Dropped and counted.
    Drop(LocalDrop),
}

/// Why a local packet was dropped before anyone saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalDrop {
    Truncated,
    BadChecksum,
    /// A fragment: the appliance does not reassemble.
    Fragment,
    /// A TCP segment of a guarded peer below the guard's TTL (GTSM, RFC 5082).
    TtlSecurity,
    /// A SYN to a listened port whose listening socket is taken, not yet replaced.
    ListenBusy,
}

/// The host's counters, for `show interfaces` and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    pub delivered_stack: u64,
    pub delivered_bound: u64,
    pub truncated: u64,
    pub bad_checksum: u64,
    pub fragments: u64,
    /// TCP segments of TTL-guarded peers that arrived with too low a TTL (RFC 5082).
    pub ttl_security_dropped: u64,
    /// SYNs to a listened port that found its listening socket taken (the peer sends again).
    pub listen_drops: u64,
    /// A bound packet its owner did not take (down, restarting, held down, or refused).
    pub owner_down: u64,
    pub tcp_resets_sent: u64,
    pub icmp_unreachable_sent: u64,
    pub icmp_rate_limited: u64,
    /// A reply smoltcp built found the local-out queue full.
    pub out_queue_full: u64,
    pub datagrams_sent: u64,
    /// ICMP errors handed to the owner of the binding they quote, and those it had no use for.
    pub icmp_errors_delivered: u64,
    pub icmp_errors_unwanted: u64,
    /// Datagrams sent in IPv4 fragments (`fragment_to`), and the fragments.
    pub datagrams_fragmented: u64,
    pub fragments_sent: u64,
}

/// Packets on their way to the forwarder, in fixed slots reserved at start.
struct OutQueue {
    bytes: Vec<u8>,
    lens: Vec<u16>,
    head: usize,
    len: usize,
}

impl OutQueue {
    fn new() -> OutQueue {
        OutQueue {
            bytes: alloc::vec![0; OUT_SLOTS * MAX_IP_PACKET],
            lens: alloc::vec![0; OUT_SLOTS],
            head: 0,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len >= OUT_SLOTS
    }

    /// Builds a `len`-byte packet in the next free slot with `f`; `None` when full or too big.
    fn push<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.is_full() || len > MAX_IP_PACKET {
            return None;
        }
        let slot = (self.head + self.len) % OUT_SLOTS;
        let buf = self.bytes.get_mut(slot * MAX_IP_PACKET..slot * MAX_IP_PACKET + len)?;
        let r = f(buf);
        *self.lens.get_mut(slot)? = len as u16;
        self.len += 1;
        Some(r)
    }

    /// The oldest packet, if any.
    fn front(&self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = usize::from(*self.lens.get(self.head)?);
        self.bytes.get(self.head * MAX_IP_PACKET..self.head * MAX_IP_PACKET + len)
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % OUT_SLOTS;
            self.len -= 1;
        }
    }
}

pub struct Host {
    iface: Interface,
    sockets: SocketSet<'static>,
    /// Who owns each socket; reserved for `MAX_SOCKETS`.
    owners: Vec<(SocketHandle, Domain)>,
    /// Released sockets whose RST is still to go out; removed after the next egress.
    dying: Vec<SocketHandle>,
    bindings: heapless::Vec<(Binding, Domain), MAX_BINDINGS>,
    /// GTSM guards, with their owner and the segments each dropped.
    ttl_guards: heapless::Vec<(TtlGuard, Domain, u64), MAX_TTL_GUARDS>,
    addresses: Vec<Ipv4Cidr>,
    out: OutQueue,
    icmp: TokenBucket,
    next_port: u16,
    /// The identification of the next datagram sent in fragments.
    next_ident: u16,
    /// The largest IP packet the stack sends (the smallest addressed port's MTU).
    mtu: usize,
    pub counters: HostCounters,
}

impl Host {
    /// Builds the stack with `addresses`, sending IP packets of at most `mtu` bytes (smoltcp's
    /// TCP MSS follows); call it inside the `net` domain: everything it reserves here is the
    /// platform's.
    pub fn new(addresses: &[Ipv4Cidr], mtu: usize, seed: u64, now: Instant) -> Host {
        let mtu = mtu.min(MAX_IP_PACKET);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut out = OutQueue::new();
        let mut counters = HostCounters::default();
        let mut icmp = TokenBucket::new(ICMP_ERRORS_PER_SECOND);
        let mut device =
            HostDevice { rx: None, out: &mut out, icmp: &mut icmp, counters: &mut counters, now, mtu };
        let mut iface = Interface::new(config, &mut device, smol_now(now));
        iface.update_ip_addrs(|addrs| {
            for a in addresses {
                let _ = addrs.push(IpCidr::Ipv4(smoltcp::wire::Ipv4Cidr::new(a.addr, a.prefix_len)));
            }
        });
        // Every destination is "reachable" at the IP layer: the forwarder's FIB decides.
        if let Some(first) = addresses.first() {
            let _ = iface.routes_mut().add_default_ipv4_route(first.addr);
        }
        let mut storage = Vec::with_capacity(MAX_SOCKETS);
        storage.resize_with(MAX_SOCKETS, SocketStorage::default);
        Host {
            iface,
            sockets: SocketSet::new(storage),
            owners: Vec::with_capacity(MAX_SOCKETS),
            dying: Vec::with_capacity(MAX_SOCKETS),
            bindings: heapless::Vec::new(),
            ttl_guards: heapless::Vec::new(),
            addresses: addresses.to_vec(),
            out,
            icmp,
            next_port: EPHEMERAL_FIRST.wrapping_add((seed % 8192) as u16),
            next_ident: (seed >> 16) as u16,
            mtu,
            counters,
        }
    }

    pub fn addresses(&self) -> &[Ipv4Cidr] {
        &self.addresses
    }

    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.addr == addr)
    }

    /// Decides where a local IPv4 packet (`packet` starts at the IP header) goes.
    pub fn classify<'a>(&mut self, packet: &'a [u8]) -> Local<'a> {
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            self.counters.truncated += 1;
            return Local::Drop(LocalDrop::Truncated);
        };
        if !ip.verify_checksum() {
            self.counters.bad_checksum += 1;
            return Local::Drop(LocalDrop::BadChecksum);
        }
        if ip.next_header() == IpProtocol::Tcp && !self.ttl_guards.is_empty() && self.below_ttl_guard(&ip) {
            self.counters.ttl_security_dropped += 1;
            return Local::Drop(LocalDrop::TtlSecurity);
        }
        if ip.next_header() == IpProtocol::Tcp && self.listener_busy(&ip) {
            self.counters.listen_drops += 1;
            return Local::Drop(LocalDrop::ListenBusy);
        }
        if ip.next_header() == IpProtocol::Icmp {
            if let Some((owner, error)) = self.icmp_error(packet) {
                return Local::IcmpError(owner, error);
            }
        }
        let protocol = u8::from(ip.next_header());
        let bound_protocol = self.owner(Binding::IpProtocol(protocol));
        let udp = ip.next_header() == IpProtocol::Udp;
        if bound_protocol.is_none() && !udp {
            return Local::Stack;
        }
        if ip.more_frags() || ip.frag_offset() != 0 {
            self.counters.fragments += 1;
            return Local::Drop(LocalDrop::Fragment);
        }
        let header_len = usize::from(ip.header_len());
        let total = usize::from(ip.total_len());
        let Some(payload) = packet.get(header_len..total) else {
            self.counters.truncated += 1;
            return Local::Drop(LocalDrop::Truncated);
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if let Some(owner) = bound_protocol {
            return Local::Bound(owner, Datagram { src, dst, protocol, ports: None, payload });
        }
        let Ok(segment) = UdpPacket::new_checked(payload) else {
            self.counters.truncated += 1;
            return Local::Drop(LocalDrop::Truncated);
        };
        let Some(owner) = self.owner(Binding::Udp(segment.dst_port())) else { return Local::Stack };
        if !segment.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)) {
            self.counters.bad_checksum += 1;
            return Local::Drop(LocalDrop::BadChecksum);
        }
        let ports = Some((segment.src_port(), segment.dst_port()));
        let udp_len = usize::from(segment.len()).min(payload.len());
        let body = payload.get(UDP_HEADER..udp_len).unwrap_or(&[]);
        Local::Bound(owner, Datagram { src, dst, protocol, ports, payload: body })
    }

    /// True when `ip` (TCP) comes from a guarded peer, has the guarded port on either side (a
    /// later fragment, without ports, counts as having it) and arrived below the guard's TTL;
    /// the guard's count is raised.
    fn below_ttl_guard(&mut self, ip: &Ipv4Packet<&[u8]>) -> bool {
        let src = ip.src_addr();
        let ttl = ip.hop_limit();
        let ports = if ip.frag_offset() != 0 {
            None
        } else {
            match TcpPacket::new_checked(ip.payload()) {
                Ok(tcp) => Some((tcp.src_port(), tcp.dst_port())),
                // Not a TCP segment smoltcp will take either.
                Err(_) => return false,
            }
        };
        for (guard, _, drops) in self.ttl_guards.iter_mut() {
            let port_matches = ports.is_none_or(|(s, d)| s == guard.port || d == guard.port);
            if guard.peer == src && port_matches && ttl < guard.min_ttl {
                *drops += 1;
                return true;
            }
        }
        false
    }

    /// A destination unreachable that quotes a packet from one of our addresses sent through a
    /// binding, with that binding's owner. The quoted packet is read field by field: it is
    /// cut short (RFC 792 quotes its header and 8 bytes; RFC 1812 routers up to 576 in all).
    fn icmp_error<'a>(&self, packet: &'a [u8]) -> Option<(Domain, IcmpError<'a>)> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.more_frags() || ip.frag_offset() != 0 {
            return None;
        }
        let icmp_bytes = packet.get(usize::from(ip.header_len())..usize::from(ip.total_len()))?;
        let icmp = Icmpv4Packet::new_checked(icmp_bytes).ok()?;
        if u8::from(icmp.msg_type()) != 3 || !icmp.verify_checksum() {
            return None;
        }
        let code = icmp.msg_code();
        // Bytes 4..8 of the ICMP header: unused, then the next hop's MTU for code 4.
        let next_hop_mtu = icmp_bytes.get(6..8).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let quoted = icmp_bytes.get(8..)?;
        let header = Ipv4Packet::new_unchecked(quoted.get(..IPV4_HEADER)?);
        let header_len = usize::from(header.header_len());
        if header.version() != 4 || header_len < IPV4_HEADER || header.frag_offset() != 0 {
            return None;
        }
        let (src, dst, protocol) = (header.src_addr(), header.dst_addr(), u8::from(header.next_header()));
        let ip_len = header.total_len();
        if !self.is_local(src) {
            return None;
        }
        let after = quoted.get(header_len..)?;
        let (owner, ports, payload) = if header.next_header() == IpProtocol::Udp {
            let ports = after.get(..4)?;
            let (sport, dport) =
                (u16::from_be_bytes([ports[0], ports[1]]), u16::from_be_bytes([ports[2], ports[3]]));
            let owner = self.owner(Binding::Udp(sport))?;
            (owner, Some((sport, dport)), after.get(UDP_HEADER..).unwrap_or(&[]))
        } else {
            (self.owner(Binding::IpProtocol(protocol))?, None, after)
        };
        let quoted = Datagram { src, dst, protocol, ports, payload };
        Some((owner, IcmpError { from: ip.src_addr(), code, next_hop_mtu, ip_len, quoted }))
    }

    /// True when `ip` is a SYN (no ACK) to a listened port (`Binding::TcpListen`) that no
    /// socket would take: none listens on the port just now, and none is the segment's own
    /// connection (a SYN sent again while its SYN-ACK is on the way).
    fn listener_busy(&self, ip: &Ipv4Packet<&[u8]>) -> bool {
        if ip.frag_offset() != 0 {
            return false;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return false };
        let port = tcp.dst_port();
        if !tcp.syn() || tcp.ack() || self.owner(Binding::TcpListen(port)).is_none() {
            return false;
        }
        let remote = smoltcp::wire::IpEndpoint::new(IpAddress::Ipv4(ip.src_addr()), tcp.src_port());
        let takes = |s: &tcp::Socket| match s.state() {
            tcp::State::Listen => s.listen_endpoint().port == port,
            _ => s.remote_endpoint() == Some(remote) && s.local_endpoint().is_some_and(|l| l.port == port),
        };
        !self.owners.iter().any(|(h, _)| takes(self.sockets.get::<tcp::Socket>(*h)))
    }

    /// Hands a local packet to smoltcp (it answers ARP-less: TCP, ICMP echo, RST, unreachable).
    pub fn ingress(&mut self, now: Instant, packet: &[u8]) {
        self.counters.delivered_stack += 1;
        let mut device = HostDevice {
            rx: Some(packet),
            out: &mut self.out,
            icmp: &mut self.icmp,
            counters: &mut self.counters,
            now,
            mtu: self.mtu,
        };
        let _ = self.iface.poll_ingress_single(smol_now(now), &mut device, &mut self.sockets);
    }

    /// Lets smoltcp send what its sockets have (data, ACKs, retransmissions, RSTs of released
    /// sockets), then frees the released sockets.
    pub fn egress(&mut self, now: Instant) {
        let mut device = HostDevice {
            rx: None,
            out: &mut self.out,
            icmp: &mut self.icmp,
            counters: &mut self.counters,
            now,
            mtu: self.mtu,
        };
        self.iface.poll_maintenance(smol_now(now));
        // One segment per socket per call: go on while the sockets have more and the
        // local-out queue has room, at most EGRESS_ROUNDS calls.
        for _ in 0..EGRESS_ROUNDS {
            let sent = self.iface.poll_egress(smol_now(now), &mut device, &mut self.sockets);
            if sent == smoltcp::iface::PollResult::None || device.out.is_full() {
                break;
            }
        }
        for handle in self.dying.drain(..) {
            self.sockets.remove(handle);
        }
    }

    /// When smoltcp next wants to be polled.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface
            .poll_at(smol_now(now), &self.sockets)
            .map(|at| Instant::from_micros(at.total_micros().max(0) as u64))
    }

    /// The oldest packet waiting for the forwarder.
    pub fn next_out(&self) -> Option<&[u8]> {
        self.out.front()
    }

    pub fn pop_out(&mut self) {
        self.out.pop();
    }

    pub fn out_len(&self) -> usize {
        self.out.len
    }

    // ---- ownership --------------------------------------------------------------------------

    /// Binds a raw IP protocol or a UDP port (a TCP port is taken by `tcp_listen`).
    pub fn bind(&mut self, owner: Domain, binding: Binding) -> Result<(), BindError> {
        match binding {
            Binding::IpProtocol(p)
                if matches!(IpProtocol::from(p), IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmp) =>
            {
                return Err(BindError::Reserved)
            }
            Binding::TcpListen(_) => return Err(BindError::Reserved),
            _ => {}
        }
        match self.owner(binding) {
            Some(d) if d == owner => Ok(()),
            Some(by) => Err(BindError::Taken { by }),
            None => self.bindings.push((binding, owner)).map_err(|_| BindError::TableFull),
        }
    }

    fn owner(&self, binding: Binding) -> Option<Domain> {
        self.bindings.iter().find(|(b, _)| *b == binding).map(|(_, d)| *d)
    }

    pub fn bindings(&self) -> impl Iterator<Item = (Binding, Domain)> + '_ {
        self.bindings.iter().copied()
    }

    /// Guards `guard.peer`'s segments on `guard.port` by their TTL, on behalf of `owner`,
    /// until `owner` is released; asked again, the minimum changes and the count stays.
    pub fn ttl_guard(&mut self, owner: Domain, guard: TtlGuard) -> Result<(), TtlGuardError> {
        let same = |g: &TtlGuard| g.peer == guard.peer && g.port == guard.port;
        match self.ttl_guards.iter_mut().find(|(g, _, _)| same(g)) {
            Some((g, d, _)) if *d == owner => {
                g.min_ttl = guard.min_ttl;
                Ok(())
            }
            Some((_, by, _)) => Err(TtlGuardError::Taken { by: *by }),
            None => self.ttl_guards.push((guard, owner, 0)).map_err(|_| TtlGuardError::TableFull),
        }
    }

    /// The segments `owner`'s guard of `peer` and `port` dropped.
    pub fn ttl_guard_drops(&self, owner: Domain, peer: Ipv4Addr, port: u16) -> Option<u64> {
        self.ttl_guards
            .iter()
            .find(|(g, d, _)| g.peer == peer && g.port == port && *d == owner)
            .map(|(_, _, drops)| *drops)
    }

    /// The guards held, with their owners and counts.
    pub fn ttl_guards(&self) -> impl Iterator<Item = (TtlGuard, Domain, u64)> + '_ {
        self.ttl_guards.iter().copied()
    }

    /// Builds an IPv4 (and UDP) datagram in the local-out queue.
    pub fn send_datagram(&mut self, d: OutDatagram<'_>) -> Result<(), SendError> {
        if !self.is_local(d.src) {
            return Err(SendError::NotLocal);
        }
        let l4_len = d.payload.len() + if d.ports.is_some() { UDP_HEADER } else { 0 };
        let total = IPV4_HEADER + l4_len;
        if total > MAX_IP_PACKET {
            return Err(SendError::TooBig);
        }
        let protocol = if d.ports.is_some() { IpProtocol::Udp } else { IpProtocol::from(d.protocol) };
        let repr = Ipv4Repr {
            src_addr: d.src,
            dst_addr: d.dst,
            next_header: protocol,
            payload_len: l4_len,
            hop_limit: 64,
        };
        let fragment_to = d.fragment_to.map_or(usize::MAX, usize::from);
        if total > fragment_to {
            return self.send_fragments(&repr, d, fragment_to);
        }
        let caps = ChecksumCapabilities::default();
        let pushed = self.out.push(total, |buf| {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut ip, &caps);
            if d.fragment_to.is_some() {
                ip.set_dont_frag(false);
                ip.fill_checksum();
            }
            emit_l4(&d, ip.payload_mut());
        });
        match pushed {
            Some(()) => {
                self.counters.datagrams_sent += 1;
                Ok(())
            }
            None => Err(SendError::QueueFull),
        }
    }

    /// `d`, whose IP packet would be larger than `mtu`, as IPv4 fragments of at most `mtu`
    /// bytes (RFC 791: every fragment's data but the last a multiple of 8 bytes), DF clear,
    /// one identification for them all. All go into the local-out queue, or none.
    fn send_fragments(&mut self, repr: &Ipv4Repr, d: OutDatagram<'_>, mtu: usize) -> Result<(), SendError> {
        let per_fragment = mtu.saturating_sub(IPV4_HEADER) / 8 * 8;
        if per_fragment == 0 {
            return Err(SendError::TooBig);
        }
        // The whole datagram first (UDP's checksum covers all of it), then cut.
        let mut whole = [0u8; MAX_IP_PACKET];
        let l4_len = repr.payload_len;
        let l4 = whole.get_mut(..l4_len).ok_or(SendError::TooBig)?;
        emit_l4(&d, l4);
        let count = l4_len.div_ceil(per_fragment);
        if OUT_SLOTS - self.out.len < count {
            return Err(SendError::QueueFull);
        }
        self.next_ident = self.next_ident.wrapping_add(1);
        let ident = self.next_ident;
        for (k, data) in l4.chunks(per_fragment).enumerate() {
            let piece = Ipv4Repr { payload_len: data.len(), ..*repr };
            let last = k + 1 == count;
            self.out.push(IPV4_HEADER + data.len(), |buf| {
                let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
                piece.emit(&mut ip, &ChecksumCapabilities::ignored());
                ip.set_ident(ident);
                ip.set_dont_frag(false);
                ip.set_more_frags(!last);
                ip.set_frag_offset((k * per_fragment) as u16);
                ip.payload_mut().copy_from_slice(data);
                ip.fill_checksum();
            });
            self.counters.fragments_sent += 1;
        }
        self.counters.datagrams_fragmented += 1;
        self.counters.datagrams_sent += 1;
        Ok(())
    }

    /// A listening socket with its buffers allocated in the current domain (the owner's).
    pub fn tcp_listen(
        &mut self,
        owner: Domain,
        port: u16,
        buffers: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        if port == 0 {
            return Err(TcpError::Unaddressable);
        }
        match self.owner(Binding::TcpListen(port)) {
            Some(d) if d != owner => return Err(TcpError::Unaddressable),
            Some(_) => {}
            None if self.bindings.is_full() => return Err(TcpError::TooManySockets),
            None => {}
        }
        let mut socket = self.new_socket(buffers)?;
        socket.listen(port).map_err(|_| TcpError::Unaddressable)?;
        if self.owner(Binding::TcpListen(port)).is_none() {
            // Room was checked above.
            let _ = self.bindings.push((Binding::TcpListen(port), owner));
        }
        Ok(self.add(owner, socket))
    }

    pub fn tcp_connect(
        &mut self,
        owner: Domain,
        local: Option<Ipv4Addr>,
        remote: (Ipv4Addr, u16),
        buffers: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        if local.is_some_and(|l| !self.is_local(l)) {
            return Err(TcpError::Unaddressable);
        }
        let mut socket = self.new_socket(buffers)?;
        let port = self.ephemeral_port();
        let local_endpoint = smoltcp::wire::IpListenEndpoint { addr: local.map(IpAddress::Ipv4), port };
        socket
            .connect(self.iface.context(), (IpAddress::Ipv4(remote.0), remote.1), local_endpoint)
            .map_err(|_| TcpError::Unaddressable)?;
        Ok(self.add(owner, socket))
    }

    pub fn tcp(&mut self, owner: Domain, id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
        if !self.owners.iter().any(|(h, d)| *h == id.0 && *d == owner) {
            return Err(TcpError::NoSuchSocket);
        }
        Ok(self.sockets.get_mut::<tcp::Socket>(id.0))
    }

    /// Gives a socket up: an open connection is aborted (its RST goes out on the next egress).
    pub fn tcp_release(&mut self, owner: Domain, id: SocketId) -> Result<(), TcpError> {
        let at =
            self.owners.iter().position(|(h, d)| *h == id.0 && *d == owner).ok_or(TcpError::NoSuchSocket)?;
        self.owners.swap_remove(at);
        self.retire(id.0);
        Ok(())
    }

    /// Everything `owner` holds goes (its subsystem was shed): what it wrote last is sent, then
    /// its connections are aborted, their RSTs built into the local-out queue now, the sockets and their buffers freed, and its
    /// bindings and TTL guards dropped. Nothing of it stays in `net`.
    pub fn release_all(&mut self, owner: Domain, now: Instant) {
        // First what the subsystem said last (its farewell: a NOTIFICATION, say), then the RSTs.
        self.egress(now);
        let mut i = 0;
        while let Some((handle, d)) = self.owners.get(i).copied() {
            if d == owner {
                self.owners.swap_remove(i);
                self.retire(handle);
            } else {
                i += 1;
            }
        }
        self.bindings.retain(|(_, d)| *d != owner);
        self.ttl_guards.retain(|(_, d, _)| *d != owner);
        self.egress(now);
    }

    /// The sockets a domain holds.
    pub fn sockets_of(&self, owner: Domain) -> usize {
        self.owners.iter().filter(|(_, d)| *d == owner).count()
    }

    fn retire(&mut self, handle: SocketHandle) {
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if socket.state() == tcp::State::Closed {
            self.sockets.remove(handle);
        } else {
            socket.abort();
            self.dying.push(handle);
        }
    }

    fn new_socket(&mut self, buffers: TcpBuffers) -> Result<tcp::Socket<'static>, TcpError> {
        if self.owners.len() + self.dying.len() >= MAX_SOCKETS {
            return Err(TcpError::TooManySockets);
        }
        let rx = tcp::SocketBuffer::new(alloc::vec![0u8; buffers.rx]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0u8; buffers.tx]);
        Ok(tcp::Socket::new(rx, tx))
    }

    fn add(&mut self, owner: Domain, socket: tcp::Socket<'static>) -> SocketId {
        let handle = self.sockets.add(socket);
        self.owners.push((handle, owner));
        SocketId(handle)
    }

    /// The next ephemeral port no socket of ours uses.
    fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            self.next_port = if self.next_port >= u16::MAX - 1 || self.next_port < EPHEMERAL_FIRST {
                EPHEMERAL_FIRST
            } else {
                self.next_port + 1
            };
            let port = self.next_port;
            let used =
                self.owners.iter().map(|(h, _)| *h).chain(self.dying.iter().copied()).any(|h| {
                    self.sockets.get::<tcp::Socket>(h).local_endpoint().is_some_and(|e| e.port == port)
                });
            if !used {
                return port;
            }
        }
        self.next_port
    }
}

/// What follows the IP header of `d`, into `body` (exactly its length): the UDP header and the
/// payload, with the UDP checksum, or the raw payload.
fn emit_l4(d: &OutDatagram<'_>, body: &mut [u8]) {
    match d.ports {
        Some((src_port, dst_port)) => UdpRepr { src_port, dst_port }.emit(
            &mut UdpPacket::new_unchecked(body),
            &IpAddress::Ipv4(d.src),
            &IpAddress::Ipv4(d.dst),
            d.payload.len(),
            |p| p.copy_from_slice(d.payload),
            &ChecksumCapabilities::default(),
        ),
        None => body.copy_from_slice(d.payload),
    }
}

fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.total_micros() as i64)
}

/// The device smoltcp sees: at most one received packet, and the local-out queue.
struct HostDevice<'a> {
    rx: Option<&'a [u8]>,
    out: &'a mut OutQueue,
    icmp: &'a mut TokenBucket,
    counters: &'a mut HostCounters,
    now: Instant,
    /// The largest IP packet the stack sends.
    mtu: usize,
}

struct HostRx<'a>(&'a [u8]);

struct HostTx<'a> {
    out: &'a mut OutQueue,
    icmp: &'a mut TokenBucket,
    counters: &'a mut HostCounters,
    now: Instant,
}

impl RxToken for HostRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for HostTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut scratch = [0u8; MAX_IP_PACKET];
        let Some(buf) = scratch.get_mut(..len) else {
            // Larger than any packet we send: built and dropped.
            let mut big = alloc::vec![0u8; len];
            return f(&mut big);
        };
        let r = f(buf);
        match answer_kind(buf) {
            Answer::IcmpUnreachable if !self.icmp.take(self.now) => {
                self.counters.icmp_rate_limited += 1;
                return r;
            }
            Answer::IcmpUnreachable => self.counters.icmp_unreachable_sent += 1,
            Answer::TcpReset => self.counters.tcp_resets_sent += 1,
            Answer::Other => {}
        }
        if self.out.push(len, |slot| slot.copy_from_slice(buf)).is_none() {
            self.counters.out_queue_full += 1;
        }
        r
    }
}

/// What smoltcp's packet is, for the rate limit and the counters.
enum Answer {
    IcmpUnreachable,
    TcpReset,
    Other,
}

fn answer_kind(packet: &[u8]) -> Answer {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else { return Answer::Other };
    match ip.next_header() {
        IpProtocol::Icmp => match Icmpv4Packet::new_checked(ip.payload()) {
            Ok(icmp) if u8::from(icmp.msg_type()) == 3 => Answer::IcmpUnreachable,
            _ => Answer::Other,
        },
        IpProtocol::Tcp => match TcpPacket::new_checked(ip.payload()) {
            Ok(tcp) if tcp.rst() => Answer::TcpReset,
            _ => Answer::Other,
        },
        _ => Answer::Other,
    }
}

impl Device for HostDevice<'_> {
    type RxToken<'b>
        = HostRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = HostTx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: smoltcp::time::Instant) -> Option<(HostRx<'_>, HostTx<'_>)> {
        let packet = self.rx.take()?;
        Some((
            HostRx(packet),
            HostTx { out: self.out, icmp: self.icmp, counters: self.counters, now: self.now },
        ))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<HostTx<'_>> {
        if self.out.is_full() {
            return None;
        }
        Some(HostTx { out: self.out, icmp: self.icmp, counters: self.counters, now: self.now })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = Some(16);
        caps.checksum.ipv4 = Checksum::Both;
        caps
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};

    use super::*;

    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

    fn host() -> Host {
        Host::new(&[Ipv4Cidr { addr: US, prefix_len: 24 }], MAX_IP_PACKET, 7, Instant::from_micros(0))
    }

    /// A SYN from `src:sport` to us at `dport`, sent with `ttl`.
    fn syn(src: Ipv4Addr, sport: u16, dport: u16, ttl: u8) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: dport,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 1024,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: ttl,
        };
        let mut bytes = alloc::vec![0u8; IPV4_HEADER + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(&mut segment, &IpAddress::Ipv4(src), &IpAddress::Ipv4(US), &caps);
        bytes
    }

    fn dropped(h: &mut Host, packet: &[u8]) -> bool {
        matches!(h.classify(packet), Local::Drop(LocalDrop::TtlSecurity))
    }

    #[test]
    fn a_guarded_peer_below_its_ttl_is_dropped_and_counted() {
        let mut h = host();
        let guard = TtlGuard { peer: PEER, port: 179, min_ttl: 255 };
        h.ttl_guard(Domain::Bgp, guard).unwrap();
        // To port 179 and from port 179, both directions of the session.
        assert!(dropped(&mut h, &syn(PEER, 40000, 179, 254)));
        assert!(dropped(&mut h, &syn(PEER, 179, 40000, 1)));
        assert!(matches!(h.classify(&syn(PEER, 40000, 179, 255)), Local::Stack));
        // Other ports of the peer, and other peers, are not the guard's.
        assert!(matches!(h.classify(&syn(PEER, 40000, 22, 1)), Local::Stack));
        assert!(matches!(h.classify(&syn(OTHER, 40000, 179, 1)), Local::Stack));
        assert_eq!(h.ttl_guard_drops(Domain::Bgp, PEER, 179), Some(2));
        assert_eq!(h.counters.ttl_security_dropped, 2);
        // Another domain neither reads nor takes it.
        assert_eq!(h.ttl_guard_drops(Domain::Bmp, PEER, 179), None);
        assert_eq!(h.ttl_guard(Domain::Bmp, guard), Err(TtlGuardError::Taken { by: Domain::Bgp }));
    }

    #[test]
    fn a_multihop_guard_accepts_its_hops() {
        let mut h = host();
        // Three hops away: 255 - (3 - 1) = 253.
        h.ttl_guard(Domain::Bgp, TtlGuard { peer: PEER, port: 179, min_ttl: 253 }).unwrap();
        assert!(matches!(h.classify(&syn(PEER, 40000, 179, 253)), Local::Stack));
        assert!(dropped(&mut h, &syn(PEER, 40000, 179, 252)));
        // Asked again: the new minimum, the count kept.
        h.ttl_guard(Domain::Bgp, TtlGuard { peer: PEER, port: 179, min_ttl: 255 }).unwrap();
        assert!(dropped(&mut h, &syn(PEER, 40000, 179, 253)));
        assert_eq!(h.ttl_guard_drops(Domain::Bgp, PEER, 179), Some(2));
    }

    #[test]
    fn a_later_fragment_of_a_guarded_peer_is_checked_too() {
        let mut h = host();
        h.ttl_guard(Domain::Bgp, TtlGuard { peer: PEER, port: 179, min_ttl: 255 }).unwrap();
        let mut packet = syn(PEER, 40000, 22, 64);
        let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
        ip.set_frag_offset(8);
        ip.fill_checksum();
        assert!(dropped(&mut h, &packet));
    }

    #[test]
    fn the_guards_go_with_their_owner_and_the_table_is_bounded() {
        let mut h = host();
        for i in 0..MAX_TTL_GUARDS {
            let peer = Ipv4Addr::from_bits(0x0a00_0000 + i as u32);
            h.ttl_guard(Domain::Bgp, TtlGuard { peer, port: 179, min_ttl: 255 }).unwrap();
        }
        let one_more = TtlGuard { peer: PEER, port: 179, min_ttl: 255 };
        assert_eq!(h.ttl_guard(Domain::Bgp, one_more), Err(TtlGuardError::TableFull));
        h.release_all(Domain::Bgp, Instant::from_micros(0));
        assert_eq!(h.ttl_guards().count(), 0);
        h.ttl_guard(Domain::Bgp, one_more).unwrap();
        assert!(matches!(h.classify(&syn(Ipv4Addr::from_bits(0x0a00_0000), 40000, 179, 1)), Local::Stack));
    }

    /// The states of the sockets listening on `port` or connected to it, in a fixed order.
    fn states(h: &mut Host, port: u16) -> Vec<tcp::State> {
        let handles: Vec<SocketHandle> = h.owners.iter().map(|(s, _)| *s).collect();
        let mut states: Vec<tcp::State> = handles
            .into_iter()
            .map(|s| h.sockets.get::<tcp::Socket>(s))
            .filter(|s| {
                s.listen_endpoint().port == port || s.local_endpoint().is_some_and(|l| l.port == port)
            })
            .map(|s| s.state())
            .collect();
        states.sort_by_key(|s| alloc::format!("{s}"));
        states
    }

    #[test]
    fn a_syn_that_finds_the_listener_taken_is_dropped_not_reset() {
        let mut h = host();
        let now = Instant::from_micros(0);
        let buffers = TcpBuffers { rx: 4096, tx: 4096 };
        h.tcp_listen(Domain::Bgp, 179, buffers).unwrap();
        assert_eq!(h.bindings().collect::<Vec<_>>(), [(Binding::TcpListen(179), Domain::Bgp)]);
        // The first SYN takes the listener.
        let first = syn(PEER, 40000, 179, 64);
        assert!(matches!(h.classify(&first), Local::Stack));
        h.ingress(now, &first);
        assert_eq!(states(&mut h, 179), [tcp::State::SynReceived]);
        // A second peer at the same moment: dropped, counted, no RST.
        let second = syn(OTHER, 40001, 179, 64);
        assert!(matches!(h.classify(&second), Local::Drop(LocalDrop::ListenBusy)));
        assert_eq!(h.counters.listen_drops, 1);
        // The first peer's SYN again is its own connection's.
        assert!(matches!(h.classify(&first), Local::Stack));
        // The owner listens again: the second peer's SYN, sent again, is taken.
        h.tcp_listen(Domain::Bgp, 179, buffers).unwrap();
        assert_eq!(h.bindings().count(), 1);
        assert!(matches!(h.classify(&second), Local::Stack));
        h.ingress(now, &second);
        assert_eq!(states(&mut h, 179), [tcp::State::SynReceived, tcp::State::SynReceived]);
        h.egress(now);
        assert_eq!(h.counters.tcp_resets_sent, 0);
        // A port nobody listens on is the stack's: it answers with an RST.
        let stranger = syn(OTHER, 40002, 22, 64);
        assert!(matches!(h.classify(&stranger), Local::Stack));
        h.ingress(now, &stranger);
        h.egress(now);
        assert_eq!(h.counters.tcp_resets_sent, 1);
        // The port is the owner's alone, and taken only by listening.
        assert_eq!(h.tcp_listen(Domain::Bmp, 179, buffers), Err(TcpError::Unaddressable));
        assert_eq!(h.bind(Domain::Bmp, Binding::TcpListen(180)), Err(BindError::Reserved));
        // Shed, the owner's port goes with it: a SYN is reset again.
        h.release_all(Domain::Bgp, now);
        assert_eq!(h.bindings().count(), 0);
        assert!(matches!(h.classify(&syn(OTHER, 40003, 179, 64)), Local::Stack));
    }

    /// An ICMP destination unreachable (`code`, next hop `mtu`) from a router, quoting a
    /// packet from `quoted_src` to PEER of `protocol`, `ip_len` bytes long, of which the IP
    /// header and `l4` are quoted.
    fn unreachable(
        code: u8,
        mtu: u16,
        quoted_src: Ipv4Addr,
        protocol: u8,
        ip_len: u16,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut quoted = vec![0u8; IPV4_HEADER];
        let mut q = Ipv4Packet::new_unchecked(&mut quoted[..]);
        Ipv4Repr {
            src_addr: quoted_src,
            dst_addr: PEER,
            next_header: IpProtocol::from(protocol),
            payload_len: usize::from(ip_len) - IPV4_HEADER,
            hop_limit: 63,
        }
        .emit(&mut q, &ChecksumCapabilities::default());
        quoted.extend_from_slice(l4);
        let mut icmp = vec![3, code, 0, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(&quoted);
        let mut view = Icmpv4Packet::new_unchecked(&mut icmp[..]);
        view.fill_checksum();
        let router = Ipv4Addr::new(192, 0, 2, 254);
        let ip = Ipv4Repr {
            src_addr: router,
            dst_addr: US,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.len(),
            hop_limit: 64,
        };
        let mut bytes = vec![0u8; IPV4_HEADER + icmp.len()];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.emit(&mut packet, &ChecksumCapabilities::default());
        packet.payload_mut().copy_from_slice(&icmp);
        bytes
    }

    #[test]
    fn an_icmp_error_about_a_bound_packet_goes_to_the_binding_owner() {
        let mut h = host();
        h.bind(Domain::Sctp, Binding::IpProtocol(132)).unwrap();
        h.bind(Domain::Sctp, Binding::Udp(9899)).unwrap();
        let sctp = [0x00, 0x07, 0x13, 0x88, 1, 2, 3, 4];
        match h.classify(&unreachable(4, 1280, US, 132, 1500, &sctp)) {
            Local::IcmpError(Domain::Sctp, e) => {
                assert_eq!((e.code, e.next_hop_mtu, e.ip_len), (4, 1280, 1500));
                assert_eq!((e.quoted.src, e.quoted.dst, e.quoted.protocol), (US, PEER, 132));
                assert_eq!((e.quoted.ports, e.quoted.payload), (None, &sctp[..]));
            }
            other => panic!("{other:?}"),
        }
        // Encapsulated: the UDP source port is the binding; the payload starts after UDP.
        let mut udp = vec![0x26, 0xab, 0x26, 0xab, 0x05, 0xc8, 0, 0];
        udp.extend_from_slice(&sctp);
        match h.classify(&unreachable(2, 0, US, 17, 1500, &udp)) {
            Local::IcmpError(Domain::Sctp, e) => {
                assert_eq!(e.quoted.ports, Some((9899, 9899)));
                assert_eq!(e.quoted.payload, &sctp[..]);
                assert_eq!(e.code, 2);
            }
            other => panic!("{other:?}"),
        }
        // Not ours to route: a packet from another address, an unbound UDP port, TCP (the
        // stack's), a broken checksum. All go to smoltcp, as before.
        let mut bad = unreachable(4, 1280, US, 132, 1500, &sctp);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut other_port = udp.clone();
        other_port[1] = 0xac;
        for packet in [
            unreachable(4, 1280, OTHER, 132, 1500, &sctp),
            unreachable(4, 1280, US, 17, 1500, &other_port),
            unreachable(4, 1280, US, 6, 1500, &sctp),
            bad,
        ] {
            assert!(matches!(h.classify(&packet), Local::Stack));
        }
        // Every cut of the quoted packet classifies without a panic.
        let full = unreachable(4, 1280, US, 17, 1500, &udp);
        for len in IPV4_HEADER..full.len() {
            let mut cut = full[..len].to_vec();
            let mut ip = Ipv4Packet::new_unchecked(&mut cut[..]);
            ip.set_total_len(len as u16);
            ip.fill_checksum();
            let _ = h.classify(&cut);
        }
    }

    /// The packets in the local-out queue, taken out.
    fn sent(h: &mut Host) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = h.next_out() {
            out.push(p.to_vec());
            h.pop_out();
        }
        out
    }

    #[test]
    fn a_datagram_sent_for_fragmentation_leaves_in_fragments() {
        let mut h = host();
        let payload: Vec<u8> = (0..1400u32).map(|i| i as u8).collect();
        let datagram = |fragment_to| OutDatagram {
            src: US,
            dst: PEER,
            protocol: 17,
            ports: Some((9899, 9899)),
            payload: &payload,
            fragment_to,
        };
        // Not asked: one packet with DF (path MTU discovery).
        h.send_datagram(datagram(None)).unwrap();
        let one = sent(&mut h);
        assert_eq!(one.len(), 1);
        assert!(Ipv4Packet::new_checked(&one[0][..]).unwrap().dont_frag());
        // Asked to fit 576: 1408 bytes of UDP in 552-byte pieces (a multiple of 8).
        h.send_datagram(datagram(Some(576))).unwrap();
        let pieces = sent(&mut h);
        assert_eq!(pieces.len(), 3);
        let mut whole = Vec::new();
        let ident = Ipv4Packet::new_checked(&pieces[0][..]).unwrap().ident();
        for (k, p) in pieces.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert!(p.len() <= 576 && ip.verify_checksum() && !ip.dont_frag());
            assert_eq!((ip.ident(), ip.frag_offset() as usize), (ident, k * 552));
            assert_eq!(ip.more_frags(), k < 2);
            whole.extend_from_slice(ip.payload());
        }
        assert_eq!(whole.len(), 1408);
        let udp = UdpPacket::new_checked(&whole[..]).unwrap();
        assert!(udp.verify_checksum(&IpAddress::Ipv4(US), &IpAddress::Ipv4(PEER)));
        assert_eq!(&whole[8..], &payload[..]);
        assert_eq!((h.counters.datagrams_fragmented, h.counters.fragments_sent), (1, 3));
        // The next fragmented datagram has an identification of its own.
        h.send_datagram(datagram(Some(576))).unwrap();
        assert_ne!(Ipv4Packet::new_checked(&sent(&mut h)[0][..]).unwrap().ident(), ident);
        // Fits: one packet, DF clear.
        h.send_datagram(datagram(Some(1500))).unwrap();
        let fits = sent(&mut h);
        assert_eq!(fits.len(), 1);
        assert!(!Ipv4Packet::new_checked(&fits[0][..]).unwrap().dont_frag());
        // All or nothing: two free slots do not take three fragments.
        let small = OutDatagram { payload: &payload[..10], ..datagram(None) };
        for _ in 0..OUT_SLOTS - 2 {
            h.send_datagram(small).unwrap();
        }
        assert_eq!(h.send_datagram(datagram(Some(576))), Err(SendError::QueueFull));
        assert_eq!(h.out_len(), OUT_SLOTS - 2);
    }

    #[test]
    fn tcp_announces_the_mss_of_the_stacks_mtu() {
        let mut h = Host::new(&[Ipv4Cidr { addr: US, prefix_len: 24 }], 1400, 7, Instant::from_micros(0));
        h.tcp_listen(Domain::Bgp, 179, TcpBuffers { rx: 4096, tx: 4096 }).unwrap();
        h.ingress(Instant::from_micros(0), &syn(PEER, 40000, 179, 64));
        h.egress(Instant::from_micros(0));
        let out = sent(&mut h);
        let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let caps = ChecksumCapabilities::ignored();
        let repr = TcpRepr::parse(&tcp, &IpAddress::Ipv4(US), &IpAddress::Ipv4(PEER), &caps).unwrap();
        assert_eq!((repr.control, repr.max_seg_size), (TcpControl::Syn, Some(1360)));
    }

    #[test]
    fn every_prefix_of_a_guarded_segment_classifies_without_panic() {
        let mut h = host();
        h.ttl_guard(Domain::Bgp, TtlGuard { peer: PEER, port: 179, min_ttl: 255 }).unwrap();
        let packet = syn(PEER, 40000, 179, 3);
        for len in 0..=packet.len() {
            let _ = h.classify(&packet[..len]);
        }
    }
}
