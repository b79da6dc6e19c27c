//! [`ConsulLeaderElectionFactory`]: elections over a Consul agent.

use leader_election_abstractions::{
    Election, ElectionFactory, ElectionRegistry, LeaderElectionOptions, Result,
};

use crate::client::ConsulClient;
use crate::config::ConsulConfig;
use crate::store::ConsulLeaseStore;

/// Creates elections whose leases are Consul KV locks. Cheap to clone; all
/// elections share one HTTP connection pool.
#[derive(Clone, Debug)]
pub struct ConsulLeaderElectionFactory {
    client: ConsulClient,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
}

impl ConsulLeaderElectionFactory {
    /// Creates a factory; the configuration and options are validated here
    /// (TLS files are read here too).
    pub fn new(config: ConsulConfig, options: LeaderElectionOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            client: ConsulClient::new(config)?,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory for the agent named by the standard `CONSUL_*` variables.
    pub fn from_env(options: LeaderElectionOptions) -> Result<Self> {
        Self::new(ConsulConfig::from_env(), options)
    }

    /// The concrete election type, for callers that want its extra methods.
    pub fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<ConsulLeaseStore>> {
        self.election_with(resource, candidate_id, self.options.clone(), health_based)
    }

    /// Like [`election`](Self::election) with options other than the factory's.
    pub fn election_with(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        options: LeaderElectionOptions,
        health_based: bool,
    ) -> Result<Election<ConsulLeaseStore>> {
        let registration = self
            .live
            .register(resource, candidate_id, &options.instance_id)?;
        let id = registration.candidate_id().to_owned();
        let store = ConsulLeaseStore::new(self.client.clone(), resource, &id, &options);
        Ok(
            Election::new(store, resource, Some(&id), options, health_based)?
                .registered(registration),
        )
    }

    /// The configuration in use.
    pub fn config(&self) -> &ConsulConfig {
        self.client.config()
    }
}

impl ElectionFactory for ConsulLeaderElectionFactory {
    type Store = ConsulLeaseStore;

    fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<ConsulLeaseStore>> {
        ConsulLeaderElectionFactory::election(self, resource, candidate_id, health_based)
    }
}
