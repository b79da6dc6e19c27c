//! The whole conformance suite against the in-memory store, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, Result};
use leader_election_inmemory::{
    InMemoryLeaderElectionFactory, InMemoryLeaseStore, InMemoryStore, StoreFault,
};
use leader_election_testkit::{Candidate, CandidateControl, NetworkFault, Provider};

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

struct Control {
    election: Election<InMemoryLeaseStore>,
    store: InMemoryStore,
}

impl CandidateControl for Control {
    fn crash(&self) {
        self.election.abort_without_release();
    }

    fn set_network_fault(&self, fault: Option<NetworkFault>) {
        let fault = fault.map(|f| match f {
            NetworkFault::BlackHole => StoreFault::Hang,
            _ => StoreFault::Unavailable,
        });
        self.store.set_fault(self.election.candidate_id(), fault);
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
        LeaderElectionOptions::builder()
            .lease_duration(Duration::from_secs(3))
            .renew_interval(Duration::from_secs(1))
            .retry_interval(Duration::from_millis(500))
            .grace_period(Duration::from_secs(1))
            .instance_id("conformance")
            .build()
            .expect("default options are valid")
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
        let election = factory.election(resource, Some(candidate_id), true)?;
        Ok(Candidate {
            election: Arc::new(election.clone()),
            control: Arc::new(Control {
                election,
                store: self.store.clone(),
            }),
        })
    }
}

leader_election_testkit::conformance_suite!(
    #[tokio::test(start_paused = true)]
    provider = InMemoryProvider::new()
);
