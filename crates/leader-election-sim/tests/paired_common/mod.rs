//! The script the paired scenarios share (`paired.rs` for Consul,
//! `paired_kubernetes.rs` for Kubernetes): a leader leads and a follower
//! sees it; then the leader is cut off (both directions black-holed) and
//! the backend may disturb it further; the follower must take over only
//! once the leader has stepped down, and no earlier than the backend says.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{
    LeaderElection, LeaderElectionEvent, LeaderElectionOptions, LossReason, StoreFactory,
};
use leader_election_sim::clock::PauseGate;
use leader_election_sim::link::{Cut, Latency, Link};
use leader_election_sim::rng::Rng;
use leader_election_testkit::{
    unique_resource, Fault, FaultHandle, FaultProxy, LeadershipRecorder,
};
use tokio::time::Instant;

/// The Kubernetes real-server suite's timing, which the Kubernetes pairs
/// use: lease 2 s, renewals every 250 ms, retries every 500 ms, grace 1 s.
pub fn kubernetes_options() -> LeaderElectionOptions {
    leader_election_testkit::timing_options(
        Duration::from_secs(2),
        Duration::from_millis(250),
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
}

/// A health-based election `id` for `resource` from `factory`.
pub fn build<F: StoreFactory>(factory: &F, resource: &str, id: &str) -> Arc<dyn LeaderElection>
where
    F::Store: 'static,
{
    Arc::new(
        factory
            .election(resource)
            .candidate_id(id)
            .health_based()
            .build()
            .expect("election"),
    )
}

/// A simulated candidate's link: 0.2–2 ms each way, no duplicates.
pub fn sim_link(rng: Rng) -> Link {
    let latency = Latency {
        min: Duration::from_micros(200),
        max: Duration::from_millis(2),
        duplicate: 0.0,
    };
    Link::new(rng, latency, PauseGate::default())
}

/// The Consul scenarios' timing, as in the Consul real-agent suite's
/// safety-window test: lease 2 s, renewals and retries every 500 ms, grace
/// 500 ms, so the lock-delay is 2.5 s ([`CONSUL_LOCK_DELAY`]).
pub fn consul_options() -> LeaderElectionOptions {
    leader_election_testkit::timing_options(
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
}

/// The lock-delay [`consul_options`] give: lease + grace.
pub const CONSUL_LOCK_DELAY: Duration = Duration::from_millis(2500);

/// The Consul configuration of the simulated and real-agent Consul
/// scenarios: sessions down to 1 s (the test agent's `session_ttl_min`),
/// requests bounded at 2 s, blocking queries of 10 s.
pub fn consul_config(address: String) -> leader_election_consul::ConsulConfig {
    leader_election_consul::ConsulConfig {
        address,
        session_ttl_min: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        watch_wait: Duration::from_secs(10),
        ..leader_election_consul::ConsulConfig::default()
    }
}

/// The switch that black-holes (or heals) both directions of `link`.
pub fn link_cut(link: Link) -> Box<dyn Fn(bool)> {
    Box::new(move |cut| {
        let cut = cut.then_some(Cut::BlackHole);
        link.set_cut(cut, cut);
    })
}

/// A real candidate: `election` behind `proxy` (kept in `proxies`), cut
/// off by black-holing the proxy.
pub fn behind_proxy(
    proxy: FaultProxy,
    proxies: &mut Vec<FaultProxy>,
    election: Arc<dyn LeaderElection>,
) -> Candidate {
    let handle: FaultHandle = proxy.handle();
    proxies.push(proxy);
    Candidate {
        election,
        cut: Box::new(move |cut| {
            handle.set_fault(if cut {
                Fault::BlackHole
            } else {
                Fault::PassThrough
            });
        }),
    }
}

/// A boxed future borrowing the backend.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A candidate of a paired scenario and the switch that cuts it off.
pub struct Candidate {
    /// The election.
    pub election: Arc<dyn LeaderElection>,
    /// `true` black-holes both directions to its server; `false` heals.
    pub cut: Box<dyn Fn(bool)>,
}

/// Where a paired scenario runs: the simulation or the real server.
pub trait Backend {
    /// A candidate `id` for `resource` (`leader`: the one that leads first).
    fn candidate<'a>(
        &'a mut self,
        resource: &'a str,
        id: &'a str,
        leader: bool,
        options: LeaderElectionOptions,
    ) -> BoxFuture<'a, Candidate>;

    /// Disturbs the cut-off leader further (Consul: deregisters its node).
    fn disturb<'a>(&'a mut self, resource: &'a str) -> BoxFuture<'a, ()>;
}

/// What a run of the script came to: the parts both runs must agree on.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Who led, in order.
    pub leaders: Vec<String>,
    /// Why the first leader's term ended.
    pub leader_loss: Option<LossReason>,
    /// The leader's `is_leader()` was false when the follower's began.
    pub stepped_down_first: bool,
    /// The follower's token is above the leader's.
    pub tokens_grew: bool,
    /// The follower took over no earlier than the script's `earliest`.
    pub not_too_early: bool,
}

impl Outcome {
    /// The outcome both runs must come to: the leader steps down at its
    /// deadline and the follower takes over after it, with a higher token.
    pub fn handed_over() -> Self {
        Self {
            leaders: vec!["leader".into(), "follower".into()],
            leader_loss: Some(LossReason::DeadlineExpired),
            stepped_down_first: true,
            tokens_grew: true,
            not_too_early: true,
        }
    }
}

/// Polls `condition` every millisecond; panics after `limit`.
pub async fn wait_for(what: &str, limit: Duration, condition: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// The first loss reason among the events already in `events`.
pub async fn first_loss(
    events: &mut leader_election_abstractions::EventStream,
) -> Option<LossReason> {
    use futures_util::StreamExt;
    let mut loss = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), events.next()).await
    {
        if let LeaderElectionEvent::LostLeadership { reason, .. } = event {
            loss.get_or_insert(reason);
        }
    }
    loss
}

/// A leader that leads and a follower that sees it, a renewal later.
pub struct Pair {
    /// The first leader.
    pub leader: Candidate,
    /// The follower.
    pub follower: Candidate,
    /// The leader's events since before it started.
    pub leader_events: leader_election_abstractions::EventStream,
    /// Samples both candidates' `is_leader()`.
    pub recorder: LeadershipRecorder,
    /// The leader's first term.
    pub first: leader_election_abstractions::LeadershipGuard,
}

/// Starts "leader", waits for it to lead, starts "follower", waits for it
/// to see the leader, then lets a renewal pass.
pub async fn start_pair(
    backend: &mut impl Backend,
    resource: &str,
    options: &LeaderElectionOptions,
) -> Pair {
    let leader = backend
        .candidate(resource, "leader", true, options.clone())
        .await;
    let leader_events = leader.election.subscribe();
    let recorder = LeadershipRecorder::start(Duration::from_millis(1));
    recorder.watch(&leader.election);
    leader.election.start().await.expect("start the leader");
    let first = leader
        .election
        .wait_for_leadership()
        .await
        .expect("the leader leads");
    let follower = backend
        .candidate(resource, "follower", false, options.clone())
        .await;
    recorder.watch(&follower.election);
    follower.election.start().await.expect("start the follower");
    wait_for(
        "the follower to see the leader",
        Duration::from_secs(30),
        || follower.election.current_leader_id().as_deref() == Some("leader"),
    )
    .await;
    // A renewal passes, so the deadline is a renewal's.
    tokio::time::sleep(options.renew_interval * 3 / 2).await;
    Pair {
        leader,
        follower,
        leader_events,
        recorder,
        first,
    }
}

/// Runs the script on `backend` with `options`: cut the leader off, then
/// (with `disturb`) disturb it; the follower must not lead before
/// `earliest` after the cut.
pub async fn cut_off_script(
    backend: &mut impl Backend,
    label: &str,
    options: LeaderElectionOptions,
    disturb: bool,
    earliest: Duration,
) -> Outcome {
    let resource = unique_resource("paired");
    let Pair {
        leader,
        follower,
        mut leader_events,
        recorder,
        first,
    } = start_pair(backend, &resource, &options).await;
    assert!(
        leader.election.is_leader(),
        "{label}: the leader lost its lease early"
    );

    (leader.cut)(true);
    if disturb {
        backend.disturb(&resource).await;
    }
    let took_over = wait_for("the follower to take over", Duration::from_secs(30), || {
        follower.election.is_leader()
    })
    .await;
    let stepped_down_first = !leader.election.is_leader();
    recorder.sample_now();
    let second = follower
        .election
        .wait_for_leadership()
        .await
        .expect("the follower leads");
    let report = recorder.finish();
    let leader_loss = first_loss(&mut leader_events).await;
    println!(
        "{label}: the follower led {took_over:?} after the cut{} (no earlier than {earliest:?}); terms {:?}",
        if disturb { " and the disturbance" } else { "" },
        report.intervals.iter().map(|i| (&i.candidate_id, i.fencing_token)).collect::<Vec<_>>(),
    );
    (leader.cut)(false);
    let _ = follower.election.stop().await;
    let _ = leader.election.stop().await;
    report.assert_safe();
    Outcome {
        leaders: report.leaders().iter().map(|s| (*s).to_owned()).collect(),
        leader_loss,
        stepped_down_first,
        tokens_grew: second.fencing_token() > first.fencing_token(),
        not_too_early: took_over >= earliest,
    }
}
