//! `show route` and `show flows`: the forwarder's tables as the console prints them, a table
//! or one line of JSON. The kernel fills the rows from the forwarding core.

use alloc::string::String;
use core::fmt::{self, Write};

use crate::addr::{Ipv4Addr, Ipv4Cidr};
use crate::json::JsonWriter;

/// One route of the FIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRow {
    pub prefix: Ipv4Cidr,
    /// Where it came from: `connected`, `static` (later `bgp`).
    pub source: &'static str,
    /// The gateway; `None` for a connected subnet.
    pub via: Option<Ipv4Addr>,
    pub interface: String,
}

/// One flow of the flow table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRow {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub src_port: u16,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub packets: u64,
    pub bytes: u64,
    /// Seconds since the first and the last packet.
    pub age_secs: u64,
    pub idle_secs: u64,
}

/// The flow table's figures and its top flows by bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowTable {
    pub count: u64,
    pub capacity: u64,
    pub created: u64,
    pub expired_idle: u64,
    pub expired_lifetime: u64,
    pub evicted: u64,
    pub top: alloc::vec::Vec<FlowRow>,
}

/// `show route [PREFIX]`: the routes given (already filtered by the caller).
pub fn show_route(out: &mut impl Write, routes: &[RouteRow], total: u64, json: bool) -> fmt::Result {
    if json {
        let mut j = JsonWriter::new(out);
        j.begin_object()?;
        j.field_u64("total", total)?;
        j.key("routes")?;
        j.begin_array()?;
        for r in routes {
            j.begin_object()?;
            j.field_display("prefix", r.prefix)?;
            j.field_str("source", r.source)?;
            j.key("via")?;
            match r.via {
                Some(via) => j.display(via)?,
                None => j.null()?,
            }
            j.field_str("interface", &r.interface)?;
            j.end_object()?;
        }
        j.end_array()?;
        j.end_object()?;
        return out.write_char('\n');
    }
    writeln!(out, "{:<20} {:<10} {:<16} Interface", "Prefix", "Source", "Via")?;
    for r in routes {
        let via = match r.via {
            Some(v) => alloc::format!("{v}"),
            None => String::from("-"),
        };
        writeln!(out, "{:<20} {:<10} {:<16} {}", alloc::format!("{}", r.prefix), r.source, via, r.interface)?;
    }
    writeln!(out, "{} of {} routes", routes.len(), total)
}

/// `show flows`: the table's figures and its top flows by bytes.
pub fn show_flows(out: &mut impl Write, flows: &FlowTable, json: bool) -> fmt::Result {
    if json {
        let mut j = JsonWriter::new(out);
        j.begin_object()?;
        j.field_u64("count", flows.count)?;
        j.field_u64("capacity", flows.capacity)?;
        j.field_u64("created", flows.created)?;
        j.field_u64("expired_idle", flows.expired_idle)?;
        j.field_u64("expired_lifetime", flows.expired_lifetime)?;
        j.field_u64("evicted", flows.evicted)?;
        j.key("top")?;
        j.begin_array()?;
        for f in &flows.top {
            j.begin_object()?;
            j.field_u64("protocol", u64::from(f.protocol))?;
            j.field_display("src", f.src)?;
            j.field_u64("src_port", u64::from(f.src_port))?;
            j.field_display("dst", f.dst)?;
            j.field_u64("dst_port", u64::from(f.dst_port))?;
            j.field_u64("packets", f.packets)?;
            j.field_u64("bytes", f.bytes)?;
            j.field_u64("age_secs", f.age_secs)?;
            j.field_u64("idle_secs", f.idle_secs)?;
            j.end_object()?;
        }
        j.end_array()?;
        j.end_object()?;
        return out.write_char('\n');
    }
    writeln!(
        out,
        "{} flows of {}; created {}, expired idle {}, expired at lifetime {}, evicted {}",
        flows.count, flows.capacity, flows.created, flows.expired_idle, flows.expired_lifetime, flows.evicted
    )?;
    if flows.top.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{:<5} {:<21} {:<21} {:>10} {:>12} {:>7} {:>6}",
        "Proto", "Source", "Destination", "Packets", "Bytes", "Age s", "Idle s"
    )?;
    for f in &flows.top {
        writeln!(
            out,
            "{:<5} {:<21} {:<21} {:>10} {:>12} {:>7} {:>6}",
            protocol_name(f.protocol),
            alloc::format!("{}:{}", f.src, f.src_port),
            alloc::format!("{}:{}", f.dst, f.dst_port),
            f.packets,
            f.bytes,
            f.age_secs,
            f.idle_secs
        )?;
    }
    Ok(())
}

fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => "ip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        crate::addr::parse_ipv4(text).unwrap()
    }

    #[test]
    fn route_table_and_json() {
        let routes = [
            RouteRow {
                prefix: Ipv4Cidr::parse("10.20.0.0/16").unwrap(),
                source: "static",
                via: Some(ip("203.0.113.2")),
                interface: "nic2".into(),
            },
            RouteRow {
                prefix: Ipv4Cidr::parse("192.0.2.0/24").unwrap(),
                source: "connected",
                via: None,
                interface: "nic0".into(),
            },
        ];
        let mut s = String::new();
        show_route(&mut s, &routes, 5, false).unwrap();
        assert_eq!(
            s,
            "Prefix               Source     Via              Interface\n\
             10.20.0.0/16         static     203.0.113.2      nic2\n\
             192.0.2.0/24         connected  -                nic0\n\
             2 of 5 routes\n"
        );
        let mut j = String::new();
        show_route(&mut j, &routes, 5, true).unwrap();
        assert_eq!(
            j,
            concat!(
                r#"{"total":5,"routes":[{"prefix":"10.20.0.0/16","source":"static","via":"203.0.113.2","interface":"nic2"},"#,
                r#"{"prefix":"192.0.2.0/24","source":"connected","via":null,"interface":"nic0"}]}"#,
                "\n"
            )
        );
    }

    #[test]
    fn flows_table_and_json() {
        let flows = FlowTable {
            count: 1,
            capacity: 1000,
            created: 3,
            expired_idle: 2,
            top: alloc::vec![FlowRow {
                protocol: 17,
                src: ip("192.0.2.2"),
                src_port: 5000,
                dst: ip("198.51.100.2"),
                dst_port: 514,
                packets: 10,
                bytes: 1000,
                age_secs: 5,
                idle_secs: 0,
            }],
            ..FlowTable::default()
        };
        let mut s = String::new();
        show_flows(&mut s, &flows, false).unwrap();
        assert!(
            s.starts_with("1 flows of 1000; created 3, expired idle 2, expired at lifetime 0, evicted 0\n")
        );
        assert!(s.contains("udp   192.0.2.2:5000        198.51.100.2:514"), "{s}");
        let mut j = String::new();
        show_flows(&mut j, &flows, true).unwrap();
        assert!(j.starts_with(r#"{"count":1,"capacity":1000,"created":3,"expired_idle":2,"#), "{j}");
        assert!(
            j.contains(r#""src":"192.0.2.2","src_port":5000,"dst":"198.51.100.2","dst_port":514"#),
            "{j}"
        );
    }
}
