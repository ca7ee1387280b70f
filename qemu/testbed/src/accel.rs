//! Which accelerator and firmware a boot uses: the one place that decides it.
//!
//! `BULKHEAD_ACCEL=kvm|tcg|auto` (default `auto`) and `BULKHEAD_FIRMWARE=qboot|seabios`
//! (default qboot when its ROM is installed) override the choice. KVM is probed once per
//! process: `/dev/kvm` must open, then the image must boot to its ready line with `-cpu host`,
//! or else with `-cpu host,-arch-capabilities` (some software hypervisors abort on that MSR).
//! `auto` then boots the image under TCG too and takes the faster of the two: on a real KVM
//! host that is KVM, but under a software hypervisor (no VT-x) TCG can win by a wide margin.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::qemu::QemuSpec;
use crate::vm::start_probe;
use crate::Error;

/// Where QEMU keeps the qboot ROM (Debian package `qemu-system-data`).
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";

/// How long a KVM probe boot may take to print its first console byte (SeaBIOS alone takes
/// about 5 s under a software hypervisor).
const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// The CPU model under KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvmCpu {
    /// `-cpu host`.
    Host,
    /// `-cpu host,-arch-capabilities`.
    HostNoArchCapabilities,
}

impl KvmCpu {
    pub fn qemu_arg(self) -> &'static str {
        match self {
            KvmCpu::Host => "host",
            KvmCpu::HostNoArchCapabilities => "host,-arch-capabilities",
        }
    }
}

/// The accelerator of one boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm(KvmCpu),
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accel::Kvm(cpu) => write!(f, "kvm (-cpu {})", cpu.qemu_arg()),
            Accel::Tcg => f.write_str("tcg"),
        }
    }
}

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelChoice {
    Kvm,
    Tcg,
    Auto,
}

impl AccelChoice {
    pub fn parse(text: &str) -> Result<AccelChoice, Error> {
        match text {
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            "auto" | "" => Ok(AccelChoice::Auto),
            other => Err(Error::BadSetting { name: "accel", value: other.into() }),
        }
    }

    /// `BULKHEAD_ACCEL`, or `auto`.
    pub fn from_env() -> Result<AccelChoice, Error> {
        AccelChoice::parse(&std::env::var("BULKHEAD_ACCEL").unwrap_or_default())
    }
}

/// Firmware that starts the PVH kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// qboot: fast; the kernel assigns PCI BARs itself.
    Qboot,
    /// SeaBIOS, QEMU's default BIOS.
    Seabios,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Qboot => "qboot",
            Firmware::Seabios => "seabios",
        })
    }
}

impl Firmware {
    pub fn parse(text: &str) -> Result<Firmware, Error> {
        match text {
            "qboot" => Ok(Firmware::Qboot),
            "seabios" => Ok(Firmware::Seabios),
            other => Err(Error::BadSetting { name: "firmware", value: other.into() }),
        }
    }

    /// `BULKHEAD_FIRMWARE`, or qboot when its ROM is installed, else SeaBIOS.
    pub fn select() -> Result<Firmware, Error> {
        match std::env::var("BULKHEAD_FIRMWARE") {
            Ok(value) if !value.is_empty() => Firmware::parse(&value),
            _ if Path::new(QBOOT_ROM).exists() => Ok(Firmware::Qboot),
            _ => Ok(Firmware::Seabios),
        }
    }
}

impl Accel {
    /// The accelerator for `choice`; `auto` and `kvm` probe (once per process).
    pub fn select(choice: AccelChoice) -> Result<Accel, Error> {
        match choice {
            AccelChoice::Tcg => Ok(Accel::Tcg),
            AccelChoice::Auto => Ok(Accel::fastest()),
            AccelChoice::Kvm => Accel::probe().map_err(|reason| Error::NoKvm { reason }),
        }
    }

    /// The accelerator from `BULKHEAD_ACCEL`.
    pub fn from_env() -> Result<Accel, Error> {
        Accel::select(AccelChoice::from_env()?)
    }

    /// The KVM CPU model that boots the image, or why none does. Cached per process.
    pub fn probe() -> Result<Accel, String> {
        Accel::probe_timed().map(|(accel, _)| accel)
    }

    /// The faster of KVM (where it works) and TCG, by spawn-to-ready of the image. Cached.
    pub fn fastest() -> Accel {
        static FASTEST: OnceLock<Accel> = OnceLock::new();
        *FASTEST.get_or_init(|| {
            let Ok((kvm, kvm_took)) = Accel::probe_timed() else { return Accel::Tcg };
            let Ok(firmware) = Firmware::select() else { return kvm };
            let tcg = QemuSpec::new(crate::image_path(), Accel::Tcg, firmware);
            match start_probe(&tcg, PROBE_LIMIT) {
                Ok(tcg_took) if tcg_took < kvm_took => {
                    eprintln!(
                        "testbed: TCG boots to ready in {} ms, KVM in {} ms: using TCG",
                        tcg_took.as_millis(),
                        kvm_took.as_millis()
                    );
                    Accel::Tcg
                }
                Ok(tcg_took) => {
                    eprintln!(
                        "testbed: KVM boots to ready in {} ms, TCG in {} ms: using KVM",
                        kvm_took.as_millis(),
                        tcg_took.as_millis()
                    );
                    kvm
                }
                Err(why) => {
                    eprintln!("testbed: TCG probe failed ({why}): using KVM");
                    kvm
                }
            }
        })
    }

    fn probe_timed() -> Result<(Accel, Duration), String> {
        static PROBED: OnceLock<Result<(Accel, Duration), String>> = OnceLock::new();
        PROBED
            .get_or_init(|| {
                let found = probe_kvm();
                match &found {
                    Ok((accel, took)) => {
                        eprintln!("testbed: KVM probe: {accel} boots the image ({} ms)", took.as_millis())
                    }
                    Err(why) => eprintln!("testbed: KVM probe: unusable ({why}); using TCG"),
                }
                found
            })
            .clone()
    }
}

fn probe_kvm() -> Result<(Accel, Duration), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let image = crate::image_path();
    if !image.exists() {
        return Err(format!("{} not found: run make image", image.display()));
    }
    let firmware = Firmware::select().map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for cpu in [KvmCpu::Host, KvmCpu::HostNoArchCapabilities] {
        let spec = QemuSpec::new(image.clone(), Accel::Kvm(cpu), firmware);
        match start_probe(&spec, PROBE_LIMIT) {
            Ok(took) => return Ok((Accel::Kvm(cpu), took)),
            Err(why) => failures.push(format!("-cpu {}: {why}", cpu.qemu_arg())),
        }
    }
    Err(failures.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!(AccelChoice::parse("kvm").unwrap(), AccelChoice::Kvm);
        assert_eq!(AccelChoice::parse("").unwrap(), AccelChoice::Auto);
        assert!(AccelChoice::parse("xen").is_err());
        assert_eq!(Firmware::parse("seabios").unwrap(), Firmware::Seabios);
        assert!(Firmware::parse("uefi").is_err());
        assert_eq!(Accel::select(AccelChoice::Tcg).unwrap(), Accel::Tcg);
    }
}
