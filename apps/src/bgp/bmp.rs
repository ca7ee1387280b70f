//! What BGP does for BMP (the contract is `crate::bmp`'s: its module docs say it): BGP offers
//! itself to be read (`Subsystem::peek`) as a [`BgpView`] over its tables, read in place a page
//! at a time, and tells BMP its per-session events with `crate::bmp::tell_*`, which BMP copies
//! into its own domain within its own bound (BGP never waits, and only counts a refusal).
//!
//! BMP session numbers: a counter bumped at each `Established`, never reused, also across
//! sheds (the subsystem keeps it); 0 is the Loc-RIB's.
//!
//! Not yet: statistics reports.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};

use bulkhead_bgp::neighbor::{DownReason, NeighborConfig};
use bulkhead_bgp::packet::attribute::{PathAttributes, SessionContext};
use bulkhead_bgp::packet::message::{Message, MAX_LEN};
use bulkhead_bgp::packet::nlri::{Family, Prefix};
use bulkhead_bgp::packet::notification::Notification;
use bulkhead_bgp::rib::RibView;
use bulkhead_bmp::packet::{PeerFlags, PeerHeader, PeerType};
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
}
