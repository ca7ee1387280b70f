//! The appliance as an IP host: any bytes as a local IPv4 packet. `Host::classify` (checksums,
//! fragments, GTSM, a SYN that finds its listener taken, the ICMP errors quoting a bound
//! packet, UDP bindings) must not panic on any of them; what it gives the stack goes through
//! smoltcp; and the bytes are also sent back as a datagram, whole or in fragments.
#![no_main]

use bulkhead_apps::addr::Ipv4Cidr;
use bulkhead_apps::context::{Binding, OutDatagram, TcpBuffers, TtlGuard};
use bulkhead_apps::domain::Domain;
use bulkhead_apps::host::{Host, Local};
use bulkhead_apps::time::Instant;
use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;

const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_micros(1);
    let mut host = Host::new(&[Ipv4Cidr { addr: US, prefix_len: 24 }], 1500, 7, now);
    let _ = host.bind(Domain::Sctp, Binding::IpProtocol(132));
    let _ = host.bind(Domain::Sctp, Binding::Udp(9899));
    let _ = host.ttl_guard(Domain::Bgp, TtlGuard { peer: PEER, port: 179, min_ttl: 255 });
    let _ = host.tcp_listen(Domain::Bgp, 179, TcpBuffers { rx: 1024, tx: 1024 });
    match host.classify(data) {
        Local::Stack => host.ingress(now, data),
        Local::Bound(owner, d) => assert!(owner == Domain::Sctp && d.payload.len() <= data.len()),
        Local::IcmpError(owner, e) => assert!(owner == Domain::Sctp && e.quoted.payload.len() <= data.len()),
        Local::Drop(_) => {}
    }
    host.egress(now);
    let mtu = data.first().map(|b| 68 + u16::from(*b) * 8);
    let payload = data.get(..data.len().min(1400)).unwrap_or(&[]);
    let datagram = OutDatagram { src: US, dst: PEER, protocol: 132, ports: None, payload, fragment_to: mtu };
    let _ = host.send_datagram(datagram);
    while host.next_out().is_some() {
        host.pop_out();
    }
});
