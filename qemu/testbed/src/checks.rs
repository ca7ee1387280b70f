//! What the integration tests ask of a running appliance and its namespaces, in one place:
//! a command that must succeed, a domain's row of `show memory json`, waiting for a row.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Netns, RunOutput, Vm};

/// Runs `argv` in `ns` (60 s at most) and panics with its output unless it succeeded.
pub fn run_ok(ns: &Netns, argv: &[&str]) -> RunOutput {
    let out = ns
        .run_limited(argv.iter().copied(), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(out.success(), "{argv:?} in {}: {out:?}", ns.name());
    out
}

/// Routes every namespace's traffic through the appliance (its NIC's address as the default).
pub fn route_through_appliance(vm: &Vm) {
    for nic in vm.topology().nics() {
        let gateway = nic.guest.expect("configured").addr.to_string();
        run_ok(&nic.ns, &["ip", "route", "replace", "default", "via", &gateway]);
    }
}

/// The `show memory json` row of `domain`.
pub fn memory_row(vm: &mut Vm, domain: &str) -> Value {
    let json = vm.command_json("show memory json").unwrap_or_else(|e| panic!("{e}"));
    json["domains"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["domain"] == domain))
        .cloned()
        .unwrap_or_else(|| panic!("no {domain} row in {json}"))
}

/// A number in a JSON row; panics naming the key and the row when it is absent.
pub fn field(row: &Value, key: &str) -> u64 {
    row[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {row}"))
}

/// Polls `show memory json` until `done(row)` holds for `domain`, or panics at the limit.
pub fn wait_memory_row(vm: &mut Vm, domain: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + limit;
    loop {
        let row = memory_row(vm, domain);
        if done(&row) {
            return row;
        }
        assert!(Instant::now() < end, "{domain} never reached the expected state: {row}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
