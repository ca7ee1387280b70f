//! BMP in the simulated loop: the real BMP subsystem, forwarder and platform with the real
//! allocator, a fake BGP subsystem in the `bgp` domain (a real `bulkhead_bgp` RIB behind the
//! contract: it offers its tables with `peek` and tells its events with `tell`), and a smoltcp
//! host on nic0's wire as two collectors that decode the BMP stream with
//! `bulkhead_bmp::packet::Message::parse_bytes`. A live collector gets Initiation, Peer Up,
//! every prefix packed many to a Route Monitoring message, Peer Down and Termination; a stalled
//! one (it accepts and never reads) is dropped at its queue's bound and re-synchronised by a
//! fresh dump when it is back; BGP never sees a refusal; a cycle of routes in and out leaves
//! the `bmp` domain where it was, to the byte and the block, and a shed leaves nothing.
//! Cases run one after another on the main thread.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

use bulkhead_apps::bmp::{self, BgpCursor, BgpView, BmpConfig, BmpSubsystem, Collector};
use bulkhead_apps::books::AllocatorBooks;
use bulkhead_apps::config::ForwarderConfig;
use bulkhead_apps::context::Context;
use bulkhead_apps::domain::{Domain, Quota};
use bulkhead_apps::forwarder::ForwarderSubsystem;
use bulkhead_apps::platform::Platform;
use bulkhead_apps::supervisor::{Budget, PollOutcome, RestartPolicy, StartError, Subsystem};
use bulkhead_apps::time::{Duration, Instant};
use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;
use bulkhead_bgp::packet::attribute::{AsPath, NextHop, PathAttributes, SessionContext};
use bulkhead_bgp::packet::nlri::{Ipv4Prefix, Ipv6Prefix, Prefix as BgpPrefix};
use bulkhead_bgp::packet::update::Update;
use bulkhead_bgp::policy::Policy;
use bulkhead_bgp::rib::{PeerConfig, PeerId as RibPeer, Rib, RibConfig, RibView};
use bulkhead_bmp::packet::{Message, PeerFlags, PeerHeader, PeerType};
use bulkhead_bmp::{DownReason, Family, PeerUpInfo};
use bulkhead_mem::HostHeap;
use core::net::{IpAddr, Ipv4Addr};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

mod common;

use common::*;

#[global_allocator]
static HEAP: HostHeap = HostHeap::new();

const LIVE_PORT: u16 = 1790;
const STALLED_PORT: u16 = 1791;
/// The feed: this many /24s, told in batches of `BATCH` (one event per BGP poll).
const PREFIXES: u32 = 40_000;
const BATCH: u32 = 1000;
const SESSION: u64 = 7;

// ---- the fake BGP -------------------------------------------------------------------------------

/// What the test asks the fake BGP to do, one step per poll.
enum Step {
    Up,
    Announce(Vec<Ipv4Prefix>),
    /// Several UPDATEs applied in one poll, each told to BMP at once.
    Burst(Vec<Vec<Ipv4Prefix>>),
    Down,
}

/// The `bgp` domain's stand-in: one session (number `session`) into a real RIB, read by BMP
/// through `peek`, its changes told to BMP. It counts what BMP refused: it never waits on it.
struct FakeBgp {
    rib: Rib<Ipv4Prefix>,
    rib6: Rib<Ipv6Prefix>,
    empty4: Rib<Ipv4Prefix>,
    empty6: Rib<Ipv6Prefix>,
    peer: RibPeer,
    peer6: RibPeer,
    session: u64,
    up: bool,
    attrs: PathAttributes,
    script: Rc<RefCell<VecDeque<Step>>>,
    told: Rc<Cell<u64>>,
    refused: Rc<Cell<u64>>,
}

fn open_message(asn: u16, id: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&29u16.to_be_bytes());
    m.extend_from_slice(&[1, 4]);
    m.extend_from_slice(&asn.to_be_bytes());
    m.extend_from_slice(&90u16.to_be_bytes());
    m.extend_from_slice(&id);
    m.push(0);
    m
}

impl FakeBgp {
    fn new(script: Rc<RefCell<VecDeque<Step>>>, told: Rc<Cell<u64>>, refused: Rc<Cell<u64>>) -> FakeBgp {
        let config = RibConfig::new(65000, Ipv4Addr::new(192, 0, 2, 1));
        let (mut rib, mut rib6, mut empty4, mut empty6) =
            (Rib::new(config), Rib::new(config), Rib::new(config), Rib::new(config));
        let peer_config = PeerConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
            remote_as: 65001,
            next_hop_self: NextHop::V4(Ipv4Addr::new(198, 51, 100, 1)),
            rr_client: false,
            import: Some(Policy::accept_all()),
            export: None,
            prefix_limit: None,
        };
        let peer = rib.add_peer(peer_config.clone()).unwrap();
        let peer6 = rib6.add_peer(peer_config.clone()).unwrap();
        assert_eq!(empty4.add_peer(peer_config.clone()).unwrap(), peer);
        assert_eq!(empty6.add_peer(peer_config).unwrap(), peer6);
        let attrs = PathAttributes {
            as_path: AsPath::from_sequence(&[65001, 65010]),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(198, 51, 100, 9))),
            ..PathAttributes::default()
        };
        FakeBgp {
            rib,
            rib6,
            empty4,
            empty6,
            peer,
            peer6,
            session: SESSION,
            up: false,
            attrs,
            script,
            told,
            refused,
        }
    }

    fn info(&self) -> PeerUpInfo {
        PeerUpInfo {
            header: PeerHeader {
                peer_type: PeerType::Global,
                flags: PeerFlags(0),
                distinguisher: [0; 8],
                address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
                asn: 65001,
                bgp_id: Ipv4Addr::new(10, 0, 0, 9),
                timestamp_secs: 0,
                timestamp_micros: 0,
            },
            local_address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            local_port: 179,
            remote_port: 40179,
            sent_open: open_message(65000, [192, 0, 2, 1]),
            received_open: open_message(65001, [10, 0, 0, 9]),
            table_name: None,
            families: vec![Family::IPV4_UNICAST],
        }
    }
}

impl BgpView for FakeBgp {
    fn sessions(&self, out: &mut Vec<u64>) {
        if self.up {
            out.push(self.session);
        }
    }
    fn peer_up(&self, session: u64) -> Option<PeerUpInfo> {
        (self.up && session == self.session).then(|| self.info())
    }
    fn loc_rib_up(&self) -> Option<PeerUpInfo> {
        None
    }
    fn adj_rib_in_page<'a>(
        &'a self,
        session: u64,
        view: RibView,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(BgpPrefix, &'a PathAttributes)>,
    ) {
        // IPv4 first, then IPv6; a session that is gone reads as an empty table.
        let (rib4, rib6) = if session == self.session && self.up {
            (&self.rib, &self.rib6)
        } else {
            (&self.empty4, &self.empty6)
        };
        if !cursor.v4.is_done() {
            if let Ok(page) = rib4.adj_rib_in_page(self.peer, view, &mut cursor.v4, max) {
                out.extend(page.into_iter().map(|r| (BgpPrefix::V4(r.prefix), r.attrs)));
            }
        } else if let Ok(page) = rib6.adj_rib_in_page(self.peer6, view, &mut cursor.v6, max) {
            out.extend(page.into_iter().map(|r| (BgpPrefix::V6(r.prefix), r.attrs)));
        }
    }
    fn loc_rib_page<'a>(
        &'a self,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(BgpPrefix, &'a PathAttributes)>,
    ) {
        if !cursor.v4.is_done() {
            out.extend(
                self.rib
                    .loc_rib_page(&mut cursor.v4, max)
                    .into_iter()
                    .map(|r| (BgpPrefix::V4(r.prefix), r.attrs)),
            );
        } else {
            out.extend(
                self.rib6
                    .loc_rib_page(&mut cursor.v6, max)
                    .into_iter()
                    .map(|r| (BgpPrefix::V6(r.prefix), r.attrs)),
            );
        }
    }
    fn attrs(&self, _id: u64) -> Option<&PathAttributes> {
        None
    }
}

impl Subsystem for FakeBgp {
    fn name(&self) -> &'static str {
        "bgp"
    }
    fn domain(&self) -> Domain {
        Domain::Bgp
    }
    fn start(&mut self, _cx: &mut Context<'_>) -> Result<(), StartError> {
        Ok(())
    }
    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        let Some(step) = self.script.borrow_mut().pop_front() else { return PollOutcome::Idle };
        let cost = |_: &NextHop| Some(0u32);
        let told = match step {
            Step::Up => {
                self.rib.peer_up(self.peer, Ipv4Addr::new(10, 0, 0, 9)).unwrap();
                self.up = true;
                bmp::tell_peer_up(cx, self.session, self.info())
            }
            Step::Announce(prefixes) => {
                self.rib.update(self.peer, &[], &prefixes, &self.attrs, &cost).unwrap();
                let update =
                    Update { attributes: Some(self.attrs.clone()), nlri: prefixes, ..Update::default() };
                bmp::tell_update(cx, self.session, &update)
            }
            Step::Burst(updates) => {
                let mut all = true;
                for prefixes in updates {
                    self.rib.update(self.peer, &[], &prefixes, &self.attrs, &cost).unwrap();
                    let update =
                        Update { attributes: Some(self.attrs.clone()), nlri: prefixes, ..Update::default() };
                    if !bmp::tell_update(cx, self.session, &update) {
                        self.refused.set(self.refused.get() + 1);
                        all = false;
                    }
                }
                all
            }
            Step::Down => {
                self.rib.peer_down(self.peer, &cost).unwrap();
                self.up = false;
                let told = bmp::tell_peer_down(cx, self.session, DownReason::RemoteNoData);
                // A new session gets a new number.
                self.session += 1;
                told
            }
        };
        let counter = if told { &self.told } else { &self.refused };
        counter.set(counter.get() + 1);
        PollOutcome::Pending
    }
    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }
    fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}
    fn shed(&mut self) {}
    fn status(&self, _out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        Ok(())
    }
    fn peek(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

// ---- the collectors -----------------------------------------------------------------------------

/// A collector on the peer host: a listening socket and what it decoded from the stream.
struct CollectorHost {
    socket: SocketHandle,
    port: u16,
    reading: bool,
    /// Sessions accepted (a reading collector listens again after each).
    sessions: usize,
    buf: Vec<u8>,
    /// Message types in order of arrival.
    types: Vec<u8>,
    route_monitoring: usize,
    prefixes: BTreeSet<Ipv4Prefix>,
    withdrawn: BTreeSet<Ipv4Prefix>,
}

impl CollectorHost {
    fn listen(peer: &mut Peer, port: u16, rx: usize, reading: bool) -> CollectorHost {
        let mut socket =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; rx]), tcp::SocketBuffer::new(vec![0; 1024]));
        socket.listen(port).unwrap();
        CollectorHost {
            port,
            sessions: 0,
            socket: peer.sockets.add(socket),
            reading,
            buf: Vec::new(),
            types: Vec::new(),
            route_monitoring: 0,
            prefixes: BTreeSet::new(),
            withdrawn: BTreeSet::new(),
        }
    }

    fn run(&mut self, peer: &mut Peer) {
        if !self.reading {
            return;
        }
        let socket = peer.sockets.get_mut::<tcp::Socket>(self.socket);
        while let Ok(n @ 1..) = socket.recv(|b| {
            self.buf.extend_from_slice(b);
            (b.len(), b.len())
        }) {
            let _ = n;
        }
        loop {
            let (kind, len) = match Message::parse_bytes(&self.buf) {
                Ok((m, len)) => {
                    if let Message::RouteMonitoring { update, .. } = &m {
                        self.route_monitoring += 1;
                        let body = &update[19..];
                        let u = Update::parse(body, SessionContext { four_octet_as: true, external: false })
                            .expect("a well-formed UPDATE")
                            .update;
                        self.prefixes.extend(u.nlri.iter().copied());
                        self.withdrawn.extend(u.withdrawn.iter().copied());
                    }
                    (m.msg_type() as u8, len)
                }
                Err(bulkhead_bmp::packet::Error::Truncated { .. }) => break,
                Err(e) => panic!("the collector could not read the stream: {e:?}"),
            };
            self.types.push(kind);
            self.buf.drain(..len);
        }
        let socket = peer.sockets.get_mut::<tcp::Socket>(self.socket);
        // Everything sent was read; like a real collector, accept the next session once this
        // one is over (a new session's stream starts afresh).
        match socket.state() {
            tcp::State::CloseWait => socket.close(),
            tcp::State::Closed | tcp::State::TimeWait => {
                socket.abort();
                socket.listen(self.port).unwrap();
                self.sessions += 1;
                self.buf.clear();
            }
            _ => {}
        }
    }

    fn state(&self, peer: &Peer) -> tcp::State {
        peer.sockets.get::<tcp::Socket>(self.socket).state()
    }
}

// ---- the simulation -----------------------------------------------------------------------------

struct Sim {
    platform: Platform<AllocatorBooks>,
    peer: Peer,
    nic1_out: Wire,
    now: Instant,
    live: CollectorHost,
    stalled: CollectorHost,
    script: Rc<RefCell<VecDeque<Step>>>,
    told: Rc<Cell<u64>>,
    refused: Rc<Cell<u64>>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim::with(seed, BmpConfig::default().channel_events)
    }

    fn with(seed: u64, channel_events: usize) -> Sim {
        let allocator = HEAP.allocator();
        let quotas = std::array::from_fn(|_| Quota { hard: QUOTA, soft: QUOTA * 3 / 4 });
        allocator.set_quotas(quotas, 8 << 20).unwrap();
        let TwoNics { ports, plan, to0, from0, from1 } = two_nics(allocator, &ForwarderConfig::default());
        let config = BmpConfig {
            collectors: vec![
                Collector { address: Ipv4Addr::new(192, 0, 2, 2), port: LIVE_PORT },
                Collector { address: Ipv4Addr::new(192, 0, 2, 3), port: STALLED_PORT },
            ],
            queue_limit: 64 << 10,
            channel_events,
            stats_interval: None,
            ..BmpConfig::default()
        };
        let (script, told, refused) = (Rc::default(), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let rng = Box::new(Csprng::seed_from_u64(seed));
        let mut platform = Platform::new(AllocatorBooks(allocator), ports, rng, true, Instant::ZERO);
        let subsystems: Vec<Box<dyn Subsystem>> = vec![
            Box::new(ForwarderSubsystem::new(plan, &NIC_NAMES)),
            Box::new(FakeBgp::new(Rc::clone(&script), told.clone(), refused.clone())),
            Box::new(BmpSubsystem::new(config).reading::<FakeBgp>()),
        ];
        for s in subsystems {
            let policy =
                RestartPolicy { initial_backoff: Duration::from_millis(1), ..RestartPolicy::default() };
            platform.add(s, policy).unwrap();
        }
        platform.start(Instant::ZERO);
        let mut peer = Peer::new(to0, from0);
        let live = CollectorHost::listen(&mut peer, LIVE_PORT, 65536, true);
        // Accepts, and never reads: a small window that fills at once.
        let stalled = CollectorHost::listen(&mut peer, STALLED_PORT, 4096, false);
        Sim { platform, peer, nic1_out: from1, now: Instant::ZERO, live, stalled, script, told, refused }
    }

    /// One millisecond: the appliance's turn, then the peer host's and its collectors'.
    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(1);
        let now = self.now;
        self.platform.turn(now, &|| now);
        self.peer.poll(now);
        self.live.run(&mut self.peer);
        self.stalled.run(&mut self.peer);
        self.peer.poll(now);
        self.nic1_out.borrow_mut().clear();
        self.peer.seen.clear();
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

    /// A field of collector `i` in `show bmp json`, as text.
    fn field(&mut self, i: usize, key: &str) -> String {
        let json = self.console("show bmp json");
        let collector = json.split("{\"address\"").nth(i + 1).unwrap_or_default().to_string();
        let at = collector.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {json}"));
        let rest = &collector[at + key.len() + 3..];
        rest.split([',', '}']).next().unwrap().trim_matches('"').to_string()
    }

    fn feed(&mut self) {
        let mut script = self.script.borrow_mut();
        script.push_back(Step::Up);
        for b in 0..PREFIXES / BATCH {
            let batch = (b * BATCH..(b + 1) * BATCH)
                .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
                .collect();
            script.push_back(Step::Announce(batch));
        }
    }
}

fn all_prefixes() -> BTreeSet<Ipv4Prefix> {
    (0..PREFIXES).map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()).collect()
}

// ---- the cases ----------------------------------------------------------------------------------

/// The seed, small: one BGP session feeding routes, a live and a stalled collector.
fn a_stalled_collector_is_dropped_and_the_live_one_gets_everything() {
    let mut sim = Sim::new(1);
    let connected = sim.run_until(3_000, |s| {
        s.live.types.first() == Some(&4) && s.stalled.state(&s.peer) == tcp::State::Established
    });
    assert!(connected, "both collectors connect and the live one reads the Initiation first");
    sim.feed();
    let all = all_prefixes();
    let delivered = sim.run_until(60_000, |s| s.live.prefixes.len() == all.len());
    if !delivered {
        let show = sim.console("show bmp");
        panic!(
            "the live collector got {} of {} prefixes, types {:?}, told {} refused {}\n{show}",
            sim.live.prefixes.len(),
            all.len(),
            &sim.live.types[..sim.live.types.len().min(20)],
            sim.told.get(),
            sim.refused.get()
        );
    }
    assert_eq!(sim.live.prefixes, all);
    assert!(
        sim.live.route_monitoring * 100 < all.len(),
        "{} Route Monitoring messages for {} prefixes: packed",
        sim.live.route_monitoring,
        all.len()
    );
    assert_eq!(&sim.live.types[..2], &[4, 3], "Initiation, then Peer Up");
    let dropped = sim.run_until(10_000, |s| s.field(1, "drops") != "0");
    assert!(dropped, "the stalled collector's session is dropped at its bound: {}", sim.console("show bmp"));
    assert_eq!(sim.field(1, "last_drop"), "queue-full");
    assert_eq!(sim.field(0, "drops"), "0", "the live collector is not touched");
    assert_eq!(sim.refused.get(), 0, "BGP never saw a refusal");
    assert_eq!(sim.told.get(), 1 + u64::from(PREFIXES / BATCH));
    let footprint: usize = sim.field(1, "queue_footprint").parse().unwrap();
    assert!(footprint <= 64 << 10);

    // The stalled collector comes back, reading: a fresh dump gives it every prefix.
    let old = sim.stalled.socket;
    sim.peer.sockets.remove(old);
    sim.stalled = CollectorHost::listen(&mut sim.peer, STALLED_PORT, 65536, true);
    let resynced = sim.run_until(120_000, |s| s.stalled.prefixes.len() == all.len());
    assert!(
        resynced,
        "re-synchronised {} of {}: {}",
        sim.stalled.prefixes.len(),
        all.len(),
        sim.console("show bmp")
    );
    assert_eq!(sim.stalled.types.first(), Some(&4));
    assert!(sim.stalled.types.contains(&3), "Peer Up in the dump");
    assert_ne!(sim.field(1, "resyncs"), "0");

    // The session goes down: both see Peer Down.
    sim.script.borrow_mut().push_back(Step::Down);
    let down =
        sim.run_until(5_000, |s| s.live.types.last() == Some(&2) && s.stalled.types.last() == Some(&2));
    assert!(down, "Peer Down reaches both collectors");
    let idle =
        sim.run_until(5_000, |s| s.field(0, "queued_bytes") == "0" && s.field(1, "queued_bytes") == "0");
    assert!(idle);
    sim.run_until(100, |_| false);
    let baseline = sim.used(Domain::Bmp);

    // A second cycle of the same routes, in and out: nothing of it stays in `bmp`.
    sim.feed();
    sim.live.prefixes.clear();
    let again = sim.run_until(60_000, |s| s.live.prefixes.len() == all.len());
    assert!(again);
    let peak = sim.used(Domain::Bmp);
    sim.script.borrow_mut().push_back(Step::Down);
    let down =
        sim.run_until(5_000, |s| s.live.types.last() == Some(&2) && s.stalled.types.last() == Some(&2));
    assert!(down);
    let idle = sim.run_until(5_000, |s| {
        s.field(0, "queued_bytes") == "0"
            && s.field(1, "queued_bytes") == "0"
            && s.used(Domain::Bmp) == baseline
    });
    assert!(idle, "bmp {:?} after the cycle, {:?} before (peak {:?})", sim.used(Domain::Bmp), baseline, peak);
    assert_eq!(sim.refused.get(), 0);

    // The subsystem shed: a Termination to each collector, then nothing left in `bmp`.
    let show = sim.console("show bmp");
    println!(
        "  {} prefixes in {} Route Monitoring messages; bmp {:?} at the baseline, {:?} at the peak\n{}",
        all.len(),
        sim.live.route_monitoring,
        baseline,
        peak,
        show
    );
    // The console's answer was written inside `bmp`: it is bmp's until it goes.
    drop(show);
    let answer = sim.console("debug shed bmp");
    assert!(answer.contains("ok (bmp)"), "{answer}");
    let terminated = sim.run_until(2_000, |s| s.live.types.last() == Some(&5));
    assert!(
        terminated,
        "the live collector reads a Termination: {:?}",
        sim.live.types.iter().rev().take(3).collect::<Vec<_>>()
    );
    let report = sim.platform.supervisor().report(Domain::Bmp).unwrap();
    assert_eq!(report.leaks, 0, "{report:?}");
}

/// BGP tells faster than the channel holds: the excess is refused at once (BGP goes on), and
/// BMP re-synchronises its collectors from the tables: Termination, reconnect, a fresh dump
/// that gives the live collector every prefix.
fn a_full_channel_refuses_at_once_and_resynchronises_from_the_tables() {
    let mut sim = Sim::with(2, 4);
    let connected = sim.run_until(3_000, |s| s.live.types.first() == Some(&4));
    assert!(connected);
    sim.script.borrow_mut().push_back(Step::Up);
    let up = sim.run_until(1_000, |s| s.live.types.contains(&3));
    assert!(up, "Peer Up");
    let burst: Vec<Vec<Ipv4Prefix>> = (0..PREFIXES / BATCH)
        .map(|b| {
            (b * BATCH..(b + 1) * BATCH)
                .map(|i| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
                .collect()
        })
        .collect();
    sim.script.borrow_mut().push_back(Step::Burst(burst));
    let all = all_prefixes();
    let delivered = sim.run_until(60_000, |s| s.live.prefixes == all);
    assert!(delivered, "{} of {}: {}", sim.live.prefixes.len(), all.len(), sim.console("show bmp"));
    assert!(sim.refused.get() > 0, "the channel's bound refused BGP's excess");
    assert!(sim.live.types.contains(&5), "a Termination before the re-synchronisation");
    assert!(sim.live.sessions >= 1, "and a new session");
    assert_ne!(sim.field(0, "resyncs"), "0");
    let json = sim.console("show bmp json");
    assert!(json.contains("\"overflows\":1"), "{json}");
}

fn main() {
    let cases: [(&str, fn()); 2] = [
        (
            "a_stalled_collector_is_dropped_and_the_live_one_gets_everything",
            a_stalled_collector_is_dropped_and_the_live_one_gets_everything,
        ),
        (
            "a_full_channel_refuses_at_once_and_resynchronises_from_the_tables",
            a_full_channel_refuses_at_once_and_resynchronises_from_the_tables,
        ),
    ];
    common::run_cases(&cases);
}
