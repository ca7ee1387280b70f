//! `qemu/run`: boots the image on the demo topology with the serial console on this terminal.
//! Ctrl-C stops QEMU (it gets SIGINT from the terminal); this program ignores SIGINT, waits
//! for QEMU and then removes the namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use bulkhead_testbed::accel::AccelChoice;
use bulkhead_testbed::net::MAX_NICS;
use bulkhead_testbed::{Accel, Error, Firmware, Topology, VmOptions};

const USAGE: &str = "\
usage: qemu/run [--nics N] [--mem MiB] [--config FILE] [--accel kvm|tcg|auto] [--firmware qboot|seabios]
  --nics N       NICs 1..4 (default 4; nic3 is unconfigured in the default configuration)
  --mem MiB      guest memory (default 256)
  --config FILE  configuration passed through fw_cfg; the namespaces follow its [[interface]] addresses
  --accel        default: BULKHEAD_ACCEL or auto (KVM if it boots the image, else TCG)
  --firmware     default: BULKHEAD_FIRMWARE or qboot";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bulkhead-run: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode, String> {
    let options = parse(&args)?;
    if !bulkhead_testbed::is_root() {
        return Err("needs root (network namespaces and TAP devices)".into());
    }
    let plan = options.interface_plan().map_err(|e| e.to_string())?;
    let topology = Topology::create(&plan).map_err(|e| e.to_string())?;
    let spec = options.qemu_spec(&topology).map_err(|e| e.to_string())?;

    println!("bulkhead-run: accel={} firmware={} memory={} MiB", spec.accel, spec.firmware, spec.mem_mib);
    for nic in topology.nics() {
        match (nic.guest, nic.host) {
            (Some(guest), Some(host)) => println!(
                "  nic{}: guest {guest}, namespace {} with TAP {host}: ip netns exec {} ping {}",
                nic.index,
                nic.ns.name(),
                nic.ns.name(),
                guest.addr
            ),
            _ => {
                println!("  nic{}: unconfigured, namespace {} (TAP has no address)", nic.index, nic.ns.name())
            }
        }
    }
    println!("  {}", spec.display());
    println!("  Ctrl-C stops QEMU; the namespaces are removed afterwards.");

    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions; QEMU gets the
    // defaults back before exec (QemuSpec::command).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let status = spec.command().status().map_err(|e| format!("{}: {e}", spec.display()))?;
    drop(topology);
    let code = match status.code() {
        Some(code) => code,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    println!("\r\nbulkhead-run: QEMU exited with {code}; namespaces removed");
    // The console's `shutdown` is a clean end of the run (`make run` reports no error); any
    // other status (a panic's 3, a refused configuration's 5, a signal) is passed on.
    if code == bulkhead_testbed::qemu::exit::SHUTDOWN {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

fn parse(args: &[String]) -> Result<VmOptions, String> {
    let mut options = VmOptions::new().name("bulkhead-run");
    let mut accel = AccelChoice::from_env().map_err(|e| e.to_string())?;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.parse::<u32>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--nics" => {
                let nics = number()? as usize;
                if !(1..=MAX_NICS).contains(&nics) {
                    return Err(format!("--nics: 1..{MAX_NICS}"));
                }
                options = options.nics(nics);
            }
            "--mem" => options = options.mem_mib(number()?),
            "--config" => {
                let path = PathBuf::from(value);
                if !path.is_file() {
                    return Err(format!("--config: {} is not a file", path.display()));
                }
                options = options.config(path);
            }
            "--accel" => accel = AccelChoice::parse(value).map_err(|e: Error| e.to_string())?,
            "--firmware" => options = options.firmware(Firmware::parse(value).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if accel == AccelChoice::Auto {
        println!("bulkhead-run: probing KVM ...");
    }
    Ok(options.accel(Accel::select(accel).map_err(|e| e.to_string())?))
}
