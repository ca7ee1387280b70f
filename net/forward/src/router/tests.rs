//! Byte-vector tests of the forwarding core: frames built by hand, checksums checked by an
//! independent implementation.

extern crate std;

use super::*;
use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use std::vec::Vec;

const R0: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 0];
const R1: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];
const H0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const H1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const SECOND: u64 = 1_000_000;

fn at(micros: u64) -> Instant {
    Instant::from_micros(micros)
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

#[derive(Default)]
struct Recorder(Vec<(u8, Vec<u8>)>);

impl Sink for Recorder {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
        self.0.push((iface, frame.to_vec()));
        Ok(())
    }

    fn admit(&mut self, _bytes: usize) -> bool {
        true
    }
}

fn forwarder(icmp_rate: u32) -> Forwarder {
    let mut f = Forwarder::new(Settings {
        flow_capacity: 1000,
        flow_timeouts: FlowTimeouts::default(),
        icmp_rate,
        route_limits: [16, 16, 4],
    });
    f.set_interface(0, Interface { mac: R0, address: Some((ip(192, 0, 2, 1), 24)), mtu: 1500 }).unwrap();
    f.set_interface(1, Interface { mac: R1, address: Some((ip(198, 51, 100, 1), 24)), mtu: 1500 }).unwrap();
    f.add_route(
        Prefix::new(ip(10, 20, 0, 0), 16).unwrap(),
        ip(198, 51, 100, 2),
        RouteSource::Static,
        &mut |_| true,
    )
    .unwrap();
    f
}

/// The one's-complement sum, written independently of the code under test.
fn sum16(data: &[u8]) -> u16 {
    let mut sum = 0u64;
    for (i, b) in data.iter().enumerate() {
        sum += if i % 2 == 0 { u64::from(*b) << 8 } else { u64::from(*b) };
    }
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 (+ options) + payload, with a correct header checksum.
fn packet(src: u32, dst: u32, ttl: u8, protocol: u8, flags: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + options.len();
    let mut f = Vec::new();
    f.extend_from_slice(&R0);
    f.extend_from_slice(&H0);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (ihl + payload.len()) as u16;
    f.push(0x40 | (ihl / 4) as u8);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34]);
    f.extend_from_slice(&flags.to_be_bytes());
    f.push(ttl);
    f.push(protocol);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&src.to_be_bytes());
    f.extend_from_slice(&dst.to_be_bytes());
    f.extend_from_slice(options);
    let c = sum16(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn udp(src: u32, dst: u32, ttl: u8) -> Vec<u8> {
    packet(src, dst, ttl, 17, 0, &[], &[0x13, 0x88, 0x02, 0x02, 0, 12, 0, 0, b'h', b'i', b'!', b'!'])
}

fn arp_reply(sender_mac: [u8; 6], sender_ip: u32, target_mac: [u8; 6], target_ip: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.to_be_bytes());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target_ip.to_be_bytes());
    f
}

fn resolved(f: &mut Forwarder, sink: &mut Recorder) {
    f.handle_arp(at(0), 1, &arp_reply(H1, ip(198, 51, 100, 2), R1, ip(198, 51, 100, 1)), sink);
}

#[test]
fn forwards_after_arp_with_ttl_and_checksum_updated() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    let mut frame = udp(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64);
    f.handle(at(0), 0, &mut frame.clone(), &mut sink);
    assert_eq!(sink.0.len(), 1, "an ARP request, the packet waits");
    let (iface, arp) = &sink.0[0];
    assert_eq!(*iface, 1);
    assert_eq!(&arp[0..6], &[0xff; 6]);
    assert_eq!(&arp[12..14], &[0x08, 0x06]);
    assert_eq!(&arp[20..22], &[0, 1], "a request");
    assert_eq!(&arp[28..32], &ip(198, 51, 100, 1).to_be_bytes(), "from our address on nic1");
    assert_eq!(&arp[38..42], &ip(198, 51, 100, 2).to_be_bytes());
    resolved(&mut f, &mut sink);
    assert_eq!(sink.0.len(), 2, "the waiting packet went out on the reply");
    f.handle(at(1), 0, &mut frame, &mut sink);
    for (iface, out) in &sink.0[1..] {
        assert_eq!(*iface, 1);
        assert_eq!(&out[0..6], &H1);
        assert_eq!(&out[6..12], &R1);
        assert_eq!(out[22], 63, "TTL decremented");
        assert_eq!(sum16(&out[14..34]), 0, "header checksum valid after the incremental update");
        assert_eq!(&out[34..], &frame[34..], "payload untouched");
    }
    assert_eq!(f.counters(0).forwarded_packets, 2);
    assert_eq!(f.flows().len(), 1);
}

#[test]
fn static_route_resolves_its_gateway() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    f.handle(at(0), 0, &mut udp(ip(192, 0, 2, 2), ip(10, 20, 5, 5), 64), &mut sink);
    assert_eq!(&sink.0[0].1[38..42], &ip(198, 51, 100, 2).to_be_bytes(), "ARP for the gateway");
}

/// The ICMP error in `frame`: (type, code, bytes 4..8, quoted datagram).
fn icmp_error(frame: &[u8]) -> (u8, u8, [u8; 4], Vec<u8>) {
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    assert_eq!(sum16(&frame[14..34]), 0, "IP checksum");
    assert_eq!(frame[23], 1, "ICMP");
    let icmp = &frame[34..];
    assert_eq!(sum16(icmp), 0, "ICMP checksum");
    (icmp[0], icmp[1], [icmp[4], icmp[5], icmp[6], icmp[7]], icmp[8..].to_vec())
}

#[test]
fn ttl_expiry_is_answered_with_time_exceeded_from_the_ingress_address() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    let frame = udp(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 1);
    f.handle(at(0), 0, &mut frame.clone(), &mut sink);
    assert_eq!(sink.0.len(), 1);
    let (iface, out) = &sink.0[0];
    assert_eq!(*iface, 0);
    assert_eq!(&out[0..6], &H0, "back to the previous hop");
    assert_eq!(&out[26..30], &ip(192, 0, 2, 1).to_be_bytes());
    assert_eq!(&out[30..34], &ip(192, 0, 2, 2).to_be_bytes());
    let (t, code, _, quoted) = icmp_error(out);
    assert_eq!((t, code), (11, 0));
    assert_eq!(quoted, frame[14..14 + 28].to_vec(), "the header and 8 bytes of payload");
    assert_eq!(f.counters(0).drops(DropReason::TtlExpired), 1);
}

#[test]
fn no_route_is_net_unreachable() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    f.handle(at(0), 0, &mut udp(ip(192, 0, 2, 2), ip(172, 31, 0, 1), 64), &mut sink);
    let (t, code, _, _) = icmp_error(&sink.0[0].1);
    assert_eq!((t, code), (3, 0));
    assert_eq!(f.counters(0).drops(DropReason::NoRoute), 1);
}

#[test]
fn too_big_with_df_gets_fragmentation_needed_without_df_a_counted_drop() {
    let mut f = forwarder(100);
    f.set_interface(1, Interface { mac: R1, address: Some((ip(198, 51, 100, 1), 24)), mtu: 576 }).unwrap();
    let mut sink = Recorder::default();
    let payload = [0u8; 1000];
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0x4000, &[], &payload),
        &mut sink,
    );
    let (t, code, rest, _) = icmp_error(&sink.0[0].1);
    assert_eq!((t, code), (3, 4));
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 576, "the next-hop MTU");
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0, &[], &payload),
        &mut sink,
    );
    assert_eq!(sink.0.len(), 1, "no ICMP for a fragmentable packet: it is dropped");
    assert_eq!(f.counters(0).drops(DropReason::TooBig), 2);
}

#[test]
fn bad_headers_are_dropped_by_reason_and_never_answered() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    let good = udp(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    let mut v = good.clone();
    v[14] = 0x65;
    cases.push((v, DropReason::BadVersion));
    let mut v = good.clone();
    v[14] = 0x44;
    cases.push((v, DropReason::BadIhl));
    let mut v = good.clone();
    v[16..18].copy_from_slice(&19u16.to_be_bytes());
    cases.push((v, DropReason::BadTotalLength));
    let mut v = good.clone();
    v[16..18].copy_from_slice(&2000u16.to_be_bytes());
    cases.push((v, DropReason::Truncated));
    let mut v = good.clone();
    v[24] ^= 0xff;
    cases.push((v, DropReason::BadChecksum));
    cases.push((good[..30].to_vec(), DropReason::Truncated));
    cases.push((udp(ip(127, 0, 0, 1), ip(198, 51, 100, 2), 64), DropReason::Martian));
    cases.push((udp(ip(192, 0, 2, 2), ip(0, 1, 2, 3), 64), DropReason::Martian));
    for (frame, reason) in cases {
        let before = f.counters(0).drops(reason);
        f.handle(at(0), 0, &mut frame.clone(), &mut sink);
        assert_eq!(f.counters(0).drops(reason), before + 1, "{reason:?}");
    }
    assert!(sink.0.is_empty(), "nothing sent for malformed input");
}

#[test]
fn options_and_fragments_are_forwarded_as_they_are() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    resolved(&mut f, &mut sink);
    let options = [0x01, 0x01, 0x01, 0x00]; // NOP, NOP, NOP, EOL
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0, &options, &[0; 16]),
        &mut sink,
    );
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0x2000, &[], &[0; 16]),
        &mut sink,
    );
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0x0003, &[], &[0; 16]),
        &mut sink,
    );
    assert_eq!(sink.0.len(), 3);
    for (_, out) in &sink.0 {
        let ihl = usize::from(out[14] & 0x0f) * 4;
        assert_eq!(sum16(&out[14..14 + ihl]), 0);
    }
}

#[test]
fn no_icmp_error_about_an_icmp_error_or_a_non_first_fragment() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    let time_exceeded = [11, 0, 0, 0, 0, 0, 0, 0];
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 1, 1, 0, &[], &time_exceeded),
        &mut sink,
    );
    f.handle(
        at(0),
        0,
        &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 1, 17, 0x0010, &[], &[0; 8]),
        &mut sink,
    );
    assert!(sink.0.is_empty());
    let echo = [8, 0, 0, 0, 0, 1, 0, 1];
    f.handle(at(0), 0, &mut packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 1, 1, 0, &[], &echo), &mut sink);
    assert_eq!(sink.0.len(), 1, "an echo request is answered");
    assert_eq!(f.counters(0).drops(DropReason::TtlExpired), 3);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut f = forwarder(10);
    let mut sink = Recorder::default();
    for _ in 0..100 {
        f.handle(at(0), 0, &mut udp(ip(192, 0, 2, 2), ip(172, 31, 0, 1), 64), &mut sink);
    }
    assert_eq!(sink.0.len(), 10, "a burst of one second's worth");
    assert_eq!(f.counters(0).icmp_errors_rate_limited, 90);
    f.handle(at(SECOND / 2), 0, &mut udp(ip(192, 0, 2, 2), ip(172, 31, 0, 1), 64), &mut sink);
    assert_eq!(sink.0.len(), 11, "five tokens back after half a second");
}

#[test]
fn pending_queue_is_bounded_and_a_silent_neighbour_gets_host_unreachable() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    for _ in 0..10 {
        f.handle(at(0), 0, &mut udp(ip(192, 0, 2, 2), ip(198, 51, 100, 9), 64), &mut sink);
    }
    assert_eq!(f.counters(0).drops(DropReason::NeighbourQueueFull), 6);
    for s in 1..=3 {
        f.poll(at(s * SECOND), &mut sink);
    }
    let arp_requests = sink.0.iter().filter(|(_, fr)| fr[12..14] == [0x08, 0x06]).count();
    assert_eq!(arp_requests, 3, "one request and two retries");
    let unreachable: Vec<_> = sink.0.iter().filter(|(_, fr)| fr[12..14] == [0x08, 0x00]).collect();
    assert_eq!(unreachable.len(), 4, "one per queued packet");
    for (iface, fr) in unreachable {
        assert_eq!(*iface, 0);
        let (t, code, _, quoted) = icmp_error(fr);
        assert_eq!((t, code), (3, 1));
        assert_eq!(quoted[8], 64, "the quoted header is the one the sender sent");
    }
    assert_eq!(f.counters(0).drops(DropReason::NeighbourUnreachable), 4);
}

#[test]
fn no_panic_on_any_bytes() {
    let mut f = forwarder(1000);
    let mut sink = Recorder::default();
    resolved(&mut f, &mut sink);
    let mut rng = Csprng::seed_from_u64(1);
    let mut next = move || rng.next_u64();
    let good = udp(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64);
    for round in 0..50_000u64 {
        let mut frame = if round % 2 == 0 {
            let len = (next() % 80) as usize;
            (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
        } else {
            let mut v = good.clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % v.len();
                v[at] = next() as u8;
            }
            v.truncate((next() as usize) % (v.len() + 1));
            v
        };
        f.handle(at(round), (next() % 5) as u8, &mut frame, &mut sink);
        f.handle_arp(at(round), (next() % 5) as u8, &frame, &mut sink);
        if round % 1000 == 0 {
            f.poll(at(round * 1000), &mut sink);
            sink.0.clear();
        }
    }
}

#[test]
fn a_refused_admission_drops_instead_of_queueing() {
    struct Refusing(Recorder);
    impl Sink for Refusing {
        fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
            self.0.transmit(iface, frame)
        }
        fn admit(&mut self, _bytes: usize) -> bool {
            false
        }
    }
    let mut f = Forwarder::new(Settings {
        flow_capacity: 100,
        flow_timeouts: FlowTimeouts::default(),
        icmp_rate: 0,
        route_limits: [16, 16, 16],
    });
    f.set_interface(0, Interface { mac: R0, address: Some((ip(192, 0, 2, 1), 24)), mtu: 1500 }).unwrap();
    f.set_interface(1, Interface { mac: R1, address: Some((ip(198, 51, 100, 1), 24)), mtu: 1500 }).unwrap();
    let mut sink = Refusing(Recorder::default());
    f.handle(at(0), 0, &mut udp(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64), &mut sink);
    assert_eq!(f.counters(0).drops(DropReason::OverQuota), 1);
    assert_eq!(sink.0 .0.len(), 1, "the ARP request still goes out");
    let refused = f.add_route(
        Prefix::new(ip(10, 0, 0, 0), 8).unwrap(),
        ip(192, 0, 2, 2),
        RouteSource::Static,
        &mut |_| false,
    );
    assert_eq!(refused, Err(RouteError::OverQuota));
    assert_eq!(f.source_counters()[RouteSource::Static.index()].refused_memory, 1);
}

fn arp_request(sender_mac: [u8; 6], sender_ip: u32, target_ip: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.to_be_bytes());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip.to_be_bytes());
    f
}

#[test]
fn answers_arp_for_the_ingress_address_only() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    f.handle_arp(at(0), 0, &arp_request(H0, ip(192, 0, 2, 2), ip(192, 0, 2, 1)), &mut sink);
    assert_eq!(sink.0.len(), 1);
    let (iface, reply) = &sink.0[0];
    assert_eq!(*iface, 0);
    assert_eq!(&reply[0..6], &H0, "unicast back to the asker");
    assert_eq!(&reply[6..12], &R0);
    assert_eq!(&reply[20..22], &[0, 2], "a reply");
    assert_eq!(&reply[22..28], &R0, "our MAC is the answer");
    assert_eq!(&reply[28..32], &ip(192, 0, 2, 1).to_be_bytes());
    assert_eq!(&reply[32..38], &H0);
    assert_eq!(&reply[38..42], &ip(192, 0, 2, 2).to_be_bytes());
    // nic1's address asked on nic0, another host's address, a truncated frame: no answer.
    f.handle_arp(at(0), 0, &arp_request(H0, ip(192, 0, 2, 2), ip(198, 51, 100, 1)), &mut sink);
    f.handle_arp(at(0), 0, &arp_request(H0, ip(192, 0, 2, 2), ip(192, 0, 2, 9)), &mut sink);
    f.handle_arp(at(0), 0, &arp_request(H0, ip(192, 0, 2, 2), ip(192, 0, 2, 1))[..30], &mut sink);
    assert_eq!(sink.0.len(), 1);
    assert_eq!(f.arp_replies(), 1);
}

#[test]
fn local_packets_go_out_through_the_fib_and_wait_for_arp() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    // From nic0's address to a host behind the static route's gateway on nic1.
    let frame = udp(ip(192, 0, 2, 1), ip(10, 20, 5, 5), 64);
    f.send_local(at(0), &frame[14..], &mut sink);
    assert_eq!(sink.0.len(), 1, "ARP for the gateway first");
    assert_eq!(&sink.0[0].1[38..42], &ip(198, 51, 100, 2).to_be_bytes());
    assert_eq!(f.local_counters().queued, 1);
    resolved(&mut f, &mut sink);
    assert_eq!(sink.0.len(), 2);
    let (iface, out) = &sink.0[1];
    assert_eq!(*iface, 1);
    assert_eq!(&out[0..6], &H1);
    assert_eq!(&out[6..12], &R1);
    assert_eq!(out[22], 64, "a local packet keeps its TTL");
    assert_eq!(&out[14..], &frame[14..]);
    assert_eq!(f.local_counters().sent, 1);
    assert_eq!(f.counters(1).forwarded_packets, 0, "not counted as forwarded");
    f.send_local(at(0), &udp(ip(192, 0, 2, 1), ip(203, 0, 113, 9), 64)[14..], &mut sink);
    f.send_local(at(0), &[0x45, 0, 0], &mut sink);
    assert_eq!(f.local_counters().no_route, 1);
    assert_eq!(f.local_counters().malformed, 1);
}

#[test]
fn route_sources_rank_limit_and_withdraw() {
    let mut f = forwarder(100);
    let p = |a, len| Prefix::new(a, len).unwrap();
    // A BGP route for a connected subnet or a static prefix is shadowed.
    assert_eq!(
        f.add_route(p(ip(198, 51, 100, 0), 24), ip(192, 0, 2, 2), RouteSource::Bgp, &mut |_| true),
        Err(RouteError::Shadowed { by: RouteSource::Connected })
    );
    assert_eq!(
        f.add_route(p(ip(10, 20, 0, 0), 16), ip(192, 0, 2, 2), RouteSource::Bgp, &mut |_| true),
        Err(RouteError::Shadowed { by: RouteSource::Static })
    );
    // A multihop next hop resolves through the static route to its gateway.
    f.add_route(p(ip(172, 16, 0, 0), 12), ip(10, 20, 1, 1), RouteSource::Bgp, &mut |_| true).unwrap();
    let (id, _) = f.fib().lookup(ip(172, 16, 3, 3)).unwrap();
    assert_eq!(
        f.route(id),
        Some(Route {
            next_hop: NextHop::Via { gateway: ip(198, 51, 100, 2), iface: 1 },
            source: RouteSource::Bgp
        })
    );
    // The limit of 4 BGP routes; replacing one's own route does not count twice.
    for i in 1..4u32 {
        f.add_route(p(ip(100, i as u8, 0, 0), 16), ip(192, 0, 2, 2), RouteSource::Bgp, &mut |_| true)
            .unwrap();
    }
    f.add_route(p(ip(100, 1, 0, 0), 16), ip(192, 0, 2, 3), RouteSource::Bgp, &mut |_| true).unwrap();
    assert_eq!(
        f.add_route(p(ip(100, 9, 0, 0), 16), ip(192, 0, 2, 2), RouteSource::Bgp, &mut |_| true),
        Err(RouteError::LimitReached(RouteSource::Bgp))
    );
    let bgp = f.source_counters()[RouteSource::Bgp.index()];
    assert_eq!((bgp.routes, bgp.limit, bgp.refused_limit, bgp.shadowed), (4, 4, 1, 2));
    // A static route replaces nothing of BGP's here, but a BGP withdraw cannot remove it.
    assert!(!f.remove_route(p(ip(10, 20, 0, 0), 16), RouteSource::Bgp));
    assert!(f.remove_route(p(ip(100, 2, 0, 0), 16), RouteSource::Bgp));
    assert_eq!(f.withdraw_source(RouteSource::Bgp), 3);
    assert_eq!(f.source_counters()[RouteSource::Bgp.index()].routes, 0);
    assert_eq!(f.fib().len(), 3, "connected, connected, static");
    assert!(f.fib().lookup(ip(172, 16, 3, 3)).is_none());
    // An unreachable gateway is refused and counted.
    assert_eq!(
        f.add_route(p(ip(100, 9, 0, 0), 16), ip(203, 0, 113, 1), RouteSource::Bgp, &mut |_| true),
        Err(RouteError::GatewayNotConnected)
    );
}

#[test]
fn a_first_fragment_with_a_cut_transport_header_is_a_counted_drop() {
    let mut f = forwarder(100);
    let mut sink = Recorder::default();
    resolved(&mut f, &mut sink);
    let sent = sink.0.len();
    // UDP with 4 bytes of header: the ports are there, the length field is not.
    let mut short_udp =
        packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0, &[], &[0x13, 0x88, 0x02, 0x02]);
    f.handle(at(0), 0, &mut short_udp, &mut sink);
    // TCP with 12 bytes: not a header.
    let mut short_tcp = packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 6, 0, &[], &[0; 12]);
    f.handle(at(0), 0, &mut short_tcp, &mut sink);
    assert_eq!(f.counters(0).drops(DropReason::L4Truncated), 2);
    assert_eq!(sink.0.len(), sent, "neither forwarded");
    assert_eq!(f.flows().len(), 0, "no flow keyed on ports read as zero");
    // A later fragment carries no transport header at all: forwarded as it is.
    let mut later = packet(ip(192, 0, 2, 2), ip(198, 51, 100, 2), 64, 17, 0x0010, &[], &[1, 2, 3, 4]);
    f.handle(at(0), 0, &mut later, &mut sink);
    assert_eq!(sink.0.len(), sent + 1);
}
