//! Adj-RIB-Out: what this speaker has advertised to one peer, and which prefixes must be looked
//! at again. It is state, not a queue of messages: a prefix that changes ten times before a slow
//! peer is served is sent once, in its latest form.
//!
//! The owner ([`super::Rib`]) marks a prefix dirty whenever its Loc-RIB entry changes, and walks
//! the whole Loc-RIB once with a [`RibCursor`] when the session comes up or the export policy
//! changes (the "sync" walk: no dirty mark per prefix is needed for the initial table). The
//! caller drains the peer in slices ([`super::Rib::drain_adj_rib_out`]): each prefix is exported
//! again from the Loc-RIB, compared with what was advertised, and only a difference comes out as
//! an [`OutChange`].
//!
//! Bounds: `advertised` holds at most one entry per Loc-RIB prefix; `dirty` holds each prefix at
//! most once, so at most one per prefix of the Loc-RIB or of `advertised` however slow the peer
//! (a change to a prefix already dirty costs nothing). A drain slice is bounded by its `max`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::attr_store::AttrId;
use super::cursor::{OrderedTable, RibCursor};

/// A change to send to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutChange<P> {
    /// Announce `prefix` with the attribute set `attrs` (look it up with
    /// [`super::Rib::attrs`]; valid until the next change to the RIB).
    Advertise {
        prefix: P,
        attrs: AttrId,
    },
    Withdraw {
        prefix: P,
    },
    /// The initial table after `peer_up` has been sent: send End-of-RIB (RFC 4724). Comes once
    /// per session, after the last change of the initial walk.
    EndOfRib,
}

/// Dirty prefixes plus an optional walk over a whole table: the work list of one reader of the
/// Loc-RIB (a peer's export, the FIB, BMP).
#[derive(Debug)]
pub(crate) struct Feed<P> {
    dirty: BTreeSet<P>,
    sync: Option<RibCursor<P>>,
}

impl<P> Default for Feed<P> {
    fn default() -> Self {
        Feed { dirty: BTreeSet::new(), sync: None }
    }
}

impl<P: Ord + Copy> Feed<P> {
    pub(crate) fn mark(&mut self, prefix: P) {
        self.dirty.insert(prefix);
    }

    /// Marks `prefix` for a reader that holds only what this feed gave it (a Loc-RIB
    /// consumer, whose walk starts from nothing): a prefix the walk has yet to reach is read
    /// by the walk as it is then, so it is not marked as well (it came out twice), and one that
    /// leaves the table before the walk gets there was never given, so needs no withdrawal.
    /// An export's walk may not skip so: it can meet a table without prefixes it advertised.
    pub(crate) fn mark_behind_walk(&mut self, prefix: P) {
        if let Some(cursor) = &self.sync {
            if cursor.position().is_none_or(|after| prefix > after) {
                return;
            }
        }
        self.dirty.insert(prefix);
    }

    /// Starts (or restarts) a walk over the whole table.
    pub(crate) fn start_sync(&mut self) {
        self.sync = Some(RibCursor::new());
    }

    pub(crate) fn clear(&mut self) {
        self.dirty = BTreeSet::new();
        self.sync = None;
    }

    /// Whether a walk over the whole table is still under way.
    pub(crate) fn is_walking(&self) -> bool {
        self.sync.is_some()
    }

    pub(crate) fn pending(&self) -> usize {
        self.dirty.len()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.dirty.is_empty() && self.sync.is_none()
    }

    /// Up to `max` prefixes to look at: dirty ones first, then the next ones of the walk.
    pub(crate) fn next<V>(&mut self, table: &impl OrderedTable<P, V>, max: usize) -> Vec<P> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(prefix) = self.dirty.pop_first() else { break };
            out.push(prefix);
        }
        if self.dirty.is_empty() {
            self.dirty = BTreeSet::new(); // an emptied B-tree keeps its root leaf
        }
        if let Some(cursor) = &mut self.sync {
            let room = max - out.len();
            if room > 0 {
                cursor.next_page(table, room, &mut out, |prefix, _| Some(prefix));
                if cursor.is_done() {
                    self.sync = None;
                }
            }
        }
        out
    }
}

/// One peer's Adj-RIB-Out.
#[derive(Debug)]
pub struct AdjRibOut<P> {
    pub(crate) advertised: BTreeMap<P, AttrId>,
    pub(crate) feed: Feed<P>,
    /// The walk is the session's first: End-of-RIB follows it.
    pub(crate) initial: bool,
    /// The walk answers a ROUTE-REFRESH: routes are sent even when unchanged.
    pub(crate) resend: bool,
}

impl<P> Default for AdjRibOut<P> {
    fn default() -> Self {
        AdjRibOut { advertised: BTreeMap::new(), feed: Feed::default(), initial: false, resend: false }
    }
}

impl<P: Ord + Copy> AdjRibOut<P> {
    /// The attribute set advertised for `prefix`, if any.
    pub fn get(&self, prefix: &P) -> Option<AttrId> {
        self.advertised.get(prefix).copied()
    }

    /// Prefixes advertised.
    pub fn len(&self) -> usize {
        self.advertised.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advertised.is_empty()
    }

    /// Prefixes marked dirty and not yet drained (the walk not counted).
    pub fn pending(&self) -> usize {
        self.feed.pending()
    }

    /// Nothing left to send.
    pub fn is_idle(&self) -> bool {
        self.feed.is_idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_gives_dirty_first_then_walks() {
        let table: BTreeMap<u32, ()> = (0..6).map(|k| (k, ())).collect();
        let mut feed = Feed::default();
        feed.mark(9);
        feed.mark(9);
        feed.mark(4);
        feed.start_sync();
        assert_eq!(feed.next(&table, 3), [4, 9, 0]);
        assert_eq!(feed.next(&table, 3), [1, 2, 3]);
        assert!(!feed.is_idle());
        assert_eq!(feed.next(&table, 3), [4, 5]);
        assert!(feed.is_idle());
        assert!(feed.next(&table, 3).is_empty());
    }
}
