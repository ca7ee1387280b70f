//! Two endpoints over a simulated network: seeded xorshift loss, reordering (random delay)
//! and duplication. Every message must arrive exactly once, and in order on ordered streams.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use bulkhead_base::rand_core::{impls, RngCore};
use bulkhead_base::time::{Duration, Instant};
use bulkhead_sctp::association::rto::RtoConfig;
use bulkhead_sctp::endpoint::{AssocId, Config, DownReason, Endpoint, Event, Received, SendError, Transport};

pub struct XorShift(u64);

impl RngCore for XorShift {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        impls::fill_bytes_via_next(self, dst)
    }
}

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn percent(&mut self, p: u32) -> bool {
        self.next_u32() % 100 < p
    }
}

fn footprint(n: usize) -> usize {
    n.next_multiple_of(16) + 16
}

fn config(port: u16) -> Config {
    let mut c = Config::new(port, footprint);
    c.rto = RtoConfig {
        initial: Duration::from_millis(200),
        min: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    c.association_max_retrans = 30;
    c.path_max_retrans = 10;
    c.max_init_retransmits = 30;
    c.send_limit = 64 * 1024;
    c.receive_limit = 64 * 1024;
    c.heartbeat_interval = Duration::from_secs(5);
    c
}

struct InFlight {
    at: Instant,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    transport: Transport,
    bytes: Vec<u8>,
}

/// Link behaviour, in percent.
#[derive(Clone, Copy)]
struct Link {
    loss: u32,
    dup: u32,
    reorder: u32,
}

struct Net {
    rng: XorShift,
    now: Instant,
    endpoints: Vec<(Vec<Ipv4Addr>, Endpoint)>,
    queue: Vec<InFlight>,
    link: Link,
    /// Addresses that drop everything sent to or from them.
    down: BTreeSet<Ipv4Addr>,
    delivered: u64,
}

impl Net {
    fn new(seed: u64, link: Link, a: (&[Ipv4Addr], Config), b: (&[Ipv4Addr], Config)) -> Self {
        let mut rng = XorShift::new(seed);
        let now = Instant::from_millis(1_000);
        let ea = Endpoint::new(a.1, a.0, now, &mut rng);
        let eb = Endpoint::new(b.1, b.0, now, &mut rng);
        Net {
            rng,
            now,
            endpoints: vec![(a.0.to_vec(), ea), (b.0.to_vec(), eb)],
            queue: Vec::new(),
            link,
            down: BTreeSet::new(),
            delivered: 0,
        }
    }

    fn ep(&mut self, i: usize) -> &mut Endpoint {
        &mut self.endpoints[i].1
    }

    /// Collect every packet the endpoints want to send.
    fn flush(&mut self) {
        let mut buf = [0u8; 1500];
        for i in 0..self.endpoints.len() {
            while let Some(t) = self.endpoints[i].1.poll_transmit(self.now, &mut buf) {
                let bytes = buf[..t.len].to_vec();
                if self.down.contains(&t.dst)
                    || self.down.contains(&t.src)
                    || self.rng.percent(self.link.loss)
                {
                    continue;
                }
                let copies = if self.rng.percent(self.link.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let extra = if self.rng.percent(self.link.reorder) {
                        u64::from(self.rng.next_u32() % 30)
                    } else {
                        0
                    };
                    self.queue.push(InFlight {
                        at: self.now + Duration::from_millis(10 + extra),
                        src: t.src,
                        dst: t.dst,
                        transport: t.transport,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
    }

    /// Advance to the next packet or timer (at most `max_step`), and process it.
    fn step(&mut self, max_step: Duration) {
        self.flush();
        let mut next = self.now + max_step;
        for p in &self.queue {
            next = next.min(p.at);
        }
        for (_, e) in &self.endpoints {
            if let Some(t) = e.poll_at() {
                next = next.min(t);
            }
        }
        self.now = next.max(self.now);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.queue).into_iter().partition(|p| p.at <= now);
        self.queue = rest;
        for p in due {
            let Some(i) = self.endpoints.iter().position(|(addrs, _)| addrs.contains(&p.dst)) else {
                continue;
            };
            self.delivered += 1;
            let rx = Received { src: p.src, dst: p.dst, transport: p.transport, bytes: &p.bytes };
            let (_, e) = &mut self.endpoints[i];
            e.handle(now, &mut self.rng, rx);
        }
        for i in 0..self.endpoints.len() {
            if self.endpoints[i].1.poll_at().is_some_and(|t| t <= now) {
                let (_, e) = &mut self.endpoints[i];
                e.handle_timeout(now, &mut self.rng);
            }
        }
        self.flush();
    }
}

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn payload(stream: u16, seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(6));
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    while v.len() < len {
        v.push((seq as u8).wrapping_add(v.len() as u8));
    }
    v
}

fn connect(net: &mut Net, transport: Transport, peer: &[Ipv4Addr]) -> (AssocId, AssocId) {
    let now = net.now;
    let a = net.ep(0).connect(now, &mut XorShift::new(7), peer, 5000, transport).unwrap();
    let (mut up_a, mut up_b) = (None, None);
    for _ in 0..10_000 {
        net.step(Duration::from_millis(50));
        while let Some(e) = net.ep(0).poll_event() {
            if e == Event::AssociationUp(a) {
                up_a = Some(a);
            }
        }
        while let Some(e) = net.ep(1).poll_event() {
            if let Event::AssociationUp(b) = e {
                up_b = Some(b);
            }
        }
        if let (Some(a), Some(b)) = (up_a, up_b) {
            return (a, b);
        }
    }
    panic!("no association: {:?}", net.ep(0).status(a));
}

/// Run one seed: `messages` messages on 4 streams (stream 3 unordered) from A to B.
fn run_seed(seed: u64, messages: u32, link: Link) {
    let mut net = Net::new(seed, link, (&[A], config(5000)), (&[B], config(5000)));
    let transport = if seed.is_multiple_of(2) { Transport::Ip } else { Transport::Udp { peer_port: 9899 } };
    let (a, _b) = connect(&mut net, transport, &[B]);
    let mut rng = XorShift::new(seed ^ 0xABCD);
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
    let q = net.ep(0).queue_bytes();
    assert_eq!((q.send, q.in_flight), (0, 0), "seed {seed}");
    let q = net.ep(1).queue_bytes();
    assert_eq!((q.reassembly, q.delivery), (0, 0), "seed {seed}");
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
}

#[test]
fn clean_network_delivers_everything() {
    run_seed(1, 300, Link { loss: 0, dup: 0, reorder: 0 });
}

#[test]
fn many_seeds_with_loss_reordering_and_duplication() {
    for seed in 0..200u64 {
        let link = Link { loss: 5 + (seed % 6) as u32, dup: 5, reorder: 10 };
        run_seed(seed, 200, link);
    }
}
