//! A resumable position in a table, for reading a large table a slice at a time (BMP's initial
//! dump, `show route` paging, a peer's initial export) without copying it.
//!
//! The cursor remembers the last key it returned, not a position: the next slice starts at the
//! first key after it in the table as it is then. Keys added behind the cursor are not read by
//! this pass (their change reaches the reader as an event instead); keys removed are simply not
//! met; nothing is read twice and nothing present for the whole pass is skipped.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Bound;

use super::table::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RibCursor<P> {
    after: Option<P>,
    done: bool,
}

impl<P> Default for RibCursor<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> RibCursor<P> {
    /// A cursor at the start of a table.
    pub const fn new() -> Self {
        RibCursor { after: None, done: false }
    }

    /// Whether a slice came back short: the whole table has been read.
    pub const fn is_done(&self) -> bool {
        self.done
    }
}

impl<P: Ord + Copy> RibCursor<P> {
    /// The last key returned so far, if any.
    pub fn position(&self) -> Option<P> {
        self.after
    }

    /// Up to `max` entries of `table` after the cursor that `keep` accepts, in key order; the
    /// cursor moves past every entry looked at. Looks at no more than `max` entries, kept or not,
    /// so the work of one call is bounded.
    #[cfg(test)]
    pub(crate) fn next_slice<'a, V: 'a>(
        &mut self,
        table: &'a impl OrderedTable<P, V>,
        max: usize,
        mut keep: impl FnMut(&V) -> bool,
    ) -> Vec<(P, &'a V)>
    where
        P: 'a,
    {
        let mut out = Vec::new();
        self.next_page(table, max, &mut out, |key, value| keep(value).then_some((key, value)));
        out
    }

    /// One pass over up to `max` entries of `table` after the cursor, in key order: each is
    /// given to `each`, and what it returns (`None`: the entry is not kept) is pushed onto `out`.
    /// The cursor moves past every entry looked at, kept or not; no more than `max` are looked
    /// at, so the work of one call is bounded (and `out` grows by at most `max`). A call that
    /// looks at fewer than `max` has read the whole table.
    pub(crate) fn next_page<'a, V: 'a, T>(
        &mut self,
        table: &'a impl OrderedTable<P, V>,
        max: usize,
        out: &mut Vec<T>,
        mut each: impl FnMut(P, &'a V) -> Option<T>,
    ) where
        P: 'a,
    {
        if self.done {
            return;
        }
        if max == 0 {
            // Looks at nothing; done only when there is nothing left to look at.
            self.done = table.entries_after(self.after).next().is_none();
            return;
        }
        let mut looked = 0;
        let mut last = None;
        table.entries_after(self.after).take(max).for_each(|(key, value)| {
            looked += 1;
            last = Some(*key);
            out.extend(each(*key, value));
        });
        if last.is_some() {
            self.after = last;
        }
        if looked < max {
            self.done = true;
        }
    }
}

/// A table a cursor can read: its entries after a key, in key order.
pub(crate) trait OrderedTable<K, V> {
    fn entries_after<'a>(&'a self, after: Option<K>) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a;
}

impl<K: Ord + Copy, V> OrderedTable<K, V> for BTreeMap<K, V> {
    fn entries_after<'a>(&'a self, after: Option<K>) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        self.range((start, Bound::Unbounded))
    }
}

impl<K: Ord + Copy, V> OrderedTable<K, V> for Table<K, V> {
    fn entries_after<'a>(&'a self, after: Option<K>) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        self.iter_after(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_slices_and_finishes() {
        let table: BTreeMap<u32, u32> = (0..10).map(|k| (k, k * 10)).collect();
        let mut cursor = RibCursor::new();
        let a = cursor.next_slice(&table, 4, |_| true);
        assert_eq!(a.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(!cursor.is_done());
        let b = cursor.next_slice(&table, 4, |_| true);
        assert_eq!(b.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [4, 5, 6, 7]);
        let c = cursor.next_slice(&table, 4, |_| true);
        assert_eq!(c.len(), 2);
        assert!(cursor.is_done());
        assert!(cursor.next_slice(&table, 4, |_| true).is_empty());
    }

    /// A page appends to the caller's buffer; entries `each` drops count towards the bound; a
    /// page that looks at exactly `max` entries is not yet done, and `max` 0 looks at nothing.
    #[test]
    fn page_appends_maps_in_one_pass_and_keeps_the_bounds() {
        let table: BTreeMap<u32, u32> = (0..6).map(|k| (k, k * 10)).collect();
        let mut cursor = RibCursor::new();
        let mut out = alloc::vec![999];
        cursor.next_page(&table, 0, &mut out, |k, _| Some(k));
        assert_eq!((out.as_slice(), cursor.position(), cursor.is_done()), (&[999][..], None, false));
        cursor.next_page(&table, 3, &mut out, |k, v| (k != 1).then_some(*v));
        assert_eq!((out.as_slice(), cursor.position()), (&[999, 0, 20][..], Some(2)));
        cursor.next_page(&table, 3, &mut out, |_, v| Some(*v));
        assert_eq!((out.len(), cursor.position(), cursor.is_done()), (6, Some(5), false));
        cursor.next_page(&table, 0, &mut out, |_, v| Some(*v));
        assert!(cursor.is_done(), "max 0 on a table read to its end");
        cursor.next_page(&table, 3, &mut out, |_, v| Some(*v));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn filter_counts_towards_the_bound() {
        let table: BTreeMap<u32, u32> = (0..10).map(|k| (k, k)).collect();
        let mut cursor = RibCursor::new();
        let odd = cursor.next_slice(&table, 4, |v| v % 2 == 1);
        assert_eq!(odd.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(cursor.position(), Some(3));
    }

    /// Over the RIB's own table, across many leaves: keys removed (the cursor's own among
    /// them) and added between slices; every key present throughout is read once, in order.
    #[test]
    fn reads_a_table_of_many_leaves_under_churn() {
        let mut table: Table<u32, ()> = Table::default();
        for k in 0..2_000 {
            table.insert(k * 4, ());
        }
        let mut cursor = RibCursor::new();
        let mut seen = Vec::new();
        let mut round = 0u32;
        while !cursor.is_done() {
            seen.extend(cursor.next_slice(&table, 37, |_| true).iter().map(|(k, _)| *k));
            round += 1;
            if let Some(at) = cursor.position() {
                table.remove(&at);
            }
            table.insert((round * 7919) % 8_000 * 4 + 1, ()); // anywhere: splits leaves
            table.remove(&((round * 104_729) % 8_000 * 4 + 1));
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, nothing twice");
        for k in 0..2_000 {
            assert!(seen.contains(&(k * 4)), "{} present throughout must be read", k * 4);
        }
    }

    #[test]
    fn tolerates_changes_between_slices() {
        let mut table: BTreeMap<u32, ()> = (0..10).map(|k| (k * 10, ())).collect();
        let mut cursor = RibCursor::new();
        let first = cursor.next_slice(&table, 3, |_| true); // 0 10 20
        assert_eq!(first.len(), 3);
        table.remove(&20); // the cursor's own key goes
        table.remove(&30);
        table.insert(5, ()); // behind: not read this pass
        table.insert(35, ()); // ahead: read
        let rest: Vec<u32> = cursor.next_slice(&table, 100, |_| true).iter().map(|(k, _)| *k).collect();
        assert_eq!(rest, [35, 40, 50, 60, 70, 80, 90]);
    }
}
