//! BMP in QEMU with pmacct's `pmbmpd` (Debian's `pmacct`) as the collector, in the namespace of
//! nic0, and the stream captured there and decoded by `tshark` (which needs
//! `-o gui.max_tree_depth:2000 -d tcp.port==PORT,bmp` to decode BMP at all).
//!
//! The collector session (Initiation with our sysName, `show bmp` up, messages counted), a
//! stalled second collector that accepts and never reads, the Termination when BMP is shed; and
//! the seed at test size: four BIRD peers feed Bulkhead, pmbmpd logs every prefix (unique prefixes
//! counted), the stalled session is dropped at its bound, BGP stays established, and `bgp` and
//! `bmp` come back to their level before the feed, to the byte and the block.
//!
//! Sizes: `BULKHEAD_BMP_SEED_PREFIXES` prefixes per peer (default 25,000; `make scenario` sets
//! 250,000). `BULKHEAD_BMP_KEEP_LOG=PATH` keeps a copy of pmbmpd's message log.

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
    boot_with(tag, extra, "0")
}

/// Boots with `[bmp] stats_interval = STATS` (a TOML value).
fn boot_with(tag: &str, extra: &str, stats: &str) -> (Vm, TempFile) {
    let text = default_interfaces_toml(1)
        + "\n[diagnostics]\nenabled = true\n"
        + &format!(
            "\n[bmp]\nstats_interval = {stats}\nsys_name = \"bulkhead-qemu\"\nqueue_limit = \"64KiB\"\n\
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

/// A collector that reads everything and discards it (`python3 -c DISCARD ADDRESS PORT`).
const DISCARD: &str = "import socket, sys\n\
    l = socket.create_server((sys.argv[1], int(sys.argv[2])))\n\
    while True:\n    c, _ = l.accept()\n    try:\n        while c.recv(1 << 16):\n            pass\n\
    \x20   except OSError:\n        pass\n    c.close()\n";

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

/// BGP peers of the seed test, each its own BIRD session from its own address (192.0.2.2 on).
const SEED_PEERS: usize = 4;

/// Prefixes each peer sends in the seed test: `BULKHEAD_BMP_SEED_PREFIXES` (default 25,000,
/// the `make test` size; `make scenario` sets 250,000, the seed's size).
fn seed_prefixes() -> usize {
    std::env::var("BULKHEAD_BMP_SEED_PREFIXES")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(25_000)
}

/// The address of seed peer `k`.
fn seed_peer(k: usize) -> String {
    format!("192.0.2.{}", 2 + k)
}

/// The `i`th prefix of seed peer `k`: every peer has its own.
fn seed_prefix(k: usize, i: usize, per_peer: usize) -> String {
    let j = k * per_peer + i;
    format!("{}.{}.{}.0/24", 10 + j / 65536, (j / 256) % 256, j % 256)
}

/// The BIRD of seed peer `k`: its own table, one session from its own address, its listening
/// socket bound to that address (`strict bind`). One BIRD per peer: BIRD locks a neighbor
/// address, so one BIRD cannot hold four sessions to it.
fn seed_bird_conf(k: usize, per_peer: usize) -> String {
    let mut conf =
        format!("router id {};\nprotocol device {{}}\nprotocol static st {{\n  ipv4;\n", seed_peer(k));
    for i in 0..per_peer {
        conf += &format!("  route {} blackhole;\n", seed_prefix(k, i, per_peer));
    }
    conf += &format!(
        "}}\nprotocol bgp up {{\n  local {} as 65001;\n  neighbor 192.0.2.1 as 65000;\n  strict bind yes;\n  \
         connect delay time 1;\n  connect retry time 2;\n  ipv4 {{ import none; export all; }};\n}}\n",
        seed_peer(k)
    );
    conf
}

/// Runs one BIRD per seed peer until Bulkhead's BGP holds every route of every peer; returns
/// them and BGP's ingest rate in prefixes a second (from the first session established to the
/// last route received, sampled every 250 ms: a figure, not a timed assertion).
fn seed_feed(vm: &mut Vm, dir: &TempDir, tag: &str, per_peer: usize) -> (Vec<Daemon>, f64) {
    // The previous feed's sessions are gone and their routes flushed first.
    let flushed = wait(Duration::from_secs(60), || {
        let protocols = vm.command_json("show protocols json").unwrap_or(Value::Null);
        let rows = protocols["protocols"].as_array().cloned().unwrap_or_default();
        rows.iter().all(|r| r["received"] == 0 && r["state"] != "Established")
    });
    assert!(flushed, "{}", vm.command("show protocols").unwrap_or_default());
    let birds: Vec<Daemon> = (0..SEED_PEERS)
        .map(|k| {
            let conf = dir.file(&format!("bird-{tag}-{k}.conf"), &seed_bird_conf(k, per_peer));
            let sock = dir.path(&format!("bird-{tag}-{k}.ctl"));
            let pid = dir.path(&format!("bird-{tag}-{k}.pid"));
            Daemon::spawn(&vm.nic(0).ns, &["bird", "-f", "-c", &conf, "-s", &sock, "-P", &pid], "bird")
        })
        .collect();
    let total = (SEED_PEERS * per_peer) as u64;
    let (mut first, mut last) = (None, None);
    let end = Instant::now() + Duration::from_secs(300);
    while Instant::now() < end {
        let protocols = vm.command_json("show protocols json").unwrap_or(Value::Null);
        let rows = protocols["protocols"].as_array().cloned().unwrap_or_default();
        let up = rows.iter().filter(|r| r["state"] == "Established").count();
        let received: u64 = rows.iter().filter_map(|r| r["received"].as_u64()).sum();
        if first.is_none() && up > 0 {
            first = Some(Instant::now());
        }
        if received >= total {
            last = Some(Instant::now());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (Some(first), Some(last)) = (first, last) else {
        panic!("BGP did not receive {total} routes: {}", vm.command("show protocols").unwrap_or_default())
    };
    let rate = total as f64 / last.duration_since(first).as_secs_f64().max(0.25);
    (birds, rate)
}

/// The seed with BIRD, at the issue's shape: 4 BGP peers each sending its own prefixes
/// (`BULKHEAD_BMP_SEED_PREFIXES` each), BMP to pmbmpd and to a stalled collector. pmbmpd gets
/// every prefix of every peer (unique prefixes per peer, not messages), with plausible
/// per-peer timestamps and a Statistics Report of each peer's Adj-RIB-In; the stalled session
/// is dropped at its bound and counted; BGP stays established; after the peers go, `bgp` and
/// `bmp` are back at their pre-feed live bytes and blocks exactly. BGP's ingest rate is printed
/// with the stalled collector there and with no collector at all.
#[test]
fn bird_feeds_pmbmpd_gets_every_prefix_and_the_stalled_session_is_dropped() {
    if !can_run("bird_feeds_pmbmpd_gets_every_prefix_and_the_stalled_session_is_dropped") {
        return;
    }
    let per_peer = seed_prefixes();
    let total = SEED_PEERS * per_peer;
    let dir = TempDir::new("bmp-bird");
    let mut bgp = String::from("\n[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\nconnect_retry = \"2s\"\n");
    for k in 0..SEED_PEERS {
        bgp += &format!(
            "[[bgp.neighbor]]\naddress = \"{}\"\nasn = 65001\nimport = \"all\"\nexport = \"none\"\n",
            seed_peer(k)
        );
    }
    // BGP's events wait in BMP's channel while pmbmpd catches up (8 MiB: four peers' bursts
    // of UPDATEs); the 64 KiB queues make the stalled collector reach its bound.
    let (mut vm, _config) = boot_with("bird", &bgp, "\"5s\"\nchannel_limit = \"8MiB\"");
    let log = dir.path("bmp.json");
    let (mut pmbmpd, mut stalled) = {
        let (ns, dev) = (&vm.nic(0).ns, vm.nic(0).tap_name().to_string());
        for k in 1..SEED_PEERS {
            let added = ns.run(["ip", "addr", "add", &format!("{}/24", seed_peer(k)), "dev", &dev]);
            assert!(added.is_ok_and(|o| o.success()), "address {} on {dev}", seed_peer(k));
        }
        let port = LIVE_PORT.to_string();
        let pmbmpd = Daemon::spawn(ns, &["pmbmpd", "-L", "192.0.2.2", "-l", &port, "-o", &log], "pmbmpd");
        (pmbmpd, stalled_collector(ns))
    };
    let before =
        at_rest(&mut vm, Duration::from_secs(30)).expect("both collectors up and idle before the feed");
    eprintln!("before the feed: bmp (live bytes, blocks) {:?}, bgp {:?}", before.0, before.1);

    let (mut birds, rate_stalled) = seed_feed(&mut vm, &dir, "stalled", per_peer);
    let mut seen = PmbmpdLog::new(&log, per_peer);
    // pmbmpd writes a JSON line per prefix and falls behind: give it time by the size.
    let limit = Duration::from_secs(120 + (total / 2000) as u64);
    let everything = wait(limit, || {
        seen.read();
        seen.prefixes.iter().all(|set| set.len() >= per_peer)
    });
    let counts: Vec<usize> = seen.prefixes.iter().map(BTreeSet::len).collect();
    assert!(everything, "pmbmpd saw {counts:?} of {per_peer} prefixes per peer");
    for (k, set) in seen.prefixes.iter().enumerate() {
        assert!(
            set.contains(&seed_prefix(k, 0, per_peer))
                && set.contains(&seed_prefix(k, per_peer - 1, per_peer))
        );
    }
    let dropped =
        wait(Duration::from_secs(30), || collector(&mut vm, STALLED_PORT)["drops"].as_u64() > Some(0));
    assert!(dropped, "{}", vm.command("show bmp").unwrap_or_default());
    eprintln!("the stalled collector: {}", collector(&mut vm, STALLED_PORT));
    let live = collector(&mut vm, LIVE_PORT);
    eprintln!("the live collector: {live}");
    if per_peer <= 25_000 {
        // At the seed's full size pmbmpd falls further behind than BMP's channel holds: then
        // it is dropped and re-synchronised by design, and still gets every prefix (above).
        assert_eq!(live["drops"], 0, "the live collector is not touched: {live}");
    }
    let protocols = vm.command_json("show protocols json").unwrap_or(Value::Null);
    for row in protocols["protocols"].as_array().cloned().unwrap_or_default() {
        assert_eq!(row["state"], "Established", "BGP stayed established: {row}");
        assert_eq!(row["sessions"], 1, "one session all along, never dropped: {row}");
        assert_eq!(row["received"], per_peer as u64, "{row}");
    }
    // Each peer's Statistics Report with its whole Adj-RIB-In (asserted with the timestamps,
    // after the baseline).
    let stats_seen = wait(Duration::from_secs(30), || {
        seen.read();
        seen.full_stats.iter().all(|&full| full)
    });

    birds.iter_mut().for_each(Daemon::stop);
    let after = at_rest(&mut vm, Duration::from_secs(120));
    let now = (domain(&mut vm, "bmp"), domain(&mut vm, "bgp"));
    eprintln!(
        "after the peers left: bmp (live bytes, blocks) {:?} (before {:?}), bgp {:?} (before {:?})",
        now.0, before.0, now.1, before.1
    );
    eprintln!("{}", vm.command("show bmp").unwrap_or_default());
    assert_eq!(after, Some(before), "bmp and bgp back at their pre-feed live bytes and blocks exactly");
    if let Ok(keep) = std::env::var("BULKHEAD_BMP_KEEP_LOG") {
        let _ = std::fs::copy(&log, keep);
    }
    seen.read();
    seen.check_timestamps();
    eprintln!("pmbmpd's first Statistics Reports: {:#?}", seen.stats_sample);
    assert!(stats_seen, "a Statistics Report with each peer's Adj-RIB-In ({per_peer})");

    // The same feed with a collector that reads and discards (BMP's own cost, without pmbmpd's:
    // it takes much of the host's CPU writing its log), then with the stalled collector
    // alone, then with no collector at all: BGP's ingest rates.
    pmbmpd.stop();
    let mut reader = Daemon::spawn(
        &vm.nic(0).ns,
        &["python3", "-c", DISCARD, "192.0.2.2", &LIVE_PORT.to_string()],
        "reader",
    );
    let up = wait(Duration::from_secs(30), || collector(&mut vm, LIVE_PORT)["state"] == "up");
    assert!(up, "{}", vm.command("show bmp").unwrap_or_default());
    let (mut birds, rate_reader) = seed_feed(&mut vm, &dir, "reader", per_peer);
    birds.iter_mut().for_each(Daemon::stop);
    reader.kill();
    let (mut birds, rate_stalled_only) = seed_feed(&mut vm, &dir, "stalled-only", per_peer);
    birds.iter_mut().for_each(Daemon::stop);
    stalled.kill();
    let gone = wait(Duration::from_secs(30), || {
        ["up", "dumping"].iter().all(|s| {
            collector(&mut vm, LIVE_PORT)["state"] != *s && collector(&mut vm, STALLED_PORT)["state"] != *s
        })
    });
    assert!(gone, "{}", vm.command("show bmp").unwrap_or_default());
    let (mut birds, rate_alone) = seed_feed(&mut vm, &dir, "alone", per_peer);
    birds.iter_mut().for_each(Daemon::stop);
    eprintln!(
        "BGP ingest of {SEED_PEERS} x {per_peer} prefixes ({total} in all), prefixes/s: \
         {rate_stalled:.0} with pmbmpd and the stalled collector, {rate_reader:.0} with a reader \
         that discards and the stalled collector, {rate_stalled_only:.0} with the stalled \
         collector only, {rate_alone:.0} with no collector"
    );
}

/// Waits until both collectors are up and idle (dump done, queue drained) with the same
/// `(bmp, bgp)` figures twice in a row a second apart; returns them.
fn at_rest(vm: &mut Vm, limit: Duration) -> Option<((u64, u64), (u64, u64))> {
    let mut last = None;
    let mut found = None;
    wait(limit, || {
        let idle = [LIVE_PORT, STALLED_PORT].iter().all(|&port| {
            let row = collector(vm, port);
            row["state"] == "up" && row["queued_bytes"] == 0
        });
        if !idle {
            last = None;
            return false;
        }
        let now = (domain(vm, "bmp"), domain(vm, "bgp"));
        let steady = last == Some(now);
        last = Some(now);
        if steady {
            found = Some(now);
            return true;
        }
        std::thread::sleep(Duration::from_millis(800));
        false
    });
    found
}

/// pmbmpd's message log, read as it grows (each line parsed once: at the seed's full size
/// the log holds a million lines).
struct PmbmpdLog {
    path: String,
    offset: usize,
    per_peer: usize,
    /// Unique prefixes of each seed peer in Route Monitoring (a collector may see one twice).
    prefixes: Vec<BTreeSet<String>>,
    /// Whether a Statistics Report of each peer counted its whole Adj-RIB-In (type 7).
    full_stats: Vec<bool>,
    stats_sample: Vec<String>,
    /// Per-peer header timestamps that are not 0: how many, the earliest and the latest.
    stamps: (usize, u64, u64),
}

impl PmbmpdLog {
    fn new(path: &str, per_peer: usize) -> PmbmpdLog {
        PmbmpdLog {
            path: path.to_string(),
            offset: 0,
            per_peer,
            prefixes: vec![BTreeSet::new(); SEED_PEERS],
            full_stats: vec![false; SEED_PEERS],
            stats_sample: Vec::new(),
            stamps: (0, u64::MAX, 0),
        }
    }

    /// Takes in the whole lines written since the last read.
    fn read(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let mut new = Vec::new();
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset as u64)).is_err() || file.read_to_end(&mut new).is_err() {
            return;
        }
        let Some(end) = new.iter().rposition(|&b| b == b'\n') else { return };
        let text = String::from_utf8_lossy(&new[..end + 1]).into_owned();
        self.offset += end + 1;
        for l in text.lines().filter_map(|l| bulkhead_testbed::serde_json::from_str::<Value>(l).ok()) {
            let Some(k) =
                l["peer_ip"].as_str().and_then(|ip| (0..SEED_PEERS).position(|k| seed_peer(k) == ip))
            else {
                continue;
            };
            if let Some(t) = timestamp_secs(&l["timestamp"]).filter(|&t| t != 0) {
                self.stamps = (self.stamps.0 + 1, self.stamps.1.min(t), self.stamps.2.max(t));
            }
            if let Some(prefix) = l["ip_prefix"].as_str() {
                self.prefixes[k].insert(prefix.to_string());
            }
            if l["bmp_msg_type"] == "stats" {
                if self.stats_sample.len() < 8 {
                    self.stats_sample.push(l.to_string());
                }
                if l["counter_type"] == 7 && l["counter_value"] == self.per_peer as u64 {
                    self.full_stats[k] = true;
                }
            }
        }
    }

    /// The per-peer header timestamps (Peer Up, Peer Down, incremental Route Monitoring,
    /// Statistics Reports) are within a day of this host's clock; a dump's are 0 ("not
    /// available") and pmbmpd writes no date for them.
    fn check_timestamps(&self) {
        let host =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (count, first, last) = self.stamps;
        assert!(count > 0, "no per-peer timestamp in pmbmpd's log");
        for t in [first, last] {
            assert!(t.abs_diff(host) < 86_400, "timestamp {t} is not within a day of the host's {host}");
        }
        eprintln!("pmbmpd: {count} per-peer timestamps from {first} to {last}, the host's clock {host}");
    }
}

/// A pmbmpd timestamp (seconds since the epoch, as a number or a string with a fraction, or
/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` in UTC) in whole seconds.
fn timestamp_secs(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    if let Ok(f) = s.parse::<f64>() {
        return Some(f as u64);
    }
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split([':', '.', '+', 'Z']).map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
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
