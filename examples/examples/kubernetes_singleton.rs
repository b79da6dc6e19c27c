//! Pattern 1 (singleton job) against a real Kubernetes API server.
//!
//! Two candidates in this process contend for the Lease
//! `kubernetes-singleton` in the kubeconfig's namespace (`KUBECONFIG`, or
//! in-cluster configuration inside a Pod). The leader runs the job with its
//! fencing token (`leaseTransitions`); after a few rounds it stops, releasing
//! the Lease like client-go (`holderIdentity: ""`), and the other candidate
//! takes over about one round trip later. A Go controller using client-go's
//! elector on the same Lease contends correctly with both.
//!
//! ```text
//! cargo xtask servers up kubernetes
//! source target/test-servers/env       # exports KUBECONFIG
//! cargo run -p examples --example kubernetes_singleton
//! ```
//!
//! Needs the RBAC of `examples/kubernetes/rbac.yaml`.

use std::time::Duration;

use examples::{init_tracing, singleton_rounds, stamp};
use leader_election_abstractions::{LeaderElectionFactory, LeaderElectionOptions, Result};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing();
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .renew_interval(Duration::from_secs(1))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .build()?;
    let factory =
        KubernetesLeaderElectionFactory::infer(KubernetesConfig::default(), options).await?;
    println!("{} Leases in namespace {:?}", stamp(), factory.namespace());
    let workers = [
        factory.create_election("kubernetes-singleton", Some("worker-a"))?,
        factory.create_election("kubernetes-singleton", Some("worker-b"))?,
    ];
    for worker in &workers {
        worker.start().await?;
    }
    singleton_rounds(workers).await
}
