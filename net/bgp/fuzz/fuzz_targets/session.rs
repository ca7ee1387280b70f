//! Any bytes as what a peer sends on an incoming connection: the session must never panic,
//! and its output and buffered input must stay within their bounds.
#![no_main]

use bulkhead_base::time::{Duration, Instant};
use bulkhead_bgp::neighbor::{ConnId, Direction, Neighbor, NeighborConfig, CONTROL_HEADROOM};
use bulkhead_bgp::packet::message::EXTENDED_MAX_LEN;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else { return };
    let peer_as = if mode & 1 != 0 { 65002 } else { 4_200_000_001 };
    let mut cfg = NeighborConfig::new(65001, peer_as, Ipv4Addr::new(10, 0, 0, 1));
    cfg.passive = true;
    cfg.output_limit = 4096;
    let mut n = Neighbor::new(cfg);
    let conn = ConnId(1);
    let mut now = Instant::ZERO;
    n.start(now);
    n.tcp_connected(now, conn, Direction::Incoming);
    // Chunks of 1..=64 octets, time moving 0..=63 s between them; the output is written
    // only when the mode says so.
    let mut rest = stream;
    let mut step = 0usize;
    while !rest.is_empty() {
        let len = 1 + (rest[0] as usize % 64);
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        n.tcp_received(now, conn, chunk);
        now = now + Duration::from_secs(u64::from(chunk[0] % 64));
        n.poll(now);
        if mode & 2 != 0 {
            let pending = n.pending_output(conn).len();
            n.output_written(now, conn, pending);
        }
        assert!(n.pending_output(conn).len() <= 4096 + CONTROL_HEADROOM + EXTENDED_MAX_LEN);
        while n.pop_action().is_some() {}
        step += 1;
        if step > 10_000 {
            break;
        }
    }
});
