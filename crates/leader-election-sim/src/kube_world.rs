//! The Kubernetes backend: the real `KubernetesLeaseStore` (through
//! `kube::Client` on the simulated apiserver) and, in half of the runs, a
//! client-go-style elector on the same Lease, on a drifting clock of its own
//! and hit by the harness's faults (partitions, pauses, crash and restart).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElectionOptions, Result};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use tokio::time::Instant;

use crate::apiserver::{ApiServer, Connection};
use crate::checker::Checker;
use crate::clientgo::{self, ClientGo, Leading};
use crate::clock::{DriftClock, PauseGate, PPM};
use crate::link::{Cut, Latency, Link};
use crate::rng::Rng;
use crate::world::{Made, World, RESOURCE};

/// Our fencing token of a Lease (`epoch × 2³¹ + leaseTransitions`, see the
/// Kubernetes provider), or the bare transitions of a foreign term.
fn token_of(lease: &k8s_openapi::api::coordination::v1::Lease) -> u64 {
    let transitions = lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
        .max(0) as u64;
    let epoch = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(leader_election_kubernetes::EPOCH_ANNOTATION))
        .and_then(|e| e.parse::<u64>().ok())
        .unwrap_or(0);
    (epoch << 31) + transitions
}

pub(crate) struct KubeWorld {
    server: ApiServer,
    checker: Checker,
    lease: Duration,
    /// How far the client-go model's clock rate may stray from global
    /// time's, in parts per million (0: not at all).
    drift_ppm: u64,
    client_go: bool,
    foreign: Option<Foreign>,
}

impl KubeWorld {
    pub(crate) fn boxed(
        rng: &mut Rng,
        checker: &Checker,
        lease: Duration,
        drift_ppm: u64,
    ) -> Box<dyn World> {
        Box::new(KubeWorld {
            server: ApiServer::new(),
            checker: checker.clone(),
            lease,
            drift_ppm,
            client_go: rng.chance(0.5),
            foreign: None,
        })
    }
}

/// What a client-go process is made of, kept across its crashes and
/// restarts (a restart is the same identity on the same machine: the same
/// link, clock and place in the checker).
#[derive(Clone)]
struct ClientGoProcess {
    server: ApiServer,
    link: Link,
    pause: PauseGate,
    clock: DriftClock,
    origin: Instant,
    timing: clientgo::Timing,
    checker: Checker,
    who: usize,
    leading: Leading,
}

impl ClientGoProcess {
    /// Starts the elector (again), with fresh memory and jitter from `rng`.
    fn spawn(&self, rng: Rng) -> tokio::task::JoinHandle<()> {
        tokio::spawn(clientgo::run(ClientGo {
            server: self.server.clone(),
            link: self.link.clone(),
            name: RESOURCE.to_owned(),
            timing: self.timing,
            rng,
            checker: self.checker.clone(),
            who: self.who,
            leading: self.leading.clone(),
            clock: self.clock.clone(),
            origin: self.origin,
        }))
    }
}

/// The running client-go process and the task that hits it with faults.
struct Foreign {
    process: ClientGoProcess,
    /// The elector's task; `None` while crashed.
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Where restarts after the heal draw their jitter.
    rng: Rng,
    faults: tokio::task::JoinHandle<()>,
}

/// Hits the client-go process with the harness's faults, one at a time,
/// until aborted (at the heal): partitions (one-way too, black-holed or
/// refused), pauses (some longer than the lease) and crashes followed by a
/// restart under the same identity.
async fn client_go_faults(
    process: ClientGoProcess,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    mut rng: Rng,
    lease: Duration,
) {
    let name = clientgo::IDENTITY;
    loop {
        tokio::time::sleep(rng.duration(Duration::ZERO, lease * 2)).await;
        match rng.between(0, 4) {
            0 | 1 => {
                let cut = if rng.chance(0.7) {
                    Cut::BlackHole
                } else {
                    Cut::Refused
                };
                let (up, down) = match rng.between(0, 2) {
                    0 => (Some(cut), None),
                    1 => (None, Some(cut)),
                    _ => (Some(cut), Some(cut)),
                };
                process
                    .checker
                    .note(format!("{name} partition up={up:?} down={down:?}"));
                process.link.set_cut(up, down);
                tokio::time::sleep(rng.duration(Duration::from_millis(1), lease * 2)).await;
                process.link.set_cut(None, None);
                process.checker.note(format!("{name} heal"));
            }
            2 => {
                process.checker.note(format!("{name} pause"));
                process.pause.set(true);
                tokio::time::sleep(rng.duration(Duration::from_millis(1), lease * 2)).await;
                process.pause.set(false);
                process.checker.note(format!("{name} resume"));
            }
            3 => {
                // Paused longer than the lease, then resumed.
                process.checker.note(format!("{name} long pause"));
                process.pause.set(true);
                tokio::time::sleep(lease + rng.duration(Duration::ZERO, lease * 2)).await;
                process.pause.set(false);
                process.checker.note(format!("{name} resume"));
            }
            _ => {
                // Killed without a release, restarted later as the same id.
                if let Some(running) = task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    running.abort();
                }
                process.leading.crashed();
                process.checker.note(format!("{name} crash"));
                tokio::time::sleep(rng.duration(Duration::from_millis(1), lease * 2)).await;
                process.checker.note(format!("{name} restart"));
                let restarted = process.spawn(rng.fork());
                *task.lock().unwrap_or_else(|p| p.into_inner()) = Some(restarted);
            }
        }
    }
}

impl World for KubeWorld {
    fn election(
        &mut self,
        id: &str,
        options: LeaderElectionOptions,
        clock: Arc<dyn Clock>,
        link: Link,
    ) -> Result<Made> {
        let client = kube::Client::new(Connection::new(self.server.clone(), link), "default");
        // The store times its own things (observed-time expiry, request
        // and watch timeouts) on the candidate's clock too.
        let factory =
            KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)?
                .with_clock(clock.clone());
        Made::from_factory(&factory, id, clock)
    }

    fn start_foreign(&mut self, rng: &mut Rng) {
        if !self.client_go {
            return;
        }
        let seconds = self.lease.as_secs().max(1);
        let lease = Duration::from_secs(seconds);
        // client-go's usual proportions (15 s / 10 s / 2 s).
        let timing = clientgo::Timing {
            lease_seconds: seconds,
            renew_deadline: lease * 2 / 3,
            retry_period: lease / 8,
        };
        let latency = Latency {
            min: Duration::from_millis(1),
            max: Duration::from_millis(20),
            duplicate: 0.0,
        };
        let pause = PauseGate::default();
        let link = Link::new(rng.fork(), latency, pause.clone());
        let mut own = rng.fork();
        let mut faults = own.fork();
        let mut restarts = own.fork();
        let rate = faults.between(PPM - self.drift_ppm, PPM + self.drift_ppm);
        let clock = DriftClock::new(rate, pause.clone());
        let origin = clock.now();
        let leading = Leading::default();
        let probe = leading.clone();
        let probe_clock = clock.clone();
        let who = self.checker.register(
            clientgo::IDENTITY,
            Arc::new(move || probe.now(&probe_clock, origin)),
            false,
        );
        self.checker.note(format!(
            "{} start rate={rate}ppm {timing:?}",
            clientgo::IDENTITY
        ));
        let process = ClientGoProcess {
            server: self.server.clone(),
            link,
            pause,
            clock,
            origin,
            timing,
            checker: self.checker.clone(),
            who,
            leading,
        };
        let task = Arc::new(Mutex::new(Some(process.spawn(own))));
        let faults = tokio::spawn(client_go_faults(
            process.clone(),
            task.clone(),
            faults.fork(),
            self.lease,
        ));
        self.foreign = Some(Foreign {
            process,
            task,
            rng: restarts.fork(),
            faults,
        });
    }

    fn heal(&mut self) {
        let Some(foreign) = self.foreign.as_mut() else {
            return;
        };
        foreign.faults.abort();
        foreign.process.link.set_cut(None, None);
        foreign.process.pause.set(false);
        let mut task = foreign.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            self.checker.note(format!("{} restart", clientgo::IDENTITY));
            *task = Some(foreign.process.spawn(foreign.rng.fork()));
        }
    }

    fn stop_foreign(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async move {
            if let Some(foreign) = self.foreign.take() {
                foreign.faults.abort();
                let _ = foreign.faults.await;
                let running = foreign
                    .task
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(task) = running {
                    task.abort();
                    let _ = task.await;
                }
                self.checker.note(format!("{} stop", clientgo::IDENTITY));
            }
        })
    }

    fn operator_fault(&mut self, rng: &mut Rng) {
        match rng.between(0, 2) {
            0 => {
                let lease = self.server.get(RESOURCE);
                let token = lease.as_ref().map(token_of);
                self.checker
                    .note(format!("operator deletes the Lease (token {token:?})"));
                self.checker
                    .revoke_through(token, lease.and_then(|l| l.metadata.uid));
                self.server.delete(RESOURCE);
            }
            1 => {
                self.checker
                    .note("apiserver compacts history and ends watches (410 on resume)");
                self.server.compact();
            }
            _ => {
                self.checker.note("apiserver ends every watch");
                self.server.end_watches();
            }
        }
    }

    fn extra_liveness(&self) -> Duration {
        // Followers date a record from when they first see it, which a
        // re-listed watch can learn up to a second late; leases are whole
        // seconds already.
        Duration::from_secs(1)
    }
}
