//! [`InMemoryLeaderElectionFactory`]: elections over a shared [`InMemoryStore`].

use leader_election_abstractions::{
    Election, ElectionFactory, ElectionRegistry, LeaderElectionOptions, Result,
};

use crate::store::{InMemoryLeaseStore, InMemoryStore};

/// Creates in-memory elections. Factories built on clones of one
/// [`InMemoryStore`] contend for the same resources.
#[derive(Clone, Debug)]
pub struct InMemoryLeaderElectionFactory {
    store: InMemoryStore,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
}

impl InMemoryLeaderElectionFactory {
    /// Creates a factory; the options are validated here.
    pub fn new(store: InMemoryStore, options: LeaderElectionOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            store,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// The concrete election type, for callers that want
    /// [`Election::abort_without_release`] or the store. A second live
    /// election of one resource with the same explicit id is refused; one
    /// without an id gets a distinct identity (see [`ElectionRegistry`]).
    pub fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<InMemoryLeaseStore>> {
        let registration = self
            .live
            .register(resource, candidate_id, &self.options.instance_id)?;
        let id = registration.candidate_id().to_owned();
        let store = self.store.for_candidate(&id, self.options.grace_period);
        Ok(Election::new(
            store,
            resource,
            Some(&id),
            self.options.clone(),
            health_based,
        )?
        .registered(registration))
    }

    /// The shared store.
    pub fn store(&self) -> &InMemoryStore {
        &self.store
    }
}

impl ElectionFactory for InMemoryLeaderElectionFactory {
    type Store = InMemoryLeaseStore;

    fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<InMemoryLeaseStore>> {
        InMemoryLeaderElectionFactory::election(self, resource, candidate_id, health_based)
    }
}
