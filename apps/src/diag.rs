//! Diagnostics for tests and operators (off unless `[diagnostics] enabled = true`):
//! `debug hog DOMAIN SIZE` and `debug leak DOMAIN SIZE` run as tasks inside DOMAIN, so a shed
//! of the domain drops them with whatever subsystem lives there.
//!
//! [`Diag`] is the `diag` domain's subsystem and the first real user of the contract: with
//! diagnostics on, it serves TCP echo and UDP echo (RFC 862) on port 7 of every configured
//! address. Bounds: [`MAX_ECHO_CONNECTIONS`] connections (beyond them no socket listens, so a
//! new connection gets an RST), [`ECHO_BUFFER`] bytes each way per connection (a client that
//! does not read closes its window: TCP backpressure), [`ECHO_BYTES_PER_POLL`] bytes echoed per
//! poll over all connections; a UDP echo that finds the local-out queue full is dropped and
//! counted.
//!
//! Also the [`Reserved`] subsystem: the owner of a domain whose subsystem is not built yet
//! (SCTP, BGP, BMP, the management port). It holds no state of its own; it exists so that the
//! domain is supervised from the first boot on — hogged, shed, restarted and reported like any
//! other — and the real subsystem takes its place without changing the contract.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use smoltcp::socket::tcp::State;

use crate::context::{Binding, Context, Datagram, Delivery, Inbound, OutDatagram, SocketId, TcpBuffers};
use crate::domain::Domain;
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem, Task, TaskState};
use crate::time::Instant;

/// The echo port (RFC 862), fixed for outside scripts.
pub const ECHO_PORT: u16 = 7;
pub const MAX_ECHO_CONNECTIONS: usize = 8;
pub const ECHO_BUFFER: usize = 16 * 1024;
pub const ECHO_BYTES_PER_POLL: usize = 64 * 1024;

/// The most a diagnostic task allocates in one poll. The supervisor checks quotas after every
/// poll, so this bounds how far a hog overshoots its domain's hard quota before the shed.
pub const MAX_TASK_STEP: usize = 32 * 1024;

/// Allocates up to `target` bytes, `MAX_TASK_STEP` per poll, writing every page so the memory
/// is real, and holds it until dropped.
pub struct Hog {
    target: usize,
    held: usize,
    chunks: Vec<Box<[u8]>>,
}

impl Hog {
    pub fn new(target: usize) -> Hog {
        Hog { target, held: 0, chunks: Vec::new() }
    }
}

impl Task for Hog {
    fn poll(&mut self, _now: Instant) -> TaskState {
        let step = self.target.saturating_sub(self.held).min(MAX_TASK_STEP);
        if step == 0 {
            return TaskState::Holding;
        }
        let mut chunk = alloc::vec![0u8; step].into_boxed_slice();
        for page in chunk.iter_mut().step_by(4096) {
            *page = 0xa5;
        }
        self.chunks.push(core::hint::black_box(chunk));
        self.held += step;
        TaskState::Working
    }

    fn describe(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "hog holding {} of {} bytes", self.held, self.target)
    }
}

/// Allocates `bytes` (in pieces of at most `MAX_TASK_STEP`) and loses track of them on purpose:
/// the next shed of the domain must report them as a leak.
pub struct Leak {
    remaining: usize,
}

impl Leak {
    pub fn new(bytes: usize) -> Leak {
        Leak { remaining: bytes }
    }
}

impl Task for Leak {
    fn poll(&mut self, _now: Instant) -> TaskState {
        let step = self.remaining.min(MAX_TASK_STEP);
        if step == 0 {
            return TaskState::Done;
        }
        // `black_box`: an allocation nobody looks at may be optimised away, leak and all.
        let lost: &'static mut [u8] = alloc::vec![0x5au8; step].leak();
        core::hint::black_box(lost);
        self.remaining -= step;
        TaskState::Working
    }

    fn describe(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "leak with {} bytes still to lose", self.remaining)
    }
}

/// The diagnostics subsystem: the echo services when diagnostics are on.
pub struct Diag {
    enabled: bool,
    echo: Option<Echo>,
}

/// The echo service's state, all of it in the `diag` domain.
struct Echo {
    listener: Option<SocketId>,
    connections: Vec<SocketId>,
    accepted: u64,
    tcp_bytes: u64,
    udp_echoed: u64,
    udp_dropped: u64,
}

impl Diag {
    pub fn new(enabled: bool) -> Diag {
        Diag { enabled, echo: None }
    }
}

impl Echo {
    fn listen(&mut self, cx: &mut Context<'_>) {
        if self.listener.is_none() && self.connections.len() < MAX_ECHO_CONNECTIONS {
            self.listener = cx.tcp_listen(ECHO_PORT, TcpBuffers { rx: ECHO_BUFFER, tx: ECHO_BUFFER }).ok();
        }
    }

    /// Moves an accepted connection off the listener, then echoes and reaps, within `budget`
    /// bytes. True when work is left.
    fn run(&mut self, cx: &mut Context<'_>, mut budget: usize) -> bool {
        if let Some(id) = self.listener {
            let accepted = cx.tcp(id).map(|s| s.state() != State::Listen).unwrap_or(true);
            if accepted {
                self.listener = None;
                // Reserved for MAX_ECHO_CONNECTIONS at start: no allocation here.
                if self.connections.len() < MAX_ECHO_CONNECTIONS {
                    self.connections.push(id);
                    self.accepted += 1;
                } else {
                    let _ = cx.tcp_release(id);
                }
            }
        }
        let mut left = false;
        let mut i = 0;
        while let Some(&id) = self.connections.get(i) {
            let done = match cx.tcp(id) {
                Ok(socket) => {
                    let mut chunk = [0u8; 2048];
                    while budget > 0 && socket.can_recv() && socket.can_send() {
                        let room =
                            (socket.send_capacity() - socket.send_queue()).min(chunk.len()).min(budget);
                        let Some(buf) = chunk.get_mut(..room) else { break };
                        let n = socket.recv_slice(buf).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let _ = socket.send_slice(buf.get(..n).unwrap_or(&[]));
                        self.tcp_bytes += n as u64;
                        budget = budget.saturating_sub(n);
                    }
                    if socket.can_recv() && budget == 0 {
                        left = true;
                    }
                    if socket.state() == State::CloseWait && socket.recv_queue() == 0 {
                        socket.close();
                    }
                    matches!(socket.state(), State::Closed | State::TimeWait)
                }
                Err(_) => true,
            };
            if done {
                let _ = cx.tcp_release(id);
                self.connections.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.listen(cx);
        left
    }

    fn udp(&mut self, cx: &mut Context<'_>, d: Datagram<'_>) {
        let Some((src_port, dst_port)) = d.ports else { return };
        let reply = OutDatagram {
            src: d.dst,
            dst: d.src,
            protocol: d.protocol,
            ports: Some((dst_port, src_port)),
            payload: d.payload,
            fragment_to: None,
        };
        match cx.send_datagram(reply) {
            Ok(()) => self.udp_echoed += 1,
            Err(_) => self.udp_dropped += 1,
        }
    }
}

impl Subsystem for Diag {
    fn name(&self) -> &'static str {
        "diag"
    }

    fn domain(&self) -> Domain {
        Domain::Diag
    }

    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
        if !self.enabled {
            return Ok(());
        }
        cx.bind(Binding::Udp(ECHO_PORT)).map_err(|_| StartError::Failed)?;
        let mut echo = Echo {
            listener: None,
            connections: Vec::with_capacity(MAX_ECHO_CONNECTIONS),
            accepted: 0,
            tcp_bytes: 0,
            udp_echoed: 0,
            udp_dropped: 0,
        };
        echo.listen(cx);
        self.echo = Some(echo);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        let left = self.echo.as_mut().is_some_and(|echo| echo.run(cx, ECHO_BYTES_PER_POLL));
        if left {
            PollOutcome::Pending
        } else {
            PollOutcome::Idle
        }
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }

    fn receive(&mut self, cx: &mut Context<'_>, inbound: Inbound<'_>) -> Delivery {
        match (self.echo.as_mut(), inbound) {
            (Some(echo), Inbound::Datagram(d)) if d.ports.is_some_and(|(_, dst)| dst == ECHO_PORT) => {
                echo.udp(cx, d);
                Delivery::Taken
            }
            _ => Delivery::Refused,
        }
    }

    fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}

    fn shed(&mut self) {
        self.echo = None;
    }

    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        match &self.echo {
            Some(e) => write!(
                out,
                "echo on port {}: {} TCP connections open ({} accepted), {} bytes echoed; UDP {} echoed, {} dropped",
                ECHO_PORT,
                e.connections.len(),
                e.accepted,
                e.tcp_bytes,
                e.udp_echoed,
                e.udp_dropped
            ),
            None if self.enabled => write!(out, "not running"),
            None => write!(out, "diagnostics off"),
        }
    }
}

/// The placeholder owner of a domain whose subsystem is not built yet.
pub struct Reserved {
    name: &'static str,
    domain: Domain,
    awaiting: &'static str,
}

impl Reserved {
    pub fn new(name: &'static str, domain: Domain, awaiting: &'static str) -> Reserved {
        Reserved { name, domain, awaiting }
    }
}

impl Subsystem for Reserved {
    fn name(&self) -> &'static str {
        self.name
    }
    fn domain(&self) -> Domain {
        self.domain
    }
    fn start(&mut self, _cx: &mut Context<'_>) -> Result<(), StartError> {
        Ok(())
    }
    fn poll(&mut self, _cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
        PollOutcome::Idle
    }
    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }
    fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}
    fn shed(&mut self) {}
    fn status(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "reserved for {} (not built yet)", self.awaiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hog_takes_bounded_steps_to_its_target_then_holds() {
        let mut hog = Hog::new(3 * MAX_TASK_STEP + 10);
        let mut polls = 0;
        while hog.poll(Instant::ZERO) == TaskState::Working {
            polls += 1;
            assert!(hog.chunks.last().is_some_and(|c| c.len() <= MAX_TASK_STEP));
        }
        assert_eq!(polls, 4);
        assert_eq!(hog.held, 3 * MAX_TASK_STEP + 10);
        assert_eq!(hog.poll(Instant::ZERO), TaskState::Holding);
    }

    #[test]
    fn leak_finishes_after_losing_everything() {
        let mut leak = Leak::new(MAX_TASK_STEP + 1);
        assert_eq!(leak.poll(Instant::ZERO), TaskState::Working);
        assert_eq!(leak.poll(Instant::ZERO), TaskState::Working);
        assert_eq!(leak.poll(Instant::ZERO), TaskState::Done);
    }
}
