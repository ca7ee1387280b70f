//! virtio-net NICs: the `virtio-drivers` HAL for an identity-mapped kernel, and a NIC with fixed
//! receive and transmit buffer pools, so that per-packet work never allocates.

use crate::pci::{self, BarAllocator, PciFunction, PortCam};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Descriptors per virtqueue (QEMU's default ring size).
pub const QUEUE_SIZE: usize = 256;
/// One buffer per descriptor: a 1514-byte frame plus the 12-byte virtio-net header, rounded.
pub const BUFFER_SIZE: usize = 2048;
/// The virtio-net header of a VERSION_1 device.
const NET_HDR_LEN: usize = 12;
/// The largest Ethernet frame (without FCS) the buffers carry.
pub const MAX_FRAME: usize = 1514;

/// DMA for a kernel whose memory is identity-mapped and whose devices see physical addresses.
pub struct KernelHal;

// SAFETY: dma_alloc returns zeroed, page-aligned, identity-mapped memory owned until
// dma_dealloc; share/unshare return the identity physical address of memory that stays valid
// for as long as the driver holds it; MMIO regions were identity-mapped by the PCI set-up.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: layout has non-zero size (virtio-drivers never asks for 0 pages).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).expect("out of memory for virtqueue DMA");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: allocated by dma_alloc with the same layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        crate::paging::map_mmio(paddr, size as u64);
        NonNull::new(paddr as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Counters of one NIC, as `show interfaces` prints them.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// A frame to send found every transmit buffer in flight.
    pub tx_ring_full: u64,
    /// The device reported an error on a receive descriptor.
    pub rx_errors: u64,
    /// A frame to send was larger than a buffer.
    pub tx_oversize: u64,
}

/// A received frame, its buffer out of the ring: the frame is `buffer[start..start + len]`.
pub struct Received {
    pub buffer: Box<[u8]>,
    pub start: usize,
    pub len: usize,
    pub slot: usize,
}

/// The transmit ring had no free buffer.
#[derive(Debug)]
pub struct TxFull;

type Device = VirtIONetRaw<KernelHal, PciTransport, QUEUE_SIZE>;

/// A virtio-net device with its buffers.
pub struct Nic {
    device: Device,
    pub mac: [u8; 6],
    pub pci: (u8, u8, u8),
    pub counters: NicCounters,
    /// Receive buffers; `rx_by_token[t]` is the buffer descriptor `t` fills.
    rx_buffers: Vec<Box<[u8]>>,
    rx_by_token: Vec<Option<usize>>,
    /// Transmit buffers, allocated on first use up to `QUEUE_SIZE` (each one once, ever): a
    /// NIC that never sends much never pays for a full ring.
    tx_buffers: Vec<Box<[u8]>>,
    tx_free: Vec<usize>,
    tx_by_token: Vec<Option<usize>>,
}

impl Nic {
    /// Brings up the virtio-net function `f`, posts every receive buffer, and routes its queue
    /// interrupts to `vector` through MSI-X. See `pci::BarAllocator` for the order of steps.
    pub fn new(
        root: &mut PciRoot<PortCam>,
        allocator: &mut BarAllocator,
        f: &PciFunction,
        vector: u8,
    ) -> Result<Nic, NicError> {
        pci::disable_decode(root, f);
        allocator.assign(root, f);
        let transport =
            PciTransport::new::<KernelHal, PortCam>(root, f.address).map_err(|_| NicError::Transport)?;
        let msix = pci::msix_table(root, f);
        let common = pci::virtio_common_cfg(root, f);
        pci::enable_decode(root, f);
        let mut device = Device::new(transport).map_err(|_| NicError::Device)?;
        let mac = device.mac_address();
        let mut nic = Nic {
            mac,
            pci: (f.address.bus, f.address.device, f.address.function),
            counters: NicCounters::default(),
            rx_buffers: (0..QUEUE_SIZE).map(|_| alloc::vec![0u8; BUFFER_SIZE].into_boxed_slice()).collect(),
            rx_by_token: alloc::vec![None; QUEUE_SIZE],
            tx_buffers: Vec::with_capacity(QUEUE_SIZE),
            tx_free: Vec::with_capacity(QUEUE_SIZE),
            tx_by_token: alloc::vec![None; QUEUE_SIZE],
            device: {
                device.enable_interrupts();
                device
            },
        };
        for index in 0..QUEUE_SIZE {
            nic.post_rx(index)?;
        }
        if let (Some(msix), Some(common)) = (msix, common) {
            pci::enable_msix(f, msix, vector);
            route_queue_vectors(common);
        }
        Ok(nic)
    }

    fn post_rx(&mut self, index: usize) -> Result<(), NicError> {
        let buffer = self.rx_buffers.get_mut(index).ok_or(NicError::Device)?;
        // SAFETY: the buffer is a live heap allocation owned by self and not touched again until
        // the device returns it through poll_receive/receive_complete.
        let token = unsafe { self.device.receive_begin(buffer) }.map_err(|_| NicError::Device)?;
        if let Some(slot) = self.rx_by_token.get_mut(usize::from(token)) {
            *slot = Some(index);
        }
        Ok(())
    }

    /// Hands the next received frame to `f`, then gives its buffer back to the device.
    pub fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let token = self.device.poll_receive()?;
        let index = self.rx_by_token.get_mut(usize::from(token))?.take()?;
        let buffer = self.rx_buffers.get_mut(index)?;
        // SAFETY: `token` was returned by receive_begin for exactly this buffer.
        let result = match unsafe { self.device.receive_complete(token, buffer) } {
            Ok((header, length)) => {
                self.counters.rx_packets += 1;
                self.counters.rx_bytes += length as u64;
                buffer.get_mut(header..header + length).map(f)
            }
            Err(_) => {
                self.counters.rx_errors += 1;
                None
            }
        };
        let _ = self.post_rx(index);
        result
    }

    /// Takes the next received frame out of the ring, buffer and all (no copy), so that the
    /// caller may rewrite it and send it on another NIC; [`Nic::recycle`] gives it back.
    pub fn take_received(&mut self) -> Option<Received> {
        let token = self.device.poll_receive()?;
        let slot = self.rx_by_token.get_mut(usize::from(token))?.take()?;
        let buffer = self.rx_buffers.get_mut(slot)?;
        // SAFETY: `token` was returned by receive_begin for exactly this buffer.
        match unsafe { self.device.receive_complete(token, buffer) } {
            Ok((header, length)) if header + length <= buffer.len() => {
                self.counters.rx_packets += 1;
                self.counters.rx_bytes += length as u64;
                let buffer = core::mem::take(buffer);
                Some(Received { buffer, start: header, len: length, slot })
            }
            _ => {
                self.counters.rx_errors += 1;
                let _ = self.post_rx(slot);
                None
            }
        }
    }

    /// Gives a buffer taken by [`Nic::take_received`] back to its slot and to the device.
    pub fn recycle(&mut self, buffer: Box<[u8]>, slot: usize) {
        if let Some(place) = self.rx_buffers.get_mut(slot) {
            if buffer.len() == BUFFER_SIZE {
                *place = buffer;
                let _ = self.post_rx(slot);
            }
        }
    }

    /// Whether a received frame is waiting.
    pub fn rx_pending(&self) -> bool {
        self.device.poll_receive().is_some()
    }

    /// Returns transmit buffers the device has finished with.
    fn reap_tx(&mut self) {
        while let Some(token) = self.device.poll_transmit() {
            let Some(index) = self.tx_by_token.get_mut(usize::from(token)).and_then(Option::take) else {
                break;
            };
            let Some(buffer) = self.tx_buffers.get(index) else {
                break;
            };
            // SAFETY: token came from transmit_begin for this buffer.
            let _ = unsafe { self.device.transmit_complete(token, buffer) };
            self.tx_free.push(index);
        }
    }

    pub fn can_transmit(&mut self) -> bool {
        self.reap_tx();
        (!self.tx_free.is_empty() || self.tx_buffers.len() < QUEUE_SIZE) && self.device.can_send()
    }

    /// A free transmit buffer's index, allocating a new one while the ring is not yet full.
    fn take_tx_buffer(&mut self) -> Option<usize> {
        if let Some(index) = self.tx_free.pop() {
            return Some(index);
        }
        if self.tx_buffers.len() < QUEUE_SIZE {
            // A NIC's buffers are `net`'s by design, whichever subsystem happens to send first.
            let _net = crate::heap::ALLOCATOR.enter(bulkhead_mem::Domain::Net);
            self.tx_buffers.push(alloc::vec![0u8; BUFFER_SIZE].into_boxed_slice());
            return Some(self.tx_buffers.len() - 1);
        }
        None
    }

    /// Builds a `len`-byte frame with `f` in a free transmit buffer and queues it.
    pub fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxFull> {
        if len > MAX_FRAME {
            self.counters.tx_oversize += 1;
            return Err(TxFull);
        }
        self.reap_tx();
        if !self.device.can_send() {
            self.counters.tx_ring_full += 1;
            return Err(TxFull);
        }
        let Some(index) = self.take_tx_buffer() else {
            self.counters.tx_ring_full += 1;
            return Err(TxFull);
        };
        let Some(buffer) = self.tx_buffers.get_mut(index) else {
            return Err(TxFull);
        };
        let header = self.device.fill_buffer_header(buffer).unwrap_or(NET_HDR_LEN);
        let Some(frame) = buffer.get_mut(header..header + len) else {
            return Err(TxFull);
        };
        let result = f(frame);
        // SAFETY: the buffer stays allocated and untouched until reap_tx sees it completed.
        match unsafe { self.device.transmit_begin(&buffer[..header + len]) } {
            Ok(token) => {
                if let Some(slot) = self.tx_by_token.get_mut(usize::from(token)) {
                    *slot = Some(index);
                }
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += len as u64;
                Ok(result)
            }
            Err(_) => {
                self.tx_free.push(index);
                self.counters.tx_ring_full += 1;
                Err(TxFull)
            }
        }
    }
}

#[derive(Debug)]
pub enum NicError {
    Transport,
    Device,
}

/// Points both queues (and no configuration-change interrupt) at MSI-X table entry 0.
fn route_queue_vectors(common: *mut u8) {
    const MSIX_CONFIG: usize = 0x10;
    const QUEUE_SELECT: usize = 0x16;
    const QUEUE_MSIX_VECTOR: usize = 0x1a;
    // SAFETY: `common` is the device's mapped common configuration structure (virtio 1.0 §4.1.4.3).
    unsafe {
        core::ptr::write_volatile(common.add(MSIX_CONFIG) as *mut u16, 0xffff);
        for queue in 0..2u16 {
            core::ptr::write_volatile(common.add(QUEUE_SELECT) as *mut u16, queue);
            core::ptr::write_volatile(common.add(QUEUE_MSIX_VECTOR) as *mut u16, 0);
        }
    }
}

/// Finds the virtio-net functions on bus 0 (modern ids 0x1041, transitional 0x1000), assigns
/// their BARs and brings them up, in PCI order, at most `max`.
pub fn probe_nics(max: usize) -> Vec<Nic> {
    let mut root = pci::root();
    let functions = pci::enumerate(&mut root);
    let mut allocator = BarAllocator::new(&functions);
    let mut nics = Vec::new();
    for f in
        functions.iter().filter(|f| f.vendor_id == 0x1af4 && (f.device_id == 0x1041 || f.device_id == 0x1000))
    {
        if nics.len() >= max {
            log::warn!("bulkhead: more than {} NICs, {} ignored", max, f.address);
            continue;
        }
        let vector = crate::apic::NIC_VECTOR_BASE + nics.len() as u8;
        match Nic::new(&mut root, &mut allocator, f, vector) {
            Ok(nic) => nics.push(nic),
            Err(e) => log::error!("bulkhead: NIC at {} failed: {:?}", f.address, e),
        }
    }
    nics
}
