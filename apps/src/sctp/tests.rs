//! The subsystem driven through a fake context, against a `bulkhead_sctp::Endpoint` as the
//! peer, over raw IP and over UDP encapsulation.

extern crate std;

use std::string::String;
use std::vec::Vec;

use bulkhead_sctp::endpoint::{Config as EndpointConfig, DownReason, Endpoint, Event, Received, Transport};
use smoltcp::socket::tcp;

use super::*;
use crate::addr::Ipv4Cidr;
use crate::context::{
    Admission, BindError, Io, Room, RouteChange, RouteQueueError, SocketId, TcpBuffers, TcpError,
};
use crate::domain::OverQuota;
use crate::link::TxError;
use crate::time::Duration;
use bulkhead_base::rand_core::RngCore;
use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;

const A0: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const A1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PEER_UDP: u16 = 40_999;
const PEER_PORT: u16 = 40_000;

/// One datagram the subsystem sent.
#[derive(Clone, Debug)]
struct Sent {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ports: Option<(u16, u16)>,
    payload: Vec<u8>,
}

/// An `Io` whose local-out queue holds `capacity` datagrams per turn.
struct FakeIo {
    addresses: Vec<Ipv4Cidr>,
    bound: Vec<Binding>,
    out: Vec<Sent>,
    capacity: usize,
    refused: usize,
}

impl Io for FakeIo {
    fn addresses(&self) -> &[Ipv4Cidr] {
        &self.addresses
    }
    fn transmit(&mut self, _iface: u8, _frame: &[u8]) -> Result<(), TxError> {
        Err(TxError::NoLink)
    }
    fn bind(&mut self, _owner: Domain, binding: Binding) -> Result<(), BindError> {
        self.bound.push(binding);
        Ok(())
    }
    fn send_datagram(&mut self, owner: Domain, d: OutDatagram<'_>) -> Result<(), SendError> {
        assert_eq!(owner, Domain::Sctp);
        if self.out.len() >= self.capacity {
            self.refused += 1;
            return Err(SendError::QueueFull);
        }
        self.out.push(Sent {
            src: d.src,
            dst: d.dst,
            protocol: d.protocol,
            ports: d.ports,
            payload: d.payload.to_vec(),
        });
        Ok(())
    }
    fn tcp_listen(&mut self, _o: Domain, _p: u16, _b: TcpBuffers) -> Result<SocketId, TcpError> {
        Err(TcpError::TooManySockets)
    }
    fn tcp_connect(
        &mut self,
        _o: Domain,
        _l: Option<Ipv4Addr>,
        _r: (Ipv4Addr, u16),
        _b: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        Err(TcpError::TooManySockets)
    }
    fn tcp(&mut self, _o: Domain, _id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
        Err(TcpError::NoSuchSocket)
    }
    fn tcp_release(&mut self, _o: Domain, _id: SocketId) -> Result<(), TcpError> {
        Err(TcpError::NoSuchSocket)
    }
    fn route(&mut self, _o: Domain, _c: RouteChange) -> Result<(), RouteQueueError> {
        Err(RouteQueueError::NotASource)
    }
    fn take_route_resync(&mut self, _o: Domain) -> bool {
        false
    }
    fn subsystem_up(&mut self, _d: Domain) {}
    fn subsystem_down(&mut self, _d: Domain, _now: Instant) {}
}

struct Memory(Room);

impl Admission for Memory {
    fn admit(&self, _d: Domain, _bytes: usize) -> Result<(), OverQuota> {
        Ok(())
    }
    fn room(&self, _d: Domain) -> Room {
        self.0
    }
}

/// The appliance's SCTP subsystem and a peer endpoint on one wire.
struct Rig {
    sub: SctpSubsystem,
    io: FakeIo,
    memory: Memory,
    rng: Csprng,
    peer: Endpoint,
    transport: Transport,
    now: Instant,
    /// What the peer received.
    got: Vec<Event>,
    /// Packets the appliance sent, seen on the wire.
    wire: Vec<Sent>,
}

fn peer_footprint(n: usize) -> usize {
    footprint(n)
}

impl Rig {
    fn new(config: SctpConfig, transport: Transport) -> Rig {
        let mut rng = Csprng::seed_from_u64(7);
        let mut pc = EndpointConfig::new(PEER_PORT, peer_footprint);
        pc.listen = false;
        let peer = Endpoint::new(pc, &[PEER], Instant::ZERO, &mut rng);
        let io = FakeIo {
            addresses: vec![
                Ipv4Cidr::parse("192.0.2.1/24").unwrap(),
                Ipv4Cidr::parse("198.51.100.1/24").unwrap(),
            ],
            bound: Vec::new(),
            out: Vec::new(),
            capacity: 1000,
            refused: 0,
        };
        let mut rig = Rig {
            sub: SctpSubsystem::new(config),
            io,
            memory: Memory(Room { soft: 16 << 20, hard: 32 << 20 }),
            rng,
            peer,
            transport,
            now: Instant::ZERO,
            got: Vec::new(),
            wire: Vec::new(),
        };
        let (now, sub) = (rig.now, &mut rig.sub);
        let mut cx = Context::new(now, Domain::Sctp, &mut rig.rng, &rig.memory, &mut rig.io);
        sub.start(&mut cx).unwrap();
        rig
    }

    fn cx_run<T>(&mut self, f: impl FnOnce(&mut SctpSubsystem, &mut Context<'_>) -> T) -> T {
        let mut cx = Context::new(self.now, Domain::Sctp, &mut self.rng, &self.memory, &mut self.io);
        f(&mut self.sub, &mut cx)
    }

    fn command(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut out = String::new();
        self.cx_run(|s, cx| s.command(cx, &words, &mut out)).expect("a command of sctp's").unwrap();
        out
    }

    fn connect(&mut self, port: u16) -> AssocId {
        self.peer.connect(self.now, &mut self.rng, &[A0, A1], port, self.transport).unwrap()
    }

    /// One millisecond: the appliance's poll, its packets to the peer, the peer's to it.
    fn step(&mut self) -> PollOutcome {
        self.now = self.now + Duration::from_millis(1);
        let outcome = self.cx_run(|s, cx| s.poll(cx, Budget(64)));
        for d in core::mem::take(&mut self.io.out) {
            let transport = match d.ports {
                None => {
                    assert_eq!(d.protocol, IPPROTO_SCTP);
                    Transport::Ip
                }
                Some((src, dst)) => {
                    assert_eq!((src, dst), (self.sub.config().udp_port, PEER_UDP));
                    Transport::Udp { peer_port: src }
                }
            };
            let rx = Received { src: d.src, dst: d.dst, transport, bytes: &d.payload };
            self.peer.handle(self.now, &mut self.rng, rx);
            self.wire.push(d);
        }
        if self.peer.poll_at().is_some_and(|t| t <= self.now) {
            self.peer.handle_timeout(self.now, &mut self.rng);
        }
        let mut buf = [0u8; 1500];
        while let Some(t) = self.peer.poll_transmit(self.now, &mut buf) {
            let ports = match t.transport {
                Transport::Ip => None,
                Transport::Udp { peer_port } => Some((PEER_UDP, peer_port)),
            };
            let protocol = if ports.is_some() { 17 } else { IPPROTO_SCTP };
            let d = Datagram { src: t.src, dst: t.dst, protocol, ports, payload: &buf[..t.len] };
            let delivery = self.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d)));
            assert_eq!(delivery, Delivery::Taken);
        }
        while let Some(e) = self.peer.poll_event() {
            self.got.push(e);
        }
        outcome
    }

    fn run_until(&mut self, ms: u64, mut done: impl FnMut(&mut Rig) -> bool) -> bool {
        for _ in 0..ms {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn up(&mut self, port: u16) -> AssocId {
        let id = self.connect(port);
        let ok = self.run_until(2_000, |r| r.got.contains(&Event::AssociationUp(id)));
        assert!(ok, "no association: {:?}", self.got);
        id
    }

    fn running(&self) -> &Running {
        self.sub.running.as_ref().unwrap()
    }

    fn service(&self, port: u16) -> &Served {
        self.running().services.iter().find(|s| s.service.port == port).unwrap()
    }

    fn messages(&self) -> Vec<(u16, u32, bool, Vec<u8>)> {
        self.got
            .iter()
            .filter_map(|e| match e {
                Event::Message { stream, ppid, unordered, data, .. } => {
                    Some((*stream, *ppid, *unordered, data.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

fn echo_of_every_size_on_several_streams(transport: Transport) {
    let mut r = Rig::new(SctpConfig::default(), transport);
    assert_eq!(r.io.bound, [Binding::IpProtocol(132), Binding::Udp(9899)]);
    let id = r.up(7);
    // INIT ACK listed both of the appliance's addresses: the peer knows two paths.
    let paths: Vec<Ipv4Addr> = r.peer.status(id).unwrap().paths.iter().map(|p| p.addr).collect();
    assert_eq!(paths, [A0, A1]);
    let sizes = [1usize, 2, 100, 1000, 1452, 1453, 4000, 16_384, 65_536];
    let mut want = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|b| (b * 31 + i) as u8).collect();
        let stream = (i % 4) as u16;
        let (ppid, unordered) = (1000 + i as u32, i == 3);
        let ok = r.run_until(5_000, |r| r.peer.can_send(id, n));
        assert!(ok, "no room for {n} bytes");
        r.peer.send(id, stream, ppid, unordered, &data).unwrap();
        want.push((stream, ppid, unordered, data));
    }
    let ok = r.run_until(20_000, |r| r.messages().len() == want.len());
    assert!(ok, "echoed {} of {}", r.messages().len(), want.len());
    let mut got = r.messages();
    got.sort_by_key(|m| m.1);
    assert_eq!(got, want, "every echo on its stream, with its PPID and ordering");
    let s = r.service(7);
    assert_eq!((s.stats.messages, s.stats.echoed, s.stats.echo_dropped), (9, 9, 0));
    if let Transport::Udp { .. } = transport {
        assert!(r.wire.iter().all(|d| d.ports == Some((9899, PEER_UDP))), "every packet encapsulated");
    } else {
        assert!(r.wire.iter().all(|d| d.ports.is_none() && d.protocol == 132));
    }
    // Graceful shutdown from the peer: both sides closed, nothing held by the appliance.
    r.peer.shutdown(r.now, id);
    let ok = r.run_until(5_000, |r| r.got.contains(&Event::AssociationDown(id, DownReason::Shutdown)));
    assert!(ok, "{:?}", r.got);
    r.run_until(100, |_| false);
    assert_eq!(r.running().services.iter().map(|s| s.endpoint.associations().count()).sum::<usize>(), 0);
    assert_eq!(r.service(7).stats.associations_down, 1);
}

#[test]
fn echo_over_raw_ip() {
    echo_of_every_size_on_several_streams(Transport::Ip);
}

#[test]
fn echo_over_udp_encapsulation() {
    echo_of_every_size_on_several_streams(Transport::Udp { peer_port: 9899 });
}

#[test]
fn a_full_local_out_queue_loses_no_packet() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    r.io.capacity = 1;
    let id = r.up(7);
    for i in 0..50u32 {
        let ok = r.run_until(5_000, |r| r.peer.can_send(id, 3000));
        assert!(ok);
        r.peer.send(id, 0, i, false, &[i as u8; 3000]).unwrap();
    }
    let ok = r.run_until(30_000, |r| r.messages().len() == 50);
    assert!(ok, "echoed {} of 50", r.messages().len());
    assert!(r.io.refused > 0 && r.running().counters.queue_full > 0, "the queue was never full");
    let s = r.peer.status(id).unwrap();
    assert_eq!(s.counters.retransmissions, 0, "a refused packet was lost and retransmitted");
    let ppids: Vec<u32> = r.messages().iter().map(|m| m.1).collect();
    assert_eq!(ppids, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_paused_sink_closes_its_window_then_drains_in_slices() {
    let config = SctpConfig { receive_limit: 64 * 1024, ..SctpConfig::default() };
    let mut r = Rig::new(config, Transport::Udp { peer_port: 9899 });
    let id = r.up(5001);
    assert!(r.command("sctp pause 5001").contains("sink on port 5001 paused"));
    assert!(r.command("sctp pause 6").contains("no service on port 6"));
    // 1-byte messages until the peer's sender is refused and stays refused.
    let mut sent = 0u32;
    let mut refused_for = 0;
    for _ in 0..20_000 {
        let mut full = false;
        for _ in 0..64 {
            match r.peer.send(id, (sent % 4) as u16, sent, false, &[sent as u8]) {
                Ok(()) => sent += 1,
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        r.step();
        refused_for = if full { refused_for + 1 } else { 0 };
        if refused_for > 3000 {
            break;
        }
    }
    assert!(refused_for > 3000, "the sender never blocked ({sent} sent)");
    let held = r
        .running()
        .services
        .iter()
        .map(|s| s.endpoint.queue_bytes())
        .fold(0, |a, q| a + q.send + q.in_flight + q.reassembly + q.delivery);
    assert!(held <= 64 * 1024, "the appliance holds {held} true bytes for a 64 KiB receive limit");
    let status = r.peer.status(id).unwrap();
    assert!(status.peer_rwnd < 2000, "the window stayed open: {}", status.peer_rwnd);
    let s = r.service(5001);
    assert_eq!(s.stats.messages, 0, "a paused sink read");
    let text = r.command("show sctp");
    assert!(text.contains("service 5001 sink (paused)"), "{text}");
    // Resume: every message, in order per stream, no more than a slice per poll.
    assert!(r.command("sctp resume 5001").contains("resumed"));
    let mut last = 0;
    let mut slices = 0;
    let ok = r.run_until(60_000, |r| {
        let m = r.service(5001).stats.messages;
        assert!(m - last <= MESSAGES_PER_POLL as u64, "{} messages in one poll", m - last);
        if m > last {
            slices += 1;
        }
        last = m;
        m == u64::from(sent) && r.peer.queue_bytes().send + r.peer.queue_bytes().in_flight == 0
    });
    assert!(ok, "sink read {} of {sent}", r.service(5001).stats.messages);
    assert!(slices > 1, "the backlog drained in one go");
    assert_eq!(r.service(5001).stats.bytes, u64::from(sent));
}

#[test]
fn an_echo_that_cannot_be_sent_pauses_its_association() {
    let config = SctpConfig { send_limit: 16 * 1024, ..SctpConfig::default() };
    let mut r = Rig::new(config, Transport::Ip);
    let id = r.up(7);
    // The peer stops reading its echoes: its window closes, the appliance's send queue fills.
    r.peer.set_paused(id, true);
    let mut sent = 0u32;
    for _ in 0..3000 {
        while r.peer.can_send(id, 1000) && sent < 2000 {
            r.peer.send(id, 0, sent, false, &[7; 1000]).unwrap();
            sent += 1;
        }
        r.step();
    }
    let s = r.service(7);
    assert!(s.stats.echo_stalls > 0, "the echo never stalled");
    assert!(s.stalled.len() <= 1, "more than one echo held per association");
    let q = s.endpoint.queue_bytes();
    assert!(q.send + q.in_flight <= 16 * 1024, "send side holds {} true bytes", q.send + q.in_flight);
    // The peer reads again: everything comes back, once, in order.
    r.peer.set_paused(id, false);
    let ok = r.run_until(60_000, |r| r.messages().len() == sent as usize);
    assert!(ok, "echoed {} of {sent}", r.messages().len());
    let ppids: Vec<u32> = r.messages().iter().map(|m| m.1).collect();
    assert_eq!(ppids, (0..sent).collect::<Vec<_>>());
}

#[test]
fn farewell_aborts_every_association_and_shed_drops_it_all() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    let id = r.up(9);
    r.peer.send(id, 0, 0, false, b"discarded").unwrap();
    r.run_until(50, |_| false);
    assert_eq!(r.service(9).stats.messages, 1);
    r.cx_run(|s, cx| s.farewell(cx));
    assert!(!r.io.out.is_empty(), "no ABORT sent");
    r.step();
    assert!(
        r.got
            .iter()
            .any(|e| matches!(e, Event::AssociationDown(a, DownReason::PeerAborted { .. }) if *a == id)),
        "{:?}",
        r.got
    );
    r.sub.shed();
    assert!(r.sub.running.is_none());
    assert_eq!(r.sub.poll_at(r.now), None);
    let mut text = String::new();
    r.sub.status(&mut text).unwrap();
    assert_eq!(text, "not running");
}

#[test]
fn packets_for_no_service_and_runts_are_counted() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    let id = r.peer.connect(r.now, &mut r.rng, &[A0], 4242, Transport::Ip).unwrap();
    r.run_until(20, |_| false);
    assert!(r.running().counters.no_service > 0);
    // An out-of-the-blue INIT to a port nobody serves is answered with ABORT (8.4).
    assert!(r.got.iter().any(|e| matches!(e, Event::AssociationDown(a, _) if *a == id)), "{:?}", r.got);
    let d = Datagram { src: PEER, dst: A0, protocol: 132, ports: None, payload: &[1, 2, 3] };
    assert_eq!(r.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d))), Delivery::Taken);
    assert_eq!(r.running().counters.runt, 1);
    // Not ours: another UDP port, another protocol.
    let d = Datagram { src: PEER, dst: A0, protocol: 17, ports: Some((1, 53)), payload: &[0; 12] };
    assert_eq!(r.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d))), Delivery::Refused);
    let d = Datagram { src: PEER, dst: A0, protocol: 6, ports: None, payload: &[0; 12] };
    assert_eq!(r.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d))), Delivery::Refused);
}

#[test]
fn a_turn_handles_a_bounded_number_of_chunks_and_queues_the_rest() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    let id = r.up(9);
    r.run_until(300, |_| false);
    // A packet of 40 one-byte DATA chunks, arriving 200 times in one turn (duplicates cost
    // their chunks as much as new data does).
    for i in 0..40u32 {
        r.peer.send(id, 0, i, false, &[1]).unwrap();
    }
    let mut buf = [0u8; 1500];
    let t = r.peer.poll_transmit(r.now, &mut buf).unwrap();
    let chunks = Packet::new_checked(&buf[..t.len]).unwrap().chunks().count();
    assert!(chunks >= 40, "{chunks} chunks");
    for _ in 0..200 {
        let d = Datagram { src: t.src, dst: t.dst, protocol: 132, ports: None, payload: &buf[..t.len] };
        assert_eq!(r.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d))), Delivery::Taken);
    }
    let c = r.running().counters;
    assert_eq!(r.running().inbound.len(), MAX_INBOUND, "the queue is bounded");
    assert!(c.inbound_dropped > 0 && c.inbound_queued == MAX_INBOUND as u64, "{c:?}");
    assert!(r.running().chunks_this_turn < CHUNKS_PER_TURN + chunks);
    // This turn's allowance is spent: its poll takes nothing from the queue; the next turn's
    // poll takes one allowance's worth.
    assert_eq!(r.cx_run(|s, cx| s.poll(cx, Budget(64))), PollOutcome::Pending);
    assert_eq!(r.running().inbound.len(), MAX_INBOUND);
    assert_eq!(r.cx_run(|s, cx| s.poll(cx, Budget(64))), PollOutcome::Pending);
    let taken = MAX_INBOUND - r.running().inbound.len();
    assert_eq!(taken, CHUNKS_PER_TURN.div_ceil(chunks), "packets taken in one turn");
    let ok = r.run_until(30_000, |r| r.running().inbound.is_empty() && r.service(9).stats.messages == 40);
    assert!(ok, "{} of 40 messages", r.service(9).stats.messages);
}

#[test]
fn show_sctp_lists_associations_paths_windows_and_bytes() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Udp { peer_port: 9899 });
    let id = r.up(5001);
    r.peer.send(id, 1, 9, false, b"x").unwrap();
    r.run_until(20, |_| false);
    let text = r.command("show sctp");
    for needle in [
        "sctp: udp port 9899, 3 services, 1 associations",
        "service 7 echo: 0 associations",
        "service 5001 sink: 1 associations (1 up, 0 down so far), 1 messages, 1 bytes received",
        "port 5001 <- 40000 established streams out 16 in 16, rwnd local",
        "path 192.0.2.2 udp:40999 from 192.0.2.1 active",
        "retransmissions 0",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let json = r.command("show sctp json");
    assert!(json.starts_with("{\"udp_port\":9899,") && json.ends_with("}\n"), "{json}");
    for needle in [
        "\"associations\":1,",
        "\"port\":5001,\"kind\":\"sink\",\"paused\":false,\"messages\":1",
        "\"state\":\"established\"",
        "\"transport\":\"udp\",\"udp_port\":40999",
        "\"local_rwnd\":",
        "\"peer_rwnd\":",
        "\"retransmissions\":0",
    ] {
        assert!(json.contains(needle), "{needle:?} not in {json}");
    }
    let mut status = String::new();
    r.sub.status(&mut status).unwrap();
    assert!(status.starts_with("3 services, 1 associations"), "{status}");
    let words = ["show", "route"];
    let mut out = String::new();
    assert!(r.cx_run(|s, cx| s.command(cx, &words, &mut out)).is_none());
    assert!(r.sub.help().contains("sctp pause PORT"));
}

#[test]
fn pressure_hands_the_room_to_the_endpoints() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    let id = r.up(9);
    r.run_until(50, |_| false);
    let before = r.service(9).endpoint.status(AssocId(1)).unwrap().local_rwnd;
    r.memory.0 = Room { soft: 0, hard: 1 << 20 };
    r.cx_run(|s, cx| s.pressure(cx, true));
    r.peer.send(id, 0, 0, false, b"one").unwrap();
    r.run_until(300, |_| false);
    let after = r.service(9).endpoint.status(AssocId(1)).unwrap().local_rwnd;
    assert!(after < before, "the window did not shrink under pressure: {before} -> {after}");
}

#[test]
fn random_and_mutated_packets_panic_nothing() {
    let mut r = Rig::new(SctpConfig::default(), Transport::Ip);
    let id = r.up(7);
    r.peer.send(id, 1, 2, false, &[9; 3000]).unwrap();
    let mut buf = [0u8; 1500];
    let mut templates: Vec<Vec<u8>> = Vec::new();
    while let Some(t) = r.peer.poll_transmit(r.now, &mut buf) {
        templates.push(buf[..t.len].to_vec());
    }
    templates.extend(r.wire.iter().map(|d| d.payload.clone()));
    let mut rng = Csprng::seed_from_u64(99);
    for i in 0..20_000u32 {
        let mut bytes = match templates.get(i as usize % (templates.len() + 1)) {
            Some(t) => t.clone(),
            None => (0..rng.next_u32() % 200).map(|_| rng.next_u32() as u8).collect(),
        };
        for _ in 0..(rng.next_u32() % 4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.next_u32() as usize % bytes.len();
            bytes[at] = rng.next_u32() as u8;
        }
        if rng.next_u32().is_multiple_of(8) {
            bytes.truncate(rng.next_u32() as usize % (bytes.len() + 1));
        }
        let ports = if i.is_multiple_of(2) { None } else { Some((PEER_UDP, 9899)) };
        let d = Datagram {
            src: PEER,
            dst: A0,
            protocol: if ports.is_some() { 17 } else { 132 },
            ports,
            payload: &bytes,
        };
        r.cx_run(|s, cx| s.receive(cx, Inbound::Datagram(d)));
        if i.is_multiple_of(64) {
            r.now = r.now + Duration::from_millis(1);
            r.cx_run(|s, cx| s.poll(cx, Budget(64)));
            r.io.out.clear();
        }
    }
    let text = r.command("show sctp");
    assert!(text.starts_with("sctp: udp port 9899"), "{text}");
}

/// A message larger than the receive limit comes in pieces: the sink counts it once with all
/// its bytes; the echo sends each piece back as a part of one message, so the peer gets it
/// whole (here in pieces too, its own receive limit being smaller), then what follows.
#[test]
fn a_message_larger_than_the_receive_limit_is_read_in_pieces_and_echoed_whole() {
    let config = SctpConfig { receive_limit: 64 * 1024, send_limit: 64 * 1024, ..SctpConfig::default() };
    let mut r = Rig::new(config, Transport::Ip);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for port in [5001, 7] {
        let id = r.up(port);
        r.peer.send(id, 0, 1, false, &big).unwrap();
        r.peer.send(id, 0, 2, false, b"after").unwrap();
    }
    let ok =
        r.run_until(30_000, |r| r.service(5001).stats.messages == 2 && r.messages().iter().any(|m| m.1 == 2));
    assert!(ok, "sink {:?}, echo {:?}", r.service(5001).stats, r.service(7).stats);
    let sink = r.service(5001).stats;
    assert_eq!((sink.messages, sink.bytes), (2, big.len() as u64 + 5));
    let echo = r.service(7).stats;
    assert_eq!((echo.messages, echo.echoed, echo.echo_dropped), (2, 2, 0));
    assert!(echo.echo_stalls > 0, "the echo waited for its send queue: {echo:?}");
    // Back at the peer: the pieces of PPID 1, in order, then 2.
    let ends: Vec<(u32, bool)> = r
        .got
        .iter()
        .filter_map(|e| match e {
            Event::Message { ppid, end, .. } => Some((*ppid, *end)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.iter().filter(|(_, end)| *end).copied().collect::<Vec<_>>(), [(1, true), (2, true)]);
    let whole: Vec<u8> = r.messages().into_iter().filter(|m| m.1 == 1).flat_map(|m| m.3).collect();
    assert!(whole == big, "the echo is the message: {} of {} bytes", whole.len(), big.len());
}

/// An ICMP error quoting `sent` (an appliance packet seen on the wire), from a router.
fn icmp_about(sent: &Sent, code: u8, next_hop_mtu: u16) -> (Sent, u8, u16) {
    (sent.clone(), code, next_hop_mtu)
}

fn deliver_icmp(r: &mut Rig, (sent, code, next_hop_mtu): &(Sent, u8, u16)) -> Delivery {
    let header = if sent.ports.is_some() { 28 } else { 20 };
    let quoted = Datagram {
        src: sent.src,
        dst: sent.dst,
        protocol: sent.protocol,
        ports: sent.ports,
        payload: &sent.payload[..8.min(sent.payload.len())],
    };
    let ip_len = (sent.payload.len() + header) as u16;
    let from = Ipv4Addr::new(192, 0, 2, 254);
    let error = IcmpError { from, code: *code, next_hop_mtu: *next_hop_mtu, ip_len, quoted };
    r.cx_run(|s, cx| s.receive(cx, Inbound::IcmpError(error)))
}

fn a_smaller_path_mtu_is_learned_from_icmp(transport: Transport) {
    let mut r = Rig::new(SctpConfig::default(), transport);
    let id = r.up(7);
    // A full-sized packet of the appliance's: a 4000-byte echo.
    let data: Vec<u8> = (0..4000u32).map(|b| (b * 7) as u8).collect();
    r.peer.send(id, 0, 1, false, &data).unwrap();
    assert!(r.run_until(5_000, |r| r.messages().len() == 1), "no echo");
    let sent = r.wire.iter().max_by_key(|d| d.payload.len()).unwrap().clone();
    assert!(sent.payload.len() > 1400);
    // Port unreachable is not acted on (appendix C, ICMP3).
    assert_eq!(deliver_icmp(&mut r, &icmp_about(&sent, 3, 0)), Delivery::Taken);
    assert_eq!(r.running().counters.icmp_not_acted_on, 1);
    // Fragmentation needed, 1280: the association's path towards the peer takes it.
    assert_eq!(deliver_icmp(&mut r, &icmp_about(&sent, 4, 1280)), Delivery::Taken);
    let ours = r.service(7).endpoint.associations().next().unwrap();
    let status = r.service(7).endpoint.status(ours).unwrap();
    let path = status.paths.iter().find(|p| p.addr == sent.dst).unwrap();
    assert_eq!((path.mtu, status.counters.pmtu_decreases), (1280, 1));
    let json = r.command("show sctp json");
    assert!(json.contains("\"mtu\":1280") && json.contains("\"icmp_too_big\":1"), "{json}");
    // Echoes are now cut to fit: no packet from the appliance is over 1280 bytes.
    r.wire.clear();
    let data: Vec<u8> = (0..9000u32).map(|b| b as u8).collect();
    r.peer.send(id, 1, 9, false, &data).unwrap();
    let ok = r.run_until(10_000, |r| r.messages().len() == 2);
    assert!(ok, "no echo");
    assert_eq!(r.messages()[1].3, data);
    let header = if sent.ports.is_some() { 28 } else { 20 };
    let largest = r.wire.iter().map(|d| d.payload.len() + header).max().unwrap_or(0);
    assert!(largest <= 1280 && largest > 1000, "largest packet {largest}");
}

#[test]
fn a_smaller_path_mtu_is_learned_from_icmp_over_raw_ip() {
    a_smaller_path_mtu_is_learned_from_icmp(Transport::Ip);
}

#[test]
fn a_smaller_path_mtu_is_learned_from_icmp_over_udp() {
    a_smaller_path_mtu_is_learned_from_icmp(Transport::Udp { peer_port: 9899 });
}
