//! Statistics Report counters and gauges (RFC 7854 section 4.8, RFC 8671 section 6).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Stats Count                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Stat Type             |          Stat Len             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Stat Data                              |
//! ~                                                               ~
//! ```

use alloc::vec::Vec;

use super::{EmitError, Error, Reader, Writer};

/// A statistic's type code, with the names of the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatType(pub u16);

impl StatType {
    pub const REJECTED_PREFIXES: StatType = StatType(0);
    pub const DUPLICATE_PREFIX_ADVERTISEMENTS: StatType = StatType(1);
    pub const DUPLICATE_WITHDRAWS: StatType = StatType(2);
    pub const CLUSTER_LIST_LOOP: StatType = StatType(3);
    pub const AS_PATH_LOOP: StatType = StatType(4);
    pub const ORIGINATOR_ID_LOOP: StatType = StatType(5);
    pub const AS_CONFED_LOOP: StatType = StatType(6);
    pub const ADJ_RIB_IN_ROUTES: StatType = StatType(7);
    pub const LOC_RIB_ROUTES: StatType = StatType(8);
    pub const ADJ_RIB_IN_ROUTES_PER_AFI_SAFI: StatType = StatType(9);
    pub const LOC_RIB_ROUTES_PER_AFI_SAFI: StatType = StatType(10);
    pub const UPDATES_TREAT_AS_WITHDRAW: StatType = StatType(11);
    pub const PREFIXES_TREAT_AS_WITHDRAW: StatType = StatType(12);
    pub const DUPLICATE_UPDATES: StatType = StatType(13);
    pub const ADJ_RIB_OUT_PRE_POLICY_ROUTES: StatType = StatType(14);
    pub const ADJ_RIB_OUT_POST_POLICY_ROUTES: StatType = StatType(15);
    pub const ADJ_RIB_OUT_PRE_POLICY_PER_AFI_SAFI: StatType = StatType(16);
    pub const ADJ_RIB_OUT_POST_POLICY_PER_AFI_SAFI: StatType = StatType(17);

    /// The form a known type's value has; `None` for a type this crate does not know.
    pub const fn format(self) -> Option<StatFormat> {
        match self.0 {
            0..=6 | 11..=13 => Some(StatFormat::Counter),
            7 | 8 | 14 | 15 => Some(StatFormat::Gauge),
            9 | 10 | 16 | 17 => Some(StatFormat::AfiSafiGauge),
            _ => None,
        }
    }
}

/// The value forms of the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatFormat {
    /// A 32-bit counter (4 bytes).
    Counter,
    /// A 64-bit gauge (8 bytes).
    Gauge,
    /// AFI (2), SAFI (1) and a 64-bit gauge (11 bytes).
    AfiSafiGauge,
}

/// A statistic's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatValue<'a> {
    Counter(u32),
    Gauge(u64),
    AfiSafiGauge {
        afi: u16,
        safi: u8,
        value: u64,
    },
    /// The bytes of a type this crate does not know.
    Other(&'a [u8]),
}

/// One statistic of a Statistics Report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat<'a> {
    pub kind: StatType,
    pub value: StatValue<'a>,
}

impl<'a> Stat<'a> {
    pub const fn counter(kind: StatType, value: u32) -> Stat<'a> {
        Stat { kind, value: StatValue::Counter(value) }
    }

    pub const fn gauge(kind: StatType, value: u64) -> Stat<'a> {
        Stat { kind, value: StatValue::Gauge(value) }
    }

    pub(crate) fn value_len(&self) -> usize {
        match self.value {
            StatValue::Counter(_) => 4,
            StatValue::Gauge(_) => 8,
            StatValue::AfiSafiGauge { .. } => 11,
            StatValue::Other(v) => v.len(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        4 + self.value_len()
    }
}

pub(crate) fn parse_stats<'a>(r: &mut Reader<'a>) -> Result<Vec<Stat<'a>>, Error> {
    let count = r.u32()?;
    // Each statistic takes at least 4 bytes: a count beyond that is a lie, caught before
    // reserving room for it.
    let at = r.offset();
    if count as usize > r.remaining() / 4 {
        return Err(Error::Truncated { at });
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let kind = StatType(r.u16()?);
        let len = r.u16()?;
        let mut v = Reader::new(r.take(len as usize)?, 0);
        let bad = Error::StatLength { kind: kind.0, len };
        let value = match kind.format() {
            Some(StatFormat::Counter) if len == 4 => StatValue::Counter(v.u32()?),
            Some(StatFormat::Gauge) if len == 8 => StatValue::Gauge(v.u64()?),
            Some(StatFormat::AfiSafiGauge) if len == 11 => {
                StatValue::AfiSafiGauge { afi: v.u16()?, safi: v.u8()?, value: v.u64()? }
            }
            Some(_) => return Err(bad),
            None => StatValue::Other(v.rest()),
        };
        out.push(Stat { kind, value });
    }
    Ok(out)
}

pub(crate) fn emit_stats(stats: &[Stat<'_>], w: &mut Writer<'_>) -> Result<(), EmitError> {
    let count = u32::try_from(stats.len()).map_err(|_| EmitError::MessageTooLong(stats.len()))?;
    w.u32(count)?;
    for stat in stats {
        let form_ok = matches!(
            (stat.kind.format(), stat.value),
            (Some(StatFormat::Counter), StatValue::Counter(_))
                | (Some(StatFormat::Gauge), StatValue::Gauge(_))
                | (Some(StatFormat::AfiSafiGauge), StatValue::AfiSafiGauge { .. })
                | (None, StatValue::Other(_))
        );
        if !form_ok {
            return Err(EmitError::StatValue { kind: stat.kind.0 });
        }
        let len = u16::try_from(stat.value_len()).map_err(|_| EmitError::TlvTooLong(stat.value_len()))?;
        w.u16(stat.kind.0)?;
        w.u16(len)?;
        match stat.value {
            StatValue::Counter(v) => w.u32(v)?,
            StatValue::Gauge(v) => w.u64(v)?,
            StatValue::AfiSafiGauge { afi, safi, value } => {
                w.u16(afi)?;
                w.u8(safi)?;
                w.u64(value)?;
            }
            StatValue::Other(v) => w.put(v)?,
        }
    }
    Ok(())
}
