//! The supervisor and the one contract every subsystem plugs in through.
//!
//! # Lifecycle
//!
//! ```text
//!            start()                 poll() …
//!   down ───────────▶ starting ──ok──▶ up ◀──────────┐
//!                        │             │  over soft: pressure(true) / back under: pressure(false)
//!                   start failed       │ over hard quota, poll failed, or forced
//!                        ▼             ▼
//!                     shedding ◀───────┘   shed() inside its domain, reclaim, record any leak
//!                        │
//!          fewer than restart_limit sheds within the window?
//!                 yes │                      │ no
//!                     ▼                      ▼
//!               restarting ──backoff──▶ held-down (until released by the operator)
//!                     │   10 ms doubling to 5 s
//!                     └──▶ set_baseline, then starting …
//! ```
//!
//! Every call into a subsystem runs inside its domain and gets a [`Context`]: the time, the
//! random source, its domain's admission and room, and its I/O (bindings, datagrams, TCP
//! sockets, frames, routes), always on its own behalf. Inbound traffic for it arrives through
//! [`Subsystem::receive`]; nothing reaches a subsystem except through the supervisor. When a
//! subsystem is taken down, the platform releases everything it held in the stack (its TCP
//! connections are reset, its sockets freed, its bindings dropped, its routes withdrawn) before
//! the domain is checked for leaks.
//!
//! Each subsystem owns exactly one memory domain, and each domain (but `kernel`, never shed)
//! at most one subsystem, so "shed the domain" and "shed the subsystem" are the same act.
//! The supervisor sees memory only through [`MemoryBooks`], so it runs on the host with fake
//! books and a fake clock.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use bulkhead_base::rand_core::RngCore;

use crate::context::{Admission, Context, Delivery, Inbound, Io, Peers};
use crate::domain::Domain;
use crate::time::{Duration, Instant};

/// A work allowance for one poll: at most this many units (frames, messages, timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget(pub u32);

/// What a poll left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// Nothing left to do until `poll_at`.
    Idle,
    /// The budget ran out with work left: poll again on the next loop turn.
    Pending,
    /// The subsystem is broken and asks to be shed and restarted.
    Failed,
}

/// Why a subsystem could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// Its domain refused an allocation it needs to start.
    OverQuota,
    /// Anything else; it is shed and restarted with backoff like after a failure.
    Failed,
}

/// The one contract between a subsystem and the supervisor. Every call but `name`, `domain`,
/// `poll_at` and `status` runs inside the subsystem's domain.
pub trait Subsystem {
    fn name(&self) -> &'static str;
    fn domain(&self) -> Domain;
    /// Builds the subsystem's state, binds what it serves.
    fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError>;
    /// Bounded work, at most `budget` units.
    fn poll(&mut self, cx: &mut Context<'_>, budget: Budget) -> PollOutcome;
    /// The next deadline, if any.
    fn poll_at(&self, now: Instant) -> Option<Instant>;
    /// Traffic for the subsystem (see [`Inbound`]); the default takes none.
    fn receive(&mut self, _cx: &mut Context<'_>, _inbound: Inbound<'_>) -> Delivery {
        Delivery::Refused
    }
    /// The soft threshold was crossed (`true`) or cleared (`false`): back off / resume.
    fn pressure(&mut self, cx: &mut Context<'_>, on: bool);
    /// Last words before a shed (a BGP NOTIFICATION Cease, SCTP ABORTs): written to its
    /// sockets or sent as datagrams here, inside its domain; the platform sends them before it
    /// resets the subsystem's connections. The default says nothing.
    fn farewell(&mut self, _cx: &mut Context<'_>) {}
    /// Drop ALL state: nothing may stay allocated in its domain. (Its sockets and bindings are
    /// the platform's to release, right after.)
    fn shed(&mut self);
    /// A few lines about itself for `show status`.
    fn status(&self, out: &mut dyn Write) -> fmt::Result;
    /// A console command of its own (`show route`, `show sctp`, ...): `None` if `words` are
    /// not one of its commands. Runs inside its domain.
    fn command(
        &mut self,
        _cx: &mut Context<'_>,
        _words: &[&str],
        _out: &mut dyn Write,
    ) -> Option<fmt::Result> {
        None
    }
    /// Its lines of `help`.
    fn help(&self) -> &'static str {
        ""
    }
    /// Offers itself to be read by other subsystems (`Context::peek`): BGP's tables to BMP.
    fn peek(&self) -> Option<&dyn core::any::Any> {
        None
    }
    /// A message from the subsystem of `from` (`Context::tell`), handed over inside this
    /// subsystem's domain: it copies what it keeps, within a bound it sets, and says whether it
    /// took it. The default takes nothing.
    fn accept(&mut self, _from: Domain, _message: &dyn core::any::Any) -> bool {
        false
    }
    /// Its counters for NIC `iface` in `show interfaces` (the forwarder's), if any.
    fn interface_counters(&self, _iface: u8) -> Option<crate::console::InterfaceCounters> {
        None
    }
}

/// The platform, as the supervisor hands it to subsystems: their I/O, the random source, and
/// the clock that times each poll.
pub struct World<'a> {
    pub io: &'a mut dyn Io,
    pub rng: &'a mut dyn RngCore,
    pub clock: &'a dyn Fn() -> Instant,
}

/// The slowest subsystem poll of a loop turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowestPoll {
    pub name: &'static str,
    pub took: Duration,
}

/// Why traffic could not be handed to a subsystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverError {
    /// No subsystem owns the domain.
    NoSubsystem,
    /// Its subsystem is not up.
    NotUp,
}

/// Work that runs inside a subsystem's domain and goes with it when the domain is shed: the
/// diagnostics (`debug hog`, `debug leak`) now, per-peer jobs later. A task is polled after
/// its subsystem, in the same domain, and must do bounded work per poll.
pub trait Task {
    fn poll(&mut self, now: Instant) -> TaskState;
    /// One line about itself for `show status`.
    fn describe(&self, out: &mut dyn Write) -> fmt::Result;
}

/// Tasks one domain may run at once: with a bounded step per task poll, this bounds how far a
/// domain can overshoot its hard quota in one loop turn.
pub const MAX_TASKS_PER_DOMAIN: usize = 2;

/// What a task's poll left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// More to do: poll again on the next loop turn.
    Working,
    /// Nothing to do, but it holds state: keep it.
    Holding,
    /// Finished: drop it.
    Done,
}

/// Why a task could not be spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No subsystem owns the domain (the kernel and net domains are not supervised).
    NoSubsystem(Domain),
    /// The subsystem is not up (shedding, restarting or held down).
    NotUp(Domain),
    /// The domain already runs `MAX_TASKS_PER_DOMAIN` tasks.
    TooManyTasks(Domain),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoSubsystem(d) => write!(f, "no subsystem owns domain {}", d.name()),
            SpawnError::NotUp(d) => write!(f, "the subsystem of domain {} is not up", d.name()),
            SpawnError::TooManyTasks(d) => {
                write!(f, "domain {} already runs {} tasks", d.name(), MAX_TASKS_PER_DOMAIN)
            }
        }
    }
}

/// What a shed left behind in its domain above the baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leak {
    pub bytes: usize,
    pub blocks: usize,
}

/// The memory accounting, as the supervisor sees it.
pub trait MemoryBooks: Admission {
    /// Runs `f` with `d` as the current domain, restoring the previous one afterwards.
    fn with_domain<R>(&self, d: Domain, f: impl FnOnce() -> R) -> R;
    fn over_hard(&self, d: Domain) -> bool;
    fn over_soft(&self, d: Domain) -> bool;
    /// Records the domain's current use as what "empty" means for it (before a start).
    fn set_baseline(&self, d: Domain);
    /// After a shed: returns the domain's cached chunks to the heap and reports whatever is
    /// still charged above the baseline.
    fn reclaim(&self, d: Domain) -> Leak;
    /// The domain's figures, for `show memory`.
    fn stats(&self, d: Domain) -> DomainFigures;
    fn heap_stats(&self) -> HeapFigures;
}

/// A domain's figures, as `show memory` prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainFigures {
    /// Chunks held (free slots and cached free chunks included) and large blocks.
    pub used: usize,
    /// What live blocks hold: back to the baseline, to the byte, when a domain's work is gone.
    pub live: usize,
    pub peak: usize,
    pub blocks: usize,
    pub chunks: usize,
    pub soft: usize,
    pub hard: usize,
    pub failed_admissions: u64,
}

/// The shared heap's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapFigures {
    pub total: usize,
    pub used: usize,
    pub free: usize,
    pub largest_free: usize,
}

/// Where a subsystem is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubsystemState {
    Down,
    Starting,
    Up,
    Shedding,
    Restarting,
    HeldDown,
}

/// How a subsystem is polled and restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Take-downs within `window` after which the subsystem is held down.
    pub limit: u32,
    pub window: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub budget: Budget,
}

/// Why a subsystem cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The kernel domain is never shed, so no subsystem may live in it.
    KernelDomain,
    /// Another subsystem already owns the domain.
    DomainTaken(Domain),
}

/// A subsystem's figures, for the console and `show memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubsystemReport {
    pub name: &'static str,
    pub domain: Domain,
    pub state: SubsystemState,
    /// Take-downs for going over the hard quota or by operator request.
    pub sheds: u64,
    /// Take-downs after a failed poll or start.
    pub failures: u64,
    pub restarts: u64,
    /// Sheds that left memory behind.
    pub leaks: u64,
    pub last_leak: Option<Leak>,
    pub restart_at: Option<Instant>,
    /// From the loop turn that found the domain over its hard quota (or failed) to the turn
    /// that had the subsystem up again, for the last take-down that recovered.
    pub last_recovery: Option<Duration>,
    pub pressure: bool,
}

/// Owns the subsystems and runs their lifecycle.
pub struct Supervisor<B: MemoryBooks> {
    books: B,
    slots: Vec<Slot>,
}

struct Slot {
    sub: Box<dyn Subsystem>,
    /// Tasks running in the domain; dropped (inside the domain) when it is shed.
    tasks: Vec<Box<dyn Task>>,
    domain: Domain,
    policy: RestartPolicy,
    state: SubsystemState,
    /// Take-down times within the window, oldest first; at most `policy.limit` entries.
    recent: VecDeque<Instant>,
    restart_at: Option<Instant>,
    pressure: bool,
    pending: bool,
    sheds: u64,
    failures: u64,
    restarts: u64,
    leaks: u64,
    last_leak: Option<Leak>,
    /// When the current take-down began (cleared once the subsystem is up again).
    taken_down_at: Option<Instant>,
    last_recovery: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    OverQuota,
    Forced,
    Failed,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            limit: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
            budget: Budget(64),
        }
    }
}

impl<B: MemoryBooks> Supervisor<B> {
    pub fn new(books: B) -> Self {
        Supervisor { books, slots: Vec::new() }
    }

    /// Registers a subsystem (state `down`); [`Supervisor::start`] starts it.
    pub fn add(&mut self, sub: Box<dyn Subsystem>, policy: RestartPolicy) -> Result<(), AddError> {
        let domain = sub.domain();
        if domain == Domain::Kernel {
            return Err(AddError::KernelDomain);
        }
        if self.slots.iter().any(|s| s.domain == domain) {
            return Err(AddError::DomainTaken(domain));
        }
        self.slots.push(Slot {
            sub,
            tasks: Vec::new(),
            domain,
            policy,
            state: SubsystemState::Down,
            recent: VecDeque::with_capacity(policy.limit.max(1) as usize),
            restart_at: None,
            pressure: false,
            pending: false,
            sheds: 0,
            failures: 0,
            restarts: 0,
            leaks: 0,
            last_leak: None,
            taken_down_at: None,
            last_recovery: None,
        });
        Ok(())
    }

    /// Starts every subsystem that is `down`.
    pub fn start(&mut self, now: Instant, world: &mut World<'_>) {
        for i in 0..self.slots.len() {
            if self.slots.get(i).is_some_and(|s| s.state == SubsystemState::Down) {
                self.start_slot(i, now, world);
            }
        }
    }

    /// Hands `inbound` to the subsystem of `d`, inside its domain.
    pub fn deliver(
        &mut self,
        d: Domain,
        inbound: Inbound<'_>,
        now: Instant,
        world: &mut World<'_>,
    ) -> Result<Delivery, DeliverError> {
        let i = self.slots.iter().position(|s| s.domain == d).ok_or(DeliverError::NoSubsystem)?;
        let (before, rest) = self.slots.split_at_mut(i);
        let Some((slot, after)) = rest.split_first_mut() else { return Err(DeliverError::NoSubsystem) };
        if slot.state != SubsystemState::Up {
            return Err(DeliverError::NotUp);
        }
        let (books, sub) = (&self.books, &mut slot.sub);
        let mut peers = SlotPeers { books, from: d, before, after };
        let delivery = books.with_domain(d, || {
            let mut cx = Context::new(now, d, &mut *world.rng, books, &mut *world.io).with_peers(&mut peers);
            sub.receive(&mut cx, inbound)
        });
        slot.pending = true;
        Ok(delivery)
    }

    /// Offers a console command to each running subsystem in turn, inside its domain: the
    /// latest added first, so that a protocol may answer `show route PREFIX` for its own routes
    /// with their attributes before the forwarder answers from the FIB.
    pub fn command(
        &mut self,
        words: &[&str],
        out: &mut dyn Write,
        now: Instant,
        world: &mut World<'_>,
    ) -> Option<fmt::Result> {
        let books = &self.books;
        for slot in self.slots.iter_mut().rev().filter(|s| s.state == SubsystemState::Up) {
            let (d, sub) = (slot.domain, &mut slot.sub);
            let answer = books.with_domain(d, || {
                let mut cx = Context::new(now, d, &mut *world.rng, books, &mut *world.io);
                sub.command(&mut cx, words, out)
            });
            if answer.is_some() {
                return answer;
            }
        }
        None
    }

    /// Every subsystem's help lines.
    pub fn help(&self, out: &mut dyn Write) -> fmt::Result {
        for s in &self.slots {
            out.write_str(s.sub.help())?;
        }
        Ok(())
    }

    /// Reads the subsystem of `d` while it is up.
    pub fn with_subsystem<R>(&self, d: Domain, f: impl FnOnce(&dyn Subsystem) -> R) -> Option<R> {
        self.slots.iter().find(|s| s.domain == d && s.state == SubsystemState::Up).map(|s| f(&*s.sub))
    }

    /// Has the subsystem of `d` polled on the next turn (its sockets saw activity).
    pub fn wake(&mut self, d: Domain) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.domain == d && s.state == SubsystemState::Up) {
            slot.pending = true;
        }
    }

    /// Whether the subsystem of `d` is up.
    pub fn is_up(&self, d: Domain) -> bool {
        self.slots.iter().any(|s| s.domain == d && s.state == SubsystemState::Up)
    }

    /// One loop turn: restarts that are due, one bounded poll of each running subsystem
    /// inside its domain, then the quota checks (shed over hard, pressure over soft).
    /// Returns the turn's slowest poll (task polls included).
    pub fn poll(&mut self, now: Instant, world: &mut World<'_>) -> Option<SlowestPoll> {
        let mut slowest: Option<SlowestPoll> = None;
        for i in 0..self.slots.len() {
            let due = self.slots.get(i).is_some_and(|s| {
                s.state == SubsystemState::Restarting && s.restart_at.is_some_and(|t| t <= now)
            });
            if due {
                if let Some(s) = self.slots.get_mut(i) {
                    s.restarts += 1;
                }
                self.start_slot(i, now, world);
            }
        }
        for i in 0..self.slots.len() {
            let (before, rest) = self.slots.split_at_mut(i);
            let Some((slot, after)) = rest.split_first_mut() else { continue };
            if slot.state != SubsystemState::Up {
                continue;
            }
            // Polled when it has something to do: work left from its last poll, traffic handed
            // to it, activity on its sockets (the platform wakes it), a task, or its deadline.
            let due =
                slot.pending || !slot.tasks.is_empty() || slot.sub.poll_at(now).is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            let (budget, d, sub, tasks) = (slot.policy.budget, slot.domain, &mut slot.sub, &mut slot.tasks);
            let books = &self.books;
            let mut peers = SlotPeers { books, from: d, before, after };
            let started = (world.clock)();
            let (outcome, tasks_working) = books.with_domain(d, || {
                let mut cx =
                    Context::new(now, d, &mut *world.rng, books, &mut *world.io).with_peers(&mut peers);
                let outcome = sub.poll(&mut cx, budget);
                let mut working = false;
                tasks.retain_mut(|t| match t.poll(now) {
                    TaskState::Working => {
                        working = true;
                        true
                    }
                    TaskState::Holding => true,
                    TaskState::Done => false,
                });
                (outcome, working)
            });
            let took = (world.clock)().saturating_since(started);
            let Some(slot) = self.slots.get_mut(i) else { continue };
            if slowest.is_none_or(|s| took > s.took) {
                slowest = Some(SlowestPoll { name: slot.sub.name(), took });
            }
            slot.pending = outcome == PollOutcome::Pending || tasks_working;
            if outcome == PollOutcome::Failed {
                self.take_down(i, now, Cause::Failed, world);
            }
        }
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(i) else { continue };
            if slot.state != SubsystemState::Up {
                continue;
            }
            let d = slot.domain;
            if self.books.over_hard(d) {
                self.take_down(i, now, Cause::OverQuota, world);
                continue;
            }
            let soft = self.books.over_soft(d);
            if soft != slot.pressure {
                slot.pressure = soft;
                let (books, sub) = (&self.books, &mut slot.sub);
                books.with_domain(d, || {
                    let mut cx = Context::new(now, d, &mut *world.rng, books, &mut *world.io);
                    sub.pressure(&mut cx, soft)
                });
            }
        }
        slowest
    }

    /// When the loop must come back: now if a subsystem has work pending, else the earliest
    /// restart or subsystem deadline; `None` when nothing is scheduled.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                SubsystemState::Up if s.pending => Some(now),
                SubsystemState::Up => s.sub.poll_at(now),
                SubsystemState::Restarting => s.restart_at,
                _ => None,
            })
            .min()
    }

    /// Sheds the subsystem of `d` now, as if it had gone over its quota (console
    /// `debug shed`). False when no running subsystem owns `d`.
    pub fn force_shed(&mut self, d: Domain, now: Instant, world: &mut World<'_>) -> bool {
        match self.slots.iter().position(|s| s.domain == d && s.state == SubsystemState::Up) {
            Some(i) => {
                self.take_down(i, now, Cause::Forced, world);
                true
            }
            None => false,
        }
    }

    /// Starts a task inside domain `d`, built there by `make` so that it is charged to `d`.
    pub fn spawn(&mut self, d: Domain, make: impl FnOnce() -> Box<dyn Task>) -> Result<(), SpawnError> {
        let slot = self.slots.iter_mut().find(|s| s.domain == d).ok_or(SpawnError::NoSubsystem(d))?;
        if slot.state != SubsystemState::Up {
            return Err(SpawnError::NotUp(d));
        }
        if slot.tasks.len() >= MAX_TASKS_PER_DOMAIN {
            return Err(SpawnError::TooManyTasks(d));
        }
        let tasks = &mut slot.tasks;
        self.books.with_domain(d, || tasks.push(make()));
        slot.pending = true;
        Ok(())
    }

    /// Lifts a hold-down: the subsystem of `d` restarts on the next poll with a fresh window.
    pub fn release(&mut self, d: Domain, now: Instant) -> bool {
        match self.slots.iter_mut().find(|s| s.domain == d && s.state == SubsystemState::HeldDown) {
            Some(s) => {
                s.recent.clear();
                s.state = SubsystemState::Restarting;
                s.restart_at = Some(now);
                true
            }
            None => false,
        }
    }

    /// The figures of the subsystem that owns `d`.
    pub fn report(&self, d: Domain) -> Option<SubsystemReport> {
        self.slots.iter().find(|s| s.domain == d).map(Slot::report)
    }

    /// Every subsystem's figures, in the order they were added.
    pub fn reports(&self) -> impl Iterator<Item = SubsystemReport> + '_ {
        self.slots.iter().map(Slot::report)
    }

    pub fn books(&self) -> &B {
        &self.books
    }

    /// A table of the subsystems, then each subsystem's own status.
    pub fn status(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(
            out,
            "{:<12} {:<10} {:<11} {:>6} {:>6} {:>8} {:>10}  Last leak",
            "Name", "Domain", "State", "Sheds", "Fails", "Restarts", "Recovery"
        )?;
        for s in &self.slots {
            write!(
                out,
                "{:<12} {:<10} {:<11} {:>6} {:>6} {:>8} {:>10}  ",
                s.sub.name(),
                s.domain.name(),
                s.state.name(),
                s.sheds,
                s.failures,
                s.restarts,
                RecoveryText(s.last_recovery)
            )?;
            match s.last_leak {
                Some(l) => writeln!(out, "{} bytes in {} blocks", l.bytes, l.blocks)?,
                None => writeln!(out, "none")?,
            }
        }
        for s in &self.slots {
            write!(out, "{}: ", s.sub.name())?;
            if s.state == SubsystemState::HeldDown {
                writeln!(out, "held down after {} take-downs within {}", s.policy.limit, s.policy.window)?;
            } else {
                s.sub.status(out)?;
                writeln!(out)?;
            }
            for t in &s.tasks {
                write!(out, "  task: ")?;
                t.describe(out)?;
                writeln!(out)?;
            }
        }
        Ok(())
    }

    fn start_slot(&mut self, i: usize, now: Instant, world: &mut World<'_>) {
        let Some(slot) = self.slots.get_mut(i) else { return };
        let d = slot.domain;
        slot.state = SubsystemState::Starting;
        slot.restart_at = None;
        slot.pressure = false;
        slot.pending = false;
        self.books.set_baseline(d);
        let (books, sub) = (&self.books, &mut slot.sub);
        let started = books.with_domain(d, || {
            let mut cx = Context::new(now, d, &mut *world.rng, books, &mut *world.io);
            sub.start(&mut cx)
        });
        match started {
            Ok(()) => {
                slot.state = SubsystemState::Up;
                slot.pending = true;
                world.io.subsystem_up(d);
                if let Some(down) = slot.taken_down_at.take() {
                    let took = Duration::from_micros(now.total_micros().saturating_sub(down.total_micros()));
                    slot.last_recovery = Some(took);
                    log::info!("{} restarted {} after its take-down", slot.sub.name(), took);
                }
            }
            Err(e) => {
                log::warn!("{} failed to start: {:?}", slot.sub.name(), e);
                self.take_down(i, now, Cause::Failed, world);
            }
        }
    }

    /// Sheds slot `i`, records any leak, and schedules its restart or holds it down.
    fn take_down(&mut self, i: usize, now: Instant, cause: Cause, world: &mut World<'_>) {
        let Some(slot) = self.slots.get_mut(i) else { return };
        let d = slot.domain;
        slot.state = SubsystemState::Shedding;
        slot.taken_down_at.get_or_insert(now);
        match cause {
            Cause::OverQuota => {
                log::warn!("shed {}: domain {} over its hard quota", slot.sub.name(), d.name())
            }
            Cause::Forced => log::warn!("shed {}: requested by the operator", slot.sub.name()),
            Cause::Failed => log::warn!("shed {}: failed", slot.sub.name()),
        }
        let (books, sub, tasks) = (&self.books, &mut slot.sub, &mut slot.tasks);
        books.with_domain(d, || {
            let mut cx = Context::new(now, d, &mut *world.rng, books, &mut *world.io);
            sub.farewell(&mut cx);
        });
        books.with_domain(d, || {
            sub.shed();
            // The tasks and the list that held them were allocated in `d`: free both.
            *tasks = Vec::new();
        });
        // Its connections are reset and its sockets, bindings and routes released; the
        // platform's own records of them are `net`'s.
        self.books.with_domain(Domain::Net, || world.io.subsystem_down(d, now));
        let leak = self.books.reclaim(d);
        if leak.bytes > 0 || leak.blocks > 0 {
            log::warn!("LEAK domain={} bytes={} blocks={}", d.name(), leak.bytes, leak.blocks);
            slot.leaks += 1;
            slot.last_leak = Some(leak);
        }
        match cause {
            Cause::Failed => slot.failures += 1,
            Cause::OverQuota | Cause::Forced => slot.sheds += 1,
        }
        slot.pressure = false;
        slot.pending = false;

        let window_start =
            Instant::from_micros(now.total_micros().saturating_sub(slot.policy.window.total_micros()));
        while slot.recent.front().is_some_and(|t| *t <= window_start && slot.policy.window > Duration::ZERO) {
            slot.recent.pop_front();
        }
        // Reserved for `limit` entries at `add`: make room before the push so that it never
        // grows (it would be charged to whatever domain is current).
        let limit = slot.policy.limit.max(1) as usize;
        while slot.recent.len() >= limit {
            slot.recent.pop_front();
        }
        slot.recent.push_back(now);
        if slot.recent.len() >= limit {
            log::error!("{} held down: {} take-downs within {}", slot.sub.name(), limit, slot.policy.window);
            slot.state = SubsystemState::HeldDown;
            slot.restart_at = None;
            return;
        }
        let doublings = slot.recent.len().saturating_sub(1) as u32;
        let backoff = slot.policy.initial_backoff.saturating_shl(doublings).min(slot.policy.max_backoff);
        slot.state = SubsystemState::Restarting;
        slot.restart_at = Some(now + backoff);
    }
}

/// The other slots, as the subsystem in the slot between them may reach them.
struct SlotPeers<'s, B: MemoryBooks> {
    books: &'s B,
    /// The domain of the subsystem that holds this.
    from: Domain,
    before: &'s mut [Slot],
    after: &'s mut [Slot],
}

impl<B: MemoryBooks> SlotPeers<'_, B> {
    fn find(&mut self, d: Domain) -> Option<&mut Slot> {
        self.before
            .iter_mut()
            .chain(self.after.iter_mut())
            .find(|s| s.domain == d && s.state == SubsystemState::Up)
    }
}

impl<B: MemoryBooks> Peers for SlotPeers<'_, B> {
    fn peek(&self, d: Domain) -> Option<&dyn core::any::Any> {
        self.before
            .iter()
            .chain(self.after.iter())
            .find(|s| s.domain == d && s.state == SubsystemState::Up)
            .and_then(|s| s.sub.peek())
    }

    fn tell(&mut self, d: Domain, message: &dyn core::any::Any) -> bool {
        let (books, from) = (self.books, self.from);
        match self.find(d) {
            Some(slot) => {
                let sub = &mut slot.sub;
                let taken = books.with_domain(d, || sub.accept(from, message));
                // Whether it took it or not (a refusal means re-synchronising), it has work.
                slot.pending = true;
                taken
            }
            None => false,
        }
    }
}

impl Slot {
    fn report(&self) -> SubsystemReport {
        SubsystemReport {
            name: self.sub.name(),
            domain: self.domain,
            state: self.state,
            sheds: self.sheds,
            failures: self.failures,
            restarts: self.restarts,
            leaks: self.leaks,
            last_leak: self.last_leak,
            restart_at: self.restart_at,
            last_recovery: self.last_recovery,
            pressure: self.pressure,
        }
    }
}

/// The last recovery time in `show status`, or `-`.
struct RecoveryText(Option<Duration>);

impl fmt::Display for RecoveryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => f.pad(&alloc::format!("{}us", d.total_micros())),
            None => f.pad("-"),
        }
    }
}

impl SubsystemState {
    pub const fn name(self) -> &'static str {
        match self {
            SubsystemState::Down => "down",
            SubsystemState::Starting => "starting",
            SubsystemState::Up => "up",
            SubsystemState::Shedding => "shedding",
            SubsystemState::Restarting => "restarting",
            SubsystemState::HeldDown => "held-down",
        }
    }
}

impl fmt::Display for SubsystemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::KernelDomain => f.write_str("no subsystem may live in the kernel domain"),
            AddError::DomainTaken(d) => write!(f, "domain {} already has a subsystem", d.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::testing::NullIo;
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;

    /// A world with no stack, for one call.
    macro_rules! w {
        () => {
            &mut World {
                io: &mut NullIo::default(),
                rng: &mut Csprng::seed_from_u64(7),
                clock: &|| Instant::ZERO,
            }
        };
    }
    use core::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::string::{String, ToString};
    use std::vec;

    /// Books that count bytes per domain and remember which domain is current.
    #[derive(Default)]
    struct FakeBooks {
        used: [Cell<usize>; Domain::COUNT],
        blocks: [Cell<usize>; Domain::COUNT],
        baseline: [Cell<usize>; Domain::COUNT],
        hard: [Cell<usize>; Domain::COUNT],
        soft: [Cell<usize>; Domain::COUNT],
        current: Cell<Option<Domain>>,
    }

    #[derive(Clone, Default)]
    struct Books(Rc<FakeBooks>);

    impl FakeBooks {
        /// Charges the current domain, as the global allocator would.
        fn alloc(&self, bytes: usize) {
            let d = self.current.get().expect("allocation outside any domain") as usize;
            self.used[d].set(self.used[d].get() + bytes);
            self.blocks[d].set(self.blocks[d].get() + 1);
        }
        fn free(&self, bytes: usize) {
            let d = self.current.get().expect("free outside any domain") as usize;
            self.used[d].set(self.used[d].get() - bytes);
            self.blocks[d].set(self.blocks[d].get() - 1);
        }
        fn limits(&self, d: Domain, hard: usize, soft: usize) {
            self.hard[d as usize].set(hard);
            self.soft[d as usize].set(soft);
        }
    }

    impl Admission for Books {
        fn admit(&self, d: Domain, bytes: usize) -> Result<(), crate::domain::OverQuota> {
            let i = d as usize;
            let room = self.0.hard[i].get().saturating_sub(self.0.used[i].get());
            if bytes <= room {
                Ok(())
            } else {
                Err(crate::domain::OverQuota {
                    domain: d,
                    requested: bytes,
                    used: self.0.used[i].get(),
                    hard: self.0.hard[i].get(),
                })
            }
        }
        fn room(&self, d: Domain) -> crate::context::Room {
            let i = d as usize;
            let used = self.0.used[i].get();
            crate::context::Room {
                soft: self.0.soft[i].get().saturating_sub(used),
                hard: self.0.hard[i].get().saturating_sub(used),
            }
        }
    }

    impl MemoryBooks for Books {
        fn stats(&self, d: Domain) -> DomainFigures {
            DomainFigures { used: self.0.used[d as usize].get(), ..DomainFigures::default() }
        }
        fn heap_stats(&self) -> HeapFigures {
            HeapFigures::default()
        }
        fn with_domain<R>(&self, d: Domain, f: impl FnOnce() -> R) -> R {
            let prev = self.0.current.replace(Some(d));
            let r = f();
            self.0.current.set(prev);
            r
        }
        fn over_hard(&self, d: Domain) -> bool {
            self.0.used[d as usize].get() > self.0.hard[d as usize].get()
        }
        fn over_soft(&self, d: Domain) -> bool {
            self.0.used[d as usize].get() > self.0.soft[d as usize].get()
        }
        fn set_baseline(&self, d: Domain) {
            let i = d as usize;
            self.0.baseline[i].set(self.0.used[i].get());
        }
        fn reclaim(&self, d: Domain) -> Leak {
            let i = d as usize;
            Leak { bytes: self.0.used[i].get() - self.0.baseline[i].get(), blocks: self.0.blocks[i].get() }
        }
    }

    /// What the fake subsystem was asked to do, in order.
    type Events = Rc<RefCell<Vec<String>>>;

    /// Allocates `per_poll` bytes per poll; on shed frees everything but `leak` bytes.
    struct FakeSub {
        books: Books,
        domain: Domain,
        per_poll: usize,
        leak: usize,
        fail_start: Rc<Cell<bool>>,
        fail_poll: bool,
        held: Vec<usize>,
        events: Events,
        next: Option<Instant>,
    }

    impl Subsystem for FakeSub {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn domain(&self) -> Domain {
            self.domain
        }
        fn start(&mut self, cx: &mut Context<'_>) -> Result<(), StartError> {
            let now = cx.now;
            self.events.borrow_mut().push(std::format!("start@{}", now.total_micros() / 1000));
            assert_eq!(self.books.0.current.get(), Some(self.domain));
            if self.fail_start.get() {
                return Err(StartError::Failed);
            }
            Ok(())
        }
        fn poll(&mut self, _cx: &mut Context<'_>, budget: Budget) -> PollOutcome {
            assert_eq!(self.books.0.current.get(), Some(self.domain), "polled outside its domain");
            assert_eq!(budget, Budget(64));
            if self.fail_poll {
                return PollOutcome::Failed;
            }
            if self.per_poll > 0 {
                self.books.0.alloc(self.per_poll);
                self.held.push(self.per_poll);
                // Work left: polled again on the next turn.
                return PollOutcome::Pending;
            }
            PollOutcome::Idle
        }
        fn poll_at(&self, _now: Instant) -> Option<Instant> {
            self.next
        }
        fn pressure(&mut self, _cx: &mut Context<'_>, on: bool) {
            self.events.borrow_mut().push(std::format!("pressure {on}"));
        }
        fn shed(&mut self) {
            assert_eq!(self.books.0.current.get(), Some(self.domain), "shed outside its domain");
            self.events.borrow_mut().push("shed".to_string());
            let mut kept = 0;
            for bytes in self.held.drain(..) {
                if kept < self.leak {
                    kept += bytes;
                } else {
                    self.books.0.free(bytes);
                }
            }
        }
        fn status(&self, out: &mut dyn Write) -> fmt::Result {
            write!(out, "holding {} objects", self.held.len())
        }
    }

    struct Rig {
        sup: Supervisor<Books>,
        books: Books,
        events: Events,
        fail_start: Rc<Cell<bool>>,
    }

    fn rig(per_poll: usize, leak: usize, hard: usize, soft: usize) -> Rig {
        let books = Books::default();
        books.0.limits(Domain::Bmp, hard, soft);
        let events: Events = Rc::default();
        let fail_start = Rc::new(Cell::new(false));
        let sub = FakeSub {
            books: books.clone(),
            domain: Domain::Bmp,
            per_poll,
            leak,
            fail_start: fail_start.clone(),
            fail_poll: false,
            held: Vec::new(),
            events: events.clone(),
            next: Some(Instant::from_millis(1000)),
        };
        let mut sup = Supervisor::new(books.clone());
        sup.add(Box::new(sub), RestartPolicy::default()).unwrap();
        sup.start(Instant::ZERO, w!());
        Rig { sup, books, events, fail_start }
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn state(r: &Rig) -> SubsystemState {
        r.sup.report(Domain::Bmp).unwrap().state
    }

    /// Allocates `step` per poll (charged through the fake books) up to `target`; frees all
    /// of it when dropped.
    struct HogTask {
        books: Books,
        step: usize,
        target: usize,
        held: usize,
        dropped: Rc<Cell<bool>>,
    }

    impl Task for HogTask {
        fn poll(&mut self, _now: Instant) -> TaskState {
            if self.held >= self.target {
                return TaskState::Holding;
            }
            self.books.0.alloc(self.step);
            self.held += self.step;
            TaskState::Working
        }
        fn describe(&self, out: &mut dyn Write) -> fmt::Result {
            write!(out, "hog {}/{}", self.held, self.target)
        }
    }

    impl Drop for HogTask {
        fn drop(&mut self) {
            for _ in 0..self.held / self.step {
                self.books.0.free(self.step);
            }
            self.dropped.set(true);
        }
    }

    #[test]
    fn a_task_runs_in_its_domain_and_goes_with_the_shed() {
        let mut r = rig(0, 0, 1000, 800);
        let dropped = Rc::new(Cell::new(false));
        let (books, flag) = (r.books.clone(), dropped.clone());
        r.sup
            .spawn(Domain::Bmp, move || {
                Box::new(HogTask { books, step: 100, target: 5000, held: 0, dropped: flag }) as Box<dyn Task>
            })
            .unwrap();
        assert_eq!(r.sup.next_deadline(Instant::ZERO), Some(Instant::ZERO), "a working task wants polls");
        let mut now = Instant::ZERO;
        for _ in 0..20 {
            now = now + Duration::from_millis(1);
            r.sup.poll(now, w!());
            if dropped.get() {
                break;
            }
        }
        assert!(dropped.get(), "the hog was not dropped by the shed");
        let report = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!(report.sheds, 1);
        assert_eq!(report.last_leak, None);
        assert_eq!(r.books.0.used[Domain::Bmp as usize].get(), 0, "the domain is back to its baseline");
        assert_eq!(
            r.sup.spawn(Domain::Kernel, || unreachable!()),
            Err(SpawnError::NoSubsystem(Domain::Kernel))
        );
        assert_eq!(r.sup.spawn(Domain::Bmp, || unreachable!()), Err(SpawnError::NotUp(Domain::Bmp)));
    }

    #[test]
    fn sheds_over_hard_quota_and_restarts_after_backoff() {
        let mut r = rig(100, 0, 250, 1000);
        r.sup.poll(ms(1), w!());
        r.sup.poll(ms(2), w!());
        assert_eq!(state(&r), SubsystemState::Up);
        r.sup.poll(ms(3), w!()); // 300 bytes > 250
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!((rep.state, rep.sheds, rep.restart_at), (SubsystemState::Restarting, 1, Some(ms(13))));
        assert_eq!(r.books.0.used[Domain::Bmp as usize].get(), 0, "shed left memory behind");
        assert_eq!(rep.last_leak, None);
        assert_eq!(r.sup.next_deadline(ms(4)), Some(ms(13)));
        r.sup.poll(ms(12), w!());
        assert_eq!(state(&r), SubsystemState::Restarting);
        r.sup.poll(ms(13), w!());
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!((rep.state, rep.restarts), (SubsystemState::Up, 1));
        assert_eq!(
            rep.last_recovery,
            Some(Duration::from_millis(10)),
            "from the shed turn to the restart turn"
        );
        assert_eq!(r.events.borrow().as_slice(), ["start@0", "shed", "start@13"]);
    }

    #[test]
    fn backoff_doubles_then_holds_down_after_the_limit() {
        let mut r = rig(300, 0, 250, 1000);
        // Each poll after a restart goes over the quota again at once: restart, poll, shed.
        let mut now = 1;
        let mut delays = Vec::new();
        for _ in 0..4 {
            r.sup.poll(ms(now), w!());
            assert_eq!(state(&r), SubsystemState::Restarting);
            let at = r.sup.report(Domain::Bmp).unwrap().restart_at.unwrap();
            delays.push(at.total_micros() / 1000 - now);
            r.sup.poll(ms(at.total_micros() / 1000 - 1), w!());
            assert_eq!(
                r.sup.report(Domain::Bmp).unwrap().restarts as usize,
                delays.len() - 1,
                "restarted early"
            );
            now = at.total_micros() / 1000;
        }
        assert_eq!(delays, [10, 20, 40, 80]);
        r.sup.poll(ms(now), w!()); // restart, fifth shed within 60 s
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!(
            (rep.state, rep.sheds, rep.restarts, rep.restart_at),
            (SubsystemState::HeldDown, 5, 4, None)
        );
        assert_eq!(r.sup.next_deadline(ms(now + 2)), None);
        r.sup.poll(ms(100_000), w!());
        assert_eq!(state(&r), SubsystemState::HeldDown, "a held-down subsystem restarted by itself");
        let mut text = String::new();
        r.sup.status(&mut text).unwrap();
        assert!(
            text.contains("held-down") && text.contains("held down after 5 take-downs within 60s"),
            "{text}"
        );

        // Released: restarts at once with a fresh window (so its next shed backs off 10 ms).
        assert!(r.sup.release(Domain::Bmp, ms(100_000)));
        r.sup.poll(ms(100_000), w!());
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!(
            (rep.state, rep.restarts, rep.sheds, rep.restart_at),
            (SubsystemState::Restarting, 5, 6, Some(ms(100_010)))
        );
    }

    #[test]
    fn backoff_is_capped_and_the_window_forgets_old_sheds() {
        let books = Books::default();
        books.0.limits(Domain::Bmp, 250, 1000);
        let policy = RestartPolicy { limit: 20, ..RestartPolicy::default() };
        let sub = FakeSub {
            books: books.clone(),
            domain: Domain::Bmp,
            per_poll: 300,
            leak: 0,
            fail_start: Rc::default(),
            fail_poll: false,
            held: Vec::new(),
            events: Rc::default(),
            next: None,
        };
        let mut sup = Supervisor::new(books);
        sup.add(Box::new(sub), policy).unwrap();
        sup.start(Instant::ZERO, w!());
        let mut now = 1;
        let mut last = 0;
        for _ in 0..12 {
            sup.poll(ms(now), w!());
            let at = sup.report(Domain::Bmp).unwrap().restart_at.unwrap().total_micros() / 1000;
            last = at - now;
            now = at;
            sup.poll(ms(now), w!());
        }
        assert_eq!(last, 5000, "backoff not capped at 5 s");
        // Long after the window, a shed starts again from the initial backoff.
        now += 120_000;
        sup.poll(ms(now), w!());
        let at = sup.report(Domain::Bmp).unwrap().restart_at.unwrap().total_micros() / 1000;
        assert_eq!(at - now, 10);
    }

    #[test]
    fn pressure_on_and_off_once_each() {
        let mut r = rig(100, 0, 10_000, 150);
        r.sup.poll(ms(1), w!());
        r.sup.poll(ms(2), w!()); // 200 > 150
        r.sup.poll(ms(3), w!());
        assert!(r.sup.report(Domain::Bmp).unwrap().pressure);
        r.books.0.used[Domain::Bmp as usize].set(0);
        r.sup.poll(ms(4), w!()); // 100 again, under
        assert!(!r.sup.report(Domain::Bmp).unwrap().pressure);
        assert_eq!(r.events.borrow().as_slice(), ["start@0", "pressure true", "pressure false"]);
    }

    #[test]
    fn leak_recorded_and_logged_in_the_fixed_format() {
        test_log::install();
        let mut r = rig(100, 100, 250, 1000);
        r.sup.poll(ms(1), w!());
        r.sup.poll(ms(2), w!());
        r.sup.poll(ms(3), w!());
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!((rep.leaks, rep.last_leak), (1, Some(Leak { bytes: 100, blocks: 1 })));
        let logs = test_log::take();
        assert!(logs.iter().any(|l| l == "LEAK domain=bmp bytes=100 blocks=1"), "{logs:?}");
        let mut text = String::new();
        r.sup.status(&mut text).unwrap();
        assert!(text.contains("100 bytes in 1 blocks"), "{text}");
    }

    #[test]
    fn failed_start_and_failed_poll_are_taken_down_with_backoff() {
        let mut r = rig(0, 0, 250, 1000);
        r.fail_start.set(true);
        assert!(r.sup.force_shed(Domain::Bmp, ms(1), w!()));
        assert_eq!(r.sup.report(Domain::Bmp).unwrap().sheds, 1);
        r.sup.poll(ms(11), w!()); // restart fails
        let rep = r.sup.report(Domain::Bmp).unwrap();
        assert_eq!((rep.state, rep.failures, rep.restart_at), (SubsystemState::Restarting, 1, Some(ms(31))));

        let books = Books::default();
        books.0.limits(Domain::Sctp, 1000, 1000);
        let sub = FakeSub {
            books: books.clone(),
            domain: Domain::Sctp,
            per_poll: 0,
            leak: 0,
            fail_start: Rc::default(),
            fail_poll: true,
            held: Vec::new(),
            events: Rc::default(),
            next: None,
        };
        let mut sup = Supervisor::new(books);
        sup.add(Box::new(sub), RestartPolicy::default()).unwrap();
        sup.start(ms(0), w!());
        sup.poll(ms(1), w!());
        let rep = sup.report(Domain::Sctp).unwrap();
        assert_eq!((rep.state, rep.failures, rep.sheds), (SubsystemState::Restarting, 1, 0));
    }

    #[test]
    fn next_deadline_and_registration_rules() {
        let mut r = rig(0, 0, 250, 1000);
        assert_eq!(r.sup.next_deadline(ms(5)), Some(ms(5)), "a fresh start is polled at once");
        r.sup.poll(ms(5), w!());
        assert_eq!(r.sup.next_deadline(ms(5)), Some(ms(1000)), "then at its deadline");
        let dup = FakeSub {
            books: r.books.clone(),
            domain: Domain::Bmp,
            per_poll: 0,
            leak: 0,
            fail_start: Rc::default(),
            fail_poll: false,
            held: vec![],
            events: Rc::default(),
            next: None,
        };
        assert_eq!(
            r.sup.add(Box::new(dup), RestartPolicy::default()),
            Err(AddError::DomainTaken(Domain::Bmp))
        );
        let kernel = FakeSub {
            books: r.books.clone(),
            domain: Domain::Kernel,
            per_poll: 0,
            leak: 0,
            fail_start: Rc::default(),
            fail_poll: false,
            held: vec![],
            events: Rc::default(),
            next: None,
        };
        assert_eq!(r.sup.add(Box::new(kernel), RestartPolicy::default()), Err(AddError::KernelDomain));
        assert!(!r.sup.force_shed(Domain::Bgp, ms(1), w!()));
        r.sup.poll(ms(2), w!());
        let mut text = String::new();
        r.sup.status(&mut text).unwrap();
        assert!(text.contains("fake: holding 0 objects"), "{text}");
    }

    /// Publishes `n` in the bgp domain each poll: `tell`s bmp, and reads bmp's count by `peek`.
    struct Publisher {
        books: Books,
        n: u32,
        told: Rc<Cell<u32>>,
        refused: Rc<Cell<u32>>,
        seen_by_peek: Rc<Cell<usize>>,
    }

    /// Takes at most two messages in the bmp domain, each copied (and charged) there.
    struct Mailbox {
        books: Books,
        held: Vec<u32>,
    }

    impl Subsystem for Publisher {
        fn name(&self) -> &'static str {
            "publisher"
        }
        fn domain(&self) -> Domain {
            Domain::Bgp
        }
        fn start(&mut self, _cx: &mut Context<'_>) -> Result<(), StartError> {
            Ok(())
        }
        fn poll(&mut self, cx: &mut Context<'_>, _budget: Budget) -> PollOutcome {
            self.n += 1;
            if cx.tell(Domain::Bmp, &self.n) {
                self.told.set(self.told.get() + 1);
            } else {
                self.refused.set(self.refused.get() + 1);
            }
            let held = cx.peek(Domain::Bmp).and_then(|a| a.downcast_ref::<Mailbox>()).map(|m| m.held.len());
            self.seen_by_peek.set(held.unwrap_or(usize::MAX));
            assert_eq!(self.books.0.current.get(), Some(Domain::Bgp), "back in its own domain");
            PollOutcome::Pending
        }
        fn poll_at(&self, _now: Instant) -> Option<Instant> {
            None
        }
        fn pressure(&mut self, _cx: &mut Context<'_>, _on: bool) {}
        fn shed(&mut self) {}
        fn status(&self, _out: &mut dyn Write) -> fmt::Result {
            Ok(())
        }
    }

    impl Subsystem for Mailbox {
        fn name(&self) -> &'static str {
            "mailbox"
        }
        fn domain(&self) -> Domain {
            Domain::Bmp
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
        fn shed(&mut self) {
            for _ in self.held.drain(..) {
                self.books.0.free(4);
            }
        }
        fn status(&self, _out: &mut dyn Write) -> fmt::Result {
            Ok(())
        }
        fn peek(&self) -> Option<&dyn core::any::Any> {
            Some(self)
        }
        fn accept(&mut self, from: Domain, message: &dyn core::any::Any) -> bool {
            assert_eq!(from, Domain::Bgp);
            assert_eq!(
                self.books.0.current.get(),
                Some(Domain::Bmp),
                "a message is copied in the receiver's domain"
            );
            match message.downcast_ref::<u32>() {
                Some(&n) if self.held.len() < 2 => {
                    self.books.0.alloc(4);
                    self.held.push(n);
                    true
                }
                _ => false,
            }
        }
    }

    #[test]
    fn subsystems_reach_each_other_only_through_bounded_copies() {
        let books = Books::default();
        books.0.limits(Domain::Bgp, 1000, 1000);
        books.0.limits(Domain::Bmp, 1000, 1000);
        let (told, refused, seen) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let mut sup = Supervisor::new(books.clone());
        let publisher = Publisher {
            books: books.clone(),
            n: 0,
            told: told.clone(),
            refused: refused.clone(),
            seen_by_peek: seen.clone(),
        };
        sup.add(Box::new(publisher), RestartPolicy::default()).unwrap();
        sup.add(Box::new(Mailbox { books: books.clone(), held: Vec::new() }), RestartPolicy::default())
            .unwrap();
        sup.start(ms(0), w!());
        for t in 1..=4 {
            sup.poll(ms(t), w!());
        }
        assert_eq!((told.get(), refused.get()), (2, 2), "the receiver's bound, not the sender, decides");
        assert_eq!(seen.get(), 2, "peek reads the receiver as it is");
        assert_eq!(books.0.used[Domain::Bmp as usize].get(), 8, "the copies are the receiver's");
        assert_eq!(books.0.used[Domain::Bgp as usize].get(), 0, "and not the sender's");
        // The receiver shed: telling it fails at once, nothing waits.
        assert!(sup.force_shed(Domain::Bmp, ms(5), w!()));
        sup.poll(ms(5), w!());
        assert_eq!(refused.get(), 3);
        assert_eq!(seen.get(), usize::MAX, "nothing to peek at while it is down");
        assert_eq!(books.0.used[Domain::Bmp as usize].get(), 0);
    }

    /// A logger that keeps each test thread's records for that thread.
    mod test_log {
        extern crate std;
        use std::cell::RefCell;
        use std::string::{String, ToString};
        use std::sync::Once;
        use std::vec::Vec;

        std::thread_local! { static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) }; }

        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }
            fn log(&self, record: &log::Record<'_>) {
                LINES.with(|l| l.borrow_mut().push(record.args().to_string()));
            }
            fn flush(&self) {}
        }

        pub fn install() {
            static ONCE: Once = Once::new();
            ONCE.call_once(|| {
                log::set_logger(&Capture).expect("logger");
                log::set_max_level(log::LevelFilter::Trace);
            });
        }

        pub fn take() -> Vec<String> {
            LINES.with(|l| core::mem::take(&mut *l.borrow_mut()))
        }
    }
}
