//! Consul-specific behaviour against a real agent: operators and Consul
//! itself taking the lock away, agent restarts, and interop with the real
//! `consul lock` command and Go's `api.Lock`.
//! Run with `cargo xtask integration consul`.
//!
//! A black-holed leader is covered by the conformance suite's
//! `c2_leader_steps_down_at_local_deadline_when_cut_off`, which cuts the
//! leader off through its fault proxy and checks the overlap recorder.

mod support;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{LeaderElection, LossReason, StoreFactory};
use leader_election_testkit::{
    assert_reelected_with_higher_token_after_removal, assert_safe_through_outage, next_loss_reason,
    unique_resource, Outage,
};
use reqwest::Method;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::{timeout, Instant};

use support::{raw, PrivateAgent};

fn resource(tag: &str) -> String {
    unique_resource(tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn session_destroyed_behind_our_back_ends_leadership_at_once() {
    let provider = support::consul_provider();
    let resource = resource("destroy");
    let (leader, _) = provider
        .concrete(&resource, "a", support::test_options())
        .await
        .expect("candidate");
    let mut events = leader.subscribe();
    leader.start().await.expect("start");
    let first = leader.wait_for_leadership().await.expect("leads");
    let session = leader.store().session_id().await.expect("a session");

    let destroyed = Instant::now();
    raw(
        Method::PUT,
        support::agent_address(),
        &format!("session/destroy/{session}"),
    )
    .await;
    let reason = next_loss_reason(&mut events).await;
    println!(
        "consul: lost leadership {:?} after the session was destroyed ({reason})",
        destroyed.elapsed()
    );
    assert!(
        matches!(
            reason,
            LossReason::RenewRejected | LossReason::LostToOtherHolder
        ),
        "unexpected reason {reason}"
    );
    // It re-acquires with a new session once the lock-delay has passed.
    let second = leader.wait_for_leadership().await.expect("leads again");
    assert!(second.fencing_token() > first.fencing_token());
    leader.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn key_deleted_by_an_operator_deposes_the_leader_and_reelection_has_a_higher_token() {
    let provider = support::consul_provider();
    let resource = resource("delete");
    let (a, _) = provider
        .concrete(&resource, "a", support::test_options())
        .await
        .expect("a");
    let (b, _) = provider
        .concrete(&resource, "b", support::test_options())
        .await
        .expect("b");
    let path = format!("kv/{}", a.store().lock_key());
    let delete = async move { raw(Method::DELETE, support::agent_address(), &path).await };
    assert_reelected_with_higher_token_after_removal(
        &a,
        &b,
        Box::pin(async move {
            delete.await;
        }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul binary: cargo xtask integration consul"]
async fn agent_down_longer_than_the_lease_then_restarted_never_yields_two_leaders() {
    let mut agent = PrivateAgent::start("restart").await;
    let options = support::test_options();
    let factory = leader_election_consul::ConsulLeaderElectionFactory::new(
        support::config_for(agent.address()),
        options.clone(),
    )
    .expect("factory");
    let resource = resource("restart");
    let mut elections: Vec<Arc<dyn LeaderElection>> = Vec::new();
    for id in ["a", "b", "c"] {
        let election = factory
            .election(&resource)
            .candidate_id(id)
            .build()
            .expect("election");
        election.start().await.expect("start");
        elections.push(Arc::new(election));
    }
    assert_safe_through_outage(
        "consul",
        &elections,
        options.lease_duration,
        &mut KillAndRestart(&mut agent),
    )
    .await;
}

/// The agent process killed, then started again on the same data and ports.
struct KillAndRestart<'a>(&'a mut PrivateAgent);

#[async_trait::async_trait]
impl Outage for KillAndRestart<'_> {
    async fn begin(&mut self) {
        self.0.kill().await;
    }

    async fn end(&mut self) {
        self.0.restart().await;
    }
}

/// Our candidate leads while `peer` (another client of Consul's lock on our
/// key) waits; we stop and the peer takes the lock (it prints `LOCKED`);
/// until it prints `end`, our next candidate never leads and sees the peer's
/// session as the holder; then we lead again with a higher fencing token.
async fn hand_over_to_a_peer_and_back(
    tag: &str,
    peer: impl FnOnce(&str) -> tokio::process::Command,
    first_line: Option<&str>,
    end: &str,
) {
    let provider = support::consul_provider();
    let resource = resource(tag);
    let (ours, _) = provider
        .concrete(&resource, "ours", support::test_options())
        .await
        .expect("ours");
    ours.start().await.expect("start");
    let first = ours.wait_for_leadership().await.expect("ours leads");

    let mut child = peer(&ours.store().lock_key())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{tag}: spawning the peer: {e}"));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    if let Some(expected) = first_line {
        let line = lines.next_line().await.expect("read");
        assert_eq!(line.as_deref(), Some(expected));
    }
    // While we hold the lock, the peer must wait.
    let early = timeout(Duration::from_secs(2), lines.next_line()).await;
    assert!(
        early.is_err(),
        "{tag}: the peer got the lock while we held it: {early:?}"
    );
    assert!(ours.is_leader());

    let (follower, _) = provider
        .concrete(&resource, "follower", support::test_options())
        .await
        .expect("follower");
    follower.start().await.expect("start");
    ours.stop().await.expect("stop");
    let locked = timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{tag}: the peer never got the lock after our release"))
        .expect("read");
    assert_eq!(locked.as_deref(), Some("LOCKED"));
    let mut saw_peer = false;
    let last = loop {
        tokio::select! {
            line = lines.next_line() => break line.expect("read"),
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                assert!(!follower.is_leader(), "{tag}: we led while the peer held the lock");
                saw_peer |= follower
                    .current_leader_id()
                    .is_some_and(|id| id.starts_with("consul-session:"));
            }
        }
    };
    assert_eq!(
        last.as_deref(),
        Some(end),
        "{tag}: the peer did not end as expected"
    );
    assert!(saw_peer, "{tag}: we never saw the peer as the holder");
    let status = child.wait().await.expect("the peer exits");
    assert!(status.success(), "{tag}: the peer failed: {status}");
    let after = timeout(Duration::from_secs(30), follower.wait_for_leadership())
        .await
        .unwrap_or_else(|_| panic!("{tag}: we never led again after the peer released"))
        .expect("leads");
    assert!(after.fencing_token() > first.fencing_token());
    follower.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent and binary: cargo xtask integration consul"]
async fn consul_lock_command_and_our_candidates_never_hold_the_lock_together() {
    // `consul lock <prefix>/<resource>` locks `<prefix>/<resource>/.lock`: our key.
    let cli = |key: &str| {
        let prefix = key
            .strip_suffix("/.lock")
            .expect("lock keys end in /.lock")
            .to_owned();
        let mut command = tokio::process::Command::new(support::consul_binary());
        command
            .arg("lock")
            .arg(format!("-http-addr=http://{}", support::agent_address()))
            .arg(prefix)
            .arg("echo LOCKED; sleep 3; echo DONE");
        command
    };
    hand_over_to_a_peer_and_back("cli", cli, None, "DONE").await;
}

/// The Go program using `github.com/hashicorp/consul/api`'s `Lock`, built by xtask.
fn go_lock_peer() -> std::path::PathBuf {
    std::env::var_os("LE_CONSUL_LOCK_PEER_BIN")
        .map(Into::into)
        .unwrap_or_else(|| {
            panic!("LE_CONSUL_LOCK_PEER_BIN is not set: run `cargo xtask integration consul`, which builds the Go api.Lock peer")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent and the Go peer: cargo xtask integration consul"]
async fn go_api_lock_and_our_candidates_hand_the_lock_back_and_forth_safely() {
    let go = |key: &str| {
        let mut command = tokio::process::Command::new(go_lock_peer());
        command
            .arg(format!("-addr={}", support::agent_address()))
            .arg(format!("-key={key}"))
            .args(["-hold=3s", "-ttl=10s"]);
        command
    };
    // RELEASED, not LOST: the Go lock must end by its own release.
    hand_over_to_a_peer_and_back("golock", go, Some("WAITING"), "RELEASED").await;
}
