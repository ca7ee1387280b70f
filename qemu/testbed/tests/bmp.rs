//! BMP in QEMU with pmacct's `pmbmpd` (Debian's `pmacct`) as the collector, in the namespace of
//! nic0, and the stream captured there and decoded by `tshark` (which needs
//! `-o gui.max_tree_depth:2000 -d tcp.port==PORT,bmp` to decode BMP at all).
//!
//! The collector session (Initiation with our sysName, `show bmp` up, messages counted), a
//! stalled second collector that accepts and never reads, the Termination when BMP is shed; and
//! the seed at test size: BIRD feeds Bulkhead, pmbmpd logs every prefix (unique prefixes
//! counted), the stalled session is dropped at its bound, BGP stays established, and `bmp` comes
//! back to its level before the feed.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_testbed::daemon::{Daemon, TempDir};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, repo_root, Netns, TempFile, Vm, VmOptions};

const LIVE_PORT: u16 = 1790;
const STALLED_PORT: u16 = 1791;

/// Polls `check` every 200 ms until it holds or `limit` passes.
fn wait(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn boot(tag: &str, extra: &str) -> (Vm, TempFile) {
    let text = default_interfaces_toml(1)
        + "\n[diagnostics]\nenabled = true\n"
        + &format!(
            "\n[bmp]\nstats_interval = 0\nsys_name = \"bulkhead-qemu\"\nqueue_limit = \"64KiB\"\n\
             [[bmp.collector]]\naddress = \"192.0.2.2\"\nport = {LIVE_PORT}\n\
             [[bmp.collector]]\naddress = \"192.0.2.2\"\nport = {STALLED_PORT}\n"
        )
        + extra;
    let config = TempFile::new(&format!("bmp-{tag}"), &text).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(1).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    (vm, config)
}

fn collector(vm: &mut Vm, port: u16) -> Value {
    let all = vm.command_json("show bmp json").unwrap_or_else(|e| panic!("show bmp json: {e}"));
    all["collectors"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["port"] == port))
        .cloned()
        .unwrap_or_else(|| panic!("no collector on port {port} in {all}"))
}

/// pmbmpd's message log: one JSON object per line.
fn log_lines(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| bulkhead_testbed::serde_json::from_str(l).ok())
        .collect()
}

fn has_type(lines: &[Value], kind: &str) -> bool {
    lines.iter().any(|l| l["bmp_type"] == kind || l["bmp_msg_type"] == kind)
}

/// A collector that accepts and never reads (the seed's stalled collector).
fn stalled_collector(ns: &Netns) -> Daemon {
    let script = repo_root().join("qemu/peers/bmp/stalled_collector.py");
    let script = script.to_string_lossy().into_owned();
    Daemon::spawn(ns, &["python3", &script, "192.0.2.2", &STALLED_PORT.to_string()], "stalled collector")
}

/// pmbmpd reads our Initiation and, when BMP is shed, our Termination; tshark decodes the
/// capture as BMP; the stalled collector is connected and costs nothing beyond its queue.
#[test]
fn pmbmpd_reads_initiation_and_termination_and_tshark_decodes_them() {
    if !can_run("pmbmpd_reads_initiation_and_termination_and_tshark_decodes_them") {
        return;
    }
    let dir = TempDir::new("bmp-pmbmpd");
    let (mut vm, _config) = boot("pmbmpd", "");
    let log = dir.path("bmp.json");
    let pcap = dir.path("bmp.pcapng");
    let (mut capture, _pmbmpd, _stalled) = {
        let (ns, tap) = (&vm.nic(0).ns, vm.nic(0).tap_name());
        let capture = Daemon::spawn(ns, &["tshark", "-q", "-i", tap, "-w", &pcap, "tcp"], "tshark");
        std::thread::sleep(Duration::from_secs(1));
        let port = LIVE_PORT.to_string();
        let pmbmpd = Daemon::spawn(ns, &["pmbmpd", "-L", "192.0.2.2", "-l", &port, "-o", &log], "pmbmpd");
        (capture, pmbmpd, stalled_collector(ns))
    };

    let up = wait(Duration::from_secs(30), || {
        collector(&mut vm, LIVE_PORT)["state"] == "up" && collector(&mut vm, STALLED_PORT)["state"] == "up"
    });
    assert!(up, "both collectors up: {}", vm.command("show bmp").unwrap_or_default());
    let init = wait(Duration::from_secs(20), || has_type(&log_lines(&log), "init"));
    assert!(init, "pmbmpd logged no Initiation: {:?}", std::fs::read_to_string(&log));
    let lines = log_lines(&log);
    let text = lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n");
    eprintln!("pmbmpd logged:\n{text}");
    assert!(text.contains("bulkhead-qemu"), "sysName in pmbmpd's log: {text}");
    let live = collector(&mut vm, LIVE_PORT);
    assert!(live["messages_sent"].as_u64().unwrap_or(0) >= 1, "{live}");
    assert_eq!(live["drops"], 0);

    // The shed's last words: a Termination to each collector.
    let answer = vm.command("debug shed bmp").unwrap_or_default();
    assert!(answer.contains("ok (bmp)"), "{answer}");
    let term = wait(Duration::from_secs(20), || has_type(&log_lines(&log), "term"));
    assert!(term, "pmbmpd logged no Termination: {:?}", std::fs::read_to_string(&log));
    let report = vm.command_json("show status json").unwrap_or_else(|e| panic!("show status: {e}"));
    let bmp = report["subsystems"]
        .as_array()
        .and_then(|r| r.iter().find(|s| s["name"] == "bmp"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(bmp["leaks"], 0, "{report}");

    std::thread::sleep(Duration::from_secs(1));
    capture.stop();
    let decoded = Command::new("tshark")
        .args(["-r", &pcap, "-o", "gui.max_tree_depth:2000", "-d"])
        .arg(format!("tcp.port=={LIVE_PORT},bmp"))
        .args(["-Y", "bmp", "-T", "fields", "-e", "bmp.type"])
        .output()
        .expect("tshark");
    let types: BTreeSet<String> = String::from_utf8_lossy(&decoded.stdout)
        .split([',', '\n'])
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    eprintln!("tshark decoded BMP message types {types:?}");
    assert!(types.contains("4") && types.contains("5"), "tshark decoded BMP types {types:?}");
}

/// The seed with BIRD: BIRD feeds routes to Bulkhead, pmbmpd gets every prefix once at least,
/// the stalled collector's session is dropped at its bound, BGP stays established, and after
/// BIRD goes `bmp` is back at its level before the feed.
#[test]
fn bird_feeds_pmbmpd_gets_every_prefix_and_the_stalled_session_is_dropped() {
    if !can_run("bird_feeds_pmbmpd_gets_every_prefix_and_the_stalled_session_is_dropped") {
        return;
    }
    // Enough that the stalled collector's socket buffers (ours and its kernel's, about 190 KB)
    // cannot absorb the stream (about 4 bytes a prefix) and its queue reaches its bound.
    const PREFIXES: usize = 100_000;
    let dir = TempDir::new("bmp-bird");
    let bgp = "\n[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\nconnect_retry = \"2s\"\n\
               [[bgp.neighbor]]\naddress = \"192.0.2.2\"\nasn = 65001\nimport = \"all\"\nexport = \"none\"\n";
    let (mut vm, _config) = boot("bird", bgp);
    let log = dir.path("bmp.json");
    let (_pmbmpd, _stalled) = {
        let ns = &vm.nic(0).ns;
        let port = LIVE_PORT.to_string();
        let pmbmpd = Daemon::spawn(ns, &["pmbmpd", "-L", "192.0.2.2", "-l", &port, "-o", &log], "pmbmpd");
        (pmbmpd, stalled_collector(ns))
    };
    let up = wait(Duration::from_secs(30), || collector(&mut vm, LIVE_PORT)["state"] == "up");
    assert!(up);
    let before = domain(&mut vm, "bmp");
    let bgp_before = domain(&mut vm, "bgp");

    let routes: String = (0..PREFIXES)
        .map(|i| format!("  route {}.{}.{}.0/24 blackhole;\n", 10 + i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let conf = format!(
        "router id 192.0.2.2;\nprotocol device {{}}\nprotocol static st {{\n  ipv4;\n{routes}}}\n\
         protocol bgp up {{\n  local 192.0.2.2 as 65001;\n  neighbor 192.0.2.1 as 65000;\n  \
         connect delay time 1;\n  connect retry time 2;\n  ipv4 {{ import none; export all; }};\n}}\n"
    );
    let conf_path = dir.path("bird.conf");
    std::fs::write(&conf_path, conf).expect("bird.conf");
    let (sock, pid) = (dir.path("bird.ctl"), dir.path("bird.pid"));
    let mut bird =
        Daemon::spawn(&vm.nic(0).ns, &["bird", "-f", "-c", &conf_path, "-s", &sock, "-P", &pid], "bird");

    let everything = wait(Duration::from_secs(120), || unique_prefixes(&log) >= PREFIXES);
    assert!(everything, "pmbmpd saw {} of {PREFIXES} prefixes", unique_prefixes(&log));
    let dropped =
        wait(Duration::from_secs(30), || collector(&mut vm, STALLED_PORT)["drops"].as_u64() > Some(0));
    assert!(dropped, "{}", vm.command("show bmp").unwrap_or_default());
    let protocols = vm.command_json("show protocols json").unwrap_or(Value::Null);
    assert_eq!(protocols["protocols"][0]["sessions"], 1, "BGP stayed established: {protocols}");

    bird.stop();
    // Back to the pre-feed level: the same blocks, and no more bytes (the stalled collector's
    // queue held its first messages before the feed; after its drops it may hold less).
    let back = wait(Duration::from_secs(60), || {
        let now = domain(&mut vm, "bmp");
        now.1 == before.1 && now.0 <= before.0
    });
    eprintln!(
        "bmp (live bytes, blocks) before the feed {before:?}, after {:?}; bgp before {bgp_before:?}, after {:?}",
        domain(&mut vm, "bmp"),
        domain(&mut vm, "bgp")
    );
    assert!(back);
}

/// `(live, blocks)` of a domain in `show memory json`: what its live blocks hold, and how many
/// (`used` also counts the free chunks a domain keeps cached, one per size class at most).
fn domain(vm: &mut Vm, name: &str) -> (u64, u64) {
    let memory = vm.command_json("show memory json").unwrap_or(Value::Null);
    let d = memory["domains"]
        .as_array()
        .and_then(|r| r.iter().find(|d| d["domain"] == name))
        .cloned()
        .unwrap_or(Value::Null);
    (d["live"].as_u64().unwrap_or(u64::MAX), d["blocks"].as_u64().unwrap_or(u64::MAX))
}

/// Unique prefixes in pmbmpd's Route Monitoring lines (a collector may see one twice).
fn unique_prefixes(log: &str) -> usize {
    log_lines(log)
        .iter()
        .filter_map(|l| l["ip_prefix"].as_str().map(str::to_string))
        .collect::<BTreeSet<_>>()
        .len()
}
