//! The global allocator: the accounted `DomainAllocator` over the RAM the memory map reports.

use crate::boot::BootInfo;
use bulkhead_mem::DomainAllocator;

/// Every allocation in the image goes through here and is charged to the current domain.
#[global_allocator]
pub static ALLOCATOR: DomainAllocator = DomainAllocator::new();

unsafe extern "C" {
    static __kernel_end: u8;
}

/// The heap region: the RAM region that holds the kernel, from the kernel's end up.
#[derive(Clone, Copy, Debug)]
pub struct HeapRegion {
    pub start: u64,
    pub size: u64,
}

pub fn find_region(boot: &BootInfo) -> Option<HeapRegion> {
    let kernel_end = (core::ptr::addr_of!(__kernel_end) as u64 + 4095) & !4095;
    boot.regions()
        .iter()
        .filter(|r| r.is_ram() && r.end() > kernel_end && r.start <= kernel_end)
        .map(|r| HeapRegion { start: kernel_end, size: r.end() - kernel_end })
        .next()
}

/// # Safety
/// `region` must be unused RAM, identity-mapped, never handed out again.
pub unsafe fn init(region: HeapRegion) {
    // SAFETY: caller's contract.
    unsafe { ALLOCATOR.init(region.start as *mut u8, region.size as usize) };
}
