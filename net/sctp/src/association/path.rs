//! A path: one peer transport address of the association (RFC 9260 sections 5.4, 8.2 and 8.3),
//! with its own RTO, congestion window, error count, state and heartbeat timer.

use core::net::Ipv4Addr;

use bulkhead_base::time::{Duration, Instant};

use super::cc::Congestion;
use super::rto::{RtoConfig, RtoEstimator};
use crate::endpoint::Transport;

/// Reachability of a peer address (8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    Active,
    /// More than Path.Max.Retrans consecutive timeouts; still probed by heartbeats.
    Inactive,
}

#[derive(Debug)]
pub struct Path {
    /// The peer's address.
    pub addr: Ipv4Addr,
    /// Our address used as the source towards it (where its packets last arrived).
    pub local: Ipv4Addr,
    /// How packets reach it (learned from what arrives: the peer's UDP port may change).
    pub transport: Transport,
    pub state: PathState,
    pub rto: RtoEstimator,
    pub cc: Congestion,
    /// Consecutive timeouts (T3-rtx, heartbeat) on this path, reset by an acknowledgement.
    pub error_count: u32,
    /// Payload bytes of DATA chunks outstanding on this path.
    pub flight: u32,
    /// T3-rtx deadline, while data is outstanding on this path.
    pub t3_at: Option<Instant>,
    /// When the next HEARTBEAT is due.
    pub heartbeat_at: Instant,
    /// The nonce and send time of the HEARTBEAT awaiting its ACK.
    pub heartbeat_outstanding: Option<(u64, Instant)>,
    /// A HEARTBEAT is built and waiting for `poll_transmit`.
    pub heartbeat_to_send: bool,
    /// Whether a HEARTBEAT ACK or a SACK for data sent to it proved the address (5.4).
    pub confirmed: bool,
    /// The last time a DATA chunk was sent on the path (for the idle cwnd rule of 7.2.1).
    pub last_data_sent: Instant,
    /// One RTT measurement per round trip: the TSN being timed and when it was sent.
    pub rtt_probe: Option<(u64, Instant)>,
    /// The path MTU (7.3): the largest IP packet towards the peer address, the configured MTU
    /// until an ICMP "fragmentation needed" says less.
    pub mtu: u16,
    /// When a lowered MTU is probed for the configured one, to find out whether the path grew
    /// again (RFC 1191 section 6.3's ten minutes; [`MtuProbe::Raise`]).
    pub mtu_raise_at: Option<Instant>,
    /// T3-rtx expiries in a row with none of the path's DATA acknowledged since.
    pub data_timeouts: u32,
    /// Black-hole detection under way (see [`MtuProbe`]).
    pub probe: MtuProbe,
    /// What the HEARTBEAT outstanding (or about to be sent) is.
    pub heartbeat_kind: HeartbeatKind,
}

/// A HEARTBEAT is an ordinary one (8.3), or a probe of [`MtuProbe`], whose loss counts as no
/// error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatKind {
    Regular,
    /// The small probe ([`MtuProbe::Small`]).
    Small,
    /// Padded to fill a packet of this MTU ([`MtuProbe::Large`], [`MtuProbe::Raise`]).
    Padded(u16),
}

/// Path MTU black-hole detection, for a path whose data keeps timing out without an ICMP to
/// say why (in the spirit of RFC 8899 4.3 and 6.2, with HEARTBEATs as probes): first an
/// ordinary small HEARTBEAT; lost, the path is dead (the data's timeouts handle it) and keeps
/// its MTU. Answered, HEARTBEATs padded to the path MTU, up to [`LARGE_PROBES`]: one answered
/// means full-sized packets pass (the loss was random) and the detection ends; all lost, the
/// path is a black hole for large packets and its MTU falls. A probe's loss counts as no
/// error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtuProbe {
    Idle,
    Small,
    /// Padded probes sent so far.
    Large(u8),
    /// The MTU was lowered a while ago: a HEARTBEAT padded to the configured MTU (DF set)
    /// asks whether the path takes it again. Answered, the MTU goes back up; lost, it stays,
    /// and the question is asked again later. Data never tries the larger size blind.
    Raise,
}

/// Padded probes lost before a path is taken for a black hole.
pub const LARGE_PROBES: u8 = 3;

impl Path {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        addr: Ipv4Addr,
        local: Ipv4Addr,
        transport: Transport,
        rto: RtoConfig,
        mtu: u16,
        peer_rwnd: u32,
        now: Instant,
        heartbeat_interval: Duration,
    ) -> Self {
        Path {
            addr,
            local,
            transport,
            state: PathState::Active,
            rto: RtoEstimator::new(rto),
            cc: Congestion::new(u32::from(mtu), peer_rwnd),
            error_count: 0,
            flight: 0,
            t3_at: None,
            heartbeat_at: now + heartbeat_interval,
            heartbeat_outstanding: None,
            heartbeat_to_send: false,
            confirmed: false,
            last_data_sent: now,
            rtt_probe: None,
            mtu,
            mtu_raise_at: None,
            data_timeouts: 0,
            probe: MtuProbe::Idle,
            heartbeat_kind: HeartbeatKind::Regular,
        }
    }

    /// An ICMP said packets of more than `mtu` bytes do not pass: true when that lowers the
    /// path MTU (a larger figure is no news; raising is left to the timer).
    pub fn lower_mtu(&mut self, mtu: u16, raise_at: Instant) -> bool {
        if mtu >= self.mtu {
            return false;
        }
        self.mtu = mtu;
        self.cc.set_mtu(u32::from(mtu));
        self.mtu_raise_at = Some(raise_at);
        true
    }

    /// A probe of the configured MTU passed: back to it.
    pub fn raise_mtu(&mut self, configured: u16) {
        self.mtu = configured;
        self.cc.set_mtu(u32::from(configured));
        self.mtu_raise_at = None;
    }

    pub fn is_active(&self) -> bool {
        self.state == PathState::Active
    }

    /// An acknowledgement arrived for something sent on this path (8.3): errors reset, the
    /// path is active again.
    pub fn on_reachable(&mut self) {
        self.error_count = 0;
        self.state = PathState::Active;
        self.confirmed = true;
    }

    /// A SACK acknowledged DATA sent on this path: reachable, and no black hole (a probe for
    /// a larger MTU goes on).
    pub fn on_data_acked(&mut self) {
        self.on_reachable();
        self.data_timeouts = 0;
        if matches!(self.probe, MtuProbe::Small | MtuProbe::Large(_)) {
            self.probe = MtuProbe::Idle;
        }
    }

    /// A timeout on this path (6.3.3, 8.3): back off, count; returns true when the path just
    /// became inactive.
    pub fn on_timeout(&mut self, path_max_retrans: u32) -> bool {
        self.rto.back_off();
        self.error_count = self.error_count.saturating_add(1);
        if self.error_count > path_max_retrans && self.state == PathState::Active {
            self.state = PathState::Inactive;
            return true;
        }
        false
    }
}
