//! The SCTP wire format (RFC 9260 section 3): bytes only, no state.
//!
//! Two layers, after smoltcp:
//!
//! - checked views over a buffer: [`Packet`] (the common header and the chunks behind it) and
//!   [`Chunk`] (one chunk's type, flags, length and value). `new_checked` validates the lengths
//!   once; after it no accessor can panic.
//! - validated representations: [`PacketRepr`] (the common header), [`ChunkRepr`] (one variant
//!   per chunk type, plus [`ChunkRepr::Unknown`] for types this endpoint does not implement),
//!   [`ParamRepr`] (INIT / INIT ACK parameters) and [`CauseRepr`] (error causes). Each has
//!   `parse`, `buffer_len` and `emit` into a buffer the caller provides. Reprs borrow their
//!   payloads from the received buffer; variable lists (parameters, causes, gap ack blocks,
//!   duplicate TSNs) are a [`List`], either the validated wire bytes or a slice of items that the
//!   sender built.
//!
//! Receive path:
//!
//! ```
//! # use bulkhead_sctp::wire::{Packet, ChunkRepr, WireError};
//! # fn f(bytes: &[u8]) -> Result<(), WireError> {
//! let packet = Packet::new_checked(bytes)?;
//! packet.verify_checksum()?;
//! for chunk in packet.chunks() {
//!     let chunk = chunk?;               // a malformed chunk length ends the walk
//!     match ChunkRepr::parse(&chunk)? {
//!         ChunkRepr::Data(data) => { let _ = data.tsn; }
//!         ChunkRepr::Unknown(raw) => { let _ = raw.action(); }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Send path: [`PacketBuilder`] writes the common header, bundles chunks while they fit under
//! the caller's size limit (path MTU minus the IP and, for RFC 6951, UDP headers), refuses to
//! bundle INIT, INIT ACK and SHUTDOWN COMPLETE with anything, and fills the CRC32c on `finish`.

mod cause;
mod chunk;
mod list;
mod packet;
mod param;
mod serial;

pub use cause::{CauseCode, CauseRepr};
pub use chunk::{
    Chunk, ChunkRepr, ChunkType, DataChunk, GapAckBlock, HeartbeatChunk, InitChunk, RawChunk, SackChunk,
};
pub use list::{List, ListItem, ListIter};
pub use packet::{crc32c, Chunks, Packet, PacketBuilder, PacketRepr, COMMON_HEADER_LEN};
pub use param::{AddressType, ParamRepr, ParamType, RawParam};
pub use serial::{Ssn, Tsn};

/// What a malformed or unfittable piece of the wire format was, kept in every [`WireError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    /// The 12-byte common header.
    CommonHeader,
    /// A chunk header whose type could not even be read.
    ChunkHeader,
    /// A chunk of this type (RFC 9260 section 3.2).
    Chunk(u8),
    /// A parameter header whose type could not even be read.
    ParamHeader,
    /// A parameter of this type (section 3.2.1).
    Param(u16),
    /// An error cause header whose code could not even be read.
    CauseHeader,
    /// An error cause with this code (section 3.3.10).
    Cause(u16),
    /// A fixed-size list item (gap ack block, duplicate TSN, address type, parameter type).
    ListItem,
}

/// Why bytes could not be parsed, or a representation could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer ends before `what` does: `need` bytes were needed where `have` were left.
    Truncated { what: Element, need: usize, have: usize },
    /// A length field (or count) of `what` that does not fit its layout: below the minimum,
    /// not the fixed size, or inconsistent with the counts inside it.
    BadLength { what: Element, length: usize },
    /// The packet ends inside the zero padding that must round `what` up to 4 bytes.
    BadPadding { what: Element },
    /// The CRC32c in the common header is not the one computed over the packet.
    BadChecksum { stored: u32, computed: u32 },
    /// A chunk value lacks a parameter it must carry (a HEARTBEAT without Heartbeat Info).
    MissingParam { what: Element, param_type: u16 },
    /// Emit: `need` bytes do not fit in the `room` left in the buffer or under the size limit.
    NoRoom { need: usize, room: usize },
    /// Emit: INIT, INIT ACK and SHUTDOWN COMPLETE travel alone (section 6.10); this chunk
    /// type cannot join the packet being built.
    NotBundleable { chunk_type: u8 },
}

impl core::fmt::Display for Element {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Element::CommonHeader => write!(f, "common header"),
            Element::ChunkHeader => write!(f, "chunk header"),
            Element::Chunk(kind) => write!(f, "chunk type {kind}"),
            Element::ParamHeader => write!(f, "parameter header"),
            Element::Param(kind) => write!(f, "parameter type {kind:#06x}"),
            Element::CauseHeader => write!(f, "error cause header"),
            Element::Cause(code) => write!(f, "error cause {code}"),
            Element::ListItem => write!(f, "list item"),
        }
    }
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::Truncated { what, need, have } => {
                write!(f, "{what}: truncated, {need} bytes needed, {have} left")
            }
            WireError::BadLength { what, length } => write!(f, "{what}: bad length {length}"),
            WireError::BadPadding { what } => write!(f, "{what}: packet ends inside its padding"),
            WireError::BadChecksum { stored, computed } => {
                write!(f, "bad CRC32c: stored {stored:#010x}, computed {computed:#010x}")
            }
            WireError::MissingParam { what, param_type } => {
                write!(f, "{what}: missing parameter type {param_type}")
            }
            WireError::NoRoom { need, room } => write!(f, "no room: {need} bytes needed, {room} free"),
            WireError::NotBundleable { chunk_type } => {
                write!(f, "chunk type {chunk_type} cannot be bundled here")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// What a receiver does with a chunk type or parameter type it does not implement: the two
/// high bits of the type (RFC 9260 sections 3.2 and 3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnrecognizedAction {
    /// `00`: stop processing this packet (chunk) or this chunk (parameter), discard it.
    Stop,
    /// `01`: as `Stop`, and report it (an ERROR chunk with "Unrecognized Chunk Type", or
    /// "Unrecognized Parameter" in the INIT ACK / an ERROR chunk).
    StopAndReport,
    /// `10`: skip it and go on with the rest.
    Skip,
    /// `11`: skip it, go on, and report it.
    SkipAndReport,
}

impl UnrecognizedAction {
    /// The action encoded in the two high bits of `high_byte` (a chunk type, or the first byte
    /// of a parameter type).
    pub const fn from_high_bits(high_byte: u8) -> Self {
        match high_byte >> 6 {
            0 => Self::Stop,
            1 => Self::StopAndReport,
            2 => Self::Skip,
            _ => Self::SkipAndReport,
        }
    }

    /// Whether processing goes on after the unrecognized element.
    pub const fn skips(self) -> bool {
        matches!(self, Self::Skip | Self::SkipAndReport)
    }

    /// Whether the unrecognized element is reported to the peer.
    pub const fn reports(self) -> bool {
        matches!(self, Self::StopAndReport | Self::SkipAndReport)
    }
}

/// `len` rounded up to a multiple of 4 (chunks, parameters and causes are padded to 4 bytes).
pub const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Big-endian reads from a slice whose length the caller has already checked.
fn be_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Big-endian writes into a slice whose length the caller has already checked.
fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// `Ok` when `buf` holds at least `need` bytes, else [`WireError::NoRoom`].
fn check_room(buf: &[u8], need: usize) -> Result<(), WireError> {
    if buf.len() < need {
        Err(WireError::NoRoom { need, room: buf.len() })
    } else {
        Ok(())
    }
}

/// One type-length-value element (a parameter or an error cause) split off the front of
/// `bytes`: its type, its value, and how many bytes it takes including its padding. The last
/// element of a chunk may come without its padding (section 3.2: the chunk length does not
/// count the last parameter's padding), so the taken length stops at the end of `bytes`.
fn split_tlv(
    bytes: &[u8],
    header: Element,
    what: fn(u16) -> Element,
) -> Result<(u16, &[u8], usize), WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Truncated { what: header, need: 4, have: bytes.len() });
    }
    let kind = be_u16(bytes, 0);
    let length = usize::from(be_u16(bytes, 2));
    if length < 4 {
        return Err(WireError::BadLength { what: what(kind), length });
    }
    let Some(value) = bytes.get(4..length) else {
        return Err(WireError::Truncated { what: what(kind), need: length, have: bytes.len() });
    };
    Ok((kind, value, padded(length).min(bytes.len())))
}

/// Writes a TLV header for `kind` with a value of `value_len` bytes; `buf` must hold at least
/// 4 bytes. Fails when the length does not fit the 16-bit field.
fn put_tlv_header(buf: &mut [u8], kind: u16, value_len: usize, what: Element) -> Result<(), WireError> {
    let length =
        u16::try_from(4 + value_len).map_err(|_| WireError::BadLength { what, length: 4 + value_len })?;
    put_u16(buf, 0, kind);
    put_u16(buf, 2, length);
    Ok(())
}

#[cfg(test)]
mod tests;
