//! Network namespaces with one TAP device each, one per guest NIC.
//!
//! Names are `bh<pid>x<seq>n<K>` (pid and a per-process sequence number in base 36), at most
//! 15 characters, so parallel tests and processes never clash; the namespace and its TAP device
//! share the name. The first topology of a process removes stale `bh*` namespaces of that form
//! whose process is gone.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::{Interface, Ipv4Cidr};
use crate::Error;

const NETNS_DIR: &str = "/run/netns";

/// How long a command in a namespace may run unless told otherwise.
pub const DEFAULT_RUN_LIMIT: Duration = Duration::from_secs(30);

/// One network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// What a command run in a namespace did.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit code; `None` if it was killed (by a signal, or at the time limit).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// One guest NIC as the host sees it.
#[derive(Debug)]
pub struct Nic {
    /// Index in PCI order: the guest's `nic<index>`.
    pub index: usize,
    /// The guest's address, when configured.
    pub guest: Option<Ipv4Cidr>,
    /// The address of the TAP device in the namespace, when configured.
    pub host: Option<Ipv4Cidr>,
    /// The TAP device (same name as the namespace). Dropped before the namespace.
    tap: OwnedFd,
    pub ns: Netns,
}

impl Nic {
    /// The TAP file descriptor for QEMU's `-netdev tap,fd=`.
    pub fn tap_fd(&self) -> RawFd {
        self.tap.as_raw_fd()
    }

    /// Name of the TAP device (and of the namespace).
    pub fn tap_name(&self) -> &str {
        self.ns.name()
    }
}

/// All namespaces and TAP devices of one boot; removed on drop.
#[derive(Debug)]
pub struct Topology {
    nics: Vec<Nic>,
}

impl Topology {
    /// One namespace and TAP per interface, in order; configured interfaces get the peer
    /// address of their subnet on the TAP.
    pub fn create(interfaces: &[Interface]) -> Result<Topology, Error> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut nics = Vec::new();
        for (index, interface) in interfaces.iter().enumerate() {
            let name = ns_name(std::process::id(), seq, index);
            let ns = Netns::add(&name)?;
            let tap = ns.open_tap(&name)?;
            let host = interface.address.and_then(Ipv4Cidr::peer);
            let mut script = format!("link set lo up\nlink set {name} addrgenmode none\n");
            if let Some(host) = host {
                script.push_str(&format!("addr add {host} dev {name}\n"));
            }
            script.push_str(&format!("link set {name} up\n"));
            ip_batch(&name, &script)?;
            nics.push(Nic { index, guest: interface.address, host, tap, ns });
        }
        Ok(Topology { nics })
    }

    pub fn nics(&self) -> &[Nic] {
        &self.nics
    }

    /// NIC `k`; panics if there is none (a test asking for a NIC it did not create).
    pub fn nic(&self, k: usize) -> &Nic {
        &self.nics[k]
    }

    pub fn tap_fds(&self) -> Vec<RawFd> {
        self.nics.iter().map(Nic::tap_fd).collect()
    }
}

impl Netns {
    fn add(name: &str) -> Result<Netns, Error> {
        tool(Command::new("ip").args(["netns", "add", name]), "ip netns add")?;
        Ok(Netns { name: name.to_string() })
    }

    /// A namespace of a test's own, beside the VM's (a reference daemon's, a network behind a
    /// router): a stale one of the same name is deleted first, and `lo` is brought up.
    pub fn create(name: &str) -> Result<Netns, Error> {
        let _ = Command::new("ip").args(["netns", "delete", name]).stderr(Stdio::null()).status();
        let ns = Netns::add(name)?;
        let up = ns.run(["ip", "link", "set", "lo", "up"])?;
        if !up.success() {
            return Err(Error::io(format!("lo up in {name}"), std::io::Error::other(up.stderr)));
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a TAP device created inside this namespace (on a helper thread that enters it).
    fn open_tap(&self, tap: &str) -> Result<OwnedFd, Error> {
        let ns_path = Path::new(NETNS_DIR).join(&self.name);
        let tap = tap.to_string();
        thread::spawn(move || -> Result<OwnedFd, Error> {
            let ns = File::open(&ns_path).map_err(|e| Error::io(format!("{}", ns_path.display()), e))?;
            // SAFETY: setns on a namespace file we hold open; it only changes this helper
            // thread's network namespace, and the thread ends right after.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::io("setns", std::io::Error::last_os_error()));
            }
            open_tun(&tap)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::io("tap helper thread", std::io::Error::other("panicked"))))
    }

    /// Runs `argv` in this namespace (`ip netns exec`) with the default time limit.
    pub fn run<I, S>(&self, argv: I) -> Result<RunOutput, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.run_limited(argv, DEFAULT_RUN_LIMIT)
    }

    /// Runs `argv` in this namespace, killed after `limit`.
    pub fn run_limited<I, S>(&self, argv: I, limit: Duration) -> Result<RunOutput, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(&argv);
        run_with_limit(&mut command, limit).map_err(|e| Error::io(format!("{argv:?} in {}", self.name), e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).stderr(Stdio::null()).status();
    }
}

/// `bh<pid36>x<seq36>n<k>`.
fn ns_name(pid: u32, seq: u32, k: usize) -> String {
    format!("bh{}x{}n{k}", base36(pid), base36(seq))
}

/// The pid that owns a namespace named by [`ns_name`], if it is one.
fn ns_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("bh")?;
    let (pid, rest) = rest.split_once('x')?;
    let (seq, k) = rest.split_once('n')?;
    let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if !valid(seq) || k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !valid(pid) {
        return None;
    }
    u32::from_str_radix(pid, 36).ok()
}

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// Removes namespaces of our naming whose owning process no longer exists.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = ns_owner(&name) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("testbed: removing stale namespace {name} (pid {pid} is gone)");
            let _ = Command::new("ip").args(["netns", "delete", &name]).status();
        }
    }
}

/// Opens `/dev/net/tun` and attaches a new TAP device `name` (no packet information header,
/// no virtio-net header) in the calling thread's network namespace.
fn open_tun(name: &str) -> Result<OwnedFd, Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| Error::io("/dev/net/tun", e))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(Error::BadSetting { name: "tap name", value: name.into() });
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which lives for the whole call.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(Error::io(format!("TUNSETIFF {name}"), std::io::Error::last_os_error()));
    }
    Ok(OwnedFd::from(file))
}

/// `ip -n NS -batch -` with `script` on its standard input.
fn ip_batch(ns: &str, script: &str) -> Result<(), Error> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("ip -batch", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| Error::io("ip -batch stdin", e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io("ip -batch", e))?;
    if !out.status.success() {
        return Err(Error::Tool {
            what: format!("ip -n {ns} -batch ({})", script.replace('\n', "; ")),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn tool(command: &mut Command, what: &str) -> Result<(), Error> {
    let out = command.output().map_err(|e| Error::io(what, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Tool {
        what: what.into(),
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command with its output captured, killing it after `limit`.
pub fn run_with_limit(command: &mut Command, limit: Duration) -> std::io::Result<RunOutput> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(RunOutput {
        code: status.code(),
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// User + system CPU time of process `pid`, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name sits in parentheses and may hold spaces; fields count on after it.
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, so 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0)?;
    Some(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_round_trip() {
        let name = ns_name(4_194_304, 1295, 3);
        assert!(name.len() <= 15, "{name}");
        assert_eq!(ns_owner(&name), Some(4_194_304));
        assert_eq!(ns_owner(&ns_name(1, 0, 0)), Some(1));
        for foreign in ["bhx", "bh12", "bh1x2", "bh1x2nq", "bhZZx1n0", "bench", "bh1x2n"] {
            assert_eq!(ns_owner(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn time_limit_kills_and_reports() {
        let out = run_with_limit(Command::new("sleep").arg("5"), Duration::from_millis(100)).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.code, None);
        let out =
            run_with_limit(Command::new("sh").args(["-c", "echo hi; exit 3"]), DEFAULT_RUN_LIMIT).unwrap();
        assert_eq!((out.code, out.stdout.as_str(), out.timed_out), (Some(3), "hi\n", false));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        // Spins until the process has used 50 ms of CPU (the wall time that takes depends on
        // how busy the machine is); a broken reader would never see it grow.
        let before = cpu_time(std::process::id()).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after < before + Duration::from_millis(50) && start.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            after = cpu_time(std::process::id()).unwrap();
        }
        assert!(after >= before + Duration::from_millis(50), "{before:?} -> {after:?}");
    }

    #[test]
    fn topology_creates_addresses_and_cleans_up() {
        if !crate::can_run("topology_creates_addresses_and_cleans_up") {
            return;
        }
        let plan = crate::net::default_interfaces(4);
        let topology = Topology::create(&plan).unwrap();
        let names: Vec<String> = topology.nics().iter().map(|n| n.ns.name().to_string()).collect();
        let out = topology.nic(1).ns.run(["ip", "-4", "-o", "addr", "show"]).unwrap();
        assert!(out.stdout.contains("198.51.100.2/24"), "{}", out.stdout);
        let out =
            topology.nic(3).ns.run(["ip", "-4", "-o", "addr", "show", "dev", names[3].as_str()]).unwrap();
        assert!(out.success() && out.stdout.trim().is_empty(), "{out:?}");
        drop(topology);
        for name in names {
            assert!(!Path::new(NETNS_DIR).join(&name).exists(), "{name} left behind");
        }
    }
}
