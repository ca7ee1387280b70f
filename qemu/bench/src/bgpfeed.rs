//! The feeding side of a bench that loads a BGP table: two namespaces joined by a veth pair,
//! processes started in a namespace (killed on drop) and read line by line, and the test bed's
//! `bgp-feed` binary. Shared by benches; the BMP bench uses it.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `argv` to its end; its stdout, or an error naming it with its stderr.
pub fn sh(argv: &[&str]) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A binary built beside this one (`cargo build --release -p bulkhead-testbed --bins`).
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let path = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is not built (cargo build --release -p bulkhead-testbed --bins)", path.display()))
    }
}

/// Two namespaces, `inner` and `outer`, joined by a veth pair (`v0` in `inner`, `v1` in
/// `outer`), each side with its /24 addresses; both removed on drop (and before they are made,
/// in case a killed run left them).
pub struct NsPair {
    pub inner: String,
    pub outer: String,
}

impl NsPair {
    pub fn new(
        inner: &str,
        outer: &str,
        inner_addrs: &[&str],
        outer_addrs: &[&str],
    ) -> Result<NsPair, String> {
        let pair = NsPair { inner: inner.into(), outer: outer.into() };
        pair.delete();
        for ns in [inner, outer] {
            sh(&["ip", "netns", "add", ns])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        sh(&["ip", "-n", inner, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", outer])?;
        for (ns, dev, addrs) in [(inner, "v0", inner_addrs), (outer, "v1", outer_addrs)] {
            for a in addrs {
                sh(&["ip", "-n", ns, "addr", "add", &format!("{a}/24"), "dev", dev])?;
            }
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    fn delete(&self) {
        for ns in [&self.inner, &self.outer] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A process in a namespace, killed on drop, with its stdout read a line at a time.
pub struct NsProc {
    child: Child,
    /// `None` once handed to a draining thread.
    lines: Option<Lines<BufReader<ChildStdout>>>,
    what: String,
}

impl NsProc {
    /// Starts `argv` in namespace `ns` (its stderr discarded); `what` names it in errors.
    pub fn spawn(ns: &str, argv: &[&str], what: &str) -> Result<NsProc, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let stdout = child.stdout.take().ok_or_else(|| format!("{what}: no stdout"))?;
        Ok(NsProc { child, lines: Some(BufReader::new(stdout).lines()), what: what.into() })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of its output that starts with `prefix`; an error when the output ends.
    pub fn line_starting(&mut self, prefix: &str) -> Result<String, String> {
        for line in self.lines.iter_mut().flatten() {
            let line = line.map_err(|e| format!("{}: {e}", self.what))?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
        Err(format!("{} ended before printing {prefix:?}", self.what))
    }

    /// Reads (and drops) the rest of its output on a thread, so that it never blocks on a pipe.
    pub fn drain(mut self) -> NsProcDrained {
        if let Some(lines) = self.lines.take() {
            std::thread::spawn(move || lines.count());
        }
        NsProcDrained(self)
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process whose output is drained in the background; killed on drop.
pub struct NsProcDrained(#[allow(dead_code)] NsProc);

/// Polls `check` every `step` until it says yes (then the time it did) or `limit` passes.
pub fn wait_until(
    limit: Duration,
    step: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<Instant, String> {
    let end = Instant::now() + limit;
    loop {
        if check()? {
            return Ok(Instant::now());
        }
        if Instant::now() >= end {
            return Err(format!("not within {} s", limit.as_secs()));
        }
        std::thread::sleep(step);
    }
}

/// `bgp-feed` in `ns`: one session from `from` to `to`:179 (AS `local_as` to `remote_as`),
/// `prefixes` /24s from 16.0.0.0 with one attribute set, sessions held `hold` seconds. Returns
/// once the session is established; the feed is under way then.
pub fn start_feed(
    ns: &str,
    feeder: &Path,
    to: &str,
    from: &str,
    (local_as, remote_as): (u32, u32),
    prefixes: u32,
    hold: Duration,
) -> Result<NsProcDrained, String> {
    let feeder = feeder.to_str().ok_or("feeder path")?;
    let (local_as, remote_as) = (local_as.to_string(), remote_as.to_string());
    let (prefixes, hold) = (prefixes.to_string(), hold.as_secs().to_string());
    let argv = [feeder, to, &local_as, &remote_as, from, &prefixes, "--hold", &hold];
    let mut feed = NsProc::spawn(ns, &argv, "bgp-feed")?;
    feed.line_starting("established")?;
    Ok(feed.drain())
}
