//! Shed bench: the time from a domain crossing its hard quota to its subsystem shed and up
//! again, measured by the image itself (`show status json`: `last_recovery_us`, from the loop
//! turn that found the domain over quota to the turn that had the subsystem restarted), for
//! the first shed of `bmp` in each of several fresh boots (later sheds within the restart
//! window back off on purpose, doubling from 1 ms). Target: at most 10 ms.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{Accel, TempFile, Vm, VmOptions};

use crate::figures::{median, print_table, Figure};

const ROUNDS: usize = 10;
const RECOVERY_MAX_MS: f64 = 10.0;
const CONFIG: &str = r#"
[[interface]]
name = "nic0"
address = "192.0.2.1/24"

[memory.bmp]
quota = "2MiB"
restart_limit = 1000

[diagnostics]
enabled = true
"#;

/// Runs the bench; `Err` names what could not be measured.
pub fn run(json: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces and TAP devices)".into());
    }
    let config =
        TempFile::new("bench-shed", CONFIG).map_err(|e| format!("writing its configuration: {e}"))?;
    let (accel, mut recoveries) = measure(&config.0)?;
    println!("recoveries (ms): {recoveries:.3?}");
    let max = recoveries.iter().copied().fold(0.0, f64::max);
    let setup = format!("{accel}, bmp hogged past 2 MiB, first shed, {ROUNDS} boots");
    let figures = vec![
        Figure::new(
            "over quota to restarted, median",
            setup.clone(),
            median(&mut recoveries),
            "ms",
            Some(RECOVERY_MAX_MS),
        ),
        Figure::new("over quota to restarted, max", setup, max, "ms", None),
    ];
    print_table(&figures);
    if let Some(path) = json {
        let doc = json!({ "bench": "shed", "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>() });
        std::fs::write(path, format!("{doc:#}\n")).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn measure(config: &Path) -> Result<(Accel, Vec<f64>), String> {
    let accel = Accel::fastest();
    let mut recoveries = Vec::new();
    for _ in 0..ROUNDS {
        let options = VmOptions::new().name("bench-shed").quiet().nics(1).accel(accel).config(config);
        let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
        let answer = vm.command("debug hog bmp 8MiB").map_err(|e| e.to_string())?;
        if !answer.contains("ok") {
            return Err(format!("debug hog: {answer}"));
        }
        let bmp = wait_for_shed(&mut vm, 1)?;
        let micros = bmp["last_recovery_us"].as_u64().ok_or_else(|| format!("no recovery figure: {bmp}"))?;
        recoveries.push(micros as f64 / 1000.0);
    }
    Ok((accel, recoveries))
}

/// Waits until bmp has been shed `sheds` times and is up again; returns its status row.
fn wait_for_shed(vm: &mut Vm, sheds: u64) -> Result<Value, String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let status = vm.command_json("show status json").map_err(|e| e.to_string())?;
        let bmp = status["subsystems"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "bmp"))
            .cloned()
            .ok_or_else(|| format!("no bmp in {status}"))?;
        if bmp["sheds"].as_u64() == Some(sheds) && bmp["state"] == "up" {
            return Ok(bmp);
        }
        if Instant::now() > end {
            return Err(format!("bmp not shed and restarted: {bmp}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
