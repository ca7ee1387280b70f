//! The forwarder subsystem: the supervisor's handle on the IPv4 forwarding core.
//!
//! The core (`bulkhead_net::router::Forwarder`) lives in a shared slot: the run loop hands it
//! transit frames and runs its timers (it needs the NICs to send), and this subsystem owns its
//! lifecycle. `start` builds it inside the forwarder domain — flow table, FIB with the
//! connected and static routes — and `shed` drops it whole; while the slot is empty, transit
//! frames are dropped and counted as `not_forwarding`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::{self, Write};

use bulkhead_net::fib::Prefix;
use bulkhead_net::flows::{Flow, FlowTable, FlowTimeouts};
use bulkhead_net::router::{Forwarder, Interface, Settings};

use crate::addr::{Ipv4, Ipv4Cidr};
use crate::config::ForwarderConfig;
use crate::domain::Domain;
use crate::routing::{FlowRow, FlowTable as FlowTableStatus, RouteRow};
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem};
use crate::time::Instant;

/// The slot the run loop and the subsystem share.
pub type SharedForwarder = Rc<RefCell<Option<Forwarder>>>;

/// The flow table takes this fraction (1/N) of the forwarder domain's soft threshold.
const FLOW_TABLE_SHARE: usize = 8;
/// The most flows a table holds, whatever the quota.
const MAX_FLOWS: usize = 1 << 20;

/// What the forwarder is built from at each start.
#[derive(Clone, Debug)]
pub struct ForwarderPlan {
    pub interfaces: Vec<(u8, Interface)>,
    /// Static routes: prefix and gateway.
    pub routes: Vec<(Ipv4Cidr, Ipv4)>,
    pub settings: Settings,
}

impl ForwarderPlan {
    /// Settings from the configuration, with a flow table sized to an eighth of the domain's
    /// soft threshold (the rest is for the FIB, BGP's routes to come, and the neighbour
    /// queues): the table is allocated once, at start, so its memory never moves afterwards;
    /// and a small one keeps the start fast (every slot is written when it is made).
    pub fn settings(config: &ForwarderConfig, soft_bytes: usize, admit: fn(usize) -> bool) -> Settings {
        let slot = FlowTable::SLOT_BYTES;
        let mut slots = 16usize;
        while slots * 2 * slot <= soft_bytes / FLOW_TABLE_SHARE && slots * 2 * 3 / 4 <= MAX_FLOWS {
            slots *= 2;
        }
        Settings {
            flow_capacity: slots * 3 / 4,
            flow_timeouts: FlowTimeouts {
                tcp: config.flow_idle_tcp.total_micros(),
                udp: config.flow_idle_udp.total_micros(),
                icmp: config.flow_idle_icmp.total_micros(),
                other: config.flow_idle_udp.total_micros(),
                lifetime: config.flow_lifetime.total_micros(),
            },
            icmp_rate: config.icmp_rate,
            admit,
        }
    }
}

pub struct ForwarderSubsystem {
    shared: SharedForwarder,
    plan: ForwarderPlan,
}

impl ForwarderSubsystem {
    pub fn new(shared: SharedForwarder, plan: ForwarderPlan) -> ForwarderSubsystem {
        ForwarderSubsystem { shared, plan }
    }
}

impl Subsystem for ForwarderSubsystem {
    fn name(&self) -> &'static str {
        "forwarder"
    }

    fn domain(&self) -> Domain {
        Domain::Forwarder
    }

    fn start(&mut self, _now: Instant) -> Result<(), StartError> {
        let mut forwarder = Forwarder::new(self.plan.settings);
        for (iface, interface) in &self.plan.interfaces {
            forwarder.set_interface(*iface, *interface).map_err(|_| StartError::Failed)?;
        }
        for (prefix, via) in &self.plan.routes {
            let prefix =
                Prefix::new(prefix.addr.to_u32(), prefix.prefix_len).map_err(|_| StartError::Failed)?;
            forwarder.add_route(prefix, via.to_u32()).map_err(|_| StartError::Failed)?;
        }
        *self.shared.borrow_mut() = Some(forwarder);
        Ok(())
    }

    /// Frames and timers are driven by the run loop (they need the NICs); nothing to do here.
    fn poll(&mut self, _now: Instant, _budget: Budget) -> PollOutcome {
        PollOutcome::Idle
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }

    fn pressure(&mut self, on: bool) {
        if let Some(f) = self.shared.borrow_mut().as_mut() {
            f.set_pressure(on);
        }
    }

    fn shed(&mut self) {
        *self.shared.borrow_mut() = None;
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match self.shared.borrow().as_ref() {
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
}

/// The routes inside `within` (every route if `None`), for `show route`.
pub fn routes(forwarder: &Forwarder, within: Option<Ipv4Cidr>, names: &[&str]) -> Vec<RouteRow> {
    forwarder
        .fib()
        .iter()
        .filter(|(prefix, _)| {
            within.is_none_or(|w| {
                prefix.length() >= w.prefix_len && prefix.addr() & w.mask() == w.addr.to_u32() & w.mask()
            })
        })
        .map(|(prefix, id)| {
            let next_hop = forwarder.next_hop(id);
            let (source, via, iface) = match next_hop {
                Some(bulkhead_net::router::NextHop::Connected { iface }) => ("connected", None, iface),
                Some(bulkhead_net::router::NextHop::Via { gateway, iface }) => {
                    ("static", Some(Ipv4::from_u32(gateway)), iface)
                }
                None => ("unknown", None, u8::MAX),
            };
            RouteRow {
                prefix: Ipv4Cidr { addr: Ipv4::from_u32(prefix.addr()), prefix_len: prefix.length() },
                source,
                via,
                interface: alloc::string::String::from(names.get(usize::from(iface)).copied().unwrap_or("?")),
            }
        })
        .collect()
}

/// The flow table's figures and its top flows, for `show flows`.
pub fn flows(forwarder: &Forwarder, now_micros: u64, top: usize) -> FlowTableStatus {
    let table = forwarder.flows();
    let row = |f: &Flow| FlowRow {
        protocol: f.key.protocol,
        src: Ipv4::from_u32(f.key.src),
        src_port: f.key.src_port,
        dst: Ipv4::from_u32(f.key.dst),
        dst_port: f.key.dst_port,
        packets: f.packets,
        bytes: f.bytes,
        age_secs: now_micros.saturating_sub(f.first_seen) / 1_000_000,
        idle_secs: now_micros.saturating_sub(f.last_seen) / 1_000_000,
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

    fn plan() -> ForwarderPlan {
        let mac = [2, 0, 0, 0, 0, 1];
        ForwarderPlan {
            interfaces: alloc::vec![
                (0, Interface { mac, address: Some((0xc000_0201, 24)), mtu: 1500 }),
                (1, Interface { mac, address: Some((0xc633_6401, 24)), mtu: 1500 }),
            ],
            routes: alloc::vec![(
                Ipv4Cidr::parse("10.20.0.0/16").unwrap(),
                Ipv4::parse("198.51.100.2").unwrap()
            )],
            settings: ForwarderPlan::settings(
                &ForwarderConfig::default(),
                1 << 20,
                bulkhead_net::router::admit_always,
            ),
        }
    }

    #[test]
    fn flow_table_fits_its_share_of_the_soft_threshold() {
        for soft in [1usize << 20, 12 << 20, 47 << 20] {
            let settings = ForwarderPlan::settings(
                &ForwarderConfig::default(),
                soft,
                bulkhead_net::router::admit_always,
            );
            let bytes = FlowTable::bytes_for(settings.flow_capacity);
            assert!(bytes <= soft / FLOW_TABLE_SHARE, "soft {soft}");
            assert!(bytes > soft / FLOW_TABLE_SHARE / 2, "soft {soft}: table too small");
        }
    }

    #[test]
    fn start_builds_the_tables_and_shed_drops_them() {
        let shared: SharedForwarder = Rc::new(RefCell::new(None));
        let mut sub = ForwarderSubsystem::new(shared.clone(), plan());
        sub.start(Instant::ZERO).unwrap();
        {
            let guard = shared.borrow();
            let f = guard.as_ref().unwrap();
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
        sub.shed();
        assert!(shared.borrow().is_none());
    }
}
