//! What BGP tells BMP, and the bounded channel it tells it through.
//!
//! BGP runs in its own memory domain and must never wait for, or hold memory on behalf of, a
//! slow BMP collector (the BIRD seed: BMP export held a gigabyte of BGP's memory). So BGP
//! pushes [`Event`]s with [`EventChannel::try_push`], which never waits and never grows the
//! channel: when it is full the event is dropped on the spot and the channel records that it
//! overflowed; the exporter then re-synchronises every collector from the tables (a fresh
//! dump) instead of trying to replay what was lost.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem::size_of;
use core::net::IpAddr;

use crate::packet::PeerHeader;
use crate::queue::block_cost;

/// One BGP session of one peer, as the integrator names it. It must be unique per session
/// (a peer that goes down and comes up again gets a new one, e.g. `index << 32 | generation`):
/// that is how an exporter tells a late event of an old session from the new session's. The
/// Loc-RIB (RFC 9069) is a peer too, with its own id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// An address family and subsequent address family (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    pub afi: u16,
    pub safi: u8,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };
}

/// A route's prefix (NLRI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// The path attributes that a group of prefixes shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attrs {
    /// An attribute set the integrator's encoder can look up (an interned set in BGP's RIB).
    Id(u64),
    /// The path attributes as they appear in an UPDATE, copied into BMP's domain.
    Bytes(Box<[u8]>),
}

/// Prefixes that share one attribute set (announced), or that are withdrawn (`attrs: None`).
/// The encoder packs a group into as few UPDATEs as the PDU size allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteGroup {
    pub attrs: Option<Attrs>,
    pub prefixes: Vec<Prefix>,
}

impl RouteGroup {
    /// The heap bytes the group holds beyond its own struct.
    pub fn heap_bytes(&self) -> usize {
        let attrs = match &self.attrs {
            Some(Attrs::Bytes(b)) => block_cost(b.len()),
            _ => 0,
        };
        attrs + block_cost(self.prefixes.capacity() * size_of::<Prefix>())
    }
}

/// What a Peer Up message says about a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUpInfo {
    /// The per-peer header of the session's messages. A zero timestamp is replaced by the
    /// time the message is sent.
    pub header: PeerHeader,
    pub local_address: IpAddr,
    pub local_port: u16,
    pub remote_port: u16,
    /// The whole OPEN messages, marker included (for the Loc-RIB: ours, twice).
    pub sent_open: Vec<u8>,
    pub received_open: Vec<u8>,
    /// The VRF/Table Name (RFC 9069); required for the Loc-RIB, at most 255 bytes.
    pub table_name: Option<String>,
    /// The families negotiated: after a peer's initial dump, one End-of-RIB each.
    pub families: Vec<Family>,
}

impl PeerUpInfo {
    fn heap_bytes(&self) -> usize {
        block_cost(self.sent_open.capacity())
            + block_cost(self.received_open.capacity())
            + self.table_name.as_ref().map_or(0, |n| block_cost(n.capacity()))
            + block_cost(self.families.capacity() * size_of::<Family>())
    }
}

/// Why a session ended, as BGP knows it (the exporter maps it to RFC 7854's Peer Down reason,
/// and to RFC 9069's reason 6 for the Loc-RIB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION message (whole, marker included).
    LocalNotification(Vec<u8>),
    /// We closed the session without a NOTIFICATION, on this FSM event (0 if none).
    LocalFsmEvent(u16),
    /// The peer sent this NOTIFICATION message.
    RemoteNotification(Vec<u8>),
    /// The peer closed the session without a NOTIFICATION.
    RemoteNoData,
    /// The peer was removed from the configuration.
    Deconfigured,
}

/// One thing BGP tells BMP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A session is established (both OPENs in `info`).
    PeerUp { peer: PeerId, info: Box<PeerUpInfo> },
    /// A session ended.
    PeerDown { peer: PeerId, reason: DownReason },
    /// Routes of a session changed: announced with one attribute set, or withdrawn.
    Routes { peer: PeerId, routes: RouteGroup },
    /// The peer sent End-of-RIB for a family.
    EndOfRib { peer: PeerId, family: Family },
}

impl Event {
    /// The event's true footprint while it waits: its slot and what it points to.
    pub fn footprint(&self) -> usize {
        size_of::<Event>()
            + match self {
                Event::PeerUp { info, .. } => block_cost(size_of::<PeerUpInfo>()) + info.heap_bytes(),
                Event::PeerDown {
                    reason: DownReason::LocalNotification(n) | DownReason::RemoteNotification(n),
                    ..
                } => block_cost(n.capacity()),
                Event::PeerDown { .. } | Event::EndOfRib { .. } => 0,
                Event::Routes { routes, .. } => routes.heap_bytes(),
            }
    }
}

/// When BGP received what an event tells: the per-peer header's timestamp (RFC 7854 section
/// 4.2), seconds and microseconds since the Unix epoch. [`Timestamp::UNAVAILABLE`] (zero) is
/// the RFC's "not available": the platform has no wall clock, or the time was not kept (the
/// routes of an initial dump: BGP does not keep a receive time per route).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: u32,
    pub micros: u32,
}

impl Timestamp {
    pub const UNAVAILABLE: Timestamp = Timestamp { secs: 0, micros: 0 };

    /// From Unix seconds and microseconds (seconds past 2106 saturate; micros wrap into
    /// seconds).
    pub fn from_unix(secs: u64, micros: u32) -> Timestamp {
        let secs = secs.saturating_add(u64::from(micros / 1_000_000));
        Timestamp { secs: u32::try_from(secs).unwrap_or(u32::MAX), micros: micros % 1_000_000 }
    }

    pub fn is_available(self) -> bool {
        self != Timestamp::UNAVAILABLE
    }
}

/// An event with the time BGP received what it tells: what BGP hands BMP (`tell`), and what
/// the channel holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub at: Timestamp,
    pub event: Event,
}

impl Stamped {
    /// The true footprint of a channel slot holding it, and what the event points to.
    pub fn footprint(&self) -> usize {
        self.event.footprint() + (size_of::<Stamped>() - size_of::<Event>())
    }
}

/// The channel was full: the event was dropped, and every collector will be re-synchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflowed;

/// The bounded channel from BGP to BMP.
///
/// Bounds, and what happens at them: at most `max_events` events and `max_bytes` true bytes
/// of events (their slots and payloads, [`Event::footprint`]) wait here, both set by BMP. The
/// ring of slots is allocated once, at creation, with room for `max_events`, and never grows.
/// An event that would pass either bound is dropped at once (freed in the pusher's domain,
/// nothing kept), counted, and the channel is marked overflowed; the exporter that drains it
/// takes the mark, discards what is queued and re-synchronises every collector from the
/// tables. The channel is owned by the exporter's subsystem (BMP's domain); BGP holds only
/// the right to push.
#[derive(Debug)]
pub struct EventChannel {
    queue: VecDeque<Stamped>,
    /// The sequence number of the event at the front (every event pushed gets the next one).
    head_seq: u64,
    max_events: usize,
    max_bytes: usize,
    bytes: usize,
    overflowed: bool,
    pushed: u64,
    dropped: u64,
    overflows: u64,
}

impl EventChannel {
    pub fn new(max_events: usize, max_bytes: usize) -> EventChannel {
        EventChannel {
            queue: VecDeque::with_capacity(max_events),
            head_seq: 0,
            max_events,
            max_bytes,
            bytes: 0,
            overflowed: false,
            pushed: 0,
            dropped: 0,
            overflows: 0,
        }
    }

    /// The true bytes of one slot of the ring (allocated at creation for `max_events`).
    pub const fn slot_size() -> usize {
        size_of::<Stamped>()
    }

    /// Queues `event`, its time not available (see [`EventChannel::try_push_stamped`]).
    pub fn try_push(&mut self, event: Event) -> Result<(), Overflowed> {
        self.try_push_stamped(Stamped { at: Timestamp::UNAVAILABLE, event })
    }

    /// Queues `event` if both bounds allow; else drops it and marks the channel overflowed.
    /// Never waits and never allocates.
    pub fn try_push_stamped(&mut self, event: Stamped) -> Result<(), Overflowed> {
        let cost = event.footprint();
        if self.queue.len() >= self.max_events || self.bytes.saturating_add(cost) > self.max_bytes {
            self.dropped += 1;
            if !self.overflowed {
                self.overflowed = true;
                self.overflows += 1;
            }
            return Err(Overflowed);
        }
        self.bytes += cost;
        self.pushed += 1;
        self.queue.push_back(event);
        Ok(())
    }

    /// The oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        self.pop_stamped().map(|s| s.event)
    }

    /// The oldest event, with its time.
    pub fn pop_stamped(&mut self) -> Option<Stamped> {
        let event = self.queue.pop_front()?;
        self.head_seq += 1;
        self.bytes = self.bytes.saturating_sub(event.footprint());
        Some(event)
    }

    /// The sequence number of the oldest event (of the next one pushed, when empty).
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// The sequence number the next event pushed will get.
    pub fn tail_seq(&self) -> u64 {
        self.head_seq + self.queue.len() as u64
    }

    /// The event numbered `seq`, while it is queued: readers that go at their own pace read
    /// in place, and [`EventChannel::release_before`] frees what all of them have read.
    pub fn get(&self, seq: u64) -> Option<&Stamped> {
        let at = usize::try_from(seq.checked_sub(self.head_seq)?).ok()?;
        self.queue.get(at)
    }

    /// Frees every event numbered below `seq`.
    pub fn release_before(&mut self, seq: u64) {
        while self.head_seq < seq && self.pop_stamped().is_some() {}
    }

    /// True once after an overflow: the reader must re-synchronise.
    pub fn take_overflowed(&mut self) -> bool {
        core::mem::take(&mut self.overflowed)
    }

    /// Drops every queued event (keeps the ring).
    pub fn clear(&mut self) {
        self.head_seq += self.queue.len() as u64;
        self.queue.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True bytes of the queued events.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_events(&self) -> usize {
        self.max_events
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// True while the channel holds less than half of either bound: events may wait here.
    pub fn below_half(&self) -> bool {
        self.queue.len() < self.max_events / 2 && self.bytes < self.max_bytes / 2
    }

    /// Events accepted, dropped, and overflow episodes, since creation.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.pushed, self.dropped, self.overflows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn routes(n: usize) -> Event {
        let prefixes =
            (0..n).map(|i| Prefix { addr: IpAddr::V4(Ipv4Addr::from(i as u32 * 256)), len: 24 }).collect();
        Event::Routes { peer: PeerId(1), routes: RouteGroup { attrs: Some(Attrs::Id(7)), prefixes } }
    }

    #[test]
    fn overflow_drops_and_marks_never_grows() {
        let mut ch = EventChannel::new(3, 1 << 20);
        let ring = ch.queue.capacity();
        for _ in 0..3 {
            assert_eq!(ch.try_push(routes(1)), Ok(()));
        }
        assert_eq!(ch.try_push(routes(1)), Err(Overflowed));
        assert_eq!(
            ch.try_push(Event::EndOfRib { peer: PeerId(1), family: Family::IPV4_UNICAST }),
            Err(Overflowed)
        );
        assert_eq!(ch.queue.capacity(), ring, "the ring never grows");
        assert_eq!(ch.len(), 3);
        assert_eq!(ch.counts(), (3, 2, 1));
        assert!(ch.take_overflowed());
        assert!(!ch.take_overflowed(), "the mark is taken once");
        assert!(ch.pop().is_some());
        assert_eq!(ch.try_push(routes(1)), Ok(()));
    }

    #[test]
    fn times_travel_with_their_events() {
        let mut ch = EventChannel::new(4, 1 << 20);
        let at = Timestamp::from_unix(1_700_000_000, 250_000);
        ch.try_push_stamped(Stamped { at, event: routes(2) }).unwrap();
        ch.try_push(routes(3)).unwrap();
        assert_eq!(ch.pop_stamped().map(|s| (s.at, s.event)), Some((at, routes(2))));
        assert_eq!(ch.pop_stamped().map(|s| s.at), Some(Timestamp::UNAVAILABLE));
        assert_eq!(ch.bytes(), 0);
        assert_eq!(Timestamp::from_unix(5, 2_500_000), Timestamp { secs: 7, micros: 500_000 });
        assert_eq!(Timestamp::from_unix(u64::MAX, 0).secs, u32::MAX);
    }

    #[test]
    fn readers_at_their_own_pace_read_in_place() {
        let mut ch = EventChannel::new(8, 1 << 20);
        for n in 1..=3 {
            ch.try_push(routes(n)).unwrap();
        }
        assert_eq!((ch.head_seq(), ch.tail_seq()), (0, 3));
        assert_eq!(ch.get(1).map(|s| &s.event), Some(&routes(2)));
        assert!(ch.get(3).is_none());
        ch.release_before(2);
        assert_eq!((ch.head_seq(), ch.len()), (2, 1));
        assert!(ch.get(1).is_none(), "released");
        assert_eq!(ch.get(2).map(|s| &s.event), Some(&routes(3)));
        ch.clear();
        assert_eq!((ch.head_seq(), ch.tail_seq(), ch.bytes()), (3, 3, 0));
        ch.release_before(10);
        assert_eq!(ch.head_seq(), 3, "nothing to release past the tail");
    }

    #[test]
    fn byte_bound_counts_payloads() {
        let one = Stamped { at: Timestamp::UNAVAILABLE, event: routes(100) }.footprint();
        let mut ch = EventChannel::new(100, 2 * one);
        assert_eq!(ch.try_push(routes(100)), Ok(()));
        assert_eq!(ch.try_push(routes(100)), Ok(()));
        assert_eq!(ch.bytes(), 2 * one);
        assert_eq!(ch.try_push(routes(100)), Err(Overflowed));
        ch.pop();
        ch.pop();
        assert_eq!(ch.bytes(), 0);
        assert!(ch.take_overflowed());
    }
}
