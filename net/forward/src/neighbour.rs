//! The forwarder's neighbour table (ARP cache) with bounded queues of packets waiting for
//! resolution.
//!
//! ```text
//!            first packet            reply                     300 s
//!   (none) ──────────────▶ Resolving ─────▶ Reachable ─────────────────▶ (removed)
//!                            │  1 request a second, 3 tries
//!                            └────────────▶ Failed (5 s: packets answered "host unreachable")
//! ```
//!
//! Bounds, and what happens at them: at most `MAX_ENTRIES` entries (a new next hop beyond that
//! is refused: the packet is dropped as `neighbour_table_full`); at most `QUEUE_PER_NEXT_HOP`
//! packets wait per next hop and `MAX_QUEUED` in all (more are dropped as
//! `neighbour_queue_full`). Queued packets are owned here and freed when sent or dropped.
//! The table itself is one sorted vector with room for every entry, reserved when the
//! forwarder starts, so learning a neighbour late (a host that re-ARPs after a minute) does not
//! grow the forwarder's memory.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::flows::{Duration, Instant};

pub const MAX_ENTRIES: usize = 1024;
pub const QUEUE_PER_NEXT_HOP: usize = 4;
pub const MAX_QUEUED: usize = 256;
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_TRIES: u8 = 3;
const REACHABLE_FOR: Duration = Duration::from_secs(300);
/// A reachable entry used after this age is refreshed by a new request (it stays usable).
const REFRESH_AFTER: Duration = Duration::from_secs(270);
const FAILED_FOR: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Resolving { tries: u8, next_try: Instant },
    Reachable { since: Instant, refresh_sent: bool },
    Failed { until: Instant },
}

struct Entry {
    mac: [u8; 6],
    state: State,
    queue: VecDeque<Vec<u8>>,
}

/// What a packet to a next hop should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Send it to this MAC address (and, if `refresh`, send a request to refresh the entry).
    Known { mac: [u8; 6], refresh: bool },
    /// Queue it (`enqueue`); if `request`, send an ARP request now.
    Pending { request: bool },
    /// The next hop did not answer: drop the packet, answer "host unreachable".
    Failed,
    /// No room for another next hop.
    TableFull,
}

/// Why a packet could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

pub struct Neighbours {
    /// Sorted by (interface, address); capacity `MAX_ENTRIES` from the start.
    entries: Vec<((u8, u32), Entry)>,
    queued: usize,
}

impl Default for Neighbours {
    fn default() -> Self {
        Neighbours::new()
    }
}

impl Neighbours {
    pub fn new() -> Neighbours {
        Neighbours { entries: Vec::with_capacity(MAX_ENTRIES), queued: 0 }
    }

    fn get_mut(&mut self, key: (u8, u32)) -> Option<&mut Entry> {
        let index = self.entries.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        self.entries.get_mut(index).map(|(_, e)| e)
    }

    /// Adds an entry (the caller checked it is absent and that there is room).
    fn add(&mut self, key: (u8, u32), entry: Entry) {
        if let Err(index) = self.entries.binary_search_by_key(&key, |(k, _)| *k) {
            self.entries.insert(index, (key, entry));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting for resolution, in all.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// How to reach `ip` on `iface` now.
    pub fn resolve(&mut self, now: Instant, iface: u8, ip: u32) -> Resolution {
        if let Some(entry) = self.get_mut((iface, ip)) {
            return match entry.state {
                State::Reachable { since, refresh_sent } => {
                    let refresh = !refresh_sent && now.saturating_since(since) >= REFRESH_AFTER;
                    if refresh {
                        entry.state = State::Reachable { since, refresh_sent: true };
                    }
                    Resolution::Known { mac: entry.mac, refresh }
                }
                State::Resolving { .. } => Resolution::Pending { request: false },
                State::Failed { until } if now < until => Resolution::Failed,
                State::Failed { .. } => {
                    entry.state = State::Resolving { tries: 1, next_try: now + RETRY_AFTER };
                    Resolution::Pending { request: true }
                }
            };
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Resolution::TableFull;
        }
        let resolving = State::Resolving { tries: 1, next_try: now + RETRY_AFTER };
        self.add((iface, ip), Entry { mac: [0; 6], state: resolving, queue: VecDeque::new() });
        Resolution::Pending { request: true }
    }

    /// Keeps a copy of `frame` until `ip` on `iface` resolves (after `resolve` said `Pending`).
    pub fn enqueue(&mut self, iface: u8, ip: u32, frame: &[u8]) -> Result<(), QueueFull> {
        if self.queued >= MAX_QUEUED {
            return Err(QueueFull);
        }
        let entry = self.get_mut((iface, ip)).ok_or(QueueFull)?;
        if entry.queue.len() >= QUEUE_PER_NEXT_HOP {
            return Err(QueueFull);
        }
        entry.queue.push_back(frame.to_vec());
        self.queued += 1;
        Ok(())
    }

    /// An ARP message said `ip` is at `mac` on `iface`. Updates an existing entry, or adds one
    /// when `for_us` (we were the target: RFC 826's merge rule). Returns the packets that were
    /// waiting for it.
    pub fn learn(
        &mut self,
        now: Instant,
        iface: u8,
        ip: u32,
        mac: [u8; 6],
        for_us: bool,
    ) -> VecDeque<Vec<u8>> {
        let reachable = State::Reachable { since: now, refresh_sent: false };
        match self.get_mut((iface, ip)) {
            Some(entry) => {
                entry.mac = mac;
                entry.state = reachable;
                let waiting = core::mem::take(&mut entry.queue);
                self.queued -= waiting.len();
                waiting
            }
            None => {
                if for_us && self.entries.len() < MAX_ENTRIES {
                    self.add((iface, ip), Entry { mac, state: reachable, queue: VecDeque::new() });
                }
                VecDeque::new()
            }
        }
    }

    /// Timers: `request(iface, ip)` for each retry due, `failed(iface, frame)` for each packet
    /// given up on; entries past their time are removed. Returns the next deadline.
    pub fn poll(
        &mut self,
        now: Instant,
        mut request: impl FnMut(u8, u32),
        mut failed: impl FnMut(u8, Vec<u8>),
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut expired = false;
        for ((iface, ip), entry) in self.entries.iter_mut() {
            let (iface, ip) = (*iface, *ip);
            match entry.state {
                State::Resolving { tries, next_try } if now >= next_try => {
                    if tries >= MAX_TRIES {
                        entry.state = State::Failed { until: now + FAILED_FOR };
                        for frame in entry.queue.drain(..) {
                            self.queued -= 1;
                            failed(iface, frame);
                        }
                        next = earliest(next, now + FAILED_FOR);
                    } else {
                        entry.state = State::Resolving { tries: tries + 1, next_try: now + RETRY_AFTER };
                        request(iface, ip);
                        next = earliest(next, now + RETRY_AFTER);
                    }
                }
                State::Resolving { next_try, .. } => next = earliest(next, next_try),
                State::Reachable { since, .. } if now.saturating_since(since) >= REACHABLE_FOR => {
                    expired = true
                }
                State::Failed { until } if now >= until => expired = true,
                _ => {}
            }
        }
        if expired {
            let queued = &mut self.queued;
            self.entries.retain(|(_, entry)| {
                let gone = match entry.state {
                    State::Reachable { since, .. } => now.saturating_since(since) >= REACHABLE_FOR,
                    State::Failed { until } => now >= until,
                    State::Resolving { .. } => false,
                };
                if gone {
                    *queued -= entry.queue.len();
                }
                !gone
            });
        }
        next
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn at(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    // The timers in microseconds, for arithmetic on test times.
    const RETRY_AFTER: u64 = super::RETRY_AFTER.total_micros();
    const REFRESH_AFTER: u64 = super::REFRESH_AFTER.total_micros();
    const FAILED_FOR: u64 = super::FAILED_FOR.total_micros();

    #[test]
    fn resolves_queues_and_flushes_in_order() {
        let mut n = Neighbours::new();
        assert_eq!(n.resolve(at(0), 1, 42), Resolution::Pending { request: true });
        assert_eq!(n.resolve(at(0), 1, 42), Resolution::Pending { request: false });
        for i in 0..QUEUE_PER_NEXT_HOP as u8 {
            n.enqueue(1, 42, &[i]).unwrap();
        }
        assert_eq!(n.enqueue(1, 42, &[9]), Err(QueueFull), "per next hop bound");
        let waiting = n.learn(at(10), 1, 42, MAC, false);
        assert_eq!(waiting.iter().map(|f| f[0]).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(n.queued(), 0);
        assert_eq!(n.resolve(at(20), 1, 42), Resolution::Known { mac: MAC, refresh: false });
    }

    #[test]
    fn retries_then_fails_and_returns_the_packets() {
        let mut n = Neighbours::new();
        n.resolve(at(0), 0, 7);
        n.enqueue(0, 7, &[1, 2]).unwrap();
        let mut requests = 0;
        let mut failed = Vec::new();
        for s in 1..=3u64 {
            n.poll(at(s * RETRY_AFTER), |_, _| requests += 1, |i, f| failed.push((i, f)));
        }
        assert_eq!(requests, 2, "the first request was sent by resolve, then two retries");
        assert_eq!(failed, [(0, alloc::vec![1, 2])]);
        assert_eq!(n.resolve(at(3 * RETRY_AFTER + 1), 0, 7), Resolution::Failed);
        n.poll(at(3 * RETRY_AFTER + FAILED_FOR), |_, _| {}, |_, _| {});
        assert!(n.is_empty(), "the failed entry is forgotten after its time");
    }

    #[test]
    fn unsolicited_replies_only_update_or_add_when_for_us() {
        let mut n = Neighbours::new();
        assert!(n.learn(at(0), 0, 5, MAC, false).is_empty());
        assert!(n.is_empty(), "gratuitous ARP for a stranger adds nothing");
        n.learn(at(0), 0, 5, MAC, true);
        assert_eq!(n.resolve(at(1), 0, 5), Resolution::Known { mac: MAC, refresh: false });
        assert_eq!(n.resolve(at(REFRESH_AFTER), 0, 5), Resolution::Known { mac: MAC, refresh: true });
        assert_eq!(n.resolve(at(REFRESH_AFTER + 1), 0, 5), Resolution::Known { mac: MAC, refresh: false });
    }

    #[test]
    fn the_table_never_grows_after_it_is_made() {
        let mut n = Neighbours::new();
        let capacity = n.entries.capacity();
        for ip in 0..(MAX_ENTRIES as u32 + 10) {
            n.learn(at(0), 1, ip, MAC, true);
        }
        assert_eq!(n.len(), MAX_ENTRIES);
        assert_eq!(n.entries.capacity(), capacity);
        assert_eq!(n.resolve(at(0), 2, 1), Resolution::TableFull);
    }

    #[test]
    fn total_queue_bound() {
        let mut n = Neighbours::new();
        let mut refused = 0;
        for ip in 0..(MAX_QUEUED as u32) {
            n.resolve(at(0), 0, ip);
            for _ in 0..2 {
                if n.enqueue(0, ip, &[0]).is_err() {
                    refused += 1;
                }
            }
        }
        assert_eq!(n.queued(), MAX_QUEUED);
        assert_eq!(refused, MAX_QUEUED);
    }
}
