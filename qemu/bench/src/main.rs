//! `bulkhead-bench <all|boot|alloc> [--out DIR]`: Bulkhead against the alternatives, measured in
//! the same run. Each bench prints its table (figures beside their targets and the ratios) and
//! writes its figures to `DIR/<bench>.json` (default `bench/out`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod alloc;
mod bgp;
mod bgpfeed;
mod bmp;
mod boot;
mod fib;
mod figures;
mod forward;
mod sctp;
mod shed;

const BENCHES: [&str; 8] = ["boot", "shed", "alloc", "fib", "forward", "bgp", "bmp", "sctp"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (selected, out) = match args.as_slice() {
        [bench] => (bench.as_str(), PathBuf::from("bench/out")),
        [bench, flag, dir] if flag == "--out" => (bench.as_str(), PathBuf::from(dir)),
        _ => return usage(),
    };
    let benches: Vec<&str> = match selected {
        "all" => BENCHES.to_vec(),
        one if BENCHES.contains(&one) => vec![one],
        _ => return usage(),
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let mut failed = Vec::new();
    for bench in benches {
        println!("\n== {bench} ==");
        let json = out.join(format!("{bench}.json"));
        if let Err(why) = run(bench, &json) {
            eprintln!("{bench} bench FAILED: {why}");
            failed.push(format!("{bench}: {why}"));
        }
    }
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("\nmake bench: these parts could not run:");
    for f in &failed {
        eprintln!("  {f}");
    }
    ExitCode::FAILURE
}

/// One bench; `Err` names what could not be measured (a part that cannot run fails loudly).
fn run(bench: &str, json: &Path) -> Result<(), String> {
    match bench {
        "boot" => boot::run(Some(json)),
        "shed" => shed::run(Some(json)),
        "forward" => forward::run(Some(json)),
        "fib" => fib::run(Some(json)),
        "bgp" => bgp::run(Some(json)),
        "bmp" => bmp::run(Some(json)),
        "sctp" => sctp::run(Some(json)),
        "alloc" => match alloc::main(&["--json".to_string(), json.display().to_string()]) {
            ExitCode::SUCCESS => Ok(()),
            _ => Err("the allocator bench failed (see above)".into()),
        },
        _ => Err(format!("no bench named {bench}")),
    }
}

/// Bytes the process holds from the system allocator now (for bytes-per-entry figures).
pub fn allocated_bytes() -> usize {
    COUNTING.0.load(std::sync::atomic::Ordering::Relaxed)
}

/// The system allocator, counting what it has handed out and not yet taken back.
struct Counting(std::sync::atomic::AtomicUsize);

#[global_allocator]
static COUNTING: Counting = Counting(std::sync::atomic::AtomicUsize::new(0));

// SAFETY: every call is forwarded to the system allocator with the same layout.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.0.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        self.0.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        self.0.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        self.0.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: bulkhead-bench <all|{}> [--out DIR]", BENCHES.join("|"));
    ExitCode::from(2)
}
