//! The seeds in `../shared/seeds/`, replayed against the image.
//!
//! `tmm-flow-leak.txt`: a flow set up during early start-up kept receiving packets, never
//! expired, and leaked packet memory per packet until the traffic manager crashed. Here a
//! syslog-like UDP stream (1,000 packets/s) starts *before* QEMU does and keeps going; the
//! forwarder's memory must stay flat, the flow must be expired at its maximum lifetime although
//! it never goes idle, and every packet after the first ARP exchange must arrive: the sender's
//! namespace retries ARP every 100 ms, so every loss must lie before the appliance was ready
//! plus one second.
//! `BULKHEAD_SEED_SECONDS` sets the stream's length (default 20 s; the scenario run uses 60).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, TempFile, Topology, Vm, VmOptions};

/// nic0 and nic1 as by default; a short flow lifetime, so that the test sees it end.
fn config() -> String {
    default_interfaces_toml(2) + "[forwarder]\nflow_lifetime = \"8s\"\n"
}

const STREAM: &str = env!("CARGO_BIN_EXE_udp-stream");

fn seconds() -> u64 {
    std::env::var("BULKHEAD_SEED_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20).max(10)
}

fn forwarder_used(vm: &mut Vm) -> u64 {
    let json = vm.command_json("show memory json").unwrap_or_else(|e| panic!("{e}"));
    json["domains"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["domain"] == "forwarder"))
        .and_then(|r| r["used"].as_u64())
        .unwrap_or_else(|| panic!("no forwarder row in {json}"))
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn value(report: &str, key: &str) -> i64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {report:?}"))
}

#[test]
fn tmm_flow_leak_a_stream_from_before_boot_keeps_memory_flat() {
    if !can_run("tmm_flow_leak_a_stream_from_before_boot_keeps_memory_flat") {
        return;
    }
    let seconds = seconds();
    let config = TempFile::new("seed-tmm", &config()).expect("configuration");
    let options = VmOptions::new().name("seed-tmm").nics(2).config(&config.0);
    let topology = Topology::create(&options.interface_plan().expect("plan")).expect("topology");
    for nic in topology.nics() {
        let gateway = nic.guest.expect("configured").addr.to_string();
        let out =
            nic.ns.run(["ip", "route", "replace", "default", "via", gateway.as_str()]).expect("ip route");
        assert!(out.success(), "{out:?}");
    }
    let (sender_ns, receiver_ns) =
        (topology.nic(0).ns.name().to_string(), topology.nic(1).ns.name().to_string());
    let receiver = Command::new("ip")
        .args(["netns", "exec", &receiver_ns, STREAM, "receive", "--bind", "198.51.100.2:5514"])
        .args(["--seconds", &(seconds + 8).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    let sender = Command::new("ip")
        .args(["netns", "exec", &sender_ns, STREAM, "send", "--to", "198.51.100.2:5514", "--rate", "1000"])
        .args(["--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sender");
    // The stream runs before the appliance exists.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut vm = Vm::spawn_on(options, topology).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_ready(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let ready_us = unix_micros();

    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    let early = forwarder_used(&mut vm);
    let end = started + Duration::from_secs(seconds - 2);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let late = forwarder_used(&mut vm);
    let flows = vm.command_json("show flows json").unwrap_or_else(|e| panic!("{e}"));
    let interfaces = vm.command("show interfaces").unwrap_or_else(|e| panic!("{e}"));
    println!("{interfaces}");

    let sent = String::from_utf8_lossy(&sender.wait_with_output().expect("sender ran").stdout).to_string();
    let got = String::from_utf8_lossy(&receiver.wait_with_output().expect("receiver ran").stdout).to_string();
    println!("sender: {sent}receiver: {got}forwarder: {early} -> {late} bytes; flows: {flows}");

    let drift = (late as f64 - early as f64).abs() / early.max(1) as f64;
    assert!(drift <= 0.01, "forwarder memory moved {:.2} % ({early} -> {late})", drift * 100.0);
    // Losses are allowed only before the first ARP exchanges: up to a second after ready.
    let settled = (ready_us - value(&sent, "start_us")) / 1000 + 1000;
    let gaps = got.split_whitespace().find_map(|kv| kv.strip_prefix("gaps=")).unwrap_or("none");
    for gap in gaps.split(',').filter(|g| *g != "none") {
        let end: i64 = gap.rsplit('-').next().and_then(|e| e.parse().ok()).unwrap_or(i64::MAX);
        assert!(
            end < settled,
            "packets lost after the first ARP exchange (seq {gap}, settled at {settled}): {got}"
        );
    }
    assert_eq!(value(&got, "duplicates"), 0, "{got}");
    assert!(value(&got, "received") > 1000 * (seconds as i64 - 4), "too few packets arrived: {got}");
    let lifetime_expiries = flows["expired_lifetime"].as_u64().unwrap_or(0);
    assert!(lifetime_expiries >= 1, "the never-idle flow was not expired at its lifetime: {flows}");
    let _: &Value = &flows;
}
