//! The local APIC (one-shot deadline timer, end of interrupt, MSI target) and the I/O APIC
//! (the serial port's IRQ). The legacy 8259 PICs are masked.

use crate::arch::{cpuid, outb, rdmsr, rdtsc, wrmsr, FIRST_IRQ_VECTOR, SPURIOUS_VECTOR};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const TIMER_VECTOR: u8 = FIRST_IRQ_VECTOR;
pub const SERIAL_VECTOR: u8 = FIRST_IRQ_VECTOR + 1;
/// NIC `i` interrupts on `NIC_VECTOR_BASE + i`.
pub const NIC_VECTOR_BASE: u8 = FIRST_IRQ_VECTOR + 2;

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_SPURIOUS: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const IOAPIC_BASE: usize = 0xfec0_0000;
const SERIAL_GSI: u32 = 4;
/// How long the APIC timer is measured against the TSC when there is no TSC-deadline mode.
const TIMER_CALIBRATION_MICROS: u64 = 250;

static LAPIC_BASE: AtomicUsize = AtomicUsize::new(0);
/// Local APIC timer ticks per millisecond; 0 when the TSC-deadline mode is used.
static TIMER_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

fn lapic_read(reg: usize) -> u32 {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    // SAFETY: base is the identity-mapped local APIC page set up in `init`.
    unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
}

fn lapic_write(reg: usize, value: u32) {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    // SAFETY: as for `lapic_read`.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, value) }
}

fn tsc_deadline_supported() -> bool {
    cpuid(1, 0).2 & (1 << 24) != 0
}

/// Enables the local APIC, masks the 8259s, routes the serial IRQ. The timer is set up by
/// `init_timer` once the TSC is calibrated.
pub fn init() {
    // Mask both 8259 PICs: all interrupts come through the APICs.
    outb(0x21, 0xff);
    outb(0xa1, 0xff);

    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
    let base = unsafe { rdmsr(IA32_APIC_BASE) } & 0xffff_f000;
    crate::paging::map_mmio(base, 4096);
    LAPIC_BASE.store(base as usize, Ordering::Relaxed);
    lapic_write(REG_SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
    crate::paging::map_mmio(IOAPIC_BASE as u64, 4096);
    ioapic_route(SERIAL_GSI, SERIAL_VECTOR);
}

/// Picks the timer mode: TSC-deadline where the CPU has it, else one-shot with the APIC timer's
/// rate measured against the (calibrated) TSC.
pub fn init_timer() {
    if tsc_deadline_supported() {
        lapic_write(REG_LVT_TIMER, (0b10 << 17) | u32::from(TIMER_VECTOR));
    } else {
        lapic_write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
        lapic_write(REG_LVT_TIMER, (1 << 16) | u32::from(TIMER_VECTOR)); // masked while measuring
        lapic_write(REG_TIMER_INITIAL, u32::MAX);
        let start = rdtsc();
        crate::time::spin_micros(TIMER_CALIBRATION_MICROS);
        let elapsed_tsc = rdtsc().saturating_sub(start);
        let counted = u64::from(u32::MAX - lapic_read(REG_TIMER_CURRENT));
        lapic_write(REG_TIMER_INITIAL, 0);
        let micros = crate::time::tsc_to_micros(elapsed_tsc).max(1);
        TIMER_TICKS_PER_MS.store((counted * 1000 / micros).max(1), Ordering::Relaxed);
        lapic_write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot
    }
}

pub fn apic_id() -> u32 {
    lapic_read(REG_ID) >> 24
}

/// The MSI address/data pair that delivers `vector` to this CPU.
pub fn msi_message(vector: u8) -> (u64, u32) {
    (0xfee0_0000 | (u64::from(apic_id()) << 12), u32::from(vector))
}

/// Arms the timer to fire `micros` from now (0 disarms).
pub fn set_timer_micros(micros: u64) {
    let ticks_per_ms = TIMER_TICKS_PER_MS.load(Ordering::Relaxed);
    if ticks_per_ms == 0 {
        let deadline =
            if micros == 0 { 0 } else { rdtsc().saturating_add(crate::time::micros_to_tsc(micros)).max(1) };
        // SAFETY: TSC-deadline mode was detected in `init`.
        unsafe { wrmsr(IA32_TSC_DEADLINE, deadline) };
    } else {
        let ticks = (u128::from(micros) * u128::from(ticks_per_ms) / 1000).clamp(1, u128::from(u32::MAX));
        lapic_write(REG_TIMER_INITIAL, if micros == 0 { 0 } else { ticks as u32 });
    }
}

pub fn end_of_interrupt(_vector: u8) {
    if LAPIC_BASE.load(Ordering::Relaxed) != 0 {
        lapic_write(REG_EOI, 0);
    }
}

fn ioapic_write(reg: u32, value: u32) {
    // SAFETY: the I/O APIC window (select at +0, data at +0x10) is identity-mapped in `init`.
    unsafe {
        core::ptr::write_volatile(IOAPIC_BASE as *mut u32, reg);
        core::ptr::write_volatile((IOAPIC_BASE + 0x10) as *mut u32, value);
    }
}

/// Routes a GSI, edge-triggered and active high, to `vector` on this CPU.
fn ioapic_route(gsi: u32, vector: u8) {
    let reg = 0x10 + gsi * 2;
    ioapic_write(reg + 1, apic_id() << 24);
    ioapic_write(reg, u32::from(vector));
}
