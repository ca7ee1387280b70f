//! The hardware-facing part of Bulkhead: PVH boot, x86_64, paging, interrupts, time, the
//! console, PCI and virtio-net, fw_cfg, and the global allocator. Everything else (protocols,
//! subsystems, configuration) lives in `no_std` crates that test on the host; this crate only
//! drives them. `unsafe` is confined here.
#![no_std]

extern crate alloc;

pub mod apic;
pub mod arch;
pub mod boot;
pub mod exit;
pub mod fwcfg;
pub mod heap;
pub mod paging;
pub mod pci;
pub mod rng;
pub mod rtc;
pub mod serial;
pub mod time;
pub mod virtio;
pub mod virtio_rng;

pub use boot::BootInfo;

unsafe extern "Rust" {
    /// The appliance's main function, defined by the image with `entry_point!`.
    fn bulkhead_main(boot: BootInfo) -> !;
}

/// Declares the image's main function: `entry_point!(main)` with `fn main(BootInfo) -> !`.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(export_name = "bulkhead_main")]
        fn __bulkhead_main(boot: $crate::BootInfo) -> ! {
            let main: fn($crate::BootInfo) -> ! = $main;
            main(boot)
        }
    };
}

/// Called by the PVH entry code in long mode with the `hvm_start_info` address.
#[unsafe(no_mangle)]
extern "C" fn kernel_entry(start_info: u32) -> ! {
    let entry_tsc = arch::rdtsc();
    time::set_entry(entry_tsc);
    time::start_pit_window();
    serial::init();
    serial::init_logger();
    arch::init_idt();
    // SAFETY: start_info is what the PVH loader passed in ebx.
    let Some(boot) = (unsafe { BootInfo::from_start_info(start_info, entry_tsc) }) else {
        println!("bulkhead: no PVH start info (boot with qemu -kernel)");
        exit::exit(exit::ExitCode::Panic);
    };
    // SAFETY: the boot contract is met: the image's main is declared with entry_point!.
    unsafe { bulkhead_main(boot) }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::disable_interrupts();
    match info.location() {
        Some(l) => serial::write_fmt_force(format_args!(
            "\npanicked at {}:{}:{}: {}\n",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        )),
        None => serial::write_fmt_force(format_args!("\npanicked: {}\n", info.message())),
    }
    exit::exit(exit::ExitCode::Panic)
}
