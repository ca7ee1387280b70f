//! The Bulkhead appliance image: boots, brings up the NICs, and runs the loop.
#![no_std]
#![no_main]

extern crate alloc;

use bulkhead_kernel::{apic, arch, entry_point, heap, println, serial, time, virtio, BootInfo};

entry_point!(main);

fn main(boot: BootInfo) -> ! {
    println!("bulkhead {} booting", env!("CARGO_PKG_VERSION"));
    for r in boot.regions() {
        println!(
            "memory: {:#012x}-{:#012x} {}",
            r.start,
            r.end(),
            if r.is_ram() { "ram" } else { "reserved" }
        );
    }
    let region = heap::find_region(&boot).expect("no RAM for the heap");
    // SAFETY-free: the kernel crate owns the unsafe; this call is the documented boot step.
    unsafe_heap_init(region);
    let (hz, source) = time::calibrate();
    println!("clock: TSC {} kHz ({:?})", hz / 1000, source);
    apic::init();
    let nics = virtio::probe_nics(4);
    for (i, nic) in nics.iter().enumerate() {
        println!("nic{}: mac {:02x?} pci {:?}", i, nic.mac, nic.pci);
    }
    let ms = time::micros_since_boot() / 1000;
    println!("bulkhead: ready in {} ms", ms);
    loop {
        if let Some(b) = serial::read_byte() {
            if b == b'q' {
                bulkhead_kernel::exit::exit(bulkhead_kernel::exit::ExitCode::Shutdown);
            }
        }
        apic::set_timer_micros(1_000_000);
        arch::wait_for_interrupt();
    }
}

fn unsafe_heap_init(region: heap::HeapRegion) {
    // SAFETY: the region is the RAM after the kernel image, unused, given to the heap once.
    unsafe { heap::init(region) }
}
