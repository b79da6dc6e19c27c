//! What `start()` and `stop()` report, against `RefusingFake`: a fake store
//! (allowed only in engine tests) that refuses the configuration at start or
//! panics when asked to acquire.

use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseWatch, Renewal,
};
use leader_election_abstractions::{
    Election, Error, LeaderElection, LeaderElectionOptions, Result,
};

/// A fake store: `refuse` makes `prepare` refuse the lease duration,
/// `panic` makes `try_acquire` panic.
struct RefusingFake {
    refuse: bool,
    panic: bool,
}

impl LeaseStore for RefusingFake {
    type Grant = ();

    async fn prepare(&self) -> Result<()> {
        if self.refuse {
            return Err(Error::invalid_option(
                "lease_duration",
                "the backend refuses it as a session TTL",
            ));
        }
        Err(Error::unavailable(
            "backend down: start must not fail on this",
        ))
    }

    async fn try_acquire(&self, _claim: &LeaseClaim) -> Result<Acquisition<()>> {
        assert!(!self.panic, "scripted panic in the store");
        Err(Error::unavailable("scripted"))
    }

    async fn renew(&self, _grant: &()) -> Result<Renewal<()>> {
        Ok(Renewal::Lost(None))
    }

    async fn release(&self, _grant: &()) -> Result<()> {
        Ok(())
    }

    fn watch(&self) -> LeaseWatch {
        futures_util::stream::pending().boxed()
    }

    async fn publish_candidate(&self, _: &CandidateRecord, _: Duration) -> Result<()> {
        Ok(())
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        Ok(Vec::new())
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        Ok(())
    }
}

fn election(refuse: bool, panic: bool) -> Election<RefusingFake> {
    Election::new(
        RefusingFake { refuse, panic },
        "engine",
        Some("me"),
        LeaderElectionOptions::default(),
        false,
    )
    .expect("valid election")
}

#[tokio::test(start_paused = true)]
async fn a_configuration_the_backend_refuses_fails_start_naming_the_field() {
    let election = election(true, false);
    match election.start().await {
        Err(Error::InvalidOption { field, .. }) => assert_eq!(field, "lease_duration"),
        other => panic!("expected an invalid lease_duration, got {other:?}"),
    }
    assert!(
        matches!(election.resign().await, Err(Error::NotStarted)),
        "the election must not run after a refused start"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_backend_does_not_fail_start() {
    let election = election(false, false);
    election.start().await.expect("starts and retries");
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_election_task_is_reported_by_stop() {
    let election = election(false, true);
    election.start().await.expect("start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let error = election.stop().await.expect_err("the panic is reported");
    assert!(error.to_string().contains("panicked"), "{error}");
    assert!(!election.is_leader());
}
