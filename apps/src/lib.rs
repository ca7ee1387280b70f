//! Subsystems, supervisor, configuration, console.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub use bulkhead_base::{addr, time};

pub mod bgp;
pub mod bmp;
pub mod books;
pub mod config;
pub mod console;
pub mod context;
pub mod diag;
pub mod domain;
pub mod forwarder;
pub mod host;
pub mod json;
pub mod link;
pub mod platform;
pub mod routing;
pub mod sctp;
pub mod supervisor;
#[cfg(test)]
pub mod testing;
pub mod units;
