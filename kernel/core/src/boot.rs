//! PVH boot: the ELF note QEMU (and Firecracker, cloud-hypervisor) look for, the 32-bit entry
//! that builds an identity map of the first 4 GiB and switches to long mode, and the parsed
//! `hvm_start_info` the hypervisor hands over.
//!
//! Entry state (PVH ABI): 32-bit protected mode, paging off, flat segments, `ebx` holds the
//! physical address of `hvm_start_info`. Everything here runs before any Rust code.

use core::arch::global_asm;

/// `hvm_start_info.magic`, "xEn3" with the high bit set.
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM.
const MEMMAP_RAM: u32 = 1;
/// At most this many memory-map entries are kept.
pub const MAX_MEMORY_REGIONS: usize = 32;

global_asm!(
    r#"
    .section .note.Xen, "a"
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start

    .section .text.pvh, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov edi, ebx                        /* hvm_start_info, first argument of kernel_entry */

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDn: 2 MiB pages, identity, 0..4 GiB */
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov dword ptr [boot_pml4], eax
    mov ecx, 0
1:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 0x3
    mov dword ptr [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 1b

    mov ecx, 0
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                        /* present, writable, 2 MiB page */
    mov dword ptr [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11                         /* bits 32.. of the physical address */
    mov dword ptr [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne 2b

    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20                        /* PAE */
    mov cr4, eax
    mov ecx, 0xC0000080                 /* EFER */
    rdmsr
    or eax, 0x100                       /* LME */
    wrmsr
    mov eax, cr0
    or eax, 0x80010001                  /* PG, WP, PE */
    mov cr0, eax

    lgdt [boot_gdt_pointer]
    /* ljmp 0x08:pvh_long_mode, encoded by hand (ptr16:32 form) */
    .byte 0xea
    .long pvh_long_mode
    .word 0x08

    .code64
pvh_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    mov edi, edi
    xor ebp, ebp
    call kernel_entry
3:
    hlt
    jmp 3b

    .section .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .space 4096
    .global boot_pdpt
boot_pdpt:
    .space 4096
boot_pd:
    .space 4096 * 4
    .balign 16
boot_stack:
    .space 256 * 1024
boot_stack_top:
    "#
);

/// One region of the physical memory map.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryRegion {
    pub start: u64,
    pub size: u64,
    pub kind: u32,
}

impl MemoryRegion {
    pub fn is_ram(&self) -> bool {
        self.kind == MEMMAP_RAM
    }
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// What the hypervisor told us at entry.
#[derive(Clone, Debug)]
pub struct BootInfo {
    pub regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    pub region_count: usize,
    pub rsdp: u64,
    /// TSC at kernel entry, the zero of "ready in N ms".
    pub entry_tsc: u64,
}

impl BootInfo {
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// Reads `hvm_start_info` at `paddr`.
    ///
    /// # Safety
    /// `paddr` must be the address the PVH loader passed in `ebx`, identity mapped.
    pub(crate) unsafe fn from_start_info(paddr: u32, entry_tsc: u64) -> Option<BootInfo> {
        #[repr(C)]
        struct StartInfo {
            magic: u32,
            version: u32,
            flags: u32,
            nr_modules: u32,
            modlist_paddr: u64,
            cmdline_paddr: u64,
            rsdp_paddr: u64,
            memmap_paddr: u64,
            memmap_entries: u32,
            reserved: u32,
        }
        #[repr(C)]
        struct MemmapEntry {
            addr: u64,
            size: u64,
            kind: u32,
            reserved: u32,
        }
        // SAFETY: the loader placed a valid hvm_start_info at paddr (caller's contract).
        let info = unsafe { &*(paddr as usize as *const StartInfo) };
        if info.magic != START_INFO_MAGIC || info.version < 1 || info.memmap_paddr == 0 {
            return None;
        }
        let mut boot = BootInfo {
            regions: [MemoryRegion::default(); MAX_MEMORY_REGIONS],
            region_count: 0,
            rsdp: info.rsdp_paddr,
            entry_tsc,
        };
        let count = (info.memmap_entries as usize).min(MAX_MEMORY_REGIONS);
        for i in 0..count {
            // SAFETY: version >= 1 guarantees memmap_entries entries at memmap_paddr.
            let entry = unsafe { &*((info.memmap_paddr as usize as *const MemmapEntry).add(i)) };
            if entry.size == 0 {
                continue; // qboot reports an empty entry
            }
            boot.regions[boot.region_count] =
                MemoryRegion { start: entry.addr, size: entry.size, kind: entry.kind };
            boot.region_count += 1;
        }
        Some(boot)
    }
}
