//! Memory bulkheads in the image: a hog in one domain is shed and restarted while the NICs keep
//! answering; a deliberate leak is reported with its size; a shed domain comes back to its
//! baseline to the byte.

use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_testbed::checks::{field, memory_row, wait_memory_row};
use bulkhead_testbed::net::default_interfaces_toml;
use bulkhead_testbed::serde_json::Value;
use bulkhead_testbed::{can_run, TempFile, Vm, VmOptions};

/// Two NICs, a small bmp quota, diagnostics on.
fn config() -> String {
    default_interfaces_toml(2)
        + "[memory.bmp]\nquota = \"2MiB\"\nsoft = \"1536KiB\"\n\n[diagnostics]\nenabled = true\n"
}

fn boot(tag: &str) -> (Vm, TempFile) {
    let config = TempFile::new(&format!("mem-{tag}"), &config()).expect("write configuration");
    let vm = Vm::boot(VmOptions::new().nics(2).config(&config.0)).unwrap_or_else(|e| panic!("boot: {e}"));
    (vm, config)
}

fn domain(vm: &mut Vm, name: &str) -> Value {
    memory_row(vm, name)
}

fn wait_row(vm: &mut Vm, name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    wait_memory_row(vm, name, limit, done)
}

#[test]
fn a_hog_in_bmp_is_shed_and_restarted_while_every_nic_answers() {
    if !can_run("a_hog_in_bmp_is_shed_and_restarted_while_every_nic_answers") {
        return;
    }
    let (mut vm, _config) = boot("hog");
    let before = domain(&mut vm, "bmp");
    assert_eq!(before["state"], "up");

    // Pings on every NIC for the whole hog-and-shed, 100 packets each, 20 ms apart.
    let pings: Vec<_> = vm
        .topology()
        .nics()
        .iter()
        .filter_map(|nic| nic.guest.map(|g| (nic.ns.name().to_string(), g.addr.to_string())))
        .map(|(ns, target)| {
            Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-c", "100", "-i", "0.02", "-W", "1", &target])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start ping")
        })
        .collect();
    assert_eq!(pings.len(), 2);

    std::thread::sleep(Duration::from_millis(300));
    let answer = vm.command("debug hog bmp 16MiB").unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.contains("ok"), "{answer}");
    let shed =
        wait_row(&mut vm, "bmp", Duration::from_secs(10), |r| field(r, "sheds") >= 1 && r["state"] == "up");
    assert!(field(&shed, "peak") > 2 << 20, "the hog never passed the quota: {shed}");
    assert!(vm.console_text().contains("shed bmp: domain bmp over its hard quota"));

    // Back to the baseline to the byte: same footprint and the same number of live blocks.
    assert_eq!(field(&shed, "used"), field(&before, "used"), "bmp after the shed: {shed}, before: {before}");
    assert_eq!(field(&shed, "blocks"), field(&before, "blocks"));
    assert!(shed["last_leak"].is_null(), "a hog leaks nothing: {shed}");
    // Nobody else noticed.
    for other in ["forwarder", "bgp", "sctp", "mgmt"] {
        assert_eq!(field(&domain(&mut vm, other), "sheds"), 0, "{other} was shed too");
    }

    for ping in pings {
        let out = ping.wait_with_output().expect("ping ran");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("100 received"), "ping lost packets during the shed:\n{text}");
    }
    let status = vm.command("show status").unwrap_or_else(|e| panic!("{e}"));
    println!("{status}");
}

#[test]
fn a_deliberate_leak_is_reported_with_its_size() {
    if !can_run("a_deliberate_leak_is_reported_with_its_size") {
        return;
    }
    let (mut vm, _config) = boot("leak");
    let before = domain(&mut vm, "bgp");
    let answer = vm.command("debug leak bgp 100000").unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.contains("ok"), "{answer}");
    // The leak task finishes in a few loop turns; then the shed finds what it left.
    wait_row(&mut vm, "bgp", Duration::from_secs(5), |r| field(r, "used") > field(&before, "used"));
    std::thread::sleep(Duration::from_millis(200));
    let answer = vm.command("debug shed bgp").unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.contains("ok"), "{answer}");
    // The shed runs inside the command, so its LEAK line is on the console by now.
    let console = vm.console_text();
    let line = console
        .lines()
        .find(|l| l.contains("LEAK domain=bgp"))
        .unwrap_or_else(|| panic!("no LEAK line:\n{console}"));
    // 100000 bytes in pieces of at most 32 KiB: three 32 KiB blocks and one of 1696 bytes,
    // each charged its true footprint (the payload rounded to 8, plus an 8-byte trailer).
    let row = wait_row(&mut vm, "bgp", Duration::from_secs(5), |r| !r["last_leak"].is_null());
    let (bytes, blocks) = (field(&row["last_leak"], "bytes"), field(&row["last_leak"], "blocks"));
    assert_eq!(blocks, 4, "{row}");
    assert!((100_000..100_000 + 4 * 64).contains(&bytes), "leak of {bytes} bytes for 100000: {row}");
    assert!(line.contains(&format!("bytes={bytes} blocks={blocks}")), "{line}");
    // The leak stays charged to bgp, visible, after the restart.
    assert!(field(&row, "used") - field(&before, "used") >= bytes, "{row}");
}
