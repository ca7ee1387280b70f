//! One boot of the image in QEMU: spawn on a topology, wait for ready, talk to the console,
//! wait for the exit code; QEMU is killed and the topology removed on drop.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use crate::accel::{Accel, Firmware};
use crate::console::{self, Console, WaitEnd, ENTER, PROMPT};
use crate::net::{self, Interface};
use crate::qemu::{Icount, QemuSpec, DEFAULT_MEM_MIB};
use crate::topology::{Nic, Topology};
use crate::Error;

/// What a boot may take unless told otherwise (KVM with SeaBIOS takes seconds).
pub const DEFAULT_BOOT_LIMIT: Duration = Duration::from_secs(60);
/// What one console command may take unless told otherwise.
pub const DEFAULT_COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// How a boot is set up. Defaults: 4 NICs with the image's default configuration, 256 MiB,
/// accelerator and firmware from [`Accel::from_env`] and [`Firmware::select`].
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// Names the log file of a failed test; defaults to the current thread's (the test's) name.
    pub name: String,
    pub nics: usize,
    /// The interface plan; when `None`, from `config` or the image's defaults.
    pub interfaces: Option<Vec<Interface>>,
    pub mem_mib: u32,
    /// A configuration file passed through fw_cfg.
    pub config: Option<PathBuf>,
    pub accel: Option<Accel>,
    pub firmware: Option<Firmware>,
    pub boot_limit: Duration,
    pub command_limit: Duration,
    /// Print the accelerator and firmware of the boot (every test should say them).
    pub announce: bool,
    /// QEMU's instruction counting under TCG (see [`Icount`]); off unless asked for.
    pub icount: Option<Icount>,
}

impl Default for VmOptions {
    fn default() -> VmOptions {
        let name = std::thread::current().name().unwrap_or("vm").replace("::", "-");
        VmOptions {
            name,
            nics: net::MAX_NICS,
            interfaces: None,
            mem_mib: DEFAULT_MEM_MIB,
            config: None,
            accel: None,
            firmware: None,
            boot_limit: DEFAULT_BOOT_LIMIT,
            command_limit: DEFAULT_COMMAND_LIMIT,
            announce: true,
            icount: None,
        }
    }
}

impl VmOptions {
    pub fn new() -> VmOptions {
        VmOptions::default()
    }

    pub fn name(mut self, name: &str) -> VmOptions {
        self.name = name.to_string();
        self
    }

    pub fn nics(mut self, nics: usize) -> VmOptions {
        self.nics = nics;
        self
    }

    pub fn mem_mib(mut self, mib: u32) -> VmOptions {
        self.mem_mib = mib;
        self
    }

    /// Passes `path` through fw_cfg; the namespaces take their addresses from its interfaces.
    pub fn config(mut self, path: impl Into<PathBuf>) -> VmOptions {
        self.config = Some(path.into());
        self
    }

    pub fn accel(mut self, accel: Accel) -> VmOptions {
        self.accel = Some(accel);
        self
    }

    pub fn firmware(mut self, firmware: Firmware) -> VmOptions {
        self.firmware = Some(firmware);
        self
    }

    /// Does not print the accelerator and firmware (for benches that boot many times).
    pub fn quiet(mut self) -> VmOptions {
        self.announce = false;
        self
    }

    /// Under TCG, the guest's clocks count its instructions, 2^`shift` ns each (see
    /// [`Icount`]); under KVM this changes nothing.
    pub fn icount(mut self, shift: u8) -> VmOptions {
        self.icount = Some(Icount { shift });
        self
    }

    pub fn boot_limit(mut self, limit: Duration) -> VmOptions {
        self.boot_limit = limit;
        self
    }

    /// The interface plan this boot will use.
    pub fn interface_plan(&self) -> Result<Vec<Interface>, Error> {
        if let Some(plan) = &self.interfaces {
            return Ok(plan.clone());
        }
        match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::io(format!("config {}", path.display()), e))?;
                Ok(net::interfaces_from_config(&text, self.nics))
            }
            None => Ok(net::default_interfaces(self.nics)),
        }
    }

    /// The QEMU spec for these options on `topology`, deciding accelerator and firmware.
    pub fn qemu_spec(&self, topology: &Topology) -> Result<QemuSpec, Error> {
        let image = crate::image_path();
        if !image.exists() {
            return Err(Error::ImageMissing(image));
        }
        let accel = match self.accel {
            Some(accel) => accel,
            None => Accel::from_env()?,
        };
        let firmware = match self.firmware {
            Some(firmware) => firmware,
            None => Firmware::select()?,
        };
        let mut spec = QemuSpec::new(image, accel, firmware);
        spec.mem_mib = self.mem_mib;
        spec.config = self.config.clone();
        spec.taps = topology.tap_fds();
        spec.icount = self.icount;
        Ok(spec)
    }
}

/// The ready line of a boot.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    /// N of `bulkhead: ready in N ms`: kernel entry to ready, as the guest measured it.
    pub kernel_ms: f64,
    /// From spawning QEMU to seeing the ready line, as the host measured it.
    pub spawn_to_ready: Duration,
}

/// A running (or exited) QEMU with the image.
pub struct Vm {
    name: String,
    spec: QemuSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    console: Console,
    stderr: Console,
    /// Console bytes already consumed by boot and commands.
    cursor: usize,
    spawned: Instant,
    ready: Option<Ready>,
    exit_code: Option<Option<i32>>,
    command_limit: Duration,
    // Dropped after QEMU is gone (see Drop).
    topology: Topology,
}

impl Vm {
    /// Creates the topology and boots, waiting for the ready line and the first prompt.
    pub fn boot(options: VmOptions) -> Result<Vm, Error> {
        let limit = options.boot_limit;
        let mut vm = Vm::spawn(options)?;
        vm.wait_ready(limit)?;
        Ok(vm)
    }

    /// Creates the topology and starts QEMU without waiting for anything.
    pub fn spawn(options: VmOptions) -> Result<Vm, Error> {
        let topology = Topology::create(&options.interface_plan()?)?;
        Vm::spawn_on(options, topology)
    }

    /// Starts QEMU on a topology made earlier (`Topology::create(&options.interface_plan()?)`),
    /// so that traffic can already flow in the namespaces before the appliance starts.
    pub fn spawn_on(options: VmOptions, topology: Topology) -> Result<Vm, Error> {
        let image = crate::image_path();
        if !image.exists() {
            return Err(Error::ImageMissing(image));
        }
        let spec = options.qemu_spec(&topology)?;
        if options.announce {
            println!(
                "testbed: {}: accel={}{} firmware={} nics={} image={}",
                options.name,
                spec.accel,
                match spec.icount_in_effect() {
                    Some(icount) => format!(" icount=shift {}", icount.shift),
                    None => String::new(),
                },
                spec.firmware,
                topology.nics().len(),
                spec.image.display()
            );
        }
        let spawned = Instant::now();
        let mut child = spec
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(crate::qemu::QEMU, e))?;
        let mirror = std::env::var_os("BULKHEAD_CONSOLE").is_some();
        let console = Console::gather(child.stdout.take().expect("piped stdout"), mirror);
        let stderr = Console::gather(child.stderr.take().expect("piped stderr"), mirror);
        Ok(Vm {
            name: options.name,
            spec,
            stdin: child.stdin.take(),
            child,
            console,
            stderr,
            cursor: 0,
            spawned,
            ready: None,
            exit_code: None,
            command_limit: options.command_limit,
            topology,
        })
    }

    /// Waits for `bulkhead: ready in N ms` and then the first prompt.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<Ready, Error> {
        let deadline = self.spawned + limit;
        let found = self.console.wait_for(self.cursor, deadline, console::find_ready);
        let (kernel_ms, line_end) = self.waited(found, "the ready line", limit)?;
        let ready = Ready { kernel_ms, spawn_to_ready: self.spawned.elapsed() };
        self.cursor += line_end;
        let prompt = self.console.wait_for(self.cursor, deadline, |t| console::find_prompt(t, 0));
        let at = self.waited(prompt, "the first prompt", limit)?;
        self.cursor += at + PROMPT.len();
        self.ready = Some(ready);
        Ok(ready)
    }

    /// Sends `command` and returns its answer: the lines between the echo and the next
    /// prompt, joined with `\n`.
    pub fn command(&mut self, command: &str) -> Result<String, Error> {
        Ok(self.command_lines(command)?.join("\n"))
    }

    /// Sends `command` and returns the lines of its answer.
    pub fn command_lines(&mut self, command: &str) -> Result<Vec<String>, Error> {
        self.send_line(command)?;
        let limit = self.command_limit;
        let found =
            self.console.wait_for(self.cursor, Instant::now() + limit, |t| console::answer(t, command));
        let (lines, used) = self.waited(found, &format!("the answer to {command:?}"), limit)?;
        self.cursor += used;
        Ok(lines)
    }

    /// Sends a `show X json` command and parses its one JSON line.
    pub fn command_json(&mut self, command: &str) -> Result<serde_json::Value, Error> {
        let lines = self.command_lines(command)?;
        let protocol = |reason: String| Error::Protocol { command: command.into(), reason };
        let line = console::json_line(&lines).map_err(protocol)?;
        serde_json::from_str(line).map_err(|e| protocol(format!("{e} in {line:?}")))
    }

    /// Types `line` and Enter, without waiting for anything.
    pub fn send_line(&mut self, line: &str) -> Result<(), Error> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Exited { waiting_for: format!("console input {line:?}"), code: None })?;
        stdin
            .write_all(format!("{line}{ENTER}").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| Error::io("writing to the console", e))
    }

    /// Waits until `needle` appears on the console after everything consumed so far and
    /// returns its line; the console up to the end of that line counts as consumed.
    pub fn wait_for_text(&mut self, needle: &str, limit: Duration) -> Result<String, Error> {
        Ok(self.wait_for_first(&[needle], limit)?.1)
    }

    /// Waits for whichever of `needles` appears first on the console after everything
    /// consumed so far, in a complete line; returns its index and that line, and consumes
    /// the console up to the end of it.
    pub fn wait_for_first(&mut self, needles: &[&str], limit: Duration) -> Result<(usize, String), Error> {
        let found = self.console.wait_for(self.cursor, Instant::now() + limit, |t| {
            let (at, which) = needles
                .iter()
                .enumerate()
                .filter_map(|(i, needle)| t.find(needle).map(|at| (at, i)))
                .min()?;
            let start = t[..at].rfind('\n').map_or(0, |i| i + 1);
            // Only a whole line counts: the rest of it may still be on its way.
            let end = at + t[at..].find('\n')? + 1;
            Some((which, t[start..end].trim_end().to_string(), end))
        });
        let (which, line, end) = self.waited(found, &format!("one of {needles:?} on the console"), limit)?;
        self.cursor += end;
        Ok((which, line))
    }

    /// Waits for QEMU to exit and returns its exit code (a guest's isa-debug-exit value v
    /// gives `(v << 1) | 1`). A QEMU killed by a signal is an error.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<i32, Error> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(code) = self.try_exit()? {
                return code.ok_or(Error::Exited { waiting_for: "an exit code".into(), code: None });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout { waiting_for: "QEMU to exit".into(), after: limit });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types `shutdown` and waits (10 s) for the exit code.
    pub fn shutdown(&mut self) -> Result<i32, Error> {
        self.send_line("shutdown")?;
        self.wait_exit(Duration::from_secs(10))
    }

    /// Everything the guest printed so far.
    pub fn console_text(&self) -> String {
        self.console.text()
    }

    /// What QEMU printed on its standard error so far.
    pub fn qemu_stderr(&self) -> String {
        self.stderr.text()
    }

    pub fn ready(&self) -> Option<Ready> {
        self.ready
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time QEMU has used so far (user + system, from `/proc/PID/stat`).
    pub fn cpu_time(&self) -> Option<Duration> {
        crate::topology::cpu_time(self.pid())
    }

    pub fn spec(&self) -> &QemuSpec {
        &self.spec
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// NIC `k` (its namespace is `vm.nic(k).ns`).
    pub fn nic(&self, k: usize) -> &Nic {
        self.topology.nic(k)
    }

    /// Writes the console and QEMU's standard error to `qemu/logs/<name>.log`.
    pub fn write_log(&self) -> std::io::Result<PathBuf> {
        let dir = crate::repo_root().join("qemu/logs");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.log", self.name));
        let text = format!(
            "# {}\n# exit: {}\n{}\n# QEMU stderr:\n{}",
            self.spec.display(),
            match self.exit_code {
                Some(Some(code)) => code.to_string(),
                Some(None) => "killed by a signal".into(),
                None => "still running".into(),
            },
            self.console_text().replace('\r', ""),
            self.qemu_stderr()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn try_exit(&mut self) -> Result<Option<Option<i32>>, Error> {
        if self.exit_code.is_none() {
            if let Some(status) = self.child.try_wait().map_err(|e| Error::io("waitpid", e))? {
                self.exit_code = Some(status.code());
                self.stdin = None;
            }
        }
        Ok(self.exit_code)
    }

    /// Turns the end of a console wait into an error that says what was awaited; on failure
    /// the log is written at once (the caller may never get a `Vm` to drop).
    fn waited<T>(&mut self, found: Result<T, WaitEnd>, what: &str, limit: Duration) -> Result<T, Error> {
        let error = match found {
            Ok(hit) => return Ok(hit),
            Err(WaitEnd::Deadline) => Error::Timeout { waiting_for: what.into(), after: limit },
            Err(WaitEnd::Closed) => {
                // The pipe closes as QEMU exits; give it a moment to be reaped.
                let _ = self.wait_exit(Duration::from_secs(2));
                Error::Exited { waiting_for: what.into(), code: self.exit_code.flatten() }
            }
        };
        match self.write_log() {
            Ok(path) => eprintln!("testbed: {}: {error}; console log in {}", self.name, path.display()),
            Err(e) => eprintln!("testbed: {}: {error}; writing the console log failed: {e}", self.name),
        }
        Err(error)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.exit_code.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit_code = Some(status.code());
            }
        }
        if std::thread::panicking() {
            match self.write_log() {
                Ok(path) => eprintln!("testbed: {}: console log in {}", self.name, path.display()),
                Err(e) => eprintln!("testbed: {}: writing the console log failed: {e}", self.name),
            }
        }
    }
}

/// Starts `spec` (no NICs, no input) and waits until the guest prints anything: the KVM probe.
/// Boots `spec` until the ready line and returns how long that took from spawning QEMU.
pub(crate) fn start_probe(spec: &QemuSpec, limit: Duration) -> Result<Duration, String> {
    let spawned = Instant::now();
    let mut child = spec
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", crate::qemu::QEMU))?;
    let console = Console::gather(child.stdout.take().expect("piped stdout"), false);
    let stderr = Console::gather(child.stderr.take().expect("piped stderr"), false);
    let started =
        console.wait_for(0, spawned + limit, |t| t.contains("bulkhead: ready in").then(|| spawned.elapsed()));
    let _ = child.kill();
    let status = child.wait();
    match started {
        Ok(took) => Ok(took),
        Err(WaitEnd::Deadline) => Err(format!("not ready in {} s", limit.as_secs())),
        Err(WaitEnd::Closed) => {
            let said = stderr.text();
            let last = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
            Err(format!("QEMU ended ({status:?}) before any console output: {last}"))
        }
    }
}
