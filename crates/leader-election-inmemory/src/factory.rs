//! [`InMemoryLeaderElectionFactory`]: elections over a shared [`InMemoryStore`].

use std::sync::Arc;

use leader_election_abstractions::{
    Election, HealthBasedLeaderElection, LeaderElection, LeaderElectionFactory,
    LeaderElectionOptions, Result,
};

use crate::store::{InMemoryLeaseStore, InMemoryStore};

/// Creates in-memory elections. Factories built on clones of one
/// [`InMemoryStore`] contend for the same resources.
#[derive(Clone, Debug)]
pub struct InMemoryLeaderElectionFactory {
    store: InMemoryStore,
    options: LeaderElectionOptions,
}

impl InMemoryLeaderElectionFactory {
    /// Creates a factory; the options are validated here.
    pub fn new(store: InMemoryStore, options: LeaderElectionOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self { store, options })
    }

    /// The concrete election type, for callers that want
    /// [`Election::abort_without_release`] or the store.
    pub fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<InMemoryLeaseStore>> {
        let id = candidate_id.unwrap_or(&self.options.instance_id);
        let store = self.store.for_candidate(id, self.options.grace_period);
        Election::new(
            store,
            resource,
            candidate_id,
            self.options.clone(),
            health_based,
        )
    }

    /// The shared store.
    pub fn store(&self) -> &InMemoryStore {
        &self.store
    }
}

impl LeaderElectionFactory for InMemoryLeaderElectionFactory {
    fn create_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn LeaderElection>> {
        Ok(Arc::new(self.election(resource, candidate_id, false)?))
    }

    fn create_health_based_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn HealthBasedLeaderElection>> {
        Ok(Arc::new(self.election(resource, candidate_id, true)?))
    }
}
