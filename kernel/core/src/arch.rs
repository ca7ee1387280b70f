//! x86_64 instructions the kernel needs: port I/O, CPUID, MSRs, the TSC, the IDT with its
//! interrupt stubs, and the sleep primitive.
//!
//! Interrupts only wake the run loop: a device or timer vector acknowledges the local APIC and
//! returns; the loop then polls everything. Exceptions are fatal and panic with their state.

use core::arch::{asm, global_asm};

/// First vector used for device and timer interrupts (0..32 are CPU exceptions).
pub const FIRST_IRQ_VECTOR: u8 = 32;
/// Spurious-interrupt vector of the local APIC.
pub const SPURIOUS_VECTOR: u8 = 0xff;

pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust; callers name device ports.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, preserves_flags)) }
}

pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) }
    value
}

pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nostack, preserves_flags)) }
}

pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags)) }
}

pub fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as for `outb`.
    unsafe { asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags)) }
    value
}

/// CPUID leaf/subleaf → (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// # Safety
/// The MSR must exist; reading some MSRs has side effects.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: caller's contract.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// The MSR must exist and the value must be valid for it.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    }
}

/// Enables interrupts and halts until one arrives, atomically (`sti` shadows `hlt`), so a
/// wake-up between the caller's last check and the halt is never lost.
pub fn wait_for_interrupt() {
    // SAFETY: the IDT is loaded before interrupts are ever enabled.
    unsafe { asm!("sti; hlt; cli", options(nomem, nostack)) }
}

pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Halts forever with interrupts off.
pub fn halt() -> ! {
    loop {
        // SAFETY: as above.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

// ---- the IDT ----

#[derive(Clone, Copy)]
#[repr(C, packed)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([IdtEntry; 256]);

static mut IDT: Idt = Idt([IdtEntry {
    offset_low: 0,
    selector: 0,
    ist: 0,
    flags: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256]);

/// The frame the stubs below build: pushed registers, vector, error code, then the CPU's frame.
#[repr(C)]
pub struct TrapFrame {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub rbx: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// One stub per vector: push a dummy error code where the CPU pushes none, push the vector, and
// jump to a common path that saves the caller-saved registers and calls `trap_dispatch`.
global_asm!(
    r#"
    .section .text
    .altmacro
    .macro TRAP_STUB_ADDR n
    .quad trap_stub_\n
    .endm
    .macro TRAP_STUB n
    .balign 16
trap_stub_\n:
    .if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    push 0
    .endif
    push \n
    jmp trap_common
    .endm

    .set i, 0
    .rept 256
    TRAP_STUB %i
    .set i, i + 1
    .endr

trap_common:
    push rbx
    push r11
    push r10
    push r9
    push r8
    push rdi
    push rsi
    push rdx
    push rcx
    push rax
    mov rdi, rsp
    mov rbx, rsp
    and rsp, -16
    call trap_dispatch
    mov rsp, rbx
    pop rax
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop r8
    pop r9
    pop r10
    pop r11
    pop rbx
    add rsp, 16
    iretq

    .section .rodata
    .balign 8
    .global trap_stub_table
trap_stub_table:
    .set i, 0
    .rept 256
    TRAP_STUB_ADDR %i
    .set i, i + 1
    .endr
    "#,
);

unsafe extern "C" {
    static trap_stub_table: [u64; 256];
}

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector < FIRST_IRQ_VECTOR {
        panic!(
            "CPU exception {} (error code {:#x}) at rip {:#x}, rsp {:#x}, cr2 {:#x}",
            vector,
            frame.error_code,
            frame.rip,
            frame.rsp,
            read_cr2()
        );
    }
    crate::apic::end_of_interrupt(vector);
}

fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack)) }
    value
}

/// Installs the IDT. Interrupts stay disabled until `wait_for_interrupt`.
pub fn init_idt() {
    // SAFETY: single core, called once before interrupts are enabled; nothing else touches IDT.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        let table = &*core::ptr::addr_of!(trap_stub_table);
        for (entry, &handler) in idt.0.iter_mut().zip(table.iter()) {
            *entry = IdtEntry {
                offset_low: handler as u16,
                selector: 0x08,
                ist: 0,
                flags: 0x8e, // present, ring 0, interrupt gate
                offset_mid: (handler >> 16) as u16,
                offset_high: (handler >> 32) as u32,
                reserved: 0,
            };
        }
        #[repr(C, packed)]
        struct Pointer {
            limit: u16,
            base: u64,
        }
        let pointer =
            Pointer { limit: (core::mem::size_of::<Idt>() - 1) as u16, base: idt as *const Idt as u64 };
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack));
    }
}
