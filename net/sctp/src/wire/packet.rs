//! The SCTP packet (RFC 9260 section 3.1): the common header, the CRC32c checksum (appendix
//! A), the walk over the chunks behind it, and a builder that bundles chunks under a size limit.

use super::chunk::{Chunk, ChunkRepr};
use super::{be_u16, be_u32, padded, put_u16, put_u32, Element, WireError};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const VERIFICATION_TAG: Range<usize> = 4..8;
    pub const CHECKSUM: Range<usize> = 8..12;
    pub const CHUNKS: usize = 12;
}

/// Length of the common header.
pub const COMMON_HEADER_LEN: usize = field::CHUNKS;

/// CRC32c (Castagnoli), the polynomial RFC 9260 appendix A names; `crc` implements it.
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The CRC32c of `bytes` (RFC 3720 appendix B.4: 32 zero bytes give `0x8a9136aa`).
pub fn crc32c(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}

/// A checked view over an SCTP packet: the common header, then chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may then panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the common header fits. After it no accessor panics. The chunks are checked
    /// one by one as [`chunks`](Packet::chunks) walks them.
    pub fn check_len(&self) -> Result<(), WireError> {
        let have = self.buffer.as_ref().len();
        if have < COMMON_HEADER_LEN {
            return Err(WireError::Truncated { what: Element::CommonHeader, need: COMMON_HEADER_LEN, have });
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn verification_tag(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::VERIFICATION_TAG.start)
    }

    /// The checksum field as a CRC32c value. The CRC is carried least significant byte first
    /// (appendix A's reference code; what Linux and usrsctp send).
    pub fn checksum(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The CRC32c over the whole packet with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let bytes = self.buffer.as_ref();
        let mut digest = CASTAGNOLI.digest();
        digest.update(&bytes[..field::CHECKSUM.start]);
        digest.update(&[0; 4]);
        digest.update(&bytes[field::CHECKSUM.end..]);
        digest.finalize()
    }

    /// `Ok` when the checksum field holds the packet's CRC32c.
    pub fn verify_checksum(&self) -> Result<(), WireError> {
        let stored = self.checksum();
        let computed = self.compute_checksum();
        if stored == computed {
            Ok(())
        } else {
            Err(WireError::BadChecksum { stored, computed })
        }
    }

    /// The bytes after the common header: the chunks.
    pub fn chunk_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::CHUNKS..]
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The chunks, in order, borrowed for as long as the buffer.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks::new(&self.buffer[field::CHUNKS..])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    pub fn set_verification_tag(&mut self, tag: u32) {
        put_u32(self.buffer.as_mut(), field::VERIFICATION_TAG.start, tag);
    }

    /// Computes the CRC32c over the packet and stores it in the checksum field.
    pub fn fill_checksum(&mut self) {
        let crc = self.compute_checksum();
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The walk over a packet's chunks. Each item is a checked [`Chunk`] view (its length at least
/// the header, all of it and its padding inside the packet). The first malformed chunk is
/// returned as an error and ends the walk: its length cannot be trusted to find the next one.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// Walks the chunks in `bytes` (what follows the common header).
    pub const fn new(bytes: &'a [u8]) -> Self {
        Chunks { rest: bytes }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<&'a [u8]>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = core::mem::take(&mut self.rest);
        let chunk = match Chunk::new_checked(bytes) {
            Ok(chunk) => chunk,
            Err(error) => return Some(Err(error)),
        };
        let length = usize::from(chunk.length());
        let Some(rest) = bytes.get(padded(length)..) else {
            return Some(Err(WireError::BadPadding { what: Element::Chunk(chunk.chunk_type()) }));
        };
        self.rest = rest;
        Some(Ok(Chunk::new_unchecked(&bytes[..length])))
    }
}

/// The common header, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub verification_tag: u32,
}

impl PacketRepr {
    /// The common header of `packet`, after its checksum is verified.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        packet.verify_checksum()?;
        Ok(PacketRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            verification_tag: packet.verification_tag(),
        })
    }

    /// Length of the common header.
    pub const fn buffer_len(&self) -> usize {
        COMMON_HEADER_LEN
    }

    /// Writes the common header with a zero checksum into the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        super::check_room(buf, COMMON_HEADER_LEN)?;
        let mut packet = Packet::new_unchecked(&mut buf[..COMMON_HEADER_LEN]);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_verification_tag(self.verification_tag);
        packet.buffer[field::CHECKSUM].fill(0);
        Ok(COMMON_HEADER_LEN)
    }
}

/// Bundles chunks into one packet in a buffer the caller owns.
///
/// Bound: the packet never grows past `limit` (the path MTU less the IP header, and less the
/// UDP header under RFC 6951) or the buffer. At the bound, [`push`](Self::push) refuses the
/// chunk with [`WireError::NoRoom`] and leaves the packet as it was, so the caller sends what
/// is built and puts the chunk in the next packet.
#[derive(Debug)]
pub struct PacketBuilder<'b> {
    buf: &'b mut [u8],
    /// The packet's size limit, at most the buffer's length.
    limit: usize,
    len: usize,
    chunks: usize,
    alone: bool,
}

impl<'b> PacketBuilder<'b> {
    /// Writes `header` at the front of `buf` and prepares to add chunks up to `limit` bytes
    /// of packet in all.
    pub fn new(buf: &'b mut [u8], header: &PacketRepr, limit: usize) -> Result<Self, WireError> {
        let limit = limit.min(buf.len());
        header.emit(&mut buf[..limit])?;
        Ok(PacketBuilder { buf, limit, len: COMMON_HEADER_LEN, chunks: 0, alone: false })
    }

    /// Moves the size limit to `limit` (at most the buffer's length, never below what is
    /// built): up for a chunk that must go although it is larger than the path allows, down to
    /// close the packet to more chunks.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len()).max(self.len);
    }

    /// Bytes still free for chunks (padding included).
    pub fn room(&self) -> usize {
        self.limit - self.len
    }

    /// How many chunks the packet holds.
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// Whether the packet holds no chunk yet.
    pub fn is_empty(&self) -> bool {
        self.chunks == 0
    }

    /// Whether `chunk` would be accepted by [`push`](Self::push) now.
    pub fn fits(&self, chunk: &ChunkRepr<'_>) -> bool {
        self.check_bundling(chunk).is_ok() && chunk.buffer_len() <= self.room()
    }

    /// Appends `chunk` with its padding; returns the bytes it took. On any error the packet is
    /// unchanged.
    pub fn push(&mut self, chunk: &ChunkRepr<'_>) -> Result<usize, WireError> {
        self.check_bundling(chunk)?;
        let room = self.room();
        let written = chunk.emit(&mut self.buf[self.len..self.limit]).map_err(|error| match error {
            WireError::NoRoom { need, .. } => WireError::NoRoom { need, room },
            other => other,
        })?;
        self.len += written;
        self.chunks += 1;
        self.alone = !chunk.is_bundleable();
        Ok(written)
    }

    /// Fills the checksum; returns the packet's length (the first bytes of the buffer).
    pub fn finish(self) -> usize {
        let mut packet = Packet::new_unchecked(&mut self.buf[..self.len]);
        packet.fill_checksum();
        self.len
    }

    fn check_bundling(&self, chunk: &ChunkRepr<'_>) -> Result<(), WireError> {
        if self.alone || (!self.is_empty() && !chunk.is_bundleable()) {
            return Err(WireError::NotBundleable { chunk_type: chunk.chunk_type() });
        }
        Ok(())
    }
}
