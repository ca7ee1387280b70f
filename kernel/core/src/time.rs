//! The monotonic clock: the TSC, with its frequency taken from the hypervisor where it says
//! (KVM's pvclock, the timing CPUID leaf) and otherwise measured against the PIT.

use crate::arch::{cpuid, inb, outb, rdtsc, wrmsr};
use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);

const PIT_HZ: u64 = 1_193_182;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

/// Where the TSC frequency came from, for the boot banner.
#[derive(Clone, Copy, Debug)]
pub enum ClockSource {
    KvmClock,
    CpuidTiming,
    CpuidCrystal,
    Pit,
}

pub(crate) fn set_entry(tsc: u64) {
    ENTRY_TSC.store(tsc, Ordering::Relaxed);
}

/// Finds the TSC frequency. Returns it with its source.
pub fn calibrate() -> (u64, ClockSource) {
    let (hz, source) = if let Some(hz) = kvmclock_hz() {
        (hz, ClockSource::KvmClock)
    } else if let Some(hz) = cpuid_timing_hz() {
        (hz, ClockSource::CpuidTiming)
    } else if let Some(hz) = cpuid_crystal_hz() {
        (hz, ClockSource::CpuidCrystal)
    } else {
        (pit_hz(), ClockSource::Pit)
    };
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    (hz, source)
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Microseconds since kernel entry (0 before calibration).
pub fn micros_since_boot() -> u64 {
    tsc_to_micros(rdtsc().saturating_sub(ENTRY_TSC.load(Ordering::Relaxed)))
}

pub fn tsc_to_micros(ticks: u64) -> u64 {
    let hz = tsc_hz();
    if hz == 0 {
        return 0;
    }
    ((u128::from(ticks) * 1_000_000) / u128::from(hz)) as u64
}

pub fn micros_to_tsc(micros: u64) -> u64 {
    ((u128::from(micros) * u128::from(tsc_hz())) / 1_000_000) as u64
}

/// Busy-waits `micros` (boot-time use only).
pub fn spin_micros(micros: u64) {
    let end = rdtsc().saturating_add(micros_to_tsc(micros));
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

fn hypervisor_signature() -> Option<[u8; 12]> {
    let (_, _, ecx, _) = cpuid(1, 0);
    if ecx & (1 << 31) == 0 {
        return None;
    }
    let (_, b, c, d) = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..12].copy_from_slice(&d.to_le_bytes());
    Some(sig)
}

/// KVM's pvclock says how it converts TSC ticks to nanoseconds; invert that.
fn kvmclock_hz() -> Option<u64> {
    #[repr(C, align(64))]
    struct PvClock {
        version: u32,
        pad0: u32,
        tsc_timestamp: u64,
        system_time: u64,
        tsc_to_system_mul: u32,
        tsc_shift: i8,
        flags: u8,
        pad: [u8; 2],
    }
    static mut PVCLOCK: PvClock = PvClock {
        version: 0,
        pad0: 0,
        tsc_timestamp: 0,
        system_time: 0,
        tsc_to_system_mul: 0,
        tsc_shift: 0,
        flags: 0,
        pad: [0; 2],
    };

    if &hypervisor_signature()? != b"KVMKVMKVM\0\0\0" {
        return None;
    }
    let (features, _, _, _) = cpuid(0x4000_0001, 0);
    if features & (1 << 3) == 0 {
        return None;
    }
    let addr = core::ptr::addr_of_mut!(PVCLOCK) as u64;
    // SAFETY: KVM advertised the MSR; PVCLOCK is identity-mapped static memory the hypervisor
    // may write; we switch it off again before returning.
    let (mul, shift) = unsafe {
        wrmsr(MSR_KVM_SYSTEM_TIME_NEW, addr | 1);
        let clock = core::ptr::addr_of!(PVCLOCK);
        let mul = core::ptr::read_volatile(core::ptr::addr_of!((*clock).tsc_to_system_mul));
        let shift = core::ptr::read_volatile(core::ptr::addr_of!((*clock).tsc_shift));
        wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        (mul, shift)
    };
    if mul == 0 {
        return None;
    }
    // ns = ((ticks << shift) * mul) >> 32  ⇒  Hz = 1e9 · 2^(32 − shift) / mul
    let exp = 32 - i32::from(shift);
    if !(0..=63).contains(&exp) {
        return None;
    }
    Some(((1_000_000_000u128 << exp) / u128::from(mul)) as u64)
}

/// The hypervisor timing leaf (VMware convention, also KVM with `vmware-cpuid-freq`): kHz.
fn cpuid_timing_hz() -> Option<u64> {
    hypervisor_signature()?;
    let (max, _, _, _) = cpuid(0x4000_0000, 0);
    if max < 0x4000_0010 {
        return None;
    }
    let (khz, _, _, _) = cpuid(0x4000_0010, 0);
    (khz != 0).then(|| u64::from(khz) * 1000)
}

/// CPUID 0x15: TSC / crystal ratio and the crystal frequency.
fn cpuid_crystal_hz() -> Option<u64> {
    let (max, _, _, _) = cpuid(0, 0);
    if max < 0x15 {
        return None;
    }
    let (den, num, crystal, _) = cpuid(0x15, 0);
    if den == 0 || num == 0 || crystal == 0 {
        return None;
    }
    Some(u64::from(crystal) * u64::from(num) / u64::from(den))
}

/// The PIT window started at entry: (TSC when it started, whether it was started).
static PIT_START_TSC: AtomicU64 = AtomicU64::new(0);
/// A window shorter than this is extended by waiting (≈ 3 ms: ±1 tick is 0.03 %).
const PIT_MIN_TICKS: u64 = 3_580;

/// Starts PIT channel 2 counting down from its maximum (≈ 55 ms) so that the TSC can be
/// measured against it over the whole of the boot, without a dedicated wait.
pub(crate) fn start_pit_window() {
    let gate = inb(0x61);
    outb(0x61, (gate & !0x02) & !0x01); // gate off while loading
    outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
    outb(0x42, 0xff);
    outb(0x42, 0xff);
    outb(0x61, (gate & !0x02) | 0x01); // gate on: counting starts
    PIT_START_TSC.store(rdtsc().max(1), Ordering::Relaxed);
}

/// Ticks the PIT has counted since `start_pit_window`, or `None` if it ran out.
fn pit_elapsed() -> Option<u64> {
    outb(0x43, 0b1000_0000); // latch channel 2
    let low = inb(0x42);
    let high = inb(0x42);
    if inb(0x61) & 0x20 != 0 {
        return None; // OUT2 high: the count reached zero
    }
    Some(0xffff - u64::from(u16::from_le_bytes([low, high])))
}

/// The TSC frequency from the boot-long PIT window (restarted once if it overflowed).
fn pit_hz() -> u64 {
    for _ in 0..2 {
        let start = PIT_START_TSC.load(Ordering::Relaxed);
        if start == 0 {
            start_pit_window();
            continue;
        }
        loop {
            let now = rdtsc();
            match pit_elapsed() {
                Some(ticks) if ticks >= PIT_MIN_TICKS => {
                    return now.saturating_sub(start) * PIT_HZ / ticks;
                }
                Some(_) => core::hint::spin_loop(),
                None => break,
            }
        }
        start_pit_window();
    }
    // Never reached on a working PIT; a plausible figure beats a division by zero.
    2_000_000_000
}
