//! PCI: configuration space through ports 0xcf8/0xcfc, enumeration of bus 0, BAR assignment
//! where the firmware left BARs at 0 (qboot does), and MSI-X set-up.

use crate::arch::{inl, outl};
use alloc::vec::Vec;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, HeaderType, MemoryBarType, PciRoot,
};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const CAP_MSIX: u8 = 0x11;
/// Where BARs the firmware left unassigned go: the 32-bit PCI hole below the I/O APIC.
const MMIO_WINDOW_START: u64 = 0xe000_0000;
const MMIO_WINDOW_END: u64 = 0xfec0_0000;

/// Configuration access through the legacy I/O ports (mechanism #1).
pub struct PortCam;

impl PortCam {
    fn address(df: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(df.bus) << 16)
            | (u32::from(df.device) << 11)
            | (u32::from(df.function) << 8)
            | u32::from(offset & 0xfc)
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        outl(CONFIG_ADDRESS, Self::address(df, offset));
        inl(CONFIG_DATA)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        outl(CONFIG_ADDRESS, Self::address(df, offset));
        outl(CONFIG_DATA, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// A function found on the bus.
#[derive(Clone, Copy, Debug)]
pub struct PciFunction {
    pub address: DeviceFunction,
    pub vendor_id: u16,
    pub device_id: u16,
}

pub fn root() -> PciRoot<PortCam> {
    PciRoot::new(PortCam)
}

/// Every function on bus 0, in PCI order.
pub fn enumerate(root: &mut PciRoot<PortCam>) -> Vec<PciFunction> {
    let mut found = Vec::new();
    for (address, info) in root.enumerate_bus(0) {
        if info.header_type == HeaderType::Standard {
            found.push(PciFunction { address, vendor_id: info.vendor_id, device_id: info.device_id });
        }
    }
    found
}

/// Hands out addresses for unassigned memory BARs.
///
/// BARs are sized (which needs writes to the BAR) only with the function's decoding off: every
/// toggle of memory decoding makes the hypervisor rebuild its memory map, which costs about a
/// millisecond under QEMU. So a function is set up as: `disable_decode`, `assign`, everything
/// that reads BAR addresses (the virtio transport, the MSI-X table, the common configuration),
/// then `enable_decode` once.
pub struct BarAllocator {
    next: u64,
}

/// Granularity above the firmware's highest BAR where assignment starts (the sizes of BARs the
/// firmware placed are not probed, see above).
const FIRMWARE_BAR_GAP: u64 = 16 << 20;

impl BarAllocator {
    /// Starts above every memory BAR the firmware already placed in the window (read, not sized).
    pub fn new(functions: &[PciFunction]) -> BarAllocator {
        let cam = PortCam;
        let mut highest = 0;
        for f in functions {
            for index in 0..6u8 {
                let raw = u64::from(cam.read_word(f.address, 0x10 + 4 * index));
                let address = raw & !0xf;
                if raw & 1 == 0 && (MMIO_WINDOW_START..MMIO_WINDOW_END).contains(&address) {
                    highest = highest.max(address);
                }
            }
        }
        let next = if highest == 0 {
            MMIO_WINDOW_START
        } else {
            (highest + FIRMWARE_BAR_GAP) & !(FIRMWARE_BAR_GAP - 1)
        };
        BarAllocator { next }
    }

    /// Assigns every memory BAR of `f` that is still 0 and maps all its memory BARs. Call with
    /// decoding off (`disable_decode`).
    pub fn assign(&mut self, root: &mut PciRoot<PortCam>, f: &PciFunction) {
        let Ok(bars) = root.bars(f.address) else {
            return;
        };
        for (index, bar) in bars.iter().enumerate() {
            let Some(BarInfo::Memory { address_type, address, size, .. }) = bar else {
                continue;
            };
            let (mut address, size) = (*address, (*size).max(4096));
            if address == 0 {
                let base = (self.next + size - 1) & !(size - 1);
                if base + size > MMIO_WINDOW_END {
                    log::warn!("bulkhead: PCI window full, BAR{} of {} left unassigned", index, f.address);
                    continue;
                }
                self.next = base + size;
                address = base;
                match address_type {
                    MemoryBarType::Width64 => root.set_bar_64(f.address, index as u8, base),
                    _ => root.set_bar_32(f.address, index as u8, base as u32),
                }
            }
            crate::paging::map_mmio(address, size);
        }
    }
}

/// Turns memory and I/O decoding of `f` off (for BAR sizing without memory-map churn).
pub fn disable_decode(root: &mut PciRoot<PortCam>, f: &PciFunction) {
    let (_, command) = root.get_status_command(f.address);
    let off = command & !(Command::MEMORY_SPACE | Command::IO_SPACE);
    if off != command {
        root.set_command(f.address, off);
    }
}

/// Turns memory decoding and bus mastering of `f` on.
pub fn enable_decode(root: &mut PciRoot<PortCam>, f: &PciFunction) {
    let (_, command) = root.get_status_command(f.address);
    root.set_command(f.address, command | Command::MEMORY_SPACE | Command::BUS_MASTER);
}

/// Where `f`'s MSI-X capability and table are.
#[derive(Clone, Copy, Debug)]
pub struct MsixTable {
    capability: u8,
    entry0: u64,
}

/// Finds `f`'s MSI-X capability and the address of its table (BARs assigned, decode off).
pub fn msix_table(root: &mut PciRoot<PortCam>, f: &PciFunction) -> Option<MsixTable> {
    let cap = root.capabilities(f.address).find(|c| c.id == CAP_MSIX)?;
    let table = PortCam.read_word(f.address, cap.offset + 4);
    let Ok(Some(bar)) = root.bar_info(f.address, (table & 0x7) as u8) else {
        return None;
    };
    let (bar_address, _) = bar.memory_address_size()?;
    Some(MsixTable { capability: cap.offset, entry0: bar_address + u64::from(table & !0x7) })
}

/// Enables MSI-X on `f` with table entry 0 delivering `vector` to this CPU (decode on).
pub fn enable_msix(f: &PciFunction, table: MsixTable, vector: u8) {
    let entry = table.entry0 as *mut u32;
    let (address, data) = crate::apic::msi_message(vector);
    // SAFETY: the MSI-X table lies in a BAR that `BarAllocator::assign` mapped and decoding is
    // on; entry 0 exists (a table has at least one entry by definition of the capability).
    unsafe {
        core::ptr::write_volatile(entry, address as u32);
        core::ptr::write_volatile(entry.add(1), (address >> 32) as u32);
        core::ptr::write_volatile(entry.add(2), data);
        core::ptr::write_volatile(entry.add(3), 0); // unmasked
    }
    let mut cam = PortCam;
    let control = cam.read_word(f.address, table.capability);
    // Message control is the upper half of the first dword: set Enable (bit 15), clear Function Mask (bit 14).
    cam.write_word(f.address, table.capability, (control | (1 << 31)) & !(1 << 30));
}

/// The virtio "common configuration" structure of `f`, from its vendor capability (type 1).
pub fn virtio_common_cfg(root: &mut PciRoot<PortCam>, f: &PciFunction) -> Option<*mut u8> {
    let cam = PortCam;
    let cap =
        root.capabilities(f.address).find(|cap| cap.id == 0x09 && (cap.private_header >> 8) as u8 == 1)?;
    let bar = (cam.read_word(f.address, cap.offset + 4) & 0xff) as u8;
    let offset = cam.read_word(f.address, cap.offset + 8);
    let Ok(Some(info)) = root.bar_info(f.address, bar) else {
        return None;
    };
    let (base, _) = info.memory_address_size()?;
    Some((base + u64::from(offset)) as *mut u8)
}
