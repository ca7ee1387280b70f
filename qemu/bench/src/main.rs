//! `bulkhead-bench <all|boot|alloc> [--out DIR]`: Bulkhead against the alternatives, measured in
//! the same run. Each bench prints its table (figures beside their targets and the ratios) and
//! writes its figures to `DIR/<bench>.json` (default `bench/out`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod alloc;
mod boot;
mod figures;
mod shed;

const BENCHES: [&str; 3] = ["boot", "shed", "alloc"];

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
    let mut status = ExitCode::SUCCESS;
    for bench in benches {
        println!("\n== {bench} ==");
        let json = out.join(format!("{bench}.json"));
        if run(bench, &json) != ExitCode::SUCCESS {
            status = ExitCode::FAILURE;
        }
    }
    status
}

fn run(bench: &str, json: &Path) -> ExitCode {
    match bench {
        "boot" => {
            boot::run(Some(json));
            ExitCode::SUCCESS
        }
        "shed" => {
            shed::run(Some(json));
            ExitCode::SUCCESS
        }
        "alloc" => alloc::main(&["--json".to_string(), json.display().to_string()]),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: bulkhead-bench <all|{}> [--out DIR]", BENCHES.join("|"));
    ExitCode::from(2)
}
