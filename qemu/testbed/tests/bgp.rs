//! BGP in QEMU against real speakers from Debian, each in the namespace of one NIC: BIRD 2
//! (`bird`, its own configuration and control socket under a temp dir), GoBGP (`gobgpd`,
//! `gobgp`), FRR's `bgpd` run standalone, ExaBGP, and a scripted peer
//! (`qemu/peers/bgp/scripted_peer.py`, raw BGP over TCP). Sessions come up, routes are received,
//! installed and forwarded along, advertised on, refreshed, withdrawn and no longer forwarded;
//! a peer's graceful restart keeps its routes; a malformed UPDATE gets NOTIFICATION 3/1; each
//! prefix limit action does what it says; a stranger is refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, repo_root, Netns, RunOutput, TempFile, Vm, VmOptions};

/// A daemon in a namespace, killed on drop.
struct Daemon {
    child: Child,
    what: String,
}

impl Daemon {
    fn spawn(ns: &Netns, argv: &[&str], what: &str) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Daemon { child, what: what.to_string() }
    }

    /// SIGKILL: the kernel closes its connections, no NOTIFICATION is sent.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("stopped {}", self.what);
        }
    }
}

/// A directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("bulkhead-bgp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(ns: &Netns, argv: &[&str]) -> RunOutput {
    ns.run_limited(argv.iter().copied(), Duration::from_secs(30)).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn ok(ns: &Netns, argv: &[&str]) -> String {
    let out = run(ns, argv);
    assert!(out.success(), "{argv:?} in {}: {out:?}", ns.name());
    out.stdout
}

fn boot(tag: &str, nics: usize, bgp: &str) -> (Vm, TempFile) {
    let text = default_interfaces_toml(nics) + bgp;
    let config = TempFile::new(&format!("bgp-{tag}"), &text).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(nics).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    for nic in vm.topology().nics() {
        let gateway = nic.guest.expect("configured").addr.to_string();
        ok(&nic.ns, &["ip", "link", "set", "lo", "up"]);
        ok(&nic.ns, &["ip", "route", "replace", "default", "via", &gateway]);
    }
    (vm, config)
}

fn json(vm: &mut Vm, command: &str) -> Value {
    vm.command_json(command).unwrap_or_else(|e| panic!("{command}: {e}"))
}

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

fn protocol(vm: &mut Vm, address: &str) -> Value {
    let all = json(vm, "show protocols json");
    all["protocols"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["address"] == address))
        .cloned()
        .unwrap_or_else(|| panic!("no {address} in {all}"))
}

fn established(vm: &mut Vm, address: &str, limit: Duration) {
    let up = wait(limit, || protocol(vm, address)["state"] == "Established");
    assert!(up, "{address} not established: {}", vm.command("show protocols").unwrap_or_default());
}

/// The FIB's route to `prefix` from source bgp, as `(via)`.
fn fib_via(vm: &mut Vm, prefix: &str) -> Option<String> {
    let table = json(vm, "show route json");
    table["routes"]
        .as_array()?
        .iter()
        .find(|r| r["prefix"] == prefix && r["source"] == "bgp")
        .map(|r| r["via"].as_str().unwrap_or("").to_string())
}

fn ping(ns: &Netns, to: &str) -> bool {
    run(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", to]).stdout.contains(" 0% packet loss")
}

fn bird_config(router_id: &str, asn: u32, neighbor: &str, neighbor_as: u32, statics: &[&str]) -> String {
    let routes: String = statics.iter().map(|p| format!("  route {p} blackhole;\n")).collect();
    format!(
        "router id {router_id};\nprotocol device {{}}\nprotocol static st {{\n  ipv4;\n{routes}}}\n\
         protocol bgp up {{\n  local {router_id} as {asn};\n  neighbor {neighbor} as {neighbor_as};\n  \
         graceful restart on;\n  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n  \
         ipv4 {{ import all; export all; }};\n}}\n"
    )
}

fn birdc(ns: &Netns, socket: &str, command: &str) -> String {
    let mut argv = vec!["birdc", "-s", socket];
    argv.extend(command.split(' '));
    run(ns, &argv).stdout
}

const ROUTER_BGP: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
connect_retry = "2s"
networks = ["10.99.0.0/16"]

[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "all"
export = "all"

[[bgp.neighbor]]
address = "198.51.100.2"
asn = 65002
import = "all"
export = "all"
"#;

/// BIRD behind nic0 and GoBGP behind nic1: both sessions up; BIRD's route installed and
/// forwarded along, advertised on to GoBGP with our AS in front, our own network at both;
/// route refresh both ways; BIRD withdraws it and it is no longer forwarded; BIRD killed and
/// started again (graceful restart): its route stays installed meanwhile, and its stale
/// routes are swept after its End-of-RIB.
#[test]
fn bird_and_gobgp_exchange_install_forward_withdraw_restart() {
    if !can_run("bird_and_gobgp_exchange_install_forward_withdraw_restart") {
        return;
    }
    let dir = TempDir::new("bird-gobgp");
    let (mut vm, _config) = boot("bird-gobgp", 2, ROUTER_BGP);
    let (ns0, ns1) = (&vm.nic(0).ns, &vm.nic(1).ns);
    ok(ns0, &["ip", "addr", "add", "10.50.0.1/32", "dev", "lo"]);
    let bird_conf =
        dir.file("bird.conf", &bird_config("192.0.2.2", 65001, "192.0.2.1", 65000, &["10.50.0.0/16"]));
    let bird_sock = dir.path("bird.ctl");
    let bird_pid = dir.path("bird.pid");
    let bird_argv =
        ["bird", "-f", "-c", bird_conf.as_str(), "-s", bird_sock.as_str(), "-P", bird_pid.as_str()];
    let mut bird = Daemon::spawn(ns0, &bird_argv, "bird");
    let gobgp_conf = dir.file(
        "gobgpd.toml",
        "[global.config]\n  as = 65002\n  router-id = \"198.51.100.2\"\n\n[[neighbors]]\n  [neighbors.config]\n    \
         neighbor-address = \"198.51.100.1\"\n    peer-as = 65000\n  [[neighbors.afi-safis]]\n    \
         [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n",
    );
    let _gobgp =
        Daemon::spawn(ns1, &["gobgpd", "-f", &gobgp_conf, "-t", "toml", "--log-level", "warn"], "gobgpd");

    established(&mut vm, "192.0.2.2", Duration::from_secs(30));
    established(&mut vm, "198.51.100.2", Duration::from_secs(30));
    let ns1 = &vm.nic(1).ns;
    assert!(
        wait(Duration::from_secs(10), || run(
            ns1,
            &["gobgp", "global", "rib", "add", "-a", "ipv4", "10.60.0.0/16"]
        )
        .success()),
        "gobgp rib add"
    );

    // Received and installed, then forwarded along: nic1's side reaches BIRD's 10.50.0.1.
    let installed = wait(Duration::from_secs(15), || fib_via(&mut vm, "10.50.0.0/16").is_some());
    assert!(installed, "{}", vm.command("show route").unwrap_or_default());
    assert_eq!(fib_via(&mut vm, "10.50.0.0/16").as_deref(), Some("192.0.2.2"));
    assert!(
        wait(Duration::from_secs(15), || fib_via(&mut vm, "10.60.0.0/16").as_deref() == Some("198.51.100.2"))
    );
    assert!(ping(&vm.nic(1).ns, "10.50.0.1"), "not forwarded along the BGP route");
    let best = json(&mut vm, "show route 10.50.0.0/16 json");
    assert_eq!(best["best"]["from"], "192.0.2.2", "{best}");
    assert_eq!(best["best"]["as_path"], "65001", "{best}");
    let bird_row = protocol(&mut vm, "192.0.2.2");
    assert!(bird_row["received"].as_u64() >= Some(1), "{bird_row}");

    // Advertised: GoBGP learns BIRD's route through us, BIRD learns GoBGP's and our network.
    let (ns0, ns1) = (&vm.nic(0).ns, &vm.nic(1).ns);
    let gobgp_has = wait(Duration::from_secs(15), || {
        let rib = run(ns1, &["gobgp", "global", "rib", "-a", "ipv4"]).stdout;
        rib.contains("10.50.0.0/16") && rib.contains("65000 65001") && rib.contains("10.99.0.0/16")
    });
    assert!(gobgp_has, "{}", run(ns1, &["gobgp", "global", "rib", "-a", "ipv4"]).stdout);
    let bird_has = wait(Duration::from_secs(15), || {
        let rib = birdc(ns0, &bird_sock, "show route");
        rib.contains("10.60.0.0/16") && rib.contains("10.99.0.0/16")
    });
    assert!(bird_has, "{}", birdc(ns0, &bird_sock, "show route all"));

    // Route refresh, both ways: the session stays, the routes stay.
    let refreshed = birdc(ns0, &bird_sock, "reload in up");
    assert!(!refreshed.contains("rror"), "{refreshed}");
    let answer = vm.command("bgp refresh 192.0.2.2").unwrap_or_default();
    assert!(answer.contains("done"), "{answer}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(protocol(&mut vm, "192.0.2.2")["state"], "Established");
    assert!(birdc(&vm.nic(0).ns, &bird_sock, "show route").contains("10.99.0.0/16"));
    assert!(fib_via(&mut vm, "10.50.0.0/16").is_some());

    // Withdrawn: gone from the FIB, no longer forwarded, gone at GoBGP.
    birdc(&vm.nic(0).ns, &bird_sock, "disable st");
    assert!(wait(Duration::from_secs(15), || fib_via(&mut vm, "10.50.0.0/16").is_none()));
    assert!(!ping(&vm.nic(1).ns, "10.50.0.1"), "still forwarded after the withdrawal");
    let ns1 = &vm.nic(1).ns;
    assert!(wait(Duration::from_secs(15), || !run(ns1, &["gobgp", "global", "rib", "-a", "ipv4"])
        .stdout
        .contains("10.50.0.0/16")));

    // Graceful restart of BIRD: killed (no NOTIFICATION), its route stays while it is away.
    birdc(&vm.nic(0).ns, &bird_sock, "enable st");
    assert!(wait(Duration::from_secs(15), || fib_via(&mut vm, "10.50.0.0/16").is_some()));
    bird.kill();
    let down = wait(Duration::from_secs(15), || protocol(&mut vm, "192.0.2.2")["state"] != "Established");
    assert!(down, "the session did not notice BIRD was gone");
    let row = protocol(&mut vm, "192.0.2.2");
    assert!(row["stale"].as_u64() >= Some(1), "routes kept stale: {row}");
    assert!(fib_via(&mut vm, "10.50.0.0/16").is_some(), "a restarting peer's route stays installed");
    let _bird = Daemon::spawn(&vm.nic(0).ns, &bird_argv, "bird again");
    established(&mut vm, "192.0.2.2", Duration::from_secs(30));
    let swept = wait(Duration::from_secs(15), || protocol(&mut vm, "192.0.2.2")["stale"] == 0);
    assert!(swept, "stale routes not swept after End-of-RIB: {}", protocol(&mut vm, "192.0.2.2"));
    assert!(fib_via(&mut vm, "10.50.0.0/16").is_some());
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
}

fn scripted_peer() -> PathBuf {
    repo_root().join("qemu/peers/bgp/scripted_peer.py")
}

fn script(ns: &Netns, args: &[&str]) -> String {
    let peer = scripted_peer();
    let mut argv = vec!["python3", peer.to_str().unwrap_or("scripted_peer.py")];
    argv.extend_from_slice(args);
    let out = ns.run_limited(argv.iter().copied(), Duration::from_secs(40)).unwrap_or_else(|e| panic!("{e}"));
    out.stdout.trim().to_string()
}

/// A neighbor per limit action (and one for the malformed UPDATE), each behind nic0 at its own
/// address, the scripted peer connecting from it.
fn limits_config() -> String {
    let mut text = String::from("[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\nconnect_retry = \"30s\"\n");
    for (host, action) in [(2, "restart"), (3, "disable"), (4, "warn"), (5, "block")] {
        text += &format!(
            "\n[[bgp.neighbor]]\naddress = \"192.0.2.{host}\"\nasn = 65001\nimport = \"all\"\nexport = \"all\"\n\
             passive = true\nprefix_limit = 100\nprefix_limit_action = \"{action}\"\n"
        );
    }
    text
}

/// The scripted peer: a malformed UPDATE gets NOTIFICATION 3/1; past a prefix limit, Restart and
/// Disable end the session with Cease 1 (a disabled neighbor is then refused), Warn keeps every
/// route, Block keeps the session and drops the excess; a stranger is reset and counted.
#[test]
fn scripted_peer_malformed_update_prefix_limits_and_strangers() {
    if !can_run("scripted_peer_malformed_update_prefix_limits_and_strangers") {
        return;
    }
    let (mut vm, _config) = boot("scripted", 1, &limits_config());
    let ns = &vm.nic(0).ns;
    let tap = ns.name().to_string();
    for host in 3..=6 {
        ok(ns, &["ip", "addr", "add", &format!("192.0.2.{host}/24"), "dev", &tap]);
    }
    assert_eq!(script(ns, &["192.0.2.2", "65001", "192.0.2.1", "malformed"]), "notification 3 1");
    let row = protocol(&mut vm, "192.0.2.2");
    assert!(row["last_error"].as_str().unwrap_or("").contains("3/1"), "{row}");

    let ns = &vm.nic(0).ns;
    assert_eq!(script(ns, &["192.0.2.2", "65001", "192.0.2.1", "flood", "150"]), "notification 6 1");
    assert_eq!(script(ns, &["192.0.2.3", "65001", "192.0.2.1", "flood", "150"]), "notification 6 1");
    let row = protocol(&mut vm, "192.0.2.3");
    assert_eq!(row["disabled"], true, "{row}");
    let ns = &vm.nic(0).ns;
    assert!(
        script(ns, &["192.0.2.3", "65001", "192.0.2.1", "hold"]).starts_with("failed"),
        "disabled: refused"
    );
    // Warn and Block keep their sessions; run them side by side (each holds for 15 s).
    let ns_name = ns.name().to_string();
    let spawn = |host: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns_name, "python3"])
            .arg(scripted_peer())
            .args([host, "65001", "192.0.2.1", "flood", "150"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("scripted peer")
    };
    let (warn, block) = (spawn("192.0.2.4"), spawn("192.0.2.5"));
    let counted = wait(Duration::from_secs(12), || {
        protocol(&mut vm, "192.0.2.4")["received"] == 150 && protocol(&mut vm, "192.0.2.5")["received"] == 100
    });
    assert!(counted, "{}", vm.command("show protocols").unwrap_or_default());
    for child in [warn, block] {
        let out = child.wait_with_output().expect("scripted peer");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no notification");
    }
    // 192.0.2.6 is no neighbor.
    let ns = &vm.nic(0).ns;
    assert!(script(ns, &["192.0.2.6", "65001", "192.0.2.1", "hold"]).starts_with("failed"));
    let all = json(&mut vm, "show protocols json");
    assert!(all["refused_connections"].as_u64() >= Some(2), "{all}");
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
}

#[allow(dead_code)]
fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
