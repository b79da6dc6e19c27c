//! Engine unit tests in virtual time, against `FakeStore`: a scripted fake
//! store (allowed only here) that answers what each test needs, including
//! answers no real backend should give.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use leader_election_abstractions::{
    Election, Error, FencingToken, LeaderElection, LeaderElectionEvent, LeaderElectionExt,
    LeaderElectionOptions, LeadershipState, LossReason, Result, RunOutcome, Unhealthy,
};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_stream::wrappers::UnboundedReceiverStream;

/// What the fake answers to `renew`.
#[derive(Clone, Copy)]
enum RenewScript {
    Renew,
    Reject,
    Unauthorized,
    Hang,
    /// Renews, but the answer arrives this long after the call (the clock is
    /// moved on inside the call, as if the reply had been delayed).
    Late(Duration),
    /// Panics inside the call (an engine bug's stand-in).
    Panic,
}

struct Script {
    acquire: VecDeque<Result<Acquisition<u64>>>,
    renew: RenewScript,
    acquire_calls: u32,
    watch: Option<mpsc::UnboundedReceiver<Result<LeaseView>>>,
    /// What `term_limit` answers; `None` for the default (the lease).
    term_limit: Option<Duration>,
    /// What `grant_incarnation` answers.
    incarnation: Option<String>,
    /// Whether `publish_candidate` never answers.
    publish_hangs: bool,
    /// When each `renew` call came in.
    renew_calls: Vec<Instant>,
}

/// A fake store for engine unit tests: scripted answers, a test-fed watch.
#[derive(Clone)]
struct FakeStore {
    script: Arc<Mutex<Script>>,
}

impl FakeStore {
    fn new(renew: RenewScript) -> (Self, mpsc::UnboundedSender<Result<LeaseView>>) {
        let (feed, watch) = mpsc::unbounded_channel();
        let store = Self {
            script: Arc::new(Mutex::new(Script {
                acquire: VecDeque::new(),
                renew,
                acquire_calls: 0,
                watch: Some(watch),
                term_limit: None,
                incarnation: None,
                publish_hangs: false,
                renew_calls: Vec::new(),
            })),
        };
        (store, feed)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("script lock")
    }

    fn then_acquire(&self, answer: Result<Acquisition<u64>>) {
        self.script().acquire.push_back(answer);
    }
}

impl LeaseStore for FakeStore {
    type Grant = u64;

    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        self.script().term_limit.unwrap_or(options.lease_duration)
    }

    fn grant_incarnation(&self, _grant: &u64) -> Option<String> {
        self.script().incarnation.clone()
    }

    async fn try_acquire(&self, _claim: &LeaseClaim) -> Result<Acquisition<u64>> {
        let mut script = self.script();
        script.acquire_calls += 1;
        script.acquire.pop_front().unwrap_or_else(|| {
            Ok(Acquisition::Held(LeaseView {
                holder: Some("someone-else".to_owned()),
                fencing_token: Some(FencingToken(1)),
                acquirable_in: None,
                ..Default::default()
            }))
        })
    }

    async fn renew(&self, grant: &u64) -> Result<Renewal<u64>> {
        let renew = {
            let mut script = self.script();
            script.renew_calls.push(Instant::now());
            script.renew
        };
        match renew {
            RenewScript::Renew => Ok(Renewal::Renewed(*grant)),
            RenewScript::Reject => Ok(Renewal::Lost(None)),
            RenewScript::Unauthorized => Err(Error::unauthorized("no update on leases")),
            RenewScript::Hang => std::future::pending().await,
            RenewScript::Panic => panic!("the fake store panics in renew"),
            RenewScript::Late(delay) => {
                tokio::time::advance(delay).await;
                Ok(Renewal::Renewed(*grant))
            }
        }
    }

    async fn release(&self, _grant: &u64) -> Result<()> {
        Ok(())
    }

    fn watch(&self) -> LeaseWatch {
        match self.script().watch.take() {
            Some(receiver) => UnboundedReceiverStream::new(receiver).boxed(),
            None => futures_util::stream::pending().boxed(),
        }
    }

    async fn publish_candidate(&self, _: &CandidateRecord, _: Duration) -> Result<()> {
        if self.script().publish_hangs {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        Ok(Vec::new())
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        Ok(())
    }
}

fn acquired(token: u64) -> Result<Acquisition<u64>> {
    Ok(Acquisition::Acquired {
        grant: token,
        fencing_token: FencingToken(token),
    })
}

fn election(store: FakeStore) -> Election<FakeStore> {
    Election::new(
        store,
        "engine",
        Some("me"),
        LeaderElectionOptions::default(),
        false,
    )
    .expect("valid election")
}

fn loss_reasons(events: &[LeaderElectionEvent]) -> Vec<LossReason> {
    events
        .iter()
        .filter_map(|e| match e {
            LeaderElectionEvent::LostLeadership { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

async fn drain(stream: &mut leader_election_abstractions::EventStream) -> Vec<LeaderElectionEvent> {
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), stream.next()).await
    {
        events.push(event);
    }
    events
}

#[tokio::test(start_paused = true)]
async fn backend_errors_are_retried_with_backoff_and_never_panic() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    for _ in 0..100 {
        store.then_acquire(Err(Error::backend("holderIdentity: expected string")));
    }
    let election = election(store.clone());
    election.start().await.expect("start");
    sleep(Duration::from_secs(60)).await;
    let calls = store.script().acquire_calls;
    assert!(!election.is_leader());
    // Backoff doubles from 2 s up to the 15 s lease: about eight tries a minute,
    // far from the thirty that fixed 2 s polling would make.
    assert!((4..=12).contains(&calls), "{calls} attempts in a minute");
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn stale_watch_views_are_ignored_and_newer_holders_depose_the_leader() {
    let (store, feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(5));
    let election = election(store);
    let mut events = election.subscribe();
    election.start().await.expect("start");
    let guard = election.wait_for_leadership().await.expect("leads");
    assert_eq!(guard.fencing_token(), FencingToken(5));

    // A view from before our term (token 4, free) must not end it.
    feed.send(Ok(LeaseView {
        holder: None,
        fencing_token: Some(FencingToken(4)),
        acquirable_in: None,
        ..Default::default()
    }))
    .expect("feed");
    sleep(Duration::from_millis(10)).await;
    assert!(election.is_leader(), "a stale view deposed the leader");

    feed.send(Ok(LeaseView {
        holder: Some("usurper".into()),
        fencing_token: Some(FencingToken(6)),
        acquirable_in: Some(Duration::from_secs(15)),
        ..Default::default()
    }))
    .expect("feed");
    sleep(Duration::from_millis(10)).await;
    assert!(!election.is_leader());
    assert!(!guard.is_valid());
    assert_eq!(election.current_leader_id().as_deref(), Some("usurper"));
    let seen = drain(&mut events).await;
    assert_eq!(loss_reasons(&seen), vec![LossReason::LostToOtherHolder]);
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn renewal_rejected_by_the_backend_ends_the_term() {
    let (store, _feed) = FakeStore::new(RenewScript::Reject);
    store.then_acquire(acquired(1));
    let election = election(store);
    let mut events = election.subscribe();
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    sleep(Duration::from_secs(6)).await;
    assert!(!election.is_leader());
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::RenewRejected]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn leader_keeps_leading_through_errors_until_exactly_its_deadline() {
    let (store, _feed) = FakeStore::new(RenewScript::Unauthorized);
    store.then_acquire(acquired(1));
    let election = election(store);
    let mut events = election.subscribe();
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    let acquired_at = Instant::now();
    sleep(Duration::from_millis(14_990)).await;
    assert!(election.is_leader(), "stepped down before the deadline");
    sleep(Duration::from_millis(20)).await;
    assert!(!election.is_leader(), "still leading after the deadline");
    assert!(acquired_at.elapsed() >= Duration::from_secs(15));
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::DeadlineExpired]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn run_while_leader_cancels_work_at_the_deadline_when_renewals_hang() {
    let (store, _feed) = FakeStore::new(RenewScript::Hang);
    store.then_acquire(acquired(1));
    let election = election(store);
    election.start().await.expect("start");
    let started = Instant::now();
    let outcome = election
        .run_while_leader(|_guard| std::future::pending::<()>())
        .await
        .expect("run");
    assert_eq!(
        outcome,
        RunOutcome::Ended(LossReason::DeadlineExpired),
        "work must be cancelled, not finish"
    );
    let lasted = started.elapsed();
    assert!(
        lasted <= Duration::from_secs(15),
        "work outlived the lease: {lasted:?}"
    );
    assert!(
        lasted >= Duration::from_secs(14),
        "work cancelled early: {lasted:?}"
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn callbacks_see_events_in_order() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(3));
    let election = election(store);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
    let became = election
        .on_became_leader(move |token| a.lock().expect("lock").push(format!("became {token}")));
    let lost = election
        .on_lost_leadership(move |reason| b.lock().expect("lock").push(format!("lost {reason}")));
    let changed = election.on_leader_changed(move |old, new| {
        c.lock()
            .expect("lock")
            .push(format!("changed {old:?} -> {new:?}"))
    });
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    election.stop().await.expect("stop");
    became.finished().await;
    lost.finished().await;
    changed.finished().await;
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.contains(&"became 3".to_owned()), "{seen:?}");
    assert!(seen.contains(&"lost stopped".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"changed None -> Some(\"me\")".to_owned()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"changed Some(\"me\") -> None".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_callback_handle_unregisters_the_callback() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(1));
    let election = election(store);
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    drop(election.on_event(move |_| *counter.lock().expect("lock") += 1));
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    sleep(Duration::from_millis(10)).await;
    assert_eq!(*calls.lock().expect("lock"), 0);
    election.stop().await.expect("stop");
}

/// Lets the engine task run until it has nothing left to do at this instant.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// A leader (health-based or not) whose first renewal, at 5 s, hangs: the
/// engine is inside a store call when the test acts.
async fn leader_in_a_hung_renewal(
    health_based: bool,
) -> (
    Election<FakeStore>,
    leader_election_abstractions::EventStream,
    leader_election_abstractions::LeadershipGuard,
) {
    let (store, _feed) = FakeStore::new(RenewScript::Hang);
    store.then_acquire(acquired(1));
    let election = Election::new(
        store,
        "engine",
        Some("me"),
        LeaderElectionOptions::default(),
        health_based,
    )
    .expect("valid election");
    let events = election.subscribe();
    election.start().await.expect("start");
    let guard = election.wait_for_leadership().await.expect("leads");
    sleep(Duration::from_millis(5_100)).await;
    assert!(election.is_leader());
    (election, events, guard)
}

/// Runs `action` (stop or resign) beside the hung renewal: readers must see
/// the term end before it returns, and it returns within one renew interval.
async fn ends_the_term_at_once<F>(election: &Election<FakeStore>, what: &str, action: F)
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let acting = tokio::spawn(action);
    settle().await;
    assert!(
        !election.is_leader(),
        "{what} must end the term for readers while the renewal is in flight"
    );
    let asked = Instant::now();
    acting.await.expect("join").expect(what);
    assert!(
        asked.elapsed() <= Duration::from_secs(5),
        "{what} waited {:?} behind the hung call",
        asked.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn resign_ends_the_term_at_once_while_a_renewal_hangs() {
    let (election, mut events, guard) = leader_in_a_hung_renewal(false).await;
    let resigning = election.clone();
    ends_the_term_at_once(
        &election,
        "resign()",
        async move { resigning.resign().await },
    )
    .await;
    assert!(!guard.is_valid(), "the guard must fire at once");
    assert_eq!(guard.loss_reason(), Some(LossReason::Resigned));
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::Resigned]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn stop_ends_the_term_at_once_while_a_renewal_hangs() {
    let (election, _events, guard) = leader_in_a_hung_renewal(false).await;
    let stopping = election.clone();
    ends_the_term_at_once(&election, "stop()", async move { stopping.stop().await }).await;
    assert_eq!(guard.loss_reason(), Some(LossReason::Stopped));
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_score_ends_the_term_at_once_while_a_renewal_hangs() {
    use leader_election_abstractions::HealthBasedLeaderElection;
    let (election, mut events, _guard) = leader_in_a_hung_renewal(true).await;
    election.update_health(false, None).await.expect("health");
    assert!(
        !election.is_leader(),
        "an unhealthy leader must stop leading at once"
    );
    sleep(Duration::from_secs(6)).await;
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::Unhealthy]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_answered_after_the_deadline_does_not_revive_the_term() {
    // The renewal starts at 5 s and its answer arrives at 17 s: after the
    // term's deadline (15 s) although before start + lease (20 s).
    let (store, _feed) = FakeStore::new(RenewScript::Late(Duration::from_secs(12)));
    store.then_acquire(acquired(1));
    let election = election(store);
    let mut events = election.subscribe();
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    let acquired_at = Instant::now();
    sleep(Duration::from_millis(5_100)).await;
    settle().await;
    assert!(acquired_at.elapsed() >= Duration::from_secs(17));
    assert!(
        !election.is_leader(),
        "a late renewal brought an ended term back to life"
    );
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::DeadlineExpired]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_lease_recreated_by_another_client_ends_the_term_despite_its_lower_token() {
    let (store, feed) = FakeStore::new(RenewScript::Renew);
    store.script().incarnation = Some("uid-1".into());
    store.then_acquire(acquired(7));
    let election = election(store);
    let mut events = election.subscribe();
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");

    // A late view of our own object with a lower token is still ignored.
    feed.send(Ok(LeaseView {
        holder: Some("previous".into()),
        fencing_token: Some(FencingToken(6)),
        incarnation: Some("uid-1".into()),
        ..Default::default()
    }))
    .expect("feed");
    sleep(Duration::from_millis(10)).await;
    assert!(
        election.is_leader(),
        "a stale view of our own lease deposed us"
    );

    // Deleted and re-created by another client: its tokens start again at 0.
    feed.send(Ok(LeaseView {
        holder: Some("client-go".into()),
        fencing_token: Some(FencingToken(0)),
        acquirable_in: Some(Duration::from_secs(15)),
        incarnation: Some("uid-2".into()),
    }))
    .expect("feed");
    sleep(Duration::from_millis(10)).await;
    assert!(
        !election.is_leader(),
        "a re-created lease held by another was ignored"
    );
    assert_eq!(election.current_leader_id().as_deref(), Some("client-go"));
    assert_eq!(
        loss_reasons(&drain(&mut events).await),
        vec![LossReason::LostToOtherHolder]
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn the_term_never_outlasts_what_the_backend_guarantees() {
    let (store, _feed) = FakeStore::new(RenewScript::Hang);
    store.script().term_limit = Some(Duration::from_secs(9));
    store.then_acquire(acquired(1));
    let election = election(store);
    assert_eq!(election.term_limit(), Duration::from_secs(9));
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    sleep(Duration::from_millis(8_990)).await;
    assert!(election.is_leader());
    sleep(Duration::from_millis(20)).await;
    assert!(!election.is_leader(), "led past the backend's guarantee");
    election.stop().await.expect("stop");
}

#[test]
fn options_whose_renewals_do_not_fit_the_backends_guarantee_are_refused() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.script().term_limit = Some(Duration::from_secs(4));
    let error = Election::new(
        store,
        "engine",
        Some("me"),
        LeaderElectionOptions::default(),
        false,
    )
    .expect_err("renew_interval 5 s cannot fit a 4 s guarantee");
    assert!(error.to_string().contains("renew_interval"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn calls_that_need_a_running_engine_say_not_started_before_start() {
    use leader_election_abstractions::HealthBasedLeaderElection;
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    let election = election(store);
    assert!(matches!(election.resign().await, Err(Error::NotStarted)));
    assert!(matches!(
        election.wait_for_leadership().await,
        Err(Error::NotStarted)
    ));
    assert!(matches!(
        election.run_while_leader(|_| async {}).await,
        Err(Error::NotStarted)
    ));
    // Health may be set before start: it is what the election starts with.
    election
        .update_health(true, None)
        .await
        .expect("health before start");
    election.stop().await.expect("stop");
    assert!(matches!(election.resign().await, Err(Error::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn run_while_leader_says_why_the_term_ended() {
    let (store, _feed) = FakeStore::new(RenewScript::Reject);
    store.then_acquire(acquired(1));
    let rejected = election(store);
    rejected.start().await.expect("start");
    let outcome = rejected
        .run_while_leader(|_| std::future::pending::<()>())
        .await
        .expect("run");
    assert_eq!(outcome, RunOutcome::Ended(LossReason::RenewRejected));
    rejected.stop().await.expect("stop");

    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(1));
    let election = election(store);
    election.start().await.expect("start");
    let running = tokio::spawn({
        let election = election.clone();
        async move {
            election
                .run_while_leader(|_| std::future::pending::<()>())
                .await
        }
    });
    sleep(Duration::from_secs(1)).await;
    election.stop().await.expect("stop");
    let outcome = running.await.expect("join").expect("run");
    assert_eq!(outcome, RunOutcome::Ended(LossReason::Stopped));
}

#[tokio::test(start_paused = true)]
async fn ending_within_fires_the_margin_before_the_deadline_when_renewals_hang() {
    let (store, _feed) = FakeStore::new(RenewScript::Hang);
    store.then_acquire(acquired(1));
    let election = election(store);
    election.start().await.expect("start");
    let guard = election.wait_for_leadership().await.expect("leads");
    let acquired_at = Instant::now();
    guard.ending_within(Duration::from_secs(4)).await;
    let fired = acquired_at.elapsed();
    // Lease 15 s from the acquisition, so 4 s before it: at 11 s.
    assert!(
        fired >= Duration::from_secs(11) && fired <= Duration::from_millis(11_010),
        "fired at {fired:?}, not 4 s before the 15 s deadline"
    );
    assert!(
        guard.is_valid(),
        "the term itself still holds until its deadline"
    );
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn ending_within_keeps_waiting_while_renewals_move_the_deadline_on() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(1));
    let election = election(store);
    election.start().await.expect("start");
    let guard = election.wait_for_leadership().await.expect("leads");
    // Renewals every 5 s keep at least 10 s of a 15 s lease ahead.
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        guard.ending_within(Duration::from_secs(8)),
    )
    .await;
    assert!(waited.is_err(), "fired although every renewal succeeded");
    election.resign().await.expect("resign");
    tokio::time::timeout(
        Duration::from_secs(1),
        guard.ending_within(Duration::from_secs(8)),
    )
    .await
    .expect("fires at once when the term ends");
    election.stop().await.expect("stop");
}

/// Found by the deterministic simulation (Kubernetes seed 543): a leader
/// whose score dips below the minimum and recovers before its engine runs
/// has ended its term for readers, so the engine must still step down and
/// release the lease, not go on renewing a term nobody can see until its
/// deadline (which kept every candidate out for a whole term).
#[tokio::test(start_paused = true)]
async fn an_unhealthy_blip_while_leading_still_hands_over_at_once() {
    use leader_election_abstractions::{HealthBasedLeaderElection, StoreFactory};
    use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

    let options = LeaderElectionOptions {
        lease_duration: Duration::from_secs(10),
        renew_interval: Duration::from_secs(3),
        retry_interval: Duration::from_secs(1),
        grace_period: Duration::from_secs(2),
        ..LeaderElectionOptions::default()
    };
    let factory =
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options).expect("factory");
    let a = factory
        .election("blip")
        .candidate_id("a")
        .health_based()
        .build()
        .expect("blip");
    let b = factory
        .election("blip")
        .candidate_id("b")
        .health_based()
        .build()
        .expect("blip");
    a.start().await.expect("blip");
    a.wait_for_leadership().await.expect("blip");
    b.start().await.expect("blip");
    let mut events = a.subscribe();
    // Down and up again with no await in between: the engine sees only the
    // recovered score.
    a.update_health(false, None).await.expect("blip");
    a.update_health(true, None).await.expect("blip");
    assert!(!a.is_leader(), "the dip ends the term for readers at once");
    let started = Instant::now();
    let lost = drain(&mut events).await;
    assert_eq!(
        loss_reasons(&lost),
        vec![LossReason::Unhealthy],
        "LostLeadership comes with the dip, not at the deadline"
    );
    // The lease was released: a candidate (b, or a again, healthy now)
    // leads within a round trip, not after a's deadline.
    while !(a.is_leader() || b.is_leader()) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "nobody leads {:?} after the dip: the lease was not released",
            started.elapsed()
        );
        sleep(Duration::from_millis(10)).await;
    }
    println!("leading again after the dip: {:?}", started.elapsed());
    a.stop().await.expect("blip");
    b.stop().await.expect("blip");
}

// --- The level-triggered view (`watch_leadership`) and the probe check (`healthz`).

/// Waits (bounded, in virtual time: a guard against a hang only) until the
/// view satisfies `pred`, returning it.
async fn view_until(
    view: &mut tokio::sync::watch::Receiver<LeadershipState>,
    pred: impl FnMut(&LeadershipState) -> bool,
) -> LeadershipState {
    tokio::time::timeout(Duration::from_secs(600), view.wait_for(pred))
        .await
        .expect("the view reaches the state")
        .expect("the view's sender lives")
        .clone()
}

#[tokio::test(start_paused = true)]
async fn the_view_leaves_leading_exactly_at_the_deadline_when_renewals_hang() {
    let (store, _feed) = FakeStore::new(RenewScript::Hang);
    store.then_acquire(acquired(7));
    let election = election(store);
    let mut view = election.watch_leadership();
    assert_eq!(*view.borrow(), LeadershipState::NotStarted);
    let started = Instant::now();
    election.start().await.expect("start");
    // Every value the view shows while leading is one is_leader() agrees with.
    let checker = {
        let election = election.clone();
        let mut view = election.watch_leadership();
        tokio::spawn(async move {
            let (mut led, mut left) = (false, false);
            loop {
                let state = view.borrow_and_update().clone();
                match state {
                    LeadershipState::Leading { fencing_token } => {
                        assert_eq!(election.fencing_token(), Some(fencing_token));
                        led = true;
                    }
                    LeadershipState::Stopped { .. } => return left,
                    _ if led => {
                        assert!(!election.is_leader(), "the view left leading first");
                        left = true;
                    }
                    _ => {}
                }
                if view.changed().await.is_err() {
                    return left;
                }
            }
        })
    };
    let leading = view_until(&mut view, LeadershipState::is_leading).await;
    assert_eq!(leading.fencing_token(), Some(FencingToken(7)));
    assert!(election.is_leader());
    // One millisecond before the deadline (acquired at `started`, 15 s lease):
    // both still say leading.
    tokio::time::sleep_until(started + Duration::from_millis(14_999)).await;
    assert!(election.is_leader());
    assert!(view.borrow().is_leading(), "the view left leading early");
    let ended = view_until(&mut view, |s| !s.is_leading()).await;
    assert_eq!(
        Instant::now(),
        started + Duration::from_secs(15),
        "the view left leading at the deadline, not later: {ended:?}"
    );
    assert!(!election.is_leader());
    // The fake's next answer names another holder: following it.
    let following = view_until(&mut view, |s| {
        matches!(s, LeadershipState::Following { .. })
    })
    .await;
    assert_eq!(
        following,
        LeadershipState::Following {
            leader_id: "someone-else".into()
        }
    );
    election.stop().await.expect("stop");
    assert_eq!(
        *view.borrow(),
        LeadershipState::Stopped { error: None },
        "stopped when stop() returns"
    );
    let left = checker.await.expect("the checker's assertions held");
    assert!(left, "the checker saw the term end");
}

/// The engine of a health-based election spends most of its time in
/// publishing calls that hang (each cut off after one renew interval) while
/// its renewals fail: at the deadline it is inside one of them. The view
/// leaves `Leading` at the deadline all the same, on its own timer (it left
/// only when that call was cut off, seconds later, before that timer).
#[tokio::test(start_paused = true)]
async fn the_view_leaves_leading_at_the_deadline_while_the_engine_waits_on_another_call() {
    let (store, _feed) = FakeStore::new(RenewScript::Unauthorized);
    store.script().publish_hangs = true;
    store.then_acquire(acquired(5));
    let election = Election::new(
        store,
        "engine",
        Some("me"),
        LeaderElectionOptions::default(),
        true,
    )
    .expect("valid election");
    let mut view = election.watch_leadership();
    let started = Instant::now();
    election.start().await.expect("start");
    view_until(&mut view, LeadershipState::is_leading).await;
    view_until(&mut view, |s| !s.is_leading()).await;
    assert_eq!(Instant::now(), started + Duration::from_secs(15));
    assert!(!election.is_leader());
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn the_view_stays_leading_through_renewals_and_leaves_it_when_resign_returns() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(3));
    let election = election(store);
    let mut view = election.watch_leadership();
    election.start().await.expect("start");
    view_until(&mut view, LeadershipState::is_leading).await;
    view.borrow_and_update();
    // Four lease durations of renewals: the view never changes.
    sleep(Duration::from_secs(60)).await;
    assert!(!view.has_changed().expect("open"), "{:?}", *view.borrow());
    assert_eq!(view.borrow().fencing_token(), Some(FencingToken(3)));
    election.resign().await.expect("resign");
    assert!(!view.borrow().is_leading(), "still leading after resign()");
    assert!(!election.is_leader());
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn the_view_follows_the_holder_the_watch_reports() {
    let (store, feed) = FakeStore::new(RenewScript::Renew);
    let election = election(store);
    let mut view = election.watch_leadership();
    election.start().await.expect("start");
    view_until(&mut view, |s| {
        matches!(s, LeadershipState::Following { .. })
    })
    .await;
    feed.send(Ok(LeaseView {
        holder: Some("other".to_owned()),
        fencing_token: Some(FencingToken(9)),
        acquirable_in: Some(Duration::from_secs(10)),
        ..Default::default()
    }))
    .expect("feed");
    let state = view_until(
        &mut view,
        |s| matches!(s, LeadershipState::Following { leader_id } if leader_id == "other"),
    )
    .await;
    assert_eq!(state.fencing_token(), None);
    election.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_engine_ends_the_election_with_an_error_and_wakes_every_waiter() {
    let (store, _feed) = FakeStore::new(RenewScript::Panic);
    store.then_acquire(acquired(1));
    let election = election(store);
    let events = election.subscribe();
    let mut view = election.watch_leadership();
    election.start().await.expect("start");
    let guard = election.wait_for_leadership().await.expect("leads");
    assert_eq!(election.healthz(Duration::ZERO), Ok(()));
    // The first renewal (at 5 s) panics. Every wait below is bounded only
    // to turn a hang into a failure; none waits for the 15 s deadline.
    let bound = Duration::from_secs(6);
    let stopped = tokio::time::timeout(
        bound,
        view.wait_for(|s| matches!(s, LeadershipState::Stopped { .. })),
    )
    .await
    .expect("the view shows the failure")
    .expect("open")
    .clone();
    match stopped {
        LeadershipState::Stopped { error: Some(error) } => {
            assert!(error.contains("panicked"), "{error}")
        }
        other => panic!("expected stopped with an error, got {other:?}"),
    }
    tokio::time::timeout(bound, guard.lost())
        .await
        .expect("the guard's term ends");
    let seen: Vec<_> = tokio::time::timeout(bound, events.collect())
        .await
        .expect("the event stream ends");
    assert!(
        matches!(seen.first(), Some(LeaderElectionEvent::BecameLeader { .. })),
        "{seen:?}"
    );
    let waited = tokio::time::timeout(bound, election.wait_for_leadership())
        .await
        .expect("wait_for_leadership returns");
    assert!(
        matches!(&waited, Err(Error::Backend { message, .. }) if message.contains("panicked")),
        "{waited:?}"
    );
    match election.healthz(Duration::from_secs(3600)) {
        Err(Unhealthy::EngineFailed { error }) => assert!(error.contains("panicked"), "{error}"),
        other => panic!("expected unhealthy, got {other:?}"),
    }
    assert!(!election.is_leader());
    let error = election.stop().await.expect_err("stop reports the panic");
    assert!(error.to_string().contains("panicked"), "{error}");
}

#[test]
fn an_engine_whose_runtime_shuts_down_ends_the_election_with_an_error() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    let election = election(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(election.start()).expect("start");
    assert_eq!(election.healthz(Duration::ZERO), Ok(()));
    drop(runtime);
    match election.healthz(Duration::ZERO) {
        Err(Unhealthy::EngineFailed { error }) => assert!(error.contains("dropped"), "{error}"),
        other => panic!("expected unhealthy, got {other:?}"),
    }
    assert!(matches!(
        *election.watch_leadership().borrow(),
        LeadershipState::Stopped { error: Some(_) }
    ));
}

/// A fake clock (allowed only here) whose readings follow Tokio's paused
/// clock but whose timers never fire for a later instant: the engine task of
/// an election on it is starved, as on a runtime whose threads are blocked.
/// It acquires (due at once, and the store answers at once) and then never
/// renews nor steps down.
#[derive(Debug)]
struct FakeClockWithoutTimers;

impl leader_election_abstractions::Clock for FakeClockWithoutTimers {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(
        &self,
        deadline: Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        if deadline <= Instant::now() {
            // Due already: the engine's first attempt runs, nothing later.
            Box::pin(std::future::ready(()))
        } else {
            Box::pin(std::future::pending())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_overdue_on_renewal_beyond_the_tolerance_is_unhealthy() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(4));
    let election = election(store)
        .with_clock(Arc::new(FakeClockWithoutTimers))
        .expect("clock");
    let started = Instant::now();
    election.start().await.expect("start");
    election.wait_for_leadership().await.expect("leads");
    let tolerance = Duration::from_secs(5);
    let deadline = started + Duration::from_secs(15);
    // Leading, then past the deadline within the tolerance: healthy.
    assert_eq!(election.healthz(tolerance), Ok(()));
    tokio::time::sleep_until(deadline + tolerance).await;
    assert!(
        !election.is_leader(),
        "is_leader() ends at the deadline anyway"
    );
    assert_eq!(election.healthz(tolerance), Ok(()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        election.healthz(tolerance),
        Err(Unhealthy::RenewalOverdue {
            fencing_token: FencingToken(4),
            overdue_by: tolerance + Duration::from_millis(1),
        })
    );
    election.stop().await.expect("stop");
    assert_eq!(election.healthz(tolerance), Ok(()), "stopped cleanly");
}

#[tokio::test(start_paused = true)]
async fn followers_and_renewing_leaders_are_healthy() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.then_acquire(acquired(2));
    let leader = election(store);
    let (other, _other_feed) = FakeStore::new(RenewScript::Renew);
    let follower = election(other);
    assert_eq!(leader.healthz(Duration::ZERO), Ok(()), "not started");
    leader.start().await.expect("start");
    follower.start().await.expect("start");
    leader.wait_for_leadership().await.expect("leads");
    for _ in 0..12 {
        sleep(Duration::from_secs(5)).await;
        assert_eq!(leader.healthz(Duration::ZERO), Ok(()));
        assert_eq!(follower.healthz(Duration::ZERO), Ok(()));
    }
    assert!(leader.is_leader());
    leader.stop().await.expect("stop");
    follower.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_sees_a_release_acquires_at_once() {
    let (store, feed) = FakeStore::new(RenewScript::Renew);
    let election = election(store.clone());
    election.start().await.expect("start");
    // The first attempt finds the lease held with no hint of when it frees:
    // the next attempt of its own would be a retry interval (2 s) away.
    settle().await;
    assert_eq!(store.script().acquire_calls, 1);
    assert!(!election.is_leader());

    // The holder releases; the watch says so.
    store.then_acquire(acquired(2));
    let released_at = Instant::now();
    feed.send(Ok(LeaseView {
        holder: None,
        fencing_token: Some(FencingToken(1)),
        acquirable_in: None,
        ..Default::default()
    }))
    .expect("feed");
    let guard = election.wait_for_leadership().await.expect("leads");
    assert_eq!(guard.fencing_token(), FencingToken(2));
    assert_eq!(store.script().acquire_calls, 2);
    // In virtual time: no retry tick, backoff or jitter between the watch
    // event and the acquiring call.
    assert_eq!(
        released_at.elapsed(),
        Duration::ZERO,
        "the follower waited before acquiring a released lease"
    );
    election.stop().await.expect("stop");
}

/// Publishing the candidate record shares the engine with renewals: a
/// publish that hangs (cut off after one renew interval) started just before
/// a renewal fell due used to hold that renewal up by up to a renew interval,
/// and a leader renewing twice per term limit lost its term on a healthy
/// backend (simulation seed 139952, Kubernetes). Renewals now go out when
/// due, whatever the publishing does.
#[tokio::test(start_paused = true)]
async fn publishing_the_candidate_record_never_holds_up_a_due_renewal() {
    let (store, _feed) = FakeStore::new(RenewScript::Renew);
    store.script().publish_hangs = true;
    store.script().term_limit = Some(Duration::from_secs(10));
    store.then_acquire(acquired(5));
    let options = LeaderElectionOptions {
        lease_duration: Duration::from_secs(12),
        renew_interval: Duration::from_secs(5),
        retry_interval: Duration::from_millis(1_300),
        ..LeaderElectionOptions::default()
    };
    let election =
        Election::new(store.clone(), "engine", Some("me"), options, true).expect("valid election");
    let mut events = election.subscribe();
    election.start().await.expect("start");
    sleep(Duration::from_secs(120)).await;
    let calls = store.script().renew_calls.clone();
    for pair in calls.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap <= Duration::from_secs(5) + Duration::from_millis(1),
            "a renewal went out {gap:?} after the one before (renew interval 5 s)"
        );
    }
    assert!(calls.len() >= 23, "renewals in 120 s: {}", calls.len());
    assert!(loss_reasons(&drain(&mut events).await).is_empty());
    assert!(election.is_leader());
    election.stop().await.expect("stop");
}
