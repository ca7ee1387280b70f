//! BGP in QEMU against real speakers from Debian, each in the namespace of one NIC: BIRD 2
//! (`bird`, its own configuration and control socket under a temp dir), GoBGP (`gobgpd`,
//! `gobgp`), FRR's `bgpd` run standalone, ExaBGP, and a scripted peer
//! (`qemu/peers/bgp/scripted_peer.py`, raw BGP over TCP). Sessions come up, routes are received,
//! installed and forwarded along, advertised on, refreshed, withdrawn and no longer forwarded;
//! a peer's graceful restart keeps its routes; a malformed UPDATE gets NOTIFICATION 3/1; each
//! prefix limit action does what it says; a stranger is refused.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_testbed::daemon::{Daemon, TempDir};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, repo_root, Netns, RunOutput, TempFile, Vm, VmOptions};

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
    birdc_in(ns.name(), socket, command)
}

/// `birdc` in the namespace named `ns`.
fn birdc_in(ns: &str, socket: &str, command: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "birdc", "-s", socket])
        .args(command.split(' '))
        .output()
        .expect("birdc");
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let dir = TempDir::new("bgp-bird-gobgp");
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

const FRR_EXABGP_BGP: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
connect_retry = "2s"
networks = ["10.99.0.0/16"]

[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65003
import = "all"
export = "all"

[[bgp.neighbor]]
address = "198.51.100.2"
asn = 65004
import = "all"
export = "all"
"#;

fn vtysh(ns: &Netns, vty: &str, commands: &[&str]) -> String {
    let mut argv = vec!["vtysh", "--vty_socket", vty, "-d", "bgpd"];
    for c in commands {
        argv.push("-c");
        argv.push(c);
    }
    run(ns, &argv).stdout
}

/// FRR's bgpd (standalone, no zebra) behind nic0 and ExaBGP behind nic1: sessions up, FRR's
/// route installed and forwarded along, ExaBGP's installed, ours and each other's advertised
/// (FRR's table shows ExaBGP's route with our AS in front; ExaBGP logs ours); FRR's soft
/// refresh; FRR withdraws and the route is no longer forwarded.
#[test]
fn frr_and_exabgp_exchange_install_forward_withdraw() {
    if !can_run("frr_and_exabgp_exchange_install_forward_withdraw") {
        return;
    }
    let dir = TempDir::new("bgp-frr-exabgp");
    std::fs::set_permissions(dir.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let (mut vm, _config) = boot("frr-exabgp", 2, FRR_EXABGP_BGP);
    let (ns0, ns1) = (&vm.nic(0).ns, &vm.nic(1).ns);
    ok(ns0, &["ip", "addr", "add", "10.70.0.1/32", "dev", "lo"]);
    let frr_conf = dir.file(
        "bgpd.conf",
        "frr defaults traditional\nhostname frr\nrouter bgp 65003\n bgp router-id 192.0.2.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor 192.0.2.1 remote-as 65000\n \
         neighbor 192.0.2.1 timers connect 2\n address-family ipv4 unicast\n  network 10.70.0.0/16\n \
         exit-address-family\n",
    );
    let vty = dir.path("vty");
    std::fs::create_dir_all(&vty).expect("vty dir");
    let (pid, zsock) = (dir.path("bgpd.pid"), dir.path("zserv"));
    let frr_argv = [
        "/usr/lib/frr/bgpd",
        "-f",
        &frr_conf,
        "-i",
        &pid,
        "-z",
        &zsock,
        "--vty_socket",
        &vty,
        "-Z",
        "-S",
        "-n",
        "-P",
        "0",
    ];
    let _frr = Daemon::spawn(ns0, &frr_argv, "bgpd");
    let exa_log = dir.path("exabgp.log");
    let exa_conf = dir.file(
        "exabgp.conf",
        &format!(
            "process logger {{\n  run /bin/sh -c 'cat >> {exa_log}';\n  encoder text;\n}}\n\
             neighbor 198.51.100.1 {{\n  router-id 198.51.100.2;\n  local-address 198.51.100.2;\n  \
             local-as 65004;\n  peer-as 65000;\n  api {{\n    processes [ logger ];\n    receive {{ parsed; update; }}\n  }}\n  \
             static {{\n    route 10.80.0.0/16 next-hop 198.51.100.2;\n  }}\n}}\n"
        ),
    );
    let _exabgp = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns1.name(),
            "env",
            "exabgp.daemon.daemonize=false",
            "exabgp.daemon.user=root",
        ])
        .args(["exabgp.log.destination=stderr", "exabgp.api.cli=false", "exabgp", &exa_conf])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|child| Daemon::adopt(child, "exabgp"))
        .expect("exabgp");

    established(&mut vm, "192.0.2.2", Duration::from_secs(30));
    established(&mut vm, "198.51.100.2", Duration::from_secs(30));
    assert!(
        wait(Duration::from_secs(15), || fib_via(&mut vm, "10.70.0.0/16").as_deref() == Some("192.0.2.2"))
    );
    assert!(
        wait(Duration::from_secs(15), || fib_via(&mut vm, "10.80.0.0/16").as_deref() == Some("198.51.100.2"))
    );
    assert!(ping(&vm.nic(1).ns, "10.70.0.1"), "not forwarded along FRR's route");
    let ns0 = &vm.nic(0).ns;
    let frr_has = wait(Duration::from_secs(15), || {
        let table = vtysh(ns0, &vty, &["show bgp ipv4 unicast"]);
        table.contains("10.80.0.0/16") && table.contains("65000 65004") && table.contains("10.99.0.0/16")
    });
    assert!(frr_has, "{}", vtysh(ns0, &vty, &["show bgp ipv4 unicast"]));
    let exa_has = wait(Duration::from_secs(15), || {
        let log = std::fs::read_to_string(&exa_log).unwrap_or_default();
        log.contains("10.70.0.0/16") && log.contains("10.99.0.0/16")
    });
    assert!(exa_has, "{}", std::fs::read_to_string(&exa_log).unwrap_or_default());

    // FRR asks for our routes again (ROUTE-REFRESH): the session stays.
    vtysh(ns0, &vty, &["clear bgp ipv4 unicast 192.0.2.1 soft in"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(protocol(&mut vm, "192.0.2.2")["state"], "Established");
    // FRR withdraws its network.
    let ns0 = &vm.nic(0).ns;
    vtysh(
        ns0,
        &vty,
        &["configure terminal", "router bgp 65003", "address-family ipv4 unicast", "no network 10.70.0.0/16"],
    );
    assert!(wait(Duration::from_secs(15), || fib_via(&mut vm, "10.70.0.0/16").is_none()));
    assert!(!ping(&vm.nic(1).ns, "10.70.0.1"), "still forwarded after the withdrawal");
    let withdrawn_at_exa = wait(Duration::from_secs(15), || {
        std::fs::read_to_string(&exa_log).unwrap_or_default().contains("withdraw")
    });
    assert!(withdrawn_at_exa, "{}", std::fs::read_to_string(&exa_log).unwrap_or_default());
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
/// route, Block keeps the session and drops the excess; two neighbors that connect at the same
/// moment are both taken; a stranger is reset and counted.
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
    // They connect at the same moment: the one whose SYN finds the listener taken by the
    // other's is dropped (not reset) and sends it again (`listen_drops`).
    let (warn, block) = (spawn("192.0.2.4"), spawn("192.0.2.5"));
    // Each session lasts 15 s from its OPEN, so each is looked for on its own.
    let (mut warned, mut blocked) = (false, false);
    let counted = wait(Duration::from_secs(30), || {
        warned |= protocol(&mut vm, "192.0.2.4")["received"] == 150;
        blocked |= protocol(&mut vm, "192.0.2.5")["received"] == 100;
        warned && blocked
    });
    let said: Vec<String> = [warn, block]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("scripted peer");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    let shown =
        vm.command("show protocols").unwrap_or_default() + &vm.command("show local").unwrap_or_default();
    assert!(counted, "warn counted 150: {warned}, block kept 100: {blocked}; peers said {said:?}\n{shown}");
    assert_eq!(said, ["no notification", "no notification"], "{shown}");
    // Two neighbors connect at the same moment: the SYN that finds the listener taken by the
    // other is dropped, not reset, and its second try is taken.
    let ns = &vm.nic(0).ns;
    assert_eq!(script(ns, &["192.0.2.4,192.0.2.5", "65001", "192.0.2.1", "together"]), "connected 2");
    let local = json(&mut vm, "show local json");
    eprintln!("listen drops: {}", local["listen_drops"]);
    // 192.0.2.6 is no neighbor.
    let ns = &vm.nic(0).ns;
    assert!(script(ns, &["192.0.2.6", "65001", "192.0.2.1", "hold"]).starts_with("failed"));
    let all = json(&mut vm, "show protocols json");
    assert!(all["refused_connections"].as_u64() >= Some(2), "{all}");
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
}

/// One feed from three GoBGP speakers (AS 65011..65013, one behind each NIC) with overlapping
/// prefixes and different attributes (AS_PATH lengths, ORIGIN, MED; router IDs in the reverse
/// order of their addresses), sent both to Bulkhead and to a reference BIRD in a namespace of
/// its own (veth links to each feeder): for every prefix, Bulkhead's best path comes from the
/// same feeder as BIRD's.
#[test]
fn three_feeds_best_path_equals_birds() {
    if !can_run("three_feeds_best_path_equals_birds") {
        return;
    }
    let dir = TempDir::new("bgp-three");
    let mut bgp = String::from("[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\nconnect_retry = \"2s\"\n");
    let feeders = ["192.0.2.2", "198.51.100.2", "203.0.113.2"];
    for (k, addr) in feeders.iter().enumerate() {
        bgp += &format!("\n[[bgp.neighbor]]\naddress = \"{addr}\"\nasn = {}\nimport = \"all\"\n", 65011 + k);
    }
    let (mut vm, _config) = boot("three", 3, &bgp);
    let reference = Netns::create(&format!("bhref{}", std::process::id())).expect("the reference namespace");
    let mut bird_conf = String::from("router id 10.255.255.1;\nprotocol device {}\n");
    let mut daemons = Vec::new();
    for (k, addr) in feeders.iter().enumerate() {
        let ns = &vm.nic(k).ns;
        let (outer, inner) =
            (format!("bhf{k}{}", std::process::id()), format!("bhr{k}{}", std::process::id()));
        let status = Command::new("ip")
            .args(["link", "add", &outer, "netns", ns.name(), "type", "veth", "peer", "name", &inner])
            .args(["netns", reference.name()])
            .status()
            .expect("veth");
        assert!(status.success(), "veth {outer}");
        ok(ns, &["ip", "addr", "add", &format!("10.255.{k}.2/30"), "dev", &outer]);
        ok(ns, &["ip", "link", "set", &outer, "up"]);
        ok(&reference, &["ip", "addr", "add", &format!("10.255.{k}.1/30"), "dev", &inner]);
        ok(&reference, &["ip", "link", "set", &inner, "up"]);
        bird_conf += &format!(
            "protocol bgp f{k} {{\n  local 10.255.{k}.1 as 65000;\n  neighbor 10.255.{k}.2 as {};\n  \
             connect delay time 1;\n  ipv4 {{ import all; export none; }};\n}}\n",
            65011 + k
        );
        // Router IDs in the reverse order of the feeders' addresses.
        let conf = dir.file(
            &format!("gobgpd{k}.toml"),
            &format!(
                "[global.config]\n  as = {}\n  router-id = \"9.9.9.{}\"\n  port = 179\n\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = 65000\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"10.255.{k}.1\"\n    peer-as = 65000\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n",
                65011 + k,
                3 - k,
                vm.nic(k).guest.expect("configured").addr
            ),
        );
        daemons.push(Daemon::spawn(
            ns,
            &["gobgpd", "-f", &conf, "-t", "toml", "--log-level", "warn"],
            "gobgpd",
        ));
        let _ = addr;
    }
    let bird_conf = dir.file("bird.conf", &bird_conf);
    let (bird_sock, bird_pid) = (dir.path("bird.ctl"), dir.path("bird.pid"));
    let _bird = Command::new("ip")
        .args([
            "netns",
            "exec",
            reference.name(),
            "bird",
            "-f",
            "-c",
            &bird_conf,
            "-s",
            &bird_sock,
            "-P",
            &bird_pid,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|child| Daemon::adopt(child, "reference bird"))
        .expect("bird");

    // The feed: 48 prefixes, each from two or three feeders, attributes from a seeded sequence.
    let mut rng = Csprng::seed_from_u64(48);
    let mut next = move |n: u64| rng.next_u64() % n;
    let prefixes: Vec<String> = (0..48).map(|i| format!("10.{}.{}.0/24", 100 + i / 16, i % 16)).collect();
    let mut announced = 0;
    for k in 0..3 {
        for (i, prefix) in prefixes.iter().enumerate() {
            if (i + k) % 4 == 3 {
                continue; // not every feeder announces every prefix
            }
            let len = next(3);
            let path: Vec<String> = (0..len).map(|j| format!("{}", 64600 + j * 7 + next(5))).collect();
            let origin = ["igp", "egp", "incomplete"][next(3) as usize];
            let med = format!("{}", next(4) * 10);
            let mut argv =
                vec!["gobgp", "global", "rib", "add", "-a", "ipv4", prefix.as_str(), "origin", origin];
            let joined = path.join(",");
            if !path.is_empty() {
                argv.extend(["aspath", joined.as_str()]);
            }
            argv.extend(["med", med.as_str()]);
            let ns = &vm.nic(k).ns;
            let added = wait(Duration::from_secs(10), || run(ns, &argv).success());
            assert!(added, "{argv:?}");
            announced += 1;
        }
    }
    for addr in feeders {
        established(&mut vm, addr, Duration::from_secs(30));
    }
    let complete = wait(Duration::from_secs(30), || {
        let ours: u64 = feeders.iter().map(|a| protocol(&mut vm, a)["received"].as_u64().unwrap_or(0)).sum();
        let theirs = birdc_in(reference.name(), &bird_sock, "show route count");
        ours == announced && theirs.contains(&format!("{announced} of {announced} routes"))
    });
    assert!(
        complete,
        "{}\n{}",
        vm.command("show protocols").unwrap_or_default(),
        birdc_in(reference.name(), &bird_sock, "show route count")
    );
    let table = birdc_in(reference.name(), &bird_sock, "show route primary");
    let mut compared = 0;
    for prefix in &prefixes {
        let line = table
            .lines()
            .find(|l| l.starts_with(prefix.as_str()))
            .unwrap_or_else(|| panic!("{prefix}: {table}"));
        let bird_feeder =
            line.split('[').nth(1).and_then(|r| r.strip_prefix('f')).and_then(|r| r.chars().next());
        let ours = json(&mut vm, &format!("show route {prefix} json"));
        let from = ours["best"]["from"].as_str().unwrap_or_default().to_string();
        let our_feeder = feeders.iter().position(|a| *a == from).map(|k| char::from(b'0' + k as u8));
        assert_eq!(our_feeder, bird_feeder, "{prefix}: ours {ours}, BIRD's {line}");
        compared += 1;
    }
    assert_eq!(compared, prefixes.len());
}

/// An iBGP multihop neighbor behind a static route (GoBGP at 10.20.0.1, reached through
/// 198.51.100.2): the session comes up from our nic1 address, and its route, whose next hop is
/// on no connected subnet, is installed through the forwarder's resolution and forwarded along.
#[test]
fn ibgp_multihop_next_hop_resolved_through_the_fib() {
    if !can_run("ibgp_multihop_next_hop_resolved_through_the_fib") {
        return;
    }
    let dir = TempDir::new("bgp-ibgp");
    let bgp = "[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"198.51.100.2\"\n\n[bgp]\nasn = 65000\n\
               router_id = \"192.0.2.1\"\nconnect_retry = \"2s\"\n\n[[bgp.neighbor]]\naddress = \"10.20.0.1\"\n\
               asn = 65000\nlocal_address = \"198.51.100.1\"\nmultihop = 2\n";
    let (mut vm, _config) = boot("ibgp", 2, bgp);
    let ns1 = &vm.nic(1).ns;
    ok(ns1, &["ip", "addr", "add", "10.20.0.1/32", "dev", "lo"]);
    ok(ns1, &["ip", "addr", "add", "10.61.0.1/32", "dev", "lo"]);
    let conf = dir.file(
        "gobgpd.toml",
        "[global.config]\n  as = 65000\n  router-id = \"10.20.0.1\"\n\n[[neighbors]]\n  [neighbors.config]\n    \
         neighbor-address = \"198.51.100.1\"\n    peer-as = 65000\n  [neighbors.transport.config]\n    \
         local-address = \"10.20.0.1\"\n  [neighbors.ebgp-multihop.config]\n    enabled = true\n    \
         multihop-ttl = 2\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
         afi-safi-name = \"ipv4-unicast\"\n",
    );
    let _gobgp = Daemon::spawn(ns1, &["gobgpd", "-f", &conf, "-t", "toml", "--log-level", "warn"], "gobgpd");
    established(&mut vm, "10.20.0.1", Duration::from_secs(30));
    let ns1 = &vm.nic(1).ns;
    let add = ["gobgp", "global", "rib", "add", "-a", "ipv4", "10.61.0.0/16", "nexthop", "10.20.0.1"];
    assert!(wait(Duration::from_secs(10), || run(ns1, &add).success()), "gobgp rib add");
    let installed = wait(Duration::from_secs(15), || fib_via(&mut vm, "10.61.0.0/16").is_some());
    assert!(installed, "{}", vm.command("show route").unwrap_or_default());
    let best = json(&mut vm, "show route 10.61.0.0/16 json");
    assert_eq!(best["best"]["next_hop"], "10.20.0.1", "{best}");
    assert_eq!(best["best"]["local_pref"], 100, "iBGP carries LOCAL_PREF: {best}");
    assert!(ping(&vm.nic(0).ns, "10.61.0.1"), "not forwarded through the resolved next hop");
}

/// BIRD's configuration of `bird_config`, with GTSM (`ttl security on`) when `ttl_security`.
fn bird_gtsm_config(
    router_id: &str,
    asn: u32,
    neighbor: &str,
    statics: &[&str],
    ttl_security: bool,
) -> String {
    let text = bird_config(router_id, asn, neighbor, 65000, statics);
    if ttl_security {
        text.replace("  graceful restart on;\n", "  graceful restart on;\n  ttl security on;\n")
    } else {
        text
    }
}

const GTSM_BGP: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
connect_retry = "2s"

[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "all"
export = "all"
ttl_security = true

[[bgp.neighbor]]
address = "198.51.100.2"
asn = 65002
import = "all"
export = "all"
ttl_security = true
"#;

/// TTL security (RFC 5082) on both neighbors: BIRD behind nic0 has `ttl security on` too, so
/// the session comes up and its route is installed; BIRD behind nic1 has
/// it off: its listening socket answers with TTL 255 (BIRD's always does), so TCP may come up,
/// but its session's segments (the OPEN) go out with TTL 1 and are dropped; that session never
/// comes up, and the drops are counted for that peer and in `show local`.
#[test]
fn bird_ttl_security_establishes_only_where_both_sides_have_it() {
    if !can_run("bird_ttl_security_establishes_only_where_both_sides_have_it") {
        return;
    }
    let dir = TempDir::new("bgp-gtsm");
    let (mut vm, _config) = boot("gtsm", 2, GTSM_BGP);
    let mut birds = Vec::new();
    for (nic, (router_id, asn, gtsm, prefix)) in
        [("192.0.2.2", 65001, true, "10.50.0.0/16"), ("198.51.100.2", 65002, false, "10.60.0.0/16")]
            .into_iter()
            .enumerate()
    {
        let ours = vm.nic(nic).guest.expect("configured").addr.to_string();
        let conf =
            dir.file(&format!("bird{nic}.conf"), &bird_gtsm_config(router_id, asn, &ours, &[prefix], gtsm));
        let (sock, pid) = (dir.path(&format!("bird{nic}.ctl")), dir.path(&format!("bird{nic}.pid")));
        let argv = ["bird", "-f", "-c", conf.as_str(), "-s", sock.as_str(), "-P", pid.as_str()];
        birds.push((Daemon::spawn(&vm.nic(nic).ns, &argv, "bird"), sock));
    }

    established(&mut vm, "192.0.2.2", Duration::from_secs(30));
    assert!(
        wait(Duration::from_secs(15), || fib_via(&mut vm, "10.50.0.0/16").as_deref() == Some("192.0.2.2")),
        "{}",
        vm.command("show route").unwrap_or_default()
    );
    let both = protocol(&mut vm, "192.0.2.2");
    assert_eq!((both["ttl_security"].as_bool(), both["ttl_min"].as_u64()), (Some(true), Some(255)), "{both}");
    // BIRD's session passes; a stray segment its kernel sends at the default TTL may not.
    let dropped_with_gtsm = both["ttl_dropped"].as_u64().unwrap_or(u64::MAX);
    assert!(dropped_with_gtsm <= 2, "{both}");
    let bird_state = birdc(&vm.nic(0).ns, &birds[0].1, "show protocols up");
    assert!(bird_state.contains("Established"), "{bird_state}");

    // BIRD without GTSM keeps trying (connect retry 2 s) while Bulkhead drops what it sends.
    let dropped = wait(Duration::from_secs(20), || {
        protocol(&mut vm, "198.51.100.2")["ttl_dropped"].as_u64() >= Some(3)
    });
    let alone = protocol(&mut vm, "198.51.100.2");
    assert!(dropped, "{alone}");
    std::thread::sleep(Duration::from_secs(5));
    let alone = protocol(&mut vm, "198.51.100.2");
    assert_ne!(alone["state"], "Established", "{alone}");
    assert_eq!(alone["sessions"].as_u64(), Some(0), "{alone}");
    assert!(fib_via(&mut vm, "10.60.0.0/16").is_none());
    let local = json(&mut vm, "show local json");
    let total = local["ttl_security_dropped"].as_u64().unwrap_or(0);
    assert!(total >= alone["ttl_dropped"].as_u64().unwrap_or(u64::MAX), "{local} {alone}");
    let bird_state = birdc(&vm.nic(1).ns, &birds[1].1, "show protocols up");
    assert!(!bird_state.contains("Established"), "{bird_state}");
    println!(
        "GTSM: BIRD with it Established ({dropped_with_gtsm} of its segments dropped); BIRD without it: {} \
         segments dropped, state {}; show local: {total}",
        alone["ttl_dropped"], alone["state"]
    );
    // The first session was never disturbed.
    assert_eq!(protocol(&mut vm, "192.0.2.2")["state"], "Established");
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
}

/// ExaBGP announces two IPv4 prefixes and, in MP_REACH_NLRI over the same IPv4 session, three
/// IPv6 prefixes with an IPv6 next hop: Bulkhead keeps and counts them apart, shows an IPv6 best
/// path as not installed (the forwarder is IPv4 only), and the FIB holds the IPv4 ones alone.
#[test]
fn exabgp_ipv6_routes_are_kept_counted_shown_and_not_installed() {
    if !can_run("exabgp_ipv6_routes_are_kept_counted_shown_and_not_installed") {
        return;
    }
    let dir = TempDir::new("bgp-ipv6");
    let (mut vm, _config) = boot(
        "ipv6",
        1,
        "[bgp]\nasn = 65000\nrouter_id = \"192.0.2.1\"\nconnect_retry = \"2s\"\n\n[[bgp.neighbor]]\n\
         address = \"192.0.2.2\"\nasn = 65004\nimport = \"all\"\nexport = \"all\"\n",
    );
    let six = ["2001:db8:100::/48", "2001:db8:101::/48", "2001:db8:102::/48"];
    let four = ["10.80.0.0/16", "10.81.0.0/16"];
    let routes: String = four
        .iter()
        .map(|p| format!("    route {p} next-hop 192.0.2.2;\n"))
        .chain(six.iter().map(|p| format!("    route {p} next-hop 2001:db8::2;\n")))
        .collect();
    let exa_conf = dir.file(
        "exabgp.conf",
        &format!(
            "neighbor 192.0.2.1 {{\n  router-id 192.0.2.2;\n  local-address 192.0.2.2;\n  local-as 65004;\n  \
             peer-as 65000;\n  family {{\n    ipv4 unicast;\n    ipv6 unicast;\n  }}\n  static {{\n{routes}  }}\n}}\n"
        ),
    );
    let ns0 = &vm.nic(0).ns;
    let _exabgp = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns0.name(),
            "env",
            "exabgp.daemon.daemonize=false",
            "exabgp.daemon.user=root",
        ])
        .args(["exabgp.log.destination=stderr", "exabgp.api.cli=false", "exabgp", &exa_conf])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|child| Daemon::adopt(child, "exabgp"))
        .expect("exabgp");

    established(&mut vm, "192.0.2.2", Duration::from_secs(30));
    let counted = wait(Duration::from_secs(15), || {
        let c = json(&mut vm, "show route count json");
        c["ipv4"] == 2 && c["ipv6"] == 3
    });
    let count = json(&mut vm, "show route count json");
    assert!(counted, "{count}");
    assert_eq!((count["ipv4_paths"].as_u64(), count["ipv6_paths"].as_u64()), (Some(2), Some(3)), "{count}");
    let row = protocol(&mut vm, "192.0.2.2");
    assert_eq!((row["received"].as_u64(), row["accepted"].as_u64()), (Some(5), Some(5)), "{row}");

    for prefix in six {
        let best = json(&mut vm, &format!("show route {prefix} json"));
        assert_eq!(best["best"]["from"], "192.0.2.2", "{best}");
        assert_eq!(best["best"]["next_hop"], "2001:db8::2", "{best}");
        assert_eq!(best["installed"], false, "{best}");
        assert_eq!(best["not_installed"], "the forwarder is IPv4 only", "{best}");
    }
    let text = vm.command("show route 2001:db8:101::/48").unwrap_or_default();
    assert!(text.contains("not installed: the forwarder is IPv4 only"), "{text}");
    let best4 = json(&mut vm, "show route 10.80.0.0/16 json");
    assert_eq!(best4["installed"], true, "{best4}");

    // The forwarder's table: source bgp holds exactly the IPv4 prefixes.
    assert!(wait(Duration::from_secs(15), || four
        .iter()
        .all(|p| fib_via(&mut vm, p).as_deref() == Some("192.0.2.2"))));
    let table = json(&mut vm, "show route json");
    let mut from_bgp: Vec<String> = table["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter(|r| r["source"] == "bgp")
        .map(|r| r["prefix"].as_str().unwrap_or("").to_string())
        .collect();
    from_bgp.sort();
    assert_eq!(from_bgp, four, "{table}");
    println!(
        "IPv6: {} best IPv6 and {} IPv4 routes in BGP; the FIB's bgp routes: {from_bgp:?}",
        count["ipv6"], count["ipv4"]
    );
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
}
