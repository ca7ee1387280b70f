//! Fakes for the host tests: an [`Io`] that owns nothing and refuses everything that needs a
//! stack. Seeded randomness is the platform's own generator:
//! `bulkhead_base::rng::Csprng::seed_from_u64(seed)`.

use core::net::Ipv4Addr;

use smoltcp::socket::tcp;

use crate::addr::Ipv4Cidr;
use crate::context::{
    BindError, Binding, Io, OutDatagram, RouteChange, RouteQueueError, SendError, SocketId, TcpBuffers,
    TcpError,
};
use crate::domain::Domain;
use crate::link::TxError;
use crate::time::Instant;

/// An `Io` with no NICs and no stack; it counts the supervisor's calls.
#[derive(Default)]
pub struct NullIo {
    pub ups: usize,
    pub downs: usize,
}

impl Io for NullIo {
    fn addresses(&self) -> &[Ipv4Cidr] {
        &[]
    }
    fn transmit(&mut self, _iface: u8, _frame: &[u8]) -> Result<(), TxError> {
        Err(TxError::NoLink)
    }
    fn bind(&mut self, _owner: Domain, _binding: Binding) -> Result<(), BindError> {
        Err(BindError::TableFull)
    }
    fn send_datagram(&mut self, _owner: Domain, _d: OutDatagram<'_>) -> Result<(), SendError> {
        Err(SendError::QueueFull)
    }
    fn tcp_listen(&mut self, _owner: Domain, _port: u16, _b: TcpBuffers) -> Result<SocketId, TcpError> {
        Err(TcpError::TooManySockets)
    }
    fn tcp_connect(
        &mut self,
        _owner: Domain,
        _local: Option<Ipv4Addr>,
        _remote: (Ipv4Addr, u16),
        _b: TcpBuffers,
    ) -> Result<SocketId, TcpError> {
        Err(TcpError::TooManySockets)
    }
    fn tcp(&mut self, _owner: Domain, _id: SocketId) -> Result<&mut tcp::Socket<'static>, TcpError> {
        Err(TcpError::NoSuchSocket)
    }
    fn tcp_release(&mut self, _owner: Domain, _id: SocketId) -> Result<(), TcpError> {
        Err(TcpError::NoSuchSocket)
    }
    fn route(&mut self, _owner: Domain, _change: RouteChange) -> Result<(), RouteQueueError> {
        Err(RouteQueueError::NotASource)
    }
    fn take_route_resync(&mut self, _owner: Domain) -> bool {
        false
    }
    fn subsystem_up(&mut self, _d: Domain) {
        self.ups += 1;
    }
    fn subsystem_down(&mut self, _d: Domain, _now: Instant) {
        self.downs += 1;
    }
}

/// Admission that always grants, with a fixed room.
pub struct AdmitAll;

impl crate::context::Admission for AdmitAll {
    fn admit(&self, _d: Domain, _bytes: usize) -> Result<(), crate::domain::OverQuota> {
        Ok(())
    }
    fn room(&self, _d: Domain) -> crate::context::Room {
        crate::context::Room { soft: 1 << 20, hard: 2 << 20 }
    }
}
