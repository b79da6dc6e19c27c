//! [`KubernetesLeaderElectionFactory`]: elections over Lease objects.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use leader_election_abstractions::{
    Clock, ElectionRegistry, Error, LeaderElectionOptions, Result, StoreFactory,
};

use crate::client::client_with_nodelay;
use crate::clock::StoreClock;
use crate::config::KubernetesConfig;
use crate::store::watch::WatchHub;
use crate::store::KubernetesLeaseStore;

/// Creates elections whose leases are `coordination.k8s.io/v1` Leases.
///
/// The elections of one factory (and of its clones) share one list + watch
/// of the namespace's Leases, dispatched by Lease name; each keeps its own
/// requests for acquire, renew and release. Elections that should not share
/// a watch need factories of their own.
///
/// Concrete elections come from [`StoreFactory::election`] (a builder: id,
/// options, health-based), `Arc<dyn ...>` ones from
/// [`LeaderElectionFactory`](leader_election_abstractions::LeaderElectionFactory).
#[derive(Clone)]
pub struct KubernetesLeaderElectionFactory {
    client: kube::Client,
    namespace: String,
    config: KubernetesConfig,
    options: LeaderElectionOptions,
    live: ElectionRegistry,
    /// The one Lease watch of this factory's namespace, shared by its
    /// elections (and by its clones'); its clock is the one the stores
    /// time things on.
    watch: Arc<WatchHub>,
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
        let watch = hub(&client, &namespace, &config, &options, StoreClock::Tokio);
        Ok(Self {
            client,
            namespace,
            config,
            options,
            live: ElectionRegistry::new(),
            watch,
        })
    }

    /// This factory with its stores timing everything on `clock` instead of
    /// Tokio's monotonic clock: the observed-time expiry of the Lease,
    /// request timeouts and the shared watch's list and watch timeouts. For
    /// deterministic simulations and tests, next to the same clock given to
    /// each election ([`ElectionBuilder::clock`](leader_election_abstractions::ElectionBuilder::clock)),
    /// which times the engine. Call it before making elections: the factory
    /// gets a shared watch of its own (its elections so far keep the old one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.watch = hub(
            &self.client,
            &self.namespace,
            &self.config,
            &self.options,
            StoreClock::Given(clock),
        );
        self
    }

    /// A factory from the environment: in-cluster configuration when running
    /// in a Pod, else the kubeconfig (`KUBECONFIG` or `~/.kube/config`). The
    /// client is [`client_with_nodelay`]'s (kube's own when the configuration
    /// names a proxy).
    ///
    /// When neither gives a usable client configuration, the error is an
    /// [`Error::Backend`] (with kube's error as its `source()`): there is no
    /// way to reach the apiserver, which is not one of this crate's options
    /// and not transient either, so retrying will not help. Run in a Pod
    /// with a service account, set `KUBECONFIG`, or build the client yourself
    /// and use [`new`](Self::new).
    pub async fn infer(config: KubernetesConfig, options: LeaderElectionOptions) -> Result<Self> {
        let client_config = kube::Config::infer().await.map_err(|e| {
            // As kube's `Client::try_default` reports it.
            let e = kube::Error::InferConfig(e);
            Error::backend(format!(
                "no usable Kubernetes client configuration (neither the in-cluster configuration of a Pod's service account nor a kubeconfig from KUBECONFIG or ~/.kube/config): {e}"
            ))
            .with_source(e)
        })?;
        let client = if client_config.proxy_url.is_some() {
            kube::Client::try_from(client_config).map_err(|e| {
                Error::backend(format!("Kubernetes client through a proxy: {e}")).with_source(e)
            })?
        } else {
            client_with_nodelay(client_config)?
        };
        Self::new(client, config, options)
    }

    /// The namespace the Leases live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

impl StoreFactory for KubernetesLeaderElectionFactory {
    type Store = KubernetesLeaseStore;

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
    ) -> Result<KubernetesLeaseStore> {
        let timeout = self
            .config
            .request_timeout
            .unwrap_or_else(|| (options.renew_interval / 2).max(Duration::from_secs(1)));
        Ok(KubernetesLeaseStore::new(
            self.client.clone(),
            &self.namespace,
            resource,
            candidate_id,
            options,
            timeout,
            self.watch.clone(),
        ))
    }
}

/// The shared Lease watch of `namespace`, its requests bounded by the
/// configured request timeout (by default half the renew interval, at least
/// one second) on `clock`.
fn hub(
    client: &kube::Client,
    namespace: &str,
    config: &KubernetesConfig,
    options: &LeaderElectionOptions,
    clock: StoreClock,
) -> Arc<WatchHub> {
    let timeout = config
        .request_timeout
        .unwrap_or_else(|| (options.renew_interval / 2).max(Duration::from_secs(1)));
    Arc::new(WatchHub::new(
        Api::<Lease>::namespaced(client.clone(), namespace),
        timeout,
        clock,
    ))
}
