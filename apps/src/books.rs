//! The supervisor's view of the accounted allocator.

use bulkhead_mem::DomainAllocator;

use crate::context::{Admission, Room};
use crate::domain::{Domain, OverQuota};
use crate::supervisor::{DomainFigures, HeapFigures, Leak, MemoryBooks};

/// [`MemoryBooks`] over the global [`DomainAllocator`].
#[derive(Clone, Copy)]
pub struct AllocatorBooks(pub &'static DomainAllocator);

impl MemoryBooks for AllocatorBooks {
    fn with_domain<R>(&self, d: Domain, f: impl FnOnce() -> R) -> R {
        let _guard = self.0.enter(d);
        f()
    }

    fn over_hard(&self, d: Domain) -> bool {
        self.0.over_hard(d)
    }

    fn over_soft(&self, d: Domain) -> bool {
        self.0.over_soft(d)
    }

    fn set_baseline(&self, d: Domain) {
        self.0.set_baseline(d)
    }

    fn stats(&self, d: Domain) -> DomainFigures {
        let s = self.0.stats(d);
        DomainFigures {
            used: s.used,
            live: s.live,
            peak: s.peak,
            blocks: s.blocks,
            chunks: s.chunks,
            soft: s.soft,
            hard: s.hard,
            failed_admissions: s.failed_admissions,
        }
    }

    fn heap_stats(&self) -> HeapFigures {
        let h = self.0.heap_stats();
        HeapFigures { total: h.total, used: h.used, free: h.free, largest_free: h.largest_free }
    }

    fn reclaim(&self, d: Domain) -> Leak {
        let report = self.0.reclaim(d);
        Leak { bytes: report.bytes, blocks: report.blocks }
    }
}

impl Admission for AllocatorBooks {
    fn admit(&self, d: Domain, bytes: usize) -> Result<(), OverQuota> {
        self.0.admit(d, bytes)
    }

    fn room(&self, d: Domain) -> Room {
        let s = self.0.stats(d);
        Room { soft: s.soft.saturating_sub(s.used), hard: s.hard.saturating_sub(s.used) }
    }
}
