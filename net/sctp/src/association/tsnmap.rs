//! The receiver's record of DATA TSNs (RFC 9260 sections 6.2 and 3.3.4): the Cumulative TSN
//! Ack Point, the TSNs received above it (reported as Gap Ack Blocks), and the duplicates
//! received since the last SACK.
//!
//! TSNs are kept unwrapped to 64 bits (serial number arithmetic of RFC 1982 applied once, at
//! the boundary, by [`unwrap_serial32`]).
//!
//! Bounds: a TSN more than [`MAX_AHEAD`] above the ack point is refused (a gap offset is 16
//! bits, so it could not be reported); the set above the ack point holds at most one entry
//! per DATA chunk the receive budget admitted; at most [`MAX_DUPLICATES`] duplicates are
//! remembered per SACK, further ones are counted but not listed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The furthest a TSN may lie above the Cumulative TSN Ack Point.
pub const MAX_AHEAD: u64 = 65_535;
/// Duplicate TSNs listed in one SACK at most.
pub const MAX_DUPLICATES: usize = 32;

/// Unwrap a 32-bit serial number to the 64-bit value nearest `reference`.
pub fn unwrap_serial32(reference: u64, v: u32) -> u64 {
    let base = reference & !0xFFFF_FFFF;
    let candidate = base | u64::from(v);
    if candidate > reference && candidate - reference > 0x8000_0000 && candidate >= 1 << 32 {
        candidate - (1 << 32)
    } else if candidate < reference && reference - candidate > 0x8000_0000 {
        candidate + (1 << 32)
    } else {
        candidate
    }
}

/// Unwrap a 16-bit serial number (an SSN) to the 64-bit value nearest `reference`.
pub fn unwrap_serial16(reference: u64, v: u16) -> u64 {
    let base = reference & !0xFFFF;
    let candidate = base | u64::from(v);
    if candidate > reference && candidate - reference > 0x8000 && candidate >= 1 << 16 {
        candidate - (1 << 16)
    } else if candidate < reference && reference - candidate > 0x8000 {
        candidate + (1 << 16)
    } else {
        candidate
    }
}

/// What the map says about an arriving TSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsnClass {
    /// Not seen before and within reach: the chunk may be accepted.
    New(u64),
    /// Already received (at or below the ack point, or in a gap block).
    Duplicate(u64),
    /// Too far above the ack point to be reported.
    TooFar,
}

#[derive(Clone, Debug)]
pub struct TsnMap {
    /// Unwrapped Cumulative TSN Ack Point.
    cum: u64,
    /// Runs of TSNs received above the ack point: first -> last (inclusive), disjoint and
    /// not adjacent.
    above: BTreeMap<u64, u64>,
    duplicates: Vec<u32>,
    duplicates_total: u64,
}

impl TsnMap {
    /// `initial_tsn` is the peer's Initial TSN from its INIT or INIT ACK.
    pub fn new(initial_tsn: u32) -> Self {
        TsnMap {
            cum: (1u64 << 32) + u64::from(initial_tsn) - 1,
            above: BTreeMap::new(),
            duplicates: Vec::new(),
            duplicates_total: 0,
        }
    }

    /// Classify an arriving TSN without recording it.
    pub fn classify(&self, tsn: u32) -> TsnClass {
        let t = unwrap_serial32(self.cum, tsn);
        if t <= self.cum || self.above.range(..=t).next_back().is_some_and(|(_, &e)| t <= e) {
            TsnClass::Duplicate(t)
        } else if t - self.cum > MAX_AHEAD {
            TsnClass::TooFar
        } else {
            TsnClass::New(t)
        }
    }

    /// Record an accepted new TSN (from [`TsnClass::New`]); advances the ack point over every
    /// TSN now contiguous.
    pub fn insert(&mut self, t: u64) {
        if t == self.cum + 1 {
            self.cum = t;
            if let Some((&first, &last)) = self.above.first_key_value() {
                if first == self.cum + 1 {
                    self.above.pop_first();
                    self.cum = last;
                }
            }
        } else if t > self.cum {
            let left = self.above.range(..t).next_back().map(|(&s, &e)| (s, e)).filter(|&(_, e)| e + 1 == t);
            let right = self.above.get(&(t + 1)).copied();
            if right.is_some() {
                self.above.remove(&(t + 1));
            }
            let first = left.map_or(t, |(s, _)| s);
            self.above.insert(first, right.unwrap_or(t));
        }
    }

    /// Remember a duplicate for the next SACK (bounded).
    pub fn note_duplicate(&mut self, tsn: u32) {
        self.duplicates_total += 1;
        if self.duplicates.len() < MAX_DUPLICATES {
            self.duplicates.push(tsn);
        }
    }

    /// The peer's FORWARD-TSN-less world: the ack point, as it goes on the wire.
    pub fn cumulative_tsn_ack(&self) -> u32 {
        self.cum as u32
    }

    /// The unwrapped ack point.
    pub fn cum(&self) -> u64 {
        self.cum
    }

    /// True bytes of the record of TSNs above the ack point (B-tree nodes, an upper bound).
    pub fn footprint(&self, footprint: crate::endpoint::Footprint) -> usize {
        super::segq::btree_cost::<u64, u64>(footprint, self.above.len())
    }

    /// What recording one more TSN above the ack point can add to [`footprint`](Self::footprint).
    pub fn growth(&self, footprint: crate::endpoint::Footprint) -> usize {
        let n = self.above.len();
        super::segq::btree_cost::<u64, u64>(footprint, n + 1)
            - super::segq::btree_cost::<u64, u64>(footprint, n)
    }

    /// Whether any TSN is missing below the highest received one.
    pub fn has_gaps(&self) -> bool {
        !self.above.is_empty()
    }

    /// Gap Ack Blocks as (start, end) offsets from the ack point, at most `max` of them.
    pub fn gap_blocks(&self, max: usize) -> Vec<(u16, u16)> {
        let mut blocks: Vec<(u16, u16)> = Vec::new();
        for (&first, &last) in self.above.iter().take(max) {
            blocks.push(((first - self.cum) as u16, (last - self.cum) as u16));
        }
        blocks
    }

    /// The duplicates noted since the last call, for a SACK.
    pub fn take_duplicates(&mut self) -> Vec<u32> {
        core::mem::take(&mut self.duplicates)
    }

    pub fn duplicates_total(&self) -> u64 {
        self.duplicates_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    #[test]
    fn serial_unwrap_across_the_wrap() {
        let r = (1u64 << 32) + 0xFFFF_FFF0;
        assert_eq!(unwrap_serial32(r, 5), (2u64 << 32) + 5);
        assert_eq!(unwrap_serial32(r, 0xFFFF_FFE0), (1u64 << 32) + 0xFFFF_FFE0);
        let r = (2u64 << 32) + 3;
        assert_eq!(unwrap_serial32(r, 0xFFFF_FFFE), (1u64 << 32) + 0xFFFF_FFFE);
        assert_eq!(unwrap_serial16(0x1_FFF0, 2), 0x2_0002);
        assert_eq!(unwrap_serial16(0x2_0002, 0xFFF0), 0x1_FFF0);
    }

    #[test]
    fn in_order_advances_the_ack_point() {
        let mut m = TsnMap::new(100);
        for tsn in 100..110u32 {
            let TsnClass::New(t) = m.classify(tsn) else { panic!("{tsn}") };
            m.insert(t);
        }
        assert_eq!(m.cumulative_tsn_ack(), 109);
        assert!(!m.has_gaps());
        assert!(matches!(m.classify(105), TsnClass::Duplicate(_)));
    }

    #[test]
    fn gap_blocks_as_in_rfc_9260_section_3_3_4() {
        // Received 1, 2, 4, 5, 7 (initial TSN 1): cum = 2, blocks (2,3) and (5,5).
        let mut m = TsnMap::new(1);
        for tsn in [1u32, 2, 4, 5, 7] {
            let TsnClass::New(t) = m.classify(tsn) else { panic!() };
            m.insert(t);
        }
        assert_eq!(m.cumulative_tsn_ack(), 2);
        assert_eq!(m.gap_blocks(16), vec![(2, 3), (5, 5)]);
        assert_eq!(m.gap_blocks(1), vec![(2, 3)]);
        let TsnClass::New(t) = m.classify(3) else { panic!() };
        m.insert(t);
        assert_eq!(m.cumulative_tsn_ack(), 5);
        assert_eq!(m.gap_blocks(16), vec![(2, 2)]);
    }

    /// TSNs above the ack point are kept as runs: arrivals in any order merge with both
    /// neighbours, a run's inside is a duplicate, and filling the gap under thousands of TSNs
    /// advances the ack point in one step, leaving one record per remaining run.
    #[test]
    fn runs_merge_and_a_filled_gap_advances_in_one_step() {
        let mut m = TsnMap::new(1);
        let mut rng = Csprng::seed_from_u64(1);
        let mut order: Vec<u32> = (3..3003).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next_u64() as usize % (i + 1));
        }
        for tsn in order.into_iter().chain([3005, 3007]) {
            let TsnClass::New(t) = m.classify(tsn) else { panic!("{tsn}") };
            m.insert(t);
        }
        assert_eq!(m.cumulative_tsn_ack(), 0);
        assert_eq!(m.gap_blocks(16), vec![(3, 3002), (3005, 3005), (3007, 3007)]);
        assert!(matches!(m.classify(1500), TsnClass::Duplicate(_)));
        assert!(matches!(m.classify(3006), TsnClass::New(_)));
        for tsn in [1u32, 2] {
            let TsnClass::New(t) = m.classify(tsn) else { panic!() };
            m.insert(t);
        }
        assert_eq!(m.cumulative_tsn_ack(), 3002);
        assert_eq!(m.gap_blocks(16), vec![(3, 3), (5, 5)]);
        let TsnClass::New(t) = m.classify(3006) else { panic!() };
        m.insert(t);
        assert_eq!(m.gap_blocks(16), vec![(3, 5)]);
    }

    #[test]
    fn duplicates_are_bounded_and_taken_once() {
        let mut m = TsnMap::new(0xFFFF_FFFE);
        for tsn in [0xFFFF_FFFEu32, 0xFFFF_FFFF, 0, 1] {
            let TsnClass::New(t) = m.classify(tsn) else { panic!("{tsn}") };
            m.insert(t);
        }
        assert_eq!(m.cumulative_tsn_ack(), 1);
        for _ in 0..100 {
            m.note_duplicate(0);
        }
        assert_eq!(m.take_duplicates().len(), MAX_DUPLICATES);
        assert!(m.take_duplicates().is_empty());
        assert_eq!(m.duplicates_total(), 100);
    }

    #[test]
    fn too_far_ahead_is_refused() {
        let m = TsnMap::new(10);
        assert_eq!(m.classify(10 + 70_000), TsnClass::TooFar);
        assert!(matches!(m.classify(10 + 65_000), TsnClass::New(_)));
    }

    /// A seeded comparison against a naive set: every arrival order, duplicates included,
    /// gives the same ack point, gap blocks and duplicate classification.
    #[test]
    fn against_a_naive_reference() {
        extern crate std;
        use std::collections::BTreeSet as Set;
        let mut rng = Csprng::seed_from_u64(2);
        let mut next = move || rng.next_u64();
        for round in 0..30u32 {
            let initial = (next() as u32).wrapping_add(round);
            let mut m = TsnMap::new(initial);
            let mut seen: Set<u32> = Set::new();
            for _ in 0..200 {
                let off = (next() % 120) as u32;
                let tsn = initial.wrapping_add(off);
                // Naive: the ack point is the last of the run of seen offsets from 0.
                let mut cum_off: i64 = -1;
                while seen.contains(&((cum_off + 1) as u32)) {
                    cum_off += 1;
                }
                let dup = seen.contains(&off);
                match m.classify(tsn) {
                    TsnClass::Duplicate(_) => assert!(dup, "round {round} off {off}"),
                    TsnClass::New(t) => {
                        assert!(!dup, "round {round} off {off}");
                        m.insert(t);
                        seen.insert(off);
                    }
                    TsnClass::TooFar => panic!("within reach"),
                }
                let mut cum_off: i64 = -1;
                while seen.contains(&((cum_off + 1) as u32)) {
                    cum_off += 1;
                }
                assert_eq!(m.cumulative_tsn_ack(), initial.wrapping_add(cum_off as u32).wrapping_sub(0));
                // Gap blocks cover exactly the seen offsets above the ack point.
                let mut covered = Set::new();
                for (a, b) in m.gap_blocks(usize::MAX) {
                    assert!(a >= 2 && a <= b);
                    for o in a..=b {
                        covered.insert((cum_off + i64::from(o)) as u32);
                    }
                }
                let above: Set<u32> = seen.iter().copied().filter(|&o| i64::from(o) > cum_off).collect();
                assert_eq!(covered, above, "round {round}");
            }
        }
    }
}
