//! Peers that the integration tests run in a namespace (BIRD, GoBGP, FRR, pmbmpd, tshark) and
//! the directory that holds their files: each removed on drop, also when a test panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Netns;

/// A process in a namespace, killed on drop.
pub struct Daemon {
    child: Child,
    what: String,
}

impl Daemon {
    /// Starts `argv` in `ns`, its output discarded; `what` names it in messages.
    pub fn spawn(ns: &Netns, argv: &[&str], what: &str) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Daemon { child, what: what.to_string() }
    }

    /// Takes charge of a process started some other way (its own environment, say).
    pub fn adopt(child: Child, what: &str) -> Daemon {
        Daemon { child, what: what.to_string() }
    }

    /// SIGKILL: the kernel closes its connections (a BGP peer sends no NOTIFICATION).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, then SIGKILL after 5 s: a capture or a log is written whole.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            self.kill();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            eprintln!("stopped {}", self.what);
        }
    }
}

/// A directory under the temp dir named after `tag` and this process, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("bulkhead-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }

    /// The directory itself.
    pub fn dir(&self) -> &std::path::Path {
        &self.0
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
