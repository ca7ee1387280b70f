//! The vocabulary shared by every Bulkhead crate: one time type, one IPv4 address and prefix
//! type, and the traits through which a sans-I/O core sees the outside world (a clock reading
//! is passed in as an [`time::Instant`]; randomness comes as a [`rand_core::RngCore`]).
//! Conversions to smoltcp's types happen only at the smoltcp boundary.
#![no_std]
#![forbid(unsafe_code)]

pub mod addr;
pub mod rng;
pub mod time;

pub use rand_core;
