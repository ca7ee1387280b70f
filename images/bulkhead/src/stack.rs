//! smoltcp on each NIC: the local traffic (ARP, ICMP echo, and later BGP, BMP and management
//! TCP) goes through one `Interface` per NIC. The run loop hands each local frame in; smoltcp's
//! own frames go straight to the NIC's transmit ring.

use bulkhead_kernel::virtio::{Nic, MAX_FRAME};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Cidr};

const ETHERNET_HEADER: usize = 14;

/// A received frame, copied out of the NIC's ring, waiting for smoltcp.
pub struct Frame {
    bytes: [u8; MAX_FRAME],
    len: usize,
}

impl Frame {
    pub const fn empty() -> Frame {
        Frame { bytes: [0; MAX_FRAME], len: 0 }
    }

    /// Copies `bytes` in (truncated to a maximum frame).
    pub fn fill(&mut self, bytes: &[u8]) {
        let len = bytes.len().min(MAX_FRAME);
        self.bytes[..len].copy_from_slice(&bytes[..len]);
        self.len = len;
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

/// The device smoltcp sees: at most one pending received frame, and the NIC to send on.
struct FrameDevice<'a> {
    rx: Option<&'a Frame>,
    nic: &'a mut Nic,
    /// The interface's IP MTU.
    mtu: u16,
}

struct FrameRx<'a>(&'a Frame);

struct NicTx<'a>(&'a mut Nic);

impl RxToken for FrameRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.as_slice())
    }
}

impl TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        match self.0.transmit(len, |buf| f.take().map(|f| f(buf))) {
            Ok(Some(r)) => r,
            // The ring filled between `transmit()` and here, or the frame is too large: build
            // the frame in a scratch buffer and drop it (counted by the NIC).
            _ => {
                let mut scratch = [0u8; MAX_FRAME];
                let f = f.take().expect("closure unused when transmit failed");
                f(&mut scratch[..len.min(MAX_FRAME)])
            }
        }
    }
}

impl<'a> Device for FrameDevice<'a> {
    type RxToken<'b>
        = FrameRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = NicTx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(FrameRx<'_>, NicTx<'_>)> {
        let frame = self.rx.take()?;
        Some((FrameRx(frame), NicTx(self.nic)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<NicTx<'_>> {
        if self.nic.can_transmit() {
            Some(NicTx(self.nic))
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = (usize::from(self.mtu) + ETHERNET_HEADER).min(MAX_FRAME);
        caps.max_burst_size = Some(16);
        caps
    }
}

/// One NIC's smoltcp interface and sockets.
pub struct Stack {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    mtu: u16,
}

impl Stack {
    pub fn new(nic: &mut Nic, address: Option<Ipv4Cidr>, mtu: u16, seed: u64, now: Instant) -> Stack {
        let config = Config::new(EthernetAddress(nic.mac).into());
        let mut config = config;
        config.random_seed = seed;
        let mut device = FrameDevice { rx: None, nic, mtu };
        let mut iface = Interface::new(config, &mut device, now);
        if let Some(cidr) = address {
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            });
        }
        Stack { iface, sockets: SocketSet::new(alloc::vec::Vec::new()), mtu }
    }

    /// Hands one received frame to smoltcp.
    pub fn ingress(&mut self, nic: &mut Nic, frame: &Frame, now: Instant) {
        let mut device = FrameDevice { rx: Some(frame), nic, mtu: self.mtu };
        let _ = self.iface.poll_ingress_single(now, &mut device, &mut self.sockets);
    }

    /// Lets smoltcp send what it has queued (replies, retransmissions, ARP).
    pub fn egress(&mut self, nic: &mut Nic, now: Instant) {
        let mut device = FrameDevice { rx: None, nic, mtu: self.mtu };
        self.iface.poll_maintenance(now);
        let _ = self.iface.poll_egress(now, &mut device, &mut self.sockets);
    }

    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }
}
