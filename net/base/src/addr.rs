//! IPv4 addresses and prefixes: `core::net::Ipv4Addr` everywhere (smoltcp uses it too), and
//! [`Ipv4Cidr`], an address with a prefix length, as written in the configuration and on the
//! console.
//!
//! Parsing is strict: four decimal octets without leading zeros (so `010.0.0.1` is refused
//! rather than read as octal or decimal), and a prefix length of at most 32.

use core::fmt;

pub use core::net::Ipv4Addr;

/// An address with a prefix length: an interface address (`192.0.2.1/24`) or a route prefix
/// (`10.20.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// Parses dotted-quad notation strictly (no leading zeros, no spaces); `None` for anything else.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in octets.iter_mut() {
        *octet = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
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
        Some(Ipv4Cidr { addr: parse_ipv4(addr)?, prefix_len })
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
    pub const fn network(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask())
    }

    /// The all-ones host address of the prefix.
    pub const fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask())
    }

    /// True when no host bits are set: the form a route prefix must have.
    pub const fn is_canonical(self) -> bool {
        self.addr.to_bits() & !self.mask() == 0
    }

    /// True when `addr` lies inside this prefix.
    pub const fn contains(self, addr: Ipv4Addr) -> bool {
        (addr.to_bits() ^ self.addr.to_bits()) & self.mask() == 0
    }

    /// True when the two prefixes share at least one address.
    pub const fn overlaps(self, other: Ipv4Cidr) -> bool {
        let shorter = if self.prefix_len < other.prefix_len { self } else { other };
        (self.addr.to_bits() ^ other.addr.to_bits()) & shorter.mask() == 0
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
        assert_eq!(parse_ipv4("192.0.2.1"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        for bad in
            ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "1..3.4", " 1.2.3.4", "1.2.3.4 "]
        {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
        let c = Ipv4Cidr::parse("10.20.0.0/16").unwrap();
        assert_eq!((c.addr, c.prefix_len), (Ipv4Addr::new(10, 20, 0, 0), 16));
        for bad in ["10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/1/2"] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
        assert_eq!(Ipv4Cidr::parse("0.0.0.0/0").map(|c| c.mask()), Some(0));
    }

    #[test]
    fn prefix_arithmetic() {
        let c = Ipv4Cidr::parse("192.0.2.77/24").unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(192, 0, 2, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(192, 0, 2, 255));
        assert!(!c.is_canonical());
        assert!(c.contains(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(!c.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let wide = Ipv4Cidr::parse("192.0.0.0/16").unwrap();
        let other = Ipv4Cidr::parse("192.1.0.0/16").unwrap();
        assert!(c.overlaps(wide) && wide.overlaps(c));
        assert!(!other.overlaps(c) && !c.overlaps(other));
        assert_eq!(Ipv4Cidr::parse("1.2.3.4/32").unwrap().mask(), u32::MAX);
    }
}
