//! The forwarder in QEMU: hosts in namespaces behind nic0 and nic1 (and a router behind nic2)
//! talk through the appliance.

use std::time::Duration;

use bulkhead_testbed::checks::{route_through_appliance, run_ok};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::{can_run, Netns, RunOutput, TempFile, Vm, VmOptions};

/// nic0..nic2 as in the default configuration; nic2 leads to a router that owns
/// 10.20.0.0/16, reached by a static route.
fn config() -> String {
    default_interfaces_toml(3) + "[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"203.0.113.2\"\n"
}

/// Tests that load the host's two cores (iperf3, the flood) take turns: overlapping, they
/// starve each other's QEMU and the "no loss" assertions would measure the host instead.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn boot(tag: &str) -> (Vm, TempFile) {
    let config = TempFile::new(&format!("fwd-{tag}"), &config()).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(3).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    route_through_appliance(&vm);
    (vm, config)
}

fn run(ns: &Netns, argv: &[&str]) -> RunOutput {
    run_ok(ns, argv)
}

fn try_run(ns: &Netns, argv: &[&str]) -> RunOutput {
    ns.run_limited(argv.iter().copied(), Duration::from_secs(30)).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn ping_crosses_the_appliance_with_ttl_decremented() {
    if !can_run("ping_crosses_the_appliance_with_ttl_decremented") {
        return;
    }
    let (mut vm, _config) = boot("ping");
    let out = run(&vm.nic(0).ns, &["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.51.100.2"]);
    assert!(out.stdout.contains(" 0% packet loss"), "{out:?}");
    // Linux answers with TTL 64; one router on the way back makes it 63.
    assert!(out.stdout.contains("ttl=63"), "TTL not decremented once: {}", out.stdout);
    // Counted per ingress NIC: 5 requests in on nic0, 5 replies in on nic1.
    let json = vm.command_json("show interfaces json").unwrap_or_else(|e| panic!("{e}"));
    for (index, nic) in json["interfaces"].as_array().expect("interfaces").iter().take(2).enumerate() {
        assert_eq!(nic["forwarded_packets"].as_u64(), Some(5), "nic{index}: {nic}");
    }
}

/// An iperf3 server for one test in namespace `ns`, on nic1's host address.
fn iperf3_server(ns: &str) -> std::process::Child {
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s", "-1", "-B", "198.51.100.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    server
}

#[test]
fn tcp_and_udp_cross_the_appliance() {
    if !can_run("tcp_and_udp_cross_the_appliance") {
        return;
    }
    let _turn = heavy();
    let (vm, _config) = boot("iperf");
    let server = vm.nic(1).ns.name().to_string();
    let mut iperf = iperf3_server(&server);
    let tcp = try_run(&vm.nic(0).ns, &["iperf3", "-c", "198.51.100.2", "-t", "2", "-J"]);
    let _ = iperf.wait();
    assert!(tcp.success(), "iperf3 TCP: {tcp:?}");
    assert!(tcp.stdout.contains("\"bits_per_second\""), "{}", tcp.stdout);

    let mut iperf = iperf3_server(&server);
    let udp = try_run(&vm.nic(0).ns, &["iperf3", "-c", "198.51.100.2", "-u", "-b", "2M", "-t", "2", "-J"]);
    let _ = iperf.wait();
    assert!(udp.success(), "iperf3 UDP: {udp:?}");
    let json: bulkhead_testbed::serde_json::Value =
        bulkhead_testbed::serde_json::from_str(&udp.stdout).expect("iperf3 JSON");
    let lost = json["end"]["sum"]["lost_percent"].as_f64().expect("lost_percent");
    assert!(lost < 1.0, "UDP lost {lost} % across the appliance");
}

#[test]
fn no_route_and_ttl_expiry_are_answered_with_icmp() {
    if !can_run("no_route_and_ttl_expiry_are_answered_with_icmp") {
        return;
    }
    let (vm, _config) = boot("icmp");
    let ns = &vm.nic(0).ns;
    let no_route = try_run(ns, &["ping", "-c", "1", "-W", "2", "172.31.0.1"]);
    assert!(no_route.stdout.contains("Destination Net Unreachable"), "{no_route:?}");
    let expired = try_run(ns, &["ping", "-c", "1", "-W", "2", "-t", "1", "198.51.100.2"]);
    assert!(expired.stdout.contains("Time to live exceeded"), "{expired:?}");
    assert!(
        expired.stdout.contains("From 192.0.2.1"),
        "the error comes from the ingress address: {expired:?}"
    );
}

#[test]
fn a_static_route_leads_through_a_third_namespace() {
    if !can_run("a_static_route_leads_through_a_third_namespace") {
        return;
    }
    let (vm, _config) = boot("static");
    let router = &vm.nic(2).ns;
    // The router owns 10.20.0.0/16 (on its loopback: the host kernel may lack dummy links).
    run(router, &["ip", "link", "set", "lo", "up"]);
    run(router, &["ip", "addr", "add", "10.20.0.1/16", "dev", "lo"]);
    let out = run(&vm.nic(0).ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.20.0.1"]);
    assert!(out.stdout.contains(" 0% packet loss"), "{out:?}");
}

/// The drop counters of `nic` in `show interfaces json`.
fn drops(vm: &mut Vm, nic: &str) -> bulkhead_testbed::serde_json::Value {
    let json = vm.command_json("show interfaces json").unwrap_or_else(|e| panic!("{e}"));
    json["interfaces"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["name"] == nic))
        .map(|i| i["drops"].clone())
        .unwrap_or_else(|| panic!("{nic} missing: {json}"))
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 =
        bytes.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame to the appliance carrying an IPv4 header from 192.0.2.2 to 198.51.100.2.
fn frame(
    src_mac: &str,
    ihl_words: u8,
    total: u16,
    flags: u16,
    ttl: u8,
    options: &[u8],
    payload: &[u8],
) -> String {
    let mut ip = vec![0x40 | ihl_words, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 7]);
    ip.extend_from_slice(&flags.to_be_bytes());
    ip.extend_from_slice(&[ttl, 17, 0, 0, 192, 0, 2, 2, 198, 51, 100, 2]);
    ip.extend_from_slice(options);
    let header_len = ip.len();
    let c = checksum(&ip[..header_len]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(payload);
    let mut hex = String::from("525400b00000");
    hex.push_str(&src_mac.replace(':', ""));
    hex.push_str("0800");
    for b in ip {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[test]
fn malformed_frames_are_dropped_by_reason_while_forwarding_goes_on() {
    if !can_run("malformed_frames_are_dropped_by_reason_while_forwarding_goes_on") {
        return;
    }
    let (mut vm, _config) = boot("bad");
    let ns = &vm.nic(0).ns;
    let tap = vm.nic(0).tap_name().to_string();
    // Learn each other's MAC with a first ping (and the path to nic1's host).
    run(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.51.100.2"]);
    let mac = run(ns, &["cat", &format!("/sys/class/net/{tap}/address")]).stdout.trim().to_string();
    let udp = [0x13, 0x88, 0x02, 0x02, 0, 8, 0, 0];
    let good = frame(&mac, 5, 28, 0, 64, &[], &udp);
    let mut bad_checksum = good.clone();
    bad_checksum.replace_range(48..52, "dead");
    let cases = [
        ("ip_bad_ihl", frame(&mac, 4, 28, 0, 64, &[], &udp)),
        ("ip_bad_total_length", frame(&mac, 5, 16, 0, 64, &[], &udp)),
        ("ip_truncated", frame(&mac, 5, 200, 0, 64, &[], &udp)),
        ("ip_bad_checksum", bad_checksum),
        ("ttl_expired", frame(&mac, 5, 28, 0, 0, &[], &udp)),
        ("truncated", good[..60].to_string()),
    ];
    let before = drops(&mut vm, "nic0");
    let ns = &vm.nic(0).ns;
    let raw = env!("CARGO_BIN_EXE_raw-frame");
    for (_, hex) in &cases {
        run(ns, &[raw, &tap, hex]);
    }
    // Options (four NOPs) and a first fragment are forwarded, not dropped.
    run(ns, &[raw, &tap, &frame(&mac, 6, 32, 0, 64, &[1, 1, 1, 1], &udp)]);
    run(ns, &[raw, &tap, &frame(&mac, 5, 28, 0x2000, 64, &[], &udp)]);
    std::thread::sleep(Duration::from_millis(300));
    let after = drops(&mut vm, "nic0");
    for (reason, _) in &cases {
        let grew = after[reason].as_u64().unwrap_or(0) - before[reason].as_u64().unwrap_or(0);
        assert_eq!(grew, 1, "{reason}: before {before}, after {after}");
    }
    let total = |v: &bulkhead_testbed::serde_json::Value| -> u64 {
        v.as_object().map(|m| m.values().filter_map(|x| x.as_u64()).sum()).unwrap_or(0)
    };
    assert_eq!(
        total(&after) - total(&before),
        cases.len() as u64,
        "options and fragments were dropped: {after}"
    );
    let out = run(&vm.nic(0).ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.2"]);
    assert!(out.stdout.contains(" 0% packet loss"), "forwarding stopped: {out:?}");
}

#[test]
fn a_flood_of_new_flows_is_evicted_within_quota_while_another_path_answers() {
    if !can_run("a_flood_of_new_flows_is_evicted_within_quota_while_another_path_answers") {
        return;
    }
    let config = TempFile::new(
        "fwd-flood",
        &format!("{}\n[memory.forwarder]\nquota = \"4MiB\"\nsoft = \"3MiB\"\n", config()),
    )
    .expect("configuration");
    let vm = Vm::boot(VmOptions::new().nics(3).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    let mut vm = vm;
    for nic in vm.topology().nics() {
        let gateway = nic.guest.expect("configured").addr.to_string();
        run(&nic.ns, &["ip", "route", "replace", "default", "via", &gateway]);
    }
    let stream = env!("CARGO_BIN_EXE_udp-stream");
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new("ip")
                .args(["netns", "exec", vm.nic(0).ns.name(), stream, "send", "--to", "198.51.100.2:10000"])
                .args(["--rate", "10000", "--seconds", "5", "--ports", "50000"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("flooder")
        })
        .collect();
    let ping = try_run(&vm.nic(2).ns, &["ping", "-c", "40", "-i", "0.1", "-W", "2", "198.51.100.2"]);
    for f in flooders {
        let out = f.wait_with_output().expect("flooder ran");
        println!("flooder: {}", String::from_utf8_lossy(&out.stdout));
    }
    let flows = vm.command_json("show flows json").unwrap_or_else(|e| panic!("{e}"));
    let memory = vm.command_json("show memory json").unwrap_or_else(|e| panic!("{e}"));
    println!("flows: {flows}");
    let forwarder = memory["domains"]
        .as_array()
        .and_then(|d| d.iter().find(|r| r["domain"] == "forwarder"))
        .cloned()
        .unwrap();
    println!("forwarder: {forwarder}");
    assert!(ping.stdout.contains(" 0% packet loss"), "the other path lost pings during the flood: {ping:?}");
    assert!(flows["evicted"].as_u64().unwrap_or(0) > 0, "nothing was evicted: {flows}");
    assert!(flows["count"].as_u64().unwrap() <= flows["capacity"].as_u64().unwrap());
    assert_eq!(forwarder["sheds"], 0, "{forwarder}");
    assert!(forwarder["peak"].as_u64().unwrap() <= forwarder["soft"].as_u64().unwrap(), "{forwarder}");
}
