//! The backends a run can use, behind one interface: how a process's
//! election is made, what an operator can do to the backend, and any
//! foreign participant.

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{
    Clock, Election, HealthBasedLeaderElection, LeaderElectionOptions, LeaseStore, Result,
    StoreFactory,
};
use leader_election_inmemory::InMemoryStore;

use crate::checker::Checker;
use crate::link::Link;
use crate::memory::LinkedMemoryStore;
use crate::rng::Rng;
use crate::scenario::Backend;

/// The contested resource.
pub(crate) const RESOURCE: &str = "sim-lock";

/// A process's election and the way to crash it.
pub(crate) struct Made {
    pub(crate) election: Arc<dyn HealthBasedLeaderElection>,
    pub(crate) crash: Box<dyn Fn() + Send + Sync>,
}

impl Made {
    /// `election`, crashed by aborting its engine without a release.
    pub(crate) fn crashable<S: LeaseStore>(election: Election<S>) -> Self {
        let crashing = election.clone();
        Made {
            election: Arc::new(election),
            crash: Box::new(move || crashing.abort_without_release()),
        }
    }

    /// A health-based election of [`RESOURCE`] from `factory`, as `id`, on
    /// `clock`.
    pub(crate) fn from_factory<F: StoreFactory>(
        factory: &F,
        id: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let election = factory
            .election(RESOURCE)
            .candidate_id(id)
            .health_based()
            .clock(clock)
            .build()?;
        Ok(Self::crashable(election))
    }
}

/// A backend model.
pub(crate) trait World {
    /// An election of [`RESOURCE`] by `id` running on `clock`, talking to
    /// the backend over `link`; not started.
    fn election(
        &mut self,
        id: &str,
        options: LeaderElectionOptions,
        clock: Arc<dyn Clock>,
        link: Link,
    ) -> Result<Made>;

    /// Starts foreign participants, if the backend has any.
    fn start_foreign(&mut self, _rng: &mut Rng) {}

    /// Stops foreign participants.
    fn stop_foreign(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async {})
    }

    /// Something an operator or the backend itself does (delete the lease…).
    fn operator_fault(&mut self, rng: &mut Rng);

    /// Ends backend-side faults.
    fn heal(&mut self) {}

    /// Time the backend adds to the liveness bound.
    fn extra_liveness(&self) -> Duration {
        Duration::ZERO
    }
}

/// Makes the world of a backend; foreign participants' clock rates stray
/// from global time's by at most `drift_ppm` parts per million.
pub(crate) fn make(
    backend: Backend,
    rng: &mut Rng,
    checker: &Checker,
    options: &LeaderElectionOptions,
    drift_ppm: u64,
) -> Box<dyn World> {
    match backend {
        Backend::Memory => Box::new(MemoryWorld {
            store: InMemoryStore::new(),
            checker: checker.clone(),
        }),
        Backend::Kubernetes => {
            crate::kube_world::KubeWorld::boxed(rng, checker, options.lease_duration, drift_ppm)
        }
        Backend::Consul => crate::consul_world::ConsulWorld::boxed(rng, checker, options),
        Backend::Etcd => crate::etcd_world::EtcdWorld::boxed(rng, checker),
    }
}

/// The in-memory backend: the real `InMemoryStore`.
struct MemoryWorld {
    store: InMemoryStore,
    checker: Checker,
}

impl World for MemoryWorld {
    fn election(
        &mut self,
        id: &str,
        options: LeaderElectionOptions,
        clock: Arc<dyn Clock>,
        link: Link,
    ) -> Result<Made> {
        let inner = self.store.for_election(RESOURCE, id, options.grace_period);
        let store = LinkedMemoryStore::new(inner, link);
        let election =
            Election::new(store, RESOURCE, Some(id), options, true)?.with_clock(clock)?;
        Ok(Made::crashable(election))
    }

    fn operator_fault(&mut self, _rng: &mut Rng) {
        let deleted = self.store.delete_lease(RESOURCE);
        self.checker
            .note(format!("operator deletes the lease (token {deleted:?})"));
        self.checker.revoke_through(deleted.map(|t| t.0), None);
    }
}
