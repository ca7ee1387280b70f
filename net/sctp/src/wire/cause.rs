//! Error causes (RFC 9260 section 3.3.10), carried by ABORT and ERROR chunks. Each is a
//! type-length-value, padded to 4 bytes like a parameter.

use super::chunk::RawChunk;
use super::list::{List, ListItem};
use super::param::RawParam;
use super::{be_u16, be_u32, put_tlv_header, put_u16, put_u32, split_tlv, Element, Tsn, WireError};

/// The cause codes of section 3.3.10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CauseCode {
    InvalidStreamIdentifier = 1,
    MissingMandatoryParameter = 2,
    StaleCookie = 3,
    OutOfResource = 4,
    UnresolvableAddress = 5,
    UnrecognizedChunkType = 6,
    InvalidMandatoryParameter = 7,
    UnrecognizedParameters = 8,
    NoUserData = 9,
    CookieReceivedWhileShuttingDown = 10,
    RestartWithNewAddresses = 11,
    UserInitiatedAbort = 12,
    ProtocolViolation = 13,
}

/// One error cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseRepr<'a> {
    /// 1: a DATA chunk (or another chunk) named a stream that does not exist.
    InvalidStreamIdentifier { stream_id: u16 },
    /// 2: mandatory parameters missing from an INIT or INIT ACK, by parameter type.
    MissingMandatoryParameter { param_types: List<'a, u16> },
    /// 3: a State Cookie arrived this many microseconds after it expired.
    StaleCookie { staleness_us: u32 },
    /// 4: the sender is out of resource.
    OutOfResource,
    /// 5: an address parameter the sender cannot use (a Host Name Address), whole.
    UnresolvableAddress { address: RawParam<'a> },
    /// 6: a chunk type the sender does not implement; the chunk copied whole.
    UnrecognizedChunkType { chunk: RawChunk<'a> },
    /// 7: a mandatory parameter of an INIT or INIT ACK with an invalid value.
    InvalidMandatoryParameter,
    /// 8: parameters of an INIT ACK that the sender did not recognize, whole.
    UnrecognizedParameters { params: List<'a, RawParam<'a>> },
    /// 9: a DATA chunk with no user data, by its TSN.
    NoUserData { tsn: Tsn },
    /// 10: a COOKIE ECHO arrived in SHUTDOWN-ACK-SENT.
    CookieReceivedWhileShuttingDown,
    /// 11: a restart (INIT) named addresses the association did not have; those addresses.
    RestartWithNewAddresses { addresses: List<'a, RawParam<'a>> },
    /// 12: the upper layer aborted, with its reason (may be empty).
    UserInitiatedAbort { reason: &'a [u8] },
    /// 13: a protocol violation, with information for the peer (may be empty).
    ProtocolViolation { info: &'a [u8] },
    /// Any other code, with its cause-specific information.
    Unknown { code: u16, info: &'a [u8] },
}

impl<'a> CauseRepr<'a> {
    /// Parses one cause that fills `bytes` (up to its padding).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (cause, taken) = Self::parse_item(bytes)?;
        if taken != bytes.len() {
            return Err(WireError::BadLength { what: Element::Cause(cause.code()), length: bytes.len() });
        }
        Ok(cause)
    }

    /// The cause code on the wire.
    pub fn code(&self) -> u16 {
        let code = match self {
            CauseRepr::InvalidStreamIdentifier { .. } => CauseCode::InvalidStreamIdentifier,
            CauseRepr::MissingMandatoryParameter { .. } => CauseCode::MissingMandatoryParameter,
            CauseRepr::StaleCookie { .. } => CauseCode::StaleCookie,
            CauseRepr::OutOfResource => CauseCode::OutOfResource,
            CauseRepr::UnresolvableAddress { .. } => CauseCode::UnresolvableAddress,
            CauseRepr::UnrecognizedChunkType { .. } => CauseCode::UnrecognizedChunkType,
            CauseRepr::InvalidMandatoryParameter => CauseCode::InvalidMandatoryParameter,
            CauseRepr::UnrecognizedParameters { .. } => CauseCode::UnrecognizedParameters,
            CauseRepr::NoUserData { .. } => CauseCode::NoUserData,
            CauseRepr::CookieReceivedWhileShuttingDown => CauseCode::CookieReceivedWhileShuttingDown,
            CauseRepr::RestartWithNewAddresses { .. } => CauseCode::RestartWithNewAddresses,
            CauseRepr::UserInitiatedAbort { .. } => CauseCode::UserInitiatedAbort,
            CauseRepr::ProtocolViolation { .. } => CauseCode::ProtocolViolation,
            CauseRepr::Unknown { code, .. } => return *code,
        };
        code as u16
    }

    /// Length on the wire without padding.
    pub fn buffer_len(&self) -> usize {
        4 + self.info_len()
    }

    /// Writes the cause (without trailing padding) into the front of `buf`; returns the bytes
    /// written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_front(buf)
    }

    fn info_len(&self) -> usize {
        match self {
            CauseRepr::InvalidStreamIdentifier { .. }
            | CauseRepr::StaleCookie { .. }
            | CauseRepr::NoUserData { .. } => 4,
            CauseRepr::MissingMandatoryParameter { param_types } => 4 + param_types.wire_len(),
            CauseRepr::OutOfResource
            | CauseRepr::InvalidMandatoryParameter
            | CauseRepr::CookieReceivedWhileShuttingDown => 0,
            CauseRepr::UnresolvableAddress { address } => address.item_len(),
            CauseRepr::UnrecognizedChunkType { chunk } => chunk.buffer_len(),
            CauseRepr::UnrecognizedParameters { params: list }
            | CauseRepr::RestartWithNewAddresses { addresses: list } => list.wire_len(),
            CauseRepr::UserInitiatedAbort { reason: info }
            | CauseRepr::ProtocolViolation { info }
            | CauseRepr::Unknown { info, .. } => info.len(),
        }
    }
}

impl<'a> ListItem<'a> for CauseRepr<'a> {
    const PADDED: bool = true;

    fn parse_item(bytes: &'a [u8]) -> Result<(Self, usize), WireError> {
        let (code, info, taken) = split_tlv(bytes, Element::CauseHeader, Element::Cause)?;
        let what = Element::Cause(code);
        let bad_length = || WireError::BadLength { what, length: 4 + info.len() };
        let exactly = |n: usize| if info.len() == n { Ok(()) } else { Err(bad_length()) };
        let cause = match code {
            1 => {
                // Stream Identifier, then 16 reserved bits.
                exactly(4)?;
                CauseRepr::InvalidStreamIdentifier { stream_id: be_u16(info, 0) }
            }
            2 => {
                // Number of missing parameters (32 bits), then that many 16-bit types.
                if info.len() < 4 {
                    return Err(bad_length());
                }
                let count = usize::try_from(be_u32(info, 0)).map_err(|_| bad_length())?;
                let types = count.checked_mul(2).and_then(|n| info.get(4..4 + n)).ok_or_else(bad_length)?;
                if info.len() != 4 + types.len() {
                    return Err(bad_length());
                }
                CauseRepr::MissingMandatoryParameter { param_types: List::parse(types)? }
            }
            3 => {
                exactly(4)?;
                CauseRepr::StaleCookie { staleness_us: be_u32(info, 0) }
            }
            4 => {
                exactly(0)?;
                CauseRepr::OutOfResource
            }
            5 => CauseRepr::UnresolvableAddress { address: RawParam::parse(info)? },
            6 => CauseRepr::UnrecognizedChunkType { chunk: RawChunk::parse(info)? },
            7 => {
                exactly(0)?;
                CauseRepr::InvalidMandatoryParameter
            }
            8 => CauseRepr::UnrecognizedParameters { params: List::parse(info)? },
            9 => {
                exactly(4)?;
                CauseRepr::NoUserData { tsn: Tsn(be_u32(info, 0)) }
            }
            10 => {
                exactly(0)?;
                CauseRepr::CookieReceivedWhileShuttingDown
            }
            11 => CauseRepr::RestartWithNewAddresses { addresses: List::parse(info)? },
            12 => CauseRepr::UserInitiatedAbort { reason: info },
            13 => CauseRepr::ProtocolViolation { info },
            _ => CauseRepr::Unknown { code, info },
        };
        Ok((cause, taken))
    }

    fn item_len(&self) -> usize {
        self.buffer_len()
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        super::check_room(buf, len)?;
        put_tlv_header(buf, self.code(), self.info_len(), Element::Cause(self.code()))?;
        let info = &mut buf[4..len];
        match self {
            CauseRepr::InvalidStreamIdentifier { stream_id } => {
                put_u16(info, 0, *stream_id);
                put_u16(info, 2, 0);
            }
            CauseRepr::MissingMandatoryParameter { param_types } => {
                let count = u32::try_from(param_types.count())
                    .map_err(|_| WireError::BadLength { what: Element::Cause(2), length: len })?;
                put_u32(info, 0, count);
                param_types.emit(&mut info[4..])?;
            }
            CauseRepr::StaleCookie { staleness_us } => put_u32(info, 0, *staleness_us),
            CauseRepr::NoUserData { tsn } => put_u32(info, 0, tsn.0),
            CauseRepr::OutOfResource
            | CauseRepr::InvalidMandatoryParameter
            | CauseRepr::CookieReceivedWhileShuttingDown => {}
            CauseRepr::UnresolvableAddress { address } => address.emit_item(info)?,
            CauseRepr::UnrecognizedChunkType { chunk } => {
                chunk.emit_unpadded(info)?;
            }
            CauseRepr::UnrecognizedParameters { params: list }
            | CauseRepr::RestartWithNewAddresses { addresses: list } => {
                list.emit(info)?;
            }
            CauseRepr::UserInitiatedAbort { reason: bytes }
            | CauseRepr::ProtocolViolation { info: bytes }
            | CauseRepr::Unknown { info: bytes, .. } => info.copy_from_slice(bytes),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::padded;

    /// Emits `cause`, checks the bytes, parses them back, with and without padding.
    fn both_ways(cause: CauseRepr<'_>, bytes: &[u8]) {
        let mut buf = [0u8; 64];
        let len = cause.emit(&mut buf).expect("fits");
        assert_eq!(&buf[..len], bytes, "{cause:?}");
        assert_eq!(CauseRepr::parse(bytes), Ok(cause));
        let mut padded_bytes = [0u8; 64];
        padded_bytes[..bytes.len()].copy_from_slice(bytes);
        assert_eq!(CauseRepr::parse(&padded_bytes[..padded(bytes.len())]), Ok(cause));
    }

    #[test]
    fn every_cause_of_section_3_3_10() {
        // 1 Invalid Stream Identifier: Length 8, stream 7, reserved 0.
        both_ways(CauseRepr::InvalidStreamIdentifier { stream_id: 7 }, &[0, 1, 0, 8, 0, 7, 0, 0]);
        // 2 Missing Mandatory Parameter: Length 12, count 2, types 7 (State Cookie) and 9.
        both_ways(
            CauseRepr::MissingMandatoryParameter { param_types: List::Items(&[7, 9]) },
            &[0, 2, 0, 12, 0, 0, 0, 2, 0, 7, 0, 9],
        );
        // 3 Stale Cookie: Length 8, 500000 us (0x0007a120).
        both_ways(CauseRepr::StaleCookie { staleness_us: 500_000 }, &[0, 3, 0, 8, 0, 0x07, 0xa1, 0x20]);
        // 4 Out of Resource: Length 4.
        both_ways(CauseRepr::OutOfResource, &[0, 4, 0, 4]);
        // 5 Unresolvable Address: Length 12, a Host Name Address (type 11, len 8) "a.b\0".
        both_ways(
            CauseRepr::UnresolvableAddress { address: RawParam { param_type: 11, value: b"a.b\0" } },
            &[0, 5, 0, 12, 0, 11, 0, 8, b'a', b'.', b'b', 0],
        );
        // 6 Unrecognized Chunk Type: Length 12, chunk type 0x4f, flags 1, length 8, value 1 2 3 4.
        both_ways(
            CauseRepr::UnrecognizedChunkType {
                chunk: RawChunk { chunk_type: 0x4f, flags: 1, value: &[1, 2, 3, 4] },
            },
            &[0, 6, 0, 12, 0x4f, 1, 0, 8, 1, 2, 3, 4],
        );
        // 7 Invalid Mandatory Parameter: Length 4.
        both_ways(CauseRepr::InvalidMandatoryParameter, &[0, 7, 0, 4]);
        // 8 Unrecognized Parameters: Length 12, param 0xc001 of length 5 (padded to 8), then 0x8000.
        both_ways(
            CauseRepr::UnrecognizedParameters {
                params: List::Items(&[
                    RawParam { param_type: 0xc001, value: &[9] },
                    RawParam { param_type: 0x8000, value: &[] },
                ]),
            },
            &[0, 8, 0, 16, 0xc0, 1, 0, 5, 9, 0, 0, 0, 0x80, 0, 0, 4],
        );
        // 9 No User Data: Length 8, TSN 0x01020304.
        both_ways(CauseRepr::NoUserData { tsn: Tsn(0x0102_0304) }, &[0, 9, 0, 8, 1, 2, 3, 4]);
        // 10 Cookie Received While Shutting Down: Length 4.
        both_ways(CauseRepr::CookieReceivedWhileShuttingDown, &[0, 10, 0, 4]);
        // 11 Restart with New Addresses: Length 12, one IPv4 address parameter 10.0.0.1.
        both_ways(
            CauseRepr::RestartWithNewAddresses {
                addresses: List::Items(&[RawParam { param_type: 5, value: &[10, 0, 0, 1] }]),
            },
            &[0, 11, 0, 12, 0, 5, 0, 8, 10, 0, 0, 1],
        );
        // 12 User-Initiated Abort: Length 7, reason "bye".
        both_ways(CauseRepr::UserInitiatedAbort { reason: b"bye" }, &[0, 12, 0, 7, b'b', b'y', b'e']);
        // 13 Protocol Violation: Length 6.
        both_ways(CauseRepr::ProtocolViolation { info: b"no" }, &[0, 13, 0, 6, b'n', b'o']);
        // An unknown code keeps its information.
        both_ways(CauseRepr::Unknown { code: 0x100, info: &[1] }, &[1, 0, 0, 5, 1]);
    }

    #[test]
    fn fixed_size_causes_refuse_other_lengths() {
        assert_eq!(
            CauseRepr::parse(&[0, 1, 0, 6, 0, 7]),
            Err(WireError::BadLength { what: Element::Cause(1), length: 6 })
        );
        assert_eq!(
            CauseRepr::parse(&[0, 4, 0, 5, 0]),
            Err(WireError::BadLength { what: Element::Cause(4), length: 5 })
        );
        // Missing Mandatory Parameter claiming 3 types but carrying 2.
        assert_eq!(
            CauseRepr::parse(&[0, 2, 0, 12, 0, 0, 0, 3, 0, 7, 0, 9]),
            Err(WireError::BadLength { what: Element::Cause(2), length: 12 })
        );
        // A count near u32::MAX does not overflow.
        assert_eq!(
            CauseRepr::parse(&[0, 2, 0, 8, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::BadLength { what: Element::Cause(2), length: 8 })
        );
    }
}
