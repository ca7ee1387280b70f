//! Console commands: parsed from a line typed on the serial console (later a TCP management
//! port), and the `show` output they print, as a human table or as one line of JSON.
//!
//! The line is untrusted: parsing never panics, and words echoed back in an error are
//! truncated and stripped of control characters. Words are case-sensitive and separated by
//! any ASCII whitespace. Sizes take the configuration's forms (`8388608`, `"8MiB"`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::addr::{parse_ipv4, Ipv4Cidr};
use crate::domain::Domain;
use crate::json::JsonWriter;
use crate::supervisor::{Leak, SubsystemReport, SubsystemState};
use crate::units::{parse_size, HumanSize};

/// Every command, one line each, as `help` prints it.
pub const HELP: &str = "\
help                        this list
show interfaces [json]      NICs: address, MTU, packet and drop counters
show memory [json]          memory per domain: used, peak, quotas, sheds, leaks; the heap
show route [PREFIX] [json]  the routing table, or the routes inside PREFIX (a.b.c.d[/len])
show flows [json]           the forwarder's flow table
show local [json]           local traffic: delivered, answered (RST, unreachable), bindings, sockets
show status [json]          subsystems: state, sheds, failures, restarts, recovery, leaks; longest turn
clear status                start a new longest-turn-since-clear
release DOMAIN              lift the hold-down of the subsystem of DOMAIN and restart it
shutdown                    stop the appliance
debug hog DOMAIN SIZE       allocate SIZE in DOMAIN and keep it until the domain is shed
debug leak DOMAIN SIZE      allocate SIZE in DOMAIN and lose track of it (a leak on the next shed)
debug shed DOMAIN           shed the subsystem of DOMAIN now
debug panic                 panic on purpose (tests the panic path: location, message, exit)
debug blast NIC SECS LEN    transmit LEN-byte broadcast frames on NIC for SECS, as fast as it takes them
";

/// The longest word echoed back in an error.
const MAX_ECHO: usize = 32;

/// A parsed console command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    ShowInterfaces {
        json: bool,
    },
    ShowMemory {
        json: bool,
    },
    ShowRoute {
        prefix: Option<Ipv4Cidr>,
        json: bool,
    },
    ShowFlows {
        json: bool,
    },
    /// The appliance as an IP host: local traffic delivered, answers given, bindings, sockets.
    ShowLocal {
        json: bool,
    },
    ShowStatus {
        json: bool,
    },
    /// Resets the loop's "longest turn since clear".
    ClearStatus,
    Release {
        domain: Domain,
    },
    Shutdown,
    DebugHog {
        domain: Domain,
        bytes: usize,
    },
    DebugLeak {
        domain: Domain,
        bytes: usize,
    },
    DebugShed {
        domain: Domain,
    },
    DebugPanic,
    /// Transmit broadcast frames of `frame_bytes` on NIC `nic` as fast as the ring takes them,
    /// for `seconds` (the bench's transmit ceiling).
    DebugBlast {
        nic: u8,
        seconds: u32,
        frame_bytes: u16,
    },
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Nothing but whitespace.
    Empty,
    /// The words do not start any command.
    Unknown { words: String },
    /// A required argument is absent.
    MissingArgument { command: &'static str, argument: &'static str },
    /// An argument that does not parse.
    BadArgument { command: &'static str, argument: &'static str, value: String },
    /// Words after a complete command.
    UnexpectedArgument { command: &'static str, value: String },
}

/// One NIC, as the kernel reports it for `show interfaces`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub name: String,
    pub mac: [u8; 6],
    /// PCI bus, device, function.
    pub pci: (u8, u8, u8),
    pub address: Option<Ipv4Cidr>,
    pub mtu: u16,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames dropped on this NIC, by reason (`rx_ring_full`, `not_our_mac`, `bad_checksum`,
    /// `no_route`, ...): every reason the layers below count, zero or not, in a fixed order.
    pub drops: Vec<(&'static str, u64)>,
    /// What the forwarder did with the transit traffic that came in here.
    pub forwarding: ForwardingCounters,
}

/// Transit traffic by ingress NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardingCounters {
    pub packets: u64,
    pub bytes: u64,
    pub icmp_errors_sent: u64,
    pub icmp_errors_rate_limited: u64,
}

/// What a subsystem adds to one NIC's row of `show interfaces`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub forwarding: ForwardingCounters,
    pub drops: Vec<(&'static str, u64)>,
}

/// Memory per domain and of the heap, for `show memory`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryStatus {
    /// One row per domain, in `Domain::ALL` order.
    pub domains: Vec<DomainMemory>,
    pub heap: HeapStatus,
}

/// One domain's row of `show memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainMemory {
    pub domain: Domain,
    /// Bytes of true footprint charged now (whole chunks, free slots and one cached free chunk
    /// per size class included), and the most ever.
    pub used: usize,
    pub peak: usize,
    /// What the live blocks hold (their slots or large footprints): back to a domain's baseline
    /// to the byte when its work is gone, whatever chunks it keeps cached.
    pub live: usize,
    /// Live allocations (blocks handed out and not yet freed).
    pub blocks: u64,
    /// 64 KiB chunks the domain holds from the shared heap for its size classes.
    pub chunks: u64,
    pub soft: usize,
    pub quota: usize,
    /// Admissions refused with `OverQuota`.
    pub failed_admissions: u64,
    pub sheds: u64,
    /// Sheds that left memory behind.
    pub leaks: u64,
    pub last_leak: Option<Leak>,
    /// The state of the subsystem owning the domain; `None` for the kernel.
    pub state: Option<SubsystemState>,
}

/// The shared heap under the domains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStatus {
    pub total: usize,
    pub used: usize,
    pub free: usize,
    pub largest_free: usize,
}

impl Command {
    /// Parses one console line.
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            [] => Err(CommandError::Empty),
            ["help", rest @ ..] | ["?", rest @ ..] => no_more("help", rest).map(|()| Command::Help),
            ["show", "interfaces", rest @ ..] => {
                json_flag("show interfaces", rest).map(|json| Command::ShowInterfaces { json })
            }
            ["show", "memory", rest @ ..] => {
                json_flag("show memory", rest).map(|json| Command::ShowMemory { json })
            }
            ["show", "local", rest @ ..] => {
                json_flag("show local", rest).map(|json| Command::ShowLocal { json })
            }
            ["show", "flows", rest @ ..] => {
                json_flag("show flows", rest).map(|json| Command::ShowFlows { json })
            }
            ["show", "status", rest @ ..] => {
                json_flag("show status", rest).map(|json| Command::ShowStatus { json })
            }
            ["show", "route", rest @ ..] => {
                let (prefix, rest) = match rest {
                    [first, rest @ ..] if *first != "json" => (Some(parse_prefix(first)?), rest),
                    _ => (None, rest),
                };
                json_flag("show route", rest).map(|json| Command::ShowRoute { prefix, json })
            }
            ["clear", "status", rest @ ..] => no_more("clear status", rest).map(|()| Command::ClearStatus),
            ["release", rest @ ..] => {
                let (domain, rest) = domain_arg("release", rest)?;
                no_more("release", rest).map(|()| Command::Release { domain })
            }
            ["shutdown", rest @ ..] => no_more("shutdown", rest).map(|()| Command::Shutdown),
            ["debug", "hog", rest @ ..] => {
                let (domain, bytes) = domain_and_size("debug hog", rest)?;
                Ok(Command::DebugHog { domain, bytes })
            }
            ["debug", "leak", rest @ ..] => {
                let (domain, bytes) = domain_and_size("debug leak", rest)?;
                Ok(Command::DebugLeak { domain, bytes })
            }
            ["debug", "panic", rest @ ..] => no_more("debug panic", rest).map(|()| Command::DebugPanic),
            ["debug", "blast", rest @ ..] => blast_args(rest),
            ["debug", "shed", rest @ ..] => {
                let (domain, rest) = domain_arg("debug shed", rest)?;
                no_more("debug shed", rest).map(|()| Command::DebugShed { domain })
            }
            [first, second, ..] if matches!(*first, "show" | "debug") => {
                Err(CommandError::Unknown { words: echo_words(&[first, second]) })
            }
            [first, ..] => Err(CommandError::Unknown { words: echo_words(&[first]) }),
        }
    }
}

/// `show interfaces`: a table, or one line of JSON.
pub fn show_interfaces(out: &mut impl Write, interfaces: &[InterfaceStatus], json: bool) -> fmt::Result {
    if json {
        return interfaces_json(out, interfaces);
    }
    writeln!(
        out,
        "{:<6} {:<17} {:<8} {:<18} {:>5} {:>11} {:>13} {:>11} {:>13} {:>8}",
        "Name", "MAC", "PCI", "Address", "MTU", "RX packets", "RX bytes", "TX packets", "TX bytes", "Drops"
    )?;
    for i in interfaces {
        let drops = i.drops.iter().fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        let address = match i.address {
            Some(a) => alloc::format!("{a}"),
            None => String::from("unnumbered"),
        };
        writeln!(
            out,
            "{:<6} {:<17} {:<8} {:<18} {:>5} {:>11} {:>13} {:>11} {:>13} {:>8}",
            i.name,
            Mac(i.mac),
            Pci(i.pci),
            address,
            i.mtu,
            i.rx_packets,
            i.rx_bytes,
            i.tx_packets,
            i.tx_bytes,
            drops
        )?;
        let f = &i.forwarding;
        if f.packets > 0 || f.icmp_errors_sent > 0 || f.icmp_errors_rate_limited > 0 {
            writeln!(
                out,
                "       forwarded: {} packets, {} bytes; ICMP errors sent {}, rate-limited {}",
                f.packets, f.bytes, f.icmp_errors_sent, f.icmp_errors_rate_limited
            )?;
        }
        let mut nonzero = i.drops.iter().filter(|(_, n)| *n > 0).peekable();
        if nonzero.peek().is_some() {
            write!(out, "       drops:")?;
            for (k, (name, n)) in nonzero.enumerate() {
                write!(out, "{} {name} {n}", if k == 0 { "" } else { "," })?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `show memory`: a table in the spirit of BIRD's, or one line of JSON with exact bytes.
pub fn show_memory(out: &mut impl Write, memory: &MemoryStatus, json: bool) -> fmt::Result {
    if json {
        return memory_json(out, memory);
    }
    writeln!(
        out,
        "{:<10} {:<11} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>7} {:>6}  Last leak",
        "Domain", "State", "Used", "Peak", "Soft", "Quota", "Blocks", "Chunks", "Refused", "Sheds"
    )?;
    for d in &memory.domains {
        writeln!(
            out,
            "{:<10} {:<11} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>7} {:>6}  {}",
            d.domain.name(),
            d.state.map_or("-", SubsystemState::name),
            HumanSize(d.used as u64),
            HumanSize(d.peak as u64),
            HumanSize(d.soft as u64),
            HumanSize(d.quota as u64),
            d.blocks,
            d.chunks,
            d.failed_admissions,
            d.sheds,
            LeakText(d.last_leak)
        )?;
    }
    let h = &memory.heap;
    writeln!(
        out,
        "Heap: {} total, {} used, {} free, largest free block {}",
        HumanSize(h.total as u64),
        HumanSize(h.used as u64),
        HumanSize(h.free as u64),
        HumanSize(h.largest_free as u64)
    )
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Empty => f.write_str("empty command (type \"help\")"),
            CommandError::Unknown { words } => write!(f, "unknown command \"{words}\" (type \"help\")"),
            CommandError::MissingArgument { command, argument } => write!(f, "{command}: missing {argument}"),
            CommandError::BadArgument { command, argument, value } => {
                write!(f, "{command}: \"{value}\" is not a valid {argument}")
            }
            CommandError::UnexpectedArgument { command, value } => {
                write!(f, "{command}: unexpected \"{value}\"")
            }
        }
    }
}

// ---- helpers --------------------------------------------------------------------------------

fn no_more(command: &'static str, rest: &[&str]) -> Result<(), CommandError> {
    match rest.first() {
        None => Ok(()),
        Some(w) => Err(CommandError::UnexpectedArgument { command, value: echo(w) }),
    }
}

/// An optional trailing `json`.
fn json_flag(command: &'static str, rest: &[&str]) -> Result<bool, CommandError> {
    match rest {
        [] => Ok(false),
        ["json"] => Ok(true),
        ["json", w, ..] | [w, ..] => Err(CommandError::UnexpectedArgument { command, value: echo(w) }),
    }
}

fn domain_arg<'a, 'b>(
    command: &'static str,
    rest: &'a [&'b str],
) -> Result<(Domain, &'a [&'b str]), CommandError> {
    let [word, rest @ ..] = rest else {
        return Err(CommandError::MissingArgument { command, argument: "DOMAIN" });
    };
    let domain = Domain::from_name(word).ok_or_else(|| CommandError::BadArgument {
        command,
        argument: "DOMAIN",
        value: echo(word),
    })?;
    Ok((domain, rest))
}

fn domain_and_size(command: &'static str, rest: &[&str]) -> Result<(Domain, usize), CommandError> {
    let (domain, rest) = domain_arg(command, rest)?;
    let [word, rest @ ..] = rest else {
        return Err(CommandError::MissingArgument { command, argument: "SIZE" });
    };
    let bytes = parse_size(word).ok_or_else(|| CommandError::BadArgument {
        command,
        argument: "SIZE",
        value: echo(word),
    })?;
    no_more(command, rest)?;
    Ok((domain, bytes))
}

/// `debug blast NIC SECONDS LEN`: nic0..nic3, 1..=600 s, 60..=1514 bytes.
fn blast_args(rest: &[&str]) -> Result<Command, CommandError> {
    const COMMAND: &str = "debug blast";
    let bad = |argument: &'static str, word: &str| CommandError::BadArgument {
        command: COMMAND,
        argument,
        value: echo(word),
    };
    let [nic, seconds, len, rest @ ..] = rest else {
        return Err(CommandError::MissingArgument { command: COMMAND, argument: "NIC SECONDS LEN" });
    };
    no_more(COMMAND, rest)?;
    let nic = match *nic {
        "nic0" => 0,
        "nic1" => 1,
        "nic2" => 2,
        "nic3" => 3,
        other => return Err(bad("NIC", other)),
    };
    let seconds =
        seconds.parse().ok().filter(|s| (1..=600).contains(s)).ok_or_else(|| bad("SECONDS", seconds))?;
    let frame_bytes = len.parse().ok().filter(|l| (60..=1514).contains(l)).ok_or_else(|| bad("LEN", len))?;
    Ok(Command::DebugBlast { nic, seconds, frame_bytes })
}

/// `a.b.c.d/len`, or `a.b.c.d` as a /32.
pub fn parse_prefix(word: &str) -> Result<Ipv4Cidr, CommandError> {
    let parsed = if word.contains('/') {
        Ipv4Cidr::parse(word)
    } else {
        parse_ipv4(word).map(|addr| Ipv4Cidr { addr, prefix_len: 32 })
    };
    parsed.ok_or_else(|| CommandError::BadArgument {
        command: "show route",
        argument: "PREFIX",
        value: echo(word),
    })
}

fn echo(word: &str) -> String {
    let mut out: String =
        word.chars().take(MAX_ECHO).map(|c| if c.is_control() || c == '"' { '?' } else { c }).collect();
    if word.chars().nth(MAX_ECHO).is_some() {
        out.push('…');
    }
    out
}

fn echo_words(words: &[&&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&echo(w));
    }
    out
}

fn interfaces_json(out: &mut impl Write, interfaces: &[InterfaceStatus]) -> fmt::Result {
    let mut j = JsonWriter::new(out);
    j.begin_object()?;
    j.key("interfaces")?;
    j.begin_array()?;
    for i in interfaces {
        j.begin_object()?;
        j.field_str("name", &i.name)?;
        j.field_display("mac", Mac(i.mac))?;
        j.field_display("pci", Pci(i.pci))?;
        j.key("address")?;
        match i.address {
            Some(a) => j.display(a)?,
            None => j.null()?,
        }
        j.field_u64("mtu", u64::from(i.mtu))?;
        j.field_u64("rx_packets", i.rx_packets)?;
        j.field_u64("rx_bytes", i.rx_bytes)?;
        j.field_u64("tx_packets", i.tx_packets)?;
        j.field_u64("tx_bytes", i.tx_bytes)?;
        j.field_u64("forwarded_packets", i.forwarding.packets)?;
        j.field_u64("forwarded_bytes", i.forwarding.bytes)?;
        j.field_u64("icmp_errors_sent", i.forwarding.icmp_errors_sent)?;
        j.field_u64("icmp_errors_rate_limited", i.forwarding.icmp_errors_rate_limited)?;
        j.key("drops")?;
        j.begin_object()?;
        for (name, n) in &i.drops {
            j.field_u64(name, *n)?;
        }
        j.end_object()?;
        j.end_object()?;
    }
    j.end_array()?;
    j.end_object()?;
    out.write_char('\n')
}

/// `show status json`: every subsystem's figures on one line (the table form is the
/// supervisor's own `status`).
pub fn status_json(
    out: &mut impl Write,
    reports: impl Iterator<Item = SubsystemReport>,
    turns: &crate::platform::TurnStats,
) -> fmt::Result {
    let mut j = JsonWriter::new(out);
    j.begin_object()?;
    j.key("loop")?;
    j.begin_object()?;
    j.field_u64("turns", turns.turns)?;
    for (key, longest) in [("longest", &turns.longest), ("longest_since_clear", &turns.since_clear)] {
        j.key(key)?;
        j.begin_object()?;
        j.field_u64("us", longest.took.total_micros())?;
        j.key("slowest_poll")?;
        match longest.poll {
            Some((name, took)) => {
                j.begin_object()?;
                j.field_str("subsystem", name)?;
                j.field_u64("us", took.total_micros())?;
                j.end_object()?;
            }
            None => j.null()?,
        }
        j.end_object()?;
    }
    j.end_object()?;
    j.key("subsystems")?;
    j.begin_array()?;
    for r in reports {
        j.begin_object()?;
        j.field_str("name", r.name)?;
        j.field_str("domain", r.domain.name())?;
        j.field_str("state", r.state.name())?;
        j.field_u64("sheds", r.sheds)?;
        j.field_u64("failures", r.failures)?;
        j.field_u64("restarts", r.restarts)?;
        j.field_u64("leaks", r.leaks)?;
        j.key("last_recovery_us")?;
        match r.last_recovery {
            Some(d) => j.u64(d.total_micros())?,
            None => j.null()?,
        }
        j.field_bool("pressure", r.pressure)?;
        j.end_object()?;
    }
    j.end_array()?;
    j.end_object()?;
    out.write_char('\n')
}

fn memory_json(out: &mut impl Write, memory: &MemoryStatus) -> fmt::Result {
    let mut j = JsonWriter::new(out);
    j.begin_object()?;
    j.key("domains")?;
    j.begin_array()?;
    for d in &memory.domains {
        j.begin_object()?;
        j.field_str("domain", d.domain.name())?;
        j.key("state")?;
        match d.state {
            Some(s) => j.str(s.name())?,
            None => j.null()?,
        }
        j.field_u64("used", d.used as u64)?;
        j.field_u64("live", d.live as u64)?;
        j.field_u64("peak", d.peak as u64)?;
        j.field_u64("blocks", d.blocks)?;
        j.field_u64("chunks", d.chunks)?;
        j.field_u64("soft", d.soft as u64)?;
        j.field_u64("quota", d.quota as u64)?;
        j.field_u64("failed_admissions", d.failed_admissions)?;
        j.field_u64("sheds", d.sheds)?;
        j.field_u64("leaks", d.leaks)?;
        j.key("last_leak")?;
        match d.last_leak {
            Some(l) => {
                j.begin_object()?;
                j.field_u64("bytes", l.bytes as u64)?;
                j.field_u64("blocks", l.blocks as u64)?;
                j.end_object()?;
            }
            None => j.null()?,
        }
        j.end_object()?;
    }
    j.end_array()?;
    let h = &memory.heap;
    j.key("heap")?;
    j.begin_object()?;
    j.field_u64("total", h.total as u64)?;
    j.field_u64("used", h.used as u64)?;
    j.field_u64("free", h.free as u64)?;
    j.field_u64("largest_free", h.largest_free as u64)?;
    j.end_object()?;
    j.end_object()?;
    out.write_char('\n')
}

struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        f.pad(&alloc::format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}"))
    }
}

struct Pci((u8, u8, u8));

impl fmt::Display for Pci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (bus, dev, func) = self.0;
        f.pad(&alloc::format!("{bus:02x}:{dev:02x}.{func:x}"))
    }
}

struct LeakText(Option<Leak>);

impl fmt::Display for LeakText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, "{} bytes in {} blocks", l.bytes, l.blocks),
            None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::json::is_valid_json;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn parses_every_command() {
        let cidr = |s| Ipv4Cidr::parse(s).unwrap();
        let cases = [
            ("help", Command::Help),
            ("  ?  ", Command::Help),
            ("show interfaces", Command::ShowInterfaces { json: false }),
            ("show\tinterfaces  json", Command::ShowInterfaces { json: true }),
            ("show memory", Command::ShowMemory { json: false }),
            ("show memory json\r\n", Command::ShowMemory { json: true }),
            ("show route", Command::ShowRoute { prefix: None, json: false }),
            ("show route json", Command::ShowRoute { prefix: None, json: true }),
            ("show route 10.0.0.0/8", Command::ShowRoute { prefix: Some(cidr("10.0.0.0/8")), json: false }),
            (
                "show route 192.0.2.7 json",
                Command::ShowRoute { prefix: Some(cidr("192.0.2.7/32")), json: true },
            ),
            ("show flows", Command::ShowFlows { json: false }),
            ("show flows json", Command::ShowFlows { json: true }),
            ("show local json", Command::ShowLocal { json: true }),
            ("show status", Command::ShowStatus { json: false }),
            ("show status json", Command::ShowStatus { json: true }),
            ("clear status", Command::ClearStatus),
            ("debug panic", Command::DebugPanic),
            ("debug blast nic1 5 64", Command::DebugBlast { nic: 1, seconds: 5, frame_bytes: 64 }),
            ("release bmp", Command::Release { domain: Domain::Bmp }),
            ("shutdown", Command::Shutdown),
            ("debug hog bmp 8MiB", Command::DebugHog { domain: Domain::Bmp, bytes: 8 << 20 }),
            ("debug hog forwarder 4096", Command::DebugHog { domain: Domain::Forwarder, bytes: 4096 }),
            ("debug leak sctp 1KiB", Command::DebugLeak { domain: Domain::Sctp, bytes: 1024 }),
            ("debug shed bgp", Command::DebugShed { domain: Domain::Bgp }),
        ];
        for (line, want) in cases {
            assert_eq!(Command::parse(line), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn every_error_kind() {
        use CommandError as E;
        let cases = [
            ("", E::Empty, "empty command (type \"help\")"),
            ("  \t ", E::Empty, "empty command (type \"help\")"),
            ("Help", E::Unknown { words: "Help".into() }, "unknown command \"Help\" (type \"help\")"),
            (
                "show routes",
                E::Unknown { words: "show routes".into() },
                "unknown command \"show routes\" (type \"help\")",
            ),
            ("show", E::Unknown { words: "show".into() }, "unknown command \"show\" (type \"help\")"),
            (
                "debug hog",
                E::MissingArgument { command: "debug hog", argument: "DOMAIN" },
                "debug hog: missing DOMAIN",
            ),
            (
                "debug leak bmp",
                E::MissingArgument { command: "debug leak", argument: "SIZE" },
                "debug leak: missing SIZE",
            ),
            (
                "release",
                E::MissingArgument { command: "release", argument: "DOMAIN" },
                "release: missing DOMAIN",
            ),
            (
                "debug hog BMP 1MiB",
                E::BadArgument { command: "debug hog", argument: "DOMAIN", value: "BMP".into() },
                "debug hog: \"BMP\" is not a valid DOMAIN",
            ),
            (
                "debug hog bmp 8MB",
                E::BadArgument { command: "debug hog", argument: "SIZE", value: "8MB".into() },
                "debug hog: \"8MB\" is not a valid SIZE",
            ),
            (
                "show route 10.0.0.0/33",
                E::BadArgument { command: "show route", argument: "PREFIX", value: "10.0.0.0/33".into() },
                "show route: \"10.0.0.0/33\" is not a valid PREFIX",
            ),
            (
                "show memory yaml",
                E::UnexpectedArgument { command: "show memory", value: "yaml".into() },
                "show memory: unexpected \"yaml\"",
            ),
            (
                "show route 10.0.0.0/8 json x",
                E::UnexpectedArgument { command: "show route", value: "x".into() },
                "show route: unexpected \"x\"",
            ),
            (
                "debug shed bmp now",
                E::UnexpectedArgument { command: "debug shed", value: "now".into() },
                "debug shed: unexpected \"now\"",
            ),
            (
                "shutdown -h",
                E::UnexpectedArgument { command: "shutdown", value: "-h".into() },
                "shutdown: unexpected \"-h\"",
            ),
        ];
        for (line, want, shown) in cases {
            let got = Command::parse(line);
            assert_eq!(got, Err(want), "{line:?}");
            assert_eq!(got.unwrap_err().to_string(), shown);
        }
        let long = "x".repeat(100) + "\u{1b}";
        let shown = Command::parse(&("\u{1b}[2J".to_string() + &long)).unwrap_err().to_string();
        assert!(!shown.contains('\u{1b}') && shown.len() < 80, "{shown}");
    }

    /// Every help line's syntax, with its placeholders filled in, parses.
    #[test]
    fn help_lists_every_command_and_each_parses() {
        let mut seen = std::collections::HashSet::new();
        for line in HELP.lines() {
            let syntax = line.split("  ").next().unwrap().trim();
            let filled = syntax
                .replace("[PREFIX] ", "10.0.0.0/8 ")
                .replace(" [json]", " json")
                .replace("DOMAIN", "bmp")
                .replace("SIZE", "8MiB")
                .replace("NIC SECS LEN", "nic1 5 64");
            let cmd = Command::parse(&filled).unwrap_or_else(|e| panic!("help line {line:?}: {e}"));
            seen.insert(std::mem::discriminant(&cmd));
        }
        assert_eq!(seen.len(), 15, "a Command variant is missing from HELP");
    }

    fn nic0() -> InterfaceStatus {
        InterfaceStatus {
            name: "nic0".into(),
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            pci: (0, 3, 0),
            address: Ipv4Cidr::parse("192.0.2.1/24"),
            mtu: 1500,
            rx_packets: 10,
            rx_bytes: 1000,
            tx_packets: 5,
            tx_bytes: 500,
            drops: alloc::vec![("rx_ring_full", 1), ("tx_ring_full", 0), ("malformed", 2)],
            forwarding: ForwardingCounters {
                packets: 3,
                bytes: 300,
                icmp_errors_sent: 1,
                icmp_errors_rate_limited: 0,
            },
        }
    }

    fn nic3() -> InterfaceStatus {
        InterfaceStatus {
            name: "nic3".into(),
            pci: (0, 6, 0),
            address: None,
            drops: alloc::vec![("rx_ring_full", 0), ("tx_ring_full", 0), ("malformed", 0)],
            forwarding: ForwardingCounters::default(),
            ..nic0()
        }
    }

    #[test]
    fn interfaces_table_golden() {
        let mut s = String::new();
        show_interfaces(&mut s, &[nic0(), nic3()], false).unwrap();
        let want = "\
Name   MAC               PCI      Address              MTU  RX packets      RX bytes  TX packets      TX bytes    Drops
nic0   52:54:00:12:34:56 00:03.0  192.0.2.1/24        1500          10          1000           5           500        3
       forwarded: 3 packets, 300 bytes; ICMP errors sent 1, rate-limited 0
       drops: rx_ring_full 1, malformed 2
nic3   52:54:00:12:34:56 00:06.0  unnumbered          1500          10          1000           5           500        0
";
        assert_eq!(s, want);
    }

    #[test]
    fn interfaces_json_golden_and_valid() {
        let mut s = String::new();
        let mut odd = nic3();
        odd.name = "n\"i\\c\n".into();
        show_interfaces(&mut s, &[nic0(), odd], true).unwrap();
        let want = concat!(
            r#"{"interfaces":[{"name":"nic0","mac":"52:54:00:12:34:56","pci":"00:03.0","address":"192.0.2.1/24","mtu":1500,"#,
            r#""rx_packets":10,"rx_bytes":1000,"tx_packets":5,"tx_bytes":500,"forwarded_packets":3,"forwarded_bytes":300,"#,
            r#""icmp_errors_sent":1,"icmp_errors_rate_limited":0,"drops":{"rx_ring_full":1,"tx_ring_full":0,"#,
            r#""malformed":2}},"#,
            r#"{"name":"n\"i\\c\n","mac":"52:54:00:12:34:56","pci":"00:06.0","address":null,"mtu":1500,"#,
            r#""rx_packets":10,"rx_bytes":1000,"tx_packets":5,"tx_bytes":500,"forwarded_packets":0,"forwarded_bytes":0,"#,
            r#""icmp_errors_sent":0,"icmp_errors_rate_limited":0,"drops":{"rx_ring_full":0,"tx_ring_full":0,"#,
            r#""malformed":0}}]}"#,
            "\n"
        );
        assert_eq!(s, want);
        assert!(is_valid_json(s.trim_end()));
        let mut empty = String::new();
        show_interfaces(&mut empty, &[], true).unwrap();
        assert_eq!(empty, "{\"interfaces\":[]}\n");
    }

    fn memory() -> MemoryStatus {
        let row = |domain, used: usize, quota: usize| DomainMemory {
            domain,
            used,
            peak: used * 2,
            live: used / 2,
            blocks: 7,
            chunks: 2,
            soft: quota / 4 * 3,
            quota,
            failed_admissions: 0,
            sheds: 0,
            leaks: 0,
            last_leak: None,
            state: Some(SubsystemState::Up),
        };
        MemoryStatus {
            domains: vec![
                DomainMemory { state: None, ..row(Domain::Kernel, 1 << 20, 16 << 20) },
                DomainMemory {
                    failed_admissions: 12,
                    sheds: 3,
                    leaks: 1,
                    last_leak: Some(Leak { bytes: 4096, blocks: 2 }),
                    state: Some(SubsystemState::HeldDown),
                    ..row(Domain::Bmp, 900, 16 << 20)
                },
            ],
            heap: HeapStatus { total: 256 << 20, used: 3 << 20, free: 253 << 20, largest_free: 250 << 20 },
        }
    }

    #[test]
    fn memory_table_golden() {
        let mut s = String::new();
        show_memory(&mut s, &memory(), false).unwrap();
        let want = "\
Domain     State             Used       Peak       Soft      Quota   Blocks  Chunks Refused  Sheds  Last leak
kernel     -               1.0 MB     2.0 MB    12.0 MB    16.0 MB        7       2       0      0  none
bmp        held-down        900 B     1.7 kB    12.0 MB    16.0 MB        7       2      12      3  4096 bytes in 2 blocks
Heap: 256.0 MB total, 3.0 MB used, 253.0 MB free, largest free block 250.0 MB
";
        assert_eq!(s, want);
    }

    #[test]
    fn status_json_golden_and_valid() {
        let report = SubsystemReport {
            name: "bmp",
            domain: Domain::Bmp,
            state: SubsystemState::Up,
            sheds: 2,
            failures: 0,
            restarts: 2,
            leaks: 1,
            last_leak: Some(Leak { bytes: 112, blocks: 1 }),
            restart_at: None,
            last_recovery: Some(crate::time::Duration::from_micros(1500)),
            pressure: false,
        };
        let mut s = String::new();
        let turns = crate::platform::TurnStats {
            turns: 9,
            longest: crate::platform::Longest {
                took: crate::time::Duration::from_micros(800),
                poll: Some(("sctp", crate::time::Duration::from_micros(700))),
            },
            since_clear: crate::platform::Longest::default(),
        };
        status_json(&mut s, [report].into_iter(), &turns).unwrap();
        assert_eq!(
            s,
            concat!(
                r#"{"loop":{"turns":9,"longest":{"us":800,"slowest_poll":{"subsystem":"sctp","us":700}},"#,
                r#""longest_since_clear":{"us":0,"slowest_poll":null}},"#,
                r#""subsystems":[{"name":"bmp","domain":"bmp","state":"up","sheds":2,"failures":0,"restarts":2,"#,
                r#""leaks":1,"last_recovery_us":1500,"pressure":false}]}"#,
                "\n"
            )
        );
        assert!(is_valid_json(s.trim_end()));
    }

    #[test]
    fn memory_json_golden_and_valid() {
        let mut s = String::new();
        show_memory(&mut s, &memory(), true).unwrap();
        let want = concat!(
            r#"{"domains":[{"domain":"kernel","state":null,"used":1048576,"live":524288,"peak":2097152,"blocks":7,"chunks":2,"#,
            r#""soft":12582912,"quota":16777216,"failed_admissions":0,"sheds":0,"leaks":0,"last_leak":null},"#,
            r#"{"domain":"bmp","state":"held-down","used":900,"live":450,"peak":1800,"blocks":7,"chunks":2,"soft":12582912,"#,
            r#""quota":16777216,"failed_admissions":12,"sheds":3,"leaks":1,"last_leak":{"bytes":4096,"blocks":2}}],"#,
            r#""heap":{"total":268435456,"used":3145728,"free":265289728,"largest_free":262144000}}"#,
            "\n"
        );
        assert_eq!(s, want);
        assert!(is_valid_json(s.trim_end()));
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in "\\PC{0,80}") {
            let _ = Command::parse(&line).map_err(|e| e.to_string());
        }

        #[test]
        fn parse_never_panics_on_near_commands(words in proptest::collection::vec(
            prop_oneof![Just("show"), Just("debug"), Just("hog"), Just("route"), Just("json"), Just("bmp"),
                        Just("8MiB"), Just("10.0.0.0/8"), Just("memory"), Just("x")], 0..6)) {
            let _ = Command::parse(&words.join(" "));
        }
    }
}
