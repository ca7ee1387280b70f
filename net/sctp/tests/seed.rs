//! The Linux SCTP seed on the host, with the image's allocator (`bulkhead-mem`'s `HostHeap`):
//! four associations of 1-byte messages towards a paused receiver whose every allocation is
//! booked to the `sctp` domain, as in the appliance.
//!
//! 1. Memory: what the receiver's domain grew by, block for block (`live`) and chunk for chunk
//!    (`used`), against the true bytes the core counts (`queue_bytes`): the core must charge
//!    what the allocator gives up, so `live` growth stays within a small fixed overhead of it.
//! 2. CPU: once resumed, the backlog drains in turns like the subsystem's (a bounded number of
//!    inbound chunks, [`MESSAGES_PER_TURN`] messages, the packets to send); each turn is timed
//!    and the slowest may not be much slower than the median (no work that grows with the
//!    backlog).
//!
//! `harness = false`: the allocator's current domain is one per process.

mod common;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::{Duration, Instant};
use bulkhead_mem::{block_footprint, Domain, DomainAllocator, HostHeap};
use bulkhead_sctp::endpoint::{AssocId, Config, Endpoint, Event, Received, SendError, Transport};

#[global_allocator]
static HEAP: HostHeap = HostHeap::new();

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SINK: u16 = 5001;
const ASSOCIATIONS: usize = 4;
const LIMIT: usize = 256 * 1024;
/// What the subsystem hands out per loop turn (`apps::sctp::MESSAGES_PER_POLL`).
const MESSAGES_PER_TURN: usize = 64;
/// Inbound chunks per turn (`apps::sctp::CHUNKS_PER_TURN`).
const CHUNKS_PER_TURN: usize = 64;

fn footprint(n: usize) -> usize {
    block_footprint(n, 8)
}

struct Seed {
    heap: &'static DomainAllocator,
    rng: Csprng,
    now: Instant,
    sink: Endpoint,
    peers: Vec<(Endpoint, AssocId)>,
    /// Packets towards the sink, not yet handled.
    inbound: VecDeque<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
    received: u64,
    /// Per association and stream, the next message value expected.
    next: Vec<[u8; 4]>,
}

impl Seed {
    fn new() -> Seed {
        let heap = HEAP.allocator();
        let mut rng = Csprng::seed_from_u64(8);
        let now = Instant::from_millis(1_000);
        let sink = {
            let _g = heap.enter(Domain::Sctp);
            let mut c = Config::new(SINK, footprint);
            c.receive_limit = LIMIT;
            Endpoint::new(c, &[APPLIANCE], now, &mut rng)
        };
        let mut peers = Vec::new();
        for i in 0..ASSOCIATIONS {
            let _g = heap.enter(Domain::Kernel);
            let mut ep = Endpoint::new(Config::new(40_000 + i as u16, footprint), &[PEER], now, &mut rng);
            let id = ep.connect(now, &mut rng, &[APPLIANCE], SINK, Transport::Ip).unwrap();
            peers.push((ep, id));
        }
        Seed { heap, rng, now, sink, peers, inbound: VecDeque::new(), received: 0, next: vec![[0; 4]; 4] }
    }

    /// The peers' side of one millisecond: their timers, their packets, the sink's packets.
    fn peers_turn(&mut self, out: Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)>) {
        let _g = self.heap.enter(Domain::Kernel);
        for (src, dst, bytes) in out {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ep = &mut self.peers[usize::from(port - 40_000)].0;
            ep.handle(
                self.now,
                &mut self.rng,
                Received { src, dst, transport: Transport::Ip, bytes: &bytes },
            );
        }
        let mut buf = [0u8; 1500];
        for (ep, _) in &mut self.peers {
            if ep.poll_at().is_some_and(|t| t <= self.now) {
                ep.handle_timeout(self.now, &mut self.rng);
            }
            while let Some(t) = ep.poll_transmit(self.now, &mut buf) {
                self.inbound.push_back((t.src, t.dst, buf[..t.len].to_vec()));
            }
            while ep.poll_event().is_some() {}
        }
    }

    /// The sink's turn, in the `sctp` domain, as the subsystem runs it: inbound packets up to
    /// the chunk allowance (at least one), timers, a slice of messages, every packet to send.
    fn sink_turn(&mut self) -> Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
        let _g = self.heap.enter(Domain::Sctp);
        let mut chunks = 0;
        while chunks < CHUNKS_PER_TURN {
            let Some((src, dst, bytes)) = self.inbound.pop_front() else { break };
            chunks += bulkhead_sctp::wire::Packet::new_checked(&bytes[..]).map_or(1, |p| p.chunks().count());
            self.sink.handle(
                self.now,
                &mut self.rng,
                Received { src, dst, transport: Transport::Ip, bytes: &bytes },
            );
        }
        if self.sink.poll_at().is_some_and(|t| t <= self.now) {
            self.sink.handle_timeout(self.now, &mut self.rng);
        }
        for _ in 0..MESSAGES_PER_TURN {
            let Some(e) = self.sink.poll_event() else { break };
            if let Event::Message { assoc, stream, data, .. } = e {
                let slot = &mut self.next[(assoc.0 as usize - 1) % 4][usize::from(stream) % 4];
                assert_eq!(data, [*slot], "association {assoc:?} stream {stream}: in order, once");
                *slot = slot.wrapping_add(1);
                self.received += 1;
            }
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        while let Some(t) = self.sink.poll_transmit(self.now, &mut buf) {
            out.push((t.src, t.dst, buf[..t.len].to_vec()));
        }
        out
    }

    fn step(&mut self) -> std::time::Duration {
        self.now = self.now + Duration::from_millis(1);
        let t0 = std::time::Instant::now();
        let out = self.sink_turn();
        let took = t0.elapsed();
        self.peers_turn(out);
        took
    }

    fn set_paused(&mut self, paused: bool) {
        let _g = self.heap.enter(Domain::Sctp);
        let ids: Vec<AssocId> = self.sink.associations().collect();
        for id in ids {
            self.sink.set_paused(id, paused);
        }
    }

    fn sink_bytes(&self) -> usize {
        let q = self.sink.queue_bytes();
        q.send + q.in_flight + q.reassembly + q.delivery
    }
}

fn main() {
    let mut s = Seed::new();
    for _ in 0..3_000 {
        s.step();
    }
    assert_eq!(s.sink.associations().count(), ASSOCIATIONS, "every association up");
    s.set_paused(true);
    let base = s.heap.stats(Domain::Sctp);
    // 1-byte messages round robin over the associations (and 4 streams) until every sender
    // has been refused for a second.
    let mut sent = [[0u8; 4]; 4];
    let mut total = 0u64;
    let mut refused_for = 0;
    while refused_for < 1_000 {
        let mut all_full = true;
        {
            let _g = s.heap.enter(Domain::Kernel);
            for (i, (ep, id)) in s.peers.iter_mut().enumerate() {
                for _ in 0..64 {
                    let stream = (total % 4) as u16;
                    let v = sent[i][usize::from(stream)];
                    match ep.send(*id, stream, 0, false, &[v]) {
                        Ok(()) => {
                            sent[i][usize::from(stream)] = v.wrapping_add(1);
                            total += 1;
                            all_full = false;
                        }
                        Err(SendError::Full) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        }
        s.step();
        refused_for = if all_full { refused_for + 1 } else { 0 };
    }
    let held = s.heap.stats(Domain::Sctp);
    let counted = s.sink_bytes();
    let live = held.live - base.live;
    let used = held.used - base.used;
    println!(
        "seed: {total} messages accepted; the sink counts {counted} true bytes for {ASSOCIATIONS} x {LIMIT}; \
         its domain grew {live} bytes in live blocks, {used} in chunks and large blocks"
    );
    // What the core counts is what the allocator handed out for it (the B-tree charge is an
    // upper bound, so the count may be a little above), and it is within the limits.
    assert!(counted <= ASSOCIATIONS * LIMIT, "{counted}");
    assert!(live <= counted + 1024 && counted <= live + 16 * 1024, "live {live}, counted {counted}");
    // Beyond the live blocks, the domain holds the free slots of partly used chunks and a
    // spare chunk per size class it used (`bulkhead_mem`'s free-chunk policy).
    assert!(used <= live + 8 * bulkhead_mem::CHUNK_SIZE, "used {used}, live {live}");

    // Resume: every message once, in order; each turn timed.
    s.set_paused(false);
    let mut turns = Vec::new();
    let mut full = Vec::new();
    while s.received < total {
        let before = s.received;
        let took = s.step();
        turns.push(took);
        if s.received - before == MESSAGES_PER_TURN as u64 {
            full.push(took);
        }
        assert!(turns.len() < 1_000_000, "the backlog never drained: {} of {total}", s.received);
    }
    // A turn that reads a full slice with most of the backlog still queued costs what one
    // near its end costs: the medians of the first and last tenth of the turns that read a
    // full slice (medians, so that the host's scheduler does not decide).
    let median = |t: &[std::time::Duration]| {
        let mut t = t.to_vec();
        t.sort();
        t[t.len() / 2]
    };
    let tenth = full.len() / 10;
    assert!(tenth > 0, "{} turns read a full slice", full.len());
    let (early, late) = (median(&full[..tenth]), median(&full[full.len() - tenth..]));
    let slowest = turns.iter().max().copied().unwrap_or_default();
    println!(
        "seed: {total} messages drained in {} turns; median turn {:?}; of the {} that read a full slice, \
         first tenth {early:?}, last tenth {late:?}; slowest {slowest:?}",
        turns.len(),
        median(&turns),
        full.len()
    );
    assert!(early <= 4 * late + std::time::Duration::from_micros(20), "early {early:?}, late {late:?}");
    let after = s.heap.stats(Domain::Sctp);
    assert!(s.sink_bytes() < 4 * 4096, "drained: {}", s.sink_bytes());
    assert!(after.live <= base.live + 16 * 1024, "the backlog's blocks were freed: {after:?}");
}
