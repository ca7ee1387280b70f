//! NLRI: IPv4 and IPv6 prefixes as BGP carries them (RFC 4271 section 4.3, RFC 4760 section 5).
//!
//! On the wire a prefix is one length octet (in bits) followed by the fewest octets that hold
//! that many bits. Trailing bits past the length are "irrelevant" (RFC 4271): the parser clears
//! them, so every prefix value in this crate is canonical (host bits zero) and two
//! announcements of one prefix compare equal.

use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Address family identifier (RFC 4760, IANA "Address Family Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    pub const fn from_u16(value: u16) -> Option<Afi> {
        match value {
            1 => Some(Afi::Ipv4),
            2 => Some(Afi::Ipv6),
            _ => None,
        }
    }

    pub const fn to_u16(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
        }
    }
}

/// Subsequent address family identifier (RFC 4760). Only unicast is spoken; other values are
/// kept by number where a capability or a route refresh names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Safi {
    Unicast,
}

impl Safi {
    pub const fn from_u8(value: u8) -> Option<Safi> {
        match value {
            1 => Some(Safi::Unicast),
            _ => None,
        }
    }

    pub const fn to_u8(self) -> u8 {
        match self {
            Safi::Unicast => 1,
        }
    }
}

/// An address family this speaker handles: the (AFI, SAFI) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub const fn from_afi_safi(afi: Afi, safi: Safi) -> Family {
        match (afi, safi) {
            (Afi::Ipv4, Safi::Unicast) => Family::Ipv4Unicast,
            (Afi::Ipv6, Safi::Unicast) => Family::Ipv6Unicast,
        }
    }

    /// From the wire numbers; `None` for a family this speaker does not handle.
    pub const fn from_numbers(afi: u16, safi: u8) -> Option<Family> {
        match (Afi::from_u16(afi), Safi::from_u8(safi)) {
            (Some(afi), Some(safi)) => Some(Family::from_afi_safi(afi, safi)),
            _ => None,
        }
    }

    pub const fn afi(self) -> Afi {
        match self {
            Family::Ipv4Unicast => Afi::Ipv4,
            Family::Ipv6Unicast => Afi::Ipv6,
        }
    }

    pub const fn safi(self) -> Safi {
        Safi::Unicast
    }
}

/// Why a prefix could not be built from an address and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// The length is longer than the address (more than 32 or 128 bits).
    LengthTooLong { len: u8 },
    /// Bits past the length are set (`10.0.0.1/8`); use `new_truncating` to clear them.
    HostBitsSet,
}

/// Why NLRI bytes could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NlriError {
    /// A length octet promises more bits than the address family has.
    LengthTooLong { len: u8 },
    /// The field ends before the octets that a length octet promises.
    Truncated,
}

/// A canonical IPv4 prefix: `len` at most 32, bits past `len` zero. Ordered by address, then
/// length (the RIBs are keyed by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

/// A canonical IPv6 prefix: `len` at most 128, bits past `len` zero. Ordered by address, then
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

// The order of `(address octets, len)`, compared as one integer: a RIB lookup compares keys
// some twenty times, and the octet-by-octet comparison of the derived order costs several
// instructions each time.
impl Ord for Ipv4Prefix {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        let key = |p: &Self| (u64::from(p.addr.to_bits()) << 8) | u64::from(p.len);
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Ipv4Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ipv6Prefix {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.addr.to_bits(), self.len).cmp(&(other.addr.to_bits(), other.len))
    }
}

impl PartialOrd for Ipv6Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A prefix of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

const fn mask_v4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

const fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

// `len` is the prefix length in bits, not the size of a collection.
#[allow(clippy::len_without_is_empty)]
impl Ipv4Prefix {
    pub const MAX_LEN: u8 = 32;
    /// `0.0.0.0/0`.
    pub const DEFAULT: Ipv4Prefix = Ipv4Prefix { addr: Ipv4Addr::UNSPECIFIED, len: 0 };

    /// A prefix from an address without host bits; refuses `10.0.0.1/8`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Prefix, PrefixError> {
        let prefix = Ipv4Prefix::new_truncating(addr, len)?;
        if prefix.addr == addr {
            Ok(prefix)
        } else {
            Err(PrefixError::HostBitsSet)
        }
    }

    /// A prefix from any address, its host bits cleared.
    pub fn new_truncating(addr: Ipv4Addr, len: u8) -> Result<Ipv4Prefix, PrefixError> {
        if len > Self::MAX_LEN {
            return Err(PrefixError::LengthTooLong { len });
        }
        Ok(Ipv4Prefix { addr: Ipv4Addr::from_bits(addr.to_bits() & mask_v4(len)), len })
    }

    pub const fn addr(self) -> Ipv4Addr {
        self.addr
    }

    pub const fn len(self) -> u8 {
        self.len
    }

    /// The netmask, `255.255.255.0` for a /24.
    pub const fn mask(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(mask_v4(self.len))
    }

    /// Whether `addr` lies inside this prefix.
    pub const fn contains_addr(self, addr: Ipv4Addr) -> bool {
        addr.to_bits() & mask_v4(self.len) == self.addr.to_bits()
    }

    /// Whether `other` is this prefix or a more specific one inside it.
    pub const fn contains(self, other: Ipv4Prefix) -> bool {
        other.len >= self.len && self.contains_addr(other.addr)
    }

    /// Octets on the wire: the length octet and the address octets.
    pub const fn wire_len(self) -> usize {
        1 + (self.len as usize).div_ceil(8)
    }

    /// Reads one prefix from the front of `bytes`; returns it and the octets it took.
    pub fn parse(bytes: &[u8]) -> Result<(Ipv4Prefix, usize), NlriError> {
        let (len, octets) = read_prefix::<4>(bytes, Self::MAX_LEN)?;
        let addr = Ipv4Addr::from(octets);
        let prefix = Ipv4Prefix { addr: Ipv4Addr::from_bits(addr.to_bits() & mask_v4(len)), len };
        Ok((prefix, prefix.wire_len()))
    }

    /// Writes the prefix at the front of `buf` (at least `wire_len` octets); returns `wire_len`.
    pub fn emit(self, buf: &mut [u8]) -> usize {
        write_prefix(buf, self.len, &self.addr.octets())
    }
}

#[allow(clippy::len_without_is_empty)]
impl Ipv6Prefix {
    pub const MAX_LEN: u8 = 128;
    /// `::/0`.
    pub const DEFAULT: Ipv6Prefix = Ipv6Prefix { addr: Ipv6Addr::UNSPECIFIED, len: 0 };

    /// A prefix from an address without host bits.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Ipv6Prefix, PrefixError> {
        let prefix = Ipv6Prefix::new_truncating(addr, len)?;
        if prefix.addr == addr {
            Ok(prefix)
        } else {
            Err(PrefixError::HostBitsSet)
        }
    }

    /// A prefix from any address, its host bits cleared.
    pub fn new_truncating(addr: Ipv6Addr, len: u8) -> Result<Ipv6Prefix, PrefixError> {
        if len > Self::MAX_LEN {
            return Err(PrefixError::LengthTooLong { len });
        }
        Ok(Ipv6Prefix { addr: Ipv6Addr::from_bits(addr.to_bits() & mask_v6(len)), len })
    }

    pub const fn addr(self) -> Ipv6Addr {
        self.addr
    }

    pub const fn len(self) -> u8 {
        self.len
    }

    pub const fn contains_addr(self, addr: Ipv6Addr) -> bool {
        addr.to_bits() & mask_v6(self.len) == self.addr.to_bits()
    }

    pub const fn contains(self, other: Ipv6Prefix) -> bool {
        other.len >= self.len && self.contains_addr(other.addr)
    }

    pub const fn wire_len(self) -> usize {
        1 + (self.len as usize).div_ceil(8)
    }

    pub fn parse(bytes: &[u8]) -> Result<(Ipv6Prefix, usize), NlriError> {
        let (len, octets) = read_prefix::<16>(bytes, Self::MAX_LEN)?;
        let addr = Ipv6Addr::from(octets);
        let prefix = Ipv6Prefix { addr: Ipv6Addr::from_bits(addr.to_bits() & mask_v6(len)), len };
        Ok((prefix, prefix.wire_len()))
    }

    pub fn emit(self, buf: &mut [u8]) -> usize {
        write_prefix(buf, self.len, &self.addr.octets())
    }
}

#[allow(clippy::len_without_is_empty)]
impl Prefix {
    pub const fn family(self) -> Family {
        match self {
            Prefix::V4(_) => Family::Ipv4Unicast,
            Prefix::V6(_) => Family::Ipv6Unicast,
        }
    }

    pub const fn len(self) -> u8 {
        match self {
            Prefix::V4(p) => p.len,
            Prefix::V6(p) => p.len,
        }
    }

    pub const fn wire_len(self) -> usize {
        match self {
            Prefix::V4(p) => p.wire_len(),
            Prefix::V6(p) => p.wire_len(),
        }
    }

    pub fn emit(self, buf: &mut [u8]) -> usize {
        match self {
            Prefix::V4(p) => p.emit(buf),
            Prefix::V6(p) => p.emit(buf),
        }
    }
}

impl From<Ipv4Prefix> for Prefix {
    fn from(p: Ipv4Prefix) -> Prefix {
        Prefix::V4(p)
    }
}

impl From<Ipv6Prefix> for Prefix {
    fn from(p: Ipv6Prefix) -> Prefix {
        Prefix::V6(p)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

/// Reads every IPv4 prefix of an NLRI or Withdrawn Routes field, which must hold nothing else.
pub fn parse_ipv4_prefixes(mut bytes: &[u8]) -> Result<Vec<Ipv4Prefix>, NlriError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (prefix, used) = Ipv4Prefix::parse(bytes)?;
        out.push(prefix);
        bytes = bytes.get(used..).ok_or(NlriError::Truncated)?;
    }
    Ok(out)
}

/// Reads every IPv6 prefix of an MP_REACH_NLRI / MP_UNREACH_NLRI field.
pub fn parse_ipv6_prefixes(mut bytes: &[u8]) -> Result<Vec<Ipv6Prefix>, NlriError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (prefix, used) = Ipv6Prefix::parse(bytes)?;
        out.push(prefix);
        bytes = bytes.get(used..).ok_or(NlriError::Truncated)?;
    }
    Ok(out)
}

/// The length octet and the address octets (zero-padded to `N`) at the front of `bytes`.
fn read_prefix<const N: usize>(bytes: &[u8], max_len: u8) -> Result<(u8, [u8; N]), NlriError> {
    let (&len, rest) = bytes.split_first().ok_or(NlriError::Truncated)?;
    if len > max_len {
        return Err(NlriError::LengthTooLong { len });
    }
    let count = usize::from(len).div_ceil(8);
    let src = rest.get(..count).ok_or(NlriError::Truncated)?;
    let mut octets = [0u8; N];
    // `count <= N` because `len <= max_len == 8 * N`.
    for (dst, src) in octets.iter_mut().zip(src) {
        *dst = *src;
    }
    Ok((len, octets))
}

fn write_prefix(buf: &mut [u8], len: u8, octets: &[u8]) -> usize {
    let count = usize::from(len).div_ceil(8);
    buf[0] = len;
    buf[1..1 + count].copy_from_slice(&octets[..count]);
    1 + count
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(Ipv4Addr::new(a, b, c, d), len).unwrap()
    }

    #[test]
    fn prefixes_order_by_address_octets_then_length() {
        let mut rng = Csprng::seed_from_u64(1);
        let mut next = move || rng.next_u64();
        for _ in 0..5_000 {
            let (x, y) = (next(), next());
            let a = Ipv4Prefix::new_truncating(Ipv4Addr::from(x as u32), (x >> 40) as u8 % 33).unwrap();
            let b = Ipv4Prefix::new_truncating(
                Ipv4Addr::from(y as u32 & 0xffff_0000 | x as u32 & 0xffff),
                (y >> 40) as u8 % 33,
            )
            .unwrap();
            assert_eq!(a.cmp(&b), (a.addr().octets(), a.len()).cmp(&(b.addr().octets(), b.len())));
            let (c, d) =
                (Ipv6Addr::from(u128::from(x) << 64 | u128::from(y)), Ipv6Addr::from(u128::from(x) << 64));
            let c = Ipv6Prefix::new_truncating(c, (y >> 50) as u8 % 129).unwrap();
            let d = Ipv6Prefix::new_truncating(d, (x >> 50) as u8 % 129).unwrap();
            assert_eq!(c.cmp(&d), (c.addr().octets(), c.len()).cmp(&(d.addr().octets(), d.len())));
            assert_eq!(a.partial_cmp(&a), Some(core::cmp::Ordering::Equal));
        }
    }

    #[test]
    fn canonical_construction() {
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 1), 8), Err(PrefixError::HostBitsSet));
        assert_eq!(Ipv4Prefix::new_truncating(Ipv4Addr::new(10, 1, 2, 3), 8).unwrap(), v4(10, 0, 0, 0, 8));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 33), Err(PrefixError::LengthTooLong { len: 33 }));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 0), Ok(Ipv4Prefix::DEFAULT));
        assert_eq!(v4(192, 0, 2, 0, 24).mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(v4(10, 0, 0, 0, 8).contains(v4(10, 1, 0, 0, 16)));
        assert!(!v4(10, 1, 0, 0, 16).contains(v4(10, 0, 0, 0, 8)));
        assert_eq!(v4(10, 1, 0, 0, 16).to_string(), "10.1.0.0/16");
        let p6 = Ipv6Prefix::new("2001:db8::".parse().unwrap(), 32).unwrap();
        assert_eq!(p6.to_string(), "2001:db8::/32");
        assert_eq!(Ipv6Prefix::new("2001:db8::1".parse().unwrap(), 64), Err(PrefixError::HostBitsSet));
        assert_eq!(Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 129), Err(PrefixError::LengthTooLong { len: 129 }));
        assert!(p6.contains_addr("2001:db8:ffff::1".parse().unwrap()));
    }

    #[test]
    fn wire_both_ways() {
        // 10.0.0.0/8, 192.0.2.0/24, 0.0.0.0/0, 198.51.100.128/25, 203.0.113.7/32
        let bytes = [8, 10, 24, 192, 0, 2, 0, 25, 198, 51, 100, 128, 32, 203, 0, 113, 7];
        let prefixes = parse_ipv4_prefixes(&bytes).unwrap();
        assert_eq!(
            prefixes,
            vec![
                v4(10, 0, 0, 0, 8),
                v4(192, 0, 2, 0, 24),
                Ipv4Prefix::DEFAULT,
                v4(198, 51, 100, 128, 25),
                v4(203, 0, 113, 7, 32)
            ]
        );
        let mut out = [0u8; 32];
        let mut at = 0;
        for p in &prefixes {
            at += p.emit(&mut out[at..]);
        }
        assert_eq!(&out[..at], &bytes);

        let v6 = [32, 0x20, 0x01, 0x0d, 0xb8, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let p6 = parse_ipv6_prefixes(&v6).unwrap();
        assert_eq!(p6[0], Ipv6Prefix::new("2001:db8::".parse().unwrap(), 32).unwrap());
        assert_eq!(p6[1], Ipv6Prefix::DEFAULT);
        assert_eq!(p6[2], Ipv6Prefix::new("::1".parse().unwrap(), 128).unwrap());
        let mut at = 0;
        for p in &p6 {
            at += p.emit(&mut out[at..]);
        }
        assert_eq!(&out[..at], &v6);
    }

    #[test]
    fn trailing_bits_are_cleared() {
        let (p, used) = Ipv4Prefix::parse(&[9, 10, 0xff]).unwrap();
        assert_eq!((p, used), (v4(10, 128, 0, 0, 9), 3));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_ipv4_prefixes(&[33, 1, 2, 3, 4, 5]), Err(NlriError::LengthTooLong { len: 33 }));
        assert_eq!(parse_ipv4_prefixes(&[24, 10, 0]), Err(NlriError::Truncated));
        assert_eq!(parse_ipv6_prefixes(&[129]), Err(NlriError::LengthTooLong { len: 129 }));
        assert_eq!(parse_ipv6_prefixes(&[64, 0x20, 0x01]), Err(NlriError::Truncated));
        // Every prefix of a valid field either parses or fails cleanly.
        let bytes = [8, 10, 24, 192, 0, 2];
        for cut in 0..bytes.len() {
            let _ = parse_ipv4_prefixes(&bytes[..cut]);
        }
    }
}
