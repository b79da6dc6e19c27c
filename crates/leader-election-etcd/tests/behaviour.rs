//! etcd-specific behaviour against a real etcd: the key layout, a lease
//! revoked or a key deleted behind our back, a black-holed leader, and etcd
//! stopped for longer than the lease and restarted.
//! Run with `cargo xtask integration etcd`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{LeaderElection, LossReason};
use leader_election_testkit::{
    assert_reelected_with_higher_token_after_removal, assert_safe_through_outage, next_loss_reason,
    Fault, LeadershipRecorder, Outage,
};
use serde_json::json;
use support::{election_prefix, etcd_provider, test_options, Admin, PrivateEtcd};
use tokio::time::{timeout, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn the_leader_key_is_laid_out_as_etcd_elections_lay_it_out() {
    let resource = support::resource("layout");
    let provider = etcd_provider();
    let (leader, _) = provider
        .concrete(&resource, "worker-1", test_options())
        .await
        .expect("leader");
    leader.start().await.expect("start");
    let guard = leader.wait_for_leadership().await.expect("leads");

    let admin = Admin::shared();
    let (key, create_revision, lease, value) = admin
        .single_key(&format!("{}/", election_prefix(&resource)))
        .await;
    assert_eq!(key, format!("{}/{lease:x}", election_prefix(&resource)));
    assert_eq!(
        value, "worker-1",
        "the value is the candidate id, as Go's proposal"
    );
    assert_eq!(
        guard.fencing_token().get(),
        u64::try_from(create_revision).expect("positive"),
        "the token is the key's create revision"
    );
    let ttl = admin
        .call("/v3/lease/timetolive", json!({ "ID": lease.to_string() }))
        .await;
    assert_eq!(
        ttl["grantedTTL"].as_str(),
        Some("3"),
        "lease 2 s + grace 1 s, in whole seconds: {ttl}"
    );
    // The candidate registry lives outside the election prefix.
    let candidates = admin
        .keys(&format!("{}/.candidates/{resource}/", support::PREFIX))
        .await;
    assert_eq!(candidates.len(), 1, "{candidates:?}");
    leader.stop().await.expect("stop");
    assert!(admin
        .keys(&format!("{}/", election_prefix(&resource)))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_lease_revoked_behind_our_back_means_reelection_with_a_higher_token() {
    let resource = support::resource("revoked");
    let provider = etcd_provider();
    let (a, _) = provider
        .concrete(&resource, "a", test_options())
        .await
        .expect("a");
    let (b, _) = provider
        .concrete(&resource, "b", test_options())
        .await
        .expect("b");
    let prefix = format!("{}/", election_prefix(&resource));
    let revoke = Box::pin(async move {
        let admin = Admin::shared();
        let (_, _, lease, _) = admin.single_key(&prefix).await;
        admin.revoke(lease).await;
    });
    assert_reelected_with_higher_token_after_removal(&a, &b, revoke).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_key_deleted_behind_our_back_means_reelection_with_a_higher_token() {
    let resource = support::resource("deleted");
    let provider = etcd_provider();
    let (a, _) = provider
        .concrete(&resource, "a", test_options())
        .await
        .expect("a");
    let (b, _) = provider
        .concrete(&resource, "b", test_options())
        .await
        .expect("b");
    let prefix = format!("{}/", election_prefix(&resource));
    let delete = Box::pin(async move {
        let admin = Admin::shared();
        let (key, _, _, _) = admin.single_key(&prefix).await;
        admin.delete(&key).await;
    });
    assert_reelected_with_higher_token_after_removal(&a, &b, delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_black_holed_leader_steps_down_before_etcd_frees_its_key_and_rejoins_as_follower() {
    let resource = support::resource("blackhole");
    let provider = etcd_provider();
    let options = test_options();
    let (a, a_proxy) = provider
        .concrete(&resource, "a", options.clone())
        .await
        .expect("a");
    let (b, _) = provider
        .concrete(&resource, "b", options.clone())
        .await
        .expect("b");
    let (a, b): (Arc<dyn LeaderElection>, Arc<dyn LeaderElection>) = (Arc::new(a), Arc::new(b));
    let recorder = LeadershipRecorder::start(Duration::from_millis(2));
    recorder.watch(&a);
    recorder.watch(&b);
    a.start().await.expect("start a");
    a.wait_for_leadership().await.expect("a leads");
    b.start().await.expect("start b");
    let mut events = a.subscribe();
    // Let a renewal land, then cut a off without a word.
    tokio::time::sleep(Duration::from_millis(600)).await;
    a_proxy.set_fault(Fault::BlackHole);
    let cut = Instant::now();
    assert_eq!(
        next_loss_reason(&mut events).await,
        LossReason::DeadlineExpired
    );
    let stepped_down = cut.elapsed();
    let guard = timeout(Duration::from_secs(30), b.wait_for_leadership())
        .await
        .expect("b leads after etcd expired a's lease")
        .expect("b leads");
    println!(
        "etcd: black-holed leader stepped down after {stepped_down:?}, b led after {:?} (wall clock, not asserted)",
        cut.elapsed()
    );
    assert!(
        stepped_down <= options.lease_duration,
        "a stepped down {stepped_down:?} after being cut off, past its lease"
    );
    // The fault lifts: a's dead connections are replaced and it follows b.
    a_proxy.set_fault(Fault::PassThrough);
    let lifted = Instant::now();
    while a.current_leader_id().as_deref() != Some("b") {
        assert!(
            lifted.elapsed() < Duration::from_secs(30),
            "a never saw b lead after the black hole lifted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.is_leader() && !a.is_leader());
    drop(guard);
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
    recorder.finish().assert_safe();
}

/// A private etcd killed and started again on the same data.
struct Restart(PrivateEtcd);

#[async_trait::async_trait]
impl Outage for Restart {
    async fn begin(&mut self) {
        self.0.stop();
    }

    async fn end(&mut self) {
        self.0.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn etcd_stopped_past_the_lease_and_restarted_never_yields_two_leaders() {
    let etcd = PrivateEtcd::start().await;
    let provider = support::provider_for(&etcd.url(), test_options());
    let resource = support::resource("restart");
    let options = test_options();
    let mut elections: Vec<Arc<dyn LeaderElection>> = Vec::new();
    for id in ["a", "b", "c"] {
        let (election, _) = provider
            .concrete(&resource, id, options.clone())
            .await
            .expect("candidate");
        election.start().await.expect("start");
        elections.push(Arc::new(election));
    }
    assert_safe_through_outage(
        "etcd",
        &elections,
        options.lease_duration,
        &mut Restart(etcd),
    )
    .await;
}
