//! BGP bench: how fast a receiver takes in a full feed, and what it holds for it.
//!
//! One feeder of pre-encoded UPDATEs (`bgp-feed`, built with the test bed's binaries) sends the
//! same feeds to every receiver in this run: 1M IPv4 /24s from one peer (one attribute set),
//! and 4 peers x the same 250k /24s (each peer its own AS_PATH, every UPDATE its own MED: many
//! distinct attribute sets). Each receiver is timed from the moment every session is
//! established to End-of-RIB processed (all paths in its table), and its memory for the table
//! is read after:
//!
//! - BIRD 2.17.5 (built from Debian's source package by `qemu/bird-2.17.sh`, run here) and
//!   Debian's BIRD 2.0.12, natively, in a namespace, `import table on` (each keeps the
//!   Adj-RIB-In, as Bulkhead does): `birdc show route count` polled, `show memory` Total
//!   (effective);
//! - (a) the Bulkhead BGP core (session FSM and RIB) on the host over a TCP socket: the
//!   `bench_core` case of `apps/tests/sim_bgp.rs`, which books its bytes with the real allocator;
//! - (b) the appliance in QEMU: `show protocols json` polled, `show memory json` of the `bgp`
//!   domain; and BIRD 2.17.5 inside the forwarding bench's Linux VM (Debian's kernel, busybox
//!   initramfs, `qemu/linux-router/build.sh --bird`) under the same QEMU command line (TCG,
//!   SeaBIOS, 2048 MiB, one vCPU, one virtio NIC; only `-kernel`, `-initrd`, `-append` and the
//!   appliance's fw_cfg configuration differ), with the same BIRD configuration as natively,
//!   given to it and queried (`birdc show route count`, `show memory`) over the serial console;
//! - callgrind instruction counts per prefix, the core against both BIRDs: the difference
//!   between a 100k and a 50k feed, per prefix.
//!
//! Targets (issue 9), against BIRD 2.17.5 measured in the same run on the same feed: at most
//! half its time (at least 2x its rate) and at most half its bytes a prefix; the core against
//! BIRD 2.17.5 natively, the appliance against BIRD 2.17.5 in the Linux VM. (The issue quotes
//! 1.49M prefixes/s and 176 bytes a prefix for BIRD 2.17.5 on these machines; those figures
//! are only written to the JSON as its reference, never used as targets.)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_testbed::console::Console;
use bulkhead_testbed::net::interfaces_from_config;
use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{Accel, Firmware, TempFile, Topology, Vm, VmOptions};

use crate::bgpfeed::wait_until;
use crate::figures::{print_table, Figure};

const RECEIVER_NS: &str = "bhbgpbenchr";
const FEEDER_NS: &str = "bhbgpbenchf";
const RECEIVER: &str = "10.9.0.1";
const FEEDERS: [&str; 4] = ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"];
/// The appliance's and the Linux VM's addresses (nic0 / eth0), and the feeder's beside them.
const VM_RECEIVER: &str = "192.0.2.1";
const VM_FEEDERS: [&str; 4] = ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"];
/// The one QEMU command line of (b), for the appliance and the Linux VM alike. TCG: a stock
/// Linux kernel does not boot under this machine's software KVM (see the forwarding bench).
const VM_ACCEL: Accel = Accel::Tcg;
const VM_FIRMWARE: Firmware = Firmware::Seabios;
const VM_MEM_MIB: u32 = 2048;
/// The setup column's name for that command line.
const VM_PLACE: &str = "QEMU tcg, 2048 MiB, 1 vCPU";
const LINUX_DIR: &str = "bench/out/linux-router";
const BIRD_2_17_DIR: &str = "target/bird-2.17.5";
/// The targets, as a share of BIRD 2.17.5's time and bytes measured in the same run.
const TIME_SHARE_MAX: f64 = 0.5;
const BYTES_SHARE_MAX: f64 = 0.5;
const CALLGRIND_PREFIXES: u32 = 100_000;

/// One feed: `peers` sessions, each announcing the same `prefixes`.
#[derive(Clone, Copy)]
struct Feed {
    name: &'static str,
    peers: usize,
    prefixes: u32,
    distinct: bool,
}

const FEEDS: [Feed; 2] = [
    Feed { name: "1M from one peer", peers: 1, prefixes: 1_000_000, distinct: false },
    Feed { name: "4 peers x 250k", peers: 4, prefixes: 250_000, distinct: true },
];

impl Feed {
    fn paths(self) -> u64 {
        self.peers as u64 * u64::from(self.prefixes)
    }
}

/// What one receiver did with one feed.
struct Taken {
    seconds: f64,
    bytes: f64,
}

/// One BIRD build: its daemon and its client.
struct Bird {
    /// `BIRD 2.17.5`, as its `--version` says.
    name: String,
    bird: PathBuf,
    birdc: PathBuf,
}

impl Bird {
    /// Debian's `bird2` package (2.0.12 on Debian 12), from `PATH`.
    fn debian() -> Result<Bird, String> {
        Bird::at("bird".into(), "birdc".into(), "2.0.12")
    }

    /// BIRD 2.17.5, built by `qemu/bird-2.17.sh` unless already built (the script is idempotent).
    fn v2_17() -> Result<Bird, String> {
        let root = bulkhead_testbed::repo_root();
        let dir = root.join(BIRD_2_17_DIR);
        let out = Command::new(root.join("qemu/bird-2.17.sh"))
            .arg(&dir)
            .current_dir(&root)
            .output()
            .map_err(|e| format!("qemu/bird-2.17.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "qemu/bird-2.17.sh: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Bird::at(dir.join("sbin/bird"), dir.join("sbin/birdc"), "2.17.5")
    }

    fn at(bird: PathBuf, birdc: PathBuf, version: &str) -> Result<Bird, String> {
        let out =
            Command::new(&bird).arg("--version").output().map_err(|e| format!("{}: {e}", bird.display()))?;
        // BIRD prints its version on standard error.
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !text.contains(&format!("BIRD version {version}")) {
            return Err(format!("{} is not BIRD {version}: {}", bird.display(), text.trim()));
        }
        Ok(Bird { name: format!("BIRD {version}"), bird, birdc })
    }

    fn bird(&self) -> &str {
        self.bird.to_str().unwrap_or("bird")
    }

    fn birdc(&self) -> &str {
        self.birdc.to_str().unwrap_or("birdc")
    }
}

/// Who received a feed, and how it went.
struct Receiver {
    /// Short, for the figure names.
    who: String,
    /// Where it ran, for the setup column: `host` or the QEMU command line of (b).
    place: &'static str,
    bulkhead: bool,
    taken: Result<Taken, String>,
}

/// Runs the bench; `Err` names every part that could not be measured.
pub fn run(json_path: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces)".into());
    }
    let feeder = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("bgp-feed");
    if !feeder.exists() {
        return Err(format!(
            "{} is not built (cargo build --release -p bulkhead-testbed --bins)",
            feeder.display()
        ));
    }
    let mut figures = Vec::new();
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    let bird_2_17 = Bird::v2_17();
    let bird_debian = Bird::debian();
    let linux = bird_2_17.as_ref().map_err(Clone::clone).and_then(build_linux);
    for feed in FEEDS {
        let native = |bird: &Result<Bird, String>| -> Result<Taken, String> {
            let bird = bird.as_ref().map_err(Clone::clone)?;
            Namespaces::new().and_then(|ns| bird_native(&ns, bird, &feeder, feed))
        };
        let bird_2_17_native = native(&bird_2_17);
        let bird_debian_native = native(&bird_debian);
        let core = core_binary()
            .and_then(|bin| Namespaces::new().and_then(|ns| core_on_host(&ns, &bin, &feeder, feed)));
        let appliance = appliance_in_qemu(&feeder, feed);
        let bird_vm =
            linux.as_ref().map_err(Clone::clone).and_then(|dir| bird_in_linux_vm(dir, &feeder, feed));
        let name = |r: &Result<Bird, String>, fallback: &str| {
            r.as_ref().map_or(fallback.to_string(), |b| b.name.clone())
        };
        let receivers = [
            Receiver {
                who: format!("{} native", name(&bird_2_17, "BIRD 2.17.5")),
                place: "host",
                bulkhead: false,
                taken: bird_2_17_native,
            },
            Receiver {
                who: format!("{} native", name(&bird_debian, "BIRD 2.0.12")),
                place: "host",
                bulkhead: false,
                taken: bird_debian_native,
            },
            Receiver { who: "core (a)".into(), place: "host", bulkhead: true, taken: core },
            Receiver { who: "appliance (b)".into(), place: VM_PLACE, bulkhead: true, taken: appliance },
            Receiver { who: "BIRD 2.17.5 Linux VM".into(), place: VM_PLACE, bulkhead: false, taken: bird_vm },
        ];
        let [bird_native_2_17, bird_native_debian, core, appliance, bird_vm] = &receivers;
        for (r, against) in [
            (bird_native_2_17, None),
            (bird_native_debian, None),
            (core, Some(bird_native_2_17)),
            (appliance, Some(bird_vm)),
            (bird_vm, None),
        ] {
            let Ok(t) = &r.taken else { continue };
            let paths = feed.paths() as f64;
            let (rate, per, per_million) = (paths / t.seconds, t.bytes / paths, t.seconds * 1e6 / paths);
            let who = &r.who;
            println!(
                "{}: {who}: {:.3} s, {rate:.0} prefixes/s, {per:.1} bytes a prefix",
                feed.name, t.seconds
            );
            // A Bulkhead receiver's targets come from BIRD 2.17.5 in its own setting, this run.
            let base = against.and_then(|b| b.taken.as_ref().ok());
            let setup = format!("{}, {}", feed.name, r.place);
            figures.push(Figure::new(
                &format!("{who}: s/1M"),
                setup.clone(),
                per_million,
                "s",
                base.map(|b| round3(b.seconds * 1e6 / paths * TIME_SHARE_MAX)),
            ));
            figures.push(Figure::new(
                &format!("{who}: B/prefix"),
                setup,
                per,
                "bytes",
                base.map(|b| round3(b.bytes / paths * BYTES_SHARE_MAX)),
            ));
            rows.push(json!({"feed": feed.name, "receiver": who, "place": r.place, "bulkhead": r.bulkhead,
                "seconds": t.seconds, "prefixes_per_s": rate, "bytes": t.bytes, "bytes_per_prefix": per}));
        }
        for (ours, theirs, max) in [
            (core, bird_native_2_17, Some(TIME_SHARE_MAX)),
            (core, bird_native_debian, None),
            (appliance, bird_vm, Some(TIME_SHARE_MAX)),
        ] {
            let (Ok(o), Ok(t)) = (&ours.taken, &theirs.taken) else { continue };
            let setup = format!("{}, {}", feed.name, ours.place);
            let (a, b) = (short(&ours.who), short(&theirs.who));
            figures.push(Figure::new(
                &format!("{a} / {b} time"),
                setup.clone(),
                o.seconds / t.seconds,
                "x",
                max,
            ));
            let bytes_max = max.map(|_| BYTES_SHARE_MAX);
            figures.push(Figure::new(&format!("{a} / {b} bytes"), setup, o.bytes / t.bytes, "x", bytes_max));
        }
        for r in &receivers {
            if let Err(e) = &r.taken {
                failed.push(format!("{}: {}: {e}", feed.name, r.who));
            }
        }
    }
    let setup = format!("prefixes {}..{}, one peer", CALLGRIND_PREFIXES / 2, CALLGRIND_PREFIXES);
    let core_ir = callgrind_core(&feeder);
    match &core_ir {
        Ok(ir) => figures.push(Figure::new("core: Ir/prefix", setup.clone(), *ir, "Ir", None)),
        Err(e) => failed.push(format!("callgrind, the core: {e}")),
    }
    for bird in [&bird_2_17, &bird_debian] {
        let Ok(bird) = bird else { continue };
        match callgrind_bird(bird, &feeder) {
            Ok(ir) => {
                figures.push(Figure::new(
                    &format!("{}: Ir/prefix", bird.name),
                    setup.clone(),
                    ir,
                    "Ir",
                    None,
                ));
                if let Ok(core) = &core_ir {
                    let max = (bird.name == "BIRD 2.17.5").then_some(TIME_SHARE_MAX);
                    figures.push(Figure::new(
                        &format!("core / {} Ir", short(&bird.name)),
                        setup.clone(),
                        core / ir,
                        "x",
                        max,
                    ));
                }
            }
            Err(e) => {
                // Said in the table too, not only in the error.
                let why = format!("{setup}: NOT MEASURED: {e}");
                figures.push(Figure::new(&format!("{}: Ir/prefix", bird.name), why, f64::NAN, "Ir", None));
                failed.push(format!("callgrind, {}: {e}", bird.name));
            }
        }
    }
    print_table(&figures);
    println!(
        "targets: against BIRD 2.17.5 measured in this run on the same feed, in the same setting:          at most {TIME_SHARE_MAX}x its time (at least {}x its rate), at most {BYTES_SHARE_MAX}x its bytes a prefix",
        1.0 / TIME_SHARE_MAX
    );
    if let Some(path) = json_path {
        let doc = json!({
            "bench": "bgp",
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>(),
            "runs": rows,
            "not_measured": failed,
            "issue_reference": {
                "note": "BIRD 2.17.5 as issue 9 quotes it, measured earlier on these machines; not used as targets",
                "prefixes_per_s": 1.49e6,
                "bytes_per_prefix": 176.0,
            },
        });
        std::fs::write(path, format!("{doc:#}\n")).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// `value` to three decimals (for targets printed in the table).
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `BIRD 2.17.5 native` -> `BIRD 2.17.5`, `BIRD 2.17.5 Linux VM` -> `BIRD VM`, `core (a)` ->
/// `core`: the names in the ratios.
fn short(who: &str) -> String {
    if who.ends_with("Linux VM") {
        return "BIRD VM".into();
    }
    who.trim_end_matches(" native").trim_end_matches(" (a)").trim_end_matches(" (b)").to_string()
}

/// The receiver's and the feeder's namespaces, joined by a veth pair; removed on drop.
struct Namespaces;

impl Namespaces {
    fn new() -> Result<Namespaces, String> {
        let ns = Namespaces;
        ns.remove();
        sh(&["ip", "netns", "add", RECEIVER_NS])?;
        sh(&["ip", "netns", "add", FEEDER_NS])?;
        for n in [RECEIVER_NS, FEEDER_NS] {
            sh(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            RECEIVER_NS,
            "link",
            "add",
            "v0",
            "type",
            "veth",
            "peer",
            "name",
            "v1",
            "netns",
            FEEDER_NS,
        ])?;
        sh(&["ip", "-n", RECEIVER_NS, "addr", "add", &format!("{RECEIVER}/24"), "dev", "v0"])?;
        sh(&["ip", "-n", RECEIVER_NS, "link", "set", "v0", "up"])?;
        for a in FEEDERS {
            sh(&["ip", "-n", FEEDER_NS, "addr", "add", &format!("{a}/24"), "dev", "v1"])?;
        }
        sh(&["ip", "-n", FEEDER_NS, "link", "set", "v1", "up"])?;
        Ok(ns)
    }

    fn remove(&self) {
        for n in [RECEIVER_NS, FEEDER_NS] {
            let _ = Command::new("ip").args(["netns", "delete", n]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.remove();
    }
}

fn sh(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0]).args(&argv[1..]).output().map_err(|e| format!("{argv:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(
    ns: &str,
    argv: &[&str],
    env: &[(&str, String)],
) -> Result<(Proc, BufReader<ChildStdout>), String> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().map_err(|e| format!("{argv:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    Ok((Proc(child), BufReader::new(stdout)))
}

/// Reads lines until one starts with `prefix` (or the stream ends).
fn line_starting(reader: &mut BufReader<ChildStdout>, prefix: &str) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("ended before {prefix:?}")),
            Ok(_) if line.starts_with(prefix) => return Ok(line.trim().to_string()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Starts the feeder in `ns` towards `to`, from the first `feed.peers` addresses of `from`;
/// returns it once every session is established, and when.
fn start_feed(
    ns: &str,
    feeder: &Path,
    to: &str,
    from: &[&str],
    feed: Feed,
    limit: u64,
) -> Result<(Proc, Instant), String> {
    let from = from[..feed.peers].join(",");
    let (prefixes, hold) = (feed.prefixes.to_string(), limit.to_string());
    let mut argv =
        vec![feeder.to_str().ok_or("feeder path")?, to, "65001", "65000", &from, &prefixes, "--hold", &hold];
    if feed.distinct {
        argv.push("--distinct");
    }
    let (proc, mut out) = spawn_in(ns, &argv, &[])?;
    line_starting(&mut out, "established").map_err(|e| format!("feeder: {e}"))?;
    let t0 = Instant::now();
    // Keep draining its output on a thread (its last line).
    std::thread::spawn(move || for _ in out.lines() {});
    Ok((proc, t0))
}

/// BIRD's configuration for `feed`, the same natively and in the Linux VM: one passive session
/// per feeder address, import table on. One protocol a line (the VM's init reads it by lines).
fn bird_config(receiver: &str, feeders: &[&str], feed: Feed) -> String {
    let mut text = format!("router id {receiver};\nprotocol device {{}}\n");
    for (k, addr) in feeders[..feed.peers].iter().enumerate() {
        text += &format!(
            "protocol bgp p{k} {{ local {receiver} as 65000; neighbor {addr} as 65001; passive on; \
             ipv4 {{ import all; export none; import table on; }}; }}\n"
        );
    }
    text
}

fn birdc(bird: &Bird, socket: &str, command: &[&str]) -> Result<String, String> {
    let mut argv = vec!["ip", "netns", "exec", RECEIVER_NS, bird.birdc(), "-s", socket];
    argv.extend_from_slice(command);
    sh(&argv)
}

/// `Total:` of `show memory` (the effective column), in bytes; 2.0.12's and 2.17.5's alike.
fn bird_total(text: &str) -> Result<f64, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Total:"))
        .ok_or_else(|| format!("no Total in {text}"))?;
    let mut words = line.split_whitespace().skip(1);
    let (value, unit) = (words.next().unwrap_or("0"), words.next().unwrap_or("B"));
    let value: f64 = value.parse().map_err(|_| format!("bad figure in {line}"))?;
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unit {other} in {line}")),
    };
    Ok(value * scale)
}

/// Whether `show route count` says every path of `feed` is in (`N of N routes`).
fn bird_has_all(count: &str, feed: Feed) -> bool {
    count.contains(&format!("{} of {} routes", feed.paths(), feed.paths()))
}

fn bird_native(_ns: &Namespaces, bird: &Bird, feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let config =
        TempFile::new("bench-bird", &bird_config(RECEIVER, &FEEDERS, feed)).map_err(|e| e.to_string())?;
    let socket = std::env::temp_dir().join(format!("bulkhead-bench-bird-{}.ctl", std::process::id()));
    let socket = socket.to_string_lossy().into_owned();
    let pid = format!("{socket}.pid");
    let config_path = config.0.to_string_lossy().into_owned();
    let (_bird, _) =
        spawn_in(RECEIVER_NS, &[bird.bird(), "-f", "-c", &config_path, "-s", &socket, "-P", &pid], &[])?;
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(birdc(bird, &socket, &["show", "status"]).is_ok())
    })?;
    let before = bird_total(&birdc(bird, &socket, &["show", "memory"])?)?;
    let (_feed, t0) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 300)?;
    let t1 = wait_until(Duration::from_secs(300), Duration::from_millis(50), || {
        Ok(bird_has_all(&birdc(bird, &socket, &["show", "route", "count"])?, feed))
    })?;
    let after = bird_total(&birdc(bird, &socket, &["show", "memory"])?)?;
    Ok(Taken { seconds: t1.duration_since(t0).as_secs_f64(), bytes: after - before })
}

/// The `sim_bgp` test binary, built in release (its `bench_core` case is the core on the host).
fn core_binary() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--release", "-p", "bulkhead-apps", "--test", "sim_bgp", "--no-run"])
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| {
            l.trim().strip_prefix("Executable tests/sim_bgp.rs (").and_then(|r| r.strip_suffix(')'))
        })
        .map(PathBuf::from)
        .ok_or_else(|| format!("could not build the sim_bgp test binary: {}", text.trim()))
}

fn core_on_host(_ns: &Namespaces, bin: &Path, feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let bin = bin.to_str().ok_or("binary path")?;
    let env = [("BGP_BENCH_LISTEN", format!("{RECEIVER}:179")), ("BGP_BENCH_PEERS", feed.peers.to_string())];
    let (_core, mut out) = spawn_in(RECEIVER_NS, &[bin, "bench_core"], &env)?;
    line_starting(&mut out, "listening")?;
    let (_feed, _) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 300)?;
    let line = line_starting(&mut out, "bench_core")?;
    let field = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {key} in {line}"))
    };
    if field("paths=")? as u64 != feed.paths() {
        return Err(format!("the core took {line}"));
    }
    Ok(Taken { seconds: field("seconds=")?, bytes: field("bytes=")? })
}

fn appliance_config(feed: Feed) -> String {
    let mut text = format!(
        "[[interface]]\nname = \"nic0\"\naddress = \"{VM_RECEIVER}/24\"\n\n\
         [bgp]\nasn = 65000\nrouter_id = \"{VM_RECEIVER}\"\n",
    );
    for addr in &VM_FEEDERS[..feed.peers] {
        text += &format!(
            "\n[[bgp.neighbor]]\naddress = \"{addr}\"\nasn = 65001\nimport = \"all\"\npassive = true\n"
        );
    }
    text
}

/// nic0's namespace gets every feeder address (the test bed gave it the first).
fn add_feeder_addresses(ns: &str) -> Result<(), String> {
    for addr in &VM_FEEDERS[1..] {
        sh(&["ip", "-n", ns, "addr", "add", &format!("{addr}/24"), "dev", ns])?;
    }
    Ok(())
}

fn appliance_in_qemu(feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let config = TempFile::new("bench-bgp", &appliance_config(feed)).map_err(|e| e.to_string())?;
    let options = VmOptions::new()
        .name("bench-bgp")
        .quiet()
        .nics(1)
        .mem_mib(VM_MEM_MIB)
        .accel(VM_ACCEL)
        .firmware(VM_FIRMWARE)
        .boot_limit(Duration::from_secs(180))
        .config(&config.0);
    let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
    let ns = vm.nic(0).ns.name().to_string();
    add_feeder_addresses(&ns)?;
    let bgp_used = |vm: &mut Vm| -> Result<f64, String> {
        let m = vm.command_json("show memory json").map_err(|e| e.to_string())?;
        m["domains"]
            .as_array()
            .and_then(|d| d.iter().find(|r| r["domain"] == "bgp"))
            .and_then(|r| r["used"].as_f64())
            .ok_or_else(|| format!("no bgp row in {m}"))
    };
    let before = bgp_used(&mut vm)?;
    let (_feed, t0) = start_feed(&ns, feeder, VM_RECEIVER, &VM_FEEDERS, feed, 600)?;
    let t1 = wait_until(Duration::from_secs(600), Duration::from_millis(200), || {
        let p = vm.command_json("show protocols json").map_err(|e| e.to_string())?;
        let received: u64 =
            p["protocols"].as_array().map_or(0, |r| r.iter().filter_map(|x| x["received"].as_u64()).sum());
        Ok(received == feed.paths())
    })?;
    let after = bgp_used(&mut vm)?;
    Ok(Taken { seconds: t1.duration_since(t0).as_secs_f64(), bytes: after - before })
}

/// The Linux VM with BIRD 2.17.5 in its initramfs (`build.sh --bird`); its directory.
fn build_linux(bird: &Bird) -> Result<PathBuf, String> {
    let root = bulkhead_testbed::repo_root();
    let dir = root.join(LINUX_DIR);
    let bird_dir = bird.bird.parent().and_then(Path::parent).ok_or("BIRD's directory")?;
    let out = Command::new(root.join("qemu/linux-router/build.sh"))
        .arg("--bird")
        .arg(bird_dir)
        .arg(&dir)
        .output()
        .map_err(|e| format!("qemu/linux-router/build.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "qemu/linux-router/build.sh --bird: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(dir)
}

/// The Linux VM of (b) running: its serial console, where its init answers `bird-config` and
/// `birdc ARGS` with lines `bird| ...` ended by `bird| end`. QEMU is killed on drop, before
/// the topology goes (fields drop in order).
struct LinuxVm {
    _qemu: Proc,
    stdin: ChildStdin,
    console: Console,
    /// Console bytes already read.
    cursor: usize,
    _topology: Topology,
}

const BIRD_LINE: &str = "bird| ";
const BIRD_END: &str = "bird| end";

impl LinuxVm {
    fn boot(dir: &Path, topology: Topology) -> Result<LinuxVm, String> {
        let machine = (VM_ACCEL, VM_FIRMWARE, Some(VM_MEM_MIB));
        let mut child = crate::forward::spawn_linux(dir, "initramfs-bird.cpio.gz", machine, &topology)?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut vm = LinuxVm {
            _qemu: Proc(child),
            stdin,
            console: Console::gather(stdout, false),
            cursor: 0,
            _topology: topology,
        };
        vm.wait_for("linux-router: ready", Duration::from_secs(300))?;
        Ok(vm)
    }

    /// Waits for `needle` past the cursor; moves the cursor past it.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        let end = self
            .console
            .wait_for(self.cursor, Instant::now() + limit, |t| t.find(needle).map(|at| at + needle.len()))
            .map_err(|why| {
                let text = self.console.text();
                let tail: String =
                    text.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
                format!("the Linux VM: no {needle:?} within {limit:?} ({why:?}); its console ends: {tail}")
            })?;
        self.cursor += end;
        Ok(())
    }

    /// Sends `text` (whole lines) and returns the `bird| ` lines of the answer, prefix removed.
    fn ask(&mut self, text: &str, limit: Duration) -> Result<String, String> {
        self.stdin.write_all(text.as_bytes()).and_then(|()| self.stdin.flush()).map_err(|e| e.to_string())?;
        let from = self.cursor;
        self.wait_for(BIRD_END, limit)?;
        let text = self.console.text();
        Ok(bird_answer(text.get(from..self.cursor).unwrap_or_default()))
    }

    fn birdc(&mut self, command: &str) -> Result<String, String> {
        self.ask(&format!("birdc {command}\n"), Duration::from_secs(60))
    }
}

/// The `bird| ` lines of the VM's console text, prefix and the closing `bird| end` removed
/// (the echo of the command and the kernel's lines are not among them).
fn bird_answer(console: &str) -> String {
    console
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix(BIRD_LINE.trim_end()))
        .map(str::trim_start)
        .filter(|l| *l != "end")
        .collect::<Vec<_>>()
        .join("\n")
}

/// BIRD 2.17.5 inside the Linux VM, booted as the appliance is for (b), fed the same feed.
fn bird_in_linux_vm(dir: &Path, feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let plan = interfaces_from_config(&appliance_config(feed), 1);
    let topology = Topology::create(&plan).map_err(|e| e.to_string())?;
    let ns = topology.nic(0).ns.name().to_string();
    add_feeder_addresses(&ns)?;
    let mut vm = LinuxVm::boot(dir, topology)?;
    let config = bird_config(VM_RECEIVER, &VM_FEEDERS, feed);
    let started = vm.ask(&format!("bird-config\n{config}bird-config-end\n"), Duration::from_secs(120))?;
    if !started.contains("Daemon is up and running") {
        return Err(format!("BIRD did not start in the Linux VM: {started}"));
    }
    let before = bird_total(&vm.birdc("show memory")?)?;
    let (_feed, t0) = start_feed(&ns, feeder, VM_RECEIVER, &VM_FEEDERS, feed, 900)?;
    let t1 = wait_until(Duration::from_secs(900), Duration::from_millis(200), || {
        Ok(bird_has_all(&vm.birdc("show route count")?, feed))
    })?;
    let after = bird_total(&vm.birdc("show memory")?)?;
    Ok(Taken { seconds: t1.duration_since(t0).as_secs_f64(), bytes: after - before })
}

/// Instructions per prefix of the core under callgrind: the difference of two runs
/// (`CALLGRIND_PREFIXES` and half of it) over the prefixes between, so start-up cancels out.
/// (Small tables: the core under valgrind crashes past some tens of thousands of prefixes,
/// natively it does not; see the report of issue 9.)
fn callgrind_core(feeder: &Path) -> Result<f64, String> {
    sh(&["valgrind", "--version"]).map_err(|_| "valgrind is not installed".to_string())?;
    let bin = core_binary()?;
    let (small, large) = (CALLGRIND_PREFIXES / 2, CALLGRIND_PREFIXES);
    let n = f64::from(large - small);
    Ok((callgrind_core_run(&bin, feeder, large)? - callgrind_core_run(&bin, feeder, small)?) / n)
}

/// The same for BIRD: every thread's instructions (callgrind runs a multi-threaded BIRD's
/// threads one at a time and sums them), control-socket polls included.
fn callgrind_bird(bird: &Bird, feeder: &Path) -> Result<f64, String> {
    sh(&["valgrind", "--version"]).map_err(|_| "valgrind is not installed".to_string())?;
    let (small, large) = (CALLGRIND_PREFIXES / 2, CALLGRIND_PREFIXES);
    let n = f64::from(large - small);
    Ok((callgrind_bird_run(bird, feeder, large)? - callgrind_bird_run(bird, feeder, small)?) / n)
}

fn callgrind_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bulkhead-bench-{tag}-{}.callgrind", std::process::id()))
}

/// The `summary:` (or `totals:`) instruction count of a callgrind output file, which it removes.
fn callgrind_total(path: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = std::fs::remove_file(path);
    text.lines()
        .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", path.display()))
}

fn callgrind_core_run(bin: &Path, feeder: &Path, prefixes: u32) -> Result<f64, String> {
    let feed = Feed { name: "callgrind", peers: 1, prefixes, distinct: false };
    let out_file = callgrind_file("core");
    let _ns = Namespaces::new()?;
    let out_arg = format!("--callgrind-out-file={}", out_file.display());
    let env = [("BGP_BENCH_LISTEN", format!("{RECEIVER}:179")), ("BGP_BENCH_PEERS", "1".into())];
    let bin = bin.to_str().ok_or("binary path")?;
    let (mut core, mut out) =
        spawn_in(RECEIVER_NS, &["valgrind", "--tool=callgrind", &out_arg, bin, "bench_core"], &env)?;
    line_starting(&mut out, "listening")?;
    let (_feed, _) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 600)?;
    line_starting(&mut out, "bench_core").map_err(|e| format!("the core under callgrind: {e}"))?;
    let _ = core.0.wait();
    callgrind_total(&out_file)
}

fn callgrind_bird_run(bird: &Bird, feeder: &Path, prefixes: u32) -> Result<f64, String> {
    let feed = Feed { name: "callgrind", peers: 1, prefixes, distinct: false };
    let out_file = callgrind_file("bird");
    let _ns = Namespaces::new()?;
    let config =
        TempFile::new("bench-bird-cg", &bird_config(RECEIVER, &FEEDERS, feed)).map_err(|e| e.to_string())?;
    let socket = std::env::temp_dir()
        .join(format!("bulkhead-bench-bird-cg-{}.ctl", std::process::id()))
        .to_string_lossy()
        .into_owned();
    let pid = format!("{socket}.pid");
    let out_arg = format!("--callgrind-out-file={}", out_file.display());
    let config_path = config.0.to_string_lossy().into_owned();
    let argv = [
        "valgrind",
        "--tool=callgrind",
        &out_arg,
        bird.bird(),
        "-f",
        "-c",
        &config_path,
        "-s",
        &socket,
        "-P",
        &pid,
    ];
    let (mut daemon, _) = spawn_in(RECEIVER_NS, &argv, &[])?;
    wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        Ok(birdc(bird, &socket, &["show", "status"]).is_ok())
    })?;
    let (_feed, _) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 600)?;
    wait_until(Duration::from_secs(600), Duration::from_millis(500), || {
        Ok(bird_has_all(&birdc(bird, &socket, &["show", "route", "count"])?, feed))
    })?;
    let _ = birdc(bird, &socket, &["down"]);
    let _ = daemon.0.wait();
    callgrind_total(&out_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY_2_0_12: &str =
        "BIRD 2.0.12 ready.\nBIRD memory usage\n                  Effective    Overhead\n\
        Routing tables:     19.2 kB   1360.0  B\nRoute attributes:  816.0  B   5288.0  B\n\
        Standby memory:      0.0  B     44.0 kB\nTotal:              47.8 kB     57.4 kB\n";
    const MEMORY_2_17_5: &str = "BIRD 2.17.5 ready.\nBIRD memory usage\n                  Effective    Overhead\n\
        Routing tables:    176.0 MB   1360.0  B\nCurrent config:   8744.0  B    424.0  B\n\
        Total:             184.6 MB     70.4 kB\n\nActive pages:       60.0 kB\nKept free pages:    56.0 kB\n";

    #[test]
    fn show_memory_total_is_the_effective_column_of_either_version() {
        assert_eq!(bird_total(MEMORY_2_0_12).unwrap(), 47.8 * 1024.0);
        assert_eq!(bird_total(MEMORY_2_17_5).unwrap(), 184.6 * 1024.0 * 1024.0);
        assert!(bird_total("BIRD 2.17.5 ready.\n").is_err());
        assert!(bird_total("Total: 3 parsecs\n").is_err());
    }

    #[test]
    fn route_count_is_complete_only_with_every_path() {
        let feed = FEEDS[1];
        let done = "1000000 of 1000000 routes for 250000 networks in table master4\n\
            Total: 1000000 of 1000000 routes for 250000 networks in 2 tables";
        assert!(bird_has_all(done, feed));
        assert!(!bird_has_all("999999 of 999999 routes for 250000 networks in table master4", feed));
    }

    #[test]
    fn bird_config_has_one_passive_session_a_line_with_the_import_table() {
        let text = bird_config(VM_RECEIVER, &VM_FEEDERS, FEEDS[1]);
        let sessions: Vec<&str> = text.lines().filter(|l| l.starts_with("protocol bgp")).collect();
        assert_eq!(sessions.len(), 4);
        assert!(sessions[3].contains("neighbor 192.0.2.5 as 65001; passive on;"));
        assert!(sessions.iter().all(|l| l.contains("import table on;") && l.ends_with('}')));
        assert_eq!(bird_config(RECEIVER, &FEEDERS, FEEDS[0]).lines().count(), 3);
    }

    #[test]
    fn the_vm_answer_is_its_bird_lines_without_echo_or_kernel_lines() {
        let console = "birdc show route count\r\n[   12.5] random: crng init done\r\n\
            bird| BIRD 2.17.5 ready.\r\nbird| 5 of 5 routes for 5 networks in table master4\r\nbird| end\r\n";
        assert_eq!(bird_answer(console), "BIRD 2.17.5 ready.\n5 of 5 routes for 5 networks in table master4");
        assert_eq!(bird_answer("bird| \r\nbird| end\r\n"), "");
    }

    #[test]
    fn ratio_names_are_short() {
        assert_eq!(short("BIRD 2.17.5 native"), "BIRD 2.17.5");
        assert_eq!(short("BIRD 2.17.5 Linux VM"), "BIRD VM");
        assert_eq!(short("core (a)"), "core");
        assert_eq!(short("appliance (b)"), "appliance");
        assert_eq!(round3(1.467479104), 1.467);
    }
}
