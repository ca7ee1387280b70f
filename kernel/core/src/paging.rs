//! Identity mappings beyond the boot map. The boot code maps 0..4 GiB with 2 MiB pages; device
//! memory above that (64-bit BARs) is mapped here on demand from a small static pool of tables.

use spin::Mutex;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const BOOT_MAPPED_END: u64 = 4 << 30;
const POOL_TABLES: usize = 16;

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct Pool {
    tables: [Table; POOL_TABLES],
    used: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { tables: [const { Table([0; 512]) }; POOL_TABLES], used: 0 });

unsafe extern "C" {
    static mut boot_pml4: [u64; 512];
}

/// Makes `[phys, phys + size)` accessible at the same virtual address, uncached.
/// Panics if the static table pool runs out (a configuration with too many devices).
pub fn map_mmio(phys: u64, size: u64) {
    let end = phys.saturating_add(size.max(1));
    if end <= BOOT_MAPPED_END {
        return;
    }
    let mut pool = POOL.lock();
    let mut page = phys & !((2 << 20) - 1);
    while page < end {
        // SAFETY: single core; boot_pml4 is the live PML4 and only this function (under the
        // POOL lock) edits tables after boot. New entries are only added, never changed, so no
        // TLB shootdown is needed.
        unsafe {
            let pml4 = &mut *core::ptr::addr_of_mut!(boot_pml4);
            let pdpt = next_table(&mut pool, &mut pml4[((page >> 39) & 511) as usize]);
            let pd = next_table(&mut pool, &mut (*pdpt)[((page >> 30) & 511) as usize]);
            let entry = &mut (*pd)[((page >> 21) & 511) as usize];
            if *entry & PRESENT == 0 {
                *entry = page | PRESENT | WRITABLE | HUGE | WRITE_THROUGH | CACHE_DISABLE;
            }
        }
        page += 2 << 20;
    }
}

/// The table an entry points to, taking one from the pool if the entry is empty.
///
/// # Safety
/// `entry` must be an entry of a live page table whose targets are identity-mapped.
unsafe fn next_table(pool: &mut Pool, entry: &mut u64) -> *mut [u64; 512] {
    if *entry & PRESENT == 0 {
        let index = pool.used;
        assert!(index < POOL_TABLES, "page-table pool exhausted mapping device memory");
        pool.used += 1;
        let table = &mut pool.tables[index];
        table.0 = [0; 512];
        *entry = (table as *mut Table as u64) | PRESENT | WRITABLE;
    }
    (*entry & ADDRESS_MASK) as *mut [u64; 512]
}
