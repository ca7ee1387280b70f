//! Everything behind the allocator's lock: the shared heap, the chunk table, the class lists
//! and the books. Alloc and free are O(1) for small blocks (a table lookup from the pointer) and
//! one heap call for large ones; nothing here allocates through the global allocator (the crate
//! does not link `alloc`), so a reclaim or a new generation charges no domain but its own.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

use crate::books::{Books, Generation};
use crate::chunk::{Chunk, ChunkTable, ClassList, CHUNK_LAYOUT, CHUNK_SIZE};
use crate::class::{route, Route, CLASS_COUNT, CLASS_SIZES};
use crate::domain::{Domain, OverQuota, PlanError, Quota};
use crate::large::{self, Trailer};
use crate::stats::{DomainStats, HeapStats, LeakReport};

/// Everything behind the lock. `ACCOUNTED = false` drops the books (for the bench only).
pub(crate) struct Engine<const ACCOUNTED: bool> {
    pub(crate) heap: Heap,
    table: ChunkTable,
    classes: [[ClassList; CLASS_COUNT]; Domain::COUNT],
    books: [Books; Domain::COUNT],
}

// SAFETY: the raw pointers in an `Engine` point into the heap region it owns exclusively; moving
// the engine to another thread moves that ownership with it.
unsafe impl<const ACCOUNTED: bool> Send for Engine<ACCOUNTED> {}

impl<const ACCOUNTED: bool> Engine<ACCOUNTED> {
    pub(crate) const fn new() -> Self {
        Engine {
            heap: Heap::empty(),
            table: ChunkTable::EMPTY,
            classes: [[ClassList::EMPTY; CLASS_COUNT]; Domain::COUNT],
            books: [Books::UNLIMITED; Domain::COUNT],
        }
    }

    /// # Safety
    ///
    /// As [`DomainAllocator::init`](crate::DomainAllocator::init).
    pub(crate) unsafe fn init(&mut self, heap_start: *mut u8, heap_size: usize) {
        if self.heap.size() != 0 || heap_start.is_null() {
            return;
        }
        let Some(end) = (heap_start as usize).checked_add(heap_size) else {
            return;
        };
        let Some((table, heap_end)) = ChunkTable::carve(heap_start, end) else {
            return;
        };
        self.table = table;
        // SAFETY: the region is unused RAM owned by us forever (caller's contract), the table
        // lies after the part given to the heap, and the heap is empty (checked above), so this
        // is its only init.
        unsafe { self.heap.init(heap_start, heap_end - heap_start as usize) }
    }

    // --- books -------------------------------------------------------------------------------

    fn books(&self, domain: Domain) -> &Books {
        // `Domain::index` is below `Domain::COUNT` by construction: this cannot fail.
        &self.books[domain.index()]
    }

    fn books_mut(&mut self, domain: Domain) -> &mut Books {
        // `Domain::index` is below `Domain::COUNT` by construction: this cannot fail.
        &mut self.books[domain.index()]
    }

    /// See [`DomainAllocator::set_quotas`](crate::DomainAllocator::set_quotas).
    pub(crate) fn set_quotas(
        &mut self,
        quotas: [Quota; Domain::COUNT],
        overshoot_reserve: usize,
    ) -> Result<(), PlanError> {
        for (domain, quota) in Domain::ALL.into_iter().zip(quotas) {
            if quota.soft > quota.hard {
                return Err(PlanError::SoftAboveHard { domain, soft: quota.soft, hard: quota.hard });
            }
        }
        let hard_total = quotas.iter().fold(0usize, |sum, q| sum.saturating_add(q.hard));
        let heap = self.heap.size();
        if hard_total.saturating_add(overshoot_reserve) > heap {
            return Err(PlanError::DoesNotFit {
                hard_total,
                kernel_reserve: quotas[Domain::Kernel.index()].hard,
                overshoot_reserve,
                heap,
            });
        }
        for (books, quota) in self.books.iter_mut().zip(quotas) {
            books.quota = quota;
        }
        Ok(())
    }

    pub(crate) fn admit(&mut self, domain: Domain, bytes: usize) -> Result<(), OverQuota> {
        self.books_mut(domain).admit(domain, bytes)
    }

    pub(crate) fn over_soft(&self, domain: Domain) -> bool {
        let b = self.books(domain);
        b.used > b.quota.soft
    }

    pub(crate) fn over_hard(&self, domain: Domain) -> bool {
        let b = self.books(domain);
        b.used > b.quota.hard
    }

    pub(crate) fn stats(&self, domain: Domain) -> DomainStats {
        DomainStats::from_books(self.books(domain))
    }

    /// What the domain held when its current life began (bytes, blocks).
    pub(crate) fn baseline(&self, domain: Domain) -> (usize, usize) {
        let b = self.books(domain).baseline;
        (b.live, b.blocks)
    }

    /// Ends the domain's current life and begins the next. The chunks that still hold blocks of
    /// the ended life are retired: taken off the class lists, so the new life never allocates
    /// in them, and given back to the heap when their last block is freed. A wholly free chunk
    /// (only a class's spare can be one) is relabelled and serves the new life. O(chunks on the
    /// domain's class lists); full chunks are retired without being visited, since their
    /// generation no longer matches.
    pub(crate) fn begin_generation(&mut self, domain: Domain) -> Generation {
        let generation = self.books_mut(domain).begin_generation();
        for list in self.classes[domain.index()].iter_mut() {
            let mut chunk = list.head;
            while !chunk.is_null() {
                // SAFETY: `chunk` is a header on this list; it is read before it is unlinked.
                unsafe {
                    let next = (*chunk).next;
                    if (*chunk).live == 0 {
                        (*chunk).generation = generation;
                    } else {
                        list.unlink(chunk);
                    }
                    chunk = next;
                }
            }
        }
        generation
    }

    /// Gives the domain's spare chunks back to the heap, then reports what its current life
    /// allocated that is still live. O(size classes).
    pub(crate) fn reclaim(&mut self, domain: Domain) -> LeakReport {
        // SAFETY: the class lists are consistent between calls.
        let returned = unsafe { self.release_spares(domain) };
        let b = self.books(domain);
        LeakReport {
            domain,
            generation: b.generation,
            bytes: b.current.live,
            blocks: b.current.blocks,
            returned,
        }
    }

    // --- GlobalAlloc -------------------------------------------------------------------------

    /// # Safety
    ///
    /// `GlobalAlloc::alloc`'s contract (a zero-size layout is served as one byte).
    pub(crate) unsafe fn alloc(&mut self, domain: Domain, layout: Layout) -> *mut u8 {
        match route(layout) {
            // SAFETY: the class comes from `route`.
            Some(Route::Small(class)) => unsafe { self.alloc_small(domain, class) },
            // SAFETY: `heap_layout` comes from `route`.
            Some(Route::Large(heap_layout)) => unsafe { self.alloc_large(domain, layout, heap_layout) },
            None => ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// `GlobalAlloc::alloc_zeroed`'s contract.
    pub(crate) unsafe fn alloc_zeroed(&mut self, domain: Domain, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.alloc(domain, layout) };
        if !ptr.is_null() {
            // SAFETY: the block just allocated holds at least `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    /// Frees a block, crediting the domain and the life that allocated it.
    ///
    /// # Safety
    ///
    /// `ptr` was returned by this engine for `layout` and not freed since.
    pub(crate) unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        match route(layout) {
            // SAFETY: same layout, same route: `ptr` is a slot in one of our chunks.
            Some(Route::Small(_)) => unsafe { self.dealloc_small(ptr) },
            // SAFETY: same layout, same route: `ptr` is a large block allocated with `heap_layout`.
            Some(Route::Large(heap_layout)) => unsafe { self.dealloc_large(ptr, layout, heap_layout) },
            None => {}
        }
    }

    /// Reallocates in the block's original domain, whatever is current. A block that stays in
    /// its slot keeps its life; a block that moves is a new block of the domain's current life
    /// (the old one is credited to the life that allocated it).
    ///
    /// # Safety
    ///
    /// `GlobalAlloc::realloc`'s contract.
    pub(crate) unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let old_route = route(layout);
        if let (Some(Route::Small(old)), Some(Route::Small(new))) = (old_route, route(new_layout)) {
            if old == new {
                return ptr;
            }
        }
        // SAFETY: `ptr` was allocated with `layout` (caller's contract).
        let Some(domain) = (unsafe { self.owner(ptr, layout, old_route) }) else {
            return ptr::null_mut();
        };
        // SAFETY: `new_layout` is a valid layout.
        let new_ptr = unsafe { self.alloc(domain, new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks hold at least the bytes copied and are distinct live blocks.
            unsafe { ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size)) };
            // SAFETY: caller's contract; the contents have moved.
            unsafe { self.dealloc(ptr, layout) };
        }
        new_ptr
    }

    /// The domain a live block is charged to.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this engine allocated for `layout`, and `route` is its route.
    unsafe fn owner(&self, ptr: *mut u8, layout: Layout, route: Option<Route>) -> Option<Domain> {
        match route? {
            Route::Small(_) => {
                let chunk = self.table.chunk_of(ptr);
                if chunk.is_null() {
                    return None;
                }
                // SAFETY: a small block lies in a chunk whose header we wrote.
                Domain::from_index(usize::from(unsafe { (*chunk).domain }))
            }
            // SAFETY: a live large block for `layout`, its trailer written at allocation.
            Route::Large(_) => unsafe { large::read_trailer(ptr, layout.size()) }.map(|t| t.domain),
        }
    }

    // --- small blocks ------------------------------------------------------------------------

    /// # Safety
    ///
    /// `class < CLASS_COUNT`.
    unsafe fn alloc_small(&mut self, domain: Domain, class: usize) -> *mut u8 {
        let Some(&slot) = CLASS_SIZES.get(class) else {
            return ptr::null_mut();
        };
        let mut chunk = match self.classes[domain.index()].get(class) {
            Some(list) => list.head,
            None => return ptr::null_mut(),
        };
        if chunk.is_null() {
            // SAFETY: `class` is in range (checked above).
            chunk = unsafe { self.acquire_chunk(domain, class, slot) };
            if chunk.is_null() {
                return ptr::null_mut();
            }
        }
        let Some(list) = self.classes[domain.index()].get_mut(class) else {
            return ptr::null_mut();
        };
        // SAFETY: `chunk` heads the class's list: a chunk of ours, of the domain's current life,
        // with a free slot.
        let block = unsafe {
            let c = &mut *chunk;
            if c.live == 0 {
                // Only the spare can be wholly free: it is in use again.
                list.spare = ptr::null_mut();
            }
            let block = c.take_slot();
            if c.is_full() {
                list.unlink(chunk);
            }
            block
        };
        if ACCOUNTED {
            self.books_mut(domain).charge(slot);
        }
        block
    }

    /// # Safety
    ///
    /// `ptr` is a live slot in one of our chunks.
    unsafe fn dealloc_small(&mut self, ptr: *mut u8) {
        let chunk = self.table.chunk_of(ptr);
        if chunk.is_null() {
            return;
        }
        // SAFETY: the header of the chunk holding a live slot, written by `acquire_chunk`.
        let (domain, class, slot, generation, now_free, was_listed) = unsafe {
            let c = &mut *chunk;
            c.put_slot(ptr);
            (c.domain, usize::from(c.class), c.slot, c.generation, c.live == 0, c.listed)
        };
        let Some(domain) = Domain::from_index(usize::from(domain)) else {
            return;
        };
        let books = self.books_mut(domain);
        if ACCOUNTED {
            books.credit(generation, slot);
        }
        if generation != books.generation {
            // A retired chunk of an earlier life: it serves nobody; it goes back to the heap
            // with its last block.
            if now_free {
                // SAFETY: a wholly free chunk of ours, on no list (retired chunks are unlinked).
                unsafe { self.release_chunk(domain, chunk) };
            }
            return;
        }
        let Some(list) = self.classes[domain.index()].get_mut(class) else {
            return;
        };
        if !was_listed {
            // SAFETY: a chunk of (domain, class), of the current life, on no list.
            unsafe { list.link(chunk) };
        }
        if now_free {
            if list.spare.is_null() {
                list.spare = chunk;
            } else {
                // SAFETY: a wholly free chunk of ours, on its class's list.
                unsafe {
                    list.unlink(chunk);
                    self.release_chunk(domain, chunk);
                }
            }
        }
    }

    /// Takes a chunk from the heap for (domain, class) of the domain's current life and puts it at
    /// the head of the class list.
    ///
    /// # Safety
    ///
    /// `class < CLASS_COUNT` and `slot == CLASS_SIZES[class]`.
    unsafe fn acquire_chunk(&mut self, domain: Domain, class: usize, slot: usize) -> *mut Chunk {
        let Some((block, footprint)) = self.heap_take(CHUNK_LAYOUT) else {
            return ptr::null_mut();
        };
        let chunk = self.table.chunk_of(block.as_ptr());
        if chunk.is_null() {
            // Cannot happen: the heap lies inside the region the table covers.
            // SAFETY: just allocated with this layout.
            unsafe { self.heap_give(block, CHUNK_LAYOUT) };
            return ptr::null_mut();
        }
        let generation = self.books(domain).generation;
        let Some(list) = self.classes[domain.index()].get_mut(class) else {
            // SAFETY: just allocated with this layout.
            unsafe { self.heap_give(block, CHUNK_LAYOUT) };
            return ptr::null_mut();
        };
        // SAFETY: the table entry of a fresh, CHUNK_SIZE-aligned block of CHUNK_SIZE bytes.
        unsafe {
            chunk.write(Chunk::new(block.as_ptr(), slot, domain, generation, class));
            list.link(chunk);
        }
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.hold(footprint);
            books.chunks = books.chunks.wrapping_add(1);
        }
        chunk
    }

    /// Gives a wholly free, unlisted chunk back to the heap.
    ///
    /// # Safety
    ///
    /// `chunk` is ours, wholly free, charged to `domain` and on no list.
    unsafe fn release_chunk(&mut self, domain: Domain, chunk: *mut Chunk) -> usize {
        // SAFETY: a table entry written by `acquire_chunk`.
        let Some(block) = NonNull::new(unsafe { (*chunk).mem }) else {
            return 0;
        };
        // SAFETY: the chunk was allocated from our heap with `CHUNK_LAYOUT`.
        let footprint = unsafe { self.heap_give(block, CHUNK_LAYOUT) };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.give(footprint);
            books.chunks = books.chunks.wrapping_sub(1);
        }
        footprint
    }

    /// Gives every spare chunk of `domain` back to the heap; returns the bytes given back.
    ///
    /// # Safety
    ///
    /// The class lists are consistent (they always are between calls).
    unsafe fn release_spares(&mut self, domain: Domain) -> usize {
        let mut returned = 0usize;
        for class in 0..CLASS_COUNT {
            let Some(list) = self.classes[domain.index()].get_mut(class) else {
                continue;
            };
            let spare = list.spare;
            if spare.is_null() {
                continue;
            }
            list.spare = ptr::null_mut();
            // SAFETY: the spare is a wholly free chunk on its class's list.
            unsafe {
                list.unlink(spare);
                returned = returned.wrapping_add(self.release_chunk(domain, spare));
            }
        }
        returned
    }

    // --- large blocks ------------------------------------------------------------------------

    /// # Safety
    ///
    /// `heap_layout == route(layout)`'s large layout.
    unsafe fn alloc_large(&mut self, domain: Domain, layout: Layout, heap_layout: Layout) -> *mut u8 {
        let Some((block, footprint)) = self.heap_take(heap_layout) else {
            return ptr::null_mut();
        };
        let ptr = block.as_ptr();
        let generation = self.books(domain).generation;
        // SAFETY: a block just allocated with the large layout of `layout`.
        unsafe { large::write_trailer(ptr, layout.size(), Trailer { domain, generation }) };
        if ACCOUNTED {
            let books = self.books_mut(domain);
            books.hold(footprint);
            books.charge(footprint);
        }
        ptr
    }

    /// # Safety
    ///
    /// `ptr` is a live large block allocated for `layout` (so with `heap_layout`).
    unsafe fn dealloc_large(&mut self, ptr: *mut u8, layout: Layout, heap_layout: Layout) {
        // SAFETY: the trailer written by `alloc_large`.
        let trailer = unsafe { large::read_trailer(ptr, layout.size()) };
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: caller's contract.
        let footprint = unsafe { self.heap_give(block, heap_layout) };
        if let (true, Some(Trailer { domain, generation })) = (ACCOUNTED, trailer) {
            let books = self.books_mut(domain);
            books.give(footprint);
            books.credit(generation, footprint);
        }
    }

    // --- the shared heap ---------------------------------------------------------------------

    /// Allocates from the heap; when it is exhausted, returns every domain's spares and tries
    /// once more. Returns the block and its footprint.
    fn heap_take(&mut self, layout: Layout) -> Option<(NonNull<u8>, usize)> {
        if let Some(taken) = self.heap_try(layout) {
            return Some(taken);
        }
        let mut returned = 0usize;
        for domain in Domain::ALL {
            // SAFETY: the class lists are consistent between calls.
            returned = returned.wrapping_add(unsafe { self.release_spares(domain) });
        }
        if returned == 0 {
            return None;
        }
        self.heap_try(layout)
    }

    /// One heap allocation; the footprint is the change of `Heap::used`, so it is exactly what
    /// the heap gave up (its rounding to 8 bytes and its 16-byte minimum included).
    fn heap_try(&mut self, layout: Layout) -> Option<(NonNull<u8>, usize)> {
        let before = self.heap.used();
        let block = self.heap.allocate_first_fit(layout).ok()?;
        Some((block, self.heap.used().saturating_sub(before)))
    }

    /// # Safety
    ///
    /// `block` was allocated from our heap with `layout`.
    unsafe fn heap_give(&mut self, block: NonNull<u8>, layout: Layout) -> usize {
        let before = self.heap.used();
        // SAFETY: caller's contract.
        unsafe { self.heap.deallocate(block, layout) };
        before.saturating_sub(self.heap.used())
    }

    pub(crate) fn heap_stats(&mut self) -> HeapStats {
        HeapStats {
            total: self.heap.size(),
            used: self.heap.used(),
            free: self.heap.free(),
            largest_free: self.largest_free(),
        }
    }

    /// Binary search for the largest allocatable block (align 8), by allocate-and-free probes.
    fn largest_free(&mut self) -> usize {
        // Invariant: `lo` words fit (0 trivially), `hi` words do not.
        let mut lo = 0usize;
        let mut hi = self.heap.free() / 8 + 1;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let fits = match Layout::from_size_align(mid * 8, 8) {
                Ok(layout) => match self.heap.allocate_first_fit(layout) {
                    Ok(block) => {
                        // SAFETY: just allocated with `layout`; freeing restores the holes.
                        unsafe { self.heap.deallocate(block, layout) };
                        true
                    }
                    Err(()) => false,
                },
                Err(_) => false,
            };
            if fits {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo * 8
    }
}

const _: () = assert!(CHUNK_LAYOUT.size() == CHUNK_SIZE);
