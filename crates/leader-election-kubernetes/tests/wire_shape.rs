//! What our elections write into the Lease, as the real kube-apiserver
//! stores it: the fields client-go's `LeaseLock` reads, our annotations, and
//! the release client-go performs. Run with `cargo xtask integration kubernetes`.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use leader_election_abstractions::LeaderElection;
use leader_election_kubernetes::{EPOCH_ANNOTATION, INSTANCE_ANNOTATION};

use support::{admin_client, namespace, test_options, Cleanup};

fn annotation<'a>(lease: &'a Lease, key: &str) -> Option<&'a str> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn the_lease_carries_client_go_fields_our_annotations_and_a_client_go_release() {
    let cleanup = Cleanup::default();
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("wire");
    let (leader, _) = provider
        .concrete(&resource, "wire-a", test_options())
        .await
        .expect("candidate");
    leader.start().await.expect("start");
    let guard = leader.wait_for_leadership().await.expect("leads");

    let first = leases.get(&resource).await.expect("the Lease");
    let spec = first.spec.clone().expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("wire-a"));
    // 2 s lease, in whole seconds as client-go writes it.
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert_eq!(
        spec.lease_transitions,
        Some(0),
        "a created Lease starts at 0"
    );
    let acquired = spec.acquire_time.clone().expect("acquireTime");
    let renewed = spec.renew_time.clone().expect("renewTime");
    assert!(renewed.0 >= acquired.0);
    let epoch: u64 = annotation(&first, EPOCH_ANNOTATION)
        .expect("the epoch annotation")
        .parse()
        .expect("a number");
    assert_eq!(
        guard.fencing_token().0,
        epoch << 31,
        "token = epoch × 2³¹ + leaseTransitions (0)"
    );
    assert_eq!(
        annotation(&first, INSTANCE_ANNOTATION),
        Some(leader.store().instance()),
        "the acquiring instance is named"
    );

    // Renewals move renewTime only.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let later = leases.get(&resource).await.expect("the Lease");
    let spec = later.spec.clone().expect("spec");
    assert!(
        spec.renew_time.expect("renewTime").0 > renewed.0,
        "not renewed"
    );
    assert_eq!(spec.acquire_time, Some(acquired));
    assert_eq!(spec.holder_identity.as_deref(), Some("wire-a"));
    assert_eq!(spec.lease_transitions, Some(0));

    // A release as client-go's: empty holder, a one-second lease.
    leader.stop().await.expect("stop");
    let released = leases.get(&resource).await.expect("the Lease");
    let spec = released.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(""));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
}
