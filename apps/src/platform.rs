//! The platform: everything the run loop does except touching hardware, so that it runs on the
//! host with fake NICs (see `tests/sim.rs`).
//!
//! One loop turn ([`Platform::turn`]):
//!
//! ```text
//!  receive  a bounded batch of frames from each NIC (taken out of the ring, no copy)
//!  classify dispatch: ARP / transit -> the forwarder; local IPv4 -> the host stack, which
//!           hands bound protocols and UDP ports to their owners and the rest to smoltcp
//!  deliver  inside the owner's domain, through the supervisor
//!  poll     every subsystem, inside its domain, with its budget; quota checks; sheds
//!  routes   route changes from the sources, in order, to the forwarder
//!  transmit smoltcp's segments and the subsystems' datagrams, routed by the forwarder
//! ```
//!
//! The image then sleeps until [`Platform::next_deadline`] or an interrupt.
//!
//! Who pays: the platform's own tables (the ports, the host stack, its socket table and
//! local-out queue, the route queue) are reserved in `net` when it is built and never grow; a
//! subsystem's sockets and queues are charged to the subsystem; the supervisor's records are
//! reserved in the domain that builds the platform (`kernel`).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use bulkhead_base::rand_core::RngCore;
use bulkhead_net::dispatch::{self, Class, DispatchDrop, Ingress};
use bulkhead_net::router::{DropReason, RouteSource, MAX_IP_PACKET};
use smoltcp::socket::tcp;
use smoltcp::wire::EthernetAddress;

use crate::addr::Ipv4Cidr;
use crate::console::{
    self as commands, Command, CommandError, DomainMemory, ForwardingCounters, HeapStatus, InterfaceCounters,
    InterfaceStatus, MemoryStatus,
};
use crate::context::{
    BindError, Binding, Delivery, Inbound, Io, OutDatagram, RouteChange, RouteQueueError, SendError,
    SocketId, TcpBuffers, TcpError,
};
use crate::diag;
use crate::domain::Domain;
use crate::host::{Host, Local};
use crate::link::{Link, TxError};
use crate::supervisor::{DeliverError, MemoryBooks, Subsystem, Supervisor, World};
use crate::time::{Duration, Instant};

/// Frames taken from one NIC per loop turn, so that one busy NIC cannot starve the others.
pub const RX_BATCH: usize = 64;
/// Local-out packets handed to the forwarder per turn (the rest wait in the queue).
pub const LOCAL_OUT_BATCH: usize = 128;
/// Route changes waiting for the forwarder; at the bound a source is told `Full` and retries.
pub const ROUTE_QUEUE: usize = 4096;
/// Route changes handed to the forwarder per turn.
pub const ROUTE_BATCH: usize = 1024;
/// The longest the loop sleeps with nothing scheduled.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// One NIC with its configuration and dispatch counters.
pub struct Port {
    pub name: &'static str,
    pub link: Box<dyn Link>,
    pub address: Option<Ipv4Cidr>,
    pub mtu: u16,
    dispatch_drops: [u64; DispatchDrop::ALL.len()],
}

impl Port {
    pub fn new(name: &'static str, link: Box<dyn Link>, address: Option<Ipv4Cidr>, mtu: u16) -> Port {
        Port { name, link, address, mtu, dispatch_drops: [0; DispatchDrop::ALL.len()] }
    }

    fn count(&mut self, reason: DispatchDrop) {
        if let Some(i) = DispatchDrop::ALL.iter().position(|r| *r == reason) {
            if let Some(n) = self.dispatch_drops.get_mut(i) {
                *n += 1;
            }
        }
    }
}

/// Route changes on their way to the forwarder, reserved in `net` at start.
struct RouteBoard {
    queue: VecDeque<(RouteSource, RouteChange)>,
    /// Per source: its subsystem was shed, withdraw all its routes.
    withdraw: [bool; RouteSource::COUNT],
    /// Per source: the forwarder restarted, announce everything again.
    resync: [bool; RouteSource::COUNT],
}

/// The route source a domain's subsystem speaks for.
fn route_source(d: Domain) -> Option<RouteSource> {
    match d {
        Domain::Bgp => Some(RouteSource::Bgp),
        _ => None,
    }
}

/// What a console line asks of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Shutdown,
    Panic,
}

/// The loop's timing: the longest turn, since boot and since `clear status`, and the subsystem
/// whose poll was the slowest part of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    pub turns: u64,
    pub longest: Longest,
    pub since_clear: Longest,
}

/// A longest turn and who took most of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Longest {
    pub took: Duration,
    /// The slowest subsystem poll in that turn, and how long it took.
    pub poll: Option<(&'static str, Duration)>,
}

/// A running `debug blast`.
#[derive(Clone, Copy, Debug)]
struct Blast {
    port: usize,
    until: Instant,
    len: usize,
}

pub struct Platform<B: MemoryBooks> {
    ports: Vec<Port>,
    host: Host,
    routes: RouteBoard,
    supervisor: Supervisor<B>,
    rng: Box<dyn RngCore>,
    diagnostics: bool,
    blast: Option<Blast>,
    turns: TurnStats,
    /// Local packets that found no forwarder to route them.
    no_forwarder: u64,
    /// Packets delivered to subsystems that were not up.
    owner_down: u64,
    /// smoltcp took a packet this turn: the sockets' owners are polled.
    socket_activity: bool,
    /// Unix time in microseconds at `Instant::ZERO`, if known ([`Platform::set_wall_clock`]).
    wall_epoch: Option<u64>,
}

/// The I/O subsystems see, over the platform's parts.
struct PlatformIo<'a> {
    host: &'a mut Host,
    ports: &'a mut [Port],
    routes: &'a mut RouteBoard,
    wall_epoch: Option<u64>,
}

impl<B: MemoryBooks> Platform<B> {
    /// Builds the platform; its tables are reserved in `net`. Subsystems are added with
    /// [`Platform::add`] and started by [`Platform::start`].
    pub fn new(
        books: B,
        ports: Vec<Port>,
        mut rng: Box<dyn RngCore>,
        diagnostics: bool,
        now: Instant,
    ) -> Platform<B> {
        let addresses: Vec<Ipv4Cidr> = ports.iter().filter_map(|p| p.address).collect();
        // The stack's packets leave by whichever port the FIB picks: the smallest MTU of the
        // addressed ports bounds them (TCP's MSS follows it).
        let mtu = ports.iter().filter(|p| p.address.is_some()).map(|p| p.mtu).min();
        let seed = rng.next_u64();
        let (host, routes) = books.with_domain(Domain::Net, || {
            (
                Host::new(&addresses, mtu.map_or(MAX_IP_PACKET, usize::from), seed, now),
                RouteBoard {
                    queue: VecDeque::with_capacity(ROUTE_QUEUE),
                    withdraw: [false; RouteSource::COUNT],
                    resync: [false; RouteSource::COUNT],
                },
            )
        });
        Platform {
            ports,
            host,
            routes,
            supervisor: Supervisor::new(books),
            rng,
            diagnostics,
            blast: None,
            turns: TurnStats::default(),
            no_forwarder: 0,
            owner_down: 0,
            socket_activity: false,
            wall_epoch: None,
        }
    }

    /// Gives the platform the date: Unix time in microseconds at `Instant::ZERO` (the image
    /// reads the RTC at boot). Subsystems read it as `Context::wall_clock`.
    pub fn set_wall_clock(&mut self, epoch_micros: Option<u64>) {
        self.wall_epoch = epoch_micros;
    }

    pub fn supervisor_mut(&mut self) -> &mut Supervisor<B> {
        &mut self.supervisor
    }

    pub fn supervisor(&self) -> &Supervisor<B> {
        &self.supervisor
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    pub fn add(
        &mut self,
        sub: Box<dyn Subsystem>,
        policy: crate::supervisor::RestartPolicy,
    ) -> Result<(), crate::supervisor::AddError> {
        self.supervisor.add(sub, policy)
    }

    pub fn start(&mut self, now: Instant) {
        let (supervisor, mut io, rng) = self.split();
        supervisor.start(now, &mut World { io: &mut io, rng, clock: &|| now });
    }

    /// One loop turn, timed with `clock` (microseconds since boot).
    pub fn turn(&mut self, now: Instant, clock: &dyn Fn() -> Instant) {
        for index in 0..self.ports.len() {
            for _ in 0..RX_BATCH {
                let Some(port) = self.ports.get_mut(index) else { break };
                let Some(mut frame) = port.link.receive() else { break };
                self.dispatch(index, frame.bytes_mut(), now, clock);
                if let Some(port) = self.ports.get_mut(index) {
                    port.link.recycle(frame);
                }
            }
        }
        // A route source asked to announce again (the forwarder restarted) has work.
        if self.routes.resync.get(RouteSource::Bgp.index()).is_some_and(|r| *r) {
            self.supervisor.wake(Domain::Bgp);
        }
        // Sockets that saw segments, or whose timers ran, may have news for their owners.
        if core::mem::take(&mut self.socket_activity) || self.host.poll_at(now).is_some_and(|t| t <= now) {
            for d in Domain::ALL {
                if self.host.sockets_of(d) > 0 {
                    self.supervisor.wake(d);
                }
            }
        }
        let slowest = {
            let (supervisor, mut io, rng) = self.split();
            supervisor.poll(now, &mut World { io: &mut io, rng, clock })
        };
        self.drain_routes(now, clock);
        let host = &mut self.host;
        self.supervisor.books().with_domain(Domain::Net, || host.egress(now));
        self.drain_local_out(now, clock);
        self.poll_blast(clock());
        let turn = Longest { took: clock().saturating_since(now), poll: slowest.map(|s| (s.name, s.took)) };
        self.turns.turns += 1;
        if turn.took > self.turns.longest.took {
            self.turns.longest = turn;
        }
        if turn.took > self.turns.since_clear.took {
            self.turns.since_clear = turn;
        }
    }

    /// When the loop must come back.
    pub fn next_deadline(&mut self, now: Instant) -> Instant {
        if self.blast.is_some() || self.host.out_len() > 0 || !self.routes.queue.is_empty() {
            return now;
        }
        let mut wake = now + MAX_SLEEP;
        if let Some(at) = self.supervisor.next_deadline(now) {
            wake = wake.min(at);
        }
        if let Some(at) = self.host.poll_at(now) {
            wake = wake.min(at);
        }
        wake
    }

    /// Whether a NIC has a frame waiting (checked with interrupts off, before sleeping).
    pub fn rx_pending(&self) -> bool {
        self.ports.iter().any(|p| p.link.rx_pending())
    }

    pub fn turn_stats(&self) -> TurnStats {
        self.turns
    }

    // ---- the data path ----------------------------------------------------------------------

    fn split(&mut self) -> (&mut Supervisor<B>, PlatformIo<'_>, &mut dyn RngCore) {
        (
            &mut self.supervisor,
            PlatformIo {
                host: &mut self.host,
                ports: &mut self.ports,
                routes: &mut self.routes,
                wall_epoch: self.wall_epoch,
            },
            &mut *self.rng,
        )
    }

    fn deliver(
        &mut self,
        d: Domain,
        inbound: Inbound<'_>,
        now: Instant,
        clock: &dyn Fn() -> Instant,
    ) -> Result<Delivery, DeliverError> {
        let (supervisor, mut io, rng) = self.split();
        supervisor.deliver(d, inbound, now, &mut World { io: &mut io, rng, clock })
    }

    fn dispatch(&mut self, index: usize, frame: &mut [u8], now: Instant, clock: &dyn Fn() -> Instant) {
        let Some(port) = self.ports.get(index) else { return };
        let ingress = Ingress {
            mac: EthernetAddress(port.link.mac()),
            address: port.address.map(|a| (a.addr, a.prefix_len)),
        };
        let host = &self.host;
        let class = dispatch::classify(frame, &ingress, |a| host.is_local(a));
        let iface = index as u8;
        match class {
            Class::Drop(reason) => self.count(index, reason),
            Class::Arp => {
                if self.deliver(Domain::Forwarder, Inbound::Arp { iface, frame }, now, clock).is_err() {
                    self.count(index, DispatchDrop::NotForwarding);
                }
            }
            Class::Transit => {
                if self.deliver(Domain::Forwarder, Inbound::Transit { iface, frame }, now, clock).is_err() {
                    self.count(index, DispatchDrop::NotForwarding);
                }
            }
            Class::Local => {
                let Some(packet) = frame.get(ETHERNET_HEADER..) else { return };
                match self.host.classify(packet) {
                    Local::Bound(owner, datagram) => {
                        match self.deliver(owner, Inbound::Datagram(datagram), now, clock) {
                            Ok(Delivery::Taken) => self.host.counters.delivered_bound += 1,
                            _ => self.owner_down += 1,
                        }
                    }
                    Local::IcmpError(owner, error) => {
                        match self.deliver(owner, Inbound::IcmpError(error), now, clock) {
                            Ok(Delivery::Taken) => self.host.counters.icmp_errors_delivered += 1,
                            // An owner with no use for ICMP errors (the UDP echo).
                            Ok(Delivery::Refused) => self.host.counters.icmp_errors_unwanted += 1,
                            Err(_) => self.owner_down += 1,
                        }
                    }
                    Local::Stack => {
                        self.socket_activity = true;
                        let host = &mut self.host;
                        self.supervisor.books().with_domain(Domain::Net, || host.ingress(now, packet));
                    }
                    Local::Drop(_) => {}
                }
            }
        }
    }

    fn count(&mut self, index: usize, reason: DispatchDrop) {
        if let Some(port) = self.ports.get_mut(index) {
            port.count(reason);
        }
    }

    /// Withdrawals of shed sources, then queued changes, to the forwarder while it is up.
    fn drain_routes(&mut self, now: Instant, clock: &dyn Fn() -> Instant) {
        if !self.supervisor.is_up(Domain::Forwarder) {
            return;
        }
        for source in RouteSource::ALL {
            if core::mem::take(&mut self.routes.withdraw[source.index()]) {
                let _ = self.deliver(Domain::Forwarder, Inbound::WithdrawSource(source), now, clock);
            }
        }
        for _ in 0..ROUTE_BATCH {
            let Some((source, change)) = self.routes.queue.pop_front() else { break };
            let _ = self.deliver(Domain::Forwarder, Inbound::Route { source, change }, now, clock);
        }
    }

    /// Packets the appliance sends, to the forwarder to be routed (a bounded batch a turn).
    fn drain_local_out(&mut self, now: Instant, clock: &dyn Fn() -> Instant) {
        let mut packet = [0u8; MAX_IP_PACKET];
        for _ in 0..LOCAL_OUT_BATCH {
            let Some(next) = self.host.next_out() else { return };
            let len = next.len().min(MAX_IP_PACKET);
            if let (Some(dst), Some(src)) = (packet.get_mut(..len), next.get(..len)) {
                dst.copy_from_slice(src);
            }
            self.host.pop_out();
            let body = packet.get(..len).unwrap_or(&[]);
            if self.deliver(Domain::Forwarder, Inbound::LocalOut { packet: body }, now, clock).is_err() {
                self.no_forwarder += 1;
            }
        }
    }

    fn poll_blast(&mut self, now: Instant) {
        let Some(blast) = self.blast else { return };
        if now >= blast.until {
            self.blast = None;
            return;
        }
        let Some(port) = self.ports.get_mut(blast.port) else { return };
        let mac = port.link.mac();
        let mut frame = [0u8; 1514];
        let len = blast.len.clamp(60, frame.len());
        frame[0..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&mac);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        for _ in 0..256 {
            if port.link.transmit(&frame[..len]).is_err() {
                break;
            }
        }
    }

    // ---- the console ------------------------------------------------------------------------

    /// Runs one console line; what it prints goes to `out`.
    pub fn execute(&mut self, line: &str, now: Instant, out: &mut dyn Write) -> Action {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        // A subsystem's own commands (and `show route …`, which a protocol answers for its own
        // routes before the forwarder does) are offered to the subsystems first; the platform's
        // parser then answers, or says what was wrong with the line.
        let parsed = Command::parse(line);
        let offered = match &parsed {
            Ok(Command::ShowRoute { .. } | Command::ShowFlows { .. }) => true,
            Err(CommandError::Unknown { .. }) => true,
            Err(
                CommandError::BadArgument { command, .. } | CommandError::UnexpectedArgument { command, .. },
            ) => *command == "show route",
            _ => false,
        };
        if offered {
            let (supervisor, mut io, rng) = self.split();
            if let Some(result) =
                supervisor.command(&words, out, now, &mut World { io: &mut io, rng, clock: &|| now })
            {
                report(out, result);
                return Action::None;
            }
        }
        let command = match parsed {
            Ok(Command::ShowRoute { .. } | Command::ShowFlows { .. }) => {
                let _ = writeln!(out, "the forwarder is not running");
                return Action::None;
            }
            Ok(command) => command,
            Err(CommandError::Empty) => return Action::None,
            Err(e) => {
                let _ = writeln!(out, "{}", e);
                return Action::None;
            }
        };
        let mut w = &mut *out;
        let result = match command {
            Command::Help => {
                let r = w.write_str(commands::HELP);
                r.and_then(|()| self.supervisor.help(w))
            }
            Command::ShowInterfaces { json } => commands::show_interfaces(&mut w, &self.interfaces(), json),
            Command::ShowMemory { json } => commands::show_memory(&mut w, &self.memory(), json),
            Command::ShowStatus { json: false } => self.status(w),
            Command::ShowStatus { json: true } => {
                commands::status_json(&mut w, self.supervisor.reports(), &self.turns)
            }
            Command::ShowLocal { json } => self.show_local(w, json),
            Command::ClearStatus => {
                self.turns.since_clear = Longest::default();
                writeln!(w, "ok")
            }
            Command::Release { domain } => {
                if !self.supervisor.release(domain, now) {
                    let _ = writeln!(w, "release: the subsystem of {} is not held down", domain.name());
                }
                Ok(())
            }
            Command::Shutdown => {
                let _ = writeln!(w, "bulkhead: shutting down");
                return Action::Shutdown;
            }
            Command::DebugPanic if self.diagnostics => return Action::Panic,
            Command::DebugHog { domain, bytes } if self.diagnostics => {
                let r = self.supervisor.spawn(domain, || Box::new(diag::Hog::new(bytes)));
                debug_answer(w, domain, r.map_err(|e| alloc::format!("{}", e)))
            }
            Command::DebugLeak { domain, bytes } if self.diagnostics => {
                let r = self.supervisor.spawn(domain, || Box::new(diag::Leak::new(bytes)));
                debug_answer(w, domain, r.map_err(|e| alloc::format!("{}", e)))
            }
            Command::DebugShed { domain } if self.diagnostics => {
                let (supervisor, mut io, rng) = self.split();
                let shed =
                    supervisor.force_shed(domain, now, &mut World { io: &mut io, rng, clock: &|| now });
                let r = if shed {
                    Ok(())
                } else {
                    Err(alloc::format!("the subsystem of {} is not up", domain.name()))
                };
                debug_answer(w, domain, r)
            }
            Command::DebugBlast { nic, seconds, frame_bytes } if self.diagnostics => {
                if usize::from(nic) >= self.ports.len() {
                    writeln!(w, "debug blast: no nic{}", nic)
                } else {
                    let until = now + Duration::from_secs(u64::from(seconds));
                    self.blast = Some(Blast { port: usize::from(nic), until, len: usize::from(frame_bytes) });
                    writeln!(w, "ok (nic{})", nic)
                }
            }
            Command::DebugPanic
            | Command::DebugHog { .. }
            | Command::DebugLeak { .. }
            | Command::DebugShed { .. }
            | Command::DebugBlast { .. } => {
                writeln!(w, "debug commands are off ([diagnostics] enabled = false)")
            }
            Command::ShowRoute { .. } | Command::ShowFlows { .. } => Ok(()),
        };
        report(out, result);
        Action::None
    }

    /// `show status`: the subsystems, the loop's longest turn, each subsystem's own lines.
    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        self.supervisor.status(out)?;
        let describe = |l: &Longest| match l.poll {
            Some((name, took)) => alloc::format!("{} (slowest poll: {} {})", l.took, name, took),
            None => alloc::format!("{}", l.took),
        };
        writeln!(
            out,
            "loop: {} turns; longest {} since boot, {} since clear status",
            self.turns.turns,
            describe(&self.turns.longest),
            describe(&self.turns.since_clear)
        )
    }

    /// `show local`: what the host stack delivered and answered, who owns what.
    fn show_local(&self, out: &mut dyn Write, json: bool) -> fmt::Result {
        let c = &self.host.counters;
        let figures: [(&str, u64); 19] = [
            ("delivered_to_stack", c.delivered_stack),
            ("delivered_to_bindings", c.delivered_bound),
            ("owner_not_up", self.owner_down),
            ("truncated", c.truncated),
            ("bad_checksum", c.bad_checksum),
            ("fragments", c.fragments),
            ("ttl_security_dropped", c.ttl_security_dropped),
            ("listen_drops", c.listen_drops),
            ("tcp_resets_sent", c.tcp_resets_sent),
            ("icmp_unreachable_sent", c.icmp_unreachable_sent),
            ("icmp_rate_limited", c.icmp_rate_limited),
            ("datagrams_sent", c.datagrams_sent),
            ("datagrams_fragmented", c.datagrams_fragmented),
            ("fragments_sent", c.fragments_sent),
            ("icmp_errors_delivered", c.icmp_errors_delivered),
            ("icmp_errors_unwanted", c.icmp_errors_unwanted),
            ("out_queue_full", c.out_queue_full),
            ("out_no_forwarder", self.no_forwarder),
            ("out_queued", self.host.out_len() as u64),
        ];
        if json {
            let mut j = crate::json::JsonWriter::new(&mut *out);
            j.begin_object()?;
            for (name, value) in figures {
                j.field_u64(name, value)?;
            }
            j.key("bindings")?;
            j.begin_array()?;
            for (binding, owner) in self.host.bindings() {
                j.begin_object()?;
                match binding {
                    crate::context::Binding::IpProtocol(p) => j.field_u64("ip_protocol", u64::from(p))?,
                    crate::context::Binding::Udp(p) => j.field_u64("udp_port", u64::from(p))?,
                    crate::context::Binding::TcpListen(p) => j.field_u64("tcp_port", u64::from(p))?,
                }
                j.field_str("owner", owner.name())?;
                j.end_object()?;
            }
            j.end_array()?;
            j.key("tcp_sockets")?;
            j.begin_object()?;
            for d in Domain::ALL {
                let n = self.host.sockets_of(d);
                if n > 0 {
                    j.field_u64(d.name(), n as u64)?;
                }
            }
            j.end_object()?;
            j.end_object()?;
            return out.write_char('\n');
        }
        for (name, value) in figures {
            writeln!(out, "{:<24} {}", name, value)?;
        }
        for (binding, owner) in self.host.bindings() {
            match binding {
                crate::context::Binding::IpProtocol(p) => {
                    writeln!(out, "ip protocol {:<11} {}", p, owner.name())?
                }
                crate::context::Binding::Udp(p) => writeln!(out, "udp port {:<15} {}", p, owner.name())?,
                crate::context::Binding::TcpListen(p) => {
                    writeln!(out, "tcp port {:<15} {}", p, owner.name())?
                }
            }
        }
        for d in Domain::ALL {
            let n = self.host.sockets_of(d);
            if n > 0 {
                writeln!(out, "tcp sockets of {:<9} {}", d.name(), n)?;
            }
        }
        Ok(())
    }

    fn interfaces(&self) -> Vec<InterfaceStatus> {
        self.ports
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let c = p.link.counters();
                let mut drops = alloc::vec![
                    ("rx_errors", c.rx_errors),
                    ("tx_ring_full", c.tx_ring_full),
                    ("tx_oversize", c.tx_oversize),
                ];
                drops.extend(
                    DispatchDrop::ALL.iter().zip(p.dispatch_drops.iter()).map(|(r, n)| (r.name(), *n)),
                );
                let theirs = self
                    .supervisor
                    .with_subsystem(Domain::Forwarder, |s| s.interface_counters(index as u8))
                    .flatten()
                    .unwrap_or_else(|| InterfaceCounters {
                        forwarding: ForwardingCounters::default(),
                        drops: DropReason::ALL.iter().map(|r| (r.name(), 0)).collect(),
                    });
                drops.extend(theirs.drops);
                InterfaceStatus {
                    name: String::from(p.name),
                    mac: p.link.mac(),
                    pci: p.link.pci(),
                    address: p.address,
                    mtu: p.mtu,
                    rx_packets: c.rx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_packets: c.tx_packets,
                    tx_bytes: c.tx_bytes,
                    drops,
                    forwarding: theirs.forwarding,
                }
            })
            .collect()
    }

    fn memory(&self) -> MemoryStatus {
        let books = self.supervisor.books();
        let domains = Domain::ALL
            .iter()
            .map(|&domain| {
                let s = books.stats(domain);
                let report = self.supervisor.report(domain);
                DomainMemory {
                    domain,
                    used: s.used,
                    live: s.live,
                    peak: s.peak,
                    blocks: s.blocks as u64,
                    chunks: s.chunks as u64,
                    soft: s.soft,
                    quota: s.hard,
                    failed_admissions: s.failed_admissions,
                    sheds: report.map_or(0, |r| r.sheds),
                    leaks: report.map_or(0, |r| r.leaks),
                    last_leak: report.and_then(|r| r.last_leak),
                    state: report.map(|r| r.state),
                }
            })
            .collect();
        let h = books.heap_stats();
        MemoryStatus {
            domains,
            heap: HeapStatus { total: h.total, used: h.used, free: h.free, largest_free: h.largest_free },
        }
    }
}

const ETHERNET_HEADER: usize = 14;

fn report(out: &mut dyn Write, result: fmt::Result) {
    if result.is_err() {
        let _ = writeln!(out, "(output failed)");
    }
}

fn debug_answer(out: &mut dyn Write, domain: Domain, result: Result<(), String>) -> fmt::Result {
    match result {
        Ok(()) => writeln!(out, "ok ({})", domain.name()),
        Err(e) => writeln!(out, "debug: {}", e),
    }
}

impl Io for PlatformIo<'_> {
    fn addresses(&self) -> &[Ipv4Cidr] {
        self.host.addresses()
    }

    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
        match self.ports.get_mut(usize::from(iface)) {
            Some(port) => port.link.transmit(frame),
            None => Err(TxError::NoLink),
        }
    }

    fn bind(&mut self, owner: Domain, binding: Binding) -> Result<(), BindError> {
        self.host.bind(owner, binding)
    }

    fn send_datagram(&mut self, _owner: Domain, datagram: OutDatagram<'_>) -> Result<(), SendError> {
        self.host.send_datagram(datagram)
    }

    fn tcp_listen(&mut self, owner: Domain, port: u16, buffers: TcpBuffers) -> Result<SocketId, TcpError> {
        self.host.tcp_listen(owner, port, buffers)
    }

    fn tcp_connect(
        &mut self,
        owner: Domain,
        local: Option<Ipv4Addr>,
        remote: (Ipv4Addr, u16),
        buffers: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        self.host.tcp_connect(owner, local, remote, buffers)
    }

    fn tcp(&mut self, owner: Domain, id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
        self.host.tcp(owner, id)
    }

    fn tcp_release(&mut self, owner: Domain, id: SocketId) -> Result<(), TcpError> {
        self.host.tcp_release(owner, id)
    }

    fn ttl_guard(
        &mut self,
        owner: Domain,
        guard: crate::context::TtlGuard,
    ) -> Result<(), crate::context::TtlGuardError> {
        self.host.ttl_guard(owner, guard)
    }

    fn ttl_guard_drops(&self, owner: Domain, peer: Ipv4Addr, port: u16) -> Option<u64> {
        self.host.ttl_guard_drops(owner, peer, port)
    }

    fn route(&mut self, owner: Domain, change: RouteChange) -> Result<(), RouteQueueError> {
        let source = route_source(owner).ok_or(RouteQueueError::NotASource)?;
        if self.routes.queue.len() >= ROUTE_QUEUE {
            return Err(RouteQueueError::Full);
        }
        self.routes.queue.push_back((source, change));
        Ok(())
    }

    fn take_route_resync(&mut self, owner: Domain) -> bool {
        match route_source(owner) {
            Some(s) => self.routes.resync.get_mut(s.index()).is_some_and(core::mem::take),
            None => false,
        }
    }

    fn subsystem_up(&mut self, d: Domain) {
        if d == Domain::Forwarder {
            // A fresh FIB holds only connected and static routes: every source announces again.
            self.routes.resync = [true; RouteSource::COUNT];
        }
    }

    fn subsystem_down(&mut self, d: Domain, now: Instant) {
        self.host.release_all(d, now);
        if let Some(source) = route_source(d) {
            self.routes.queue.retain(|(s, _)| *s != source);
            if let Some(w) = self.routes.withdraw.get_mut(source.index()) {
                *w = true;
            }
        }
    }

    fn wall_epoch(&self) -> Option<u64> {
        self.wall_epoch
    }
}
