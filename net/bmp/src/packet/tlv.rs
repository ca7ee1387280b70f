//! The TLVs of Initiation, Peer Up, Peer Down (RFC 9069), Termination and Route Mirroring:
//! a 2-byte type, a 2-byte length, the value.

use alloc::vec::Vec;

use super::{EmitError, Error, Reader, Writer};

/// Information TLV types (RFC 7854 section 4.4; RFC 9069 section 5.1 for the table name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoType {
    /// 0: free-form UTF-8 text.
    String,
    /// 1: sysDescr (Initiation only).
    SysDescr,
    /// 2: sysName (Initiation only).
    SysName,
    /// 3: VRF/Table Name (RFC 9069: Peer Up and Peer Down of the Loc-RIB), at most 255 bytes.
    VrfTableName,
    Other(u16),
}

impl InfoType {
    pub const fn from_u16(value: u16) -> InfoType {
        match value {
            0 => InfoType::String,
            1 => InfoType::SysDescr,
            2 => InfoType::SysName,
            3 => InfoType::VrfTableName,
            other => InfoType::Other(other),
        }
    }

    pub const fn to_u16(self) -> u16 {
        match self {
            InfoType::String => 0,
            InfoType::SysDescr => 1,
            InfoType::SysName => 2,
            InfoType::VrfTableName => 3,
            InfoType::Other(other) => other,
        }
    }
}

/// One information TLV. The value is UTF-8 by the RFC but kept as bytes: a peer's garbage is
/// carried, not judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoTlv<'a> {
    pub kind: InfoType,
    pub value: &'a [u8],
}

impl<'a> InfoTlv<'a> {
    pub const fn new(kind: InfoType, value: &'a str) -> InfoTlv<'a> {
        InfoTlv { kind, value: value.as_bytes() }
    }

    /// The value as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.value).ok()
    }

    pub(crate) fn len(&self) -> usize {
        4 + self.value.len()
    }
}

/// Every TLV to the end of `r`, each made into a `T` by `each(type, value)`.
fn parse_tlvs<'a, T>(
    r: &mut Reader<'a>,
    each: impl Fn(u16, &'a [u8]) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let kind = r.u16()?;
        let len = r.u16()?;
        out.push(each(kind, r.take(usize::from(len))?)?);
    }
    Ok(out)
}

/// A TLV whose value must be 2 bytes: the value, or the error naming the TLV.
fn two_bytes(kind: u16, value: &[u8]) -> Result<u16, Error> {
    match *value {
        [a, b] => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Error::TlvLength { kind, len: value.len() as u16 }),
    }
}

pub(crate) fn parse_info_tlvs<'a>(r: &mut Reader<'a>) -> Result<Vec<InfoTlv<'a>>, Error> {
    parse_tlvs(r, |kind, value| Ok(InfoTlv { kind: InfoType::from_u16(kind), value }))
}

pub(crate) fn emit_info_tlvs(tlvs: &[InfoTlv<'_>], w: &mut Writer<'_>) -> Result<(), EmitError> {
    tlvs.iter().try_for_each(|t| w.tlv(t.kind.to_u16(), t.value))
}

/// Termination reasons (RFC 7854 section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermReason {
    /// 0: the session was closed by an administrator.
    AdminClose,
    /// 1: unspecified.
    Unspecified,
    /// 2: out of resources (our queue bound, or the event channel overflowed).
    OutOfResources,
    /// 3: a redundant connection.
    RedundantConnection,
    /// 4: permanently closed by an administrator: do not reconnect.
    PermanentlyAdminClose,
    Other(u16),
}

impl TermReason {
    pub const fn from_u16(value: u16) -> TermReason {
        match value {
            0 => TermReason::AdminClose,
            1 => TermReason::Unspecified,
            2 => TermReason::OutOfResources,
            3 => TermReason::RedundantConnection,
            4 => TermReason::PermanentlyAdminClose,
            other => TermReason::Other(other),
        }
    }

    pub const fn to_u16(self) -> u16 {
        match self {
            TermReason::AdminClose => 0,
            TermReason::Unspecified => 1,
            TermReason::OutOfResources => 2,
            TermReason::RedundantConnection => 3,
            TermReason::PermanentlyAdminClose => 4,
            TermReason::Other(other) => other,
        }
    }
}

/// One Termination TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermTlv<'a> {
    /// Type 0: free-form text.
    String(&'a [u8]),
    /// Type 1: the reason, 2 bytes.
    Reason(TermReason),
    Other {
        kind: u16,
        value: &'a [u8],
    },
}

impl TermTlv<'_> {
    pub(crate) fn len(&self) -> usize {
        4 + match self {
            TermTlv::String(v) | TermTlv::Other { value: v, .. } => v.len(),
            TermTlv::Reason(_) => 2,
        }
    }
}

pub(crate) fn parse_term_tlvs<'a>(r: &mut Reader<'a>) -> Result<Vec<TermTlv<'a>>, Error> {
    parse_tlvs(r, |kind, value| {
        Ok(match kind {
            0 => TermTlv::String(value),
            1 => TermTlv::Reason(TermReason::from_u16(two_bytes(kind, value)?)),
            kind => TermTlv::Other { kind, value },
        })
    })
}

pub(crate) fn emit_term_tlvs(tlvs: &[TermTlv<'_>], w: &mut Writer<'_>) -> Result<(), EmitError> {
    tlvs.iter().try_for_each(|t| match t {
        TermTlv::String(v) => w.tlv(0, v),
        TermTlv::Reason(r) => w.tlv(1, &r.to_u16().to_be_bytes()),
        TermTlv::Other { kind, value } => w.tlv(*kind, value),
    })
}

/// One Route Mirroring TLV (RFC 7854 section 4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorTlv<'a> {
    /// Type 0: a BGP PDU as received (possibly malformed: the reason to mirror it).
    BgpMessage(&'a [u8]),
    /// Type 1: information code, 0 errored PDU, 1 messages lost.
    Information(u16),
    Other {
        kind: u16,
        value: &'a [u8],
    },
}

impl MirrorTlv<'_> {
    pub(crate) fn len(&self) -> usize {
        4 + match self {
            MirrorTlv::BgpMessage(v) | MirrorTlv::Other { value: v, .. } => v.len(),
            MirrorTlv::Information(_) => 2,
        }
    }
}

pub(crate) fn parse_mirror_tlvs<'a>(r: &mut Reader<'a>) -> Result<Vec<MirrorTlv<'a>>, Error> {
    parse_tlvs(r, |kind, value| {
        Ok(match kind {
            0 => MirrorTlv::BgpMessage(value),
            1 => MirrorTlv::Information(two_bytes(kind, value)?),
            kind => MirrorTlv::Other { kind, value },
        })
    })
}

pub(crate) fn emit_mirror_tlvs(tlvs: &[MirrorTlv<'_>], w: &mut Writer<'_>) -> Result<(), EmitError> {
    tlvs.iter().try_for_each(|t| match t {
        MirrorTlv::BgpMessage(v) => w.tlv(0, v),
        MirrorTlv::Information(code) => w.tlv(1, &code.to_be_bytes()),
        MirrorTlv::Other { kind, value } => w.tlv(*kind, value),
    })
}
