//! The forwarder subsystem: the IPv4 forwarding core (`bulkhead_net::router::Forwarder`)
//! behind the one contract.
//!
//! `start` builds the core inside the forwarder domain — flow table, FIB with the connected
//! and static routes — and `shed` drops it whole. It receives transit frames and ARP from
//! dispatch, the packets the appliance itself sends (to route them: FIB, ARP, NIC), and the
//! route changes of the other route sources; its timers (ARP retries, flow expiry) run in its
//! `poll`. Its console commands are `show route` and `show flows`.

use alloc::vec::Vec;
use core::fmt::{self, Write};

use bulkhead_net::fib::Prefix;
use bulkhead_net::flows::{Flow, FlowTable, FlowTimeouts};
use bulkhead_net::router::{DropReason, Forwarder, Interface, NextHop, RouteSource, Settings, Sink, TxError};

use crate::addr::{Ipv4Addr, Ipv4Cidr};
use crate::config::{ConfigError, ConfigErrorKind, Table};
use crate::console::{ForwardingCounters, InterfaceCounters};
use crate::context::{Context, Delivery, Inbound, RouteChange};
use crate::domain::Domain;
use crate::routing::{self, FlowRow, FlowTable as FlowTableStatus, RouteRow};
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem};
use crate::time::{Duration, Instant};

/// `[forwarder]`:
///
/// ```toml
/// [forwarder]
/// flow_idle_tcp = "300s"      # idle timeouts and maximum flow lifetime, all > 0
/// flow_idle_udp = "60s"
/// flow_idle_icmp = "10s"
/// flow_lifetime = "3600s"
/// icmp_rate = 100             # ICMP errors per second (token bucket), 0..=1000000; 0 = none
/// max_routes_static = 4096    # route limits per source in the FIB, 0..=4000000
/// max_routes_bgp = 2000000
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwarderConfig {
    pub flow_idle_tcp: Duration,
    pub flow_idle_udp: Duration,
    pub flow_idle_icmp: Duration,
    pub flow_lifetime: Duration,
    pub icmp_rate: u32,
    pub max_routes_static: u32,
    pub max_routes_bgp: u32,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            flow_idle_tcp: Duration::from_secs(300),
            flow_idle_udp: Duration::from_secs(60),
            flow_idle_icmp: Duration::from_secs(10),
            flow_lifetime: Duration::from_secs(3600),
            icmp_rate: 100,
            max_routes_static: 4096,
            max_routes_bgp: 2_000_000,
        }
    }
}

impl ForwarderConfig {
    /// Reads `[forwarder]`.
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<ForwarderConfig, ConfigError> {
        t.check_keys(&[
            "flow_idle_tcp",
            "flow_idle_udp",
            "flow_idle_icmp",
            "flow_lifetime",
            "icmp_rate",
            "max_routes_static",
            "max_routes_bgp",
        ])?;
        let mut f = ForwarderConfig::default();
        for (key, slot) in [
            ("flow_idle_tcp", &mut f.flow_idle_tcp),
            ("flow_idle_udp", &mut f.flow_idle_udp),
            ("flow_idle_icmp", &mut f.flow_idle_icmp),
            ("flow_lifetime", &mut f.flow_lifetime),
        ] {
            if let Some(d) = t.duration_opt(key)? {
                *slot = d;
            }
        }
        if let Some((v, span)) = t.int_opt("icmp_rate")? {
            f.icmp_rate = match u32::try_from(v) {
                Ok(r) if r <= 1_000_000 => r,
                _ => {
                    return Err(t.err_at(
                        span.clone(),
                        "icmp_rate",
                        ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "0..=1000000" },
                    ))
                }
            };
        }
        for (key, slot) in
            [("max_routes_static", &mut f.max_routes_static), ("max_routes_bgp", &mut f.max_routes_bgp)]
        {
            if let Some((v, span)) = t.int_opt(key)? {
                *slot = match u32::try_from(v) {
                    Ok(n) if n <= 4_000_000 => n,
                    _ => {
                        return Err(t.err_at(
                            span.clone(),
                            key,
                            ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "0..=4000000" },
                        ))
                    }
                };
            }
        }
        Ok(f)
    }
}

/// Flows listed by `show flows`.
const TOP_FLOWS: usize = 10;

/// The flow table takes this fraction (1/N) of the forwarder domain's soft threshold.
const FLOW_TABLE_SHARE: usize = 8;
/// The most flows a table holds, whatever the quota.
const MAX_FLOWS: usize = 1 << 20;

/// What the forwarder is built from at each start.
#[derive(Clone, Debug)]
pub struct ForwarderPlan {
    pub interfaces: Vec<(u8, Interface)>,
    /// Static routes: prefix and gateway.
    pub routes: Vec<(Ipv4Cidr, Ipv4Addr)>,
    pub settings: Settings,
}

impl ForwarderPlan {
    /// Settings from the configuration, with a flow table sized to an eighth of the domain's
    /// soft threshold (the rest is for the FIB, BGP's routes to come, and the neighbour
    /// queues): the table is allocated once, at start, so its memory never moves afterwards;
    /// and a small one keeps the start fast (every slot is written when it is made).
    pub fn settings(config: &ForwarderConfig, soft_bytes: usize) -> Settings {
        let slot = FlowTable::SLOT_BYTES;
        let mut slots = 16usize;
        while slots * 2 * slot <= soft_bytes / FLOW_TABLE_SHARE && slots * 2 * 3 / 4 <= MAX_FLOWS {
            slots *= 2;
        }
        Settings {
            flow_capacity: slots * 3 / 4,
            flow_timeouts: FlowTimeouts {
                tcp: config.flow_idle_tcp,
                udp: config.flow_idle_udp,
                icmp: config.flow_idle_icmp,
                other: config.flow_idle_udp,
                lifetime: config.flow_lifetime,
            },
            icmp_rate: config.icmp_rate,
            route_limits: [
                usize::from(crate::config::MAX_NICS),
                config.max_routes_static as usize,
                config.max_routes_bgp as usize,
            ],
        }
    }
}

pub struct ForwarderSubsystem {
    core: Option<Forwarder>,
    plan: ForwarderPlan,
    /// The NIC names, for `show route`.
    names: &'static [&'static str],
    /// When the core's timers are due.
    due: Option<Instant>,
}

impl ForwarderSubsystem {
    pub fn new(plan: ForwarderPlan, names: &'static [&'static str]) -> ForwarderSubsystem {
        ForwarderSubsystem { core: None, plan, names, due: None }
    }

    /// The running core, for `show interfaces` (`None` while it is down).
    pub fn core(&self) -> Option<&Forwarder> {
        self.core.as_ref()
    }
}

/// The core's way out: frames to the NICs, through the context.
struct ContextSink<'c, 'a>(&'c mut Context<'a>);

impl Sink for ContextSink<'_, '_> {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
        self.0.transmit(iface, frame)
    }

    fn admit(&mut self, bytes: usize) -> bool {
        self.0.admit(bytes).is_ok()
    }
}

impl Subsystem for ForwarderSubsystem {
    fn name(&self) -> &'static str {
        "forwarder"
    }

    fn domain(&self) -> Domain {
        Domain::Forwarder
    }

    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        let mut forwarder = Forwarder::new(self.plan.settings);
        for (iface, interface) in &self.plan.interfaces {
            forwarder.set_interface(*iface, *interface).map_err(|_| StartError::Failed)?;
        }
        for (prefix, via) in &self.plan.routes {
            let prefix =
                Prefix::new(prefix.addr.to_bits(), prefix.prefix_len).map_err(|_| StartError::Failed)?;
            forwarder
                .add_route(prefix, via.to_bits(), RouteSource::Static, &mut |n| cx.admit(n).is_ok())
                .map_err(|_| StartError::Failed)?;
        }
        self.core = Some(forwarder);
        self.due = None;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        let now = cx.now;
        if self.due.is_some_and(|due| due > now) {
            return PollOutcome::Idle;
        }
        if let Some(core) = self.core.as_mut() {
            let next = core.poll(now, &mut ContextSink(cx));
            self.due = Some(next);
        }
        PollOutcome::Idle
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        self.due
    }

    fn receive(&mut self, cx: &mut Context<'_>, inbound: Inbound<'_>) -> Delivery {
        let Some(core) = self.core.as_mut() else { return Delivery::Refused };
        let now = cx.now;
        match inbound {
            Inbound::Transit { iface, frame } => core.handle(now, iface, frame, &mut ContextSink(cx)),
            Inbound::Arp { iface, frame } => core.handle_arp(now, iface, frame, &mut ContextSink(cx)),
            Inbound::LocalOut { packet } => core.send_local(now, packet, &mut ContextSink(cx)),
            Inbound::Route { source, change } => {
                // Refusals are counted per source in the core (`show route` prints them).
                let _ = match change {
                    RouteChange::Add { prefix, via } => {
                        core.add_route(prefix, u32::from(via), source, &mut |n| cx.admit(n).is_ok())
                    }
                    RouteChange::Remove { prefix } => {
                        core.remove_route(prefix, source);
                        Ok(())
                    }
                };
            }
            Inbound::WithdrawSource(source) => {
                core.withdraw_source(source);
            }
            Inbound::Datagram(_) | Inbound::IcmpError(_) => return Delivery::Refused,
        }
        Delivery::Taken
    }

    fn pressure(&mut self, _cx: &mut Context<'_>, on: bool) {
        if let Some(f) = self.core.as_mut() {
            f.set_pressure(on);
        }
    }

    fn shed(&mut self) {
        self.core = None;
        self.due = None;
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match self.core.as_ref() {
            Some(f) => write!(
                out,
                "{} routes, {} flows of {}, flow table {} bytes",
                f.fib().len(),
                f.flows().len(),
                f.flows().capacity(),
                f.flows().memory_bytes()
            ),
            None => write!(out, "not running"),
        }
    }

    fn command(&mut self, cx: &mut Context<'_>, words: &[&str], out: &mut dyn Write) -> Option<fmt::Result> {
        let core = self.core.as_ref()?;
        let (json, words) = match words.split_last() {
            Some((&"json", rest)) => (true, rest),
            _ => (false, words),
        };
        match words {
            ["show", "route"] => Some(show_route(core, None, self.names, json, out)),
            ["show", "route", prefix] => Some(match crate::console::parse_prefix(prefix) {
                Ok(p) => show_route(core, Some(p), self.names, json, out),
                Err(e) => writeln!(out, "{}", e),
            }),
            ["show", "flows"] => {
                Some(routing::show_flows(&mut &mut *out, &flows(core, cx.now, TOP_FLOWS), json))
            }
            _ => None,
        }
    }

    fn interface_counters(&self, iface: u8) -> Option<InterfaceCounters> {
        let c = self.core.as_ref()?.counters(iface);
        Some(InterfaceCounters {
            forwarding: ForwardingCounters {
                packets: c.forwarded_packets,
                bytes: c.forwarded_bytes,
                icmp_errors_sent: c.icmp_errors_sent,
                icmp_errors_rate_limited: c.icmp_errors_rate_limited,
            },
            drops: DropReason::ALL.iter().map(|r| (r.name(), c.drops(*r))).collect(),
        })
    }

    fn help(&self) -> &'static str {
        "  show route [PREFIX] [json]   the FIB, with each route's source\n  show flows [json]            the flow table and its top flows\n"
    }
}

fn show_route(
    core: &Forwarder,
    within: Option<Ipv4Cidr>,
    names: &[&str],
    json: bool,
    out: &mut dyn Write,
) -> fmt::Result {
    let rows = routes(core, within, names);
    routing::show_route(&mut &mut *out, &rows, core.fib().len() as u64, json)
}

/// The routes inside `within` (every route if `None`), for `show route`.
pub fn routes(forwarder: &Forwarder, within: Option<Ipv4Cidr>, names: &[&str]) -> Vec<RouteRow> {
    forwarder
        .fib()
        .iter()
        .filter(|(prefix, _)| {
            within.is_none_or(|w| {
                prefix.length() >= w.prefix_len && prefix.addr() & w.mask() == w.addr.to_bits() & w.mask()
            })
        })
        .map(|(prefix, id)| {
            let (source, via, iface) = match forwarder.route(id) {
                Some(r) => match r.next_hop {
                    NextHop::Connected { iface } => (r.source.name(), None, iface),
                    NextHop::Via { gateway, iface } => {
                        (r.source.name(), Some(Ipv4Addr::from_bits(gateway)), iface)
                    }
                },
                None => ("unknown", None, u8::MAX),
            };
            RouteRow {
                prefix: Ipv4Cidr { addr: Ipv4Addr::from_bits(prefix.addr()), prefix_len: prefix.length() },
                source,
                via,
                interface: alloc::string::String::from(names.get(usize::from(iface)).copied().unwrap_or("?")),
            }
        })
        .collect()
}

/// The flow table's figures and its top flows, for `show flows`.
pub fn flows(forwarder: &Forwarder, now: Instant, top: usize) -> FlowTableStatus {
    let table = forwarder.flows();
    let row = |f: &Flow| FlowRow {
        protocol: f.key.protocol,
        src: Ipv4Addr::from_bits(f.key.src),
        src_port: f.key.src_port,
        dst: Ipv4Addr::from_bits(f.key.dst),
        dst_port: f.key.dst_port,
        packets: f.packets,
        bytes: f.bytes,
        age_secs: now.saturating_since(f.first_seen).total_micros() / 1_000_000,
        idle_secs: now.saturating_since(f.last_seen).total_micros() / 1_000_000,
    };
    FlowTableStatus {
        count: table.len() as u64,
        capacity: table.capacity() as u64,
        created: table.counters.created,
        expired_idle: table.counters.expired_idle,
        expired_lifetime: table.counters.expired_lifetime,
        evicted: table.counters.evicted,
        top: table.top_by_bytes(top).iter().map(row).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_ipv4;
    use crate::testing::{AdmitAll, NullIo};
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;

    fn plan() -> ForwarderPlan {
        let mac = [2, 0, 0, 0, 0, 1];
        ForwarderPlan {
            interfaces: alloc::vec![
                (0, Interface { mac, address: Some((0xc000_0201, 24)), mtu: 1500 }),
                (1, Interface { mac, address: Some((0xc633_6401, 24)), mtu: 1500 }),
            ],
            routes: alloc::vec![(
                Ipv4Cidr::parse("10.20.0.0/16").unwrap(),
                parse_ipv4("198.51.100.2").unwrap()
            )],
            settings: ForwarderPlan::settings(&ForwarderConfig::default(), 1 << 20),
        }
    }

    #[test]
    fn flow_table_fits_its_share_of_the_soft_threshold() {
        for soft in [1usize << 20, 12 << 20, 47 << 20] {
            let settings = ForwarderPlan::settings(&ForwarderConfig::default(), soft);
            let bytes = FlowTable::bytes_for(settings.flow_capacity);
            assert!(bytes <= soft / FLOW_TABLE_SHARE, "soft {soft}");
            assert!(bytes > soft / FLOW_TABLE_SHARE / 2, "soft {soft}: table too small");
        }
    }

    #[test]
    fn start_builds_the_tables_and_shed_drops_them() {
        let mut sub = ForwarderSubsystem::new(plan(), &["nic0", "nic1"]);
        let (mut io, mut rng) = (NullIo::default(), Csprng::seed_from_u64(1));
        let mut cx = Context::new(Instant::ZERO, Domain::Forwarder, &mut rng, &AdmitAll, &mut io);
        sub.start(&mut cx).unwrap();
        {
            let f = sub.core().unwrap();
            let rows = routes(f, None, &["nic0", "nic1"]);
            let text: Vec<_> = rows
                .iter()
                .map(|r| (alloc::format!("{}", r.prefix), r.source, r.interface.clone()))
                .collect();
            assert_eq!(
                text,
                [
                    ("10.20.0.0/16".into(), "static", "nic1".into()),
                    ("192.0.2.0/24".into(), "connected", "nic0".into()),
                    ("198.51.100.0/24".into(), "connected", "nic1".into())
                ]
            );
            assert_eq!(routes(f, Ipv4Cidr::parse("10.0.0.0/8"), &["nic0", "nic1"]).len(), 1);
        }
        let mut text = alloc::string::String::new();
        assert!(sub.command(&mut cx, &["show", "route", "10.20.0.0/16", "json"], &mut text).is_some());
        assert!(text.contains("\"source\":\"static\""), "{text}");
        assert!(sub.command(&mut cx, &["show", "bgp"], &mut text).is_none());
        sub.shed();
        assert!(sub.core().is_none());
    }
}
