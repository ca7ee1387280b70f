//! The message header (RFC 4271 section 4.1), the five message types, and framing of the TCP
//! byte stream into messages.

use alloc::vec::Vec;

use super::attribute::SessionContext;
use super::error::{HeaderError, MessageError};
use super::nlri::Family;
use super::notification::Notification;
use super::open::Open;
use super::update::Update;

/// Marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// The largest message without the extended message capability (RFC 4271).
pub const MAX_LEN: usize = 4096;
/// The largest message once both sides announced extended messages (RFC 8654).
pub const EXTENDED_MAX_LEN: usize = 65535;
const MARKER: [u8; 16] = [0xff; 16];

mod field {
    use core::ops::Range;
    pub const MARKER: Range<usize> = 0..16;
    pub const LENGTH: Range<usize> = 16..18;
    pub const TYPE: usize = 18;
}

/// Message type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open,
    Update,
    Notification,
    Keepalive,
    RouteRefresh,
}

impl MessageType {
    pub const fn from_u8(value: u8) -> Option<MessageType> {
        match value {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }

    pub const fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The smallest length a message of this type can have (RFC 4271 6.1, RFC 2918).
    const fn min_len(self) -> usize {
        match self {
            MessageType::Open => HEADER_LEN + Open::FIXED_LEN,
            MessageType::Update => HEADER_LEN + 4,
            MessageType::Notification => HEADER_LEN + 2,
            MessageType::Keepalive => HEADER_LEN,
            MessageType::RouteRefresh => HEADER_LEN + 4,
        }
    }

    /// Whether the length is fixed (KEEPALIVE, ROUTE-REFRESH).
    const fn fixed_len(self) -> bool {
        matches!(self, MessageType::Keepalive | MessageType::RouteRefresh)
    }
}

/// A checked message header: marker, a length within bounds for its type, a known type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub length: u16,
    pub kind: MessageType,
}

impl Header {
    /// Reads the header at the front of `bytes` (at least 19 octets, else `None`: wait for
    /// more). `max_len` is 4096 or, with extended messages, 65535.
    pub fn parse(bytes: &[u8], max_len: usize) -> Option<Result<Header, HeaderError>> {
        let head = bytes.get(..HEADER_LEN)?;
        Some(Header::check(head, max_len))
    }

    fn check(head: &[u8], max_len: usize) -> Result<Header, HeaderError> {
        if head.get(field::MARKER) != Some(&MARKER[..]) {
            return Err(HeaderError::ConnectionNotSynchronized);
        }
        let length = head.get(field::LENGTH).map_or(0, |l| u16::from_be_bytes([l[0], l[1]]));
        let raw_type = head.get(field::TYPE).copied().unwrap_or(0);
        let len = usize::from(length);
        if len < HEADER_LEN || len > max_len {
            return Err(HeaderError::BadMessageLength { length });
        }
        let kind = MessageType::from_u8(raw_type).ok_or(HeaderError::BadMessageType { kind: raw_type })?;
        if len < kind.min_len() || (kind.fixed_len() && len != kind.min_len()) {
            return Err(HeaderError::BadMessageLength { length });
        }
        Ok(Header { length, kind })
    }
}

/// ROUTE-REFRESH (RFC 2918; the subtype octet of RFC 7313 is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    pub afi: u16,
    /// 0 for a plain request; 1 and 2 begin and end an enhanced refresh (RFC 7313).
    pub subtype: u8,
    pub safi: u8,
}

impl RouteRefresh {
    pub fn new(family: Family) -> RouteRefresh {
        RouteRefresh { afi: family.afi().to_u16(), subtype: 0, safi: family.safi().to_u8() }
    }

    /// The family asked for, if this speaker handles it.
    pub fn family(&self) -> Option<Family> {
        Family::from_numbers(self.afi, self.safi)
    }
}

/// A BGP message. An UPDATE is much larger than the others; messages are short-lived (read,
/// handed on, dropped), so it is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// Why a message could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The message would be longer than the negotiated maximum.
    TooLong { len: usize, max: usize },
    /// The next hop is missing or of the other family than the prefixes.
    NextHopFamily,
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Reads one whole message (header included). An UPDATE whose errors RFC 7606 handles
    /// short of a reset comes back as what was kept; use `Update::parse` on the body to see
    /// those errors.
    pub fn parse(bytes: &[u8], ctx: SessionContext, max_len: usize) -> Result<Message, MessageError> {
        let header = Header::check(bytes.get(..HEADER_LEN).unwrap_or(bytes), max_len)?;
        if bytes.len() != usize::from(header.length) {
            return Err(HeaderError::BadMessageLength { length: header.length }.into());
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        Message::parse_body(header, body, ctx)
    }

    /// Reads the body of a message whose header was checked.
    pub fn parse_body(header: Header, body: &[u8], ctx: SessionContext) -> Result<Message, MessageError> {
        Ok(match header.kind {
            MessageType::Open => Message::Open(Open::parse(body)?),
            MessageType::Update => Message::Update(Update::parse(body, ctx)?.update),
            MessageType::Notification => Message::Notification(
                Notification::parse(body)
                    .map_err(|_| MessageError::Notification { length: header.length })?,
            ),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => match *body {
                [a, b, subtype, safi] => {
                    Message::RouteRefresh(RouteRefresh { afi: u16::from_be_bytes([a, b]), subtype, safi })
                }
                _ => return Err(HeaderError::BadMessageLength { length: header.length }.into()),
            },
        })
    }

    /// Appends the message, header included, to `out`; returns its length. Nothing is
    /// appended if it would be longer than `max_len`.
    pub fn emit(&self, ctx: SessionContext, max_len: usize, out: &mut Vec<u8>) -> Result<usize, EmitError> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.kind().to_u8()]);
        match self {
            Message::Open(open) => {
                let at = out.len();
                out.resize(at + open.body_len(), 0);
                open.emit_body(&mut out[at..]);
            }
            Message::Update(update) => update.emit_body(ctx, out),
            Message::Notification(n) => {
                let at = out.len();
                out.resize(at + n.body_len(), 0);
                n.emit_body(&mut out[at..]);
            }
            Message::Keepalive => {}
            Message::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.afi.to_be_bytes());
                out.extend_from_slice(&[rr.subtype, rr.safi]);
            }
        }
        let len = out.len() - start;
        if len > max_len {
            out.truncate(start);
            return Err(EmitError::TooLong { len, max: max_len });
        }
        out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(len)
    }

    /// The message as a new vector.
    pub fn to_bytes(&self, ctx: SessionContext, max_len: usize) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::new();
        self.emit(ctx, max_len, &mut out)?;
        Ok(out)
    }
}

/// Cuts a TCP byte stream into messages.
///
/// Bound: the buffer holds at most one maximum-length message (`max_len`, 4096 or 65535
/// octets). `feed` takes only what fits and returns how much it took; the caller keeps the
/// rest in its socket (which is how reading from a peer stops when the caller stops).
#[derive(Clone, Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max_len: usize,
}

impl Framer {
    pub fn new(max_len: usize) -> Framer {
        Framer { buf: Vec::new(), max_len }
    }

    /// Raises the bound once extended messages are negotiated.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Octets held of a message not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes as many octets of `data` as fit; returns how many.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let room = self.max_len.saturating_sub(self.buf.len());
        let take = room.min(data.len());
        self.buf.extend_from_slice(data.get(..take).unwrap_or_default());
        take
    }

    /// The next whole message (header included), `None` if more octets are needed, or the
    /// header error that ends the session.
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, HeaderError>> {
        let header = match Header::parse(&self.buf, self.max_len)? {
            Ok(h) => h,
            Err(e) => {
                self.buf.clear();
                return Some(Err(e));
            }
        };
        let len = usize::from(header.length);
        if self.buf.len() < len {
            return None;
        }
        let rest = self.buf.split_off(len);
        Some(Ok(core::mem::replace(&mut self.buf, rest)))
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::error::{CeaseSubcode, ErrorCode};
    use alloc::vec;

    const CTX: SessionContext = SessionContext { four_octet_as: true, external: true };

    fn header(len: u16, kind: u8) -> Vec<u8> {
        let mut h = MARKER.to_vec();
        h.extend_from_slice(&len.to_be_bytes());
        h.push(kind);
        h
    }

    #[test]
    fn keepalive_notification_route_refresh_both_ways() {
        let keepalive = header(19, 4);
        assert_eq!(Message::parse(&keepalive, CTX, MAX_LEN), Ok(Message::Keepalive));
        assert_eq!(Message::Keepalive.to_bytes(CTX, MAX_LEN).unwrap(), keepalive);

        // Cease / Administrative Shutdown with a Shutdown Communication "bye".
        let cease = [header(25, 3), vec![6, 2, 3, b'b', b'y', b'e']].concat();
        let n = Notification::cease_with_message(CeaseSubcode::AdministrativeShutdown, "bye");
        assert_eq!(Message::parse(&cease, CTX, MAX_LEN), Ok(Message::Notification(n.clone())));
        assert_eq!(Message::Notification(n).to_bytes(CTX, MAX_LEN).unwrap(), cease);

        let rr = [header(23, 5), vec![0, 2, 0, 1]].concat();
        let parsed = Message::parse(&rr, CTX, MAX_LEN).unwrap();
        assert_eq!(parsed, Message::RouteRefresh(RouteRefresh::new(Family::Ipv6Unicast)));
        assert_eq!(parsed.to_bytes(CTX, MAX_LEN).unwrap(), rr);
    }

    #[test]
    fn header_errors() {
        let mut bad_marker = header(19, 4);
        bad_marker[3] = 0;
        assert_eq!(
            Message::parse(&bad_marker, CTX, MAX_LEN),
            Err(HeaderError::ConnectionNotSynchronized.into())
        );
        assert_eq!(
            Message::parse(&header(18, 4), CTX, MAX_LEN),
            Err(HeaderError::BadMessageLength { length: 18 }.into())
        );
        let big = [header(5000, 2), vec![0; 5000 - 19]].concat();
        assert_eq!(
            Message::parse(&big, CTX, MAX_LEN),
            Err(HeaderError::BadMessageLength { length: 5000 }.into())
        );
        assert!(matches!(Message::parse(&big, CTX, EXTENDED_MAX_LEN), Ok(Message::Update(_))));
        assert_eq!(
            Message::parse(&[header(20, 4), vec![0]].concat(), CTX, MAX_LEN),
            Err(HeaderError::BadMessageLength { length: 20 }.into())
        );
        assert_eq!(
            Message::parse(&header(19, 7), CTX, MAX_LEN),
            Err(HeaderError::BadMessageType { kind: 7 }.into())
        );
        assert_eq!(
            Message::parse(&header(20, 3), CTX, MAX_LEN),
            Err(HeaderError::BadMessageLength { length: 20 }.into())
        );
        let n = MessageError::from(HeaderError::BadMessageType { kind: 7 }).notification();
        assert_eq!((n.code.to_u8(), n.data), ((1, 3), vec![7]));
    }

    #[test]
    fn emit_refuses_too_long() {
        let n = Notification::with_data(ErrorCode::Cease(CeaseSubcode::Unspecific), &[0; 5000]);
        let mut out = vec![1, 2];
        assert_eq!(
            Message::Notification(n.clone()).emit(CTX, MAX_LEN, &mut out),
            Err(EmitError::TooLong { len: 5021, max: MAX_LEN })
        );
        assert_eq!(out, [1, 2]);
        assert_eq!(Message::Notification(n).emit(CTX, EXTENDED_MAX_LEN, &mut out), Ok(5021));
    }

    #[test]
    fn framer_keeps_partial_messages_and_bounds_input() {
        let stream = [header(19, 4), header(23, 5), vec![0, 1, 0, 1], header(19, 4)].concat();
        let mut framer = Framer::new(MAX_LEN);
        let mut out = Vec::new();
        // One octet at a time.
        for b in &stream {
            assert_eq!(framer.feed(&[*b]), 1);
            while let Some(m) = framer.next_message() {
                out.push(m.unwrap());
            }
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].len(), 23);
        assert_eq!(framer.buffered(), 0);
        // Never more than one maximum message buffered.
        let mut framer = Framer::new(MAX_LEN);
        let big = [header(4096, 3), vec![6, 0], vec![0; 4096 - 21], header(19, 4)].concat();
        assert_eq!(framer.feed(&big), MAX_LEN);
        assert_eq!(framer.feed(&big[MAX_LEN..]), 0);
        assert!(framer.next_message().unwrap().is_ok());
        assert_eq!(framer.feed(&big[MAX_LEN..]), 19);
        assert_eq!(framer.next_message(), Some(Ok(header(19, 4))));
        // A bad header is reported once and the buffer dropped.
        framer.feed(&[0u8; 19]);
        assert_eq!(framer.next_message(), Some(Err(HeaderError::ConnectionNotSynchronized)));
        assert_eq!(framer.next_message(), None);
    }
}
