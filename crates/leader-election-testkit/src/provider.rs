//! What a provider gives the conformance suite: a way to make candidates, and
//! per-candidate controls to crash them or cut their network.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::{
    Election, HealthBasedLeaderElection, LeaderElectionOptions, LeaseStore, Result,
};

use crate::proxy::{Fault, FaultHandle};

/// A network problem between one candidate and its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkFault {
    /// Calls fail at once (connection refused or reset).
    Unavailable,
    /// Calls hang: packets are dropped without an answer.
    BlackHole,
}

/// Test-only powers over one candidate.
pub trait CandidateControl: Send + Sync {
    /// Kills the candidate as a crashed process would die: no release, no
    /// withdrawal, no further backend traffic.
    fn crash(&self);
    /// Injects a network fault between this candidate and the backend, or
    /// lifts it with `None`.
    fn set_network_fault(&self, fault: Option<NetworkFault>);
}

/// One candidate made by a [`Provider`]: its election and its controls.
pub struct Candidate {
    /// The election under test (health-based, so every contract item applies).
    pub election: Arc<dyn HealthBasedLeaderElection>,
    /// Crash and network controls.
    pub control: Arc<dyn CandidateControl>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("candidate_id", &self.election.candidate_id())
            .field("is_leader", &self.election.is_leader())
            .finish()
    }
}

impl Candidate {
    /// A candidate over the shared engine. `network` injects or lifts a
    /// network fault; a crash aborts the engine without releasing anything
    /// and cuts the network, since a dead process sends nothing.
    pub fn from_election<S, N>(election: Election<S>, network: N) -> Self
    where
        S: LeaseStore,
        N: Fn(Option<NetworkFault>) + Send + Sync + 'static,
    {
        Self {
            election: Arc::new(election.clone()),
            control: Arc::new(EngineControl { election, network }),
        }
    }

    /// A candidate whose backend traffic goes through a [`FaultProxy`](crate::FaultProxy):
    /// a black hole drops packets, anything else resets connections.
    pub fn behind_proxy<S: LeaseStore>(election: Election<S>, proxy: FaultHandle) -> Self {
        Self::from_election(election, move |fault| {
            proxy.set_fault(match fault {
                None => Fault::PassThrough,
                Some(NetworkFault::BlackHole) => Fault::BlackHole,
                Some(_) => Fault::Reset,
            });
        })
    }

    /// The candidate's id.
    pub fn id(&self) -> &str {
        self.election.candidate_id()
    }

    /// Whether it leads now.
    pub fn is_leader(&self) -> bool {
        self.election.is_leader()
    }
}

/// How the conformance suite makes candidates of one provider: the "make N
/// candidates for resource R" builder every contract function is generic over.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for messages (`in-memory`, `consul`, `kubernetes`).
    fn name(&self) -> &str;

    /// The options the suite starts from: timing that suits the backend
    /// (whole seconds for Kubernetes, Consul's session TTL bounds, ...).
    fn options(&self) -> LeaderElectionOptions;

    /// True when tests run in Tokio's paused clock; then the suite asserts
    /// timing bounds. In real time it prints measured times instead.
    fn virtual_time(&self) -> bool;

    /// A typical backend round trip, used as the slack in timing bounds.
    fn round_trip(&self) -> Duration {
        Duration::from_millis(100)
    }

    /// Makes a health-based candidate for `resource` with `options`, not yet
    /// started. Invalid names or options must fail here (contract C10).
    async fn candidate(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<Candidate>;
}

/// Controls for a candidate built on the shared engine.
struct EngineControl<S: LeaseStore, N> {
    election: Election<S>,
    network: N,
}

impl<S, N> CandidateControl for EngineControl<S, N>
where
    S: LeaseStore,
    N: Fn(Option<NetworkFault>) + Send + Sync + 'static,
{
    fn crash(&self) {
        (self.network)(Some(NetworkFault::BlackHole));
        self.election.abort_without_release();
    }

    fn set_network_fault(&self, fault: Option<NetworkFault>) {
        (self.network)(fault);
    }
}
