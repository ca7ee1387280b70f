//! `show sctp [json]` and the subsystem's `show status` line.
//!
//! Text, one block per service, one per association, one line per path:
//!
//! ```text
//! sctp: udp port 9899, 3 services, 1 associations, true bytes queued: send 0, in flight 0, reassembly 0, delivery 96
//! service 5001 sink (paused): 1 associations (1 up, 0 down so far), 2 messages, 2 bytes received
//!   assoc 1 port 5001 <- 40000 established streams out 16 in 16, rwnd local 262048 peer 262144, limits send 262144 receive 262144
//!     queued send 0, in flight 0, reassembly 0, delivery 96; retransmissions 0 (fast 0, t3 0), errors 0
//!     path 192.0.2.2 raw from 192.0.2.1 active confirmed primary current, rto 1000ms srtt 1ms cwnd 4380 flight 0
//! ```
//!
//! JSON: one object, `{"udp_port":…,"associations":…,"bytes":{…},"services":[{…,"associations":[{…,"paths":[…]}]}]}`.

use core::fmt::{self, Write};

use bulkhead_sctp::association::path::PathState;
use bulkhead_sctp::association::{AssociationStatus, QueueBytes, State};
use bulkhead_sctp::endpoint::Transport;

use super::{Running, SctpConfig};
use crate::json::JsonWriter;

pub(super) fn state_name(s: State) -> &'static str {
    match s {
        State::CookieWait => "cookie-wait",
        State::CookieEchoed => "cookie-echoed",
        State::Established => "established",
        State::ShutdownPending => "shutdown-pending",
        State::ShutdownSent => "shutdown-sent",
        State::ShutdownReceived => "shutdown-received",
        State::ShutdownAckSent => "shutdown-ack-sent",
        State::Closed => "closed",
    }
}

fn path_state(s: PathState) -> &'static str {
    match s {
        PathState::Active => "active",
        PathState::Inactive => "inactive",
    }
}

fn total_bytes(r: &Running) -> (usize, QueueBytes) {
    let mut q = QueueBytes::default();
    let mut n = 0;
    for s in &r.services {
        n += s.endpoint.associations().count();
        let b = s.endpoint.queue_bytes();
        q.send += b.send;
        q.in_flight += b.in_flight;
        q.reassembly += b.reassembly;
        q.delivery += b.delivery;
    }
    (n, q)
}

pub(super) fn status_line(out: &mut dyn Write, r: &Running, udp_port: u16) -> fmt::Result {
    let (n, q) = total_bytes(r);
    write!(
        out,
        "{} services, {} associations, {} true bytes queued (send {}, in flight {}, reassembly {}, delivery {}); udp port {}",
        r.services.len(),
        n,
        q.send + q.in_flight + q.reassembly + q.delivery,
        q.send,
        q.in_flight,
        q.reassembly,
        q.delivery,
        udp_port
    )
}

/// ICMP errors the endpoints took or ignored, over every service.
struct IcmpTotals {
    too_big: u64,
    protocol_unreachable: u64,
    ignored: u64,
}

fn icmp_totals(r: &Running) -> IcmpTotals {
    let mut t = IcmpTotals { too_big: 0, protocol_unreachable: 0, ignored: 0 };
    for s in &r.services {
        t.too_big += s.endpoint.counters().icmp_too_big;
        t.protocol_unreachable += s.endpoint.counters().icmp_protocol_unreachable;
        t.ignored += s.endpoint.drops().icmp_ignored;
    }
    t
}

pub(super) fn text(out: &mut dyn Write, r: &Running, config: &SctpConfig) -> fmt::Result {
    let (n, q) = total_bytes(r);
    writeln!(
        out,
        "sctp: udp port {}, {} services, {} associations, true bytes queued: send {}, in flight {}, reassembly {}, delivery {}",
        config.udp_port,
        r.services.len(),
        n,
        q.send,
        q.in_flight,
        q.reassembly,
        q.delivery
    )?;
    let c = &r.counters;
    writeln!(
        out,
        "  packets: {} to no service, {} runts, {} waits for the local-out queue, {} refused; \
         {} queued for a later turn ({} now), {} dropped with the queue full",
        c.no_service,
        c.runt,
        c.queue_full,
        c.send_failed,
        c.inbound_queued,
        r.inbound.len(),
        c.inbound_dropped
    )?;
    let icmp = icmp_totals(r);
    writeln!(
        out,
        "  icmp: {} fragmentation needed, {} protocol unreachable, {} for no association, {} not acted on",
        icmp.too_big, icmp.protocol_unreachable, icmp.ignored, c.icmp_not_acted_on
    )?;
    for s in &r.services {
        let st = &s.stats;
        writeln!(
            out,
            "service {} {}{}: {} associations ({} up, {} down so far), {} messages, {} bytes received{}",
            s.service.port,
            s.service.kind.name(),
            if s.paused { " (paused)" } else { "" },
            s.endpoint.associations().count(),
            st.associations_up,
            st.associations_down,
            st.messages,
            st.bytes,
            EchoFigures(s)
        )?;
        for id in s.endpoint.associations() {
            let Some(a) = s.endpoint.status(id) else { continue };
            assoc_text(out, id.0, &a)?;
        }
    }
    Ok(())
}

struct EchoFigures<'a>(&'a super::Served);

impl fmt::Display for EchoFigures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.service.kind != super::ServiceKind::Echo {
            return Ok(());
        }
        write!(
            f,
            ", {} echoed, {} stalls, {} waiting for room, {} dropped",
            s.stats.echoed,
            s.stats.echo_stalls,
            s.stalled.len(),
            s.stats.echo_dropped
        )
    }
}

fn assoc_text(out: &mut dyn Write, id: u32, a: &AssociationStatus) -> fmt::Result {
    writeln!(
        out,
        "  assoc {} port {} <- {} {} streams out {} in {}, rwnd local {} peer {}, limits send {} receive {}",
        id,
        a.local_port,
        a.peer_port,
        state_name(a.state),
        a.outbound_streams,
        a.inbound_streams,
        a.local_rwnd,
        a.peer_rwnd,
        a.send_limit,
        a.receive_limit
    )?;
    let c = &a.counters;
    writeln!(
        out,
        "    queued send {}, in flight {}, reassembly {}, delivery {}; retransmissions {} (fast {}, t3 {}), errors {}, failovers {}, in pieces {}",
        a.bytes.send,
        a.bytes.in_flight,
        a.bytes.reassembly,
        a.bytes.delivery,
        c.retransmissions,
        c.fast_retransmits,
        c.t3_expiries,
        a.error_count,
        c.failovers,
        c.partial_deliveries
    )?;
    for p in &a.paths {
        write!(out, "    path {} ", p.addr)?;
        match p.transport {
            Transport::Ip => write!(out, "raw")?,
            Transport::Udp { peer_port } => write!(out, "udp:{}", peer_port)?,
        }
        write!(out, " from {} {}", p.local, path_state(p.state))?;
        for (flag, word) in [(p.confirmed, " confirmed"), (p.primary, " primary"), (p.current, " current")] {
            if flag {
                out.write_str(word)?;
            }
        }
        write!(out, ", rto {}ms", p.rto.total_micros() / 1000)?;
        if let Some(srtt) = p.srtt {
            write!(out, " srtt {}ms", srtt.total_micros() / 1000)?;
        }
        writeln!(out, " cwnd {} flight {} errors {} mtu {}", p.cwnd, p.flight, p.error_count, p.mtu)?;
    }
    Ok(())
}

fn bytes_json<W: Write + ?Sized>(j: &mut JsonWriter<'_, W>, key: &str, q: &QueueBytes) -> fmt::Result {
    j.key(key)?;
    j.begin_object()?;
    j.field_u64("send", q.send as u64)?;
    j.field_u64("in_flight", q.in_flight as u64)?;
    j.field_u64("reassembly", q.reassembly as u64)?;
    j.field_u64("delivery", q.delivery as u64)?;
    j.field_u64("total", (q.send + q.in_flight + q.reassembly + q.delivery) as u64)?;
    j.end_object()
}

pub(super) fn json(out: &mut dyn Write, r: &Running, config: &SctpConfig) -> fmt::Result {
    let (n, q) = total_bytes(r);
    let mut j = JsonWriter::new(out);
    j.begin_object()?;
    j.field_u64("udp_port", u64::from(config.udp_port))?;
    j.field_u64("send_limit", config.send_limit as u64)?;
    j.field_u64("receive_limit", config.receive_limit as u64)?;
    j.field_u64("associations", n as u64)?;
    bytes_json(&mut j, "bytes", &q)?;
    let c = &r.counters;
    j.field_u64("no_service", c.no_service)?;
    j.field_u64("runts", c.runt)?;
    j.field_u64("queue_full", c.queue_full)?;
    j.field_u64("send_failed", c.send_failed)?;
    j.field_u64("inbound_queued", c.inbound_queued)?;
    j.field_u64("inbound_dropped", c.inbound_dropped)?;
    let icmp = icmp_totals(r);
    j.field_u64("icmp_too_big", icmp.too_big)?;
    j.field_u64("icmp_protocol_unreachable", icmp.protocol_unreachable)?;
    j.field_u64("icmp_ignored", icmp.ignored)?;
    j.field_u64("icmp_not_acted_on", c.icmp_not_acted_on)?;
    j.key("services")?;
    j.begin_array()?;
    for s in &r.services {
        j.begin_object()?;
        j.field_u64("port", u64::from(s.service.port))?;
        j.field_str("kind", s.service.kind.name())?;
        j.field_bool("paused", s.paused)?;
        j.field_u64("messages", s.stats.messages)?;
        j.field_u64("bytes", s.stats.bytes)?;
        j.field_u64("echoed", s.stats.echoed)?;
        j.field_u64("echo_stalls", s.stats.echo_stalls)?;
        j.field_u64("echo_waiting", s.stalled.len() as u64)?;
        j.field_u64("echo_dropped", s.stats.echo_dropped)?;
        j.field_u64("associations_up", s.stats.associations_up)?;
        j.field_u64("associations_down", s.stats.associations_down)?;
        let d = s.endpoint.drops();
        j.key("drops")?;
        j.begin_object()?;
        for (k, v) in [
            ("bad_checksum", d.bad_checksum),
            ("malformed", d.malformed),
            ("ootb", d.ootb),
            ("bad_vtag", d.bad_vtag),
            ("rwnd_full", d.rwnd_full),
            ("duplicate_data", d.duplicate_data),
            ("association_limit", d.association_limit),
            ("icmp_ignored", d.icmp_ignored),
        ] {
            j.field_u64(k, v)?;
        }
        j.end_object()?;
        j.key("associations")?;
        j.begin_array()?;
        for id in s.endpoint.associations() {
            let Some(a) = s.endpoint.status(id) else { continue };
            assoc_json(&mut j, id.0, &a)?;
        }
        j.end_array()?;
        j.end_object()?;
    }
    j.end_array()?;
    j.end_object()?;
    writeln!(out)
}

fn assoc_json<W: Write + ?Sized>(j: &mut JsonWriter<'_, W>, id: u32, a: &AssociationStatus) -> fmt::Result {
    j.begin_object()?;
    j.field_u64("id", u64::from(id))?;
    j.field_str("state", state_name(a.state))?;
    j.field_u64("local_port", u64::from(a.local_port))?;
    j.field_u64("peer_port", u64::from(a.peer_port))?;
    j.field_u64("outbound_streams", u64::from(a.outbound_streams))?;
    j.field_u64("inbound_streams", u64::from(a.inbound_streams))?;
    j.field_u64("local_rwnd", u64::from(a.local_rwnd))?;
    j.field_u64("peer_rwnd", u64::from(a.peer_rwnd))?;
    j.field_u64("send_limit", a.send_limit as u64)?;
    j.field_u64("receive_limit", a.receive_limit as u64)?;
    bytes_json(j, "bytes", &a.bytes)?;
    let c = &a.counters;
    j.field_u64("messages_sent", c.messages_sent)?;
    j.field_u64("messages_received", c.messages_received)?;
    j.field_u64("retransmissions", c.retransmissions)?;
    j.field_u64("fast_retransmits", c.fast_retransmits)?;
    j.field_u64("t3_expiries", c.t3_expiries)?;
    j.field_u64("failovers", c.failovers)?;
    j.field_u64("partial_deliveries", c.partial_deliveries)?;
    j.field_u64("pmtu_decreases", c.pmtu_decreases)?;
    j.field_u64("pmtu_black_holes", c.pmtu_black_holes)?;
    j.field_u64("error_count", u64::from(a.error_count))?;
    j.key("paths")?;
    j.begin_array()?;
    for p in &a.paths {
        j.begin_object()?;
        j.field_display("addr", p.addr)?;
        j.field_display("local", p.local)?;
        match p.transport {
            Transport::Ip => j.field_str("transport", "ip")?,
            Transport::Udp { peer_port } => {
                j.field_str("transport", "udp")?;
                j.field_u64("udp_port", u64::from(peer_port))?;
            }
        }
        j.field_str("state", path_state(p.state))?;
        j.field_bool("primary", p.primary)?;
        j.field_bool("current", p.current)?;
        j.field_bool("confirmed", p.confirmed)?;
        j.field_u64("rto_ms", p.rto.total_micros() / 1000)?;
        match p.srtt {
            Some(s) => j.field_u64("srtt_us", s.total_micros())?,
            None => {
                j.key("srtt_us")?;
                j.null()?
            }
        }
        j.field_u64("cwnd", u64::from(p.cwnd))?;
        j.field_u64("ssthresh", u64::from(p.ssthresh))?;
        j.field_u64("flight", u64::from(p.flight))?;
        j.field_u64("errors", u64::from(p.error_count))?;
        j.field_u64("mtu", u64::from(p.mtu))?;
        j.end_object()?;
    }
    j.end_array()?;
    j.end_object()
}
