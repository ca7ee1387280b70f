//! The boot seed: 32 bytes from the best entropy source this machine has, chosen in one place,
//! [`seed`], in this order:
//!
//! 1. `RDSEED` (CPUID leaf 7 EBX bit 18): the CPU's entropy source itself;
//! 2. `RDRAND` (CPUID leaf 1 ECX bit 30): the CPU's DRBG, reseeded by that source;
//! 3. virtio-rng (`virtio_rng.rs`): the hypervisor's entropy, e.g. the host's getrandom;
//! 4. TSC jitter: the timing of short loops, condensed with SHA-256 — weak, logged as such.
//!
//! A source that is offered but fails (the instruction keeps reporting failure, or returns
//! words that [`check_hardware_words`] refuses: stuck, all ones, all zeros) is logged and the
//! next one is tried. QEMU's default TCG CPU (`qemu64`) has neither instruction (`-cpu max`
//! has both); `-device virtio-rng-pci` gives the third.
//!
//! The seed goes into a [`Csprng`] (`Csprng::from_seed`); [`cpu_seed`] gives fresh material for
//! `Csprng::reseed` later, where the CPU has an instruction.

use crate::arch::{cpuid, rdtsc};
use crate::virtio_rng::{VirtioRng, VirtioRngError};
pub use bulkhead_base::rng::{check_hardware_words, Csprng, EntropyPool, Source, SuspectOutput};
use core::fmt;

/// Tries per 64-bit word for `RDRAND`: Intel's guidance (a healthy DRBG fails 10 in a row with
/// negligible probability, so more failures mean a broken part).
const RDRAND_TRIES: u32 = 10;
/// Tries per 64-bit word for `RDSEED`, which fails whenever the entropy source is momentarily
/// drained (several cores, or a hypervisor, drawing at once); a `pause` between tries.
const RDSEED_TRIES: u32 = 1_000;
/// Samples of TSC jitter at most: each is one short loop (about a microsecond under TCG).
const JITTER_SAMPLES: u32 = 4_096;
/// Samples of TSC jitter at least, whatever the time they take.
const JITTER_MIN_SAMPLES: u32 = 64;
/// Time after which the jitter loop stops once it has `JITTER_MIN_SAMPLES`: where `rdtsc`
/// traps to a (software) hypervisor one sample costs a millisecond, and boot must not wait
/// seconds (such a trap's timing varies a lot, so fewer samples carry more).
const JITTER_BUDGET_US: u64 = 20_000;
/// TSC ticks for that budget when the TSC is not calibrated yet (a 4 GHz TSC).
const UNCALIBRATED_JITTER_BUDGET_TICKS: u64 = 4_000 * JITTER_BUDGET_US;

/// The 32-byte boot seed and where it came from. Needs the heap (the virtio-rng rings), and
/// works before or after `time::calibrate`. Logs each source that was offered but failed, and
/// warns when it falls back to TSC jitter.
pub fn seed() -> ([u8; 32], Source) {
    let cpu = CpuRandom::detect();
    if cpu.rdseed {
        match rdseed_seed() {
            Ok(seed) => return (seed, Source::Rdseed),
            Err(e) => log::warn!("bulkhead: rng: RDSEED unusable: {e}"),
        }
    }
    if cpu.rdrand {
        match rdrand_seed() {
            Ok(seed) => return (seed, Source::Rdrand),
            Err(e) => log::warn!("bulkhead: rng: RDRAND unusable: {e}"),
        }
    }
    match virtio_seed() {
        Ok(seed) => return (seed, Source::VirtioRng),
        Err(VirtioRngError::NotFound) => {}
        Err(e) => log::warn!("bulkhead: rng: {e}"),
    }
    let (seed, stats) = tsc_jitter_seed();
    log::warn!(
        "bulkhead: rng: no RDSEED, RDRAND or virtio-rng: seeded from TSC jitter ({} of {} samples varied), a weak source",
        stats.changes,
        stats.samples
    );
    if stats.changes == 0 {
        log::error!("bulkhead: rng: the TSC did not vary at all: the seed is predictable");
    }
    (seed, Source::TscJitter)
}

/// 32 fresh bytes from the CPU's instructions (`RDSEED`, else `RDRAND`), for `Csprng::reseed`;
/// `None` where the CPU has neither or both fail. Cheap: no device, no jitter loop.
pub fn cpu_seed() -> Option<([u8; 32], Source)> {
    let cpu = CpuRandom::detect();
    if cpu.rdseed {
        if let Ok(seed) = rdseed_seed() {
            return Some((seed, Source::Rdseed));
        }
    }
    if cpu.rdrand {
        if let Ok(seed) = rdrand_seed() {
            return Some((seed, Source::Rdrand));
        }
    }
    None
}

/// Which random instructions the CPU offers, from CPUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuRandom {
    pub rdseed: bool,
    pub rdrand: bool,
}

impl CpuRandom {
    pub fn detect() -> CpuRandom {
        let (max_leaf, _, _, _) = cpuid(0, 0);
        let (_, _, leaf1_ecx, _) = cpuid(1, 0);
        let leaf7_ebx = if max_leaf >= 7 { cpuid(7, 0).1 } else { 0 };
        CpuRandom { rdseed: leaf7_ebx & (1 << 18) != 0, rdrand: leaf1_ecx & (1 << 30) != 0 }
    }
}

/// Why a CPU instruction gave no seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HardwareError {
    /// The instruction reported failure (CF clear) on every one of `tries` tries for a word.
    Exhausted { tries: u32 },
    /// The instruction reported success but returned implausible words.
    Suspect(SuspectOutput),
}

impl fmt::Display for HardwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardwareError::Exhausted { tries } => write!(f, "failed {tries} times in a row"),
            HardwareError::Suspect(s) => write!(f, "{s}"),
        }
    }
}

/// 32 bytes from `RDSEED`. Call only where `CpuRandom::detect().rdseed`.
pub fn rdseed_seed() -> Result<[u8; 32], HardwareError> {
    hardware_seed(RDSEED_TRIES, || {
        let mut word = 0;
        // SAFETY: the caller checked CPUID leaf 7 EBX bit 18 (RDSEED); the instruction only
        // writes `word` and the flags.
        let ok = unsafe { core::arch::x86_64::_rdseed64_step(&mut word) };
        (ok == 1).then_some(word)
    })
}

/// 32 bytes from `RDRAND`. Call only where `CpuRandom::detect().rdrand`.
pub fn rdrand_seed() -> Result<[u8; 32], HardwareError> {
    hardware_seed(RDRAND_TRIES, || {
        let mut word = 0;
        // SAFETY: the caller checked CPUID leaf 1 ECX bit 30 (RDRAND); the instruction only
        // writes `word` and the flags.
        let ok = unsafe { core::arch::x86_64::_rdrand64_step(&mut word) };
        (ok == 1).then_some(word)
    })
}

/// Four words from `step` (each within `tries`), checked together, as 32 little-endian bytes.
fn hardware_seed(tries: u32, mut step: impl FnMut() -> Option<u64>) -> Result<[u8; 32], HardwareError> {
    let mut words = [0u64; 4];
    for word in &mut words {
        *word = (0..tries)
            .find_map(|_| {
                let value = step();
                if value.is_none() {
                    core::hint::spin_loop();
                }
                value
            })
            .ok_or(HardwareError::Exhausted { tries })?;
    }
    check_hardware_words(&words).map_err(HardwareError::Suspect)?;
    let mut seed = [0u8; 32];
    for (chunk, word) in seed.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Ok(seed)
}

/// 32 bytes from the first virtio-rng device; the device is reset and released afterwards.
pub fn virtio_seed() -> Result<[u8; 32], VirtioRngError> {
    let mut device = VirtioRng::probe()?;
    let mut seed = [0u8; 32];
    device.fill(&mut seed)?;
    Ok(seed)
}

/// What the jitter loop measured, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterStats {
    pub samples: u64,
    /// Samples that differed from the one before (0: no variation, a predictable seed).
    pub changes: u64,
}

/// 32 bytes from TSC jitter: short loops of data-dependent length, each timed with `rdtsc`,
/// `JITTER_SAMPLES` of them or fewer (at least `JITTER_MIN_SAMPLES`) once `JITTER_BUDGET_US`
/// has passed; every delta is hashed whole into an [`EntropyPool`] (SHA-256, `sha2`), with the
/// TSC at start and end. Weak: under an emulator the deltas may hardly vary.
pub fn tsc_jitter_seed() -> ([u8; 32], JitterStats) {
    let budget = match crate::time::micros_to_tsc(JITTER_BUDGET_US) {
        0 => UNCALIBRATED_JITTER_BUDGET_TICKS,
        ticks => ticks,
    };
    let begin = rdtsc();
    let mut pool = EntropyPool::new();
    pool.add_bytes(&begin.to_le_bytes());
    let mut scratch = [0u64; 64];
    let mut last = 0u64;
    for sample in 0..JITTER_SAMPLES {
        let start = rdtsc();
        if sample >= JITTER_MIN_SAMPLES && start.wrapping_sub(begin) > budget {
            break;
        }
        // A loop whose length and memory pattern follow the last delta, so the timing noise of
        // one sample feeds the work of the next.
        let spins = 16 + (last & 31);
        for i in 0..spins {
            let slot = ((i.wrapping_mul(7) ^ last ^ u64::from(sample)) & 63) as usize;
            if let Some(cell) = scratch.get_mut(slot) {
                *cell = core::hint::black_box(cell.wrapping_add(start).rotate_left(5));
            }
        }
        let delta = rdtsc().wrapping_sub(start);
        pool.add_sample(delta);
        last = delta;
    }
    pool.add_bytes(&rdtsc().to_le_bytes());
    let stats = JitterStats { samples: pool.samples(), changes: pool.changes() };
    (pool.finish(), stats)
}
