//! Candidate identity within one process: a factory never runs two live
//! elections of one resource under one candidate id.

use std::time::Duration;

use leader_election_abstractions::{LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
use leader_election_testkit::LeadershipRecorder;

fn factory() -> InMemoryLeaderElectionFactory {
    // The default instance id (host + random suffix), as an application's.
    let options = LeaderElectionOptions {
        instance_id: LeaderElectionOptions::default().instance_id,
        ..leader_election_testkit::timing_options(
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_millis(250),
            Duration::from_millis(500),
        )
    };
    InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options).expect("factory")
}

#[test]
fn the_default_id_is_the_host_name_plus_a_suffix_fixed_for_the_process() {
    let a = LeaderElectionOptions::default().instance_id;
    let b = LeaderElectionOptions::default().instance_id;
    assert_eq!(a, b, "one process, one default id");
    let (_, suffix) = a.rsplit_once('-').expect("a suffix after a dash");
    assert_eq!(suffix.len(), 8, "{a}");
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
}

#[tokio::test]
async fn a_second_live_election_with_the_same_explicit_id_is_refused() {
    let factory = factory();
    let first = factory
        .election("jobs")
        .candidate_id("worker-1")
        .build()
        .expect("first");
    let error = factory
        .election("jobs")
        .candidate_id("worker-1")
        .build()
        .expect_err("a second live election of (jobs, worker-1)");
    let message = error.to_string();
    assert!(
        message.contains("candidate_id") && message.contains("worker-1"),
        "{message}"
    );
    // Once the first has stopped, the id is free again.
    first.start().await.expect("start");
    first.stop().await.expect("stop");
    factory
        .election("jobs")
        .candidate_id("worker-1")
        .build()
        .expect("free after stop");
}

#[tokio::test]
async fn elections_created_without_an_id_get_distinct_identities_and_never_both_lead() {
    let factory = factory();
    let a = factory.election("jobs").build().expect("a");
    let b = factory.election("jobs").build().expect("b");
    assert_ne!(a.candidate_id(), b.candidate_id());
    let recorder = LeadershipRecorder::start(Duration::from_millis(1));
    let (a, b): (
        std::sync::Arc<dyn LeaderElection>,
        std::sync::Arc<dyn LeaderElection>,
    ) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    recorder.watch(&a);
    recorder.watch(&b);
    a.start().await.expect("start a");
    b.start().await.expect("start b");
    // Both run for a few renewals; then the leader stops and the other takes over.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (leader, other) = if a.is_leader() { (a, b) } else { (b, a) };
    assert!(leader.is_leader(), "nobody leads");
    let leader_id = leader.candidate_id().to_owned();
    leader.stop().await.expect("stop leader");
    other
        .wait_for_leadership()
        .await
        .expect("the other takes over");
    // Record the new term before ending it; the sampler may not have run yet.
    recorder.sample_now();
    other.stop().await.expect("stop the other");
    let report = recorder.finish();
    report.assert_safe();
    // One term each, unless the load here made a leader miss its deadline and
    // take its own lease back (a new term, still never overlapping).
    assert!(report.intervals.len() >= 2, "{:?}", report.intervals);
    assert_eq!(
        report.leaders().first(),
        Some(&leader_id.as_str()),
        "{:?}",
        report.intervals
    );
}
