//! Diagnostics for tests and operators (off unless `[diagnostics] enabled = true`):
//! `debug hog DOMAIN SIZE` and `debug leak DOMAIN SIZE` run as tasks inside DOMAIN, so a shed
//! of the domain drops them with whatever subsystem lives there.
//!
//! Also the [`Reserved`] subsystem: the owner of a domain whose subsystem is not built yet
//! (SCTP, BGP, BMP, the management port). It holds no state of its own; it exists so that the
//! domain is supervised from the first boot on — hogged, shed, restarted and reported like any
//! other — and the real subsystem takes its place without changing the contract.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::domain::Domain;
use crate::supervisor::{Budget, PollOutcome, StartError, Subsystem, Task, TaskState};
use crate::time::Instant;

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
    fn start(&mut self, _now: Instant) -> Result<(), StartError> {
        Ok(())
    }
    fn poll(&mut self, _now: Instant, _budget: Budget) -> PollOutcome {
        PollOutcome::Idle
    }
    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        None
    }
    fn pressure(&mut self, _on: bool) {}
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
