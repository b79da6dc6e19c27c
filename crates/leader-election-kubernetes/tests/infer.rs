//! `KubernetesLeaderElectionFactory::infer` without any usable client
//! configuration. It changes this process's environment, so it lives in a
//! test binary of its own. Needs no apiserver.

use std::error::Error as _;

use leader_election_abstractions::{Error, LeaderElectionOptions};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

#[tokio::test]
async fn no_client_configuration_is_a_backend_error_naming_where_it_looked() {
    let missing = std::env::temp_dir().join(format!(
        "leader-election-rs-no-kubeconfig-{}/config",
        std::process::id()
    ));
    // Neither a kubeconfig nor a Pod's service account.
    std::env::set_var("KUBECONFIG", &missing);
    std::env::remove_var("KUBERNETES_SERVICE_HOST");
    std::env::remove_var("KUBERNETES_SERVICE_PORT");

    let error = KubernetesLeaderElectionFactory::infer(
        KubernetesConfig::default(),
        LeaderElectionOptions::default(),
    )
    .await
    .expect_err("no configuration to infer");

    let Error::Backend { message, .. } = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    for named in ["in-cluster", "KUBECONFIG"] {
        assert!(message.contains(named), "{named:?} in {message}");
    }
    let source = error.source().and_then(|s| s.downcast_ref::<kube::Error>());
    assert!(source.is_some(), "the kube error is kept: {error:?}");
}
