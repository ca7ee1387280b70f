//! `isa-debug-exit` (iobase 0xf4): how the appliance tells QEMU its verdict.
//! QEMU exits with `(value << 1) | 1`.

use crate::arch::{halt, outl};

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the appliance stopped; the value written to the exit port.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum ExitCode {
    /// The `shutdown` command (QEMU returns 33).
    Shutdown = 0x10,
    /// A panic (QEMU returns 3).
    Panic = 0x01,
    /// The configuration was refused at boot (QEMU returns 5).
    ConfigRefused = 0x02,
}

/// Leaves QEMU with `code`; on a hypervisor without the device, halts.
pub fn exit(code: ExitCode) -> ! {
    outl(DEBUG_EXIT_PORT, code as u32);
    halt()
}
