//! The QEMU command line: the one place that decides it.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::accel::{Accel, Firmware, QBOOT_ROM};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// I/O port of `isa-debug-exit`: the guest writes v, QEMU exits with `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exit codes of QEMU that the contract gives a meaning.
pub mod exit {
    /// `shutdown` on the console.
    pub const SHUTDOWN: i32 = 33;
    /// A kernel panic (`panicked at FILE:LINE` on the console).
    pub const PANIC: i32 = 3;
    /// The configuration was refused at boot (`config line L: KEY: message`).
    pub const CONFIG_REFUSED: i32 = 5;
}

/// Memory of the guest unless told otherwise.
pub const DEFAULT_MEM_MIB: u32 = 256;

/// Name of the configuration file in fw_cfg.
pub const FW_CFG_CONFIG: &str = "opt/bulkhead/config.toml";

/// QEMU's instruction counting (`-icount shift=N,sleep=on`), under TCG only: the guest's
/// clocks (TSC, PIT, local APIC timer) then advance by 2^N ns per instruction the guest
/// executes, and by host time only while it halts. A span the guest measures with its TSC is
/// then its own work: the time TCG spends translating code and the time the vCPU thread is
/// preempted by the host cost it nothing, so the figure does not vary with the host's load.
/// With shift 0 (1 ns an instruction, a rate below any current x86 core's) 1 ms is one
/// million guest instructions. KVM has no such mode: under KVM the option adds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icount {
    /// log2 of the nanoseconds one instruction counts for (QEMU takes 0 to 10).
    pub shift: u8,
}

/// Everything that decides one QEMU command line.
#[derive(Clone, Debug)]
pub struct QemuSpec {
    pub image: PathBuf,
    pub accel: Accel,
    pub firmware: Firmware,
    pub mem_mib: u32,
    /// A configuration passed in through fw_cfg.
    pub config: Option<PathBuf>,
    /// Open TAP file descriptors, NIC K = `taps[K]`; QEMU inherits them.
    pub taps: Vec<RawFd>,
    /// For another kernel booted on the same command line (the bench's Linux router): its
    /// initramfs and command line.
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// Instruction counting (TCG only; ignored under KVM).
    pub icount: Option<Icount>,
}

impl QemuSpec {
    pub fn new(image: PathBuf, accel: Accel, firmware: Firmware) -> QemuSpec {
        QemuSpec {
            image,
            accel,
            firmware,
            mem_mib: DEFAULT_MEM_MIB,
            config: None,
            taps: Vec::new(),
            initrd: None,
            append: None,
            icount: None,
        }
    }

    /// The instruction counting this command line asks for: `icount` under TCG, else none.
    pub fn icount_in_effect(&self) -> Option<Icount> {
        self.icount.filter(|_| self.accel == Accel::Tcg)
    }

    /// The MAC address of NIC `k`.
    pub fn mac(k: usize) -> String {
        format!("52:54:00:b0:00:{k:02x}")
    }

    /// The arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-machine",
            "pc",
            "-m",
            &self.mem_mib.to_string(),
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-kernel",
            &self.image.to_string_lossy(),
            "-device",
            &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"),
            "-chardev",
            "stdio,id=con0,signal=on",
            "-serial",
            "chardev:con0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(initrd) = &self.initrd {
            args.extend(["-initrd".into(), initrd.to_string_lossy().into_owned()]);
        }
        if let Some(append) = &self.append {
            args.extend(["-append".into(), append.clone()]);
        }
        if self.firmware == Firmware::Qboot {
            args.extend(["-bios".into(), QBOOT_ROM.into()]);
        }
        match self.accel {
            Accel::Kvm(cpu) => {
                args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), cpu.qemu_arg().into()])
            }
            Accel::Tcg => {
                args.extend(["-accel".into(), "tcg".into()]);
                if let Some(icount) = self.icount_in_effect() {
                    args.extend(["-icount".into(), format!("shift={},sleep=on", icount.shift)]);
                }
            }
        }
        if let Some(config) = &self.config {
            args.extend([
                "-fw_cfg".into(),
                format!("name={FW_CFG_CONFIG},file={}", config.to_string_lossy()),
            ]);
        }
        for (k, fd) in self.taps.iter().enumerate() {
            args.extend([
                "-netdev".into(),
                format!("tap,id=n{k},fd={fd}"),
                "-device".into(),
                format!("virtio-net-pci,netdev=n{k},disable-legacy=on,mac={}", QemuSpec::mac(k)),
            ]);
        }
        // The host's entropy for the appliance's random seed (CPUs under TCG have no RDRAND).
        args.extend(["-device".into(), "virtio-rng-pci,disable-legacy=on".into()]);
        args
    }

    /// The command, with the TAP descriptors handed down, SIGINT and SIGHUP back at their
    /// defaults (a caller may ignore them) and QEMU killed if the spawning thread dies.
    /// Standard I/O is left to the caller.
    pub fn command(&self) -> Command {
        let mut command = Command::new(QEMU);
        command.args(self.args());
        let taps = self.taps.clone();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (fcntl, signal, prctl) on values it owns.
        unsafe {
            command.pre_exec(move || {
                for &fd in &taps {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command
    }

    /// The command line as one shell-like string, for messages.
    pub fn display(&self) -> String {
        std::iter::once(QEMU.to_string()).chain(self.args()).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::KvmCpu;

    #[test]
    fn command_line_has_nics_in_pci_order_and_modern_virtio_only() {
        let mut spec = QemuSpec::new("img.elf".into(), Accel::Kvm(KvmCpu::Host), Firmware::Qboot);
        spec.taps = vec![7, 9];
        spec.config = Some("/tmp/c.toml".into());
        let line = spec.display();
        assert!(line.starts_with("qemu-system-x86_64 -machine pc -m 256 -smp 1 -nodefaults"));
        assert!(line.contains("-kernel img.elf"));
        assert!(line.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(line.contains("-bios /usr/share/qemu/qboot.rom -accel kvm -cpu host "));
        assert!(line.contains("-fw_cfg name=opt/bulkhead/config.toml,file=/tmp/c.toml"));
        assert!(line.ends_with(
            "-netdev tap,id=n0,fd=7 -device virtio-net-pci,netdev=n0,disable-legacy=on,\
             mac=52:54:00:b0:00:00 -netdev tap,id=n1,fd=9 -device virtio-net-pci,netdev=n1,\
             disable-legacy=on,mac=52:54:00:b0:00:01 -device virtio-rng-pci,disable-legacy=on"
        ));
        assert!(!line.contains("disable-modern"));
    }

    #[test]
    fn seabios_and_tcg_add_no_bios_and_no_cpu() {
        let spec = QemuSpec::new("i".into(), Accel::Tcg, Firmware::Seabios);
        let args = spec.args();
        assert!(!args.iter().any(|a| a == "-bios" || a == "-cpu"));
        assert!(args.windows(2).any(|w| w == ["-accel", "tcg"]));
        assert!(!args.iter().any(|a| a == "-icount"));
    }

    #[test]
    fn icount_is_passed_under_tcg_and_left_out_under_kvm() {
        let mut spec = QemuSpec::new("i".into(), Accel::Tcg, Firmware::Qboot);
        spec.icount = Some(Icount { shift: 0 });
        assert!(spec.display().contains("-accel tcg -icount shift=0,sleep=on "));
        spec.accel = Accel::Kvm(KvmCpu::Host);
        assert!(!spec.args().iter().any(|a| a == "-icount"));
    }
}
