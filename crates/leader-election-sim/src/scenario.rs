//! One seeded run: candidates (processes) contend for one resource while a
//! schedule of faults drawn from the seed hits them; then every fault heals
//! and a healthy candidate must lead in time; then everything stops.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::{Clock, HealthBasedLeaderElection, LeaderElectionOptions};
use tokio::time::Instant;

use crate::checker::Checker;
use crate::clock::{DriftClock, PauseGate, PPM};
use crate::link::{Cut, Latency, Link};
use crate::rng::Rng;
use crate::world::{self, World};

/// Which backend model a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The real in-memory store behind simulated links.
    Memory,
    /// The real Kubernetes store on a simulated apiserver, with a
    /// client-go-style elector as a foreign participant.
    Kubernetes,
    /// The real Consul store on a simulated Consul cluster (sessions,
    /// lock-delay, early invalidation, blocking queries).
    Consul,
    /// The real etcd store on a simulated etcd cluster (leases, revisions,
    /// transactions, watches, compaction, leader changes).
    Etcd,
}

impl Backend {
    /// Every backend model.
    pub const ALL: [Backend; 4] = [
        Backend::Memory,
        Backend::Kubernetes,
        Backend::Consul,
        Backend::Etcd,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Kubernetes => "kubernetes",
            Backend::Consul => "consul",
            Backend::Etcd => "etcd",
        }
    }

    /// The backend called `name`.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// How far candidates' clock rates may differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Every clock runs at global time's rate.
    None,
    /// Within the contract's bound: rates in `[1 − ε, 1 + ε]` with
    /// `(1 + ε) / (1 − ε) < (lease + grace) / lease`.
    Within,
    /// One candidate's clock runs slower than the bound allows (to show
    /// where the contract stops).
    Beyond,
}

/// What one seed runs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The seed: every choice of the run derives from it.
    pub seed: u64,
    /// The backend model.
    pub backend: Backend,
    /// The clock-rate regime.
    pub drift: Drift,
}

/// What one seed came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The run's configuration.
    pub config: Config,
    /// Every violation found (empty: the seed passed).
    pub violations: Vec<String>,
    /// The whole trace: faults, terms, violations, on simulated time.
    pub trace: Vec<String>,
    /// How many terms began.
    pub terms: usize,
}

impl Outcome {
    /// Whether the run found no violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one seed on a fresh single-threaded runtime with paused (virtual)
/// time, so the run is the same every time.
pub fn run(config: Config) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Outcome {
                config,
                violations: vec![format!("cannot build a runtime: {error}")],
                trace: Vec::new(),
                terms: 0,
            }
        }
    };
    leader_election_abstractions::seed_thread_jitter(Some(config.seed ^ 0x5eed_0f11_77e4));
    let outcome = runtime.block_on(async move {
        // Paused time starts a little (real time) after the timer's origin;
        // one sleep puts "now" on the timer's millisecond grid, so that
        // rounding of every later deadline is the same in every run.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Scenario::new(config).run().await
    });
    leader_election_abstractions::seed_thread_jitter(None);
    // Dropping the runtime drops tasks still parked on black-holed calls.
    drop(runtime);
    outcome
}

/// The timing a run uses.
#[derive(Clone, Copy, Debug)]
struct Timing {
    lease: Duration,
    renew: Duration,
    retry: Duration,
    grace: Duration,
}

impl Timing {
    fn draw(rng: &mut Rng, backend: Backend) -> Self {
        match backend {
            Backend::Consul if rng.chance(0.25) => {
                // Leases past Consul's 60 s lock-delay cap: the term limit
                // is then 60 s − grace, shorter than the lease.
                let lease = Duration::from_secs(rng.between(60, 120));
                let grace = Duration::from_millis(rng.between(2_000, 15_000));
                let limit = Duration::from_secs(60) - grace;
                Timing {
                    lease,
                    renew: limit / rng.between(3, 5) as u32,
                    retry: Duration::from_millis(rng.between(2_000, 10_000)),
                    grace,
                }
            }
            Backend::Memory | Backend::Consul | Backend::Etcd => {
                let lease = Duration::from_millis(rng.between(2, 12) * 1000);
                Timing {
                    lease,
                    renew: lease / rng.between(3, 5) as u32,
                    retry: lease / rng.between(3, 8) as u32,
                    grace: lease / rng.between(3, 6) as u32,
                }
            }
            Backend::Kubernetes => {
                // Whole-second leases; renewals often under a second, like
                // the integration suite's cut-off test and the chaos harness.
                let lease = Duration::from_secs(rng.between(2, 6));
                let renew = if rng.chance(0.5) {
                    Duration::from_millis(rng.between(200, 600))
                } else {
                    (lease - Duration::from_secs(1)) / 2
                };
                let retry = Duration::from_millis(rng.between(250, 1000));
                let grace = Duration::from_millis(rng.between(500, 1500));
                // The store refuses a renewal that does not fall due inside
                // its term limit, (lease - 1 s) × lease / (lease + grace).
                // At most half of it, two renewals per term, so that a
                // renewal has room for the drawn latency and a clock at the
                // edge of the drift bound: with 0.6 of it (the most the
                // draws above gave against the lease - 1 s of before), about
                // 1 seed in 1 500 broke C3's liveness bound, the leader's
                // renewals landing past its deadline with the network healed.
                let limit = (lease - Duration::from_secs(1))
                    .mul_f64(lease.as_secs_f64() / (lease + grace).as_secs_f64());
                Timing {
                    lease,
                    renew: renew.min(limit.mul_f64(0.5)),
                    retry,
                    grace,
                }
            }
        }
    }

    /// ε of [`Drift::Within`]: `(1 + ε) / (1 − ε) = (lease + grace) / lease`.
    fn drift_bound_ppm(&self) -> u64 {
        let (l, g) = (self.lease.as_secs_f64(), self.grace.as_secs_f64());
        (g / (2.0 * l + g) * PPM as f64) as u64
    }
}

/// One simulated process: an election with its clock, link and pause gate.
struct Proc {
    id: String,
    name: String,
    election: Arc<dyn HealthBasedLeaderElection>,
    crash: Box<dyn Fn() + Send + Sync>,
    link: Link,
    pause: PauseGate,
    who: usize,
    recorder: tokio::task::JoinHandle<()>,
}

/// A fault's undoing, due at an instant.
enum Restore {
    Heal(usize),
    Resume(usize),
    Restart(String),
    Healthy(usize),
    StopTwin(String),
    Calm(usize),
}

struct Scenario {
    config: Config,
    rng: Rng,
    checker: Checker,
    timing: Timing,
    world: Box<dyn World>,
    procs: Vec<Proc>,
    incarnations: usize,
    pending: Vec<(Instant, Restore)>,
    latency: Latency,
    /// The longest one-way delay any link had: messages sent before the
    /// heal may still be in flight that long.
    slowest: Duration,
}

impl Scenario {
    fn new(config: Config) -> Self {
        let mut rng = Rng::new(config.seed);
        let timing = Timing::draw(&mut rng, config.backend);
        let checker = Checker::new();
        let options = LeaderElectionOptions {
            lease_duration: timing.lease,
            renew_interval: timing.renew,
            retry_interval: timing.retry,
            grace_period: timing.grace,
            ..LeaderElectionOptions::default()
        };
        // Foreign participants (client-go) run on clocks within the bound.
        let foreign_drift = match config.drift {
            Drift::None => 0,
            Drift::Within | Drift::Beyond => timing.drift_bound_ppm() * 9 / 10,
        };
        let world = world::make(config.backend, &mut rng, &checker, &options, foreign_drift);
        let latency = Latency {
            min: Duration::from_millis(1),
            max: Duration::from_millis(rng.between(2, 60)),
            duplicate: if rng.chance(0.3) { 0.05 } else { 0.0 },
        };
        Self {
            config,
            rng,
            checker,
            timing,
            world,
            procs: Vec::new(),
            incarnations: 0,
            pending: Vec::new(),
            latency,
            slowest: latency.max,
        }
    }

    fn options(&self, id: &str) -> LeaderElectionOptions {
        LeaderElectionOptions {
            lease_duration: self.timing.lease,
            renew_interval: self.timing.renew,
            retry_interval: self.timing.retry,
            grace_period: self.timing.grace,
            instance_id: id.to_owned(),
            ..LeaderElectionOptions::default()
        }
    }

    fn rate_ppm(&mut self, slow: bool) -> u64 {
        if self.config.drift == Drift::None {
            return PPM;
        }
        let bound = self.timing.drift_bound_ppm();
        if slow {
            // Beyond the bound: slower than 1 − 2ε.
            let low = PPM.saturating_sub(bound * 5).max(PPM / 2);
            return self.rng.between(low, PPM - bound * 2);
        }
        let within = bound * 9 / 10;
        self.rng.between(PPM - within, PPM + within)
    }

    /// Starts a process running an election with `id`.
    async fn spawn(&mut self, id: &str, twin: bool) -> bool {
        let slow = self.config.drift == Drift::Beyond && self.rng.chance(0.5);
        let rate = self.rate_ppm(slow);
        let pause = PauseGate::default();
        let clock: Arc<dyn Clock> = Arc::new(DriftClock::new(rate, pause.clone()));
        let link = Link::new(self.rng.fork(), self.latency, pause.clone());
        self.incarnations += 1;
        let name = format!("{id}#{}", self.incarnations);
        let options = self.options(id);
        let made = match self.world.election(id, options, clock, link.clone()) {
            Ok(made) => made,
            Err(error) => {
                self.checker
                    .violation(format!("{name} could not be created: {error}"));
                return false;
            }
        };
        let probe = Arc::clone(&made.election);
        let who = self
            .checker
            .register(&name, Arc::new(move || probe.is_leader()), true);
        let mut events = made.election.subscribe();
        let checker = self.checker.clone();
        let recorder = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                checker.event(who, &event);
            }
        });
        self.checker
            .note(format!("{name} start rate={rate}ppm twin={twin}"));
        if let Err(error) = made.election.start().await {
            self.checker
                .violation(format!("{name} start failed: {error}"));
        }
        self.procs.push(Proc {
            id: id.to_owned(),
            name,
            election: made.election,
            crash: made.crash,
            link,
            pause,
            who,
            recorder,
        });
        true
    }

    fn proc_index(&self, name: &str) -> Option<usize> {
        self.procs.iter().position(|p| p.name == name)
    }

    /// Stops process `index` gracefully and waits for its last events.
    async fn stop(&mut self, index: usize) {
        let proc = self.procs.remove(index);
        self.checker.note(format!("{} stop", proc.name));
        // A paused process cannot stop; let it run again first.
        proc.pause.set(false);
        if let Err(error) = proc.election.stop().await {
            self.checker
                .violation(format!("{} stop failed: {error}", proc.name));
        }
        let _ = proc.recorder.await;
        self.checker.closed(proc.who, false);
    }

    fn crash(&mut self, index: usize) -> String {
        let proc = self.procs.remove(index);
        self.checker.note(format!("{} crash", proc.name));
        (proc.crash)();
        proc.recorder.abort();
        proc.id
    }

    async fn run(mut self) -> Outcome {
        let _log = crate::log::attach(&self.checker);
        let t = self.timing;
        self.checker.note(format!(
            "seed={} backend={} drift={:?} lease={:?} renew={:?} retry={:?} grace={:?} latency={:?}..{:?} duplicate={}",
            self.config.seed,
            self.config.backend.name(),
            self.config.drift,
            t.lease,
            t.renew,
            t.retry,
            t.grace,
            self.latency.min,
            self.latency.max,
            self.latency.duplicate,
        ));
        let count = self.rng.between(2, 4);
        for i in 0..count {
            self.spawn(&format!("c{i}"), false).await;
        }
        self.world.start_foreign(&mut self.rng);
        let faults_until = Instant::now() + t.lease * self.rng.between(6, 16) as u32;
        let mut next_fault = Instant::now() + self.rng.duration(Duration::ZERO, t.lease);
        while next_fault < faults_until {
            let due = self
                .pending
                .iter()
                .map(|(at, _)| *at)
                .min()
                .filter(|at| *at <= next_fault);
            match due {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    self.restore_due(at).await;
                }
                None => {
                    tokio::time::sleep_until(next_fault).await;
                    self.fault().await;
                    next_fault = Instant::now() + self.rng.duration(Duration::ZERO, t.lease);
                }
            }
        }
        // Heal everything at once.
        let all: Vec<(Instant, Restore)> = std::mem::take(&mut self.pending);
        for (_, restore) in all {
            self.restore(restore).await;
        }
        self.latency.duplicate = 0.0;
        for proc in &self.procs {
            proc.link.set_cut(None, None);
            proc.link.set_delay(self.latency.min, self.latency.max);
            proc.link.set_duplicate(0.0);
            proc.pause.set(false);
            let _ = proc.election.update_health(true, None).await;
        }
        self.world.heal();
        // Requests and answers sent before the heal land within two of the
        // slowest one-way delays; the faults have healed once they did.
        tokio::time::sleep(self.slowest * 2).await;
        self.checker.note("healed");
        // Liveness: lease + grace + one round trip, plus the wait for a
        // watch broken by the faults to be re-opened (the retry interval,
        // jittered by up to 20 %) and the follower's own small jitter.
        let bound = t.lease
            + t.grace
            + 2 * self.latency.max
            + t.retry.mul_f64(1.2)
            + t.retry / 50
            + self.world.extra_liveness();
        tokio::time::sleep(bound).await;
        if !self.checker.anyone_leads() {
            self.checker.violation(format!(
                "C3 liveness: nobody leads {bound:?} after the faults healed"
            ));
        }
        self.world.stop_foreign().await;
        while !self.procs.is_empty() {
            self.stop(0).await;
        }
        Outcome {
            config: self.config,
            violations: self.checker.violations(),
            trace: self.checker.trace(),
            terms: self.checker.terms(),
        }
    }

    async fn restore_due(&mut self, at: Instant) {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(when, _)| *when <= at);
        self.pending = rest;
        for (_, restore) in due {
            self.restore(restore).await;
        }
    }

    fn later(&mut self, max: Duration, restore: Restore) {
        let at = Instant::now() + self.rng.duration(Duration::from_millis(1), max);
        self.pending.push((at, restore));
    }

    async fn restore(&mut self, restore: Restore) {
        match restore {
            Restore::Heal(who)
            | Restore::Resume(who)
            | Restore::Healthy(who)
            | Restore::Calm(who) => {
                let Some(proc) = self.procs.iter().find(|p| p.who == who) else {
                    return;
                };
                let name = proc.name.clone();
                match restore {
                    Restore::Heal(_) => proc.link.set_cut(None, None),
                    Restore::Resume(_) => proc.pause.set(false),
                    Restore::Healthy(_) => {
                        let _ = proc.election.update_health(true, None).await;
                    }
                    _ => proc.link.set_delay(self.latency.min, self.latency.max),
                }
                let what = match restore {
                    Restore::Heal(_) => "heal",
                    Restore::Resume(_) => "resume",
                    Restore::Healthy(_) => "healthy",
                    _ => "calm",
                };
                self.checker.note(format!("{name} {what}"));
            }
            Restore::Restart(id) => {
                self.spawn(&id, false).await;
            }
            Restore::StopTwin(name) => {
                if let Some(index) = self.proc_index(&name) {
                    self.stop(index).await;
                }
            }
        }
    }

    /// Picks a target, preferring the leader (faults mostly hit the leader).
    fn target(&mut self) -> Option<usize> {
        if self.procs.is_empty() {
            return None;
        }
        let leader = self.procs.iter().position(|p| p.election.is_leader());
        match leader {
            Some(index) if self.rng.chance(0.7) => Some(index),
            _ => Some(self.rng.index(self.procs.len())),
        }
    }

    /// A brownout of process `index`'s network, with the health flap that
    /// comes with it when the process's health check shares that network:
    /// for a short spell (half a renewal interval to two) every message
    /// the process sends or is answered takes up to a quarter of a lease to
    /// a whole lease each way, its health turns bad at once and good again
    /// a little after the spell. A message keeps the delay it was given
    /// when sent, so the calls made during the spell (a release as the
    /// unhealthy leader steps down, a blocking query) land long after the
    /// caller gave up on them, while the calls made after it (a renewed
    /// attempt to lead, with the same session) are fast again and overtake
    /// them.
    async fn brownout(&mut self, index: usize) {
        let (lease, renew) = (self.timing.lease, self.timing.renew);
        let who = self.procs[index].who;
        let name = self.procs[index].name.clone();
        let max = self.rng.duration(lease / 4, lease);
        let spell = self.rng.duration(renew / 2, renew * 2);
        let flap = spell + self.rng.duration(Duration::ZERO, renew);
        self.checker.note(format!(
            "{name} brownout: slow network up to {max:?} for {spell:?}, unhealthy for {flap:?}"
        ));
        self.procs[index].link.set_delay(self.latency.min, max);
        self.slowest = self.slowest.max(max);
        let _ = self.procs[index].election.update_health(false, None).await;
        let now = Instant::now();
        self.pending.push((now + spell, Restore::Calm(who)));
        self.pending.push((now + flap, Restore::Healthy(who)));
    }

    async fn fault(&mut self) {
        let lease = self.timing.lease;
        let Some(index) = self.target() else {
            return;
        };
        let who = self.procs[index].who;
        let name = self.procs[index].name.clone();
        // The brownout (kind 11) is drawn on Consul only for now: a new
        // kind in the other backends' draws would change every one of their
        // seeds, and the seeds kept as regression tests with them.
        let kinds = if self.config.backend == Backend::Consul {
            11
        } else {
            10
        };
        match self.rng.between(0, kinds) {
            0 | 1 => {
                let cut = if self.rng.chance(0.7) {
                    Cut::BlackHole
                } else {
                    Cut::Refused
                };
                let (up, down) = match self.rng.between(0, 2) {
                    0 => (Some(cut), None),
                    1 => (None, Some(cut)),
                    _ => (Some(cut), Some(cut)),
                };
                self.checker
                    .note(format!("{name} partition up={up:?} down={down:?}"));
                self.procs[index].link.set_cut(up, down);
                self.later(lease * 2, Restore::Heal(who));
            }
            2 => {
                self.checker.note(format!("{name} pause"));
                self.procs[index].pause.set(true);
                self.later(lease * 2, Restore::Resume(who));
            }
            3 => {
                let id = self.crash(index);
                self.later(lease * 2, Restore::Restart(id));
            }
            4 => {
                let id = self.procs[index].id.clone();
                self.stop(index).await;
                self.later(lease, Restore::Restart(id));
            }
            5 => {
                self.checker.note(format!("{name} resign"));
                let election = Arc::clone(&self.procs[index].election);
                // Resign concurrently with whatever the engine is doing.
                tokio::spawn(async move {
                    let _ = election.resign().await;
                });
            }
            6 => {
                self.checker.note(format!("{name} unhealthy"));
                let _ = self.procs[index].election.update_health(false, None).await;
                self.later(lease * 2, Restore::Healthy(who));
            }
            7 => {
                let id = self.procs[index].id.clone();
                if self.procs.iter().filter(|p| p.id == id).count() < 2 {
                    self.spawn(&id, true).await;
                    let twin = self.procs[self.procs.len() - 1].name.clone();
                    self.later(lease * 3, Restore::StopTwin(twin));
                }
            }
            8 => {
                let max = self.rng.duration(lease / 10, lease);
                self.checker
                    .note(format!("{name} slow network up to {max:?}"));
                self.procs[index].link.set_delay(self.latency.min, max);
                self.slowest = self.slowest.max(max);
                self.later(lease * 2, Restore::Calm(who));
            }
            9 => self.world.operator_fault(&mut self.rng),
            11 => self.brownout(index).await,
            _ => {
                // A process paused longer than the lease, then resumed.
                self.checker.note(format!("{name} long pause"));
                self.procs[index].pause.set(true);
                let at = Instant::now() + lease + self.rng.duration(Duration::ZERO, lease * 2);
                self.pending.push((at, Restore::Resume(who)));
            }
        }
    }
}
