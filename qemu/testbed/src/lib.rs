//! Host-side QEMU test bed for the Bulkhead image.
//!
//! A test builds a [`Topology`] (one network namespace per NIC, each holding a TAP device with
//! the `.2` address of that NIC's subnet), boots the image on it with [`Vm::boot`] under a time
//! limit, talks to the serial console ([`Vm::command`], [`Vm::command_json`]) and runs host
//! tools inside the namespaces ([`Netns::run`]). Everything it creates is removed on drop, also
//! when the test panics; the serial log of a failed test is written to `qemu/logs/<test>.log`.
//!
//! One place decides each choice: the QEMU command line is built in [`qemu`], the accelerator
//! and firmware are chosen in [`accel`], names of namespaces in [`topology`].

pub mod accel;
pub mod checks;
pub mod console;
pub mod daemon;
mod error;
pub mod net;
pub mod qemu;
pub mod topology;
mod vm;

pub use accel::{Accel, Firmware, KvmCpu};
pub use error::Error;
pub use net::{Interface, Ipv4Cidr};
pub use qemu::Icount;
pub use topology::{Netns, Nic, RunOutput, Topology};
pub use vm::{Ready, Vm, VmOptions};

/// The error of a boot (and of everything else the test bed does).
pub type BootError = Error;

use std::path::PathBuf;

/// The root of the workspace (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(|qemu| qemu.parent()).map(PathBuf::from).unwrap_or(manifest)
}

/// The image under test: `$BULKHEAD_IMAGE`, or `images/out/bulkhead.elf` (built by `make image`).
pub fn image_path() -> PathBuf {
    match std::env::var_os("BULKHEAD_IMAGE") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join("images/out/bulkhead.elf"),
    }
}

/// A file in the temporary directory (a configuration for `-fw_cfg`, say), removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `text` to a file named after `tag` and this process.
    pub fn new(tag: &str, text: &str) -> std::io::Result<TempFile> {
        let path = std::env::temp_dir().join(format!("bulkhead-{tag}-{}.toml", std::process::id()));
        std::fs::write(&path, text)?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether this process runs as root (namespaces and TAP devices need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For tests: `true` when they can run; otherwise prints why the test is skipped.
/// Only a missing root is a reason to skip; a missing image is an error at boot.
pub fn can_run(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces and TAP devices)");
    false
}
pub use serde_json;
