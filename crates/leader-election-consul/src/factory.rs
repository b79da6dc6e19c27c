//! [`ConsulLeaderElectionFactory`]: elections over a Consul agent.

use leader_election_abstractions::{ElectionRegistry, LeaderElectionOptions, Result, StoreFactory};

use crate::client::ConsulClient;
use crate::config::ConsulConfig;
use crate::shared_watch::SharedWatch;
use crate::store::ConsulLeaseStore;

/// Creates elections whose leases are Consul KV locks. Cheap to clone; all
/// elections of a factory (and its clones) share one HTTP connection pool
/// of at most [`ConsulConfig::max_connections`] connections and one
/// blocking query on the key prefix.
///
/// Concrete elections come from [`StoreFactory::election`] (a builder: id,
/// options, health-based), `Arc<dyn ...>` ones from
/// [`LeaderElectionFactory`](leader_election_abstractions::LeaderElectionFactory).
#[derive(Clone, Debug)]
pub struct ConsulLeaderElectionFactory {
    client: ConsulClient,
    watches: SharedWatch,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
}

impl ConsulLeaderElectionFactory {
    /// Creates a factory; the configuration and options are validated here
    /// (TLS files are read here too).
    pub fn new(config: ConsulConfig, options: LeaderElectionOptions) -> Result<Self> {
        options.validate()?;
        let client = ConsulClient::new(config)?;
        Ok(Self {
            watches: SharedWatch::new(client.clone()),
            client,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory whose requests go to `transport` instead of the network:
    /// the deterministic simulation's simulated agent (feature `test-util`,
    /// see [`crate::transport`]). `config` still gives the address, the
    /// timeouts and the key prefix; TLS settings are unused.
    #[cfg(feature = "test-util")]
    pub fn with_transport(
        config: ConsulConfig,
        options: LeaderElectionOptions,
        transport: std::sync::Arc<dyn crate::transport::ConsulTransport>,
    ) -> Result<Self> {
        options.validate()?;
        let client = ConsulClient::new(config)?.with_transport(transport);
        Ok(Self {
            watches: SharedWatch::new(client.clone()),
            client,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory for the agent named by the standard `CONSUL_*` variables.
    pub fn from_env(options: LeaderElectionOptions) -> Result<Self> {
        Self::new(ConsulConfig::from_env(), options)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ConsulConfig {
        self.client.config()
    }
}

impl StoreFactory for ConsulLeaderElectionFactory {
    type Store = ConsulLeaseStore;

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
    ) -> Result<ConsulLeaseStore> {
        Ok(ConsulLeaseStore::new(
            self.client.clone(),
            self.watches.clone(),
            resource,
            candidate_id,
            options,
        ))
    }
}
