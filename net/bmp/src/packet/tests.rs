//! Golden vectors, hand-built field by field from the figures of RFC 7854 section 4 and RFC 9069
//! section 5 (BIRD 2.0.12 on the build host has no BMP, so there is no capture of a real
//! exporter here). Every vector is checked both ways: parsed into the expected `Message`, and
//! the `Message` emitted into exactly these bytes.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const MARKER: [u8; 16] = [0xff; 16];

/// Per-peer header of a global IPv4 peer 192.0.2.2, AS 65001, BGP ID 192.0.2.2, at
/// 1_700_000_000 s and 123 us.
const PEER_V4: [u8; 42] = [
    0x00, // peer type: global instance
    0x00, // flags: V=0 (IPv4), L=0 (pre-policy), A=0 (4-byte AS_PATH)
    0, 0, 0, 0, 0, 0, 0, 0, // peer distinguisher: zero for the global instance
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2, // peer address: IPv4 in the low 4 bytes
    0x00, 0x00, 0xfd, 0xe9, // peer AS 65001
    192, 0, 2, 2, // peer BGP ID
    0x65, 0x53, 0xf1, 0x00, // timestamp seconds: 1_700_000_000
    0x00, 0x00, 0x00, 0x7b, // timestamp microseconds: 123
];

fn peer_v4() -> PeerHeader {
    PeerHeader {
        peer_type: PeerType::Global,
        flags: PeerFlags(0),
        distinguisher: [0; 8],
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        asn: 65001,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        timestamp_secs: 1_700_000_000,
        timestamp_micros: 123,
    }
}

/// A minimal OPEN (RFC 4271 section 4.2): version 4, `asn`, hold time 90, `id`, no options.
fn open(asn: u16, id: [u8; 4]) -> Vec<u8> {
    let [a0, a1] = asn.to_be_bytes();
    [&MARKER[..], &[0x00, 29, 1, 4, a0, a1, 0x00, 90], &id, &[0]].concat()
}

/// NOTIFICATION Cease (6) / Administrative Shutdown (2), no data: 21 bytes.
fn notification() -> Vec<u8> {
    [&MARKER[..], &[0x00, 21, 3, 6, 2]].concat()
}

/// UPDATE announcing 198.51.100.0/24 with ORIGIN IGP, AS_PATH [65001], NEXT_HOP 192.0.2.2.
fn update() -> Vec<u8> {
    let attrs: &[u8] = &[
        0x40, 1, 1, 0, // ORIGIN (well-known transitive) IGP
        0x40, 2, 6, 2, 1, 0x00, 0x00, 0xfd, 0xe9, // AS_PATH: one AS_SEQUENCE of 65001
        0x40, 3, 4, 192, 0, 2, 2, // NEXT_HOP 192.0.2.2
    ];
    let nlri: &[u8] = &[24, 198, 51, 100];
    let len = (19 + 2 + 2 + attrs.len() + nlri.len()) as u16;
    [&MARKER[..], &len.to_be_bytes(), &[2], &[0, 0], &(attrs.len() as u16).to_be_bytes(), attrs, nlri]
        .concat()
}

/// Parses `bytes` as one whole message, checks it equals `expected`, and that `expected`
/// emits exactly `bytes`.
fn round_trip(bytes: &[u8], expected: &Message<'_>) {
    let (parsed, len) = Message::parse_bytes(bytes).expect("parses");
    assert_eq!(len, bytes.len());
    assert_eq!(&parsed, expected);
    assert_eq!(expected.buffer_len(), bytes.len());
    let mut out = vec![0u8; bytes.len()];
    assert_eq!(expected.emit(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
    // A buffer one byte short is refused, not overrun.
    let mut short = vec![0u8; bytes.len() - 1];
    assert!(matches!(expected.emit(&mut short), Err(EmitError::BufferTooSmall { .. })));
}

#[test]
fn initiation() {
    let bytes: &[u8] = &[
        0x03, // version 3
        0x00, 0x00, 0x00, 0x14, // message length 20
        0x04, // type 4: Initiation
        0x00, 0x01, 0x00, 0x04, b'B', b'I', b'R', b'D', // sysDescr (1), length 4
        0x00, 0x02, 0x00, 0x02, b'r', b'1', // sysName (2), length 2
    ];
    let m = Message::Initiation(vec![
        InfoTlv::new(InfoType::SysDescr, "BIRD"),
        InfoTlv::new(InfoType::SysName, "r1"),
    ]);
    round_trip(bytes, &m);
    if let Message::Initiation(tlvs) = &m {
        assert_eq!(tlvs[1].as_str(), Some("r1"));
    }
}

#[test]
fn termination() {
    let bytes: &[u8] = &[
        0x03, 0x00, 0x00, 0x00, 0x14, 0x05, // v3, length 20, type 5: Termination
        0x00, 0x00, 0x00, 0x04, b'f', b'u', b'l', b'l', // String (0), length 4
        0x00, 0x01, 0x00, 0x02, 0x00, 0x02, // Reason (1), length 2: 2 out of resources
    ];
    let m = Message::Termination(vec![TermTlv::String(b"full"), TermTlv::Reason(TermReason::OutOfResources)]);
    round_trip(bytes, &m);
    // A reason TLV of another length is refused.
    let bad: &[u8] = &[0x03, 0, 0, 0, 11, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02];
    assert_eq!(Message::parse_bytes(bad).map(|_| ()), Err(Error::TlvLength { kind: 1, len: 1 }));
}

#[test]
fn peer_up_v4() {
    let sent = open(65000, [192, 0, 2, 1]);
    let received = open(65001, [192, 0, 2, 2]);
    let bytes = [
        &[0x03, 0x00, 0x00, 0x00, 0x84, 0x03][..], // v3, length 132, type 3: Peer Up
        &PEER_V4,
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1], // local address, IPv4 (V=0)
        &[0x00, 0xb3],                                       // local port 179
        &[0xc3, 0x50],                                       // remote port 50000
        &sent,                                               // sent OPEN, 29 bytes
        &received,                                           // received OPEN, 29 bytes
        &[0x00, 0x00, 0x00, 0x02, b'u', b'p'],               // String TLV "up"
    ]
    .concat();
    let m = Message::PeerUp(PeerUp {
        peer: peer_v4(),
        local_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        local_port: 179,
        remote_port: 50000,
        sent_open: &sent,
        received_open: &received,
        info: vec![InfoTlv::new(InfoType::String, "up")],
    });
    round_trip(&bytes, &m);
}

#[test]
fn peer_up_loc_rib() {
    // RFC 9069 section 5.3: peer type 3, F flag, zero address, local address and ports zero,
    // the received OPEN a copy of the sent one, and the VRF/Table Name TLV.
    let sent = open(65000, [192, 0, 2, 1]);
    let bytes = [
        &[0x03, 0x00, 0x00, 0x00, 0x88, 0x03][..], // v3, length 136 = 6 + 42 + 20 + 29 + 29 + 10, type 3
        &[0x03, 0x80],                             // peer type 3 (Loc-RIB), flags F (filtered)
        &[0; 8],                                   // distinguisher: zero (global instance)
        &[0; 16],                                  // peer address: zero-filled
        &[0x00, 0x00, 0xfd, 0xe8],                 // AS 65000: our own
        &[192, 0, 2, 1],                           // BGP ID: our router ID
        &[0, 0, 0, 0, 0, 0, 0, 0],                 // timestamp: not available
        &[0; 16],                                  // local address zero
        &[0, 0, 0, 0],                             // ports zero
        &sent,
        &sent,
        &[0x00, 0x03, 0x00, 0x06, b'g', b'l', b'o', b'b', b'a', b'l'], // VRF/Table Name
    ]
    .concat();
    let peer = PeerHeader {
        peer_type: PeerType::LocRib,
        flags: PeerFlags(PeerFlags::F),
        distinguisher: [0; 8],
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        asn: 65000,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        timestamp_secs: 0,
        timestamp_micros: 0,
    };
    let m = Message::PeerUp(PeerUp {
        peer,
        local_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        local_port: 0,
        remote_port: 0,
        sent_open: &sent,
        received_open: &sent,
        info: vec![InfoTlv::new(InfoType::VrfTableName, "global")],
    });
    round_trip(&bytes, &m);
    assert!(peer.flags.contains(PeerFlags::F));
}

#[test]
fn peer_down_every_reason() {
    let notif = notification();
    let head = |len: u8| [0x03, 0x00, 0x00, 0x00, len, 0x02]; // v3, length, type 2
                                                              // 1: local close with NOTIFICATION: 6 + 42 + 1 + 21 = 70.
    let bytes = [&head(70)[..], &PEER_V4, &[1], &notif].concat();
    round_trip(
        &bytes,
        &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::LocalNotification(&notif) },
    );
    // 2: local close, FSM event 10 (HoldTimer_Expires): 6 + 42 + 1 + 2 = 51.
    let bytes = [&head(51)[..], &PEER_V4, &[2, 0x00, 0x0a]].concat();
    round_trip(&bytes, &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::LocalFsmEvent(10) });
    // 3: remote close with NOTIFICATION.
    let bytes = [&head(70)[..], &PEER_V4, &[3], &notif].concat();
    round_trip(
        &bytes,
        &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::RemoteNotification(&notif) },
    );
    // 4 and 5: no data: 49 bytes.
    let bytes = [&head(49)[..], &PEER_V4, &[4]].concat();
    round_trip(&bytes, &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::RemoteNoData });
    let bytes = [&head(49)[..], &PEER_V4, &[5]].concat();
    round_trip(&bytes, &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::Deconfigured });
    // 6 (RFC 9069): TLVs follow: 49 + 4 + 6 = 59.
    let bytes = [&head(59)[..], &PEER_V4, &[6, 0x00, 0x03, 0x00, 0x06], b"global"].concat();
    let tlvs = vec![InfoTlv::new(InfoType::VrfTableName, "global")];
    round_trip(&bytes, &Message::PeerDown { peer: peer_v4(), reason: PeerDownReason::LocalTlvs(tlvs) });
    // 7 is not a reason; reason 4 with data is trailing garbage; 1 with an UPDATE is refused.
    let bytes = [&head(49)[..], &PEER_V4, &[7]].concat();
    assert_eq!(Message::parse_bytes(&bytes).map(|_| ()), Err(Error::PeerDownReason(7)));
    let bytes = [&head(50)[..], &PEER_V4, &[4, 0]].concat();
    assert_eq!(Message::parse_bytes(&bytes).map(|_| ()), Err(Error::Trailing(1)));
    let upd = update();
    let bytes = [&head(49 + upd.len() as u8)[..], &PEER_V4, &[1], &upd].concat();
    assert_eq!(Message::parse_bytes(&bytes).map(|_| ()), Err(Error::BgpType { expected: 3, found: 2 }));
}

#[test]
fn route_monitoring_v6_post_policy() {
    let upd = update();
    assert_eq!(upd.len(), 47);
    let bytes = [
        &[0x03, 0x00, 0x00, 0x00, 0x5f, 0x00][..], // v3, length 95 = 6 + 42 + 47, type 0
        &[0x01, 0xc0], // peer type 1 (RD instance), flags V (IPv6) and L (post-policy)
        &[0x00, 0x00, 0xfd, 0xe8, 0x00, 0x00, 0x00, 0x64], // RD type 0: 65000:100
        &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02], // 2001:db8::2
        &[0x00, 0x00, 0xfd, 0xe9], // AS 65001
        &[192, 0, 2, 2],
        &[0, 0, 0, 1], // 1 s
        &[0, 0, 0, 0],
        &upd,
    ]
    .concat();
    let peer = PeerHeader {
        peer_type: PeerType::Rd,
        flags: PeerFlags(PeerFlags::V | PeerFlags::L),
        distinguisher: [0x00, 0x00, 0xfd, 0xe8, 0x00, 0x00, 0x00, 0x64],
        address: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        asn: 65001,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        timestamp_secs: 1,
        timestamp_micros: 0,
    };
    round_trip(&bytes, &Message::RouteMonitoring { peer, update: &upd });
    // The encoder writes V from the address whatever the flags say.
    let mut wrong = peer;
    wrong.flags = PeerFlags(PeerFlags::L);
    let mut out = vec![0u8; bytes.len()];
    Message::RouteMonitoring { peer: wrong, update: &upd }.emit(&mut out).unwrap();
    assert_eq!(out, bytes);
}

#[test]
fn statistics_report() {
    let bytes = [
        &[0x03, 0x00, 0x00, 0x00, 0x5d, 0x01][..], // v3, length 93, type 1
        &PEER_V4,
        &[0x00, 0x00, 0x00, 0x04],                               // stats count 4
        &[0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05],       // type 0 rejected prefixes: 5
        &[0x00, 0x07, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xe8], // type 7 Adj-RIB-In: 1000
        &[0x00, 0x09, 0x00, 0x0b, 0x00, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0x03, 0xe8], // type 9 AFI 1 SAFI 1: 1000
        &[0x00, 0x63, 0x00, 0x02, 0xab, 0xcd], // type 99, unknown, kept as bytes
    ]
    .concat();
    // 6 + 42 + 4 + 8 + 12 + 15 + 6 = 93
    let m = Message::StatisticsReport {
        peer: peer_v4(),
        stats: vec![
            Stat::counter(StatType::REJECTED_PREFIXES, 5),
            Stat::gauge(StatType::ADJ_RIB_IN_ROUTES, 1000),
            Stat {
                kind: StatType::ADJ_RIB_IN_ROUTES_PER_AFI_SAFI,
                value: StatValue::AfiSafiGauge { afi: 1, safi: 1, value: 1000 },
            },
            Stat { kind: StatType(99), value: StatValue::Other(&[0xab, 0xcd]) },
        ],
    };
    round_trip(&bytes, &m);
    // A counter type with a gauge's length is refused both ways.
    let bad = [&[0x03, 0, 0, 0, 64, 0x01][..], &PEER_V4, &[0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]]
        .concat();
    assert_eq!(Message::parse_bytes(&bad).map(|_| ()), Err(Error::StatLength { kind: 0, len: 8 }));
    let m = Message::StatisticsReport {
        peer: peer_v4(),
        stats: vec![Stat::gauge(StatType::REJECTED_PREFIXES, 1)],
    };
    assert_eq!(m.emit(&mut [0u8; 128]), Err(EmitError::StatValue { kind: 0 }));
    // A count that cannot fit the bytes is refused before anything is reserved.
    let lie = [&[0x03, 0, 0, 0, 52, 0x01][..], &PEER_V4, &[0xff, 0xff, 0xff, 0xff]].concat();
    assert!(matches!(Message::parse_bytes(&lie), Err(Error::Truncated { .. })));
}

#[test]
fn route_mirroring() {
    let upd = update();
    let bytes = [
        &[0x03, 0x00, 0x00, 0x00, 0x69, 0x06][..], // v3, length 105 = 6 + 42 + (4 + 47) + 6, type 6
        &PEER_V4,
        &[0x00, 0x00, 0x00, 0x2f], // BGP Message TLV (0), length 47
        &upd,
        &[0x00, 0x01, 0x00, 0x02, 0x00, 0x01], // Information TLV (1): 1 messages lost
    ]
    .concat();
    let m = Message::RouteMirroring {
        peer: peer_v4(),
        tlvs: vec![MirrorTlv::BgpMessage(&upd), MirrorTlv::Information(1)],
    };
    round_trip(&bytes, &m);
}

#[test]
fn header_errors() {
    assert_eq!(Packet::new_checked(&[3u8, 0, 0][..]).map(|_| ()), Err(Error::Truncated { at: 3 }));
    assert_eq!(Packet::new_checked(&[3u8, 0, 0, 0, 5, 4][..]).map(|_| ()), Err(Error::Length(5)));
    assert_eq!(Packet::new_checked(&[3u8, 0, 0, 0, 9, 4][..]).map(|_| ()), Err(Error::Truncated { at: 6 }));
    assert_eq!(Message::parse_bytes(&[2u8, 0, 0, 0, 6, 4]).map(|_| ()), Err(Error::Version(2)));
    assert_eq!(Message::parse_bytes(&[3u8, 0, 0, 0, 6, 7]).map(|_| ()), Err(Error::MessageType(7)));
    // An empty Initiation parses (the exporter always sends sysDescr and sysName).
    assert_eq!(Message::parse_bytes(&[3u8, 0, 0, 0, 6, 4]), Ok((Message::Initiation(vec![]), 6)));
    // A Route Monitoring without a whole per-peer header.
    let short = [&[0x03, 0, 0, 0, 20, 0][..], &PEER_V4[..14]].concat();
    assert_eq!(Message::parse_bytes(&short).map(|_| ()), Err(Error::Truncated { at: 6 }));
    // A BGP PDU whose marker is not all ones, or whose length runs past the message.
    let mut upd = update();
    upd[3] = 0;
    let bytes = [&[0x03, 0, 0, 0, 95, 0][..], &PEER_V4, &upd].concat();
    assert_eq!(Message::parse_bytes(&bytes).map(|_| ()), Err(Error::BgpMarker));
    let mut upd = update();
    upd[17] = 48;
    let bytes = [&[0x03, 0, 0, 0, 95, 0][..], &PEER_V4, &upd].concat();
    assert_eq!(Message::parse_bytes(&bytes).map(|_| ()), Err(Error::BgpLength(48)));
    // Two messages in a stream: the first is read, its length tells where the next starts.
    let init: &[u8] = &[0x03, 0, 0, 0, 6, 0x04];
    let stream = [init, init].concat();
    assert_eq!(message_len(&stream), Some(6));
    assert_eq!(message_len(&stream[..5]), None);
    assert_eq!(Message::parse_bytes(&stream).map(|(_, n)| n), Ok(6));
}

#[test]
fn emit_refuses_what_cannot_be_said() {
    let long = vec![b'x'; 70_000];
    let m = Message::Initiation(vec![InfoTlv { kind: InfoType::SysDescr, value: &long }]);
    let mut out = vec![0u8; m.buffer_len()];
    assert_eq!(m.emit(&mut out), Err(EmitError::TlvTooLong(70_000)));
    let sent = open(65000, [192, 0, 2, 1]);
    let up = Message::PeerUp(PeerUp {
        peer: peer_v4(),
        local_address: IpAddr::V6(Ipv6Addr::LOCALHOST),
        local_port: 179,
        remote_port: 1,
        sent_open: &sent,
        received_open: &sent,
        info: vec![],
    });
    let mut out = vec![0u8; up.buffer_len()];
    assert_eq!(up.emit(&mut out), Err(EmitError::AddressFamilyMismatch));
}
