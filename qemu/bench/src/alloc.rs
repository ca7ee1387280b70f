//! `bulkhead-bench alloc [--json PATH]`: the accounted allocator against the alternatives.
//!
//! One seeded workload shaped like the appliance is replayed, call for call, against
//! (a) bare `linked_list_allocator` (its `LockedHeap`), (b) bare `talc` (`TalcLock` over a spin
//! lock), (c) Bulkhead's size-class front end without the books (`UnaccountedFrontEnd`) and
//! (d) the full `DomainAllocator`; each over its own pre-faulted 256 MiB region.
//!
//! The workload, at 25k and at 200k live objects:
//! * fill: the live set of route/flow objects (24–200 B);
//! * steady: turns of the run loop — net: 32 packet buffers (64–1600 B) through a ring of 64 in
//!   flight; forwarder: 16 flow objects replaced; every 64th turn, bgp grows one of four tables
//!   (64 KiB → 4 MiB by ×1.5 reallocs, then starts over);
//! * teardown: everything freed.
//!
//! The steady phase is the headline figure. Bare `linked_list_allocator` walks its hole list on
//! every call, so its steady phase is cut off after a time budget and measured on that prefix;
//! its teardown is skipped (the output says so).

use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulkhead_mem::{Domain, DomainAllocator, DomainGuard, UnaccountedFrontEnd, CHUNK_SIZE};
use linked_list_allocator::LockedHeap;
use talc::source::Manual;
use talc::TalcLock;

const REGION: usize = 256 * 1024 * 1024;
const LIVE_COUNTS: [usize; 2] = [25_000, 200_000];
const STEADY_TURNS: usize = 40_000;
const PACKET_RING: usize = 64;
const TABLES: usize = 4;
const TABLE_START: usize = 64 * 1024;
const TABLE_MAX: usize = 4 * 1024 * 1024;
/// Time budget of bare linked_list_allocator's steady phase, per live count.
const LLA_BUDGET: Duration = Duration::from_secs(4);
const SEED: u64 = 0x0B0B_CAFE_F00D_5EED;

/// Entry point of `bulkhead-bench alloc`.
pub fn main(args: &[String]) -> ExitCode {
    let json_path = match args {
        [] => None,
        [flag, path] if flag == "--json" => Some(path.as_str()),
        _ => {
            eprintln!("usage: bulkhead-bench alloc [--json PATH]");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for live in LIVE_COUNTS {
        let workload = Workload::generate(live, SEED ^ live as u64);
        results.push(Comparison::measure(&workload));
    }
    print_table(&results);
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = json_path {
        if let Err(err) = std::fs::write(path, to_json(&results)) {
            eprintln!("cannot write {path}: {err}");
            return ExitCode::FAILURE;
        }
        println!("figures written to {path}");
    }
    ExitCode::SUCCESS
}

/// One allocator call (or a domain switch, which is not counted as a call).
#[derive(Clone, Copy)]
enum Op {
    Enter(Domain),
    Alloc { slot: u32, size: u32, align: u32 },
    Free { slot: u32 },
    Realloc { slot: u32, new_size: u32 },
}

struct Workload {
    live: usize,
    slots: usize,
    fill: Vec<Op>,
    steady: Vec<Op>,
    teardown: Vec<Op>,
}

/// Per-subject figures for one live count.
struct Figures {
    name: &'static str,
    fill_ns: f64,
    steady_ns: f64,
    steady_calls: usize,
    steady_capped: bool,
    teardown_ns: Option<f64>,
    free: usize,
    free_exact: bool,
    largest_free: usize,
}

struct Comparison {
    live: usize,
    steady_calls: usize,
    subjects: Vec<Figures>,
}

/// What the bench needs from an allocator beside `GlobalAlloc`.
trait Subject: GlobalAlloc {
    type Guard<'a>
    where
        Self: 'a;
    const NAME: &'static str;
    /// Gives the allocator its region.
    ///
    /// # Safety
    ///
    /// The region is unused and outlives the allocator's use.
    unsafe fn init(&self, base: *mut u8, size: usize);
    fn enter(&self, domain: Domain) -> Self::Guard<'_>;
    /// Free bytes, whether that figure is the allocator's own (else probed), largest free block.
    fn free_space(&self) -> (usize, bool, usize);
}

struct Lla(LockedHeap);
struct Talc(TalcLock<spin::mutex::SpinMutex<()>, Manual>);
struct Front(UnaccountedFrontEnd);
struct Accounted(DomainAllocator);

/// Xorshift64*: a seeded, reproducible sequence.
struct Rng(u64);

/// A pre-faulted region of host memory, aligned to the chunk size.
struct Region {
    base: *mut u8,
    layout: Layout,
}

impl Workload {
    fn generate(live: usize, seed: u64) -> Workload {
        let mut rng = Rng(seed | 1);
        let objects = 0..live;
        let ring = live..live + PACKET_RING;
        let tables = ring.end..ring.end + TABLES;
        let slots = tables.end;
        let mut fill = Vec::with_capacity(live + live / 256 + 1);
        for i in objects.clone() {
            if i % 256 == 0 {
                fill.push(Op::Enter(if i % 512 == 0 { Domain::Forwarder } else { Domain::Bgp }));
            }
            fill.push(Op::Alloc { slot: i as u32, size: rng.range(24, 200) as u32, align: 8 });
        }
        let mut steady = Vec::new();
        let mut ring_full = [false; PACKET_RING];
        let mut table_size = [0usize; TABLES];
        for turn in 0..STEADY_TURNS {
            steady.push(Op::Enter(Domain::Net));
            for k in 0..32 {
                let r = (turn * 32 + k) % PACKET_RING;
                let slot = (ring.start + r) as u32;
                if ring_full[r] {
                    steady.push(Op::Free { slot });
                }
                steady.push(Op::Alloc { slot, size: rng.range(64, 1600) as u32, align: 8 });
                ring_full[r] = true;
            }
            steady.push(Op::Enter(Domain::Forwarder));
            for _ in 0..16 {
                let slot = rng.below(live) as u32;
                steady.push(Op::Free { slot });
                steady.push(Op::Alloc { slot, size: rng.range(24, 200) as u32, align: 8 });
            }
            if turn % 64 == 0 {
                steady.push(Op::Enter(Domain::Bgp));
                let t = (turn / 64) % TABLES;
                let slot = (tables.start + t) as u32;
                let size = table_size[t];
                if size == 0 {
                    steady.push(Op::Alloc { slot, size: TABLE_START as u32, align: 16 });
                    table_size[t] = TABLE_START;
                } else if size * 3 / 2 > TABLE_MAX {
                    steady.push(Op::Free { slot });
                    steady.push(Op::Alloc { slot, size: TABLE_START as u32, align: 16 });
                    table_size[t] = TABLE_START;
                } else {
                    let new_size = (size * 3 / 2).next_multiple_of(8);
                    steady.push(Op::Realloc { slot, new_size: new_size as u32 });
                    table_size[t] = new_size;
                }
            }
        }
        let mut teardown = vec![Op::Enter(Domain::Kernel)];
        teardown.extend(objects.map(|s| Op::Free { slot: s as u32 }));
        teardown.extend(
            (0..PACKET_RING).filter(|&r| ring_full[r]).map(|r| Op::Free { slot: (ring.start + r) as u32 }),
        );
        teardown.extend(
            (0..TABLES).filter(|&t| table_size[t] != 0).map(|t| Op::Free { slot: (tables.start + t) as u32 }),
        );
        Workload { live, slots, fill, steady, teardown }
    }
}

impl Comparison {
    fn measure(workload: &Workload) -> Comparison {
        let subjects = vec![
            run::<Lla>(workload, Some(LLA_BUDGET)),
            run::<Talc>(workload, None),
            run::<Front>(workload, None),
            run::<Accounted>(workload, None),
        ];
        let steady_calls = workload.steady.iter().filter(|op| !matches!(op, Op::Enter(_))).count();
        Comparison { live: workload.live, steady_calls, subjects }
    }

    fn steady(&self, name: &str) -> f64 {
        self.subjects.iter().find(|s| s.name == name).map_or(f64::NAN, |s| s.steady_ns)
    }
}

/// Replays the workload against a fresh `S` over a fresh region.
fn run<S: Subject + Fresh>(workload: &Workload, budget: Option<Duration>) -> Figures {
    let region = Region::new(REGION);
    let subject = S::fresh();
    // SAFETY: a fresh region, dropped only after the subject is done with it.
    unsafe { subject.init(region.base, REGION) };
    let mut slots = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); workload.slots];

    let (fill_calls, fill_time) = replay(&subject, &workload.fill, &mut slots, None);
    let (steady_calls, steady_time) = replay(&subject, &workload.steady, &mut slots, budget);
    let total_steady = workload.steady.iter().filter(|op| !matches!(op, Op::Enter(_))).count();
    let steady_capped = steady_calls < total_steady;
    let (free, free_exact, largest_free) = subject.free_space();
    let teardown_ns = if steady_capped {
        None
    } else {
        let (calls, time) = replay(&subject, &workload.teardown, &mut slots, None);
        Some(per_call(time, calls))
    };
    Figures {
        name: S::NAME,
        fill_ns: per_call(fill_time, fill_calls),
        steady_ns: per_call(steady_time, steady_calls),
        steady_calls,
        steady_capped,
        teardown_ns,
        free,
        free_exact,
        largest_free,
    }
}

/// Runs `ops` (all of them, or as many as fit in `budget`); returns calls made and time taken.
fn replay<S: Subject>(
    subject: &S,
    ops: &[Op],
    slots: &mut [(*mut u8, Layout)],
    budget: Option<Duration>,
) -> (usize, Duration) {
    let mut calls = 0;
    let mut guard = None;
    let start = Instant::now();
    for (i, op) in ops.iter().enumerate() {
        if let Some(budget) = budget {
            if i % 256 == 0 && start.elapsed() > budget {
                break;
            }
        }
        match *op {
            Op::Enter(domain) => {
                guard.take();
                guard = Some(subject.enter(domain));
            }
            Op::Alloc { slot, size, align } => {
                let layout = Layout::from_size_align(size as usize, align as usize).expect("workload layout");
                // SAFETY: a valid, non-zero layout.
                let ptr = unsafe { subject.alloc(layout) };
                assert!(!ptr.is_null(), "{}: out of memory", S::NAME);
                // SAFETY: the block holds at least one byte; touch it as a user would.
                unsafe { ptr.write(slot as u8) };
                slots[slot as usize] = (ptr, layout);
                calls += 1;
            }
            Op::Free { slot } => {
                let (ptr, layout) = slots[slot as usize];
                // SAFETY: the workload frees only live slots, with their layout.
                unsafe { subject.dealloc(ptr, layout) };
                calls += 1;
            }
            Op::Realloc { slot, new_size } => {
                let (ptr, layout) = slots[slot as usize];
                // SAFETY: a live slot with its layout; the new size is valid.
                let ptr = unsafe { subject.realloc(ptr, layout, new_size as usize) };
                assert!(!ptr.is_null(), "{}: out of memory in realloc", S::NAME);
                let layout =
                    Layout::from_size_align(new_size as usize, layout.align()).expect("workload layout");
                slots[slot as usize] = (ptr, layout);
                calls += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    drop(guard);
    (calls, elapsed)
}

fn per_call(time: Duration, calls: usize) -> f64 {
    if calls == 0 {
        f64::NAN
    } else {
        time.as_nanos() as f64 / calls as f64
    }
}

/// Largest block of align 8 that `alloc` accepts, by binary search (within 16 bytes).
fn probe_largest<A: GlobalAlloc>(alloc: &A, upper: usize) -> usize {
    let (mut lo, mut hi) = (0usize, upper / 8 + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let layout = Layout::from_size_align(mid * 8, 8).expect("probe layout");
        // SAFETY: a valid layout; the block is freed at once.
        let ptr = unsafe { alloc.alloc(layout) };
        if ptr.is_null() {
            hi = mid;
        } else {
            // SAFETY: just allocated with `layout`.
            unsafe { alloc.dealloc(ptr, layout) };
            lo = mid;
        }
    }
    lo * 8
}

/// Free bytes of an allocator that does not report them: take the largest block again and
/// again until what is left is under 64 bytes (or 20,000 blocks), add them up, give them back.
fn probe_free<A: GlobalAlloc>(alloc: &A, upper: usize) -> usize {
    let mut taken = Vec::new();
    let mut total = 0;
    while taken.len() < 20_000 {
        let size = probe_largest(alloc, upper);
        if size < 64 {
            break;
        }
        let layout = Layout::from_size_align(size, 8).expect("probe layout");
        // SAFETY: a valid layout, found to fit.
        let ptr = unsafe { alloc.alloc(layout) };
        if ptr.is_null() {
            break;
        }
        total += size;
        taken.push((ptr, layout));
    }
    for (ptr, layout) in taken {
        // SAFETY: allocated above with `layout`.
        unsafe { alloc.dealloc(ptr, layout) };
    }
    total
}

/// Makes a subject with no heap yet.
trait Fresh {
    fn fresh() -> Self;
}

impl Fresh for Lla {
    fn fresh() -> Self {
        Lla(LockedHeap::empty())
    }
}

impl Fresh for Talc {
    fn fresh() -> Self {
        Talc(TalcLock::new(Manual))
    }
}

impl Fresh for Front {
    fn fresh() -> Self {
        Front(UnaccountedFrontEnd::new())
    }
}

impl Fresh for Accounted {
    fn fresh() -> Self {
        Accounted(DomainAllocator::new())
    }
}

macro_rules! forward_global_alloc {
    ($t:ty) => {
        // SAFETY: forwards to an allocator that implements `GlobalAlloc`.
        unsafe impl GlobalAlloc for $t {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                // SAFETY: forwarded contract.
                unsafe { self.0.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: forwarded contract.
                unsafe { self.0.dealloc(ptr, layout) }
            }
            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                // SAFETY: forwarded contract.
                unsafe { self.0.alloc_zeroed(layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                // SAFETY: forwarded contract.
                unsafe { self.0.realloc(ptr, layout, new_size) }
            }
        }
    };
}

forward_global_alloc!(Lla);
forward_global_alloc!(Talc);
forward_global_alloc!(Front);
forward_global_alloc!(Accounted);

impl Subject for Lla {
    type Guard<'a> = ();
    const NAME: &'static str = "linked_list_allocator";

    unsafe fn init(&self, base: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.0.lock().init(base, size) }
    }

    fn enter(&self, _domain: Domain) {}

    fn free_space(&self) -> (usize, bool, usize) {
        let free = self.0.lock().free();
        (free, true, probe_largest(self, free))
    }
}

impl Subject for Talc {
    type Guard<'a> = ();
    const NAME: &'static str = "talc";

    unsafe fn init(&self, base: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        let claimed = unsafe { self.0.lock().claim(base, size) };
        assert!(claimed.is_some(), "talc refused its region");
    }

    fn enter(&self, _domain: Domain) {}

    fn free_space(&self) -> (usize, bool, usize) {
        (probe_free(self, REGION), false, probe_largest(self, REGION))
    }
}

/// The two bulkhead allocators share their test-bed plumbing; they differ in the books.
macro_rules! bulkhead_subject {
    ($type:ty, $name:literal) => {
        impl Subject for $type {
            type Guard<'a> = DomainGuard<'a>;
            const NAME: &'static str = $name;

            unsafe fn init(&self, base: *mut u8, size: usize) {
                // SAFETY: forwarded contract.
                unsafe { self.0.init(base, size) }
            }

            fn enter(&self, domain: Domain) -> DomainGuard<'_> {
                self.0.enter(domain)
            }

            fn free_space(&self) -> (usize, bool, usize) {
                let s = self.0.heap_stats();
                (s.free, true, s.largest_free)
            }
        }
    };
}

bulkhead_subject!(Front, "bulkhead front end (no books)");
bulkhead_subject!(Accounted, "bulkhead DomainAllocator");

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

impl Region {
    fn new(size: usize) -> Region {
        let layout = Layout::from_size_align(size, CHUNK_SIZE).expect("region layout");
        // SAFETY: non-zero size; zeroed so every page is faulted in before timing.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!base.is_null(), "no memory for a {size}-byte region");
        // SAFETY: `base` holds `size` bytes; touching each page faults it in now, not in a timed loop.
        unsafe {
            for page in (0..size).step_by(4096) {
                base.add(page).write_volatile(0);
            }
        }
        Region { base, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.base, self.layout) };
    }
}

fn print_table(results: &[Comparison]) {
    for c in results {
        println!();
        println!(
            "== {} live objects, {} steady calls (net packets, forwarder flows, bgp tables) ==",
            c.live, c.steady_calls
        );
        println!(
            "{:<32} {:>10} {:>10} {:>11} {:>10} {:>9} {:>12} {:>12} {:>7}",
            "allocator", "steady", "fill", "teardown", "vs talc", "vs LLA", "free B", "largest B", "frag"
        );
        let talc = c.steady("talc");
        let lla = c.steady("linked_list_allocator");
        for s in &c.subjects {
            let teardown = s.teardown_ns.map_or("skipped".to_string(), |t| format!("{t:.1}"));
            let frag = if s.free == 0 { 0.0 } else { 100.0 * (1.0 - s.largest_free as f64 / s.free as f64) };
            println!(
                "{:<32} {:>10.1} {:>10.1} {:>11} {:>9.2}x {:>8.4}x {:>11}{} {:>12} {:>6.1}%",
                s.name,
                s.steady_ns,
                s.fill_ns,
                teardown,
                s.steady_ns / talc,
                s.steady_ns / lla,
                s.free,
                if s.free_exact { " " } else { "~" },
                s.largest_free,
                frag
            );
            if s.steady_capped {
                println!(
                    "    ({}: steady phase cut off after {} of {} calls, {} s budget; teardown skipped)",
                    s.name,
                    s.steady_calls,
                    c.steady_calls,
                    LLA_BUDGET.as_secs()
                );
            }
        }
        let front = c.steady("bulkhead front end (no books)");
        let full = c.steady("bulkhead DomainAllocator");
        println!(
            "accounting overhead (DomainAllocator vs front end, steady): {:+.1} %",
            100.0 * (full / front - 1.0)
        );
    }
    println!();
    println!(
        "ns per allocator call (alloc, free or realloc). free B: the allocator's own figure, or ~ probed"
    );
    println!("(largest blocks taken until < 64 B left). frag: 1 - largest / free, after the steady phase.");
}

fn to_json(results: &[Comparison]) -> String {
    let mut out = String::from("{\n  \"bench\": \"alloc\",\n  \"results\": [\n");
    for (i, c) in results.iter().enumerate() {
        let front = c.steady("bulkhead front end (no books)");
        let full = c.steady("bulkhead DomainAllocator");
        let _ = writeln!(
            out,
            "    {{\"live_objects\": {}, \"steady_calls\": {}, \"accounting_overhead_pct\": {:.2}, \
             \"domain_vs_talc\": {:.3}, \"domain_vs_lla\": {:.5}, \"allocators\": [",
            c.live,
            c.steady_calls,
            100.0 * (full / front - 1.0),
            full / c.steady("talc"),
            full / c.steady("linked_list_allocator"),
        );
        for (j, s) in c.subjects.iter().enumerate() {
            let teardown = s.teardown_ns.map_or("null".to_string(), |t| format!("{t:.2}"));
            let _ = writeln!(
                out,
                "      {{\"name\": \"{}\", \"steady_ns_per_call\": {:.2}, \"steady_calls_measured\": {}, \
                 \"steady_capped\": {}, \"fill_ns_per_call\": {:.2}, \"teardown_ns_per_call\": {}, \
                 \"free_bytes\": {}, \"free_bytes_exact\": {}, \"largest_free\": {}}}{}",
                s.name,
                s.steady_ns,
                s.steady_calls,
                s.steady_capped,
                s.fill_ns,
                teardown,
                s.free,
                s.free_exact,
                s.largest_free,
                if j + 1 < c.subjects.len() { "," } else { "" }
            );
        }
        let _ = writeln!(out, "    ]}}{}", if i + 1 < results.len() { "," } else { "" });
    }
    out.push_str("  ]\n}\n");
    out
}
