//! The loop simulated on the host: the platform with fake NICs, the real subsystems and the real
//! allocator (every byte booked as in the image), and a smoltcp host on the far side of nic0.
//! Delivery, registration, backpressure, shedding, route sources and the random source, without
//! QEMU. Cases run one after another on the main thread (the current domain is per process).

use std::cell::Cell;
use std::rc::Rc;

use bulkhead_apps::books::AllocatorBooks;
use bulkhead_apps::config::ForwarderConfig;
use bulkhead_apps::context::{Context, RouteChange, SocketId, TcpBuffers};
use bulkhead_apps::diag::Diag;
use bulkhead_apps::domain::{Domain, Quota};
use bulkhead_apps::forwarder::ForwarderSubsystem;
use bulkhead_apps::platform::Platform;
use bulkhead_apps::supervisor::{Budget, PollOutcome, RestartPolicy, StartError, Subsystem};
use bulkhead_apps::time::{Duration, Instant};
use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_mem::HostHeap;
use bulkhead_net::fib::Prefix;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet,
};

mod common;

use common::*;

#[global_allocator]
static HEAP: HostHeap = HostHeap::new();

/// A subsystem in the `sctp` domain that listens on TCP 5001 with small buffers and reads only
/// while `reading` is set: the seed's suspended receiver, over TCP.
struct Sink {
    reading: Rc<Cell<bool>>,
    received: Rc<Cell<usize>>,
    socket: Option<SocketId>,
}

impl Subsystem for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn domain(&self) -> Domain {
        Domain::Sctp
    }
    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        self.socket =
            Some(cx.tcp_listen(5001, TcpBuffers { rx: 4096, tx: 512 }).map_err(|_| StartError::Failed)?);
        Ok(())
    }
    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        if let (true, Some(id)) = (self.reading.get(), self.socket) {
            if let Ok(socket) = cx.tcp(id) {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = socket.recv_slice(&mut buf) {
                    self.received.set(self.received.get() + n);
                }
            }
        }
        PollOutcome::Idle
    }
    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }
    fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}
    fn shed(&mut self) {
        self.socket = None;
    }
    fn status(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        write!(out, "sink")
    }
}

/// A route source in the `bgp` domain: announces `routes` at start and after every forwarder
/// restart; records what its context's random source gave it at start.
struct FakeSource {
    routes: Vec<(Prefix, Ipv4Address)>,
    pending: usize,
    first_random: Rc<Cell<u64>>,
}

impl Subsystem for FakeSource {
    fn name(&self) -> &'static str {
        "fake-bgp"
    }
    fn domain(&self) -> Domain {
        Domain::Bgp
    }
    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        self.first_random.set(cx.rng.next_u64());
        self.pending = 0;
        Ok(())
    }
    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        if cx.take_route_resync() {
            self.pending = 0;
        }
        while let Some(&(prefix, via)) = self.routes.get(self.pending) {
            if cx.route(RouteChange::Add { prefix, via }).is_err() {
                return PollOutcome::Pending;
            }
            self.pending += 1;
        }
        PollOutcome::Idle
    }
    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }
    fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}
    fn shed(&mut self) {
        // Like a BGP speaker whose sessions are gone: nothing to announce after the restart.
        self.routes = Vec::new();
        self.pending = 0;
    }
    fn status(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        write!(out, "{} routes announced", self.pending)
    }
}

struct Sim {
    platform: Platform<AllocatorBooks>,
    peer: Peer,
    nic1_out: Wire,
    now: Instant,
    reading: Rc<Cell<bool>>,
    received: Rc<Cell<usize>>,
    first_random: Rc<Cell<u64>>,
}

impl Sim {
    fn new(seed: u64, bgp_route_limit: u32) -> Sim {
        let allocator = HEAP.allocator();
        let quotas = std::array::from_fn(|_| Quota { hard: QUOTA, soft: QUOTA * 3 / 4 });
        allocator.set_quotas(quotas, 8 << 20).unwrap();
        let forwarder_config =
            ForwarderConfig { max_routes_bgp: bgp_route_limit, ..ForwarderConfig::default() };
        let TwoNics { ports, plan, to0, from0, from1 } = two_nics(allocator, &forwarder_config);
        let rng = Box::new(Csprng::seed_from_u64(seed));
        let mut platform = Platform::new(AllocatorBooks(allocator), ports, rng, true, Instant::ZERO);
        let reading = Rc::new(Cell::new(false));
        let received = Rc::new(Cell::new(0));
        let first_random = Rc::new(Cell::new(0));
        let via = Ipv4Address::new(198, 51, 100, 7);
        let routes =
            (0..3u8).map(|i| (Prefix::new(u32::from_be_bytes([10, i, 0, 0]), 16).unwrap(), via)).collect();
        let subsystems: Vec<Box<dyn Subsystem>> = vec![
            Box::new(ForwarderSubsystem::new(plan, &NIC_NAMES)),
            Box::new(Sink { reading: reading.clone(), received: received.clone(), socket: None }),
            Box::new(FakeSource { routes, pending: 0, first_random: first_random.clone() }),
            Box::new(Diag::new(true)),
        ];
        for s in subsystems {
            let policy =
                RestartPolicy { initial_backoff: Duration::from_millis(1), ..RestartPolicy::default() };
            platform.add(s, policy).unwrap();
        }
        platform.start(Instant::ZERO);
        let peer = Peer::new(to0, from0);
        Sim { platform, peer, nic1_out: from1, now: Instant::ZERO, reading, received, first_random }
    }

    /// One millisecond: the appliance's turn, then the peer's.
    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(1);
        let now = self.now;
        self.platform.turn(now, &|| now);
        self.peer.poll(now);
        self.nic1_out.borrow_mut().clear();
    }

    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        for _ in 0..limit_ms {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn console(&mut self, line: &str) -> String {
        let mut out = String::new();
        let now = self.now;
        self.platform.execute(line, now, &mut out);
        out
    }

    fn used(&self, d: Domain) -> (usize, usize) {
        let s = HEAP.allocator().stats(d);
        (s.used, s.blocks)
    }
}

// ---- the cases ----------------------------------------------------------------------------------

/// TCP echo to nic1's address, arriving on nic0; the connection's buffers are diag's, and diag
/// is back to its baseline when the connection is gone.
fn tcp_echo_to_another_nics_address() {
    let mut sim = Sim::new(1, 100);
    let baseline = sim.used(Domain::Diag);
    let h = sim.peer.tcp((Ipv4Address::new(198, 51, 100, 1), 7), 40000, 65536);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut sent, mut back) = (0usize, Vec::new());
    let ok = sim.run_until(20_000, |s| {
        let socket = s.peer.sockets.get_mut::<tcp::Socket>(h);
        if socket.may_send() && sent < data.len() {
            sent += socket.send_slice(&data[sent..]).unwrap_or(0);
        }
        if socket.can_recv() {
            socket
                .recv(|b| {
                    back.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
        }
        back.len() == data.len()
    });
    assert!(ok, "echoed {} of {} bytes", back.len(), data.len());
    assert_eq!(back, data);
    assert!(sim.used(Domain::Diag).0 > baseline.0, "the connection's buffers are diag's");
    sim.peer.sockets.get_mut::<tcp::Socket>(h).close();
    let closed = sim.run_until(5_000, |s| s.used(Domain::Diag) == baseline);
    assert!(closed, "diag {:?} never back to {:?}", sim.used(Domain::Diag), baseline);
}

/// UDP echo is a binding of diag's; a UDP port and a TCP port nobody owns get the answers a
/// host gives (ICMP port unreachable, RST).
fn bindings_and_host_answers() {
    let mut sim = Sim::new(2, 100);
    let u = sim.peer.udp(50000);
    let to = IpEndpoint::new(IpAddress::v4(192, 0, 2, 1), 7);
    sim.peer.sockets.get_mut::<udp::Socket>(u).send_slice(b"ping?", to).unwrap();
    let echoed = sim.run_until(2_000, |s| {
        let socket = s.peer.sockets.get_mut::<udp::Socket>(u);
        matches!(socket.recv(), Ok((b"ping?", _)))
    });
    assert!(echoed, "no UDP echo");
    let to9 = IpEndpoint::new(IpAddress::v4(198, 51, 100, 1), 9);
    sim.peer.sockets.get_mut::<udp::Socket>(u).send_slice(b"anyone?", to9).unwrap();
    let unreachable = sim.run_until(2_000, |s| s.peer.seen.iter().any(|f| icmp_type(f) == Some((3, 3))));
    assert!(unreachable, "no ICMP port unreachable");
    let h = sim.peer.tcp((Ipv4Address::new(192, 0, 2, 1), 9), 40001, 4096);
    let reset = sim.run_until(2_000, |s| s.peer.sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed);
    assert!(reset, "no RST for a closed port");
    assert!(sim.platform.host().counters.tcp_resets_sent >= 1);
    assert!(sim.platform.host().counters.icmp_unreachable_sent >= 1);
    let local = sim.console("show local json");
    assert!(local.contains("\"udp_port\":7,\"owner\":\"diag\""), "{local}");
    assert!(local.contains("\"tcp_resets_sent\":1"), "{local}");
    assert!(
        local.contains("\"diag\":1") && local.contains("\"sctp\":1"),
        "listeners of diag and the sink: {local}"
    );
    // An ICMP error about the echo's reply goes to the binding's owner (diag), which has no
    // use for it: counted as such, not as an owner down.
    sim.peer.to_appliance.borrow_mut().push_back(port_unreachable_about_the_echo());
    sim.run_until(100, |_| false);
    let local = sim.console("show local json");
    assert!(local.contains("\"icmp_errors_unwanted\":1") && local.contains("\"owner_not_up\":0"), "{local}");
}

/// From the peer (192.0.2.2) to nic0: ICMP port unreachable, quoting a UDP datagram from the
/// appliance's port 7 to the peer's port 50000.
fn port_unreachable_about_the_echo() -> Vec<u8> {
    let mut quoted = vec![0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
    let mut header = Ipv4Packet::new_unchecked(&mut quoted[..]);
    header.fill_checksum();
    quoted.extend_from_slice(&[0, 7, 0xc3, 0x50, 0, 13, 0, 0]);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    let total = 20 + icmp.len();
    let mut ip =
        vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1];
    Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
    ip.extend_from_slice(&icmp);
    let mut frame = NIC0_MAC.to_vec();
    frame.extend_from_slice(&PEER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame
}

/// A subsystem that stops reading closes its TCP window: the sender stalls, nothing grows;
/// once it reads again every byte arrives.
fn a_subsystem_that_stops_reading_closes_its_window() {
    let mut sim = Sim::new(3, 100);
    let h = sim.peer.tcp((Ipv4Address::new(192, 0, 2, 1), 5001), 40002, 65536);
    let data = vec![0x5a_u8; 200_000];
    let mut sent = 0usize;
    let mut feed = |s: &mut Sim| {
        let socket = s.peer.sockets.get_mut::<tcp::Socket>(h);
        if socket.may_send() && sent < data.len() {
            sent += socket.send_slice(&data[sent..]).unwrap_or(0);
        }
        sent
    };
    sim.run_until(3_000, |s| {
        feed(s);
        false
    });
    let stalled = sim.used(Domain::Sctp);
    let queued = sim.peer.sockets.get::<tcp::Socket>(h).send_queue();
    assert!(queued > 32_000, "the sender must be stalled with data queued, has {queued}");
    assert_eq!(sim.received.get(), 0);
    sim.run_until(2_000, |s| {
        feed(s);
        false
    });
    assert_eq!(sim.used(Domain::Sctp), stalled, "a stalled receiver's domain must not grow");
    sim.reading.set(true);
    let all = sim.run_until(60_000, |s| {
        feed(s);
        s.received.get() == data.len()
    });
    assert!(all, "received {} of {}", sim.received.get(), data.len());
}

/// A shed resets the subsystem's connections (the peer sees an RST), and nothing of its
/// sockets stays in `net` or in its own domain.
fn a_shed_resets_connections_and_leaves_nothing() {
    let mut sim = Sim::new(4, 100);
    sim.step();
    let net = sim.used(Domain::Net);
    let diag = sim.used(Domain::Diag);
    let h = sim.peer.tcp((Ipv4Address::new(192, 0, 2, 1), 7), 40003, 4096);
    let open =
        sim.run_until(2_000, |s| s.peer.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established);
    assert!(open);
    sim.run_until(50, |_| false);
    let answer = sim.console("debug shed diag");
    assert!(answer.contains("ok (diag)"), "{answer}");
    let reset = sim.run_until(2_000, |s| s.peer.sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed);
    assert!(reset, "the peer never saw the RST");
    let restarted = sim.run_until(2_000, |s| s.platform.supervisor().is_up(Domain::Diag));
    assert!(restarted);
    assert_eq!(sim.used(Domain::Net), net, "net keeps nothing of a shed subsystem");
    assert_eq!(sim.used(Domain::Diag), diag, "diag back to its baseline after the restart");
    let report = sim.platform.supervisor().report(Domain::Diag).unwrap();
    assert_eq!(report.leaks, 0, "{report:?}");
}

/// Routes from a source: installed with the source's name and limit, withdrawn when the source
/// is shed, announced again after the forwarder restarts.
fn route_sources_reach_the_fib() {
    let mut sim = Sim::new(5, 2);
    // The gateway must resolve: 198.51.100.7 is on nic1's subnet.
    let installed = sim.run_until(100, |s| s.console("show route json").matches("\"bgp\"").count() == 2);
    assert!(installed, "{}", sim.console("show route"));
    assert!(sim.console("show route 10.0.0.0/16").contains("bgp"));
    // The third route is over the limit of 2.
    assert!(!sim.console("show route 10.2.0.0/16 json").contains("\"bgp\""));
    sim.console("debug shed forwarder");
    let back = sim.run_until(1_000, |s| s.console("show route json").matches("\"bgp\"").count() == 2);
    assert!(back, "routes not announced again after the forwarder restarted");
    sim.console("debug shed bgp");
    sim.step();
    sim.step();
    assert_eq!(sim.console("show route json").matches("\"bgp\"").count(), 0, "a shed source's routes go");
}

/// The platform's random source reaches subsystems: repeatable for a seed, different across seeds.
fn the_random_source_reaches_subsystems() {
    let values: Vec<u64> = [7, 7, 8].iter().map(|&seed| Sim::new(seed, 10).first_random.get()).collect();
    assert_eq!(values[0], values[1]);
    assert_ne!(values[0], values[2]);
    assert_ne!(values[0], 0);
}

/// Bad input: random and mutated frames on nic0 (ARP, UDP to the echo port, TCP SYNs, bytes)
/// panic nothing, and move no byte into a domain that did not ask for one.
fn no_bytes_from_the_wire_panic_or_move_memory() {
    let mut sim = Sim::new(6, 100);
    sim.run_until(20, |_| false);
    let quiet = [Domain::Net, Domain::Sctp, Domain::Bmp, Domain::Mgmt, Domain::Bgp];
    let before: Vec<(usize, usize)> = quiet.iter().map(|d| sim.used(*d)).collect();
    let templates = templates();
    let mut rng = Csprng::seed_from_u64(6);
    let mut next = move || rng.next_u64();
    for _ in 0..20_000 {
        let r = next();
        let frame = match r % 4 {
            0 => (0..(next() % 200) as usize).map(|_| next() as u8).collect(),
            _ => {
                let mut f = templates[(r >> 8) as usize % templates.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % f.len();
                    f[at] ^= 1 << (next() % 8);
                }
                let keep = f.len() - (next() as usize % 3) * (next() as usize % f.len().max(1)) / 2;
                f.truncate(keep.max(1));
                f
            }
        };
        let _wire = HEAP.allocator().enter(Domain::Kernel);
        sim.peer.to_appliance.borrow_mut().push_back(frame);
        drop(_wire);
        sim.step();
    }
    sim.run_until(100, |_| false);
    let after: Vec<(usize, usize)> = quiet.iter().map(|d| sim.used(*d)).collect();
    assert_eq!(after, before, "{quiet:?}");
    // And the appliance still answers, once the peer's address is learnt right again (a
    // mutated ARP may have taught it another MAC: ARP trusts what it hears).
    {
        let _wire = HEAP.allocator().enter(Domain::Kernel);
        sim.peer.to_appliance.borrow_mut().push_back(templates[0].clone());
    }
    let u = sim.peer.udp(50001);
    let to = IpEndpoint::new(IpAddress::v4(192, 0, 2, 1), 7);
    sim.peer.sockets.get_mut::<udp::Socket>(u).send_slice(b"still there?", to).unwrap();
    assert!(sim.run_until(2_000, |s| s.peer.sockets.get_mut::<udp::Socket>(u).recv().is_ok()));
}

/// Valid frames to mutate: an ARP request, a UDP datagram to the echo port, a TCP SYN.
fn templates() -> Vec<Vec<u8>> {
    let eth = |ethertype: [u8; 2]| {
        let mut f = NIC0_MAC.to_vec();
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&ethertype);
        f
    };
    let mut arp = eth([0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[192, 0, 2, 2, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1]);
    let ip = |protocol: u8, l4: &[u8]| {
        let mut f = eth([0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        let mut h = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, protocol, 0, 0];
        h.extend_from_slice(&[192, 0, 2, 2, 192, 0, 2, 1]);
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(l4);
        f
    };
    let udp = ip(17, &[0xc3, 0x50, 0, 7, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
    let syn = ip(6, &[0xc3, 0x51, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0]);
    let sctp = ip(132, &[0x13, 0x88, 0x13, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4]);
    vec![arp, udp, syn, sctp]
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 =
        bytes.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn icmp_type(frame: &[u8]) -> Option<(u8, u8)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmp {
        return None;
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    Some((u8::from(icmp.msg_type()), icmp.msg_code()))
}

fn main() {
    let cases: [(&str, fn()); 7] = [
        ("tcp_echo_to_another_nics_address", tcp_echo_to_another_nics_address),
        ("bindings_and_host_answers", bindings_and_host_answers),
        (
            "a_subsystem_that_stops_reading_closes_its_window",
            a_subsystem_that_stops_reading_closes_its_window,
        ),
        ("a_shed_resets_connections_and_leaves_nothing", a_shed_resets_connections_and_leaves_nothing),
        ("route_sources_reach_the_fib", route_sources_reach_the_fib),
        ("the_random_source_reaches_subsystems", the_random_source_reaches_subsystems),
        ("no_bytes_from_the_wire_panic_or_move_memory", no_bytes_from_the_wire_panic_or_move_memory),
    ];
    common::run_cases(&cases);
}
