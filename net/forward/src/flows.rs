//! The flow table: the TMM seed's answer. Flows are bounded objects from the first packet on.
//!
//! * The table is allocated once, when the forwarder starts, and never grows: per-packet work
//!   allocates nothing, so memory is flat under any stream, whenever it started.
//! * Every flow expires after an idle timeout per protocol, and after a maximum lifetime even
//!   if it never goes idle (the seed's flow lived forever because it kept receiving packets).
//! * Above the high-water mark (95 % of capacity) a new flow first evicts down towards the
//!   low-water mark (85 %, F5's defaults), idle-expired flows first, else the least recently
//!   seen of a bounded sample; memory pressure from the supervisor lowers the capacity used.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones).

use alloc::vec;
use alloc::vec::Vec;

pub use bulkhead_base::time::{Duration, Instant};

/// The 5-tuple (ICMP: the echo identifier as both ports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: u32,
    pub dst: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
}

/// One flow's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen: Instant,
    pub last_seen: Instant,
}

/// Idle timeouts per protocol and the maximum lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
    pub lifetime: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts {
            tcp: Duration::from_secs(300),
            udp: Duration::from_secs(60),
            icmp: Duration::from_secs(10),
            other: Duration::from_secs(60),
            lifetime: Duration::from_secs(3600),
        }
    }
}

/// What happened to a packet's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowVerdict {
    /// An existing flow was updated.
    Existing,
    /// A new flow was created (possibly after evicting others, or replacing an expired one).
    Created,
    /// The table is full and nothing could be evicted: the packet is forwarded untracked.
    Untracked,
}

/// Counters of the table's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub created: u64,
    pub expired_idle: u64,
    pub expired_lifetime: u64,
    pub evicted: u64,
    pub untracked: u64,
}

/// Low- and high-water marks, in percent of the capacity in use.
const LOW_WATER_PERCENT: usize = 85;
const HIGH_WATER_PERCENT: usize = 95;
/// Under memory pressure the table uses this share of its capacity.
const PRESSURE_PERCENT: usize = 50;
/// Slots examined per eviction, and evictions per new flow (bounded work per packet).
const EVICTION_SAMPLE: usize = 16;
const EVICTIONS_PER_INSERT: usize = 8;

pub struct FlowTable {
    slots: Vec<Option<Flow>>,
    mask: usize,
    capacity: usize,
    count: usize,
    pressure: bool,
    timeouts: FlowTimeouts,
    cursor: usize,
    pub counters: FlowCounters,
}

impl FlowTable {
    /// A table for `capacity` flows (its slots: the next power of two above capacity × 4/3).
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> FlowTable {
        let capacity = capacity.max(16);
        let slots = (capacity + capacity / 3).next_power_of_two();
        FlowTable {
            slots: vec![None; slots],
            mask: slots - 1,
            capacity,
            count: 0,
            pressure: false,
            timeouts,
            cursor: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Bytes of one slot of the table.
    pub const SLOT_BYTES: usize = core::mem::size_of::<Option<Flow>>();

    /// The bytes a table for `capacity` flows allocates: to size a table to a memory budget.
    pub fn bytes_for(capacity: usize) -> usize {
        let capacity = capacity.max(16);
        (capacity + capacity / 3).next_power_of_two() * core::mem::size_of::<Option<Flow>>()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Soft-threshold pressure from the supervisor: use half the capacity until it clears.
    pub fn set_pressure(&mut self, on: bool) {
        self.pressure = on;
    }

    /// Heap bytes the table holds (fixed from construction on).
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Option<Flow>>()
    }

    /// Accounts one packet of `bytes` to its flow.
    pub fn touch(&mut self, now: Instant, key: FlowKey, bytes: u64) -> FlowVerdict {
        if let Some(index) = self.find(&key) {
            let timeouts = self.timeouts;
            let Some(Some(flow)) = self.slots.get_mut(index) else { return FlowVerdict::Untracked };
            let expired_lifetime = now.saturating_since(flow.first_seen) >= timeouts.lifetime;
            let expired_idle = now.saturating_since(flow.last_seen) >= idle_timeout(&timeouts, key.protocol);
            if !expired_lifetime && !expired_idle {
                flow.packets += 1;
                flow.bytes += bytes;
                flow.last_seen = now;
                return FlowVerdict::Existing;
            }
            // The old flow ends here; the packet starts a new one in its place.
            if expired_lifetime {
                self.counters.expired_lifetime += 1;
            } else {
                self.counters.expired_idle += 1;
            }
            *flow = Flow { key, packets: 1, bytes, first_seen: now, last_seen: now };
            self.counters.created += 1;
            return FlowVerdict::Created;
        }
        if self.count >= self.high_water() {
            let target = self.low_water();
            for _ in 0..EVICTIONS_PER_INSERT {
                if self.count <= target || !self.evict_one(now) {
                    break;
                }
            }
        }
        if self.count >= self.limit() && !self.evict_one(now) {
            self.counters.untracked += 1;
            return FlowVerdict::Untracked;
        }
        let mut index = self.home(&key);
        while matches!(self.slots.get(index), Some(Some(_))) {
            index = (index + 1) & self.mask;
        }
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(Flow { key, packets: 1, bytes, first_seen: now, last_seen: now });
            self.count += 1;
            self.counters.created += 1;
            FlowVerdict::Created
        } else {
            self.counters.untracked += 1;
            FlowVerdict::Untracked
        }
    }

    /// Removes expired flows among the next `budget` slots; returns how many it removed.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        // A removal revisits its slot, so a full sweep can take up to twice the slots.
        for _ in 0..budget.min(2 * self.slots.len()) {
            let index = self.cursor;
            self.cursor = (self.cursor + 1) & self.mask;
            let Some(Some(flow)) = self.slots.get(index) else { continue };
            match self.expiry(flow, now) {
                Some(Expiry::Lifetime) => self.counters.expired_lifetime += 1,
                Some(Expiry::Idle) => self.counters.expired_idle += 1,
                None => continue,
            }
            self.remove_at(index);
            removed += 1;
            // The backward shift may have moved an unvisited flow into `index`: look again.
            self.cursor = index;
        }
        removed
    }

    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        self.find(key).and_then(|i| self.slots.get(i)).and_then(Option::as_ref)
    }

    /// The `n` flows with the most bytes, most first.
    pub fn top_by_bytes(&self, n: usize) -> Vec<Flow> {
        let mut top: Vec<Flow> = Vec::with_capacity(n + 1);
        for flow in self.slots.iter().flatten() {
            if top.len() < n || top.last().is_some_and(|last| flow.bytes > last.bytes) {
                let at = top.partition_point(|f| f.bytes >= flow.bytes);
                top.insert(at, *flow);
                top.truncate(n);
            }
        }
        top
    }

    // ---- private ----------------------------------------------------------------------------

    fn limit(&self) -> usize {
        if self.pressure {
            self.capacity * PRESSURE_PERCENT / 100
        } else {
            self.capacity
        }
    }

    fn high_water(&self) -> usize {
        self.limit() * HIGH_WATER_PERCENT / 100
    }

    fn low_water(&self) -> usize {
        self.limit() * LOW_WATER_PERCENT / 100
    }

    fn expiry(&self, flow: &Flow, now: Instant) -> Option<Expiry> {
        if now.saturating_since(flow.first_seen) >= self.timeouts.lifetime {
            Some(Expiry::Lifetime)
        } else if now.saturating_since(flow.last_seen) >= idle_timeout(&self.timeouts, flow.key.protocol) {
            Some(Expiry::Idle)
        } else {
            None
        }
    }

    /// Evicts one flow from a sample at the sweep cursor: an expired one if there is one, else
    /// the least recently seen. False if the sample held no flow.
    fn evict_one(&mut self, now: Instant) -> bool {
        let mut victim: Option<(usize, Instant)> = None;
        let mut index = self.cursor;
        let mut examined = 0;
        let mut visited = 0;
        while examined < EVICTION_SAMPLE && visited < self.slots.len() {
            if let Some(Some(flow)) = self.slots.get(index) {
                examined += 1;
                if self.expiry(flow, now).is_some() {
                    victim = Some((index, Instant::ZERO));
                    break;
                }
                if victim.is_none_or(|(_, seen)| flow.last_seen < seen) {
                    victim = Some((index, flow.last_seen));
                }
            }
            index = (index + 1) & self.mask;
            visited += 1;
        }
        self.cursor = index;
        let Some((index, _)) = victim else { return false };
        let expired = self.slots.get(index).and_then(Option::as_ref).and_then(|f| self.expiry(f, now));
        match expired {
            Some(Expiry::Lifetime) => self.counters.expired_lifetime += 1,
            Some(Expiry::Idle) => self.counters.expired_idle += 1,
            None => self.counters.evicted += 1,
        }
        self.remove_at(index);
        true
    }

    fn home(&self, key: &FlowKey) -> usize {
        // FNV-1a over the tuple, then a final mix: cheap, and no allocation.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for word in [
            u64::from(key.src),
            u64::from(key.dst),
            u64::from(key.src_port) << 16 | u64::from(key.dst_port),
            u64::from(key.protocol),
        ] {
            h ^= word;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 29;
        (h as usize) & self.mask
    }

    fn find(&self, key: &FlowKey) -> Option<usize> {
        let mut index = self.home(key);
        for _ in 0..self.slots.len() {
            match self.slots.get(index)? {
                Some(flow) if flow.key == *key => return Some(index),
                Some(_) => index = (index + 1) & self.mask,
                None => return None,
            }
        }
        None
    }

    /// Empties slot `index` and shifts the rest of its probe run back (no tombstones).
    fn remove_at(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.take().is_some() {
                self.count -= 1;
            }
        }
        let mut hole = index;
        let mut next = (index + 1) & self.mask;
        while let Some(Some(flow)) = self.slots.get(next) {
            let home = self.home(&flow.key);
            // Move `flow` into the hole if its home does not lie cyclically in (hole, next].
            let distance_to_next = next.wrapping_sub(home) & self.mask;
            let distance_to_hole = hole.wrapping_sub(home) & self.mask;
            if distance_to_hole < distance_to_next {
                let moved = self.slots.get_mut(next).and_then(Option::take);
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = moved;
                }
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
    }
}

#[derive(Clone, Copy)]
enum Expiry {
    Idle,
    Lifetime,
}

fn idle_timeout(timeouts: &FlowTimeouts, protocol: u8) -> Duration {
    match protocol {
        6 => timeouts.tcp,
        17 => timeouts.udp,
        1 => timeouts.icmp,
        _ => timeouts.other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    fn at(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn key(n: u32, protocol: u8) -> FlowKey {
        FlowKey {
            src: 0x0a00_0000 | n,
            dst: 0xc633_6402,
            src_port: (n % 60000) as u16,
            dst_port: 514,
            protocol,
        }
    }

    fn timeouts() -> FlowTimeouts {
        FlowTimeouts { tcp: secs(300), udp: secs(60), icmp: secs(10), other: secs(60), lifetime: secs(3600) }
    }

    #[test]
    fn idle_timeouts_per_protocol() {
        let mut t = FlowTable::new(100, timeouts());
        assert_eq!(t.touch(at(0), key(1, 17), 100), FlowVerdict::Created);
        assert_eq!(t.touch(at(0), key(2, 1), 100), FlowVerdict::Created);
        assert_eq!(t.touch(at(0), key(3, 6), 100), FlowVerdict::Created);
        assert_eq!(t.expire(at(11 * SECOND), 1 << 20), 1, "ICMP idles out after 10 s");
        assert!(t.get(&key(2, 1)).is_none());
        assert_eq!(t.expire(at(61 * SECOND), 1 << 20), 1, "UDP after 60 s");
        assert_eq!(t.expire(at(299 * SECOND), 1 << 20), 0);
        assert_eq!(t.expire(at(300 * SECOND), 1 << 20), 1, "TCP after 300 s");
        assert_eq!(t.counters.expired_idle, 3);
        assert!(t.is_empty());
    }

    #[test]
    fn a_flow_that_never_idles_still_ends_at_its_lifetime() {
        let mut t = FlowTable::new(100, FlowTimeouts { lifetime: secs(10), ..timeouts() });
        let k = key(7, 17);
        let mut created = 0;
        // 1,000 packets a second for 35 s: the flow never idles.
        for ms in 0..35_000u64 {
            if t.touch(at(ms * 1000), k, 60) == FlowVerdict::Created {
                created += 1;
            }
        }
        assert_eq!(created, 4, "created at 0, 10, 20, 30 s");
        assert_eq!(t.counters.expired_lifetime, 3);
        assert_eq!(t.get(&k).unwrap().packets, 5_000);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn memory_is_flat_under_a_constant_stream() {
        let mut t = FlowTable::new(1000, timeouts());
        let bytes = t.memory_bytes();
        for i in 0..1_000_000u64 {
            t.touch(at(i * 1000), key((i % 50) as u32, 17), 100);
            if i % 1000 == 0 {
                t.expire(at(i * 1000), 64);
            }
        }
        assert_eq!(t.memory_bytes(), bytes);
        assert_eq!(t.len(), 50);
    }

    #[test]
    fn new_flows_evict_down_to_the_low_water_mark_idle_first() {
        let mut t = FlowTable::new(1000, timeouts());
        // 900 flows, the first 100 idle for over a minute by the time the flood comes.
        for n in 0..100 {
            t.touch(at(0), key(n, 17), 1);
        }
        for n in 100..900 {
            t.touch(at(50 * SECOND), key(n, 17), 1);
        }
        for n in 900..2000 {
            let v = t.touch(at(70 * SECOND), key(n, 17), 1);
            assert_ne!(v, FlowVerdict::Untracked, "flow {n}");
            assert!(t.len() <= 1000, "never above capacity");
        }
        assert_eq!(t.counters.expired_idle, 100, "the idle ones went first");
        assert!(t.counters.evicted > 0);
        assert!(t.len() <= 950, "stays near the watermarks: {}", t.len());
        // Under pressure the table shrinks towards half.
        t.set_pressure(true);
        for n in 2000..3000 {
            t.touch(at(71 * SECOND), key(n, 17), 1);
        }
        assert!(t.len() <= 500, "{}", t.len());
    }

    #[test]
    fn removal_keeps_every_other_flow_findable() {
        let mut t = FlowTable::new(64, FlowTimeouts { udp: secs(5), ..timeouts() });
        for n in 0..60 {
            t.touch(at(if n % 2 == 0 { 0 } else { 4 * SECOND }), key(n, 17), 1);
        }
        t.expire(at(6 * SECOND), 1 << 20);
        assert_eq!(t.len(), 30);
        for n in (1..60).step_by(2) {
            assert!(t.get(&key(n, 17)).is_some(), "flow {n} lost by a backward shift");
        }
    }

    #[test]
    fn top_flows_by_bytes() {
        let mut t = FlowTable::new(100, timeouts());
        for n in 0..20u32 {
            t.touch(at(0), key(n, 6), u64::from(n) * 10);
        }
        let top = t.top_by_bytes(3);
        let bytes: Vec<u64> = top.iter().map(|f| f.bytes).collect();
        assert_eq!(bytes, [190, 180, 170]);
    }
}
