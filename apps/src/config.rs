//! The appliance configuration: TOML read at boot from QEMU fw_cfg, or the embedded default.
//!
//! The text is untrusted. [`Config::parse`] never panics; every refusal is a [`ConfigError`]
//! that names the 1-based line and the dotted key it concerns, e.g.
//! `config line 7: interface[1].address: "198.51.100.1/33" is not an IPv4 address with prefix length`.
//! Unknown keys are refused, and so are duplicate keys (by the TOML parser).
//!
//! # Schema
//!
//! ```toml
//! [[interface]]               # zero to four of them
//! name = "nic0"               # nic0..nic3, each at most once
//! address = "192.0.2.1/24"    # optional; without it the interface is up but unnumbered/unused
//! mtu = 1500                  # optional, 576..=1500, default 1500 (the NICs carry no jumbo frames yet)
//!
//! [[route]]                   # static routes, at most 4096
//! prefix = "10.20.0.0/16"     # canonical: no host bits set; 0.0.0.0/0 is the default route
//! via = "198.51.100.2"        # must lie in a connected subnet, and not be our own address
//!
//! [memory]
//! heap_reserve = "4MiB"       # optional, at least 1 MiB: the overshoot reserve outside every
//!                             # quota; default max(1 MiB, heap / 32)
//! [memory.bmp]                # one optional table per domain:
//!                             # kernel, net, forwarder, sctp, bgp, bmp, mgmt, diag
//! quota = "16MiB"             # hard quota, at least 64 KiB; default a fraction of the heap
//!                             # (see `Config::memory_plan`); for `kernel` it is the kernel reserve
//! soft = "12MiB"              # pressure threshold, 1 <= soft < quota; default 75 % of quota
//! restart_limit = 5           # 1..=1000, default 5: sheds within the supervisor's window
//!                             # before the subsystem is held down; not allowed for `kernel`
//!
//! [forwarder]
//! flow_idle_tcp = "300s"      # idle timeouts and maximum flow lifetime, all > 0
//! flow_idle_udp = "60s"
//! flow_idle_icmp = "10s"
//! flow_lifetime = "3600s"
//! icmp_rate = 100             # ICMP errors per second (token bucket), 0..=1000000; 0 = none
//! max_routes_static = 4096    # route limits per source in the FIB, 0..=4000000; beyond them
//! max_routes_bgp = 2000000    # routes are refused and counted (`show route`)
//!
//! [diagnostics]
//! enabled = false             # default false
//! ```
//!
//! Sizes are integer bytes or strings with a binary unit: `"512KiB"`, `"16MiB"`, `"1GiB"`.
//! Durations are integer seconds or strings `"500ms"`, `"300s"`, `"5m"`, `"1h"`.
//!
//! Addresses: an interface address must be a usable host address of its prefix. For /1–/30
//! that excludes the network and the broadcast address; /31 is allowed with both addresses
//! usable (RFC 3021 point-to-point) and /32 is allowed as a lone address with no on-link
//! neighbours (no route can go via it). /0 is refused. Subnets of different interfaces must
//! not overlap.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::addr::{parse_ipv4, Ipv4Addr, Ipv4Cidr};
use crate::domain::{Domain, Quota};
pub use crate::forwarder::ForwarderConfig;
use crate::time::Duration;
use crate::units::{parse_duration, parse_size, ExactSize};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The most static routes a configuration may hold.
pub const MAX_ROUTES: usize = 4096;
/// The number of NICs the appliance names (`nic0`..`nic3`).
pub const MAX_NICS: u8 = 4;
/// Default sheds within the supervisor's window before a subsystem is held down.
pub const DEFAULT_RESTART_LIMIT: u32 = 5;

const MIB: usize = 1 << 20;
const MIN_QUOTA: usize = 64 << 10;
const MIN_HEAP_RESERVE: usize = MIB;
const MIN_KERNEL_RESERVE: usize = 2 * MIB;
/// The longest value text quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// A validated appliance configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub interfaces: Vec<InterfaceConfig>,
    pub routes: Vec<RouteConfig>,
    pub memory: MemoryConfig,
    pub forwarder: ForwarderConfig,
    pub diagnostics: DiagnosticsConfig,
    pub sctp: crate::sctp::SctpConfig,
    pub bgp: crate::bgp::BgpConfig,
    pub bmp: crate::bmp::BmpConfig,
}

/// One `[[interface]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub nic: NicId,
    pub address: Option<Ipv4Cidr>,
    pub mtu: u16,
}

/// A NIC by position: `nic0`..`nic3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NicId(u8);

/// One `[[route]]`: a static route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    pub prefix: Ipv4Cidr,
    pub via: Ipv4Addr,
}

/// `[memory]`: explicit overrides; what is `None` is filled in by [`Config::memory_plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryConfig {
    pub heap_reserve: Option<usize>,
    /// Indexed by `Domain as usize`.
    pub domains: [DomainMemoryConfig; Domain::COUNT],
}

/// `[memory.<domain>]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainMemoryConfig {
    pub quota: Option<usize>,
    pub soft: Option<usize>,
    pub restart_limit: Option<u32>,
}

/// `[diagnostics]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiagnosticsConfig {
    pub enabled: bool,
}

/// A configuration refused: where, which key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending text.
    pub line: usize,
    /// Dotted key (`interface[1].address`, `memory.bmp.quota`); empty for syntax errors.
    pub key: String,
    pub kind: ConfigErrorKind,
}

/// Why a configuration was refused. `value` fields quote the source text (truncated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Not TOML at all; the parser's message.
    Syntax { message: String },
    /// A key given twice.
    DuplicateKey,
    /// A key the schema does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong TOML type.
    WrongType { expected: &'static str, found: &'static str },
    /// An interface name outside `nic0`..`nic3`.
    BadInterfaceName { value: String },
    /// The same interface configured twice; `first` is the key of the first.
    DuplicateInterface { value: String, first: String },
    /// Not `a.b.c.d/len`.
    BadCidr { value: String },
    /// Not `a.b.c.d`.
    BadIpv4 { value: String },
    /// The network or broadcast address of its prefix used as a host address.
    ReservedHostAddress { value: String },
    /// An interface subnet overlapping another interface's (`other` is its key).
    SubnetOverlap { value: String, other: String },
    /// A route prefix with host bits set.
    PrefixNotCanonical { value: String },
    /// A next hop outside every connected subnet.
    NextHopNotConnected { value: String },
    /// A next hop that is one of the appliance's own addresses.
    NextHopIsLocal { value: String },
    /// The same route prefix twice; `first` is the key of the first.
    DuplicateRoute { value: String, first: String },
    /// Not a size.
    BadSize { value: String },
    /// Not a duration.
    BadDuration { value: String },
    /// A well-formed value outside its allowed range.
    OutOfRange { value: String, allowed: &'static str },
    /// `soft` not below `quota`.
    SoftNotBelowQuota { soft: usize, quota: usize },
    /// A key that exists but makes no sense where it is written.
    NotApplicable { reason: &'static str },
}

/// The per-domain quotas the allocator is set up with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    pub heap_bytes: usize,
    /// Indexed by `Domain as usize`; the kernel's hard quota is the kernel reserve.
    pub quotas: [Quota; Domain::COUNT],
    /// Bytes outside every quota, for allocations that overshoot before a shed.
    pub overshoot_reserve: usize,
    /// Indexed by `Domain as usize`; unused for the kernel.
    pub restart_limits: [u32; Domain::COUNT],
}

/// A memory plan that cannot be set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The quotas and reserves add up to more than the heap.
    DoesNotFit { quotas: usize, kernel_reserve: usize, overshoot_reserve: usize, heap: usize },
    /// An explicit soft threshold not below the (default) quota of its domain.
    SoftNotBelowHard { domain: Domain, soft: usize, hard: usize },
}

impl Config {
    /// Parses and validates a configuration. Never panics.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let root = Table { text, path: String::new(), table: doc.get_ref(), span: doc.span() };
        root.check_keys(&["interface", "route", "memory", "forwarder", "diagnostics", "sctp", "bgp", "bmp"])?;

        let interfaces = parse_interfaces(&root)?;
        let routes = parse_routes(&root, &interfaces)?;
        let memory = match root.table_opt("memory")? {
            Some(t) => parse_memory(&t)?,
            None => MemoryConfig::default(),
        };
        let forwarder = match root.table_opt("forwarder")? {
            Some(t) => ForwarderConfig::parse(&t)?,
            None => ForwarderConfig::default(),
        };
        let diagnostics = match root.table_opt("diagnostics")? {
            Some(t) => {
                t.check_keys(&["enabled"])?;
                DiagnosticsConfig { enabled: t.bool_opt("enabled")?.unwrap_or(false) }
            }
            None => DiagnosticsConfig::default(),
        };
        // Each subsystem reads its own section, in its own module.
        let mut sctp = match root.table_opt("sctp")? {
            Some(t) => crate::sctp::SctpConfig::parse(&t)?,
            None => crate::sctp::SctpConfig::default(),
        };
        // SCTP's packets leave by whichever interface the FIB picks: none may be larger than
        // the smallest addressed interface takes (path MTU discovery lowers it further).
        if let Some(mtu) = interfaces.iter().filter(|(i, _)| i.address.is_some()).map(|(i, _)| i.mtu).min() {
            sctp.mtu = mtu;
        }
        let bgp = match root.table_opt("bgp")? {
            Some(t) => crate::bgp::BgpConfig::parse(&t)?,
            None => crate::bgp::BgpConfig::default(),
        };
        let bmp = match root.table_opt("bmp")? {
            Some(t) => crate::bmp::BmpConfig::parse(&t)?,
            None => crate::bmp::BmpConfig::default(),
        };
        Ok(Config {
            interfaces: interfaces.into_iter().map(|(i, _)| i).collect(),
            routes,
            memory,
            forwarder,
            diagnostics,
            sctp,
            bgp,
            bmp,
        })
    }

    /// The interface configured on `nic`, if any.
    pub fn interface(&self, nic: NicId) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.nic == nic)
    }

    /// Divides a heap of `heap_bytes` into per-domain quotas.
    ///
    /// Defaults, as fractions of the heap: kernel reserve max(2 MiB, 1/16), net 1/16,
    /// forwarder 1/4, sctp 1/8, bgp 1/4, bmp 1/16, mgmt 1/32, diag 1/32 (together 7/8),
    /// overshoot reserve max(1 MiB, 1/32). Soft thresholds default to 75 % of the quota.
    /// Explicit `[memory]` values override the defaults; the sum of the hard quotas, the
    /// kernel reserve and the overshoot reserve must fit the heap.
    pub fn memory_plan(&self, heap_bytes: usize) -> Result<MemoryPlan, PlanError> {
        let mut quotas = [Quota { hard: 0, soft: 0 }; Domain::COUNT];
        let mut restart_limits = [DEFAULT_RESTART_LIMIT; Domain::COUNT];
        for d in Domain::ALL {
            let explicit = self.memory.domains[d as usize];
            let hard = explicit.quota.unwrap_or_else(|| default_quota(d, heap_bytes));
            let soft = match explicit.soft {
                Some(soft) if soft >= hard => {
                    return Err(PlanError::SoftNotBelowHard { domain: d, soft, hard })
                }
                Some(soft) => soft,
                None => hard - hard / 4,
            };
            quotas[d as usize] = Quota { hard, soft };
            restart_limits[d as usize] = explicit.restart_limit.unwrap_or(DEFAULT_RESTART_LIMIT);
        }
        let overshoot_reserve =
            self.memory.heap_reserve.unwrap_or_else(|| MIN_HEAP_RESERVE.max(heap_bytes / 32));
        let kernel_reserve = quotas[Domain::Kernel as usize].hard;
        let quotas_sum = Domain::ALL
            .into_iter()
            .filter(|d| *d != Domain::Kernel)
            .fold(0usize, |sum, d| sum.saturating_add(quotas[d as usize].hard));
        let total = quotas_sum.saturating_add(kernel_reserve).saturating_add(overshoot_reserve);
        if total > heap_bytes {
            return Err(PlanError::DoesNotFit {
                quotas: quotas_sum,
                kernel_reserve,
                overshoot_reserve,
                heap: heap_bytes,
            });
        }
        Ok(MemoryPlan { heap_bytes, quotas, overshoot_reserve, restart_limits })
    }
}

impl Config {
    /// The embedded default as a value: what `Config::parse(DEFAULT_CONFIG)` gives (a test
    /// checks it), without running the TOML parser at boot (10 ms under TCG emulation).
    pub fn builtin_default() -> Config {
        let interface = |nic: u8, address: &str| InterfaceConfig {
            nic: NicId(nic),
            address: Ipv4Cidr::parse(address),
            mtu: 1500,
        };
        Config {
            interfaces: alloc::vec![
                interface(0, "192.0.2.1/24"),
                interface(1, "198.51.100.1/24"),
                interface(2, "203.0.113.1/24"),
            ],
            routes: Vec::new(),
            memory: MemoryConfig::default(),
            forwarder: ForwarderConfig::default(),
            diagnostics: DiagnosticsConfig::default(),
            sctp: crate::sctp::SctpConfig::default(),
            bgp: crate::bgp::BgpConfig::default(),
            bmp: crate::bmp::BmpConfig::default(),
        }
    }
}

impl NicId {
    /// `nic0`..`nic3`.
    pub fn from_name(name: &str) -> Option<NicId> {
        let digit = name.strip_prefix("nic")?;
        match digit.as_bytes() {
            [d @ b'0'..=b'9'] if d - b'0' < MAX_NICS => Some(NicId(d - b'0')),
            _ => None,
        }
    }

    pub const fn index(self) -> u8 {
        self.0
    }
}

impl fmt::Display for NicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nic{}", self.0)
    }
}

impl MemoryPlan {
    pub fn quota(&self, d: Domain) -> Quota {
        self.quotas[d as usize]
    }

    pub fn restart_limit(&self, d: Domain) -> u32 {
        self.restart_limits[d as usize]
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config line {}: ", self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        use ConfigErrorKind as K;
        match &self.kind {
            K::Syntax { message } => write!(f, "{message}"),
            K::DuplicateKey => f.write_str("duplicate key"),
            K::UnknownKey => f.write_str("unknown key"),
            K::MissingKey => f.write_str("required key is missing"),
            K::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            K::BadInterfaceName { value } => write!(f, "{value} is not an interface name (nic0..nic3)"),
            K::DuplicateInterface { value, first } => write!(f, "{value} is already configured by {first}"),
            K::BadCidr { value } => write!(f, "{value} is not an IPv4 address with prefix length"),
            K::BadIpv4 { value } => write!(f, "{value} is not an IPv4 address"),
            K::ReservedHostAddress { value } => {
                write!(f, "{value} is the network or broadcast address of its prefix")
            }
            K::SubnetOverlap { value, other } => write!(f, "{value} overlaps the subnet of {other}"),
            K::PrefixNotCanonical { value } => {
                write!(f, "{value} has host bits set (write the network address)")
            }
            K::NextHopNotConnected { value } => write!(f, "{value} is not inside a connected subnet"),
            K::NextHopIsLocal { value } => write!(f, "{value} is an address of this appliance"),
            K::DuplicateRoute { value, first } => write!(f, "{value} is already routed by {first}"),
            K::BadSize { value } => {
                write!(f, "{value} is not a size (bytes, or \"512KiB\", \"16MiB\", \"1GiB\")")
            }
            K::BadDuration { value } => {
                write!(f, "{value} is not a duration (seconds, or \"500ms\", \"300s\", \"5m\", \"1h\")")
            }
            K::OutOfRange { value, allowed } => write!(f, "{value} is out of range ({allowed})"),
            K::SoftNotBelowQuota { soft, quota } => write!(
                f,
                "soft threshold {} must be below the quota {}",
                ExactSize(*soft as u64),
                ExactSize(*quota as u64)
            ),
            K::NotApplicable { reason } => f.write_str(reason),
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::DoesNotFit { quotas, kernel_reserve, overshoot_reserve, heap } => write!(
                f,
                "quotas {} + kernel reserve {} + overshoot reserve {} exceed the heap of {}",
                ExactSize(quotas as u64),
                ExactSize(kernel_reserve as u64),
                ExactSize(overshoot_reserve as u64),
                ExactSize(heap as u64)
            ),
            PlanError::SoftNotBelowHard { domain, soft, hard } => write!(
                f,
                "memory.{}.soft {} is not below its quota of {}",
                domain.name(),
                ExactSize(soft as u64),
                ExactSize(hard as u64)
            ),
        }
    }
}

// ---- sections -------------------------------------------------------------------------

/// Parses `[[interface]]`; each interface comes with its key (`interface[i]`).
fn parse_interfaces(root: &Table<'_, '_>) -> Result<Vec<(InterfaceConfig, String)>, ConfigError> {
    let mut out: Vec<(InterfaceConfig, String)> = Vec::new();
    for t in root.array_of_tables("interface")? {
        t.check_keys(&["name", "address", "mtu"])?;
        let (name, name_span) = t.str_req("name")?;
        let nic = NicId::from_name(name).ok_or_else(|| {
            t.err_at(
                name_span.clone(),
                "name",
                ConfigErrorKind::BadInterfaceName { value: t.quote(&name_span) },
            )
        })?;
        if let Some((_, first)) = out.iter().find(|(i, _)| i.nic == nic) {
            let first = format!("{first}.name");
            return Err(t.err_at(
                name_span.clone(),
                "name",
                ConfigErrorKind::DuplicateInterface { value: t.quote(&name_span), first },
            ));
        }
        let address = match t.str_opt("address")? {
            Some((text, span)) => {
                let cidr = Ipv4Cidr::parse(text).ok_or_else(|| {
                    t.err_at(span.clone(), "address", ConfigErrorKind::BadCidr { value: t.quote(&span) })
                })?;
                check_host_address(&t, cidr, &span)?;
                if let Some((_, other)) =
                    out.iter().find(|(i, _)| i.address.is_some_and(|a| a.overlaps(cidr)))
                {
                    let other = format!("{other}.address");
                    return Err(t.err_at(
                        span.clone(),
                        "address",
                        ConfigErrorKind::SubnetOverlap { value: t.quote(&span), other },
                    ));
                }
                Some(cidr)
            }
            None => None,
        };
        let mtu = match t.int_opt("mtu")? {
            Some((v, span)) => match u16::try_from(v) {
                Ok(m) if (576..=1500).contains(&m) => m,
                _ => {
                    return Err(t.err_at(
                        span.clone(),
                        "mtu",
                        ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "576..=1500" },
                    ))
                }
            },
            None => 1500,
        };
        out.push((InterfaceConfig { nic, address, mtu }, t.path.clone()));
    }
    Ok(out)
}

fn check_host_address(t: &Table<'_, '_>, cidr: Ipv4Cidr, span: &Range<usize>) -> Result<(), ConfigError> {
    if cidr.prefix_len == 0 {
        return Err(t.err_at(
            span.clone(),
            "address",
            ConfigErrorKind::OutOfRange { value: t.quote(span), allowed: "prefix length /1../32" },
        ));
    }
    if cidr.prefix_len <= 30 && (cidr.addr == cidr.network() || cidr.addr == cidr.broadcast()) {
        return Err(t.err_at(
            span.clone(),
            "address",
            ConfigErrorKind::ReservedHostAddress { value: t.quote(span) },
        ));
    }
    Ok(())
}

fn parse_routes(
    root: &Table<'_, '_>,
    interfaces: &[(InterfaceConfig, String)],
) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::new();
    for (i, t) in root.array_of_tables("route")?.into_iter().enumerate() {
        if i >= MAX_ROUTES {
            return Err(t.err_at(
                t.span.clone(),
                "",
                ConfigErrorKind::OutOfRange {
                    value: format!("{} routes", i + 1),
                    allowed: "at most 4096 static routes",
                },
            ));
        }
        t.check_keys(&["prefix", "via"])?;
        let (text, span) = t.str_req("prefix")?;
        let prefix = Ipv4Cidr::parse(text).ok_or_else(|| {
            t.err_at(span.clone(), "prefix", ConfigErrorKind::BadCidr { value: t.quote(&span) })
        })?;
        if !prefix.is_canonical() {
            return Err(t.err_at(
                span.clone(),
                "prefix",
                ConfigErrorKind::PrefixNotCanonical { value: t.quote(&span) },
            ));
        }
        if let Some(first) = out.iter().position(|r| r.prefix == prefix) {
            let first = format!("route[{first}].prefix");
            return Err(t.err_at(
                span.clone(),
                "prefix",
                ConfigErrorKind::DuplicateRoute { value: t.quote(&span), first },
            ));
        }
        let (text, span) = t.str_req("via")?;
        let via = parse_ipv4(text).ok_or_else(|| {
            t.err_at(span.clone(), "via", ConfigErrorKind::BadIpv4 { value: t.quote(&span) })
        })?;
        let subnet = interfaces.iter().filter_map(|(i, _)| i.address).find(|a| a.contains(via));
        match subnet {
            None => {
                return Err(t.err_at(
                    span.clone(),
                    "via",
                    ConfigErrorKind::NextHopNotConnected { value: t.quote(&span) },
                ))
            }
            Some(a) if a.addr == via => {
                return Err(t.err_at(
                    span.clone(),
                    "via",
                    ConfigErrorKind::NextHopIsLocal { value: t.quote(&span) },
                ))
            }
            Some(a) if a.prefix_len <= 30 && (via == a.network() || via == a.broadcast()) => {
                return Err(t.err_at(
                    span.clone(),
                    "via",
                    ConfigErrorKind::ReservedHostAddress { value: t.quote(&span) },
                ))
            }
            Some(_) => {}
        }
        out.push(RouteConfig { prefix, via });
    }
    Ok(out)
}

fn parse_memory(t: &Table<'_, '_>) -> Result<MemoryConfig, ConfigError> {
    let mut allowed: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
    allowed.push("heap_reserve");
    t.check_keys(&allowed)?;
    let mut memory = MemoryConfig::default();
    if let Some((bytes, span)) = t.size_opt("heap_reserve")? {
        if bytes < MIN_HEAP_RESERVE {
            return Err(t.err_at(
                span.clone(),
                "heap_reserve",
                ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "at least 1MiB" },
            ));
        }
        memory.heap_reserve = Some(bytes);
    }
    for d in Domain::ALL {
        let Some(dt) = t.table_opt(d.name())? else { continue };
        dt.check_keys(&["quota", "soft", "restart_limit"])?;
        let quota = dt.size_opt("quota")?;
        if let Some((q, span)) = &quota {
            if *q < MIN_QUOTA {
                return Err(dt.err_at(
                    span.clone(),
                    "quota",
                    ConfigErrorKind::OutOfRange { value: dt.quote(span), allowed: "at least 64KiB" },
                ));
            }
        }
        let soft = dt.size_opt("soft")?;
        if let Some((s, span)) = &soft {
            if *s == 0 {
                return Err(dt.err_at(
                    span.clone(),
                    "soft",
                    ConfigErrorKind::OutOfRange { value: dt.quote(span), allowed: "at least 1 byte" },
                ));
            }
            if let Some((q, _)) = quota {
                if *s >= q {
                    return Err(dt.err_at(
                        span.clone(),
                        "soft",
                        ConfigErrorKind::SoftNotBelowQuota { soft: *s, quota: q },
                    ));
                }
            }
        }
        let restart_limit = match dt.int_opt("restart_limit")? {
            Some((_, span)) if d == Domain::Kernel => {
                return Err(dt.err_at(
                    span,
                    "restart_limit",
                    ConfigErrorKind::NotApplicable { reason: "the kernel domain is never shed" },
                ))
            }
            Some((v, span)) => match u32::try_from(v) {
                Ok(n) if (1..=1000).contains(&n) => Some(n),
                _ => {
                    return Err(dt.err_at(
                        span.clone(),
                        "restart_limit",
                        ConfigErrorKind::OutOfRange { value: dt.quote(&span), allowed: "1..=1000" },
                    ))
                }
            },
            None => None,
        };
        memory.domains[d as usize] =
            DomainMemoryConfig { quota: quota.map(|q| q.0), soft: soft.map(|s| s.0), restart_limit };
    }
    Ok(memory)
}

fn default_quota(d: Domain, heap: usize) -> usize {
    match d {
        Domain::Kernel => MIN_KERNEL_RESERVE.max(heap / 16),
        Domain::Net => heap / 16,
        Domain::Forwarder => heap / 4,
        Domain::Sctp => heap / 8,
        Domain::Bgp => heap / 4,
        Domain::Bmp => heap / 16,
        Domain::Mgmt => heap / 32,
        Domain::Diag => heap / 32,
    }
}

// ---- the spanned-table reader -----------------------------------------------------------

/// A table of the parsed document, with its dotted path, for typed look-ups with errors. Each
/// subsystem's module parses its own section with it (`forwarder::ForwarderConfig::parse`).
pub(crate) struct Table<'a, 'i> {
    text: &'a str,
    path: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Refuses any key not in `allowed`.
    pub(crate) fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self.table.iter().find(|(k, _)| !allowed.contains(&k.get_ref().as_ref())) {
            Some((k, _)) => Err(self.err_at(k.span(), k.get_ref(), ConfigErrorKind::UnknownKey)),
            None => Ok(()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    pub(crate) fn table_opt(&self, key: &str) -> Result<Option<Table<'a, 'i>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => {
                    Ok(Some(Table { text: self.text, path: self.child(key), table: t, span: v.span() }))
                }
                other => Err(self.wrong_type(v, key, "table", other)),
            },
        }
    }

    /// `[[key]]`: absent is empty.
    pub(crate) fn array_of_tables(&self, key: &str) -> Result<Vec<Table<'a, 'i>>, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(v, key, "array of tables", v.get_ref()));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.child(key));
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table { text: self.text, path, table: t, span: item.span() }),
                other => {
                    return Err(ConfigError {
                        line: line_of(self.text, item.span().start),
                        key: path,
                        kind: ConfigErrorKind::WrongType { expected: "table", found: other.type_str() },
                    })
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn str_opt(&self, key: &str) -> Result<Option<(&'a str, Range<usize>)>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
                other => Err(self.wrong_type(v, key, "string", other)),
            },
        }
    }

    pub(crate) fn str_req(&self, key: &str) -> Result<(&'a str, Range<usize>), ConfigError> {
        self.str_opt(key)?.ok_or_else(|| self.err_at(self.span.clone(), key, ConfigErrorKind::MissingKey))
    }

    pub(crate) fn bool_opt(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(Some(*b)),
                other => Err(self.wrong_type(v, key, "boolean", other)),
            },
        }
    }

    /// An integer; one that does not fit `i64` is reported as out of range.
    pub(crate) fn int_opt(&self, key: &str) -> Result<Option<(i64, Range<usize>)>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => Ok(Some((n, v.span()))),
                    Err(_) => Err(self.err_at(
                        v.span(),
                        key,
                        ConfigErrorKind::OutOfRange {
                            value: self.quote(&v.span()),
                            allowed: "a 64-bit integer",
                        },
                    )),
                },
                other => Err(self.wrong_type(v, key, "integer", other)),
            },
        }
    }

    /// A size: integer bytes or a string with a unit.
    pub(crate) fn size_opt(&self, key: &str) -> Result<Option<(usize, Range<usize>)>, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let bytes = match v.get_ref() {
            DeValue::Integer(i) => {
                u64::from_str_radix(i.as_str(), i.radix()).ok().and_then(|n| usize::try_from(n).ok())
            }
            DeValue::String(s) => parse_size(s),
            other => return Err(self.wrong_type(v, key, "size (integer or string)", other)),
        };
        match bytes {
            Some(b) => Ok(Some((b, v.span()))),
            None => {
                Err(self.err_at(v.span(), key, ConfigErrorKind::BadSize { value: self.quote(&v.span()) }))
            }
        }
    }

    /// A duration > 0: integer seconds or a string with a unit.
    pub(crate) fn duration_opt(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let duration = match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .map(Duration::from_micros),
            DeValue::String(s) => parse_duration(s),
            other => return Err(self.wrong_type(v, key, "duration (integer seconds or string)", other)),
        };
        match duration {
            Some(d) if d > Duration::ZERO => Ok(Some(d)),
            Some(_) => Err(self.err_at(
                v.span(),
                key,
                ConfigErrorKind::OutOfRange { value: self.quote(&v.span()), allowed: "more than 0" },
            )),
            None => {
                Err(self.err_at(v.span(), key, ConfigErrorKind::BadDuration { value: self.quote(&v.span()) }))
            }
        }
    }

    pub(crate) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn err_at(&self, span: Range<usize>, key: &str, kind: ConfigErrorKind) -> ConfigError {
        let key = if key.is_empty() { self.path.clone() } else { self.child(key) };
        ConfigError { line: line_of(self.text, span.start), key, kind }
    }

    pub(crate) fn wrong_type(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        expected: &'static str,
        found: &DeValue<'_>,
    ) -> ConfigError {
        self.err_at(v.span(), key, ConfigErrorKind::WrongType { expected, found: found.type_str() })
    }

    pub(crate) fn quote(&self, span: &Range<usize>) -> String {
        quote(self.text, span)
    }
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let line = line_of(text, span.start);
    let message = sanitize(e.message(), 200);
    if message.starts_with("duplicate key") {
        return ConfigError {
            line,
            key: quote(text, &span).trim_matches('"').to_owned(),
            kind: ConfigErrorKind::DuplicateKey,
        };
    }
    ConfigError { line, key: String::new(), kind: ConfigErrorKind::Syntax { message } }
}

/// The 1-based line holding byte `offset` (the last line if past the end).
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes().iter().take(end).filter(|b| **b == b'\n').count()
}

/// The source text at `span`, cut to [`MAX_QUOTED`] characters, control characters replaced.
fn quote(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let slice = text.get(start..end).unwrap_or("");
    sanitize(slice, MAX_QUOTED)
}

fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out: String =
        text.chars().take(max_chars).map(|c| if c.is_control() { '?' } else { c }).collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod builtin_tests {
    use super::*;

    #[test]
    fn builtin_default_is_the_parsed_default() {
        assert_eq!(Config::builtin_default(), Config::parse(DEFAULT_CONFIG).unwrap());
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    fn err(text: &str) -> ConfigError {
        match Config::parse(text) {
            Ok(c) => panic!("accepted {text:?}: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn default_config_parses() {
        let c = Config::parse(DEFAULT_CONFIG).expect("default config");
        assert_eq!(c.interfaces.len(), 3);
        let want = [("nic0", "192.0.2.1/24"), ("nic1", "198.51.100.1/24"), ("nic2", "203.0.113.1/24")];
        for (i, (name, addr)) in c.interfaces.iter().zip(want) {
            assert_eq!(i.nic.to_string(), name);
            assert_eq!(i.address.map(|a| a.to_string()).as_deref(), Some(addr));
            assert_eq!(i.mtu, 1500);
        }
        assert!(c.interface(NicId::from_name("nic3").unwrap()).is_none());
        assert!(c.routes.is_empty());
        assert_eq!(c.forwarder, ForwarderConfig::default());
        assert!(!c.diagnostics.enabled);
    }

    const FULL: &str = r#"
[[interface]]
name = "nic0"
address = "192.0.2.1/24"
mtu = 1400

[[interface]]
name = "nic3"

[[interface]]
name = "nic1"
address = "10.0.0.0/31"

[[route]]
prefix = "10.20.0.0/16"
via = "192.0.2.2"

[[route]]
prefix = "0.0.0.0/0"
via = "10.0.0.1"

[memory]
heap_reserve = "4MiB"
[memory.bmp]
quota = "16MiB"
soft = 12582912
restart_limit = 3
[memory.kernel]
quota = "8MiB"

[forwarder]
flow_idle_tcp = "5m"
flow_idle_udp = 60
flow_idle_icmp = "500ms"
flow_lifetime = "1h"
icmp_rate = 0

[diagnostics]
enabled = true
"#;

    #[test]
    fn golden_full_config() {
        let c = Config::parse(FULL).expect("full config");
        // SCTP's packets fit the smallest addressed interface (nic0's 1400).
        assert_eq!(c.sctp.endpoint(7).mtu, 1400);
        let nics: Vec<_> = c.interfaces.iter().map(|i| (i.nic.index(), i.address, i.mtu)).collect();
        assert_eq!(
            nics,
            [
                (0, Ipv4Cidr::parse("192.0.2.1/24"), 1400),
                (3, None, 1500),
                (1, Ipv4Cidr::parse("10.0.0.0/31"), 1500),
            ]
        );
        assert_eq!(
            c.routes,
            [
                RouteConfig {
                    prefix: Ipv4Cidr::parse("10.20.0.0/16").unwrap(),
                    via: Ipv4Addr::new(192, 0, 2, 2)
                },
                RouteConfig {
                    prefix: Ipv4Cidr::parse("0.0.0.0/0").unwrap(),
                    via: Ipv4Addr::new(10, 0, 0, 1)
                },
            ]
        );
        assert_eq!(c.memory.heap_reserve, Some(4 << 20));
        assert_eq!(
            c.memory.domains[Domain::Bmp as usize],
            DomainMemoryConfig { quota: Some(16 << 20), soft: Some(12 << 20), restart_limit: Some(3) }
        );
        assert_eq!(c.memory.domains[Domain::Kernel as usize].quota, Some(8 << 20));
        assert_eq!(c.memory.domains[Domain::Bgp as usize], DomainMemoryConfig::default());
        assert_eq!(
            c.forwarder,
            ForwarderConfig {
                flow_idle_tcp: Duration::from_secs(300),
                flow_idle_udp: Duration::from_secs(60),
                flow_idle_icmp: Duration::from_millis(500),
                flow_lifetime: Duration::from_secs(3600),
                icmp_rate: 0,
                max_routes_static: 4096,
                max_routes_bgp: 2_000_000,
            }
        );
        assert!(c.diagnostics.enabled);
        assert!(Config::parse("").is_ok());
    }

    #[test]
    fn display_matches_the_documented_form() {
        let text = "[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.1/24\"\n\n[[interface]]\nname = \"nic1\"\naddress = \"198.51.100.1/33\"\n";
        let e = err(text);
        assert_eq!(
            e.to_string(),
            "config line 7: interface[1].address: \"198.51.100.1/33\" is not an IPv4 address with prefix length"
        );
    }

    /// Every error kind, with the line and key it must carry.
    #[test]
    fn every_error_kind_with_line_and_key() {
        use ConfigErrorKind as K;
        let iface = "[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.1/24\"\n";
        type Case = (std::string::String, usize, &'static str, fn(&ConfigErrorKind) -> bool);
        let cases: Vec<Case> = std::vec![
            ("[[interface]\n".into(), 1, "", |k| matches!(k, K::Syntax { .. })),
            ("a = 1\na = 2\n".into(), 2, "a", |k| matches!(k, K::DuplicateKey)),
            (std::format!("{iface}colour = \"red\"\n"), 4, "interface[0].colour", |k| matches!(k, K::UnknownKey)),
            ("\n[bogus]\n".into(), 2, "bogus", |k| matches!(k, K::UnknownKey)),
            ("[memory.swap]\nquota = 1\n".into(), 1, "memory.swap", |k| matches!(k, K::UnknownKey)),
            ("[[interface]]\naddress = \"192.0.2.1/24\"\n".into(), 1, "interface[0].name", |k| matches!(k, K::MissingKey)),
            ("[[interface]]\nname = 0\n".into(), 2, "interface[0].name", |k| {
                matches!(k, K::WrongType { expected: "string", found: "integer" })
            }),
            ("interface = 3\n".into(), 1, "interface", |k| matches!(k, K::WrongType { expected: "array of tables", .. })),
            ("interface = [1]\n".into(), 1, "interface[0]", |k| matches!(k, K::WrongType { expected: "table", .. })),
            ("memory = 1\n".into(), 1, "memory", |k| matches!(k, K::WrongType { expected: "table", .. })),
            ("[diagnostics]\nenabled = \"yes\"\n".into(), 2, "diagnostics.enabled", |k| matches!(k, K::WrongType { expected: "boolean", .. })),
            ("[[interface]]\nname = \"eth0\"\n".into(), 2, "interface[0].name", |k| matches!(k, K::BadInterfaceName { .. })),
            ("[[interface]]\nname = \"nic4\"\n".into(), 2, "interface[0].name", |k| matches!(k, K::BadInterfaceName { .. })),
            (std::format!("{iface}[[interface]]\nname = \"nic0\"\n"), 5, "interface[1].name", |k| {
                matches!(k, K::DuplicateInterface { first, .. } if first == "interface[0].name")
            }),
            ("[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.1\"\n".into(), 3, "interface[0].address", |k| matches!(k, K::BadCidr { .. })),
            ("[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.0/24\"\n".into(), 3, "interface[0].address", |k| matches!(k, K::ReservedHostAddress { .. })),
            ("[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.255/24\"\n".into(), 3, "interface[0].address", |k| matches!(k, K::ReservedHostAddress { .. })),
            ("[[interface]]\nname = \"nic0\"\naddress = \"192.0.2.1/0\"\n".into(), 3, "interface[0].address", |k| matches!(k, K::OutOfRange { .. })),
            (std::format!("{iface}[[interface]]\nname = \"nic1\"\naddress = \"192.0.0.1/16\"\n"), 6, "interface[1].address", |k| {
                matches!(k, K::SubnetOverlap { other, .. } if other == "interface[0].address")
            }),
            (std::format!("{iface}mtu = 575\n"), 4, "interface[0].mtu", |k| matches!(k, K::OutOfRange { allowed: "576..=1500", .. })),
            (std::format!("{iface}mtu = 99999999999999999999\n"), 4, "interface[0].mtu", |k| matches!(k, K::OutOfRange { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.20.0.1/16\"\nvia = \"192.0.2.2\"\n"), 5, "route[0].prefix", |k| matches!(k, K::PrefixNotCanonical { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"192.0.2\"\n"), 6, "route[0].via", |k| matches!(k, K::BadIpv4 { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"192.0.3.2\"\n"), 6, "route[0].via", |k| matches!(k, K::NextHopNotConnected { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"192.0.2.1\"\n"), 6, "route[0].via", |k| matches!(k, K::NextHopIsLocal { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"192.0.2.255\"\n"), 6, "route[0].via", |k| matches!(k, K::ReservedHostAddress { .. })),
            (std::format!("{iface}[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.2\"\n[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"192.0.2.3\"\n"), 8, "route[1].prefix", |k| {
                matches!(k, K::DuplicateRoute { first, .. } if first == "route[0].prefix")
            }),
            (std::format!("{iface}[[route]]\nvia = \"192.0.2.2\"\n"), 4, "route[0].prefix", |k| matches!(k, K::MissingKey)),
            ("[memory.bmp]\nquota = \"16MB\"\n".into(), 2, "memory.bmp.quota", |k| matches!(k, K::BadSize { .. })),
            ("[memory.bmp]\nquota = -1\n".into(), 2, "memory.bmp.quota", |k| matches!(k, K::BadSize { .. })),
            ("[memory.bmp]\nquota = \"99999999999TiB\"\n".into(), 2, "memory.bmp.quota", |k| matches!(k, K::BadSize { .. })),
            ("[memory.bmp]\nquota = 1.5\n".into(), 2, "memory.bmp.quota", |k| matches!(k, K::WrongType { found: "float", .. })),
            ("[memory.bmp]\nquota = \"1KiB\"\n".into(), 2, "memory.bmp.quota", |k| matches!(k, K::OutOfRange { .. })),
            ("[memory.bmp]\nquota = \"16MiB\"\nsoft = \"16MiB\"\n".into(), 3, "memory.bmp.soft", |k| {
                matches!(k, K::SoftNotBelowQuota { soft, quota } if *soft == 16 << 20 && *quota == 16 << 20)
            }),
            ("[memory.bmp]\nsoft = 0\n".into(), 2, "memory.bmp.soft", |k| matches!(k, K::OutOfRange { .. })),
            ("[memory.bmp]\nrestart_limit = 0\n".into(), 2, "memory.bmp.restart_limit", |k| matches!(k, K::OutOfRange { .. })),
            ("[memory.kernel]\nrestart_limit = 3\n".into(), 2, "memory.kernel.restart_limit", |k| matches!(k, K::NotApplicable { .. })),
            ("[memory]\nheap_reserve = \"512KiB\"\n".into(), 2, "memory.heap_reserve", |k| matches!(k, K::OutOfRange { .. })),
            ("[forwarder]\nflow_idle_tcp = \"5 minutes\"\n".into(), 2, "forwarder.flow_idle_tcp", |k| matches!(k, K::BadDuration { .. })),
            ("[forwarder]\nflow_lifetime = 0\n".into(), 2, "forwarder.flow_lifetime", |k| matches!(k, K::OutOfRange { .. })),
            ("[forwarder]\nflow_idle_udp = true\n".into(), 2, "forwarder.flow_idle_udp", |k| matches!(k, K::WrongType { .. })),
            ("[forwarder]\nicmp_rate = -1\n".into(), 2, "forwarder.icmp_rate", |k| matches!(k, K::OutOfRange { .. })),
        ];
        for (text, line, key, kind) in cases {
            let e = err(&text);
            assert_eq!((e.line, e.key.as_str()), (line, key), "{text:?} gave {e}");
            assert!(kind(&e.kind), "{text:?} gave {e:?}");
            assert!(e.to_string().starts_with(&std::format!("config line {line}: ")), "{e}");
        }
    }

    #[test]
    fn too_many_routes_refused() {
        let mut text =
            std::string::String::from("[[interface]]\nname = \"nic0\"\naddress = \"10.0.0.1/8\"\n");
        for i in 0..=MAX_ROUTES {
            text.push_str(&std::format!(
                "[[route]]\nprefix = \"172.{}.{}.0/24\"\nvia = \"10.0.0.2\"\n",
                i / 256,
                i % 256
            ));
        }
        let e = err(&text);
        assert_eq!(e.key, "route[4096]");
        assert!(matches!(e.kind, ConfigErrorKind::OutOfRange { .. }));
    }

    #[test]
    fn error_values_are_truncated_and_sanitized() {
        let long = "x".repeat(500);
        let e = err(&std::format!("[[interface]]\nname = \"{long}\"\n"));
        let shown = e.to_string();
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains('…'));
        let e = err("[[interface]]\nname = \"\"\"a\nb\"\"\"\n");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn memory_plan_defaults_fit_and_fill_every_domain() {
        let c = Config::parse(DEFAULT_CONFIG).unwrap();
        let heap = 256 << 20;
        let plan = c.memory_plan(heap).unwrap();
        assert_eq!(plan.quota(Domain::Kernel).hard, 16 << 20);
        assert_eq!(plan.quota(Domain::Forwarder), Quota { hard: 64 << 20, soft: 48 << 20 });
        assert_eq!(plan.quota(Domain::Bgp).hard, 64 << 20);
        assert_eq!(plan.quota(Domain::Sctp).hard, 32 << 20);
        assert_eq!(plan.quota(Domain::Bmp).hard, 16 << 20);
        assert_eq!(plan.quota(Domain::Net).hard, 16 << 20);
        assert_eq!(plan.quota(Domain::Mgmt).hard, 8 << 20);
        assert_eq!(plan.quota(Domain::Diag).hard, 8 << 20);
        assert_eq!(plan.overshoot_reserve, 8 << 20);
        let total: usize =
            Domain::ALL.iter().map(|d| plan.quota(*d).hard).sum::<usize>() + plan.overshoot_reserve;
        assert!(total <= heap);
        assert!(Domain::ALL.iter().all(|d| plan.quota(*d).soft < plan.quota(*d).hard));
        assert_eq!(plan.restart_limit(Domain::Bmp), DEFAULT_RESTART_LIMIT);
        // The smallest heap the defaults fit: 2 MiB kernel + 13/16 of the heap + 1 MiB reserve.
        assert!(c.memory_plan(16 << 20).is_ok());
        assert!(c.memory_plan(15 << 20).is_err());
    }

    #[test]
    fn memory_plan_overrides_and_refusals() {
        let c = Config::parse(FULL).unwrap();
        let plan = c.memory_plan(256 << 20).unwrap();
        assert_eq!(plan.quota(Domain::Bmp), Quota { hard: 16 << 20, soft: 12 << 20 });
        assert_eq!(plan.quota(Domain::Kernel).hard, 8 << 20);
        assert_eq!(plan.overshoot_reserve, 4 << 20);
        assert_eq!(plan.restart_limit(Domain::Bmp), 3);

        let big = "[memory]\nheap_reserve = \"1MiB\"\n[memory.bgp]\nquota = \"200MiB\"\n[memory.forwarder]\nquota = \"100MiB\"\n[memory.kernel]\nquota = \"4MiB\"\n[memory.net]\nquota = \"64KiB\"\n[memory.sctp]\nquota = \"64KiB\"\n[memory.bmp]\nquota = \"64KiB\"\n[memory.mgmt]\nquota = \"64KiB\"\n[memory.diag]\nquota = \"64KiB\"\n";
        let c = Config::parse(big).unwrap();
        let e = c.memory_plan(250 << 20).unwrap_err();
        assert_eq!(
            e,
            PlanError::DoesNotFit {
                quotas: (300 << 20) + 5 * (64 << 10),
                kernel_reserve: 4 << 20,
                overshoot_reserve: 1 << 20,
                heap: 250 << 20
            }
        );
        assert_eq!(
            e.to_string(),
            "quotas 307520 KiB + kernel reserve 4 MiB + overshoot reserve 1 MiB exceed the heap of 250 MiB"
        );

        let soft = Config::parse("[memory.bmp]\nsoft = \"64MiB\"\n").unwrap();
        let e = soft.memory_plan(256 << 20).unwrap_err();
        assert_eq!(e, PlanError::SoftNotBelowHard { domain: Domain::Bmp, soft: 64 << 20, hard: 16 << 20 });
        assert_eq!(e.to_string(), "memory.bmp.soft 64 MiB is not below its quota of 16 MiB");

        // Sums saturate instead of wrapping into something that would fit.
        let huge =
            Config::parse("[memory.bgp]\nquota = \"16000000TiB\"\n[memory.bmp]\nquota = \"16000000TiB\"\n")
                .unwrap();
        let e = huge.memory_plan(usize::MAX / 2).unwrap_err();
        assert!(matches!(e, PlanError::DoesNotFit { quotas: usize::MAX, .. }), "{e:?}");
    }

    /// Mutations of valid configurations: byte flips, truncations, line swaps, line drops.
    fn mutated() -> impl Strategy<Value = std::string::String> {
        let base = prop_oneof![Just(DEFAULT_CONFIG), Just(FULL)];
        (base, 0usize..4, any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(base, how, a, b, byte)| {
            let mut bytes = base.as_bytes().to_vec();
            let lines: Vec<&str> = base.lines().collect();
            match how {
                0 => {
                    let i = a % bytes.len();
                    bytes[i] = byte;
                }
                1 => bytes.truncate(a % bytes.len()),
                2 => {
                    let mut l = lines.clone();
                    l.swap(a % lines.len(), b % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
                _ => {
                    let mut l = lines.clone();
                    l.remove(a % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
            }
            std::string::String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_on_random_text(text in "\\PC{0,200}") {
            let _ = Config::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_tomlish_text(text in "[\\[\\]a-z_=\"./0-9 \n{},#-]{0,300}") {
            let _ = Config::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_mutated_configs(text in mutated()) {
            if let Err(e) = Config::parse(&text) {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e} for {text:?}");
                let _ = e.to_string();
            }
        }
    }
}
