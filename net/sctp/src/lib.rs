//! SCTP (RFC 9260): wire format, associations and the endpoint, sans-I/O.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod association;
pub mod cookie;
pub mod endpoint;

pub mod wire;
