use core::alloc::{GlobalAlloc, Layout};
use std::vec::Vec;

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;

use super::*;
use crate::class::{route, Route};
use crate::{block_footprint, CHUNK_SIZE, CLASS_SIZES, LARGE_TRAILER, SMALL_ALIGN_MAX, SMALL_MAX};

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

/// Draws from the seeded generator every test uses (`Csprng`, the platform's own).
trait Draw {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize;

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

impl Draw for Csprng {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
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
    /// The life of `domain` that allocated the block.
    generation: u32,
    seed: u8,
}

/// The model's books of one domain.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Shadow {
    live: usize,
    blocks: usize,
    large: usize,
    generation: u32,
    earlier_live: usize,
    earlier_blocks: usize,
}

impl Shadow {
    fn charge(&mut self, layout: Layout) {
        let f = expected_footprint(layout);
        self.live += f;
        self.blocks += 1;
        if !is_small(layout) {
            self.large += f;
        }
    }

    fn credit(&mut self, layout: Layout, generation: u32) {
        let f = expected_footprint(layout);
        self.live -= f;
        self.blocks -= 1;
        if !is_small(layout) {
            self.large -= f;
        }
        if generation != self.generation {
            self.earlier_live -= f;
            self.earlier_blocks -= 1;
        }
    }

    fn begin_generation(&mut self) {
        self.generation += 1;
        self.earlier_live = self.live;
        self.earlier_blocks = self.blocks;
    }
}

fn random_layout(rng: &mut Csprng) -> Layout {
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

fn assert_model(fx: &Fixture, shadow: &[Shadow; Domain::COUNT], reclaim: bool) {
    fx.assert_books_balance();
    for d in Domain::ALL {
        let m = shadow[d.index()];
        if reclaim {
            let r = fx.alloc.reclaim(d);
            let current = (m.live - m.earlier_live, m.blocks - m.earlier_blocks);
            assert_eq!(
                (r.bytes, r.blocks, r.generation.0),
                (current.0, current.1, m.generation),
                "domain {d}"
            );
        }
        let s = fx.alloc.stats(d);
        assert_eq!((s.live, s.blocks), (m.live, m.blocks), "domain {d}");
        assert_eq!(
            (s.generation.0, s.earlier_live, s.earlier_blocks),
            (m.generation, m.earlier_live, m.earlier_blocks),
            "domain {d}"
        );
        assert_eq!(s.used, s.chunks * CHUNK_SIZE + m.large, "domain {d}: used = chunks + large");
        assert!(s.peak >= s.used);
    }
}

#[test]
fn random_sequences_keep_exact_books_per_generation_and_intact_contents() {
    // Start off a chunk boundary so the heap also has to pad chunks into alignment. The heap is
    // large because every restart retires the chunks its survivors occupy (here hundreds of
    // blocks per domain, far more than a shed leaves behind), and they return to the heap only
    // as their last blocks are freed.
    let fx = Fixture::with_offset(192 * MIB, 24);
    let mut rng = Csprng::seed_from_u64(1);
    let mut live: Vec<Live> = Vec::new();
    let mut shadow = [Shadow::default(); Domain::COUNT];
    for op in 0..150_000u32 {
        let current = Domain::ALL[rng.below(Domain::COUNT)];
        if rng.below(2000) == 0 {
            // A restart: blocks of the ending life live on and are freed later, as a subsystem's
            // leftovers handed to others would be.
            let generation = fx.alloc.begin_generation(current);
            shadow[current.index()].begin_generation();
            assert_eq!(generation.0, shadow[current.index()].generation);
        }
        let _guard = fx.alloc.enter(current);
        let choice = rng.below(100);
        if live.is_empty() || (choice < 45 && live.len() < 3000) {
            let layout = random_layout(&mut rng);
            // SAFETY: valid layout.
            let ptr = unsafe { fx.alloc.alloc(layout) };
            assert!(!ptr.is_null(), "op {op}: {layout:?} refused");
            assert_eq!(ptr as usize % layout.align(), 0, "op {op}: misaligned");
            let seed = rng.next_u64() as u8;
            fill(ptr, layout.size(), seed);
            let m = &mut shadow[current.index()];
            m.charge(layout);
            live.push(Live { ptr, layout, domain: current, generation: m.generation, seed });
        } else if choice < 80 {
            let block = live.swap_remove(rng.below(live.len()));
            check(block.ptr, block.layout.size(), block.seed);
            fx.free(block.ptr, block.layout);
            shadow[block.domain.index()].credit(block.layout, block.generation);
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
            let (old_route, new_route) = (route(block.layout), route(new_layout));
            if matches!(old_route, Some(Route::Small(_))) && old_route == new_route {
                assert_eq!(ptr, block.ptr, "op {op}: same class, same slot, same life");
            } else {
                // A moved block is a new block of the owner's current life.
                let m = &mut shadow[block.domain.index()];
                m.credit(block.layout, block.generation);
                m.charge(new_layout);
                block.generation = m.generation;
            }
            block.ptr = ptr;
            block.layout = new_layout;
            fill(ptr, new_layout.size(), block.seed);
        }
        if op % 1000 == 0 {
            assert_model(&fx, &shadow, op % 7000 == 0);
        }
    }
    assert_model(&fx, &shadow, true);
    for block in live.drain(..) {
        check(block.ptr, block.layout.size(), block.seed);
        fx.free(block.ptr, block.layout);
    }
    for d in Domain::ALL {
        assert!(fx.alloc.reclaim(d).is_clean());
        let s = fx.alloc.stats(d);
        assert_eq!((s.used, s.chunks, s.live, s.earlier_live), (0, 0, 0, 0), "domain {d} keeps memory");
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

    let mut rng = Csprng::seed_from_u64(42);
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
    let mut rng = Csprng::seed_from_u64(7);
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
    for _ in 0..20_000 {
        if live.len() < 500 && rng.below(2) == 0 {
            let l = random_layout(&mut rng);
            let _guard = front.enter(Domain::ALL[rng.below(Domain::COUNT)]);
            // SAFETY: a valid layout.
            let ptr = unsafe { front.alloc(l) };
            assert!(!ptr.is_null());
            let seed = rng.next_u64() as u8;
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

/// The operator's case: a block of life 1 freed during life 2 hid a leak of life 2 of the same
/// size.
///
/// Before books per generation (the scheme up to commit b3b1d77: one `live`/`blocks` tally per
/// domain, a baseline copied from it at `set_baseline`, and `reclaim` reporting
/// `live.saturating_sub(baseline)`), this test failed at the second shed: the report was
/// `LeakReport { bytes: 0, blocks: 0 }`. Life 2's leak (112 + 10_008 B in 2 blocks) was live,
/// but life 1's two blocks of the same footprints, live at the baseline, had been freed in the
/// meantime, so `live` equalled the baseline exactly and the leak vanished.
#[test]
fn a_block_of_an_earlier_life_freed_later_does_not_hide_a_new_leak() {
    let fx = Fixture::new(4 * MIB);
    let small = Layout::from_size_align(100, 8).unwrap();
    let large = Layout::from_size_align(10_000, 8).unwrap();
    let (small_f, large_f) = (block_footprint(100, 8), block_footprint(10_000, 8));
    assert_eq!((small_f, large_f), (112, 10_008));

    // Life 1 allocates two blocks and is shed while someone still holds them.
    let life1 = fx.alloc.begin_generation(Domain::Bgp);
    let a_small = fx.alloc(Domain::Bgp, small);
    let a_large = fx.alloc(Domain::Bgp, large);
    let shed1 = fx.alloc.reclaim(Domain::Bgp);
    assert_eq!((shed1.generation, shed1.bytes, shed1.blocks), (life1, small_f + large_f, 2));

    // Life 2 leaks two blocks of the same footprints, and life 1's blocks are freed meanwhile.
    fx.alloc.set_baseline(Domain::Bgp);
    let life2 = fx.alloc.stats(Domain::Bgp).generation;
    assert_eq!(life2.0, life1.0 + 1);
    assert_eq!(fx.alloc.baseline(Domain::Bgp), (small_f + large_f, 2), "life 1's survivors");
    let b_small = fx.alloc(Domain::Bgp, small);
    let b_large = fx.alloc(Domain::Bgp, large);
    fx.free(a_small, small);
    fx.free(a_large, large);
    let s = fx.alloc.stats(Domain::Bgp);
    assert_eq!((s.live, s.blocks, s.earlier_live, s.earlier_blocks), (small_f + large_f, 2, 0, 0));

    // The old scheme's figure, from the same books: everything live minus the baseline.
    let (base_live, base_blocks) = fx.alloc.baseline(Domain::Bgp);
    let old_scheme = (s.live.saturating_sub(base_live), s.blocks.saturating_sub(base_blocks));
    assert_eq!(old_scheme, (0, 0), "the single-tally scheme sees nothing");
    let shed2 = fx.alloc.reclaim(Domain::Bgp);
    assert_eq!(
        shed2,
        LeakReport {
            domain: Domain::Bgp,
            generation: life2,
            bytes: small_f + large_f,
            blocks: 2,
            returned: 0
        },
        "life 2's leak is reported with its exact bytes and blocks"
    );

    // Life 3 starts with life 2's leak as its baseline; freeing it does not touch life 3's figure.
    fx.alloc.begin_generation(Domain::Bgp);
    let c = fx.alloc(Domain::Bgp, small);
    fx.free(b_small, small);
    fx.free(b_large, large);
    let shed3 = fx.alloc.reclaim(Domain::Bgp);
    assert_eq!((shed3.bytes, shed3.blocks), (small_f, 1));
    fx.free(c, small);
    assert!(fx.alloc.reclaim(Domain::Bgp).is_clean());
    assert_eq!((fx.alloc.stats(Domain::Bgp).used, fx.heap_used()), (0, 0));
}

#[test]
fn a_new_life_never_allocates_in_a_chunk_of_an_earlier_one() {
    let fx = Fixture::new(4 * MIB);
    let layout = Layout::from_size_align(64, 8).unwrap();
    let survivor = fx.alloc(Domain::Sctp, layout);
    let freed = fx.alloc(Domain::Sctp, layout);
    fx.free(freed, layout);
    fx.alloc.begin_generation(Domain::Sctp);
    // The survivor's chunk has free slots, but they belong to life 0: life 1 takes a new chunk.
    let fresh = fx.alloc(Domain::Sctp, layout);
    let chunk_of = |p: *mut u8| p as usize & !(CHUNK_SIZE - 1);
    assert_ne!(chunk_of(fresh), chunk_of(survivor));
    assert_eq!(fx.alloc.stats(Domain::Sctp).chunks, 2);
    // The retired chunk goes back to the heap with its last block, not kept as a spare.
    fx.free(survivor, layout);
    assert_eq!(fx.alloc.stats(Domain::Sctp).chunks, 1);
    assert_eq!(fx.heap_used(), CHUNK_SIZE);
    // A wholly free spare is not retired: it serves the next life.
    fx.free(fresh, layout);
    fx.alloc.begin_generation(Domain::Sctp);
    let again = fx.alloc(Domain::Sctp, layout);
    assert_eq!(chunk_of(again), chunk_of(fresh));
    assert_eq!(fx.alloc.stats(Domain::Sctp).chunks, 1);
    fx.free(again, layout);
    fx.assert_books_balance();
}

#[test]
fn block_footprint_is_the_measured_change_in_the_books() {
    for offset in [0, 24] {
        let fx = Fixture::with_offset(96 * MIB, offset);
        let mut rng = Csprng::seed_from_u64(0xF007_F00D);
        let mut layouts: Vec<Layout> = Vec::new();
        for size in (0..=3000).chain([4095, 4096, 4097, 10_001, 65_535, 65_536, 200_000]) {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                layouts.push(Layout::from_size_align(size, align).unwrap());
            }
        }
        layouts.extend((0..2000).map(|_| random_layout(&mut rng)));
        // Keep some blocks live so the heap has holes of every shape around the probes.
        let mut kept = Vec::new();
        for (i, layout) in layouts.into_iter().enumerate() {
            let before = fx.alloc.stats(Domain::Sctp);
            let ptr = fx.alloc(Domain::Sctp, layout);
            assert!(!ptr.is_null());
            let after = fx.alloc.stats(Domain::Sctp);
            let footprint = block_footprint(layout.size(), layout.align());
            assert_eq!(after.live - before.live, footprint, "{layout:?}: live");
            if is_small(layout) {
                let chunks = after.chunks - before.chunks;
                assert_eq!(after.used - before.used, chunks * CHUNK_SIZE, "{layout:?}: used");
            } else {
                assert_eq!(after.used - before.used, footprint, "{layout:?}: used");
            }
            if i % 3 == 0 {
                kept.push((ptr, layout));
            } else {
                fx.free(ptr, layout);
                let freed = fx.alloc.stats(Domain::Sctp);
                assert_eq!(after.live - freed.live, footprint, "{layout:?}: credited");
            }
        }
        for (ptr, layout) in kept {
            fx.free(ptr, layout);
        }
        fx.assert_books_balance();
    }
}

/// Nothing the allocator does on a domain switch, a new generation or a reclaim is charged to the
/// domain current at the time (the console runs `debug shed` in `mgmt`).
#[test]
fn switches_generations_and_reclaims_charge_nothing_to_the_current_domain() {
    let fx = Fixture::new(8 * MIB);
    let small = Layout::from_size_align(200, 8).unwrap();
    let large = Layout::from_size_align(9000, 8).unwrap();
    let blocks: Vec<(*mut u8, Layout)> = (0..500)
        .map(|i| if i % 10 == 0 { large } else { small })
        .map(|l| (fx.alloc(Domain::Bgp, l), l))
        .collect();
    let _mgmt = fx.alloc.enter(Domain::Mgmt);
    let mgmt_before = fx.alloc.stats(Domain::Mgmt);
    for d in Domain::ALL {
        let _guard = fx.alloc.enter(d);
        let _nested = fx.alloc.enter(Domain::Bgp);
    }
    assert_eq!(fx.alloc.current(), Domain::Mgmt);
    fx.alloc.begin_generation(Domain::Bgp);
    for (ptr, layout) in &blocks[1..] {
        fx.free(*ptr, *layout);
    }
    let heap_before = fx.heap_used();
    let report = fx.alloc.reclaim(Domain::Bgp);
    assert!(report.is_clean(), "life 0's survivor is not life 1's leak");
    assert_eq!(heap_before - fx.heap_used(), report.returned, "only Bgp's chunks moved");
    let bgp = fx.alloc.stats(Domain::Bgp);
    assert_eq!((bgp.chunks, bgp.used, bgp.earlier_blocks), (0, block_footprint(9000, 8), 1), "{bgp:?}");
    let _ = fx.alloc.stats(Domain::Bgp);
    let _ = fx.alloc.heap_stats();
    assert_eq!(fx.alloc.stats(Domain::Mgmt), mgmt_before);
    assert_eq!(fx.alloc.stats(Domain::Mgmt).used, 0);
    fx.free(blocks[0].0, blocks[0].1);
    fx.assert_books_balance();
}

/// What grew `mgmt` by 128 KiB when `debug shed` was typed: not this crate (see the test above),
/// but two small blocks the console's command made in `mgmt`, each taking a 64 KiB chunk of a
/// class `mgmt` had not used yet. Replayed here with the same layouts:
/// * `Command::parse` collects the words into a `Vec<&str>`: capacity 4 × 16 B = 64 B, freed at
///   the end of the command; its chunk stays with `mgmt` as the class's spare;
/// * `Supervisor::take_down` (run by `force_shed` inside the console's `mgmt` scope) pushes the
///   time onto `Slot::recent`, a `VecDeque<Instant>` that allocates on its first push:
///   capacity 4 × 8 B = 32 B, kept for good.
#[test]
fn the_first_debug_shed_takes_two_chunks_in_mgmt() {
    let fx = Fixture::new(4 * MIB);
    let words = Layout::from_size_align(64, 8).unwrap();
    let recent = Layout::from_size_align(32, 8).unwrap();
    let _mgmt = fx.alloc.enter(Domain::Mgmt);
    let parsed = fx.alloc(Domain::Mgmt, words);
    let deque = fx.alloc(Domain::Mgmt, recent);
    fx.free(parsed, words);
    let s = fx.alloc.stats(Domain::Mgmt);
    assert_eq!((s.used, s.live, s.blocks), (2 * CHUNK_SIZE, 32, 1), "128 KiB for 32 live bytes");
    // The spare goes at the next reclaim of mgmt (never, as mgmt is not shed) or when the heap
    // runs out; the deque's chunk stays as long as the deque.
    fx.free(deque, recent);
}

/// `net` is never shed: its bound is admission. At its hard quota `admit(Net, ..)` refuses and
/// counts the refusal (the platform then refuses the socket or drops the frame, and counts it),
/// while frames already allocated stay allocated.
#[test]
fn net_at_its_hard_quota_refuses_admission_and_is_not_shed() {
    let fx = Fixture::new(4 * MIB);
    let mut quotas = [Quota { hard: 256 * 1024, soft: 128 * 1024 }; Domain::COUNT];
    quotas[Domain::Net.index()] = Quota { hard: CHUNK_SIZE, soft: CHUNK_SIZE / 2 };
    fx.alloc.set_quotas(quotas, 0).unwrap();
    assert!(!Domain::Net.is_shed_at_quota());
    let frame = Layout::from_size_align(1514, 8).unwrap();
    let cost = block_footprint(1514, 8);
    assert_eq!(cost, 1536);
    // The first frame takes a chunk: after it, `used` is at the hard quota.
    assert_eq!(fx.alloc.admit(Domain::Net, CHUNK_SIZE), Ok(()));
    let first = fx.alloc(Domain::Net, frame);
    assert_eq!(fx.alloc.stats(Domain::Net).used, CHUNK_SIZE);
    assert_eq!(
        fx.alloc.admit(Domain::Net, cost),
        Err(OverQuota { domain: Domain::Net, requested: cost, used: CHUNK_SIZE, hard: CHUNK_SIZE })
    );
    assert_eq!(fx.alloc.stats(Domain::Net).failed_admissions, 1);
    assert!(!fx.alloc.over_hard(Domain::Net), "at the quota, not over it");
    fx.free(first, frame);
    assert!(fx.alloc.reclaim(Domain::Net).is_clean());
    assert_eq!(fx.alloc.admit(Domain::Net, cost), Ok(()), "room again once the chunk went back");
}
