//! How elections are made: a provider implements [`StoreFactory`] (one
//! [`LeaseStore`] value per election); every provider then offers the same
//! [`election`](StoreFactory::election) builder for concrete elections and
//! the object-safe [`LeaderElectionFactory`] for library code.

use std::sync::Arc;

use crate::clock::Clock;
use crate::engine::Election;
use crate::error::Result;
use crate::options::LeaderElectionOptions;
use crate::registry::ElectionRegistry;
use crate::store::LeaseStore;
use crate::traits::{HealthBasedLeaderElection, LeaderElection, LeaderElectionFactory};

/// A provider's factory: it makes one [`LeaseStore`] value per election,
/// sharing its backend client. Implementing it gives the provider the
/// [`election`](Self::election) builder and [`LeaderElectionFactory`] (the
/// `Arc<dyn ...>` API), the same on every provider.
pub trait StoreFactory: Send + Sync {
    /// The provider's store.
    type Store: LeaseStore;

    /// The options elections get unless the builder overrides them.
    fn options(&self) -> &LeaderElectionOptions;

    /// The live elections this factory has handed out (see
    /// [`ElectionRegistry`]): at most one per (resource, candidate id).
    fn registry(&self) -> &ElectionRegistry;

    /// Makes the store value for one election of `resource` by
    /// `candidate_id`, with `options`. The options, the resource name and
    /// the candidate id have already passed the generic rules; the store's
    /// own rules come after, in [`LeaseStore::validate`].
    fn store(
        &self,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
    ) -> Result<Self::Store>;

    /// Starts building an election of `resource`: by default with the
    /// factory's options and `instance_id`, not health-based.
    ///
    /// ```
    /// use leader_election_abstractions::{
    ///     HealthBasedLeaderElection, LeaderElection, LeaderElectionOptions, StoreFactory,
    /// };
    /// use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
    ///
    /// # fn main() -> leader_election_abstractions::Result<()> {
    /// let factory = InMemoryLeaderElectionFactory::new(
    ///     InMemoryStore::new(),
    ///     LeaderElectionOptions::default(),
    /// )?;
    /// let election = factory
    ///     .election("nightly-report")
    ///     .candidate_id("worker-1")
    ///     .health_based()
    ///     .build()?;
    /// assert_eq!(election.candidate_id(), "worker-1");
    /// # Ok(()) }
    /// ```
    fn election(&self, resource: &str) -> ElectionBuilder<'_, Self>
    where
        Self: Sized,
    {
        ElectionBuilder {
            factory: self,
            resource: resource.to_owned(),
            candidate_id: None,
            options: None,
            health_based: false,
            clock: None,
        }
    }
}

/// Builds one election; see [`StoreFactory::election`].
#[must_use = "call .build() to create the election"]
#[derive(Debug)]
pub struct ElectionBuilder<'f, F> {
    factory: &'f F,
    resource: String,
    candidate_id: Option<String>,
    options: Option<LeaderElectionOptions>,
    health_based: bool,
    clock: Option<Arc<dyn Clock>>,
}

impl<F: StoreFactory> ElectionBuilder<'_, F> {
    /// The candidate id; without one the election takes the options'
    /// `instance_id` (or a distinct `<instance_id>-N` if that is taken).
    pub fn candidate_id(mut self, id: impl Into<String>) -> Self {
        self.candidate_id = Some(id.into());
        self
    }

    /// Sets or clears the candidate id.
    pub fn maybe_candidate_id(mut self, id: Option<&str>) -> Self {
        self.candidate_id = id.map(str::to_owned);
        self
    }

    /// Options for this election instead of the factory's.
    pub fn options(mut self, options: LeaderElectionOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// A health-based election: it publishes its health to the candidate
    /// registry and honours it ([`HealthBasedLeaderElection`]).
    pub fn health_based(mut self) -> Self {
        self.health_based = true;
        self
    }

    /// Runs the election on `clock` instead of Tokio's monotonic clock (see
    /// [`Clock`]): for deterministic simulations and tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the names and options and creates the election (not started).
    pub fn build(self) -> Result<Election<F::Store>> {
        let options = self
            .options
            .unwrap_or_else(|| self.factory.options().clone());
        options.validate()?;
        let registration = self.factory.registry().register(
            &self.resource,
            self.candidate_id.as_deref(),
            &options.instance_id,
        )?;
        let id = registration.candidate_id().to_owned();
        crate::limits::validate_resource_name(&self.resource)?;
        let store = self.factory.store(&self.resource, &id, &options)?;
        let election = Election::new(store, &self.resource, Some(&id), options, self.health_based)?;
        let election = match self.clock {
            Some(clock) => election.with_clock(clock)?,
            None => election,
        };
        Ok(election.registered(registration))
    }
}

impl<F: StoreFactory> LeaderElectionFactory for F {
    fn create_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn LeaderElection>> {
        let election = self
            .election(resource)
            .maybe_candidate_id(candidate_id)
            .build()?;
        Ok(Arc::new(election))
    }

    fn create_health_based_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn HealthBasedLeaderElection>> {
        let election = self
            .election(resource)
            .maybe_candidate_id(candidate_id)
            .health_based()
            .build()?;
        Ok(Arc::new(election))
    }
}
