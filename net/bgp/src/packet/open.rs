//! OPEN (RFC 4271 section 4.2) and its capabilities (RFC 5492): multiprotocol (RFC 4760),
//! route refresh (RFC 2918), extended message (RFC 8654), graceful restart (RFC 4724),
//! 4-octet AS (RFC 6793). Unknown capabilities are kept by code and value.
//!
//! Extended optional parameters (RFC 9072) are read; they are written only when the
//! parameters do not fit the one-octet length.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use super::attribute::AS_TRANS;
use super::error::OpenError;
use super::nlri::Family;

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// The optional parameter type that carries capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: a Non-Ext OP Len of 255 followed by this type means extended parameters.
const PARAM_EXTENDED_LENGTH: u8 = 255;

/// One address family in the Graceful Restart capability, with its Forwarding State bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    pub afi: u16,
    pub safi: u8,
    /// The sender kept forwarding state for this family across its restart (F bit).
    pub forwarding_preserved: bool,
}

/// The Graceful Restart capability (RFC 4724 section 3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit (RFC 8538): the sender supports graceful NOTIFICATION.
    pub notification: bool,
    /// Restart Time in seconds, 12 bits.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// A capability (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions: one (AFI, SAFI), kept by number.
    Multiprotocol {
        afi: u16,
        safi: u8,
    },
    RouteRefresh,
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    FourOctetAs {
        asn: u32,
    },
    /// Any other capability, kept as received.
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

impl Capability {
    pub fn multiprotocol(family: Family) -> Capability {
        Capability::Multiprotocol { afi: family.afi().to_u16(), safi: family.safi().to_u8() }
    }

    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => capability_code::MULTIPROTOCOL,
            Capability::RouteRefresh => capability_code::ROUTE_REFRESH,
            Capability::ExtendedMessage => capability_code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
            Capability::FourOctetAs { .. } => capability_code::FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol { .. } => 4,
            Capability::RouteRefresh | Capability::ExtendedMessage => 0,
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Capability::FourOctetAs { .. } => 4,
            Capability::Unknown { value, .. } => value.len(),
        }
    }

    /// Code, length octet and value.
    pub fn wire_len(&self) -> usize {
        2 + self.value_len()
    }

    /// Reads one capability value.
    pub fn parse(code: u8, value: &[u8]) -> Result<Capability, OpenError> {
        let malformed = OpenError::MalformedCapability { code };
        Ok(match code {
            capability_code::MULTIPROTOCOL => match value {
                [a, b, _reserved, safi] => {
                    Capability::Multiprotocol { afi: u16::from_be_bytes([*a, *b]), safi: *safi }
                }
                _ => return Err(malformed),
            },
            capability_code::ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            capability_code::EXTENDED_MESSAGE if value.is_empty() => Capability::ExtendedMessage,
            capability_code::ROUTE_REFRESH | capability_code::EXTENDED_MESSAGE => return Err(malformed),
            capability_code::FOUR_OCTET_AS => match value {
                [a, b, c, d] => Capability::FourOctetAs { asn: u32::from_be_bytes([*a, *b, *c, *d]) },
                _ => return Err(malformed),
            },
            capability_code::GRACEFUL_RESTART => {
                let ([hi, lo], tuples) = split_array::<2>(value).ok_or(malformed.clone())?;
                if !tuples.len().is_multiple_of(4) {
                    return Err(malformed);
                }
                let families = tuples
                    .chunks_exact(4)
                    .map(|t| GracefulRestartFamily {
                        afi: u16::from_be_bytes([t[0], t[1]]),
                        safi: t[2],
                        forwarding_preserved: t[3] & 0x80 != 0,
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    restarting: hi & 0x80 != 0,
                    notification: hi & 0x40 != 0,
                    restart_time: u16::from_be_bytes([hi & 0x0f, lo]),
                    families,
                })
            }
            _ => Capability::Unknown { code, value: value.to_vec() },
        })
    }

    /// Writes code, length and value into `buf` (at least `wire_len` octets).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.value_len();
        buf[0] = self.code();
        buf[1] = len as u8;
        let value = &mut buf[2..2 + len];
        match self {
            Capability::Multiprotocol { afi, safi } => {
                value[..2].copy_from_slice(&afi.to_be_bytes());
                value[2] = 0;
                value[3] = *safi;
            }
            Capability::RouteRefresh | Capability::ExtendedMessage => {}
            Capability::FourOctetAs { asn } => value.copy_from_slice(&asn.to_be_bytes()),
            Capability::GracefulRestart(gr) => {
                let time = gr.restart_time.min(0x0fff).to_be_bytes();
                value[0] =
                    time[0] | if gr.restarting { 0x80 } else { 0 } | if gr.notification { 0x40 } else { 0 };
                value[1] = time[1];
                for (t, f) in value[2..].chunks_exact_mut(4).zip(&gr.families) {
                    t[..2].copy_from_slice(&f.afi.to_be_bytes());
                    t[2] = f.safi;
                    t[3] = if f.forwarding_preserved { 0x80 } else { 0 };
                }
            }
            Capability::Unknown { value: v, .. } => value.copy_from_slice(v),
        }
        2 + len
    }
}

/// An OPEN message. `my_as` is the 2-octet field as sent (AS_TRANS for a 4-octet AS);
/// `asn()` gives the real AS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    pub version: u8,
    pub my_as: u16,
    /// Seconds; 0 or at least 3.
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Every capability of every Capabilities parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The fixed part: version, my AS, hold time, BGP identifier, optional parameters length.
    pub const FIXED_LEN: usize = 10;

    /// An OPEN for `asn` (AS_TRANS in the 2-octet field when it does not fit; the caller adds
    /// the 4-octet AS capability).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
        Open { version: 4, my_as, hold_time, bgp_id, capabilities }
    }

    /// The sender's AS: from the 4-octet AS capability if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs { asn } => Some(*asn),
            _ => None,
        })
    }

    /// The families announced with Multiprotocol capabilities that this speaker handles.
    /// Without any Multiprotocol capability IPv4 unicast is implied (RFC 4760 section 8).
    pub fn families(&self) -> Vec<Family> {
        let mut any_mp = false;
        let mut out = Vec::new();
        for c in &self.capabilities {
            if let Capability::Multiprotocol { afi, safi } = c {
                any_mp = true;
                if let Some(f) = Family::from_numbers(*afi, *safi) {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
        }
        if !any_mp {
            out.push(Family::Ipv4Unicast);
        }
        out
    }

    pub fn has(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    /// Reads an OPEN body (after the header).
    pub fn parse(body: &[u8]) -> Result<Open, OpenError> {
        let (fixed, rest) = split_array::<{ Open::FIXED_LEN }>(body).ok_or(OpenError::Malformed)?;
        let version = fixed[0];
        if version != 4 {
            return Err(OpenError::UnsupportedVersion { version });
        }
        let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
        let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
        let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
        let opt_len = fixed[9];
        // RFC 9072: 255 then type 255 then a 2-octet length, and 2-octet parameter lengths.
        let (params, extended) = if opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED_LENGTH) {
            let ([_, hi, lo], params) = split_array::<3>(rest).ok_or(OpenError::Malformed)?;
            (params, Some(usize::from(u16::from_be_bytes([hi, lo]))))
        } else {
            (rest, None)
        };
        let total = extended.unwrap_or(usize::from(opt_len));
        if params.len() != total {
            return Err(OpenError::Malformed);
        }
        let mut capabilities = Vec::new();
        let mut params = params;
        while !params.is_empty() {
            let (kind, len, rest) = if extended.is_some() {
                let ([kind, hi, lo], rest) = split_array::<3>(params).ok_or(OpenError::Malformed)?;
                (kind, usize::from(u16::from_be_bytes([hi, lo])), rest)
            } else {
                let ([kind, len], rest) = split_array::<2>(params).ok_or(OpenError::Malformed)?;
                (kind, usize::from(len), rest)
            };
            let value = rest.get(..len).ok_or(OpenError::Malformed)?;
            params = rest.get(len..).ok_or(OpenError::Malformed)?;
            if kind != PARAM_CAPABILITIES {
                return Err(OpenError::UnsupportedOptionalParameter { kind });
            }
            let mut caps = value;
            while !caps.is_empty() {
                let ([code, len], rest) = split_array::<2>(caps).ok_or(OpenError::Malformed)?;
                let value = rest.get(..usize::from(len)).ok_or(OpenError::Malformed)?;
                caps = rest.get(usize::from(len)..).ok_or(OpenError::Malformed)?;
                capabilities.push(Capability::parse(code, value)?);
            }
        }
        Ok(Open { version, my_as, hold_time, bgp_id, capabilities })
    }

    fn capabilities_len(&self) -> usize {
        self.capabilities.iter().map(Capability::wire_len).sum()
    }

    /// Whether the parameters need RFC 9072 extended lengths (more than 255 octets, or one
    /// capability longer than a one-octet parameter length allows).
    fn needs_extended(&self) -> bool {
        2 + self.capabilities_len() > 255
    }

    pub fn body_len(&self) -> usize {
        if self.capabilities.is_empty() {
            Open::FIXED_LEN
        } else if self.needs_extended() {
            Open::FIXED_LEN + 3 + 3 + self.capabilities_len()
        } else {
            // One Capabilities parameter holding every capability.
            Open::FIXED_LEN + 2 + self.capabilities_len()
        }
    }

    /// Writes the body into `buf` (at least `body_len` octets); returns `body_len`.
    pub fn emit_body(&self, buf: &mut [u8]) -> usize {
        buf[0] = self.version;
        buf[1..3].copy_from_slice(&self.my_as.to_be_bytes());
        buf[3..5].copy_from_slice(&self.hold_time.to_be_bytes());
        buf[5..9].copy_from_slice(&self.bgp_id.octets());
        let caps_len = self.capabilities_len();
        let mut at = if self.capabilities.is_empty() {
            buf[9] = 0;
            Open::FIXED_LEN
        } else if self.needs_extended() {
            buf[9] = 255;
            buf[10] = PARAM_EXTENDED_LENGTH;
            buf[11..13].copy_from_slice(&((3 + caps_len) as u16).to_be_bytes());
            buf[13] = PARAM_CAPABILITIES;
            buf[14..16].copy_from_slice(&(caps_len as u16).to_be_bytes());
            16
        } else {
            buf[9] = (2 + caps_len) as u8;
            buf[10] = PARAM_CAPABILITIES;
            buf[11] = caps_len as u8;
            12
        };
        for c in &self.capabilities {
            at += c.emit(&mut buf[at..]);
        }
        at
    }
}

/// The first `N` octets as an array and the rest.
pub(crate) fn split_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = bytes.split_at_checked(N)?;
    Some((head.try_into().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// An OPEN body as GoBGP/BIRD send it: AS 65001, hold 90, id 192.0.2.1, MP IPv4 and
    /// IPv6 unicast, route refresh, 4-octet AS 65001.
    const OPEN_BODY: [u8; 34] = [
        4, 0xfd, 0xe9, 0, 90, 192, 0, 2, 1, 24, // fixed part, opt len 24
        2, 22, // one Capabilities parameter of 22 octets
        1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        2, 0, // route refresh
        65, 4, 0, 0, 0xfd, 0xe9, // 4-octet AS
        6, 0, // extended message
    ];

    #[test]
    fn open_both_ways() {
        let open = Open::parse(&OPEN_BODY).unwrap();
        assert_eq!(
            open,
            Open {
                version: 4,
                my_as: 65001,
                hold_time: 90,
                bgp_id: Ipv4Addr::new(192, 0, 2, 1),
                capabilities: vec![
                    Capability::multiprotocol(Family::Ipv4Unicast),
                    Capability::multiprotocol(Family::Ipv6Unicast),
                    Capability::RouteRefresh,
                    Capability::FourOctetAs { asn: 65001 },
                    Capability::ExtendedMessage,
                ],
            }
        );
        assert_eq!(open.families(), vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
        let mut out = [0u8; 64];
        assert_eq!(open.emit_body(&mut out), OPEN_BODY.len());
        assert_eq!(&out[..OPEN_BODY.len()], &OPEN_BODY);
    }

    #[test]
    fn four_octet_as_behind_as_trans() {
        let open = Open::new(
            4_200_000_001,
            180,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![Capability::FourOctetAs { asn: 4_200_000_001 }],
        );
        assert_eq!(u32::from(open.my_as), AS_TRANS);
        let mut out = [0u8; 64];
        let n = open.emit_body(&mut out);
        let back = Open::parse(&out[..n]).unwrap();
        assert_eq!(back.asn(), 4_200_000_001);
        // Without MP capabilities IPv4 unicast is implied.
        assert_eq!(back.families(), vec![Family::Ipv4Unicast]);
    }

    #[test]
    fn graceful_restart_capability() {
        // R bit, restart time 120, IPv4 unicast with F bit, IPv6 unicast without.
        let value = [0x80, 120, 0, 1, 1, 0x80, 0, 2, 1, 0];
        let cap = Capability::parse(64, &value).unwrap();
        assert_eq!(
            cap,
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: false,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily { afi: 1, safi: 1, forwarding_preserved: true },
                    GracefulRestartFamily { afi: 2, safi: 1, forwarding_preserved: false },
                ],
            })
        );
        let mut out = [0u8; 16];
        assert_eq!(cap.emit(&mut out), 12);
        assert_eq!(&out[2..12], &value);
        assert_eq!(Capability::parse(64, &[0, 120, 0]), Err(OpenError::MalformedCapability { code: 64 }));
    }

    #[test]
    fn unknown_capability_and_extended_parameters() {
        let caps = vec![
            Capability::Unknown { code: 73, value: vec![7; 200] },
            Capability::Unknown { code: 74, value: vec![8; 100] },
        ];
        let open = Open::new(65000, 90, Ipv4Addr::new(1, 1, 1, 1), caps);
        let mut out = vec![0u8; open.body_len()];
        assert_eq!(open.emit_body(&mut out), out.len());
        assert_eq!((out[9], out[10]), (255, 255));
        assert_eq!(Open::parse(&out).unwrap(), open);
    }

    #[test]
    fn malformed_open() {
        assert_eq!(Open::parse(&OPEN_BODY[..9]), Err(OpenError::Malformed));
        let mut v3 = OPEN_BODY;
        v3[0] = 3;
        assert_eq!(Open::parse(&v3), Err(OpenError::UnsupportedVersion { version: 3 }));
        let mut auth = OPEN_BODY;
        auth[10] = 1;
        assert_eq!(Open::parse(&auth), Err(OpenError::UnsupportedOptionalParameter { kind: 1 }));
        let mut long = OPEN_BODY;
        long[9] = 25;
        assert_eq!(Open::parse(&long), Err(OpenError::Malformed));
        for cut in 0..OPEN_BODY.len() {
            assert!(Open::parse(&OPEN_BODY[..cut]).is_err());
        }
    }
}
