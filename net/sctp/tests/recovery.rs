//! Loss recovery with a fake clock: fast retransmit after three miss indications (7.2.4),
//! T3-rtx with RTO doubling to RTO.max and Association.Max.Retrans (6.3.3, 8.1), Karn's rule,
//! T2-shutdown retransmission, heartbeats, ABORT, and RFC 6951 port learning.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::Duration;
use bulkhead_sctp::association::rto::RtoConfig;
use bulkhead_sctp::endpoint::{AssocId, DownReason, Event, Transport};
use bulkhead_sctp::wire::{Chunk, Packet};
use common::*;

fn clean() -> Link {
    Link { loss: 0, dup: 0, reorder: 0 }
}

/// Whether the packet carries a chunk of `chunk_type`.
fn carries(bytes: &[u8], chunk_type: u8) -> bool {
    let Ok(p) = Packet::new_checked(bytes) else { return false };
    p.chunks().flatten().any(|c: Chunk<&[u8]>| c.chunk_type() == chunk_type)
}

/// Drop the first `n` packets from `src` carrying `chunk_type`.
fn drop_first(net: &mut Net, src: std::net::Ipv4Addr, chunk_type: u8, n: u32) -> Rc<Cell<u32>> {
    let dropped = Rc::new(Cell::new(0));
    let d = dropped.clone();
    net.filter = Some(Box::new(move |s, _, bytes| {
        if s == src && d.get() < n && carries(bytes, chunk_type) {
            d.set(d.get() + 1);
            return true;
        }
        false
    }));
    dropped
}

fn drain(net: &mut Net, got: &mut Vec<Vec<u8>>) -> Vec<Event> {
    let mut other = Vec::new();
    while let Some(e) = net.ep(1).poll_event() {
        match e {
            Event::Message { data, .. } => got.push(data),
            e => other.push(e),
        }
    }
    while let Some(e) = net.ep(0).poll_event() {
        other.push(e);
    }
    other
}

fn run(net: &mut Net, got: &mut Vec<Vec<u8>>, until: impl Fn(&Vec<Vec<u8>>) -> bool) {
    for _ in 0..10_000 {
        net.step(Duration::from_millis(10));
        drain(net, got);
        if until(got) {
            return;
        }
    }
    panic!("not done; got {}", got.len());
}

#[test]
fn fast_retransmit_repairs_a_loss_before_t3() {
    let mut net = Net::new(1, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, _) = connect(&mut net, Transport::Ip, &[B]);
    let dropped = drop_first(&mut net, A, 0, 1);
    for i in 0..8u8 {
        net.ep(0).send(a, 0, 0, false, &[i; 1000]).unwrap();
    }
    let mut got = Vec::new();
    run(&mut net, &mut got, |g| g.len() == 8);
    assert_eq!(dropped.get(), 1);
    let c = net.ep(0).status(a).unwrap().counters;
    assert!(c.fast_retransmits >= 1, "{c:?}");
    assert_eq!(c.t3_expiries, 0, "{c:?}");
    let order: Vec<u8> = got.iter().map(|m| m[0]).collect();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
}

#[test]
fn t3_backs_off_to_rto_max_then_the_association_fails() {
    let mut cfg = config(5000);
    cfg.heartbeat_interval = Duration::from_secs(600);
    cfg.rto = RtoConfig {
        initial: Duration::from_millis(200),
        min: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    cfg.association_max_retrans = 6;
    cfg.path_max_retrans = 6;
    let mut net = Net::new(2, clean(), (&[A], cfg), (&[B], cfg));
    let (a, _) = connect(&mut net, Transport::Ip, &[B]);
    net.down.insert(B);
    net.ep(0).send(a, 0, 0, false, b"lost").unwrap();
    let mut rtos = Vec::new();
    let mut down = None;
    let start = net.now;
    for _ in 0..10_000 {
        net.step(Duration::from_millis(10));
        if let Some(s) = net.ep(0).status(a) {
            let rto = s.paths[0].rto;
            if rtos.last() != Some(&rto) {
                rtos.push(rto);
            }
        }
        for e in drain(&mut net, &mut Vec::new()) {
            if let Event::AssociationDown(id, r) = e {
                assert_eq!(id, a);
                down = Some(r);
            }
        }
        if down.is_some() {
            break;
        }
    }
    assert_eq!(down, Some(DownReason::RetransmitLimit));
    // 200 ms doubling, capped at RTO.max = 2 s.
    let ms: Vec<u64> = rtos.iter().map(|d| d.total_millis()).collect();
    assert_eq!(&ms[..], &[200, 400, 800, 1600, 2000], "{ms:?}");
    // 7 expiries: 0.2 + 0.4 + 0.8 + 1.6 + 2 + 2 + 2 s.
    let took = net.now.saturating_since(start).total_millis();
    assert!((9_000..9_200).contains(&took), "{took} ms");
    assert_eq!(net.ep(0).associations().count(), 0);
}

#[test]
fn karn_retransmitted_chunks_give_no_rtt_sample() {
    let mut net = Net::new(3, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, _) = connect(&mut net, Transport::Ip, &[B]);
    drop_first(&mut net, A, 0, 1);
    net.ep(0).send(a, 0, 0, false, b"first").unwrap();
    let mut got = Vec::new();
    run(&mut net, &mut got, |g| g.len() == 1);
    let s = net.ep(0).status(a).unwrap();
    assert_eq!(s.counters.t3_expiries, 1);
    assert_eq!(s.paths[0].srtt, None, "the retransmitted chunk was not timed");
    net.ep(0).send(a, 0, 0, false, b"second").unwrap();
    run(&mut net, &mut got, |g| g.len() == 2);
    for _ in 0..50 {
        net.step(Duration::from_millis(10));
    }
    let srtt = net.ep(0).status(a).unwrap().paths[0].srtt.unwrap();
    assert!(srtt.total_millis() >= 20 && srtt.total_millis() < 250, "{srtt:?}");
}

fn shutdown_both(net: &mut Net, a: AssocId) -> (Option<DownReason>, Option<DownReason>) {
    let now = net.now;
    net.ep(0).shutdown(now, a);
    let mut downs = (None, None);
    for _ in 0..5_000 {
        net.step(Duration::from_millis(10));
        while let Some(e) = net.ep(0).poll_event() {
            if let Event::AssociationDown(_, r) = e {
                downs.0 = Some(r);
            }
        }
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::AssociationDown(_, r) = e {
                downs.1 = Some(r);
            }
        }
        if downs.0.is_some() && downs.1.is_some() {
            break;
        }
    }
    downs
}

#[test]
fn shutdown_waits_for_outstanding_data_and_t2_retransmits() {
    let mut net = Net::new(4, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, _) = connect(&mut net, Transport::Ip, &[B]);
    for i in 0..20u8 {
        net.ep(0).send(a, 1, 0, false, &[i; 500]).unwrap();
    }
    // Lose the first SHUTDOWN and the first SHUTDOWN ACK.
    let lost = Rc::new(Cell::new((0, 0)));
    let l = lost.clone();
    net.filter = Some(Box::new(move |src, _, bytes| {
        let (s, sa) = l.get();
        if src == A && s == 0 && carries(bytes, 7) {
            l.set((1, sa));
            return true;
        }
        if src == B && sa == 0 && carries(bytes, 8) {
            l.set((s, 1));
            return true;
        }
        false
    }));
    let now = net.now;
    net.ep(0).shutdown(now, a);
    assert_eq!(
        net.ep(0).send(a, 1, 0, false, b"late"),
        Err(bulkhead_sctp::endpoint::SendError::ShuttingDown)
    );
    let mut got = Vec::new();
    let mut downs = (None, None);
    for _ in 0..5_000 {
        net.step(Duration::from_millis(10));
        while let Some(e) = net.ep(1).poll_event() {
            match e {
                Event::Message { data, .. } => got.push(data[0]),
                Event::AssociationDown(_, r) => downs.1 = Some(r),
                _ => {}
            }
        }
        while let Some(e) = net.ep(0).poll_event() {
            if let Event::AssociationDown(_, r) = e {
                downs.0 = Some(r);
            }
        }
        if downs.0.is_some() && downs.1.is_some() {
            break;
        }
    }
    assert_eq!(lost.get(), (1, 1));
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "all data delivered before the close");
    assert_eq!(downs, (Some(DownReason::Shutdown), Some(DownReason::Shutdown)));
    assert_eq!(net.ep(0).associations().count() + net.ep(1).associations().count(), 0);
}

#[test]
fn heartbeats_measure_an_idle_path() {
    let mut net = Net::new(5, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, _) = connect(&mut net, Transport::Ip, &[B]);
    assert_eq!(net.ep(0).status(a).unwrap().paths[0].srtt, None);
    let end = net.now + Duration::from_secs(12);
    while net.now < end {
        net.step(Duration::from_millis(100));
        drain(&mut net, &mut Vec::new());
    }
    let s = net.ep(0).status(a).unwrap();
    assert!(s.counters.heartbeats_sent >= 1, "{:?}", s.counters);
    let srtt = s.paths[0].srtt.expect("heartbeat RTT");
    assert_eq!(srtt.total_millis(), 20);
    assert_eq!(s.paths[0].error_count, 0);
}

#[test]
fn abort_reaches_the_peer_with_its_cause() {
    let mut net = Net::new(6, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, b) = connect(&mut net, Transport::Ip, &[B]);
    net.ep(0).abort(a, b"maintenance");
    let mut events = Vec::new();
    for _ in 0..10 {
        net.step(Duration::from_millis(10));
        while let Some(e) = net.ep(1).poll_event() {
            events.push(e);
        }
    }
    assert_eq!(events, [Event::AssociationDown(b, DownReason::PeerAborted { cause: Some(12) })]);
    assert_eq!(net.ep(0).poll_event(), Some(Event::AssociationDown(a, DownReason::LocalAbort)));
}

#[test]
fn udp_encapsulation_port_is_learned_per_path() {
    let mut net = Net::new(7, clean(), (&[A], config(5000)), (&[B], config(5000)));
    let (a, b) = connect(&mut net, Transport::Udp { peer_port: 9899 }, &[B]);
    assert_eq!(net.ep(1).status(b).unwrap().paths[0].transport, Transport::Udp { peer_port: 40000 });
    assert_eq!(net.ep(0).status(a).unwrap().paths[0].transport, Transport::Udp { peer_port: 40001 });
    net.ep(0).send(a, 0, 0, false, b"over udp").unwrap();
    let mut got = Vec::new();
    run(&mut net, &mut got, |g| g.len() == 1);
    let (da, db) = shutdown_both(&mut net, a);
    assert_eq!((da, db), (Some(DownReason::Shutdown), Some(DownReason::Shutdown)));
}

#[test]
fn init_to_a_silent_peer_gives_up_after_max_init_retransmits() {
    let mut net = Net::new(8, clean(), (&[A], config(5000)), (&[B], config(5000)));
    net.down.insert(B);
    let now = net.now;
    let a = net.ep(0).connect(now, &mut Csprng::seed_from_u64(1), &[B], 5000, Transport::Ip).unwrap();
    let mut down = None;
    for _ in 0..1_000 {
        net.step(Duration::from_secs(1));
        if let Some(Event::AssociationDown(id, r)) = net.ep(0).poll_event() {
            assert_eq!(id, a);
            down = Some(r);
            break;
        }
    }
    assert_eq!(down, Some(DownReason::InitTimeout));
    assert_eq!(net.ep(0).associations().count(), 0);
}

#[test]
fn stale_cookies_restart_the_handshake_until_the_retry_budget_runs_out() {
    // B's cookies live 5 ms; the path takes 10 ms each way: every COOKIE ECHO is stale.
    let mut b = config(5000);
    b.cookie_lifetime = Duration::from_millis(5);
    let mut a = config(5000);
    a.max_init_retransmits = 3;
    let mut net = Net::new(9, clean(), (&[A], a), (&[B], b));
    net.log = Some(Vec::new());
    let now = net.now;
    let id = net.ep(0).connect(now, &mut Csprng::seed_from_u64(1), &[B], 5000, Transport::Ip).unwrap();
    let mut down = None;
    for _ in 0..1_000 {
        net.step(Duration::from_secs(1));
        if let Some(Event::AssociationDown(i, r)) = net.ep(0).poll_event() {
            assert_eq!(i, id);
            down = Some(r);
            break;
        }
    }
    assert_eq!(down, Some(DownReason::CookieTimeout));
    assert!(net.ep(1).drops().cookie_stale >= 3);
    let inits = net.log.as_ref().unwrap().iter().filter(|(s, _, p)| *s == A && carries(p, 1)).count();
    assert!(inits >= 3, "a fresh INIT after each Stale Cookie error: {inits}");
    assert_eq!(net.ep(1).associations().count(), 0, "no state for stale cookies");
}
