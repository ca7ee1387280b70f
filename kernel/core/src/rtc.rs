//! The wall clock: the CMOS real-time clock (MC146818 and compatibles, as QEMU and PC
//! firmware provide), read once at boot.
//!
//! The appliance keeps time with the TSC ([`crate::time`]), which knows only how long it has
//! been up. The RTC gives the date once; [`read`] pairs it with the monotonic clock, and the
//! platform derives wall time from the two (`Context::wall_clock`). The RTC has a resolution of
//! one second, so wall time is accurate to about a second, which is what BMP's per-peer
//! timestamps and logs need; nothing here corrects for drift.
//!
//! Reading: the RTC updates its registers once a second, and during the update (the UIP flag
//! of status register A) they may be inconsistent, so [`read`] waits for UIP to be clear and
//! reads every register twice until two reads agree. Values are BCD unless status register B
//! says binary (bit 2), and the hour is 12-hour with bit 7 for PM unless B says 24-hour
//! (bit 1). The century comes from register 0x32 when it holds a plausible BCD/binary value
//! (QEMU and most firmware keep it there), else years 70..99 are 19xx and 00..69 20xx.

use crate::arch::{inb, outb};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
const CENTURY: u8 = 0x32;
/// Status A: an update is in progress.
const UIP: u8 = 0x80;
/// Status B: 24-hour mode; binary (not BCD) values.
const HOUR_24: u8 = 0x02;
const BINARY: u8 = 0x04;
/// Reads before giving up on a consistent pair (the RTC updates once a second).
const ATTEMPTS: usize = 100_000;

/// The RTC's registers as read, before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawTime {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    pub century: u8,
    pub status_b: u8,
}

/// Reads the RTC: seconds since the Unix epoch, `None` if it never held still or holds no
/// valid date.
pub fn read() -> Option<u64> {
    let mut last: Option<RawTime> = None;
    for _ in 0..ATTEMPTS {
        if register(STATUS_A) & UIP != 0 {
            continue;
        }
        let now = RawTime {
            seconds: register(SECONDS),
            minutes: register(MINUTES),
            hours: register(HOURS),
            day: register(DAY),
            month: register(MONTH),
            year: register(YEAR),
            century: register(CENTURY),
            status_b: register(STATUS_B),
        };
        if last == Some(now) {
            return decode(now);
        }
        last = Some(now);
    }
    None
}

fn register(index: u8) -> u8 {
    outb(INDEX, index);
    inb(DATA)
}

/// The Unix time of what the RTC's registers say; `None` for an impossible date. A `const fn`,
/// so that the vectors below are checked at every build (this crate has no host tests).
pub const fn decode(raw: RawTime) -> Option<u64> {
    let binary = raw.status_b & BINARY != 0;
    let twelve = raw.status_b & HOUR_24 == 0;
    let (Some(seconds), Some(minutes), Some(hours), Some(day), Some(month), Some(year)) = (
        value(raw.seconds, binary),
        value(raw.minutes, binary),
        value(raw.hours & 0x7f, binary),
        value(raw.day, binary),
        value(raw.month, binary),
        value(raw.year, binary),
    ) else {
        return None;
    };
    let hours = if twelve {
        // 12-hour clock: 12 AM is midnight, 12 PM noon.
        if hours < 1 || hours > 12 {
            return None;
        }
        hours % 12 + if raw.hours & 0x80 != 0 { 12 } else { 0 }
    } else {
        hours
    };
    let year = year as u64;
    let year = match value(raw.century, binary) {
        Some(c) if c >= 19 && c <= 30 => c as u64 * 100 + year,
        _ if year >= 70 => 1900 + year,
        _ => 2000 + year,
    };
    if seconds > 59 || minutes > 59 || hours > 23 || month < 1 || month > 12 || day < 1 || day > 31 {
        return None;
    }
    match days_from_civil(year, month as u64, day as u64) {
        Some(days) => Some(days * 86_400 + hours as u64 * 3600 + minutes as u64 * 60 + seconds as u64),
        None => None,
    }
}

/// A register's value: binary as it is, else BCD (`None` if not BCD).
const fn value(v: u8, binary: bool) -> Option<u8> {
    if binary {
        return Some(v);
    }
    let (hi, lo) = (v >> 4, v & 0x0f);
    if hi > 9 || lo > 9 {
        return None;
    }
    Some(hi * 10 + lo)
}

/// Days from 1970-01-01 to the proleptic Gregorian date (`None` before 1970).
const fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    // Years start in March, so that the leap day is the last day of the year.
    let y = if month <= 2 { year.saturating_sub(1) } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Test vectors, checked by the compiler.
const fn raw(bcd: [u8; 7], status_b: u8) -> RawTime {
    let [seconds, minutes, hours, day, month, year, century] = bcd;
    RawTime { seconds, minutes, hours, day, month, year, century, status_b }
}

const fn is(t: Option<u64>, expected: Option<u64>) -> bool {
    match (t, expected) {
        (Some(a), Some(b)) => a == b,
        (None, None) => true,
        _ => false,
    }
}

// 2023-11-14 22:13:20 UTC is 1,700,000,000: BCD, 24-hour.
const _: () =
    assert!(is(decode(raw([0x20, 0x13, 0x22, 0x14, 0x11, 0x23, 0x20], HOUR_24)), Some(1_700_000_000)));
// The same in binary on a 12-hour clock (10 PM).
const _: () = assert!(is(decode(raw([20, 13, 0x80 | 10, 14, 11, 23, 20], BINARY)), Some(1_700_000_000)));
// 12 AM is 00 h (2023-11-14 00:00:00), 12 PM is noon.
const _: () = assert!(is(decode(raw([0, 0, 12, 14, 11, 23, 20], BINARY)), Some(1_699_920_000)));
const _: () = assert!(is(decode(raw([0, 0, 0x80 | 12, 14, 11, 23, 20], BINARY)), Some(1_699_963_200)));
// The epoch; a leap day with no century register (00..69 is 20xx).
const _: () = assert!(is(decode(raw([0, 0, 0, 1, 1, 0x70, 0x19], HOUR_24)), Some(0)));
const _: () = assert!(is(decode(raw([0, 0, 0, 0x29, 0x02, 0x24, 0], HOUR_24)), Some(1_709_164_800)));
// Impossible values: second 60, a nibble that is not BCD, month 13, 13 o'clock on a 12-hour
// clock, day 0.
const _: () = assert!(is(decode(raw([0x60, 0, 0, 1, 1, 0x24, 0x20], HOUR_24)), None));
const _: () = assert!(is(decode(raw([0x0a, 0, 0, 1, 1, 0x24, 0x20], HOUR_24)), None));
const _: () = assert!(is(decode(raw([0, 0, 0, 1, 0x13, 0x24, 0x20], HOUR_24)), None));
const _: () = assert!(is(decode(raw([0, 0, 0x13, 1, 1, 0x24, 0x20], 0)), None));
const _: () = assert!(is(decode(raw([0, 0, 0, 0, 1, 0x24, 0x20], HOUR_24)), None));
