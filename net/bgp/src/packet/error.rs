//! Error codes (RFC 4271 section 4.5 and 6) and the typed errors of each message, each mapped
//! to the NOTIFICATION it calls for; the RFC 7606 actions for UPDATE errors.

use alloc::vec::Vec;

use super::nlri::NlriError;
use super::notification::Notification;

/// NOTIFICATION error code with its subcode (IANA "BGP Error (Notification) Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MessageHeader(HeaderSubcode),
    OpenMessage(OpenSubcode),
    UpdateMessage(UpdateSubcode),
    HoldTimerExpired,
    FiniteStateMachine(FsmSubcode),
    Cease(CeaseSubcode),
    /// RFC 7313: ROUTE-REFRESH message error; subcode 1 is "invalid message length".
    RouteRefresh(u8),
    /// RFC 9687.
    SendHoldTimerExpired,
    /// A code this speaker does not know, kept by number.
    Other {
        code: u8,
        subcode: u8,
    },
}

/// Subcodes of code 1, Message Header Error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderSubcode {
    Unspecific,
    ConnectionNotSynchronized,
    BadMessageLength,
    BadMessageType,
    Other(u8),
}

/// Subcodes of code 2, OPEN Message Error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenSubcode {
    Unspecific,
    UnsupportedVersionNumber,
    BadPeerAs,
    BadBgpIdentifier,
    UnsupportedOptionalParameter,
    UnacceptableHoldTime,
    /// RFC 5492.
    UnsupportedCapability,
    Other(u8),
}

/// Subcodes of code 3, UPDATE Message Error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateSubcode {
    Unspecific,
    MalformedAttributeList,
    UnrecognizedWellKnownAttribute,
    MissingWellKnownAttribute,
    AttributeFlagsError,
    AttributeLengthError,
    InvalidOriginAttribute,
    InvalidNextHopAttribute,
    OptionalAttributeError,
    InvalidNetworkField,
    MalformedAsPath,
    Other(u8),
}

/// Subcodes of code 5, Finite State Machine Error (RFC 6608).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsmSubcode {
    Unspecific,
    UnexpectedInOpenSent,
    UnexpectedInOpenConfirm,
    UnexpectedInEstablished,
    Other(u8),
}

/// Subcodes of code 6, Cease (RFC 4486).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CeaseSubcode {
    Unspecific,
    MaxPrefixesReached,
    AdministrativeShutdown,
    PeerDeconfigured,
    AdministrativeReset,
    ConnectionRejected,
    OtherConfigurationChange,
    ConnectionCollisionResolution,
    OutOfResources,
    /// RFC 8538.
    HardReset,
    /// RFC 9384.
    BfdDown,
    Other(u8),
}

macro_rules! subcodes {
    ($ty:ident { $($variant:ident = $value:expr),* $(,)? }) => {
        impl $ty {
            pub const fn from_u8(value: u8) -> $ty {
                match value {
                    $($value => $ty::$variant,)*
                    other => $ty::Other(other),
                }
            }

            pub const fn to_u8(self) -> u8 {
                match self {
                    $($ty::$variant => $value,)*
                    $ty::Other(other) => other,
                }
            }
        }
    };
}

subcodes!(HeaderSubcode { Unspecific = 0, ConnectionNotSynchronized = 1, BadMessageLength = 2, BadMessageType = 3 });
subcodes!(OpenSubcode {
    Unspecific = 0,
    UnsupportedVersionNumber = 1,
    BadPeerAs = 2,
    BadBgpIdentifier = 3,
    UnsupportedOptionalParameter = 4,
    UnacceptableHoldTime = 6,
    UnsupportedCapability = 7,
});
subcodes!(UpdateSubcode {
    Unspecific = 0,
    MalformedAttributeList = 1,
    UnrecognizedWellKnownAttribute = 2,
    MissingWellKnownAttribute = 3,
    AttributeFlagsError = 4,
    AttributeLengthError = 5,
    InvalidOriginAttribute = 6,
    InvalidNextHopAttribute = 8,
    OptionalAttributeError = 9,
    InvalidNetworkField = 10,
    MalformedAsPath = 11,
});
subcodes!(FsmSubcode {
    Unspecific = 0,
    UnexpectedInOpenSent = 1,
    UnexpectedInOpenConfirm = 2,
    UnexpectedInEstablished = 3,
});
subcodes!(CeaseSubcode {
    Unspecific = 0,
    MaxPrefixesReached = 1,
    AdministrativeShutdown = 2,
    PeerDeconfigured = 3,
    AdministrativeReset = 4,
    ConnectionRejected = 5,
    OtherConfigurationChange = 6,
    ConnectionCollisionResolution = 7,
    OutOfResources = 8,
    HardReset = 9,
    BfdDown = 10,
});

impl ErrorCode {
    pub const fn from_u8(code: u8, subcode: u8) -> ErrorCode {
        match code {
            1 => ErrorCode::MessageHeader(HeaderSubcode::from_u8(subcode)),
            2 => ErrorCode::OpenMessage(OpenSubcode::from_u8(subcode)),
            3 => ErrorCode::UpdateMessage(UpdateSubcode::from_u8(subcode)),
            4 if subcode == 0 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine(FsmSubcode::from_u8(subcode)),
            6 => ErrorCode::Cease(CeaseSubcode::from_u8(subcode)),
            7 => ErrorCode::RouteRefresh(subcode),
            8 if subcode == 0 => ErrorCode::SendHoldTimerExpired,
            _ => ErrorCode::Other { code, subcode },
        }
    }

    /// `(code, subcode)` as on the wire.
    pub const fn to_u8(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.to_u8()),
            ErrorCode::OpenMessage(s) => (2, s.to_u8()),
            ErrorCode::UpdateMessage(s) => (3, s.to_u8()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::FiniteStateMachine(s) => (5, s.to_u8()),
            ErrorCode::Cease(s) => (6, s.to_u8()),
            ErrorCode::RouteRefresh(s) => (7, s),
            ErrorCode::SendHoldTimerExpired => (8, 0),
            ErrorCode::Other { code, subcode } => (code, subcode),
        }
    }
}

/// A message header that cannot be accepted (RFC 4271 section 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The marker is not all ones.
    ConnectionNotSynchronized,
    /// The length field is below 19, above the maximum, or wrong for the type.
    BadMessageLength { length: u16 },
    /// An unknown message type.
    BadMessageType { kind: u8 },
}

impl HeaderError {
    pub fn notification(self) -> Notification {
        match self {
            HeaderError::ConnectionNotSynchronized => {
                Notification::new(ErrorCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized))
            }
            HeaderError::BadMessageLength { length } => Notification::with_data(
                ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength),
                &length.to_be_bytes(),
            ),
            HeaderError::BadMessageType { kind } => {
                Notification::with_data(ErrorCode::MessageHeader(HeaderSubcode::BadMessageType), &[kind])
            }
        }
    }
}

/// An OPEN that cannot be accepted (RFC 4271 section 6.2, RFC 5492, RFC 6793).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The body is shorter than its fixed part, or the parameters overrun it.
    Malformed,
    /// The version is not 4.
    UnsupportedVersion { version: u8 },
    /// The AS is not the one configured for the peer (4-octet value after RFC 6793).
    BadPeerAs { asn: u32 },
    /// The BGP identifier is zero or is ours.
    BadBgpIdentifier { id: u32 },
    /// An optional parameter other than Capabilities.
    UnsupportedOptionalParameter { kind: u8 },
    /// Hold time 1 or 2 seconds, or below the configured minimum.
    UnacceptableHoldTime { hold_time: u16 },
    /// A capability that this speaker requires is missing; `data` holds the capabilities
    /// (code, length, value) that the NOTIFICATION carries.
    UnsupportedCapability { data: Vec<u8> },
    /// A capability whose value has the wrong length (RFC 5492: code 2, subcode 0).
    MalformedCapability { code: u8 },
}

impl OpenError {
    pub fn notification(&self) -> Notification {
        let open = ErrorCode::OpenMessage;
        match self {
            OpenError::Malformed => Notification::new(open(OpenSubcode::Unspecific)),
            OpenError::MalformedCapability { .. } => Notification::new(open(OpenSubcode::Unspecific)),
            // The data is the largest version supported (RFC 4271 6.2).
            OpenError::UnsupportedVersion { .. } => {
                Notification::with_data(open(OpenSubcode::UnsupportedVersionNumber), &4u16.to_be_bytes())
            }
            OpenError::BadPeerAs { .. } => Notification::new(open(OpenSubcode::BadPeerAs)),
            OpenError::BadBgpIdentifier { .. } => Notification::new(open(OpenSubcode::BadBgpIdentifier)),
            OpenError::UnsupportedOptionalParameter { .. } => {
                Notification::new(open(OpenSubcode::UnsupportedOptionalParameter))
            }
            OpenError::UnacceptableHoldTime { .. } => {
                Notification::new(open(OpenSubcode::UnacceptableHoldTime))
            }
            OpenError::UnsupportedCapability { data } => {
                Notification::with_data(open(OpenSubcode::UnsupportedCapability), data)
            }
        }
    }
}

/// What RFC 7606 says to do with an UPDATE that has an error, from the mildest to the worst.
/// When several errors are found, the worst one decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rfc7606Action {
    /// Drop the offending attribute and go on with the rest (RFC 7606 section 2).
    AttributeDiscard,
    /// Handle every prefix of the UPDATE, announced or not, as withdrawn.
    TreatAsWithdraw,
    /// Send the NOTIFICATION and drop the session.
    SessionReset,
}

/// What was wrong in an UPDATE (RFC 4271 section 6.3, RFC 7606 sections 3-7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateErrorKind {
    /// The body is shorter than its length fields, or Withdrawn Routes Length and Total Path
    /// Attribute Length do not fit the message (RFC 7606 section 4: session reset).
    LengthsInconsistent,
    /// An attribute header or value runs past the attribute field (RFC 7606 section 4).
    AttributeOverrun,
    /// MP_REACH_NLRI or MP_UNREACH_NLRI appears twice (RFC 7606 section 3 g).
    DuplicateMpAttribute { type_code: u8 },
    /// An attribute flagged well-known that this speaker does not know.
    UnrecognizedWellKnown { type_code: u8 },
    /// ORIGIN, AS_PATH, NEXT_HOP (or LOCAL_PREF on iBGP) missing while there are prefixes.
    MissingWellKnown { type_code: u8 },
    /// Optional or Transitive flag in conflict with the attribute's definition.
    AttributeFlags { type_code: u8, flags: u8 },
    /// A length the attribute cannot have.
    AttributeLength { type_code: u8, length: u16 },
    /// ORIGIN not 0, 1 or 2.
    InvalidOrigin { value: u8 },
    /// NEXT_HOP that is not a unicast host address (0/8, 127/8, 224/4 and above).
    InvalidNextHop,
    /// AS_PATH segments that cannot be read, or confederation segments from an external peer.
    MalformedAsPath,
    /// From an external peer, the leftmost AS of AS_PATH is not the peer's AS (RFC 4271 6.3;
    /// `first` is `None` when the path is empty or starts with an AS_SET).
    FirstAsMismatch { first: Option<u32>, peer_as: u32 },
    /// A known optional attribute whose value cannot be read.
    OptionalAttribute { type_code: u8 },
    /// Withdrawn routes or NLRI that cannot be read.
    InvalidNetworkField(NlriError),
    /// MP_REACH_NLRI / MP_UNREACH_NLRI whose fields cannot be read (RFC 7606 7.11).
    MalformedMpAttribute { type_code: u8 },
}

/// One UPDATE error, its RFC 7606 action and, for a reset, the attribute bytes the
/// NOTIFICATION carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateError {
    pub kind: UpdateErrorKind,
    pub action: Rfc7606Action,
    /// The data field of the NOTIFICATION: the erroneous attribute (type, length, value) or
    /// the missing type code; empty where RFC 4271 names none.
    pub data: Vec<u8>,
}

impl UpdateError {
    pub fn new(kind: UpdateErrorKind, action: Rfc7606Action) -> UpdateError {
        UpdateError { kind, action, data: Vec::new() }
    }

    pub fn with_data(kind: UpdateErrorKind, action: Rfc7606Action, data: &[u8]) -> UpdateError {
        UpdateError { kind, action, data: data.to_vec() }
    }

    /// The subcode RFC 4271 section 6.3 gives this error.
    pub fn subcode(&self) -> UpdateSubcode {
        match self.kind {
            UpdateErrorKind::LengthsInconsistent
            | UpdateErrorKind::AttributeOverrun
            | UpdateErrorKind::DuplicateMpAttribute { .. } => UpdateSubcode::MalformedAttributeList,
            UpdateErrorKind::UnrecognizedWellKnown { .. } => UpdateSubcode::UnrecognizedWellKnownAttribute,
            UpdateErrorKind::MissingWellKnown { .. } => UpdateSubcode::MissingWellKnownAttribute,
            UpdateErrorKind::AttributeFlags { .. } => UpdateSubcode::AttributeFlagsError,
            UpdateErrorKind::AttributeLength { .. } => UpdateSubcode::AttributeLengthError,
            UpdateErrorKind::InvalidOrigin { .. } => UpdateSubcode::InvalidOriginAttribute,
            UpdateErrorKind::InvalidNextHop => UpdateSubcode::InvalidNextHopAttribute,
            UpdateErrorKind::MalformedAsPath | UpdateErrorKind::FirstAsMismatch { .. } => {
                UpdateSubcode::MalformedAsPath
            }
            UpdateErrorKind::OptionalAttribute { .. } | UpdateErrorKind::MalformedMpAttribute { .. } => {
                UpdateSubcode::OptionalAttributeError
            }
            UpdateErrorKind::InvalidNetworkField(_) => UpdateSubcode::InvalidNetworkField,
        }
    }

    /// The NOTIFICATION that resets the session for this error.
    pub fn notification(&self) -> Notification {
        Notification::with_data(ErrorCode::UpdateMessage(self.subcode()), &self.data)
    }
}

/// Why a message could not be read: each cause folds into the NOTIFICATION it calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    Header(HeaderError),
    Open(OpenError),
    /// Only errors whose action is a session reset end up here.
    Update(UpdateError),
    /// A NOTIFICATION shorter than its code and subcode (answered as a bad message length).
    Notification {
        length: u16,
    },
}

impl MessageError {
    pub fn notification(&self) -> Notification {
        match self {
            MessageError::Header(e) => e.notification(),
            MessageError::Open(e) => e.notification(),
            MessageError::Update(e) => e.notification(),
            MessageError::Notification { length } => {
                HeaderError::BadMessageLength { length: *length }.notification()
            }
        }
    }
}

impl From<HeaderError> for MessageError {
    fn from(e: HeaderError) -> MessageError {
        MessageError::Header(e)
    }
}

impl From<OpenError> for MessageError {
    fn from(e: OpenError) -> MessageError {
        MessageError::Open(e)
    }
}

impl From<UpdateError> for MessageError {
    fn from(e: UpdateError) -> MessageError {
        MessageError::Update(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=9u8 {
            for subcode in 0..=12u8 {
                let parsed = ErrorCode::from_u8(code, subcode);
                assert_eq!(parsed.to_u8(), (code, subcode), "{parsed:?}");
            }
        }
        assert_eq!(ErrorCode::from_u8(6, 7), ErrorCode::Cease(CeaseSubcode::ConnectionCollisionResolution));
        assert_eq!(ErrorCode::from_u8(8, 0), ErrorCode::SendHoldTimerExpired);
        assert_eq!(ErrorCode::from_u8(3, 11), ErrorCode::UpdateMessage(UpdateSubcode::MalformedAsPath));
        assert_eq!(CeaseSubcode::OutOfResources.to_u8(), 8);
        assert_eq!(CeaseSubcode::MaxPrefixesReached.to_u8(), 1);
    }

    #[test]
    fn header_errors_carry_their_field() {
        let n = HeaderError::BadMessageLength { length: 5000 }.notification();
        assert_eq!(n.code, ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength));
        assert_eq!(n.data, [0x13, 0x88]);
        let n = HeaderError::BadMessageType { kind: 9 }.notification();
        assert_eq!(n.data, [9]);
        let n = OpenError::UnsupportedVersion { version: 3 }.notification();
        assert_eq!((n.code.to_u8(), n.data.as_slice()), ((2, 1), &[0, 4][..]));
    }

    #[test]
    fn worst_action_wins() {
        assert!(Rfc7606Action::SessionReset > Rfc7606Action::TreatAsWithdraw);
        assert!(Rfc7606Action::TreatAsWithdraw > Rfc7606Action::AttributeDiscard);
    }
}
