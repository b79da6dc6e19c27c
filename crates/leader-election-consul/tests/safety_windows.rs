//! Two ways Consul could let a second candidate lead while the first still
//! believes it leads, against real agents. Run with
//! `cargo xtask integration consul`, which starts a Consul server agent and a
//! client agent joined to it.
//!
//! - A session Consul invalidates before its TTL (its agent leaves, its node
//!   is deregistered) frees the lock after the session's lock-delay alone,
//!   while the leader, cut off from its agent, keeps leading until its local
//!   deadline: the lock-delay must outlast that deadline.
//! - Two elections (two processes) configured with the same candidate id: a
//!   lock held under our id by another session is someone else's.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{LeaderElection, LeaderElectionOptions};
use leader_election_testkit::{unique_resource, Fault, LeadershipRecorder, LeadershipReport};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The measurement: lease 2 s, grace 0.5 s.
fn short_grace_options() -> LeaderElectionOptions {
    leader_election_testkit::timing_options(
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
}

async fn call(
    method: reqwest::Method,
    agent: SocketAddr,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = reqwest::Client::new().request(method, format!("http://{agent}/v1/{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Makes sure the client agent's node is in the catalog (an earlier run may
/// have deregistered it), registering it again under its own node id.
async fn ensure_client_node_registered() {
    let node = support::client_agent_node();
    let server = support::agent_address();
    let present = call(
        reqwest::Method::GET,
        server,
        &format!("catalog/node/{node}"),
        None,
    )
    .await;
    if !present.is_null() {
        return;
    }
    let agent = call(
        reqwest::Method::GET,
        support::client_agent_address(),
        "agent/self",
        None,
    )
    .await;
    let id = agent["Config"]["NodeID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    call(
        reqwest::Method::PUT,
        server,
        "catalog/register",
        Some(json!({"ID": id, "Node": node, "Address": "127.0.0.1"})),
    )
    .await;
}

/// Polls `condition` every millisecond; panics after `limit`.
async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// The gap between the end of `first`'s last term and the start of
/// `second`'s first term after it (negative: they overlapped).
fn print_handover(report: &LeadershipReport, first: &str, second: &str) {
    let ended = report
        .intervals
        .iter()
        .filter(|i| i.candidate_id == first)
        .map(|i| i.end)
        .max();
    let began = report
        .intervals
        .iter()
        .filter(|i| i.candidate_id == second)
        .map(|i| i.start)
        .min();
    if let (Some(ended), Some(began)) = (ended, began) {
        if began >= ended {
            println!(
                "consul: {second} began leading {:?} after {first} stopped",
                began - ended
            );
        } else {
            println!(
                "consul: {second} began leading {:?} BEFORE {first} stopped",
                ended - began
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul server and client agent: cargo xtask integration consul"]
async fn leader_whose_node_is_deregistered_while_cut_off_stops_before_the_lock_is_free() {
    ensure_client_node_registered().await;
    let options = short_grace_options();
    let resource = unique_resource("early-invalidation");
    // The leader talks to the client agent, the follower to the server.
    let via_client = support::provider_for("consul-client", support::client_agent_address());
    let via_server = support::consul_provider();
    let (leader, leader_proxy) = via_client
        .concrete(&resource, "leader", options.clone())
        .await
        .expect("leader");
    let lock_delay = leader.store().lock_delay();
    let leader: Arc<dyn LeaderElection> = Arc::new(leader);
    leader.start().await.expect("start leader");
    leader
        .wait_for_leadership()
        .await
        .expect("the leader leads");
    let (follower, _) = via_server
        .concrete(&resource, "follower", options.clone())
        .await
        .expect("follower");
    let follower: Arc<dyn LeaderElection> = Arc::new(follower);

    let recorder = LeadershipRecorder::start(Duration::from_millis(1));
    recorder.watch(&leader);
    recorder.watch(&follower);
    follower.start().await.expect("start follower");
    wait_for(
        "the follower to observe the leader",
        Duration::from_secs(30),
        || follower.current_leader_id().as_deref() == Some("leader"),
    )
    .await;
    // Let a renewal pass, so the deadline is a renewal's, not the acquisition's.
    tokio::time::sleep(options.renew_interval * 3 / 2).await;
    assert!(
        leader.is_leader(),
        "the leader lost its lease before the fault"
    );

    // The leader's agent becomes unreachable, and Consul drops its node: the
    // session dies now, long before its TTL.
    leader_proxy.set_fault(Fault::BlackHole);
    call(
        reqwest::Method::PUT,
        support::agent_address(),
        "catalog/deregister",
        Some(json!({"Node": support::client_agent_node()})),
    )
    .await;
    let took_over = wait_for("the follower to take over", Duration::from_secs(30), || {
        follower.is_leader()
    })
    .await;
    recorder.sample_now();
    wait_for("the leader to step down", Duration::from_secs(30), || {
        !leader.is_leader()
    })
    .await;
    println!(
        "consul: the follower led {took_over:?} after the cut and the node's deregistration \
         (lock-delay {lock_delay:?})"
    );
    let report = recorder.finish();

    leader_proxy.set_fault(Fault::PassThrough);
    let _ = leader.stop().await;
    let _ = follower.stop().await;
    ensure_client_node_registered().await;

    print_handover(&report, "leader", "follower");
    report.assert_safe();
    assert_eq!(
        report.leaders(),
        ["leader", "follower"],
        "expected the leader's term, then the follower's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn two_processes_with_one_candidate_id_never_both_lead() {
    let options = support::test_options();
    let resource = unique_resource("same-id");
    // Each candidate gets its own factory (client, session): two processes.
    let provider = support::consul_provider();
    let (first, first_proxy) = provider
        .concrete(&resource, "twin", options.clone())
        .await
        .expect("first");
    let (second, _) = provider
        .concrete(&resource, "twin", options.clone())
        .await
        .expect("second");
    let first: Arc<dyn LeaderElection> = Arc::new(first);
    let second: Arc<dyn LeaderElection> = Arc::new(second);
    let recorder = LeadershipRecorder::start(Duration::from_millis(1));
    recorder.watch(&first);
    recorder.watch(&second);

    first.start().await.expect("start first");
    first.wait_for_leadership().await.expect("first leads");
    second.start().await.expect("start second");
    // The second sees a lock held under its own id, by another session: it
    // must wait, not take it back.
    tokio::time::sleep(options.lease_duration * 3).await;
    assert!(first.is_leader(), "the first lost its lease to its twin");
    assert!(!second.is_leader());

    // The first is cut off: the second takes over only once the first's
    // session has expired and the lock-delay has passed.
    first_proxy.set_fault(Fault::BlackHole);
    let took_over = wait_for("the twin to take over", Duration::from_secs(30), || {
        second.is_leader()
    })
    .await;
    recorder.sample_now();
    println!("consul: the twin took over {took_over:?} after the first was cut off");
    first_proxy.set_fault(Fault::PassThrough);
    // Healed, the first finds the lock held under its id by the second's
    // session, and waits.
    tokio::time::sleep(options.lease_duration * 2).await;
    assert!(
        second.is_leader(),
        "the healed first took the lock back from its twin"
    );

    second.stop().await.expect("stop second");
    wait_for("the first to lead again", Duration::from_secs(30), || {
        first.is_leader()
    })
    .await;
    // Record the term even if stop() ends it before the next tick.
    recorder.sample_now();
    first.stop().await.expect("stop first");
    let report = recorder.finish();
    report.assert_safe();
    assert_eq!(report.intervals.len(), 3, "terms: {:?}", report.intervals);
}
