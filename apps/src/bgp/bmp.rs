//! What BGP does for BMP (the contract is `crate::bmp`'s: its module docs say it): BGP offers
//! itself to be read (`Subsystem::peek`) as a [`BgpView`] over its tables, read in place a page
//! at a time, and tells BMP its per-session events with `crate::bmp::tell_*`, which BMP copies
//! into its own domain within its own bound (BGP never waits, and only counts a refusal).
//!
//! BMP session numbers: a counter bumped at each `Established`, never reused, also across
//! sheds (the subsystem keeps it); 0 is the Loc-RIB's.
//!
//! Statistics Reports (RFC 7854 section 4.8, RFC 8671): what BGP counts, read when a report is
//! due ([`peer_stats`]), since the session came up. Gauges: type 7 and 9 (the session's
//! pre-policy Adj-RIB-In, whole and per AFI/SAFI), 8 and 10 (the Loc-RIB's size, whole and per
//! AFI/SAFI: the RFC's "routes in Loc-RIB"; this peer's share of it would need a walk of the
//! Loc-RIB or a count the RIB does not keep), and 15 (the session's post-policy Adj-RIB-Out).
//! Counters (32 bits, wrapping): 0 to 5 from the RIB (prefixes rejected by import policy,
//! duplicate advertisements and withdraws, UPDATEs looped by CLUSTER_LIST, AS_PATH or
//! ORIGINATOR_ID), 11 and 12 from the speaker (UPDATEs treated as withdraw, and the prefixes
//! they announced). Not sent: 6 (no confederations) and 13 (duplicate UPDATEs are not
//! compared whole).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};

use bulkhead_bgp::neighbor::{DownReason, NeighborConfig};
use bulkhead_bgp::packet::attribute::{PathAttributes, SessionContext};
use bulkhead_bgp::packet::message::{Message, MAX_LEN};
use bulkhead_bgp::packet::nlri::{Family, Prefix};
use bulkhead_bgp::packet::notification::Notification;
use bulkhead_bgp::rib::{PeerCounts, PeerStats, RibView};
use bulkhead_bmp::packet::{PeerFlags, PeerHeader, PeerType, Stat, StatType, StatValue};
use bulkhead_bmp::PeerUpInfo;

use super::{BgpSubsystem, Peer, Speaker};
use crate::bmp::{BgpCursor, BgpView};

fn family(f: Family) -> bulkhead_bmp::Family {
    match f {
        Family::Ipv4Unicast => bulkhead_bmp::Family::IPV4_UNICAST,
        Family::Ipv6Unicast => bulkhead_bmp::Family::IPV6_UNICAST,
    }
}

fn notification_bytes(n: &Notification) -> Vec<u8> {
    Message::Notification(n.clone()).to_bytes(SessionContext::default(), MAX_LEN).unwrap_or_default()
}

fn open_bytes(cfg: &NeighborConfig) -> Vec<u8> {
    Message::Open(cfg.open()).to_bytes(SessionContext::default(), MAX_LEN).unwrap_or_default()
}

/// The Peer Up of a neighbor whose session is up.
fn peer_up_info(p: &Peer) -> Option<PeerUpInfo> {
    let negotiated = p.fsm.negotiated()?;
    let mut flags = 0;
    if !negotiated.ctx.four_octet_as {
        flags |= PeerFlags::A;
    }
    Some(PeerUpInfo {
        header: PeerHeader {
            peer_type: PeerType::Global,
            flags: PeerFlags(flags),
            distinguisher: [0; 8],
            address: IpAddr::V4(p.settings.address),
            asn: p.settings.asn,
            bgp_id: negotiated.peer_id,
            timestamp_secs: 0,
            timestamp_micros: 0,
        },
        local_address: IpAddr::V4(p.local),
        local_port: 0,
        remote_port: super::BGP_PORT,
        sent_open: open_bytes(p.fsm.config()),
        received_open: negotiated.received_open.clone(),
        table_name: None,
        families: negotiated.families.iter().map(|f| family(*f)).collect(),
    })
}

impl Speaker {
    /// Neighbor `i`'s session is up: it gets its BMP session number and BMP its Peer Up.
    pub(super) fn bmp_up(&mut self, i: usize, cx: &mut crate::context::Context<'_>) {
        self.next_session += 1;
        let session = self.next_session;
        let Some(p) = self.peers.get_mut(i) else { return };
        p.bmp_session = session;
        if let Some(info) = peer_up_info(p) {
            let told = crate::bmp::tell_peer_up(cx, session, info);
            self.bmp_refused += u64::from(!told);
        }
    }

    pub(super) fn bmp_down(&mut self, i: usize, cx: &mut crate::context::Context<'_>, reason: &DownReason) {
        let Some(p) = self.peers.get_mut(i) else { return };
        let session = core::mem::take(&mut p.bmp_session);
        if session == 0 {
            return;
        }
        let reason = match reason {
            DownReason::NotificationSent(n) => {
                bulkhead_bmp::DownReason::LocalNotification(notification_bytes(n))
            }
            DownReason::NotificationReceived(n) => {
                bulkhead_bmp::DownReason::RemoteNotification(notification_bytes(n))
            }
            DownReason::TcpClosed => bulkhead_bmp::DownReason::RemoteNoData,
        };
        let told = crate::bmp::tell_peer_down(cx, session, reason);
        self.bmp_refused += u64::from(!told);
    }

    pub(super) fn bmp_update(
        &mut self,
        i: usize,
        cx: &mut crate::context::Context<'_>,
        update: &bulkhead_bgp::packet::update::Update,
    ) {
        let Some(session) = self.peers.get(i).map(|p| p.bmp_session).filter(|s| *s != 0) else { return };
        let told = crate::bmp::tell_update(cx, session, update);
        self.bmp_refused += u64::from(!told);
    }

    pub(super) fn bmp_end_of_rib(&mut self, i: usize, cx: &mut crate::context::Context<'_>, f: Family) {
        let Some(session) = self.peers.get(i).map(|p| p.bmp_session).filter(|s| *s != 0) else { return };
        let told = crate::bmp::tell_end_of_rib(cx, session, f);
        self.bmp_refused += u64::from(!told);
    }

    fn by_session(&self, session: u64) -> Option<&Peer> {
        self.peers.iter().find(|p| session != 0 && p.bmp_session == session && p.up_since.is_some())
    }
}

impl BgpView for BgpSubsystem {
    fn sessions(&self, out: &mut Vec<u64>) {
        if let Some(s) = &self.speaker {
            out.extend(
                s.peers.iter().filter(|p| p.up_since.is_some() && p.bmp_session != 0).map(|p| p.bmp_session),
            );
        }
    }

    fn peer_up(&self, session: u64) -> Option<PeerUpInfo> {
        peer_up_info(self.speaker.as_ref()?.by_session(session)?)
    }

    fn loc_rib_up(&self) -> Option<PeerUpInfo> {
        let s = self.speaker.as_ref()?;
        let open = open_bytes(&NeighborConfig::new(s.asn, s.asn, s.router_id));
        Some(PeerUpInfo {
            header: PeerHeader {
                peer_type: PeerType::LocRib,
                flags: PeerFlags(0),
                distinguisher: [0; 8],
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                asn: s.asn,
                bgp_id: s.router_id,
                timestamp_secs: 0,
                timestamp_micros: 0,
            },
            local_address: IpAddr::V4(s.router_id),
            local_port: 0,
            remote_port: 0,
            sent_open: open.clone(),
            received_open: open,
            table_name: Some(String::from("loc-rib")),
            families: alloc::vec![bulkhead_bmp::Family::IPV4_UNICAST, bulkhead_bmp::Family::IPV6_UNICAST],
        })
    }

    fn adj_rib_in_page<'a>(
        &'a self,
        session: u64,
        view: RibView,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(Prefix, &'a PathAttributes)>,
    ) {
        let Some(s) = self.speaker.as_ref() else { return };
        let Some(p) = s.by_session(session) else { return };
        if !cursor.v4.is_done() {
            if let Ok(page) = s.rib4.adj_rib_in_page(p.id4, view, &mut cursor.v4, max) {
                out.extend(page.into_iter().map(|r| (Prefix::V4(r.prefix), r.attrs)));
            }
            return;
        }
        if let Ok(page) = s.rib6.adj_rib_in_page(p.id6, view, &mut cursor.v6, max) {
            out.extend(page.into_iter().map(|r| (Prefix::V6(r.prefix), r.attrs)));
        }
    }

    fn loc_rib_page<'a>(
        &'a self,
        cursor: &mut BgpCursor,
        max: usize,
        out: &mut Vec<(Prefix, &'a PathAttributes)>,
    ) {
        let Some(s) = self.speaker.as_ref() else { return };
        if !cursor.v4.is_done() {
            out.extend(
                s.rib4.loc_rib_page(&mut cursor.v4, max).into_iter().map(|r| (Prefix::V4(r.prefix), r.attrs)),
            );
            return;
        }
        out.extend(
            s.rib6.loc_rib_page(&mut cursor.v6, max).into_iter().map(|r| (Prefix::V6(r.prefix), r.attrs)),
        );
    }

    fn attrs(&self, _id: u64) -> Option<&PathAttributes> {
        None // events carry their attributes as bytes
    }

    fn stats(&self, session: u64, out: &mut Vec<Stat<'static>>) {
        let Some(s) = self.speaker.as_ref() else { return };
        let Some(p) = s.by_session(session) else { return };
        let in4 = s.rib4.peer_counts(p.id4).unwrap_or_default();
        let in6 = s.rib6.peer_counts(p.id6).unwrap_or_default();
        peer_stats(in4, in6, (s.rib4.loc_rib().len(), s.rib6.loc_rib().len()), p.treated_as_withdraw, out);
    }

    fn up_since(&self, session: u64) -> Option<crate::time::Instant> {
        self.speaker.as_ref()?.by_session(session)?.up_since
    }
}

/// A session's Statistics Report from its RIB counts (IPv4, IPv6) and the Loc-RIB's sizes: see
/// the module docs for the types and why no counters.
pub(crate) fn peer_stats(
    in4: PeerCounts,
    in6: PeerCounts,
    loc: (usize, usize),
    treated_as_withdraw: (u64, u64),
    out: &mut Vec<Stat<'static>>,
) {
    let gauge = |n: usize| n as u64;
    let per_family = |kind, v4: usize, v6: usize| {
        [(1, v4), (2, v6)]
            .map(|(afi, n)| Stat { kind, value: StatValue::AfiSafiGauge { afi, safi: 1, value: gauge(n) } })
    };
    out.push(Stat::gauge(StatType::ADJ_RIB_IN_ROUTES, gauge(in4.received + in6.received)));
    out.extend(per_family(StatType::ADJ_RIB_IN_ROUTES_PER_AFI_SAFI, in4.received, in6.received));
    out.push(Stat::gauge(StatType::LOC_RIB_ROUTES, gauge(loc.0 + loc.1)));
    out.extend(per_family(StatType::LOC_RIB_ROUTES_PER_AFI_SAFI, loc.0, loc.1));
    out.push(Stat::gauge(StatType::ADJ_RIB_OUT_POST_POLICY_ROUTES, gauge(in4.advertised + in6.advertised)));
    // BMP counters are 32 bits and wrap.
    let counter = |kind, count: fn(&PeerStats) -> u64| {
        Stat::counter(kind, count(&in4.stats).wrapping_add(count(&in6.stats)) as u32)
    };
    out.extend([
        counter(StatType::REJECTED_PREFIXES, |s| s.rejected),
        counter(StatType::DUPLICATE_PREFIX_ADVERTISEMENTS, |s| s.duplicate_advertisements),
        counter(StatType::DUPLICATE_WITHDRAWS, |s| s.duplicate_withdraws),
        counter(StatType::CLUSTER_LIST_LOOP, |s| s.cluster_list_loops),
        counter(StatType::AS_PATH_LOOP, |s| s.as_path_loops),
        counter(StatType::ORIGINATOR_ID_LOOP, |s| s.originator_id_loops),
        Stat::counter(StatType::UPDATES_TREAT_AS_WITHDRAW, treated_as_withdraw.0 as u32),
        Stat::counter(StatType::PREFIXES_TREAT_AS_WITHDRAW, treated_as_withdraw.1 as u32),
    ]);
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use bulkhead_bmp::packet::Message;

    use super::*;

    /// A Statistics Report of a session holding 25,000 IPv4 and 3 IPv6 routes, with 25,010
    /// IPv4 routes in the Loc-RIB and 7 advertised, and counters of both families summed,
    /// byte for byte (RFC 7854 4.1, 4.2, 4.8; RFC 8671's type 15).
    #[test]
    fn statistics_report_golden_vector() {
        let stats4 =
            PeerStats { rejected: 3, duplicate_withdraws: 2, as_path_loops: 1, ..PeerStats::default() };
        let stats6 = PeerStats { rejected: 1, duplicate_advertisements: 4, ..PeerStats::default() };
        let in4 = PeerCounts {
            received: 25_000,
            accepted: 24_000,
            advertised: 7,
            stats: stats4,
            ..PeerCounts::default()
        };
        let in6 = PeerCounts { received: 3, stats: stats6, ..PeerCounts::default() };
        let mut stats = Vec::new();
        peer_stats(in4, in6, (25_010, 0), (2, 9), &mut stats);
        let peer = PeerHeader {
            peer_type: PeerType::Global,
            flags: PeerFlags(0),
            distinguisher: [0; 8],
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            asn: 65001,
            bgp_id: Ipv4Addr::new(192, 0, 2, 2),
            timestamp_secs: 1_700_000_000,
            timestamp_micros: 5,
        };
        let message = Message::StatisticsReport { peer, stats };
        let mut bytes = vec![0u8; message.buffer_len()];
        message.emit(&mut bytes).unwrap();
        let mut golden = vec![3, 0, 0, 0, 212, 1]; // version 3, length 212, Statistics Report
        golden.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // global peer, no flags, RD 0
        golden.extend_from_slice(&[0; 12]);
        golden.extend_from_slice(&[192, 0, 2, 2, 0, 0, 0xfd, 0xe9, 192, 0, 2, 2]); // address, AS, id
        golden.extend_from_slice(&[0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 5]); // timestamp
        golden.extend_from_slice(&[0, 0, 0, 15]); // 15 stats
        golden.extend_from_slice(&[0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0x61, 0xab]); // Adj-RIB-In 25,003
        golden.extend_from_slice(&[0, 9, 0, 11, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0x61, 0xa8]); // IPv4 25,000
        golden.extend_from_slice(&[0, 9, 0, 11, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 3]); // IPv6 3
        golden.extend_from_slice(&[0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0x61, 0xb2]); // Loc-RIB 25,010
        golden.extend_from_slice(&[0, 10, 0, 11, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0x61, 0xb2]);
        golden.extend_from_slice(&[0, 10, 0, 11, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        golden.extend_from_slice(&[0, 15, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]); // Adj-RIB-Out post-policy 7
        golden.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 4]); // rejected by policy 3 + 1
        golden.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 4]); // duplicate advertisements
        golden.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 2]); // duplicate withdraws
        golden.extend_from_slice(&[0, 3, 0, 4, 0, 0, 0, 0]); // CLUSTER_LIST loops
        golden.extend_from_slice(&[0, 4, 0, 4, 0, 0, 0, 1]); // AS_PATH loops
        golden.extend_from_slice(&[0, 5, 0, 4, 0, 0, 0, 0]); // ORIGINATOR_ID loops
        golden.extend_from_slice(&[0, 11, 0, 4, 0, 0, 0, 2]); // UPDATEs treated as withdraw
        golden.extend_from_slice(&[0, 12, 0, 4, 0, 0, 0, 9]); // their prefixes
        assert_eq!(bytes, golden);
        // And this crate's decoder reads it back.
        let (back, len) = Message::parse_bytes(&bytes).unwrap();
        assert_eq!((back, len), (message, 212));
    }
}
