//! BMP (RFC 7854, RFC 9069): the message encoder and the exporter's collector state, sans-I/O.
//!
//! - [`packet`]: every RFC 7854 message (and RFC 9069's Loc-RIB peer type, F flag and table
//!   name TLV) as a validated [`packet::Message`], emitted into a caller's buffer and parsed
//!   with typed errors.
//! - [`event`]: what BGP tells BMP, through the bounded [`EventChannel`] (BGP never waits).
//! - [`queue`]: a collector's send queue, bounded in true bytes.
//! - [`exporter`]: per collector a state machine (back-off, Initiation, dump in slices through
//!   the caller's [`Tables`] cursor, incremental updates packed by the caller's
//!   [`UpdateEncoder`], Statistics Reports, Termination), and `show bmp`'s snapshot.
//!
//! The integrator's loop, inside BMP's memory domain:
//!
//! ```text
//! while let Some(action) = exporter.poll_action(now) { Connect(id) => open TCP, Close(id) => reset }
//! on TCP up / failure / close:  exporter.connected(id, now) / connect_failed / closed
//! exporter.poll(now, &mut tables, &mut encoder, &mut channel, budget)
//! for each collector: n = socket.send(exporter.transmit(id)); exporter.sent(id, n, now)
//! sleep until exporter.poll_at() or a socket event
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod event;
pub mod exporter;
pub mod packet;
pub mod queue;

pub use event::{
    Attrs, DownReason, Event, EventChannel, Family, Overflowed, PeerId, PeerUpInfo, Prefix, RouteGroup,
    Stamped, Timestamp,
};
pub use exporter::{
    Action, CollectorId, CollectorState, CollectorStatus, Config, Counters, DropReason, EncodeError, Encoded,
    Exporter, Poll, Tables, UpdateEncoder,
};
