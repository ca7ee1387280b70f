//! The first decision on every received frame: is it for the appliance itself (smoltcp: ARP,
//! ICMP echo, BGP, management), transit traffic for the forwarder, or a drop?
//!
//! Decided on the Ethernet and IPv4 destination only; validation of the IPv4 header is the
//! forwarder's (transit) or smoltcp's (local) job.

use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Address, Ipv4Packet};

const IPV4_MIN_HEADER: usize = 20;

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// ARP: smoltcp answers it; the forwarder learns from it.
    Arp,
    /// Addressed to the appliance (one of its addresses, a broadcast, a multicast group).
    Local,
    /// IPv4 to be routed.
    Transit,
    /// Dropped before anyone sees it.
    Drop(DispatchDrop),
}

/// Why a frame was dropped at dispatch, one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchDrop {
    /// Shorter than an Ethernet header, or an IPv4 frame shorter than an IPv4 header.
    Truncated,
    /// Unicast to another station's MAC address.
    NotOurMac,
    /// An EtherType the appliance does not speak (IPv6 until it does, LLDP, ...).
    UnsupportedEthertype,
    /// Transit traffic while no forwarder is running (not yet started, or shed).
    NotForwarding,
}

impl DispatchDrop {
    pub const ALL: [DispatchDrop; 4] = [
        DispatchDrop::Truncated,
        DispatchDrop::NotOurMac,
        DispatchDrop::UnsupportedEthertype,
        DispatchDrop::NotForwarding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DispatchDrop::Truncated => "truncated",
            DispatchDrop::NotOurMac => "not_our_mac",
            DispatchDrop::UnsupportedEthertype => "unsupported_ethertype",
            DispatchDrop::NotForwarding => "not_forwarding",
        }
    }
}

/// The addresses of the interface a frame came in on.
#[derive(Clone, Copy, Debug)]
pub struct Ingress {
    pub mac: EthernetAddress,
    /// The interface's address and prefix length, if it has one.
    pub address: Option<(Ipv4Address, u8)>,
}

/// Classifies `frame` received on `ingress`; `is_local` says whether an IPv4 address belongs to
/// the appliance (any interface: a packet to another interface's address is local too).
pub fn classify(frame: &[u8], ingress: &Ingress, is_local: impl Fn(Ipv4Address) -> bool) -> Class {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return Class::Drop(DispatchDrop::Truncated);
    };
    let dst_mac = ethernet.dst_addr();
    let for_us = dst_mac == ingress.mac;
    if !for_us && !dst_mac.is_broadcast() && !dst_mac.is_multicast() {
        return Class::Drop(DispatchDrop::NotOurMac);
    }
    match ethernet.ethertype() {
        EthernetProtocol::Arp => Class::Arp,
        EthernetProtocol::Ipv4 => {
            // Only the destination is read here (fixed offset, length checked); the header's
            // validity is judged by whoever gets the packet, so that each bad field is counted
            // under its own name.
            let payload = ethernet.payload();
            if payload.len() < IPV4_MIN_HEADER {
                return Class::Drop(DispatchDrop::Truncated);
            }
            let dst = Ipv4Packet::new_unchecked(payload).dst_addr();
            if is_local(dst) || dst.is_broadcast() || dst.is_multicast() || !for_us {
                return Class::Local;
            }
            if let Some((addr, len)) = ingress.address {
                if is_subnet_broadcast(dst, addr, len) {
                    return Class::Local;
                }
            }
            Class::Transit
        }
        _ => Class::Drop(DispatchDrop::UnsupportedEthertype),
    }
}

fn is_subnet_broadcast(dst: Ipv4Address, addr: Ipv4Address, len: u8) -> bool {
    if len >= 31 {
        return false;
    }
    let host_mask = u32::MAX >> len;
    let net = u32::from(addr) & !host_mask;
    u32::from(dst) == net | host_mask
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const OURS: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0xb0, 0, 0]);
    const PEER: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0xb0, 0, 9]);

    fn ingress() -> Ingress {
        Ingress { mac: OURS, address: Some((Ipv4Address::new(192, 0, 2, 1), 24)) }
    }

    fn frame(dst_mac: EthernetAddress, ethertype: u16, dst_ip: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst_mac.0);
        f.extend_from_slice(&PEER.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        // A minimal IPv4 header (checksum irrelevant here).
        f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 2]);
        f.extend_from_slice(&dst_ip);
        f
    }

    fn local(a: Ipv4Address) -> bool {
        a == Ipv4Address::new(192, 0, 2, 1) || a == Ipv4Address::new(198, 51, 100, 1)
    }

    #[test]
    fn our_addresses_are_local() {
        assert_eq!(classify(&frame(OURS, 0x0800, [192, 0, 2, 1]), &ingress(), local), Class::Local);
        assert_eq!(classify(&frame(OURS, 0x0800, [198, 51, 100, 1]), &ingress(), local), Class::Local);
    }

    #[test]
    fn other_destinations_are_transit() {
        assert_eq!(classify(&frame(OURS, 0x0800, [198, 51, 100, 2]), &ingress(), local), Class::Transit);
    }

    #[test]
    fn broadcasts_are_local() {
        assert_eq!(classify(&frame(OURS, 0x0800, [192, 0, 2, 255]), &ingress(), local), Class::Local);
        let bcast = EthernetAddress::BROADCAST;
        assert_eq!(classify(&frame(bcast, 0x0800, [255, 255, 255, 255]), &ingress(), local), Class::Local);
    }

    #[test]
    fn arp_and_drops() {
        assert_eq!(
            classify(&frame(EthernetAddress::BROADCAST, 0x0806, [0; 4]), &ingress(), local),
            Class::Arp
        );
        assert_eq!(
            classify(&frame(PEER, 0x0800, [198, 51, 100, 2]), &ingress(), local),
            Class::Drop(DispatchDrop::NotOurMac)
        );
        assert_eq!(
            classify(&frame(OURS, 0x86dd, [0; 4]), &ingress(), local),
            Class::Drop(DispatchDrop::UnsupportedEthertype)
        );
        assert_eq!(classify(&[0u8; 10], &ingress(), local), Class::Drop(DispatchDrop::Truncated));
        let mut short = frame(OURS, 0x0800, [0; 4]);
        short.truncate(20);
        assert_eq!(classify(&short, &ingress(), local), Class::Drop(DispatchDrop::Truncated));
    }

    #[test]
    fn no_panic_on_any_prefix_of_a_frame() {
        let f = frame(OURS, 0x0800, [198, 51, 100, 2]);
        for len in 0..=f.len() {
            let _ = classify(&f[..len], &ingress(), local);
        }
    }
}
