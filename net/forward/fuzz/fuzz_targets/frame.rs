//! Any bytes as a received frame: dispatch classifies it, and the forwarding core takes it as
//! transit traffic and as ARP, with time moving on and its timers run. Nothing may panic, and
//! nothing sent may be larger than a frame.
#![no_main]

use bulkhead_net::dispatch::{classify, Ingress};
use bulkhead_net::fib::Prefix;
use bulkhead_net::flows::{Duration, FlowTimeouts, Instant};
use bulkhead_net::router::{Forwarder, Interface, RouteSource, Settings, Sink, TxError};
use libfuzzer_sys::fuzz_target;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

struct Wire(usize);

impl Sink for Wire {
    fn transmit(&mut self, iface: u8, frame: &[u8]) -> Result<(), TxError> {
        assert!(iface < 2 && frame.len() <= 1514, "frame of {} bytes on {iface}", frame.len());
        self.0 += 1;
        Ok(())
    }
    fn admit(&mut self, bytes: usize) -> bool {
        bytes < 4096
    }
}

fuzz_target!(|data: &[u8]| {
    let mut f = Forwarder::new(Settings {
        flow_capacity: 64,
        flow_timeouts: FlowTimeouts::default(),
        icmp_rate: 1000,
        route_limits: [4, 8, 8],
    });
    let r0 = [0x52, 0x54, 0, 0xb0, 0, 0];
    let _ = f.set_interface(0, Interface { mac: r0, address: Some((0xc000_0201, 24)), mtu: 1500 });
    let _ = f.set_interface(1, Interface { mac: [2, 0, 0, 0, 0, 1], address: Some((0xc633_6401, 24)), mtu: 576 });
    if let Ok(p) = Prefix::new(0x0a00_0000, 8) {
        let _ = f.add_route(p, 0xc633_6402, RouteSource::Static, &mut |_| true);
    }
    let ingress = Ingress { mac: EthernetAddress(r0), address: Some((Ipv4Address::new(192, 0, 2, 1), 24)) };
    let mut sink = Wire(0);
    // The input is cut into frames by a length byte, so one run sees several frames.
    let mut rest = data;
    let mut now = Instant::ZERO;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        let _ = classify(frame, &ingress, |a| a == Ipv4Address::new(192, 0, 2, 1));
        let mut copy = frame.to_vec();
        f.handle(now, 0, &mut copy, &mut sink);
        f.handle_arp(now, 0, frame, &mut sink);
        if frame.len() > 14 {
            f.send_local(now, &frame[14..], &mut sink);
        }
        now = now + Duration::from_millis(300);
        let _ = f.poll(now, &mut sink);
        rest = next;
    }
});
