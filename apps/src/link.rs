//! A NIC as the platform sees it: frames in, frames out, counters. The kernel's virtio-net
//! device implements it in the image; the host simulation implements it with queues.
//!
//! A received frame is taken out of the ring whole ([`RxFrame`] owns its buffer), so the
//! forwarder can rewrite it in place and send it on another NIC while every NIC stays
//! reachable; [`Link::recycle`] gives the buffer back to the ring. One copy per forwarded frame:
//! into the egress NIC's transmit buffer.

use alloc::boxed::Box;

/// A received frame: `buffer[start..start + len]`, and the ring slot it came from.
#[derive(Debug)]
pub struct RxFrame {
    pub buffer: Box<[u8]>,
    pub start: usize,
    pub len: usize,
    pub slot: usize,
}

impl RxFrame {
    pub fn bytes(&self) -> &[u8] {
        self.buffer.get(self.start..self.start + self.len).unwrap_or(&[])
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.get_mut(self.start..self.start + self.len).unwrap_or(&mut [])
    }
}

pub use bulkhead_net::router::TxError;

/// A NIC's counters, for `show interfaces`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_ring_full: u64,
    pub tx_oversize: u64,
}

pub trait Link {
    fn mac(&self) -> [u8; 6];
    /// Its PCI address (bus, device, function), for `show interfaces`.
    fn pci(&self) -> (u8, u8, u8);
    /// The next received frame, taken out of the ring.
    fn receive(&mut self) -> Option<RxFrame>;
    /// Gives a received frame's buffer back to the ring.
    fn recycle(&mut self, frame: RxFrame);
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError>;
    /// Whether a frame could be sent now.
    fn can_transmit(&mut self) -> bool;
    /// Whether a received frame is waiting (checked before the loop sleeps).
    fn rx_pending(&self) -> bool;
    fn counters(&self) -> LinkCounters;
}
