//! BGP's console commands. The JSON forms of `show protocols` and `show route count` are read
//! by outside scripts; their field names are stable:
//!
//! - `show protocols json`: `{"asn","router_id","refused_connections","protocols":[{"name",
//!   "address","asn","state","uptime_s" (null when down),"received","accepted","advertised",
//!   "stale","updates","sessions","disabled","last_error" (null or text),"ttl_security" (bool),
//!   "ttl_min" (null, or the least TTL accepted),"ttl_dropped" (segments the host dropped below
//!   it),"stats":{"rejected","duplicate_advertisements","duplicate_withdraws",
//!   "cluster_list_loops","as_path_loops","originator_id_loops","treat_as_withdraw_updates",
//!   "treat_as_withdraw_prefixes"} (this session's, both families: BMP's counters)}]}`;
//!   `received` and
//!   `accepted` count both families (pre- and post-import-policy), `advertised` IPv4 and IPv6
//!   prefixes in the Adj-RIB-Out; `state` is RFC 4271's (`Idle` .. `Established`).
//! - `show route count json`: `{"ipv4","ipv6" (Loc-RIB best routes),"ipv4_paths","ipv6_paths"
//!   (accepted routes over every peer),"attribute_sets","fib_pending"}`.
//! - `show route PREFIX [json]` answers only for a prefix in the Loc-RIB (exactly), else it
//!   is the forwarder's: `{"prefix","best":{ROUTE,"reason"},"installed" (the best path is handed
//!   to the FIB),"not_installed" (null, or why not: an IPv6 path, as the forwarder is IPv4
//!   only, or no usable IPv4 next hop),"alternatives":[ROUTE..]}`, ROUTE =
//!   `{"from","origin","as_path","next_hop","med","local_pref","communities"}`.

use alloc::format;
use alloc::string::String;
use core::fmt::{self, Write};
use core::net::{IpAddr, Ipv4Addr};

use bulkhead_bgp::neighbor::State;
use bulkhead_bgp::packet::attribute::{NextHop, Origin, PathAttributes};
use bulkhead_bgp::packet::nlri::Prefix;
use bulkhead_bgp::rib::{PeerId, PeerStats, Rib, RibPrefix};

use super::{Gtsm, LastError, Speaker, BGP_PORT};
use crate::context::{Context, TtlGuardError};
use crate::json::JsonWriter;

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastError::NotificationSent(c) => {
                let (code, sub) = c.to_u8();
                write!(f, "sent NOTIFICATION {}/{} ({:?})", code, sub, c)
            }
            LastError::NotificationReceived(c) => {
                let (code, sub) = c.to_u8();
                write!(f, "received NOTIFICATION {}/{} ({:?})", code, sub, c)
            }
            LastError::TcpClosed => f.write_str("TCP closed"),
            LastError::ConnectFailed => f.write_str("connection failed"),
            LastError::PrefixLimit(o) => write!(f, "prefix limit: {:?}", o),
            LastError::TtlSecurity(e) => match e {
                TtlGuardError::Unsupported => f.write_str("TTL security: the platform cannot check TTLs"),
                TtlGuardError::TableFull => f.write_str("TTL security: the host's guard table is full"),
                TtlGuardError::Taken { by } => {
                    write!(f, "TTL security: the peer is guarded by {}", by.name())
                }
            },
        }
    }
}

pub(super) fn protocols(s: &Speaker, cx: &Context<'_>, json: bool, out: &mut dyn Write) -> fmt::Result {
    let now = cx.now;
    let dropped = |p: &super::Peer| cx.ttl_guard_drops(p.settings.address, BGP_PORT).unwrap_or(0);
    if json {
        let mut j = JsonWriter::new(&mut *out);
        j.begin_object()?;
        j.field_u64("asn", u64::from(s.asn))?;
        j.field_display("router_id", s.router_id)?;
        j.field_u64("refused_connections", s.refused)?;
        j.key("protocols")?;
        j.begin_array()?;
        for p in &s.peers {
            let c4 = s.rib4.peer_counts(p.id4).unwrap_or_default();
            let c6 = s.rib6.peer_counts(p.id6).unwrap_or_default();
            j.begin_object()?;
            j.field_display("name", p.settings.address)?;
            j.field_display("address", p.settings.address)?;
            j.field_u64("asn", u64::from(p.settings.asn))?;
            j.field_str("state", state_name(p.fsm.state()))?;
            j.key("uptime_s")?;
            match p.up_since {
                Some(t) => j.u64(now.saturating_since(t).total_micros() / 1_000_000)?,
                None => j.null()?,
            }
            j.field_u64("received", (c4.received + c6.received) as u64)?;
            j.field_u64("accepted", (c4.accepted + c6.accepted) as u64)?;
            j.field_u64("advertised", (c4.advertised + c6.advertised) as u64)?;
            j.field_u64("stale", (c4.stale + c6.stale) as u64)?;
            j.field_u64("updates", p.updates)?;
            j.field_u64("sessions", p.sessions)?;
            j.field_bool("disabled", p.disabled)?;
            j.key("last_error")?;
            match &p.last_error {
                Some(e) => j.display(e)?,
                None => j.null()?,
            }
            j.field_bool("ttl_security", p.settings.ttl_security.is_some())?;
            j.key("ttl_min")?;
            match p.gtsm {
                Gtsm::Guarded { min_ttl } => j.u64(u64::from(min_ttl))?,
                _ => j.null()?,
            }
            j.field_u64("ttl_dropped", dropped(p))?;
            let sum = |count: fn(&PeerStats) -> u64| count(&c4.stats) + count(&c6.stats);
            j.key("stats")?;
            j.begin_object()?;
            j.field_u64("rejected", sum(|s| s.rejected))?;
            j.field_u64("duplicate_advertisements", sum(|s| s.duplicate_advertisements))?;
            j.field_u64("duplicate_withdraws", sum(|s| s.duplicate_withdraws))?;
            j.field_u64("cluster_list_loops", sum(|s| s.cluster_list_loops))?;
            j.field_u64("as_path_loops", sum(|s| s.as_path_loops))?;
            j.field_u64("originator_id_loops", sum(|s| s.originator_id_loops))?;
            j.field_u64("treat_as_withdraw_updates", p.treated_as_withdraw.0)?;
            j.field_u64("treat_as_withdraw_prefixes", p.treated_as_withdraw.1)?;
            j.end_object()?;
            j.end_object()?;
        }
        j.end_array()?;
        j.end_object()?;
        return out.write_char('\n');
    }
    writeln!(
        out,
        "{:<16} {:<10} {:<12} {:>8} {:>9} {:>9} {:>10}  Last error",
        "Neighbor", "AS", "State", "Uptime", "Received", "Accepted", "Advertised"
    )?;
    for p in &s.peers {
        let c4 = s.rib4.peer_counts(p.id4).unwrap_or_default();
        let c6 = s.rib6.peer_counts(p.id6).unwrap_or_default();
        let uptime = match p.up_since {
            Some(t) => format!("{}s", now.saturating_since(t).total_micros() / 1_000_000),
            None => String::from("-"),
        };
        let state = if p.disabled { "Disabled" } else { state_name(p.fsm.state()) };
        let error = p.last_error.as_ref().map_or(String::from("-"), |e| format!("{}", e));
        writeln!(
            out,
            "{:<16} {:<10} {:<12} {:>8} {:>9} {:>9} {:>10}  {}",
            format!("{}", p.settings.address),
            p.settings.asn,
            state,
            uptime,
            c4.received + c6.received,
            c4.accepted + c6.accepted,
            c4.advertised + c6.advertised,
            error
        )?;
    }
    for p in &s.peers {
        match p.gtsm {
            Gtsm::Off => {}
            Gtsm::Guarded { min_ttl } => writeln!(
                out,
                "{}: TTL security, TTL below {} dropped: {}",
                p.settings.address,
                min_ttl,
                dropped(p)
            )?,
            Gtsm::Refused(_) => writeln!(out, "{}: TTL security refused, not started", p.settings.address)?,
        }
    }
    writeln!(out, "{} connections refused (not a configured neighbor)", s.refused)
}

pub(super) fn route_count(s: &Speaker, json: bool, out: &mut dyn Write) -> fmt::Result {
    let paths =
        |accepted: fn(&Speaker, &super::Peer) -> usize| s.peers.iter().map(|p| accepted(s, p)).sum::<usize>();
    let paths4 = paths(|s, p| s.rib4.peer_counts(p.id4).map_or(0, |c| c.accepted));
    let paths6 = paths(|s, p| s.rib6.peer_counts(p.id6).map_or(0, |c| c.accepted));
    let (best4, best6) = (s.rib4.loc_rib().len(), s.rib6.loc_rib().len());
    let sets = s.rib4.attr_sets() + s.rib6.attr_sets();
    if json {
        let mut j = JsonWriter::new(&mut *out);
        j.begin_object()?;
        j.field_u64("ipv4", best4 as u64)?;
        j.field_u64("ipv6", best6 as u64)?;
        j.field_u64("ipv4_paths", paths4 as u64)?;
        j.field_u64("ipv6_paths", paths6 as u64)?;
        j.field_u64("attribute_sets", sets as u64)?;
        j.field_u64("fib_pending", s.fib_pending.len() as u64)?;
        j.end_object()?;
        return out.write_char('\n');
    }
    writeln!(out, "BGP best routes: {} IPv4, {} IPv6", best4, best6)?;
    writeln!(out, "paths accepted: {} IPv4, {} IPv6; {} attribute sets", paths4, paths6, sets)
}

/// `show route PREFIX`: `None` unless PREFIX (`a.b.c.d/len`, IPv6 too) is in the Loc-RIB.
pub(super) fn route(s: &Speaker, word: &str, json: bool, out: &mut dyn Write) -> Option<fmt::Result> {
    let text = if word.contains('/') {
        String::from(word)
    } else if word.contains(':') {
        format!("{}/128", word)
    } else {
        format!("{}/32", word)
    };
    let (prefix, rest) = super::config::parse_prefix(&text)?;
    if !rest.is_empty() {
        return None;
    }
    match prefix {
        Prefix::V4(p) => {
            let fib = |a: &PathAttributes| match super::fib_next_hop(a, &s.connected) {
                Some(via) => Ok(via),
                None => Err("no usable IPv4 next hop"),
            };
            show_prefix(&s.rib4, p, |peer| s.peers.iter().find(|x| x.id4 == peer), fib, json, out)
        }
        Prefix::V6(p) => {
            let fib = |_: &PathAttributes| Err("the forwarder is IPv4 only");
            show_prefix(&s.rib6, p, |peer| s.peers.iter().find(|x| x.id6 == peer), fib, json, out)
        }
    }
}

/// `fib`: the next hop the best path is installed with, or why it is not installed.
fn show_prefix<'s, P: RibPrefix + fmt::Display>(
    rib: &Rib<P>,
    prefix: P,
    peer_of: impl Fn(PeerId) -> Option<&'s super::Peer>,
    fib: impl Fn(&PathAttributes) -> Result<Ipv4Addr, &'static str>,
    json: bool,
    out: &mut dyn Write,
) -> Option<fmt::Result> {
    let best = rib.best(&prefix)?;
    let from = |peer: PeerId| -> String {
        match peer_of(peer) {
            Some(p) => format!("{}", p.settings.address),
            None => String::from("local"),
        }
    };
    let alternatives: alloc::vec::Vec<(PeerId, &PathAttributes)> =
        rib.routes(&prefix).into_iter().filter(|(peer, _)| *peer != best.route.peer).collect();
    let installed = fib(best.attrs);
    Some((|| {
        if json {
            let mut j = JsonWriter::new(&mut *out);
            j.begin_object()?;
            j.field_display("prefix", prefix)?;
            j.key("best")?;
            j.begin_object()?;
            route_json(&mut j, &from(best.route.peer), best.attrs)?;
            j.field_display("reason", best.route.reason)?;
            j.end_object()?;
            j.field_bool("installed", installed.is_ok())?;
            j.key("not_installed")?;
            match installed {
                Ok(_) => j.null()?,
                Err(why) => j.str(why)?,
            }
            j.key("alternatives")?;
            j.begin_array()?;
            for (peer, attrs) in &alternatives {
                j.begin_object()?;
                route_json(&mut j, &from(*peer), attrs)?;
                j.end_object()?;
            }
            j.end_array()?;
            j.end_object()?;
            return out.write_char('\n');
        }
        writeln!(out, "{} (bgp)", prefix)?;
        write!(out, "  * best from {}: ", from(best.route.peer))?;
        route_text(out, best.attrs)?;
        writeln!(out, "    chosen by: {}", best.route.reason)?;
        match installed {
            Ok(via) => writeln!(out, "    installed in the FIB via {}", via)?,
            Err(why) => writeln!(out, "    not installed: {}", why)?,
        }
        for (peer, attrs) in &alternatives {
            write!(out, "    from {}: ", from(*peer))?;
            route_text(out, attrs)?;
        }
        Ok(())
    })())
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Igp => "igp",
        Origin::Egp => "egp",
        Origin::Incomplete => "incomplete",
    }
}

fn as_path_text(a: &PathAttributes) -> String {
    let mut parts: alloc::vec::Vec<String> = alloc::vec::Vec::new();
    for seg in &a.as_path.segments {
        let asns: alloc::vec::Vec<String> = seg.asns.iter().map(|n| format!("{}", n)).collect();
        let joined = asns.join(" ");
        match seg.kind {
            bulkhead_bgp::packet::attribute::SegmentKind::AsSet => parts.push(format!("{{{}}}", joined)),
            _ => parts.push(joined),
        }
    }
    parts.join(" ")
}

fn next_hop_text(a: &PathAttributes) -> String {
    match a.next_hop {
        Some(NextHop::V4(v)) => format!("{}", v),
        Some(NextHop::V6 { global, .. }) => format!("{}", IpAddr::V6(global)),
        None => String::from("self"),
    }
}

fn route_text(out: &mut dyn Write, a: &PathAttributes) -> fmt::Result {
    write!(out, "via {} as-path [{}] origin {}", next_hop_text(a), as_path_text(a), origin_name(a.origin))?;
    if let Some(m) = a.med {
        write!(out, " med {}", m)?;
    }
    if let Some(l) = a.local_pref {
        write!(out, " local-pref {}", l)?;
    }
    for c in &a.communities {
        write!(out, " ({},{})", c.0 >> 16, c.0 & 0xffff)?;
    }
    writeln!(out)
}

fn route_json<W: Write + ?Sized>(j: &mut JsonWriter<'_, W>, from: &str, a: &PathAttributes) -> fmt::Result {
    j.field_str("from", from)?;
    j.field_str("origin", origin_name(a.origin))?;
    j.field_str("as_path", &as_path_text(a))?;
    j.field_str("next_hop", &next_hop_text(a))?;
    j.key("med")?;
    match a.med {
        Some(m) => j.u64(u64::from(m))?,
        None => j.null()?,
    }
    j.key("local_pref")?;
    match a.local_pref {
        Some(l) => j.u64(u64::from(l))?,
        None => j.null()?,
    }
    j.key("communities")?;
    j.begin_array()?;
    for c in &a.communities {
        j.display(format_args!("{}:{}", c.0 >> 16, c.0 & 0xffff))?;
    }
    j.end_array()
}
