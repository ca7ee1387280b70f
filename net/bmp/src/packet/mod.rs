//! BMP messages on the wire (RFC 7854, with RFC 9069's Loc-RIB peer type and RFC 8671's
//! Adj-RIB-Out statistics).
//!
//! Every message starts with the common header ([`Packet`], 6 bytes); all but Initiation and
//! Termination follow it with a per-peer header ([`PeerHeader`], 42 bytes). A [`Message`] is
//! the validated form of one whole message: [`Message::parse`] reads it from a [`Packet`] and
//! [`Message::emit`] writes it into a caller's buffer of at least [`Message::buffer_len`] bytes.
//! BGP PDUs (OPEN, UPDATE, NOTIFICATION) are carried as bytes: the decoder checks their
//! 19-byte BGP header (marker, length, type) and nothing inside.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Version    |                 Message Length                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Length (cont)|   Msg. Type   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

mod header;
mod message;
mod stats;
mod tlv;

pub use header::{PeerFlags, PeerHeader, PeerType, PEER_HEADER_LEN};
pub use message::{Message, PeerDownReason, PeerUp};
pub use stats::{Stat, StatType, StatValue};
pub use tlv::{InfoTlv, InfoType, MirrorTlv, TermReason, TermTlv};

/// The only version this crate speaks (RFC 7854).
pub const VERSION: u8 = 3;
/// Length of the common header.
pub const HEADER_LEN: usize = 6;
/// Length of a BGP message header (marker, length, type).
pub const BGP_HEADER_LEN: usize = 19;
/// The largest BGP message (RFC 8654 extended messages); 4096 without that capability.
pub const BGP_MAX_LEN: usize = 65535;

/// Why a byte string is not a BMP message this crate accepts. Each variant keeps its cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the field that starts at this offset (of the message) is whole.
    Truncated { at: usize },
    /// The common header's version is not 3.
    Version(u8),
    /// The common header's length is below the header's own length.
    Length(u32),
    /// The message type is not one of RFC 7854's.
    MessageType(u8),
    /// A BGP PDU's marker is not all ones.
    BgpMarker,
    /// A BGP PDU's length field is below 19 or beyond the bytes left.
    BgpLength(u16),
    /// A BGP PDU has another type than the message carries (OPEN 1, UPDATE 2, NOTIFICATION 3).
    BgpType { expected: u8, found: u8 },
    /// A Peer Down reason code this crate does not know.
    PeerDownReason(u8),
    /// A statistic of a known type with another length than its type has.
    StatLength { kind: u16, len: u16 },
    /// The Termination reason TLV is not 2 bytes long, or Route Mirroring's information TLV.
    TlvLength { kind: u16, len: u16 },
    /// Bytes left after the last field of the message.
    Trailing(usize),
}

/// Why a [`Message`] cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The buffer is shorter than `buffer_len()`.
    BufferTooSmall { needed: usize, got: usize },
    /// A TLV value longer than its 16-bit length field can say.
    TlvTooLong(usize),
    /// The message is longer than its 32-bit length field can say.
    MessageTooLong(usize),
    /// Peer Up's local address is of another family than the peer's.
    AddressFamilyMismatch,
    /// A statistic whose value does not have the form its type requires.
    StatValue { kind: u16 },
}

/// BMP message types (RFC 7854 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    RouteMonitoring = 0,
    StatisticsReport = 1,
    PeerDown = 2,
    PeerUp = 3,
    Initiation = 4,
    Termination = 5,
    RouteMirroring = 6,
}

impl TryFrom<u8> for MessageType {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self, Error> {
        Ok(match value {
            0 => MessageType::RouteMonitoring,
            1 => MessageType::StatisticsReport,
            2 => MessageType::PeerDown,
            3 => MessageType::PeerUp,
            4 => MessageType::Initiation,
            5 => MessageType::Termination,
            6 => MessageType::RouteMirroring,
            other => return Err(Error::MessageType(other)),
        })
    }
}

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const LENGTH: Range<usize> = 1..5;
    pub const TYPE: usize = 5;
}

/// A read view of one BMP message: the common header and what its length covers.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks; use [`Packet::new_checked`] on untrusted bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view whose accessors cannot panic: the header is whole, its length is at least the
    /// header's and at most the buffer's. Bytes after the message (the next message in a
    /// stream) are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated { at: len });
        }
        let declared = packet.length();
        if (declared as usize) < HEADER_LEN {
            return Err(Error::Length(declared));
        }
        if declared as usize > len {
            return Err(Error::Truncated { at: len });
        }
        Ok(packet)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn length(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The bytes after the common header, up to the message's length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.length() as usize]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    pub fn set_length(&mut self, value: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }
}

/// The length of the first message in a TCP byte stream, once its header has arrived: `None`
/// while fewer than 6 bytes are there. The caller still checks that the whole message is.
pub fn message_len(stream: &[u8]) -> Option<u32> {
    let header = stream.get(..HEADER_LEN)?;
    let b = header.get(field::LENGTH)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A cursor over untrusted bytes: every read is checked and reports where it stopped.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole message, for error reports.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { at: self.offset() })?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated { at: self.offset() })?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Everything read must have been read.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Error::Trailing(n)),
        }
    }

    /// One BGP message of type `expected`: checks the marker, the length and the type.
    pub(crate) fn bgp_pdu(&mut self, expected: u8) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let marker = self.take(16)?;
        if marker.iter().any(|&b| b != 0xff) {
            return Err(Error::BgpMarker);
        }
        let len = self.u16()?;
        let found = self.u8()?;
        if (len as usize) < BGP_HEADER_LEN || start + len as usize > self.buf.len() {
            return Err(Error::BgpLength(len));
        }
        if found != expected {
            return Err(Error::BgpType { expected, found });
        }
        self.pos = start;
        self.take(len as usize)
    }
}

/// A cursor writing into a buffer the caller sized with `buffer_len()`; a short buffer is an
/// error, never a panic.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), EmitError> {
        let got = self.buf.len();
        let needed = self.pos + bytes.len();
        let dst = self.buf.get_mut(self.pos..needed).ok_or(EmitError::BufferTooSmall { needed, got })?;
        dst.copy_from_slice(bytes);
        self.pos = needed;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), EmitError> {
        self.put(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), EmitError> {
        self.put(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), EmitError> {
        self.put(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), EmitError> {
        self.put(&v.to_be_bytes())
    }

    /// A TLV with a 16-bit type and a 16-bit length.
    pub(crate) fn tlv(&mut self, kind: u16, value: &[u8]) -> Result<(), EmitError> {
        let len = u16::try_from(value.len()).map_err(|_| EmitError::TlvTooLong(value.len()))?;
        self.u16(kind)?;
        self.u16(len)?;
        self.put(value)
    }
}

/// Writes a 6-byte common header for a message of `len` bytes in all.
pub fn emit_header(msg_type: MessageType, len: usize, buf: &mut [u8]) -> Result<(), EmitError> {
    let len32 = u32::try_from(len).map_err(|_| EmitError::MessageTooLong(len))?;
    let mut w = Writer::new(buf);
    w.u8(VERSION)?;
    w.u32(len32)?;
    w.u8(msg_type as u8)
}

#[cfg(test)]
mod tests;
