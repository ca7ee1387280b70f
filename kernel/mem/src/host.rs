//! A global allocator for host tests (feature `host-heap`): the [`DomainAllocator`] over a
//! static region, handed its heap on first use, so that a test binary books every byte exactly
//! as the image does and can check a domain back to its baseline.
//!
//! The current domain is one for the whole process, as in the single-core image: a test that
//! uses it should run its cases on one thread (`harness = false`, or `--test-threads=1`).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::DomainAllocator;

/// The region's size: zero-filled `.bss`, touched only as the heap grows.
pub const HOST_HEAP_SIZE: usize = 256 << 20;

// Page-aligned, not chunk-aligned: valgrind loads the binary only 32 KiB-aligned, so a
// larger declared alignment would be a lie the allocator relies on (it rounds up itself).
#[repr(C, align(4096))]
struct Region(UnsafeCell<[u8; HOST_HEAP_SIZE]>);

// SAFETY: the region is handed to the allocator once (guarded by `HostHeap::state`) and only
// ever touched through it, behind its lock.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; HOST_HEAP_SIZE]));

const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// `#[global_allocator] static HEAP: HostHeap = HostHeap::new();`
pub struct HostHeap {
    allocator: DomainAllocator,
    state: AtomicU8,
}

impl HostHeap {
    pub const fn new() -> Self {
        HostHeap { allocator: DomainAllocator::new(), state: AtomicU8::new(UNINIT) }
    }

    /// The allocator, for `enter`, `stats`, `set_quotas`, ... (ready once this returns).
    pub fn allocator(&'static self) -> &'static DomainAllocator {
        self.ready();
        &self.allocator
    }

    fn ready(&self) {
        if self.state.load(Ordering::Acquire) == READY {
            return;
        }
        if self.state.compare_exchange(UNINIT, INITIALISING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // SAFETY: the static region is used by nothing else, and this runs once.
            unsafe { self.allocator.init(REGION.0.get().cast::<u8>(), HOST_HEAP_SIZE) };
            self.state.store(READY, Ordering::Release);
        }
        while self.state.load(Ordering::Acquire) != READY {
            core::hint::spin_loop();
        }
    }
}

impl Default for HostHeap {
    fn default() -> Self {
        HostHeap::new()
    }
}

// SAFETY: every call forwards to the DomainAllocator after it was given its heap.
unsafe impl GlobalAlloc for HostHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.ready();
        // SAFETY: forwarded caller contract.
        unsafe { self.allocator.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded caller contract: `ptr` came from this allocator with `layout`.
        unsafe { self.allocator.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.ready();
        // SAFETY: forwarded caller contract.
        unsafe { self.allocator.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded caller contract.
        unsafe { self.allocator.realloc(ptr, layout, new_size) }
    }
}
