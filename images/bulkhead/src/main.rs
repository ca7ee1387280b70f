//! The Bulkhead appliance image, and nothing but wiring: boot, the heap and its quotas, the
//! NICs, the random seed, the configuration, the subsystems; then the loop — receive,
//! classify, deliver, poll, transmit (all of it `bulkhead_apps::platform`), sleep.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod link;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use bulkhead_apps::books::AllocatorBooks;
use bulkhead_apps::config::{Config, MemoryPlan, NicId};
use bulkhead_apps::diag::{self, Diag, Reserved};
use bulkhead_apps::domain::Domain;
use bulkhead_apps::forwarder::{ForwarderPlan, ForwarderSubsystem};
use bulkhead_apps::platform::{Action, Platform, Port};
use bulkhead_apps::supervisor::{RestartPolicy, Subsystem, MAX_TASKS_PER_DOMAIN};
use bulkhead_apps::time::{Duration, Instant};
use bulkhead_apps::units::ExactSize;
use bulkhead_base::rng::Csprng;
use bulkhead_kernel::heap::ALLOCATOR;
use bulkhead_kernel::{
    apic, arch, entry_point, exit, fwcfg, heap, print, println, rng, rtc, serial, time, virtio, BootInfo,
};
use bulkhead_net::router;
use console::{ConsoleWriter, Input, LineEditor, PROMPT};
use link::VirtioLink;

entry_point!(main);

const MAX_NICS: usize = 4;
const NIC_NAMES: [&str; MAX_NICS] = ["nic0", "nic1", "nic2", "nic3"];
/// The fw_cfg file that carries the configuration.
const CONFIG_FILE: &str = "opt/bulkhead/config.toml";
/// A shed subsystem restarts this soon the first time, then with doubling backoff.
const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(1);
/// The most one subsystem poll may allocate, diagnostics tasks excluded (every subsystem does
/// bounded work per poll; the forwarder's flow table is allocated at start, not per packet).
const MAX_SUBSYSTEM_STEP: usize = 64 * 1024;
/// The most one domain may allocate in a loop turn before the supervisor's quota check.
const MAX_DOMAIN_STEP: usize = MAX_SUBSYSTEM_STEP + MAX_TASKS_PER_DOMAIN * diag::MAX_TASK_STEP;
/// Console bytes taken per loop turn: a long paste is taken a piece at a time.
const CONSOLE_BATCH: usize = 512;

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
    let (seed, seed_source) = rng::seed();
    // The date, once: the RTC's seconds paired with the monotonic clock read just after.
    let wall_epoch =
        rtc::read().map(|secs| secs.saturating_mul(1_000_000).saturating_sub(time::micros_since_boot()));

    // Console output is slow under emulation (one VM exit per byte): keep the boot log short.
    println!(
        "bulkhead {} x86_64 unikernel, TSC {} MHz ({:?}), seed {}, wall clock {}",
        env!("CARGO_PKG_VERSION"),
        hz / 1_000_000,
        source,
        seed_source,
        if wall_epoch.is_some() { "from the RTC" } else { "none" }
    );
    print!("memory:");
    for r in boot.regions() {
        print!(" {:#x}-{:#x} {}", r.start, r.end(), if r.is_ram() { "ram" } else { "res" });
    }
    println!("; heap {} MiB", region.size >> 20);

    let config = load_config();
    let plan = apply_memory_plan(&config, region.size as usize);
    let mut ports = Vec::new();
    for (index, nic) in nics.into_iter().enumerate() {
        let name = NIC_NAMES[index];
        let interface = NicId::from_name(name).and_then(|id| config.interface(id));
        let address = interface.and_then(|i| i.address);
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
        let link = {
            let _net = ALLOCATOR.enter(Domain::Net);
            Box::new(VirtioLink(nic)) as Box<dyn bulkhead_apps::link::Link>
        };
        ports.push(Port::new(name, link, address, mtu));
    }
    let forwarder_plan = ForwarderPlan {
        interfaces: ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let address = p.address.map(|a| (a.addr.to_bits(), a.prefix_len));
                (i as u8, router::Interface { mac: p.link.mac(), address, mtu: p.mtu })
            })
            .collect(),
        routes: config.routes.iter().map(|r| (r.prefix, r.via)).collect(),
        settings: ForwarderPlan::settings(&config.forwarder, plan.quota(Domain::Forwarder).soft),
    };
    let rng = Box::new(Csprng::from_seed(seed));
    let mut platform =
        Platform::new(AllocatorBooks(&ALLOCATOR), ports, rng, config.diagnostics.enabled, now());
    platform.set_wall_clock(wall_epoch);
    let subsystems: [Box<dyn Subsystem>; 6] = [
        Box::new(ForwarderSubsystem::new(forwarder_plan, &NIC_NAMES)),
        Box::new(bulkhead_apps::sctp::SctpSubsystem::new(config.sctp.clone())),
        Box::new(bulkhead_apps::bgp::BgpSubsystem::new(config.bgp.clone())),
        // BMP reads BGP's tables through BGP's `peek`; BGP tells BMP its events.
        Box::new(
            bulkhead_apps::bmp::BmpSubsystem::new(config.bmp.clone())
                .reading::<bulkhead_apps::bgp::BgpSubsystem>(),
        ),
        Box::new(Reserved::new("mgmt", Domain::Mgmt, "the management TCP port")),
        Box::new(Diag::new(config.diagnostics.enabled)),
    ];
    for subsystem in subsystems {
        let policy = RestartPolicy {
            limit: plan.restart_limit(subsystem.domain()),
            initial_backoff: FIRST_RESTART_BACKOFF,
            ..RestartPolicy::default()
        };
        if let Err(e) = platform.add(subsystem, policy) {
            panic!("subsystem table: {}", e);
        }
    }
    check_net_bound(&plan, platform.ports().len());
    platform.start(now());
    println!("bulkhead: ready in {} ms", time::micros_since_boot() / 1000);
    // Not an error (a VM may be started with fewer NICs than configured), and said after the
    // ready line: console bytes are slow under emulation.
    for interface in &config.interfaces {
        if usize::from(interface.nic.index()) >= platform.ports().len() {
            log::warn!("bulkhead: nic{} is configured but absent", interface.nic.index());
        }
    }
    if seed_source.is_weak() {
        log::warn!("bulkhead: the random seed came from TSC jitter only (no RDSEED, RDRAND or virtio-rng)");
    }
    print!("{}", PROMPT);
    serial::set_input_line(&[PROMPT]);
    run(platform)
}

/// `net` is never shed: it holds only what the platform reserved at boot (receive rings, the
/// host stack, its socket table and local-out queue, the route queue) and the transmit buffers
/// each NIC allocates on first use, at most `QUEUE_SIZE` of them. So its bound is checked once,
/// here: a configuration whose `net` quota cannot hold that worst case is refused.
fn check_net_bound(plan: &MemoryPlan, nics: usize) {
    let reserved = ALLOCATOR.stats(Domain::Net).used;
    let tx = virtio::QUEUE_SIZE * bulkhead_mem::block_footprint(virtio::BUFFER_SIZE, 1);
    let worst = reserved + nics * tx;
    let quota = plan.quota(Domain::Net).hard;
    if worst > quota {
        refuse(format_args!(
            "config: memory: net quota {} is below what the NICs and the host stack can hold, {} \
             ({} reserved at boot, {} NICs x {} of transmit buffers)",
            ExactSize(quota as u64),
            ExactSize(worst as u64),
            ExactSize(reserved as u64),
            nics,
            ExactSize(tx as u64)
        ));
    }
}

/// The loop: console input, one platform turn, sleep until the next deadline or interrupt.
fn run(mut platform: Platform<AllocatorBooks>) -> ! {
    let mut editor = LineEditor::new();
    loop {
        // The console is management's work, bounded per turn, and slow under emulation (one
        // exit per byte): the turn the platform times is the data path's.
        poll_console(&mut platform, &mut editor);
        platform.turn(now(), &now);
        let wake = platform.next_deadline(now());
        sleep(&platform, wake);
    }
}

fn poll_console(platform: &mut Platform<AllocatorBooks>, editor: &mut LineEditor) {
    for _ in 0..CONSOLE_BATCH {
        let Some(byte) = serial::read_byte() else { return };
        match editor.feed(byte) {
            Input::Pending => {}
            Input::Echo(s) => {
                print!("{}", s);
                serial::set_input_line(&[PROMPT, editor.current()]);
            }
            Input::Line => {
                let line = editor.take_line();
                serial::set_input_line(&[]);
                print!("\n");
                // The console's own work (parsing, formatting) is management's.
                let action = {
                    let _mgmt = ALLOCATOR.enter(Domain::Mgmt);
                    platform.execute(&line, now(), &mut ConsoleWriter)
                };
                match action {
                    Action::None => {}
                    Action::Shutdown => exit::exit(exit::ExitCode::Shutdown),
                    Action::Panic => panic!("debug panic requested on the console"),
                }
                print!("{}", PROMPT);
                serial::set_input_line(&[PROMPT]);
            }
        }
    }
}

/// Sleeps until `wake`, a NIC interrupt or console input.
fn sleep(platform: &Platform<AllocatorBooks>, wake: Instant) {
    let now = now();
    if wake <= now {
        return;
    }
    arch::disable_interrupts();
    if platform.rx_pending() {
        return;
    }
    apic::set_timer_micros(wake.saturating_since(now).total_micros().max(1));
    arch::wait_for_interrupt();
}

fn now() -> Instant {
    Instant::from_micros(time::micros_since_boot())
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

fn refuse(message: core::fmt::Arguments) -> ! {
    println!("{}", message);
    println!("bulkhead: configuration refused");
    exit::exit(exit::ExitCode::ConfigRefused)
}
