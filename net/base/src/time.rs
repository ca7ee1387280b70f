//! Time as the subsystems see it: a monotonic instant and a span, both in microseconds.
//!
//! `apps` keeps its own two types rather than `smoltcp::time::Instant` so that the pure logic
//! here depends on no network stack; the kernel's clock converts with `Instant::from_micros`.
//! Arithmetic saturates: a deadline far in the future stays far in the future.

use core::fmt;
use core::ops::{Add, Sub};

/// A point on the monotonic clock, microseconds since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1_000))
    }

    pub const fn total_micros(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_micros(micros: u64) -> Duration {
        Duration(micros)
    }

    pub const fn from_millis(millis: u64) -> Duration {
        Duration(millis.saturating_mul(1_000))
    }

    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs.saturating_mul(1_000_000))
    }

    pub const fn total_micros(self) -> u64 {
        self.0
    }

    pub const fn total_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// `self * 2^shift`, saturating.
    pub const fn saturating_shl(self, shift: u32) -> Duration {
        if shift >= 64 || self.0.leading_zeros() < shift {
            if self.0 == 0 {
                Duration(0)
            } else {
                Duration(u64::MAX)
            }
        } else {
            Duration(self.0 << shift)
        }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1_000) {
            write!(f, "{}ms", us / 1_000)
        } else {
            write!(f, "{}us", us)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Instant::from_micros(u64::MAX - 1) + Duration::from_secs(1),
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(Instant::from_millis(5) - Instant::from_millis(7), Duration::ZERO);
        assert_eq!(Duration::from_millis(10).saturating_shl(9), Duration::from_millis(5120));
        assert_eq!(Duration::from_millis(10).saturating_shl(64), Duration::from_micros(u64::MAX));
        assert_eq!(Duration::ZERO.saturating_shl(70), Duration::ZERO);
    }

    #[test]
    fn display() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Duration::from_secs(300).to_string(), "300s");
        assert_eq!(Duration::from_millis(500).to_string(), "500ms");
        assert_eq!(Duration::from_micros(7).to_string(), "7us");
        assert_eq!(Instant::from_micros(1_500_000).to_string(), "1.500000s");
    }
}
