//! INIT and INIT ACK parameters, and the Heartbeat Info parameter (RFC 9260 sections 3.2.1,
//! 3.3.2, 3.3.3 and 3.3.5). Each is a type-length-value, padded to 4 bytes.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::list::{List, ListItem};
use super::{be_u32, put_tlv_header, put_u32, split_tlv, Element, UnrecognizedAction, WireError};

/// Parameter types this crate knows (RFC 9260 section 3.3.2.1 and 3.3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ParamType {
    HeartbeatInfo = 1,
    Ipv4Address = 5,
    Ipv6Address = 6,
    StateCookie = 7,
    UnrecognizedParameter = 8,
    CookiePreservative = 9,
    HostNameAddress = 11,
    SupportedAddressTypes = 12,
}

/// Address types listed in a Supported Address Types parameter: the parameter type of each
/// address form (section 3.3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressType;

impl AddressType {
    pub const IPV4: u16 = ParamType::Ipv4Address as u16;
    pub const IPV6: u16 = ParamType::Ipv6Address as u16;
    pub const HOST_NAME: u16 = ParamType::HostNameAddress as u16;
}

/// A parameter as it came: its type and its value, not interpreted. Used for unknown
/// parameters and wherever a parameter is carried whole (Unrecognized Parameter, the
/// Unresolvable Address and Restart With New Addresses causes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawParam<'a> {
    pub param_type: u16,
    pub value: &'a [u8],
}

impl<'a> RawParam<'a> {
    /// What a receiver that does not know this parameter type does with it (section 3.2.1).
    pub const fn action(&self) -> UnrecognizedAction {
        UnrecognizedAction::from_high_bits((self.param_type >> 8) as u8)
    }

    /// Parses one parameter that fills `bytes` (up to its padding).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (param, taken) = Self::parse_item(bytes)?;
        if taken != bytes.len() {
            return Err(WireError::BadLength { what: Element::Param(param.param_type), length: bytes.len() });
        }
        Ok(param)
    }
}

impl<'a> ListItem<'a> for RawParam<'a> {
    const PADDED: bool = true;

    fn parse_item(bytes: &'a [u8]) -> Result<(Self, usize), WireError> {
        let (param_type, value, taken) = split_tlv(bytes, Element::ParamHeader, Element::Param)?;
        Ok((RawParam { param_type, value }, taken))
    }

    fn item_len(&self) -> usize {
        4 + self.value.len()
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        emit_tlv(buf, self.param_type, self.value)
    }
}

/// A parameter of an INIT, INIT ACK, HEARTBEAT or HEARTBEAT ACK chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRepr<'a> {
    /// Heartbeat Info (type 1): the sender's opaque bytes, echoed in the HEARTBEAT ACK.
    HeartbeatInfo(&'a [u8]),
    /// IPv4 Address (type 5).
    Ipv4Address(Ipv4Addr),
    /// IPv6 Address (type 6).
    Ipv6Address(Ipv6Addr),
    /// State Cookie (type 7), in an INIT ACK.
    StateCookie(&'a [u8]),
    /// Unrecognized Parameter (type 8), in an INIT ACK: a parameter of the INIT copied whole.
    UnrecognizedParameter(RawParam<'a>),
    /// Cookie Preservative (type 9): suggested cookie life-span increment, in milliseconds.
    CookiePreservative(u32),
    /// Host Name Address (type 11): deprecated; a receiver aborts with "Unresolvable Address"
    /// (section 3.3.2.1). The name's bytes as sent (NUL-terminated, possibly padded).
    HostNameAddress(&'a [u8]),
    /// Supported Address Types (type 12): parameter types of the address forms the sender
    /// supports (see [`AddressType`]).
    SupportedAddressTypes(List<'a, u16>),
    /// Any other parameter; its two high type bits say what to do with it.
    Unknown(RawParam<'a>),
}

impl<'a> ParamRepr<'a> {
    /// Parses one parameter that fills `bytes` (up to its padding).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (param, taken) = Self::parse_item(bytes)?;
        if taken != bytes.len() {
            return Err(WireError::BadLength {
                what: Element::Param(param.param_type()),
                length: bytes.len(),
            });
        }
        Ok(param)
    }

    /// The parameter type on the wire.
    pub fn param_type(&self) -> u16 {
        match self {
            ParamRepr::HeartbeatInfo(_) => ParamType::HeartbeatInfo as u16,
            ParamRepr::Ipv4Address(_) => ParamType::Ipv4Address as u16,
            ParamRepr::Ipv6Address(_) => ParamType::Ipv6Address as u16,
            ParamRepr::StateCookie(_) => ParamType::StateCookie as u16,
            ParamRepr::UnrecognizedParameter(_) => ParamType::UnrecognizedParameter as u16,
            ParamRepr::CookiePreservative(_) => ParamType::CookiePreservative as u16,
            ParamRepr::HostNameAddress(_) => ParamType::HostNameAddress as u16,
            ParamRepr::SupportedAddressTypes(_) => ParamType::SupportedAddressTypes as u16,
            ParamRepr::Unknown(raw) => raw.param_type,
        }
    }

    /// Length on the wire without padding.
    pub fn buffer_len(&self) -> usize {
        4 + self.value_len()
    }

    /// Writes the parameter (without trailing padding) into the front of `buf`; returns the
    /// bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_front(buf)
    }

    fn value_len(&self) -> usize {
        match self {
            ParamRepr::HeartbeatInfo(bytes)
            | ParamRepr::StateCookie(bytes)
            | ParamRepr::HostNameAddress(bytes) => bytes.len(),
            ParamRepr::Ipv4Address(_) | ParamRepr::CookiePreservative(_) => 4,
            ParamRepr::Ipv6Address(_) => 16,
            ParamRepr::UnrecognizedParameter(raw) => raw.item_len(),
            ParamRepr::SupportedAddressTypes(types) => types.wire_len(),
            ParamRepr::Unknown(raw) => raw.value.len(),
        }
    }
}

impl<'a> ListItem<'a> for ParamRepr<'a> {
    const PADDED: bool = true;

    fn parse_item(bytes: &'a [u8]) -> Result<(Self, usize), WireError> {
        let (param_type, value, taken) = split_tlv(bytes, Element::ParamHeader, Element::Param)?;
        let what = Element::Param(param_type);
        let bad_length = || WireError::BadLength { what, length: 4 + value.len() };
        let param = match param_type {
            1 => ParamRepr::HeartbeatInfo(value),
            5 => {
                let octets: [u8; 4] = value.try_into().map_err(|_| bad_length())?;
                ParamRepr::Ipv4Address(Ipv4Addr::from(octets))
            }
            6 => {
                let octets: [u8; 16] = value.try_into().map_err(|_| bad_length())?;
                ParamRepr::Ipv6Address(Ipv6Addr::from(octets))
            }
            7 => ParamRepr::StateCookie(value),
            8 => ParamRepr::UnrecognizedParameter(RawParam::parse(value)?),
            9 => {
                if value.len() != 4 {
                    return Err(bad_length());
                }
                ParamRepr::CookiePreservative(be_u32(value, 0))
            }
            11 => ParamRepr::HostNameAddress(value),
            12 => {
                if value.len() % 2 != 0 {
                    return Err(bad_length());
                }
                ParamRepr::SupportedAddressTypes(List::parse(value)?)
            }
            _ => ParamRepr::Unknown(RawParam { param_type, value }),
        };
        Ok((param, taken))
    }

    fn item_len(&self) -> usize {
        self.buffer_len()
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let what = Element::Param(self.param_type());
        super::check_room(buf, self.buffer_len())?;
        put_tlv_header(buf, self.param_type(), self.value_len(), what)?;
        let value = &mut buf[4..self.buffer_len()];
        match self {
            ParamRepr::HeartbeatInfo(bytes)
            | ParamRepr::StateCookie(bytes)
            | ParamRepr::HostNameAddress(bytes) => value.copy_from_slice(bytes),
            ParamRepr::Ipv4Address(addr) => value.copy_from_slice(&addr.octets()),
            ParamRepr::Ipv6Address(addr) => value.copy_from_slice(&addr.octets()),
            ParamRepr::UnrecognizedParameter(raw) => raw.emit_item(value)?,
            ParamRepr::CookiePreservative(ms) => put_u32(value, 0, *ms),
            ParamRepr::SupportedAddressTypes(types) => {
                types.emit(value)?;
            }
            ParamRepr::Unknown(raw) => value.copy_from_slice(raw.value),
        }
        Ok(())
    }
}

/// Writes a TLV (header and value, no padding) into `buf`.
pub(super) fn emit_tlv(buf: &mut [u8], kind: u16, value: &[u8]) -> Result<(), WireError> {
    let len = 4 + value.len();
    super::check_room(buf, len)?;
    put_tlv_header(buf, kind, value.len(), Element::Param(kind))?;
    buf[4..len].copy_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::padded;

    /// Emits `param`, checks the bytes, parses them back.
    fn both_ways(param: ParamRepr<'_>, bytes: &[u8]) {
        let mut buf = [0u8; 64];
        let len = param.emit(&mut buf).expect("fits");
        assert_eq!(&buf[..len], bytes);
        assert_eq!(ParamRepr::parse(bytes), Ok(param));
        // The same with its padding.
        let mut padded_bytes = [0u8; 64];
        padded_bytes[..bytes.len()].copy_from_slice(bytes);
        assert_eq!(ParamRepr::parse(&padded_bytes[..padded(bytes.len())]), Ok(param));
    }

    #[test]
    fn ipv4_address() {
        // Type 5, Length 8, 192.0.2.1 (RFC 9260 section 3.3.2.1).
        both_ways(ParamRepr::Ipv4Address(Ipv4Addr::new(192, 0, 2, 1)), &[0, 5, 0, 8, 192, 0, 2, 1]);
    }

    #[test]
    fn ipv6_address() {
        // Type 6, Length 20, 2001:db8::1.
        let addr: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut bytes = [0u8; 20];
        bytes[..4].copy_from_slice(&[0, 6, 0, 20]);
        bytes[4..].copy_from_slice(&addr.octets());
        both_ways(ParamRepr::Ipv6Address(addr), &bytes);
    }

    #[test]
    fn state_cookie_heartbeat_info_host_name() {
        // Type 7, Length 7, a 3-byte cookie (padded by one byte on the wire).
        both_ways(ParamRepr::StateCookie(b"abc"), &[0, 7, 0, 7, b'a', b'b', b'c']);
        // Type 1, Length 8.
        both_ways(ParamRepr::HeartbeatInfo(&[1, 2, 3, 4]), &[0, 1, 0, 8, 1, 2, 3, 4]);
        // Type 11, Length 9, "host\0".
        both_ways(ParamRepr::HostNameAddress(b"host\0"), &[0, 11, 0, 9, b'h', b'o', b's', b't', 0]);
    }

    #[test]
    fn cookie_preservative() {
        // Type 9, Length 8, 1000 ms.
        both_ways(ParamRepr::CookiePreservative(1000), &[0, 9, 0, 8, 0, 0, 0x03, 0xe8]);
    }

    #[test]
    fn supported_address_types() {
        // Type 12, Length 6, IPv4 (5): one address type, padded by 2.
        both_ways(ParamRepr::SupportedAddressTypes(List::Items(&[AddressType::IPV4])), &[0, 12, 0, 6, 0, 5]);
        // Type 12, Length 8, IPv4 and IPv6.
        both_ways(
            ParamRepr::SupportedAddressTypes(List::Items(&[AddressType::IPV4, AddressType::IPV6])),
            &[0, 12, 0, 8, 0, 5, 0, 6],
        );
        // An odd byte count is not a list of 16-bit types.
        assert_eq!(
            ParamRepr::parse(&[0, 12, 0, 7, 0, 5, 0, 0]),
            Err(WireError::BadLength { what: Element::Param(12), length: 7 })
        );
    }

    #[test]
    fn unrecognized_parameter_carries_the_parameter_whole() {
        // Type 8, Length 12, holding type 0x8123, Length 8, value 1 2 3 4.
        let inner = RawParam { param_type: 0x8123, value: &[1, 2, 3, 4] };
        both_ways(ParamRepr::UnrecognizedParameter(inner), &[0, 8, 0, 12, 0x81, 0x23, 0, 8, 1, 2, 3, 4]);
    }

    #[test]
    fn unknown_parameter_and_its_action() {
        // ECN Capable (0x8000), Length 4: unknown here, "skip".
        let param = ParamRepr::parse(&[0x80, 0, 0, 4]).unwrap();
        let ParamRepr::Unknown(raw) = param else { panic!("{param:?}") };
        assert_eq!(raw, RawParam { param_type: 0x8000, value: &[] });
        assert_eq!(raw.action(), UnrecognizedAction::Skip);
        assert_eq!(RawParam { param_type: 0x4001, value: &[] }.action(), UnrecognizedAction::StopAndReport);
        assert_eq!(RawParam { param_type: 0xc000, value: &[] }.action(), UnrecognizedAction::SkipAndReport);
        assert_eq!(RawParam { param_type: 0x0020, value: &[] }.action(), UnrecognizedAction::Stop);
        both_ways(param, &[0x80, 0, 0, 4]);
    }

    #[test]
    fn bad_lengths_are_typed() {
        // IPv4 address with Length 7.
        assert_eq!(
            ParamRepr::parse(&[0, 5, 0, 7, 1, 2, 3, 0]),
            Err(WireError::BadLength { what: Element::Param(5), length: 7 })
        );
        // Length 3: below the header.
        assert_eq!(
            ParamRepr::parse(&[0, 7, 0, 3]),
            Err(WireError::BadLength { what: Element::Param(7), length: 3 })
        );
        // Length 12 over 8 bytes.
        assert_eq!(
            ParamRepr::parse(&[0, 7, 0, 12, 1, 2, 3, 4]),
            Err(WireError::Truncated { what: Element::Param(7), need: 12, have: 8 })
        );
        // Three bytes: no header.
        assert_eq!(
            ParamRepr::parse(&[0, 7, 0]),
            Err(WireError::Truncated { what: Element::ParamHeader, need: 4, have: 3 })
        );
    }

    #[test]
    fn a_list_pads_every_parameter_but_the_last() {
        let params = [
            ParamRepr::StateCookie(b"abcde"),
            ParamRepr::CookiePreservative(1),
            ParamRepr::HeartbeatInfo(b"x"),
        ];
        let list = List::Items(&params);
        // 9 -> 12, 8, then 5 unpadded.
        assert_eq!(list.wire_len(), 12 + 8 + 5);
        let mut buf = [0xffu8; 32];
        let len = list.emit(&mut buf).unwrap();
        assert_eq!(len, 25);
        assert_eq!(&buf[9..12], &[0, 0, 0], "padding is zeroed");
        let parsed: List<'_, ParamRepr<'_>> = List::parse(&buf[..len]).unwrap();
        assert_eq!(parsed, list);
        assert_eq!(parsed.count(), 3);
    }
}
