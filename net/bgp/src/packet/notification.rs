//! NOTIFICATION (RFC 4271 section 4.5), with the Shutdown Communication of RFC 9003.

use alloc::vec::Vec;

use super::error::{CeaseSubcode, ErrorCode};

/// A NOTIFICATION: error code, subcode, and data whose meaning depends on the code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: ErrorCode,
    pub data: Vec<u8>,
}

/// Why a NOTIFICATION body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationError {
    /// Shorter than the code and subcode octets.
    Truncated,
}

impl Notification {
    /// The longest Shutdown Communication (RFC 9003), in octets of UTF-8.
    pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

    pub fn new(code: ErrorCode) -> Notification {
        Notification { code, data: Vec::new() }
    }

    pub fn with_data(code: ErrorCode, data: &[u8]) -> Notification {
        Notification { code, data: data.to_vec() }
    }

    /// A Cease with the given subcode.
    pub fn cease(subcode: CeaseSubcode) -> Notification {
        Notification::new(ErrorCode::Cease(subcode))
    }

    /// A Cease (Administrative Shutdown or Reset) carrying a Shutdown Communication: a length
    /// octet and UTF-8 text, cut at a character boundary to 255 octets (RFC 9003).
    pub fn cease_with_message(subcode: CeaseSubcode, message: &str) -> Notification {
        let mut end = message.len().min(Self::MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.as_bytes().get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(1 + text.len());
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Notification { code: ErrorCode::Cease(subcode), data }
    }

    /// The Shutdown Communication of an Administrative Shutdown or Reset, if the data holds one
    /// that is well-formed UTF-8.
    pub fn shutdown_communication(&self) -> Option<&str> {
        match self.code {
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset) => {}
            _ => return None,
        }
        let (&len, rest) = self.data.split_first()?;
        core::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }

    /// Reads the body (after the header).
    pub fn parse(body: &[u8]) -> Result<Notification, NotificationError> {
        match body {
            [code, subcode, data @ ..] => {
                Ok(Notification { code: ErrorCode::from_u8(*code, *subcode), data: data.to_vec() })
            }
            _ => Err(NotificationError::Truncated),
        }
    }

    pub fn body_len(&self) -> usize {
        2 + self.data.len()
    }

    /// Writes the body into `buf` (at least `body_len` octets); returns `body_len`.
    pub fn emit_body(&self, buf: &mut [u8]) -> usize {
        let (code, subcode) = self.code.to_u8();
        buf[0] = code;
        buf[1] = subcode;
        buf[2..2 + self.data.len()].copy_from_slice(&self.data);
        self.body_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::error::OpenSubcode;

    #[test]
    fn both_ways() {
        let body = [2, 2];
        let n = Notification::parse(&body).unwrap();
        assert_eq!(n, Notification::new(ErrorCode::OpenMessage(OpenSubcode::BadPeerAs)));
        let mut out = [0u8; 8];
        assert_eq!(n.emit_body(&mut out), 2);
        assert_eq!(&out[..2], &body);
        assert_eq!(Notification::parse(&[6]), Err(NotificationError::Truncated));
    }

    #[test]
    fn shutdown_communication() {
        let n = Notification::cease_with_message(CeaseSubcode::AdministrativeShutdown, "maintenance");
        assert_eq!(n.data[0], 11);
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        let long = "é".repeat(200);
        let n = Notification::cease_with_message(CeaseSubcode::AdministrativeReset, &long);
        assert_eq!(n.data.len(), 1 + 254);
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
        let bad = Notification::with_data(ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown), &[9, b'x']);
        assert_eq!(bad.shutdown_communication(), None);
    }
}
