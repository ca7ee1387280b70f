//! The figures the allocator reports: per domain, for the shared heap, and after a shed.

use crate::books::{Books, Generation};
use crate::domain::Domain;

/// One domain's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainStats {
    /// Bytes held: whole chunks owned (free slots included) plus large blocks' footprints.
    pub used: usize,
    /// Footprint of live blocks (slot sizes, large footprints), of every life.
    pub live: usize,
    /// Live blocks, of every life.
    pub blocks: usize,
    /// Highest `used` seen.
    pub peak: usize,
    /// Soft quota.
    pub soft: usize,
    /// Hard quota.
    pub hard: usize,
    /// Admissions refused.
    pub failed_admissions: u64,
    /// Chunks owned.
    pub chunks: usize,
    /// The current life of the domain.
    pub generation: Generation,
    /// Of `live`: the footprint of blocks allocated by earlier lives.
    pub earlier_live: usize,
    /// Of `blocks`: the blocks allocated by earlier lives.
    pub earlier_blocks: usize,
}

/// The shared heap's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the heap manages.
    pub total: usize,
    /// Bytes handed out (chunks and large blocks).
    pub used: usize,
    /// `total - used`.
    pub free: usize,
    /// Largest block that can be allocated (align 8), found by probing: a binary search of
    /// allocate-and-free calls, O(log(heap) × holes) under the lock. A lower bound, exact to
    /// within 16 bytes. Do not call it on a hot path.
    pub largest_free: usize,
}

/// What [`DomainAllocator::reclaim`](crate::DomainAllocator::reclaim) found: the blocks the
/// domain's current life allocated that are still live. Blocks of earlier lives are not counted,
/// whether they are still live or were freed during this life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The domain checked.
    pub domain: Domain,
    /// The life checked.
    pub generation: Generation,
    /// Footprint of the live blocks that life allocated.
    pub bytes: usize,
    /// Live blocks that life allocated.
    pub blocks: usize,
    /// Bytes of wholly free chunks this reclaim gave back to the shared heap.
    pub returned: usize,
}

impl DomainStats {
    pub(crate) fn from_books(b: &Books) -> DomainStats {
        let live = b.live();
        DomainStats {
            used: b.used,
            live: live.live,
            blocks: live.blocks,
            peak: b.peak,
            soft: b.quota.soft,
            hard: b.quota.hard,
            failed_admissions: b.failed_admissions,
            chunks: b.chunks,
            generation: b.generation,
            earlier_live: b.earlier.live,
            earlier_blocks: b.earlier.blocks,
        }
    }
}

impl LeakReport {
    /// Nothing the checked life allocated is still live.
    pub fn is_clean(&self) -> bool {
        self.bytes == 0 && self.blocks == 0
    }
}
