//! BGP bench: how fast a receiver takes in a full feed, and what it holds for it.
//!
//! One feeder of pre-encoded UPDATEs (`bgp-feed`, built with the test bed's binaries) sends the
//! same feeds to every receiver in this run: 1M IPv4 /24s from one peer (one attribute set),
//! and 4 peers x the same 250k /24s (each peer its own AS_PATH, every UPDATE its own MED: many
//! distinct attribute sets). Each receiver is timed from the moment every session is
//! established to End-of-RIB processed (all paths in its table), and its memory for the table
//! is read after:
//!
//! - BIRD (Debian's, 2.0.12) natively, in a namespace, `import table on` (it keeps the
//!   Adj-RIB-In, as Bulkhead does): `birdc show route count` polled, `show memory` Total;
//! - (a) the Bulkhead BGP core (session FSM and RIB) on the host over a TCP socket: the
//!   `bench_core` case of `apps/tests/sim_bgp.rs`, which books its bytes with the real allocator;
//! - (b) the appliance in QEMU (the image, KVM when it is faster): `show protocols json` polled,
//!   `show memory json` of the `bgp` domain;
//! - BIRD inside the forwarding bench's Linux VM: not built (its initramfs has no BIRD), so
//!   that part returns an error naming it;
//! - callgrind instruction counts per prefix, the core against BIRD: the difference between a
//!   10k and a 5k feed, per prefix.
//!
//! Targets (issue 9, from BIRD 2.17.5 measured on these machines: 1.49M prefixes/s, 176 bytes a
//! prefix with its import table): at least 2x its rate (at most 0.336 s a million prefixes) and
//! at most half its bytes (88 bytes a prefix).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{Accel, TempFile, Vm, VmOptions};

use crate::figures::{print_table, Figure};

const RECEIVER_NS: &str = "bhbgpbenchr";
const FEEDER_NS: &str = "bhbgpbenchf";
const RECEIVER: &str = "10.9.0.1";
const FEEDERS: [&str; 4] = ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"];
/// Seconds a million prefixes, at 2x BIRD 2.17.5's 1.49M/s.
const SECONDS_PER_MILLION_MAX: f64 = 1.0 / (2.0 * 1.49);
/// Half of BIRD 2.17.5's 176 bytes a prefix (import table on).
const BYTES_PER_PREFIX_MAX: f64 = 88.0;
const CALLGRIND_PREFIXES: u32 = 10_000;

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
    for feed in FEEDS {
        let bird = Namespaces::new().and_then(|ns| bird_native(&ns, &feeder, feed));
        let core = core_binary()
            .and_then(|bin| Namespaces::new().and_then(|ns| core_on_host(&ns, &bin, &feeder, feed)));
        let appliance = appliance_in_qemu(&feeder, feed);
        for (who, result) in
            [("BIRD 2.0.12 native", &bird), ("core on the host", &core), ("appliance in QEMU", &appliance)]
        {
            match result {
                Ok(t) => {
                    let rate = feed.paths() as f64 / t.seconds;
                    let per = t.bytes / feed.paths() as f64;
                    println!(
                        "{}: {who}: {:.3} s, {:.0} prefixes/s, {:.1} bytes a prefix",
                        feed.name, t.seconds, rate, per
                    );
                    let bulkhead = who != "BIRD 2.0.12 native";
                    figures.push(Figure::new(
                        &format!("{who}: s per 1M"),
                        feed.name.to_string(),
                        t.seconds * 1e6 / feed.paths() as f64,
                        "s",
                        bulkhead.then_some(SECONDS_PER_MILLION_MAX),
                    ));
                    figures.push(Figure::new(
                        &format!("{who}: bytes/prefix"),
                        feed.name.to_string(),
                        per,
                        "bytes",
                        bulkhead.then_some(BYTES_PER_PREFIX_MAX),
                    ));
                    rows.push(json!({"feed": feed.name, "receiver": who, "seconds": t.seconds, "prefixes_per_s": rate, "bytes": t.bytes, "bytes_per_prefix": per}));
                }
                Err(e) => failed.push(format!("{}: {who}: {e}", feed.name)),
            }
        }
        if let (Ok(b), Ok(c)) = (&bird, &core) {
            figures.push(Figure::new("core / BIRD rate", feed.name.into(), b.seconds / c.seconds, "x", None));
            figures.push(Figure::new("core / BIRD bytes", feed.name.into(), c.bytes / b.bytes, "x", None));
        }
        if let (Ok(b), Ok(a)) = (&bird, &appliance) {
            figures.push(Figure::new(
                "appliance / BIRD rate",
                feed.name.into(),
                b.seconds / a.seconds,
                "x",
                None,
            ));
            figures.push(Figure::new(
                "appliance / BIRD bytes",
                feed.name.into(),
                a.bytes / b.bytes,
                "x",
                None,
            ));
        }
        failed.push(format!(
            "{}: BIRD inside the Linux VM: not measured (qemu/linux-router's initramfs has no BIRD)",
            feed.name
        ));
    }
    match callgrind(&feeder) {
        Ok((core, bird)) => {
            let setup = format!("prefixes {}..{}, one peer", CALLGRIND_PREFIXES / 2, CALLGRIND_PREFIXES);
            figures.push(Figure::new("core: instructions/prefix", setup.clone(), core, "Ir", None));
            figures.push(Figure::new("BIRD: instructions/prefix", setup.clone(), bird, "Ir", None));
            figures.push(Figure::new("core / BIRD instructions", setup, core / bird, "x", Some(0.5)));
        }
        Err(e) => failed.push(format!("callgrind: {e}")),
    }
    print_table(&figures);
    if let Some(path) = json_path {
        let doc = json!({
            "bench": "bgp",
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>(),
            "runs": rows,
            "not_measured": failed,
        });
        std::fs::write(path, format!("{doc:#}\n")).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
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

fn wait_until(
    limit: Duration,
    step: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<Instant, String> {
    let end = Instant::now() + limit;
    loop {
        if check()? {
            return Ok(Instant::now());
        }
        if Instant::now() > end {
            return Err(format!("not done within {limit:?}"));
        }
        std::thread::sleep(step);
    }
}

fn bird_config(feed: Feed) -> String {
    let mut text = format!("router id {RECEIVER};\nprotocol device {{}}\n");
    for (k, addr) in FEEDERS[..feed.peers].iter().enumerate() {
        text += &format!(
            "protocol bgp p{k} {{ local {RECEIVER} as 65000; neighbor {addr} as 65001; passive on; \
             ipv4 {{ import all; export none; import table on; }}; }}\n"
        );
    }
    text
}

fn birdc(socket: &str, command: &[&str]) -> Result<String, String> {
    let mut argv = vec!["ip", "netns", "exec", RECEIVER_NS, "birdc", "-s", socket];
    argv.extend_from_slice(command);
    sh(&argv)
}

/// `Total:` of `birdc show memory` (effective), in bytes.
fn bird_total(socket: &str) -> Result<f64, String> {
    let text = birdc(socket, &["show", "memory"])?;
    let line = text.lines().find(|l| l.starts_with("Total:")).ok_or_else(|| format!("no Total in {text}"))?;
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

fn bird_native(_ns: &Namespaces, feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let config = TempFile::new("bench-bird", &bird_config(feed)).map_err(|e| e.to_string())?;
    let socket = std::env::temp_dir().join(format!("bulkhead-bench-bird-{}.ctl", std::process::id()));
    let socket = socket.to_string_lossy().into_owned();
    let pid = format!("{socket}.pid");
    let config_path = config.0.to_string_lossy().into_owned();
    let (_bird, _) =
        spawn_in(RECEIVER_NS, &["bird", "-f", "-c", &config_path, "-s", &socket, "-P", &pid], &[])?;
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(birdc(&socket, &["show", "status"]).is_ok())
    })?;
    let before = bird_total(&socket)?;
    let (_feed, t0) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 300)?;
    let want = format!("{} of {} routes", feed.paths(), feed.paths());
    let t1 = wait_until(Duration::from_secs(300), Duration::from_millis(50), || {
        Ok(birdc(&socket, &["show", "route", "count"])?.contains(&want))
    })?;
    let after = bird_total(&socket)?;
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
    let mut text = String::from(
        "[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.1/24\"\n\n\
         [bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\n",
    );
    for k in 0..feed.peers {
        text += &format!(
            "\n[[bgp.neighbor]]\naddress = \"192.0.2.{}\"\nasn = 65001\nimport = \"all\"\npassive = true\n",
            k + 2
        );
    }
    text
}

fn appliance_in_qemu(feeder: &Path, feed: Feed) -> Result<Taken, String> {
    let config = TempFile::new("bench-bgp", &appliance_config(feed)).map_err(|e| e.to_string())?;
    let options = VmOptions::new()
        .name("bench-bgp")
        .quiet()
        .nics(1)
        .mem_mib(2048)
        .accel(Accel::fastest())
        .config(&config.0);
    let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
    let ns = vm.nic(0).ns.name().to_string();
    for k in 3..=5 {
        sh(&["ip", "-n", &ns, "addr", "add", &format!("192.0.2.{k}/24"), "dev", &ns])?;
    }
    let bgp_used = |vm: &mut Vm| -> Result<f64, String> {
        let m = vm.command_json("show memory json").map_err(|e| e.to_string())?;
        m["domains"]
            .as_array()
            .and_then(|d| d.iter().find(|r| r["domain"] == "bgp"))
            .and_then(|r| r["used"].as_f64())
            .ok_or_else(|| format!("no bgp row in {m}"))
    };
    let before = bgp_used(&mut vm)?;
    let from = ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"];
    let (_feed, t0) = start_feed(&ns, feeder, "192.0.2.1", &from, feed, 600)?;
    let t1 = wait_until(Duration::from_secs(600), Duration::from_millis(200), || {
        let p = vm.command_json("show protocols json").map_err(|e| e.to_string())?;
        let received: u64 =
            p["protocols"].as_array().map_or(0, |r| r.iter().filter_map(|x| x["received"].as_u64()).sum());
        Ok(received == feed.paths())
    })?;
    let after = bgp_used(&mut vm)?;
    Ok(Taken { seconds: t1.duration_since(t0).as_secs_f64(), bytes: after - before })
}

/// Instructions per prefix under callgrind, the core against BIRD, each as the difference of
/// two runs (`CALLGRIND_PREFIXES` and half of it) over the prefixes between: start-up cancels out.
/// (Small tables: the core under valgrind crashes past some tens of thousands of prefixes,
/// natively it does not; see the report of issue 9.)
fn callgrind(feeder: &Path) -> Result<(f64, f64), String> {
    sh(&["valgrind", "--version"]).map_err(|_| "valgrind is not installed".to_string())?;
    let bin = core_binary()?;
    let (small, large) = (CALLGRIND_PREFIXES / 2, CALLGRIND_PREFIXES);
    let n = f64::from(large - small);
    let core = (callgrind_core(&bin, feeder, large)? - callgrind_core(&bin, feeder, small)?) / n;
    let bird = (callgrind_bird(feeder, large)? - callgrind_bird(feeder, small)?) / n;
    Ok((core, bird))
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

fn callgrind_core(bin: &Path, feeder: &Path, prefixes: u32) -> Result<f64, String> {
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

fn callgrind_bird(feeder: &Path, prefixes: u32) -> Result<f64, String> {
    let feed = Feed { name: "callgrind", peers: 1, prefixes, distinct: false };
    let out_file = callgrind_file("bird");
    let _ns = Namespaces::new()?;
    let config = TempFile::new("bench-bird-cg", &bird_config(feed)).map_err(|e| e.to_string())?;
    let socket = std::env::temp_dir()
        .join(format!("bulkhead-bench-bird-cg-{}.ctl", std::process::id()))
        .to_string_lossy()
        .into_owned();
    let pid = format!("{socket}.pid");
    let out_arg = format!("--callgrind-out-file={}", out_file.display());
    let config_path = config.0.to_string_lossy().into_owned();
    let (mut bird, _) = spawn_in(
        RECEIVER_NS,
        &[
            "valgrind",
            "--tool=callgrind",
            &out_arg,
            "bird",
            "-f",
            "-c",
            &config_path,
            "-s",
            &socket,
            "-P",
            &pid,
        ],
        &[],
    )?;
    wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        Ok(birdc(&socket, &["show", "status"]).is_ok())
    })?;
    let (_feed, _) = start_feed(FEEDER_NS, feeder, RECEIVER, &FEEDERS, feed, 600)?;
    let want = format!("{} of {} routes", feed.paths(), feed.paths());
    wait_until(Duration::from_secs(600), Duration::from_millis(500), || {
        Ok(birdc(&socket, &["show", "route", "count"])?.contains(&want))
    })?;
    let _ = birdc(&socket, &["down"]);
    let _ = bird.0.wait();
    callgrind_total(&out_file)
}
