//! IPv4 addresses and prefixes as written in the configuration and on the console.
//!
//! Parsing is strict: four decimal octets without leading zeros (so `010.0.0.1` is refused
//! rather than read as octal or decimal), and a prefix length of at most 32.

use core::fmt;

/// An IPv4 address in network byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4(pub [u8; 4]);

/// An address with a prefix length: an interface address (`192.0.2.1/24`) or a route prefix
/// (`10.20.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4,
    pub prefix_len: u8,
}

impl Ipv4 {
    /// Parses dotted-quad notation; `None` for anything else.
    pub fn parse(text: &str) -> Option<Ipv4> {
        let mut octets = [0u8; 4];
        let mut parts = text.split('.');
        for octet in octets.iter_mut() {
            *octet = parse_octet(parts.next()?)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Ipv4(octets))
    }

    pub const fn to_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    pub const fn from_u32(bits: u32) -> Ipv4 {
        Ipv4(bits.to_be_bytes())
    }
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/len`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Ipv4Cidr> {
        let (addr, len) = text.split_once('/')?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix_len: u8 = len.parse().ok()?;
        if prefix_len > 32 || (len.len() == 2 && len.starts_with('0')) {
            return None;
        }
        Some(Ipv4Cidr { addr: Ipv4::parse(addr)?, prefix_len })
    }

    /// The netmask as a 32-bit word.
    pub const fn mask(self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len as u32)
        }
    }

    /// The network address (host bits cleared).
    pub const fn network(self) -> Ipv4 {
        Ipv4::from_u32(self.addr.to_u32() & self.mask())
    }

    /// The all-ones host address of the prefix.
    pub const fn broadcast(self) -> Ipv4 {
        Ipv4::from_u32(self.addr.to_u32() | !self.mask())
    }

    /// True when no host bits are set: the form a route prefix must have.
    pub const fn is_canonical(self) -> bool {
        self.addr.to_u32() & !self.mask() == 0
    }

    /// True when `addr` lies inside this prefix.
    pub const fn contains(self, addr: Ipv4) -> bool {
        (addr.to_u32() ^ self.addr.to_u32()) & self.mask() == 0
    }

    /// True when the two prefixes share at least one address.
    pub const fn overlaps(self, other: Ipv4Cidr) -> bool {
        let shorter = if self.prefix_len < other.prefix_len { self } else { other };
        (self.addr.to_u32() ^ other.addr.to_u32()) & shorter.mask() == 0
    }
}

fn parse_octet(text: &str) -> Option<u8> {
    let ok = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'));
    if ok {
        text.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        assert_eq!(Ipv4::parse("192.0.2.1"), Some(Ipv4([192, 0, 2, 1])));
        for bad in
            ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "1..3.4", " 1.2.3.4", "1.2.3.4 "]
        {
            assert_eq!(Ipv4::parse(bad), None, "{bad}");
        }
        let c = Ipv4Cidr::parse("10.20.0.0/16").unwrap();
        assert_eq!((c.addr, c.prefix_len), (Ipv4([10, 20, 0, 0]), 16));
        for bad in ["10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/1/2"] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
        assert_eq!(Ipv4Cidr::parse("0.0.0.0/0").map(|c| c.mask()), Some(0));
    }

    #[test]
    fn prefix_arithmetic() {
        let c = Ipv4Cidr::parse("192.0.2.77/24").unwrap();
        assert_eq!(c.network(), Ipv4([192, 0, 2, 0]));
        assert_eq!(c.broadcast(), Ipv4([192, 0, 2, 255]));
        assert!(!c.is_canonical());
        assert!(c.contains(Ipv4([192, 0, 2, 200])));
        assert!(!c.contains(Ipv4([192, 0, 3, 1])));
        let wide = Ipv4Cidr::parse("192.0.0.0/16").unwrap();
        let other = Ipv4Cidr::parse("192.1.0.0/16").unwrap();
        assert!(c.overlaps(wide) && wide.overlaps(c));
        assert!(!other.overlaps(c) && !c.overlaps(other));
        assert_eq!(Ipv4Cidr::parse("1.2.3.4/32").unwrap().mask(), u32::MAX);
    }
}
