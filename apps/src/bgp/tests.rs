//! Host tests of the BGP subsystem: configuration, and the subsystem against a fake platform.

use alloc::string::String;

use super::*;
use crate::config::{Config, ConfigErrorKind};

fn parse(text: &str) -> Result<SpeakerConfig, crate::config::ConfigError> {
    Config::parse(text).map(|c| c.bgp.speaker.expect("a [bgp] section"))
}

const BASIC: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "all"
export = "all"
"#;

#[test]
fn the_fixed_keys_parse() {
    let c = parse(BASIC).unwrap();
    assert_eq!(c.asn, 65000);
    assert_eq!(c.router_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(c.hold_time, 90);
    let n = &c.neighbors[0];
    assert_eq!((n.address, n.asn, n.ttl, n.passive), (Ipv4Addr::new(192, 0, 2, 2), 65001, 1, false));
    assert_eq!(n.import, PolicyRef::All);
    assert_eq!(n.export.policy(), Some(Policy::accept_all()));
    assert_eq!(n.prefix_limit, None);
    assert!(n.enforce_first_as, "the first-AS check is on by default");
}

#[test]
fn no_section_no_speaker() {
    assert_eq!(Config::parse("").unwrap().bgp, BgpConfig::default());
}

#[test]
fn rfc_8212_without_import_or_export() {
    let c = parse("[bgp]\nasn = 65000\nrouter_id = \"10.0.0.1\"\n[[bgp.neighbor]]\naddress = \"10.0.0.2\"\nasn = 65000\n").unwrap();
    let n = &c.neighbors[0];
    assert_eq!((n.import.policy(), n.export.policy()), (None, None));
    assert_eq!(n.ttl, 64, "iBGP defaults to multihop");
}

#[test]
fn policies_limits_and_options() {
    let text = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
hold_time = 30
networks = ["10.1.0.0/16", "2001:db8::/32"]
[[bgp.policy]]
name = "in"
[[bgp.policy.term]]
prefix = ["10.0.0.0/8 le 24", "172.16.0.0/12 ge 16 le 24"]
as_path_contains = 65010
set_local_pref = 200
add_community = "65000:7"
action = "accept"
[[bgp.policy.term]]
community = "65000:666"
action = "reject"
[[bgp.policy.term]]
prepend = 2
action = "accept"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "in"
export = "none"
passive = true
multihop = 3
hold_time = 9
graceful_restart = false
enforce_first_as = false
prefix_limit = 1000
prefix_limit_action = "block"
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.hold_time, 30);
    assert_eq!(c.networks.len(), 2);
    let n = &c.neighbors[0];
    assert_eq!((n.passive, n.ttl, n.hold_time, n.graceful_restart), (true, 3, 9, false));
    assert!(!n.enforce_first_as, "a route server's neighbor turns the first-AS check off");
    assert_eq!(
        n.prefix_limit,
        Some(bulkhead_bgp::policy::PrefixLimit {
            max: 1000,
            action: bulkhead_bgp::policy::LimitAction::Block
        })
    );
    let PolicyRef::Named(name, policy) = &n.import else { panic!("named policy expected") };
    assert_eq!(name, "in");
    assert_eq!(policy.terms.len(), 3);
    assert_eq!(policy.terms[0].matches.len(), 2);
    assert_eq!(n.export.policy(), Some(Policy::default()));
    // The policy decides as written: 10.1.0.0/16 via 65010 accepted with local-pref 200.
    let attrs = PathAttributes {
        as_path: bulkhead_bgp::packet::attribute::AsPath::from_sequence(&[65001, 65010]),
        ..PathAttributes::default()
    };
    let p = Prefix::V4(Ipv4Prefix::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap());
    assert_eq!(
        policy.evaluate(p, &attrs),
        bulkhead_bgp::policy::Decision::Accept(&[
            bulkhead_bgp::policy::Action::SetLocalPref(200),
            bulkhead_bgp::policy::Action::AddCommunity(bulkhead_bgp::packet::attribute::Community::new(
                65000, 7
            ))
        ])
    );
}

fn error(text: &str) -> (usize, String, ConfigErrorKind) {
    let e = Config::parse(text).unwrap_err();
    (e.line, e.key, e.kind)
}

#[test]
fn errors_name_line_and_key() {
    let (line, key, kind) = error("[bgp]\nrouter_id = \"192.0.2.1\"\n");
    assert_eq!((key.as_str(), kind), ("bgp.asn", ConfigErrorKind::MissingKey));
    assert_eq!(line, 1);
    let (line, key, kind) = error("[bgp]\nasn = 0\nrouter_id = \"192.0.2.1\"\n");
    assert_eq!((line, key.as_str()), (2, "bgp.asn"));
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"192.0.2.300\"\n");
    assert_eq!(key, "bgp.router_id");
    assert!(matches!(kind, ConfigErrorKind::BadIpv4 { .. }));
    let (line, key, kind) =
        error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\nimport = \"nope\"\n");
    assert_eq!((line, key.as_str()), (7, "bgp.neighbor[0].import"));
    assert!(matches!(kind, ConfigErrorKind::NotApplicable { .. }));
    let (_, key, kind) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 3\n",
    );
    assert_eq!(key, "bgp.neighbor[1].address");
    assert!(matches!(kind, ConfigErrorKind::NotApplicable { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\nhold_time = 2\n");
    assert_eq!(key, "bgp.hold_time");
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\nbogus = 2\n");
    assert_eq!((key.as_str(), kind), ("bgp.bogus", ConfigErrorKind::UnknownKey));
    let (_, key, _) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.policy]]\nname = \"p\"\n[[bgp.policy.term]]\nprefix = \"10.0.0.0/8 ge 4\"\naction = \"accept\"\n",
    );
    assert_eq!(key, "bgp.policy[0].term[0].prefix");
    let (_, key, _) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\nprefix_limit = 5\nprefix_limit_action = \"explode\"\n",
    );
    assert_eq!(key, "bgp.neighbor[0].prefix_limit_action");
}

#[test]
fn prefix_list_entries() {
    let e = config::parse_prefix("10.0.0.0/8 le 24").unwrap();
    assert_eq!(e.1, "le 24");
    assert!(config::parse_prefix("10.0.0.1/8").is_none(), "host bits are refused");
    assert!(config::parse_prefix("2001:db8::/32").is_some());
    assert!(config::parse_prefix("10.0.0.0/33").is_none());
}

fn gtsm_config(extra: &str) -> String {
    alloc::format!(
        "[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\n[[bgp.neighbor]]\naddress = \"192.0.2.2\"\nasn = 65001\nimport = \"all\"\nexport = \"all\"\nttl_security = true\n{extra}"
    )
}

#[test]
fn ttl_security_sends_255_and_accepts_its_hops() {
    let n = parse(&gtsm_config("")).unwrap().neighbors.remove(0);
    assert_eq!((n.ttl, n.ttl_security), (255, Some(255)), "directly connected by default");
    let n = parse(&gtsm_config("multihop = 3\n")).unwrap().neighbors.remove(0);
    assert_eq!((n.ttl, n.ttl_security), (255, Some(253)), "255 - (3 - 1)");
    let n = parse(&gtsm_config("multihop = 254\n")).unwrap().neighbors.remove(0);
    assert_eq!(n.ttl_security, Some(2));
    let n = parse(&gtsm_config("ttl_security = false\n").replace("ttl_security = true\n", "")).unwrap();
    assert_eq!(n.neighbors[0].ttl_security, None);
    assert_eq!(parse(BASIC).unwrap().neighbors[0].ttl_security, None, "off by default");
}

#[test]
fn ttl_security_errors_are_typed() {
    // 255 hops would accept a TTL of 1: no check at all.
    let (line, key, kind) = error(&gtsm_config("multihop = 255\n"));
    assert_eq!((line, key.as_str()), (10, "bgp.neighbor[0].multihop"));
    assert!(matches!(kind, ConfigErrorKind::NotApplicable { .. }), "{kind:?}");
    let (_, key, kind) = error(&gtsm_config("multihop = 0\n"));
    assert_eq!(key, "bgp.neighbor[0].multihop");
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }), "{kind:?}");
    let (_, key, _) = error(&gtsm_config("").replace("ttl_security = true", "ttl_security = 1"));
    assert_eq!(key, "bgp.neighbor[0].ttl_security");
}

/// The subsystem over a real `Host` (as the platform forwards it): TTL security, and what
/// becomes of IPv6 routes.
mod over_a_host {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use smoltcp::socket::tcp;
    use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

    use super::*;
    use crate::addr::Ipv4Cidr;
    use crate::context::{
        BindError, Binding, Io, OutDatagram, RouteQueueError, SendError, TcpError, TtlGuardError,
    };
    use crate::host::{Host, Local, LocalDrop};
    use crate::link::TxError;
    use crate::supervisor::Subsystem;
    use crate::testing::{AdmitAll, NullIo};
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;

    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    struct HostIo {
        host: Host,
        /// What BGP handed the FIB.
        routes: Vec<RouteChange>,
    }

    impl HostIo {
        fn new(now: Instant) -> HostIo {
            HostIo {
                host: Host::new(&[Ipv4Cidr { addr: US, prefix_len: 24 }], 1500, 9, now),
                routes: Vec::new(),
            }
        }
    }

    impl Io for HostIo {
        fn addresses(&self) -> &[Ipv4Cidr] {
            self.host.addresses()
        }
        fn transmit(&mut self, _iface: u8, _frame: &[u8]) -> Result<(), TxError> {
            Err(TxError::NoLink)
        }
        fn bind(&mut self, owner: Domain, binding: Binding) -> Result<(), BindError> {
            self.host.bind(owner, binding)
        }
        fn send_datagram(&mut self, _owner: Domain, d: OutDatagram<'_>) -> Result<(), SendError> {
            self.host.send_datagram(d)
        }
        fn tcp_listen(&mut self, owner: Domain, port: u16, b: TcpBuffers) -> Result<SocketId, TcpError> {
            self.host.tcp_listen(owner, port, b)
        }
        fn tcp_connect(
            &mut self,
            owner: Domain,
            local: Option<Ipv4Addr>,
            remote: (Ipv4Addr, u16),
            b: TcpBuffers,
        ) -> Result<SocketId, TcpError> {
            self.host.tcp_connect(owner, local, remote, b)
        }
        fn tcp(&mut self, owner: Domain, id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
            self.host.tcp(owner, id)
        }
        fn tcp_release(&mut self, owner: Domain, id: SocketId) -> Result<(), TcpError> {
            self.host.tcp_release(owner, id)
        }
        fn route(&mut self, _owner: Domain, change: RouteChange) -> Result<(), RouteQueueError> {
            self.routes.push(change);
            Ok(())
        }
        fn take_route_resync(&mut self, _owner: Domain) -> bool {
            false
        }
        fn subsystem_up(&mut self, _d: Domain) {}
        fn subsystem_down(&mut self, d: Domain, now: Instant) {
            self.host.release_all(d, now);
        }
        fn ttl_guard(&mut self, owner: Domain, guard: TtlGuard) -> Result<(), TtlGuardError> {
            self.host.ttl_guard(owner, guard)
        }
        fn ttl_guard_drops(&self, owner: Domain, peer: Ipv4Addr, port: u16) -> Option<u64> {
            self.host.ttl_guard_drops(owner, peer, port)
        }
    }

    /// A SYN from the peer's `sport` to our port 179, sent with `ttl`.
    fn syn(sport: u16, ttl: u8) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: BGP_PORT,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1),
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
            src_addr: PEER,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: ttl,
        };
        let mut bytes = std::vec![0u8; 20 + tcp.buffer_len()];
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.emit(&mut packet, &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(packet.payload_mut()),
            &smoltcp::wire::IpAddress::Ipv4(PEER),
            &smoltcp::wire::IpAddress::Ipv4(US),
            &caps,
        );
        bytes
    }

    /// Every packet the host sent, as (TTL, TCP source port, SYN, ACK).
    fn sent(host: &mut Host, now: Instant) -> Vec<(u8, u16, bool, bool)> {
        host.egress(now);
        let mut out = Vec::new();
        while let Some(p) = host.next_out() {
            let ip = Ipv4Packet::new_checked(p).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            out.push((ip.hop_limit(), tcp.src_port(), tcp.syn(), tcp.ack()));
            host.pop_out();
        }
        out
    }

    fn command(bgp: &mut BgpSubsystem, io: &mut dyn Io, now: Instant, line: &str) -> String {
        let mut rng = Csprng::seed_from_u64(3);
        let mut cx = Context::new(now, Domain::Bgp, &mut rng, &AdmitAll, io);
        let words: Vec<&str> = line.split(' ').collect();
        let mut out = String::new();
        bgp.command(&mut cx, &words, &mut out).expect("a BGP command").unwrap();
        out
    }

    #[test]
    fn guarded_sessions_send_255_and_the_host_drops_what_arrives_below() {
        let config = Config::parse(&gtsm_config("")).unwrap().bgp;
        let mut bgp = BgpSubsystem::new(config);
        let now = Instant::from_micros(1_000_000);
        let mut io = HostIo::new(now);
        let mut rng = Csprng::seed_from_u64(1);
        {
            let mut cx = Context::new(now, Domain::Bgp, &mut rng, &AdmitAll, &mut io);
            bgp.start(&mut cx).unwrap();
            bgp.poll(&mut cx, crate::supervisor::Budget(64));
        }
        let guards: Vec<_> = io.host.ttl_guards().collect();
        assert_eq!(guards, [(TtlGuard { peer: PEER, port: BGP_PORT, min_ttl: 255 }, Domain::Bgp, 0)]);
        // Our active open goes out with TTL 255.
        let syns = sent(&mut io.host, now);
        assert!(syns.iter().any(|&(ttl, _, syn, ack)| ttl == 255 && syn && !ack), "{syns:?}");
        assert!(syns.iter().all(|&(ttl, ..)| ttl == 255), "{syns:?}");

        // Below 255: dropped before smoltcp, counted for the peer and in the host's counters.
        let low = syn(40_000, 254);
        assert!(matches!(io.host.classify(&low), Local::Drop(LocalDrop::TtlSecurity)));
        assert_eq!(io.host.counters.ttl_security_dropped, 1);
        // At 255: the listener answers, and its SYN-ACK also leaves with TTL 255.
        let good = syn(40_001, 255);
        assert!(matches!(io.host.classify(&good), Local::Stack));
        io.host.ingress(now, &good);
        let answers = sent(&mut io.host, now);
        assert!(
            answers.iter().any(|&(ttl, port, syn, ack)| (ttl, port, syn, ack) == (255, BGP_PORT, true, true)),
            "{answers:?}"
        );

        let json = command(&mut bgp, &mut io, now, "show protocols json");
        assert!(json.contains("\"ttl_security\":true,\"ttl_min\":255,\"ttl_dropped\":1"), "{json}");
        let text = command(&mut bgp, &mut io, now, "show protocols");
        assert!(text.contains("192.0.2.2: TTL security, TTL below 255 dropped: 1"), "{text}");

        // Shed: the guard goes with the subsystem's other holdings.
        bgp.shed();
        io.subsystem_down(Domain::Bgp, now);
        assert_eq!(io.host.ttl_guards().count(), 0);
        assert!(matches!(io.host.classify(&low), Local::Stack));
    }

    #[test]
    fn a_platform_that_cannot_guard_never_starts_the_neighbor() {
        let config = Config::parse(&gtsm_config("")).unwrap().bgp;
        let mut bgp = BgpSubsystem::new(config);
        let mut io = NullIo::default();
        let mut rng = Csprng::seed_from_u64(1);
        let mut now = Instant::from_micros(0);
        for _ in 0..5 {
            let mut cx = Context::new(now, Domain::Bgp, &mut rng, &AdmitAll, &mut io);
            if now == Instant::from_micros(0) {
                bgp.start(&mut cx).unwrap();
            }
            bgp.poll(&mut cx, crate::supervisor::Budget(64));
            now = now + crate::time::Duration::from_secs(10);
        }
        let json = command(&mut bgp, &mut io, now, "show protocols json");
        assert!(json.contains("\"state\":\"Idle\""), "{json}");
        assert!(json.contains("TTL security: the platform cannot check TTLs"), "{json}");
        assert!(json.contains("\"ttl_security\":true,\"ttl_min\":null"), "{json}");
        let answer = command(&mut bgp, &mut io, now, "bgp enable 192.0.2.2");
        assert!(answer.contains("refused"), "{answer}");
    }
}

mod never_panics {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"[bgp]
asn = 65000
router_id = "192.0.2.1"
hold_time = 30
connect_retry = "5s"
networks = ["10.1.0.0/16", "2001:db8::/32"]
[[bgp.policy]]
name = "in"
[[bgp.policy.term]]
prefix = ["10.0.0.0/8 le 24", "172.16.0.0/12 ge 16 le 24"]
as_path_contains = 65010
originated_by = 65011
community = "65000:1"
set_local_pref = 200
set_med = 5
add_community = ["65000:7"]
remove_community = "65000:8"
prepend = 2
action = "accept"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "in"
export = "all"
passive = true
local_address = "192.0.2.1"
multihop = 3
ttl_security = true
hold_time = 9
graceful_restart = false
prefix_limit = 1000
prefix_limit_action = "block"
"#;

    /// Byte flips, truncations, line swaps and drops of a full `[bgp]` section.
    fn mutated() -> impl Strategy<Value = std::string::String> {
        (0usize..4, any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(how, a, b, byte)| {
            let mut bytes = FULL.as_bytes().to_vec();
            let lines: Vec<&str> = FULL.lines().collect();
            match how {
                0 => {
                    let i = a % bytes.len();
                    bytes[i] = byte;
                }
                1 => bytes.truncate(a % bytes.len()),
                2 => {
                    let mut l = lines.clone();
                    l.swap(a % lines.len(), b % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
                _ => {
                    let mut l = lines.clone();
                    l.remove(a % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
            }
            std::string::String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    #[test]
    fn the_full_section_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.neighbors.len(), 1);
        assert_eq!((c.neighbors[0].ttl, c.neighbors[0].ttl_security), (255, Some(253)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn mutated_sections_never_panic(text in mutated()) {
            let _ = Config::parse(&text);
        }

        #[test]
        fn prefix_list_words_never_panic(text in "[0-9a-f:./ gel]{0,40}") {
            let _ = config::parse_prefix(&text);
        }
    }
}

mod ipv6 {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use bulkhead_bgp::packet::attribute::AsPath;
    use bulkhead_bgp::packet::update::{MpReach, MpUnreach};

    use super::*;
    use crate::supervisor::Subsystem;
    use crate::testing::AdmitAll;
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;

    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const OURS: [crate::addr::Ipv4Cidr; 1] =
        [crate::addr::Ipv4Cidr { addr: Ipv4Addr::new(192, 0, 2, 1), prefix_len: 24 }];

    /// An `Io` that records what BGP hands the FIB (nothing else is needed here).
    #[derive(Default)]
    struct FibIo {
        null: crate::testing::NullIo,
        routes: Vec<RouteChange>,
    }

    impl crate::context::Io for FibIo {
        fn addresses(&self) -> &[crate::addr::Ipv4Cidr] {
            &OURS
        }
        fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), crate::link::TxError> {
            self.null.transmit(iface, frame)
        }
        fn bind(&mut self, o: Domain, b: crate::context::Binding) -> Result<(), crate::context::BindError> {
            self.null.bind(o, b)
        }
        fn send_datagram(
            &mut self,
            o: Domain,
            d: crate::context::OutDatagram<'_>,
        ) -> Result<(), crate::context::SendError> {
            self.null.send_datagram(o, d)
        }
        fn tcp_listen(
            &mut self,
            o: Domain,
            port: u16,
            b: TcpBuffers,
        ) -> Result<SocketId, crate::context::TcpError> {
            self.null.tcp_listen(o, port, b)
        }
        fn tcp_connect(
            &mut self,
            o: Domain,
            local: Option<Ipv4Addr>,
            remote: (Ipv4Addr, u16),
            b: TcpBuffers,
        ) -> Result<SocketId, crate::context::TcpError> {
            self.null.tcp_connect(o, local, remote, b)
        }
        fn tcp(
            &mut self,
            o: Domain,
            id: SocketId,
        ) -> Result<&mut smoltcp::socket::tcp::Socket<'static>, crate::context::TcpError> {
            self.null.tcp(o, id)
        }
        fn tcp_release(&mut self, o: Domain, id: SocketId) -> Result<(), crate::context::TcpError> {
            self.null.tcp_release(o, id)
        }
        fn route(&mut self, _o: Domain, change: RouteChange) -> Result<(), crate::context::RouteQueueError> {
            self.routes.push(change);
            Ok(())
        }
        fn take_route_resync(&mut self, _o: Domain) -> bool {
            false
        }
        fn subsystem_up(&mut self, _d: Domain) {}
        fn subsystem_down(&mut self, _d: Domain, _now: Instant) {}
    }

    fn v6(text: &str, len: u8) -> Prefix {
        Prefix::V6(Ipv6Prefix::new(text.parse().unwrap(), len).unwrap())
    }

    fn run(bgp: &mut BgpSubsystem, io: &mut FibIo, f: impl FnOnce(&mut Speaker, &mut Context<'_>)) {
        let mut rng = Csprng::seed_from_u64(5);
        let mut cx = Context::new(Instant::from_micros(1), Domain::Bgp, &mut rng, &AdmitAll, io);
        f(bgp.speaker.as_mut().expect("started"), &mut cx);
    }

    fn ask(bgp: &mut BgpSubsystem, io: &mut FibIo, line: &str) -> String {
        let mut out = String::new();
        run(bgp, io, |s, cx| {
            let words: Vec<&str> = line.split(' ').collect();
            crate::bgp::command(s, cx, &words, &mut out).expect("a BGP command").unwrap();
        });
        out
    }

    /// A peer announces IPv4 and, in MP_REACH_NLRI over the same IPv4 session, IPv6 with an
    /// IPv6 next hop: both are kept and counted apart; only the IPv4 one reaches the FIB;
    /// `show route` says why the IPv6 best path is not installed; MP_UNREACH withdraws.
    #[test]
    fn ipv6_routes_are_kept_and_shown_and_never_handed_to_the_fib() {
        let mut bgp = BgpSubsystem::new(Config::parse(BASIC).unwrap().bgp);
        let mut io = FibIo::default();
        {
            let mut rng = Csprng::seed_from_u64(5);
            let mut cx = Context::new(Instant::from_micros(0), Domain::Bgp, &mut rng, &AdmitAll, &mut io);
            bgp.start(&mut cx).unwrap();
        }
        let six = [v6("2001:db8:100::", 48), v6("2001:db8:101::", 48), v6("2001:db8:102::", 48)];
        let four = Ipv4Prefix::new(Ipv4Addr::new(10, 50, 0, 0), 16).unwrap();
        let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
        // The FIB feed's first pass (over the empty table), as the first poll makes it.
        run(&mut bgp, &mut io, |s, cx| while s.feed_fib(cx) {});
        run(&mut bgp, &mut io, |s, cx| {
            // The session is up with both families (what Established does).
            let p = &mut s.peers[0];
            p.families = alloc::vec![Family::Ipv4Unicast, Family::Ipv6Unicast];
            s.rib4.peer_up(p.id4, PEER).unwrap();
            s.rib6.peer_up(p.id6, PEER).unwrap();
            let update = Update {
                withdrawn: Vec::new(),
                attributes: Some(PathAttributes {
                    as_path: AsPath::from_sequence(&[65001]),
                    next_hop: Some(NextHop::V4(PEER)),
                    ..PathAttributes::default()
                }),
                nlri: alloc::vec![four],
                mp_reach: Some(MpReach {
                    family: Family::Ipv6Unicast,
                    next_hop: NextHop::V6 { global, link_local: None },
                    nlri: six.to_vec(),
                }),
                mp_unreach: None,
            };
            s.apply_update(0, cx, &update);
            while s.feed_fib(cx) {}
        });
        assert_eq!(
            io.routes,
            [RouteChange::Add {
                prefix: bulkhead_net::fib::Prefix::new(0x0a32_0000, 16).unwrap(),
                via: PEER
            }]
        );
        let count = ask(&mut bgp, &mut io, "show route count json");
        assert!(count.contains("\"ipv4\":1,\"ipv6\":3,\"ipv4_paths\":1,\"ipv6_paths\":3"), "{count}");
        let protocols = ask(&mut bgp, &mut io, "show protocols json");
        assert!(protocols.contains("\"received\":4,\"accepted\":4"), "{protocols}");

        let best = ask(&mut bgp, &mut io, "show route 2001:db8:101::/48 json");
        assert!(best.contains("\"from\":\"192.0.2.2\""), "{best}");
        assert!(best.contains("\"next_hop\":\"2001:db8::2\""), "{best}");
        assert!(
            best.contains("\"installed\":false,\"not_installed\":\"the forwarder is IPv4 only\""),
            "{best}"
        );
        let text = ask(&mut bgp, &mut io, "show route 2001:db8:101::/48");
        assert!(text.contains("not installed: the forwarder is IPv4 only"), "{text}");
        let best4 = ask(&mut bgp, &mut io, "show route 10.50.0.0/16 json");
        assert!(best4.contains("\"installed\":true,\"not_installed\":null"), "{best4}");
        let text4 = ask(&mut bgp, &mut io, "show route 10.50.0.0/16");
        assert!(text4.contains("installed in the FIB via 192.0.2.2"), "{text4}");

        // MP_UNREACH_NLRI withdraws one; still nothing for the FIB.
        run(&mut bgp, &mut io, |s, cx| {
            let update = Update {
                withdrawn: Vec::new(),
                attributes: None,
                nlri: Vec::new(),
                mp_reach: None,
                mp_unreach: Some(MpUnreach { family: Family::Ipv6Unicast, withdrawn: alloc::vec![six[0]] }),
            };
            s.apply_update(0, cx, &update);
            while s.feed_fib(cx) {}
        });
        assert_eq!(io.routes.len(), 1);
        let count = ask(&mut bgp, &mut io, "show route count json");
        assert!(count.contains("\"ipv4\":1,\"ipv6\":2"), "{count}");
        let mut none = String::new();
        run(&mut bgp, &mut io, |s, _| {
            assert!(show::route(s, "2001:db8:100::/48", false, &mut none).is_none())
        });
    }
}
