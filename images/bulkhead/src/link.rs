//! The kernel's virtio-net device as the platform's [`Link`].

use bulkhead_apps::link::{Link, LinkCounters, RxFrame, TxError};
use bulkhead_kernel::virtio::{Nic, MAX_FRAME};

pub struct VirtioLink(pub Nic);

impl Link for VirtioLink {
    fn mac(&self) -> [u8; 6] {
        self.0.mac
    }

    fn pci(&self) -> (u8, u8, u8) {
        self.0.pci
    }

    fn receive(&mut self) -> Option<RxFrame> {
        let r = self.0.take_received()?;
        Some(RxFrame { buffer: r.buffer, start: r.start, len: r.len, slot: r.slot })
    }

    fn recycle(&mut self, frame: RxFrame) {
        self.0.recycle(frame.buffer, frame.slot);
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if frame.len() > MAX_FRAME {
            return Err(TxError::Oversize);
        }
        self.0.transmit(frame.len(), |buf| buf.copy_from_slice(frame)).map_err(|_| TxError::RingFull)
    }

    fn can_transmit(&mut self) -> bool {
        self.0.can_transmit()
    }

    fn rx_pending(&self) -> bool {
        self.0.rx_pending()
    }

    fn counters(&self) -> LinkCounters {
        let c = self.0.counters;
        LinkCounters {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            rx_errors: c.rx_errors,
            tx_ring_full: c.tx_ring_full,
            tx_oversize: c.tx_oversize,
        }
    }
}
