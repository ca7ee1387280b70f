//! BMP bench: Bulkhead's BMP exporter against BIRD 2.17.5's `protocol bmp`, same feed, same run.
//!
//! Each exporter is loaded first with one peer's feed (`bgp-feed`, the BGP bench's feeder:
//! `BULKHEAD_BENCH_BMP_PREFIXES` /24s, default 1M, one attribute set), then:
//!
//! 1. **live**: a collector (`bmp-sink`, built with the test bed's binaries) starts listening and
//!    the exporter connects to it: for BIRD, `birdc enable live` of a protocol configured
//!    `disabled`; for Bulkhead, whose collectors are configured at boot, its next reconnect
//!    (back-off at most 60 s). The sink times the initial dump from its accept until it has
//!    every prefix (unique prefixes, a collector may see one twice) and counts its bytes (BMP
//!    octets, the TCP payload): bytes on the wire per prefix. `DUMPS` times (the collector goes
//!    and comes back, BIRD's protocol is disabled and enabled again); the median time counts.
//! 2. **stalled**: a second collector that accepts and never reads
//!    (`qemu/peers/bmp/stalled_collector.py`), until the exporter's memory settles.
//!
//! Memory of each phase: Bulkhead's `bmp` domain from `show memory json` (its `peak` when it rose
//! in the phase, else the largest `used` polled), and the stalled collector's queue footprint
//! from `show bmp json`; BIRD's `Protocols` and `Total` from `birdc show memory`, polled, the
//! largest seen (BIRD keeps no peak), each over its value before BMP was enabled.
//!
//! BIRD 2.17.5 runs natively in a namespace (built by `qemu/bird-2.17.sh`, with BMP), keeping an
//! import table (BMP's pre-policy Adj-RIB-In); Bulkhead is the appliance in QEMU as the BGP
//! bench's part (b) boots it (the accelerator faster to boot, or `BULKHEAD_ACCEL`), with two
//! `[[bmp.collector]]` and explicit queue limits.
//!
//! Targets (issue 10): at most 0.5x BIRD's bytes on the wire per prefix; the dump in at most half
//! BIRD's time; Bulkhead's `bmp` bytes over its pre-dump baseline bounded by the configured
//! queue limits (two collectors' `queue_limit` and the channel's `channel_limit`) whatever the
//! table size, and the stalled collector's queue by its `queue_limit`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulkhead_testbed::daemon::TempDir;
use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{repo_root, Accel, TempFile, Vm, VmOptions};

use crate::bgpfeed::{sh, sibling, start_feed, wait_until, NsPair, NsProc};
use crate::figures::{print_table, Figure};

const BIRD_NS: &str = "bhbmpbenchr";
const FEEDER_NS: &str = "bhbmpbenchf";
/// BIRD's address, and the feeder's and collectors' beside it.
const BIRD_ADDR: &str = "10.10.0.1";
const PEER_ADDR: &str = "10.10.0.2";
/// The appliance's address, and the feeder's and collectors' in its NIC's namespace.
const APPLIANCE_ADDR: &str = "192.0.2.1";
const APPLIANCE_PEER: &str = "192.0.2.2";
const LIVE_PORT: u16 = 1790;
const STALLED_PORT: u16 = 1791;
const AS_FEEDER: u32 = 65001;
const AS_EXPORTER: u32 = 65000;
/// Bulkhead's `[bmp]` limits (its defaults, written out so that the figures can name them).
const QUEUE_LIMIT: u64 = 4 << 20;
const CHANNEL_LIMIT: u64 = 4 << 20;
const COLLECTORS: u64 = 2;
const DEFAULT_PREFIXES: u32 = 1_000_000;
/// Targets: Bulkhead's figure at most this times BIRD's.
const WIRE_RATIO_MAX: f64 = 0.5;
const DUMP_RATIO_MAX: f64 = 0.5;
/// How long a phase may take at most.
const LOAD_LIMIT: Duration = Duration::from_secs(900);
const DUMP_LIMIT: Duration = Duration::from_secs(600);
const STALL_LIMIT: Duration = Duration::from_secs(180);
/// A stalled phase is over when memory has not moved for this long (after the connect).
const SETTLED: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(250);

/// The sink's `done` line: the initial dump as the live collector saw it.
struct Dump {
    seconds: f64,
    bytes: f64,
    messages: f64,
}

/// Initial dumps per exporter (the live collector reconnects between them): their median time
/// is the figure, as the machine is shared and one dump's time is noisy.
const DUMPS: usize = 3;

/// The median dump of `runs` by time, with every run's time.
fn median_dump(mut runs: Vec<Dump>) -> Result<(Dump, Vec<f64>), String> {
    let mut times: Vec<f64> = runs.iter().map(|d| d.seconds).collect();
    let median = crate::figures::median(&mut times);
    let times = runs.iter().map(|d| d.seconds).collect();
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let middle = runs.len() / 2;
    let mut dump = runs.into_iter().nth(middle).ok_or("no dump")?;
    dump.seconds = median;
    Ok((dump, times))
}

/// What one exporter did.
struct Measured {
    /// The median dump, and each dump's seconds.
    dump: Dump,
    dump_runs: Vec<f64>,
    /// Bytes over the baseline before the live collector connected, peak of each phase: for
    /// Bulkhead the `bmp` domain; for BIRD its `Protocols`.
    live_peak: f64,
    stalled_peak: f64,
    /// BIRD: `Total` over its baseline, peak of each phase; Bulkhead: the `bmp` domain's own
    /// peak (absolute) of each phase.
    live_total: f64,
    stalled_total: f64,
    /// Bulkhead: the largest queue footprint of the stalled collector.
    stalled_queue: Option<f64>,
    /// Bulkhead: the accelerator QEMU ran under.
    accel: Option<String>,
}

/// Runs the bench; `Err` names every part that could not be measured.
pub fn run(json_path: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces)".into());
    }
    let prefixes = match std::env::var("BULKHEAD_BENCH_BMP_PREFIXES") {
        Ok(n) => n.parse::<u32>().map_err(|_| format!("BULKHEAD_BENCH_BMP_PREFIXES={n} is not a number"))?,
        Err(_) => DEFAULT_PREFIXES,
    };
    let tools = Tools::find()?;
    let setup = format!("{prefixes} prefixes, 1 peer");
    println!("BMP bench: {setup}");
    let bird = tools.bird().and_then(|bird| bird_native(&tools, &bird, prefixes));
    report("BIRD 2.17.5 native", &bird);
    let appliance = appliance_in_qemu(&tools, prefixes);
    report("appliance in QEMU", &appliance);

    let mut figures = Vec::new();
    let mut failed = Vec::new();
    let per = |m: &Measured| m.dump.bytes / f64::from(prefixes);
    match &bird {
        Ok(b) => {
            figures.push(Figure::new("BIRD: dump", setup.clone(), b.dump.seconds, "s", None));
            figures.push(Figure::new("BIRD: wire bytes/prefix", setup.clone(), per(b), "bytes", None));
            figures.push(Figure::new(
                "BIRD: Protocols peak, live",
                setup.clone(),
                b.live_peak,
                "bytes",
                None,
            ));
            figures.push(Figure::new("BIRD: Total peak, live", setup.clone(), b.live_total, "bytes", None));
            figures.push(Figure::new(
                "BIRD: Protocols peak, stalled",
                setup.clone(),
                b.stalled_peak,
                "bytes",
                None,
            ));
            figures.push(Figure::new(
                "BIRD: Total peak, stalled",
                setup.clone(),
                b.stalled_total,
                "bytes",
                None,
            ));
        }
        Err(e) => failed.push(format!("BIRD 2.17.5 native: {e}")),
    }
    match &appliance {
        Ok(a) => {
            let bird = bird.as_ref().ok();
            let setup = format!("{setup}, {}", a.accel.as_deref().unwrap_or("?"));
            let bound = (COLLECTORS * QUEUE_LIMIT + CHANNEL_LIMIT) as f64;
            let limits = format!(
                "{setup}; limit {COLLECTORS}x queue {} + channel {}",
                mib(QUEUE_LIMIT),
                mib(CHANNEL_LIMIT)
            );
            figures.push(Figure::new(
                "appliance: dump",
                setup.clone(),
                a.dump.seconds,
                "s",
                bird.map(|b| DUMP_RATIO_MAX * b.dump.seconds),
            ));
            figures.push(Figure::new(
                "appliance: wire bytes/prefix",
                setup.clone(),
                per(a),
                "bytes",
                bird.map(|b| WIRE_RATIO_MAX * per(b)),
            ));
            figures.push(Figure::new(
                "appliance: bmp peak-base, live",
                limits.clone(),
                a.live_peak,
                "bytes",
                Some(bound),
            ));
            figures.push(Figure::new(
                "appliance: bmp peak, live",
                setup.clone(),
                a.live_total,
                "bytes",
                None,
            ));
            figures.push(Figure::new(
                "appliance: bmp peak-base, stall",
                limits,
                a.stalled_peak,
                "bytes",
                Some(bound),
            ));
            figures.push(Figure::new(
                "appliance: bmp peak, stalled",
                setup.clone(),
                a.stalled_total,
                "bytes",
                None,
            ));
            if let Some(queue) = a.stalled_queue {
                let limit = format!("{setup}; queue_limit {}", mib(QUEUE_LIMIT));
                figures.push(Figure::new(
                    "appliance: stalled queue",
                    limit,
                    queue,
                    "bytes",
                    Some(QUEUE_LIMIT as f64),
                ));
            }
            if let Some(b) = bird {
                figures.push(Figure::new(
                    "appliance / BIRD dump time",
                    setup.clone(),
                    a.dump.seconds / b.dump.seconds,
                    "x",
                    Some(DUMP_RATIO_MAX),
                ));
                figures.push(Figure::new(
                    "appliance / BIRD wire bytes",
                    setup.clone(),
                    per(a) / per(b),
                    "x",
                    Some(WIRE_RATIO_MAX),
                ));
                figures.push(Figure::new(
                    "appliance / BIRD held, stalled",
                    format!("{setup}; bmp peak-base / Protocols peak"),
                    a.stalled_peak / b.stalled_peak,
                    "x",
                    None,
                ));
            }
        }
        Err(e) => failed.push(format!("appliance in QEMU: {e}")),
    }
    print_table(&figures);
    if let Some(path) = json_path {
        let side = |who: &str, m: &Result<Measured, String>| match m {
            Ok(m) => {
                json!({"exporter": who, "dump_seconds": m.dump.seconds, "dump_runs_seconds": m.dump_runs, "dump_bytes": m.dump.bytes,
                "dump_messages": m.dump.messages, "live_peak": m.live_peak, "stalled_peak": m.stalled_peak,
                "live_total": m.live_total, "stalled_total": m.stalled_total, "stalled_queue": m.stalled_queue, "accel": m.accel})
            }
            Err(e) => json!({"exporter": who, "error": e}),
        };
        let doc = json!({
            "bench": "bmp",
            "prefixes": prefixes,
            "queue_limit": QUEUE_LIMIT,
            "channel_limit": CHANNEL_LIMIT,
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>(),
            "runs": [side("BIRD 2.17.5 native", &bird), side("appliance in QEMU", &appliance)],
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

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

fn report(who: &str, m: &Result<Measured, String>) {
    match m {
        Ok(m) => println!(
            "{who}: dump {:.3} s (median of {:.3?}), {} bytes in {} messages; peak over baseline live {:.0}, \
             stalled {:.0} bytes",
            m.dump.seconds, m.dump_runs, m.dump.bytes, m.dump.messages, m.live_peak, m.stalled_peak
        ),
        Err(e) => println!("{who}: FAILED: {e}"),
    }
}

/// The programs the bench runs.
struct Tools {
    feeder: PathBuf,
    sink: PathBuf,
    stalled: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let stalled = repo_root().join("qemu/peers/bmp/stalled_collector.py");
        if !stalled.exists() {
            return Err(format!("{} is missing", stalled.display()));
        }
        Ok(Tools { feeder: sibling("bgp-feed")?, sink: sibling("bmp-sink")?, stalled })
    }

    /// BIRD 2.17.5's `sbin` directory, built by `qemu/bird-2.17.sh` when it is not there yet.
    fn bird(&self) -> Result<PathBuf, String> {
        let dir = repo_root().join("target/bird-2.17.5");
        let script = repo_root().join("qemu/bird-2.17.sh");
        let (script, out) = (script.to_str().ok_or("script path")?, dir.to_str().ok_or("BIRD path")?);
        sh(&[script, out]).map_err(|e| format!("building BIRD 2.17.5: {e}"))?;
        Ok(dir.join("sbin"))
    }

    /// Starts the sink on `address`:`port` in `ns`; returns once it listens.
    fn sink(&self, ns: &str, address: &str, port: u16, prefixes: u32) -> Result<NsProc, String> {
        let sink = self.sink.to_str().ok_or("sink path")?;
        let (port, prefixes) = (port.to_string(), prefixes.to_string());
        let mut proc = NsProc::spawn(ns, &[sink, address, &port, &prefixes], "bmp-sink")?;
        proc.line_starting("listening")?;
        Ok(proc)
    }

    /// The collector that accepts and never reads, on `address`:`port` in `ns`.
    fn stalled(&self, ns: &str, address: &str, port: u16) -> Result<NsProc, String> {
        let script = self.stalled.to_str().ok_or("script path")?;
        NsProc::spawn(ns, &["python3", script, address, &port.to_string()], "stalled collector")
    }
}

/// Waits for the sink's `done` line while `poll` runs every `POLL`; the sink is handed back,
/// still reading, so that the exporter is never held up by it.
fn dump_while(
    mut sink: NsProc,
    mut poll: impl FnMut() -> Result<(), String>,
) -> Result<(Dump, NsProc), String> {
    let (tx, rx) = mpsc::channel();
    let pid = sink.pid();
    let reader = std::thread::spawn(move || {
        let _ = tx.send(sink.line_starting("done"));
        sink
    });
    let end = Instant::now() + DUMP_LIMIT;
    let mut wait = || loop {
        poll()?;
        match rx.recv_timeout(POLL) {
            Ok(line) => return line,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < end => {}
            Err(_) => {
                return Err(format!(
                    "the live collector did not have every prefix within {} s",
                    DUMP_LIMIT.as_secs()
                ))
            }
        }
    };
    let line = match wait() {
        Ok(line) => line,
        Err(e) => {
            // The reader is blocked on the sink's output: end the sink, so that it returns.
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = reader.join();
            return Err(e);
        }
    };
    let sink = reader.join().map_err(|_| "the sink's reader panicked".to_string())?;
    let field = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {key} in {line:?}"))
    };
    Ok((Dump { seconds: field("seconds=")?, bytes: field("bytes=")?, messages: field("messages=")? }, sink))
}

/// Polls `sample` (`None` until the stalled collector is connected, then a figure that moves
/// while the exporter does) until it has not changed for `SETTLED`, or `STALL_LIMIT` passes;
/// `sample` keeps its own maxima.
fn until_settled(mut sample: impl FnMut() -> Result<Option<f64>, String>) -> Result<(), String> {
    let mut first = None;
    wait_until(STALL_LIMIT, POLL, || {
        first = sample()?;
        Ok(first.is_some())
    })
    .map_err(|e| format!("the stalled collector was not connected: {e}"))?;
    let end = Instant::now() + STALL_LIMIT;
    let (mut last, mut since) = (first, Instant::now());
    while Instant::now() < end && since.elapsed() < SETTLED {
        std::thread::sleep(POLL);
        let now = sample()?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(())
}

// BIRD 2.17.5.

fn bird_config() -> String {
    format!(
        "router id {BIRD_ADDR};\nprotocol device {{}}\n\
         protocol bgp feed {{ local {BIRD_ADDR} as {AS_EXPORTER}; neighbor {PEER_ADDR} as {AS_FEEDER}; \
         passive on; ipv4 {{ import all; export none; import table on; }}; }}\n\
         protocol bmp live {{ disabled; station address ip {PEER_ADDR} port {LIVE_PORT}; \
         monitoring rib in pre_policy; }}\n\
         protocol bmp stalled {{ disabled; station address ip {PEER_ADDR} port {STALLED_PORT}; \
         monitoring rib in pre_policy; }}\n"
    )
}

struct Birdc {
    birdc: String,
    socket: String,
}

impl Birdc {
    fn run(&self, command: &[&str]) -> Result<String, String> {
        let mut argv = vec!["ip", "netns", "exec", BIRD_NS, &self.birdc, "-s", &self.socket];
        argv.extend_from_slice(command);
        sh(&argv)
    }

    /// `Protocols` and `Total` of `show memory` (effective), in bytes.
    fn memory(&self) -> Result<(f64, f64), String> {
        let text = self.run(&["show", "memory"])?;
        Ok((bird_memory(&text, "Protocols:")?, bird_memory(&text, "Total:")?))
    }
}

/// The effective bytes of the line `name` of `birdc show memory` (`Total:  1885 MB  ...`).
fn bird_memory(text: &str, name: &str) -> Result<f64, String> {
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .ok_or_else(|| format!("no {name} in {text}"))?;
    let mut words = line.split_whitespace();
    let value: f64 = words.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("bad {name}{line}"))?;
    let scale = match words.next() {
        Some("B") => 1.0,
        Some("kB") => 1024.0,
        Some("MB") => 1024.0 * 1024.0,
        Some("GB") => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unit {other:?} in {name}{line}")),
    };
    Ok(value * scale)
}

fn bird_native(tools: &Tools, sbin: &Path, prefixes: u32) -> Result<Measured, String> {
    let _ns = NsPair::new(BIRD_NS, FEEDER_NS, &[BIRD_ADDR], &[PEER_ADDR])?;
    let dir = TempDir::new("bench-bmp-bird");
    let config = dir.file("bird.conf", &bird_config());
    let birdc =
        Birdc { birdc: sbin.join("birdc").to_string_lossy().into_owned(), socket: dir.path("bird.ctl") };
    let bird = sbin.join("bird").to_string_lossy().into_owned();
    let pid = dir.path("bird.pid");
    let _bird =
        NsProc::spawn(BIRD_NS, &[&bird, "-f", "-c", &config, "-s", &birdc.socket, "-P", &pid], "BIRD")?
            .drain();
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(birdc.run(&["show", "status"]).is_ok())
    })
    .map_err(|e| format!("BIRD did not start: {e}"))?;
    let hold = LOAD_LIMIT + DUMP_LIMIT + 2 * STALL_LIMIT;
    let _feed =
        start_feed(FEEDER_NS, &tools.feeder, BIRD_ADDR, PEER_ADDR, (AS_FEEDER, AS_EXPORTER), prefixes, hold)?;
    let want = format!("{prefixes} of {prefixes} routes");
    wait_until(LOAD_LIMIT, POLL, || Ok(birdc.run(&["show", "route", "count"])?.contains(&want)))
        .map_err(|e| format!("the feed did not load: {e}"))?;

    // Live: the collector listens, then BMP is enabled.
    let base = birdc.memory()?;
    let mut live = (0f64, 0f64);
    let sample = |peak: &mut (f64, f64)| -> Result<(), String> {
        let (p, t) = birdc.memory()?;
        *peak = (peak.0.max(p - base.0), peak.1.max(t - base.1));
        Ok(())
    };
    let (mut runs, mut sink) = (Vec::new(), None);
    for _ in 0..DUMPS {
        if sink.take().is_some() {
            birdc.run(&["disable", "live"])?;
        }
        let listening = tools.sink(FEEDER_NS, PEER_ADDR, LIVE_PORT, prefixes)?;
        birdc.run(&["enable", "live"])?;
        let (dump, reading) = dump_while(listening, || sample(&mut live))?;
        sample(&mut live)?;
        runs.push(dump);
        sink = Some(reading);
    }
    let (dump, dump_runs) = median_dump(runs)?;

    // Stalled: a second station that accepts and never reads.
    let _stalled = tools.stalled(FEEDER_NS, PEER_ADDR, STALLED_PORT)?.drain();
    std::thread::sleep(Duration::from_millis(300));
    birdc.run(&["enable", "stalled"])?;
    let mut stalled = (0f64, 0f64);
    until_settled(|| {
        let text = birdc.run(&["show", "protocols", "stalled"])?;
        let up = text.lines().any(|l| l.starts_with("stalled") && l.split_whitespace().any(|w| w == "up"));
        sample(&mut stalled)?;
        Ok(up.then_some(stalled.0 + stalled.1))
    })?;
    Ok(Measured {
        dump,
        dump_runs,
        live_peak: live.0,
        stalled_peak: stalled.0,
        live_total: live.1,
        stalled_total: stalled.1,
        stalled_queue: None,
        accel: None,
    })
}

// Bulkhead, the appliance in QEMU.

fn appliance_config() -> String {
    format!(
        "[[interface]]\nname = \"nic0\"\naddress = \"{APPLIANCE_ADDR}/24\"\n\n\
         [bgp]\nasn = {AS_EXPORTER}\nrouter_id = \"{APPLIANCE_ADDR}\"\n\n\
         [[bgp.neighbor]]\naddress = \"{APPLIANCE_PEER}\"\nasn = {AS_FEEDER}\nimport = \"all\"\npassive = true\n\n\
         [bmp]\nqueue_limit = \"{}MiB\"\nchannel_limit = \"{}MiB\"\n\n\
         [[bmp.collector]]\naddress = \"{APPLIANCE_PEER}\"\nport = {LIVE_PORT}\n\n\
         [[bmp.collector]]\naddress = \"{APPLIANCE_PEER}\"\nport = {STALLED_PORT}\n",
        QUEUE_LIMIT >> 20,
        CHANNEL_LIMIT >> 20
    )
}

/// The `bmp` row of `show memory json`: (`used`, `peak`).
fn bmp_memory(vm: &mut Vm) -> Result<(f64, f64), String> {
    let m = vm.command_json("show memory json").map_err(|e| e.to_string())?;
    let row = m["domains"]
        .as_array()
        .and_then(|d| d.iter().find(|r| r["domain"] == "bmp"))
        .ok_or_else(|| format!("no bmp row in {m}"))?;
    match (row["used"].as_f64(), row["peak"].as_f64()) {
        (Some(used), Some(peak)) => Ok((used, peak)),
        _ => Err(format!("no used or peak in {row}")),
    }
}

/// The row of the collector on `port` in `show bmp json`.
fn collector(vm: &mut Vm, port: u16) -> Result<Value, String> {
    let all = vm.command_json("show bmp json").map_err(|e| e.to_string())?;
    all["collectors"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["port"] == port))
        .cloned()
        .ok_or_else(|| format!("no collector on port {port} in {all}"))
}

/// A phase's peak of the `bmp` domain: its `peak` when that rose during the phase, else the
/// largest `used` polled in it.
fn phase_peak(peak_before: f64, peak_after: f64, polled: f64) -> f64 {
    if peak_after > peak_before {
        peak_after
    } else {
        polled
    }
}

fn appliance_in_qemu(tools: &Tools, prefixes: u32) -> Result<Measured, String> {
    let config = TempFile::new("bench-bmp", &appliance_config()).map_err(|e| e.to_string())?;
    // `BULKHEAD_ACCEL` (kvm, tcg), or the faster to boot, as the BGP bench's part (b).
    let accel = Accel::from_env().map_err(|e| e.to_string())?;
    let options =
        VmOptions::new().name("bench-bmp").quiet().nics(1).mem_mib(2048).accel(accel).config(&config.0);
    let mut vm = Vm::boot(options).map_err(|e| e.to_string())?;
    let ns = vm.nic(0).ns.name().to_string();
    let hold = LOAD_LIMIT + DUMP_LIMIT + 2 * STALL_LIMIT + Duration::from_secs(120);
    let _feed = start_feed(
        &ns,
        &tools.feeder,
        APPLIANCE_ADDR,
        APPLIANCE_PEER,
        (AS_FEEDER, AS_EXPORTER),
        prefixes,
        hold,
    )?;
    wait_until(LOAD_LIMIT, Duration::from_millis(500), || {
        let p = vm.command_json("show protocols json").map_err(|e| e.to_string())?;
        let received: u64 =
            p["protocols"].as_array().map_or(0, |r| r.iter().filter_map(|x| x["received"].as_u64()).sum());
        Ok(received == u64::from(prefixes))
    })
    .map_err(|e| format!("the feed did not load: {e}"))?;

    // Live: the collector listens; the exporter connects at its next attempt, and again after
    // the collector has gone (its session closed) and come back.
    let (base, peak0) = bmp_memory(&mut vm)?;
    let mut polled = base;
    let (mut runs, mut sink) = (Vec::new(), None);
    for _ in 0..DUMPS {
        drop(sink.take());
        let listening = tools.sink(&ns, APPLIANCE_PEER, LIVE_PORT, prefixes)?;
        let (dump, reading) = dump_while(listening, || {
            polled = polled.max(bmp_memory(&mut vm)?.0);
            Ok(())
        })?;
        runs.push(dump);
        sink = Some(reading);
    }
    let (dump, dump_runs) = median_dump(runs)?;
    let (used, peak1) = bmp_memory(&mut vm)?;
    let live_total = phase_peak(peak0, peak1, polled.max(used));

    // Stalled: the second collector accepts and never reads.
    let _stalled = tools.stalled(&ns, APPLIANCE_PEER, STALLED_PORT)?.drain();
    let mut polled = used;
    let mut queue = 0f64;
    until_settled(|| {
        let row = collector(&mut vm, STALLED_PORT)?;
        let footprint = row["queue_footprint"].as_f64().unwrap_or(0.0);
        queue = queue.max(footprint);
        let (used, _) = bmp_memory(&mut vm)?;
        polled = polled.max(used);
        let connected = row["connects"].as_u64() > Some(0);
        Ok(connected.then_some(used + footprint + row["drops"].as_f64().unwrap_or(0.0)))
    })?;
    let (used, peak2) = bmp_memory(&mut vm)?;
    let stalled_total = phase_peak(peak1, peak2, polled.max(used));
    Ok(Measured {
        dump,
        dump_runs,
        live_peak: live_total - base,
        stalled_peak: stalled_total - base,
        live_total,
        stalled_total,
        stalled_queue: Some(queue),
        accel: Some(accel.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_birds_memory_lines() {
        let text = "BIRD memory usage\n                  Effective    Overhead\n\
                    Routing tables:    412 MB     20 kB\nProtocols:        1473 MB    1 MB\n\
                    Total:            1885 MB    3 MB\nStandby memory:     0 B\n";
        assert_eq!(bird_memory(text, "Protocols:"), Ok(1473.0 * 1024.0 * 1024.0));
        assert_eq!(bird_memory(text, "Total:"), Ok(1885.0 * 1024.0 * 1024.0));
        assert!(bird_memory(text, "Route attributes:").is_err());
        assert!(bird_memory("Total: 12 PB\n", "Total:").is_err());
    }

    #[test]
    fn the_dump_figure_is_the_median_run() {
        let dump = |seconds: f64| Dump { seconds, bytes: seconds * 10.0, messages: 1.0 };
        let (median, runs) = median_dump(vec![dump(3.0), dump(1.0), dump(2.0)]).unwrap();
        assert_eq!((median.seconds, median.bytes), (2.0, 20.0));
        assert_eq!(runs, [3.0, 1.0, 2.0]);
    }

    #[test]
    fn a_phase_peak_is_the_domain_peak_only_when_it_rose() {
        assert_eq!(phase_peak(100.0, 150.0, 120.0), 150.0);
        assert_eq!(phase_peak(100.0, 100.0, 80.0), 80.0);
    }

    #[test]
    fn the_appliance_config_names_both_collectors_and_the_limits() {
        let text = appliance_config();
        assert_eq!(text.matches("[[bmp.collector]]").count(), COLLECTORS as usize);
        assert!(text.contains("queue_limit = \"4MiB\""), "{text}");
        assert!(text.contains(&format!("port = {STALLED_PORT}")), "{text}");
    }
}
