//! Two endpoints over a simulated network: seeded (`Csprng`) loss, reordering (random delay)
//! and duplication. Every message must arrive exactly once, and in order on ordered streams.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::Duration;
use bulkhead_sctp::endpoint::{DownReason, Event, SendError, Transport};
use common::*;

/// Run one seed: `messages` messages on 4 streams (stream 3 unordered) from A to B.
fn run_seed(seed: u64, messages: u32, link: Link) -> (u64, u64, u64) {
    let mut net = Net::new(seed, link, (&[A], config(5000)), (&[B], config(5000)));
    let transport = if seed.is_multiple_of(2) { Transport::Ip } else { Transport::Udp { peer_port: 9899 } };
    let (a, _b) = connect(&mut net, transport, &[B]);
    let mut rng = Csprng::seed_from_u64(seed ^ 0xABCD);
    let mut next_seq = [0u32; 4];
    let mut sent = 0u32;
    let mut got: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    let mut received = 0u32;
    let mut steps = 0u64;
    while received < messages {
        steps += 1;
        assert!(steps < 400_000, "seed {seed}: stuck at {received}/{messages}: {:?}", net.ep(0).status(a));
        while sent < messages {
            let stream = (rng.next_u32() % 4) as u16;
            let len = 1 + (rng.next_u32() % 3000) as usize;
            let unordered = stream == 3;
            match net.ep(0).send(a, stream, 42, unordered, &payload(stream, next_seq[stream as usize], len)) {
                Ok(()) => {
                    next_seq[stream as usize] += 1;
                    sent += 1;
                }
                Err(SendError::Full) => break,
                Err(e) => panic!("seed {seed}: send: {e:?}"),
            }
        }
        net.step(Duration::from_millis(100));
        let (tx, rx) = (net.ep(0).queue_bytes(), net.ep(1).queue_bytes());
        assert!(tx.send + tx.in_flight <= 64 * 1024, "seed {seed}: sender over its limit: {tx:?}");
        assert!(rx.reassembly + rx.delivery <= 2 * 64 * 1024, "seed {seed}: receiver over its bound");
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::Message { stream, data, unordered, ppid, .. } = e {
                assert_eq!(ppid, 42);
                assert_eq!(unordered, stream == 3);
                let s = u16::from_be_bytes([data[0], data[1]]);
                let seq = u32::from_be_bytes([data[2], data[3], data[4], data[5]]);
                assert_eq!(s, stream);
                assert_eq!(data, payload(s, seq, data.len()), "seed {seed}: corrupted message");
                got.entry(stream).or_default().push(seq);
                received += 1;
            }
        }
        while net.ep(0).poll_event().is_some() {}
    }
    for (stream, seqs) in &got {
        if *stream == 3 {
            let set: BTreeSet<u32> = seqs.iter().copied().collect();
            assert_eq!(set.len(), seqs.len(), "seed {seed}: duplicate unordered message");
            assert_eq!(set, (0..next_seq[3]).collect(), "seed {seed}: unordered set");
        } else {
            assert_eq!(
                *seqs,
                (0..next_seq[*stream as usize]).collect::<Vec<_>>(),
                "seed {seed}: stream {stream}"
            );
        }
    }
    // Everything acknowledged: the sender's queues drain to zero.
    for _ in 0..2_000 {
        if net.ep(0).queue_bytes().in_flight == 0 {
            break;
        }
        net.step(Duration::from_millis(100));
    }
    // The packets still in the network land before the shutdown starts. A stale duplicate that
    // reached A after it closed would rightly draw an ABORT (8.4, rule 8), and B, its SHUTDOWN
    // COMPLETE lost, would end aborted (seed 816 of an earlier, undrained version); that is the
    // protocol working, not what this check is about. With nothing stale in flight, a graceful
    // shutdown ends gracefully on both sides whatever the link loses, duplicates or reorders.
    for _ in 0..100 {
        if net.queue.is_empty() {
            break;
        }
        net.step(Duration::from_millis(100));
    }
    let q = net.ep(0).queue_bytes();
    assert_eq!((q.send, q.in_flight), (0, 0), "seed {seed}");
    let q = net.ep(1).queue_bytes();
    assert_eq!((q.reassembly, q.delivery), (0, 0), "seed {seed}");
    let counters = net.ep(0).status(a).expect("association").counters;
    let dups = net.ep(1).drops().duplicate_data;
    // And a graceful shutdown.
    let now = net.now;
    net.ep(0).shutdown(now, a);
    let mut down = (false, false);
    for _ in 0..5_000 {
        net.step(Duration::from_millis(100));
        while let Some(e) = net.ep(0).poll_event() {
            if let Event::AssociationDown(_, r) = e {
                assert_eq!(r, DownReason::Shutdown, "seed {seed}");
                down.0 = true;
            }
        }
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::AssociationDown(_, r) = e {
                assert!(
                    matches!(r, DownReason::Shutdown | DownReason::RetransmitLimit),
                    "seed {seed}: {r:?}"
                );
                down.1 = true;
            }
        }
        if down.0 && down.1 {
            break;
        }
    }
    assert!(down.0, "seed {seed}: shutdown did not complete");
    assert_eq!(net.ep(0).associations().count(), 0, "seed {seed}: closed associations are forgotten");
    (counters.retransmissions, counters.fast_retransmits, dups)
}

#[test]
fn clean_network_delivers_everything() {
    let (r, _, d) = run_seed(1, 300, Link { loss: 0, dup: 0, reorder: 0 });
    assert_eq!((r, d), (0, 0), "nothing to repair on a clean network");
}

/// Seeds `range` of the lossy run; the 200 seeds are split in four tests so that they run in
/// parallel.
fn lossy_seeds(range: std::ops::Range<u64>) {
    let mut totals = (0, 0, 0);
    for seed in range {
        let link = Link { loss: 5 + (seed % 6) as u32, dup: 5, reorder: 10 };
        let (r, f, d) = run_seed(seed, 200, link);
        totals = (totals.0 + r, totals.1 + f, totals.2 + d);
    }
    // The network did what it was asked: losses were repaired by both mechanisms, duplicates
    // were seen and dropped.
    assert!(totals.0 > 250, "retransmissions {totals:?}");
    assert!(totals.1 > 25, "fast retransmits {totals:?}");
    assert!(totals.2 > 25, "duplicates {totals:?}");
}

#[test]
fn lossy_seeds_0_to_49() {
    lossy_seeds(0..50);
}

#[test]
fn lossy_seeds_50_to_99() {
    lossy_seeds(50..100);
}

#[test]
fn lossy_seeds_100_to_149() {
    lossy_seeds(100..150);
}

#[test]
fn lossy_seeds_150_to_199() {
    lossy_seeds(150..200);
}

/// B echoes every message back: both directions carry data, and SACKs ride on DATA packets
/// (bundling of control and DATA chunks, 6.10).
#[test]
fn echo_both_ways_bundles_sacks_with_data() {
    let mut net =
        Net::new(42, Link { loss: 2, dup: 0, reorder: 0 }, (&[A], config(5000)), (&[B], config(5000)));
    net.log = Some(Vec::new());
    let (a, b) = connect(&mut net, Transport::Ip, &[B]);
    let (mut sent, mut echoed) = (0u32, 0u32);
    for _ in 0..20_000 {
        if sent < 300 && net.ep(0).can_send(a, 100) {
            net.ep(0).send(a, (sent % 4) as u16, 7, false, &payload((sent % 4) as u16, sent, 100)).unwrap();
            sent += 1;
        }
        net.step(Duration::from_millis(5));
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::Message { stream, ppid, data, .. } = e {
                net.ep(1).send(b, stream, ppid, false, &data).unwrap();
            }
        }
        while let Some(e) = net.ep(0).poll_event() {
            if let Event::Message { stream, data, .. } = e {
                assert_eq!(u16::from_be_bytes([data[0], data[1]]), stream);
                echoed += 1;
            }
        }
        if echoed == 300 {
            break;
        }
    }
    assert_eq!(echoed, 300);
    let bundled = net
        .log
        .as_ref()
        .unwrap()
        .iter()
        .filter(|(src, _, p)| {
            let Ok(p) = bulkhead_sctp::wire::Packet::new_checked(&p[..]) else { return false };
            let types: Vec<u8> = p.chunks().flatten().map(|c| c.chunk_type()).collect();
            *src == B && types.contains(&0) && types.contains(&3)
        })
        .count();
    assert!(bundled > 10, "SACK bundled with DATA in {bundled} packets");
}
