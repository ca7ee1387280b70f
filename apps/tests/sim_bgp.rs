//! BGP in the simulated loop: the real BGP subsystem, forwarder and platform with the real
//! allocator, against a scripted BGP peer on nic0's wire (a smoltcp host driving the
//! `bulkhead-bgp` session FSM as the other speaker). Establish, receive, advertise, withdraw,
//! routes into the FIB, a connection from an unknown address refused, a malformed UPDATE
//! answered with the right NOTIFICATION, and a shed that says Cease 8 and leaves the `bgp`
//! domain at its baseline. Cases run one after another on the main thread.

use bulkhead_apps::bgp::BgpSubsystem;
use bulkhead_apps::bmp::{BmpConfig, BmpSubsystem, Collector};
use bulkhead_apps::books::AllocatorBooks;
use bulkhead_apps::config::{Config, ForwarderConfig};
use bulkhead_apps::domain::{Domain, Quota};
use bulkhead_apps::forwarder::ForwarderSubsystem;
use bulkhead_apps::platform::Platform;
use bulkhead_apps::supervisor::{RestartPolicy, Subsystem};
use bulkhead_apps::time::{Duration, Instant};
use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;
use bulkhead_bgp::neighbor::{Action, ConnId, Direction, DownReason, Neighbor, NeighborConfig, State};
use bulkhead_bgp::packet::attribute::{AsPath, NextHop, PathAttributes};
use bulkhead_bgp::packet::error::{CeaseSubcode, ErrorCode, UpdateSubcode};
use bulkhead_bgp::packet::nlri::{Ipv4Prefix, Prefix};
use bulkhead_bgp::packet::update;
use bulkhead_bgp::policy::Policy;
use bulkhead_bgp::rib::{PeerConfig, Rib, RibConfig};
use bulkhead_mem::HostHeap;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

mod common;

use common::*;

#[global_allocator]
static HEAP: HostHeap = HostHeap::new();

/// The scripted speaker at 192.0.2.2, AS 65001: a `Neighbor` over a smoltcp socket that
/// listens on 179 (the appliance opens the session) and logs every action.
struct Speaker {
    fsm: Neighbor,
    socket: SocketHandle,
    up: bool,
    log: Vec<Action>,
    dir: Direction,
}

const PEER_CONN: ConnId = ConnId(1);

impl Speaker {
    fn new(peer: &mut Peer) -> Speaker {
        let mut socket =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 65536]), tcp::SocketBuffer::new(vec![0; 65536]));
        socket.listen(179).unwrap();
        let socket = peer.sockets.add(socket);
        let mut cfg = NeighborConfig::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2));
        cfg.passive = true;
        let mut fsm = Neighbor::new(cfg);
        fsm.start(Instant::ZERO);
        Speaker { fsm, socket, up: false, log: Vec::new(), dir: Direction::Incoming }
    }

    /// The speaker opens the session (to a passive neighbor), from port 40179.
    fn connecting(peer: &mut Peer) -> Speaker {
        let mut socket =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 65536]), tcp::SocketBuffer::new(vec![0; 65536]));
        let remote = IpEndpoint::new(IpAddress::v4(192, 0, 2, 1), 179);
        let local = IpListenEndpoint { addr: Some(IpAddress::v4(192, 0, 2, 2)), port: 40179 };
        socket.connect(peer.iface.context(), remote, local).unwrap();
        let socket = peer.sockets.add(socket);
        let mut fsm = Neighbor::new(NeighborConfig::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2)));
        fsm.start(Instant::ZERO);
        let _ = fsm.pop_action(); // Connect: the socket above is that connection
        Speaker { fsm, socket, up: false, log: Vec::new(), dir: Direction::Outgoing }
    }

    fn run(&mut self, peer: &mut Peer, now: Instant) {
        let socket = peer.sockets.get_mut::<tcp::Socket>(self.socket);
        if !self.up && socket.state() == tcp::State::Established {
            self.up = true;
            self.fsm.tcp_connected(now, PEER_CONN, self.dir);
        }
        if self.up {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = socket.recv_slice(&mut buf) {
                self.fsm.tcp_received(now, PEER_CONN, &buf[..n]);
            }
            self.fsm.poll(now);
            let out = self.fsm.pending_output(PEER_CONN).to_vec();
            let n = socket.send_slice(&out).unwrap_or(0);
            self.fsm.output_written(now, PEER_CONN, n);
        }
        while let Some(a) = self.fsm.pop_action() {
            if let Action::Close { last, .. } = &a {
                let _ = socket.send_slice(last);
                socket.close();
            }
            self.log.push(a);
        }
    }

    fn announce(&mut self, now: Instant, prefixes: &[Prefix], path: &[u32]) {
        let attrs = PathAttributes {
            as_path: AsPath::from_sequence(path),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 2))),
            ..PathAttributes::default()
        };
        let ctx = self.fsm.negotiated().unwrap().ctx;
        for m in update::pack_announce(&attrs, prefixes, ctx, 4096).unwrap() {
            self.fsm.send_update(now, &m).unwrap();
        }
    }

    fn withdraw(&mut self, now: Instant, prefixes: &[Prefix]) {
        let ctx = self.fsm.negotiated().unwrap().ctx;
        for m in update::pack_withdraw(prefixes, ctx, 4096).unwrap() {
            self.fsm.send_update(now, &m).unwrap();
        }
    }

    /// Prefixes the appliance announced to this speaker, with their AS_PATH.
    fn received(&self) -> Vec<(Prefix, Vec<u32>, Option<NextHop>)> {
        let mut out = Vec::new();
        for a in &self.log {
            if let Action::Update(u) = a {
                for p in u.update.announced() {
                    let attrs = u.update.attributes.clone().unwrap_or_default();
                    let path = attrs.as_path.segments.iter().flat_map(|s| s.asns.clone()).collect();
                    out.push((p, path, attrs.next_hop));
                }
            }
        }
        out
    }
}

use core::net::Ipv4Addr;

struct Sim {
    platform: Platform<AllocatorBooks>,
    peer: Peer,
    nic1_out: Wire,
    now: Instant,
}

const CONFIG: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
networks = ["10.99.0.0/16"]
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "all"
export = "all"
"#;

impl Sim {
    fn new(seed: u64, config: &str) -> Sim {
        Sim::build(seed, config, QUOTA)
    }

    /// `bgp_room`: what the `bgp` domain may hold beyond what it holds now (this process's
    /// earlier cases leave it chunks), soft at 3/4 of that; every other domain has `QUOTA`.
    fn build(seed: u64, config: &str, bgp_room: usize) -> Sim {
        Sim::assemble(seed, config, bgp_room, None)
    }

    /// With a BMP subsystem reading BGP and exporting to a collector at 192.0.2.2:`port`.
    fn with_bmp(seed: u64, config: &str, port: u16) -> Sim {
        let bmp = BmpConfig {
            collectors: vec![Collector { address: Ipv4Addr::new(192, 0, 2, 2), port }],
            stats_interval: None,
            ..BmpConfig::default()
        };
        Sim::assemble(seed, config, QUOTA, Some(bmp))
    }

    fn assemble(seed: u64, config: &str, bgp_room: usize, bmp: Option<BmpConfig>) -> Sim {
        let allocator = HEAP.allocator();
        let held = allocator.stats(Domain::Bgp).used;
        let quotas = std::array::from_fn(|d| match d == Domain::Bgp as usize {
            true => Quota { hard: held + bgp_room, soft: held + bgp_room * 3 / 4 },
            false => Quota { hard: QUOTA, soft: QUOTA * 3 / 4 },
        });
        allocator.set_quotas(quotas, 8 << 20).unwrap();
        let TwoNics { ports, plan, to0, from0, from1 } = two_nics(allocator, &ForwarderConfig::default());
        let bgp = Config::parse(config).unwrap().bgp;
        let rng = Box::new(Csprng::seed_from_u64(seed));
        let mut platform = Platform::new(AllocatorBooks(allocator), ports, rng, true, Instant::ZERO);
        let bgp = BgpSubsystem::new(bgp);
        let mut subsystems: Vec<Box<dyn Subsystem>> =
            vec![Box::new(ForwarderSubsystem::new(plan, &NIC_NAMES)), Box::new(bgp)];
        if let Some(bmp) = bmp {
            subsystems.push(Box::new(BmpSubsystem::new(bmp).reading::<BgpSubsystem>()));
        }
        for s in subsystems {
            let policy =
                RestartPolicy { initial_backoff: Duration::from_millis(1), ..RestartPolicy::default() };
            platform.add(s, policy).unwrap();
        }
        platform.start(Instant::ZERO);
        let peer = Peer::new(to0, from0);
        Sim { platform, peer, nic1_out: from1, now: Instant::ZERO }
    }

    /// One millisecond: the appliance's turn, the peer host's, then the speaker's.
    fn step(&mut self, speaker: &mut Speaker) {
        self.now = self.now + Duration::from_millis(1);
        let now = self.now;
        self.platform.turn(now, &|| now);
        self.peer.poll(now);
        speaker.run(&mut self.peer, now);
        self.peer.poll(now);
        self.nic1_out.borrow_mut().clear();
        self.peer.seen.clear();
    }

    fn run_until(
        &mut self,
        speaker: &mut Speaker,
        limit_ms: u64,
        mut done: impl FnMut(&mut Sim, &mut Speaker) -> bool,
    ) -> bool {
        for _ in 0..limit_ms {
            if done(self, speaker) {
                return true;
            }
            self.step(speaker);
        }
        done(self, speaker)
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

    /// The footprint and number of the domain's live blocks (what it holds, whole chunks aside).
    fn live(&self, d: Domain) -> (usize, usize) {
        let s = HEAP.allocator().stats(d);
        (s.live, s.blocks)
    }

    fn bgp_routes_in_fib(&mut self) -> usize {
        self.console("show route json").matches("\"bgp\"").count()
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Prefix {
    Prefix::V4(Ipv4Prefix::new(Ipv4Addr::new(a, b, c, d), len).unwrap())
}

fn established(sim: &mut Sim, speaker: &mut Speaker) {
    let up = sim.run_until(speaker, 20_000, |_, sp| sp.fsm.state() == State::Established);
    assert!(up, "no session: {:?}\n{}", speaker.log, sim.console("show protocols"));
    let json = sim.console("show protocols json");
    assert!(json.contains("\"state\":\"Established\""), "{json}");
}

/// Establish, receive routes into the Loc-RIB and the FIB, advertise our network, withdraw.
fn routes_in_and_out() {
    let mut sim = Sim::new(1, CONFIG);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    let prefixes = [v4(10, 1, 0, 0, 16), v4(10, 2, 0, 0, 16), v4(10, 3, 0, 0, 24)];
    let now = sim.now;
    sp.announce(now, &prefixes, &[65001, 65010]);
    let installed = sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 3);
    assert!(installed, "{}", sim.console("show route"));
    let json = sim.console("show protocols json");
    assert!(json.contains("\"received\":3,\"accepted\":3"), "{json}");
    // The forwarder restarts: BGP announces its best routes again.
    assert!(sim.console("debug shed forwarder").contains("ok"));
    let back = sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 3);
    assert!(back, "not announced again: {}", sim.console("show route"));
    let route = sim.console("show route 10.2.0.0/16 json");
    assert!(route.contains("\"as_path\":\"65001 65010\""), "{route}");
    assert!(route.contains("\"next_hop\":\"192.0.2.2\""), "{route}");
    // Our network goes out with our AS prepended and us as the next hop; End-of-RIB follows.
    let advertised = sim.run_until(&mut sp, 2_000, |_, sp| !sp.received().is_empty());
    assert!(advertised, "{:?}", sp.log);
    let got = sp.received();
    assert_eq!(got.len(), 1, "only our network: never a route back to its peer: {got:?}");
    assert_eq!(got[0].0, v4(10, 99, 0, 0, 16));
    assert_eq!(got[0].1, vec![65000]);
    assert_eq!(got[0].2, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))));
    let now = sim.now;
    sp.withdraw(now, &prefixes[..1]);
    let withdrawn = sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 2);
    assert!(withdrawn, "{}", sim.console("show route"));
    assert!(!sim.console("show route 10.1.0.0/16").contains("best"), "gone from the Loc-RIB");
}

/// A connection from an address that is not a neighbor gets an RST and is counted.
fn strangers_are_refused() {
    let mut sim = Sim::new(2, CONFIG);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    let mut socket =
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
    let local = IpListenEndpoint { addr: Some(IpAddress::v4(192, 0, 2, 3)), port: 40100 };
    socket
        .connect(sim.peer.iface.context(), IpEndpoint::new(IpAddress::v4(192, 0, 2, 1), 179), local)
        .unwrap();
    let h = sim.peer.sockets.add(socket);
    let reset = sim
        .run_until(&mut sp, 3_000, |s, _| s.peer.sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed);
    assert!(reset, "the stranger was not reset");
    assert!(sim.console("show protocols json").contains("\"refused_connections\":1"));
    assert_eq!(sp.fsm.state(), State::Established, "the neighbor's session is untouched");
}

/// A malformed UPDATE (attribute lengths that do not add up) is answered with NOTIFICATION
/// UPDATE Message Error / Malformed Attribute List, and the session drops.
fn a_malformed_update_gets_its_notification() {
    let mut sim = Sim::new(3, CONFIG);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    // RFC 7606: an attribute overrunning the attribute field, with the NLRI still found, is
    // treat-as-withdraw: 10.5.0.0/16 goes, the session stays.
    let now = sim.now;
    sp.announce(now, &[v4(10, 5, 0, 0, 16)], &[65001]);
    assert!(sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 1));
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 30, 2, 0, 0, 0, 4, 0x40, 1, 5, 0, 16, 10, 5]);
    sim.peer.sockets.get_mut::<tcp::Socket>(sp.socket).send_slice(&m).unwrap();
    assert!(sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 0), "not withdrawn");
    assert_eq!(sp.fsm.state(), State::Established);
    // Withdrawn Routes Length beyond the message: session reset, NOTIFICATION 3/1.
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 23, 2, 0, 10, 0, 0]);
    sim.peer.sockets.get_mut::<tcp::Socket>(sp.socket).send_slice(&m).unwrap();
    let told = sim.run_until(&mut sp, 2_000, |_, sp| {
        sp.log.iter().any(|a| matches!(a, Action::Down { reason: DownReason::NotificationReceived(_), .. }))
    });
    assert!(told, "{:?}\n{}", sp.log, sim.console("show protocols"));
    let code = sp.log.iter().find_map(|a| match a {
        Action::Down { reason: DownReason::NotificationReceived(n), .. } => Some(n.code),
        _ => None,
    });
    assert_eq!(code, Some(ErrorCode::UpdateMessage(UpdateSubcode::MalformedAttributeList)));
    assert!(
        sim.console("show protocols").contains("sent NOTIFICATION 3/1"),
        "{}",
        sim.console("show protocols")
    );
}

/// A shed sends Cease / Out of Resources to the peer, withdraws BGP's routes from the FIB and
/// leaves the `bgp` domain at its baseline; BGP comes back and the session with it.
fn a_shed_says_cease_8_and_leaves_nothing() {
    let mut sim = Sim::new(4, CONFIG);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    let now = sim.now;
    sp.announce(now, &[v4(10, 7, 0, 0, 16)], &[65001]);
    assert!(sim.run_until(&mut sp, 2_000, |s, _| s.bgp_routes_in_fib() == 1));
    let during = sim.used(Domain::Bgp);
    assert!(sim.console("debug shed bgp").contains("ok"));
    let told = sim.run_until(&mut sp, 2_000, |_, sp| {
        sp.log.iter().any(|a| matches!(a, Action::Down { reason: DownReason::NotificationReceived(_), .. }))
    });
    assert!(told, "{:?}", sp.log);
    let code = sp.log.iter().find_map(|a| match a {
        Action::Down { reason: DownReason::NotificationReceived(n), .. } => Some(n.code),
        _ => None,
    });
    assert_eq!(code, Some(ErrorCode::Cease(CeaseSubcode::OutOfResources)));
    assert_eq!(sim.bgp_routes_in_fib(), 0, "a shed source's routes go");
    let report = sim.platform.supervisor().report(Domain::Bgp).unwrap();
    assert!(sim.used(Domain::Bgp).0 < during.0, "the session's state went with the shed");
    assert_eq!(report.leaks, 0, "the bgp domain is back to its baseline at the shed: {report:?}");
}

/// When every session has gone down, the `bgp` domain is back to what it held before, to the
/// byte: the session, its routes in both RIBs, its socket and the work lists are all given back.
/// Measured from the end of a first session on: that first session leaves one block behind
/// (the session FSM's action queue keeps its capacity; `net/bgp`'s to change), and nothing
/// after it may grow.
fn sessions_gone_domain_at_baseline() {
    let config = CONFIG.replace("export = \"all\"", "export = \"all\"\npassive = true");
    let mut sim = Sim::new(5, &config);
    let mut quiet = Speaker::new(&mut sim.peer); // listens, never used: the same sockets each time
    sim.run_until(&mut quiet, 200, |_, _| false);
    let before_any = sim.live(Domain::Bgp);
    let mut baseline = None;
    for round in 0..3 {
        let mut sp = Speaker::connecting(&mut sim.peer);
        let up = sim.run_until(&mut sp, 5_000, |_, sp| sp.fsm.state() == State::Established);
        assert!(up, "round {round}: {:?}", sp.log);
        let now = sim.now;
        let prefixes: Vec<Prefix> = (0..200u8).map(|i| v4(10, 40, i, 0, 24)).collect();
        sp.announce(now, &prefixes, &[65001, 65020]);
        assert!(sim.run_until(&mut sp, 3_000, |s, _| s.bgp_routes_in_fib() == 200), "round {round}");
        assert!(sim.run_until(&mut sp, 3_000, |_, sp| !sp.received().is_empty()), "our network sent");
        assert!(sim.live(Domain::Bgp).0 > before_any.0 + 200 * 16, "a session with routes costs bgp");
        let now = sim.now;
        sp.fsm.stop(now, CeaseSubcode::AdministrativeShutdown, None);
        let gone = sim.run_until(&mut sp, 5_000, |s, _| {
            s.bgp_routes_in_fib() == 0 && s.console("show protocols json").contains("\"state\":\"Idle\"")
        });
        assert!(gone, "round {round}: {}", sim.console("show protocols"));
        sim.run_until(&mut sp, 3_000, |_, _| false); // the closing socket lingers, then goes
        let after = sim.live(Domain::Bgp);
        match baseline {
            None => {
                assert!(
                    after.1 <= before_any.1 + 1 && after.0 <= before_any.0 + 1024,
                    "{after:?} vs {before_any:?}"
                );
                baseline = Some(after);
            }
            Some(b) => {
                assert_eq!(after, b, "round {round}: bgp (live bytes, blocks) after every session went")
            }
        }
        sim.peer.sockets.remove(sp.socket);
    }
}

/// Past the soft threshold BGP stops reading: a peer that sends more than the domain can hold
/// is read at the rate the RIB can take it (here: not at all once full), its TCP window closes,
/// and BGP is never shed for it.
fn a_full_rib_stops_reading_instead_of_growing() {
    let mut sim = Sim::build(6, CONFIG, 2 << 20);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    // More than the 2 MiB domain holds (about 30 bytes a prefix in the RIBs), and more than the
    // TCP windows hold of the rest.
    let prefixes: Vec<Prefix> = (0..120_000u32)
        .map(|i| Prefix::V4(Ipv4Prefix::new(Ipv4Addr::from(0x1000_0000 + (i << 8)), 24).unwrap()))
        .collect();
    let mut sent = 0;
    let mut fed = |sp: &mut Speaker, now: Instant| {
        while sent < prefixes.len() && sp.fsm.output_room() > 8192 {
            let end = (sent + 1000).min(prefixes.len());
            sp.announce(now, &prefixes[sent..end], &[65001]);
            sent = end;
        }
    };
    for _ in 0..3_000 {
        let now = sim.now;
        fed(&mut sp, now);
        sim.step(&mut sp);
    }
    let received = sim.console("show protocols json");
    let row: Vec<&str> = received.split("\"received\":").collect();
    let count: usize = row.get(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(count > 0 && count < prefixes.len(), "read some, not all: {count}");
    let stats = HEAP.allocator().stats(Domain::Bgp);
    assert!(stats.used <= stats.hard, "{} over the quota {}", stats.used, stats.hard);
    let report = sim.platform.supervisor().report(Domain::Bgp).unwrap();
    assert_eq!(report.sheds, 0, "never shed for a fast peer: {report:?}");
    let queued = sim.peer.sockets.get::<tcp::Socket>(sp.socket).send_queue();
    assert!(queued > 0, "the peer is held back by TCP");
    assert_eq!(sp.fsm.state(), State::Established, "the session stays up");
    // Still stalled later: nothing grows while the peer waits.
    let before = sim.used(Domain::Bgp);
    for _ in 0..1_000 {
        let now = sim.now;
        fed(&mut sp, now);
        sim.step(&mut sp);
    }
    assert!(sim.used(Domain::Bgp).0 <= before.0 + (64 << 10), "{:?} vs {before:?}", sim.used(Domain::Bgp));
}

/// BGP told through the contract and read by the real BMP subsystem: a collector on the peer
/// host hears Initiation, the session's Peer Up and its routes in Route Monitoring messages,
/// and Peer Down when the session ends.
fn a_bmp_collector_hears_bgp() {
    let mut sim = Sim::with_bmp(7, CONFIG, 11019);
    let mut collector =
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 1 << 20]), tcp::SocketBuffer::new(vec![0; 4096]));
    collector.listen(11019).unwrap();
    let collector = sim.peer.sockets.add(collector);
    let mut sp = Speaker::new(&mut sim.peer);
    established(&mut sim, &mut sp);
    let now = sim.now;
    sp.announce(now, &[v4(10, 1, 0, 0, 16), v4(10, 2, 0, 0, 16)], &[65001]);
    assert!(sim.run_until(&mut sp, 3_000, |s, _| s.bgp_routes_in_fib() == 2));
    let now = sim.now;
    sp.fsm.stop(now, CeaseSubcode::AdministrativeShutdown, None);
    let mut bytes = Vec::new();
    let mut kinds = Vec::new();
    let heard = sim.run_until(&mut sp, 10_000, |s, _| {
        let socket = s.peer.sockets.get_mut::<tcp::Socket>(collector);
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = socket.recv_slice(&mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
        // BMP common header: version 3, 4-octet length, type.
        while bytes.len() >= 6 && bytes[0] == 3 {
            let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
            if len < 6 || bytes.len() < len {
                break;
            }
            kinds.push(bytes[5]);
            bytes.drain(..len);
        }
        kinds.contains(&2)
    });
    assert!(heard, "BMP message types heard: {kinds:?}");
    assert_eq!(kinds.first(), Some(&4), "Initiation first: {kinds:?}");
    let up = kinds.iter().position(|k| *k == 3).expect("Peer Up");
    let monitoring = kinds.iter().position(|k| *k == 0).expect("Route Monitoring");
    let down = kinds.iter().position(|k| *k == 2).expect("Peer Down");
    assert!(up < monitoring && monitoring < down, "{kinds:?}");
}

/// Not a test: the BGP core (session FSM and RIB, no platform) on the host over real TCP
/// sockets, for `make bench` (`qemu/bench/src/bgp.rs`), run only when named: listens on
/// `$BGP_BENCH_LISTEN` (default 10.9.0.1:179), takes `$BGP_BENCH_PEERS` sessions from AS 65001,
/// and when every one has sent End-of-RIB prints `bench_core paths=N seconds=S bytes=B`:
/// S from the first UPDATE to the last End-of-RIB processed, B the true bytes the core holds
/// then (everything it allocated, booked to the `bgp` domain by the real allocator).
fn bench_core() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let listen = std::env::var("BGP_BENCH_LISTEN").unwrap_or_else(|_| "10.9.0.1:179".into());
    let peers: usize = std::env::var("BGP_BENCH_PEERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let listener = TcpListener::bind(&listen).expect("listen");
    println!("listening on {listen}");
    let _ = std::io::stdout().flush();
    let _bgp = HEAP.allocator().enter(Domain::Bgp);
    let before = HEAP.allocator().stats(Domain::Bgp).used;
    let local = Ipv4Addr::new(10, 9, 0, 1);
    let mut rib = Rib::<Ipv4Prefix>::new(RibConfig::new(65000, local));
    let cost = |_: &NextHop| Some(0u32);
    let epoch = std::time::Instant::now();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut sessions: Vec<(std::net::TcpStream, Neighbor, bulkhead_bgp::rib::PeerId, ConnId, bool)> =
        Vec::new();
    listener.set_nonblocking(true).expect("nonblocking");
    let mut first: Option<std::time::Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while sessions.len() < peers || sessions.iter().any(|s| !s.4) {
        let mut idle = true;
        if sessions.len() < peers {
            if let Ok((stream, from)) = listener.accept() {
                stream.set_nonblocking(true).expect("nonblocking");
                let id = rib
                    .add_peer(PeerConfig {
                        addr: from.ip(),
                        remote_as: 65001,
                        next_hop_self: NextHop::V4(local),
                        rr_client: false,
                        import: Some(Policy::accept_all()),
                        export: Some(Policy::default()),
                        prefix_limit: None,
                    })
                    .expect("peer");
                let mut cfg = NeighborConfig::new(65000, 65001, local);
                cfg.passive = true;
                cfg.families = vec![bulkhead_bgp::packet::nlri::Family::Ipv4Unicast];
                let mut fsm = Neighbor::new(cfg);
                fsm.start(now());
                let conn = ConnId(sessions.len() as u32);
                fsm.tcp_connected(now(), conn, Direction::Incoming);
                sessions.push((stream, fsm, id, conn, false));
                idle = false;
            }
        }
        for (stream, fsm, id, conn, done) in sessions.iter_mut() {
            match stream.read(&mut buf) {
                Ok(0) => panic!("a feeder closed its session"),
                Ok(n) => {
                    idle = false;
                    fsm.tcp_received(now(), *conn, &buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
            while let Some(action) = fsm.pop_action() {
                match action {
                    Action::Established(n) => rib.peer_up(*id, n.peer_id).expect("peer up"),
                    Action::Update(u) => {
                        first.get_or_insert_with(std::time::Instant::now);
                        let attrs = u.update.attributes.unwrap_or_default();
                        rib.update(*id, &u.update.withdrawn, &u.update.nlri, &attrs, &cost).expect("update");
                    }
                    Action::EndOfRib(_) => *done = true,
                    Action::Down { reason, .. } => panic!("session down: {reason:?}"),
                    _ => {}
                }
            }
            let out = fsm.pending_output(*conn).to_vec();
            if !out.is_empty() {
                let n = stream.write(&out).unwrap_or(0);
                fsm.output_written(now(), *conn, n);
            }
        }
        if idle {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let paths: usize = sessions.iter().map(|s| rib.peer_counts(s.2).map_or(0, |c| c.received)).sum();
    let bytes = HEAP.allocator().stats(Domain::Bgp).used - before;
    println!("bench_core paths={paths} seconds={seconds:.6} bytes={bytes} best={}", rib.loc_rib().len());
    let _ = std::io::stdout().flush();
}

fn main() {
    let cases: [(&str, fn()); 7] = [
        ("routes_in_and_out", routes_in_and_out),
        ("strangers_are_refused", strangers_are_refused),
        ("a_malformed_update_gets_its_notification", a_malformed_update_gets_its_notification),
        ("a_shed_says_cease_8_and_leaves_nothing", a_shed_says_cease_8_and_leaves_nothing),
        ("sessions_gone_domain_at_baseline", sessions_gone_domain_at_baseline),
        ("a_full_rib_stops_reading_instead_of_growing", a_full_rib_stops_reading_instead_of_growing),
        ("a_bmp_collector_hears_bgp", a_bmp_collector_hears_bgp),
    ];
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if filter.as_deref() == Some("bench_core") {
        bench_core();
        return;
    }
    common::run_cases(&cases);
}
