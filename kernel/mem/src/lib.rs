//! Memory domains: the accounted global allocator.
//!
//! Every allocation is charged to the [`Domain`] current when it is made and credited to the
//! same domain when it is freed, whoever frees it. The charge is the true footprint: what the
//! shared heap gave up, never the requested size.
//!
//! # Layout of the heap
//!
//! ```text
//! shared heap (linked_list_allocator::Heap)
//!  ├── chunk (64 KiB, aligned 64 KiB)  owned by one (domain, size class)
//!  │     [slot][slot][slot]...                        small blocks: <= 2 KiB, align <= 64
//!  ├── large block  [payload, rounded to 8][trailer 8 B: domain]   everything else
//!  └── holes
//! chunk table (end of the region, outside the heap): one header per 64 KiB of the region
//! ```
//!
//! Chunk headers live in a table at the end of the region, indexed by `address >> 16`, not at
//! the start of each chunk: headers at 64 KiB-aligned addresses would all fall into the same
//! cache sets and miss on almost every free (measured: small allocations 3× slower). The table
//! costs `region / 64 KiB × 64` bytes (0.1 %), is not part of the heap, and so is nobody's charge.
//!
//! * **Small blocks** come from 24 size classes (16 B .. 2 KiB) kept per domain. A class keeps a
//!   doubly linked list of its chunks that have a free slot; a chunk hands out slots from its own
//!   free list, then by bumping into never-used space. The chunk of a block is found from the
//!   pointer (`(address - origin) >> 16` indexes the chunk table), and its header names the
//!   domain and the class, so alloc and free are O(1).
//! * **Large blocks** (and small sizes with an alignment above 64) go straight to the shared heap,
//!   with an 8-byte trailer after the payload that names the domain. `dealloc` and `realloc`
//!   receive the layout, so the trailer's place is known without a search.
//!
//! # The books
//!
//! A domain's `used` is every chunk it owns (free slots included) plus its large blocks'
//! footprints, measured as the change of [`Heap::used`] around the heap call. So the sum of
//! `used` over all domains equals the heap's `used()` at every moment. `live`/`blocks` count the
//! slots (or large footprints) actually handed out.
//!
//! # Free-chunk policy
//!
//! A chunk that becomes wholly free stays with its (domain, class) as the class's one *spare*;
//! a second chunk of the same class that becomes wholly free goes straight back to the heap.
//! So a domain caches at most one free chunk per class (24 × 64 KiB at worst), which keeps a
//! packet-sized alloc/free ping-pong from bouncing chunks through the heap. [`DomainAllocator::reclaim`]
//! returns a domain's spares; when the heap runs out, the allocator returns every domain's spares
//! and tries once more before it answers null.
//!
//! # Quotas
//!
//! An infallible allocation is never refused for a quota: the supervisor sheds a domain that is
//! over its hard quota at the next turn of the loop. Quotas are enforced where work is admitted,
//! with [`DomainAllocator::admit`], and reported by [`DomainAllocator::over_hard`] and
//! [`DomainAllocator::over_soft`].
//!
//! # Concurrency
//!
//! The state sits behind one `spin::Mutex`: the image is single-core and interrupt handlers never
//! allocate, so the lock is never contended there; on the host it makes the allocator `Sync`.
#![cfg_attr(not(test), no_std)]

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};

use linked_list_allocator::Heap;
use spin::Mutex;

/// Size and alignment of the chunks that small blocks are carved from.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Largest small block (after rounding the size up to the alignment).
pub const SMALL_MAX: usize = 2048;
/// Largest alignment served from chunks; larger ones take the large path.
pub const SMALL_ALIGN_MAX: usize = 64;
/// Slot sizes of the small classes. Each is a multiple of 16; the classes that serve an alignment
/// of 32 or 64 are those that are multiples of it, so slots placed at `chunk + k × size` are
/// aligned.
pub const CLASS_SIZES: [usize; CLASS_COUNT] = [
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280,
    1536, 1792, 2048,
];
/// Number of small size classes.
pub const CLASS_COUNT: usize = 24;
/// Bytes a large block carries after its payload (the domain byte, padded to 8).
pub const LARGE_TRAILER: usize = 8;

/// Small sizes are looked up in 16-byte granules.
const GRANULES: usize = SMALL_MAX / 16;
/// `CLASS_BY_GRANULE[tier][granules]`: smallest class that holds `granules × 16` bytes at the
/// alignment of the tier (0: <= 16, 1: 32, 2: 64).
const CLASS_BY_GRANULE: [[u8; GRANULES + 1]; 3] = build_class_table();

const _: () = assert!(CLASS_SIZES[CLASS_COUNT - 1] == SMALL_MAX);
const _: () = assert!(CHUNK_SIZE.is_multiple_of(SMALL_MAX));

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// A memory domain: who pays for a byte.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// The kernel itself; its hard quota is the kernel reserve. Never shed.
    Kernel,
    /// Packet buffers and NIC rings.
    Net,
    /// The IP forwarder: FIB, flows, neighbours.
    Forwarder,
    /// The SCTP endpoint.
    Sctp,
    /// The BGP speaker.
    Bgp,
    /// The BMP exporter.
    Bmp,
    /// Configuration and the management interface.
    Mgmt,
    /// Diagnostics.
    Diag,
}

/// A domain's quota, in bytes of true footprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Above this the supervisor sheds the domain; `admit` refuses what would cross it.
    pub hard: usize,
    /// Above this the domain is asked to back off.
    pub soft: usize,
}

/// A refused admission: the domain has no room for `requested` more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// The domain that asked.
    pub domain: Domain,
    /// Bytes it asked for.
    pub requested: usize,
    /// Bytes it held when it asked.
    pub used: usize,
    /// Its hard quota.
    pub hard: usize,
}

/// One domain's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainStats {
    /// Bytes held: whole chunks owned (free slots included) plus large blocks' footprints.
    pub used: usize,
    /// Footprint of live blocks (slot sizes, large footprints).
    pub live: usize,
    /// Live blocks.
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

/// What [`DomainAllocator::reclaim`] found: bytes and blocks live above the domain's baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The domain checked.
    pub domain: Domain,
    /// Footprint of live blocks above the baseline.
    pub bytes: usize,
    /// Live blocks above the baseline.
    pub blocks: usize,
    /// Bytes of wholly free chunks this reclaim gave back to the shared heap.
    pub returned: usize,
}

/// A memory plan that cannot be honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Hard quotas (the kernel reserve included) plus the overshoot reserve exceed the heap.
    DoesNotFit {
        /// Sum of all hard quotas, the kernel's included (saturating).
        hard_total: usize,
        /// The kernel's hard quota.
        kernel_reserve: usize,
        /// Room kept for domains running over their quota until they are shed.
        overshoot_reserve: usize,
        /// Size of the heap.
        heap: usize,
    },
    /// A soft quota above its hard quota.
    SoftAboveHard {
        /// The domain.
        domain: Domain,
        /// Its soft quota.
        soft: usize,
        /// Its hard quota.
        hard: usize,
    },
}

/// Scope guard from [`DomainAllocator::enter`]: restores the previous domain when dropped.
#[must_use = "the domain is left as soon as the guard is dropped"]
pub struct DomainGuard<'a> {
    current: &'a AtomicU8,
    previous: Domain,
}

/// The accounted allocator.
pub struct DomainAllocator {
    current: AtomicU8,
    engine: Mutex<Engine<true>>,
}

/// The same size-class front end with the books switched off: it exists so that the bench can
/// measure what accounting costs. Not meant as a global allocator for the image.
pub struct UnaccountedFrontEnd {
    current: AtomicU8,
    engine: Mutex<Engine<false>>,
}

/// Header of a chunk, in the chunk table.
#[repr(C)]
struct Chunk {
    prev: *mut Chunk,
    next: *mut Chunk,
    /// The chunk's memory.
    mem: *mut u8,
    /// Freed slots of this chunk.
    free: *mut FreeSlot,
    /// Offset of the first never-used slot.
    bump: usize,
    /// Slots handed out.
    live: usize,
    /// Slot size.
    slot: usize,
    domain: u8,
    class: u8,
    /// On its class's list (it has a free slot).
    listed: bool,
}

/// A freed slot, threaded through its chunk's free list.
struct FreeSlot {
    next: *mut FreeSlot,
}

/// One (domain, size class).
#[derive(Clone, Copy)]
struct Class {
    /// Chunks with at least one free slot; allocation takes from the head.
    head: *mut Chunk,
    /// The class's one cached wholly free chunk (also on the list), or null.
    spare: *mut Chunk,
}

/// One domain's books.
#[derive(Clone, Copy)]
struct Books {
    used: usize,
    live: usize,
    blocks: usize,
    peak: usize,
    chunks: usize,
    failed_admissions: u64,
    quota: Quota,
    baseline_live: usize,
    baseline_blocks: usize,
}

/// Everything behind the lock. `ACCOUNTED = false` drops the books (for the bench only).
struct Engine<const ACCOUNTED: bool> {
    heap: Heap,
    /// Chunk table: header of the chunk at `origin + i × CHUNK_SIZE` at index `i`.
    table: *mut Chunk,
    table_len: usize,
    /// The region's start rounded down to `CHUNK_SIZE`.
    origin: usize,
    classes: [[Class; CLASS_COUNT]; Domain::COUNT],
    books: [Books; Domain::COUNT],
}

/// Where a layout is served from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Small(usize),
    Large(Layout),
}

// ---------------------------------------------------------------------------------------------
// Domain, errors
// ---------------------------------------------------------------------------------------------

impl Domain {
    /// Number of domains.
    pub const COUNT: usize = 8;
    /// All domains, in index order.
    pub const ALL: [Domain; Domain::COUNT] = [
        Domain::Kernel,
        Domain::Net,
        Domain::Forwarder,
        Domain::Sctp,
        Domain::Bgp,
        Domain::Bmp,
        Domain::Mgmt,
        Domain::Diag,
    ];

    /// The name used in configuration and on the console.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Kernel => "kernel",
            Domain::Net => "net",
            Domain::Forwarder => "forwarder",
            Domain::Sctp => "sctp",
            Domain::Bgp => "bgp",
            Domain::Bmp => "bmp",
            Domain::Mgmt => "mgmt",
            Domain::Diag => "diag",
        }
    }

    /// The domain with this name.
    pub fn from_name(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Position in [`Domain::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The domain at this index.
    pub fn from_index(index: usize) -> Option<Domain> {
        Domain::ALL.get(index).copied()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for OverQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "domain {} over quota: {} B requested, {} B used, hard quota {} B",
            self.domain, self.requested, self.used, self.hard
        )
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::DoesNotFit { hard_total, kernel_reserve, overshoot_reserve, heap } => write!(
                f,
                "memory plan does not fit: hard quotas {hard_total} B (kernel reserve {kernel_reserve} B \
                 included) + overshoot reserve {overshoot_reserve} B > heap {heap} B"
            ),
            PlanError::SoftAboveHard { domain, soft, hard } => {
                write!(f, "memory plan: domain {domain} soft quota {soft} B above its hard quota {hard} B")
            }
        }
    }
}

impl LeakReport {
    /// Nothing live above the baseline.
    pub fn is_clean(&self) -> bool {
        self.bytes == 0 && self.blocks == 0
    }
}

impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        self.current.store(self.previous as u8, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// DomainAllocator
// ---------------------------------------------------------------------------------------------

impl DomainAllocator {
    /// An allocator with no heap yet (every allocation fails until [`init`](Self::init)) and no
    /// quotas (every admission succeeds until [`set_quotas`](Self::set_quotas)).
    pub const fn new() -> Self {
        DomainAllocator { current: AtomicU8::new(Domain::Kernel as u8), engine: Mutex::new(Engine::new()) }
    }

    /// Hands the allocator its heap.
    ///
    /// Only the first call with a region of at least 64 bytes takes effect; later calls are
    /// ignored. A start aligned to [`CHUNK_SIZE`] wastes nothing on chunk alignment.
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
        let mut engine = self.engine.lock();
        for (domain, quota) in Domain::ALL.into_iter().zip(quotas) {
            if quota.soft > quota.hard {
                return Err(PlanError::SoftAboveHard { domain, soft: quota.soft, hard: quota.hard });
            }
        }
        let hard_total = quotas.iter().fold(0usize, |sum, q| sum.saturating_add(q.hard));
        let heap = engine.heap.size();
        if hard_total.saturating_add(overshoot_reserve) > heap {
            return Err(PlanError::DoesNotFit {
                hard_total,
                kernel_reserve: quotas[Domain::Kernel.index()].hard,
                overshoot_reserve,
                heap,
            });
        }
        for (books, quota) in engine.books.iter_mut().zip(quotas) {
            books.quota = quota;
        }
        Ok(())
    }

    /// Makes `domain` current until the guard is dropped; guards nest.
    pub fn enter(&self, domain: Domain) -> DomainGuard<'_> {
        enter(&self.current, domain)
    }

    /// The domain allocations are charged to now ([`Domain::Kernel`] before any `enter`).
    pub fn current(&self) -> Domain {
        current(&self.current)
    }

    /// Asks for room for `bytes` more in `domain`: granted when `used + bytes <= hard`. A refusal
    /// is counted in `failed_admissions`. Admission reserves nothing; it is the data path's
    /// backpressure point.
    pub fn admit(&self, domain: Domain, bytes: usize) -> Result<(), OverQuota> {
        let mut engine = self.engine.lock();
        let books = engine.books_mut(domain);
        match books.used.checked_add(bytes) {
            Some(total) if total <= books.quota.hard => Ok(()),
            _ => {
                books.failed_admissions = books.failed_admissions.wrapping_add(1);
                Err(OverQuota { domain, requested: bytes, used: books.used, hard: books.quota.hard })
            }
        }
    }

    /// `used > soft`.
    pub fn over_soft(&self, domain: Domain) -> bool {
        let engine = self.engine.lock();
        let books = engine.books(domain);
        books.used > books.quota.soft
    }

    /// `used > hard`.
    pub fn over_hard(&self, domain: Domain) -> bool {
        let engine = self.engine.lock();
        let books = engine.books(domain);
        books.used > books.quota.hard
    }

    /// A domain's figures.
    pub fn stats(&self, domain: Domain) -> DomainStats {
        let engine = self.engine.lock();
        let b = engine.books(domain);
        DomainStats {
            used: b.used,
            live: b.live,
            blocks: b.blocks,
            peak: b.peak,
            soft: b.quota.soft,
            hard: b.quota.hard,
            failed_admissions: b.failed_admissions,
            chunks: b.chunks,
        }
    }

    /// The shared heap's figures; see [`HeapStats::largest_free`] for its cost.
    pub fn heap_stats(&self) -> HeapStats {
        self.engine.lock().heap_stats()
    }

    /// The domain's baseline: live bytes and blocks recorded by [`set_baseline`](Self::set_baseline).
    pub fn baseline(&self, domain: Domain) -> (usize, usize) {
        let engine = self.engine.lock();
        let b = engine.books(domain);
        (b.baseline_live, b.baseline_blocks)
    }

    /// Records the domain's live bytes and blocks as its baseline (taken before a subsystem
    /// starts; what is live above it after a shed is a leak).
    pub fn set_baseline(&self, domain: Domain) {
        let mut engine = self.engine.lock();
        let b = engine.books_mut(domain);
        b.baseline_live = b.live;
        b.baseline_blocks = b.blocks;
    }

    /// After a shed dropped a subsystem's state: gives the domain's wholly free chunks back to
    /// the shared heap, then reports what is still live above the baseline. Leaked blocks stay
    /// charged to the domain and keep their chunk. O(size classes).
    pub fn reclaim(&self, domain: Domain) -> LeakReport {
        let mut engine = self.engine.lock();
        // SAFETY: spares are wholly free chunks this engine owns.
        let returned = unsafe { engine.release_spares(domain) };
        let b = engine.books(domain);
        LeakReport {
            domain,
            bytes: b.live.saturating_sub(b.baseline_live),
            blocks: b.blocks.saturating_sub(b.baseline_blocks),
            returned,
        }
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

// ---------------------------------------------------------------------------------------------
// UnaccountedFrontEnd
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

fn enter(current: &AtomicU8, domain: Domain) -> DomainGuard<'_> {
    let previous = current.swap(domain as u8, Ordering::Relaxed);
    DomainGuard { current, previous: Domain::from_index(usize::from(previous)).unwrap_or(Domain::Kernel) }
}

fn current(current: &AtomicU8) -> Domain {
    Domain::from_index(usize::from(current.load(Ordering::Relaxed))).unwrap_or(Domain::Kernel)
}

const fn build_class_table() -> [[u8; GRANULES + 1]; 3] {
    let mut table = [[0u8; GRANULES + 1]; 3];
    let mut tier = 0;
    while tier < 3 {
        let align = 16 << tier;
        let mut granules = 0;
        while granules <= GRANULES {
            let size = granules * 16;
            let mut class = 0;
            while CLASS_SIZES[class] < size || !CLASS_SIZES[class].is_multiple_of(align) {
                class += 1;
            }
            table[tier][granules] = class as u8;
            granules += 1;
        }
        tier += 1;
    }
    table
}

/// Where `layout` is served from. A pure function of the layout, so `dealloc` and `realloc`
/// (which receive the layout of the allocation) find the same path.
fn route(layout: Layout) -> Option<Route> {
    let align = layout.align();
    let size = layout.size().max(1);
    if size <= SMALL_MAX && align <= SMALL_ALIGN_MAX {
        let tier = match align {
            0..=16 => 0,
            32 => 1,
            _ => 2,
        };
        let class = CLASS_BY_GRANULE.get(tier)?.get((size + 15) >> 4)?;
        return Some(Route::Small(usize::from(*class)));
    }
    let body = layout.size().checked_add(7)? & !7;
    let heap_layout = Layout::from_size_align(body.checked_add(LARGE_TRAILER)?, align.max(8)).ok()?;
    Some(Route::Large(heap_layout))
}

/// The trailer of a large block whose payload has `size` bytes.
fn trailer_of(ptr: *mut u8, size: usize) -> *mut u8 {
    ptr.wrapping_add((size + 7) & !7)
}

impl Books {
    const UNLIMITED: Books = Books {
        used: 0,
        live: 0,
        blocks: 0,
        peak: 0,
        chunks: 0,
        failed_admissions: 0,
        quota: Quota { hard: usize::MAX, soft: usize::MAX },
        baseline_live: 0,
        baseline_blocks: 0,
    };

    fn hold(&mut self, bytes: usize) {
        self.used = self.used.wrapping_add(bytes);
        if self.used > self.peak {
            self.peak = self.used;
        }
    }
}

impl Class {
    const EMPTY: Class = Class { head: ptr::null_mut(), spare: ptr::null_mut() };
}

// SAFETY: the raw pointers in an `Engine` point into the heap region it owns exclusively; moving
// the engine to another thread moves that ownership with it.
unsafe impl<const ACCOUNTED: bool> Send for Engine<ACCOUNTED> {}

impl<const ACCOUNTED: bool> Engine<ACCOUNTED> {
    const fn new() -> Self {
        Engine {
            heap: Heap::empty(),
            table: ptr::null_mut(),
            table_len: 0,
            origin: 0,
            classes: [[Class::EMPTY; CLASS_COUNT]; Domain::COUNT],
            books: [Books::UNLIMITED; Domain::COUNT],
        }
    }

    /// # Safety
    ///
    /// As [`DomainAllocator::init`].
    unsafe fn init(&mut self, heap_start: *mut u8, heap_size: usize) {
        if self.heap.size() != 0 || heap_start.is_null() {
            return;
        }
        let start = heap_start as usize;
        let Some(end) = start.checked_add(heap_size) else {
            return;
        };
        let origin = start & !(CHUNK_SIZE - 1);
        let table_len = (end - origin).div_ceil(CHUNK_SIZE);
        let table_bytes = table_len * core::mem::size_of::<Chunk>();
        // Aligned to a cache line, so each header sits in one line.
        let table_start = end.saturating_sub(table_bytes) & !63;
        // The heap's own minimum is 2–3 words; anything under 64 bytes is useless anyway.
        if table_start < start || table_start - start < 64 {
            return;
        }
        self.table = heap_start.wrapping_add(table_start - start).cast();
        self.table_len = table_len;
        self.origin = origin;
        // SAFETY: the region is unused RAM owned by us forever (caller's contract), the table
        // lies after the part given to the heap, and the heap is empty (checked above), so this
        // is its only init.
        unsafe { self.heap.init(heap_start, table_start - start) }
    }

    fn books(&self, domain: Domain) -> &Books {
        // `Domain::index` is below `Domain::COUNT` by construction: this cannot fail.
        &self.books[domain.index()]
    }

    fn books_mut(&mut self, domain: Domain) -> &mut Books {
        // `Domain::index` is below `Domain::COUNT` by construction: this cannot fail.
        &mut self.books[domain.index()]
    }

    /// # Safety
    ///
    /// `GlobalAlloc::alloc`'s contract (a zero-size layout is served as one byte).
    unsafe fn alloc(&mut self, domain: Domain, layout: Layout) -> *mut u8 {
        match route(layout) {
            // SAFETY: the class comes from `route`.
            Some(Route::Small(class)) => unsafe { self.alloc_small(domain, class) },
            // SAFETY: `heap_layout` comes from `route`.
            Some(Route::Large(heap_layout)) => unsafe { self.alloc_large(domain, layout, heap_layout) },
            None => ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// `GlobalAlloc::alloc_zeroed`'s contract.
    unsafe fn alloc_zeroed(&mut self, domain: Domain, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.alloc(domain, layout) };
        if !ptr.is_null() {
            // SAFETY: the block just allocated holds at least `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    /// # Safety
    ///
    /// `ptr` was returned by this engine for `layout` and not freed since.
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        match route(layout) {
            // SAFETY: same layout, same route: `ptr` is a slot in one of our chunks.
            Some(Route::Small(_)) => unsafe { self.dealloc_small(ptr) },
            // SAFETY: same layout, same route: `ptr` is a large block allocated with `heap_layout`.
            Some(Route::Large(heap_layout)) => unsafe { self.dealloc_large(ptr, layout, heap_layout) },
            None => {}
        }
    }

    /// Reallocates in the block's original domain, whatever is current.
    ///
    /// # Safety
    ///
    /// `GlobalAlloc::realloc`'s contract.
    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let old_route = route(layout);
        if let (Some(Route::Small(old)), Some(Route::Small(new))) = (old_route, route(new_layout)) {
            if old == new {
                return ptr;
            }
        }
        // SAFETY: `ptr` was allocated with `layout` (caller's contract).
        let Some(domain) = (unsafe { self.owner(ptr, old_route) }) else {
            return ptr::null_mut();
        };
        // SAFETY: `new_layout` is a valid layout.
        let new_ptr = unsafe { self.alloc(domain, new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks hold at least the bytes copied and are distinct live blocks.
            unsafe { ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size)) };
            // SAFETY: caller's contract; the contents have moved.
            unsafe { self.dealloc(ptr, layout) };
        }
        new_ptr
    }

    /// The domain a live block is charged to.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this engine, and `route` is its layout's route.
    unsafe fn owner(&self, ptr: *mut u8, route: Option<Route>) -> Option<Domain> {
        match route? {
            Route::Small(_) => {
                let chunk = self.chunk_of(ptr);
                if chunk.is_null() {
                    return None;
                }
                // SAFETY: a small block lies in a chunk whose header we wrote.
                Domain::from_index(usize::from(unsafe { (*chunk).domain }))
            }
            Route::Large(heap_layout) => {
                let body = heap_layout.size().saturating_sub(LARGE_TRAILER);
                // SAFETY: the trailer of a live large block, written at allocation.
                Domain::from_index(usize::from(unsafe { trailer_of(ptr, body).read() }))
            }
        }
    }

    /// # Safety
    ///
    /// `class < CLASS_COUNT`.
    unsafe fn alloc_small(&mut self, domain: Domain, class: usize) -> *mut u8 {
        let Some(&slot) = CLASS_SIZES.get(class) else {
            return ptr::null_mut();
        };
        let mut chunk = match self.classes[domain.index()].get(class) {
            Some(c) => c.head,
            None => return ptr::null_mut(),
        };
        if chunk.is_null() {
            // SAFETY: `class` is in range (checked above).
            chunk = unsafe { self.acquire_chunk(domain, class, slot) };
            if chunk.is_null() {
                return ptr::null_mut();
            }
        }
        // SAFETY: `chunk` heads the class's list: a chunk we own with a free slot.
        let block = unsafe {
            let c = &mut *chunk;
            let block = if c.free.is_null() {
                let block = c.mem.add(c.bump);
                c.bump += slot;
                block
            } else {
                let block = c.free;
                c.free = (*block).next;
                block.cast::<u8>()
            };
            if c.live == 0 {
                // Only the spare can be wholly free: it is in use again.
                if let Some(cls) = self.classes[domain.index()].get_mut(class) {
                    cls.spare = ptr::null_mut();
                }
            }
            c.live += 1;
            if c.free.is_null() && c.bump + slot > CHUNK_SIZE {
                self.unlink(domain, class, chunk);
            }
            block
        };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.live = books.live.wrapping_add(slot);
            books.blocks = books.blocks.wrapping_add(1);
        }
        block
    }

    /// # Safety
    ///
    /// `ptr` is a live slot in one of our chunks.
    unsafe fn dealloc_small(&mut self, ptr: *mut u8) {
        let chunk = self.chunk_of(ptr);
        if chunk.is_null() {
            return;
        }
        // SAFETY: the header of the chunk holding a live slot, written by `acquire_chunk`.
        let (domain, class, slot, now_free, was_listed) = unsafe {
            let c = &mut *chunk;
            let slot_ptr = ptr.cast::<FreeSlot>();
            slot_ptr.write(FreeSlot { next: c.free });
            c.free = slot_ptr;
            c.live = c.live.wrapping_sub(1);
            (c.domain, usize::from(c.class), c.slot, c.live == 0, c.listed)
        };
        let Some(domain) = Domain::from_index(usize::from(domain)) else {
            return;
        };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.live = books.live.wrapping_sub(slot);
            books.blocks = books.blocks.wrapping_sub(1);
        }
        if !was_listed {
            // SAFETY: a chunk of (domain, class) that is on no list.
            unsafe { self.link(domain, class, chunk) };
        }
        if now_free {
            let Some(cls) = self.classes[domain.index()].get_mut(class) else {
                return;
            };
            if cls.spare.is_null() {
                cls.spare = chunk;
            } else {
                // SAFETY: a wholly free chunk of ours, on its class's list.
                unsafe {
                    self.unlink(domain, class, chunk);
                    self.release_chunk(domain, chunk);
                }
            }
        }
    }

    /// Takes a chunk from the heap for (domain, class) and puts it at the head of the class list.
    ///
    /// # Safety
    ///
    /// `class < CLASS_COUNT` and `slot == CLASS_SIZES[class]`.
    unsafe fn acquire_chunk(&mut self, domain: Domain, class: usize, slot: usize) -> *mut Chunk {
        let Some((block, footprint)) = self.heap_take(CHUNK_LAYOUT) else {
            return ptr::null_mut();
        };
        let chunk = self.chunk_of(block.as_ptr());
        if chunk.is_null() {
            // Cannot happen: the heap lies inside the region the table covers.
            // SAFETY: just allocated with this layout.
            unsafe { self.heap_give(block, CHUNK_LAYOUT) };
            return ptr::null_mut();
        }
        // SAFETY: the table entry of a fresh, CHUNK_SIZE-aligned block of CHUNK_SIZE bytes.
        unsafe {
            chunk.write(Chunk {
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
                mem: block.as_ptr(),
                free: ptr::null_mut(),
                bump: 0,
                live: 0,
                slot,
                domain: domain as u8,
                class: class as u8,
                listed: false,
            });
            self.link(domain, class, chunk);
        }
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.hold(footprint);
            books.chunks = books.chunks.wrapping_add(1);
        }
        chunk
    }

    /// Gives a wholly free, unlisted chunk back to the heap.
    ///
    /// # Safety
    ///
    /// `chunk` is ours, wholly free, charged to `domain` and on no list.
    unsafe fn release_chunk(&mut self, domain: Domain, chunk: *mut Chunk) -> usize {
        // SAFETY: a table entry written by `acquire_chunk`.
        let Some(block) = NonNull::new(unsafe { (*chunk).mem }) else {
            return 0;
        };
        // SAFETY: the chunk was allocated from our heap with `CHUNK_LAYOUT`.
        let footprint = unsafe { self.heap_give(block, CHUNK_LAYOUT) };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.used = books.used.wrapping_sub(footprint);
            books.chunks = books.chunks.wrapping_sub(1);
        }
        footprint
    }

    /// Gives every spare chunk of `domain` back to the heap; returns the bytes given back.
    ///
    /// # Safety
    ///
    /// The class lists are consistent (they always are between calls).
    unsafe fn release_spares(&mut self, domain: Domain) -> usize {
        let mut returned = 0usize;
        for class in 0..CLASS_COUNT {
            let Some(cls) = self.classes[domain.index()].get_mut(class) else {
                continue;
            };
            let spare = cls.spare;
            if spare.is_null() {
                continue;
            }
            cls.spare = ptr::null_mut();
            // SAFETY: the spare is a wholly free chunk on its class's list.
            unsafe {
                self.unlink(domain, class, spare);
                returned = returned.wrapping_add(self.release_chunk(domain, spare));
            }
        }
        returned
    }

    /// Allocates from the heap; when it is exhausted, returns every domain's spares and tries
    /// once more. Returns the block and its footprint.
    fn heap_take(&mut self, layout: Layout) -> Option<(NonNull<u8>, usize)> {
        if let Some(taken) = self.heap_try(layout) {
            return Some(taken);
        }
        let mut returned = 0usize;
        for domain in Domain::ALL {
            // SAFETY: the class lists are consistent between calls.
            returned = returned.wrapping_add(unsafe { self.release_spares(domain) });
        }
        if returned == 0 {
            return None;
        }
        self.heap_try(layout)
    }

    /// One heap allocation; the footprint is the change of `Heap::used`, so it is exactly what
    /// the heap gave up (its rounding to 8 bytes and its 16-byte minimum included).
    fn heap_try(&mut self, layout: Layout) -> Option<(NonNull<u8>, usize)> {
        let before = self.heap.used();
        let block = self.heap.allocate_first_fit(layout).ok()?;
        Some((block, self.heap.used().saturating_sub(before)))
    }

    /// # Safety
    ///
    /// `block` was allocated from our heap with `layout`.
    unsafe fn heap_give(&mut self, block: NonNull<u8>, layout: Layout) -> usize {
        let before = self.heap.used();
        // SAFETY: caller's contract.
        unsafe { self.heap.deallocate(block, layout) };
        before.saturating_sub(self.heap.used())
    }

    /// # Safety
    ///
    /// `heap_layout == route(layout)`'s large layout.
    unsafe fn alloc_large(&mut self, domain: Domain, layout: Layout, heap_layout: Layout) -> *mut u8 {
        let Some((block, footprint)) = self.heap_take(heap_layout) else {
            return ptr::null_mut();
        };
        let ptr = block.as_ptr();
        // SAFETY: the trailer lies inside the block (`heap_layout` = payload rounded to 8 + trailer).
        unsafe { trailer_of(ptr, layout.size()).write(domain as u8) };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.hold(footprint);
            books.live = books.live.wrapping_add(footprint);
            books.blocks = books.blocks.wrapping_add(1);
        }
        ptr
    }

    /// # Safety
    ///
    /// `ptr` is a live large block allocated for `layout` (so with `heap_layout`).
    unsafe fn dealloc_large(&mut self, ptr: *mut u8, layout: Layout, heap_layout: Layout) {
        // SAFETY: the trailer written by `alloc_large`.
        let domain = Domain::from_index(usize::from(unsafe { trailer_of(ptr, layout.size()).read() }));
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: caller's contract.
        let footprint = unsafe { self.heap_give(block, heap_layout) };
        if let (true, Some(domain)) = (ACCOUNTED, domain) {
            let books = self.books_mut(domain);
            books.used = books.used.wrapping_sub(footprint);
            books.live = books.live.wrapping_sub(footprint);
            books.blocks = books.blocks.wrapping_sub(1);
        }
    }

    /// Puts `chunk` at the head of its class list.
    ///
    /// # Safety
    ///
    /// `chunk` is ours, of (domain, class), and on no list.
    unsafe fn link(&mut self, domain: Domain, class: usize, chunk: *mut Chunk) {
        let Some(cls) = self.classes[domain.index()].get_mut(class) else {
            return;
        };
        let head = cls.head;
        // SAFETY: `chunk` and the head (if any) are chunk headers we own.
        unsafe {
            (*chunk).prev = ptr::null_mut();
            (*chunk).next = head;
            (*chunk).listed = true;
            if !head.is_null() {
                (*head).prev = chunk;
            }
        }
        cls.head = chunk;
    }

    /// Takes `chunk` off its class list.
    ///
    /// # Safety
    ///
    /// `chunk` is ours, of (domain, class), and on that class's list.
    unsafe fn unlink(&mut self, domain: Domain, class: usize, chunk: *mut Chunk) {
        let Some(cls) = self.classes[domain.index()].get_mut(class) else {
            return;
        };
        // SAFETY: `chunk` and its neighbours are chunk headers on this list.
        unsafe {
            let (prev, next) = ((*chunk).prev, (*chunk).next);
            if prev.is_null() {
                cls.head = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*chunk).prev = ptr::null_mut();
            (*chunk).next = ptr::null_mut();
            (*chunk).listed = false;
        }
    }

    /// The table entry of the chunk that holds `ptr`, or null outside the region.
    fn chunk_of(&self, ptr: *mut u8) -> *mut Chunk {
        let index = (ptr as usize).wrapping_sub(self.origin) / CHUNK_SIZE;
        if index < self.table_len {
            self.table.wrapping_add(index)
        } else {
            ptr::null_mut()
        }
    }

    fn heap_stats(&mut self) -> HeapStats {
        HeapStats {
            total: self.heap.size(),
            used: self.heap.used(),
            free: self.heap.free(),
            largest_free: self.largest_free(),
        }
    }

    /// Binary search for the largest allocatable block (align 8), by allocate-and-free probes.
    fn largest_free(&mut self) -> usize {
        // Invariant: `lo` words fit (0 trivially), `hi` words do not.
        let mut lo = 0usize;
        let mut hi = self.heap.free() / 8 + 1;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let fits = match Layout::from_size_align(mid * 8, 8) {
                Ok(layout) => match self.heap.allocate_first_fit(layout) {
                    Ok(block) => {
                        // SAFETY: just allocated with `layout`; freeing restores the holes.
                        unsafe { self.heap.deallocate(block, layout) };
                        true
                    }
                    Err(()) => false,
                },
                Err(_) => false,
            };
            if fits {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo * 8
    }
}

/// Layout of a chunk in the shared heap (checked at compile time).
const CHUNK_LAYOUT: Layout = match Layout::from_size_align(CHUNK_SIZE, CHUNK_SIZE) {
    Ok(layout) => layout,
    Err(_) => panic!("chunk layout"),
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MIB: usize = 1024 * 1024;

    /// A `DomainAllocator` over its own region of host memory, aligned to the chunk size.
    struct Fixture {
        alloc: DomainAllocator,
        region: *mut u8,
        region_layout: Layout,
    }

    impl Fixture {
        fn new(size: usize) -> Self {
            Self::with_offset(size, 0)
        }

        /// A heap that starts `offset` bytes past a chunk boundary.
        fn with_offset(size: usize, offset: usize) -> Self {
            let region_layout = Layout::from_size_align(size + offset, CHUNK_SIZE).unwrap();
            // SAFETY: non-zero size.
            let region = unsafe { std::alloc::alloc(region_layout) };
            assert!(!region.is_null());
            let alloc = DomainAllocator::new();
            // SAFETY: a fresh region that only this allocator uses until the fixture drops.
            unsafe { alloc.init(region.add(offset), size) };
            Fixture { alloc, region, region_layout }
        }

        fn heap_used(&self) -> usize {
            self.alloc.engine.lock().heap.used()
        }

        fn alloc(&self, domain: Domain, layout: Layout) -> *mut u8 {
            let _guard = self.alloc.enter(domain);
            // SAFETY: a valid layout; the tests free with the same layout.
            unsafe { self.alloc.alloc(layout) }
        }

        fn free(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the tests pass blocks they allocated with this layout.
            unsafe { self.alloc.dealloc(ptr, layout) }
        }

        /// Sum of `used` over the domains equals what the heap handed out.
        fn assert_books_balance(&self) {
            let sum: usize = Domain::ALL.iter().map(|d| self.alloc.stats(*d).used).sum();
            assert_eq!(sum, self.heap_used(), "sum of domain used != heap used");
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            // SAFETY: allocated in `with_offset` with this layout.
            unsafe { std::alloc::dealloc(self.region, self.region_layout) };
        }
    }

    /// xorshift64*: a seeded, reproducible sequence.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + self.below(hi - lo + 1)
        }
    }

    /// The model's idea of a block's footprint, worked out independently of `route`.
    fn expected_footprint(layout: Layout) -> usize {
        let size = layout.size().max(1);
        if size <= SMALL_MAX && layout.align() <= SMALL_ALIGN_MAX {
            let align = layout.align().max(16);
            *CLASS_SIZES.iter().find(|&&c| c >= size && c % align == 0).unwrap()
        } else {
            // linked_list_allocator reserves max(16, size rounded up to 8); we add the trailer.
            (layout.size().next_multiple_of(8) + LARGE_TRAILER).max(16)
        }
    }

    fn is_small(layout: Layout) -> bool {
        layout.size().max(1) <= SMALL_MAX && layout.align() <= SMALL_ALIGN_MAX
    }

    fn fill(ptr: *mut u8, len: usize, seed: u8) {
        for i in 0..len {
            // SAFETY: the block holds `len` bytes.
            unsafe { ptr.add(i).write(seed.wrapping_add(i as u8)) };
        }
    }

    fn check(ptr: *mut u8, len: usize, seed: u8) {
        for i in 0..len {
            // SAFETY: the block holds `len` bytes.
            let byte = unsafe { ptr.add(i).read() };
            assert_eq!(byte, seed.wrapping_add(i as u8), "block {ptr:p} corrupted at byte {i}");
        }
    }

    struct Live {
        ptr: *mut u8,
        layout: Layout,
        domain: Domain,
        seed: u8,
    }

    #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
    struct Shadow {
        live: usize,
        blocks: usize,
        large: usize,
    }

    fn random_layout(rng: &mut Rng) -> Layout {
        let size = match rng.below(100) {
            0 => 0,
            1..=60 => rng.range(1, 256),
            61..=85 => rng.range(257, 2048),
            86..=93 => rng.range(2049, 8192),
            _ => rng.range(8193, 64 * 1024),
        };
        let align = match rng.below(100) {
            0..=69 => 1 << rng.below(4),
            70..=84 => 16,
            85..=91 => 32,
            92..=96 => 64,
            97 => 128,
            98 => 4096,
            _ => 2 * CHUNK_SIZE,
        };
        Layout::from_size_align(size, align).unwrap()
    }

    fn assert_model(fx: &Fixture, shadow: &[Shadow; Domain::COUNT]) {
        fx.assert_books_balance();
        for d in Domain::ALL {
            let s = fx.alloc.stats(d);
            let m = shadow[d.index()];
            assert_eq!((s.live, s.blocks), (m.live, m.blocks), "domain {d}");
            assert_eq!(s.used, s.chunks * CHUNK_SIZE + m.large, "domain {d}: used = chunks + large");
            assert!(s.peak >= s.used);
        }
    }

    #[test]
    fn random_sequences_keep_exact_books_and_intact_contents() {
        // Start off a chunk boundary so the heap also has to pad chunks into alignment.
        let fx = Fixture::with_offset(64 * MIB, 24);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut live: Vec<Live> = Vec::new();
        let mut shadow = [Shadow::default(); Domain::COUNT];
        let charge = |shadow: &mut [Shadow; Domain::COUNT], d: Domain, layout: Layout, sign: bool| {
            let s = &mut shadow[d.index()];
            let f = expected_footprint(layout);
            if sign {
                s.live += f;
                s.blocks += 1;
                if !is_small(layout) {
                    s.large += f;
                }
            } else {
                s.live -= f;
                s.blocks -= 1;
                if !is_small(layout) {
                    s.large -= f;
                }
            }
        };
        for op in 0..150_000u32 {
            let current = Domain::ALL[rng.below(Domain::COUNT)];
            let _guard = fx.alloc.enter(current);
            let choice = rng.below(100);
            if live.is_empty() || (choice < 45 && live.len() < 3000) {
                let layout = random_layout(&mut rng);
                // SAFETY: valid layout.
                let ptr = unsafe { fx.alloc.alloc(layout) };
                assert!(!ptr.is_null(), "op {op}: {layout:?} refused");
                assert_eq!(ptr as usize % layout.align(), 0, "op {op}: misaligned");
                let seed = rng.next() as u8;
                fill(ptr, layout.size(), seed);
                charge(&mut shadow, current, layout, true);
                live.push(Live { ptr, layout, domain: current, seed });
            } else if choice < 80 {
                let block = live.swap_remove(rng.below(live.len()));
                check(block.ptr, block.layout.size(), block.seed);
                fx.free(block.ptr, block.layout);
                charge(&mut shadow, block.domain, block.layout, false);
            } else {
                let i = rng.below(live.len());
                let block = &mut live[i];
                check(block.ptr, block.layout.size(), block.seed);
                let new_layout =
                    Layout::from_size_align(random_layout(&mut rng).size(), block.layout.align()).unwrap();
                // SAFETY: a live block with its layout; the new size is valid for the alignment.
                let ptr = unsafe { fx.alloc.realloc(block.ptr, block.layout, new_layout.size()) };
                assert!(!ptr.is_null(), "op {op}: realloc refused");
                assert_eq!(ptr as usize % new_layout.align(), 0, "op {op}: misaligned realloc");
                check(ptr, block.layout.size().min(new_layout.size()), block.seed);
                let d = block.domain;
                charge(&mut shadow, d, block.layout, false);
                charge(&mut shadow, d, new_layout, true);
                block.ptr = ptr;
                block.layout = new_layout;
                fill(ptr, new_layout.size(), block.seed);
            }
            if op % 1000 == 0 {
                assert_model(&fx, &shadow);
            }
        }
        assert_model(&fx, &shadow);
        for block in live.drain(..) {
            check(block.ptr, block.layout.size(), block.seed);
            fx.free(block.ptr, block.layout);
        }
        for d in Domain::ALL {
            assert!(fx.alloc.reclaim(d).is_clean());
            assert_eq!(fx.alloc.stats(d).used, 0, "domain {d} keeps memory after reclaim");
        }
        assert_eq!(fx.heap_used(), 0);
    }

    #[test]
    fn a_one_byte_block_is_charged_its_slot_and_its_chunk() {
        let fx = Fixture::new(4 * MIB);
        let layout = Layout::from_size_align(1, 1).unwrap();
        let ptr = fx.alloc(Domain::Net, layout);
        assert!(!ptr.is_null());
        let s = fx.alloc.stats(Domain::Net);
        assert_eq!((s.live, s.blocks, s.used, s.chunks), (16, 1, CHUNK_SIZE, 1));
        assert_eq!(fx.heap_used(), CHUNK_SIZE);
        fx.free(ptr, layout);
        let s = fx.alloc.stats(Domain::Net);
        assert_eq!((s.live, s.blocks), (0, 0));
        assert_eq!(s.used, CHUNK_SIZE, "the wholly free chunk stays as the class's spare");
        let report = fx.alloc.reclaim(Domain::Net);
        assert_eq!(report.returned, CHUNK_SIZE);
        assert_eq!((fx.alloc.stats(Domain::Net).used, fx.heap_used()), (0, 0));
    }

    #[test]
    fn a_large_block_is_charged_what_the_heap_gave_up() {
        let fx = Fixture::new(4 * MIB);
        let layout = Layout::from_size_align(10_001, 8).unwrap();
        let ptr = fx.alloc(Domain::Sctp, layout);
        assert!(!ptr.is_null());
        let s = fx.alloc.stats(Domain::Sctp);
        assert_eq!(s.used, fx.heap_used(), "the whole heap delta is charged");
        assert_eq!(s.used, 10_008 + LARGE_TRAILER);
        assert_eq!((s.live, s.blocks, s.chunks), (s.used, 1, 0));
        fx.free(ptr, layout);
        assert_eq!((fx.alloc.stats(Domain::Sctp).used, fx.heap_used()), (0, 0));
    }

    #[test]
    fn realloc_keeps_the_original_domain() {
        let fx = Fixture::new(4 * MIB);
        let layout = Layout::from_size_align(100, 8).unwrap();
        let ptr = fx.alloc(Domain::Bgp, layout);
        fill(ptr, 100, 7);
        let _net = fx.alloc.enter(Domain::Net);
        // Same class: stays in place.
        // SAFETY: live block with its layout.
        let same = unsafe { fx.alloc.realloc(ptr, layout, 110) };
        assert_eq!(same, ptr);
        // Small to another class, then to large, then back to small.
        let mut ptr = same;
        let mut layout = Layout::from_size_align(110, 8).unwrap();
        for new_size in [700, 5000, 40] {
            // SAFETY: live block with its layout.
            ptr = unsafe { fx.alloc.realloc(ptr, layout, new_size) };
            layout = Layout::from_size_align(new_size, 8).unwrap();
            check(ptr, 40, 7);
            let bgp = fx.alloc.stats(Domain::Bgp);
            assert_eq!(
                (bgp.live, bgp.blocks),
                (expected_footprint(layout), 1),
                "after realloc to {new_size}"
            );
            let net = fx.alloc.stats(Domain::Net);
            assert_eq!((net.live, net.blocks), (0, 0), "nothing charged to the current domain");
        }
        fx.free(ptr, layout);
        assert_eq!(fx.alloc.stats(Domain::Bgp).blocks, 0);
        fx.assert_books_balance();
    }

    #[test]
    fn admission_and_thresholds() {
        let fx = Fixture::new(4 * MIB);
        let mut quotas = [Quota { hard: 256 * 1024, soft: 128 * 1024 }; Domain::COUNT];
        quotas[Domain::Sctp.index()] = Quota { hard: 2 * CHUNK_SIZE, soft: CHUNK_SIZE };
        fx.alloc.set_quotas(quotas, 0).unwrap();
        let layout = Layout::from_size_align(2048, 8).unwrap();
        let per_chunk = CHUNK_SIZE / 2048;
        let mut blocks = Vec::new();
        let alloc_until = |chunks: usize, blocks: &mut Vec<*mut u8>| {
            while fx.alloc.stats(Domain::Sctp).chunks < chunks {
                let ptr = fx.alloc(Domain::Sctp, layout);
                assert!(!ptr.is_null(), "an allocation is never refused for a quota");
                blocks.push(ptr);
            }
        };
        assert_eq!(fx.alloc.admit(Domain::Sctp, 2 * CHUNK_SIZE), Ok(()));
        alloc_until(1, &mut blocks);
        assert_eq!(fx.alloc.stats(Domain::Sctp).used, CHUNK_SIZE);
        assert!(!fx.alloc.over_soft(Domain::Sctp), "used == soft is not over");
        assert_eq!(fx.alloc.admit(Domain::Sctp, CHUNK_SIZE), Ok(()), "used + bytes == hard fits");
        assert_eq!(
            fx.alloc.admit(Domain::Sctp, CHUNK_SIZE + 1),
            Err(OverQuota {
                domain: Domain::Sctp,
                requested: CHUNK_SIZE + 1,
                used: CHUNK_SIZE,
                hard: 2 * CHUNK_SIZE
            })
        );
        assert_eq!(fx.alloc.stats(Domain::Sctp).failed_admissions, 1);
        alloc_until(2, &mut blocks);
        assert!(fx.alloc.over_soft(Domain::Sctp));
        assert!(!fx.alloc.over_hard(Domain::Sctp), "used == hard is not over");
        assert_eq!(fx.alloc.admit(Domain::Sctp, 0), Ok(()));
        assert!(fx.alloc.admit(Domain::Sctp, 1).is_err());
        assert_eq!(fx.alloc.stats(Domain::Sctp).failed_admissions, 2);
        // Far over the hard quota, allocations still succeed; the supervisor sheds.
        alloc_until(6, &mut blocks);
        assert!(fx.alloc.over_hard(Domain::Sctp));
        assert!(blocks.len() > 5 * per_chunk);
        assert!(!fx.alloc.over_soft(Domain::Net), "other domains are unaffected");
        let err = fx.alloc.admit(Domain::Sctp, 10).unwrap_err();
        assert_eq!(err.used, 6 * CHUNK_SIZE);
        assert!(std::format!("{err}").contains("sctp"));
        for ptr in blocks {
            fx.free(ptr, layout);
        }
        fx.assert_books_balance();
    }

    #[test]
    fn shed_and_reclaim_return_to_the_baseline() {
        let fx = Fixture::new(16 * MIB);
        let small = Layout::from_size_align(48, 8).unwrap();
        // State the subsystem keeps across restarts, allocated before the baseline.
        let kept: Vec<*mut u8> = (0..5).map(|_| fx.alloc(Domain::Bgp, small)).collect();
        fx.alloc.set_baseline(Domain::Bgp);
        assert_eq!(fx.alloc.baseline(Domain::Bgp), (5 * 48, 5));
        let used_at_baseline = fx.alloc.stats(Domain::Bgp).used;
        let heap_at_baseline = fx.heap_used();

        let mut rng = Rng(42);
        let mut blocks = Vec::new();
        for _ in 0..20_000 {
            let size = if rng.below(50) == 0 { rng.range(3000, 40_000) } else { rng.range(24, 200) };
            let layout = Layout::from_size_align(size, 8).unwrap();
            blocks.push((fx.alloc(Domain::Bgp, layout), layout));
        }
        let high_water = blocks.iter().map(|(p, l)| *p as usize + l.size()).max().unwrap();
        assert!(fx.alloc.stats(Domain::Bgp).chunks > 20);
        // The shed: whoever drops the state (here under the kernel domain), Bgp is credited.
        for (ptr, layout) in blocks {
            fx.free(ptr, layout);
        }
        let report = fx.alloc.reclaim(Domain::Bgp);
        assert!(report.is_clean(), "{report:?}");
        assert!(report.returned > 0);
        let s = fx.alloc.stats(Domain::Bgp);
        assert_eq!(s.used, used_at_baseline, "used back to its baseline exactly");
        assert_eq!((s.live, s.blocks), (5 * 48, 5));
        assert_eq!(fx.heap_used(), heap_at_baseline, "chunks are back in the shared heap");
        fx.assert_books_balance();
        // Another domain reuses the returned chunks.
        let reused = fx.alloc(Domain::Sctp, Layout::from_size_align(64, 8).unwrap());
        assert!((reused as usize | (CHUNK_SIZE - 1)) < high_water, "a chunk from the reclaimed memory");
        fx.free(reused, Layout::from_size_align(64, 8).unwrap());
        for ptr in kept {
            fx.free(ptr, small);
        }
    }

    #[test]
    fn a_forgotten_block_is_reported_as_a_leak() {
        let fx = Fixture::new(4 * MIB);
        fx.alloc.set_baseline(Domain::Bmp);
        let small = Layout::from_size_align(100, 8).unwrap();
        let large = Layout::from_size_align(10_000, 8).unwrap();
        let leaked = fx.alloc(Domain::Bmp, small);
        let freed = fx.alloc(Domain::Bmp, small);
        fx.free(freed, small);
        // The diagnostics leak on purpose the same way: the owner forgets the block.
        let report = fx.alloc.reclaim(Domain::Bmp);
        assert_eq!((report.domain, report.bytes, report.blocks), (Domain::Bmp, 112, 1));
        assert_eq!(fx.alloc.stats(Domain::Bmp).used, CHUNK_SIZE, "the leaked block pins its chunk");
        let before = fx.heap_used();
        let leaked_large = fx.alloc(Domain::Bmp, large);
        let footprint = fx.heap_used() - before;
        let report = fx.alloc.reclaim(Domain::Bmp);
        assert_eq!((report.bytes, report.blocks), (112 + footprint, 2));
        assert!(!report.is_clean());
        fx.free(leaked, small);
        fx.free(leaked_large, large);
        assert!(fx.alloc.reclaim(Domain::Bmp).is_clean());
        assert_eq!(fx.heap_used(), 0);
    }

    #[test]
    fn a_plan_that_does_not_fit_is_refused_with_its_figures() {
        let fx = Fixture::new(MIB);
        let heap = fx.alloc.heap_stats().total;
        let mut quotas = [Quota { hard: 100 * 1024, soft: 50 * 1024 }; Domain::COUNT];
        quotas[Domain::Kernel.index()] = Quota { hard: 200 * 1024, soft: 200 * 1024 };
        let err = fx.alloc.set_quotas(quotas, 200 * 1024).unwrap_err();
        assert_eq!(
            err,
            PlanError::DoesNotFit {
                hard_total: 900 * 1024,
                kernel_reserve: 200 * 1024,
                overshoot_reserve: 200 * 1024,
                heap
            }
        );
        let text = std::format!("{err}");
        for figure in ["921600", "204800", &heap.to_string()] {
            assert!(text.contains(figure), "{text}");
        }
        assert_eq!(fx.alloc.stats(Domain::Net).hard, usize::MAX, "a refused plan changes nothing");
        assert!(fx.alloc.set_quotas(quotas, heap - 900 * 1024).is_ok(), "exactly full fits");
        quotas[Domain::Mgmt.index()].soft = 200 * 1024;
        assert_eq!(
            fx.alloc.set_quotas(quotas, 0),
            Err(PlanError::SoftAboveHard { domain: Domain::Mgmt, soft: 200 * 1024, hard: 100 * 1024 })
        );
    }

    #[test]
    fn zero_sizes_large_alignments_and_zeroed_blocks() {
        let fx = Fixture::with_offset(8 * MIB, 8);
        for (size, align) in
            [(0, 1), (0, 4096), (1, 128), (100, 256), (10, 2 * CHUNK_SIZE), (3000, 4 * CHUNK_SIZE)]
        {
            let layout = Layout::from_size_align(size, align).unwrap();
            let ptr = fx.alloc(Domain::Diag, layout);
            assert!(!ptr.is_null(), "{layout:?}");
            assert_eq!(ptr as usize % align, 0, "{layout:?}");
            fill(ptr, size, 3);
            assert_eq!(fx.alloc.stats(Domain::Diag).blocks, 1);
            fx.free(ptr, layout);
            assert_eq!(fx.alloc.stats(Domain::Diag).blocks, 0);
            fx.assert_books_balance();
        }
        for size in [24, 1500, 70_000] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let dirty = fx.alloc(Domain::Diag, layout);
            fill(dirty, size, 0xA5);
            fx.free(dirty, layout);
            let _guard = fx.alloc.enter(Domain::Diag);
            // SAFETY: a valid layout.
            let ptr = unsafe { fx.alloc.alloc_zeroed(layout) };
            assert_eq!(ptr, dirty, "the freed block is reused, so zeroing is tested");
            // SAFETY: the block holds `size` bytes.
            assert!(unsafe { std::slice::from_raw_parts(ptr, size) }.iter().all(|&b| b == 0));
            fx.free(ptr, layout);
        }
        let impossible = Layout::from_size_align(isize::MAX as usize - 4096, 4096).unwrap();
        assert!(fx.alloc(Domain::Diag, impossible).is_null());
        fx.assert_books_balance();
    }

    #[test]
    fn out_of_memory_returns_null_and_takes_back_spares() {
        // Room for exactly four chunks (and their table entries).
        let fx = Fixture::new(4 * CHUNK_SIZE + 2048);
        let sizes = [16, 32, 48, 64];
        let layouts: Vec<Layout> = sizes.iter().map(|&s| Layout::from_size_align(s, 8).unwrap()).collect();
        let ptrs: Vec<*mut u8> = layouts.iter().map(|&l| fx.alloc(Domain::Net, l)).collect();
        assert!(ptrs.iter().all(|p| !p.is_null()));
        assert_eq!(fx.alloc.stats(Domain::Net).chunks, 4);
        assert!(fx.alloc(Domain::Sctp, layouts[0]).is_null(), "the heap is full");
        assert!(fx.alloc(Domain::Sctp, Layout::from_size_align(5000, 8).unwrap()).is_null());
        fx.assert_books_balance();
        for (ptr, layout) in ptrs.into_iter().zip(&layouts) {
            fx.free(ptr, *layout);
        }
        assert_eq!(fx.alloc.stats(Domain::Net).used, 4 * CHUNK_SIZE, "four spares cached");
        let ptr = fx.alloc(Domain::Sctp, layouts[0]);
        assert!(!ptr.is_null(), "out of memory, the spares go back to the heap");
        assert_eq!(fx.alloc.stats(Domain::Net).used, 0);
        assert_eq!(fx.alloc.stats(Domain::Sctp).used, CHUNK_SIZE);
        fx.assert_books_balance();
        fx.free(ptr, layouts[0]);
    }

    #[test]
    fn wholly_free_chunks_beyond_one_spare_go_back_at_once() {
        let fx = Fixture::new(4 * MIB);
        let layout = Layout::from_size_align(2048, 8).unwrap();
        let per_chunk = CHUNK_SIZE / 2048;
        let ptrs: Vec<*mut u8> = (0..3 * per_chunk).map(|_| fx.alloc(Domain::Mgmt, layout)).collect();
        assert_eq!(fx.alloc.stats(Domain::Mgmt).chunks, 3);
        for ptr in ptrs {
            fx.free(ptr, layout);
        }
        let s = fx.alloc.stats(Domain::Mgmt);
        assert_eq!((s.chunks, s.used, s.peak), (1, CHUNK_SIZE, 3 * CHUNK_SIZE));
        assert_eq!(fx.heap_used(), CHUNK_SIZE);
    }

    #[test]
    fn domains_nest_and_names_round_trip() {
        let alloc = DomainAllocator::new();
        assert_eq!(alloc.current(), Domain::Kernel);
        {
            let _bgp = alloc.enter(Domain::Bgp);
            assert_eq!(alloc.current(), Domain::Bgp);
            {
                let _bmp = alloc.enter(Domain::Bmp);
                assert_eq!(alloc.current(), Domain::Bmp);
            }
            assert_eq!(alloc.current(), Domain::Bgp);
        }
        assert_eq!(alloc.current(), Domain::Kernel);
        for (i, d) in Domain::ALL.into_iter().enumerate() {
            assert_eq!(
                (d.index(), Domain::from_name(d.name()), Domain::from_index(i)),
                (i, Some(d), Some(d))
            );
        }
        assert_eq!(Domain::from_name("bird"), None);
        // Without a heap, allocation fails instead of panicking.
        // SAFETY: a valid layout.
        assert!(unsafe { alloc.alloc(Layout::from_size_align(8, 8).unwrap()) }.is_null());
    }

    #[test]
    fn heap_stats_find_the_largest_hole() {
        let fx = Fixture::new(MIB);
        let total = fx.alloc.heap_stats().total;
        let s = fx.alloc.heap_stats();
        assert_eq!((s.used, s.free), (0, total));
        assert!(s.largest_free + 16 >= total && s.largest_free <= total, "{s:?}");
        // A large block in the middle splits the free space in two.
        let a = Layout::from_size_align(300 * 1024, 8).unwrap();
        let b = Layout::from_size_align(10_000, 8).unwrap();
        let first = fx.alloc(Domain::Mgmt, a);
        let second = fx.alloc(Domain::Mgmt, b);
        fx.free(first, a);
        let s = fx.alloc.heap_stats();
        // Footprints: payload rounded to 8 plus the trailer.
        let largest = (total - (300 * 1024 + 8) - 10_008).max(300 * 1024 + 8);
        assert!(s.largest_free <= largest && s.largest_free + 16 >= largest, "{s:?} {largest}");
        assert_eq!(s.used, 10_008);
        fx.free(second, b);
    }

    #[test]
    fn the_unaccounted_front_end_serves_the_same_blocks() {
        let layout = Layout::from_size_align(64 * MIB, CHUNK_SIZE).unwrap();
        // SAFETY: non-zero size.
        let region = unsafe { std::alloc::alloc(layout) };
        let front = UnaccountedFrontEnd::new();
        // SAFETY: a fresh region used only here.
        unsafe { front.init(region, 64 * MIB) };
        let mut rng = Rng(7);
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for _ in 0..20_000 {
            if live.len() < 500 && rng.below(2) == 0 {
                let l = random_layout(&mut rng);
                let _guard = front.enter(Domain::ALL[rng.below(Domain::COUNT)]);
                // SAFETY: a valid layout.
                let ptr = unsafe { front.alloc(l) };
                assert!(!ptr.is_null());
                let seed = rng.next() as u8;
                fill(ptr, l.size(), seed);
                live.push((ptr, l, seed));
            } else if let Some((ptr, l, seed)) = live.pop() {
                check(ptr, l.size(), seed);
                // SAFETY: allocated with `l`.
                unsafe { front.dealloc(ptr, l) };
            }
        }
        for (ptr, l, seed) in live {
            check(ptr, l.size(), seed);
            // SAFETY: allocated with `l`.
            unsafe { front.dealloc(ptr, l) };
        }
        // SAFETY: allocated above with `layout`; the front end is gone.
        unsafe { std::alloc::dealloc(region, layout) };
    }
}
