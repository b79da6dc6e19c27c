//! The whole conformance suite against the in-memory store, in virtual time.

use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::{LeaderElectionOptions, Result, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore, StoreFault};
use leader_election_testkit::{Candidate, NetworkFault, Provider};

/// Candidates over one shared in-memory store.
struct InMemoryProvider {
    store: InMemoryStore,
}

impl InMemoryProvider {
    fn new() -> Self {
        Self {
            store: InMemoryStore::new(),
        }
    }
}

#[async_trait]
impl Provider for InMemoryProvider {
    fn name(&self) -> &str {
        "in-memory"
    }

    fn options(&self) -> LeaderElectionOptions {
        // Short real-time leases keep the one real-time case (a starved
        // runtime) quick; every other case runs in virtual time.
        leader_election_testkit::timing_options(
            Duration::from_secs(3),
            Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_secs(1),
        )
    }

    fn virtual_time(&self) -> bool {
        true
    }

    fn round_trip(&self) -> Duration {
        Duration::from_millis(50)
    }

    async fn candidate(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<Candidate> {
        let factory = InMemoryLeaderElectionFactory::new(self.store.clone(), options)?;
        let election = factory
            .election(resource)
            .candidate_id(candidate_id)
            .health_based()
            .build()?;
        let (store, id) = (self.store.clone(), candidate_id.to_owned());
        Ok(Candidate::from_election(election, move |fault| {
            let fault = fault.map(|f| match f {
                NetworkFault::BlackHole => StoreFault::Hang,
                _ => StoreFault::Unavailable,
            });
            store.set_fault(&id, fault);
        }))
    }
}

leader_election_testkit::conformance_suite!(
    #[tokio::test(start_paused = true)]
    provider = InMemoryProvider::new()
);
