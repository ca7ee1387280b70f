//! Boot bench: image size, kernel-entry-to-ready and QEMU-spawn-to-ready (median of 10 boots)
//! for each accelerator and firmware, idle host CPU of the appliance, and ping round trips.
//! Every figure says the accelerator it was measured under and stands beside its target.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_testbed::serde_json::json;

use crate::figures::{median, print_table, Figure};
use bulkhead_testbed::{Accel, Firmware, Vm, VmOptions};

const BOOTS: usize = 10;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const PINGS: &str = "100";

const IMAGE_MAX_BYTES: f64 = 1024.0 * 1024.0;
const KERNEL_READY_MAX_MS: f64 = 10.0;
const SPAWN_READY_MAX_MS: f64 = 150.0;
const IDLE_CPU_MAX_PERCENT: f64 = 2.0;
const PING_RTT_MAX_MS: f64 = 1.0;

/// Runs the boot bench, prints its table, and writes the figures as JSON to `json` if given.
/// Runs the bench; `Err` names what could not be measured.
pub fn run(json: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces and TAP devices)".into());
    }
    let image = bulkhead_testbed::image_path();
    let Ok(meta) = std::fs::metadata(&image) else {
        return Err(format!("{} not found: run make image", image.display()));
    };
    let mut figures = vec![Figure::new(
        "image size",
        image.display().to_string(),
        meta.len() as f64,
        "bytes",
        Some(IMAGE_MAX_BYTES),
    )];
    let mut accels = vec![Accel::Tcg];
    match Accel::probe() {
        Ok(kvm) => accels.push(kvm),
        Err(why) => eprintln!("boot bench: KVM not measured: {why}"),
    }
    let mut errors = Vec::new();
    for &accel in &accels {
        for firmware in [Firmware::Seabios, Firmware::Qboot] {
            if let Err(e) = boot_times(accel, firmware, &mut figures) {
                errors.push(format!("boots with {accel}, {firmware}: {e}"));
            }
        }
        if let Err(e) = idle_and_ping(accel, &mut figures) {
            errors.push(format!("idle/ping with {accel}: {e}"));
        }
    }
    print_table(&figures);
    for error in &errors {
        eprintln!("boot bench: {error}");
    }
    if let Some(path) = json {
        let doc = json!({
            "bench": "boot",
            "image": image.display().to_string(),
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
            "errors": errors,
        });
        match std::fs::write(path, format!("{doc:#}\n")) {
            Ok(()) => println!("boot bench: JSON in {}", path.display()),
            Err(e) => errors.push(format!("writing {}: {e}", path.display())),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn options(accel: Accel, firmware: Firmware) -> VmOptions {
    VmOptions::new().name("bench-boot").quiet().nics(1).accel(accel).firmware(firmware)
}

fn boot_times(
    accel: Accel,
    firmware: Firmware,
    figures: &mut Vec<Figure>,
) -> Result<(), bulkhead_testbed::Error> {
    let mut kernel = Vec::new();
    let mut spawn = Vec::new();
    for _ in 0..BOOTS {
        let vm = Vm::boot(options(accel, firmware))?;
        let ready = vm.ready().expect("a booted VM has its ready line");
        kernel.push(ready.kernel_ms);
        spawn.push(ready.spawn_to_ready.as_secs_f64() * 1e3);
    }
    let setup = format!("{accel}, {firmware}, median of {BOOTS}");
    figures.push(Figure::new(
        "kernel entry to ready",
        setup.clone(),
        median(&mut kernel),
        "ms",
        Some(KERNEL_READY_MAX_MS),
    ));
    let fast_path = accel == Accel::Tcg && firmware == Firmware::Qboot;
    figures.push(Figure::new(
        "QEMU spawn to ready",
        setup,
        median(&mut spawn),
        "ms",
        fast_path.then_some(SPAWN_READY_MAX_MS),
    ));
    Ok(())
}

fn idle_and_ping(accel: Accel, figures: &mut Vec<Figure>) -> Result<(), bulkhead_testbed::Error> {
    let vm = Vm::boot(options(accel, Firmware::Qboot))?;
    let before = vm.cpu_time();
    let started = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let after = vm.cpu_time();
    let elapsed = started.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (before, after) {
        let percent = after.saturating_sub(before).as_secs_f64() / elapsed * 100.0;
        figures.push(Figure::new(
            "idle host CPU (QEMU process)",
            format!("{accel}, qboot, over {} s", IDLE_WINDOW.as_secs()),
            percent,
            "% of a core",
            Some(IDLE_CPU_MAX_PERCENT),
        ));
    }
    let nic = vm.nic(0);
    let target = nic.guest.map(|g| g.addr.to_string()).unwrap_or_default();
    let out = nic.ns.run(["ping", "-q", "-c", PINGS, "-i", "0.01", "-W", "1", target.as_str()])?;
    let Some([min, avg, max, mdev]) = ping_rtt(&out.stdout) else {
        return Err(bulkhead_testbed::Error::Protocol {
            command: format!("ping {target}"),
            reason: format!("no rtt line: {} {}", out.stdout, out.stderr),
        });
    };
    let loss =
        out.stdout.split(", ").find(|part| part.ends_with("packet loss")).unwrap_or("packet loss unknown");
    let rtt_max = (accel == Accel::Tcg).then_some(PING_RTT_MAX_MS);
    let setup = format!("{accel}, {PINGS} pings -i 0.01 ({loss})");
    figures.push(Figure::new("ping RTT avg", setup.clone(), avg, "ms", rtt_max));
    figures.push(Figure::new("ping RTT min", setup.clone(), min, "ms", None));
    figures.push(Figure::new("ping RTT max", setup.clone(), max, "ms", None));
    figures.push(Figure::new("ping RTT mdev", setup, mdev, "ms", None));
    Ok(())
}

/// `rtt min/avg/max/mdev = a/b/c/d ms` of iputils ping.
fn ping_rtt(stdout: &str) -> Option<[f64; 4]> {
    let line = stdout.lines().find(|l| l.starts_with("rtt ") || l.starts_with("round-trip"))?;
    // "= 0.2/0.3/0.4/0.08 ms", then ", pipe N" when replies overlapped the interval.
    let figures = line.split('=').nth(1)?.split(" ms").next()?.trim();
    let mut values = figures.split('/').map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??, values.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_summary_and_takes_medians() {
        let out = "3 packets transmitted, 3 received, 0% packet loss, time 2003ms\n\
                   rtt min/avg/max/mdev = 0.210/0.305/0.412/0.082 ms\n";
        assert_eq!(ping_rtt(out), Some([0.210, 0.305, 0.412, 0.082]));
        assert_eq!(ping_rtt("100% packet loss\n"), None);
        let piped = "rtt min/avg/max/mdev = 6.156/9.129/37.819/3.764 ms, pipe 2\n";
        assert_eq!(ping_rtt(piped), Some([6.156, 9.129, 37.819, 3.764]));
        let mut v = [3.0, 1.0, 2.0, 10.0];
        assert_eq!(median(&mut v), 2.5);
    }
}
