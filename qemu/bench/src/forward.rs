//! Forwarding bench: UDP packets per second from nic0's namespace to nic1's through the
//! appliance, 64-byte and 1500-byte frames, measured from counters (the receiving TAP's
//! `rx_packets`, the image's own counters), never from the generator's offered rate. The
//! ceiling the virtual NICs allow is measured in the same run: the image receiving and dropping
//! on nic0 alone (traffic to a prefix with no route; ICMP errors rate-limited).
//!
//! Not measured here (yet): the Linux VM doing `ip_forward` under the same QEMU command line,
//! which the issue asks for as the comparison.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{Accel, Vm, VmOptions};

use crate::figures::{print_table, Figure};

const SECONDS: u64 = 5;
/// UDP payloads that make 64- and 1500-byte IP packets... 64- and 1514-byte frames: 22 and
/// 1472 bytes of payload (the stream's text is padded to the size).
const SIZES: [(&str, usize); 2] = [("64-byte frames", 22), ("1514-byte frames", 1472)];

pub fn run(json_path: Option<&Path>) {
    if !bulkhead_testbed::is_root() {
        eprintln!("forward bench: skipped: needs root");
        return;
    }
    let accel = Accel::Tcg;
    let mut figures = Vec::new();
    for (label, payload) in SIZES {
        match measure(accel, payload, "198.51.100.2:9") {
            Ok((forwarded, _)) => figures.push(Figure::new(
                "forwarded packets/s",
                format!("{accel}, {label}, nic0 -> nic1, {SECONDS} s"),
                forwarded,
                "1/s",
                None,
            )),
            Err(e) => eprintln!("forward bench: {label}: {e}"),
        }
        match measure(accel, payload, "10.99.0.2:9") {
            Ok((_, received)) => figures.push(Figure::new(
                "received and dropped packets/s",
                format!("{accel}, {label}, nic0 only (no route), {SECONDS} s"),
                received,
                "1/s",
                None,
            )),
            Err(e) => eprintln!("forward bench: {label} ceiling: {e}"),
        }
    }
    print_table(&figures);
    if let Some(path) = json_path {
        let doc = json!({ "bench": "forward", "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>() });
        if let Err(e) = std::fs::write(path, format!("{doc:#}\n")) {
            eprintln!("forward bench: writing {}: {e}", path.display());
        }
    }
}

/// Blasts UDP at `to` from nic0's namespace for `SECONDS`; returns (packets/s arriving in
/// nic1's namespace, packets/s the image received on nic0).
fn measure(accel: Accel, payload: usize, to: &str) -> Result<(f64, f64), String> {
    let options = VmOptions::new().name("bench-forward").quiet().nics(2).accel(accel);
    let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
    for nic in vm.topology().nics() {
        let gateway = nic.guest.map(|g| g.addr.to_string()).unwrap_or_default();
        nic.ns
            .run(["ip", "route", "replace", "default", "via", gateway.as_str()])
            .map_err(|e| e.to_string())?;
    }
    // Warm up ARP both ways.
    let _ = vm.nic(0).ns.run(["ping", "-c", "2", "-i", "0.2", "198.51.100.2"]);
    let tap1 = vm.nic(1).tap_name().to_string();
    let rx_before = counter(&vm, 1, &format!("/sys/class/net/{tap1}/statistics/rx_packets"))?;
    let image_before = image_rx(&mut vm)?;
    let stream = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("udp-stream");
    let started = Instant::now();
    let sender = Command::new("ip")
        .args(["netns", "exec", vm.nic(0).ns.name()])
        .arg(&stream)
        .args(["send", "--to", to, "--rate", "2000000", "--seconds", &SECONDS.to_string()])
        .args(["--size", &payload.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", stream.display()))?;
    let _ = sender.wait_with_output();
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let rx_after = counter(&vm, 1, &format!("/sys/class/net/{tap1}/statistics/rx_packets"))?;
    let image_after = image_rx(&mut vm)?;
    Ok(((rx_after - rx_before) as f64 / elapsed, (image_after - image_before) as f64 / elapsed))
}

fn counter(vm: &Vm, nic: usize, path: &str) -> Result<u64, String> {
    let out = vm.nic(nic).ns.run(["cat", path]).map_err(|e| e.to_string())?;
    out.stdout.trim().parse().map_err(|e| format!("{path}: {e}"))
}

fn image_rx(vm: &mut Vm) -> Result<u64, String> {
    let json = vm.command_json("show interfaces json").map_err(|e| e.to_string())?;
    json["interfaces"][0]["rx_packets"].as_u64().ok_or_else(|| format!("no rx_packets in {json}"))
}
