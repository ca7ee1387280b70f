//! The BMP exporter: one state machine per collector, sans-I/O.
//!
//! ```text
//!            poll_action: Connect          connected             dump done
//!  Backoff ───────────────────────▶ Connecting ──────▶ Dumping ───────────▶ Up
//!     ▲   connect_failed / closed        │               │  (Initiation first; then per peer:
//!     │   (back-off doubles, capped)     │               │   Peer Up, its routes in slices,
//!     └──────────────────────────────────┘               │   End-of-RIB)
//!     ▲                                                  │
//!     │ queue at its bound: session dropped, queue freed,│ event channel overflowed:
//!     │ resync marked (fresh dump on reconnect)          │ Termination "out of resources",
//!     └──────────────────────────────────────────────────┤ then reconnect at once, fresh dump
//!                                                        │ shutdown: Termination, then Stopped
//!                                                        ▼
//!                                                     Closing ──(drained or timeout)──▶ Backoff / Stopped
//! ```
//!
//! The caller owns the sockets: it asks [`Exporter::poll_action`] whom to connect or close,
//! reports the outcome ([`Exporter::connected`], [`Exporter::connect_failed`],
//! [`Exporter::closed`]), writes [`Exporter::transmit`] to the socket and reports what it took
//! ([`Exporter::sent`]). [`Exporter::poll`] drains the event channel and advances the dumps and
//! the statistics timers within a work budget; [`Exporter::poll_at`] is the next deadline.
//!
//! Bounds, and what happens at them: each collector's [`SendQueue`] holds at most
//! `Config::queue_bound` true bytes; a message that would pass it drops that collector's session
//! (counted in `drops`, with the reason), frees its queue, and marks it for re-synchronisation:
//! it reconnects after its back-off and dumps afresh. A dump reads the tables only while the
//! queue is below half its bound, `Config::dump_slice` prefixes at a time through the caller's
//! cursor, so a dump never copies a table and a slow collector slows its own dump rather than
//! being dropped by it. Incremental events: each collector reads the (bounded) event channel
//! at its own pace, through its own cursor, and an event is freed once every connected
//! collector has read it. A collector that is reading (its socket took bytes within
//! `Config::reading_grace`) and whose queue is past half its bound reads no further for now:
//! a burst from BGP (several peers' UPDATEs in one turn) waits in the channel instead of
//! dropping a collector that is only a burst behind, and the other collectors go on. A
//! collector that stops reading is held for at most the grace; then, and whenever the channel
//! is past half of either bound, it reads on, reaches its queue's bound and is dropped, which
//! lets the channel go. The peers a collector
//! knows (one small entry per peer with a Peer Up sent) are bounded by BGP's peer count.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use bulkhead_base::time::{Duration, Instant};

use crate::event::{DownReason, Event, EventChannel, Family, PeerId, PeerUpInfo, RouteGroup, Timestamp};
use crate::packet::{
    emit_header, InfoTlv, InfoType, Message, MessageType, PeerDownReason, PeerHeader, PeerType, PeerUp, Stat,
    TermReason, TermTlv, BGP_HEADER_LEN, HEADER_LEN, PEER_HEADER_LEN,
};
use crate::queue::{QueueFull, SendQueue};

/// How the exporter reads BGP's tables for a dump: never a copy of a table, a slice at a time.
pub trait Tables {
    /// Where a table walk resumes; `Default` is the start. A cursor must stay valid across
    /// changes to the table between calls (e.g. "after this prefix").
    type Cursor: Clone + Default;

    /// Appends the sessions that are up now (the Loc-RIB included, if monitored).
    fn peers(&mut self, out: &mut Vec<PeerId>);

    /// What the Peer Up message of `peer` says; `None` when that session is no longer up.
    fn peer_up(&mut self, peer: PeerId) -> Option<PeerUpInfo>;

    /// Appends at most `max` prefixes of `peer`'s table after `cursor`, grouped by attribute
    /// set, and returns where to resume; `None` when the walk is done (or the session gone).
    fn next_routes(
        &mut self,
        peer: PeerId,
        cursor: &Self::Cursor,
        max: usize,
        out: &mut Vec<RouteGroup>,
    ) -> Option<Self::Cursor>;

    /// Appends the counters and gauges of `peer` for a Statistics Report (none by default).
    fn stats(&mut self, peer: PeerId, out: &mut Vec<Stat<'static>>) {
        let _ = (peer, out);
    }
}

/// One UPDATE written by an [`UpdateEncoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes of the UPDATE PDU written, marker included.
    pub len: usize,
    /// Prefixes of the group it carries, from `start` on.
    pub prefixes: usize,
}

/// Why an encoder could not write an UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The attribute set is unknown (an `Attrs::Id` no longer interned).
    UnknownAttrs,
    /// Not even one prefix fits in the PDU with these attributes.
    TooLarge,
}

/// Packs prefixes that share an attribute set into BGP UPDATE PDUs; the integrator implements
/// it with the BGP crate's encoder (and knows, from `peer`, the session's 4-octet AS and
/// ADD-PATH capabilities).
pub trait UpdateEncoder {
    /// Writes one UPDATE carrying as many of `group.prefixes[start..]` as fit in `out` (whose
    /// length is the largest PDU allowed) and says how many it carried: at least one.
    fn encode(
        &mut self,
        peer: PeerId,
        group: &RouteGroup,
        start: usize,
        out: &mut [u8],
    ) -> Result<Encoded, EncodeError>;
}

/// The exporter's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// sysName and sysDescr of the Initiation message.
    pub sys_name: String,
    pub sys_descr: String,
    /// Bound of each collector's send queue, in true bytes.
    pub queue_bound: usize,
    /// Size of the queue's chunks.
    pub chunk_size: usize,
    /// Prefixes read from the tables per dump step.
    pub dump_slice: usize,
    /// Dump steps per [`Exporter::poll`] over all collectors, within its budget: a poll (a
    /// loop turn) stays short and the socket is written between the slices; a poll that
    /// stops here with a dump ready returns [`Poll::Pending`].
    pub dump_steps_per_poll: usize,
    /// Largest BGP PDU (4096; 65535 with extended messages).
    pub max_pdu: usize,
    /// First reconnect delay, doubled after each failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Statistics Reports for every peer at this interval; `None` for none.
    pub stats_interval: Option<Duration>,
    /// How long a Termination may wait for the collector to read it.
    pub close_timeout: Duration,
    /// A collector whose socket took bytes this recently is reading: while its queue is past
    /// half its bound, events wait in the channel for it (see the module docs). 5 s by
    /// default: a collector that is reading can go a second or two without taking anything
    /// when its host is loaded (pmbmpd writing its log), and a stalled one delays the others'
    /// updates at most this long, only while the channel is below half.
    pub reading_grace: Duration,
    /// Unix time in microseconds at `Instant::ZERO`: the exporter's clock for the per-peer
    /// header's timestamps of Statistics Reports and of events told without a time; `None`
    /// writes zero ("not available"). Events told with a time ([`crate::Stamped`]) carry
    /// BGP's receive time; the routes of an initial dump carry zero.
    pub epoch_micros: Option<u64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sys_name: String::from("bulkhead"),
            sys_descr: String::from("Bulkhead BMP exporter"),
            queue_bound: 4 << 20,
            chunk_size: 16 << 10,
            dump_slice: 512,
            dump_steps_per_poll: usize::MAX,
            max_pdu: 4096,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stats_interval: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            reading_grace: Duration::from_secs(5),
            epoch_micros: None,
        }
    }
}

/// A collector, by its index in the order they were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectorId(pub usize);

/// What the caller must do with a collector's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the collector, then call `connected` or `connect_failed`.
    Connect(CollectorId),
    /// Close (reset) the collector's connection; the exporter already forgot the session.
    Close(CollectorId),
}

/// The state of a collector, for `show bmp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorState {
    /// Waiting to reconnect.
    Backoff,
    /// The caller is connecting.
    Connecting,
    /// Connected, initial dump under way.
    Dumping,
    /// Connected, dump done: incremental updates.
    Up,
    /// Termination queued, waiting for the collector to read it.
    Closing,
    /// Shut down.
    Stopped,
}

/// Why a session was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The send queue reached its bound.
    QueueFull(QueueFull),
    /// The event channel from BGP overflowed: re-synchronised.
    ChannelOverflow,
    /// The connection failed or the collector closed it.
    Disconnected,
    /// A Termination was not read within `close_timeout`.
    CloseTimeout,
    /// BMP's memory domain was under pressure and this queue was the largest.
    MemoryPressure,
}

/// Counters of one collector, for `show bmp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sessions established.
    pub connects: u64,
    pub connect_failures: u64,
    /// Sessions dropped at the queue's bound.
    pub drops: u64,
    /// Sessions ended by the collector or the network.
    pub disconnects: u64,
    /// Fresh dumps after a drop or a channel overflow.
    pub resyncs: u64,
    /// Whole messages and bytes the socket took.
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Route groups the encoder could not encode (skipped).
    pub encode_errors: u64,
}

/// A snapshot of one collector, for `show bmp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorStatus {
    pub id: CollectorId,
    pub state: CollectorState,
    pub queued_bytes: usize,
    /// The queue's true footprint and bound.
    pub queue_footprint: usize,
    pub queue_bound: usize,
    /// Peers with a Peer Up sent in this session.
    pub peers: usize,
    pub resync_pending: bool,
    pub last_drop: Option<DropReason>,
    pub counters: Counters,
}

/// What a poll left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing to do before `poll_at` or a socket's progress.
    Idle,
    /// The budget ran out with work left: poll again soon.
    Pending,
}

#[derive(Debug)]
struct PeerEntry {
    header: PeerHeader,
    table_name: Option<String>,
    families: Vec<Family>,
}

#[derive(Debug)]
enum Dump<C> {
    /// Connected: the peer list is read at the first step.
    Start,
    Peers {
        pending: VecDeque<PeerId>,
        current: Option<(PeerId, C)>,
    },
}

#[derive(Debug)]
enum State {
    Backoff { retry_at: Instant },
    Connecting,
    Up,
    Closing { deadline: Instant, reconnect: bool },
    Stopped,
}

#[derive(Debug)]
struct Collector<C> {
    state: State,
    queue: SendQueue,
    backoff: Duration,
    announced: BTreeMap<PeerId, PeerEntry>,
    dump: Option<Dump<C>>,
    next_stats: Instant,
    /// When the current session came up.
    session_start: Option<Instant>,
    resync_pending: bool,
    close_pending: bool,
    last_drop: Option<DropReason>,
    counters: Counters,
    /// When the socket last took bytes in this session.
    last_read: Option<Instant>,
    /// The next event of the channel this collector reads; `None` until its first poll
    /// connected (then the channel's head).
    next_event: Option<u64>,
    /// Events wait for this collector, held since it last read at this time (see
    /// `Config::reading_grace`): `poll_at` comes back when the grace ends.
    held_since_read: Option<Instant>,
}

/// A session ends because its queue is full.
struct Dropped(QueueFull);

impl From<QueueFull> for Dropped {
    fn from(full: QueueFull) -> Dropped {
        Dropped(full)
    }
}

/// Per-collector state machines and the shared encoding buffers; `C` is the tables' cursor.
#[derive(Debug)]
pub struct Exporter<C> {
    config: Config,
    collectors: Vec<Collector<C>>,
    /// One Route Monitoring message: common and per-peer headers, then one PDU.
    scratch: Vec<u8>,
    /// Reused between dump steps: at most `dump_slice` prefixes.
    groups: Vec<RouteGroup>,
    peers_buf: Vec<PeerId>,
    stats_buf: Vec<Stat<'static>>,
    shutting_down: bool,
}

impl<C: Clone + Default> Exporter<C> {
    pub fn new(config: Config) -> Exporter<C> {
        let scratch = vec![0; HEADER_LEN + PEER_HEADER_LEN + config.max_pdu.max(BGP_HEADER_LEN)];
        Exporter {
            config,
            collectors: Vec::new(),
            scratch,
            groups: Vec::new(),
            peers_buf: Vec::new(),
            stats_buf: Vec::new(),
            shutting_down: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a collector; the first connection is due at once.
    pub fn add_collector(&mut self, now: Instant) -> CollectorId {
        let id = CollectorId(self.collectors.len());
        self.collectors.push(Collector {
            state: if self.shutting_down { State::Stopped } else { State::Backoff { retry_at: now } },
            queue: SendQueue::new(self.config.queue_bound, self.config.chunk_size),
            backoff: self.config.backoff_initial,
            announced: BTreeMap::new(),
            dump: None,
            next_stats: now,
            session_start: None,
            resync_pending: false,
            close_pending: false,
            last_drop: None,
            counters: Counters::default(),
            last_read: None,
            next_event: None,
            held_since_read: None,
        });
        id
    }

    /// The next socket operation the caller must perform, if any is due.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        for (i, c) in self.collectors.iter_mut().enumerate() {
            if let State::Closing { deadline, .. } = c.state {
                if now >= deadline {
                    c.last_drop = Some(DropReason::CloseTimeout);
                    c.finish_close(now, &self.config);
                }
            }
            if c.close_pending {
                c.close_pending = false;
                return Some(Action::Close(CollectorId(i)));
            }
            if let State::Backoff { retry_at } = c.state {
                if now >= retry_at {
                    c.state = State::Connecting;
                    return Some(Action::Connect(CollectorId(i)));
                }
            }
        }
        None
    }

    /// The TCP connection is up: the Initiation is queued first, then the dump begins.
    pub fn connected(&mut self, id: CollectorId, now: Instant) {
        let config = &self.config;
        let Some(c) = self.collectors.get_mut(id.0) else { return };
        if !matches!(c.state, State::Connecting) {
            return;
        }
        c.state = State::Up;
        c.session_start = Some(now);
        c.counters.connects += 1;
        if core::mem::take(&mut c.resync_pending) {
            c.counters.resyncs += 1;
        }
        c.dump = Some(Dump::Start);
        c.next_stats = config.stats_interval.map_or(now, |i| now + i);
        let init = Message::Initiation(vec![
            InfoTlv::new(InfoType::SysDescr, &config.sys_descr),
            InfoTlv::new(InfoType::SysName, &config.sys_name),
        ]);
        if let Err(Dropped(full)) = push_message(&mut c.queue, &mut self.scratch, &init) {
            c.drop_session(now, config, DropReason::QueueFull(full));
        }
    }

    /// The connection attempt failed: retry after the back-off, which doubles.
    pub fn connect_failed(&mut self, id: CollectorId, now: Instant) {
        let config = &self.config;
        let Some(c) = self.collectors.get_mut(id.0) else { return };
        if matches!(c.state, State::Connecting) {
            c.counters.connect_failures += 1;
            c.enter_backoff(now, config);
        }
    }

    /// The collector closed the connection, or it broke.
    pub fn closed(&mut self, id: CollectorId, now: Instant) {
        let config = &self.config;
        let Some(c) = self.collectors.get_mut(id.0) else { return };
        match c.state {
            State::Up => {
                c.counters.disconnects += 1;
                c.last_drop = Some(DropReason::Disconnected);
                c.reset_session(now, config);
                c.enter_backoff(now, config);
            }
            State::Closing { .. } => c.finish_close(now, config),
            State::Connecting => {
                c.counters.connect_failures += 1;
                c.enter_backoff(now, config);
            }
            State::Backoff { .. } | State::Stopped => {}
        }
    }

    /// The bytes to write to the collector's socket next (empty when none wait).
    pub fn transmit(&self, id: CollectorId) -> &[u8] {
        self.collectors.get(id.0).map_or(&[], |c| c.queue.front())
    }

    /// The socket took `n` bytes of `transmit`.
    /// The socket took `n` bytes of `transmit`. Room in the queue may let a dump go on: poll
    /// again.
    pub fn sent(&mut self, id: CollectorId, n: usize, now: Instant) {
        let Some(c) = self.collectors.get_mut(id.0) else { return };
        c.queue.consume(n);
        if n > 0 {
            c.last_read = Some(now);
        }
        if matches!(c.state, State::Closing { .. }) && c.queue.is_empty() {
            c.finish_close(now, &self.config);
        }
    }

    /// Ends every session with a Termination (administratively closed); no reconnects.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let config = &self.config;
        for c in &mut self.collectors {
            match c.state {
                State::Up => c.terminate(now, config, &mut self.scratch, TermReason::AdminClose, false),
                State::Closing { deadline, .. } => c.state = State::Closing { deadline, reconnect: false },
                State::Connecting => {
                    c.close_pending = true;
                    c.state = State::Stopped;
                }
                State::Backoff { .. } => c.state = State::Stopped,
                State::Stopped => {}
            }
        }
    }

    /// Drains BGP's events, advances the dumps and sends due Statistics Reports, doing at most
    /// `budget` units of work (an event, a dump slice, one collector's reports).
    pub fn poll<T: Tables<Cursor = C>, E: UpdateEncoder>(
        &mut self,
        now: Instant,
        tables: &mut T,
        encoder: &mut E,
        channel: &mut EventChannel,
        budget: usize,
    ) -> Poll {
        let mut budget = budget;
        if channel.take_overflowed() {
            // What is queued is superseded by the fresh dumps.
            channel.clear();
            let config = &self.config;
            for c in &mut self.collectors {
                if matches!(c.state, State::Up) {
                    c.last_drop = Some(DropReason::ChannelOverflow);
                    c.resync_pending = true;
                    c.terminate(now, config, &mut self.scratch, TermReason::OutOfResources, true);
                }
            }
        }
        budget = self.read_events(now, channel, encoder, budget);
        // One dump slice per collector per round, round after round, within the budget and
        // the steps a poll may take.
        let mut steps = self.config.dump_steps_per_poll;
        let mut progressed = true;
        while budget > 0 && steps > 0 && progressed {
            progressed = false;
            for i in 0..self.collectors.len() {
                if budget == 0 || steps == 0 {
                    break;
                }
                if self.dump_step(i, now, tables, encoder) {
                    budget -= 1;
                    steps -= 1;
                    progressed = true;
                }
            }
        }
        if let Some(interval) = self.config.stats_interval {
            for i in 0..self.collectors.len() {
                if budget == 0 {
                    break;
                }
                let due = match self.collectors.get(i) {
                    Some(c) => matches!(c.state, State::Up) && c.dump.is_none() && now >= c.next_stats,
                    None => false,
                };
                if due {
                    budget -= 1;
                    self.send_stats(i, now, interval, tables);
                }
            }
        }
        if self.collectors.iter().all(|c| c.dump.is_none()) {
            // No dump under way: the buffers its slices grew go, so that what BMP holds at
            // rest does not depend on how large the last dump was.
            self.groups = Vec::new();
            self.peers_buf = Vec::new();
        }
        if (budget == 0 && self.events_left(channel)) || ((budget == 0 || steps == 0) && self.dump_ready()) {
            Poll::Pending
        } else {
            Poll::Idle
        }
    }

    /// The next time something is due without any input (a reconnect, a report, a timeout).
    pub fn poll_at(&self) -> Option<Instant> {
        self.collectors
            .iter()
            .filter_map(|c| {
                if c.close_pending {
                    return Some(Instant::ZERO);
                }
                // Events held for a collector that was reading: when its grace ends.
                let held = c.held_since_read.map(|t| t + self.config.reading_grace);
                let due = match c.state {
                    State::Backoff { retry_at } => Some(retry_at),
                    State::Closing { deadline, .. } => Some(deadline),
                    State::Up if c.dump.is_none() && self.config.stats_interval.is_some() => {
                        Some(c.next_stats)
                    }
                    _ => None,
                };
                match (due, held) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// Under memory pressure: drops the session whose queue holds the most (counted as a drop
    /// with [`DropReason::MemoryPressure`], queue freed, re-synchronised on reconnect) and
    /// names it; `None` when no queue holds anything.
    pub fn relieve_pressure(&mut self, now: Instant) -> Option<CollectorId> {
        let config = &self.config;
        let (i, c) = self
            .collectors
            .iter_mut()
            .enumerate()
            .filter(|(_, c)| c.queue.footprint() > 0 && matches!(c.state, State::Up | State::Closing { .. }))
            .max_by_key(|(_, c)| c.queue.footprint())?;
        c.drop_session(now, config, DropReason::MemoryPressure);
        Some(CollectorId(i))
    }

    /// True bytes held by every collector's send queue.
    pub fn queued_footprint(&self) -> usize {
        self.collectors.iter().map(|c| c.queue.footprint()).sum()
    }

    /// A snapshot of every collector.
    pub fn status(&self) -> Vec<CollectorStatus> {
        self.collectors.iter().enumerate().map(|(i, c)| c.status(CollectorId(i))).collect()
    }

    pub fn collector_status(&self, id: CollectorId) -> Option<CollectorStatus> {
        self.collectors.get(id.0).map(|c| c.status(id))
    }

    /// Each connected collector reads the channel from its cursor, within `budget` events
    /// in all (see the module docs for when one waits); then what every connected collector
    /// has read is freed. Returns the budget left.
    fn read_events<E: UpdateEncoder>(
        &mut self,
        now: Instant,
        channel: &mut EventChannel,
        encoder: &mut E,
        mut budget: usize,
    ) -> usize {
        let (head, tail) = (channel.head_seq(), channel.tail_seq());
        let force = !channel.below_half();
        let grace = self.config.reading_grace;
        for c in &mut self.collectors {
            c.held_since_read = None;
            match (&c.state, c.next_event) {
                (State::Up, Some(n)) if n >= head => {}
                (State::Up, _) => c.next_event = Some(head),
                _ => c.next_event = None,
            }
        }
        let mut seq = self.collectors.iter().filter_map(|c| c.next_event).min().unwrap_or(tail);
        while budget > 0 && seq < tail {
            let Some(stamped) = channel.get(seq) else { break };
            let mut read = false;
            for i in 0..self.collectors.len() {
                let Some(c) = self.collectors.get(i) else { break };
                let held = !force
                    && !c.dump_has_room()
                    && c.last_read.is_some_and(|t| now.saturating_since(t) < grace);
                if c.next_event != Some(seq) {
                    continue;
                }
                if held {
                    if let Some(c) = self.collectors.get_mut(i) {
                        c.held_since_read = c.last_read;
                    }
                    continue;
                }
                self.apply_event(i, now, stamped.at, &stamped.event, encoder);
                if let Some(c) = self.collectors.get_mut(i) {
                    // A session dropped by this event reads no more (its cursor is gone).
                    c.next_event = c.next_event.map(|n| n + 1);
                }
                read = true;
            }
            if read {
                budget -= 1;
            }
            seq += 1;
        }
        let done = self
            .collectors
            .iter()
            .filter(|c| matches!(c.state, State::Up))
            .map(|c| c.next_event.unwrap_or(head))
            .min()
            .unwrap_or(tail);
        channel.release_before(done);
        budget
    }

    /// True while a connected collector has events of the channel left to read.
    fn events_left(&self, channel: &EventChannel) -> bool {
        let tail = channel.tail_seq();
        self.collectors.iter().any(|c| matches!(c.state, State::Up) && c.next_event.is_none_or(|n| n < tail))
    }

    /// True when some dump can take a step now.
    fn dump_ready(&self) -> bool {
        self.collectors.iter().any(|c| c.dump.is_some() && c.dump_has_room() && matches!(c.state, State::Up))
    }

    fn stamp(&self, now: Instant) -> (u32, u32) {
        match self.config.epoch_micros {
            Some(epoch) => {
                let t = epoch.saturating_add(now.total_micros());
                ((t / 1_000_000) as u32, (t % 1_000_000) as u32)
            }
            None => (0, 0),
        }
    }

    /// Sends `event` to collector `i` if it is up, stamped with `at`, the time BGP received it
    /// (when not available, the exporter's own clock: `Config::epoch_micros`, else zero).
    fn apply_event<E: UpdateEncoder>(
        &mut self,
        i: usize,
        now: Instant,
        at: Timestamp,
        event: &Event,
        encoder: &mut E,
    ) {
        let stamp = if at.is_available() { (at.secs, at.micros) } else { self.stamp(now) };
        let config = &self.config;
        if let Some(c) = self.collectors.get_mut(i) {
            if !matches!(c.state, State::Up) {
                return;
            }
            let result = match event {
                Event::PeerUp { peer, info } => c.on_peer_up(*peer, info, stamp, &mut self.scratch),
                Event::PeerDown { peer, reason } => c.on_peer_down(*peer, reason, stamp, &mut self.scratch),
                Event::Routes { peer, routes } => match c.announced.get(peer) {
                    Some(entry) => {
                        let header = stamped(&entry.header, stamp);
                        send_routes(c, *peer, &header, routes, encoder, &mut self.scratch)
                    }
                    None => Ok(()),
                },
                Event::EndOfRib { peer, family } => {
                    let dumping_it =
                        matches!(&c.dump, Some(Dump::Peers { current: Some((p, _)), .. }) if p == peer);
                    match c.announced.get(peer) {
                        Some(entry) if !dumping_it => {
                            let header = stamped(&entry.header, stamp);
                            send_end_of_rib(&mut c.queue, &mut self.scratch, &header, *family)
                        }
                        _ => Ok(()),
                    }
                }
            };
            if let Err(Dropped(full)) = result {
                c.drop_session(now, config, DropReason::QueueFull(full));
            }
        }
    }

    /// One step of collector `i`'s dump; false if it had nothing to do or no room.
    fn dump_step<T: Tables<Cursor = C>, E: UpdateEncoder>(
        &mut self,
        i: usize,
        now: Instant,
        tables: &mut T,
        encoder: &mut E,
    ) -> bool {
        // What a dump reads from the tables has no receive time (BGP keeps none per route):
        // "not available". A Peer Up keeps the time its `PeerUpInfo` carries.
        let stamp = (Timestamp::UNAVAILABLE.secs, Timestamp::UNAVAILABLE.micros);
        let config = &self.config;
        let Some(c) = self.collectors.get_mut(i) else { return false };
        if !matches!(c.state, State::Up) || !c.dump_has_room() {
            return false;
        }
        let result = match c.dump.take() {
            None => return false,
            Some(Dump::Start) => {
                self.peers_buf.clear();
                tables.peers(&mut self.peers_buf);
                let pending = self.peers_buf.drain(..).collect();
                c.dump = Some(Dump::Peers { pending, current: None });
                Ok(())
            }
            Some(Dump::Peers { mut pending, current: None }) => {
                let Some(peer) = pending.pop_front() else {
                    // Done: incremental updates only from now on.
                    return true;
                };
                let mut result = Ok(());
                let mut current = None;
                if !c.announced.contains_key(&peer) {
                    if let Some(info) = tables.peer_up(peer) {
                        result = c.on_peer_up(peer, &info, stamp, &mut self.scratch);
                        current = Some((peer, C::default()));
                    }
                }
                c.dump = Some(Dump::Peers { pending, current });
                result
            }
            Some(Dump::Peers { pending, current: Some((peer, cursor)) }) => {
                self.groups.clear();
                let next = tables.next_routes(peer, &cursor, config.dump_slice.max(1), &mut self.groups);
                let mut result = Ok(());
                if let Some(entry) = c.announced.get(&peer) {
                    let header = stamped(&entry.header, stamp);
                    for group in &self.groups {
                        result = send_routes(c, peer, &header, group, encoder, &mut self.scratch);
                        if result.is_err() {
                            break;
                        }
                    }
                    if next.is_none() && result.is_ok() {
                        let families = c.announced.get(&peer).map(|e| e.families.clone()).unwrap_or_default();
                        for family in families {
                            result = send_end_of_rib(&mut c.queue, &mut self.scratch, &header, family);
                            if result.is_err() {
                                break;
                            }
                        }
                    }
                }
                self.groups.clear();
                c.dump = Some(Dump::Peers { pending, current: next.map(|n| (peer, n)) });
                result
            }
        };
        if let Err(Dropped(full)) = result {
            c.drop_session(now, config, DropReason::QueueFull(full));
        }
        true
    }

    fn send_stats<T: Tables<Cursor = C>>(
        &mut self,
        i: usize,
        now: Instant,
        interval: Duration,
        tables: &mut T,
    ) {
        let stamp = self.stamp(now);
        let config = &self.config;
        let Some(c) = self.collectors.get_mut(i) else { return };
        c.next_stats = now + interval;
        let mut result = Ok(());
        for (peer, entry) in &c.announced {
            self.stats_buf.clear();
            tables.stats(*peer, &mut self.stats_buf);
            if self.stats_buf.is_empty() {
                continue;
            }
            let stats = core::mem::take(&mut self.stats_buf);
            let message = Message::StatisticsReport { peer: stamped(&entry.header, stamp), stats };
            result = push_message(&mut c.queue, &mut self.scratch, &message);
            if let Message::StatisticsReport { stats, .. } = message {
                self.stats_buf = stats;
            }
            if result.is_err() {
                break;
            }
        }
        self.stats_buf = Vec::new();
        if let Err(Dropped(full)) = result {
            c.drop_session(now, config, DropReason::QueueFull(full));
        }
    }
}

impl<C: Clone + Default> Collector<C> {
    fn status(&self, id: CollectorId) -> CollectorStatus {
        let state = match self.state {
            State::Backoff { .. } => CollectorState::Backoff,
            State::Connecting => CollectorState::Connecting,
            State::Up if self.dump.is_some() => CollectorState::Dumping,
            State::Up => CollectorState::Up,
            State::Closing { .. } => CollectorState::Closing,
            State::Stopped => CollectorState::Stopped,
        };
        let mut counters = self.counters;
        counters.messages_sent = self.queue.messages_sent();
        counters.bytes_sent = self.queue.bytes_sent();
        CollectorStatus {
            id,
            state,
            queued_bytes: self.queue.queued_bytes(),
            queue_footprint: self.queue.footprint(),
            queue_bound: self.queue.bound(),
            peers: self.announced.len(),
            resync_pending: self.resync_pending,
            last_drop: self.last_drop,
            counters,
        }
    }

    /// A dump reads on only while the queue is below half its bound.
    fn dump_has_room(&self) -> bool {
        self.queue.footprint() <= self.queue.bound() / 2
    }

    /// Forgets the session: the queue (freed), the peers, the dump.
    fn reset_session(&mut self, now: Instant, config: &Config) {
        // A session that lasted longer than the longest back-off resets it.
        if let Some(start) = self.session_start.take() {
            if now - start >= config.backoff_max {
                self.backoff = config.backoff_initial;
            }
        }
        self.queue.clear();
        self.announced = BTreeMap::new();
        self.dump = None;
        self.last_read = None;
        self.next_event = None;
        self.held_since_read = None;
    }

    fn enter_backoff(&mut self, now: Instant, config: &Config) {
        self.state = State::Backoff { retry_at: now + self.backoff };
        self.backoff = self.backoff.saturating_shl(1).min(config.backoff_max);
    }

    /// The queue reached its bound: drop the session now, free the queue, resync later.
    fn drop_session(&mut self, now: Instant, config: &Config, reason: DropReason) {
        self.counters.drops += 1;
        self.last_drop = Some(reason);
        self.resync_pending = true;
        self.close_pending = true;
        self.reset_session(now, config);
        self.enter_backoff(now, config);
    }

    /// Queues a Termination and waits for it to be read (or for the timeout).
    fn terminate(
        &mut self,
        now: Instant,
        config: &Config,
        scratch: &mut [u8],
        reason: TermReason,
        reconnect: bool,
    ) {
        self.dump = None;
        let message = Message::Termination(vec![TermTlv::Reason(reason)]);
        match push_message(&mut self.queue, scratch, &message) {
            Ok(()) => {
                self.state = State::Closing { deadline: now + config.close_timeout, reconnect };
            }
            Err(Dropped(full)) => {
                self.drop_session(now, config, DropReason::QueueFull(full));
                if !reconnect {
                    self.state = State::Stopped;
                }
            }
        }
    }

    /// The Termination was read (or timed out): close, then reconnect at once or stop.
    fn finish_close(&mut self, now: Instant, config: &Config) {
        let reconnect = matches!(self.state, State::Closing { reconnect: true, .. });
        self.close_pending = true;
        self.reset_session(now, config);
        self.state = if reconnect { State::Backoff { retry_at: now } } else { State::Stopped };
    }

    fn on_peer_up(
        &mut self,
        peer: PeerId,
        info: &PeerUpInfo,
        stamp: (u32, u32),
        scratch: &mut [u8],
    ) -> Result<(), Dropped> {
        if self.announced.contains_key(&peer) {
            return Ok(());
        }
        if let Some(Dump::Peers { pending, .. }) = &self.dump {
            if pending.contains(&peer) {
                // The dump will read this session from the tables, routes and all.
                return Ok(());
            }
        }
        if matches!(self.dump, Some(Dump::Start)) {
            // The dump has not read the peer list yet: it will find this session there.
            return Ok(());
        }
        let mut header = info.header;
        if header.timestamp_secs == 0 && header.timestamp_micros == 0 {
            (header.timestamp_secs, header.timestamp_micros) = stamp;
        }
        let mut tlvs = Vec::new();
        if let Some(name) = &info.table_name {
            tlvs.push(InfoTlv::new(InfoType::VrfTableName, name));
        }
        let message = Message::PeerUp(PeerUp {
            peer: header,
            local_address: info.local_address,
            local_port: info.local_port,
            remote_port: info.remote_port,
            sent_open: &info.sent_open,
            received_open: &info.received_open,
            info: tlvs,
        });
        let message = match message {
            // A local address of the wrong family would be refused by the encoder: send the
            // unspecified address of the peer's family rather than no Peer Up at all.
            Message::PeerUp(mut up) if up.local_address.is_ipv6() != header.address.is_ipv6() => {
                up.local_address = unspecified_like(header.address);
                Message::PeerUp(up)
            }
            other => other,
        };
        push_message(&mut self.queue, scratch, &message)?;
        self.announced.insert(
            peer,
            PeerEntry {
                header: info.header,
                table_name: info.table_name.clone(),
                families: info.families.clone(),
            },
        );
        Ok(())
    }

    fn on_peer_down(
        &mut self,
        peer: PeerId,
        reason: &DownReason,
        stamp: (u32, u32),
        scratch: &mut [u8],
    ) -> Result<(), Dropped> {
        if let Some(Dump::Peers { pending, current }) = &mut self.dump {
            pending.retain(|p| *p != peer);
            if matches!(current, Some((p, _)) if *p == peer) {
                *current = None;
            }
        }
        let Some(entry) = self.announced.remove(&peer) else { return Ok(()) };
        if self.announced.is_empty() {
            // An emptied map keeps its root node: with no peer left it holds nothing.
            self.announced = BTreeMap::new();
        }
        let reason = match (entry.header.peer_type, reason) {
            (PeerType::LocRib, _) => {
                let name = entry.table_name.as_deref().unwrap_or("");
                PeerDownReason::LocalTlvs(vec![InfoTlv::new(InfoType::VrfTableName, name)])
            }
            (_, DownReason::LocalNotification(n)) => PeerDownReason::LocalNotification(n),
            (_, DownReason::LocalFsmEvent(e)) => PeerDownReason::LocalFsmEvent(*e),
            (_, DownReason::RemoteNotification(n)) => PeerDownReason::RemoteNotification(n),
            (_, DownReason::RemoteNoData) => PeerDownReason::RemoteNoData,
            (_, DownReason::Deconfigured) => PeerDownReason::Deconfigured,
        };
        let message = Message::PeerDown { peer: stamped(&entry.header, stamp), reason };
        push_message(&mut self.queue, scratch, &message)
    }
}

fn unspecified_like(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
    }
}

fn stamped(header: &PeerHeader, (secs, micros): (u32, u32)) -> PeerHeader {
    PeerHeader { timestamp_secs: secs, timestamp_micros: micros, ..*header }
}

/// Emits `message` and queues it: through `scratch` when it fits, else through a buffer of its
/// own size (a Peer Up with large OPENs), freed at once.
fn push_message(queue: &mut SendQueue, scratch: &mut [u8], message: &Message<'_>) -> Result<(), Dropped> {
    let len = message.buffer_len();
    let mut own;
    let buf = match scratch.get_mut(..len) {
        Some(buf) => buf,
        None => {
            own = vec![0u8; len];
            &mut own[..]
        }
    };
    // The messages the exporter builds are valid by construction; one that is not (a TLV
    // over 64 KiB) is not sent rather than sent malformed.
    if message.emit(buf).is_ok() {
        queue.push(buf)?;
    }
    Ok(())
}

/// Encodes `group` into as few Route Monitoring messages as the encoder packs it in.
fn send_routes<C, E: UpdateEncoder>(
    c: &mut Collector<C>,
    peer: PeerId,
    header: &PeerHeader,
    group: &RouteGroup,
    encoder: &mut E,
    scratch: &mut [u8],
) -> Result<(), Dropped> {
    let mut start = 0;
    while start < group.prefixes.len() {
        let Some((head, pdu)) = split_scratch(scratch) else { return Ok(()) };
        let encoded = match encoder.encode(peer, group, start, pdu) {
            Ok(e) if e.prefixes > 0 && e.len >= BGP_HEADER_LEN && e.len <= pdu.len() => e,
            _ => {
                c.counters.encode_errors += 1;
                return Ok(());
            }
        };
        let total = HEADER_LEN + PEER_HEADER_LEN + encoded.len;
        if write_headers(head, MessageType::RouteMonitoring, total, header).is_err() {
            return Ok(());
        }
        if let Some(message) = scratch.get(..total) {
            c.queue.push(message)?;
        }
        start += encoded.prefixes;
    }
    Ok(())
}

/// Sends an End-of-RIB marker (RFC 4724): an empty UPDATE for IPv4 unicast, else an UPDATE
/// with only an empty MP_UNREACH_NLRI for the family.
fn send_end_of_rib(
    queue: &mut SendQueue,
    scratch: &mut [u8],
    header: &PeerHeader,
    family: Family,
) -> Result<(), Dropped> {
    let Some((head, pdu)) = split_scratch(scratch) else { return Ok(()) };
    let len = end_of_rib(family, pdu);
    let total = HEADER_LEN + PEER_HEADER_LEN + len;
    if len == 0 || write_headers(head, MessageType::RouteMonitoring, total, header).is_err() {
        return Ok(());
    }
    if let Some(message) = scratch.get(..total) {
        queue.push(message)?;
    }
    Ok(())
}

/// Writes the End-of-RIB UPDATE for `family` into `out`; its length, 0 if `out` is too short.
pub fn end_of_rib(family: Family, out: &mut [u8]) -> usize {
    let mut pdu = [0xffu8; 29];
    let len: usize = if family == Family::IPV4_UNICAST { 23 } else { 29 };
    pdu[16..18].copy_from_slice(&(len as u16).to_be_bytes());
    pdu[18] = 2; // UPDATE
    pdu[19..21].copy_from_slice(&[0, 0]); // no withdrawn routes
    if len == 23 {
        pdu[21..23].copy_from_slice(&[0, 0]); // no attributes
    } else {
        // Attributes: 6 bytes of MP_UNREACH_NLRI (optional, type 15, length 3, AFI, SAFI).
        let [a0, a1] = family.afi.to_be_bytes();
        pdu[21..29].copy_from_slice(&[0, 6, 0x80, 15, 3, a0, a1, family.safi]);
    }
    match (out.get_mut(..len), pdu.get(..len)) {
        (Some(dst), Some(src)) => {
            dst.copy_from_slice(src);
            len
        }
        _ => 0,
    }
}

fn split_scratch(scratch: &mut [u8]) -> Option<(&mut [u8], &mut [u8])> {
    if scratch.len() < HEADER_LEN + PEER_HEADER_LEN + BGP_HEADER_LEN {
        return None;
    }
    Some(scratch.split_at_mut(HEADER_LEN + PEER_HEADER_LEN))
}

fn write_headers(
    head: &mut [u8],
    msg_type: MessageType,
    total: usize,
    header: &PeerHeader,
) -> Result<(), crate::packet::EmitError> {
    let (common, peer) = head.split_at_mut(HEADER_LEN);
    emit_header(msg_type, total, common)?;
    header.emit_into(peer)
}

#[cfg(test)]
mod tests;
