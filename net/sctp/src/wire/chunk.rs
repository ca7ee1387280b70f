//! Chunks (RFC 9260 sections 3.2 and 3.3): the checked [`Chunk`] view over one chunk's bytes
//! and [`ChunkRepr`], one variant per chunk type this endpoint speaks, plus
//! [`ChunkRepr::Unknown`] for the rest.

use super::cause::CauseRepr;
use super::list::{List, ListItem};
use super::param::{ParamRepr, ParamType};
use super::{be_u16, be_u32, padded, put_u16, put_u32, Element, Ssn, Tsn, UnrecognizedAction, WireError};

mod field {
    #![allow(unused)]
    use core::ops::Range;

    /// The chunk header, common to every chunk.
    pub const TYPE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const VALUE: usize = 4;

    /// Offsets inside the value of a DATA chunk (section 3.3.1).
    pub mod data {
        pub const TSN: usize = 0;
        pub const STREAM_ID: usize = 4;
        pub const SSN: usize = 6;
        pub const PPID: usize = 8;
        pub const USER_DATA: usize = 12;
    }

    /// Offsets inside the value of an INIT or INIT ACK chunk (sections 3.3.2, 3.3.3).
    pub mod init {
        pub const INITIATE_TAG: usize = 0;
        pub const A_RWND: usize = 4;
        pub const OUTBOUND_STREAMS: usize = 8;
        pub const INBOUND_STREAMS: usize = 10;
        pub const INITIAL_TSN: usize = 12;
        pub const PARAMS: usize = 16;
    }

    /// Offsets inside the value of a SACK chunk (section 3.3.4).
    pub mod sack {
        pub const CUMULATIVE_TSN_ACK: usize = 0;
        pub const A_RWND: usize = 4;
        pub const GAP_BLOCKS: usize = 8;
        pub const DUPLICATE_TSNS: usize = 10;
        pub const LISTS: usize = 12;
    }
}

/// Chunk header length: type, flags, length.
const HEADER_LEN: usize = field::VALUE;

/// DATA chunk flags (section 3.3.1).
const FLAG_E: u8 = 0x01;
const FLAG_B: u8 = 0x02;
const FLAG_U: u8 = 0x04;
const FLAG_I: u8 = 0x08;
/// The T bit of ABORT and SHUTDOWN COMPLETE (sections 3.3.7, 3.3.13).
const FLAG_T: u8 = 0x01;

/// The chunk types this crate knows (section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChunkType {
    Data = 0,
    Init = 1,
    InitAck = 2,
    Sack = 3,
    Heartbeat = 4,
    HeartbeatAck = 5,
    Abort = 6,
    Shutdown = 7,
    ShutdownAck = 8,
    Error = 9,
    CookieEcho = 10,
    CookieAck = 11,
    ShutdownComplete = 14,
}

impl ChunkType {
    /// The known chunk type numbered `value`, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Data,
            1 => Self::Init,
            2 => Self::InitAck,
            3 => Self::Sack,
            4 => Self::Heartbeat,
            5 => Self::HeartbeatAck,
            6 => Self::Abort,
            7 => Self::Shutdown,
            8 => Self::ShutdownAck,
            9 => Self::Error,
            10 => Self::CookieEcho,
            11 => Self::CookieAck,
            14 => Self::ShutdownComplete,
            _ => return None,
        })
    }
}

/// A checked view over one chunk: `length` bytes from the type byte on, without the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Chunk<T> {
    /// Wraps `buffer` without checking it; accessors may then panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Chunk { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let chunk = Self::new_unchecked(buffer);
        chunk.check_len()?;
        Ok(chunk)
    }

    /// Checks that the header fits and that the chunk length is at least the header and at
    /// most the buffer. After it no accessor panics.
    pub fn check_len(&self) -> Result<(), WireError> {
        let bytes = self.buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated {
                what: Element::ChunkHeader,
                need: HEADER_LEN,
                have: bytes.len(),
            });
        }
        let what = Element::Chunk(bytes[field::TYPE]);
        let length = usize::from(be_u16(bytes, field::LENGTH.start));
        if length < HEADER_LEN {
            return Err(WireError::BadLength { what, length });
        }
        if length > bytes.len() {
            return Err(WireError::Truncated { what, need: length, have: bytes.len() });
        }
        Ok(())
    }

    /// The chunk type byte.
    pub fn chunk_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The chunk flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The chunk length field: header and value, without padding.
    pub fn length(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The chunk's value.
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[field::VALUE..usize::from(self.length())]
    }

    /// The whole chunk, header and value, without padding (what an "Unrecognized Chunk Type"
    /// cause carries).
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.length())]
    }

    /// What a receiver that does not implement this chunk type does with it.
    pub fn action(&self) -> UnrecognizedAction {
        UnrecognizedAction::from_high_bits(self.chunk_type())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<'a> Chunk<&'a [u8]> {
    /// The chunk's value, borrowed for as long as the buffer.
    pub fn value_ref(&self) -> &'a [u8] {
        &self.buffer[field::VALUE..usize::from(self.length())]
    }

    /// The whole chunk, borrowed for as long as the buffer.
    pub fn bytes_ref(&self) -> &'a [u8] {
        &self.buffer[..usize::from(self.length())]
    }
}

/// A chunk as it came: type, flags and value, not interpreted. Used for chunk types this
/// endpoint does not implement, and inside the "Unrecognized Chunk Type" cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawChunk<'a> {
    pub chunk_type: u8,
    pub flags: u8,
    pub value: &'a [u8],
}

impl<'a> RawChunk<'a> {
    /// Parses one chunk that fills `bytes` (up to 3 bytes of padding after it are allowed).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let chunk = Chunk::new_checked(bytes)?;
        if bytes.len() - usize::from(chunk.length()) > 3 {
            return Err(WireError::BadLength {
                what: Element::Chunk(chunk.chunk_type()),
                length: usize::from(chunk.length()),
            });
        }
        Ok(Self::from_chunk(&chunk))
    }

    /// The chunk behind a view.
    pub fn from_chunk(chunk: &Chunk<&'a [u8]>) -> Self {
        RawChunk { chunk_type: chunk.chunk_type(), flags: chunk.flags(), value: chunk.value_ref() }
    }

    /// What a receiver that does not implement this chunk type does with it (section 3.2).
    pub const fn action(&self) -> UnrecognizedAction {
        UnrecognizedAction::from_high_bits(self.chunk_type)
    }

    /// Length of the chunk without padding (its chunk length field).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.value.len()
    }

    /// Writes header and value, no padding, into the front of `buf`.
    pub(super) fn emit_unpadded(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        super::check_room(buf, len)?;
        put_header(buf, self.chunk_type, self.flags, len)?;
        buf[HEADER_LEN..len].copy_from_slice(self.value);
        Ok(len)
    }
}

/// DATA (section 3.3.1): one fragment of one user message.
///
/// A DATA chunk with no user data parses (so the receiver can answer it); the receiver must
/// abort with a [`CauseRepr::NoUserData`] cause naming its TSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    /// U: unordered; the SSN is to be ignored.
    pub unordered: bool,
    /// B: the first fragment of a user message.
    pub beginning: bool,
    /// E: the last fragment of a user message.
    pub ending: bool,
    /// I: the sender asks for an immediate SACK (RFC 7053, kept by RFC 9260).
    pub immediate: bool,
    pub tsn: Tsn,
    pub stream_id: u16,
    pub ssn: Ssn,
    /// Payload Protocol Identifier, opaque to SCTP (network byte order on the wire).
    pub ppid: u32,
    pub user_data: &'a [u8],
}

impl DataChunk<'_> {
    /// Bytes of a DATA chunk before its user data: chunk header and the fixed fields.
    pub const HEADER_LEN: usize = HEADER_LEN + field::data::USER_DATA;

    /// How many bytes of user data fit in a DATA chunk that may take `room` bytes of a packet
    /// (padding included), or `None` when not even the header fits.
    pub const fn max_user_data(room: usize) -> Option<usize> {
        let room = room & !3;
        if room > Self::HEADER_LEN {
            Some(room - Self::HEADER_LEN)
        } else {
            None
        }
    }
}

/// INIT (section 3.3.2) and INIT ACK (section 3.3.3): the same fixed fields, then parameters
/// (an INIT ACK must carry a State Cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitChunk<'a> {
    /// The tag the peer must put in packets for the sender; never 0.
    pub initiate_tag: u32,
    /// Advertised receiver window credit, in bytes.
    pub a_rwnd: u32,
    /// Number of Outbound Streams; never 0.
    pub outbound_streams: u16,
    /// Number of Inbound Streams; never 0.
    pub inbound_streams: u16,
    pub initial_tsn: Tsn,
    pub params: List<'a, ParamRepr<'a>>,
}

impl<'a> InitChunk<'a> {
    /// The first State Cookie parameter, if any.
    pub fn state_cookie(&self) -> Option<&'a [u8]> {
        self.params.iter().find_map(|param| match param {
            ParamRepr::StateCookie(cookie) => Some(cookie),
            _ => None,
        })
    }
}

/// A Gap Ack Block of a SACK (section 3.3.4): TSNs `cumulative_tsn_ack + start` to
/// `cumulative_tsn_ack + end` were received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GapAckBlock {
    pub start: u16,
    pub end: u16,
}

impl GapAckBlock {
    /// The first TSN the block acknowledges.
    pub const fn first_tsn(&self, cumulative_tsn_ack: Tsn) -> Tsn {
        cumulative_tsn_ack.add(self.start as u32)
    }

    /// The last TSN the block acknowledges.
    pub const fn last_tsn(&self, cumulative_tsn_ack: Tsn) -> Tsn {
        cumulative_tsn_ack.add(self.end as u32)
    }
}

impl ListItem<'_> for GapAckBlock {
    const PADDED: bool = false;

    fn parse_item(bytes: &[u8]) -> Result<(Self, usize), WireError> {
        match bytes {
            [a, b, c, d, ..] => Ok((
                GapAckBlock { start: u16::from_be_bytes([*a, *b]), end: u16::from_be_bytes([*c, *d]) },
                4,
            )),
            _ => Err(WireError::Truncated { what: Element::ListItem, need: 4, have: bytes.len() }),
        }
    }

    fn item_len(&self) -> usize {
        4
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        super::check_room(buf, 4)?;
        put_u16(buf, 0, self.start);
        put_u16(buf, 2, self.end);
        Ok(())
    }
}

impl ListItem<'_> for Tsn {
    const PADDED: bool = false;

    fn parse_item(bytes: &[u8]) -> Result<(Self, usize), WireError> {
        match bytes {
            [a, b, c, d, ..] => Ok((Tsn(u32::from_be_bytes([*a, *b, *c, *d])), 4)),
            _ => Err(WireError::Truncated { what: Element::ListItem, need: 4, have: bytes.len() }),
        }
    }

    fn item_len(&self) -> usize {
        4
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        super::check_room(buf, 4)?;
        put_u32(buf, 0, self.0);
        Ok(())
    }
}

/// SACK (section 3.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackChunk<'a> {
    pub cumulative_tsn_ack: Tsn,
    /// Advertised receiver window credit, in bytes.
    pub a_rwnd: u32,
    /// Offsets from `cumulative_tsn_ack`, in order; at most 65535.
    pub gap_blocks: List<'a, GapAckBlock>,
    /// TSNs received more than once since the last SACK; at most 65535.
    pub duplicate_tsns: List<'a, Tsn>,
}

/// HEARTBEAT (section 3.3.5) and HEARTBEAT ACK (section 3.3.6): one Heartbeat Info parameter,
/// whose value the sender chose and the receiver echoes unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatChunk<'a> {
    pub info: &'a [u8],
}

/// One chunk, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkRepr<'a> {
    Data(DataChunk<'a>),
    Init(InitChunk<'a>),
    InitAck(InitChunk<'a>),
    Sack(SackChunk<'a>),
    Heartbeat(HeartbeatChunk<'a>),
    HeartbeatAck(HeartbeatChunk<'a>),
    /// ABORT (section 3.3.7). `t_bit`: the sender used the receiver's own tag (it had no TCB).
    Abort {
        t_bit: bool,
        causes: List<'a, CauseRepr<'a>>,
    },
    /// SHUTDOWN (section 3.3.8).
    Shutdown {
        cumulative_tsn_ack: Tsn,
    },
    /// SHUTDOWN ACK (section 3.3.9).
    ShutdownAck,
    /// ERROR (section 3.3.10): one or more causes (zero is accepted on receipt).
    Error {
        causes: List<'a, CauseRepr<'a>>,
    },
    /// COOKIE ECHO (section 3.3.11): the State Cookie of the INIT ACK, unchanged.
    CookieEcho {
        cookie: &'a [u8],
    },
    /// COOKIE ACK (section 3.3.12).
    CookieAck,
    /// SHUTDOWN COMPLETE (section 3.3.13). `t_bit` as in ABORT.
    ShutdownComplete {
        t_bit: bool,
    },
    /// A chunk type this endpoint does not implement; [`RawChunk::action`] says what to do.
    Unknown(RawChunk<'a>),
}

impl<'a> ChunkRepr<'a> {
    /// Validates the value of the chunk behind `chunk` against its type's layout.
    ///
    /// Flags a chunk type does not define are ignored, as section 3.2 asks of a receiver.
    pub fn parse(chunk: &Chunk<&'a [u8]>) -> Result<Self, WireError> {
        let chunk_type = chunk.chunk_type();
        let flags = chunk.flags();
        let value = chunk.value_ref();
        let what = Element::Chunk(chunk_type);
        let length = HEADER_LEN + value.len();
        let bad_length = WireError::BadLength { what, length };
        let at_least = |n: usize| if value.len() >= n { Ok(()) } else { Err(bad_length) };
        let exactly = |n: usize| if value.len() == n { Ok(()) } else { Err(bad_length) };
        let Some(known) = ChunkType::from_u8(chunk_type) else {
            return Ok(ChunkRepr::Unknown(RawChunk::from_chunk(chunk)));
        };
        Ok(match known {
            ChunkType::Data => {
                use field::data::*;
                at_least(USER_DATA)?;
                ChunkRepr::Data(DataChunk {
                    unordered: flags & FLAG_U != 0,
                    beginning: flags & FLAG_B != 0,
                    ending: flags & FLAG_E != 0,
                    immediate: flags & FLAG_I != 0,
                    tsn: Tsn(be_u32(value, TSN)),
                    stream_id: be_u16(value, STREAM_ID),
                    ssn: Ssn(be_u16(value, SSN)),
                    ppid: be_u32(value, PPID),
                    user_data: &value[USER_DATA..],
                })
            }
            ChunkType::Init | ChunkType::InitAck => {
                use field::init::*;
                at_least(PARAMS)?;
                let init = InitChunk {
                    initiate_tag: be_u32(value, INITIATE_TAG),
                    a_rwnd: be_u32(value, A_RWND),
                    outbound_streams: be_u16(value, OUTBOUND_STREAMS),
                    inbound_streams: be_u16(value, INBOUND_STREAMS),
                    initial_tsn: Tsn(be_u32(value, INITIAL_TSN)),
                    params: List::parse(&value[PARAMS..])?,
                };
                if known == ChunkType::Init {
                    ChunkRepr::Init(init)
                } else {
                    ChunkRepr::InitAck(init)
                }
            }
            ChunkType::Sack => {
                use field::sack::*;
                at_least(LISTS)?;
                let gaps = usize::from(be_u16(value, GAP_BLOCKS)) * 4;
                let dups = usize::from(be_u16(value, DUPLICATE_TSNS)) * 4;
                exactly(LISTS + gaps + dups)?;
                ChunkRepr::Sack(SackChunk {
                    cumulative_tsn_ack: Tsn(be_u32(value, CUMULATIVE_TSN_ACK)),
                    a_rwnd: be_u32(value, A_RWND),
                    gap_blocks: List::parse(&value[LISTS..LISTS + gaps])?,
                    duplicate_tsns: List::parse(&value[LISTS + gaps..])?,
                })
            }
            ChunkType::Heartbeat | ChunkType::HeartbeatAck => {
                let info = match ParamRepr::parse(value) {
                    Ok(ParamRepr::HeartbeatInfo(info)) => info,
                    Ok(_) | Err(WireError::Truncated { what: Element::ParamHeader, .. }) => {
                        return Err(WireError::MissingParam {
                            what,
                            param_type: ParamType::HeartbeatInfo as u16,
                        })
                    }
                    Err(error) => return Err(error),
                };
                let heartbeat = HeartbeatChunk { info };
                if known == ChunkType::Heartbeat {
                    ChunkRepr::Heartbeat(heartbeat)
                } else {
                    ChunkRepr::HeartbeatAck(heartbeat)
                }
            }
            ChunkType::Abort => ChunkRepr::Abort { t_bit: flags & FLAG_T != 0, causes: List::parse(value)? },
            ChunkType::Shutdown => {
                exactly(4)?;
                ChunkRepr::Shutdown { cumulative_tsn_ack: Tsn(be_u32(value, 0)) }
            }
            ChunkType::ShutdownAck => {
                exactly(0)?;
                ChunkRepr::ShutdownAck
            }
            ChunkType::Error => ChunkRepr::Error { causes: List::parse(value)? },
            ChunkType::CookieEcho => ChunkRepr::CookieEcho { cookie: value },
            ChunkType::CookieAck => {
                exactly(0)?;
                ChunkRepr::CookieAck
            }
            ChunkType::ShutdownComplete => {
                exactly(0)?;
                ChunkRepr::ShutdownComplete { t_bit: flags & FLAG_T != 0 }
            }
        })
    }

    /// The chunk type byte.
    pub fn chunk_type(&self) -> u8 {
        let known = match self {
            ChunkRepr::Data(_) => ChunkType::Data,
            ChunkRepr::Init(_) => ChunkType::Init,
            ChunkRepr::InitAck(_) => ChunkType::InitAck,
            ChunkRepr::Sack(_) => ChunkType::Sack,
            ChunkRepr::Heartbeat(_) => ChunkType::Heartbeat,
            ChunkRepr::HeartbeatAck(_) => ChunkType::HeartbeatAck,
            ChunkRepr::Abort { .. } => ChunkType::Abort,
            ChunkRepr::Shutdown { .. } => ChunkType::Shutdown,
            ChunkRepr::ShutdownAck => ChunkType::ShutdownAck,
            ChunkRepr::Error { .. } => ChunkType::Error,
            ChunkRepr::CookieEcho { .. } => ChunkType::CookieEcho,
            ChunkRepr::CookieAck => ChunkType::CookieAck,
            ChunkRepr::ShutdownComplete { .. } => ChunkType::ShutdownComplete,
            ChunkRepr::Unknown(raw) => return raw.chunk_type,
        };
        known as u8
    }

    /// Whether the chunk may share a packet with others: INIT, INIT ACK and SHUTDOWN COMPLETE
    /// may not (section 6.10).
    pub fn is_bundleable(&self) -> bool {
        !matches!(self, ChunkRepr::Init(_) | ChunkRepr::InitAck(_) | ChunkRepr::ShutdownComplete { .. })
    }

    /// Bytes the chunk takes in a packet, padding included.
    pub fn buffer_len(&self) -> usize {
        padded(self.length())
    }

    /// Writes the chunk and its zero padding into the front of `buf`; returns
    /// [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let length = self.length();
        let total = padded(length);
        super::check_room(buf, total)?;
        put_header(buf, self.chunk_type(), self.flags(), length)?;
        let value = &mut buf[HEADER_LEN..length];
        match self {
            ChunkRepr::Data(data) => {
                use field::data::*;
                put_u32(value, TSN, data.tsn.0);
                put_u16(value, STREAM_ID, data.stream_id);
                put_u16(value, SSN, data.ssn.0);
                put_u32(value, PPID, data.ppid);
                value[USER_DATA..].copy_from_slice(data.user_data);
            }
            ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => {
                use field::init::*;
                put_u32(value, INITIATE_TAG, init.initiate_tag);
                put_u32(value, A_RWND, init.a_rwnd);
                put_u16(value, OUTBOUND_STREAMS, init.outbound_streams);
                put_u16(value, INBOUND_STREAMS, init.inbound_streams);
                put_u32(value, INITIAL_TSN, init.initial_tsn.0);
                init.params.emit(&mut value[PARAMS..])?;
            }
            ChunkRepr::Sack(sack) => {
                use field::sack::*;
                let what = Element::Chunk(ChunkType::Sack as u8);
                let count = |n: usize| u16::try_from(n).map_err(|_| WireError::BadLength { what, length });
                put_u32(value, CUMULATIVE_TSN_ACK, sack.cumulative_tsn_ack.0);
                put_u32(value, A_RWND, sack.a_rwnd);
                put_u16(value, GAP_BLOCKS, count(sack.gap_blocks.count())?);
                put_u16(value, DUPLICATE_TSNS, count(sack.duplicate_tsns.count())?);
                let gaps = sack.gap_blocks.emit(&mut value[LISTS..])?;
                sack.duplicate_tsns.emit(&mut value[LISTS + gaps..])?;
            }
            ChunkRepr::Heartbeat(heartbeat) | ChunkRepr::HeartbeatAck(heartbeat) => {
                ParamRepr::HeartbeatInfo(heartbeat.info).emit(value)?;
            }
            ChunkRepr::Abort { causes, .. } | ChunkRepr::Error { causes } => {
                causes.emit(value)?;
            }
            ChunkRepr::Shutdown { cumulative_tsn_ack } => put_u32(value, 0, cumulative_tsn_ack.0),
            ChunkRepr::ShutdownAck | ChunkRepr::CookieAck | ChunkRepr::ShutdownComplete { .. } => {}
            ChunkRepr::CookieEcho { cookie } => value.copy_from_slice(cookie),
            ChunkRepr::Unknown(raw) => value.copy_from_slice(raw.value),
        }
        buf[length..total].fill(0);
        Ok(total)
    }

    /// The chunk length field: header and value, without the chunk's padding.
    fn length(&self) -> usize {
        HEADER_LEN
            + match self {
                ChunkRepr::Data(data) => field::data::USER_DATA + data.user_data.len(),
                ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => {
                    field::init::PARAMS + init.params.wire_len()
                }
                ChunkRepr::Sack(sack) => {
                    field::sack::LISTS + sack.gap_blocks.wire_len() + sack.duplicate_tsns.wire_len()
                }
                ChunkRepr::Heartbeat(heartbeat) | ChunkRepr::HeartbeatAck(heartbeat) => {
                    4 + heartbeat.info.len()
                }
                ChunkRepr::Abort { causes, .. } | ChunkRepr::Error { causes } => causes.wire_len(),
                ChunkRepr::Shutdown { .. } => 4,
                ChunkRepr::ShutdownAck | ChunkRepr::CookieAck | ChunkRepr::ShutdownComplete { .. } => 0,
                ChunkRepr::CookieEcho { cookie } => cookie.len(),
                ChunkRepr::Unknown(raw) => raw.value.len(),
            }
    }

    fn flags(&self) -> u8 {
        let bit = |set: bool, flag: u8| if set { flag } else { 0 };
        match self {
            ChunkRepr::Data(data) => {
                bit(data.unordered, FLAG_U)
                    | bit(data.beginning, FLAG_B)
                    | bit(data.ending, FLAG_E)
                    | bit(data.immediate, FLAG_I)
            }
            ChunkRepr::Abort { t_bit, .. } | ChunkRepr::ShutdownComplete { t_bit } => bit(*t_bit, FLAG_T),
            ChunkRepr::Unknown(raw) => raw.flags,
            _ => 0,
        }
    }
}

/// Writes a chunk header; `buf` holds at least [`HEADER_LEN`] bytes.
fn put_header(buf: &mut [u8], chunk_type: u8, flags: u8, length: usize) -> Result<(), WireError> {
    let length16 = u16::try_from(length)
        .map_err(|_| WireError::BadLength { what: Element::Chunk(chunk_type), length })?;
    buf[field::TYPE] = chunk_type;
    buf[field::FLAGS] = flags;
    put_u16(buf, field::LENGTH.start, length16);
    Ok(())
}
