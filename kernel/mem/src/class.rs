//! Size classes, and the route a layout takes: a slot of a size class in a chunk, or a large
//! block straight from the heap. The route is a pure function of the layout, so `dealloc` and
//! `realloc` (which receive the layout of the allocation) find the same path, and
//! [`block_footprint`] can tell a protocol core what a block will cost before it allocates.

use core::alloc::Layout;

use crate::chunk::CHUNK_SIZE;
use crate::large;

/// Largest small block (after rounding the size up to the alignment).
pub const SMALL_MAX: usize = 2048;
/// Largest alignment served from chunks; larger ones take the large path.
pub const SMALL_ALIGN_MAX: usize = 64;
/// Number of small size classes.
pub const CLASS_COUNT: usize = 24;
/// Slot sizes of the small classes. Each is a multiple of 16; the classes that serve an alignment
/// of 32 or 64 are those that are multiples of it, so slots placed at `chunk + k × size` are
/// aligned.
pub const CLASS_SIZES: [usize; CLASS_COUNT] = [
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280,
    1536, 1792, 2048,
];

/// Small sizes are looked up in 16-byte granules.
const GRANULES: usize = SMALL_MAX / 16;
/// `CLASS_BY_GRANULE[tier][granules]`: smallest class that holds `granules × 16` bytes at the
/// alignment of the tier (0: <= 16, 1: 32, 2: 64).
const CLASS_BY_GRANULE: [[u8; GRANULES + 1]; 3] = build_class_table();

const _: () = assert!(CLASS_SIZES[CLASS_COUNT - 1] == SMALL_MAX);
const _: () = assert!(CHUNK_SIZE.is_multiple_of(SMALL_MAX));

/// Where a layout is served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A slot of this size class.
    Small(usize),
    /// A block of the shared heap with this layout (payload rounded to 8, then the trailer).
    Large(Layout),
}

/// What the allocator charges for a block of this layout: the slot of its size class for a small
/// block, or for a large block exactly what the shared heap gives up for it (the payload rounded
/// to 8, the 8-byte trailer, the heap's own rounding and minimum). This is the figure a block
/// adds to its domain's `live` (and, for a large block, to `used`; a small block's chunk is
/// charged to `used` whole when the domain takes it).
///
/// Protocol cores use it to charge queued data its true footprint (a 1-byte message in a 48-byte
/// struct costs a 48-byte slot, not 1 byte). A layout that cannot be allocated (alignment not a
/// power of two, size overflowing with its rounding) returns `usize::MAX`, so an admission for it
/// is refused.
pub fn block_footprint(size: usize, align: usize) -> usize {
    let Ok(layout) = Layout::from_size_align(size, align) else {
        return usize::MAX;
    };
    match route(layout) {
        Some(Route::Small(class)) => CLASS_SIZES.get(class).copied().unwrap_or(usize::MAX),
        Some(Route::Large(heap_layout)) => large::heap_footprint(heap_layout),
        None => usize::MAX,
    }
}

/// Where `layout` is served from (`None`: it cannot be served). A zero size is served as one byte.
pub(crate) fn route(layout: Layout) -> Option<Route> {
    let align = layout.align();
    let size = layout.size().max(1);
    if size <= SMALL_MAX && align <= SMALL_ALIGN_MAX {
        let tier = match align {
            0..=16 => 0,
            32 => 1,
            _ => 2,
        };
        let class = CLASS_BY_GRANULE.get(tier)?.get((size + 15) >> 4)?;
        return Some(Route::Small(usize::from(*class)));
    }
    large::heap_layout(layout).map(Route::Large)
}

const fn build_class_table() -> [[u8; GRANULES + 1]; 3] {
    let mut table = [[0u8; GRANULES + 1]; 3];
    let mut tier = 0;
    while tier < 3 {
        let align = 16 << tier;
        let mut granules = 0;
        while granules <= GRANULES {
            let size = granules * 16;
            let mut class = 0;
            while CLASS_SIZES[class] < size || !CLASS_SIZES[class].is_multiple_of(align) {
                class += 1;
            }
            table[tier][granules] = class as u8;
            granules += 1;
        }
        tier += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_small_layout_gets_the_smallest_aligned_class_that_holds_it() {
        for align in [1, 2, 4, 8, 16, 32, 64] {
            for size in 0..=SMALL_MAX {
                let layout = Layout::from_size_align(size, align).unwrap();
                let Some(Route::Small(class)) = route(layout) else {
                    panic!("{layout:?} is small");
                };
                let slot = CLASS_SIZES[class];
                let want = CLASS_SIZES.iter().find(|&&c| c >= size.max(1) && c % align.max(16) == 0);
                assert_eq!(Some(&slot), want, "{layout:?}");
                assert_eq!(block_footprint(size, align), slot);
            }
        }
    }

    #[test]
    fn large_sizes_and_alignments_take_the_large_path() {
        for (size, align) in [(SMALL_MAX + 1, 8), (100, 128), (0, 4096), (1 << 20, 8)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            assert!(matches!(route(layout), Some(Route::Large(_))), "{layout:?}");
        }
        // Payload rounded to 8, plus the trailer; the heap's minimum of 16 for an empty payload.
        assert_eq!(block_footprint(10_001, 8), 10_008 + 8);
        assert_eq!(block_footprint(3000, 8), 3008);
        assert_eq!(block_footprint(0, 4096), 16);
        assert_eq!(block_footprint(100, 128), 112);
    }

    #[test]
    fn impossible_layouts_cost_everything() {
        assert_eq!(block_footprint(8, 3), usize::MAX, "alignment not a power of two");
        assert_eq!(block_footprint(isize::MAX as usize - 7, 8), usize::MAX, "overflows with its trailer");
    }
}
