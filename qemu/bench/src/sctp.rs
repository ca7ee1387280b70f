//! SCTP bench: messages per second (1-byte and 1000-byte one way, echo round trips) and the
//! bytes an association holds with a paused receiver.
//!
//! (a) On the host, over UDP encapsulation on loopback: the `bulkhead-sctp` core at both ends
//!     (two endpoints, two UDP sockets, one thread), against usrsctp at both ends
//!     (`qemu/peers/sctp/sctp-peer`, a server and a client process in a namespace of their
//!     own), in the same run. Target: at least usrsctp's rate on every figure, and fewer bytes
//!     per paused association than usrsctp holds.
//! (b) The appliance in QEMU (TCG) against the usrsctp peer over TAP, raw IP, beside (a).
//!
//! Bytes held: for the core, what the process's allocator handed out and still holds (both
//! ends); for usrsctp, the growth of both processes' RSS; for the appliance, the growth of its
//! `sctp` domain.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use bulkhead_base::rand_core::SeedableRng;
use bulkhead_base::rng::Csprng;
use bulkhead_base::time::Instant;
use bulkhead_sctp::endpoint::{AssocId, Config, Endpoint, Event, Received, SendError, Transport};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::{json, Value};
use bulkhead_testbed::{repo_root, TempFile, Vm, VmOptions};

use crate::figures::{print_table, Figure};

const LOOPBACK: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;
/// Messages per rate figure on the host, and in QEMU (slower under TCG).
const HOST_COUNTS: [usize; 3] = [300_000, 100_000, 20_000];
const QEMU_COUNTS: [usize; 3] = [50_000, 10_000, 2_000];
/// Packets one side sends before the other reads.
const PUMP_BURST: usize = 32;

pub fn run(json_path: Option<&Path>) -> Result<(), String> {
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces, TAP devices, usrsctp's raw sockets)".into());
    }
    let peer = build_peer()?;
    let mut figures = Vec::new();
    let mut errors = Vec::new();
    let core = core_figures();
    let usr = usrsctp_figures(&peer);
    let qemu = appliance_figures(&peer);
    let names = ["1-byte messages/s one way", "1000-byte messages/s one way", "echo round trips/s"];
    for (i, name) in names.iter().enumerate() {
        let (c, u) = (core.as_ref().ok().map(|r| r.rates[i]), usr.as_ref().ok().map(|r| r.rates[i]));
        if let Some(c) = c {
            figures.push(Figure::new(
                &format!("core {name}"),
                "(a) host, UDP on loopback".into(),
                c,
                "1/s",
                None,
            ));
        }
        if let Some(u) = u {
            figures.push(Figure::new(
                &format!("usrsctp {name}"),
                "(a) host, UDP on loopback".into(),
                u,
                "1/s",
                None,
            ));
        }
        if let (Some(c), Some(u)) = (c, u) {
            // Target: the core at least as fast as usrsctp, so usrsctp / core <= 1.
            figures.push(Figure::new(
                &format!("usrsctp / core, {name}"),
                "(a)".into(),
                u / c.max(1.0),
                "x",
                Some(1.0),
            ));
        }
        if let Ok(q) = &qemu {
            figures.push(Figure::new(
                &format!("appliance {name}"),
                "(b) QEMU tcg, raw IP over TAP".into(),
                q.rates[i],
                "1/s",
                None,
            ));
        }
    }
    let bytes_name = "bytes per paused association";
    if let Ok(c) = &core {
        figures.push(Figure::new(
            &format!("core {bytes_name}"),
            "(a) allocator, both ends".into(),
            c.paused_bytes,
            "B",
            None,
        ));
    }
    if let Ok(u) = &usr {
        figures.push(Figure::new(
            &format!("usrsctp {bytes_name}"),
            "(a) RSS growth, both ends".into(),
            u.paused_bytes,
            "B",
            None,
        ));
    }
    if let (Ok(c), Ok(u)) = (&core, &usr) {
        figures.push(Figure::new(
            &format!("core / usrsctp, {bytes_name}"),
            "(a)".into(),
            c.paused_bytes / u.paused_bytes.max(1.0),
            "x",
            Some(1.0),
        ));
    }
    if let Ok(q) = &qemu {
        figures.push(Figure::new(
            &format!("appliance {bytes_name}"),
            "(b) sctp domain growth".into(),
            q.paused_bytes,
            "B",
            None,
        ));
    }
    for (part, r) in
        [("(a) the core", core.err()), ("(a) usrsctp", usr.err()), ("(b) the appliance", qemu.err())]
    {
        if let Some(e) = r {
            errors.push(format!("{part}: {e}"));
        }
    }
    print_table(&figures);
    if let Some(path) = json_path {
        let doc = json!({ "figures": figures.iter().map(Figure::to_json).collect::<Vec<Value>>(), "errors": errors });
        std::fs::write(path, doc.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

struct Measured {
    /// 1-byte one way, 1000-byte one way, echo round trips: per second.
    rates: [f64; 3],
    paused_bytes: f64,
}

fn build_peer() -> Result<PathBuf, String> {
    let script = repo_root().join("qemu/peers/sctp/build.sh");
    let out = Command::new(&script).output().map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("building the usrsctp peer: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

// ---- (a) the core over UDP on loopback ----------------------------------------------------------

fn footprint(n: usize) -> usize {
    bulkhead_mem::block_footprint(n, 8)
}

/// One endpoint and its UDP socket.
struct Node {
    ep: Endpoint,
    sock: UdpSocket,
}

struct Pair {
    a: Node,
    b: Node,
    rng: Csprng,
    start: StdInstant,
    buf: Vec<u8>,
}

impl Pair {
    fn new() -> Result<Pair, String> {
        let mut rng = Csprng::seed_from_u64(1);
        let sock = || -> Result<UdpSocket, String> {
            let s = UdpSocket::bind((LOOPBACK, 0)).map_err(|e| format!("udp bind: {e}"))?;
            s.set_nonblocking(true).map_err(|e| format!("udp: {e}"))?;
            Ok(s)
        };
        let mut ca = Config::new(5000, footprint);
        ca.listen = false;
        let cb = Config::new(7, footprint);
        let a = Node { ep: Endpoint::new(ca, &[LOOPBACK], Instant::ZERO, &mut rng), sock: sock()? };
        let b = Node { ep: Endpoint::new(cb, &[LOOPBACK], Instant::ZERO, &mut rng), sock: sock()? };
        Ok(Pair { a, b, rng, start: StdInstant::now(), buf: vec![0; 2048] })
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Moves up to [`PUMP_BURST`] packets from each side, then reads both sockets; runs due
    /// timers. (A larger burst overflows a loopback UDP socket's receive buffer.)
    fn pump(&mut self) {
        let now = self.now();
        for node in [&mut self.a, &mut self.b] {
            if node.ep.poll_at().is_some_and(|t| t <= now) {
                node.ep.handle_timeout(now, &mut self.rng);
            }
            for _ in 0..PUMP_BURST {
                let Some(t) = node.ep.poll_transmit(now, &mut self.buf) else { break };
                if let Transport::Udp { peer_port } = t.transport {
                    let _ = node.sock.send_to(&self.buf[..t.len], (LOOPBACK, peer_port));
                }
            }
        }
        for node in [&mut self.a, &mut self.b] {
            loop {
                match node.sock.recv_from(&mut self.buf) {
                    Ok((n, SocketAddr::V4(from))) => {
                        let rx = Received {
                            src: *from.ip(),
                            dst: LOOPBACK,
                            transport: Transport::Udp { peer_port: from.port() },
                            bytes: &self.buf[..n],
                        };
                        node.ep.handle(now, &mut self.rng, rx);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// Associates a with b; their ids on each side.
    fn connect(&mut self) -> Result<(AssocId, AssocId), String> {
        let b_port = self.b.sock.local_addr().map_err(|e| e.to_string())?.port();
        let now = self.now();
        let id = self
            .a
            .ep
            .connect(now, &mut self.rng, &[LOOPBACK], 7, Transport::Udp { peer_port: b_port })
            .map_err(|e| format!("connect: {e:?}"))?;
        let (mut up_a, mut up_b) = (false, None);
        let end = StdInstant::now() + Duration::from_secs(5);
        while !(up_a && up_b.is_some()) {
            if StdInstant::now() > end {
                return Err("the core's handshake over loopback did not complete".into());
            }
            self.pump();
            while let Some(e) = self.a.ep.poll_event() {
                up_a |= e == Event::AssociationUp(id);
            }
            while let Some(e) = self.b.ep.poll_event() {
                if let Event::AssociationUp(bid) = e {
                    up_b = Some(bid);
                }
            }
        }
        Ok((id, up_b.unwrap_or(AssocId(0))))
    }
}

fn core_one_way(count: usize, size: usize) -> Result<f64, String> {
    let mut p = Pair::new()?;
    let (id, _) = p.connect()?;
    let data = vec![0x42u8; size];
    let (mut sent, mut got) = (0usize, 0usize);
    let t0 = StdInstant::now();
    while got < count {
        while sent < count {
            match p.a.ep.send(id, 0, 0, false, &data) {
                Ok(()) => sent += 1,
                Err(SendError::Full) => break,
                Err(e) => return Err(format!("send: {e:?}")),
            }
        }
        p.pump();
        while let Some(e) = p.b.ep.poll_event() {
            if matches!(e, Event::Message { .. }) {
                got += 1;
            }
        }
        while p.a.ep.poll_event().is_some() {}
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(format!("one way, {size} bytes: {got} of {count} in 60 s"));
        }
    }
    Ok(count as f64 / t0.elapsed().as_secs_f64())
}

fn core_echo(count: usize) -> Result<f64, String> {
    let mut p = Pair::new()?;
    let (id, _) = p.connect()?;
    let t0 = StdInstant::now();
    for i in 0..count {
        p.a.ep.send(id, 0, i as u32, false, &[1]).map_err(|e| format!("send: {e:?}"))?;
        let mut back = false;
        while !back {
            p.pump();
            while let Some(e) = p.b.ep.poll_event() {
                if let Event::Message { assoc, stream, ppid, unordered, data, .. } = e {
                    p.b.ep.send(assoc, stream, ppid, unordered, &data).map_err(|e| format!("echo: {e:?}"))?;
                }
            }
            while let Some(e) = p.a.ep.poll_event() {
                back |= matches!(e, Event::Message { .. });
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!("echo: {i} of {count} round trips in 60 s"));
            }
        }
    }
    Ok(count as f64 / t0.elapsed().as_secs_f64())
}

/// Bytes the process holds for one association whose receiver does not read, once the
/// sender is refused for 200 ms in a row.
fn core_paused() -> Result<f64, String> {
    let before = crate::allocated_bytes();
    let mut p = Pair::new()?;
    let (id, bid) = p.connect()?;
    p.b.ep.set_paused(bid, true);
    let mut last_ok = StdInstant::now();
    while last_ok.elapsed() < Duration::from_millis(200) {
        while p.a.ep.send(id, 0, 0, false, &[1]).is_ok() {
            last_ok = StdInstant::now();
        }
        p.pump();
        while p.a.ep.poll_event().is_some() {}
    }
    let held = crate::allocated_bytes().saturating_sub(before);
    drop(p);
    Ok(held as f64)
}

fn core_figures() -> Result<Measured, String> {
    let [n1, n1000, necho] = HOST_COUNTS;
    Ok(Measured {
        rates: [core_one_way(n1, 1)?, core_one_way(n1000, 1000)?, core_echo(necho)?],
        paused_bytes: core_paused()?,
    })
}

// ---- (a) usrsctp to usrsctp over UDP on loopback -----------------------------------------------

/// A namespace of our own with its loopback up (usrsctp's raw sockets see only its packets);
/// deleted on drop.
struct BenchNetns(String);

impl BenchNetns {
    fn create(name: &str) -> Result<BenchNetns, String> {
        let _ = Command::new("ip").args(["netns", "delete", name]).stderr(Stdio::null()).status();
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        if !ok(Command::new("ip").args(["netns", "add", name])) {
            return Err(format!("ip netns add {name} failed"));
        }
        let ns = BenchNetns(name.to_string());
        if !ok(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"])) {
            return Err(format!("{name}: lo up failed"));
        }
        Ok(ns)
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

/// A process with its output lines on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    args: String,
}

impl Proc {
    fn spawn(ns: &str, peer: &Path, args: &[&str]) -> Result<Proc, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(peer)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("sctp-peer: {e}"))?;
        let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, lines, args: args.join(" ") })
    }

    fn line(&self, limit: Duration) -> Result<String, String> {
        self.lines.recv_timeout(limit).map_err(|_| format!("sctp-peer {} said nothing", self.args))
    }

    fn rss(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb * 1024.0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// "ok N ... in S s": N / S.
fn rate_of(line: &str) -> Result<f64, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let n: f64 = words.get(1).and_then(|w| w.parse().ok()).ok_or_else(|| format!("sctp-peer: {line}"))?;
    let s: f64 =
        words.iter().rev().nth(1).and_then(|w| w.parse().ok()).ok_or_else(|| format!("sctp-peer: {line}"))?;
    Ok(n / s.max(1e-9))
}

fn usrsctp_figures(peer: &Path) -> Result<Measured, String> {
    let ns = BenchNetns::create("bhsctpbench")?;
    let name = ns.0.clone();
    let (server_udp, client_udp) = ("9900:9901", "9901:9900");
    // Each client gets a server of its own, started afresh, and a client that says nothing in
    // 120 s is run once more (with a fresh server too), and said so: a 1000-byte blast that
    // followed the 1-byte one on the same server hung in a few runs (twice in a row once),
    // while the same blast run by hand finished in 3 s.
    let measure = |kind: &str, port: &str, args: &[&str]| -> Result<f64, String> {
        let run = || -> Result<f64, String> {
            let server = Proc::spawn(&name, peer, &["-u", server_udp, "serve", port, kind])?;
            server.line(Duration::from_secs(10))?;
            let mut argv = vec!["-u", client_udp];
            argv.extend_from_slice(args);
            let client = Proc::spawn(&name, peer, &argv)?;
            rate_of(&client.line(Duration::from_secs(120))?)
        };
        run().or_else(|e| {
            eprintln!("usrsctp: {e}; running it once more");
            run()
        })
    };
    let [n1, n1000, necho] = HOST_COUNTS.map(|n| n.to_string());
    let rates = [
        measure("discard", "7000", &["blast", "127.0.0.1", "7000", &n1, "1"])?,
        measure("discard", "7003", &["blast", "127.0.0.1", "7003", &n1000, "1000"])?,
        measure("echo", "7001", &["rtt", "127.0.0.1", "7001", &necho, "1"])?,
    ];
    let server = Proc::spawn(&name, peer, &["-u", server_udp, "serve", "7002", "paused"])?;
    server.line(Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(200));
    let idle = server.rss();
    // usrsctp counts payload bytes against its send buffer: 1-byte messages take long to fill
    // it (and each send gets slower), so the flood stops after 20 s if it has not blocked by
    // then; the figure is then a lower bound, and says so.
    let mut flood = Proc::spawn(
        &name,
        peer,
        &["-u", client_udp, "flood", "127.0.0.1", "7002", "1", "1", "500", "20000"],
    )?;
    let blocked = flood.line(Duration::from_secs(60))?;
    if !(blocked.starts_with("blocked") || blocked.starts_with("stopped")) {
        return Err(format!("usrsctp flood: {blocked}"));
    }
    let (receiver, sender) = (server.rss() - idle, flood.rss() - idle);
    let paused_bytes = receiver + sender;
    println!(
        "usrsctp paused association: flood says {blocked:?} (\"stopped\": still growing, a lower bound); \
         RSS growth {receiver:.0} B at the paused receiver, {sender:.0} B at the sender"
    );
    if let Some(mut stdin) = flood.child.stdin.take() {
        let _ = writeln!(stdin, "go");
    }
    drop(flood);
    drop(ns);
    Ok(Measured { rates, paused_bytes })
}

// ---- (b) the appliance in QEMU ------------------------------------------------------------------

fn appliance_figures(peer: &Path) -> Result<Measured, String> {
    let config = TempFile::new("bench-sctp", &default_interfaces_toml(1)).map_err(|e| e.to_string())?;
    let mut vm =
        Vm::boot(VmOptions::new().nics(1).config(&config.0).quiet()).map_err(|e| format!("boot: {e}"))?;
    let ns = vm.nic(0).ns.name().to_string();
    let [n1, n1000, necho] = QEMU_COUNTS.map(|n| n.to_string());
    let client = |args: &[&str]| -> Result<f64, String> {
        let p = Proc::spawn(&ns, peer, args)?;
        rate_of(&p.line(Duration::from_secs(300))?)
    };
    let rates = [
        client(&["blast", "192.0.2.1", "9", &n1, "1"])?,
        client(&["blast", "192.0.2.1", "9", &n1000, "1000"])?,
        client(&["rtt", "192.0.2.1", "7", &necho, "1"])?,
    ];
    let used = |vm: &mut Vm| -> Result<f64, String> {
        let json = vm.command_json("show memory json").map_err(|e| e.to_string())?;
        json["domains"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["domain"] == "sctp"))
            .and_then(|r| r["used"].as_f64())
            .ok_or_else(|| format!("no sctp row in {json}"))
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = used(&mut vm)?;
    vm.command("sctp pause 5001").map_err(|e| e.to_string())?;
    let mut flood = Proc::spawn(&ns, peer, &["flood", "192.0.2.1", "5001", "1", "1", "1500"])?;
    let blocked = flood.line(Duration::from_secs(120))?;
    if !blocked.starts_with("blocked") {
        return Err(format!("flood: {blocked}"));
    }
    let paused_bytes = used(&mut vm)? - before;
    if let Some(mut stdin) = flood.child.stdin.take() {
        let _ = writeln!(stdin, "go");
    }
    drop(flood);
    Ok(Measured { rates, paused_bytes })
}
