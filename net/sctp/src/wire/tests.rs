//! Byte vectors for every chunk type both ways, real packets from other stacks, the CRC32c
//! known answers, the bundler, and no-panic runs over truncations and mutations.

extern crate std;

use std::vec::Vec;

use core::net::Ipv4Addr;

use super::*;
use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;

// ---------------------------------------------------------------------------------------------
// CRC32c

#[test]
fn crc32c_known_answers_of_rfc_3720_b_4() {
    assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let incrementing: Vec<u8> = (0u8..32).collect();
    assert_eq!(crc32c(&incrementing), 0x46dd_794e);
    let decrementing: Vec<u8> = (0u8..32).rev().collect();
    assert_eq!(crc32c(&decrementing), 0x113f_db5c);
    // An iSCSI SCSI Read (10) command PDU.
    let pdu = [
        0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0,
        0, 0, 0x18, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(crc32c(&pdu), 0xd996_3a56);
}

// ---------------------------------------------------------------------------------------------
// Packets from other stacks: their checksums were computed by someone else's CRC code, so a
// byte-order mistake in ours cannot hide.

/// An INIT sent by Chrome's usrsctp, as published in pion/sctp's tests (a capture): ports
/// 5000 -> 5000, tag 0, checksum 0xfc9d4681 carried LSB first (81 46 9d fc).
/// INIT: Length 86 (0x56), Initiate Tag 0x55b964a5, a_rwnd 131072, OS 1024, MIS 2048,
/// Initial TSN 0xe86d1030; parameters Forward-TSN-Supported (0xc000, len 4), Supported
/// Extensions (0x8008, len 9, + 3 padding), Random (0x8002, len 36), Requested HMAC Algorithm
/// (0x8004, len 6, + 2 padding), Chunk List (0x8003, len 6): its 2 padding bytes are the
/// chunk's, not counted in the chunk length.
const CHROME_INIT: [u8; 100] = [
    0x13, 0x88, 0x13, 0x88, 0x00, 0x00, 0x00, 0x00, 0x81, 0x46, 0x9d, 0xfc, 0x01, 0x00, 0x00, 0x56, 0x55,
    0xb9, 0x64, 0xa5, 0x00, 0x02, 0x00, 0x00, 0x04, 0x00, 0x08, 0x00, 0xe8, 0x6d, 0x10, 0x30, 0xc0, 0x00,
    0x00, 0x04, 0x80, 0x08, 0x00, 0x09, 0xc0, 0x0f, 0xc1, 0x80, 0x82, 0x00, 0x00, 0x00, 0x80, 0x02, 0x00,
    0x24, 0x9f, 0xeb, 0xbb, 0x5c, 0x50, 0xc9, 0xbf, 0x75, 0x9c, 0xb1, 0x2c, 0x57, 0x4f, 0xa4, 0x5a, 0x51,
    0xba, 0x60, 0x17, 0x78, 0x27, 0x94, 0x5c, 0x31, 0xe6, 0x5d, 0x5b, 0x09, 0x47, 0xe2, 0x22, 0x06, 0x80,
    0x04, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x80, 0x03, 0x00, 0x06, 0x80, 0xc1, 0x00, 0x00,
];

#[test]
fn chrome_init_parses_and_rebuilds_byte_for_byte() {
    let packet = Packet::new_checked(&CHROME_INIT[..]).unwrap();
    assert_eq!(packet.checksum(), 0xfc9d_4681);
    let header = PacketRepr::parse(&packet).unwrap();
    assert_eq!(header, PacketRepr { src_port: 5000, dst_port: 5000, verification_tag: 0 });
    let chunks: Vec<_> = packet.chunks().collect::<Result<_, _>>().unwrap();
    assert_eq!(chunks.len(), 1);
    let ChunkRepr::Init(init) = ChunkRepr::parse(&chunks[0]).unwrap() else { panic!("not an INIT") };
    assert_eq!(init.initiate_tag, 0x55b9_64a5);
    assert_eq!(init.a_rwnd, 131_072);
    assert_eq!((init.outbound_streams, init.inbound_streams), (1024, 2048));
    assert_eq!(init.initial_tsn, Tsn(0xe86d_1030));
    let params: Vec<ParamRepr<'_>> = init.params.iter().collect();
    let types: Vec<u16> = params.iter().map(|p| p.param_type()).collect();
    assert_eq!(types, [0xc000, 0x8008, 0x8002, 0x8004, 0x8003]);
    let ParamRepr::Unknown(forward_tsn) = params[0] else { panic!() };
    assert_eq!(forward_tsn.action(), UnrecognizedAction::SkipAndReport);
    let ParamRepr::Unknown(extensions) = params[1] else { panic!() };
    assert_eq!(extensions.value, &[0xc0, 0x0f, 0xc1, 0x80, 0x82]);
    assert_eq!(extensions.action(), UnrecognizedAction::Skip);

    // Rebuilt from items (not from the received bytes): the same packet, checksum included.
    let init = InitChunk { params: List::Items(&params), ..init };
    let mut buf = [0u8; 128];
    let mut builder = PacketBuilder::new(&mut buf, &header, 1500).unwrap();
    builder.push(&ChunkRepr::Init(init)).unwrap();
    let len = builder.finish();
    assert_eq!(&buf[..len], &CHROME_INIT[..]);
}

#[test]
fn pion_header_only_packet() {
    // 5000 -> 5000, tag 0, checksum 0xe100a906 (06 a9 00 e1), no chunks.
    let bytes = [0x13, 0x88, 0x13, 0x88, 0, 0, 0, 0, 0x06, 0xa9, 0x00, 0xe1];
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    packet.verify_checksum().unwrap();
    assert_eq!(packet.chunks().count(), 0);
}

#[test]
fn scapy_init_checksum() {
    // scapy's SCTP()/SCTPChunkInit(params=[SCTPChunkParamIPv4Addr()]): ports 0, tag 0,
    // checksum 0x5f0b2c40 (40 2c 0b 5f); INIT Length 28, all fixed fields 0, IPv4 127.0.0.1.
    let bytes = [
        0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x2c, 0x0b, 0x5f, 1, 0, 0, 0x1c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 5, 0, 8, 127, 0, 0, 1,
    ];
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    packet.verify_checksum().unwrap();
    let chunk = packet.chunks().next().unwrap().unwrap();
    let ChunkRepr::Init(init) = ChunkRepr::parse(&chunk).unwrap() else { panic!() };
    assert_eq!(init.params.iter().collect::<Vec<_>>(), [ParamRepr::Ipv4Address(Ipv4Addr::LOCALHOST)]);
    // One flipped bit anywhere is caught, and the error keeps both values.
    let mut bad = bytes;
    bad[20] ^= 0x10;
    let stored = 0x5f0b_2c40;
    let computed = Packet::new_checked(&bad[..]).unwrap().compute_checksum();
    assert_ne!(computed, stored);
    let error = PacketRepr::parse(&Packet::new_checked(&bad[..]).unwrap()).unwrap_err();
    assert_eq!(error, WireError::BadChecksum { stored, computed });
    assert_eq!(
        std::format!("{error}"),
        std::format!("bad CRC32c: stored 0x5f0b2c40, computed {computed:#010x}")
    );
}

/// A COOKIE ACK and a SACK bundled, captured from WebRTC's dcsctp (its sctp_packet_test):
/// ports 1234 -> 4321, tag 0x697e3a4e, checksum 0x368b6ec0 (c0 6e 8b 36); COOKIE ACK (11,
/// len 4); SACK (3, len 16) Cumulative TSN Ack 2930332242, a_rwnd 131072, no gaps or dups.
const DCSCTP_COOKIE_ACK_SACK: [u8; 32] = [
    0x04, 0xd2, 0x10, 0xe1, 0x69, 0x7e, 0x3a, 0x4e, 0xc0, 0x6e, 0x8b, 0x36, 0x0b, 0x00, 0x00, 0x04, 0x03,
    0x00, 0x00, 0x10, 0xae, 0xa9, 0x52, 0x52, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// DATA from a capture (dcsctp's data_chunk_test): flags B|E, Length 20, TSN 1426601532,
/// stream 2, SSN 1, PPID 53 (WebRTC Binary), user data 00 01 02 03.
const DCSCTP_DATA: [u8; 20] = [
    0x00, 0x03, 0x00, 0x14, 0x55, 0x08, 0x36, 0x3c, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x35, 0x00,
    0x01, 0x02, 0x03,
];

/// SACK from a capture (dcsctp's sack_chunk_test): Length 28, Cumulative TSN Ack 916312075,
/// a_rwnd 126323, gaps 2-6 and 8-8 (TSNs 916312077..916312081 and 916312083), duplicate
/// 916312081.
const DCSCTP_SACK: [u8; 28] = [
    0x03, 0x00, 0x00, 0x1c, 0x36, 0x9d, 0xd0, 0x0b, 0x00, 0x01, 0xed, 0x73, 0x00, 0x02, 0x00, 0x01, 0x00,
    0x02, 0x00, 0x06, 0x00, 0x08, 0x00, 0x08, 0x36, 0x9d, 0xd0, 0x11,
];

/// HEARTBEAT from a capture (dcsctp's heartbeat_request_chunk_test): Length 44, Heartbeat Info
/// (1, len 40) of 36 bytes.
const DCSCTP_HEARTBEAT: [u8; 44] = [
    0x04, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x28, 0xad, 0x24, 0x36, 0x60, 0x37, 0x26, 0x07, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn dcsctp_captures() {
    let packet = Packet::new_checked(&DCSCTP_COOKIE_ACK_SACK[..]).unwrap();
    assert_eq!(
        PacketRepr::parse(&packet),
        Ok(PacketRepr { src_port: 1234, dst_port: 4321, verification_tag: 0x697e_3a4e })
    );
    let reprs: Vec<_> = packet.chunks().map(|c| ChunkRepr::parse(&c.unwrap()).unwrap()).collect();
    let sack = SackChunk {
        cumulative_tsn_ack: Tsn(2_930_332_242),
        a_rwnd: 131_072,
        gap_blocks: List::EMPTY,
        duplicate_tsns: List::EMPTY,
    };
    assert_eq!(reprs, [ChunkRepr::CookieAck, ChunkRepr::Sack(sack)]);
    let mut buf = [0u8; 64];
    let mut builder = PacketBuilder::new(&mut buf, &PacketRepr::parse(&packet).unwrap(), 1500).unwrap();
    for repr in &reprs {
        builder.push(repr).unwrap();
    }
    let len = builder.finish();
    assert_eq!(&buf[..len], &DCSCTP_COOKIE_ACK_SACK[..]);

    // The same capture's SACK with its checksum deliberately one bit off (dcsctp's test).
    let bad = [
        0x13, 0x88, 0x13, 0x88, 0x0e, 0xdd, 0xca, 0x08, 0x2a, 0x81, 0xf5, 0x31, 0x03, 0x00, 0x00, 0x10, 0x55,
        0x08, 0x36, 0x40, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(
        Packet::new_checked(&bad[..]).unwrap().verify_checksum(),
        Err(WireError::BadChecksum { stored: 0x31f5_812a, computed: 0x32f5_812a })
    );

    // A chunk of Length 0 (dcsctp's zero-size chunk test) ends the walk with a typed error.
    let zero = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x0a, 0x0a, 0x5c, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00,
    ];
    let packet = Packet::new_checked(&zero[..]).unwrap();
    assert_eq!(
        packet.chunks().collect::<Vec<_>>(),
        [Err(WireError::BadLength { what: Element::Chunk(0x0a), length: 0 })]
    );

    both_ways(
        ChunkRepr::Data(DataChunk {
            unordered: false,
            beginning: true,
            ending: true,
            immediate: false,
            tsn: Tsn(1_426_601_532),
            stream_id: 2,
            ssn: Ssn(1),
            ppid: 53,
            user_data: &[0, 1, 2, 3],
        }),
        &DCSCTP_DATA,
    );
    let gaps = [GapAckBlock { start: 2, end: 6 }, GapAckBlock { start: 8, end: 8 }];
    let sack = SackChunk {
        cumulative_tsn_ack: Tsn(916_312_075),
        a_rwnd: 126_323,
        gap_blocks: List::Items(&gaps),
        duplicate_tsns: List::Items(&[Tsn(916_312_081)]),
    };
    both_ways(ChunkRepr::Sack(sack), &DCSCTP_SACK);
    assert_eq!(gaps[0].first_tsn(sack.cumulative_tsn_ack), Tsn(916_312_077));
    assert_eq!(gaps[1].last_tsn(sack.cumulative_tsn_ack), Tsn(916_312_083));
    both_ways(ChunkRepr::Heartbeat(HeartbeatChunk { info: &DCSCTP_HEARTBEAT[8..] }), &DCSCTP_HEARTBEAT);
    // ABORT from a capture: Length 8, one User-Initiated Abort cause with no reason.
    both_ways(
        ChunkRepr::Abort {
            t_bit: false,
            causes: List::Items(&[CauseRepr::UserInitiatedAbort { reason: b"" }]),
        },
        &[0x06, 0x00, 0x00, 0x08, 0x00, 0x0c, 0x00, 0x04],
    );
}

// ---------------------------------------------------------------------------------------------
// Every chunk type both ways. Each vector is the chunk with its padding, fields in the comment.

/// Parses `bytes` as exactly one chunk (with padding), compares with `repr`, emits `repr` and
/// compares with `bytes`.
fn both_ways(repr: ChunkRepr<'_>, bytes: &[u8]) {
    let mut chunks = Chunks::new(bytes);
    let chunk = chunks.next().expect("one chunk").expect("well formed");
    assert!(chunks.next().is_none(), "exactly one chunk");
    assert_eq!(ChunkRepr::parse(&chunk), Ok(repr));
    assert_eq!(repr.buffer_len(), bytes.len());
    let mut buf = [0xaau8; 128];
    let len = repr.emit(&mut buf).expect("fits");
    assert_eq!(&buf[..len], bytes, "{repr:?}");
}

/// DATA, flags B|E (0x03), Length 19: TSN 0x01020304, stream 1, SSN 2, PPID 51, "abc", 1 pad.
const DATA: [u8; 20] = [0, 0x03, 0, 19, 1, 2, 3, 4, 0, 1, 0, 2, 0, 0, 0, 51, b'a', b'b', b'c', 0];

#[test]
fn data() {
    let data = DataChunk {
        unordered: false,
        beginning: true,
        ending: true,
        immediate: false,
        tsn: Tsn(0x0102_0304),
        stream_id: 1,
        ssn: Ssn(2),
        ppid: 51,
        user_data: b"abc",
    };
    both_ways(ChunkRepr::Data(data), &DATA);
    // DATA, flags I|U (0x0c): a middle fragment, unordered, immediate; Length 20, "wxyz".
    let middle = DataChunk {
        unordered: true,
        beginning: false,
        ending: false,
        immediate: true,
        user_data: b"wxyz",
        ..data
    };
    both_ways(
        ChunkRepr::Data(middle),
        &[0, 0x0c, 0, 20, 1, 2, 3, 4, 0, 1, 0, 2, 0, 0, 0, 51, b'w', b'x', b'y', b'z'],
    );
    // A DATA chunk without user data parses; the association answers it with No User Data.
    // Length 16, flags B|E, the same fixed fields.
    both_ways(
        ChunkRepr::Data(DataChunk { user_data: b"", ..data }),
        &[0, 3, 0, 16, 1, 2, 3, 4, 0, 1, 0, 2, 0, 0, 0, 51],
    );
    // Length 15: shorter than the fixed fields.
    let short = [0, 3, 0, 15, 1, 2, 3, 4, 0, 1, 0, 2, 0, 0, 0, 0];
    let chunk = Chunks::new(&short).next().unwrap().unwrap();
    assert_eq!(ChunkRepr::parse(&chunk), Err(WireError::BadLength { what: Element::Chunk(0), length: 15 }));
    assert_eq!(DataChunk::max_user_data(1200), Some(1184));
    assert_eq!(DataChunk::max_user_data(1203), Some(1184));
    assert_eq!(DataChunk::max_user_data(16), None);
}

/// INIT, Length 34 (+2 pad): Initiate Tag 0xa1b2c3d4, a_rwnd 65536, OS 10, MIS 65535, Initial
/// TSN 0x11223344; IPv4 Address 192.0.2.1 (type 5, len 8); Supported Address Types IPv4
/// (type 12, len 6; its 2 padding bytes are the chunk's).
const INIT: [u8; 36] = [
    1, 0, 0, 34, 0xa1, 0xb2, 0xc3, 0xd4, 0, 1, 0, 0, 0, 10, 0xff, 0xff, 0x11, 0x22, 0x33, 0x44, 0, 5, 0, 8,
    192, 0, 2, 1, 0, 12, 0, 6, 0, 5, 0, 0,
];

#[test]
fn init() {
    let params = [
        ParamRepr::Ipv4Address(Ipv4Addr::new(192, 0, 2, 1)),
        ParamRepr::SupportedAddressTypes(List::Items(&[AddressType::IPV4])),
    ];
    let init = InitChunk {
        initiate_tag: 0xa1b2_c3d4,
        a_rwnd: 65_536,
        outbound_streams: 10,
        inbound_streams: 65_535,
        initial_tsn: Tsn(0x1122_3344),
        params: List::Items(&params),
    };
    both_ways(ChunkRepr::Init(init), &INIT);
    assert_eq!(init.state_cookie(), None);
    // Length 19: shorter than the fixed fields.
    let chunk =
        Chunks::new(&[1, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).next().unwrap().unwrap();
    assert_eq!(ChunkRepr::parse(&chunk), Err(WireError::BadLength { what: Element::Chunk(1), length: 19 }));
}

/// INIT ACK, Length 40: Initiate Tag 1, a_rwnd 1500, OS 1, MIS 2, Initial TSN 7; State Cookie
/// "cook!" (type 7, len 9, + 3 pad); Unrecognized Parameter (type 8, len 8) holding ECN
/// Capable (0x8000, len 4).
const INIT_ACK: [u8; 40] = [
    2, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0x05, 0xdc, 0, 1, 0, 2, 0, 0, 0, 7, 0, 7, 0, 9, b'c', b'o', b'o', b'k',
    b'!', 0, 0, 0, 0, 8, 0, 8, 0x80, 0, 0, 4,
];

#[test]
fn init_ack() {
    let params = [
        ParamRepr::StateCookie(b"cook!"),
        ParamRepr::UnrecognizedParameter(RawParam { param_type: 0x8000, value: &[] }),
    ];
    let init_ack = InitChunk {
        initiate_tag: 1,
        a_rwnd: 1500,
        outbound_streams: 1,
        inbound_streams: 2,
        initial_tsn: Tsn(7),
        params: List::Items(&params),
    };
    both_ways(ChunkRepr::InitAck(init_ack), &INIT_ACK);
    assert_eq!(init_ack.state_cookie(), Some(&b"cook!"[..]));
    let chunk = Chunks::new(&INIT_ACK).next().unwrap().unwrap();
    let ChunkRepr::InitAck(parsed) = ChunkRepr::parse(&chunk).unwrap() else { panic!() };
    assert_eq!(parsed.state_cookie(), Some(&b"cook!"[..]));
    // A malformed parameter inside is the chunk's error, with the parameter named.
    let mut bad = INIT_ACK;
    bad[23] = 40; // State Cookie length past the chunk
    let chunk = Chunks::new(&bad).next().unwrap().unwrap();
    assert_eq!(
        ChunkRepr::parse(&chunk),
        Err(WireError::Truncated { what: Element::Param(7), need: 40, have: 20 })
    );
}

/// SACK, Length 28: Cumulative TSN Ack 100, a_rwnd 4096, 2 gap blocks, 1 duplicate; gaps 2-3
/// and 5-5; duplicate TSN 98.
const SACK: [u8; 28] =
    [3, 0, 0, 28, 0, 0, 0, 100, 0, 0, 0x10, 0, 0, 2, 0, 1, 0, 2, 0, 3, 0, 5, 0, 5, 0, 0, 0, 98];

#[test]
fn sack() {
    let gaps = [GapAckBlock { start: 2, end: 3 }, GapAckBlock { start: 5, end: 5 }];
    let sack = SackChunk {
        cumulative_tsn_ack: Tsn(100),
        a_rwnd: 4096,
        gap_blocks: List::Items(&gaps),
        duplicate_tsns: List::Items(&[Tsn(98)]),
    };
    both_ways(ChunkRepr::Sack(sack), &SACK);
    assert_eq!(gaps[0].first_tsn(sack.cumulative_tsn_ack), Tsn(102));
    assert_eq!(gaps[1].last_tsn(sack.cumulative_tsn_ack), Tsn(105));
    // No gaps, no duplicates: Length 16.
    both_ways(
        ChunkRepr::Sack(SackChunk { gap_blocks: List::EMPTY, duplicate_tsns: List::Items(&[]), ..sack }),
        &[3, 0, 0, 16, 0, 0, 0, 100, 0, 0, 0x10, 0, 0, 0, 0, 0],
    );
    // Counts that claim more than the chunk holds.
    let mut bad = SACK;
    bad[15] = 2;
    let chunk = Chunks::new(&bad).next().unwrap().unwrap();
    assert_eq!(ChunkRepr::parse(&chunk), Err(WireError::BadLength { what: Element::Chunk(3), length: 28 }));
}

/// HEARTBEAT, Length 14 (+2 pad): Heartbeat Info (type 1, len 10) "hello!".
const HEARTBEAT: [u8; 16] = [4, 0, 0, 14, 0, 1, 0, 10, b'h', b'e', b'l', b'l', b'o', b'!', 0, 0];

#[test]
fn heartbeat_and_ack() {
    both_ways(ChunkRepr::Heartbeat(HeartbeatChunk { info: b"hello!" }), &HEARTBEAT);
    let mut ack = HEARTBEAT;
    ack[0] = 5;
    both_ways(ChunkRepr::HeartbeatAck(HeartbeatChunk { info: b"hello!" }), &ack);
    // A HEARTBEAT whose parameter is not Heartbeat Info, and one with no parameter at all.
    let chunk = Chunks::new(&[4, 0, 0, 8, 0, 7, 0, 4]).next().unwrap().unwrap();
    assert_eq!(
        ChunkRepr::parse(&chunk),
        Err(WireError::MissingParam { what: Element::Chunk(4), param_type: 1 })
    );
    let chunk = Chunks::new(&[4, 0, 0, 4]).next().unwrap().unwrap();
    assert_eq!(
        ChunkRepr::parse(&chunk),
        Err(WireError::MissingParam { what: Element::Chunk(4), param_type: 1 })
    );
}

#[test]
fn abort() {
    // ABORT, T bit (0x01), Length 11 (+1 pad): User-Initiated Abort (12, len 7) "bye".
    both_ways(
        ChunkRepr::Abort {
            t_bit: true,
            causes: List::Items(&[CauseRepr::UserInitiatedAbort { reason: b"bye" }]),
        },
        &[6, 1, 0, 11, 0, 12, 0, 7, b'b', b'y', b'e', 0],
    );
    // ABORT, no T bit, no cause: Length 4.
    both_ways(ChunkRepr::Abort { t_bit: false, causes: List::EMPTY }, &[6, 0, 0, 4]);
}

#[test]
fn shutdown_family() {
    // SHUTDOWN, Length 8, Cumulative TSN Ack 0xfffffffe.
    both_ways(
        ChunkRepr::Shutdown { cumulative_tsn_ack: Tsn(0xffff_fffe) },
        &[7, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe],
    );
    // SHUTDOWN ACK, Length 4.
    both_ways(ChunkRepr::ShutdownAck, &[8, 0, 0, 4]);
    // SHUTDOWN COMPLETE, T bit, Length 4; and without it.
    both_ways(ChunkRepr::ShutdownComplete { t_bit: true }, &[14, 1, 0, 4]);
    both_ways(ChunkRepr::ShutdownComplete { t_bit: false }, &[14, 0, 0, 4]);
    // SHUTDOWN of Length 12 is not a SHUTDOWN.
    let chunk = Chunks::new(&[7, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0]).next().unwrap().unwrap();
    assert_eq!(ChunkRepr::parse(&chunk), Err(WireError::BadLength { what: Element::Chunk(7), length: 12 }));
}

#[test]
fn error_chunk() {
    // ERROR, Length 20: Invalid Stream Identifier (1, len 8) stream 5; Stale Cookie (3, len 8)
    // 1000 us.
    both_ways(
        ChunkRepr::Error {
            causes: List::Items(&[
                CauseRepr::InvalidStreamIdentifier { stream_id: 5 },
                CauseRepr::StaleCookie { staleness_us: 1000 },
            ]),
        },
        &[9, 0, 0, 20, 0, 1, 0, 8, 0, 5, 0, 0, 0, 3, 0, 8, 0, 0, 0x03, 0xe8],
    );
}

#[test]
fn cookie_echo_and_ack() {
    // COOKIE ECHO, Length 10 (+2 pad): the cookie "cookie".
    both_ways(
        ChunkRepr::CookieEcho { cookie: b"cookie" },
        &[10, 0, 0, 10, b'c', b'o', b'o', b'k', b'i', b'e', 0, 0],
    );
    // COOKIE ACK, Length 4.
    both_ways(ChunkRepr::CookieAck, &[11, 0, 0, 4]);
}

#[test]
fn unknown_chunks_keep_their_action() {
    // FORWARD TSN (0xc0), Length 8: unknown here; 11 = skip and report.
    let raw = RawChunk { chunk_type: 0xc0, flags: 0, value: &[0, 0, 0, 5] };
    both_ways(ChunkRepr::Unknown(raw), &[0xc0, 0, 0, 8, 0, 0, 0, 5]);
    assert_eq!(raw.action(), UnrecognizedAction::SkipAndReport);
    // I-DATA (0x40) with flags kept: 01 = stop and report.
    let raw = RawChunk { chunk_type: 0x40, flags: 0x03, value: &[9] };
    both_ways(ChunkRepr::Unknown(raw), &[0x40, 3, 0, 5, 9, 0, 0, 0]);
    assert_eq!(raw.action(), UnrecognizedAction::StopAndReport);
    // ECNE (12) is not implemented: 00 = stop, discard.
    let chunk = Chunks::new(&[12, 0, 0, 8, 0, 0, 0, 1]).next().unwrap().unwrap();
    assert_eq!(chunk.action(), UnrecognizedAction::Stop);
    assert!(matches!(ChunkRepr::parse(&chunk), Ok(ChunkRepr::Unknown(RawChunk { chunk_type: 12, .. }))));
    // 10 = skip, go on.
    assert_eq!(UnrecognizedAction::from_high_bits(0x82), UnrecognizedAction::Skip);
    assert!(UnrecognizedAction::Skip.skips() && !UnrecognizedAction::Skip.reports());
}

#[test]
fn flags_a_chunk_does_not_define_are_ignored() {
    // COOKIE ACK with flags 0xff parses, and is sent back with flags 0.
    let chunk = Chunks::new(&[11, 0xff, 0, 4]).next().unwrap().unwrap();
    assert_eq!(ChunkRepr::parse(&chunk), Ok(ChunkRepr::CookieAck));
}

// ---------------------------------------------------------------------------------------------
// The chunk walk and the bundler.

#[test]
fn chunk_walk_reports_malformed_lengths() {
    // Length 3: below the header.
    let mut walk = Chunks::new(&[11, 0, 0, 3]);
    assert_eq!(walk.next(), Some(Err(WireError::BadLength { what: Element::Chunk(11), length: 3 })));
    assert_eq!(walk.next(), None, "the walk ends at the first malformed chunk");
    // Length 12 over 8 bytes.
    let mut walk = Chunks::new(&[10, 0, 0, 12, 1, 2, 3, 4]);
    assert_eq!(walk.next(), Some(Err(WireError::Truncated { what: Element::Chunk(10), need: 12, have: 8 })));
    // Three stray bytes after a good chunk.
    let mut walk = Chunks::new(&[11, 0, 0, 4, 1, 2, 3]);
    assert!(matches!(walk.next(), Some(Ok(_))));
    assert_eq!(walk.next(), Some(Err(WireError::Truncated { what: Element::ChunkHeader, need: 4, have: 3 })));
    // A COOKIE ECHO of Length 5 whose padding is missing.
    let mut walk = Chunks::new(&[10, 0, 0, 5, 1, 0]);
    assert_eq!(walk.next(), Some(Err(WireError::BadPadding { what: Element::Chunk(10) })));
    // Nonzero padding is ignored (section 3.2: the receiver ignores the padding bytes).
    let mut walk = Chunks::new(&[10, 0, 0, 5, 1, 0xee, 0xee, 0xee, 11, 0, 0, 4]);
    assert_eq!(ChunkRepr::parse(&walk.next().unwrap().unwrap()), Ok(ChunkRepr::CookieEcho { cookie: &[1] }));
    assert_eq!(ChunkRepr::parse(&walk.next().unwrap().unwrap()), Ok(ChunkRepr::CookieAck));
    // A header shorter than the common header.
    assert_eq!(
        Packet::new_checked(&[0u8; 11][..]),
        Err(WireError::Truncated { what: Element::CommonHeader, need: 12, have: 11 })
    );
}

const HEADER: PacketRepr = PacketRepr { src_port: 9899, dst_port: 7, verification_tag: 0xdead_beef };

#[test]
fn builder_bundles_under_the_limit() {
    let data = |tsn: u32| {
        ChunkRepr::Data(DataChunk {
            unordered: false,
            beginning: true,
            ending: true,
            immediate: false,
            tsn: Tsn(tsn),
            stream_id: 0,
            ssn: Ssn(0),
            ppid: 0,
            user_data: b"12345",
        })
    };
    // 12 + 8 (COOKIE ECHO "abcd") + 2 * 24 (DATA, 21 + 3 pad) = 68.
    let mut buf = [0u8; 256];
    let mut builder = PacketBuilder::new(&mut buf, &HEADER, 70).unwrap();
    assert_eq!(builder.push(&ChunkRepr::CookieEcho { cookie: b"abcd" }), Ok(8));
    assert_eq!(builder.push(&data(1)), Ok(24));
    assert!(builder.fits(&data(2)));
    assert_eq!(builder.push(&data(2)), Ok(24));
    assert_eq!(builder.room(), 2);
    // Full: refused, the packet unchanged.
    assert!(!builder.fits(&data(3)));
    assert_eq!(builder.push(&data(3)), Err(WireError::NoRoom { need: 24, room: 2 }));
    assert_eq!(builder.push(&ChunkRepr::Init(init_chunk())), Err(WireError::NotBundleable { chunk_type: 1 }));
    assert_eq!(builder.chunk_count(), 3);
    let len = builder.finish();
    assert_eq!(len, 68);

    let packet = Packet::new_checked(&buf[..len]).unwrap();
    assert_eq!(PacketRepr::parse(&packet), Ok(HEADER));
    let reprs: Vec<_> = packet.chunks().map(|c| ChunkRepr::parse(&c.unwrap()).unwrap()).collect();
    assert_eq!(reprs, [ChunkRepr::CookieEcho { cookie: b"abcd" }, data(1), data(2)]);
}

fn init_chunk() -> InitChunk<'static> {
    InitChunk {
        initiate_tag: 1,
        a_rwnd: 2,
        outbound_streams: 3,
        inbound_streams: 4,
        initial_tsn: Tsn(5),
        params: List::EMPTY,
    }
}

#[test]
fn init_init_ack_and_shutdown_complete_travel_alone() {
    for lone in [
        ChunkRepr::Init(init_chunk()),
        ChunkRepr::InitAck(init_chunk()),
        ChunkRepr::ShutdownComplete { t_bit: false },
    ] {
        let mut buf = [0u8; 128];
        let mut builder = PacketBuilder::new(&mut buf, &HEADER, 1500).unwrap();
        builder.push(&lone).unwrap();
        assert_eq!(builder.push(&ChunkRepr::CookieAck), Err(WireError::NotBundleable { chunk_type: 11 }));
        let mut builder = PacketBuilder::new(&mut buf, &HEADER, 1500).unwrap();
        builder.push(&ChunkRepr::CookieAck).unwrap();
        assert_eq!(builder.push(&lone), Err(WireError::NotBundleable { chunk_type: lone.chunk_type() }));
    }
}

#[test]
fn builder_needs_room_for_the_header() {
    let mut buf = [0u8; 11];
    assert_eq!(
        PacketBuilder::new(&mut buf, &HEADER, 1500).err(),
        Some(WireError::NoRoom { need: 12, room: 11 })
    );
    let mut buf = [0u8; 64];
    assert_eq!(PacketBuilder::new(&mut buf, &HEADER, 8).err(), Some(WireError::NoRoom { need: 12, room: 8 }));
}

#[test]
fn oversized_values_are_refused_not_truncated() {
    let big = std::vec![0u8; 70_000];
    let mut buf = std::vec![0u8; 80_000];
    assert_eq!(
        ChunkRepr::CookieEcho { cookie: &big }.emit(&mut buf),
        Err(WireError::BadLength { what: Element::Chunk(10), length: 70_004 })
    );
    assert_eq!(
        ParamRepr::StateCookie(&big).emit(&mut buf),
        Err(WireError::BadLength { what: Element::Param(7), length: 70_004 })
    );
}

// ---------------------------------------------------------------------------------------------
// No panics, and whatever parses re-emits to something that parses the same.

/// Walks a whole packet (with or without its common header) the way a receiver does: every
/// chunk, every parameter and cause inside; re-emits each parsed chunk and checks it parses
/// back equal. Returns how many chunks parsed.
fn exercise(chunk_bytes: &[u8]) -> usize {
    let mut parsed = 0;
    for chunk in Chunks::new(chunk_bytes) {
        let Ok(chunk) = chunk else { break };
        let _ = (chunk.chunk_type(), chunk.flags(), chunk.value(), chunk.bytes(), chunk.action());
        let Ok(repr) = ChunkRepr::parse(&chunk) else { continue };
        parsed += 1;
        match repr {
            ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => {
                for param in init.params.iter() {
                    let mut out = std::vec![0u8; param.buffer_len()];
                    param.emit(&mut out).expect("a parsed parameter re-emits");
                    assert_eq!(ParamRepr::parse(&out), Ok(param));
                }
            }
            ChunkRepr::Abort { causes, .. } | ChunkRepr::Error { causes } => {
                for cause in causes.iter() {
                    let mut out = std::vec![0u8; cause.buffer_len()];
                    cause.emit(&mut out).expect("a parsed cause re-emits");
                    assert_eq!(CauseRepr::parse(&out), Ok(cause));
                }
            }
            ChunkRepr::Sack(sack) => {
                assert_eq!(sack.gap_blocks.count() * 4, sack.gap_blocks.wire_len());
                assert_eq!(sack.duplicate_tsns.count() * 4, sack.duplicate_tsns.wire_len());
            }
            _ => {}
        }
        let mut out = std::vec![0u8; repr.buffer_len()];
        let len = repr.emit(&mut out).expect("a parsed chunk re-emits");
        let again = Chunks::new(&out[..len]).next().expect("one chunk").expect("re-emitted chunk walks");
        assert_eq!(ChunkRepr::parse(&again), Ok(repr));
    }
    parsed
}

fn all_vectors() -> Vec<Vec<u8>> {
    let mut vectors: Vec<Vec<u8>> = std::vec![
        DATA.to_vec(),
        INIT.to_vec(),
        INIT_ACK.to_vec(),
        SACK.to_vec(),
        HEARTBEAT.to_vec(),
        std::vec![6, 1, 0, 11, 0, 12, 0, 7, b'b', b'y', b'e', 0],
        std::vec![9, 0, 0, 20, 0, 1, 0, 8, 0, 5, 0, 0, 0, 3, 0, 8, 0, 0, 0x03, 0xe8],
        std::vec![0x40, 3, 0, 5, 9, 0, 0, 0],
        CHROME_INIT[COMMON_HEADER_LEN..].to_vec(),
        DCSCTP_COOKIE_ACK_SACK[COMMON_HEADER_LEN..].to_vec(),
        DCSCTP_DATA.to_vec(),
        DCSCTP_SACK.to_vec(),
        DCSCTP_HEARTBEAT.to_vec(),
    ];
    // Every cause inside an ABORT.
    let causes = [
        CauseRepr::MissingMandatoryParameter { param_types: List::Items(&[7, 9]) },
        CauseRepr::UnresolvableAddress { address: RawParam { param_type: 11, value: b"a.b\0" } },
        CauseRepr::UnrecognizedChunkType {
            chunk: RawChunk { chunk_type: 0x4f, flags: 1, value: &[1, 2, 3] },
        },
        CauseRepr::UnrecognizedParameters {
            params: List::Items(&[RawParam { param_type: 0xc001, value: &[9] }]),
        },
        CauseRepr::NoUserData { tsn: Tsn(1) },
        CauseRepr::RestartWithNewAddresses {
            addresses: List::Items(&[RawParam { param_type: 5, value: &[1, 2, 3, 4] }]),
        },
        CauseRepr::OutOfResource,
        CauseRepr::ProtocolViolation { info: b"x" },
    ];
    let abort = ChunkRepr::Abort { t_bit: false, causes: List::Items(&causes) };
    let mut buf = std::vec![0u8; abort.buffer_len()];
    abort.emit(&mut buf).unwrap();
    vectors.push(buf);
    // A whole bundle, back to back.
    let bundle: Vec<u8> = vectors.concat();
    vectors.push(bundle);
    vectors
}

#[test]
fn every_vector_walks_and_round_trips() {
    for vector in all_vectors() {
        assert!(exercise(&vector) >= 1, "{vector:?}");
    }
}

#[test]
fn no_panic_on_any_truncation() {
    for vector in all_vectors() {
        for end in 0..vector.len() {
            exercise(&vector[..end]);
            if let Ok(packet) = Packet::new_checked(&vector[..end]) {
                let _ = (packet.verify_checksum(), packet.chunks().count());
            }
            // Each truncation also as a single TLV, cause or raw chunk.
            let _ = (
                ParamRepr::parse(&vector[..end]),
                CauseRepr::parse(&vector[..end]),
                RawChunk::parse(&vector[..end]),
            );
        }
    }
}

/// A number below `n` from the test's seeded generator.
fn below(rng: &mut Csprng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

#[test]
fn no_panic_on_random_mutations() {
    let mut rng = Csprng::seed_from_u64(0x9260);
    let vectors = all_vectors();
    let mut parsed = 0;
    for round in 0..20_000 {
        let mut bytes = vectors[round % vectors.len()].clone();
        for _ in 0..1 + below(&mut rng, 4) {
            match below(&mut rng, 4) {
                // Flip a byte, often in a length field, so lengths get exercised.
                0 | 1 if !bytes.is_empty() => {
                    let at = below(&mut rng, bytes.len());
                    bytes[at] = rng.next_u64() as u8;
                }
                2 if !bytes.is_empty() => bytes.truncate(below(&mut rng, bytes.len())),
                _ => bytes.push(rng.next_u64() as u8),
            }
        }
        parsed += exercise(&bytes);
        let _ = (ParamRepr::parse(&bytes), CauseRepr::parse(&bytes));
    }
    // The mutations must leave many chunks parseable, or this test would only test refusals.
    assert!(parsed > 10_000, "only {parsed} chunks parsed");
}

/// Random representations, built from items (not bytes), emit and parse back equal; bundled
/// into packets under a random limit, every chunk pushed comes back in order.
#[test]
fn random_reprs_round_trip() {
    const POOL: [u8; 96] = {
        let mut pool = [0u8; 96];
        let mut i = 0;
        while i < pool.len() {
            pool[i] = (i as u8).wrapping_mul(37) ^ 0x5a;
            i += 1;
        }
        pool
    };
    let mut rng = Csprng::seed_from_u64(4960);
    let slice = |rng: &mut Csprng| -> &'static [u8] {
        let start = below(rng, POOL.len());
        &POOL[start..start + below(rng, POOL.len() - start + 1)]
    };
    for _ in 0..2_000 {
        let raw = RawParam { param_type: rng.next_u64() as u16, value: slice(&mut rng) };
        let params = [
            ParamRepr::Ipv4Address(Ipv4Addr::from(rng.next_u64() as u32)),
            ParamRepr::StateCookie(slice(&mut rng)),
            ParamRepr::HeartbeatInfo(slice(&mut rng)),
            ParamRepr::UnrecognizedParameter(raw),
            ParamRepr::SupportedAddressTypes(List::Items(&[5, 6, 11][..below(&mut rng, 4)])),
            ParamRepr::CookiePreservative(rng.next_u64() as u32),
            ParamRepr::HostNameAddress(slice(&mut rng)),
            // Types 1..=12 would parse as known parameters, so unknown ones start at 13.
            ParamRepr::Unknown(RawParam {
                param_type: 13 + below(&mut rng, 0xfff0) as u16,
                value: slice(&mut rng),
            }),
        ];
        let causes = [
            CauseRepr::InvalidStreamIdentifier { stream_id: rng.next_u64() as u16 },
            CauseRepr::MissingMandatoryParameter {
                param_types: List::Items(&[7, 9, 5][..below(&mut rng, 4)]),
            },
            CauseRepr::UnrecognizedChunkType {
                chunk: RawChunk {
                    chunk_type: rng.next_u64() as u8,
                    flags: rng.next_u64() as u8,
                    value: slice(&mut rng),
                },
            },
            CauseRepr::UnrecognizedParameters { params: List::Items(core::slice::from_ref(&raw)) },
            CauseRepr::UserInitiatedAbort { reason: slice(&mut rng) },
            CauseRepr::Unknown { code: 14 + below(&mut rng, 0xfff0) as u16, info: slice(&mut rng) },
        ];
        let gaps: Vec<GapAckBlock> = (0..below(&mut rng, 5))
            .map(|_| GapAckBlock { start: rng.next_u64() as u16, end: rng.next_u64() as u16 })
            .collect();
        let dups: Vec<Tsn> = (0..below(&mut rng, 5)).map(|_| Tsn(rng.next_u64() as u32)).collect();
        let some_params = &params[below(&mut rng, params.len())..];
        let some_causes = &causes[below(&mut rng, causes.len())..];
        let init = InitChunk {
            initiate_tag: rng.next_u64() as u32,
            a_rwnd: rng.next_u64() as u32,
            outbound_streams: rng.next_u64() as u16,
            inbound_streams: rng.next_u64() as u16,
            initial_tsn: Tsn(rng.next_u64() as u32),
            params: List::Items(some_params),
        };
        let bits = rng.next_u64();
        let reprs = [
            ChunkRepr::Data(DataChunk {
                unordered: bits & 1 != 0,
                beginning: bits & 2 != 0,
                ending: bits & 4 != 0,
                immediate: bits & 8 != 0,
                tsn: Tsn(rng.next_u64() as u32),
                stream_id: rng.next_u64() as u16,
                ssn: Ssn(rng.next_u64() as u16),
                ppid: rng.next_u64() as u32,
                user_data: slice(&mut rng),
            }),
            ChunkRepr::Init(init),
            ChunkRepr::InitAck(init),
            ChunkRepr::Sack(SackChunk {
                cumulative_tsn_ack: Tsn(rng.next_u64() as u32),
                a_rwnd: rng.next_u64() as u32,
                gap_blocks: List::Items(&gaps),
                duplicate_tsns: List::Items(&dups),
            }),
            ChunkRepr::HeartbeatAck(HeartbeatChunk { info: slice(&mut rng) }),
            ChunkRepr::Abort { t_bit: bits & 16 != 0, causes: List::Items(some_causes) },
            ChunkRepr::Error { causes: List::Items(some_causes) },
            ChunkRepr::CookieEcho { cookie: slice(&mut rng) },
            ChunkRepr::Unknown(RawChunk {
                chunk_type: 15 + below(&mut rng, 240) as u8,
                flags: 0,
                value: slice(&mut rng),
            }),
        ];
        for repr in &reprs {
            let mut out = std::vec![0u8; repr.buffer_len()];
            assert_eq!(repr.emit(&mut out), Ok(out.len()));
            let chunk = Chunks::new(&out).next().unwrap().unwrap();
            assert_eq!(ChunkRepr::parse(&chunk).as_ref(), Ok(repr));
        }
        // Bundle what fits under a random limit, in order, skipping what may not bundle.
        let limit = 12 + below(&mut rng, 600);
        let mut buf = std::vec![0u8; 2048];
        let mut builder = PacketBuilder::new(&mut buf, &HEADER, limit).unwrap();
        let mut pushed = Vec::new();
        for repr in reprs.iter().filter(|repr| repr.is_bundleable()) {
            match builder.push(repr) {
                Ok(taken) => {
                    assert_eq!(taken, repr.buffer_len());
                    pushed.push(*repr);
                }
                Err(WireError::NoRoom { need, room }) => assert!(need > room && room == builder.room()),
                Err(other) => panic!("{other:?}"),
            }
        }
        let len = builder.finish();
        assert!(len <= limit);
        let packet = Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!(PacketRepr::parse(&packet), Ok(HEADER));
        let back: Vec<_> = packet.chunks().map(|c| ChunkRepr::parse(&c.unwrap()).unwrap()).collect();
        assert_eq!(back, pushed);
    }
}
