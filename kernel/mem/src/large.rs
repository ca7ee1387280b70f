//! Large blocks: everything above [`SMALL_MAX`](crate::SMALL_MAX) or aligned above
//! [`SMALL_ALIGN_MAX`](crate::SMALL_ALIGN_MAX), served by the shared heap with a trailer after
//! the payload that names the block's domain and the generation (life) of that domain that
//! allocated it.
//!
//! ```text
//! [payload, rounded up to 8][trailer: u64 = generation << 8 | domain]
//! ```
//!
//! `dealloc` and `realloc` receive the layout, so the trailer's place is known without a search.

use core::alloc::Layout;

use linked_list_allocator::hole::HoleList;

use crate::books::Generation;
use crate::domain::Domain;

/// Bytes a large block carries after its payload (its domain and generation).
pub const LARGE_TRAILER: usize = 8;

/// What a large block's trailer says: who pays for it, and which life allocated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub domain: Domain,
    pub generation: Generation,
}

impl Trailer {
    fn encode(self) -> u64 {
        (u64::from(self.generation.0) << 8) | u64::from(self.domain as u8)
    }

    fn decode(word: u64) -> Option<Trailer> {
        let domain = Domain::from_index((word & 0xff) as usize)?;
        let generation = Generation(u32::try_from(word >> 8).ok()?);
        Some(Trailer { domain, generation })
    }
}

/// The heap layout of a large block for `layout`: the payload rounded up to 8, then the trailer,
/// aligned at least to 8 (so the trailer is an aligned word). `None` when that overflows.
pub(crate) fn heap_layout(layout: Layout) -> Option<Layout> {
    let body = layout.size().checked_add(7)? & !7;
    Layout::from_size_align(body.checked_add(LARGE_TRAILER)?, layout.align().max(8)).ok()
}

/// What the shared heap gives up for a block of `heap_layout`: its own rounding (to 8) and
/// minimum (two words), asked of the heap's own function, so it is exactly the change of
/// `Heap::used` that the allocation makes.
pub(crate) fn heap_footprint(heap_layout: Layout) -> usize {
    HoleList::align_layout(heap_layout).map_or(usize::MAX, |l| l.size())
}

/// Writes the trailer of a large block whose payload has `size` bytes.
///
/// # Safety
///
/// `ptr` is a block allocated with `heap_layout(layout)` for a layout of `size` bytes.
pub(crate) unsafe fn write_trailer(ptr: *mut u8, size: usize, trailer: Trailer) {
    // SAFETY: the trailer word lies inside the block (the heap layout is the payload rounded up to
    // 8 plus the trailer), and is 8-aligned (the block is aligned to at least 8).
    unsafe { trailer_of(ptr, size).write(trailer.encode()) }
}

/// Reads the trailer of a live large block; `None` if it does not name a domain (a corrupted
/// trailer: the block is then left alone rather than credited to a wrong domain).
///
/// # Safety
///
/// `ptr` is a live large block whose payload has `size` bytes, its trailer written by
/// [`write_trailer`].
pub(crate) unsafe fn read_trailer(ptr: *mut u8, size: usize) -> Option<Trailer> {
    // SAFETY: as in `write_trailer`; the word was written there at allocation.
    Trailer::decode(unsafe { trailer_of(ptr, size).read() })
}

/// The trailer word of a large block whose payload has `size` bytes.
fn trailer_of(ptr: *mut u8, size: usize) -> *mut u64 {
    ptr.wrapping_add((size + 7) & !7).cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip_every_domain_and_the_extreme_generations() {
        for domain in Domain::ALL {
            for generation in [0, 1, 255, 256, u32::MAX] {
                let t = Trailer { domain, generation: Generation(generation) };
                assert_eq!(Trailer::decode(t.encode()), Some(t));
            }
        }
        assert_eq!(Trailer::decode(Domain::COUNT as u64), None, "no such domain");
    }

    #[test]
    fn the_trailer_sits_in_an_aligned_word_inside_the_block() {
        for size in [0, 1, 7, 8, 9, 2049, 10_001] {
            for align in [1, 8, 128, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let heap = heap_layout(layout).unwrap();
                let offset = trailer_of(core::ptr::null_mut(), size) as usize;
                assert_eq!(offset % 8, 0);
                assert!(offset >= size && offset + LARGE_TRAILER <= heap.size(), "{layout:?}");
                assert!(heap.align() >= 8);
            }
        }
        let overflow = Layout::from_size_align(isize::MAX as usize - 7, 8).unwrap();
        assert_eq!(heap_layout(overflow), None);
    }
}
