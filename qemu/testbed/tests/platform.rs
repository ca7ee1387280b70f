//! The platform's contract in QEMU: local traffic for any of the appliance's addresses arrives
//! whichever NIC it came in on and goes back out through the FIB; the `diag` subsystem's echo
//! services (its first user); what nobody serves is answered as a host answers; a shed resets
//! a subsystem's connections and leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_testbed::checks::{field, memory_row, route_through_appliance, run_ok, wait_memory_row};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, Netns, TempFile, Vm, VmOptions};

const ECHO_CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

/// nic0..nic2 as in the default configuration, a router behind nic2 owning 10.20.0.0/16,
/// diagnostics (and so the echo services) on.
fn config() -> String {
    default_interfaces_toml(3)
        + "[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"203.0.113.2\"\n\n[diagnostics]\nenabled = true\n"
}

fn boot(tag: &str) -> (Vm, TempFile) {
    let config = TempFile::new(&format!("plat-{tag}"), &config()).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(3).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    route_through_appliance(&vm);
    (vm, config)
}

fn echo(ns: &Netns, args: &[&str]) -> String {
    let mut argv = vec![ECHO_CLIENT];
    argv.extend_from_slice(args);
    run_ok(ns, &argv).stdout.trim().to_string()
}

fn wait_up(vm: &mut Vm, name: &str) -> Value {
    wait_memory_row(vm, name, Duration::from_secs(10), |row| row["state"] == "up")
}

#[test]
fn local_traffic_for_any_address_arrives_on_any_nic() {
    if !can_run("local_traffic_for_any_address_arrives_on_any_nic") {
        return;
    }
    let (mut vm, _config) = boot("local");
    let ns = &vm.nic(0).ns;
    // nic1's address, from nic0's side.
    let out = run_ok(ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.1"]);
    assert!(out.stdout.contains(" 0% packet loss"), "{out:?}");
    let tcp = echo(ns, &["tcp", "198.51.100.1", "7", "1048576"]);
    assert!(tcp.starts_with("ok 1048576 bytes"), "{tcp}");
    assert_eq!(echo(ns, &["udp", "198.51.100.1", "7", "50"]), "ok 50 datagrams");
    assert_eq!(echo(ns, &["udp", "192.0.2.1", "7", "5"]), "ok 5 datagrams");
    // Nobody serves port 9: a host's answers.
    assert_eq!(echo(ns, &["probe-tcp", "192.0.2.1", "9"]), "refused");
    assert_eq!(echo(ns, &["probe-udp", "203.0.113.1", "9"]), "unreachable");
    let status = vm.command("show status").unwrap_or_else(|e| panic!("{e}"));
    assert!(status.contains("1048576 bytes echoed") || status.contains("bytes echoed"), "{status}");
}

#[test]
fn a_client_behind_a_static_route_gets_its_answers_through_the_gateway() {
    if !can_run("a_client_behind_a_static_route_gets_its_answers_through_the_gateway") {
        return;
    }
    let (vm, _config) = boot("routed");
    let router = &vm.nic(2).ns;
    run_ok(router, &["ip", "link", "set", "lo", "up"]);
    run_ok(router, &["ip", "addr", "add", "10.20.0.1/16", "dev", "lo"]);
    // The client speaks from 10.20.0.1: the appliance must answer through 203.0.113.2.
    run_ok(router, &["ip", "route", "replace", "default", "via", "203.0.113.1", "src", "10.20.0.1"]);
    let tcp = echo(router, &["tcp", "192.0.2.1", "7", "65536"]);
    assert!(tcp.starts_with("ok 65536 bytes"), "{tcp}");
    assert_eq!(echo(router, &["udp", "198.51.100.1", "7", "10"]), "ok 10 datagrams");
}

#[test]
fn shedding_diag_resets_its_connection_and_leaves_nothing() {
    if !can_run("shedding_diag_resets_its_connection_and_leaves_nothing") {
        return;
    }
    let (mut vm, _config) = boot("shed-diag");
    let baseline = memory_row(&mut vm, "diag");
    let ns_name = vm.nic(0).ns.name().to_string();
    let mut client = Command::new("ip")
        .args(["netns", "exec", &ns_name, ECHO_CLIENT, "hold", "192.0.2.1", "7", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("echo client");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "open", "the connection did not open");
    let open = memory_row(&mut vm, "diag");
    assert!(field(&open, "used") > field(&baseline, "used"), "a connection costs diag: {open}");

    let answer = vm.command("debug shed diag").unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.contains("ok (diag)"), "{answer}");
    let end = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(end, "reset", "the peer must see an RST when diag is shed");
    let _ = client.wait();
    let after = wait_up(&mut vm, "diag");
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
    assert_eq!(field(&after, "used"), field(&baseline, "used"), "diag: {after} vs {baseline}");
    assert_eq!(field(&after, "blocks"), field(&baseline, "blocks"), "diag: {after} vs {baseline}");
    // It serves again.
    let tcp = echo(&vm.nic(0).ns, &["tcp", "192.0.2.1", "7", "4096"]);
    assert!(tcp.starts_with("ok 4096 bytes"), "{tcp}");
}

#[test]
fn shedding_the_forwarder_after_traffic_leaves_nothing() {
    if !can_run("shedding_the_forwarder_after_traffic_leaves_nothing") {
        return;
    }
    let (mut vm, _config) = boot("shed-fwd");
    let baseline = memory_row(&mut vm, "forwarder");
    let ping =
        |vm: &Vm| run_ok(&vm.nic(0).ns, &["ping", "-c", "20", "-i", "0.05", "-W", "2", "198.51.100.2"]);
    let out = ping(&vm);
    assert!(out.stdout.contains(" 0% packet loss"), "{out:?}");
    let tcp = echo(&vm.nic(1).ns, &["tcp", "198.51.100.1", "7", "65536"]);
    assert!(tcp.starts_with("ok"), "{tcp}");

    let answer = vm.command("debug shed forwarder").unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.contains("ok (forwarder)"), "{answer}");
    let after = wait_up(&mut vm, "forwarder");
    assert!(!vm.console_text().contains("LEAK"), "{}", vm.console_text());
    assert_eq!(field(&after, "used"), field(&baseline, "used"), "forwarder: {after} vs {baseline}");
    assert_eq!(field(&after, "blocks"), field(&baseline, "blocks"), "forwarder: {after} vs {baseline}");
    let out = ping(&vm);
    assert!(out.stdout.contains(" 0% packet loss"), "after the restart: {out:?}");
}
