//! [`KubernetesLeaderElectionFactory`]: elections over Lease objects.

use std::time::Duration;

use leader_election_abstractions::{
    Election, ElectionFactory, ElectionRegistry, Error, LeaderElectionOptions, Result,
};

use crate::config::KubernetesConfig;
use crate::store::KubernetesLeaseStore;

/// Creates elections whose leases are `coordination.k8s.io/v1` Leases.
#[derive(Clone)]
pub struct KubernetesLeaderElectionFactory {
    client: kube::Client,
    namespace: String,
    config: KubernetesConfig,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
}

impl std::fmt::Debug for KubernetesLeaderElectionFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesLeaderElectionFactory")
            .field("namespace", &self.namespace)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubernetesLeaderElectionFactory {
    /// A factory over a client you built; the namespace defaults to the
    /// client's default namespace.
    pub fn new(
        client: kube::Client,
        config: KubernetesConfig,
        options: LeaderElectionOptions,
    ) -> Result<Self> {
        options.validate()?;
        config.validate()?;
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Ok(Self {
            client,
            namespace,
            config,
            options,
            live: ElectionRegistry::new(),
        })
    }

    /// A factory from the environment: in-cluster configuration when running
    /// in a Pod, else the kubeconfig (`KUBECONFIG` or `~/.kube/config`).
    pub async fn infer(config: KubernetesConfig, options: LeaderElectionOptions) -> Result<Self> {
        let client = kube::Client::try_default().await.map_err(|e| {
            Error::invalid_option(
                "kubeconfig",
                format!("no usable Kubernetes client configuration: {e}"),
            )
        })?;
        Self::new(client, config, options)
    }

    /// The namespace the Leases live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The concrete election type.
    pub fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<KubernetesLeaseStore>> {
        self.election_with(resource, candidate_id, self.options.clone(), health_based)
    }

    /// Like [`election`](Self::election) with options other than the factory's.
    pub fn election_with(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        options: LeaderElectionOptions,
        health_based: bool,
    ) -> Result<Election<KubernetesLeaseStore>> {
        let registration = self
            .live
            .register(resource, candidate_id, &options.instance_id)?;
        let id = registration.candidate_id().to_owned();
        let timeout = self
            .config
            .request_timeout
            .unwrap_or_else(|| (options.renew_interval / 2).max(Duration::from_secs(1)));
        let store = KubernetesLeaseStore::new(
            self.client.clone(),
            &self.namespace,
            resource,
            &id,
            &options,
            timeout,
        );
        Ok(
            Election::new(store, resource, Some(&id), options, health_based)?
                .registered(registration),
        )
    }
}

impl ElectionFactory for KubernetesLeaderElectionFactory {
    type Store = KubernetesLeaseStore;

    fn election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
        health_based: bool,
    ) -> Result<Election<KubernetesLeaseStore>> {
        KubernetesLeaderElectionFactory::election(self, resource, candidate_id, health_based)
    }
}
