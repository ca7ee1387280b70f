//! Variable-length lists inside a chunk: parameters, error causes, gap ack blocks, duplicate
//! TSNs, address types. A received list stays the bytes it came in (validated once by
//! [`List::parse`], then iterated without copies); a list to send is a slice of items.

use core::fmt;

use super::{padded, WireError};

/// An element of a [`List`]: how it is parsed off the front of a byte string, how long it is
/// and how it is written.
pub trait ListItem<'a>: Sized + Copy {
    /// Whether each item is padded to 4 bytes (TLVs: parameters, causes) or packed (fixed-size
    /// fields). The last padded item of a chunk may come without its padding.
    const PADDED: bool;

    /// Parses the first item of `bytes`; returns it and the bytes it took (padding included,
    /// but never past the end of `bytes`).
    fn parse_item(bytes: &'a [u8]) -> Result<(Self, usize), WireError>;

    /// The item's length without padding.
    fn item_len(&self) -> usize;

    /// Writes the item, without padding, into `buf`, which holds exactly `item_len` bytes.
    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError>;

    /// Writes the item, without padding, into the front of `buf`; returns the bytes written.
    fn emit_front(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.item_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(WireError::NoRoom { need: len, room: buf.len() });
        };
        self.emit_item(out)?;
        Ok(len)
    }
}

/// A list of `T`: either received bytes (from [`List::parse`], so known to be well formed) or
/// items built by the sender. Two lists are equal when they hold equal items, whichever form.
///
/// A `Wire` list built by hand from bytes that `parse` would refuse iterates up to the first
/// malformed item and emits its bytes unchanged.
#[derive(Clone, Copy)]
pub enum List<'a, T> {
    /// Validated wire bytes, without the padding of the enclosing element.
    Wire(&'a [u8]),
    /// Items to emit.
    Items(&'a [T]),
}

impl<'a, T: ListItem<'a>> List<'a, T> {
    /// The empty list.
    pub const EMPTY: Self = List::Wire(&[]);

    /// Validates every item of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (_, taken) = T::parse_item(rest)?;
            rest = rest.get(taken..).unwrap_or_default();
        }
        Ok(List::Wire(bytes))
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        match *self {
            List::Wire(bytes) => ListIter::Wire(bytes),
            List::Items(items) => ListIter::Items(items.iter()),
        }
    }

    /// How many items the list holds.
    pub fn count(&self) -> usize {
        match self {
            List::Wire(_) => self.iter().count(),
            List::Items(items) => items.len(),
        }
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        match self {
            List::Wire(bytes) => bytes.is_empty(),
            List::Items(items) => items.is_empty(),
        }
    }

    /// Bytes the list takes on the wire: every item padded except the last (whose padding is
    /// the enclosing element's).
    pub fn wire_len(&self) -> usize {
        match self {
            List::Wire(bytes) => bytes.len(),
            List::Items(items) => {
                let all: usize = items.iter().map(|item| Self::slot_len(item)).sum();
                match items.last() {
                    Some(last) => all - Self::slot_len(last) + last.item_len(),
                    None => 0,
                }
            }
        }
    }

    /// Writes the list into the first [`wire_len`](Self::wire_len) bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.wire_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(WireError::NoRoom { need: len, room: buf.len() });
        };
        match self {
            List::Wire(bytes) => out.copy_from_slice(bytes),
            List::Items(items) => {
                let mut at = 0;
                for item in items.iter() {
                    let item_len = item.item_len();
                    let end = at + item_len;
                    let Some(slot) = out.get_mut(at..end) else {
                        return Err(WireError::NoRoom { need: end, room: len });
                    };
                    item.emit_item(slot)?;
                    let pad_end = (at + Self::slot_len(item)).min(len);
                    if let Some(pad) = out.get_mut(end..pad_end) {
                        pad.fill(0);
                    }
                    at = pad_end;
                }
            }
        }
        Ok(len)
    }

    fn slot_len(item: &T) -> usize {
        if T::PADDED {
            padded(item.item_len())
        } else {
            item.item_len()
        }
    }
}

impl<'a, T: ListItem<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: ListItem<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: ListItem<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: ListItem<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`List`]'s items. Over wire bytes it stops at the first malformed item
/// (there is none in a list from [`List::parse`]).
#[derive(Clone)]
pub enum ListIter<'a, T> {
    /// The bytes not yet walked.
    Wire(&'a [u8]),
    /// The items not yet walked.
    Items(core::slice::Iter<'a, T>),
}

impl<'a, T: ListItem<'a>> Iterator for ListIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            ListIter::Wire(rest) => {
                if rest.is_empty() {
                    return None;
                }
                match T::parse_item(rest) {
                    Ok((item, taken)) => {
                        *rest = rest.get(taken..).unwrap_or_default();
                        Some(item)
                    }
                    Err(_) => {
                        *rest = &[];
                        None
                    }
                }
            }
            ListIter::Items(items) => items.next().copied(),
        }
    }
}

/// Packed big-endian `u16` items (address types, missing parameter types).
impl ListItem<'_> for u16 {
    const PADDED: bool = false;

    fn parse_item(bytes: &[u8]) -> Result<(Self, usize), WireError> {
        match bytes {
            [a, b, ..] => Ok((u16::from_be_bytes([*a, *b]), 2)),
            _ => Err(WireError::Truncated { what: super::Element::ListItem, need: 2, have: bytes.len() }),
        }
    }

    fn item_len(&self) -> usize {
        2
    }

    fn emit_item(&self, buf: &mut [u8]) -> Result<(), WireError> {
        super::check_room(buf, 2)?;
        super::put_u16(buf, 0, *self);
        Ok(())
    }
}
