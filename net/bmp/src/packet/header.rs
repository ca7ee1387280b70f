//! The per-peer header (RFC 7854 section 4.2; RFC 9069 section 4.1 for the Loc-RIB type).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Peer Type   |  Peer Flags   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Peer Distinguisher (present based on peer type)       |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Peer Address (16 bytes)                       |
//! ~                                                               ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           Peer AS                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Peer BGP ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Timestamp (seconds)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Timestamp (microseconds)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Error, Writer};
use crate::packet::EmitError;

/// Length of the per-peer header.
pub const PEER_HEADER_LEN: usize = 42;

mod field {
    use core::ops::Range;
    pub const PEER_TYPE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const DISTINGUISHER: Range<usize> = 2..10;
    pub const ADDRESS: Range<usize> = 10..26;
    pub const AS: Range<usize> = 26..30;
    pub const BGP_ID: Range<usize> = 30..34;
    pub const SECONDS: Range<usize> = 34..38;
    pub const MICROS: Range<usize> = 38..42;
}

/// Whose routes the message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerType {
    /// A peer of the global instance (distinguisher zero).
    Global,
    /// A peer of a VRF, identified by its route distinguisher.
    Rd,
    /// A peer of a local instance (the distinguisher is locally chosen).
    Local,
    /// RFC 9069: the router's own Loc-RIB; address zero, AS and BGP ID the instance's.
    LocRib,
    /// A type this crate does not know; kept so that the message round-trips.
    Other(u8),
}

impl PeerType {
    pub const fn from_u8(value: u8) -> PeerType {
        match value {
            0 => PeerType::Global,
            1 => PeerType::Rd,
            2 => PeerType::Local,
            3 => PeerType::LocRib,
            other => PeerType::Other(other),
        }
    }

    pub const fn to_u8(self) -> u8 {
        match self {
            PeerType::Global => 0,
            PeerType::Rd => 1,
            PeerType::Local => 2,
            PeerType::LocRib => 3,
            PeerType::Other(other) => other,
        }
    }
}

/// The peer flags byte. Their meaning depends on the peer type: for peers (types 0-2) V, L,
/// A and O; for the Loc-RIB (type 3) the same top bit is F.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerFlags(pub u8);

impl PeerFlags {
    /// V: the peer address is IPv6 (peer types 0-2; the encoder sets it from the address).
    pub const V: u8 = 0x80;
    /// L: post-policy Adj-RIB-In (else pre-policy).
    pub const L: u8 = 0x40;
    /// A: AS_PATH in the legacy 2-byte format.
    pub const A: u8 = 0x20;
    /// O: Adj-RIB-Out (RFC 8671).
    pub const O: u8 = 0x10;
    /// F: the Loc-RIB is filtered (RFC 9069, peer type 3 only).
    pub const F: u8 = 0x80;

    pub const fn contains(self, bit: u8) -> bool {
        self.0 & bit == bit
    }
}

/// The validated per-peer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerHeader {
    pub peer_type: PeerType,
    /// The flags as sent; for peer types 0-2 the V bit is written from `address`.
    pub flags: PeerFlags,
    /// The route distinguisher (type 1), a local value (type 2), zero or an RD (type 3).
    pub distinguisher: [u8; 8],
    /// The peer's address; for the Loc-RIB `0.0.0.0` (zero-filled on the wire).
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
    pub timestamp_secs: u32,
    pub timestamp_micros: u32,
}

/// A read view of the 42-byte per-peer header.
#[derive(Debug, Clone)]
pub struct PeerHeaderPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PeerHeaderPacket<T> {
    /// A view whose accessors cannot panic.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < PEER_HEADER_LEN {
            return Err(Error::Truncated { at: super::HEADER_LEN + len });
        }
        Ok(PeerHeaderPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word(&self, range: core::ops::Range<usize>) -> u32 {
        let b = &self.b()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn peer_type(&self) -> u8 {
        self.b()[field::PEER_TYPE]
    }

    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }

    pub fn distinguisher(&self) -> [u8; 8] {
        let mut out = [0; 8];
        out.copy_from_slice(&self.b()[field::DISTINGUISHER]);
        out
    }

    pub fn address_bytes(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out.copy_from_slice(&self.b()[field::ADDRESS]);
        out
    }

    pub fn asn(&self) -> u32 {
        self.word(field::AS)
    }

    pub fn bgp_id(&self) -> u32 {
        self.word(field::BGP_ID)
    }

    pub fn timestamp_secs(&self) -> u32 {
        self.word(field::SECONDS)
    }

    pub fn timestamp_micros(&self) -> u32 {
        self.word(field::MICROS)
    }
}

/// A 16-byte address field: IPv6 as is, IPv4 in the low-order 4 bytes.
pub(crate) fn address_field(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => {
            let mut out = [0; 16];
            out[12..].copy_from_slice(&a.octets());
            out
        }
    }
}

/// Reads a 16-byte address field as IPv6 (`v6`) or as IPv4 from its low-order 4 bytes.
pub(crate) fn address_from(bytes: [u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}

impl PeerHeader {
    /// True when the address fields of this peer's messages are IPv6 (the V flag).
    pub fn is_v6(&self) -> bool {
        self.address.is_ipv6()
    }

    /// The flags byte as written: V follows the address for peer types 0-2.
    pub fn wire_flags(&self) -> u8 {
        match self.peer_type {
            PeerType::Global | PeerType::Rd | PeerType::Local => {
                let v = if self.address.is_ipv6() { PeerFlags::V } else { 0 };
                (self.flags.0 & !PeerFlags::V) | v
            }
            PeerType::LocRib | PeerType::Other(_) => self.flags.0,
        }
    }

    pub fn parse<T: AsRef<[u8]>>(packet: &PeerHeaderPacket<T>) -> PeerHeader {
        let peer_type = PeerType::from_u8(packet.peer_type());
        let flags = PeerFlags(packet.flags());
        let v6 = match peer_type {
            PeerType::Global | PeerType::Rd | PeerType::Local => flags.contains(PeerFlags::V),
            // Loc-RIB: zero-filled; another type: unknown meaning, read as IPv6 if not
            // IPv4-shaped so that nothing is lost.
            PeerType::LocRib => false,
            PeerType::Other(_) => packet.address_bytes()[..12].iter().any(|&b| b != 0),
        };
        PeerHeader {
            peer_type,
            flags,
            distinguisher: packet.distinguisher(),
            address: address_from(packet.address_bytes(), v6),
            asn: packet.asn(),
            bgp_id: Ipv4Addr::from(packet.bgp_id()),
            timestamp_secs: packet.timestamp_secs(),
            timestamp_micros: packet.timestamp_micros(),
        }
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u8(self.peer_type.to_u8())?;
        w.u8(self.wire_flags())?;
        w.put(&self.distinguisher)?;
        w.put(&address_field(self.address))?;
        w.u32(self.asn)?;
        w.put(&self.bgp_id.octets())?;
        w.u32(self.timestamp_secs)?;
        w.u32(self.timestamp_micros)
    }

    /// Writes the 42 bytes into `buf` (for encoders that build a message around a PDU).
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<(), EmitError> {
        self.emit(&mut Writer::new(buf))
    }
}
