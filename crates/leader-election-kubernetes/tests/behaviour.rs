//! Kubernetes-specific behaviour against a real kube-apiserver: Leases edited
//! or deleted behind our back, an unreachable apiserver, least-privilege RBAC, and interop with client-go's own elector.
//! Run with `cargo xtask integration kubernetes`.
//!
//! A black-holed leader is covered by the conformance suite's
//! `c2_leader_steps_down_at_local_deadline_when_cut_off`, which cuts the
//! leader off through its fault proxy and checks the overlap recorder.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, PostParams};
use leader_election_abstractions::store::{LeaseClaim, LeaseStore};
use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElection, LossReason, StoreFactory,
};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_testkit::{
    assert_reelected_with_higher_token_after_removal, assert_safe_through_outage, next_loss_reason,
    Fault, FaultHandle, Outage,
};
use tokio::time::{timeout, Instant};

use support::{admin_client, namespace, test_options, Cleanup, Peer, PeerEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn lease_edited_behind_our_back_ends_leadership_via_watch() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("edit");
    let (leader, _) = provider
        .concrete(&resource, "a", test_options())
        .await
        .expect("a");
    let mut events = leader.subscribe();
    leader.start().await.expect("start");
    leader.wait_for_leadership().await.expect("leads");

    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    let mut lease = leases.get(&resource).await.expect("the lease exists");
    let spec = lease.spec.as_mut().expect("spec");
    spec.holder_identity = Some("operator".to_owned());
    spec.lease_transitions = spec.lease_transitions.map(|t| t + 1);
    let edited = Instant::now();
    leases
        .replace(&resource, &PostParams::default(), &lease)
        .await
        .expect("raw update");
    let reason = next_loss_reason(&mut events).await;
    println!(
        "kubernetes: lost leadership {:?} after the raw update ({reason})",
        edited.elapsed()
    );
    assert_eq!(reason, LossReason::LostToOtherHolder);
    assert!(!leader.is_leader());
    assert_eq!(leader.current_leader_id().as_deref(), Some("operator"));
    leader.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn lease_deleted_means_reelection_with_a_higher_token() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("delete");
    let (a, _) = provider
        .concrete(&resource, "a", test_options())
        .await
        .expect("a");
    let (b, _) = provider
        .concrete(&resource, "b", test_options())
        .await
        .expect("b");
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    let name = resource.clone();
    let delete = Box::pin(async move {
        leases
            .delete(&name, &DeleteParams::default())
            .await
            .expect("raw delete");
    });
    assert_reelected_with_higher_token_after_removal(&a, &b, delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn apiserver_unreachable_longer_than_the_lease_never_yields_two_leaders() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("outage");
    let options = test_options();
    let mut elections: Vec<Arc<dyn LeaderElection>> = Vec::new();
    let mut proxies = Vec::new();
    for id in ["a", "b", "c"] {
        let (election, proxy) = provider
            .concrete(&resource, id, options.clone())
            .await
            .expect("candidate");
        election.start().await.expect("start");
        elections.push(Arc::new(election));
        proxies.push(proxy);
    }
    assert_safe_through_outage(
        "kubernetes",
        &elections,
        options.lease_duration,
        &mut ResetAll(proxies),
    )
    .await;
}

/// Every client's connections reset and new ones refused, as when the
/// apiserver is down.
struct ResetAll(Vec<FaultHandle>);

#[async_trait::async_trait]
impl Outage for ResetAll {
    async fn begin(&mut self) {
        self.0
            .iter()
            .for_each(|proxy| proxy.set_fault(Fault::Reset));
    }

    async fn end(&mut self) {
        self.0
            .iter()
            .for_each(|proxy| proxy.set_fault(Fault::PassThrough));
    }
}

/// The Role of `examples/kubernetes/rbac.yaml`, applied for the limited user.
async fn bind_example_role(name: &str, verbs: &[&str]) {
    let user = std::env::var("LE_KUBE_LIMITED_USER").unwrap_or_else(|_| {
        panic!("LE_KUBE_LIMITED_USER is not set: run `cargo xtask integration kubernetes`")
    });
    let client = admin_client().await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &namespace());
    let role = Role {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["coordination.k8s.io".to_owned()]),
            resources: Some(vec!["leases".to_owned()]),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..Default::default()
        }]),
    };
    let _ = roles.delete(name, &DeleteParams::default()).await;
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let bindings: Api<RoleBinding> = Api::namespaced(client, &namespace());
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: name.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "User".to_owned(),
            name: user,
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            ..Default::default()
        }]),
    };
    let _ = bindings.delete(name, &DeleteParams::default()).await;
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    // RBAC changes reach the authorizer's cache within moments.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn limited_factory() -> KubernetesLeaderElectionFactory {
    let token = std::env::var("LE_KUBE_LIMITED_TOKEN").unwrap_or_else(|_| {
        panic!("LE_KUBE_LIMITED_TOKEN is not set: run `cargo xtask integration kubernetes`")
    });
    let mut config = support::kube_config().await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = kube::Client::try_from(config).expect("client");
    KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), test_options())
        .expect("factory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn least_privilege_role_is_enough_and_a_missing_verb_is_named() {
    let cleanup = Cleanup::default();
    let role = "leader-election-test";
    cleanup.add_role(role);
    bind_example_role(
        role,
        &["get", "list", "watch", "create", "update", "delete"],
    )
    .await;
    let factory = limited_factory().await;
    let resource = cleanup.resource("rbac");
    let a = factory
        .election(&resource)
        .candidate_id("a")
        .health_based()
        .build()
        .expect("a");
    let b = factory
        .election(&resource)
        .candidate_id("b")
        .health_based()
        .build()
        .expect("b");
    a.start().await.expect("start");
    b.start().await.expect("start");
    let first = tokio::select! {
        _ = a.wait_for_leadership() => &a,
        _ = b.wait_for_leadership() => &b,
    };
    let other = if std::ptr::eq(first, &a) { &b } else { &a };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listed = first
        .candidate_health()
        .await
        .expect("list as the limited user");
    assert_eq!(listed.len(), 2, "{listed:?}");
    first.stop().await.expect("stop");
    other
        .wait_for_leadership()
        .await
        .expect("handover as the limited user");
    other.stop().await.expect("stop");

    // Without `update`, taking over an existing Lease fails with a clear error.
    bind_example_role(role, &["get", "list", "watch", "create", "delete"]).await;
    let store = factory
        .election(&resource)
        .candidate_id("c")
        .build()
        .expect("c");
    let claim = LeaseClaim {
        resource: resource.clone(),
        candidate_id: "c".to_owned(),
        lease_duration: Duration::from_secs(2),
        grace_period: Duration::from_secs(1),
        holder_metadata: Default::default(),
    };
    match store.store().try_acquire(&claim).await {
        Err(Error::Unauthorized { message, .. }) => {
            assert!(
                message.contains("update") && message.contains("coordination.k8s.io"),
                "{message}"
            );
        }
        other => panic!("expected an unauthorized error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the client-go peer: cargo xtask integration kubernetes"]
async fn client_go_elector_and_ours_never_both_lead_and_hand_over_both_ways() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("clientgo");
    let (ours, _) = provider
        .concrete(&resource, "ours", test_options())
        .await
        .expect("ours");
    ours.start().await.expect("start");
    let first = ours.wait_for_leadership().await.expect("ours leads");

    // Same timing as ours: lease 2 s; client-go needs lease > renew deadline > 1.2 × retry.
    let mut peer = Peer::spawn(
        &resource,
        "client-go",
        &[
            "-lease-duration=2s",
            "-renew-deadline=1500ms",
            "-retry-period=500ms",
            "-hold=3s",
        ],
    );
    assert_eq!(
        peer.next().await,
        PeerEvent::NewLeader("ours".to_owned()),
        "client-go sees us as the holder"
    );
    let early = timeout(Duration::from_secs(3), peer.next()).await;
    assert!(
        early.is_err(),
        "client-go led while we held the Lease: {early:?}"
    );

    // We hand over to client-go.
    let released = Instant::now();
    ours.stop().await.expect("stop");
    let leading = timeout(Duration::from_secs(30), peer.until_leading()).await;
    assert!(leading.is_ok(), "client-go never led after our release");
    println!(
        "kubernetes: client-go took over {:?} after our release",
        released.elapsed()
    );

    // While client-go leads, our new candidate sees it as the holder and waits.
    let (follower, _) = provider
        .concrete(&resource, "follower", test_options())
        .await
        .expect("follower");
    follower.start().await.expect("start");
    let mut saw_client_go = false;
    let stopped = loop {
        tokio::select! {
            event = peer.next() => if let PeerEvent::Stopped(_) = event {
                break Instant::now();
            },
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                assert!(!follower.is_leader(), "we led while client-go held the Lease");
                saw_client_go |= follower.current_leader_id().as_deref() == Some("client-go");
            }
        }
    };
    assert!(saw_client_go, "we never saw client-go as the holder");
    assert!(peer.child.wait().await.expect("peer exits").success());
    // client-go released on exit (ReleaseOnCancel): we take over without waiting out the lease.
    let after = timeout(Duration::from_secs(30), follower.wait_for_leadership())
        .await
        .expect("we lead again after client-go released")
        .expect("leads");
    println!(
        "kubernetes: we took over {:?} after client-go stopped leading",
        stopped.elapsed()
    );
    assert!(after.fencing_token() > first.fencing_token());
    follower.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn leases_with_missing_fields_from_other_clients_are_tolerated() {
    let cleanup = Cleanup::default();
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    let provider = support::kubernetes_provider().await;
    // An empty spec (a released lease of some other client): free at once.
    let empty = cleanup.resource("empty");
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(empty.clone()),
            ..Default::default()
        },
        spec: Some(Default::default()),
    };
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create empty lease");
    let (a, _) = provider
        .concrete(&empty, "a", test_options())
        .await
        .expect("a");
    a.start().await.expect("start");
    timeout(Duration::from_secs(10), a.wait_for_leadership())
        .await
        .expect("an empty lease is free")
        .expect("leads");
    a.stop().await.expect("stop");

    // A holder without duration or times: treated as a one-second lease,
    // counted from when we first saw it, then taken over.
    let stale = cleanup.resource("stale");
    let mut lease = lease.clone();
    lease.metadata.name = Some(stale.clone());
    lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("someone-gone".to_owned()),
        ..Default::default()
    });
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create stale lease");
    let (b, _) = provider
        .concrete(&stale, "b", test_options())
        .await
        .expect("b");
    b.start().await.expect("start");
    let started = Instant::now();
    timeout(Duration::from_secs(10), b.wait_for_leadership())
        .await
        .expect("a stale foreign lease is taken over")
        .expect("leads");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "taken before one second plus grace"
    );
    let written = leases.get(&stale).await.expect("read back");
    let spec = written.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert_eq!(spec.lease_transitions, Some(1));
    b.stop().await.expect("stop");
}

#[tokio::test]
async fn names_kubernetes_cannot_store_are_rejected_up_front() {
    // No apiserver needed: validation happens before any request.
    let config = kube::Config::new("https://127.0.0.1:1".parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let factory = KubernetesLeaderElectionFactory::new(
        client.clone(),
        KubernetesConfig::default(),
        test_options(),
    )
    .expect("factory");
    for bad in [
        "Upper-case",
        "under_score",
        "trailing-.dot",
        &"a".repeat(230),
    ] {
        let error = factory
            .election(bad)
            .candidate_id("a")
            .build()
            .expect_err(bad);
        assert!(error.to_string().contains("DNS-1123"), "{error}");
    }
    factory
        .election("fine.name-1")
        .candidate_id("a")
        .build()
        .expect("valid");
    let error = KubernetesLeaderElectionFactory::new(
        client,
        KubernetesConfig {
            namespace: Some("Bad_NS".into()),
            ..Default::default()
        },
        test_options(),
    )
    .expect_err("bad namespace");
    assert!(
        matches!(error, Error::InvalidOption { ref field, .. } if field == "namespace"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn a_creator_that_never_saw_the_deleted_lease_still_gets_a_higher_token() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("recreate");
    let (old, _) = provider
        .concrete(&resource, "old", test_options())
        .await
        .expect("old");
    old.start().await.expect("start");
    let mut old_token = old
        .wait_for_leadership()
        .await
        .expect("old leads")
        .fencing_token();
    // A few terms, so the old Lease's leaseTransitions has moved on.
    for _ in 0..3 {
        old.resign().await.expect("resign");
        let (other, _) = provider
            .concrete(&resource, "other", test_options())
            .await
            .expect("other");
        other.start().await.expect("start");
        old_token = old_token.max(
            other
                .wait_for_leadership()
                .await
                .expect("other leads")
                .fencing_token(),
        );
        other.stop().await.expect("stop");
    }
    old.stop().await.expect("stop");
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    leases
        .delete(&resource, &DeleteParams::default())
        .await
        .expect("raw delete");

    let (fresh, _) = provider
        .concrete(&resource, "fresh", test_options())
        .await
        .expect("fresh");
    fresh.start().await.expect("start");
    let token = fresh
        .wait_for_leadership()
        .await
        .expect("fresh leads")
        .fencing_token();
    assert!(
        token > old_token,
        "token {token} after re-creation is not above {old_token}"
    );
    fresh.stop().await.expect("stop");
}
