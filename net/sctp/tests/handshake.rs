//! The endpoint against hand-built packets: the cookie handshake without state before the
//! COOKIE ECHO, stale and forged cookies, verification tags, out-of-the-blue packets (8.4),
//! INIT collisions and restarts (5.2), unrecognized chunks and streams, and no panic on any
//! mutation of a valid packet.

mod common;

use std::net::Ipv4Addr;

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::{Duration, Instant};
use bulkhead_sctp::endpoint::{Config, DownReason, Endpoint, Event, Received, Transport};
use bulkhead_sctp::wire::{
    CauseRepr, ChunkRepr, DataChunk, InitChunk, List, Packet, PacketBuilder, PacketRepr, ParamRepr, RawChunk,
    Ssn, Tsn,
};
use common::*;

const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_PORT: u16 = 6000;
const PORT: u16 = 5000;
const PEER_TAG: u32 = 0xCAFE_0001;

fn packet(vtag: u32, chunks: &[ChunkRepr<'_>]) -> Vec<u8> {
    packet_ports(PEER_PORT, PORT, vtag, chunks)
}

fn packet_ports(src: u16, dst: u16, vtag: u32, chunks: &[ChunkRepr<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = PacketBuilder::new(
        &mut buf,
        &PacketRepr { src_port: src, dst_port: dst, verification_tag: vtag },
        1472,
    )
    .unwrap();
    for c in chunks {
        b.push(c).unwrap();
    }
    let n = b.finish();
    buf.truncate(n);
    buf
}

/// What came back, in a form a test can match on.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    InitAck { vtag: u32, tag: u32, tsn: u32, cookie: Vec<u8>, addrs: Vec<Ipv4Addr> },
    Abort { vtag: u32, t_bit: bool, causes: Vec<u16> },
    ShutdownComplete { vtag: u32, t_bit: bool },
    Error { vtag: u32, causes: Vec<u16> },
    CookieAck { vtag: u32 },
    Sack { vtag: u32, cum: u32 },
    Other { vtag: u32, chunk_type: u8 },
}

fn replies(ep: &mut Endpoint, now: Instant) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        let p = Packet::new_checked(&buf[..t.len]).unwrap();
        let h = PacketRepr::parse(&p).expect("valid checksum");
        let vtag = h.verification_tag;
        for c in p.chunks() {
            let c = c.unwrap();
            out.push(match ChunkRepr::parse(&c).unwrap() {
                ChunkRepr::InitAck(i) => Reply::InitAck {
                    vtag,
                    tag: i.initiate_tag,
                    tsn: i.initial_tsn.0,
                    cookie: i.state_cookie().unwrap().to_vec(),
                    addrs: i
                        .params
                        .iter()
                        .filter_map(|p| if let ParamRepr::Ipv4Address(a) = p { Some(a) } else { None })
                        .collect(),
                },
                ChunkRepr::Abort { t_bit, causes } => {
                    Reply::Abort { vtag, t_bit, causes: causes.iter().map(|c| c.code()).collect() }
                }
                ChunkRepr::ShutdownComplete { t_bit } => Reply::ShutdownComplete { vtag, t_bit },
                ChunkRepr::Error { causes } => {
                    Reply::Error { vtag, causes: causes.iter().map(|c| c.code()).collect() }
                }
                ChunkRepr::CookieAck => Reply::CookieAck { vtag },
                ChunkRepr::Sack(s) => Reply::Sack { vtag, cum: s.cumulative_tsn_ack.0 },
                other => Reply::Other { vtag, chunk_type: other.chunk_type() },
            });
        }
    }
    out
}

fn endpoint(listen: bool) -> (Endpoint, Csprng) {
    let mut rng = Csprng::seed_from_u64(99);
    let mut cfg = Config::new(PORT, footprint);
    cfg.listen = listen;
    let ep = Endpoint::new(cfg, &[US, Ipv4Addr::new(198, 51, 100, 1)], Instant::ZERO, &mut rng);
    (ep, rng)
}

fn deliver(ep: &mut Endpoint, rng: &mut Csprng, now: Instant, bytes: &[u8]) {
    ep.handle(now, rng, Received { src: PEER, dst: US, transport: Transport::Ip, bytes });
}

fn init(tag: u32) -> ChunkRepr<'static> {
    ChunkRepr::Init(InitChunk {
        initiate_tag: tag,
        a_rwnd: 100_000,
        outbound_streams: 4,
        inbound_streams: 4,
        initial_tsn: Tsn(1000),
        params: List::EMPTY,
    })
}

/// INIT, INIT ACK; returns (our tag, our initial TSN, cookie).
fn start(ep: &mut Endpoint, rng: &mut Csprng, now: Instant) -> (u32, u32, Vec<u8>) {
    deliver(ep, rng, now, &packet(0, &[init(PEER_TAG)]));
    match replies(ep, now).as_slice() {
        [Reply::InitAck { vtag, tag, tsn, cookie, addrs }] => {
            assert_eq!(*vtag, PEER_TAG);
            assert_ne!(*tag, 0);
            assert_eq!(addrs, &[US, Ipv4Addr::new(198, 51, 100, 1)], "INIT ACK lists every local address");
            (*tag, *tsn, cookie.clone())
        }
        other => panic!("{other:?}"),
    }
}

fn establish(ep: &mut Endpoint, rng: &mut Csprng, now: Instant) -> (u32, u32) {
    let (tag, tsn, cookie) = start(ep, rng, now);
    deliver(ep, rng, now, &packet(tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(ep, now), [Reply::CookieAck { vtag: PEER_TAG }]);
    assert!(matches!(ep.poll_event(), Some(Event::AssociationUp(_))));
    (tag, tsn)
}

#[test]
fn init_keeps_no_state_and_cookie_echo_creates_the_association() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _, cookie) = start(&mut ep, &mut rng, Instant::ZERO);
    assert_eq!(ep.associations().count(), 0, "no state before the COOKIE ECHO");
    deliver(
        &mut ep,
        &mut rng,
        Instant::from_millis(10),
        &packet(tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]),
    );
    assert_eq!(replies(&mut ep, Instant::from_millis(10)), [Reply::CookieAck { vtag: PEER_TAG }]);
    assert!(matches!(ep.poll_event(), Some(Event::AssociationUp(_))));
    assert_eq!(ep.associations().count(), 1);
    // A duplicate COOKIE ECHO (5.2.4 case D): COOKIE ACK again, no second association.
    deliver(
        &mut ep,
        &mut rng,
        Instant::from_millis(20),
        &packet(tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]),
    );
    assert_eq!(replies(&mut ep, Instant::from_millis(20)), [Reply::CookieAck { vtag: PEER_TAG }]);
    assert_eq!(ep.poll_event(), None);
    assert_eq!(ep.associations().count(), 1);
}

#[test]
fn forged_stale_and_mistagged_cookies() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _, cookie) = start(&mut ep, &mut rng, Instant::ZERO);
    let mut forged = cookie.clone();
    forged[9] ^= 1;
    deliver(&mut ep, &mut rng, Instant::ZERO, &packet(tag, &[ChunkRepr::CookieEcho { cookie: &forged }]));
    assert_eq!(replies(&mut ep, Instant::ZERO), []);
    assert_eq!(ep.drops().cookie_bad_signature, 1);
    deliver(&mut ep, &mut rng, Instant::ZERO, &packet(tag ^ 1, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(&mut ep, Instant::ZERO), []);
    assert_eq!(ep.drops().bad_vtag, 1);
    // 61 s later the cookie is stale: ERROR "Stale Cookie" to the peer's tag (5.1.5).
    let late = Instant::from_millis(61_000);
    deliver(&mut ep, &mut rng, late, &packet(tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(&mut ep, late), [Reply::Error { vtag: PEER_TAG, causes: vec![3] }]);
    assert_eq!(ep.associations().count(), 0);
}

#[test]
fn cookie_survives_one_secret_rotation() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _, cookie) = start(&mut ep, &mut rng, Instant::from_millis(59_900));
    // The secret rotates at 60 s; the cookie from 59.9 s still opens at 60.5 s.
    let t = Instant::from_millis(60_500);
    deliver(&mut ep, &mut rng, t, &packet(tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(&mut ep, t), [Reply::CookieAck { vtag: PEER_TAG }]);
}

#[test]
fn invalid_inits() {
    let (mut ep, mut rng) = endpoint(true);
    let now = Instant::ZERO;
    // Initiate Tag 0: silently discarded.
    deliver(&mut ep, &mut rng, now, &packet(0, &[init(0)]));
    assert_eq!(replies(&mut ep, now), []);
    // INIT with a non-zero verification tag: discarded.
    deliver(&mut ep, &mut rng, now, &packet(5, &[init(7)]));
    assert_eq!(replies(&mut ep, now), []);
    // INIT bundled with another chunk: discarded.
    deliver(&mut ep, &mut rng, now, &packet_init_bundled());
    assert_eq!(replies(&mut ep, now), []);
    assert_eq!(ep.drops().init_bundled, 1);
    // Zero inbound streams: ABORT "Invalid Mandatory Parameter" to the INIT's tag.
    let bad = ChunkRepr::Init(InitChunk {
        initiate_tag: 77,
        a_rwnd: 1000,
        outbound_streams: 1,
        inbound_streams: 0,
        initial_tsn: Tsn(1),
        params: List::EMPTY,
    });
    deliver(&mut ep, &mut rng, now, &packet(0, &[bad]));
    assert_eq!(replies(&mut ep, now), [Reply::Abort { vtag: 77, t_bit: false, causes: vec![7] }]);
    // A Host Name Address: ABORT "Unresolvable Address".
    let params = [ParamRepr::HostNameAddress(b"example.org\0")];
    let named = ChunkRepr::Init(InitChunk {
        initiate_tag: 78,
        a_rwnd: 1000,
        outbound_streams: 1,
        inbound_streams: 1,
        initial_tsn: Tsn(1),
        params: List::Items(&params),
    });
    deliver(&mut ep, &mut rng, now, &packet(0, &[named]));
    assert_eq!(replies(&mut ep, now), [Reply::Abort { vtag: 78, t_bit: false, causes: vec![5] }]);
    assert_eq!(ep.associations().count(), 0);
}

fn packet_init_bundled() -> Vec<u8> {
    // The builder refuses to bundle an INIT, so write a second packet's chunk after it by hand.
    let mut a = packet(0, &[init(9)]);
    let b = packet(0, &[ChunkRepr::CookieAck]);
    a.extend_from_slice(&b[12..]);
    let mut p = Packet::new_unchecked(&mut a[..]);
    p.fill_checksum();
    a
}

#[test]
fn a_closed_port_answers_init_with_abort() {
    let (mut ep, mut rng) = endpoint(false);
    deliver(&mut ep, &mut rng, Instant::ZERO, &packet(0, &[init(PEER_TAG)]));
    assert_eq!(
        replies(&mut ep, Instant::ZERO),
        [Reply::Abort { vtag: PEER_TAG, t_bit: false, causes: vec![] }]
    );
    let (mut ep, mut rng) = endpoint(true);
    deliver(&mut ep, &mut rng, Instant::ZERO, &packet_ports(PEER_PORT, 4999, 0, &[init(PEER_TAG)]));
    assert_eq!(
        replies(&mut ep, Instant::ZERO),
        [Reply::Abort { vtag: PEER_TAG, t_bit: false, causes: vec![] }]
    );
}

#[test]
fn out_of_the_blue_packets_section_8_4() {
    let (mut ep, mut rng) = endpoint(true);
    let now = Instant::ZERO;
    let sack = ChunkRepr::Sack(bulkhead_sctp::wire::SackChunk {
        cumulative_tsn_ack: Tsn(5),
        a_rwnd: 1000,
        gap_blocks: List::EMPTY,
        duplicate_tsns: List::EMPTY,
    });
    // (8) Anything else: ABORT with the T bit and the packet's tag.
    deliver(&mut ep, &mut rng, now, &packet(1234, &[sack]));
    assert_eq!(replies(&mut ep, now), [Reply::Abort { vtag: 1234, t_bit: true, causes: vec![] }]);
    // (2) An ABORT is not answered, even after other chunks.
    let abort = ChunkRepr::Abort { t_bit: false, causes: List::EMPTY };
    deliver(&mut ep, &mut rng, now, &packet(1234, &[sack, abort]));
    assert_eq!(replies(&mut ep, now), []);
    // (5) SHUTDOWN ACK: SHUTDOWN COMPLETE with the T bit.
    deliver(&mut ep, &mut rng, now, &packet(4321, &[ChunkRepr::ShutdownAck]));
    assert_eq!(replies(&mut ep, now), [Reply::ShutdownComplete { vtag: 4321, t_bit: true }]);
    // (6), (7): SHUTDOWN COMPLETE, COOKIE ACK and a Stale Cookie ERROR are discarded.
    deliver(&mut ep, &mut rng, now, &packet(1, &[ChunkRepr::ShutdownComplete { t_bit: false }]));
    deliver(&mut ep, &mut rng, now, &packet(1, &[ChunkRepr::CookieAck]));
    let stale = [CauseRepr::StaleCookie { staleness_us: 5 }];
    deliver(&mut ep, &mut rng, now, &packet(1, &[ChunkRepr::Error { causes: List::Items(&stale) }]));
    assert_eq!(replies(&mut ep, now), []);
    // (1) Non-unicast addresses are dropped.
    let bytes = packet(1234, &[sack]);
    ep.handle(
        now,
        &mut rng,
        Received { src: Ipv4Addr::BROADCAST, dst: US, transport: Transport::Ip, bytes: &bytes },
    );
    assert_eq!(replies(&mut ep, now), []);
    assert_eq!(ep.drops().non_unicast, 1);
    // A bad checksum is dropped and counted.
    let mut bad = packet(1234, &[sack]);
    let last = bad.len() - 1;
    bad[last] ^= 0xFF;
    deliver(&mut ep, &mut rng, now, &bad);
    assert_eq!(replies(&mut ep, now), []);
    assert_eq!(ep.drops().bad_checksum, 1);
}

#[test]
fn out_of_the_blue_replies_are_rate_limited() {
    let (mut ep, mut rng) = endpoint(true);
    let now = Instant::from_millis(5);
    let mut n = 0;
    for i in 0..1000u32 {
        deliver(&mut ep, &mut rng, now, &packet(i, &[ChunkRepr::ShutdownAck]));
        n += replies(&mut ep, now).len();
    }
    assert_eq!(n, 100);
    assert_eq!(ep.drops().reply_rate_limited, 900);
}

#[test]
fn verification_tags_are_checked_for_an_association() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _) = establish(&mut ep, &mut rng, Instant::ZERO);
    let now = Instant::from_millis(1);
    let data = [0x61u8; 3];
    let chunk = data_chunk(1000, 0, &data);
    deliver(&mut ep, &mut rng, now, &packet(tag ^ 0x100, &[chunk]));
    assert_eq!(ep.drops().bad_vtag, 1);
    assert_eq!(ep.poll_event(), None);
    // An ABORT with the T bit must carry the peer's own tag; with our tag it is ignored.
    deliver(&mut ep, &mut rng, now, &packet(tag, &[ChunkRepr::Abort { t_bit: true, causes: List::EMPTY }]));
    assert_eq!(ep.drops().bad_vtag, 2);
    deliver(&mut ep, &mut rng, now, &packet(tag, &[chunk]));
    assert!(matches!(ep.poll_event(), Some(Event::Message { .. })));
    let causes = [CauseRepr::UserInitiatedAbort { reason: b"bye" }];
    deliver(
        &mut ep,
        &mut rng,
        now,
        &packet(tag, &[ChunkRepr::Abort { t_bit: false, causes: List::Items(&causes) }]),
    );
    assert!(matches!(
        ep.poll_event(),
        Some(Event::AssociationDown(_, DownReason::PeerAborted { cause: Some(12) }))
    ));
    assert_eq!(ep.associations().count(), 0);
}

fn data_chunk(tsn: u32, stream: u16, data: &[u8]) -> ChunkRepr<'_> {
    ChunkRepr::Data(DataChunk {
        unordered: false,
        beginning: true,
        ending: true,
        immediate: false,
        tsn: Tsn(tsn),
        stream_id: stream,
        ssn: Ssn(0),
        ppid: 0,
        user_data: data,
    })
}

#[test]
fn unknown_chunks_and_streams_are_reported() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _) = establish(&mut ep, &mut rng, Instant::ZERO);
    let now = Instant::from_millis(1);
    // Type 0x40 (high bits 01): stop, report. Type 0x80 (10): skip silently.
    let skip = ChunkRepr::Unknown(RawChunk { chunk_type: 0x80, flags: 0, value: b"abcd" });
    let report = ChunkRepr::Unknown(RawChunk { chunk_type: 0x40, flags: 0, value: b"efgh" });
    let data = [1u8];
    deliver(
        &mut ep,
        &mut rng,
        now,
        &packet(tag, &[skip, data_chunk(1000, 0, &data), report, data_chunk(1001, 0, &data)]),
    );
    let later = now + Duration::from_millis(200);
    ep.handle_timeout(later, &mut rng);
    let r = replies(&mut ep, later);
    assert!(r.contains(&Reply::Error { vtag: PEER_TAG, causes: vec![6] }), "{r:?}");
    assert!(
        r.contains(&Reply::Sack { vtag: PEER_TAG, cum: 1000 }),
        "the chunk after the report is not processed: {r:?}"
    );
    // A stream beyond the negotiated count: ERROR "Invalid Stream Identifier", TSN acked.
    deliver(
        &mut ep,
        &mut rng,
        later,
        &packet(tag, &[data_chunk(1001, 9, &data), data_chunk(1002, 0, &data)]),
    );
    let later = later + Duration::from_millis(200);
    ep.handle_timeout(later, &mut rng);
    let r = replies(&mut ep, later);
    assert!(r.contains(&Reply::Error { vtag: PEER_TAG, causes: vec![1] }), "{r:?}");
    assert!(r.contains(&Reply::Sack { vtag: PEER_TAG, cum: 1002 }), "{r:?}");
    // Empty user data: ABORT "No User Data"... as a protocol violation.
    deliver(&mut ep, &mut rng, later, &packet(tag, &[data_chunk(1003, 0, &[])]));
    let r = replies(&mut ep, later);
    assert!(matches!(r.as_slice(), [Reply::Abort { vtag: PEER_TAG, t_bit: false, .. }]), "{r:?}");
}

/// A DATA chunk that arrives after our SHUTDOWN ACK (a late network duplicate or a spurious
/// retransmission) is discarded without a SACK: the peer has already had everything acked and
/// may have sent SHUTDOWN COMPLETE and forgotten the association, so a SACK would reach it out
/// of the blue and draw an ABORT (8.4 rule 8) that ends our graceful shutdown. Found by the
/// lossy simulation (`sim.rs` seed 30 on the `Csprng` link, before that test let stale packets
/// land ahead of its shutdown). The fix: a DATA chunk dropped for the association's state does
/// not count as data received when deciding to SACK (`Association::handle_chunks`).
#[test]
fn late_data_after_our_shutdown_ack_draws_no_sack() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, tsn) = establish(&mut ep, &mut rng, Instant::ZERO);
    let t0 = Instant::from_millis(1_000);
    let data = [1u8];
    deliver(&mut ep, &mut rng, t0, &packet(tag, &[data_chunk(1000, 0, &data)]));
    let shutdown = ChunkRepr::Shutdown { cumulative_tsn_ack: Tsn(tsn.wrapping_sub(1)) };
    deliver(&mut ep, &mut rng, t0, &packet(tag, &[shutdown]));
    let r = replies(&mut ep, t0);
    assert!(r.contains(&Reply::Other { vtag: PEER_TAG, chunk_type: 8 }), "SHUTDOWN ACK: {r:?}");
    let t1 = t0 + Duration::from_millis(5);
    deliver(&mut ep, &mut rng, t1, &packet(tag, &[data_chunk(1000, 0, &data)]));
    assert_eq!(replies(&mut ep, t1), [], "nothing answers a DATA chunk in SHUTDOWN-ACK-SENT");
}

#[test]
fn delayed_sack_waits_200ms_or_a_second_packet() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, _) = establish(&mut ep, &mut rng, Instant::ZERO);
    let t0 = Instant::from_millis(1_000);
    let data = [1u8];
    deliver(&mut ep, &mut rng, t0, &packet(tag, &[data_chunk(1000, 0, &data)]));
    assert_eq!(replies(&mut ep, t0), []);
    assert_eq!(ep.poll_at(), Some(t0 + Duration::from_millis(200)));
    ep.handle_timeout(t0 + Duration::from_millis(200), &mut rng);
    assert_eq!(
        replies(&mut ep, t0 + Duration::from_millis(200)),
        [Reply::Sack { vtag: PEER_TAG, cum: 1000 }]
    );
    let t1 = Instant::from_millis(2_000);
    deliver(&mut ep, &mut rng, t1, &packet(tag, &[data_chunk(1001, 0, &data)]));
    deliver(&mut ep, &mut rng, t1, &packet(tag, &[data_chunk(1002, 0, &data)]));
    assert_eq!(replies(&mut ep, t1), [Reply::Sack { vtag: PEER_TAG, cum: 1002 }]);
    // Out of order: a SACK at once, with the gap.
    deliver(&mut ep, &mut rng, t1, &packet(tag, &[data_chunk(1004, 0, &data)]));
    assert_eq!(replies(&mut ep, t1), [Reply::Sack { vtag: PEER_TAG, cum: 1002 }]);
}

#[test]
fn init_collision_and_restart_between_two_endpoints() {
    // Both sides connect at once (5.2.1): one association each, both up.
    let mut net =
        Net::new(21, Link { loss: 0, dup: 0, reorder: 0 }, (&[A], config(5000)), (&[B], config(5000)));
    let now = net.now;
    let a = net.ep(0).connect(now, &mut Csprng::seed_from_u64(1), &[B], 5000, Transport::Ip).unwrap();
    let b = net.ep(1).connect(now, &mut Csprng::seed_from_u64(2), &[A], 5000, Transport::Ip).unwrap();
    let mut ups = (0, 0);
    for _ in 0..200 {
        net.step(Duration::from_millis(50));
        while let Some(e) = net.ep(0).poll_event() {
            assert_eq!(e, Event::AssociationUp(a));
            ups.0 += 1;
        }
        while let Some(e) = net.ep(1).poll_event() {
            assert_eq!(e, Event::AssociationUp(b));
            ups.1 += 1;
        }
    }
    assert_eq!(ups, (1, 1));
    net.ep(0).send(a, 0, 0, false, b"hello").unwrap();
    let mut got = None;
    for _ in 0..100 {
        net.step(Duration::from_millis(50));
        if let Some(Event::Message { data, .. }) = net.ep(1).poll_event() {
            got = Some(data);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));

    // A restarts (a fresh endpoint on the same address) and connects again (5.2.4 case A).
    let mut rng = Csprng::seed_from_u64(77);
    net.endpoints[0].1 = Endpoint::new(config(5000), &[A], net.now, &mut rng);
    let now = net.now;
    let a2 = net.ep(0).connect(now, &mut rng, &[B], 5000, Transport::Ip).unwrap();
    let (mut restarted, mut up) = (false, false);
    for _ in 0..200 {
        net.step(Duration::from_millis(50));
        while let Some(e) = net.ep(1).poll_event() {
            assert_eq!(e, Event::AssociationRestarted(b));
            restarted = true;
        }
        while let Some(e) = net.ep(0).poll_event() {
            assert_eq!(e, Event::AssociationUp(a2));
            up = true;
        }
    }
    assert!(restarted && up);
    net.ep(0).send(a2, 0, 0, false, b"again").unwrap();
    let mut got = None;
    for _ in 0..100 {
        net.step(Duration::from_millis(50));
        if let Some(Event::Message { data, .. }) = net.ep(1).poll_event() {
            got = Some(data);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"again"[..]));
}

#[test]
fn no_panic_on_any_mutation_of_valid_packets() {
    let (mut ep, mut rng) = endpoint(true);
    let (tag, tsn) = establish(&mut ep, &mut rng, Instant::ZERO);
    let data = [7u8; 40];
    let sack = ChunkRepr::Sack(bulkhead_sctp::wire::SackChunk {
        cumulative_tsn_ack: Tsn(tsn.wrapping_sub(1)),
        a_rwnd: 1000,
        gap_blocks: List::EMPTY,
        duplicate_tsns: List::EMPTY,
    });
    let seeds = [
        packet(tag, &[data_chunk(1000, 0, &data), sack]),
        packet(0, &[init(5)]),
        packet(
            tag,
            &[ChunkRepr::Heartbeat(bulkhead_sctp::wire::HeartbeatChunk { info: b"0123456789abcdefghij" })],
        ),
        packet(tag, &[ChunkRepr::Shutdown { cumulative_tsn_ack: Tsn(tsn) }]),
    ];
    let mut m = Csprng::seed_from_u64(5);
    let mut now = Instant::from_millis(1);
    for seed in &seeds {
        for n in 0..seed.len() {
            deliver(&mut ep, &mut rng, now, &seed[..n]);
        }
        for _ in 0..3000 {
            let mut p = seed.clone();
            for _ in 0..1 + m.next_u32() % 4 {
                let i = (m.next_u32() as usize) % p.len();
                p[i] = m.next_u32() as u8;
            }
            // Keep the checksum valid half of the time so the chunk parsers see the bytes.
            if m.next_u32().is_multiple_of(2) {
                Packet::new_unchecked(&mut p[..]).fill_checksum();
            }
            deliver(&mut ep, &mut rng, now, &p);
            now = now + Duration::from_millis(1);
            if ep.poll_at().is_some_and(|t| t <= now) {
                ep.handle_timeout(now, &mut rng);
            }
            let _ = replies(&mut ep, now);
            while ep.poll_event().is_some() {}
        }
    }
}

#[test]
fn an_init_ack_from_another_peer_address_is_accepted() {
    let (mut ep, mut rng) = endpoint(true);
    let now = Instant::ZERO;
    let id = ep.connect(now, &mut rng, &[PEER], PEER_PORT, Transport::Ip).unwrap();
    let mut buf = [0u8; 1500];
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(t.dst, PEER);
    let p = Packet::new_checked(&buf[..t.len]).unwrap();
    let Ok(ChunkRepr::Init(i)) = ChunkRepr::parse(&p.chunks().next().unwrap().unwrap()) else { panic!() };
    let our_tag = i.initiate_tag;
    // The INIT lists both local addresses.
    let addrs: Vec<_> = i
        .params
        .iter()
        .filter_map(|p| if let ParamRepr::Ipv4Address(a) = p { Some(a) } else { None })
        .collect();
    assert_eq!(addrs, [US, Ipv4Addr::new(198, 51, 100, 1)]);
    let other = Ipv4Addr::new(203, 0, 113, 9);
    let cookie = [1u8; 16];
    let params = [ParamRepr::StateCookie(&cookie)];
    let ack = ChunkRepr::InitAck(InitChunk {
        initiate_tag: PEER_TAG,
        a_rwnd: 10_000,
        outbound_streams: 2,
        inbound_streams: 2,
        initial_tsn: Tsn(1),
        params: List::Items(&params),
    });
    let bytes = packet(our_tag, &[ack]);
    ep.handle(now, &mut rng, Received { src: other, dst: US, transport: Transport::Ip, bytes: &bytes });
    let t = ep.poll_transmit(now, &mut buf).expect("COOKIE ECHO");
    let p = Packet::new_checked(&buf[..t.len]).unwrap();
    assert_eq!(p.verification_tag(), PEER_TAG);
    assert!(matches!(
        ChunkRepr::parse(&p.chunks().next().unwrap().unwrap()),
        Ok(ChunkRepr::CookieEcho { .. })
    ));
    let addrs: Vec<_> = ep.status(id).unwrap().paths.iter().map(|p| p.addr).collect();
    assert_eq!(addrs, [PEER, other]);
}

#[test]
fn init_for_an_established_association_gets_new_tags_and_tie_tags_section_5_2_2() {
    let (mut ep, mut rng) = endpoint(true);
    let (old_tag, _) = establish(&mut ep, &mut rng, Instant::ZERO);
    let now = Instant::from_millis(50);
    const NEW_PEER_TAG: u32 = 0xBEEF_0002;
    deliver(&mut ep, &mut rng, now, &packet(0, &[init(NEW_PEER_TAG)]));
    let (new_tag, cookie) = match replies(&mut ep, now).as_slice() {
        [Reply::InitAck { vtag, tag, cookie, .. }] => {
            assert_eq!(*vtag, NEW_PEER_TAG);
            assert_ne!(*tag, old_tag, "a new tag, not the association's");
            (*tag, cookie.clone())
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(ep.associations().count(), 1);
    // The old association still answers to its old tag until the COOKIE ECHO arrives.
    deliver(&mut ep, &mut rng, now, &packet(new_tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(&mut ep, now), [Reply::CookieAck { vtag: NEW_PEER_TAG }]);
    assert!(matches!(ep.poll_event(), Some(Event::AssociationRestarted(_))));
    // The restarted association uses the new tags: the old one is refused.
    let data = [5u8];
    deliver(&mut ep, &mut rng, now, &packet(old_tag, &[data_chunk(1000, 0, &data)]));
    assert_eq!(ep.poll_event(), None);
    deliver(&mut ep, &mut rng, now, &packet(new_tag, &[data_chunk(1000, 0, &data)]));
    assert!(matches!(ep.poll_event(), Some(Event::Message { .. })));
}

#[test]
fn init_in_cookie_wait_then_cookie_echo_case_b() {
    let (mut ep, mut rng) = endpoint(true);
    let now = Instant::ZERO;
    let id = ep.connect(now, &mut rng, &[PEER], PEER_PORT, Transport::Ip).unwrap();
    let mut buf = [0u8; 1500];
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    let p = Packet::new_checked(&buf[..t.len]).unwrap();
    let Ok(ChunkRepr::Init(i)) = ChunkRepr::parse(&p.chunks().next().unwrap().unwrap()) else { panic!() };
    let (our_tag, our_tsn) = (i.initiate_tag, i.initial_tsn.0);
    // Our INIT is lost; the peer's INIT arrives (5.2.1): the INIT ACK repeats our tag and TSN.
    deliver(&mut ep, &mut rng, now, &packet(0, &[init(PEER_TAG)]));
    let cookie = match replies(&mut ep, now).as_slice() {
        [Reply::InitAck { vtag: PEER_TAG, tag, tsn, cookie, .. }] => {
            assert_eq!((*tag, *tsn), (our_tag, our_tsn));
            cookie.clone()
        }
        other => panic!("{other:?}"),
    };
    // Its COOKIE ECHO matches our tag but not the (unknown) peer tag: case B, established.
    deliver(&mut ep, &mut rng, now, &packet(our_tag, &[ChunkRepr::CookieEcho { cookie: &cookie }]));
    assert_eq!(replies(&mut ep, now), [Reply::CookieAck { vtag: PEER_TAG }]);
    assert_eq!(ep.poll_event(), Some(Event::AssociationUp(id)));
    assert_eq!(ep.associations().count(), 1);
    assert_eq!(ep.status(id).unwrap().state, bulkhead_sctp::association::State::Established);
}

#[test]
fn packets_for_other_addresses_and_bad_configs_are_refused() {
    let (mut ep, mut rng) = endpoint(true);
    let bytes = packet(0, &[init(PEER_TAG)]);
    let elsewhere = Ipv4Addr::new(192, 0, 2, 77);
    ep.handle(
        Instant::ZERO,
        &mut rng,
        Received { src: PEER, dst: elsewhere, transport: Transport::Ip, bytes: &bytes },
    );
    assert_eq!(replies(&mut ep, Instant::ZERO), []);
    assert_eq!(ep.drops().not_local, 1);

    use bulkhead_sctp::endpoint::ConfigError;
    let good = Config::new(PORT, footprint);
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(Config { inbound_streams: 0, ..good }.validate(), Err(ConfigError::ZeroStreams));
    assert_eq!(Config { mtu: 100, ..good }.validate(), Err(ConfigError::MtuTooSmall(100)));
    assert!(matches!(
        Config { receive_limit: 1000, ..good }.validate(),
        Err(ConfigError::LimitTooSmall { .. })
    ));
    let mut bad_rto = good;
    bad_rto.rto.min = Duration::from_secs(100);
    assert_eq!(bad_rto.validate(), Err(ConfigError::RtoOrder));
}
