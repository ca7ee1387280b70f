//! Chunks: 64 KiB blocks of the shared heap, each owned by one (domain, generation, size class),
//! carved into slots of that class.
//!
//! A chunk hands out slots from its own free list, then by bumping into never-used space. Its
//! header lives in the [`ChunkTable`] at the end of the region, not at the start of the chunk:
//! headers at 64 KiB-aligned addresses would all fall into the same cache sets and miss on
//! almost every free (measured: small allocations 3× slower). The table costs
//! `region / 64 KiB × 64` bytes (0.1 %), is not part of the heap, and so is nobody's charge.
//!
//! A chunk belongs to the generation of its domain that took it, and serves only that
//! generation: when the domain begins a new generation, its chunks that still hold blocks are
//! *retired* (taken off the class lists; see [`Engine::begin_generation`](crate::engine)), so
//! every slot of a chunk was allocated by the same life and a free credits that life. The
//! price: a retired chunk's free slots are not reused; it goes back to the heap when its last
//! block is freed. Survivors of a life (its leaks, or state kept across the restart) pinned
//! their chunks before too; now no later life fills the rest of them, so a restart with
//! survivors in k chunks can cost up to k × 64 KiB more `used` until those blocks are freed.
//!
//! A [`ClassList`] is one (domain, size class): the doubly linked list of its current chunks
//! that have a free slot, and its one cached wholly free chunk (the *spare*).

use core::alloc::Layout;
use core::ptr;

use crate::books::Generation;
use crate::domain::Domain;

/// Size and alignment of the chunks that small blocks are carved from.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Layout of a chunk in the shared heap (checked at compile time).
pub(crate) const CHUNK_LAYOUT: Layout = match Layout::from_size_align(CHUNK_SIZE, CHUNK_SIZE) {
    Ok(layout) => layout,
    Err(_) => panic!("chunk layout"),
};

/// Header of a chunk, in the chunk table. One cache line.
#[repr(C, align(64))]
pub(crate) struct Chunk {
    pub prev: *mut Chunk,
    pub next: *mut Chunk,
    /// The chunk's memory.
    pub mem: *mut u8,
    /// Freed slots of this chunk.
    free: *mut FreeSlot,
    /// Offset of the first never-used slot.
    bump: usize,
    /// Slots handed out.
    pub live: usize,
    /// Slot size.
    pub slot: usize,
    /// The life of `domain` that took the chunk; every slot handed out was allocated by it.
    pub generation: Generation,
    pub domain: u8,
    pub class: u8,
    /// On its class's list (it has a free slot and serves the domain's current generation).
    pub listed: bool,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<Chunk>() == 64, "a chunk header is one cache line");

/// A freed slot, threaded through its chunk's free list.
struct FreeSlot {
    next: *mut FreeSlot,
}

/// One (domain, size class): its current generation's chunks with a free slot, and its spare.
#[derive(Clone, Copy)]
pub(crate) struct ClassList {
    /// Chunks with at least one free slot; allocation takes from the head.
    pub head: *mut Chunk,
    /// The class's one cached wholly free chunk (also on the list), or null.
    pub spare: *mut Chunk,
}

/// The chunk headers: the header of the chunk at `origin + i × CHUNK_SIZE` at index `i`.
pub(crate) struct ChunkTable {
    table: *mut Chunk,
    len: usize,
    /// The region's start rounded down to `CHUNK_SIZE`.
    origin: usize,
}

impl Chunk {
    /// A fresh header for a chunk at `mem` serving `slot`-byte slots of (domain, generation, class).
    pub fn new(mem: *mut u8, slot: usize, domain: Domain, generation: Generation, class: usize) -> Chunk {
        Chunk {
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            mem,
            free: ptr::null_mut(),
            bump: 0,
            live: 0,
            slot,
            generation,
            domain: domain as u8,
            class: class as u8,
            listed: false,
        }
    }

    /// Hands out a slot. The caller unlists the chunk when [`is_full`](Self::is_full) afterwards.
    ///
    /// # Safety
    ///
    /// The chunk is one of ours and not full.
    pub unsafe fn take_slot(&mut self) -> *mut u8 {
        let block = if self.free.is_null() {
            let block = self.mem.wrapping_add(self.bump);
            self.bump += self.slot;
            block
        } else {
            let block = self.free;
            // SAFETY: a slot on the free list holds the link written by `put_slot`.
            self.free = unsafe { (*block).next };
            block.cast::<u8>()
        };
        self.live += 1;
        block
    }

    /// Takes back a slot.
    ///
    /// # Safety
    ///
    /// `block` is a live slot of this chunk.
    pub unsafe fn put_slot(&mut self, block: *mut u8) {
        let slot = block.cast::<FreeSlot>();
        // SAFETY: the slot is ours again, at least 16 bytes and 16-aligned.
        unsafe { slot.write(FreeSlot { next: self.free }) };
        self.free = slot;
        self.live = self.live.wrapping_sub(1);
    }

    /// No slot left to hand out.
    pub fn is_full(&self) -> bool {
        self.free.is_null() && self.bump + self.slot > CHUNK_SIZE
    }
}

impl ClassList {
    pub const EMPTY: ClassList = ClassList { head: ptr::null_mut(), spare: ptr::null_mut() };

    /// Puts `chunk` at the head of the list.
    ///
    /// # Safety
    ///
    /// `chunk` is a header of ours, of this (domain, class), and on no list.
    pub unsafe fn link(&mut self, chunk: *mut Chunk) {
        let head = self.head;
        // SAFETY: `chunk` and the head (if any) are chunk headers we own.
        unsafe {
            (*chunk).prev = ptr::null_mut();
            (*chunk).next = head;
            (*chunk).listed = true;
            if !head.is_null() {
                (*head).prev = chunk;
            }
        }
        self.head = chunk;
    }

    /// Takes `chunk` off the list.
    ///
    /// # Safety
    ///
    /// `chunk` is a header of ours, on this list.
    pub unsafe fn unlink(&mut self, chunk: *mut Chunk) {
        // SAFETY: `chunk` and its neighbours are chunk headers on this list.
        unsafe {
            let (prev, next) = ((*chunk).prev, (*chunk).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*chunk).prev = ptr::null_mut();
            (*chunk).next = ptr::null_mut();
            (*chunk).listed = false;
        }
    }
}

impl ChunkTable {
    pub const EMPTY: ChunkTable = ChunkTable { table: ptr::null_mut(), len: 0, origin: 0 };

    /// Carves the table out of the end of `[start, end)`; returns where the table begins (the end
    /// of what is left for the heap), or `None` if less than 64 bytes would be left.
    ///
    /// The table is aligned to a cache line, so each header sits in one line.
    pub fn carve(start: *mut u8, end: usize) -> Option<(ChunkTable, usize)> {
        let start_addr = start as usize;
        let origin = start_addr & !(CHUNK_SIZE - 1);
        let len = end.checked_sub(origin)?.div_ceil(CHUNK_SIZE);
        let bytes = len.checked_mul(core::mem::size_of::<Chunk>())?;
        let table_start = end.saturating_sub(bytes) & !63;
        // The heap's own minimum is 2–3 words; anything under 64 bytes is useless anyway.
        if table_start < start_addr || table_start - start_addr < 64 {
            return None;
        }
        let table = start.wrapping_add(table_start - start_addr).cast();
        Some((ChunkTable { table, len, origin }, table_start))
    }

    /// The header of the chunk that holds `ptr`, or null outside the region.
    pub fn chunk_of(&self, ptr: *mut u8) -> *mut Chunk {
        let index = (ptr as usize).wrapping_sub(self.origin) / CHUNK_SIZE;
        if index < self.len {
            self.table.wrapping_add(index)
        } else {
            ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_hands_out_every_slot_once_then_reuses_freed_ones_first() {
        let layout = CHUNK_LAYOUT;
        // SAFETY: non-zero size.
        let mem = unsafe { std::alloc::alloc(layout) };
        let mut chunk = Chunk::new(mem, 2048, Domain::Bgp, Generation(3), 23);
        let mut slots = std::vec::Vec::new();
        while !chunk.is_full() {
            // SAFETY: ours and not full.
            slots.push(unsafe { chunk.take_slot() } as usize);
        }
        assert_eq!(slots.len(), CHUNK_SIZE / 2048);
        assert!(slots.iter().enumerate().all(|(i, &s)| s == mem as usize + i * 2048));
        assert_eq!(chunk.live, slots.len());
        // SAFETY: a live slot of this chunk.
        unsafe { chunk.put_slot(slots[5] as *mut u8) };
        assert!(!chunk.is_full());
        // SAFETY: ours and not full.
        assert_eq!(unsafe { chunk.take_slot() } as usize, slots[5]);
        assert_eq!(chunk.generation, Generation(3));
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(mem, layout) };
    }

    #[test]
    fn the_table_covers_the_region_and_nothing_outside() {
        let base = 16 * CHUNK_SIZE + 24;
        let end = base + 8 * CHUNK_SIZE;
        let (table, heap_end) = ChunkTable::carve(base as *mut u8, end).unwrap();
        assert_eq!(table.len, 9, "the region starts 24 bytes into a chunk, so it spans 9");
        assert!(heap_end < end && heap_end % 64 == 0);
        assert_eq!(table.chunk_of((base - 25) as *mut u8), ptr::null_mut(), "below the origin");
        assert_eq!(table.chunk_of(end as *mut u8), table.table.wrapping_add(8));
        assert_eq!(table.chunk_of((16 * CHUNK_SIZE + 9 * CHUNK_SIZE) as *mut u8), ptr::null_mut());
        assert!(ChunkTable::carve(base as *mut u8, base + 100).is_none(), "too small");
    }
}
