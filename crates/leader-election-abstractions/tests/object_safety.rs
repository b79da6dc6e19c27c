//! The traits are object-safe: library code holds `Arc<dyn ...>` values.

use std::sync::Arc;

use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElection, LeaderElectionExt, LeaderElectionFactory,
    LeaderElectionOptions, RunOutcome,
};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

/// Library code that knows only the abstractions.
async fn library_code(factory: Arc<dyn LeaderElectionFactory>) -> (bool, bool) {
    let plain: Arc<dyn LeaderElection> = factory
        .create_election("object-safety", Some("plain"))
        .expect("create");
    let health: Arc<dyn HealthBasedLeaderElection> = factory
        .create_health_based_election("object-safety", Some("health"))
        .expect("create");
    // A health-based election is also a plain one (trait upcasting).
    let upcast: Arc<dyn LeaderElection> = health.clone();
    plain.start().await.expect("start");
    let guard = plain.wait_for_leadership().await.expect("leads");
    let ran = plain
        .run_while_leader(|g| async move { g.fencing_token() == guard.fencing_token() })
        .await
        .expect("run");
    upcast.start().await.expect("start");
    let follows = !upcast.is_leader();
    plain.stop().await.expect("stop");
    upcast.stop().await.expect("stop");
    (ran == RunOutcome::Completed(true), follows)
}

#[tokio::test(start_paused = true)]
async fn arc_dyn_traits_work_end_to_end() {
    let factory: Arc<dyn LeaderElectionFactory> = Arc::new(
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), LeaderElectionOptions::default())
            .expect("factory"),
    );
    assert_eq!(library_code(factory).await, (true, true));
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn LeaderElection>();
    assert_send_sync::<dyn HealthBasedLeaderElection>();
    assert_send_sync::<dyn LeaderElectionFactory>();
    assert_send_sync::<leader_election_abstractions::LeadershipGuard>();
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let factory =
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), LeaderElectionOptions::default())
            .expect("factory");
    let election = factory
        .create_election("no-runtime", Some("a"))
        .expect("election");
    let error = futures_util::FutureExt::now_or_never(election.start())
        .expect("start does not wait")
        .expect_err("no runtime");
    assert!(matches!(error, Error::NoRuntime), "{error}");
    assert!(error.to_string().contains("Tokio runtime"), "{error}");
}

/// Callbacks may be registered from a thread outside any Tokio runtime
/// (this used to panic with "there is no reactor running").
#[test]
fn callbacks_can_be_registered_from_a_plain_thread() {
    use std::sync::mpsc;
    use std::time::Duration;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let factory =
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), LeaderElectionOptions::default())
            .expect("factory");
    let election = factory
        .create_election("plain-thread", Some("me"))
        .expect("create");
    let (seen, became) = mpsc::channel();
    let registered = std::thread::spawn({
        let election = Arc::clone(&election);
        move || election.on_became_leader(move |token| seen.send(token.get()).expect("send"))
    })
    .join()
    .expect("registering from a plain thread must not panic");
    runtime.block_on(async {
        election.start().await.expect("start");
        election.wait_for_leadership().await.expect("leads");
    });
    let token = became
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback ran");
    assert_eq!(token, 1);
    runtime.block_on(election.stop()).expect("stop");
    drop(registered);
}
