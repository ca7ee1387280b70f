//! Sizes and durations as an operator writes them (`"16MiB"`, `"300s"`), and sizes as a
//! table shows them (`12.3 MB`).
//!
//! Parsing is checked: a figure that does not fit is refused, never wrapped.

use core::fmt;

use crate::time::Duration;

/// Parses a size string: decimal digits followed by `B`, `KiB`, `MiB`, `GiB` or `TiB`
/// (binary multiples), or by nothing (bytes). `None` on anything else or on overflow.
pub fn parse_size(text: &str) -> Option<usize> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() || number.len() > 20 {
        return None;
    }
    let shift = match unit {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    let value: u64 = number.parse().ok()?;
    let bytes = value.checked_mul(1u64 << shift)?;
    usize::try_from(bytes).ok()
}

/// Parses a duration string: decimal digits followed by `ms`, `s`, `m` or `h`. `None` on
/// anything else or on overflow.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() || number.len() > 20 {
        return None;
    }
    let micros_per_unit: u64 = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return None,
    };
    let value: u64 = number.parse().ok()?;
    Some(Duration::from_micros(value.checked_mul(micros_per_unit)?))
}

/// Formats a byte count for a table, in the manner of BIRD's `show memory`: `B` below 1 kB,
/// then `kB`, `MB`, `GB` (1024-based) with one decimal.
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
        let bytes = self.0;
        if bytes < 1024 {
            return f.pad(alloc::format!("{bytes} B").as_str());
        }
        let mut scale = 1024u64;
        let mut unit = UNITS[0];
        for (i, u) in UNITS.iter().enumerate() {
            scale = 1u64 << (10 * (i as u32 + 1));
            unit = u;
            if bytes / scale < 1024 || i + 1 == UNITS.len() {
                break;
            }
        }
        let tenths = (u128::from(bytes) * 10 / u128::from(scale)) as u64;
        f.pad(alloc::format!("{}.{} {unit}", tenths / 10, tenths % 10).as_str())
    }
}

/// Formats a byte count exactly in the largest binary unit that divides it (`300 MiB`),
/// or in bytes.
pub struct ExactSize(pub u64);

impl fmt::Display for ExactSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        let bytes = self.0;
        for (shift, unit) in UNITS {
            let scale = 1u64 << shift;
            if bytes >= scale && bytes.is_multiple_of(scale) {
                return write!(f, "{} {unit}", bytes / scale);
            }
        }
        write!(f, "{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512KiB"), Some(512 * 1024));
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("100B"), Some(100));
        for bad in ["", "MiB", "16 MiB", "16mib", "16MB", "-1", "1.5MiB", "99999999999999999999999"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size("18446744073709551615TiB"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "s", "300", "300 s", "3.5s", "300sec", "18446744073709551615h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_and_exact() {
        assert_eq!(HumanSize(0).to_string(), "0 B");
        assert_eq!(HumanSize(1023).to_string(), "1023 B");
        assert_eq!(HumanSize(1024).to_string(), "1.0 kB");
        assert_eq!(HumanSize(12_900_000).to_string(), "12.3 MB");
        assert_eq!(HumanSize(3 << 30).to_string(), "3.0 GB");
        assert_eq!(HumanSize(u64::MAX).to_string(), "16777215.9 TB");
        assert_eq!(std::format!("{:>8}", HumanSize(1024)), "  1.0 kB");
        assert_eq!(ExactSize(300 << 20).to_string(), "300 MiB");
        assert_eq!(ExactSize(1536).to_string(), "1536 B");
        assert_eq!(ExactSize(4096).to_string(), "4 KiB");
        assert_eq!(ExactSize(0).to_string(), "0 B");
    }
}
