//! The forwarder in QEMU: hosts in namespaces behind nic0 and nic1 (and a router behind nic2)
//! talk through the appliance.

use std::time::Duration;

use bulkhead_testbed::{can_run, Netns, RunOutput, TempFile, Vm, VmOptions};

/// nic0 and nic1 as in the default configuration; nic2 leads to a router that owns
/// 10.20.0.0/16, reached by a static route.
const CONFIG: &str = r#"
[[interface]]
name = "nic0"
address = "192.0.2.1/24"

[[interface]]
name = "nic1"
address = "198.51.100.1/24"

[[interface]]
name = "nic2"
address = "203.0.113.1/24"

[[route]]
prefix = "10.20.0.0/16"
via = "203.0.113.2"
"#;

fn boot(tag: &str) -> (Vm, TempFile) {
    let config = TempFile::new(&format!("fwd-{tag}"), CONFIG).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(3).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    // Every namespace routes through the appliance.
    for nic in vm.topology().nics() {
        let gateway = nic.guest.expect("configured").addr.to_string();
        run(&nic.ns, &["ip", "route", "replace", "default", "via", &gateway]);
    }
    (vm, config)
}

fn run(ns: &Netns, argv: &[&str]) -> RunOutput {
    let out = ns
        .run_limited(argv.iter().copied(), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(out.success(), "{argv:?} in {}: {out:?}", ns.name());
    out
}

fn try_run(ns: &Netns, argv: &[&str]) -> RunOutput {
    ns.run_limited(argv.iter().copied(), Duration::from_secs(30)).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn ping_crosses_the_appliance_with_ttl_decremented() {
    if !can_run("ping_crosses_the_appliance_with_ttl_decremented") {
        return;
    }
    let (vm, _config) = boot("ping");
    let out = run(&vm.nic(0).ns, &["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.51.100.2"]);
    assert!(out.stdout.contains(" 0% packet loss"), "{out:?}");
    // Linux answers with TTL 64; one router on the way back makes it 63.
    assert!(out.stdout.contains("ttl=63"), "TTL not decremented once: {}", out.stdout);
}

#[test]
fn tcp_and_udp_cross_the_appliance() {
    if !can_run("tcp_and_udp_cross_the_appliance") {
        return;
    }
    let (vm, _config) = boot("iperf");
    let server = vm.nic(1).ns.name().to_string();
    let mut iperf = std::process::Command::new("ip")
        .args(["netns", "exec", &server, "iperf3", "-s", "-1", "-B", "198.51.100.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let tcp = try_run(&vm.nic(0).ns, &["iperf3", "-c", "198.51.100.2", "-t", "2", "-J"]);
    let _ = iperf.wait();
    assert!(tcp.success(), "iperf3 TCP: {tcp:?}");
    assert!(tcp.stdout.contains("\"bits_per_second\""), "{}", tcp.stdout);

    let mut iperf = std::process::Command::new("ip")
        .args(["netns", "exec", &server, "iperf3", "-s", "-1", "-B", "198.51.100.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
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
