//! Boots of the image in QEMU, each on its own namespaces and TAP devices.
//! Skipped (with a message) only when not root; a missing image fails ("run make image").

use std::time::Duration;

use bulkhead_testbed::qemu::exit;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, Ipv4Cidr, TempFile, Vm, VmOptions};

/// A configuration file for `-fw_cfg`, removed on drop.
fn temp_config(tag: &str, text: &str) -> TempFile {
    TempFile::new(tag, text).expect("write temporary configuration")
}

fn boot(options: VmOptions) -> Vm {
    let mut vm = Vm::boot(options).unwrap_or_else(|e| panic!("boot: {e}"));
    let ready = vm.ready().expect("ready after boot");
    println!(
        "ready in {} ms (guest), {:.0} ms from spawn",
        ready.kernel_ms,
        ready.spawn_to_ready.as_secs_f64() * 1e3
    );
    // The console answers before anything else is asked of it.
    let help = vm.command("help").unwrap_or_else(|e| panic!("help: {e}"));
    assert!(help.contains("show"), "help does not mention show: {help:?}");
    vm
}

/// Pings every configured NIC from its namespace: 3 packets, none lost.
fn ping_every_nic(vm: &Vm) {
    for nic in vm.topology().nics() {
        let Some(guest) = nic.guest else { continue };
        let target = guest.addr.to_string();
        let out = nic.ns.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", target.as_str()]).expect("run ping");
        assert!(
            out.success() && out.stdout.contains(" 0% packet loss"),
            "ping {target} from {}: {out:?}",
            nic.ns.name()
        );
    }
}

/// The object for interface `name` anywhere in a `show interfaces json` answer.
fn interface<'a>(json: &'a Value, name: &str) -> Option<&'a Value> {
    match json {
        Value::Object(map) if map.get("name").and_then(Value::as_str) == Some(name) => Some(json),
        Value::Object(map) => map.values().find_map(|v| interface(v, name)),
        Value::Array(items) => items.iter().find_map(|v| interface(v, name)),
        _ => None,
    }
}

/// Every IPv4 address with prefix (`a.b.c.d/len`) among the strings of `json`.
fn cidrs(json: &Value) -> Vec<Ipv4Cidr> {
    match json {
        Value::String(s) => s.parse().into_iter().collect(),
        Value::Object(map) => map.values().flat_map(cidrs).collect(),
        Value::Array(items) => items.iter().flat_map(cidrs).collect(),
        _ => Vec::new(),
    }
}

fn assert_interfaces_match_topology(vm: &mut Vm) {
    let json = vm.command_json("show interfaces json").unwrap_or_else(|e| panic!("{e}"));
    for nic in vm.topology().nics() {
        let name = format!("nic{}", nic.index);
        let entry = interface(&json, &name).unwrap_or_else(|| panic!("{name} missing in {json}"));
        let expected: Vec<Ipv4Cidr> = nic.guest.into_iter().collect();
        assert_eq!(cidrs(entry), expected, "{name} in {entry}");
    }
}

#[test]
fn default_configuration_boots_lists_nics_and_answers_ping() {
    if !can_run("default_configuration_boots_lists_nics_and_answers_ping") {
        return;
    }
    let mut vm = boot(VmOptions::new().nics(4));
    assert_eq!(vm.console_text().matches("bulkhead: ready in ").count(), 1, "exactly one ready line");
    assert!(vm.nic(3).guest.is_none(), "nic3 is unconfigured by default");
    ping_every_nic(&vm);
    assert_interfaces_match_topology(&mut vm);
}

#[test]
fn fw_cfg_configuration_sets_other_addresses() {
    if !can_run("fw_cfg_configuration_sets_other_addresses") {
        return;
    }
    let config = temp_config(
        "addresses",
        "[[interface]]\nname = \"nic0\"\naddress = \"10.99.0.1/24\"\n\n\
         [[interface]]\nname = \"nic1\"\naddress = \"10.99.1.1/24\"\n",
    );
    let mut vm = boot(VmOptions::new().nics(2).config(&config.0));
    assert_eq!(vm.nic(0).guest.map(|c| c.to_string()).as_deref(), Some("10.99.0.1/24"));
    assert_eq!(vm.nic(1).host.map(|c| c.to_string()).as_deref(), Some("10.99.1.2/24"));
    ping_every_nic(&vm);
    assert_interfaces_match_topology(&mut vm);
}

#[test]
fn bad_configuration_is_refused_with_line_and_key() {
    if !can_run("bad_configuration_is_refused_with_line_and_key") {
        return;
    }
    let config = temp_config("bad", "[[interface]]\nname = \"nic0\"\naddress = \"198.51.100.1/33\"\n");
    let mut vm = Vm::spawn(VmOptions::new().nics(1).config(&config.0)).unwrap_or_else(|e| panic!("{e}"));
    let (which, line) = vm
        .wait_for_first(&["config line ", "bulkhead: ready in "], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(which, 0, "the bad configuration was not refused: {line:?}");
    assert!(line.contains("config line 3: ") && line.contains("address"), "{line:?}");
    let code = vm.wait_exit(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, exit::CONFIG_REFUSED, "exit code; console: {}", vm.console_text());
}

#[test]
fn shutdown_exits_with_33() {
    if !can_run("shutdown_exits_with_33") {
        return;
    }
    let mut vm = boot(VmOptions::new().nics(1));
    let code = vm.shutdown().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, exit::SHUTDOWN);
}

#[test]
fn a_panic_prints_its_location_and_exits_with_3() {
    if !can_run("a_panic_prints_its_location_and_exits_with_3") {
        return;
    }
    let config = temp_config("panic", "[diagnostics]\nenabled = true\n");
    let mut vm = boot(VmOptions::new().nics(1).config(&config.0));
    vm.send_line("debug panic").unwrap_or_else(|e| panic!("{e}"));
    let code = vm.wait_exit(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, exit::PANIC, "console: {}", vm.console_text());
    let console = vm.console_text();
    let line = console.lines().find(|l| l.contains("panicked at")).unwrap_or_else(|| panic!("{console}"));
    assert!(line.contains("main.rs:") && line.contains("debug panic requested"), "{line}");
}
