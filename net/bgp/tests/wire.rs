//! Golden byte streams captured from real speakers, read both ways, and replayed through the
//! session FSM.
//!
//! Captured on this machine over loopback inside a private network namespace: BIRD 2.0.12
//! (Debian bookworm `bird2`) as AS 4200000001 and GoBGP 3.10.0 (`gobgpd`) as AS 65001, each
//! talking to a scripted peer (AS 65002, id 10.0.0.2) that answered with OPEN and KEEPALIVE
//! and recorded every octet it received. `bird_2` is BIRD towards a peer without the 4-octet
//! AS capability (so AS_TRANS and AS4_PATH). BIRD exported 198.51.100.0/24 and
//! 203.0.113.128/25 with MED 10, community 65001:100 and large community 4200000001:1:2, and
//! 2001:db8:1::/48 with next hop 2001:db8::1; GoBGP 2001:db8:1::/48 via 2001:db8::3.

use std::net::{Ipv4Addr, Ipv6Addr};

use bulkhead_base::time::Instant;
use bulkhead_bgp::neighbor::{Action, ConnId, Direction, Neighbor, NeighborConfig, State};
use bulkhead_bgp::packet::attribute::{
    AsPath, Community, LargeCommunity, NextHop, Origin, PathAttributes, SessionContext, AS_TRANS,
};
use bulkhead_bgp::packet::message::{Framer, Message, MAX_LEN};
use bulkhead_bgp::packet::nlri::{Family, Ipv4Prefix, Ipv6Prefix, Prefix};
use bulkhead_bgp::packet::open::{Capability, GracefulRestart};
use bulkhead_bgp::packet::update::{MpReach, Update};

const BIRD_4: &[&str] = &[
    "ffffffffffffffffffffffffffffffff003b01045ba0005a0a0000011e021c0104000100010104000200010200400200",
    "784104fa56ea0146004700ffffffffffffffffffffffffffffffff001304ffffffffffffffffffffffffffffffff0051",
    "0200000031400101004002060201fa56ea014003040a0000018004040000000ac00804fde90064c0200cfa56ea010000",
    "00010000000218c6336419cb007180ffffffffffffffffffffffffffffffff00170200000000ffffffffffffffffffff",
    "ffffffffffff0044020000002d900e001c0002011020010db8000000000000000000000001003020010db80001400101",
    "004002060201fa56ea01ffffffffffffffffffffffffffffffff001d0200000006800f03000201",
];

const BIRD_2: &[&str] = &[
    "ffffffffffffffffffffffffffffffff003b01045ba0005a0a0000011e021c0104000100010104000200010200400200",
    "784104fa56ea0146004700ffffffffffffffffffffffffffffffff001304ffffffffffffffffffffffffffffffff0058",
    "02000000384001010040020402015ba04003040a0000018004040000000ac00804fde90064c011060201fa56ea01c020",
    "0cfa56ea01000000010000000218c6336419cb007180ffffffffffffffffffffffffffffffff00170200000000ffffff",
    "ffffffffffffffffffffffffff004b0200000034900e001c0002011020010db800000000000000000000000100302001",
    "0db800014001010040020402015ba0c011060201fa56ea01ffffffffffffffffffffffffffffffff001d020000000680",
    "0f03000201",
];

const GOBGP: &[&str] = &[
    "ffffffffffffffffffffffffffffffff00410104fde9005a0a0000032402220200490402766d00010400010001010400",
    "02000141040000fde90506000100010002ffffffffffffffffffffffffffffffff001304ffffffffffffffffffffffff",
    "ffffffff0043020000002c4001010240020602010000fde9800e1c0002011020010db800000000000000000000000300",
    "3020010db80001",
];

const BIRD_AS: u32 = 4_200_000_001;

fn unhex(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// The stream cut into messages.
fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut framer = Framer::new(MAX_LEN);
    assert_eq!(framer.feed(stream), stream.len());
    let frames: Vec<Vec<u8>> = std::iter::from_fn(|| framer.next_message()).map(Result::unwrap).collect();
    assert_eq!(framer.buffered(), 0);
    frames
}

fn v4(a: [u8; 4], len: u8) -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap()
}

fn bird_open() -> Message {
    Message::Open(bulkhead_bgp::packet::open::Open {
        version: 4,
        my_as: AS_TRANS as u16,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            }),
            Capability::FourOctetAs { asn: BIRD_AS },
            // Enhanced route refresh (RFC 7313) and long-lived graceful restart: kept as is.
            Capability::Unknown { code: 70, value: vec![] },
            Capability::Unknown { code: 71, value: vec![] },
        ],
    })
}

fn bird_ipv4_attrs() -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath::from_sequence(&[BIRD_AS]),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1))),
        med: Some(10),
        communities: vec![Community::new(65001, 100)],
        large_communities: vec![LargeCommunity { global_admin: BIRD_AS, local_data_1: 1, local_data_2: 2 }],
        ..PathAttributes::default()
    }
}

fn bird_ipv6_update() -> Update {
    Update {
        attributes: Some(PathAttributes {
            as_path: AsPath::from_sequence(&[BIRD_AS]),
            ..PathAttributes::default()
        }),
        mp_reach: Some(MpReach {
            family: Family::Ipv6Unicast,
            next_hop: NextHop::V6 { global: "2001:db8::1".parse().unwrap(), link_local: None },
            nlri: vec![Prefix::V6(Ipv6Prefix::new("2001:db8:1::".parse().unwrap(), 48).unwrap())],
        }),
        ..Update::default()
    }
}

fn check_bird(stream: &[u8], ctx: SessionContext) {
    let frames = frames(stream);
    let messages: Vec<Message> = frames.iter().map(|f| Message::parse(f, ctx, MAX_LEN).unwrap()).collect();
    let ipv4 = Update {
        attributes: Some(bird_ipv4_attrs()),
        nlri: vec![v4([198, 51, 100, 0], 24), v4([203, 0, 113, 128], 25)],
        ..Update::default()
    };
    assert_eq!(
        messages,
        vec![
            bird_open(),
            Message::Keepalive,
            Message::Update(ipv4),
            Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
            Message::Update(bird_ipv6_update()),
            Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
        ]
    );
    // Our encoder writes BIRD's OPEN, KEEPALIVE, IPv4 UPDATE and IPv4 End-of-RIB octet for
    // octet (same attribute order and flags); BIRD puts MP_REACH_NLRI first and writes
    // MP_UNREACH_NLRI without Extended Length, so those two only read back the same.
    for (i, (frame, message)) in frames.iter().zip(&messages).enumerate() {
        let ours = message.to_bytes(ctx, MAX_LEN).unwrap();
        if i < 4 {
            assert_eq!(&ours, frame, "message {i}");
        }
        assert_eq!(&Message::parse(&ours, ctx, MAX_LEN).unwrap(), message, "message {i}");
    }
}

#[test]
fn bird_towards_a_four_octet_peer() {
    check_bird(&unhex(BIRD_4), SessionContext { four_octet_as: true, external: true });
}

#[test]
fn bird_towards_a_two_octet_peer_uses_as_trans_and_as4_path() {
    let stream = unhex(BIRD_2);
    // On the wire: AS_PATH 23456 and AS4_PATH 4200000001.
    let update = &frames(&stream)[2];
    assert!(update.windows(6).any(|w| w == [0x40, 2, 4, 2, 1, 0x5b]));
    assert!(update.windows(9).any(|w| w == [0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01]));
    check_bird(&stream, SessionContext { four_octet_as: false, external: true });
}

#[test]
fn gobgp_open_and_ipv6_update() {
    let ctx = SessionContext { four_octet_as: true, external: true };
    let frames = frames(&unhex(GOBGP));
    let messages: Vec<Message> = frames.iter().map(|f| Message::parse(f, ctx, MAX_LEN).unwrap()).collect();
    let Message::Open(open) = &messages[0] else { panic!("{:?}", messages[0]) };
    assert_eq!((open.asn(), open.hold_time, open.bgp_id), (65001, 90, Ipv4Addr::new(10, 0, 0, 3)));
    assert_eq!(open.families(), vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    // The FQDN capability (73) and extended next hop (5) are kept as unknown.
    assert!(open.capabilities.iter().any(|c| matches!(c, Capability::Unknown { code: 73, .. })));
    assert!(open.capabilities.iter().any(|c| matches!(c, Capability::Unknown { code: 5, .. })));
    assert_eq!(messages[1], Message::Keepalive);
    let Message::Update(update) = &messages[2] else { panic!() };
    let attrs = update.attributes.as_ref().unwrap();
    assert_eq!((attrs.origin, attrs.as_path.first_as()), (Origin::Incomplete, Some(65001)));
    let reach = update.mp_reach.as_ref().unwrap();
    assert_eq!(
        reach.next_hop,
        NextHop::V6 { global: "2001:db8::3".parse::<Ipv6Addr>().unwrap(), link_local: None }
    );
    assert_eq!(reach.nlri, vec![Prefix::V6(Ipv6Prefix::new("2001:db8:1::".parse().unwrap(), 48).unwrap())]);
    for (frame, message) in frames.iter().zip(&messages) {
        let ours = message.to_bytes(ctx, MAX_LEN).unwrap();
        assert_eq!(&Message::parse(&ours, ctx, MAX_LEN).unwrap(), message);
        if !matches!(message, Message::Update(_)) {
            assert_eq!(&ours, frame);
        }
    }
}

/// BIRD's whole stream, fed in small pieces to a session configured as the scripted peer.
#[test]
fn bird_stream_through_the_session() {
    let mut cfg = NeighborConfig::new(65002, BIRD_AS, Ipv4Addr::new(10, 0, 0, 2));
    cfg.passive = true;
    let mut n = Neighbor::new(cfg);
    let conn = ConnId(7);
    n.start(Instant::ZERO);
    n.tcp_connected(Instant::ZERO, conn, Direction::Incoming);
    let stream = unhex(BIRD_4);
    for chunk in stream.chunks(7) {
        n.tcp_received(Instant::from_millis(10), conn, chunk);
    }
    assert_eq!(n.state(), State::Established);
    let actions: Vec<Action> = std::iter::from_fn(|| n.pop_action()).collect();
    let Action::Established(neg) = &actions[0] else { panic!("{:?}", actions[0]) };
    assert_eq!((neg.peer_as, neg.hold_time), (BIRD_AS, 90));
    assert_eq!(neg.families, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert!(neg.peer_graceful_restart.is_some());
    let Action::Update(u) = &actions[1] else { panic!("{:?}", actions[1]) };
    assert_eq!((u.action, u.update.nlri.len()), (None, 2));
    assert_eq!(actions[2], Action::EndOfRib(Family::Ipv4Unicast));
    let Action::Update(u) = &actions[3] else { panic!() };
    assert_eq!(u.update, bird_ipv6_update());
    assert_eq!(actions[4], Action::EndOfRib(Family::Ipv6Unicast));
    assert_eq!(actions.len(), 5);
    // We answered with an OPEN and a KEEPALIVE.
    let out = n.pending_output(conn).to_vec();
    let sent: Vec<Message> =
        frames(&out).iter().map(|f| Message::parse(f, SessionContext::default(), MAX_LEN).unwrap()).collect();
    assert!(matches!(&sent[..], [Message::Open(o), Message::Keepalive] if o.asn() == 65002));
}
