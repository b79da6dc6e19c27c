//! The Kubernetes backend: the real `KubernetesLeaseStore` (through
//! `kube::Client` on the simulated apiserver) and, in half of the runs, a
//! client-go-style elector on the same Lease.

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElectionOptions, Result};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use tokio::time::Instant;

use crate::apiserver::{ApiServer, Connection};
use crate::checker::Checker;
use crate::clientgo::{self, ClientGo, Leading};
use crate::clock::PauseGate;
use crate::link::{Latency, Link};
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
    client_go: bool,
    foreign: Option<(tokio::task::JoinHandle<()>, Leading)>,
}

impl KubeWorld {
    pub(crate) fn boxed(rng: &mut Rng, checker: &Checker, lease: Duration) -> Box<dyn World> {
        Box::new(KubeWorld {
            server: ApiServer::new(),
            checker: checker.clone(),
            lease,
            client_go: rng.chance(0.5),
            foreign: None,
        })
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
        let factory =
            KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)?;
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
        let link = Link::new(rng.fork(), latency, PauseGate::default());
        let leading = Leading::default();
        let origin = Instant::now();
        let probe = leading.clone();
        let who = self.checker.register(
            clientgo::IDENTITY,
            Arc::new(move || probe.now(origin)),
            false,
        );
        self.checker
            .note(format!("{} start {timing:?}", clientgo::IDENTITY));
        let model = ClientGo {
            server: self.server.clone(),
            link,
            name: RESOURCE.to_owned(),
            timing,
            rng: rng.fork(),
            checker: self.checker.clone(),
            who,
            leading: leading.clone(),
            origin,
        };
        self.foreign = Some((tokio::spawn(clientgo::run(model)), leading));
    }

    fn stop_foreign(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async move {
            if let Some((task, _)) = self.foreign.take() {
                task.abort();
                let _ = task.await;
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
