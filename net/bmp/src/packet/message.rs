//! The seven messages of RFC 7854 as one validated [`Message`].

use alloc::vec::Vec;
use core::net::IpAddr;

use super::header::{address_field, address_from, PeerHeaderPacket};
use super::stats::{emit_stats, parse_stats};
use super::tlv::{
    emit_info_tlvs, emit_mirror_tlvs, emit_term_tlvs, parse_info_tlvs, parse_mirror_tlvs, parse_term_tlvs,
};
use super::{
    emit_header, EmitError, Error, InfoTlv, MessageType, MirrorTlv, Packet, PeerHeader, Reader, Stat,
    TermTlv, Writer, HEADER_LEN, PEER_HEADER_LEN, VERSION,
};

/// BGP message types carried inside BMP messages.
pub(crate) const BGP_OPEN: u8 = 1;
pub(crate) const BGP_UPDATE: u8 = 2;
pub(crate) const BGP_NOTIFICATION: u8 = 3;

/// Peer Up Notification (RFC 7854 section 4.10; RFC 9069 section 5.3 for the Loc-RIB).
///
/// ```text
/// (per-peer header)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Local Address (16 bytes)                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Local Port            |        Remote Port            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Sent OPEN Message                          |
/// |                  Received OPEN Message                        |
/// |                 Information (variable)                        |
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUp<'a> {
    pub peer: PeerHeader,
    /// Same family as the peer's address (zero for the Loc-RIB).
    pub local_address: IpAddr,
    pub local_port: u16,
    pub remote_port: u16,
    /// The whole BGP OPEN message we sent, marker included.
    pub sent_open: &'a [u8],
    /// The whole BGP OPEN message we received (for the Loc-RIB, a copy of `sent_open`).
    pub received_open: &'a [u8],
    /// Optional information TLVs; for the Loc-RIB the VRF/Table Name TLV is required.
    pub info: Vec<InfoTlv<'a>>,
}

/// Why a peer went down, with the data each reason carries (RFC 7854 section 4.9; reason 6
/// from RFC 9069 section 5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerDownReason<'a> {
    /// 1: we closed the session with this NOTIFICATION message.
    LocalNotification(&'a [u8]),
    /// 2: we closed the session without a NOTIFICATION; the FSM event code (0 if none).
    LocalFsmEvent(u16),
    /// 3: the peer closed the session with this NOTIFICATION message.
    RemoteNotification(&'a [u8]),
    /// 4: the peer closed the session without a NOTIFICATION.
    RemoteNoData,
    /// 5: the peer was de-configured; no BGP session ended.
    Deconfigured,
    /// 6: the Loc-RIB (RFC 9069) is no longer monitored; information TLVs follow.
    LocalTlvs(Vec<InfoTlv<'a>>),
}

impl PeerDownReason<'_> {
    pub const fn code(&self) -> u8 {
        match self {
            PeerDownReason::LocalNotification(_) => 1,
            PeerDownReason::LocalFsmEvent(_) => 2,
            PeerDownReason::RemoteNotification(_) => 3,
            PeerDownReason::RemoteNoData => 4,
            PeerDownReason::Deconfigured => 5,
            PeerDownReason::LocalTlvs(_) => 6,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            PeerDownReason::LocalNotification(pdu) | PeerDownReason::RemoteNotification(pdu) => pdu.len(),
            PeerDownReason::LocalFsmEvent(_) => 2,
            PeerDownReason::RemoteNoData | PeerDownReason::Deconfigured => 0,
            PeerDownReason::LocalTlvs(tlvs) => tlvs.iter().map(InfoTlv::len).sum(),
        }
    }
}

/// One BMP message, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Type 0: one BGP UPDATE about the peer's routes.
    RouteMonitoring { peer: PeerHeader, update: &'a [u8] },
    /// Type 1: counters and gauges about the peer.
    StatisticsReport { peer: PeerHeader, stats: Vec<Stat<'a>> },
    /// Type 2.
    PeerDown { peer: PeerHeader, reason: PeerDownReason<'a> },
    /// Type 3.
    PeerUp(PeerUp<'a>),
    /// Type 4: the first message of a session; sysDescr and sysName are required.
    Initiation(Vec<InfoTlv<'a>>),
    /// Type 5: the last message of a session.
    Termination(Vec<TermTlv<'a>>),
    /// Type 6: BGP PDUs as received, verbatim.
    RouteMirroring { peer: PeerHeader, tlvs: Vec<MirrorTlv<'a>> },
}

impl<'a> Message<'a> {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::RouteMonitoring { .. } => MessageType::RouteMonitoring,
            Message::StatisticsReport { .. } => MessageType::StatisticsReport,
            Message::PeerDown { .. } => MessageType::PeerDown,
            Message::PeerUp(_) => MessageType::PeerUp,
            Message::Initiation(_) => MessageType::Initiation,
            Message::Termination(_) => MessageType::Termination,
            Message::RouteMirroring { .. } => MessageType::RouteMirroring,
        }
    }

    /// The per-peer header, for the messages that have one.
    pub fn peer(&self) -> Option<&PeerHeader> {
        match self {
            Message::RouteMonitoring { peer, .. }
            | Message::StatisticsReport { peer, .. }
            | Message::PeerDown { peer, .. }
            | Message::RouteMirroring { peer, .. }
            | Message::PeerUp(PeerUp { peer, .. }) => Some(peer),
            Message::Initiation(_) | Message::Termination(_) => None,
        }
    }

    /// Reads one message. The whole of the length the header states must be used.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Message<'a>, Error> {
        if packet.version() != VERSION {
            return Err(Error::Version(packet.version()));
        }
        let msg_type = MessageType::try_from(packet.msg_type())?;
        let whole: &'a [u8] = packet.buffer;
        let payload = whole.get(HEADER_LEN..packet.length() as usize).unwrap_or(&[]);
        let mut r = Reader::new(payload, HEADER_LEN);
        let message = match msg_type {
            MessageType::Initiation => Message::Initiation(parse_info_tlvs(&mut r)?),
            MessageType::Termination => Message::Termination(parse_term_tlvs(&mut r)?),
            _ => {
                let header = PeerHeaderPacket::new_checked(r.take(PEER_HEADER_LEN)?)?;
                let peer = PeerHeader::parse(&header);
                parse_peer_message(msg_type, peer, &mut r)?
            }
        };
        r.finish()?;
        Ok(message)
    }

    /// Checks the header of the first message in `bytes` and reads it; returns the message and
    /// its length (bytes after it are the next message's).
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<(Message<'a>, usize), Error> {
        let packet = Packet::new_checked(bytes)?;
        let len = packet.length() as usize;
        Ok((Message::parse(&packet)?, len))
    }

    /// The length of the whole message, common header included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Message::RouteMonitoring { update, .. } => PEER_HEADER_LEN + update.len(),
                Message::StatisticsReport { stats, .. } => {
                    PEER_HEADER_LEN + 4 + stats.iter().map(Stat::len).sum::<usize>()
                }
                Message::PeerDown { reason, .. } => PEER_HEADER_LEN + 1 + reason.data_len(),
                Message::PeerUp(up) => {
                    PEER_HEADER_LEN
                        + 20
                        + up.sent_open.len()
                        + up.received_open.len()
                        + up.info.iter().map(InfoTlv::len).sum::<usize>()
                }
                Message::Initiation(tlvs) => tlvs.iter().map(InfoTlv::len).sum(),
                Message::Termination(tlvs) => tlvs.iter().map(TermTlv::len).sum(),
                Message::RouteMirroring { tlvs, .. } => {
                    PEER_HEADER_LEN + tlvs.iter().map(MirrorTlv::len).sum::<usize>()
                }
            }
    }

    /// Writes the message at the start of `buf`; returns its length (`buffer_len()`).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(EmitError::BufferTooSmall { needed: len, got: buf.len() });
        }
        let (head, body) = buf.split_at_mut(HEADER_LEN);
        emit_header(self.msg_type(), len, head)?;
        let mut w = Writer::new(body);
        if let Some(peer) = self.peer() {
            peer.emit(&mut w)?;
        }
        match self {
            Message::RouteMonitoring { update, .. } => w.put(update)?,
            Message::StatisticsReport { stats, .. } => emit_stats(stats, &mut w)?,
            Message::PeerDown { reason, .. } => {
                w.u8(reason.code())?;
                match reason {
                    PeerDownReason::LocalNotification(pdu) | PeerDownReason::RemoteNotification(pdu) => {
                        w.put(pdu)?
                    }
                    PeerDownReason::LocalFsmEvent(code) => w.u16(*code)?,
                    PeerDownReason::RemoteNoData | PeerDownReason::Deconfigured => {}
                    PeerDownReason::LocalTlvs(tlvs) => emit_info_tlvs(tlvs, &mut w)?,
                }
            }
            Message::PeerUp(up) => {
                if up.local_address.is_ipv6() != up.peer.is_v6() {
                    return Err(EmitError::AddressFamilyMismatch);
                }
                w.put(&address_field(up.local_address))?;
                w.u16(up.local_port)?;
                w.u16(up.remote_port)?;
                w.put(up.sent_open)?;
                w.put(up.received_open)?;
                emit_info_tlvs(&up.info, &mut w)?;
            }
            Message::Initiation(tlvs) => emit_info_tlvs(tlvs, &mut w)?,
            Message::Termination(tlvs) => emit_term_tlvs(tlvs, &mut w)?,
            Message::RouteMirroring { tlvs, .. } => emit_mirror_tlvs(tlvs, &mut w)?,
        }
        Ok(HEADER_LEN + w.pos())
    }
}

fn parse_peer_message<'a>(
    msg_type: MessageType,
    peer: PeerHeader,
    r: &mut Reader<'a>,
) -> Result<Message<'a>, Error> {
    Ok(match msg_type {
        MessageType::RouteMonitoring => Message::RouteMonitoring { peer, update: r.bgp_pdu(BGP_UPDATE)? },
        MessageType::StatisticsReport => Message::StatisticsReport { peer, stats: parse_stats(r)? },
        MessageType::PeerDown => {
            let code = r.u8()?;
            let reason = match code {
                1 => PeerDownReason::LocalNotification(r.bgp_pdu(BGP_NOTIFICATION)?),
                2 => PeerDownReason::LocalFsmEvent(r.u16()?),
                3 => PeerDownReason::RemoteNotification(r.bgp_pdu(BGP_NOTIFICATION)?),
                4 => PeerDownReason::RemoteNoData,
                5 => PeerDownReason::Deconfigured,
                6 => PeerDownReason::LocalTlvs(parse_info_tlvs(r)?),
                other => return Err(Error::PeerDownReason(other)),
            };
            Message::PeerDown { peer, reason }
        }
        MessageType::PeerUp => {
            let local = address_from(r.array()?, peer.is_v6());
            let local_port = r.u16()?;
            let remote_port = r.u16()?;
            let sent_open = r.bgp_pdu(BGP_OPEN)?;
            let received_open = r.bgp_pdu(BGP_OPEN)?;
            let info = parse_info_tlvs(r)?;
            Message::PeerUp(PeerUp {
                peer,
                local_address: local,
                local_port,
                remote_port,
                sent_open,
                received_open,
                info,
            })
        }
        MessageType::RouteMirroring => Message::RouteMirroring { peer, tlvs: parse_mirror_tlvs(r)? },
        MessageType::Initiation | MessageType::Termination => {
            // Handled by the caller; unreachable from `parse`, refused rather than assumed.
            return Err(Error::MessageType(msg_type as u8));
        }
    })
}
