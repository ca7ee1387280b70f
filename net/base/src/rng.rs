//! The platform's random numbers: one ChaCha20 generator ([`Csprng`]) seeded at boot from the
//! best source the machine has ([`Source`]), and the pure helpers the kernel uses to judge and
//! condense what its sources return ([`check_hardware_words`], [`EntropyPool`]).
//!
//! Cores never own a generator: they take `&mut impl RngCore` (re-exported as
//! [`crate::rand_core`]) from their caller, so a test hands them a seeded `Csprng` and replays
//! the same run.
//!
//! # How entropy is mixed in
//!
//! [`Csprng::mix_in`] draws 32 fresh bytes from the current ChaCha20 stream (bytes that are never
//! handed out), XORs them with `SHA-256(DOMAIN || input)`, and rekeys ChaCha20 with the result
//! (stream 0, position 0). Why that is sound:
//!
//! - if the old key is secret, the 32 drawn bytes are indistinguishable from uniform and
//!   independent of the input, so the new key is secret whatever the input is (mixing in
//!   attacker-chosen or empty input never weakens the generator);
//! - if the old key is known (state compromise), the new key is as unpredictable as the input's
//!   SHA-256 digest: fresh entropy mixed in recovers the generator;
//! - the old key is replaced and cannot be computed from the new one or from later output
//!   (ChaCha20 is one-way in its key), so earlier output stays secret after a compromise.
//!
//! No cryptography is implemented here: ChaCha20 is `rand_chacha`'s, SHA-256 is `sha2`'s.

use core::fmt;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// Separates the digests of [`Csprng::mix_in`] from any other use of SHA-256 on the same bytes.
const MIX_DOMAIN: &[u8] = b"bulkhead csprng mix_in v1";
/// Separates the digest of an [`EntropyPool`] from any other use of SHA-256 on the same bytes.
const POOL_DOMAIN: &[u8] = b"bulkhead entropy pool v1";

/// Where the boot seed came from, for the boot log (`rng: seeded from RDSEED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The CPU's entropy source, read directly (`RDSEED`).
    Rdseed,
    /// The CPU's DRBG, reseeded by its entropy source (`RDRAND`).
    Rdrand,
    /// The hypervisor's entropy device (virtio-rng over PCI).
    VirtioRng,
    /// Timing jitter of short loops measured with the TSC: the fallback when the machine offers
    /// nothing better. Weak, above all under an emulator.
    TscJitter,
}

impl Source {
    /// Whether a seed from this source should be treated as weak (and said so in the log).
    pub fn is_weak(self) -> bool {
        matches!(self, Source::TscJitter)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Rdseed => "RDSEED",
            Source::Rdrand => "RDRAND",
            Source::VirtioRng => "virtio-rng",
            Source::TscJitter => "TSC jitter",
        })
    }
}

/// The appliance's cryptographically secure generator: ChaCha20 (`rand_chacha`) keyed from a
/// 32-byte seed, rekeyed by [`Csprng::mix_in`] (see the module docs for how and why).
///
/// It holds 32 bytes of key plus ChaCha's block buffer and never allocates. Its `Debug` output
/// shows no state.
#[derive(Clone)]
pub struct Csprng {
    chacha: ChaCha20Rng,
}

impl Csprng {
    /// A generator keyed with `seed`. The same seed always gives the same stream.
    pub fn from_seed(seed: [u8; 32]) -> Csprng {
        Csprng { chacha: ChaCha20Rng::from_seed(seed) }
    }

    /// Folds `input` into the key: new key = (next 32 bytes of the stream) XOR
    /// SHA-256(domain || input). The stream restarts under the new key. Never weakens the
    /// generator, whatever `input` is (see the module docs).
    pub fn mix_in(&mut self, input: &[u8]) {
        let mut key = [0u8; 32];
        self.chacha.fill_bytes(&mut key);
        let digest = Sha256::new().chain_update(MIX_DOMAIN).chain_update(input).finalize();
        for (k, d) in key.iter_mut().zip(digest) {
            *k ^= d;
        }
        self.chacha = ChaCha20Rng::from_seed(key);
    }

    /// Adds a fresh seed from a platform source. Unlike building a new generator, the entropy
    /// already in the state is kept: this is [`Csprng::mix_in`] of the seed.
    pub fn reseed(&mut self, seed: &[u8; 32]) {
        self.mix_in(seed);
    }
}

impl SeedableRng for Csprng {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Csprng {
        Csprng::from_seed(seed)
    }
}

impl RngCore for Csprng {
    fn next_u32(&mut self) -> u32 {
        self.chacha.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.chacha.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.chacha.fill_bytes(dst)
    }
}

impl CryptoRng for Csprng {}

impl fmt::Debug for Csprng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Csprng { .. }")
    }
}

/// Why words from a hardware random instruction were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspectOutput {
    /// Fewer words than the check needs (at least 2).
    TooFew,
    /// A word of all ones: what some AMD CPUs' `RDRAND` returns, with success, after a resume.
    AllOnes,
    /// A word of all zeros: what some CPUs' `RDSEED` returns, with success, when broken.
    AllZeros,
    /// The same 64-bit value twice among the words: a stuck generator.
    Repeated(u64),
}

impl fmt::Display for SuspectOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuspectOutput::TooFew => f.write_str("too few words to check"),
            SuspectOutput::AllOnes => f.write_str("returned all ones"),
            SuspectOutput::AllZeros => f.write_str("returned all zeros"),
            SuspectOutput::Repeated(v) => write!(f, "returned {v:#018x} twice"),
        }
    }
}

/// Checks words a hardware random instruction reported as good. A working 64-bit generator
/// gives 0, all ones, or a repeat among a handful of words with probability below 2^-58; a
/// broken one (stuck, or the known all-ones and all-zeros bugs) gives them every time.
pub fn check_hardware_words(words: &[u64]) -> Result<(), SuspectOutput> {
    if words.len() < 2 {
        return Err(SuspectOutput::TooFew);
    }
    for (i, &w) in words.iter().enumerate() {
        if w == u64::MAX {
            return Err(SuspectOutput::AllOnes);
        }
        if w == 0 {
            return Err(SuspectOutput::AllZeros);
        }
        if words.iter().skip(i + 1).any(|&other| other == w) {
            return Err(SuspectOutput::Repeated(w));
        }
    }
    Ok(())
}

/// Condenses many weak samples (TSC deltas, device bytes) into one 32-byte seed with SHA-256,
/// and counts how many samples differed from the one before, so that the caller can tell a
/// source that gave no variation at all (a deterministic emulator) from one that jittered.
///
/// Fixed size, no allocation: samples are hashed as they arrive, not stored.
#[derive(Clone)]
pub struct EntropyPool {
    hash: Sha256,
    samples: u64,
    changes: u64,
    last: Option<u64>,
}

impl EntropyPool {
    pub fn new() -> EntropyPool {
        EntropyPool { hash: Sha256::new().chain_update(POOL_DOMAIN), samples: 0, changes: 0, last: None }
    }

    /// Adds one timing sample (e.g. a TSC delta). The whole value is hashed; only its
    /// variation is credited (see [`EntropyPool::changes`]).
    pub fn add_sample(&mut self, sample: u64) {
        self.hash.update(sample.to_le_bytes());
        self.samples += 1;
        if self.last.is_some_and(|last| last != sample) {
            self.changes += 1;
        }
        self.last = Some(sample);
    }

    /// Adds bytes that are hashed but neither counted nor credited (a timestamp, an identifier).
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
    }

    /// Samples added with [`EntropyPool::add_sample`].
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples that differed from the sample before them: 0 means the source did not vary at
    /// all and the seed is as predictable as the code that produced it.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The 32-byte seed: SHA-256 over everything added, in order.
    pub fn finish(self) -> [u8; 32] {
        self.hash.finalize().into()
    }
}

impl Default for EntropyPool {
    fn default() -> EntropyPool {
        EntropyPool::new()
    }
}

impl fmt::Debug for EntropyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntropyPool").field("samples", &self.samples).field("changes", &self.changes).finish()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn stream(rng: &mut Csprng) -> [u8; 64] {
        let mut out = [0u8; 64];
        rng.fill_bytes(&mut out);
        out
    }

    fn seed(byte: u8) -> [u8; 32] {
        [byte; 32]
    }

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Csprng::from_seed(seed(7)), Csprng::from_seed(seed(7)));
        assert_eq!(stream(&mut a), stream(&mut b));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn different_seeds_differ() {
        let mut a = Csprng::from_seed(seed(1));
        let mut one_bit = seed(1);
        one_bit[31] ^= 0x80;
        let mut b = Csprng::from_seed(one_bit);
        assert_ne!(stream(&mut a), stream(&mut b));
    }

    /// The stream is exactly ChaCha20 keyed with the seed, nonce 0, block counter from 0:
    /// RFC 8439 appendix A.1, test vector #1 (all-zero key and nonce, block 0).
    #[test]
    fn stream_is_chacha20_of_the_seed() {
        let mut rng = Csprng::from_seed([0u8; 32]);
        let expected: [u8; 64] = [
            0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86, 0xbd, 0x28,
            0xbd, 0xd2, 0x19, 0xb8, 0xa0, 0x8d, 0xed, 0x1a, 0xa8, 0x36, 0xef, 0xcc, 0x8b, 0x77, 0x0d, 0xc7,
            0xda, 0x41, 0x59, 0x7c, 0x51, 0x57, 0x48, 0x8d, 0x77, 0x24, 0xe0, 0x3f, 0xb8, 0xd8, 0x4a, 0x37,
            0x6a, 0x43, 0xb8, 0xf4, 0x15, 0x18, 0xa1, 0x1c, 0xc3, 0x87, 0xb6, 0x69, 0xb2, 0xee, 0x65, 0x86,
        ];
        assert_eq!(stream(&mut rng), expected);
    }

    #[test]
    fn mix_in_changes_the_stream() {
        let mut plain = Csprng::from_seed(seed(3));
        let mut mixed = plain.clone();
        mixed.mix_in(b"entropy");
        assert_ne!(stream(&mut plain), stream(&mut mixed));
    }

    #[test]
    fn mix_in_is_deterministic_and_depends_on_input() {
        let base = Csprng::from_seed(seed(4));
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base);
        a.mix_in(b"one");
        b.mix_in(b"one");
        c.mix_in(b"two");
        let (sa, sb, sc) = (stream(&mut a), stream(&mut b), stream(&mut c));
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
    }

    #[test]
    fn mix_in_is_the_documented_construction() {
        // new key = next 32 bytes of the stream XOR SHA-256(MIX_DOMAIN || input).
        let mut rng = Csprng::from_seed(seed(6));
        let mut key = [0u8; 32];
        rng.clone().fill_bytes(&mut key);
        let digest = Sha256::new().chain_update(MIX_DOMAIN).chain_update(b"input").finalize();
        for (k, d) in key.iter_mut().zip(digest) {
            *k ^= d;
        }
        rng.mix_in(b"input");
        assert_eq!(stream(&mut rng), stream(&mut Csprng::from_seed(key)));
    }

    #[test]
    fn mix_in_of_nothing_still_rekeys() {
        // Even empty input moves to a new key, so output before and after never repeats.
        let mut rng = Csprng::from_seed(seed(5));
        let mut fresh = rng.clone();
        rng.mix_in(&[]);
        let after = stream(&mut rng);
        assert_ne!(after, stream(&mut fresh));
        // And the new stream is not the old one shifted by the 32 bytes mix_in consumed.
        let mut old = Csprng::from_seed(seed(5));
        let mut skipped = [0u8; 32];
        old.fill_bytes(&mut skipped);
        assert_ne!(after, stream(&mut old));
    }

    #[test]
    fn reseed_keeps_the_old_state() {
        // Two generators with different states reseeded with the same seed still differ.
        let (mut a, mut b) = (Csprng::from_seed(seed(1)), Csprng::from_seed(seed(2)));
        a.reseed(&seed(9));
        b.reseed(&seed(9));
        assert_ne!(stream(&mut a), stream(&mut b));
        // And a reseed is not a fresh generator from that seed.
        assert_ne!(stream(&mut a), stream(&mut Csprng::from_seed(seed(9))));
    }

    #[test]
    fn output_looks_uniform() {
        // A weak sanity check that catches a stuck or badly wired generator: over 64 KiB every
        // byte value appears, and the bit count is near half.
        let mut rng = Csprng::from_seed(seed(11));
        let mut counts = [0u32; 256];
        let mut ones = 0u64;
        let mut buf = [0u8; 1024];
        for _ in 0..64 {
            rng.fill_bytes(&mut buf);
            for &b in &buf {
                counts[usize::from(b)] += 1;
                ones += u64::from(b.count_ones());
            }
        }
        assert!(counts.iter().all(|&c| c > 150 && c < 370), "{counts:?}");
        let bits = 64 * 1024 * 8;
        assert!(ones.abs_diff(bits / 2) < 2_000, "{ones} of {bits}");
    }

    #[test]
    fn debug_hides_the_state() {
        let rng = Csprng::from_seed(seed(0xaa));
        assert_eq!(std::format!("{rng:?}"), "Csprng { .. }");
    }

    #[test]
    fn source_names_for_the_boot_log() {
        assert_eq!(std::format!("{}", Source::Rdseed), "RDSEED");
        assert_eq!(std::format!("{}", Source::Rdrand), "RDRAND");
        assert_eq!(std::format!("{}", Source::VirtioRng), "virtio-rng");
        assert_eq!(std::format!("{}", Source::TscJitter), "TSC jitter");
        assert!(Source::TscJitter.is_weak());
        assert!(!Source::Rdseed.is_weak() && !Source::Rdrand.is_weak() && !Source::VirtioRng.is_weak());
    }

    #[test]
    fn hardware_words_accepted_when_plausible() {
        assert_eq!(check_hardware_words(&[1, 2, 3, 0x8000_0000_0000_0000]), Ok(()));
    }

    #[test]
    fn hardware_words_refused_when_broken() {
        assert_eq!(check_hardware_words(&[]), Err(SuspectOutput::TooFew));
        assert_eq!(check_hardware_words(&[5]), Err(SuspectOutput::TooFew));
        assert_eq!(check_hardware_words(&[u64::MAX; 4]), Err(SuspectOutput::AllOnes));
        assert_eq!(check_hardware_words(&[3, 0, 4, 5]), Err(SuspectOutput::AllZeros));
        assert_eq!(check_hardware_words(&[7, 8, 9, 7]), Err(SuspectOutput::Repeated(7)));
        assert_eq!(check_hardware_words(&[42, 42]), Err(SuspectOutput::Repeated(42)));
        assert_eq!(std::format!("{}", SuspectOutput::Repeated(1)), "returned 0x0000000000000001 twice");
    }

    #[test]
    fn pool_counts_variation() {
        let mut flat = EntropyPool::new();
        for _ in 0..100 {
            flat.add_sample(40);
        }
        assert_eq!((flat.samples(), flat.changes()), (100, 0));

        let mut jitter = EntropyPool::new();
        for s in [40, 41, 41, 39, 40] {
            jitter.add_sample(s);
        }
        assert_eq!((jitter.samples(), jitter.changes()), (5, 3));
    }

    #[test]
    fn pool_is_sha256_of_domain_and_samples() {
        let mut pool = EntropyPool::new();
        pool.add_bytes(b"boot");
        pool.add_sample(0x0102_0304_0506_0708);
        let mut expected = Sha256::new();
        expected.update(POOL_DOMAIN);
        expected.update(b"boot");
        expected.update([8, 7, 6, 5, 4, 3, 2, 1]);
        let expected: [u8; 32] = expected.finalize().into();
        assert_eq!(pool.finish(), expected);
    }

    #[test]
    fn pool_seed_depends_on_every_sample() {
        let seed_of = |samples: &[u64]| {
            let mut pool = EntropyPool::new();
            samples.iter().for_each(|&s| pool.add_sample(s));
            pool.finish()
        };
        assert_eq!(seed_of(&[1, 2, 3]), seed_of(&[1, 2, 3]));
        assert_ne!(seed_of(&[1, 2, 3]), seed_of(&[1, 2, 4]));
        assert_ne!(seed_of(&[1, 2, 3]), seed_of(&[3, 2, 1]));
    }
}
