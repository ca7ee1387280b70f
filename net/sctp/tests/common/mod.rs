//! The simulated network shared by the integration tests: two (or more) endpoints, packets
//! delayed, lost, reordered and duplicated by a seeded `Csprng`, time advanced to the next
//! packet or timer; optionally a router on the way with a smaller MTU, which drops a larger
//! packet sent with DF and answers with an ICMP "fragmentation needed".
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::{Duration, Instant};
use bulkhead_sctp::association::rto::RtoConfig;
use bulkhead_sctp::endpoint::{AssocId, Config, Endpoint, Event, IcmpError, IcmpKind, Received, Transport};

/// True `p` times in a hundred: the link's loss, duplication and reordering draws.
pub fn percent(rng: &mut impl RngCore, p: u32) -> bool {
    rng.next_u32() % 100 < p
}

pub fn footprint(n: usize) -> usize {
    n.next_multiple_of(16) + 16
}

pub fn config(port: u16) -> Config {
    let mut c = Config::new(port, footprint);
    // RTO.Min stays above the peer's delayed SACK (200 ms) plus the RTT, or a lone chunk's
    // late SACK would be taken for a loss.
    c.rto = RtoConfig {
        initial: Duration::from_millis(300),
        min: Duration::from_millis(250),
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

pub struct InFlight {
    at: Instant,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    transport: Transport,
    bytes: Vec<u8>,
    /// An ICMP "fragmentation needed" with this MTU, for the sender of the quoted `bytes`, and
    /// the size of the IP packet it quotes.
    icmp: Option<(u16, u16)>,
}

/// A router on the way whose next hop takes IP packets of at most `mtu` bytes.
#[derive(Clone, Copy, Debug)]
pub struct Router {
    pub mtu: u16,
    /// The MTU its ICMPs report (0, as a router older than RFC 1191 says it).
    pub reports: u16,
    /// SCTP bytes quoted in its ICMPs (after the IP or UDP header); `None`: it sends no
    /// ICMP (filtered on the way: a black hole).
    pub quotes: Option<usize>,
}

/// What the router did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterCounts {
    /// Packets too big with DF set: dropped, an ICMP sent back.
    pub too_big: u64,
    /// Packets too big sent for fragmentation: passed in fragments.
    pub fragmented: u64,
}

/// Link behaviour, in percent.
#[derive(Clone, Copy)]
pub struct Link {
    pub loss: u32,
    pub dup: u32,
    pub reorder: u32,
}

/// A packet filter: (src, dst, bytes) -> drop?
pub type Filter = Box<dyn FnMut(Ipv4Addr, Ipv4Addr, &[u8]) -> bool>;

pub struct Net {
    pub rng: Csprng,
    pub now: Instant,
    pub endpoints: Vec<(Vec<Ipv4Addr>, Endpoint)>,
    pub queue: Vec<InFlight>,
    pub link: Link,
    /// Drops a packet (src, dst, bytes) when it returns true.
    pub filter: Option<Filter>,
    /// Packets sent, as (src, dst, bytes), when recording.
    pub log: Option<Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)>>,
    /// Addresses that drop everything sent to or from them.
    pub down: BTreeSet<Ipv4Addr>,
    pub delivered: u64,
    /// When each endpoint's outgoing link is free again.
    pub link_free: Vec<Instant>,
    pub router: Option<Router>,
    pub router_counts: RouterCounts,
}

impl Net {
    pub fn new(seed: u64, link: Link, a: (&[Ipv4Addr], Config), b: (&[Ipv4Addr], Config)) -> Self {
        let mut rng = Csprng::seed_from_u64(seed);
        let now = Instant::from_millis(1_000);
        let ea = Endpoint::new(a.1, a.0, now, &mut rng);
        let eb = Endpoint::new(b.1, b.0, now, &mut rng);
        Net {
            rng,
            now,
            endpoints: vec![(a.0.to_vec(), ea), (b.0.to_vec(), eb)],
            queue: Vec::new(),
            link,
            filter: None,
            log: None,
            down: BTreeSet::new(),
            delivered: 0,
            link_free: vec![now; 2],
            router: None,
            router_counts: RouterCounts::default(),
        }
    }

    pub fn ep(&mut self, i: usize) -> &mut Endpoint {
        &mut self.endpoints[i].1
    }

    /// Collect every packet the endpoints want to send.
    pub fn flush(&mut self) {
        let mut buf = [0u8; 1500];
        for i in 0..self.endpoints.len() {
            while let Some(t) = self.endpoints[i].1.poll_transmit(self.now, &mut buf) {
                let bytes = buf[..t.len].to_vec();
                if let Some(log) = &mut self.log {
                    log.push((t.src, t.dst, bytes.clone()));
                }
                if let Some(f) = &mut self.filter {
                    if f(t.src, t.dst, &bytes) {
                        continue;
                    }
                }
                if self.down.contains(&t.dst)
                    || self.down.contains(&t.src)
                    || percent(&mut self.rng, self.link.loss)
                {
                    continue;
                }
                if let Some(r) = self.router {
                    let udp = if matches!(t.transport, Transport::Udp { .. }) { 8 } else { 0 };
                    if t.len + 20 + udp > usize::from(r.mtu) {
                        if t.fragment_to.is_some_and(|m| m <= r.mtu) {
                            self.router_counts.fragmented += 1;
                        } else if let Some(quotes) = r.quotes {
                            self.router_counts.too_big += 1;
                            self.queue.push(InFlight {
                                at: self.now + Duration::from_millis(5),
                                src: t.src,
                                dst: t.dst,
                                transport: t.transport,
                                bytes: bytes[..quotes.min(bytes.len())].to_vec(),
                                icmp: Some((r.reports, (t.len + 20 + udp) as u16)),
                            });
                            continue;
                        } else {
                            self.router_counts.too_big += 1;
                            continue;
                        }
                    }
                }
                let copies = if percent(&mut self.rng, self.link.dup) { 2 } else { 1 };
                let free = self.link_free[i].max(self.now) + Duration::from_micros(100);
                self.link_free[i] = free;
                let wire_at = free;
                for _ in 0..copies {
                    let extra = if percent(&mut self.rng, self.link.reorder) {
                        u64::from(self.rng.next_u32() % 30)
                    } else {
                        0
                    };
                    self.queue.push(InFlight {
                        // 100 us of serialization per packet on the sender's link, then
                        // 10 ms of propagation.
                        at: wire_at + Duration::from_millis(10 + extra),
                        src: t.src,
                        dst: t.dst,
                        // The receiver sees the sender's UDP source port: 40000 + its index.
                        transport: match t.transport {
                            Transport::Ip => Transport::Ip,
                            Transport::Udp { .. } => Transport::Udp { peer_port: 40000 + i as u16 },
                        },
                        bytes: bytes.clone(),
                        icmp: None,
                    });
                }
            }
        }
    }

    /// Advance to the next packet or timer (at most `max_step`), and process it.
    pub fn step(&mut self, max_step: Duration) {
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
            if let Some((mtu, ip_len)) = p.icmp {
                let Some(i) = self.endpoints.iter().position(|(addrs, _)| addrs.contains(&p.src)) else {
                    continue;
                };
                let kind = IcmpKind::FragmentationNeeded { mtu };
                let icmp = IcmpError { src: p.src, dst: p.dst, ip_len, kind, sctp: &p.bytes };
                self.endpoints[i].1.handle_icmp(now, icmp);
                continue;
            }
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

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn payload(stream: u16, seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(6));
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    while v.len() < len {
        v.push((seq as u8).wrapping_add(v.len() as u8));
    }
    v
}

pub fn connect(net: &mut Net, transport: Transport, peer: &[Ipv4Addr]) -> (AssocId, AssocId) {
    let now = net.now;
    let a = net.ep(0).connect(now, &mut Csprng::seed_from_u64(7), peer, 5000, transport).unwrap();
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
