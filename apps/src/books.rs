//! The supervisor's view of the accounted allocator.

use bulkhead_mem::DomainAllocator;

use crate::domain::Domain;
use crate::supervisor::{Leak, MemoryBooks};

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

    fn reclaim(&self, d: Domain) -> Leak {
        let report = self.0.reclaim(d);
        Leak { bytes: report.bytes, blocks: report.blocks }
    }
}
