//! [`EtcdLeaderElectionFactory`]: elections on an etcd cluster.

use std::time::Duration;

use leader_election_abstractions::{ElectionRegistry, LeaderElectionOptions, Result, StoreFactory};

use crate::client::EtcdClient;
use crate::config::EtcdConfig;
use crate::store::EtcdLeaseStore;

/// Creates elections whose leases are etcd leases and keys.
///
/// Concrete elections come from [`StoreFactory::election`] (a builder: id,
/// options, health-based), `Arc<dyn ...>` ones from
/// [`LeaderElectionFactory`](leader_election_abstractions::LeaderElectionFactory).
#[derive(Clone, Debug)]
pub struct EtcdLeaderElectionFactory {
    client: EtcdClient,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
}

impl EtcdLeaderElectionFactory {
    /// A factory for the cluster `config` names. Nothing is sent yet: a bad
    /// endpoint or password shows when an election first talks to etcd.
    pub fn new(config: EtcdConfig, options: LeaderElectionOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            client: EtcdClient::new(config)?,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory whose requests go to `transport` instead of the network:
    /// the deterministic simulation's simulated etcd (feature `test-util`,
    /// see [`crate::transport`]). `config` still gives the endpoints, the
    /// timeouts and the key prefix; TLS settings are unused.
    #[cfg(feature = "test-util")]
    pub fn with_transport(
        config: EtcdConfig,
        options: LeaderElectionOptions,
        transport: std::sync::Arc<dyn crate::transport::EtcdTransport>,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            client: EtcdClient::new(config)?.with_transport(transport),
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory configured from etcdctl's variables (see [`EtcdConfig::from_env`]).
    pub fn from_env(options: LeaderElectionOptions) -> Result<Self> {
        Self::new(EtcdConfig::from_env()?, options)
    }

    /// The configuration in use.
    pub fn config(&self) -> &EtcdConfig {
        self.client.config()
    }
}

impl StoreFactory for EtcdLeaderElectionFactory {
    type Store = EtcdLeaseStore;

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
    ) -> Result<EtcdLeaseStore> {
        let timeout = self
            .client
            .config()
            .request_timeout
            .unwrap_or_else(|| (options.renew_interval / 2).max(Duration::from_secs(1)));
        Ok(EtcdLeaseStore::new(
            self.client.clone(),
            resource,
            candidate_id,
            options,
            timeout,
        ))
    }
}
