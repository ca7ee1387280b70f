//! Memory domains: the accounted global allocator.
#![no_std]
