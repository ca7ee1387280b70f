//! What a subsystem is handed on every call: its world, as netstack3 hands its core a context.
//!
//! A subsystem never reaches the NICs, the smoltcp stack, the FIB, the clock or the allocator
//! by itself. The supervisor builds a [`Context`] for it, inside its memory domain, with
//!
//! - `now`, the loop turn's time, and `rng`, the platform's CSPRNG;
//! - its domain's admission and room ([`Context::admit`], [`Context::room`]): data paths ask
//!   before they queue work, and SCTP derives its receive window from the room;
//! - its I/O through [`Io`], always on its own behalf: the context fills in the owner, so a
//!   subsystem can only bind, send on, read or close what is its own.
//!
//! Inbound traffic arrives through [`crate::supervisor::Subsystem::receive`] as an [`Inbound`].

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_base::rand_core::RngCore;
use bulkhead_net::fib::Prefix;
use bulkhead_net::router::RouteSource;
use smoltcp::socket::tcp;

use crate::addr::Ipv4Cidr;
use crate::domain::{Domain, OverQuota};
use crate::link::TxError;
use crate::time::Instant;

/// A domain's room, in true bytes, below its soft threshold and its hard quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Room {
    pub soft: usize,
    pub hard: usize,
}

/// The memory side of a domain, as a subsystem sees it (object-safe).
pub trait Admission {
    /// Room for `bytes` more in domain `d`, or a typed refusal.
    fn admit(&self, d: Domain, bytes: usize) -> Result<(), OverQuota>;
    fn room(&self, d: Domain) -> Room;
}

/// What a subsystem may own in the local stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A raw IP protocol (SCTP is 132): every local packet of it.
    IpProtocol(u8),
    /// A UDP port on every local address (SCTP's UDP encapsulation, 9899; UDP echo, 7).
    Udp(u16),
    /// A TCP port listened on, every local address; taken by the first `tcp_listen` on it
    /// (never by `bind`) and held until the owner is shed. A SYN to it that finds no listening
    /// socket free (the owner has not yet replaced the one a connection took) is dropped, not
    /// reset, so that the peer sends it again instead of giving up.
    TcpListen(u16),
}

/// Why a binding was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindError {
    /// Another subsystem owns it.
    Taken { by: Domain },
    /// The binding table is full.
    TableFull,
    /// TCP, UDP and ICMP are the platform's; a protocol binding may not take them, and a TCP
    /// port is taken by listening on it, not by a binding.
    Reserved,
}

/// Why a packet could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The local-out queue is full this turn: try again on the next one.
    QueueFull,
    /// Larger than the largest packet the appliance sends.
    TooBig,
    /// The source is not one of the appliance's addresses.
    NotLocal,
    /// The forwarder's NIC ring was full (frames only).
    Link(TxError),
}

/// Why a TCP operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpError {
    /// The socket table is full (a fixed number of sockets, see `host`).
    TooManySockets,
    /// The socket does not exist or belongs to another subsystem.
    NoSuchSocket,
    /// The port is in use, zero, or the address not ours.
    Unaddressable,
    /// The `net` domain or the owner's domain refused the buffers.
    OverQuota,
}

/// GTSM (RFC 5082) for one peer: every TCP segment from `peer` with `port` as its source or
/// destination port must arrive with a TTL of at least `min_ttl`, else it is dropped before the
/// stack sees it (and counted). Held on behalf of its owner until the owner is shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlGuard {
    pub peer: Ipv4Addr,
    pub port: u16,
    /// 255 - (hops - 1): 255 for a directly connected peer.
    pub min_ttl: u8,
}

/// Why a [`TtlGuard`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlGuardError {
    /// Another subsystem guards this peer and port.
    Taken { by: Domain },
    /// The guard table is full (a fixed number of guards, see `host`).
    TableFull,
    /// This platform cannot see received TTLs.
    Unsupported,
}

/// A route change a route source hands the FIB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteChange {
    Add { prefix: Prefix, via: Ipv4Addr },
    Remove { prefix: Prefix },
}

/// Why a route change was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteQueueError {
    /// The queue to the forwarder is full this turn: try again on the next one.
    Full,
    /// The subsystem's domain is not a route source.
    NotASource,
}

/// A datagram a subsystem sends: raw IP (`ports: None`) or UDP.
#[derive(Clone, Copy, Debug)]
pub struct OutDatagram<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// UDP source and destination ports; `None` for a raw IP protocol.
    pub ports: Option<(u16, u16)>,
    pub payload: &'a [u8],
    /// `None`: one packet, DF set (path MTU discovery). `Some(mtu)`: DF clear, and sent in
    /// IPv4 fragments of at most `mtu` bytes when larger (a path MTU fell under a packet the
    /// subsystem can no longer cut smaller).
    pub fragment_to: Option<u16>,
}

/// An ICMP destination unreachable (type 3) that quotes a packet a subsystem sent, for the
/// owner of the quoted packet's protocol or UDP source port.
#[derive(Clone, Copy, Debug)]
pub struct IcmpError<'a> {
    /// Who sent the ICMP (a router on the way, or the destination).
    pub from: Ipv4Addr,
    /// The code (RFC 792): 2 protocol unreachable, 3 port unreachable, 4 fragmentation
    /// needed and DF set, ...
    pub code: u8,
    /// For code 4: the next hop's MTU (RFC 1191), 0 when the router did not say.
    pub next_hop_mtu: u16,
    /// The quoted IP header's Total Length: the size of the packet we sent.
    pub ip_len: u16,
    /// The quoted packet: our source, its destination, the protocol, the UDP ports, and as
    /// much of the payload (after the IP or UDP header) as the ICMP carried.
    pub quoted: Datagram<'a>,
}

/// A datagram for a binding: the payload of a raw IP protocol, or of a UDP datagram.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// UDP source and destination ports; `None` for a raw IP protocol.
    pub ports: Option<(u16, u16)>,
    pub payload: &'a [u8],
}

/// Traffic the platform hands a subsystem.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// A transit Ethernet frame received on `iface` (the forwarder).
    Transit { iface: u8, frame: &'a mut [u8] },
    /// An ARP frame received on `iface` (the forwarder answers and learns).
    Arp { iface: u8, frame: &'a [u8] },
    /// An IPv4 packet the appliance itself sends, to be routed (the forwarder).
    LocalOut { packet: &'a [u8] },
    /// A route source's change (the forwarder).
    Route { source: RouteSource, change: RouteChange },
    /// Every route of `source` goes: its subsystem was shed (the forwarder).
    WithdrawSource(RouteSource),
    /// A datagram for one of the subsystem's bindings.
    Datagram(Datagram<'a>),
    /// An ICMP error about a datagram the subsystem sent through one of its bindings.
    IcmpError(IcmpError<'a>),
}

/// What happened to an [`Inbound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Taken,
    /// The subsystem does not take this kind of traffic (counted by the platform).
    Refused,
}

/// The sizes of a TCP socket's buffers, allocated in the owner's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpBuffers {
    pub rx: usize,
    pub tx: usize,
}

/// A TCP socket of one subsystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketId(pub(crate) smoltcp::iface::SocketHandle);

/// The platform's I/O, always on behalf of `owner` (filled in by [`Context`]).
pub trait Io {
    /// The appliance's configured interface addresses.
    fn addresses(&self) -> &[Ipv4Cidr];
    /// Sends a frame on NIC `iface` (the forwarder).
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError>;
    fn bind(&mut self, owner: Domain, binding: Binding) -> Result<(), BindError>;
    /// Queues a raw IP or UDP datagram for the forwarder to route.
    fn send_datagram(&mut self, owner: Domain, datagram: OutDatagram<'_>) -> Result<(), SendError>;
    /// A socket listening on `port` (every local address).
    fn tcp_listen(&mut self, owner: Domain, port: u16, buffers: TcpBuffers) -> Result<SocketId, TcpError>;
    /// A socket connecting to `remote`, from `local` (or the address smoltcp picks).
    fn tcp_connect(
        &mut self,
        owner: Domain,
        local: Option<Ipv4Addr>,
        remote: (Ipv4Addr, u16),
        buffers: TcpBuffers,
    ) -> Result<SocketId, TcpError>;
    fn tcp(&mut self, owner: Domain, id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError>;
    /// Gives the socket up: aborted (the peer gets an RST) unless already closed, then freed.
    fn tcp_release(&mut self, owner: Domain, id: SocketId) -> Result<(), TcpError>;
    /// Guards a TCP peer by its TTL (GTSM, RFC 5082) until `owner` is shed; asking again
    /// changes the minimum and keeps the count. A platform that cannot see TTLs refuses.
    fn ttl_guard(&mut self, owner: Domain, guard: TtlGuard) -> Result<(), TtlGuardError> {
        let _ = (owner, guard);
        Err(TtlGuardError::Unsupported)
    }
    /// Segments dropped so far by `owner`'s guard of `peer` and `port` (`None`: no such guard).
    fn ttl_guard_drops(&self, owner: Domain, peer: Ipv4Addr, port: u16) -> Option<u64> {
        let _ = (owner, peer, port);
        None
    }
    /// Hands a route change to the forwarder (in order, through a bounded queue).
    fn route(&mut self, owner: Domain, change: RouteChange) -> Result<(), RouteQueueError>;
    /// True once after the forwarder restarted: the source must announce its routes again.
    fn take_route_resync(&mut self, owner: Domain) -> bool;
    /// The supervisor's: the subsystem of `d` is up (after a start or a restart).
    fn subsystem_up(&mut self, d: Domain);
    /// The supervisor's: the subsystem of `d` was taken down; release everything it held.
    fn subsystem_down(&mut self, d: Domain, now: Instant);
    /// Unix time in microseconds at `Instant::ZERO`, when the platform knows the date (the
    /// image reads the RTC at boot); `None` (host simulations, unless they set one).
    fn wall_epoch(&self) -> Option<u64> {
        None
    }
}

/// The other subsystems, as one subsystem may reach them: read one that offers itself
/// (BMP reading BGP's tables in bounded slices), or hand one a message that it copies into its
/// own domain (BGP's events to BMP's bounded channel). Neither waits, and neither can make the
/// caller pay for the other's memory or the other pay for the caller's.
pub trait Peers {
    /// The subsystem of `d` while it is up and offers itself (`Subsystem::peek`), read-only.
    fn peek(&self, d: Domain) -> Option<&dyn core::any::Any>;
    /// Hands `message` to the subsystem of `d`, inside `d`'s domain (`Subsystem::accept`);
    /// false when it is not up or did not take it (its queue is full: it decides).
    fn tell(&mut self, d: Domain, message: &dyn core::any::Any) -> bool;
}

/// One call's world, for the subsystem of `domain`.
pub struct Context<'a> {
    pub now: Instant,
    pub rng: &'a mut dyn RngCore,
    domain: Domain,
    memory: &'a dyn Admission,
    io: &'a mut dyn Io,
    peers: Option<&'a mut dyn Peers>,
}

impl<'a> Context<'a> {
    pub fn new(
        now: Instant,
        domain: Domain,
        rng: &'a mut dyn RngCore,
        memory: &'a dyn Admission,
        io: &'a mut dyn Io,
    ) -> Context<'a> {
        Context { now, rng, domain, memory, io, peers: None }
    }

    /// A context that can also reach the other subsystems.
    pub fn with_peers(mut self, peers: &'a mut dyn Peers) -> Context<'a> {
        self.peers = Some(peers);
        self
    }

    /// Reads the subsystem of `d` (see [`Peers::peek`]); `None` outside a poll or a delivery.
    pub fn peek(&self, d: Domain) -> Option<&dyn core::any::Any> {
        self.peers.as_ref().and_then(|p| p.peek(d))
    }

    /// Hands `message` to the subsystem of `d` (see [`Peers::tell`]).
    pub fn tell(&mut self, d: Domain, message: &dyn core::any::Any) -> bool {
        self.peers.as_mut().is_some_and(|p| p.tell(d, message))
    }

    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// Room for `bytes` more in this subsystem's domain, or a typed refusal.
    pub fn admit(&self, bytes: usize) -> Result<(), OverQuota> {
        self.memory.admit(self.domain, bytes)
    }

    /// True bytes left below the soft threshold and the hard quota.
    pub fn room(&self) -> Room {
        self.memory.room(self.domain)
    }

    pub fn addresses(&self) -> &[Ipv4Cidr] {
        self.io.addresses()
    }

    pub fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
        self.io.transmit(iface, frame)
    }

    pub fn bind(&mut self, binding: Binding) -> Result<(), BindError> {
        self.io.bind(self.domain, binding)
    }

    pub fn send_datagram(&mut self, datagram: OutDatagram<'_>) -> Result<(), SendError> {
        self.io.send_datagram(self.domain, datagram)
    }

    pub fn tcp_listen(&mut self, port: u16, buffers: TcpBuffers) -> Result<SocketId, TcpError> {
        self.io.tcp_listen(self.domain, port, buffers)
    }

    pub fn tcp_connect(
        &mut self,
        local: Option<Ipv4Addr>,
        remote: (Ipv4Addr, u16),
        buffers: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        self.io.tcp_connect(self.domain, local, remote, buffers)
    }

    pub fn tcp(&mut self, id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
        self.io.tcp(self.domain, id)
    }

    pub fn tcp_release(&mut self, id: SocketId) -> Result<(), TcpError> {
        self.io.tcp_release(self.domain, id)
    }

    /// Releases the sockets of `closing` (each with the time it may linger until) that have
    /// closed, or whose time is up; when none is left, the list's block goes too, so a
    /// subsystem at rest holds what it held before.
    pub fn reap_closing(&mut self, closing: &mut Vec<(SocketId, Instant)>) {
        let now = self.now;
        closing.retain(|&(socket, until)| {
            let done = now >= until
                || self
                    .tcp(socket)
                    .map(|s| matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait))
                    .unwrap_or(true);
            if done {
                let _ = self.tcp_release(socket);
            }
            !done
        });
        if closing.is_empty() {
            *closing = Vec::new();
        }
    }

    /// Asks for GTSM (RFC 5082) on the TCP segments of `guard.peer` (see [`Io::ttl_guard`]).
    pub fn ttl_guard(&mut self, guard: TtlGuard) -> Result<(), TtlGuardError> {
        self.io.ttl_guard(self.domain, guard)
    }

    /// Segments this subsystem's guard of `peer` and `port` dropped.
    pub fn ttl_guard_drops(&self, peer: Ipv4Addr, port: u16) -> Option<u64> {
        self.io.ttl_guard_drops(self.domain, peer, port)
    }

    pub fn route(&mut self, change: RouteChange) -> Result<(), RouteQueueError> {
        self.io.route(self.domain, change)
    }

    pub fn take_route_resync(&mut self) -> bool {
        self.io.take_route_resync(self.domain)
    }

    /// The wall clock now: seconds and microseconds since the Unix epoch (the platform's date
    /// at boot plus the monotonic clock since), `None` where the platform has no date.
    pub fn wall_clock(&self) -> Option<(u64, u32)> {
        let t = self.io.wall_epoch()?.saturating_add(self.now.total_micros());
        Some((t / 1_000_000, (t % 1_000_000) as u32))
    }
}
