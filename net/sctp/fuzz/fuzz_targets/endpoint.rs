//! Drives an endpoint with an established association through a sequence of arbitrary
//! packets, timeouts and application calls. Nothing may panic, and the true bytes held must
//! stay within the configured limits.
//!
//! Input: records of `[op: u8][len: u8][bytes: len]`. `op` bit 0: put the association's
//! verification tag in the packet; bit 1: fill a correct CRC32c; bits 2-4: advance the clock
//! by 2^k ms first; bit 5: also send a message (a part of one when the length has bit 3 set,
//! the last part when it has bit 4); bit 6: read one message; bit 7: deliver from
//! the peer's second address. A record that advances the clock by 128 ms also hands its bytes
//! to the endpoint as the quote of an ICMP error (fragmentation needed, with the MTU from
//! bytes 12..14; protocol unreachable when its length is 1 mod 16).
#![no_main]

use std::net::Ipv4Addr;

use bulkhead_base::rand_core::{impls, RngCore};
use bulkhead_base::time::{Duration, Instant};
use bulkhead_sctp::endpoint::{Config, Endpoint, Event, IcmpError, IcmpKind, Received, Transport};
use bulkhead_sctp::wire::Packet;
use libfuzzer_sys::fuzz_target;

struct Rng(u64);
impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        impls::fill_bytes_via_next(self, dst)
    }
}

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const A2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn footprint(n: usize) -> usize {
    n.next_multiple_of(16) + 16
}

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut now = Instant::from_millis(1);
    let mut cfg = Config::new(5000, footprint);
    cfg.send_limit = 16 * 1024;
    cfg.receive_limit = 16 * 1024;
    let mut a = Endpoint::new(cfg, &[A, A2], now, &mut rng);
    let mut b = Endpoint::new(cfg, &[B], now, &mut rng);
    let Ok(assoc) = a.connect(now, &mut rng, &[B], 5000, Transport::Ip) else { return };
    // The handshake, directly between the two endpoints.
    let mut buf = [0u8; 1500];
    for _ in 0..4 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            b.handle(now, &mut rng, Received { src: t.src, dst: t.dst, transport: t.transport, bytes: &buf[..t.len] });
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            a.handle(now, &mut rng, Received { src: t.src, dst: t.dst, transport: t.transport, bytes: &buf[..t.len] });
        }
    }
    let Some(b_assoc) = b.associations().next() else { return };
    while b.poll_event().is_some() {}
    // B's tag is what A puts in its packets: learn it from A's next packet.
    let _ = a.send(assoc, 0, 1, false, b"x");
    let Some(t) = a.poll_transmit(now, &mut buf) else { return };
    let Ok(p) = Packet::new_checked(&buf[..t.len]) else { return };
    let b_tag = p.verification_tag();

    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        now = now + Duration::from_millis(1 << ((op >> 2) & 7));
        let mut bytes = bytes.to_vec();
        if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
            if op & 1 != 0 {
                p.set_verification_tag(b_tag);
            }
            if op & 2 != 0 {
                p.fill_checksum();
            }
        }
        let src = if op & 0x80 != 0 { A2 } else { A };
        b.handle(now, &mut rng, Received { src, dst: B, transport: Transport::Ip, bytes: &bytes });
        if (op >> 2) & 7 == 7 {
            let kind = match bytes.get(12..14) {
                _ if len % 16 == 1 => IcmpKind::ProtocolUnreachable,
                Some(m) => IcmpKind::FragmentationNeeded { mtu: u16::from_be_bytes([m[0], m[1]]) },
                None => IcmpKind::FragmentationNeeded { mtu: 0 },
            };
            let ip_len = 20 + bytes.len() as u16;
            b.handle_icmp(now, IcmpError { src: B, dst: src, ip_len, kind, sctp: &bytes });
        }
        if op & 0x20 != 0 {
            if len & 8 != 0 {
                // A part of a message (an echo of one received in pieces).
                let _ = b.send_part(b_assoc, (len & 3) as u16, 0, len & 4 != 0, &bytes, len & 16 != 0);
            } else {
                let _ = b.send(b_assoc, (len & 3) as u16, 0, len & 4 != 0, &bytes);
            }
        }
        if op & 0x40 != 0 {
            if let Some(Event::Message { data, .. }) = b.recv(b_assoc) {
                assert!(!data.is_empty());
            }
        }
        if b.poll_at().is_some_and(|t| t <= now) {
            b.handle_timeout(now, &mut rng);
        }
        while b.poll_transmit(now, &mut buf).is_some() {}
        while b.poll_event().is_some() {}
        if let Some(s) = b.status(b_assoc) {
            assert!(s.bytes.send + s.bytes.in_flight <= cfg.send_limit);
            assert!(s.bytes.reassembly + s.bytes.delivery <= 2 * cfg.receive_limit);
        }
    }
});
