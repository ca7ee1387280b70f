//! The exporter against fake tables, a fake UPDATE encoder and a fake collector that decodes
//! what it reads with this crate's decoder.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec::Vec;
use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use core::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::event::{Attrs, Overflowed, Prefix, Stamped};
use crate::packet::{PeerFlags, StatType, StatValue};

// ---- fakes -------------------------------------------------------------------------------

/// BGP's tables: per session, the Peer Up data and a table of prefix -> attribute set id.
#[derive(Default)]
struct FakeTables {
    peers: BTreeMap<PeerId, (PeerUpInfo, BTreeMap<Prefix, u64>)>,
    /// (peer, max) of every `next_routes` call.
    reads: Vec<(PeerId, usize, usize)>,
}

impl Tables for FakeTables {
    /// Resume after this prefix.
    type Cursor = Option<Prefix>;

    fn peers(&mut self, out: &mut Vec<PeerId>) {
        out.extend(self.peers.keys().copied());
    }

    fn peer_up(&mut self, peer: PeerId) -> Option<PeerUpInfo> {
        self.peers.get(&peer).map(|(info, _)| info.clone())
    }

    fn next_routes(
        &mut self,
        peer: PeerId,
        cursor: &Option<Prefix>,
        max: usize,
        out: &mut Vec<RouteGroup>,
    ) -> Option<Option<Prefix>> {
        let (_, table) = self.peers.get(&peer)?;
        let range = match cursor {
            None => table.range(..),
            Some(after) => table.range((core::ops::Bound::Excluded(*after), core::ops::Bound::Unbounded)),
        };
        let mut last = None;
        let mut taken = 0;
        for (prefix, attrs) in range.take(max) {
            match out.last_mut() {
                Some(RouteGroup { attrs: Some(Attrs::Id(id)), prefixes }) if id == attrs => {
                    prefixes.push(*prefix)
                }
                _ => out.push(RouteGroup { attrs: Some(Attrs::Id(*attrs)), prefixes: alloc::vec![*prefix] }),
            }
            last = Some(*prefix);
            taken += 1;
        }
        self.reads.push((peer, max, taken));
        if taken < max {
            None
        } else {
            Some(last)
        }
    }

    fn stats(&mut self, peer: PeerId, out: &mut Vec<Stat<'static>>) {
        if let Some((_, table)) = self.peers.get(&peer) {
            out.push(Stat::counter(StatType::REJECTED_PREFIXES, 0));
            out.push(Stat::gauge(StatType::ADJ_RIB_IN_ROUTES, table.len() as u64));
        }
    }
}

/// Writes an UPDATE: ORIGIN and a private attribute (type 254) holding the set's id, then as
/// many IPv4 prefixes as fit; withdrawals in the withdrawn routes field.
#[derive(Default)]
struct FakeEncoder {
    calls: usize,
}

const FAKE_ATTRS_LEN: usize = 4 + 11;

impl UpdateEncoder for FakeEncoder {
    fn encode(
        &mut self,
        _: PeerId,
        group: &RouteGroup,
        start: usize,
        out: &mut [u8],
    ) -> Result<Encoded, EncodeError> {
        self.calls += 1;
        let id = match &group.attrs {
            Some(Attrs::Id(id)) => Some(*id),
            Some(Attrs::Bytes(_)) => return Err(EncodeError::UnknownAttrs),
            None => None,
        };
        let attrs_len = if id.is_some() { FAKE_ATTRS_LEN } else { 0 };
        let mut nlri = Vec::new();
        let mut carried = 0;
        for p in group.prefixes.iter().skip(start) {
            let IpAddr::V4(a) = p.addr else { return Err(EncodeError::TooLarge) };
            let bytes = (p.len as usize).div_ceil(8);
            if 23 + attrs_len + nlri.len() + 1 + bytes > out.len() {
                break;
            }
            nlri.push(p.len);
            nlri.extend_from_slice(&a.octets()[..bytes]);
            carried += 1;
        }
        if carried == 0 {
            return Err(EncodeError::TooLarge);
        }
        let len = 23 + attrs_len + nlri.len();
        let mut pdu = Vec::new();
        pdu.extend_from_slice(&[0xff; 16]);
        pdu.extend_from_slice(&(len as u16).to_be_bytes());
        pdu.push(2);
        match id {
            None => {
                pdu.extend_from_slice(&(nlri.len() as u16).to_be_bytes());
                pdu.extend_from_slice(&nlri);
                pdu.extend_from_slice(&[0, 0]);
            }
            Some(id) => {
                pdu.extend_from_slice(&[0, 0]);
                pdu.extend_from_slice(&(FAKE_ATTRS_LEN as u16).to_be_bytes());
                pdu.extend_from_slice(&[0x40, 1, 1, 0, 0xc0, 254, 8]);
                pdu.extend_from_slice(&id.to_be_bytes());
                pdu.extend_from_slice(&nlri);
            }
        }
        out[..len].copy_from_slice(&pdu);
        Ok(Encoded { len, prefixes: carried })
    }
}

/// What the fake collector saw, message by message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Initiation(Vec<(InfoType, std::string::String)>),
    PeerUp {
        asn: u32,
        table: Option<std::string::String>,
    },
    PeerDown {
        asn: u32,
        code: u8,
    },
    /// Route Monitoring: announced prefixes with their set id, withdrawn prefixes.
    Routes {
        asn: u32,
        announced: Vec<(Prefix, u64)>,
        withdrawn: Vec<Prefix>,
    },
    EndOfRib {
        asn: u32,
    },
    Stats {
        asn: u32,
        count: usize,
    },
    Termination(TermReason),
}

fn read_prefixes(mut bytes: &[u8]) -> Vec<Prefix> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let n = (len as usize).div_ceil(8);
        let mut octets = [0u8; 4];
        octets[..n].copy_from_slice(&rest[..n]);
        out.push(Prefix { addr: IpAddr::V4(Ipv4Addr::from(octets)), len });
        bytes = &rest[n..];
    }
    out
}

fn decode(update: &[u8]) -> (Vec<Prefix>, Option<u64>, Vec<Prefix>) {
    let wlen = u16::from_be_bytes([update[19], update[20]]) as usize;
    let withdrawn = read_prefixes(&update[21..21 + wlen]);
    let alen = u16::from_be_bytes([update[21 + wlen], update[22 + wlen]]) as usize;
    let attrs = &update[23 + wlen..23 + wlen + alen];
    let id = (alen == FAKE_ATTRS_LEN).then(|| u64::from_be_bytes(attrs[7..15].try_into().unwrap()));
    (read_prefixes(&update[23 + wlen + alen..]), id, withdrawn)
}

/// Reads everything queued for `id`, `chunk` bytes per write, and decodes it.
fn drain(ex: &mut Exporter<Option<Prefix>>, id: CollectorId, now: Instant) -> Vec<Seen> {
    let mut stream = Vec::new();
    loop {
        let bytes = ex.transmit(id);
        if bytes.is_empty() {
            break;
        }
        let take = bytes.len().min(1000);
        stream.extend_from_slice(&bytes[..take]);
        ex.sent(id, take, now);
    }
    let mut seen = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let (message, len) = Message::parse_bytes(rest).expect("the exporter writes valid BMP");
        seen.push(match message {
            Message::Initiation(tlvs) => {
                Seen::Initiation(tlvs.iter().map(|t| (t.kind, t.as_str().unwrap().to_string())).collect())
            }
            Message::PeerUp(up) => Seen::PeerUp {
                asn: up.peer.asn,
                table: up
                    .info
                    .iter()
                    .find(|t| t.kind == InfoType::VrfTableName)
                    .map(|t| t.as_str().unwrap().into()),
            },
            Message::PeerDown { peer, reason } => Seen::PeerDown { asn: peer.asn, code: reason.code() },
            Message::RouteMonitoring { peer, update } => {
                let (nlri, id, withdrawn) = decode(update);
                if nlri.is_empty() && withdrawn.is_empty() {
                    Seen::EndOfRib { asn: peer.asn }
                } else {
                    let announced = nlri.into_iter().map(|p| (p, id.unwrap())).collect();
                    Seen::Routes { asn: peer.asn, announced, withdrawn }
                }
            }
            Message::StatisticsReport { peer, stats } => Seen::Stats { asn: peer.asn, count: stats.len() },
            Message::Termination(tlvs) => match tlvs.as_slice() {
                [TermTlv::Reason(r)] => Seen::Termination(*r),
                other => panic!("termination {other:?}"),
            },
            Message::RouteMirroring { .. } => panic!("not sent"),
        });
        rest = &rest[len..];
    }
    seen
}

fn open(asn: u16) -> Vec<u8> {
    let [a, b] = asn.to_be_bytes();
    [&[0xff; 16][..], &[0, 29, 1, 4, a, b, 0, 90, 10, 0, 0, 1, 0]].concat()
}

fn peer_info(asn: u32) -> PeerUpInfo {
    let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, asn as u8));
    PeerUpInfo {
        header: PeerHeader {
            peer_type: PeerType::Global,
            flags: PeerFlags(0),
            distinguisher: [0; 8],
            address,
            asn,
            bgp_id: Ipv4Addr::new(192, 0, 2, asn as u8),
            timestamp_secs: 0,
            timestamp_micros: 0,
        },
        local_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        local_port: 179,
        remote_port: 40000,
        sent_open: open(65000),
        received_open: open(asn as u16),
        table_name: None,
        families: alloc::vec![Family::IPV4_UNICAST],
    }
}

fn p(i: u32) -> Prefix {
    Prefix { addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), len: 24 }
}

fn tables_with(peers: &[(u64, u32, u32)]) -> FakeTables {
    let mut t = FakeTables::default();
    for &(id, asn, routes) in peers {
        let table = (0..routes).map(|i| (p(i), 1 + (i as u64 % 3))).collect();
        t.peers.insert(PeerId(id), (peer_info(asn), table));
    }
    t
}

fn config() -> Config {
    Config { stats_interval: None, epoch_micros: Some(1_700_000_000_000_000), ..Config::default() }
}

/// Connects collector `id` now and returns what its session starts with.
fn connect(ex: &mut Exporter<Option<Prefix>>, id: CollectorId, now: Instant) {
    assert_eq!(ex.poll_action(now), Some(Action::Connect(id)));
    ex.connected(id, now);
}

fn poll_all(
    ex: &mut Exporter<Option<Prefix>>,
    now: Instant,
    t: &mut FakeTables,
    e: &mut FakeEncoder,
    ch: &mut EventChannel,
) {
    for _ in 0..10_000 {
        if ex.poll(now, t, e, ch, 16) == Poll::Idle {
            return;
        }
    }
    panic!("the exporter never went idle");
}

/// The collector's picture of the routes: per peer AS, prefix -> set id.
fn apply(view: &mut BTreeMap<u32, BTreeMap<Prefix, u64>>, seen: &[Seen]) {
    for s in seen {
        match s {
            Seen::PeerUp { asn, .. } => {
                view.insert(*asn, BTreeMap::new());
            }
            Seen::PeerDown { asn, .. } => {
                view.remove(asn);
            }
            Seen::Routes { asn, announced, withdrawn } => {
                let table = view.get_mut(asn).expect("routes only after Peer Up");
                for w in withdrawn {
                    table.remove(w);
                }
                for (prefix, id) in announced {
                    table.insert(*prefix, *id);
                }
            }
            _ => {}
        }
    }
}

// ---- tests -------------------------------------------------------------------------------

#[test]
fn session_starts_with_initiation_then_dumps_each_peer() {
    let mut t = tables_with(&[(1, 65001, 10), (2, 65002, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(5);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    assert_eq!(ex.collector_status(id).unwrap().state, CollectorState::Dumping);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let seen = drain(&mut ex, id, now);
    assert_eq!(
        seen[0],
        Seen::Initiation(alloc::vec![
            (InfoType::SysDescr, "Bulkhead BMP exporter".into()),
            (InfoType::SysName, "bulkhead".into())
        ])
    );
    assert_eq!(seen[1], Seen::PeerUp { asn: 65001, table: None });
    // 10 prefixes with set ids 1, 2, 3, 1, ...: one message per run of the same set.
    let routes: usize = seen
        .iter()
        .map(|s| match s {
            Seen::Routes { asn: 65001, announced, .. } => announced.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(routes, 10);
    let eor = seen.iter().position(|s| *s == Seen::EndOfRib { asn: 65001 }).unwrap();
    let up2 = seen.iter().position(|s| *s == Seen::PeerUp { asn: 65002, table: None }).unwrap();
    assert!(eor < up2, "a peer's End-of-RIB ends its dump before the next Peer Up");
    assert_eq!(seen.last(), Some(&Seen::EndOfRib { asn: 65002 }));
    let st = ex.collector_status(id).unwrap();
    assert_eq!((st.state, st.peers, st.queued_bytes), (CollectorState::Up, 2, 0));
    assert_eq!(st.counters.connects, 1);
    assert_eq!(st.counters.messages_sent, seen.len() as u64);
    // Incremental: a change, a withdrawal, a peer down.
    ch.try_push(Event::Routes {
        peer: PeerId(1),
        routes: RouteGroup { attrs: Some(Attrs::Id(9)), prefixes: alloc::vec![p(3), p(4)] },
    })
    .unwrap();
    ch.try_push(Event::Routes {
        peer: PeerId(1),
        routes: RouteGroup { attrs: None, prefixes: alloc::vec![p(5)] },
    })
    .unwrap();
    ch.try_push(Event::PeerDown { peer: PeerId(2), reason: DownReason::RemoteNoData }).unwrap();
    // An event of a session this collector never saw is not sent.
    ch.try_push(Event::PeerDown { peer: PeerId(77), reason: DownReason::RemoteNoData }).unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert_eq!(
        drain(&mut ex, id, now),
        alloc::vec![
            Seen::Routes {
                asn: 65001,
                announced: alloc::vec![(p(3), 9), (p(4), 9)],
                withdrawn: alloc::vec![]
            },
            Seen::Routes { asn: 65001, announced: alloc::vec![], withdrawn: alloc::vec![p(5)] },
            Seen::PeerDown { asn: 65002, code: 4 },
        ]
    );
}

#[test]
fn reconnect_backoff_doubles_and_is_capped() {
    let mut ex: Exporter<Option<Prefix>> = Exporter::new(config());
    let mut now = Instant::ZERO;
    let id = ex.add_collector(now);
    let mut delays = Vec::new();
    for _ in 0..9 {
        assert_eq!(ex.poll_action(now), Some(Action::Connect(id)));
        assert_eq!(ex.collector_status(id).unwrap().state, CollectorState::Connecting);
        ex.connect_failed(id, now);
        let next = ex.poll_at().unwrap();
        assert_eq!(
            ex.poll_action(Instant::from_micros(next.total_micros() - 1)),
            None,
            "not before its time"
        );
        delays.push((next - now).total_micros() / 1_000_000);
        now = next;
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(ex.collector_status(id).unwrap().counters.connect_failures, 9);
    // A session that lasts longer than the cap resets the back-off; a short one does not.
    assert_eq!(ex.poll_action(now), Some(Action::Connect(id)));
    ex.connected(id, now);
    ex.closed(id, now + Duration::from_secs(10));
    now = now + Duration::from_secs(10);
    assert_eq!(ex.poll_at(), Some(now + Duration::from_secs(60)));
    now = now + Duration::from_secs(60);
    assert_eq!(ex.poll_action(now), Some(Action::Connect(id)));
    ex.connected(id, now);
    now = now + Duration::from_secs(3600);
    ex.closed(id, now);
    assert_eq!(ex.poll_at(), Some(now + Duration::from_secs(1)));
    assert_eq!(ex.collector_status(id).unwrap().counters.disconnects, 2);
}

#[test]
fn queue_at_its_bound_drops_only_that_session_and_frees_it() {
    let mut t = tables_with(&[(1, 65001, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(4096, 64 << 20));
    let cfg = Config { queue_bound: 64 << 10, chunk_size: 4 << 10, ..config() };
    let mut ex = Exporter::new(cfg);
    let now = Instant::from_millis(1);
    let stalled = ex.add_collector(now);
    let healthy = ex.add_collector(now);
    connect(&mut ex, stalled, now);
    connect(&mut ex, healthy, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    drain(&mut ex, healthy, now);
    // 400 events of 50 prefixes (~250 bytes each): far beyond 64 KiB for a collector that
    // never reads; the healthy collector reads after every poll.
    let mut announced = 0;
    for round in 0..40 {
        for k in 0..10u32 {
            let prefixes = (0..50).map(|i| p(round * 1000 + k * 50 + i)).collect();
            ch.try_push(Event::Routes {
                peer: PeerId(1),
                routes: RouteGroup { attrs: Some(Attrs::Id(1)), prefixes },
            })
            .unwrap();
        }
        poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
        for s in drain(&mut ex, healthy, now) {
            if let Seen::Routes { announced: a, .. } = s {
                announced += a.len();
            }
        }
        let st = ex.collector_status(stalled).unwrap();
        assert!(st.queue_footprint <= st.queue_bound, "never past the bound: {st:?}");
    }
    assert_eq!(announced, 400 * 50, "the healthy collector got every route");
    let st = ex.collector_status(stalled).unwrap();
    assert_eq!(st.counters.drops, 1);
    assert!(matches!(st.last_drop, Some(DropReason::QueueFull(_))));
    assert_eq!(st.state, CollectorState::Backoff);
    assert_eq!((st.queued_bytes, st.queue_footprint, st.peers), (0, 0, 0), "queue freed");
    assert!(st.resync_pending);
    assert_eq!(ex.poll_action(now), Some(Action::Close(stalled)));
    let h = ex.collector_status(healthy).unwrap();
    assert_eq!((h.state, h.counters.drops), (CollectorState::Up, 0));
    // After its back-off it reconnects and is re-synchronised with a fresh dump.
    let later = now + Duration::from_secs(1);
    connect(&mut ex, stalled, later);
    poll_all(&mut ex, later, &mut t, &mut e, &mut ch);
    let seen = drain(&mut ex, stalled, later);
    assert!(matches!(seen[0], Seen::Initiation(_)));
    assert_eq!(seen[1], Seen::PeerUp { asn: 65001, table: None });
    let st = ex.collector_status(stalled).unwrap();
    assert_eq!((st.counters.resyncs, st.resync_pending, st.counters.connects), (1, false, 2));
}

#[test]
fn channel_overflow_resynchronises_every_collector() {
    let mut t = tables_with(&[(1, 65001, 3)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(2, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let a = ex.add_collector(now);
    let b = ex.add_collector(now);
    connect(&mut ex, a, now);
    connect(&mut ex, b, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    drain(&mut ex, a, now);
    drain(&mut ex, b, now);
    let change = || Event::Routes {
        peer: PeerId(1),
        routes: RouteGroup { attrs: Some(Attrs::Id(5)), prefixes: alloc::vec![p(0)] },
    };
    assert_eq!(ch.try_push(change()), Ok(()));
    assert_eq!(ch.try_push(change()), Ok(()));
    assert_eq!(ch.try_push(change()), Err(Overflowed), "BGP never waits: the event is dropped");
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert!(ch.is_empty(), "stale events are discarded");
    for id in [a, b] {
        assert_eq!(ex.collector_status(id).unwrap().state, CollectorState::Closing);
        assert_eq!(drain(&mut ex, id, now), alloc::vec![Seen::Termination(TermReason::OutOfResources)]);
        assert_eq!(ex.poll_action(now), Some(Action::Close(id)));
        // Reconnect at once, without waiting for a back-off.
        assert_eq!(ex.poll_action(now), Some(Action::Connect(id)));
        ex.connected(id, now);
    }
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    for id in [a, b] {
        let seen = drain(&mut ex, id, now);
        assert_eq!(seen[1], Seen::PeerUp { asn: 65001, table: None });
        let st = ex.collector_status(id).unwrap();
        assert_eq!((st.counters.resyncs, st.last_drop), (1, Some(DropReason::ChannelOverflow)));
    }
}

#[test]
fn dump_cursor_across_slices_with_changes_in_between() {
    let mut t = tables_with(&[(1, 65001, 1000)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { dump_slice: 100, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    let mut view = BTreeMap::new();
    let mut step = 0u32;
    loop {
        // The three events of the last step, then one unit of dump work: the peer list, the
        // Peer Up, then one slice per poll.
        let more = ex.poll(now, &mut t, &mut e, &mut ch, 4);
        apply(&mut view, &drain(&mut ex, id, now));
        if ex.collector_status(id).unwrap().state == CollectorState::Up && more == Poll::Idle && ch.is_empty()
        {
            break;
        }
        step += 1;
        // Between slices BGP changes the table behind and ahead of the cursor, and tells BMP.
        let table = &mut t.peers.get_mut(&PeerId(1)).unwrap().1;
        let (ahead, behind) = (p(999 - step), p(step.saturating_sub(1)));
        table.remove(&ahead);
        ch.try_push(Event::Routes {
            peer: PeerId(1),
            routes: RouteGroup { attrs: None, prefixes: alloc::vec![ahead] },
        })
        .unwrap();
        table.insert(behind, 100 + step as u64);
        let routes = RouteGroup { attrs: Some(Attrs::Id(100 + step as u64)), prefixes: alloc::vec![behind] };
        ch.try_push(Event::Routes { peer: PeerId(1), routes }).unwrap();
        let new = p(5000 + step);
        table.insert(new, 7);
        ch.try_push(Event::Routes {
            peer: PeerId(1),
            routes: RouteGroup { attrs: Some(Attrs::Id(7)), prefixes: alloc::vec![new] },
        })
        .unwrap();
        assert!(step < 100, "the dump ends");
    }
    assert!(step >= 10, "the dump took slices");
    assert!(t.reads.iter().all(|&(_, max, taken)| max == 100 && taken <= 100));
    // The collector's picture equals the table at the end.
    assert_eq!(view.get(&65001), Some(&t.peers[&PeerId(1)].1));
}

#[test]
fn a_poll_takes_at_most_its_dump_steps_and_says_when_more_are_ready() {
    let mut t = tables_with(&[(1, 65001, 1000)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { dump_slice: 100, dump_steps_per_poll: 2, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    // The peer list, the Peer Up, ten slices, the end: two steps a poll, a budget to spare.
    let mut polls = 0;
    let mut view = BTreeMap::new();
    loop {
        let before = t.reads.len();
        let more = ex.poll(now, &mut t, &mut e, &mut ch, 64);
        assert!(t.reads.len() - before <= 2, "at most two steps, so at most two slices");
        apply(&mut view, &drain(&mut ex, id, now));
        polls += 1;
        if more == Poll::Idle {
            break;
        }
        assert!(polls < 100);
    }
    assert!(polls >= 6, "{polls} polls");
    assert_eq!(ex.collector_status(id).unwrap().state, CollectorState::Up, "the dump is done");
    assert_eq!(view.get(&65001), Some(&t.peers[&PeerId(1)].1), "every route once");
}

#[test]
fn packing_many_prefixes_with_one_attribute_set() {
    let mut t = tables_with(&[(1, 65001, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    drain(&mut ex, id, now);
    let prefixes: Vec<Prefix> = (0..1000).map(p).collect();
    ch.try_push(Event::Routes {
        peer: PeerId(1),
        routes: RouteGroup { attrs: Some(Attrs::Id(42)), prefixes: prefixes.clone() },
    })
    .unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let seen = drain(&mut ex, id, now);
    // 1000 /24s take 4 bytes each: one UPDATE of 23 + 15 + 4000 = 4038 bytes, not a
    // thousand messages (BIRD sends one per prefix).
    assert_eq!(seen.len(), 1);
    let got: Vec<Prefix> = seen
        .iter()
        .flat_map(|s| match s {
            Seen::Routes { announced, .. } => announced.iter().map(|(p, id)| (*p, *id)).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .map(|(p, id)| {
            assert_eq!(id, 42);
            p
        })
        .collect();
    assert_eq!(got, prefixes);
    // 3000 need three 4096-byte UPDATEs.
    let prefixes: Vec<Prefix> = (0..3000).map(p).collect();
    ch.try_push(Event::Routes {
        peer: PeerId(1),
        routes: RouteGroup { attrs: Some(Attrs::Id(42)), prefixes },
    })
    .unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert_eq!(drain(&mut ex, id, now).len(), 3);
}

#[test]
fn loc_rib_peer_up_and_down_carry_the_table_name() {
    let mut t = FakeTables::default();
    let mut info = peer_info(65000);
    info.header.peer_type = PeerType::LocRib;
    info.header.flags = PeerFlags(PeerFlags::F);
    info.header.address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    info.local_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    info.received_open = info.sent_open.clone();
    info.table_name = Some("global".into());
    t.peers.insert(PeerId(100), (info, BTreeMap::new()));
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let seen = drain(&mut ex, id, now);
    assert_eq!(seen[1], Seen::PeerUp { asn: 65000, table: Some("global".into()) });
    ch.try_push(Event::PeerDown { peer: PeerId(100), reason: DownReason::Deconfigured }).unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert_eq!(drain(&mut ex, id, now), alloc::vec![Seen::PeerDown { asn: 65000, code: 6 }]);
}

#[test]
fn events_of_peers_the_dump_has_not_reached_are_left_to_it() {
    let mut t = tables_with(&[(1, 65001, 300), (2, 65002, 5)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { dump_slice: 100, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    // Peer list, Peer Up of peer 1, one slice.
    for _ in 0..3 {
        ex.poll(now, &mut t, &mut e, &mut ch, 1);
    }
    // Peer 2's Peer Up (late) and a route change: the dump will read peer 2 from the tables.
    ch.try_push(Event::PeerUp { peer: PeerId(2), info: alloc::boxed::Box::new(peer_info(65002)) }).unwrap();
    ch.try_push(Event::Routes {
        peer: PeerId(2),
        routes: RouteGroup { attrs: Some(Attrs::Id(3)), prefixes: alloc::vec![p(1)] },
    })
    .unwrap();
    // A new session (3) that came up after the dump read the peer list is announced at once.
    t.peers.insert(PeerId(3), (peer_info(65003), BTreeMap::new()));
    ch.try_push(Event::PeerUp { peer: PeerId(3), info: alloc::boxed::Box::new(peer_info(65003)) }).unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let seen = drain(&mut ex, id, now);
    let ups: Vec<u32> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::PeerUp { asn, .. } => Some(*asn),
            _ => None,
        })
        .collect();
    assert_eq!(ups, [65001, 65003, 65002], "one Peer Up per session");
    let mut view = BTreeMap::new();
    apply(&mut view, &seen);
    assert_eq!(view[&65002].len(), 5);
    assert_eq!(view[&65001].len(), 300);
}

#[test]
fn statistics_reports_are_periodic() {
    let mut t = tables_with(&[(1, 65001, 7)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { stats_interval: Some(Duration::from_secs(30)), ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert!(!drain(&mut ex, id, now).iter().any(|s| matches!(s, Seen::Stats { .. })));
    let due = ex.poll_at().unwrap();
    assert_eq!(due, now + Duration::from_secs(30));
    poll_all(&mut ex, due, &mut t, &mut e, &mut ch);
    assert_eq!(drain(&mut ex, id, due), alloc::vec![Seen::Stats { asn: 65001, count: 2 }]);
    assert_eq!(ex.poll_at(), Some(due + Duration::from_secs(30)));
    // The gauge is the table's size.
    let mut out = Vec::new();
    t.stats(PeerId(1), &mut out);
    assert_eq!(out[1].value, StatValue::Gauge(7));
}

#[test]
fn shutdown_terminates_then_stops() {
    let mut t = tables_with(&[(1, 65001, 1)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let up = ex.add_collector(now);
    let waiting = ex.add_collector(now);
    connect(&mut ex, up, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    drain(&mut ex, up, now);
    ex.shutdown(now);
    assert_eq!(ex.collector_status(waiting).unwrap().state, CollectorState::Stopped);
    assert_eq!(drain(&mut ex, up, now), alloc::vec![Seen::Termination(TermReason::AdminClose)]);
    assert_eq!(ex.poll_action(now), Some(Action::Close(up)));
    assert_eq!(ex.poll_action(now + Duration::from_secs(3600)), None, "no reconnects");
    assert_eq!(ex.collector_status(up).unwrap().state, CollectorState::Stopped);
}

#[test]
fn a_termination_nobody_reads_times_out() {
    let mut t = tables_with(&[]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    ex.shutdown(now);
    assert_eq!(ex.poll_at(), Some(now + Duration::from_secs(5)));
    assert_eq!(ex.poll_action(now + Duration::from_secs(5)), Some(Action::Close(id)));
    let st = ex.collector_status(id).unwrap();
    assert_eq!(
        (st.state, st.last_drop, st.queue_footprint),
        (CollectorState::Stopped, Some(DropReason::CloseTimeout), 0)
    );
}

#[test]
fn end_of_rib_markers() {
    let mut out = [0u8; 64];
    assert_eq!(end_of_rib(Family::IPV4_UNICAST, &mut out), 23);
    assert_eq!(&out[16..23], &[0, 23, 2, 0, 0, 0, 0]);
    assert_eq!(end_of_rib(Family::IPV6_UNICAST, &mut out), 29);
    assert_eq!(&out[16..29], &[0, 29, 2, 0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    assert_eq!(end_of_rib(Family::IPV6_UNICAST, &mut out[..28]), 0);
}

/// A collector reading a TCP stream a few bytes at a time, keeping its picture of the routes.
#[derive(Default)]
struct FakeCollector {
    stream: Vec<u8>,
    view: BTreeMap<u32, BTreeMap<Prefix, u64>>,
    terminated: bool,
}

impl FakeCollector {
    fn read(&mut self, ex: &mut Exporter<Option<Prefix>>, id: CollectorId, max: usize, now: Instant) {
        let bytes = ex.transmit(id);
        let n = bytes.len().min(max);
        self.stream.extend_from_slice(&bytes[..n]);
        ex.sent(id, n, now);
        while let Some(len) = crate::packet::message_len(&self.stream) {
            if (len as usize) > self.stream.len() {
                break;
            }
            let message: Vec<u8> = self.stream.drain(..len as usize).collect();
            let mut seen = Vec::new();
            let (m, _) = Message::parse_bytes(&message).expect("valid BMP");
            match m {
                Message::Termination(_) => self.terminated = true,
                Message::PeerUp(up) => seen.push(Seen::PeerUp { asn: up.peer.asn, table: None }),
                Message::PeerDown { peer, reason } => {
                    seen.push(Seen::PeerDown { asn: peer.asn, code: reason.code() })
                }
                Message::RouteMonitoring { peer, update } => {
                    let (nlri, id, withdrawn) = decode(update);
                    let announced = nlri.into_iter().map(|p| (p, id.unwrap())).collect();
                    seen.push(Seen::Routes { asn: peer.asn, announced, withdrawn });
                }
                _ => {}
            }
            apply(&mut self.view, &seen);
        }
    }

    fn reset(&mut self) {
        *self = FakeCollector::default();
    }
}

#[test]
fn random_churn_ends_with_every_collector_in_sync() {
    let mut rng = Csprng::seed_from_u64(1);
    let mut rnd = move |n: u64| rng.next_u64() % n;
    let mut totals = (0u64, 0u64, 0u64);
    for round in 0..12 {
        let mut t = FakeTables::default();
        let mut next_peer = 1u64;
        let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(8 + rnd(64) as usize, 1 << 20));
        let cfg = Config {
            dump_slice: 1 + rnd(50) as usize,
            queue_bound: 8_000 + rnd(60_000) as usize,
            chunk_size: 512 + rnd(4096) as usize,
            ..config()
        };
        let mut ex = Exporter::new(cfg);
        let mut now = Instant::from_millis(1);
        let ids: Vec<CollectorId> = (0..3).map(|_| ex.add_collector(now)).collect();
        let mut fakes: Vec<FakeCollector> = (0..3).map(|_| FakeCollector::default()).collect();
        let mut stats = (0u64, 0u64);
        for step in 0..3_000u64 {
            match rnd(10) {
                0 if t.peers.len() < 6 => {
                    let id = PeerId(next_peer);
                    next_peer += 1;
                    let mut info = peer_info(id.0 as u32);
                    info.header.asn = id.0 as u32;
                    t.peers.insert(id, (info.clone(), BTreeMap::new()));
                    let _ = ch.try_push(Event::PeerUp { peer: id, info: alloc::boxed::Box::new(info) });
                }
                1 if rnd(4) == 0 => {
                    if let Some(&id) = t.peers.keys().nth(rnd(t.peers.len().max(1) as u64) as usize) {
                        t.peers.remove(&id);
                        let _ = ch.try_push(Event::PeerDown { peer: id, reason: DownReason::RemoteNoData });
                    }
                }
                2..=4 => {
                    if let Some(&id) = t.peers.keys().nth(rnd(t.peers.len().max(1) as u64) as usize) {
                        let table = &mut t.peers.get_mut(&id).unwrap().1;
                        let withdraw = rnd(3) == 0;
                        let start = rnd(500) as u32;
                        let prefixes: Vec<Prefix> = (start..start + 1 + rnd(80) as u32).map(p).collect();
                        let attrs = if withdraw { None } else { Some(Attrs::Id(rnd(4))) };
                        for prefix in &prefixes {
                            match &attrs {
                                None => {
                                    table.remove(prefix);
                                }
                                Some(Attrs::Id(a)) => {
                                    table.insert(*prefix, *a);
                                }
                                Some(Attrs::Bytes(_)) => unreachable!(),
                            }
                        }
                        let _ =
                            ch.try_push(Event::Routes { peer: id, routes: RouteGroup { attrs, prefixes } });
                    }
                }
                5 | 6 => {
                    ex.poll(now, &mut t, &mut e, &mut ch, 1 + rnd(8) as usize);
                }
                _ => {
                    // Collector 0 reads slowly, 1 fast, 2 in bursts.
                    let i = rnd(3) as usize;
                    let max = [50, 5_000, if step % 500 < 100 { 0 } else { 20_000 }][i];
                    fakes[i].read(&mut ex, ids[i], max, now);
                }
            }
            now = now + Duration::from_millis(rnd(400));
            while let Some(action) = ex.poll_action(now) {
                match action {
                    Action::Connect(id) if rnd(5) == 0 => ex.connect_failed(id, now),
                    Action::Connect(id) => ex.connected(id, now),
                    Action::Close(id) => fakes[id.0].reset(),
                }
            }
        }
        // Quiet: BGP stops changing; everything drains and every collector catches up.
        for _ in 0..10_000 {
            ex.poll(now, &mut t, &mut e, &mut ch, 64);
            for (i, fake) in fakes.iter_mut().enumerate() {
                fake.read(&mut ex, ids[i], 1 << 20, now);
            }
            while let Some(action) = ex.poll_action(now) {
                match action {
                    Action::Connect(id) => ex.connected(id, now),
                    Action::Close(id) => fakes[id.0].reset(),
                }
            }
            let settled = ch.is_empty()
                && ex.status().iter().all(|s| s.state == CollectorState::Up && s.queued_bytes == 0);
            if settled {
                break;
            }
            now = now + Duration::from_secs(1);
        }
        let truth: BTreeMap<u32, BTreeMap<Prefix, u64>> =
            t.peers.iter().map(|(id, (_, table))| (id.0 as u32, table.clone())).collect();
        for (i, fake) in fakes.iter().enumerate() {
            let st = ex.collector_status(ids[i]).unwrap();
            assert_eq!(st.state, CollectorState::Up, "round {round} collector {i}: {st:?}");
            assert_eq!(fake.view, truth, "round {round} collector {i}: {st:?}");
            stats.0 += st.counters.drops;
            stats.1 += st.counters.resyncs;
        }
        totals.0 += stats.0;
        totals.1 += stats.1;
        totals.2 += ch.counts().2;
    }
    // The churn did reach both bounds: sessions dropped at the queue's, the channel overflowed.
    assert!(totals.0 > 0 && totals.2 > 0 && totals.1 >= totals.0, "{totals:?}");
}

#[test]
fn memory_pressure_drops_the_largest_queue() {
    let mut t = tables_with(&[(1, 65001, 2000), (2, 65002, 10)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let small = ex.add_collector(now);
    let big = ex.add_collector(now);
    connect(&mut ex, small, now);
    connect(&mut ex, big, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    drain(&mut ex, small, now);
    let (fs, fb) = (
        ex.collector_status(small).unwrap().queue_footprint,
        ex.collector_status(big).unwrap().queue_footprint,
    );
    assert_eq!(ex.queued_footprint(), fs + fb);
    assert!(fb > 4 * fs, "the collector that read nothing holds the dump: {fb} vs {fs}");
    assert_eq!(ex.relieve_pressure(now), Some(big));
    let st = ex.collector_status(big).unwrap();
    assert_eq!(
        (st.queue_footprint, st.last_drop, st.resync_pending),
        (0, Some(DropReason::MemoryPressure), true)
    );
    assert_eq!(ex.poll_action(now), Some(Action::Close(big)));
    assert_eq!(ex.collector_status(small).unwrap().state, CollectorState::Up);
}

/// Every byte the collector's queue holds, split into BMP messages.
fn raw_messages(ex: &mut Exporter<Option<Prefix>>, id: CollectorId, now: Instant) -> Vec<Vec<u8>> {
    let mut stream = Vec::new();
    loop {
        let bytes = ex.transmit(id).to_vec();
        if bytes.is_empty() {
            break;
        }
        ex.sent(id, bytes.len(), now);
        stream.extend_from_slice(&bytes);
    }
    let mut out = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        out.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    out
}

/// The per-peer header's timestamp (RFC 7854 4.2: after type, flags, distinguisher, address,
/// AS and BGP ID, 34 bytes into the header, which follows the 6-byte common header).
fn timestamp_bytes(message: &[u8]) -> &[u8] {
    &message[HEADER_LEN + 34..HEADER_LEN + 42]
}

#[test]
fn per_peer_timestamps_are_bgps_receive_time_and_zero_in_a_dump() {
    let mut t = tables_with(&[(1, 65001, 2)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    // No clock of the exporter's own: what is stamped comes with the events.
    let mut ex = Exporter::new(Config { epoch_micros: None, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let dump = raw_messages(&mut ex, id, now);
    // Initiation, Peer Up, two Route Monitoring (two attribute sets), End-of-RIB: the dump's
    // are "not available".
    let types: Vec<u8> = dump.iter().map(|m| m[5]).collect();
    assert_eq!(types, [4, 3, 0, 0, 0]);
    for m in &dump[1..] {
        assert_eq!(timestamp_bytes(m), &[0; 8], "dump messages carry no receive time");
    }
    // 1,700,000,000 s and 123,456 us: 0x6553f100, 0x0001e240.
    let at = Timestamp::from_unix(1_700_000_000, 123_456);
    let golden = [0x65, 0x53, 0xf1, 0x00, 0x00, 0x01, 0xe2, 0x40];
    let routes = RouteGroup { attrs: Some(Attrs::Id(9)), prefixes: alloc::vec![p(50)] };
    ch.try_push_stamped(Stamped { at, event: Event::Routes { peer: PeerId(1), routes } }).unwrap();
    let later = Timestamp::from_unix(1_700_000_060, 0);
    ch.try_push_stamped(Stamped {
        at: later,
        event: Event::PeerDown { peer: PeerId(1), reason: DownReason::RemoteNoData },
    })
    .unwrap();
    let up = Timestamp::from_unix(1_700_000_100, 7);
    ch.try_push_stamped(Stamped {
        at: up,
        event: Event::PeerUp { peer: PeerId(2), info: alloc::boxed::Box::new(peer_info(65002)) },
    })
    .unwrap();
    // An event told without a time: zero, the exporter having no clock.
    let routes = RouteGroup { attrs: None, prefixes: alloc::vec![p(50)] };
    ch.try_push(Event::Routes { peer: PeerId(2), routes }).unwrap();
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    let told = raw_messages(&mut ex, id, now);
    let types: Vec<u8> = told.iter().map(|m| m[5]).collect();
    assert_eq!(types, [0, 2, 3, 0], "Route Monitoring, Peer Down, Peer Up, Route Monitoring");
    assert_eq!(timestamp_bytes(&told[0]), &golden);
    assert_eq!(timestamp_bytes(&told[1]), &[0x65, 0x53, 0xf1, 0x3c, 0, 0, 0, 0]);
    assert_eq!(timestamp_bytes(&told[2]), &[0x65, 0x53, 0xf1, 0x64, 0, 0, 0, 7]);
    assert_eq!(timestamp_bytes(&told[3]), &[0; 8]);
    // With a clock of its own, an event told without a time gets the exporter's time.
    let mut ex = Exporter::new(config());
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut tables_with(&[]), &mut e, &mut ch);
    ch.try_push(Event::PeerUp { peer: PeerId(3), info: alloc::boxed::Box::new(peer_info(65003)) }).unwrap();
    poll_all(&mut ex, now, &mut tables_with(&[]), &mut e, &mut ch);
    let told = raw_messages(&mut ex, id, now);
    // 1,700,000,000 s at Instant::ZERO, plus 1 ms.
    assert_eq!(timestamp_bytes(told.last().unwrap()), &[0x65, 0x53, 0xf1, 0x00, 0, 0, 0x03, 0xe8]);
}

/// After sessions with traffic end, the exporter holds exactly what it held before any: no
/// queue ring, no peer map, no dump buffers grown by the traffic stay behind.
#[test]
fn at_rest_after_a_cycle_the_exporter_holds_what_it_held_before() {
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(4096, 1 << 24));
    let mut ex = Exporter::new(config());
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut tables_with(&[]), &mut e, &mut ch);
    raw_messages(&mut ex, id, now);
    let at_rest = |ex: &Exporter<Option<Prefix>>| {
        let c = &ex.collectors[0];
        (
            c.queue.footprint(),
            c.announced.is_empty(),
            ex.groups.capacity(),
            ex.peers_buf.capacity(),
            ex.stats_buf.capacity(),
        )
    };
    let before = at_rest(&ex);
    assert_eq!(before, (0, true, 0, 0, 0));
    // A dump of two peers, events, then every peer down.
    let mut t = tables_with(&[(1, 65001, 3000), (2, 65002, 10)]);
    ex.collectors[0].dump = Some(Dump::Start);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    raw_messages(&mut ex, id, now);
    assert!(ex.collectors[0].announced.len() == 2);
    for peer in [1, 2] {
        ch.try_push(Event::PeerDown { peer: PeerId(peer), reason: DownReason::RemoteNoData }).unwrap();
    }
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    raw_messages(&mut ex, id, now);
    assert_eq!(at_rest(&ex), before);
}

/// A burst of events waits in the channel while a collector's queue is past half its bound, and
/// reaches it as the collector reads: no drop. A collector that does not read is dropped once
/// the channel itself passes half.
#[test]
fn a_burst_waits_in_the_channel_for_a_reading_collector() {
    let mut t = tables_with(&[(1, 65001, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { queue_bound: 16 << 10, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    raw_messages(&mut ex, id, now);
    // 30 events of 200 prefixes (about 1 KB each on the wire): twice the queue's bound.
    let burst = |ch: &mut EventChannel, n: u32| {
        for k in 0..n {
            let prefixes = (0..200).map(|i| p(k * 200 + i)).collect();
            let routes = RouteGroup { attrs: Some(Attrs::Id(1)), prefixes };
            ch.try_push(Event::Routes { peer: PeerId(1), routes }).unwrap();
        }
    };
    burst(&mut ch, 30);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert!(!ch.is_empty(), "the rest of the burst waits in the channel");
    let mut delivered = 0;
    for _ in 0..100 {
        delivered += raw_messages(&mut ex, id, now).len();
        poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
        if ch.is_empty() {
            delivered += raw_messages(&mut ex, id, now).len();
            break;
        }
    }
    assert_eq!(delivered, 30, "every event's Route Monitoring");
    assert_eq!(ex.collector_status(id).unwrap().counters.drops, 0);
    // It stops reading: events wait for it only within the reading grace, and the exporter
    // asks to be polled when the grace ends.
    burst(&mut ch, 25);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    assert!(!ch.is_empty());
    assert_eq!(ex.collector_status(id).unwrap().counters.drops, 0);
    let later = now + Duration::from_secs(5);
    assert_eq!(ex.poll_at(), Some(later));
    poll_all(&mut ex, later, &mut t, &mut e, &mut ch);
    let st = ex.collector_status(id).unwrap();
    assert_eq!(st.counters.drops, 1, "{st:?}");
    assert!(matches!(st.last_drop, Some(DropReason::QueueFull(_))));
    assert!(ch.is_empty());
}

/// Past half the channel, events flow even to a collector that reads: the channel's bound is
/// never risked for one collector.
#[test]
fn past_half_the_channel_events_flow_whatever_the_collectors_do() {
    let mut t = tables_with(&[(1, 65001, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(8, 1 << 20));
    let mut ex = Exporter::new(Config { queue_bound: 16 << 10, ..config() });
    let now = Instant::from_millis(1);
    let id = ex.add_collector(now);
    connect(&mut ex, id, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    raw_messages(&mut ex, id, now);
    for k in 0..8u32 {
        let prefixes = (0..400).map(|i| p(k * 400 + i)).collect();
        ch.try_push(Event::Routes {
            peer: PeerId(1),
            routes: RouteGroup { attrs: Some(Attrs::Id(1)), prefixes },
        })
        .unwrap();
    }
    assert!(!ch.below_half());
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    // 8 events of about 2 KB: the queue passed half at the fifth, but the channel was past
    // half, so the collector read on: nothing is left waiting.
    assert!(ch.is_empty());
    let st = ex.collector_status(id).unwrap();
    assert_eq!(st.counters.messages_sent, 3, "Initiation, Peer Up, End-of-RIB: nothing read since");
    assert!(st.counters.drops == 1 || st.queued_bytes > 8 << 10, "{st:?}");
}

/// A collector that is behind holds only its own events: another one reads on at once, and
/// what both have read is freed.
#[test]
fn each_collector_reads_the_channel_at_its_own_pace() {
    let mut t = tables_with(&[(1, 65001, 0)]);
    let (mut e, mut ch) = (FakeEncoder::default(), EventChannel::new(64, 1 << 20));
    let mut ex = Exporter::new(Config { queue_bound: 16 << 10, ..config() });
    let now = Instant::from_millis(1);
    let (slow, fast) = (ex.add_collector(now), ex.add_collector(now));
    connect(&mut ex, slow, now);
    connect(&mut ex, fast, now);
    poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
    raw_messages(&mut ex, slow, now);
    raw_messages(&mut ex, fast, now);
    for k in 0..20u32 {
        let prefixes = (0..200).map(|i| p(k * 200 + i)).collect();
        ch.try_push(Event::Routes {
            peer: PeerId(1),
            routes: RouteGroup { attrs: Some(Attrs::Id(1)), prefixes },
        })
        .unwrap();
        poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
        // The fast one reads after every poll; the slow one reads nothing (but read lately).
        let got = raw_messages(&mut ex, fast, now);
        assert_eq!(got.len(), 1, "event {k} reached the fast collector at once");
    }
    assert!(!ch.is_empty(), "the slow collector's events wait for it");
    assert_eq!(ex.collector_status(slow).unwrap().counters.drops, 0);
    let mut slow_got = raw_messages(&mut ex, slow, now).len();
    for _ in 0..20 {
        poll_all(&mut ex, now, &mut t, &mut e, &mut ch);
        slow_got += raw_messages(&mut ex, slow, now).len();
    }
    assert_eq!(slow_got, 20, "then it gets every one");
    assert!(ch.is_empty(), "and the channel is freed");
}
