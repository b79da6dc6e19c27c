//! Shared by the Kubernetes integration tests: the apiserver from the
//! environment (`cargo xtask integration kubernetes` sets `KUBECONFIG`) and a
//! provider that puts each candidate behind its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};
use leader_election_testkit::ProxiedProvider;

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

/// Candidates against the real apiserver, each behind its own fault proxy
/// (TLS passes through it as bytes).
pub type KubernetesProvider = ProxiedProvider<KubernetesLeaseStore>;

/// The conformance provider for the apiserver named by `KUBECONFIG`.
pub async fn kubernetes_provider() -> KubernetesProvider {
    ProxiedProvider::new(
        "kubernetes",
        apiserver_address().await,
        test_options(),
        Box::new(|address, resource, candidate_id, options| {
            Box::pin(async move {
                let client = client_via(address).await;
                let factory = KubernetesLeaderElectionFactory::new(
                    client,
                    KubernetesConfig::default(),
                    options.clone(),
                )?;
                factory.election_with(&resource, Some(&candidate_id), options, true)
            })
        }),
    )
}
