//! The subsystem's pieces without a network: the encoder against BGP's own parser, the
//! tables adapter over a real RIB, what `accept` keeps, and the console's forms. The whole
//! subsystem with TCP collectors is in `apps/tests/sim_bmp.rs`.

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_bgp::packet::attribute::{AsPath, NextHop, PathAttributes};
use bulkhead_bgp::packet::nlri::{Ipv4Prefix, Ipv6Prefix, Prefix as BgpPrefix};
use bulkhead_bgp::packet::update::Update;
use bulkhead_bgp::policy::Policy;
use bulkhead_bgp::rib::{PeerConfig, PeerId as RibPeer, Rib, RibConfig, RibView};
use bulkhead_bmp::packet::{PeerFlags, PeerHeader, PeerType};
use bulkhead_bmp::{
    Attrs, DownReason, Event, Family, PeerId, PeerUpInfo, Prefix, RouteGroup, Tables, UpdateEncoder,
};

use super::*;

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        as_path: AsPath::from_sequence(path),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(198, 51, 100, 9))),
        med: Some(5),
        ..PathAttributes::default()
    }
}

fn v4(i: u32) -> BgpPrefix {
    BgpPrefix::V4(Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
}

fn parse(pdu: &[u8]) -> Update {
    assert_eq!(&pdu[..16], &[0xff; 16]);
    assert_eq!(usize::from(u16::from_be_bytes([pdu[16], pdu[17]])), pdu.len());
    assert_eq!(pdu[18], 2, "an UPDATE");
    let parsed = Update::parse(&pdu[19..], CTX).unwrap();
    assert_eq!(parsed.action, None, "{:?}", parsed.errors);
    parsed.update
}

/// Encodes the whole group the way the exporter does, one UPDATE of at most `max` at a time.
fn encode_all(encoder: &mut ViewEncoder<'_>, group: &RouteGroup, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < group.prefixes.len() {
        let mut buf = vec![0u8; max];
        let e = encoder.encode(PeerId(4), group, start, &mut buf).unwrap();
        assert!(e.prefixes > 0 && e.len <= max);
        out.push(buf[..e.len].to_vec());
        start += e.prefixes;
    }
    out
}

#[test]
fn many_prefixes_sharing_attributes_go_in_one_update() {
    let slab = RefCell::new(vec![attrs(&[65001, 65010])]);
    let mut encoder = ViewEncoder::new(None, &slab);
    let prefixes: Vec<Prefix> = (0..2000).map(|i| to_bmp(v4(i))).collect();
    let group = RouteGroup { attrs: Some(Attrs::Id(SLAB)), prefixes: prefixes.clone() };
    let messages = encode_all(&mut encoder, &group, 4096);
    // 4 bytes per /24: about a thousand to a 4096-byte UPDATE.
    assert_eq!(messages.len(), 2);
    let mut seen = Vec::new();
    for m in &messages {
        let u = parse(m);
        assert_eq!(u.attributes.as_ref(), Some(&attrs(&[65001, 65010])));
        seen.extend(u.nlri.iter().map(|p| to_bmp(BgpPrefix::V4(*p))));
    }
    assert_eq!(seen, prefixes);
    // A small PDU: more messages, every one within it, nothing lost.
    let small = encode_all(&mut encoder, &group, 200);
    assert!(small.len() > 40);
    let n: usize = small.iter().map(|m| parse(m).nlri.len()).sum();
    assert_eq!(n, 2000);
}

#[test]
fn ipv4_announcements_written_in_place_are_the_packers_bytes() {
    // Prefixes of every length class, and attribute sets with and without a next hop.
    let prefixes: Vec<BgpPrefix> = (0..700u32)
        .map(|i| {
            let len = [0u8, 1, 7, 8, 9, 16, 23, 24, 25, 31, 32][(i % 11) as usize];
            BgpPrefix::V4(
                Ipv4Prefix::new_truncating(Ipv4Addr::from(0x0a00_0000 ^ i.wrapping_mul(0x9e37_79b9)), len)
                    .unwrap(),
            )
        })
        .collect();
    let mut communities = attrs(&[65001, 65010, 65020]);
    communities.local_pref = Some(200);
    let mut no_hop = attrs(&[]);
    no_hop.next_hop = None;
    for set in [attrs(&[65001, 65010]), communities, no_hop] {
        let slab = RefCell::new(vec![set.clone()]);
        let group = RouteGroup {
            attrs: Some(Attrs::Id(SLAB)),
            prefixes: prefixes.iter().map(|p| to_bmp(*p)).collect(),
        };
        for max in [4096, 300, 100] {
            let mut encoder = ViewEncoder::new(None, &slab);
            let mut start = 0;
            while start < group.prefixes.len() {
                let mut fast = vec![0u8; max];
                let e = encoder.encode(PeerId(4), &group, start, &mut fast).unwrap();
                // BGP's packer over the same run, the way the encoder used it before.
                let mut packed = vec![0u8; max];
                let run = &prefixes[start..];
                let p = pack_one(Some(&set), run, &mut packed).unwrap();
                assert_eq!((e.len, e.prefixes), (p.len, p.prefixes), "max {max} start {start}");
                assert_eq!(fast[..e.len], packed[..p.len], "max {max} start {start}");
                start += e.prefixes;
            }
        }
    }
    // A set too large for the PDU with even one prefix is refused, as the packer does.
    let slab = RefCell::new(vec![attrs(&[65001; 40])]);
    let group = RouteGroup { attrs: Some(Attrs::Id(SLAB)), prefixes: vec![to_bmp(v4(1))] };
    let mut encoder = ViewEncoder::new(None, &slab);
    assert_eq!(encoder.encode(PeerId(4), &group, 0, &mut [0u8; 64]), Err(EncodeError::TooLarge));
}

#[test]
fn withdrawals_ipv6_and_attributes_told_as_bytes() {
    let slab = RefCell::new(Vec::new());
    let mut encoder = ViewEncoder::new(None, &slab);
    let gone = RouteGroup { attrs: None, prefixes: (0..300).map(|i| to_bmp(v4(i))).collect() };
    let messages = encode_all(&mut encoder, &gone, 4096);
    assert_eq!(messages.len(), 1);
    assert_eq!(parse(&messages[0]).withdrawn.len(), 300);

    // Attributes as an UPDATE carries them (NEXT_HOP included) survive the trip.
    let a = attrs(&[65001]);
    let mut bytes = Vec::new();
    a.emit(CTX, true, &[], &mut bytes);
    let told =
        RouteGroup { attrs: Some(Attrs::Bytes(bytes.into_boxed_slice())), prefixes: vec![to_bmp(v4(1))] };
    let u = parse(&encode_all(&mut encoder, &told, 4096)[0]);
    assert_eq!(u.attributes, Some(a.clone()));

    // IPv6 goes in MP_REACH_NLRI with the set's next hop; a mixed group is split by family.
    let mut a6 = a.clone();
    a6.next_hop =
        Some(NextHop::V6 { global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9), link_local: None });
    *slab.borrow_mut() = vec![a6];
    let p6 = BgpPrefix::V6(Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), 48).unwrap());
    let mixed =
        RouteGroup { attrs: Some(Attrs::Id(SLAB)), prefixes: vec![to_bmp(p6), to_bmp(p6), to_bmp(v4(3))] };
    let mut buf = vec![0u8; 4096];
    let e = encoder.encode(PeerId(4), &mixed, 0, &mut buf).unwrap();
    assert_eq!(e.prefixes, 2, "the IPv6 run only");
    let u = parse(&buf[..e.len]);
    assert_eq!(u.mp_reach.map(|r| r.nlri), Some(vec![p6, p6]));

    // An attribute set nobody can name is refused, not guessed.
    let unknown = RouteGroup { attrs: Some(Attrs::Id(7)), prefixes: vec![to_bmp(v4(1))] };
    assert_eq!(encoder.encode(PeerId(4), &unknown, 0, &mut buf), Err(EncodeError::UnknownAttrs));
    let garbage =
        RouteGroup { attrs: Some(Attrs::Bytes(Box::new([0x40, 1]))), prefixes: vec![to_bmp(v4(1))] };
    assert_eq!(encoder.encode(PeerId(4), &garbage, 0, &mut buf), Err(EncodeError::UnknownAttrs));
}

#[test]
fn a_route_without_next_hop_gets_the_unspecified_one() {
    let slab = RefCell::new(vec![PathAttributes::default()]);
    let mut encoder = ViewEncoder::new(None, &slab);
    let group = RouteGroup { attrs: Some(Attrs::Id(SLAB)), prefixes: vec![to_bmp(v4(1))] };
    let mut buf = vec![0u8; 4096];
    let e = encoder.encode(PeerId(4), &group, 0, &mut buf).unwrap();
    // BGP's parser treats 0.0.0.0 as an invalid NEXT_HOP; the bytes say what was sent.
    assert!(buf[..e.len].windows(7).any(|w| w == [0x40, 3, 4, 0, 0, 0, 0]));
}

/// A RIB with one session holding `routes`, seen as BGP would offer it.
struct OneSession {
    rib: Rib<Ipv4Prefix>,
    rib6: Rib<Ipv6Prefix>,
    peer: RibPeer,
    peer6: RibPeer,
}

impl OneSession {
    fn new(routes: &[(u32, &PathAttributes)]) -> OneSession {
        let config = RibConfig::new(65000, Ipv4Addr::new(192, 0, 2, 1));
        let (mut rib, mut rib6) = (Rib::new(config), Rib::new(config));
        let pc = PeerConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
            remote_as: 65001,
            next_hop_self: NextHop::V4(Ipv4Addr::new(198, 51, 100, 1)),
            rr_client: false,
            import: Some(Policy::accept_all()),
            export: None,
            prefix_limit: None,
        };
        let peer = rib.add_peer(pc.clone()).unwrap();
        let peer6 = rib6.add_peer(pc).unwrap();
        rib.peer_up(peer, Ipv4Addr::new(10, 0, 0, 9)).unwrap();
        let cost = |_: &NextHop| Some(0u32);
        for (i, a) in routes {
            let BgpPrefix::V4(p) = v4(*i) else { unreachable!() };
            rib.update(peer, &[], &[p], a, &cost).unwrap();
        }
        OneSession { rib, rib6, peer, peer6 }
    }
}

fn info() -> PeerUpInfo {
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
        remote_port: 40000,
        sent_open: vec![0xff; 29],
        received_open: vec![0xff; 29],
        table_name: None,
        families: vec![Family::IPV4_UNICAST],
    }
}

impl BgpView for OneSession {
    fn sessions(&self, out: &mut Vec<u64>) {
        out.push(3);
    }
    fn peer_up(&self, session: u64) -> Option<PeerUpInfo> {
        (session == 3).then(info)
    }
    fn loc_rib_up(&self) -> Option<PeerUpInfo> {
        None
    }
    fn adj_rib_in_page<'a>(
        &'a self,
        _session: u64,
        view: RibView,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(BgpPrefix, &'a PathAttributes)>,
    ) {
        if !cursor.v4.is_done() {
            let page = self.rib.adj_rib_in_page(self.peer, view, &mut cursor.v4, max).unwrap();
            out.extend(page.into_iter().map(|r| (BgpPrefix::V4(r.prefix), r.attrs)));
        } else {
            let page = self.rib6.adj_rib_in_page(self.peer6, view, &mut cursor.v6, max).unwrap();
            out.extend(page.into_iter().map(|r| (BgpPrefix::V6(r.prefix), r.attrs)));
        }
    }
    fn loc_rib_page<'a>(&'a self, _: &mut BgpCursor, _: usize, _: &mut Vec<(BgpPrefix, &'a PathAttributes)>) {
    }
    fn attrs(&self, _id: u64) -> Option<&PathAttributes> {
        None
    }
}

#[test]
fn a_table_is_read_in_slices_grouped_by_attribute_set() {
    let (a, b) = (attrs(&[65001]), attrs(&[65001, 65002]));
    let routes: Vec<(u32, &PathAttributes)> =
        (0..10).map(|i| (i, if i % 2 == 0 { &a } else { &b })).collect();
    let bgp = OneSession::new(&routes);
    let slab = RefCell::new(Vec::new());
    let mut tables =
        ViewTables { view: Some(&bgp), slab: &slab, post_policy: true, loc_rib: true, epoch_micros: None };
    let mut peers = Vec::new();
    tables.peers(&mut peers);
    assert_eq!(peers, vec![peer_id(3, View::PrePolicy), peer_id(3, View::PostPolicy)], "no Loc-RIB offered");
    let post = tables.peer_up(peer_id(3, View::PostPolicy)).unwrap();
    assert!(post.header.flags.contains(PeerFlags::L));
    assert!(!tables.peer_up(peer_id(3, View::PrePolicy)).unwrap().header.flags.contains(PeerFlags::L));

    let mut cursor = BgpCursor::default();
    let mut seen = Vec::new();
    let mut slices = 0;
    loop {
        let mut groups = Vec::new();
        let next = tables.next_routes(peer_id(3, View::PrePolicy), &cursor, 4, &mut groups);
        slices += 1;
        assert!(groups.iter().map(|g| g.prefixes.len()).sum::<usize>() <= 4, "a slice is bounded");
        assert!(groups.len() <= 2 && slab.borrow().len() == groups.len(), "one copy per set per slice");
        for g in &groups {
            let Some(Attrs::Id(id)) = g.attrs else { panic!("{g:?}") };
            let set = slab.borrow()[(id & !SLAB) as usize].clone();
            for p in &g.prefixes {
                let i = (u32::from(match p.addr {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => unreachable!(),
                }) - 0x0a00_0000)
                    >> 8;
                assert_eq!(set, if i % 2 == 0 { a.clone() } else { b.clone() });
                seen.push(i);
            }
        }
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert!(slices >= 3);
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "every route once");

    // No BGP to read (it is down): no peers, every walk over at once.
    let mut none =
        ViewTables { view: None, slab: &slab, post_policy: true, loc_rib: true, epoch_micros: None };
    let mut peers = Vec::new();
    none.peers(&mut peers);
    assert!(peers.is_empty());
    assert_eq!(
        none.next_routes(peer_id(3, View::PrePolicy), &BgpCursor::default(), 4, &mut Vec::new()),
        None
    );
}

fn running(post_policy: bool, loc_rib: bool, channel_events: usize) -> (BmpConfig, Running) {
    let config = BmpConfig {
        collectors: vec![Collector { address: Ipv4Addr::new(192, 0, 2, 2), port: 1790 }],
        post_policy,
        loc_rib,
        channel_events,
        ..BmpConfig::default()
    };
    let r = Running::new(&config, Instant::ZERO, None);
    (config, r)
}

#[test]
fn accept_keeps_what_is_configured_within_the_channel_bound() {
    let peer = peer_id(5, View::PrePolicy);
    let up = Event::PeerUp { peer, info: Box::new(info()) };
    let (config, mut r) = running(true, false, 3);
    assert!(r.accept(&config, Timestamp::UNAVAILABLE, &up));
    assert_eq!(r.channel.len(), 2, "the post-policy peer's Peer Up follows");
    r.channel.pop();
    match r.channel.pop() {
        Some(Event::PeerUp { peer: p, info }) => {
            assert_eq!(p, peer_id(5, View::PostPolicy));
            assert!(info.header.flags.contains(PeerFlags::L));
        }
        other => panic!("{other:?}"),
    }
    // The Loc-RIB is off: taken and dropped, not queued, not a refusal.
    let loc = Event::EndOfRib { peer: LOC_RIB, family: Family::IPV4_UNICAST };
    assert!(r.accept(&config, Timestamp::UNAVAILABLE, &loc));
    assert!(r.channel.is_empty());
    // At the bound: refused at once, and the channel marked for re-synchronisation.
    let routes = |n| Event::Routes {
        peer,
        routes: RouteGroup { attrs: Some(Attrs::Id(1)), prefixes: (0..n).map(|i| to_bmp(v4(i))).collect() },
    };
    assert!(r.accept(&config, Timestamp::UNAVAILABLE, &routes(10)));
    assert!(r.accept(&config, Timestamp::UNAVAILABLE, &routes(10)));
    assert!(r.accept(&config, Timestamp::UNAVAILABLE, &routes(10)));
    assert!(!r.accept(&config, Timestamp::UNAVAILABLE, &routes(10)));
    assert!(r.channel.take_overflowed());
    let down = Event::PeerDown { peer, reason: DownReason::RemoteNoData };
    assert!(!r.accept(&config, Timestamp::UNAVAILABLE, &down));
}

#[test]
fn the_subsystem_accepts_only_bgp_events_while_running() {
    let (config, _) = running(false, false, 16);
    let mut bmp = BmpSubsystem::new(config);
    let event = Event::PeerDown { peer: peer_id(1, View::PrePolicy), reason: DownReason::Deconfigured };
    assert!(!bmp.accept(Domain::Bgp, &event), "not running");
    bmp.running = Some(Running::new(&bmp.config, Instant::ZERO, None));
    assert!(!bmp.accept(Domain::Sctp, &event), "only BGP tells BMP");
    assert!(!bmp.accept(Domain::Bgp, &7u32), "only events");
    assert!(bmp.accept(Domain::Bgp, &event));
    bmp.shed();
    assert!(bmp.running.is_none());
}

#[test]
fn peers_name_a_session_and_a_view() {
    for (s, v) in [(0, View::LocRib), (1, View::PrePolicy), (1 << 40, View::PostPolicy)] {
        assert_eq!(split_peer(peer_id(s, v)), (s, v));
    }
    assert_eq!(LOC_RIB, PeerId(2));
}

#[test]
fn show_bmp_forms() {
    let (config, r) = running(false, false, 16);
    let mut text = String::new();
    show::text(&mut text, Some(&r), &config).unwrap();
    assert!(text.starts_with("bmp: 1 collectors, channel 0 of 16 events"), "{text}");
    assert!(text.contains("collector 192.0.2.2:1790 backoff: queued 0 bytes"), "{text}");
    let mut json = String::new();
    show::json(&mut json, Some(&r), &config).unwrap();
    assert!(json.starts_with("{\"channel\":{\"events\":0,\"max_events\":16,"), "{json}");
    assert!(
        json.contains("\"collectors\":[{\"address\":\"192.0.2.2\",\"port\":1790,\"state\":\"backoff\",\"queued_bytes\":0,"),
        "{json}"
    );
    for key in ["messages_sent", "bytes_sent", "drops", "resyncs", "last_drop"] {
        assert!(json.contains(&alloc::format!("\"{key}\":")), "{key} in {json}");
    }
    let mut off = String::new();
    show::json(&mut off, None, &BmpConfig::default()).unwrap();
    assert!(off.ends_with("\"collectors\":[]}\n"), "{off}");
}

#[test]
fn pressure_drops_the_session_with_the_largest_queue() {
    use crate::testing::{AdmitAll, NullIo};
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;
    use bulkhead_bmp::DropReason;
    let config = BmpConfig {
        collectors: vec![
            Collector { address: Ipv4Addr::new(192, 0, 2, 2), port: 1790 },
            Collector { address: Ipv4Addr::new(192, 0, 2, 3), port: 1790 },
        ],
        ..BmpConfig::default()
    };
    let mut bmp = BmpSubsystem::new(config);
    let (mut io, mut rng) = (NullIo::default(), Csprng::seed_from_u64(1));
    let mut cx = Context::new(Instant::ZERO, Domain::Bmp, &mut rng, &AdmitAll, &mut io);
    bmp.start(&mut cx).unwrap();
    let r = bmp.running.as_mut().unwrap();
    for c in r.exporter.status() {
        assert_eq!(
            (c.state, c.counters.connect_failures),
            (bulkhead_bmp::CollectorState::Backoff, 1),
            "refused"
        );
    }
    // Both sessions up by hand; the first collector has read its Initiation, the second not.
    let now = Instant::ZERO + Duration::from_secs(2);
    while let Some(Action::Connect(id)) = r.exporter.poll_action(now) {
        r.exporter.connected(id, now);
    }
    let first = r.exporter.transmit(CollectorId(0)).len();
    r.exporter.sent(CollectorId(0), first, now);
    let mut cx = Context::new(now, Domain::Bmp, &mut rng, &AdmitAll, &mut io);
    bmp.pressure(&mut cx, true);
    let status = bmp.running.as_ref().unwrap().exporter.status();
    assert_eq!(status[0].counters.drops, 0);
    assert_eq!(status[1].counters.drops, 1);
    assert_eq!(status[1].last_drop, Some(DropReason::MemoryPressure));
    assert_eq!(status[1].queue_footprint, 0, "its queue freed at once");
    assert_eq!(bmp.running.as_ref().unwrap().links[1].drops_seen, 1, "its Close was carried out");
}

/// The other subsystems as BGP sees them: BMP takes everything, kept here with its time.
#[derive(Default)]
struct Recorder(Vec<Event>, Vec<Timestamp>);

impl crate::context::Peers for Recorder {
    fn peek(&self, _d: Domain) -> Option<&dyn Any> {
        None
    }
    fn tell(&mut self, d: Domain, message: &dyn Any) -> bool {
        assert_eq!(d, Domain::Bmp);
        let stamped = message.downcast_ref::<Stamped>().expect("a stamped event");
        self.0.push(stamped.event.clone());
        self.1.push(stamped.at);
        true
    }
}

/// A platform that knows the date: `NullIo` with a wall clock (Unix micros at `Instant::ZERO`).
struct ClockIo(crate::testing::NullIo, u64);

impl crate::context::Io for ClockIo {
    fn addresses(&self) -> &[crate::addr::Ipv4Cidr] {
        self.0.addresses()
    }
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), crate::link::TxError> {
        self.0.transmit(iface, frame)
    }
    fn bind(&mut self, owner: Domain, b: crate::context::Binding) -> Result<(), crate::context::BindError> {
        self.0.bind(owner, b)
    }
    fn send_datagram(
        &mut self,
        owner: Domain,
        d: crate::context::OutDatagram<'_>,
    ) -> Result<(), crate::context::SendError> {
        self.0.send_datagram(owner, d)
    }
    fn tcp_listen(
        &mut self,
        owner: Domain,
        port: u16,
        b: TcpBuffers,
    ) -> Result<SocketId, crate::context::TcpError> {
        self.0.tcp_listen(owner, port, b)
    }
    fn tcp_connect(
        &mut self,
        owner: Domain,
        local: Option<Ipv4Addr>,
        remote: (Ipv4Addr, u16),
        b: TcpBuffers,
    ) -> Result<SocketId, crate::context::TcpError> {
        self.0.tcp_connect(owner, local, remote, b)
    }
    fn tcp(
        &mut self,
        owner: Domain,
        id: SocketId,
    ) -> Result<&mut smoltcp::socket::tcp::Socket<'static>, crate::context::TcpError> {
        self.0.tcp(owner, id)
    }
    fn tcp_release(&mut self, owner: Domain, id: SocketId) -> Result<(), crate::context::TcpError> {
        self.0.tcp_release(owner, id)
    }
    fn route(
        &mut self,
        owner: Domain,
        change: crate::context::RouteChange,
    ) -> Result<(), crate::context::RouteQueueError> {
        self.0.route(owner, change)
    }
    fn take_route_resync(&mut self, owner: Domain) -> bool {
        self.0.take_route_resync(owner)
    }
    fn subsystem_up(&mut self, d: Domain) {
        self.0.subsystem_up(d)
    }
    fn subsystem_down(&mut self, d: Domain, now: Instant) {
        self.0.subsystem_down(d, now)
    }
    fn wall_epoch(&self) -> Option<u64> {
        Some(self.1)
    }
}

/// BGP's events carry the wall clock of the poll that told them (the time BGP received what
/// they tell), or "not available" on a platform without one; BMP keeps the time with the event
/// and gives the post-policy peer's events the same.
#[test]
fn what_bgp_tells_carries_the_wall_clock() {
    use crate::testing::{AdmitAll, NullIo};
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;
    let (mut rng, mut rec) = (Csprng::seed_from_u64(1), Recorder::default());
    let mut io = ClockIo(NullIo::default(), 1_700_000_000_000_000);
    let now = Instant::from_micros(2_500_001);
    let mut cx = Context::new(now, Domain::Bgp, &mut rng, &AdmitAll, &mut io).with_peers(&mut rec);
    assert_eq!(cx.wall_clock(), Some((1_700_000_002, 500_001)));
    assert!(tell_peer_up(&mut cx, 4, info()));
    assert!(tell_peer_down(&mut cx, 4, DownReason::RemoteNoData));
    let at = Timestamp { secs: 1_700_000_002, micros: 500_001 };
    assert_eq!(rec.1, [at, at]);
    let mut io = NullIo::default();
    let mut rec = Recorder::default();
    let mut cx = Context::new(now, Domain::Bgp, &mut rng, &AdmitAll, &mut io).with_peers(&mut rec);
    assert_eq!(cx.wall_clock(), None);
    assert!(tell_peer_down(&mut cx, 4, DownReason::RemoteNoData));
    assert_eq!(rec.1, [Timestamp::UNAVAILABLE]);

    let (config, mut r) = running(true, false, 16);
    let up = Event::PeerUp { peer: peer_id(5, View::PrePolicy), info: Box::new(info()) };
    assert!(r.accept(&config, at, &up));
    assert_eq!(r.channel.pop_stamped().map(|s| s.at), Some(at));
    assert_eq!(r.channel.pop_stamped().map(|s| s.at), Some(at), "the post-policy Peer Up too");
}

#[test]
fn what_bgp_tells_encodes_back_to_the_same_update() {
    use crate::testing::{AdmitAll, NullIo};
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;
    use bulkhead_bgp::packet::update::{MpReach, MpUnreach};
    let (mut io, mut rng, mut rec) = (NullIo::default(), Csprng::seed_from_u64(1), Recorder::default());
    let mut cx = Context::new(Instant::ZERO, Domain::Bgp, &mut rng, &AdmitAll, &mut io).with_peers(&mut rec);
    let v6 =
        |i: u16| BgpPrefix::V6(Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 48).unwrap());
    let nh6 = NextHop::V6 { global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9), link_local: None };
    let BgpPrefix::V4(w) = v4(9) else { unreachable!() };
    let update = Update {
        withdrawn: vec![w],
        attributes: Some(attrs(&[65001, 65010])),
        nlri: (0..3).filter_map(|i| if let BgpPrefix::V4(p) = v4(i) { Some(p) } else { None }).collect(),
        mp_reach: Some(MpReach {
            family: bulkhead_bgp::packet::nlri::Family::Ipv6Unicast,
            next_hop: nh6,
            nlri: vec![v6(1), v6(2)],
        }),
        mp_unreach: Some(MpUnreach {
            family: bulkhead_bgp::packet::nlri::Family::Ipv6Unicast,
            withdrawn: vec![v6(3)],
        }),
    };
    assert!(tell_peer_up(&mut cx, 4, info()));
    assert!(tell_update(&mut cx, 4, &update));
    assert!(tell_end_of_rib(&mut cx, 4, bulkhead_bgp::packet::nlri::Family::Ipv6Unicast));
    assert!(tell_peer_down(&mut cx, 4, DownReason::RemoteNoData));
    let peer = peer_id(4, View::PrePolicy);
    let events = rec.0;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(matches!(&events[0], Event::PeerUp { peer: p, .. } if *p == peer));
    assert!(
        matches!(&events[4], Event::EndOfRib { peer: p, family } if *p == peer && *family == Family::IPV6_UNICAST)
    );
    assert!(
        matches!(&events[5], Event::PeerDown { peer: p, reason: DownReason::RemoteNoData } if *p == peer)
    );
    // Through the encoder, the routes are the UPDATE's again.
    let slab = RefCell::new(Vec::new());
    let mut encoder = ViewEncoder::new(None, &slab);
    let mut back = Vec::new();
    for e in &events[1..4] {
        let Event::Routes { peer: p, routes } = e else { panic!("{e:?}") };
        assert_eq!(*p, peer);
        back.extend(encode_all(&mut encoder, routes, 4096).iter().map(|m| parse(m)));
    }
    // A mixed group goes out one family to an UPDATE: withdrawals in two, announcements in two.
    assert_eq!(back.len(), 4);
    assert_eq!(back[0].withdrawn, vec![w]);
    assert_eq!(back[1].mp_unreach.as_ref().map(|u| u.withdrawn.clone()), Some(vec![v6(3)]));
    assert_eq!(back[2].nlri, update.nlri);
    assert_eq!(back[2].attributes, update.attributes);
    let reach = back[3].mp_reach.clone().expect("MP_REACH_NLRI");
    assert_eq!((reach.next_hop, reach.nlri), (nh6, vec![v6(1), v6(2)]));
}

/// Times a whole dump of `BULKHEAD_BMP_DUMP_ROUTES` routes (default 200k) through the tables
/// adapter, the encoder and the exporter (`--ignored`, release, for the dump's CPU cost).
#[test]
#[ignore]
fn dump_cost() {
    use bulkhead_bmp::exporter::Config as ExpConfig;
    let n: u32 =
        std::env::var("BULKHEAD_BMP_DUMP_ROUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let a = attrs(&[65001, 65010]);
    let routes: Vec<(u32, &PathAttributes)> = (0..n).map(|i| (i, &a)).collect();
    let bgp = OneSession::new(&routes);
    let slab = RefCell::new(Vec::new());
    let config = ExpConfig { queue_bound: 64 << 20, dump_slice: DUMP_SLICE, ..ExpConfig::default() };
    let mut exporter: Exporter<BgpCursor> = Exporter::new(config);
    let id = exporter.add_collector(Instant::ZERO);
    assert_eq!(exporter.poll_action(Instant::ZERO), Some(Action::Connect(id)));
    exporter.connected(id, Instant::ZERO);
    let mut channel = EventChannel::new(16, 1 << 20);
    // The phases apart: BGP's pages, the adapter's groups, the encoder.
    let t = std::time::Instant::now();
    let mut cursor = BgpCursor::default();
    let mut page = Vec::new();
    let mut count = 0;
    while !cursor.is_done() {
        page.clear();
        bgp.adj_rib_in_page(3, RibView::PrePolicy, &mut cursor, DUMP_SLICE, &mut page);
        count += page.len();
    }
    std::println!("pages: {count} routes in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut cursor = BgpCursor::default();
    let mut groups = Vec::new();
    let mut tables =
        ViewTables { view: Some(&bgp), slab: &slab, post_policy: false, loc_rib: false, epoch_micros: None };
    let mut encoder = ViewEncoder::new(Some(&bgp), &slab);
    let (mut enc_time, mut buf) = (std::time::Duration::ZERO, vec![0u8; 4096]);
    loop {
        groups.clear();
        let next = tables.next_routes(peer_id(3, View::PrePolicy), &cursor, DUMP_SLICE, &mut groups);
        let e = std::time::Instant::now();
        for g in &groups {
            let mut start = 0;
            while start < g.prefixes.len() {
                start += encoder.encode(PeerId(12), g, start, &mut buf).unwrap().prefixes;
            }
        }
        enc_time += e.elapsed();
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    std::println!("next_routes+encode {:?}, of which encode {enc_time:?}", t.elapsed());
    let started = std::time::Instant::now();
    let (mut polls, mut bytes) = (0, 0);
    loop {
        let mut tables = ViewTables {
            view: Some(&bgp),
            slab: &slab,
            post_policy: false,
            loc_rib: false,
            epoch_micros: None,
        };
        let mut encoder = ViewEncoder::new(Some(&bgp), &slab);
        let p = exporter.poll(Instant::ZERO, &mut tables, &mut encoder, &mut channel, 64);
        polls += 1;
        loop {
            let n = exporter.transmit(id).len();
            if n == 0 {
                break;
            }
            bytes += n;
            exporter.sent(id, n, Instant::ZERO);
        }
        if p == bulkhead_bmp::Poll::Idle {
            break;
        }
    }
    let took = started.elapsed();
    std::println!("{n} routes: {bytes} bytes in {polls} polls, {took:?}, {:?}/route", took / n);
    // More whole dumps, for a profiler (`BULKHEAD_BMP_DUMP_REPEAT`).
    let repeat: u32 =
        std::env::var("BULKHEAD_BMP_DUMP_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    for _ in 0..repeat {
        let config = ExpConfig { queue_bound: 64 << 20, dump_slice: DUMP_SLICE, ..ExpConfig::default() };
        let mut exporter: Exporter<BgpCursor> = Exporter::new(config);
        let id = exporter.add_collector(Instant::ZERO);
        assert_eq!(exporter.poll_action(Instant::ZERO), Some(Action::Connect(id)));
        exporter.connected(id, Instant::ZERO);
        loop {
            let mut tables = ViewTables {
                view: Some(&bgp),
                slab: &slab,
                post_policy: false,
                loc_rib: false,
                epoch_micros: None,
            };
            let mut encoder = ViewEncoder::new(Some(&bgp), &slab);
            let p = exporter.poll(Instant::ZERO, &mut tables, &mut encoder, &mut channel, 64);
            let n = exporter.transmit(id).len();
            exporter.sent(id, n, Instant::ZERO);
            while !exporter.transmit(id).is_empty() {
                let n = exporter.transmit(id).len();
                exporter.sent(id, n, Instant::ZERO);
            }
            if p == bulkhead_bmp::Poll::Idle {
                break;
            }
        }
    }
}
