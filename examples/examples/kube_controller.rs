//! A kube-runtime `Controller` that runs only while this process leads:
//! started on `BecameLeader`, dropped when the term ends, with the term's
//! fencing token passed in (see `examples/src/gated_controller.rs`; the
//! gating itself is one `run_while_leader` call in a loop).
//!
//! ```text
//! cargo xtask servers up kubernetes
//! source target/test-servers/env       # exports KUBECONFIG
//! cargo run -p examples --example kube_controller -- instance-a &
//! cargo run -p examples --example kube_controller -- instance-b &
//! kubectl create configmap demo && kubectl label configmap demo app=gated-controller-demo
//! kubectl get configmap demo -o yaml   # annotated by the leader only
//! ```
//!
//! Needs the RBAC of `examples/kubernetes/rbac.yaml`: its `leader-election`
//! Role (Leases) and its `kube-controller-example` Role (get/list/watch/patch
//! on ConfigMaps).

use std::time::Duration;

use examples::{gated_controller, init_tracing};
use k8s_openapi::api::core::v1::ConfigMap;
use leader_election_abstractions::{LeaderElectionFactory, LeaderElectionOptions};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "instance-a".into());
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .renew_interval(Duration::from_secs(1))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .build()?;
    let factory =
        KubernetesLeaderElectionFactory::infer(KubernetesConfig::default(), options).await?;
    let client = kube::Client::try_default().await?;
    let api = kube::Api::<ConfigMap>::namespaced(client, factory.namespace());
    let election = factory.create_election("gated-controller", Some(&id))?;
    election.start().await?;
    let labels = "app=gated-controller-demo".to_owned();
    tokio::select! {
        ended = gated_controller::run(election.clone(), api, labels) => ended?,
        _ = tokio::signal::ctrl_c() => {}
    }
    election.stop().await?;
    Ok(())
}
