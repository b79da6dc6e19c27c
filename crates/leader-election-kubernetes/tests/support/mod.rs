//! Shared by the Kubernetes integration tests: the apiserver from the
//! environment (`cargo xtask integration kubernetes` sets `KUBECONFIG`) and a
//! provider that puts each candidate behind its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::{Election, LeaderElectionOptions, Result};
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};
use leader_election_testkit::{Candidate, FaultHandle, FaultProxy, Provider};

/// The kubeconfig's client configuration; fails loudly without `KUBECONFIG`.
pub async fn kube_config() -> kube::Config {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!("KUBECONFIG is not set: run these tests with `cargo xtask integration kubernetes`, which starts etcd and kube-apiserver");
    }
    kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("reading KUBECONFIG: {e}"))
}

/// The apiserver's address from the kubeconfig.
pub async fn apiserver_address() -> SocketAddr {
    let config = kube_config().await;
    let authority = config
        .cluster_url
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    authority
        .parse()
        .unwrap_or_else(|e| panic!("cluster URL {} is not an IP:port: {e}", config.cluster_url))
}

/// A client talking to `address` (the apiserver or a proxy in front of it)
/// with the kubeconfig's credentials.
pub async fn client_via(address: SocketAddr) -> kube::Client {
    let mut config = kube_config().await;
    config.cluster_url = format!("https://{address}").parse().expect("proxy URL");
    kube::Client::try_from(config).expect("kube client")
}

/// A client straight to the apiserver, as an operator's `kubectl` would be.
pub async fn admin_client() -> kube::Client {
    kube::Client::try_from(kube_config().await).expect("kube client")
}

/// Whole-second leases as Kubernetes needs: 2 s lease, 1 s grace.
pub fn test_options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .instance_id("kubernetes-test")
        .build()
        .expect("valid test options")
}

/// Candidates against the real apiserver, each behind its own fault proxy.
pub struct KubernetesProvider {
    /// Proxies live as long as the provider, so a dropped election can still
    /// release its lease through its proxy.
    proxies: Mutex<Vec<FaultProxy>>,
}

impl KubernetesProvider {
    /// A provider for the apiserver named by `KUBECONFIG`.
    pub fn new() -> Self {
        Self {
            proxies: Mutex::new(Vec::new()),
        }
    }

    /// A candidate's concrete election and its proxy, for tests beyond the suite.
    pub async fn concrete(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<(Election<KubernetesLeaseStore>, FaultHandle)> {
        let proxy = FaultProxy::start(apiserver_address().await)
            .await
            .unwrap_or_else(|e| panic!("starting a fault proxy: {e}"));
        let handle = proxy.handle();
        let client = client_via(proxy.local_addr()).await;
        self.proxies.lock().expect("proxies").push(proxy);
        let factory = KubernetesLeaderElectionFactory::new(
            client,
            KubernetesConfig::default(),
            options.clone(),
        )?;
        let election = factory.election_with(resource, Some(candidate_id), options, true)?;
        Ok((election, handle))
    }
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn options(&self) -> LeaderElectionOptions {
        test_options()
    }

    fn virtual_time(&self) -> bool {
        false
    }

    fn round_trip(&self) -> Duration {
        Duration::from_millis(50)
    }

    async fn candidate(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<Candidate> {
        let (election, proxy) = self.concrete(resource, candidate_id, options).await?;
        Ok(Candidate::behind_proxy(election, proxy))
    }
}
