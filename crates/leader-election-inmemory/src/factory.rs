//! [`InMemoryLeaderElectionFactory`]: elections over a shared [`InMemoryStore`].

use leader_election_abstractions::{ElectionRegistry, LeaderElectionOptions, Result, StoreFactory};

use crate::store::{InMemoryLeaseStore, InMemoryStore};

/// Creates in-memory elections. Factories built on clones of one
/// [`InMemoryStore`] contend for the same resources.
///
/// Concrete elections come from [`StoreFactory::election`] (a builder: id,
/// options, health-based), `Arc<dyn ...>` ones from
/// [`LeaderElectionFactory`](leader_election_abstractions::LeaderElectionFactory).
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

    /// The shared store.
    pub fn store(&self) -> &InMemoryStore {
        &self.store
    }
}

impl StoreFactory for InMemoryLeaderElectionFactory {
    type Store = InMemoryLeaseStore;

    fn options(&self) -> &LeaderElectionOptions {
        &self.options
    }

    fn registry(&self) -> &ElectionRegistry {
        &self.live
    }

    fn store(
        &self,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
    ) -> Result<InMemoryLeaseStore> {
        Ok(self
            .store
            .for_election(resource, candidate_id, options.grace_period))
    }
}
