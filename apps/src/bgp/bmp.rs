//! What BGP offers the BMP exporter (`net/bmp`, a subsystem of its own): per-session events
//! pushed through a bounded channel, and its pre-policy Adj-RIB-In read a slice at a time.
//!
//! - Events: the integrator hands [`super::BgpSubsystem::set_event_sink`] a sink (BMP's
//!   `EventChannel`, behind whatever handle crosses the two domains). BGP pushes Peer Up,
//!   Peer Down, the routes of every UPDATE as received (pre-policy: announced with their
//!   attributes as an UPDATE carries them, and withdrawn), and End-of-RIB. A push never waits:
//!   a full channel drops the event and marks itself overflowed, and the exporter then
//!   re-synchronises from the tables. Without a sink nothing is encoded.
//! - Tables: [`BgpTables`] implements `bulkhead_bmp::Tables` over a running [`Speaker`]: the
//!   sessions that are up, their Peer Up, and their pre-policy IPv4 routes grouped by
//!   attribute set, at most `max` prefixes per call, resumable with a `RibCursor`.
//!
//! Not yet: IPv6 routes (their attributes need an MP_REACH_NLRI, which a group cannot carry
//! without its next hop per prefix set), and the peer's OPEN in Peer Up (the session FSM does
//! not keep the received OPEN; `received_open` is empty).
//!
//! A BMP peer is one session: `neighbor index << 32 | session number`, so an exporter tells
//! a late event of an old session from the new one's.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::IpAddr;

use bulkhead_bgp::neighbor::DownReason;
use bulkhead_bgp::packet::attribute::{PathAttributes, SessionContext};
use bulkhead_bgp::packet::message::{Message, MAX_LEN};
use bulkhead_bgp::packet::nlri::{Family, Ipv4Prefix};
use bulkhead_bgp::packet::notification::Notification;
use bulkhead_bgp::packet::update::Update;
use bulkhead_bgp::rib::{RibCursor, RibView};
use bulkhead_bmp::packet::{PeerFlags, PeerHeader, PeerType};
use bulkhead_bmp::{Attrs, Event, EventChannel, Overflowed, PeerUpInfo, RouteGroup, Tables};

use super::{Peer, Speaker};

/// Where BGP pushes its events for BMP.
pub trait EventSink {
    /// Never waits: `Err` when the event was dropped (the channel is then marked overflowed).
    fn push(&mut self, event: Event) -> Result<(), Overflowed>;
}

impl EventSink for EventChannel {
    fn push(&mut self, event: Event) -> Result<(), Overflowed> {
        self.try_push(event)
    }
}

/// The BMP name of neighbor `index`'s session number `session`.
pub fn bmp_peer(index: usize, session: u64) -> bulkhead_bmp::PeerId {
    bulkhead_bmp::PeerId(((index as u64) << 32) | (session & 0xffff_ffff))
}

fn family(f: Family) -> bulkhead_bmp::Family {
    match f {
        Family::Ipv4Unicast => bulkhead_bmp::Family::IPV4_UNICAST,
        Family::Ipv6Unicast => bulkhead_bmp::Family::IPV6_UNICAST,
    }
}

fn prefix(p: Ipv4Prefix) -> bulkhead_bmp::Prefix {
    bulkhead_bmp::Prefix { addr: IpAddr::V4(p.addr()), len: p.len() }
}

/// Path attributes as an UPDATE carries them (NEXT_HOP included).
fn attribute_bytes(attrs: &PathAttributes, ctx: SessionContext) -> Box<[u8]> {
    let mut out = Vec::new();
    attrs.emit(ctx, true, &[], &mut out);
    out.into_boxed_slice()
}

fn notification_bytes(n: &Notification) -> Vec<u8> {
    Message::Notification(n.clone()).to_bytes(SessionContext::default(), MAX_LEN).unwrap_or_default()
}

fn peer_up_info(p: &Peer) -> Option<PeerUpInfo> {
    let negotiated = p.fsm.negotiated()?;
    let sent_open =
        Message::Open(p.fsm.config().open()).to_bytes(SessionContext::default(), MAX_LEN).unwrap_or_default();
    Some(PeerUpInfo {
        header: PeerHeader {
            peer_type: PeerType::Global,
            flags: PeerFlags(0),
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
        sent_open,
        received_open: Vec::new(),
        table_name: None,
        families: negotiated.families.iter().map(|f| family(*f)).collect(),
    })
}

impl Speaker {
    /// The session of neighbor `i` is up.
    pub(super) fn bmp_up(&mut self, i: usize) {
        let (Some(sink), Some(p)) = (self.sink.as_mut(), self.peers.get(i)) else { return };
        if let Some(info) = peer_up_info(p) {
            let _ = sink.push(Event::PeerUp { peer: bmp_peer(i, p.sessions), info: Box::new(info) });
        }
    }

    /// The session of neighbor `i` went down.
    pub(super) fn bmp_down(&mut self, i: usize, reason: &DownReason) {
        let (Some(sink), Some(p)) = (self.sink.as_mut(), self.peers.get(i)) else { return };
        let reason = match reason {
            DownReason::NotificationSent(n) => {
                bulkhead_bmp::DownReason::LocalNotification(notification_bytes(n))
            }
            DownReason::NotificationReceived(n) => {
                bulkhead_bmp::DownReason::RemoteNotification(notification_bytes(n))
            }
            DownReason::TcpClosed => bulkhead_bmp::DownReason::RemoteNoData,
        };
        let _ = sink.push(Event::PeerDown { peer: bmp_peer(i, p.sessions), reason });
    }

    /// The IPv4 routes of one UPDATE of neighbor `i`, as received.
    pub(super) fn bmp_routes(&mut self, i: usize, update: &Update) {
        let (Some(sink), Some(p)) = (self.sink.as_mut(), self.peers.get(i)) else { return };
        let peer = bmp_peer(i, p.sessions);
        if !update.withdrawn.is_empty() {
            let routes =
                RouteGroup { attrs: None, prefixes: update.withdrawn.iter().map(|x| prefix(*x)).collect() };
            let _ = sink.push(Event::Routes { peer, routes });
        }
        if let (false, Some(attrs)) = (update.nlri.is_empty(), update.attributes.as_ref()) {
            let routes = RouteGroup {
                attrs: Some(Attrs::Bytes(attribute_bytes(attrs, p.ctx))),
                prefixes: update.nlri.iter().map(|x| prefix(*x)).collect(),
            };
            let _ = sink.push(Event::Routes { peer, routes });
        }
    }

    pub(super) fn bmp_end_of_rib(&mut self, i: usize, f: Family) {
        let (Some(sink), Some(p)) = (self.sink.as_mut(), self.peers.get(i)) else { return };
        let _ = sink.push(Event::EndOfRib { peer: bmp_peer(i, p.sessions), family: family(f) });
    }
}

/// BGP's tables as the BMP exporter reads them for a dump.
pub struct BgpTables<'a>(pub &'a Speaker);

impl Tables for BgpTables<'_> {
    type Cursor = RibCursor<Ipv4Prefix>;

    fn peers(&mut self, out: &mut Vec<bulkhead_bmp::PeerId>) {
        for (i, p) in self.0.peers.iter().enumerate() {
            if p.up_since.is_some() {
                out.push(bmp_peer(i, p.sessions));
            }
        }
    }

    fn peer_up(&mut self, peer: bulkhead_bmp::PeerId) -> Option<PeerUpInfo> {
        let (i, p) = self.session(peer)?;
        let _ = i;
        peer_up_info(p)
    }

    fn next_routes(
        &mut self,
        peer: bulkhead_bmp::PeerId,
        cursor: &Self::Cursor,
        max: usize,
        out: &mut Vec<RouteGroup>,
    ) -> Option<Self::Cursor> {
        let (_, p) = self.session(peer)?;
        let mut cursor = *cursor;
        let page = self.0.rib4.adj_rib_in_page(p.id4, RibView::PrePolicy, &mut cursor, max).ok()?;
        let mut groups: Vec<(&PathAttributes, Vec<bulkhead_bmp::Prefix>)> = Vec::new();
        for route in page {
            match groups.iter_mut().find(|(a, _)| core::ptr::eq(*a, route.attrs) || *a == route.attrs) {
                Some((_, prefixes)) => prefixes.push(prefix(route.prefix)),
                None => groups.push((route.attrs, alloc::vec![prefix(route.prefix)])),
            }
        }
        for (attrs, prefixes) in groups {
            out.push(RouteGroup { attrs: Some(Attrs::Bytes(attribute_bytes(attrs, p.ctx))), prefixes });
        }
        (!cursor.is_done()).then_some(cursor)
    }
}

impl<'a> BgpTables<'a> {
    /// The neighbor of a BMP peer id, while that session is up.
    fn session(&self, peer: bulkhead_bmp::PeerId) -> Option<(usize, &'a Peer)> {
        let i = usize::try_from(peer.0 >> 32).ok()?;
        let p = self.0.peers.get(i)?;
        (p.up_since.is_some() && bmp_peer(i, p.sessions) == peer).then_some((i, p))
    }
}
