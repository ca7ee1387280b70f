//! Multi-homing (RFC 9260 sections 6.4, 8.2, 8.3): both ends list every local address; when
//! the primary path stops answering, data fails over to the alternate, and comes back once
//! heartbeats reach the primary again.

mod common;

use std::net::Ipv4Addr;

use bulkhead_base::time::Duration;
use bulkhead_sctp::association::path::PathState;
use bulkhead_sctp::endpoint::{Event, Transport};
use common::*;

const A1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const A2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const B1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn pump(net: &mut Net, a: bulkhead_sctp::endpoint::AssocId, seq: &mut u32, got: &mut Vec<u32>, secs: u64) {
    let end = net.now + Duration::from_secs(secs);
    let mut next_send = net.now;
    while net.now < end {
        // 100 messages a second.
        if net.now >= next_send && net.ep(0).can_send(a, 4) {
            next_send = net.now + Duration::from_millis(10);
            net.ep(0).send(a, 0, 0, false, &seq.to_be_bytes()).unwrap();
            *seq += 1;
        }
        net.step(Duration::from_millis(20));
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::Message { data, .. } = e {
                got.push(u32::from_be_bytes(data.try_into().unwrap()));
            }
        }
        while net.ep(0).poll_event().is_some() {}
    }
}

#[test]
fn failover_to_the_alternate_and_back() {
    let mut cfg = config(5000);
    cfg.path_max_retrans = 2;
    cfg.association_max_retrans = 50;
    cfg.heartbeat_interval = Duration::from_secs(1);
    let mut net = Net::new(11, Link { loss: 0, dup: 0, reorder: 0 }, (&[A1, A2], cfg), (&[B1, B2], cfg));
    let (a, b) = connect(&mut net, Transport::Ip, &[B1]);

    // Both ends learned both peer addresses from INIT and INIT ACK.
    let sa = net.ep(0).status(a).unwrap();
    let addrs: Vec<_> = sa.paths.iter().map(|p| p.addr).collect();
    assert_eq!(addrs, [B1, B2]);
    let sb = net.ep(1).status(b).unwrap();
    let addrs: Vec<_> = sb.paths.iter().map(|p| p.addr).collect();
    assert_eq!(addrs, [A1, A2]);

    let (mut seq, mut got) = (0u32, Vec::new());
    pump(&mut net, a, &mut seq, &mut got, 5);
    let s = net.ep(0).status(a).unwrap();
    assert!(s.paths[0].current && s.paths[1].confirmed, "{s:?}");

    // The primary goes dark.
    net.down.insert(B1);
    pump(&mut net, a, &mut seq, &mut got, 20);
    let s = net.ep(0).status(a).unwrap();
    assert_eq!(s.paths[0].state, PathState::Inactive, "{s:?}");
    assert!(s.paths[1].current, "failed over: {s:?}");
    let before = got.len();
    pump(&mut net, a, &mut seq, &mut got, 5);
    assert!(got.len() > before + 10, "data flows on the alternate");

    // The primary comes back: heartbeats find it, data returns to it.
    net.down.remove(&B1);
    pump(&mut net, a, &mut seq, &mut got, 20);
    let s = net.ep(0).status(a).unwrap();
    assert_eq!(s.paths[0].state, PathState::Active, "{s:?}");
    assert!(s.paths[0].current, "back on the primary: {s:?}");
    assert!(s.counters.failovers >= 1);

    // Nothing lost, nothing duplicated, in order.
    pump(&mut net, a, &mut seq, &mut got, 5);
    let n = got.len() as u32;
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert!(n + 100 > seq, "almost everything sent arrived: {n} of {seq}");
}
