//! The SCTP endpoint.

/// The allocator's true cost of a block of `n` bytes (its size class, header and alignment).
pub type Footprint = fn(usize) -> usize;

/// How a packet travels between us and a peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Directly over IP, protocol number 132.
    Ip,
    /// Inside UDP (RFC 6951); `peer_port` is the peer's UDP port (its source port as we saw
    /// it), our side uses the encapsulation port the integrator listens on (9899).
    Udp { peer_port: u16 },
}
