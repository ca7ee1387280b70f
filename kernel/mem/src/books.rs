//! One domain's books, kept per generation.
//!
//! A domain lives a succession of lives: each time its subsystem (re)starts, the supervisor
//! begins a new [`Generation`]. Every block records the domain *and* the generation that
//! allocated it (a small block through its chunk, which serves one generation only; a large
//! block in its trailer), and a free credits the generation that allocated it. So the books
//! keep two tallies:
//!
//! * `current`: blocks allocated by the current life and still live;
//! * `earlier`: blocks of all earlier lives still live.
//!
//! When a life ends its leftovers are exactly `current`: a block of an earlier life that is
//! freed during this one is credited to `earlier`, so it can neither hide a leak of this life
//! nor be mistaken for one. (The scheme before this one kept a single tally and compared it with
//! the figure at the last baseline by saturating subtraction; freeing an earlier life's block
//! of N bytes hid a new leak of N bytes.)
//!
//! `used`, `peak` and `chunks` are the domain's, across its lives: chunks and large blocks are
//! memory the domain holds whoever allocated in them.
//!
//! Generations are 32-bit and wrap: a block would be mistaken for the current life's only if it
//! had lived through exactly 2^32 restarts of its domain.

use core::fmt;

use crate::domain::{Domain, OverQuota, Quota};

/// A life of a domain: bumped each time its subsystem (re)starts
/// ([`DomainAllocator::begin_generation`](crate::DomainAllocator::begin_generation)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(pub u32);

/// Live bytes (footprints) and blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub live: usize,
    pub blocks: usize,
}

/// One domain's books.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Books {
    /// Bytes held: whole chunks owned (free slots included) plus large blocks' footprints.
    pub used: usize,
    pub peak: usize,
    pub chunks: usize,
    pub failed_admissions: u64,
    pub quota: Quota,
    /// The current life.
    pub generation: Generation,
    /// Blocks the current life allocated, still live.
    pub current: Tally,
    /// Blocks of earlier lives, still live.
    pub earlier: Tally,
    /// `earlier` when the current life began: what the domain held at its start.
    pub baseline: Tally,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Tally {
    pub const ZERO: Tally = Tally { live: 0, blocks: 0 };

    fn add(&mut self, bytes: usize) {
        self.live = self.live.wrapping_add(bytes);
        self.blocks = self.blocks.wrapping_add(1);
    }

    fn sub(&mut self, bytes: usize) {
        self.live = self.live.wrapping_sub(bytes);
        self.blocks = self.blocks.wrapping_sub(1);
    }

    fn plus(self, other: Tally) -> Tally {
        Tally { live: self.live.wrapping_add(other.live), blocks: self.blocks.wrapping_add(other.blocks) }
    }
}

impl Books {
    /// Generation 0, no quota.
    pub const UNLIMITED: Books = Books {
        used: 0,
        peak: 0,
        chunks: 0,
        failed_admissions: 0,
        quota: Quota { hard: usize::MAX, soft: usize::MAX },
        generation: Generation(0),
        current: Tally::ZERO,
        earlier: Tally::ZERO,
        baseline: Tally::ZERO,
    };

    /// The domain took `bytes` from the heap (a chunk or a large block).
    pub fn hold(&mut self, bytes: usize) {
        self.used = self.used.wrapping_add(bytes);
        if self.used > self.peak {
            self.peak = self.used;
        }
    }

    /// The domain gave `bytes` back to the heap.
    pub fn give(&mut self, bytes: usize) {
        self.used = self.used.wrapping_sub(bytes);
    }

    /// A block of `bytes` allocated now: by the current life.
    pub fn charge(&mut self, bytes: usize) {
        self.current.add(bytes);
    }

    /// A block of `bytes` allocated by life `generation` was freed.
    pub fn credit(&mut self, generation: Generation, bytes: usize) {
        if generation == self.generation {
            self.current.sub(bytes);
        } else {
            self.earlier.sub(bytes);
        }
    }

    /// Every live block, whichever life allocated it.
    pub fn live(&self) -> Tally {
        self.current.plus(self.earlier)
    }

    /// Ends the current life and begins the next: what the ending life still holds joins the
    /// earlier lives' tally, which becomes the new life's baseline.
    pub fn begin_generation(&mut self) -> Generation {
        self.earlier = self.live();
        self.current = Tally::ZERO;
        self.baseline = self.earlier;
        self.generation = Generation(self.generation.0.wrapping_add(1));
        self.generation
    }

    /// Room for `bytes` more: granted when `used + bytes <= hard`; a refusal is counted.
    pub fn admit(&mut self, domain: Domain, bytes: usize) -> Result<(), OverQuota> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.quota.hard => Ok(()),
            _ => {
                self.failed_admissions = self.failed_admissions.wrapping_add(1);
                Err(OverQuota { domain, requested: bytes, used: self.used, hard: self.quota.hard })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_credits_the_life_that_allocated_the_block() {
        let mut b = Books::UNLIMITED;
        b.charge(112);
        let first = b.generation;
        assert_eq!(b.begin_generation(), Generation(1));
        assert_eq!(
            (b.current, b.earlier, b.baseline),
            (Tally::ZERO, Tally { live: 112, blocks: 1 }, b.earlier)
        );
        b.charge(112);
        b.credit(first, 112);
        assert_eq!(b.current, Tally { live: 112, blocks: 1 }, "the new life's leak stays visible");
        assert_eq!(b.earlier, Tally::ZERO);
        assert_eq!(b.live(), Tally { live: 112, blocks: 1 });
        b.credit(Generation(1), 112);
        assert_eq!(b.live(), Tally::ZERO);
    }

    #[test]
    fn admission_counts_refusals_and_never_overflows() {
        let mut b = Books::UNLIMITED;
        b.quota = Quota { hard: 100, soft: 50 };
        b.hold(60);
        assert_eq!(b.admit(Domain::Net, 40), Ok(()));
        assert_eq!(
            b.admit(Domain::Net, 41),
            Err(OverQuota { domain: Domain::Net, requested: 41, used: 60, hard: 100 })
        );
        assert!(b.admit(Domain::Net, usize::MAX).is_err());
        assert_eq!(b.failed_admissions, 2);
        b.give(60);
        assert_eq!((b.used, b.peak), (0, 60));
    }

    #[test]
    fn generations_wrap() {
        let mut b = Books::UNLIMITED;
        b.generation = Generation(u32::MAX);
        assert_eq!(b.begin_generation(), Generation(0));
    }
}
