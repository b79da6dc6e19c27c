//! The chaos harness's fault schedule: which faults exist, the weighted
//! mixes, and the loop that injects them on the current leader.
//!
//! Faults come in three sorts:
//! * **fast handovers** (resign, unhealthy step-down, SIGTERM): the lease is
//!   released and another candidate takes over within a backend round trip.
//!   They make most of the transitions.
//! * **slow faults** (SIGKILL, SIGSTOP past the lease, black hole, latency):
//!   the leader goes silent and the others must wait for the lease to expire.
//!   At most one runs at a time; its end (restart, SIGCONT, pass-through) is
//!   scheduled, and fast handovers go on among the other candidates
//!   meanwhile, so the frozen or cut-off old leader comes back after several
//!   newer terms: the hardest case for a stale write.
//! * **exclusive faults** (a twin with the leader's id, server freeze or
//!   restart): nothing else runs while they do.
//!
//! After a fault on the leader the loop waits until a newer term has written
//! (or the fault's time is up), then pauses briefly, so the cadence follows
//! the backend instead of fixed sleeps. Per fault kind it counts what was
//! injected, how much of it hit the leader, and how often a newer term was
//! seen afterwards.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::chaos_parts::signal;
use crate::chaos_run::{Backend, Case, Who, GRACE};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// SIGHUP: the Rust leader calls `resign()` (release, stays a candidate).
    Resign,
    /// SIGUSR1: the Rust leader reports itself unhealthy and steps down;
    /// SIGUSR2 makes it healthy again after the takeover.
    Health,
    /// SIGTERM (graceful stop, the lease is released), then restart.
    Term,
    /// SIGKILL, then restart with the same id.
    Kill,
    /// SIGSTOP past the lease, then SIGCONT.
    Stop,
    /// The candidate's proxy drops everything for longer than the lease.
    BlackHole,
    /// The candidate's proxy delays every chunk.
    Latency,
    /// A second process with the Rust leader's explicit id, for several leases.
    Twin,
    /// kube-apiserver or etcd SIGSTOPped past the lease / Consul agent SIGKILLed and restarted.
    Server,
}

impl FaultKind {
    /// The name in the log and the tables.
    pub(crate) fn name(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Self::Resign, _) => "resign",
            (Self::Health, _) => "health",
            (Self::Term, _) => "sigterm",
            (Self::Kill, _) => "sigkill",
            (Self::Stop, _) => "sigstop",
            (Self::BlackHole, _) => "blackhole",
            (Self::Latency, _) => "latency",
            (Self::Twin, _) => "twin",
            (Self::Server, Backend::Kubernetes) => "apiserver-freeze",
            (Self::Server, Backend::Consul) => "consul-restart",
            (Self::Server, Backend::Etcd) => "etcd-freeze",
        }
    }

    fn sort(self) -> Sort {
        match self {
            Self::Resign | Self::Health | Self::Term => Sort::Fast,
            Self::Kill | Self::Stop | Self::BlackHole | Self::Latency => Sort::Slow,
            Self::Twin | Self::Server => Sort::Exclusive,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Fast,
    Slow,
    Exclusive,
}

/// A named, weighted set of faults; one case per backend and mix. Both mixes
/// keep the fast handovers (they make the transitions) and each has its own
/// slow and exclusive faults.
pub(crate) struct Mix {
    /// The case name's second half.
    pub(crate) name: &'static str,
    /// Fault kinds with their weights.
    pub(crate) faults: &'static [(FaultKind, u64)],
}

/// The fault mixes: processes, then network and server.
pub(crate) const MIXES: [Mix; 2] = [
    Mix {
        name: "process",
        faults: &[
            (FaultKind::Resign, 30),
            (FaultKind::Health, 20),
            (FaultKind::Term, 15),
            (FaultKind::Kill, 10),
            (FaultKind::Stop, 10),
            (FaultKind::Twin, 6),
        ],
    },
    Mix {
        name: "network",
        faults: &[
            (FaultKind::Resign, 30),
            (FaultKind::Health, 15),
            (FaultKind::Term, 15),
            (FaultKind::BlackHole, 12),
            (FaultKind::Latency, 10),
            (FaultKind::Server, 5),
        ],
    },
];

/// What ends a fault, at its time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Undo {
    /// Start the slot's process again.
    Restart(usize),
    /// SIGCONT this pid (the slot's stopped process).
    Cont(usize, u32),
    /// Set the slot's proxy to pass-through.
    Pass(usize),
    /// SIGUSR2: the slot's process is healthy again.
    Healthy(usize),
}

impl Undo {
    fn slot(self) -> usize {
        match self {
            Self::Restart(s) | Self::Cont(s, _) | Self::Pass(s) | Self::Healthy(s) => s,
        }
    }
}

/// A scheduled end of a fault.
pub(crate) struct Pending {
    at: Instant,
    undo: Undo,
    /// Ends a slow fault (at most one runs at a time).
    slow: bool,
    /// The slot stays a target for fast faults meanwhile (added latency).
    targetable: bool,
}

/// Per fault kind: what was injected and what followed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultStats {
    /// Injected.
    pub(crate) injected: u64,
    /// Of those, on the leader of the moment.
    pub(crate) on_leader: u64,
    /// Of those on the leader, how many were followed by a newer term
    /// within the fault's time.
    pub(crate) takeovers: u64,
}

/// What the twin faults showed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TwinStats {
    /// Twins started beside a running Rust leader with its id.
    pub(crate) started: u64,
    /// Writes by twins while the leader with their id ran (must stay 0).
    pub(crate) writes_beside_leader: u64,
    /// Newer terms seen while a twin stood beside its running leader.
    pub(crate) takeovers_beside_leader: u64,
    /// After the leader resigned, how often the twin won the lease (it is a
    /// candidate like any other once the lease is free).
    pub(crate) won_after_resign: u64,
}

/// All counts of one case.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    /// Per fault name.
    pub(crate) faults: BTreeMap<&'static str, FaultStats>,
    /// The twin faults.
    pub(crate) twin: TwinStats,
}

impl Stats {
    /// A table for people, one row per fault kind, then the twins' line.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "{:<17} {:>8} {:>9} {:>15}\n",
            "fault (harness)", "injected", "on leader", "newer term seen"
        );
        for (name, s) in &self.faults {
            out.push_str(&format!(
                "{name:<17} {:>8} {:>9} {:>15}\n",
                s.injected, s.on_leader, s.takeovers
            ));
        }
        let t = &self.twin;
        out.push_str(&format!(
            "twins: {} started beside a running leader with its id; their writes meanwhile: {} (must be 0); \
             newer terms meanwhile: {}; won the lease after the leader resigned: {}\n",
            t.started, t.writes_beside_leader, t.takeovers_beside_leader, t.won_after_resign
        ));
        out
    }

    /// Adds another case's counts.
    pub(crate) fn add(&mut self, other: &Stats) {
        for (name, s) in &other.faults {
            let mine = self.faults.entry(name).or_default();
            mine.injected += s.injected;
            mine.on_leader += s.on_leader;
            mine.takeovers += s.takeovers;
        }
        self.twin.started += other.twin.started;
        self.twin.writes_beside_leader += other.twin.writes_beside_leader;
        self.twin.takeovers_beside_leader += other.twin.takeovers_beside_leader;
        self.twin.won_after_resign += other.twin.won_after_resign;
    }
}

/// How often the loop looks at the log and the schedule.
const TICK: Duration = Duration::from_millis(20);

impl Case<'_> {
    /// Injects faults of the case's mix until `deadline`, then ends every
    /// fault still running.
    pub(crate) fn inject_until(&mut self, deadline: Instant) -> Result<(), String> {
        while Instant::now() < deadline {
            self.tick()?;
            let kind = self.choose();
            let injected = match kind.sort() {
                Sort::Exclusive => {
                    self.settle(deadline)?;
                    if Instant::now() >= deadline {
                        break;
                    }
                    match kind {
                        FaultKind::Twin => self.twin()?,
                        _ => self.server()?,
                    }
                }
                Sort::Fast | Sort::Slow => self.inject(kind)?,
            };
            if injected {
                let pause = self.rng.millis(100, 400);
                self.idle(pause)?;
            } else {
                self.idle(Duration::from_millis(50))?;
            }
        }
        self.end_all()
    }

    /// A weighted pick from the mix; only fast faults while a slow one runs.
    fn choose(&mut self) -> FaultKind {
        let slow_running = self.pending.iter().any(|p| p.slow);
        let allowed: Vec<(FaultKind, u64)> = self
            .setup
            .mix
            .faults
            .iter()
            .copied()
            .filter(|(k, _)| !slow_running || k.sort() == Sort::Fast)
            .collect();
        let total: u64 = allowed.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.range(0, total);
        for (kind, weight) in &allowed {
            if roll < *weight {
                return *kind;
            }
            roll -= weight;
        }
        FaultKind::Resign
    }

    /// Polls the log, ends the faults whose time has come, restarts
    /// candidates that exited by themselves.
    fn tick(&mut self) -> Result<(), String> {
        self.tail.poll();
        let now = Instant::now();
        let (due, later): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.at <= now);
        self.pending = later;
        for p in due {
            self.undo(p.undo)?;
        }
        self.reap_unexpected()
    }

    fn undo(&mut self, undo: Undo) -> Result<(), String> {
        match undo {
            Undo::Restart(slot) => self.restart(slot),
            Undo::Cont(_, pid) => {
                signal(pid, "CONT");
                Ok(())
            }
            Undo::Pass(slot) => {
                let proxy = self.slots[slot].proxy;
                self.proxy.command(&format!("fault {proxy} pass")).map(drop)
            }
            Undo::Healthy(slot) => {
                if let Some(pid) = self.pid(slot) {
                    signal(pid, "USR2");
                }
                Ok(())
            }
        }
    }

    fn schedule(&mut self, after: Duration, undo: Undo, slow: bool) {
        self.pending.push(Pending {
            at: Instant::now() + after,
            undo,
            slow,
            targetable: matches!(undo, Undo::Pass(_)) && !slow,
        });
    }

    /// Ticks for `time`.
    fn idle(&mut self, time: Duration) -> Result<(), String> {
        let until = Instant::now() + time;
        loop {
            self.tick()?;
            if Instant::now() >= until {
                return Ok(());
            }
            sleep(TICK);
        }
    }

    /// Ends every running fault now.
    fn end_all(&mut self) -> Result<(), String> {
        for p in std::mem::take(&mut self.pending) {
            self.undo(p.undo)?;
        }
        Ok(())
    }

    /// Ticks until no fault runs (or `deadline`).
    fn settle(&mut self, deadline: Instant) -> Result<(), String> {
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.idle(TICK)?;
        }
        Ok(())
    }

    /// Whether a slot has a process and no fault of its own running.
    fn ready(&self, slot: usize) -> bool {
        self.slots[slot].child.is_some()
            && !self
                .pending
                .iter()
                .any(|p| p.undo.slot() == slot && !p.targetable)
    }

    /// The slot whose process wrote last, if it is ready.
    fn ready_leader(&mut self) -> Option<usize> {
        self.leader().filter(|&s| self.ready(s))
    }

    /// The ready leader most of the time (85 %), another ready candidate
    /// ("around it") otherwise. Needs two ready candidates, so that someone
    /// can take over.
    fn target(&mut self) -> Option<usize> {
        let ready: Vec<usize> = (0..self.slots.len()).filter(|&s| self.ready(s)).collect();
        if ready.len() < 2 {
            return None;
        }
        match self.ready_leader() {
            Some(leader) if self.rng.range(0, 100) < 85 => Some(leader),
            _ => Some(self.rng.pick(&ready)),
        }
    }

    /// The highest token written so far: a fault's takeover is a write of a
    /// higher one.
    fn term(&self) -> u64 {
        self.tail.max_token
    }

    /// Ticks until a term newer than `before` has written, or `timeout`.
    fn await_takeover(&mut self, before: u64, timeout: Duration) -> Result<bool, String> {
        let until = Instant::now() + timeout;
        loop {
            self.tick()?;
            if self.term() > before {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            sleep(TICK);
        }
    }

    fn count(&mut self, kind: FaultKind, on_leader: bool, took_over: bool) {
        let s = self
            .stats
            .faults
            .entry(kind.name(self.setup.backend))
            .or_default();
        s.injected += 1;
        s.on_leader += u64::from(on_leader);
        s.takeovers += u64::from(took_over);
    }

    /// How long a silent leader's successor may take: the lease, then (on
    /// Consul) the server's 2 x TTL and the lock-delay of lease + grace.
    fn failover_bound(&self) -> Duration {
        self.lease * 3 + GRACE + Duration::from_secs(2)
    }

    /// A fast or slow fault; false when there was nothing to inject it on.
    fn inject(&mut self, kind: FaultKind) -> Result<bool, String> {
        let slot = if kind.sort() == Sort::Fast {
            // Handovers only make sense on the leader.
            let enough = (0..self.slots.len()).filter(|&s| self.ready(s)).count() >= 2;
            match self.ready_leader() {
                Some(leader) if enough => leader,
                _ => return Ok(false),
            }
        } else {
            match self.target() {
                Some(slot) => slot,
                None => return Ok(false),
            }
        };
        // Foreign candidates have no resign or health: stop them gracefully.
        let kind = match kind {
            FaultKind::Resign | FaultKind::Health if self.slots[slot].who == Who::Foreign => {
                FaultKind::Term
            }
            other => other,
        };
        let on_leader = self.leader() == Some(slot);
        let before = self.term();
        let id = self.slots[slot].id.clone();
        let Some(pid) = self.pid(slot) else {
            return Ok(false);
        };
        self.note(kind, &id)?;
        let wait = match kind {
            FaultKind::Resign => {
                signal(pid, "HUP");
                self.lease + Duration::from_secs(2)
            }
            FaultKind::Health => {
                signal(pid, "USR1");
                let took_over = self.await_takeover(before, self.lease + Duration::from_secs(2))?;
                self.count(kind, on_leader, took_over);
                let back = self.rng.millis(200, 1000);
                self.schedule(back, Undo::Healthy(slot), false);
                return Ok(true);
            }
            FaultKind::Term | FaultKind::Kill => {
                if let Some(mut child) = self.slots[slot].child.take() {
                    if kind == FaultKind::Kill {
                        let _ = child.kill();
                    } else {
                        signal(pid, "TERM");
                    }
                    Self::wait_exit(&mut child, Duration::from_secs(10));
                }
                let (down, slow) = if kind == FaultKind::Kill {
                    (self.rng.millis(500, 2500), true)
                } else {
                    (self.rng.millis(200, 1500), false)
                };
                self.schedule(down, Undo::Restart(slot), slow);
                if slow {
                    self.failover_bound()
                } else {
                    self.lease + Duration::from_secs(2)
                }
            }
            FaultKind::Stop => {
                signal(pid, "STOP");
                let hold = self.lease
                    + GRACE
                    + self
                        .rng
                        .millis(500, 2 * self.lease.as_millis() as u64 + 2500);
                self.schedule(hold, Undo::Cont(slot, pid), true);
                // The successor may come after the SIGCONT (the woken
                // leader's session or Lease has expired by then).
                hold.max(self.failover_bound())
            }
            FaultKind::BlackHole | FaultKind::Latency => {
                let proxy = self.slots[slot].proxy;
                let hold = if kind == FaultKind::BlackHole {
                    self.proxy.command(&format!("fault {proxy} hole"))?;
                    self.lease
                        + GRACE
                        + self
                            .rng
                            .millis(500, 2 * self.lease.as_millis() as u64 + 3000)
                } else {
                    let latency = self.rng.range(200, 1500);
                    self.say(&format!("latency {latency}ms on {id}"));
                    self.proxy
                        .command(&format!("fault {proxy} latency {latency}"))?;
                    self.rng.millis(3000, 6000)
                };
                self.schedule(hold, Undo::Pass(slot), true);
                if kind == FaultKind::BlackHole {
                    hold.max(self.failover_bound())
                } else {
                    hold
                }
            }
            FaultKind::Twin | FaultKind::Server => return Ok(false),
        };
        let took_over = on_leader && self.await_takeover(before, wait)?;
        self.count(kind, on_leader, took_over);
        Ok(true)
    }

    /// A second process with the current Rust leader's explicit id, on its
    /// own proxy, beside the running leader for several leases: it must not
    /// write. Then, half of the time, the leader resigns while the twin runs
    /// (the twin may now win, like any candidate; if it does, the original
    /// must not take the lease back from it), and the twin is stopped.
    fn twin(&mut self) -> Result<bool, String> {
        let Some(slot) = self
            .ready_leader()
            .filter(|&s| self.slots[s].who == Who::Rust)
        else {
            // No Rust leader to twin: a fault on whoever leads instead.
            return self.inject(FaultKind::Kill);
        };
        let id = self.slots[slot].id.clone();
        let port = match self.twin_port {
            Some(port) => port,
            None => {
                let (_, port) = self.proxy.add(&self.upstream)?;
                self.twin_port = Some(port);
                port
            }
        };
        let before = self.term();
        self.note(FaultKind::Twin, &id)?;
        let twin = self.spawn(Who::Rust, &id, port, &format!("{id}-twin"))?;
        let twin_pid = twin.id();
        self.twins.push(twin);
        self.tail.watch(twin_pid);
        self.stats.twin.started += 1;
        let hold = self.lease * u32::try_from(self.rng.range(3, 5)).unwrap_or(3);
        let took_over = self.await_takeover(before, hold)?;
        let twin_wrote = self.tail.watched_writes;
        self.stats.twin.writes_beside_leader += twin_wrote;
        self.stats.twin.takeovers_beside_leader += u64::from(took_over);
        self.count(FaultKind::Twin, true, took_over);
        if twin_wrote > 0 {
            self.say(&format!(
                "twin of {id} (pid {twin_pid}) wrote {twin_wrote} times beside its running leader"
            ));
        }
        let leader_alive = self.ready(slot) && self.leader() == Some(slot);
        if leader_alive && self.rng.range(0, 2) == 0 {
            let before = self.term();
            let leader_pid = self.pid(slot);
            self.note(FaultKind::Resign, &id)?;
            if let Some(pid) = leader_pid {
                signal(pid, "HUP");
            }
            let resigned = self.await_takeover(before, self.lease + Duration::from_secs(2))?;
            self.count(FaultKind::Resign, true, resigned);
            if resigned && self.tail.last_writer == Some(twin_pid) {
                self.stats.twin.won_after_resign += 1;
                self.say(&format!("the twin of {id} won the lease after the resign"));
                // The original (same id, other instance) must wait for the
                // twin's term like anyone else's.
                self.idle(self.lease * 2)?;
                let before = self.term();
                self.note(FaultKind::Term, &format!("{id}-twin"))?;
                signal(twin_pid, "TERM");
                let took = self.await_takeover(before, self.lease + Duration::from_secs(2))?;
                self.count(FaultKind::Term, true, took);
            }
        }
        self.tail.unwatch();
        if let Some(mut twin) = self.twins.pop() {
            signal(twin.id(), "TERM");
            Self::wait_exit(&mut twin, Duration::from_secs(10));
        }
        Ok(true)
    }

    /// Freezes the kube-apiserver or etcd, or restarts the Consul agent.
    fn server(&mut self) -> Result<bool, String> {
        let before = self.term();
        match self.setup.backend {
            Backend::Kubernetes => self.freeze_server("kube-apiserver")?,
            Backend::Consul => self.restart_consul()?,
            Backend::Etcd => self.freeze_server("etcd")?,
        }
        let took_over = self.await_takeover(before, self.lease + Duration::from_secs(2))?;
        self.count(FaultKind::Server, true, took_over);
        Ok(true)
    }
}
