//! BMP (RFC 7854, RFC 9069): the message encoder and the exporter's collector state, sans-I/O.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod event;
pub mod exporter;
pub mod packet;
pub mod queue;

pub use event::{
    Attrs, DownReason, Event, EventChannel, Family, Overflowed, PeerId, PeerUpInfo, Prefix, RouteGroup,
};
pub use exporter::{
    Action, CollectorId, CollectorState, CollectorStatus, Config, Counters, DropReason, EncodeError, Encoded,
    Exporter, Poll, Tables, UpdateEncoder,
};
