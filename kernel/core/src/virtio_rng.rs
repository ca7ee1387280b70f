//! virtio-rng, the hypervisor's entropy device (virtio 1.0 §5.4; QEMU's `-device
//! virtio-rng-pci`): modern device id 0x1044, or the transitional 0x1005 through its modern
//! capabilities, as `virtio.rs` does for the NICs (same HAL, same BAR set-up).
//!
//! One request queue, polled with a time limit and no interrupts: a device that does not answer
//! makes [`VirtioRng::fill`] fail with [`VirtioRngError::Timeout`] instead of hanging the boot.
//! The driver owns the one DMA buffer the device writes into (`BUFFER_LEN` bytes, at most one
//! request in flight); if the device could still write to it (a request timed out and the reset
//! was not confirmed), the buffer and the rings are leaked rather than freed.

use crate::arch::rdtsc;
use crate::pci::{self, BarAllocator, PciFunction, PortCam};
use crate::virtio::KernelHal;
use alloc::boxed::Box;
use core::fmt;
use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, Transport};

const VENDOR_VIRTIO: u16 = 0x1af4;
const DEVICE_RNG_MODERN: u16 = 0x1044;
const DEVICE_RNG_TRANSITIONAL: u16 = 0x1005;
/// The device's only queue (virtio 1.0 §5.4.2).
const REQUEST_QUEUE: u16 = 0;
/// Descriptors in the request queue: one request is in flight at a time, so the smallest ring
/// that every device offers is enough.
const QUEUE_SIZE: usize = 4;
/// Bytes asked for per request.
const BUFFER_LEN: usize = 64;
/// How long one request may take before the device is given up on.
const REQUEST_TIMEOUT_US: u64 = 200_000;
/// TSC ticks for that time limit when the TSC is not calibrated yet (a 4 GHz TSC: the limit
/// only gets longer on a slower one).
const UNCALIBRATED_TIMEOUT_TICKS: u64 = 4_000_000 * (REQUEST_TIMEOUT_US / 1_000);

/// Why the entropy device could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioRngError {
    /// No virtio-rng function on PCI bus 0.
    NotFound,
    /// The PCI transport could not be set up (no modern capabilities, as on a legacy-only
    /// device, or a BAR that could not be assigned).
    Transport,
    /// The device refused the queue or the request.
    Queue(virtio_drivers::Error),
    /// No answer within the time limit; the device was reset and is no longer used.
    Timeout,
    /// The device answered with no bytes.
    Empty,
    /// A previous request timed out: the device is not used again.
    Broken,
}

impl fmt::Display for VirtioRngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtioRngError::NotFound => f.write_str("no virtio-rng device"),
            VirtioRngError::Transport => f.write_str(
                "virtio-rng has no usable virtio 1.0 PCI interface (legacy-only devices are not supported)",
            ),
            VirtioRngError::Queue(e) => write!(f, "virtio-rng queue: {e}"),
            VirtioRngError::Timeout => {
                write!(f, "virtio-rng gave no answer within {} ms", REQUEST_TIMEOUT_US / 1_000)
            }
            VirtioRngError::Empty => f.write_str("virtio-rng answered with no bytes"),
            VirtioRngError::Broken => f.write_str("virtio-rng timed out before and is not used"),
        }
    }
}

/// A virtio-rng device, polled.
pub struct VirtioRng {
    /// `None` only while dropping (see `Drop`).
    queue: Option<VirtQueue<KernelHal, QUEUE_SIZE>>,
    /// The buffer the device writes into; `None` only while dropping.
    buffer: Option<Box<[u8; BUFFER_LEN]>>,
    /// The token of a request the device has not returned (after a timeout).
    in_flight: Option<u16>,
    /// A request timed out and the device was reset: it is not used again.
    broken: bool,
    transport: PciTransport,
    pub pci: (u8, u8, u8),
}

impl VirtioRng {
    /// The first virtio-rng function on bus 0, set up. Assigns its BARs if the firmware did not
    /// (a `BarAllocator` of its own: the NICs' allocator, made before or after, starts above
    /// every BAR already placed). Needs the heap (the rings are DMA memory from it).
    pub fn probe() -> Result<VirtioRng, VirtioRngError> {
        let mut root = pci::root();
        let functions = pci::enumerate(&mut root);
        let f = functions
            .iter()
            .find(|f| {
                f.vendor_id == VENDOR_VIRTIO
                    && (f.device_id == DEVICE_RNG_MODERN || f.device_id == DEVICE_RNG_TRANSITIONAL)
            })
            .ok_or(VirtioRngError::NotFound)?;
        let mut allocator = BarAllocator::new(&functions);
        VirtioRng::new(&mut root, &mut allocator, f)
    }

    /// Brings up the virtio-rng function `f` (see `pci::BarAllocator` for the order of steps).
    pub fn new(
        root: &mut PciRoot<PortCam>,
        allocator: &mut BarAllocator,
        f: &PciFunction,
    ) -> Result<VirtioRng, VirtioRngError> {
        pci::disable_decode(root, f);
        allocator.assign(root, f);
        let transport = PciTransport::new::<KernelHal, PortCam>(root, f.address);
        pci::enable_decode(root, f);
        let mut transport = transport.map_err(|_| VirtioRngError::Transport)?;
        transport.begin_init(Feature::VERSION_1);
        let mut queue =
            VirtQueue::new(&mut transport, REQUEST_QUEUE, false, false).map_err(VirtioRngError::Queue)?;
        // Polled: no used-buffer notifications (no interrupt is routed for this device anyway).
        queue.set_dev_notify(false);
        transport.finish_init();
        Ok(VirtioRng {
            queue: Some(queue),
            buffer: Some(Box::new([0; BUFFER_LEN])),
            in_flight: None,
            broken: false,
            transport,
            pci: (f.address.bus, f.address.device, f.address.function),
        })
    }

    /// Fills `dst` with bytes from the device, one request of up to `BUFFER_LEN` bytes at a
    /// time, each within `REQUEST_TIMEOUT_US`. On a timeout the device is reset and refused
    /// from then on.
    pub fn fill(&mut self, dst: &mut [u8]) -> Result<(), VirtioRngError> {
        let mut filled = 0;
        while filled < dst.len() {
            let got = self.request()?;
            let Some(buffer) = self.buffer.as_deref() else {
                return Err(VirtioRngError::Broken);
            };
            let take = got.min(dst.len() - filled).min(BUFFER_LEN);
            let (Some(to), Some(from)) = (dst.get_mut(filled..filled + take), buffer.get(..take)) else {
                return Err(VirtioRngError::Empty);
            };
            to.copy_from_slice(from);
            filled += take;
        }
        Ok(())
    }

    /// One request: returns how many bytes of the buffer the device wrote (at least 1).
    fn request(&mut self) -> Result<usize, VirtioRngError> {
        if self.broken {
            return Err(VirtioRngError::Broken);
        }
        let (Some(queue), Some(buffer)) = (self.queue.as_mut(), self.buffer.as_deref_mut()) else {
            return Err(VirtioRngError::Broken);
        };
        // SAFETY: the buffer is owned by self and not touched until `pop_used` returns it below;
        // if it is never returned (timeout without a confirmed reset), `Drop` leaks it.
        let token = unsafe { queue.add(&[], &mut [&mut buffer[..]]) }.map_err(VirtioRngError::Queue)?;
        if queue.should_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
        let start = rdtsc();
        let limit = timeout_ticks();
        while !queue.can_pop() {
            if rdtsc().wrapping_sub(start) > limit {
                self.in_flight = Some(token);
                self.broken = true;
                self.reset();
                return Err(VirtioRngError::Timeout);
            }
            core::hint::spin_loop();
        }
        // SAFETY: the same buffer that was added with this token.
        let len =
            unsafe { queue.pop_used(token, &[], &mut [&mut buffer[..]]) }.map_err(VirtioRngError::Queue)?;
        match usize::try_from(len) {
            Ok(0) | Err(_) => Err(VirtioRngError::Empty),
            Ok(len) => Ok(len.min(BUFFER_LEN)),
        }
    }

    /// Resets the device (status 0), after which it no longer reads the rings or writes the
    /// buffer, once it reads back 0 (virtio 1.0 §2.1.2, §4.1.4.3.2).
    fn reset(&mut self) {
        self.transport.set_status(DeviceStatus::empty());
        if self.transport.get_status().is_empty() {
            self.in_flight = None;
        }
    }
}

impl Drop for VirtioRng {
    fn drop(&mut self) {
        self.reset();
        if self.in_flight.is_some() {
            // The device may still write into the buffer or read the rings: never free them.
            core::mem::forget(self.buffer.take());
            core::mem::forget(self.queue.take());
        }
        // Otherwise the fields drop normally: the rings, the buffer, then the transport (which
        // resets the device once more).
    }
}

fn timeout_ticks() -> u64 {
    match crate::time::micros_to_tsc(REQUEST_TIMEOUT_US) {
        0 => UNCALIBRATED_TIMEOUT_TICKS,
        ticks => ticks,
    }
}
