//! Subsystems, supervisor, configuration, console.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub use bulkhead_base::{addr, time};

pub mod books;
pub mod config;
pub mod console;
pub mod diag;
pub mod domain;
pub mod forwarder;
pub mod json;
pub mod routing;
pub mod supervisor;
pub mod units;
