//! The global allocators: [`DomainAllocator`] (accounted) and [`UnaccountedFrontEnd`] (the same
//! front end without books, for the bench), and the [`DomainGuard`] scope that says who pays.
//!
//! The current domain is an `AtomicU8` beside the lock: entering and leaving a domain is one
//! atomic swap and allocates nothing.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU8, Ordering};

use spin::Mutex;

use crate::books::Generation;
use crate::domain::{Domain, OverQuota, PlanError, Quota};
use crate::engine::Engine;
use crate::stats::{DomainStats, HeapStats, LeakReport};

/// Scope guard from [`DomainAllocator::enter`]: restores the previous domain when dropped.
#[must_use = "the domain is left as soon as the guard is dropped"]
pub struct DomainGuard<'a> {
    current: &'a AtomicU8,
    previous: Domain,
}

/// The accounted allocator.
pub struct DomainAllocator {
    current: AtomicU8,
    pub(crate) engine: Mutex<Engine<true>>,
}

/// The same size-class front end with the books switched off: it exists so that the bench can
/// measure what accounting costs. Not meant as a global allocator for the image.
pub struct UnaccountedFrontEnd {
    current: AtomicU8,
    engine: Mutex<Engine<false>>,
}

impl DomainAllocator {
    /// An allocator with no heap yet (every allocation fails until [`init`](Self::init)) and no
    /// quotas (every admission succeeds until [`set_quotas`](Self::set_quotas)).
    pub const fn new() -> Self {
        DomainAllocator { current: AtomicU8::new(Domain::Kernel as u8), engine: Mutex::new(Engine::new()) }
    }

    /// Hands the allocator its heap.
    ///
    /// Only the first call with a region of at least 64 bytes takes effect; later calls are
    /// ignored. A start aligned to [`CHUNK_SIZE`](crate::CHUNK_SIZE) wastes nothing on chunk
    /// alignment.
    ///
    /// # Safety
    ///
    /// `[heap_start, heap_start + heap_size)` is unused RAM, valid for reads and writes, that
    /// nothing else touches from now on: the allocator owns it forever.
    pub unsafe fn init(&self, heap_start: *mut u8, heap_size: usize) {
        // SAFETY: the caller's contract is the heap's.
        unsafe { self.engine.lock().init(heap_start, heap_size) }
    }

    /// Sets every domain's quotas, after checking that the plan fits: the sum of the hard quotas
    /// (the kernel's, i.e. the kernel reserve, included) plus `overshoot_reserve` must not exceed
    /// the heap, and no soft quota may exceed its hard quota. A refused plan changes nothing.
    pub fn set_quotas(
        &self,
        quotas: [Quota; Domain::COUNT],
        overshoot_reserve: usize,
    ) -> Result<(), PlanError> {
        self.engine.lock().set_quotas(quotas, overshoot_reserve)
    }

    /// Makes `domain` current until the guard is dropped; guards nest. Allocates nothing.
    pub fn enter(&self, domain: Domain) -> DomainGuard<'_> {
        enter(&self.current, domain)
    }

    /// The domain allocations are charged to now ([`Domain::Kernel`] before any `enter`).
    pub fn current(&self) -> Domain {
        current(&self.current)
    }

    /// Asks for room for `bytes` more in `domain`: granted when `used + bytes <= hard`. A refusal
    /// is counted in `failed_admissions`. Admission reserves nothing; it is the data path's
    /// backpressure point (for `net`, which is never shed, the only bound: see [`Domain`]).
    /// Size `bytes` with [`block_footprint`](crate::block_footprint).
    pub fn admit(&self, domain: Domain, bytes: usize) -> Result<(), OverQuota> {
        self.engine.lock().admit(domain, bytes)
    }

    /// `used > soft`.
    pub fn over_soft(&self, domain: Domain) -> bool {
        self.engine.lock().over_soft(domain)
    }

    /// `used > hard`.
    pub fn over_hard(&self, domain: Domain) -> bool {
        self.engine.lock().over_hard(domain)
    }

    /// A domain's figures.
    pub fn stats(&self, domain: Domain) -> DomainStats {
        self.engine.lock().stats(domain)
    }

    /// The shared heap's figures; see [`HeapStats::largest_free`] for its cost.
    pub fn heap_stats(&self) -> HeapStats {
        self.engine.lock().heap_stats()
    }

    /// What the domain held (live bytes, blocks of earlier lives) when its current life began.
    pub fn baseline(&self, domain: Domain) -> (usize, usize) {
        self.engine.lock().baseline(domain)
    }

    /// Begins a new life of `domain` (called before its subsystem starts or restarts): from now
    /// on its allocations belong to the new generation, and a later
    /// [`reclaim`](Self::reclaim) reports exactly what this life leaves behind. Blocks of earlier
    /// lives stay charged to the domain (`used`, `live`) but never to this life, whenever they
    /// are freed. Their chunks are retired: the new life allocates only in chunks of its own.
    /// O(chunks with a free slot in the domain); allocates nothing.
    pub fn begin_generation(&self, domain: Domain) -> Generation {
        self.engine.lock().begin_generation(domain)
    }

    /// The supervisor's name for [`begin_generation`](Self::begin_generation): what is live now
    /// becomes the baseline of the life that starts.
    pub fn set_baseline(&self, domain: Domain) {
        self.begin_generation(domain);
    }

    /// After a shed dropped a subsystem's state: gives the domain's wholly free chunks back to
    /// the shared heap, then reports the blocks the domain's current life allocated that are
    /// still live: a leak, with its exact bytes and blocks. Leaked blocks stay charged to the
    /// domain and keep their chunk. O(size classes); allocates nothing.
    pub fn reclaim(&self, domain: Domain) -> LeakReport {
        self.engine.lock().reclaim(domain)
    }
}

impl Default for DomainAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `Engine` upholds the `GlobalAlloc` contract (see its methods); the lock serialises
// every call.
unsafe impl GlobalAlloc for DomainAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let domain = self.current();
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().alloc(domain, layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded caller contract: `ptr` came from this allocator with `layout`.
        unsafe { self.engine.lock().dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let domain = self.current();
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().alloc_zeroed(domain, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded caller contract: `ptr` came from this allocator with `layout`.
        unsafe { self.engine.lock().realloc(ptr, layout, new_size) }
    }
}

impl UnaccountedFrontEnd {
    /// A front end with no heap yet.
    pub const fn new() -> Self {
        UnaccountedFrontEnd {
            current: AtomicU8::new(Domain::Kernel as u8),
            engine: Mutex::new(Engine::new()),
        }
    }

    /// Hands the front end its heap.
    ///
    /// # Safety
    ///
    /// As [`DomainAllocator::init`].
    pub unsafe fn init(&self, heap_start: *mut u8, heap_size: usize) {
        // SAFETY: the caller's contract is the heap's.
        unsafe { self.engine.lock().init(heap_start, heap_size) }
    }

    /// Makes `domain` current (which chunks serve small blocks) until the guard is dropped.
    pub fn enter(&self, domain: Domain) -> DomainGuard<'_> {
        enter(&self.current, domain)
    }

    /// The shared heap's figures.
    pub fn heap_stats(&self) -> HeapStats {
        self.engine.lock().heap_stats()
    }
}

impl Default for UnaccountedFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: as for `DomainAllocator`.
unsafe impl GlobalAlloc for UnaccountedFrontEnd {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let domain = current(&self.current);
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().alloc(domain, layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let domain = current(&self.current);
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().alloc_zeroed(domain, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded caller contract.
        unsafe { self.engine.lock().realloc(ptr, layout, new_size) }
    }
}

impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        self.current.store(self.previous as u8, Ordering::Relaxed);
    }
}

fn enter(current: &AtomicU8, domain: Domain) -> DomainGuard<'_> {
    let previous = current.swap(domain as u8, Ordering::Relaxed);
    DomainGuard { current, previous: Domain::from_index(usize::from(previous)).unwrap_or(Domain::Kernel) }
}

fn current(current: &AtomicU8) -> Domain {
    Domain::from_index(usize::from(current.load(Ordering::Relaxed))).unwrap_or(Domain::Kernel)
}

#[cfg(test)]
mod tests;
