//! Forwarding bench: UDP packets per second from nic0's namespace to nic1's through the
//! appliance, with 64-byte and 1514-byte frames, and in the same run the same test through a
//! Linux VM doing `ip_forward` under the same QEMU command line (Debian's kernel and a busybox
//! initramfs, built by `qemu/linux-router/build.sh`). Rates come from counters — the receiving
//! TAP's `rx_packets` and the image's own — never from the generator's offered rate. The
//! ceilings of the virtual NICs are measured too: the image receiving and dropping on nic0
//! alone (traffic to a prefix with no route, ICMP errors rate-limited), and the image
//! transmitting on nic1 alone (`debug blast`, counted at nic1's TAP). All under TCG: a stock
//! Linux kernel does not boot under this machine's software KVM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulkhead_testbed::net::default_interfaces;
use bulkhead_testbed::qemu::QemuSpec;
use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{Accel, Firmware, Netns, TempFile, Topology, Vm, VmOptions};

use crate::figures::{print_table, Figure};

const SECONDS: u64 = 5;
/// UDP payloads for 64- and 1514-byte frames (the stream's text is padded to the size).
const SIZES: [(&str, usize); 2] = [("64-byte frames", 22), ("1514-byte frames", 1472)];
const LINUX_DIR: &str = "bench/out/linux-router";
/// Forwarding rate against the Linux VM, and against the lower NIC ceiling.
const RATIO_TARGET: f64 = 3.0;
const CEILING_SHARE_TARGET: f64 = 0.8;

/// Runs the bench; `Err` names every part that could not be measured.
pub fn run(json_path: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces and TAP devices)".into());
    }
    let mut errors: Vec<String> = Vec::new();
    let linux = build_linux();
    if let Err(e) = &linux {
        errors.push(format!("no Linux router VM: {e}"));
    }
    let mut figures = Vec::new();
    for (label, payload) in SIZES {
        let setup = format!("tcg, {label}, nic0 -> nic1, {SECONDS} s");
        let image =
            image_rates(Accel::Tcg, payload).and_then(|(f, rx)| Ok((f, rx, transmit_ceiling(payload + 42)?)));
        let linux_pps = linux.as_ref().ok().map(|dir| linux_rate(dir, payload));
        match image {
            Ok((forwarded, rx_ceiling, tx_ceiling)) => {
                let figure = |name: &str, setup: String, value: f64, unit: &'static str| {
                    Figure::new(name, setup, value, unit, None)
                };
                figures.push(figure("Bulkhead forwarded packets/s", setup.clone(), forwarded, "1/s"));
                let rx_setup = format!("tcg, {label}, nic0 only, {SECONDS} s");
                figures.push(figure("Bulkhead receive-and-drop ceiling", rx_setup, rx_ceiling, "1/s"));
                let tx_setup = format!("tcg, {label}, nic1 only, {SECONDS} s");
                figures.push(figure("Bulkhead transmit ceiling", tx_setup, tx_ceiling, "1/s"));
                let share = forwarded / rx_ceiling.min(tx_ceiling).max(1.0);
                figures.push(figure("forwarded / lower ceiling", setup.clone(), share, "x"));
                match linux_pps {
                    Some(Ok(l)) => {
                        figures.push(Figure::new(
                            "Linux VM forwarded packets/s",
                            setup.clone(),
                            l,
                            "1/s",
                            None,
                        ));
                        figures.push(Figure::new(
                            "Bulkhead / Linux VM",
                            setup.clone(),
                            forwarded / l.max(1.0),
                            "x",
                            None,
                        ));
                    }
                    Some(Err(e)) => errors.push(format!("Linux VM, {label}: {e}")),
                    None => {}
                }
            }
            Err(e) => errors.push(format!("{label}: {e}")),
        }
    }
    // The image alone under KVM (where it works: here a software hypervisor, see the README).
    if let Ok(kvm) = Accel::probe() {
        for (label, payload) in SIZES {
            match image_rates(kvm, payload) {
                Ok((forwarded, rx_ceiling)) => {
                    let setup = format!("{kvm}, {label}, {SECONDS} s");
                    figures.push(Figure::new(
                        "Bulkhead forwarded packets/s",
                        setup.clone(),
                        forwarded,
                        "1/s",
                        None,
                    ));
                    figures.push(Figure::new(
                        "Bulkhead receive-and-drop ceiling",
                        setup,
                        rx_ceiling,
                        "1/s",
                        None,
                    ));
                }
                Err(e) => errors.push(format!("{kvm}, {label}: {e}")),
            }
        }
    }
    print_table(&figures);
    println!(
        "targets: Bulkhead / Linux VM at least {RATIO_TARGET}x; forwarded / lower ceiling at least {CEILING_SHARE_TARGET}x"
    );
    if let Some(path) = json_path {
        let doc = json!({ "bench": "forward", "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>() });
        if let Err(e) = std::fs::write(path, format!("{doc:#}\n")) {
            errors.push(format!("writing {}: {e}", path.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// (forwarded packets/s arriving in nic1's namespace, packets/s the image received on nic0
/// alone with nowhere to send them).
fn image_rates(accel: Accel, payload: usize) -> Result<(f64, f64), String> {
    let boot = || -> Result<Vm, String> {
        let options = VmOptions::new().name("bench-forward").quiet().nics(2).accel(accel);
        let vm = Vm::boot(options).map_err(|e| e.to_string())?;
        routes_via_router(vm.topology())?;
        Ok(vm)
    };
    let mut vm = boot()?;
    let forwarded = blast(vm.topology(), payload, "198.51.100.2:9")?.0;
    drop(vm);
    vm = boot()?;
    let before = image_rx(&mut vm)?;
    let (_, elapsed) = blast(vm.topology(), payload, "10.99.0.2:9")?;
    std::thread::sleep(Duration::from_millis(200));
    let ceiling = (image_rx(&mut vm)? - before) as f64 / elapsed;
    Ok((forwarded, ceiling))
}

/// Frames/s arriving at nic1's TAP while the image transmits `frame_bytes` frames flat out.
fn transmit_ceiling(frame_bytes: usize) -> Result<f64, String> {
    let config =
        TempFile::new("bench-blast", "[diagnostics]\nenabled = true\n").map_err(|e| e.to_string())?;
    let options = VmOptions::new().name("bench-blast").quiet().nics(2).accel(Accel::Tcg).config(&config.0);
    let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
    let counter = format!("/sys/class/net/{}/statistics/rx_packets", vm.topology().nic(1).tap_name());
    let before = read_counter(&vm.nic(1).ns, &counter)?;
    let started = Instant::now();
    let answer =
        vm.command(&format!("debug blast nic1 {SECONDS} {frame_bytes}")).map_err(|e| e.to_string())?;
    if !answer.contains("ok") {
        return Err(format!("debug blast: {answer}"));
    }
    std::thread::sleep(Duration::from_secs(SECONDS) + Duration::from_millis(300));
    let elapsed = started.elapsed().as_secs_f64().min(SECONDS as f64 + 0.3);
    let after = read_counter(&vm.nic(1).ns, &counter)?;
    Ok((after - before) as f64 / elapsed)
}

/// The Linux VM of `dir` (built by `qemu/linux-router/build.sh`) with `initrd`, on the TAPs of
/// `topology`, with its accelerator, firmware and memory (QEMU's default where `None`); its
/// console on stdin and stdout.
pub(crate) fn spawn_linux(
    dir: &Path,
    initrd: &str,
    (accel, firmware, mem_mib): (Accel, Firmware, Option<u32>),
    topology: &Topology,
) -> Result<Child, String> {
    let mut spec = QemuSpec::new(dir.join("vmlinuz"), accel, firmware);
    if let Some(mib) = mem_mib {
        spec.mem_mib = mib;
    }
    spec.initrd = Some(dir.join(initrd));
    spec.append = Some("console=ttyS0 quiet panic=-1".into());
    spec.taps = topology.tap_fds();
    spec.command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("qemu: {e}"))
}

fn linux_rate(dir: &Path, payload: usize) -> Result<f64, String> {
    let topology = Topology::create(&default_interfaces(2)).map_err(|e| e.to_string())?;
    routes_via_router(&topology)?;
    let mut child = spawn_linux(dir, "initramfs.cpio.gz", (Accel::Tcg, Firmware::Seabios, None), &topology)?;
    let result = wait_for_linux(&mut child).and_then(|()| blast(&topology, payload, "198.51.100.2:9"));
    let _ = child.kill();
    let _ = child.wait();
    result.map(|(pps, _)| pps)
}

fn wait_for_linux(child: &mut Child) -> Result<(), String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("linux-router: ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(180)).map_err(|_| "the Linux VM did not come up in 180 s".to_string())
}

fn build_linux() -> Result<PathBuf, String> {
    let root = bulkhead_testbed::repo_root();
    let dir = root.join(LINUX_DIR);
    let status = Command::new(root.join("qemu/linux-router/build.sh"))
        .arg(&dir)
        .status()
        .map_err(|e| format!("build.sh: {e}"))?;
    if !status.success() {
        return Err(format!("build.sh: {status}"));
    }
    Ok(dir)
}

fn routes_via_router(topology: &Topology) -> Result<(), String> {
    for nic in topology.nics() {
        let gateway = nic.guest.map(|g| g.addr.to_string()).unwrap_or_default();
        nic.ns
            .run(["ip", "route", "replace", "default", "via", gateway.as_str()])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Blasts UDP at `to` from nic0's namespace for `SECONDS`; returns (packets/s arriving in
/// nic1's namespace, seconds the blast took).
fn blast(topology: &Topology, payload: usize, to: &str) -> Result<(f64, f64), String> {
    let (ns0, ns1) = (&topology.nic(0).ns, &topology.nic(1).ns);
    // ARP both ways first.
    let _ = ns0.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.51.100.2"]);
    let counter = format!("/sys/class/net/{}/statistics/rx_packets", topology.nic(1).tap_name());
    let before = read_counter(ns1, &counter)?;
    let stream = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("udp-stream");
    let started = Instant::now();
    let status = Command::new("ip")
        .args(["netns", "exec", ns0.name()])
        .arg(&stream)
        .args(["send", "--to", to, "--rate", "2000000", "--seconds", &SECONDS.to_string()])
        .args(["--size", &payload.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", stream.display()))?;
    if !status.success() {
        return Err(format!("udp-stream: {status}"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let after = read_counter(ns1, &counter)?;
    Ok(((after - before) as f64 / elapsed, elapsed))
}

fn read_counter(ns: &Netns, path: &str) -> Result<u64, String> {
    let out = ns.run(["cat", path]).map_err(|e| e.to_string())?;
    out.stdout.trim().parse().map_err(|e| format!("{path}: {e}"))
}

fn image_rx(vm: &mut Vm) -> Result<u64, String> {
    let json = vm.command_json("show interfaces json").map_err(|e| e.to_string())?;
    json["interfaces"][0]["rx_packets"].as_u64().ok_or_else(|| format!("no rx_packets in {json}"))
}
