//! What the simulated loops share: a fake NIC whose far end is two queues, a smoltcp host on
//! nic0's wire, the constants of the simulated appliance, and the harness that runs the cases
//! one after another on the main thread (the allocator's current domain is one per process).
#![allow(dead_code)] // each simulation uses its own part of this

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bulkhead_apps::domain::Domain;
use bulkhead_apps::forwarder::{ForwarderConfig, ForwarderPlan};
use bulkhead_apps::link::{Link, LinkCounters, RxFrame, TxError};
use bulkhead_apps::platform::Port;
use bulkhead_apps::time::Instant;
use bulkhead_base::addr::Ipv4Cidr;
use bulkhead_mem::DomainAllocator;
use bulkhead_net::router;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

pub const NIC0_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 0];
pub const NIC1_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
pub const NIC_NAMES: [&str; 2] = ["nic0", "nic1"];
/// Every domain's hard quota in the simulations (soft: three quarters of it).
pub const QUOTA: usize = 16 << 20;

pub fn cidr(text: &str) -> Ipv4Cidr {
    Ipv4Cidr::parse(text).unwrap()
}

pub type Wire = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// A NIC whose other end is two queues. Its own allocations are the wire's, outside the
/// appliance: booked to `kernel`.
pub struct FakeLink {
    heap: &'static DomainAllocator,
    mac: [u8; 6],
    pub to_appliance: Wire,
    pub from_appliance: Wire,
    counters: LinkCounters,
}

impl FakeLink {
    /// A NIC with `mac` whose received frames come from `to_appliance` and whose sent frames go
    /// to `from_appliance`; the wire's own allocations are booked to `kernel` of `heap`.
    pub fn new(
        heap: &'static DomainAllocator,
        mac: [u8; 6],
        to_appliance: Wire,
        from_appliance: Wire,
    ) -> FakeLink {
        FakeLink { heap, mac, to_appliance, from_appliance, counters: LinkCounters::default() }
    }
}

impl Link for FakeLink {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn pci(&self) -> (u8, u8, u8) {
        (0, 3, 0)
    }
    fn receive(&mut self) -> Option<RxFrame> {
        let _wire = self.heap.enter(Domain::Kernel);
        let frame = self.to_appliance.borrow_mut().pop_front()?;
        self.counters.rx_packets += 1;
        let len = frame.len();
        Some(RxFrame { buffer: frame.into_boxed_slice(), start: 0, len, slot: 0 })
    }
    fn recycle(&mut self, frame: RxFrame) {
        let _wire = self.heap.enter(Domain::Kernel);
        drop(frame);
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        let _wire = self.heap.enter(Domain::Kernel);
        if frame.len() > 1514 {
            return Err(TxError::Oversize);
        }
        self.counters.tx_packets += 1;
        self.from_appliance.borrow_mut().push_back(frame.to_vec());
        Ok(())
    }
    fn can_transmit(&mut self) -> bool {
        true
    }
    fn rx_pending(&self) -> bool {
        !self.to_appliance.borrow().is_empty()
    }
    fn counters(&self) -> LinkCounters {
        self.counters
    }
}

/// The host on nic0's wire: 192.0.2.2/24 and 192.0.2.3/24 (a second speaker, or a stranger),
/// its default route through the appliance. Every frame the appliance sent it is kept in
/// `seen` for inspection.
pub struct Peer {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub to_appliance: Wire,
    pub from_appliance: Wire,
    pub seen: Vec<Vec<u8>>,
}

struct PeerDevice<'a> {
    rx: &'a Wire,
    tx: &'a Wire,
    pub seen: &'a mut Vec<Vec<u8>>,
}

struct PeerRx(Vec<u8>);
struct PeerTx<'a>(&'a Wire);

impl RxToken for PeerRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for PeerTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.borrow_mut().push_back(frame);
        r
    }
}

impl Device for PeerDevice<'_> {
    type RxToken<'b>
        = PeerRx
    where
        Self: 'b;
    type TxToken<'b>
        = PeerTx<'b>
    where
        Self: 'b;
    fn receive(&mut self, _now: smoltcp::time::Instant) -> Option<(PeerRx, PeerTx<'_>)> {
        let frame = self.rx.borrow_mut().pop_front()?;
        self.seen.push(frame.clone());
        Some((PeerRx(frame), PeerTx(self.tx)))
    }
    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<PeerTx<'_>> {
        Some(PeerTx(self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl Peer {
    pub fn new(to_appliance: Wire, from_appliance: Wire) -> Peer {
        let mut seen = Vec::new();
        let mut device = PeerDevice { rx: &from_appliance, tx: &to_appliance, seen: &mut seen };
        let config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(PEER_MAC)));
        let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(192, 0, 2, 2), 24)).unwrap();
            a.push(IpCidr::new(IpAddress::v4(192, 0, 2, 3), 24)).unwrap();
        });
        iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(192, 0, 2, 1)).unwrap();
        Peer { iface, sockets: SocketSet::new(Vec::new()), to_appliance, from_appliance, seen }
    }

    pub fn poll(&mut self, now: Instant) {
        let mut device =
            PeerDevice { rx: &self.from_appliance, tx: &self.to_appliance, seen: &mut self.seen };
        let t = smoltcp::time::Instant::from_micros(now.total_micros() as i64);
        self.iface.poll(t, &mut device, &mut self.sockets);
    }

    pub fn tcp(&mut self, remote: (Ipv4Address, u16), local_port: u16, buffer: usize) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket
            .connect(self.iface.context(), IpEndpoint::new(IpAddress::Ipv4(remote.0), remote.1), local_port)
            .unwrap();
        self.sockets.add(socket)
    }

    pub fn udp(&mut self, port: u16) -> SocketHandle {
        let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
        let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
        let mut socket = udp::Socket::new(rx, tx);
        socket.bind(port).unwrap();
        self.sockets.add(socket)
    }
}

/// The simulated appliance's two NICs: nic0 192.0.2.1/24 (the peer's wire), nic1
/// 198.51.100.1/24; their ports (reserved in `net`) and the forwarder's plan for them.
pub struct TwoNics {
    pub ports: Vec<Port>,
    pub plan: ForwarderPlan,
    /// nic0's wire, towards the appliance and from it, and what nic1 sends.
    pub to0: Wire,
    pub from0: Wire,
    pub from1: Wire,
}

pub fn two_nics(heap: &'static DomainAllocator, forwarder: &ForwarderConfig) -> TwoNics {
    let (to0, from0, to1, from1): (Wire, Wire, Wire, Wire) = Default::default();
    let link0 = FakeLink::new(heap, NIC0_MAC, to0.clone(), from0.clone());
    let link1 = FakeLink::new(heap, NIC1_MAC, to1, from1.clone());
    let (a0, a1) = (cidr("192.0.2.1/24"), cidr("198.51.100.1/24"));
    let ports = {
        let _net = heap.enter(Domain::Net);
        vec![
            Port::new("nic0", Box::new(link0), Some(a0), 1500),
            Port::new("nic1", Box::new(link1), Some(a1), 1500),
        ]
    };
    let plan = ForwarderPlan {
        interfaces: vec![
            (0, router::Interface { mac: NIC0_MAC, address: Some((a0.addr.to_bits(), 24)), mtu: 1500 }),
            (1, router::Interface { mac: NIC1_MAC, address: Some((a1.addr.to_bits(), 24)), mtu: 1500 }),
        ],
        routes: vec![],
        settings: ForwarderPlan::settings(forwarder, 1 << 20),
    };
    TwoNics { ports, plan, to0, from0, from1 }
}

/// Runs `cases` in order (those whose name contains the first argument, if one is given),
/// printing one line each and the closing `N passed, N failed`; exits 1 on a failure.
pub fn run_cases(cases: &[(&str, fn())]) {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match std::panic::catch_unwind(*case) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
