//! BMP (RFC 7854, RFC 9069): the message encoder and the exporter's collector state, sans-I/O.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod packet;
