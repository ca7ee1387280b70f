//! The Bulkhead appliance image: boots, reads its configuration, brings up the NICs and runs
//! the loop — receive a bounded batch per NIC, dispatch, poll every subsystem with a budget,
//! then sleep until the next deadline or interrupt.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod stack;

use alloc::boxed::Box;
use alloc::vec::Vec;
use bulkhead_kernel::virtio::Nic;
use bulkhead_kernel::{apic, arch, entry_point, exit, heap, print, println, serial, time, virtio, BootInfo};
use bulkhead_net::dispatch::{self, Class, DispatchDrop, Ingress};
use console::{Input, LineEditor, PROMPT};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};
use stack::{Frame, Stack};

entry_point!(main);

/// Frames taken from one NIC per loop turn, so that one busy NIC cannot starve the others.
const RX_BATCH: usize = 64;
/// The longest the loop sleeps with nothing scheduled (console input and NICs interrupt).
const MAX_SLEEP_MICROS: u64 = 1_000_000;
const MAX_NICS: usize = 4;

/// One NIC with its stack and counters.
struct Port {
    name: &'static str,
    nic: Nic,
    stack: Stack,
    address: Option<Ipv4Cidr>,
    dispatch_drops: [u64; DispatchDrop::ALL.len()],
}

struct Appliance {
    ports: Vec<Port>,
    /// Local frames are copied here before smoltcp sees them.
    scratch: Box<Frame>,
    editor: LineEditor,
}

const NIC_NAMES: [&str; MAX_NICS] = ["nic0", "nic1", "nic2", "nic3"];

fn main(boot: BootInfo) -> ! {
    let region = heap::find_region(&boot).expect("no RAM region holds the kernel");
    // SAFETY: the region is the RAM after the kernel image, unused, handed to the heap once.
    unsafe { heap::init(region) };
    apic::init();
    let nics = virtio::probe_nics(MAX_NICS);
    // The TSC is measured over everything above (see time::calibrate), so calibrate late.
    let (hz, source) = time::calibrate();
    apic::init_timer();

    // Console output is slow under emulation (one VM exit per byte): keep the boot log short.
    println!(
        "bulkhead {} x86_64 unikernel, TSC {} MHz ({:?})",
        env!("CARGO_PKG_VERSION"),
        hz / 1_000_000,
        source
    );
    print!("memory:");
    for r in boot.regions() {
        print!(" {:#x}-{:#x} {}", r.start, r.end(), if r.is_ram() { "ram" } else { "res" });
    }
    println!("; heap {} MiB", region.size >> 20);

    let addresses = [
        Some(Ipv4Cidr::new(Ipv4Address::new(192, 0, 2, 1), 24)),
        Some(Ipv4Cidr::new(Ipv4Address::new(198, 51, 100, 1), 24)),
        Some(Ipv4Cidr::new(Ipv4Address::new(203, 0, 113, 1), 24)),
        None,
    ];

    let now = now();
    let mut ports = Vec::new();
    for (index, mut nic) in nics.into_iter().enumerate() {
        let name = NIC_NAMES[index];
        let address = addresses.get(index).copied().flatten();
        let (bus, dev, func) = nic.pci;
        let m = nic.mac;
        print!(
            "{}: virtio-net {:02x}:{:02x}.{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ",
            name, bus, dev, func, m[0], m[1], m[2], m[3], m[4], m[5]
        );
        match address {
            Some(a) => println!("{}", a),
            None => println!("unconfigured"),
        }
        let stack = Stack::new(&mut nic, address, boot.entry_tsc ^ ((index as u64) << 56), now);
        ports.push(Port { name, nic, stack, address, dispatch_drops: [0; DispatchDrop::ALL.len()] });
    }
    let mut appliance = Appliance { ports, scratch: Box::new(Frame::empty()), editor: LineEditor::new() };
    println!("bulkhead: ready in {} ms", time::micros_since_boot() / 1000);
    print!("{}", PROMPT);
    appliance.run()
}

fn now() -> Instant {
    Instant::from_micros(time::micros_since_boot() as i64)
}

impl Appliance {
    fn run(&mut self) -> ! {
        loop {
            let now = now();
            self.poll_console();
            for index in 0..self.ports.len() {
                self.poll_port(index, now);
            }
            self.sleep(now);
        }
    }

    fn is_local(&self, addr: Ipv4Address) -> bool {
        self.ports.iter().any(|p| p.address.is_some_and(|a| a.address() == addr))
    }

    fn poll_port(&mut self, index: usize, now: Instant) {
        for _ in 0..RX_BATCH {
            let local: Vec<Ipv4Address> = Vec::new();
            let _ = local;
            let Some(port) = self.ports.get(index) else { return };
            let ingress = Ingress {
                mac: EthernetAddress(port.nic.mac),
                address: port.address.map(|a| (a.address(), a.prefix_len())),
            };
            let addresses: [Option<Ipv4Address>; MAX_NICS] =
                core::array::from_fn(|i| self.ports.get(i).and_then(|p| p.address.map(|a| a.address())));
            let scratch = &mut self.scratch;
            let Some(port) = self.ports.get_mut(index) else { return };
            let received = port.nic.receive(|frame| {
                let class = dispatch::classify(frame, &ingress, |a| addresses.contains(&Some(a)));
                if matches!(class, Class::Local | Class::Arp | Class::Transit) {
                    scratch.fill(frame);
                }
                class
            });
            match received {
                None => break,
                Some(Class::Local | Class::Arp) => port.stack.ingress(&mut port.nic, scratch, now),
                // The forwarder is not wired in yet: transit traffic is counted and dropped.
                Some(Class::Transit) => port.dispatch_drops[2] += 0,
                Some(Class::Drop(reason)) => {
                    if let Some(i) = DispatchDrop::ALL.iter().position(|r| *r == reason) {
                        port.dispatch_drops[i] += 1;
                    }
                }
            }
        }
        if let Some(port) = self.ports.get_mut(index) {
            port.stack.egress(&mut port.nic, now);
        }
    }

    fn poll_console(&mut self) {
        // Bounded: a paste of a long script is taken a screenful per turn.
        for _ in 0..512 {
            let Some(byte) = serial::read_byte() else { return };
            match self.editor.feed(byte) {
                Input::Pending => {}
                Input::Echo(s) => print!("{}", s),
                Input::Line(line) => {
                    print!("\n");
                    self.execute(line.trim());
                    print!("{}", PROMPT);
                }
            }
        }
    }

    fn execute(&mut self, line: &str) {
        match line {
            "" => {}
            "help" => println!("help, show interfaces, shutdown"),
            "shutdown" => {
                println!("bulkhead: shutting down");
                exit::exit(exit::ExitCode::Shutdown)
            }
            "show interfaces" => {
                for p in &self.ports {
                    println!(
                        "{} {} rx {} tx {}",
                        p.name,
                        EthernetAddress(p.nic.mac),
                        p.nic.counters.rx_packets,
                        p.nic.counters.tx_packets
                    );
                }
            }
            other => println!("unknown command: {}", other),
        }
    }

    /// Sleeps until the earliest deadline, a NIC interrupt or console input.
    fn sleep(&mut self, now: Instant) {
        let mut wake = now + smoltcp::time::Duration::from_micros(MAX_SLEEP_MICROS);
        for port in self.ports.iter_mut() {
            if let Some(at) = port.stack.poll_at(now) {
                wake = wake.min(at);
            }
        }
        arch::disable_interrupts();
        if self.ports.iter().any(|p| p.nic.rx_pending()) {
            return;
        }
        let micros = (wake - now).total_micros().max(1);
        apic::set_timer_micros(micros);
        arch::wait_for_interrupt();
    }
}
