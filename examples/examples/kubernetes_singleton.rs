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

use std::time::{Duration, Instant};

use examples::{init_tracing, stamp};
use leader_election_abstractions::{LeaderElection, LeaderElectionOptions, Result};
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
        factory.election("kubernetes-singleton", Some("worker-a"), false)?,
        factory.election("kubernetes-singleton", Some("worker-b"), false)?,
    ];
    for worker in &workers {
        worker.start().await?;
    }
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for worker in &workers {
            if let Some(token) = worker.fencing_token() {
                println!(
                    "{} {} runs the job (round {round}, fencing token {token})",
                    stamp(),
                    worker.candidate_id()
                );
            }
        }
        if round == 3 {
            if let Some(leader) = workers.iter().position(|w| w.is_leader()) {
                let next = &workers[1 - leader];
                println!(
                    "{} {} stops; it releases the Lease",
                    stamp(),
                    workers[leader].candidate_id()
                );
                let started = Instant::now();
                workers[leader].stop().await?;
                let guard = next.wait_for_leadership().await?;
                println!(
                    "{} {} took over {:?} after the release (fencing token {})",
                    stamp(),
                    next.candidate_id(),
                    started.elapsed(),
                    guard.fencing_token()
                );
            }
        }
    }
    for worker in &workers {
        worker.stop().await?;
    }
    Ok(())
}
