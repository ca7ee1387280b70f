//! Drives a `DomainAllocator` with a sequence of allocations, frees, reallocs, domain switches,
//! restarts (new generations) and reclaims decoded from the input, against a model of its books:
//! every figure (live, blocks, earlier lives, generation, a reclaim's leak report) must match the
//! model after every step, block contents must survive, and the domains' `used` must add up to
//! the heap's.
#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::OnceLock;

use bulkhead_mem::{block_footprint, Domain, DomainAllocator, CHUNK_SIZE};
use libfuzzer_sys::fuzz_target;

const REGION: usize = 8 * 1024 * 1024;
const MAX_LIVE: usize = 256;
/// The region every run's allocator manages, allocated once.
static REGION_START: OnceLock<usize> = OnceLock::new();

struct Block {
    ptr: *mut u8,
    layout: Layout,
    domain: Domain,
    generation: u32,
    seed: u8,
}

#[derive(Clone, Copy, Default)]
struct Model {
    live: usize,
    blocks: usize,
    generation: u32,
    earlier_live: usize,
    earlier_blocks: usize,
}

/// Reads the input a byte at a time; zeros when it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn domain(&mut self) -> Domain {
        Domain::ALL[usize::from(self.byte()) % Domain::COUNT]
    }

    fn layout(&mut self) -> Layout {
        let size = match self.byte() % 4 {
            0 => usize::from(self.byte()),
            1 | 2 => usize::from(self.u16() % 4096),
            _ => usize::from(self.u16()) * 2,
        };
        let align = 1usize << (self.byte() % 13);
        Layout::from_size_align(size, align).unwrap_or(Layout::new::<u8>())
    }
}

/// The bytes of a block that carry its pattern: its first and last 32 (all of a small one), so
/// an overlap at either end shows, without writing every byte of a large block.
fn marked(len: usize) -> impl Iterator<Item = usize> {
    (0..len.min(32)).chain(len.saturating_sub(32).max(32)..len)
}

fn fill(block: &Block) {
    for i in marked(block.layout.size()) {
        // SAFETY: the block holds `layout.size()` bytes.
        unsafe { block.ptr.add(i).write(block.seed.wrapping_add(i as u8)) };
    }
}

/// Checks the pattern `fill` wrote for the block's layout, up to byte `len` (what a realloc kept).
fn check(block: &Block, len: usize) {
    for i in marked(block.layout.size()).filter(|&i| i < len) {
        // SAFETY: the block holds at least `len` bytes.
        let byte = unsafe { block.ptr.add(i).read() };
        assert_eq!(byte, block.seed.wrapping_add(i as u8), "block contents");
    }
}

fuzz_target!(|data: &[u8]| {
    let region = *REGION_START.get_or_init(|| {
        let layout = Layout::from_size_align(REGION + 64, CHUNK_SIZE).unwrap();
        // SAFETY: non-zero size; the region is never freed, and reused by every run.
        let region = unsafe { std::alloc::alloc(layout) };
        assert!(!region.is_null());
        region as usize
    }) as *mut u8;
    let alloc = DomainAllocator::new();
    let mut input = Input(data);
    // SAFETY: the region is used by one allocator at a time (runs are sequential, and each run's
    // allocator is dropped before the next run starts).
    unsafe { alloc.init(region.add(usize::from(input.byte() % 8) * 8), REGION) };
    let mut model = [Model::default(); Domain::COUNT];
    let mut live: Vec<Block> = Vec::new();
    let mut seed = 0u8;

    while !input.0.is_empty() {
        let domain = input.domain();
        let _guard = alloc.enter(domain);
        match input.byte() % 6 {
            0 | 1 if live.len() < MAX_LIVE => {
                let layout = input.layout();
                // SAFETY: a valid layout.
                let ptr = unsafe { alloc.alloc(layout) };
                if ptr.is_null() {
                    continue; // the heap is full: allowed, and nothing is charged
                }
                assert_eq!(ptr as usize % layout.align(), 0);
                seed = seed.wrapping_add(1);
                let m = &mut model[domain.index()];
                m.live += block_footprint(layout.size(), layout.align());
                m.blocks += 1;
                let block = Block { ptr, layout, domain, generation: m.generation, seed };
                fill(&block);
                live.push(block);
            }
            2 if !live.is_empty() => {
                let i = usize::from(input.byte()) % live.len();
                let block = live.swap_remove(i);
                check(&block, block.layout.size());
                // SAFETY: a live block with its layout.
                unsafe { alloc.dealloc(block.ptr, block.layout) };
                credit(&mut model[block.domain.index()], &block);
            }
            3 if !live.is_empty() => {
                let i = usize::from(input.byte()) % live.len();
                let new_size = input.layout().size();
                let block = &mut live[i];
                let Ok(new_layout) = Layout::from_size_align(new_size, block.layout.align()) else {
                    continue;
                };
                // SAFETY: a live block with its layout; a valid new size for its alignment.
                let ptr = unsafe { alloc.realloc(block.ptr, block.layout, new_size) };
                if ptr.is_null() {
                    continue; // the old block is untouched
                }
                let old = block_footprint(block.layout.size(), block.layout.align());
                let new = block_footprint(new_size, block.layout.align());
                let moved = ptr != block.ptr;
                let old_len = block.layout.size().min(new_size);
                block.ptr = ptr;
                check(block, old_len);
                let m = &mut model[block.domain.index()];
                if moved {
                    credit(m, block);
                    m.live += new;
                    m.blocks += 1;
                    block.generation = m.generation;
                } else {
                    assert_eq!(old, new, "a block stays in place only within its class");
                }
                block.layout = new_layout;
                fill(block);
            }
            4 => {
                let generation = alloc.begin_generation(domain);
                let m = &mut model[domain.index()];
                m.generation += 1;
                m.earlier_live = m.live;
                m.earlier_blocks = m.blocks;
                assert_eq!(generation.0, m.generation);
            }
            _ => {
                let report = alloc.reclaim(domain);
                let m = model[domain.index()];
                assert_eq!(
                    (report.bytes, report.blocks, report.generation.0),
                    (m.live - m.earlier_live, m.blocks - m.earlier_blocks, m.generation)
                );
            }
        }
        for d in Domain::ALL {
            let s = alloc.stats(d);
            let m = model[d.index()];
            assert_eq!(
                (s.live, s.blocks, s.earlier_live, s.earlier_blocks, s.generation.0),
                (m.live, m.blocks, m.earlier_live, m.earlier_blocks, m.generation),
                "domain {d}"
            );
            assert!(s.used >= s.chunks * CHUNK_SIZE && s.peak >= s.used);
        }
    }
    let used: usize = Domain::ALL.iter().map(|d| alloc.stats(*d).used).sum();
    assert_eq!(used, alloc.heap_stats().used, "the domains' used add up to the heap's");
    for block in live.drain(..) {
        check(&block, block.layout.size());
        // SAFETY: a live block with its layout.
        unsafe { alloc.dealloc(block.ptr, block.layout) };
    }
    for d in Domain::ALL {
        alloc.reclaim(d);
        assert_eq!(alloc.stats(d).used, 0, "domain {d} keeps memory once everything is freed");
    }
});

fn credit(m: &mut Model, block: &Block) {
    let footprint = block_footprint(block.layout.size(), block.layout.align());
    m.live -= footprint;
    m.blocks -= 1;
    if block.generation != m.generation {
        m.earlier_live -= footprint;
        m.earlier_blocks -= 1;
    }
}
