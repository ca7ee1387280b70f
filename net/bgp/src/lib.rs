//! BGP-4: messages, the session FSM, RIBs, best path and policy, sans-I/O.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod neighbor;
pub mod packet;
pub mod policy;
pub mod rib;
