//! Networking cores.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod dispatch;
pub mod flows;
pub mod lpm;
pub mod neighbour;
pub mod router;
