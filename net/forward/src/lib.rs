//! Networking cores.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod dispatch;
pub mod fib;
pub mod flows;
pub mod neighbour;
pub mod router;
