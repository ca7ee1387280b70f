//! One SCTP association (RFC 9260): its state machine, its paths, and its send and receive
//! queues.

pub mod cc;
pub mod rto;
pub mod rx;
pub mod tsnmap;
