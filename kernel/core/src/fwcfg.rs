//! QEMU's fw_cfg: reads a named file (`-fw_cfg name=opt/bulkhead/config.toml,file=...`).
//! The DMA interface is used for everything: byte-wise port reads cost one VM exit each.

use crate::arch::{inb, outl, outw};
use alloc::vec;
use alloc::vec::Vec;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const DMA_HIGH: u16 = 0x514;
const DMA_LOW: u16 = 0x518;
const SIGNATURE: u16 = 0x0000;
const FEATURES: u16 = 0x0001;
const FILE_DIR: u16 = 0x0019;
const FEATURE_DMA: u32 = 1 << 1;
const DMA_ERROR: u32 = 1 << 0;
const DMA_READ: u32 = 1 << 1;
const DMA_SELECT: u32 = 1 << 3;
/// The most directory entries read (QEMU has a few dozen).
const MAX_FILES: usize = 4096;
/// The largest file accepted: configuration is small.
pub const MAX_FILE: usize = 256 * 1024;

#[derive(Debug)]
pub enum FwCfgError {
    /// No fw_cfg device (not QEMU, or disabled).
    Absent,
    /// The device does not offer DMA.
    NoDma,
    /// The transfer reported an error.
    Dma,
    /// The file is larger than `MAX_FILE`.
    TooLarge(usize),
}

#[repr(C, align(16))]
struct DmaAccess {
    control: u32,
    length: u32,
    address: u64,
}

fn read_port_u32(selector: u16) -> u32 {
    outw(SELECTOR, selector);
    let mut bytes = [0u8; 4];
    for b in bytes.iter_mut() {
        *b = inb(DATA);
    }
    u32::from_le_bytes(bytes)
}

fn dma_read(selector: u16, buffer: &mut [u8]) -> Result<(), FwCfgError> {
    let access = DmaAccess {
        control: ((u32::from(selector) << 16) | DMA_SELECT | DMA_READ).to_be(),
        length: (buffer.len() as u32).to_be(),
        address: (buffer.as_mut_ptr() as u64).to_be(),
    };
    let address = &access as *const DmaAccess as u64;
    outl(DMA_HIGH, ((address >> 32) as u32).to_be());
    outl(DMA_LOW, (address as u32).to_be());
    // SAFETY: `access` lives on this stack frame; the device clears `control` when done.
    loop {
        let control = u32::from_be(unsafe { core::ptr::read_volatile(&access.control) });
        if control & DMA_ERROR != 0 {
            return Err(FwCfgError::Dma);
        }
        if control == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
}

/// The contents of the fw_cfg file `name`, or `None` if there is no such file.
pub fn read_file(name: &str) -> Result<Option<Vec<u8>>, FwCfgError> {
    if read_port_u32(SIGNATURE).to_le_bytes() != *b"QEMU" {
        return Err(FwCfgError::Absent);
    }
    if read_port_u32(FEATURES) & FEATURE_DMA == 0 {
        return Err(FwCfgError::NoDma);
    }
    let mut count = [0u8; 4];
    dma_read(FILE_DIR, &mut count)?;
    let count = u32::from_be_bytes(count) as usize;
    if count > MAX_FILES {
        return Err(FwCfgError::TooLarge(count * 64));
    }
    // The directory: count, then 64-byte entries (size, select, reserved, name[56]).
    let mut directory = vec![0u8; 4 + count * 64];
    dma_read(FILE_DIR, &mut directory)?;
    for entry in directory.get(4..).unwrap_or(&[]).chunks_exact(64) {
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let select = u16::from_be_bytes([entry[4], entry[5]]);
        let raw_name = &entry[8..];
        let end = raw_name.iter().position(|&b| b == 0).unwrap_or(raw_name.len());
        if &raw_name[..end] != name.as_bytes() {
            continue;
        }
        if size > MAX_FILE {
            return Err(FwCfgError::TooLarge(size));
        }
        let mut contents = vec![0u8; size];
        dma_read(select, &mut contents)?;
        return Ok(Some(contents));
    }
    Ok(None)
}
