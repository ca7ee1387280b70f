//! BGP-4 messages on the wire (RFC 4271 section 4 and its extensions).
//!
//! Each module reads untrusted bytes into typed values and writes them back into a buffer the
//! caller provides. No accessor panics on input; errors are typed and keep their cause.

pub mod attribute;
pub mod error;
pub mod message;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod update;
