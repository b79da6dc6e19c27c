//! The shared Lease watch against a real kube-apiserver: the elections of
//! one factory hold one watch between them, and a Lease deleted behind
//! their back is seen through it. Run with
//! `cargo xtask integration kubernetes`.
//!
//! One test per binary file would be needed to read the apiserver's watch
//! gauge undisturbed; the tests here take turns through a lock instead.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use leader_election_abstractions::{LeaderElection, StoreFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_testkit::assert_reelected_with_higher_token_after_removal;
use tokio::time::Instant;

use support::{admin_client, namespace, test_options, Cleanup};

/// One test at a time in this binary: the watch gauge is the apiserver's.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The apiserver's open Lease watches, from its `/metrics` (the gauge
/// `apiserver_longrunning_requests`, as `cargo xtask bench` reads it).
async fn open_lease_watches(client: &kube::Client) -> f64 {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("apiserver /metrics: {e}"));
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_longrunning_requests{")
                && l.contains("resource=\"leases\"")
                && l.contains("verb=\"WATCH\"")
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Waits (bounded) until the gauge reads `baseline + expected`, and
/// returns the last reading.
async fn settle(client: &kube::Client, baseline: f64, expected: f64) -> f64 {
    let since = Instant::now();
    loop {
        let now = open_lease_watches(client).await;
        if now - baseline == expected || since.elapsed() > Duration::from_secs(15) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn factory(client: kube::Client, id: &str) -> KubernetesLeaderElectionFactory {
    let mut options = test_options();
    options.instance_id = id.to_owned();
    KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
        .expect("factory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn the_elections_of_one_factory_hold_one_lease_watch() {
    let _turn = TURN.lock().await;
    let cleanup = Cleanup::default();
    let admin = admin_client().await;
    // Settle after whatever ran before (watches of exited processes end).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = open_lease_watches(&admin).await;
    // Two replicas, 20 resources each: 40 elections, two factories.
    let replicas = [
        factory(admin_client().await, "replica-a"),
        factory(admin_client().await, "replica-b"),
    ];
    let resources: Vec<String> = (0..20)
        .map(|i| cleanup.resource(&format!("shared-{i}")))
        .collect();
    let mut elections = Vec::new();
    for resource in &resources {
        for replica in &replicas {
            let election = replica.election(resource).build().expect("election");
            election.start().await.expect("start");
            elections.push(election);
        }
    }
    for election in &elections {
        if election.candidate_id() == "replica-a" {
            tokio::time::timeout(Duration::from_secs(30), async {
                while election.current_leader_id().is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("every resource gets a leader");
        }
    }
    let reading = settle(&admin, baseline, 2.0).await;
    println!(
        "kubernetes: {} elections on 2 factories: {} open Lease watches (baseline {baseline})",
        elections.len(),
        reading - baseline
    );
    assert_eq!(
        reading - baseline,
        2.0,
        "one watch per factory, not one per election"
    );
    for election in &elections {
        election.stop().await.expect("stop");
    }
    let reading = settle(&admin, baseline, 0.0).await;
    assert_eq!(
        reading - baseline,
        0.0,
        "the shared watches end with their last elections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn a_lease_deleted_behind_the_back_of_a_shared_watch_is_seen() {
    let _turn = TURN.lock().await;
    let cleanup = Cleanup::default();
    let shared = factory(admin_client().await, "shared");
    let deleted = cleanup.resource("shared-deleted");
    let bystander = cleanup.resource("shared-bystander");
    // a and b follow one Lease, and a third election another one, all on
    // one factory, so one watch.
    let a = shared
        .election(&deleted)
        .candidate_id("a")
        .build()
        .expect("a");
    let b = shared
        .election(&deleted)
        .candidate_id("b")
        .build()
        .expect("b");
    let other = shared
        .election(&bystander)
        .candidate_id("c")
        .build()
        .expect("c");
    other.start().await.expect("start c");
    let kept = other.wait_for_leadership().await.expect("c leads");
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    let name = deleted.clone();
    assert_reelected_with_higher_token_after_removal(
        &a,
        &b,
        Box::pin(async move {
            leases
                .delete(&name, &DeleteParams::default())
                .await
                .expect("raw delete");
        }),
    )
    .await;
    assert!(other.is_leader(), "the other Lease's leader kept leading");
    assert_eq!(other.fencing_token(), Some(kept.fencing_token()));
    for election in [&a, &b, &other] {
        election.stop().await.expect("stop");
    }
}
