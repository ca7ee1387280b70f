//! Memory domains: the accounted global allocator.
//!
//! Every allocation is charged to the [`Domain`] current when it is made and credited to the
//! same domain, and to the same life of that domain, when it is freed, whoever frees it. The
//! charge is the true footprint: what the shared heap gave up, never the requested size
//! ([`block_footprint`] tells it in advance).
//!
//! # Layout of the heap
//!
//! ```text
//! shared heap (linked_list_allocator::Heap)
//!  ├── chunk (64 KiB, aligned 64 KiB)  owned by one (domain, generation, size class)
//!  │     [slot][slot][slot]...                        small blocks: <= 2 KiB, align <= 64
//!  ├── large block  [payload, rounded to 8][trailer 8 B: domain, generation]   everything else
//!  └── holes
//! chunk table (end of the region, outside the heap): one header per 64 KiB of the region
//! ```
//!
//! * **Small blocks** ([`class`](crate::class), [`chunk`](crate::chunk)) come from 24 size
//!   classes (16 B .. 2 KiB) kept per domain. The chunk of a block is found from the pointer
//!   (`(address - origin) >> 16` indexes the chunk table), and its header names the domain, the
//!   generation and the class, so alloc and free are O(1).
//! * **Large blocks** ([`large`](crate::large)) (and small sizes with an alignment above 64) go
//!   straight to the shared heap, with an 8-byte trailer after the payload that names the domain
//!   and the generation.
//!
//! # The books, per generation
//!
//! A domain's `used` is every chunk it owns (free slots included) plus its large blocks'
//! footprints, measured as the change of `Heap::used` around the heap call. So the sum of
//! `used` over all domains equals the heap's `used()` at every moment. `live`/`blocks` count the
//! slots (or large footprints) actually handed out, split ([`books`](crate::books)) between the
//! domain's current life and its earlier ones: [`DomainAllocator::begin_generation`] starts a
//! life, [`DomainAllocator::reclaim`] reports exactly what it left behind.
//!
//! # Free-chunk policy
//!
//! A chunk that becomes wholly free stays with its (domain, class) as the class's one *spare*;
//! a second chunk of the same class that becomes wholly free goes straight back to the heap, and
//! so does a chunk of an earlier life when its last block is freed. So a domain caches at most
//! one free chunk per class (24 × 64 KiB at worst), which keeps a packet-sized alloc/free
//! ping-pong from bouncing chunks through the heap. [`DomainAllocator::reclaim`] returns a
//! domain's spares; when the heap runs out, the allocator returns every domain's spares and
//! tries once more before it answers null.
//!
//! # Quotas
//!
//! An infallible allocation is never refused for a quota: the supervisor sheds a domain that is
//! over its hard quota at the next turn of the loop (`kernel` and `net` are never shed; see
//! [`Domain`]). Quotas are enforced where work is admitted, with [`DomainAllocator::admit`],
//! and reported by [`DomainAllocator::over_hard`] and [`DomainAllocator::over_soft`].
//!
//! # Nothing here allocates
//!
//! The crate does not link `alloc`: entering a domain is one atomic swap, and a reclaim or a new
//! generation only moves chunks between the domain and the heap. None of them can charge the
//! domain that is current when they are called.
//!
//! # Concurrency
//!
//! The state sits behind one `spin::Mutex`: the image is single-core and interrupt handlers never
//! allocate, so the lock is never contended there; on the host it makes the allocator `Sync`.
#![cfg_attr(not(test), no_std)]

mod allocator;
mod books;
mod chunk;
mod class;
mod domain;
mod engine;
#[cfg(feature = "host-heap")]
mod host;
mod large;
mod stats;

pub use allocator::{DomainAllocator, DomainGuard, UnaccountedFrontEnd};
pub use books::Generation;
pub use chunk::CHUNK_SIZE;
pub use class::{block_footprint, CLASS_COUNT, CLASS_SIZES, SMALL_ALIGN_MAX, SMALL_MAX};
pub use domain::{Domain, OverQuota, PlanError, Quota};
#[cfg(feature = "host-heap")]
pub use host::{HostHeap, HOST_HEAP_SIZE};
pub use large::LARGE_TRAILER;
pub use stats::{DomainStats, HeapStats, LeakReport};
