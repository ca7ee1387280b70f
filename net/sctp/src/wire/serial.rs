//! Serial-number arithmetic (RFC 1982) for Transmission Sequence Numbers (32 bits) and Stream
//! Sequence Numbers (16 bits), as RFC 9260 section 1.6 asks.
//!
//! Comparison is `PartialOrd`: `a < b` when `b` is ahead of `a` by less than half the number
//! space. Two numbers exactly half the space apart are incomparable (`partial_cmp` is `None`,
//! every comparison is false). Like any serial order it is not transitive over long spans, so
//! it only means something for numbers inside one window (an association's TSNs in flight).

use core::cmp::Ordering;
use core::fmt;

/// A Transmission Sequence Number (RFC 9260 section 3.3.1): 32 bits, wrapping.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tsn(pub u32);

impl Tsn {
    /// The TSN `n` numbers after this one, wrapping.
    pub const fn add(self, n: u32) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// The next TSN.
    pub const fn next(self) -> Self {
        self.add(1)
    }

    /// How far this TSN is ahead of `base`, wrapping: `base.add(self.offset_from(base)) == self`.
    pub const fn offset_from(self, base: Self) -> u32 {
        self.0.wrapping_sub(base.0)
    }

    /// Signed serial distance from `base` to this TSN, `None` when exactly half the space apart.
    pub const fn distance_from(self, base: Self) -> Option<i32> {
        let diff = self.0.wrapping_sub(base.0) as i32;
        if diff == i32::MIN {
            None
        } else {
            Some(diff)
        }
    }
}

impl PartialOrd for Tsn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.distance_from(*other).map(|d| d.cmp(&0))
    }
}

impl fmt::Debug for Tsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tsn({})", self.0)
    }
}

impl fmt::Display for Tsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A Stream Sequence Number (RFC 9260 section 3.3.1): 16 bits, wrapping, one series per stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ssn(pub u16);

impl Ssn {
    /// The SSN `n` numbers after this one, wrapping.
    pub const fn add(self, n: u16) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// The next SSN.
    pub const fn next(self) -> Self {
        self.add(1)
    }

    /// How far this SSN is ahead of `base`, wrapping.
    pub const fn offset_from(self, base: Self) -> u16 {
        self.0.wrapping_sub(base.0)
    }

    /// Signed serial distance from `base` to this SSN, `None` when exactly half the space apart.
    pub const fn distance_from(self, base: Self) -> Option<i16> {
        let diff = self.0.wrapping_sub(base.0) as i16;
        if diff == i16::MIN {
            None
        } else {
            Some(diff)
        }
    }
}

impl PartialOrd for Ssn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.distance_from(*other).map(|d| d.cmp(&0))
    }
}

impl fmt::Debug for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssn({})", self.0)
    }
}

impl fmt::Display for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsn_compares_across_the_wrap() {
        let a = Tsn(u32::MAX - 1);
        let b = a.add(5);
        assert_eq!(b, Tsn(3));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.offset_from(a), 5);
        assert_eq!(a.distance_from(b), Some(-5));
        assert_eq!(Tsn(7).partial_cmp(&Tsn(7)), Some(Ordering::Equal));
    }

    #[test]
    fn half_the_space_apart_is_incomparable() {
        let a = Tsn(10);
        let b = a.add(1 << 31);
        assert_eq!(a.partial_cmp(&b), None);
        assert!(a.partial_cmp(&b).is_none() && a != b);
        assert!(!(a <= b || a >= b), "every comparison is false");
        // One short of half the space: still ahead.
        assert!(a < a.add((1 << 31) - 1));
        // One past half the space: behind.
        assert!(a > a.add((1 << 31) + 1));
    }

    #[test]
    fn ssn_compares_across_the_wrap() {
        let a = Ssn(65_530);
        let b = a.add(10);
        assert_eq!(b, Ssn(4));
        assert!(a < b);
        assert_eq!(b.offset_from(a), 10);
        assert_eq!(Ssn(0).partial_cmp(&Ssn(0x8000)), None);
        assert!(Ssn(0) < Ssn(0x7fff));
        assert!(Ssn(0) > Ssn(0x8001));
    }
}
