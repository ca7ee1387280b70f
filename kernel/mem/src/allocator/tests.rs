use core::alloc::{GlobalAlloc, Layout};
use std::vec::Vec;

use super::*;
use crate::{CHUNK_SIZE, CLASS_SIZES, LARGE_TRAILER, SMALL_ALIGN_MAX, SMALL_MAX};

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
        assert_eq!((bgp.live, bgp.blocks), (expected_footprint(layout), 1), "after realloc to {new_size}");
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
        assert_eq!((d.index(), Domain::from_name(d.name()), Domain::from_index(i)), (i, Some(d), Some(d)));
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
