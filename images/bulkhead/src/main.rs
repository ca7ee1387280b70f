//! The Bulkhead appliance image: boots, reads its configuration, brings up the NICs and runs
//! the loop — receive a bounded batch per NIC, dispatch, poll every subsystem with a budget,
//! then sleep until the next deadline or interrupt.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod stack;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use bulkhead_apps::addr::Ipv4Cidr as ConfigCidr;
use bulkhead_apps::books::AllocatorBooks;
use bulkhead_apps::config::{Config, MemoryPlan, NicId};
use bulkhead_apps::console::{
    self as commands, Command, DomainMemory, ForwardingCounters, HeapStatus, InterfaceStatus, MemoryStatus,
};
use bulkhead_apps::diag::{self, Reserved};
use bulkhead_apps::domain::Domain;
use bulkhead_apps::forwarder::{self as forwarding, ForwarderPlan, ForwarderSubsystem, SharedForwarder};
use bulkhead_apps::routing;
use bulkhead_apps::supervisor::{RestartPolicy, Subsystem, Supervisor, MAX_TASKS_PER_DOMAIN};
use bulkhead_apps::units::ExactSize;
use bulkhead_kernel::heap::ALLOCATOR;
use bulkhead_kernel::virtio::Nic;
use bulkhead_kernel::{
    apic, arch, entry_point, exit, fwcfg, heap, print, println, serial, time, virtio, BootInfo,
};
use bulkhead_net::dispatch::{self, Class, DispatchDrop, Ingress};
use bulkhead_net::router::{self, DropReason};
use console::{ConsoleWriter, Input, LineEditor, PROMPT};
use core::cell::RefCell;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};
use stack::{Frame, Stack};

entry_point!(main);

/// Frames taken from one NIC per loop turn, so that one busy NIC cannot starve the others.
const RX_BATCH: usize = 64;
/// The longest the loop sleeps with nothing scheduled (console input and NICs interrupt).
const MAX_SLEEP_MICROS: u64 = 1_000_000;
const MAX_NICS: usize = 4;
/// The fw_cfg file that carries the configuration.
const CONFIG_FILE: &str = "opt/bulkhead/config.toml";
/// A shed subsystem restarts this soon the first time, then with doubling backoff.
const FIRST_RESTART_BACKOFF: bulkhead_apps::time::Duration = bulkhead_apps::time::Duration::from_millis(1);
/// The most one subsystem poll may allocate, diagnostics tasks excluded (every subsystem does
/// bounded work per poll; the forwarder's flow table is allocated at start, not per packet).
const MAX_SUBSYSTEM_STEP: usize = 64 * 1024;
/// The most one domain may allocate in a loop turn before the supervisor's quota check.
const MAX_DOMAIN_STEP: usize = MAX_SUBSYSTEM_STEP + MAX_TASKS_PER_DOMAIN * diag::MAX_TASK_STEP;

/// Flows listed by `show flows`.
const TOP_FLOWS: usize = 10;

/// One NIC with its stack and counters.
struct Port {
    name: &'static str,
    nic: Nic,
    stack: Stack,
    address: Option<Ipv4Cidr>,
    mtu: u16,
    dispatch_drops: [u64; DispatchDrop::ALL.len()],
}

struct Appliance {
    ports: Vec<Port>,
    supervisor: Supervisor<AllocatorBooks>,
    /// The forwarding core, built and shed by its subsystem; driven from the loop.
    forwarder: SharedForwarder,
    /// When the forwarder's timers (ARP retries, flow expiry) are due, in µs since boot.
    forwarder_due: u64,
    /// A running `debug blast`: (NIC, until µs since boot, frame length).
    blast: Option<(usize, u64, usize)>,
    diagnostics: bool,
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
    let nics = {
        let _net = ALLOCATOR.enter(Domain::Net);
        virtio::probe_nics(MAX_NICS)
    };
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

    let config = load_config();
    let plan = apply_memory_plan(&config, region.size as usize);
    let now = now();
    let mut ports = Vec::new();
    for (index, mut nic) in nics.into_iter().enumerate() {
        let name = NIC_NAMES[index];
        let interface = NicId::from_name(name).and_then(|id| config.interface(id));
        let address = interface.and_then(|i| i.address).map(to_smoltcp);
        let mtu = interface.map_or(1500, |i| i.mtu);
        let (bus, dev, func) = nic.pci;
        let m = nic.mac;
        print!(
            "{}: virtio-net {:02x}:{:02x}.{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ",
            name, bus, dev, func, m[0], m[1], m[2], m[3], m[4], m[5]
        );
        match address {
            Some(a) => println!("{} mtu {}", a, mtu),
            None => println!("unconfigured"),
        }
        let stack = {
            let _net = ALLOCATOR.enter(Domain::Net);
            Stack::new(&mut nic, address, mtu, boot.entry_tsc ^ ((index as u64) << 56), now)
        };
        ports.push(Port { name, nic, stack, address, mtu, dispatch_drops: [0; DispatchDrop::ALL.len()] });
    }
    let forwarder: SharedForwarder = Rc::new(RefCell::new(None));
    let forwarder_plan = ForwarderPlan {
        interfaces: ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let address = p.address.map(|a| (u32::from(a.address()), a.prefix_len()));
                (i as u8, router::Interface { mac: p.nic.mac, address, mtu: p.mtu })
            })
            .collect(),
        routes: config.routes.iter().map(|r| (r.prefix, r.via)).collect(),
        settings: ForwarderPlan::settings(
            &config.forwarder,
            plan.quota(Domain::Forwarder).soft,
            forwarder_admit,
        ),
    };
    let mut supervisor = Supervisor::new(AllocatorBooks(&ALLOCATOR));
    for subsystem in subsystems(ForwarderSubsystem::new(forwarder.clone(), forwarder_plan)) {
        let policy = RestartPolicy {
            limit: plan.restart_limit(subsystem.domain()),
            initial_backoff: FIRST_RESTART_BACKOFF,
            ..RestartPolicy::default()
        };
        if let Err(e) = supervisor.add(subsystem, policy) {
            panic!("subsystem table: {:?}", e);
        }
    }
    supervisor.start(apps_now());
    let mut appliance = Appliance {
        ports,
        supervisor,
        forwarder,
        forwarder_due: 0,
        blast: None,
        diagnostics: config.diagnostics.enabled,
        scratch: Box::new(Frame::empty()),
        editor: LineEditor::new(),
    };
    println!("bulkhead: ready in {} ms", time::micros_since_boot() / 1000);
    // Not an error (a VM may be started with fewer NICs than configured), and said after the
    // ready line: console bytes are slow under emulation.
    for interface in &config.interfaces {
        if usize::from(interface.nic.index()) >= appliance.ports.len() {
            log::warn!("bulkhead: nic{} is configured but absent", interface.nic.index());
        }
    }
    print!("{}", PROMPT);
    serial::set_input_line(&[PROMPT]);
    appliance.run()
}

/// The configuration from fw_cfg, else the embedded default. A configuration that was given
/// but cannot be read or validated stops the boot: an appliance must not come up with
/// addresses its operator did not ask for.
fn load_config() -> Config {
    let text = match fwcfg::read_file(CONFIG_FILE) {
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => refuse(format_args!("config: not UTF-8 (byte {})", e.utf8_error().valid_up_to())),
        },
        Ok(None) | Err(fwcfg::FwCfgError::Absent) => return Config::builtin_default(),
        Err(e) => refuse(format_args!("config: fw_cfg {} unreadable: {:?}", CONFIG_FILE, e)),
    };
    match Config::parse(&text) {
        Ok(config) => config,
        Err(e) => refuse(format_args!("{}", e)),
    }
}

/// Divides the heap into the domains' quotas, or refuses the configuration with the figures.
fn apply_memory_plan(config: &Config, heap_bytes: usize) -> MemoryPlan {
    let plan = match config.memory_plan(heap_bytes) {
        Ok(plan) => plan,
        Err(e) => refuse(format_args!("config: memory: {}", e)),
    };
    // Every supervised domain may overshoot its quota by one loop turn's allocations before
    // it is shed; the reserve outside the quotas must absorb all of them at once.
    let overshoot = MAX_DOMAIN_STEP * (Domain::COUNT - 2);
    if plan.overshoot_reserve < overshoot {
        refuse(format_args!(
            "config: memory: heap_reserve {} is below the largest overshoot {} ({} domains x {})",
            ExactSize(plan.overshoot_reserve as u64),
            ExactSize(overshoot as u64),
            Domain::COUNT - 2,
            ExactSize(MAX_DOMAIN_STEP as u64)
        ));
    }
    let quotas = core::array::from_fn(|i| plan.quota(Domain::ALL[i]));
    if let Err(e) = ALLOCATOR.set_quotas(quotas, plan.overshoot_reserve) {
        refuse(format_args!("config: memory: {:?}", e));
    }
    plan
}

/// One subsystem per supervised domain. The domains of the subsystems still to be built are
/// owned by `Reserved` placeholders, so that they are supervised (hogged, shed, reported) now.
fn subsystems(forwarder: ForwarderSubsystem) -> Vec<Box<dyn Subsystem>> {
    alloc::vec![
        Box::new(forwarder) as Box<dyn Subsystem>,
        Box::new(Reserved::new("sctp", Domain::Sctp, "the SCTP endpoint")),
        Box::new(Reserved::new("bgp", Domain::Bgp, "the BGP speaker")),
        Box::new(Reserved::new("bmp", Domain::Bmp, "the BMP exporter")),
        Box::new(Reserved::new("mgmt", Domain::Mgmt, "the management TCP port")),
        Box::new(Reserved::new("diag", Domain::Diag, "diagnostics")),
    ]
}

fn refuse(message: core::fmt::Arguments) -> ! {
    println!("{}", message);
    println!("bulkhead: configuration refused");
    exit::exit(exit::ExitCode::ConfigRefused)
}

fn to_smoltcp(cidr: ConfigCidr) -> Ipv4Cidr {
    let [a, b, c, d] = cidr.addr.0;
    Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), cidr.prefix_len)
}

fn to_config(cidr: Ipv4Cidr) -> ConfigCidr {
    ConfigCidr { addr: bulkhead_apps::addr::Ipv4(cidr.address().octets()), prefix_len: cidr.prefix_len() }
}

fn now() -> Instant {
    Instant::from_micros(time::micros_since_boot() as i64)
}

/// The forwarder's admission: room in its domain for a packet it would queue.
fn forwarder_admit(bytes: usize) -> bool {
    ALLOCATOR.admit(Domain::Forwarder, bytes).is_ok()
}

fn apps_now() -> bulkhead_apps::time::Instant {
    bulkhead_apps::time::Instant::from_micros(time::micros_since_boot())
}

impl Appliance {
    fn run(&mut self) -> ! {
        loop {
            let now = now();
            self.poll_console();
            for index in 0..self.ports.len() {
                self.poll_port(index, now);
            }
            self.poll_forwarder_timers();
            self.poll_blast();
            self.supervisor.poll(apps_now());
            self.sleep(now);
        }
    }

    /// A bounded batch of frames from NIC `index`: local traffic and ARP to smoltcp (in the
    /// net domain), transit traffic and ARP to the forwarder (in the forwarder domain).
    fn poll_port(&mut self, index: usize, now: Instant) {
        let addresses: [Option<Ipv4Address>; MAX_NICS] =
            core::array::from_fn(|i| self.ports.get(i).and_then(|p| p.address.map(|a| a.address())));
        let Some(port) = self.ports.get(index) else { return };
        let ingress = Ingress {
            mac: EthernetAddress(port.nic.mac),
            address: port.address.map(|a| (a.address(), a.prefix_len())),
        };
        let micros = now.total_micros() as u64;
        for _ in 0..RX_BATCH {
            let scratch = &mut self.scratch;
            let Some(port) = self.ports.get_mut(index) else { return };
            let received = {
                let _net = ALLOCATOR.enter(Domain::Net);
                port.nic.receive(|frame| {
                    let class = dispatch::classify(frame, &ingress, |a| addresses.contains(&Some(a)));
                    if !matches!(class, Class::Drop(_)) {
                        scratch.fill(frame);
                    }
                    class
                })
            };
            match received {
                None => break,
                Some(Class::Local) => {
                    let _net = ALLOCATOR.enter(Domain::Net);
                    port.stack.ingress(&mut port.nic, scratch, now);
                }
                Some(Class::Arp) => {
                    {
                        let _net = ALLOCATOR.enter(Domain::Net);
                        port.stack.ingress(&mut port.nic, scratch, now);
                    }
                    let _forwarder = ALLOCATOR.enter(Domain::Forwarder);
                    if let Some(f) = self.forwarder.borrow_mut().as_mut() {
                        f.handle_arp(
                            micros,
                            index as u8,
                            scratch.as_slice(),
                            &mut PortsSink(&mut self.ports),
                        );
                    }
                }
                Some(Class::Transit) => {
                    let _forwarder = ALLOCATOR.enter(Domain::Forwarder);
                    match self.forwarder.borrow_mut().as_mut() {
                        Some(f) => f.handle(
                            micros,
                            index as u8,
                            scratch.as_mut_slice(),
                            &mut PortsSink(&mut self.ports),
                        ),
                        None => count_drop(&mut port.dispatch_drops, DispatchDrop::NotForwarding),
                    }
                }
                Some(Class::Drop(reason)) => count_drop(&mut port.dispatch_drops, reason),
            }
        }
        if let Some(port) = self.ports.get_mut(index) {
            let _net = ALLOCATOR.enter(Domain::Net);
            port.stack.egress(&mut port.nic, now);
        }
    }

    /// `debug blast`: fills NIC's transmit ring with broadcast frames until the time is up.
    fn poll_blast(&mut self) {
        let Some((nic, until, len)) = self.blast else { return };
        if time::micros_since_boot() >= until {
            self.blast = None;
            return;
        }
        let Some(port) = self.ports.get_mut(nic) else { return };
        let mac = port.nic.mac;
        let _net = ALLOCATOR.enter(Domain::Net);
        for _ in 0..virtio::QUEUE_SIZE {
            let sent = port.nic.transmit(len, |frame| {
                frame.fill(0);
                frame[0..6].copy_from_slice(&[0xff; 6]);
                frame[6..12].copy_from_slice(&mac);
                frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            });
            if sent.is_err() {
                break;
            }
        }
    }

    /// The forwarder's ARP retries and flow expiry, when due.
    fn poll_forwarder_timers(&mut self) {
        let micros = time::micros_since_boot();
        if micros < self.forwarder_due {
            return;
        }
        let _forwarder = ALLOCATOR.enter(Domain::Forwarder);
        self.forwarder_due = match self.forwarder.borrow_mut().as_mut() {
            Some(f) => f.poll(micros, &mut PortsSink(&mut self.ports)),
            None => micros + MAX_SLEEP_MICROS,
        };
    }

    fn poll_console(&mut self) {
        // Bounded: a long paste is taken a piece per loop turn.
        for _ in 0..512 {
            let Some(byte) = serial::read_byte() else { return };
            match self.editor.feed(byte) {
                Input::Pending => {}
                Input::Echo(s) => {
                    print!("{}", s);
                    serial::set_input_line(&[PROMPT, self.editor.current()]);
                }
                Input::Line => {
                    let line = self.editor.take_line();
                    serial::set_input_line(&[]);
                    print!("\n");
                    let _mgmt = ALLOCATOR.enter(Domain::Mgmt);
                    self.execute(&line);
                    print!("{}", PROMPT);
                    serial::set_input_line(&[PROMPT]);
                }
            }
        }
    }

    fn execute(&mut self, line: &str) {
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(commands::CommandError::Empty) => return,
            Err(e) => {
                println!("{}", e);
                return;
            }
        };
        let mut out = ConsoleWriter;
        let result = match command {
            Command::Help => {
                print!("{}", commands::HELP);
                Ok(())
            }
            Command::ShowInterfaces { json } => commands::show_interfaces(&mut out, &self.interfaces(), json),
            Command::ShowMemory { json } => commands::show_memory(&mut out, &self.memory(), json),
            Command::ShowStatus { json: false } => self.supervisor.status(&mut out),
            Command::ShowStatus { json: true } => commands::status_json(&mut out, self.supervisor.reports()),
            Command::Release { domain } => {
                if !self.supervisor.release(domain, apps_now()) {
                    println!("release: the subsystem of {} is not held down", domain.name());
                }
                Ok(())
            }
            Command::Shutdown => {
                println!("bulkhead: shutting down");
                exit::exit(exit::ExitCode::Shutdown)
            }
            Command::DebugHog { domain, bytes } => {
                self.debug(domain, |sup| sup.spawn(domain, || Box::new(diag::Hog::new(bytes))))
            }
            Command::DebugLeak { domain, bytes } => {
                self.debug(domain, |sup| sup.spawn(domain, || Box::new(diag::Leak::new(bytes))))
            }
            Command::DebugShed { domain } => self.debug(domain, |sup| {
                if sup.force_shed(domain, apps_now()) {
                    Ok(())
                } else {
                    Err(bulkhead_apps::supervisor::SpawnError::NotUp(domain))
                }
            }),
            Command::DebugBlast { nic, seconds, frame_bytes } => {
                if !self.diagnostics {
                    println!("debug commands are off ([diagnostics] enabled = false)");
                } else if usize::from(nic) >= self.ports.len() {
                    println!("debug blast: no nic{}", nic);
                } else {
                    let until = time::micros_since_boot() + u64::from(seconds) * 1_000_000;
                    self.blast = Some((usize::from(nic), until, usize::from(frame_bytes)));
                    println!("ok (nic{})", nic);
                }
                Ok(())
            }
            Command::DebugPanic => {
                if self.diagnostics {
                    panic!("debug panic requested on the console");
                }
                println!("debug commands are off ([diagnostics] enabled = false)");
                Ok(())
            }
            Command::ShowRoute { prefix, json } => match self.forwarder.borrow().as_ref() {
                Some(f) => {
                    let rows = forwarding::routes(f, prefix, &NIC_NAMES);
                    routing::show_route(&mut out, &rows, f.fib().len() as u64, json)
                }
                None => {
                    println!("the forwarder is not running");
                    Ok(())
                }
            },
            Command::ShowFlows { json } => match self.forwarder.borrow().as_ref() {
                Some(f) => routing::show_flows(
                    &mut out,
                    &forwarding::flows(f, time::micros_since_boot(), TOP_FLOWS),
                    json,
                ),
                None => {
                    println!("the forwarder is not running");
                    Ok(())
                }
            },
        };
        if result.is_err() {
            println!("(output failed)");
        }
    }

    fn interfaces(&self) -> Vec<InterfaceStatus> {
        self.ports
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let c = &p.nic.counters;
                let mut drops = alloc::vec![
                    ("rx_errors", c.rx_errors),
                    ("tx_ring_full", c.tx_ring_full),
                    ("tx_oversize", c.tx_oversize),
                ];
                drops.extend(
                    DispatchDrop::ALL.iter().zip(p.dispatch_drops.iter()).map(|(r, n)| (r.name(), *n)),
                );
                let forwarded =
                    self.forwarder.borrow().as_ref().map(|f| f.counters(index as u8)).unwrap_or_default();
                drops.extend(DropReason::ALL.iter().map(|r| (r.name(), forwarded.drops(*r))));
                InterfaceStatus {
                    name: String::from(p.name),
                    mac: p.nic.mac,
                    pci: p.nic.pci,
                    address: p.address.map(to_config),
                    mtu: p.mtu,
                    rx_packets: c.rx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_packets: c.tx_packets,
                    tx_bytes: c.tx_bytes,
                    drops,
                    forwarding: ForwardingCounters {
                        packets: forwarded.forwarded_packets,
                        bytes: forwarded.forwarded_bytes,
                        icmp_errors_sent: forwarded.icmp_errors_sent,
                        icmp_errors_rate_limited: forwarded.icmp_errors_rate_limited,
                    },
                }
            })
            .collect()
    }

    /// Runs a `debug` command if diagnostics are enabled in the configuration.
    fn debug(
        &mut self,
        domain: Domain,
        run: impl FnOnce(&mut Supervisor<AllocatorBooks>) -> Result<(), bulkhead_apps::supervisor::SpawnError>,
    ) -> core::fmt::Result {
        if !self.diagnostics {
            println!("debug commands are off ([diagnostics] enabled = false)");
            return Ok(());
        }
        match run(&mut self.supervisor) {
            Ok(()) => println!("ok ({})", domain.name()),
            Err(e) => println!("debug: {}", e),
        }
        Ok(())
    }

    fn memory(&self) -> MemoryStatus {
        let domains = Domain::ALL
            .iter()
            .map(|&domain| {
                let s = ALLOCATOR.stats(domain);
                let report = self.supervisor.report(domain);
                DomainMemory {
                    domain,
                    used: s.used,
                    peak: s.peak,
                    blocks: s.blocks as u64,
                    chunks: s.chunks as u64,
                    soft: s.soft,
                    quota: s.hard,
                    failed_admissions: s.failed_admissions,
                    sheds: report.map_or(0, |r| r.sheds),
                    leaks: report.map_or(0, |r| r.leaks),
                    last_leak: report.and_then(|r| r.last_leak),
                    state: report.map(|r| r.state),
                }
            })
            .collect();
        let h = ALLOCATOR.heap_stats();
        MemoryStatus {
            domains,
            heap: HeapStatus { total: h.total, used: h.used, free: h.free, largest_free: h.largest_free },
        }
    }

    /// Sleeps until the earliest deadline, a NIC interrupt or console input.
    fn sleep(&mut self, now: Instant) {
        if self.blast.is_some() {
            return; // transmitting flat out
        }
        let mut wake = now + smoltcp::time::Duration::from_micros(MAX_SLEEP_MICROS);
        wake = wake.min(Instant::from_micros(self.forwarder_due as i64));
        if let Some(at) = self.supervisor.next_deadline(apps_now()) {
            wake = wake.min(Instant::from_micros(at.total_micros() as i64));
        }
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

/// The forwarder's way out: frames go to the NIC's transmit ring (one copy).
struct PortsSink<'a>(&'a mut [Port]);

impl router::Sink for PortsSink<'_> {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> bool {
        let Some(port) = self.0.get_mut(usize::from(iface)) else { return false };
        port.nic.transmit(frame.len(), |buf| buf.copy_from_slice(frame)).is_ok()
    }
}

fn count_drop(counters: &mut [u64; DispatchDrop::ALL.len()], reason: DispatchDrop) {
    if let Some(i) = DispatchDrop::ALL.iter().position(|r| *r == reason) {
        counters[i] += 1;
    }
}
