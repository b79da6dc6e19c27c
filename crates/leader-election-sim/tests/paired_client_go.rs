//! A paired scenario with client-go: our candidate follows a client-go
//! leader, the client-go process dies without releasing (SIGKILL), and our
//! candidate takes over once the Lease it last saw renewed has expired on
//! its own clock, lease + grace after it saw the last renewal.
//!
//! Run in the simulation (virtual time, the simulated apiserver and the
//! simulation's client-go model, `clientgo::run`, aborted) and against the
//! real kube-apiserver with client-go's real elector (the `client-go-peer`
//! that `cargo xtask integration kubernetes` builds, killed with SIGKILL;
//! `#[ignore]`d, run by that command). Both must come to the same outcome:
//! client-go leads first, our candidate does not lead while client-go
//! lives, and it leads after the kill within the window the rule allows,
//! `[lease + grace − client-go's retry period − 0.1 s, lease + grace + our
//! retry interval + 0.5 s]` (client-go's last renewal came at most one
//! retry period and its request's time before the kill; the watch event,
//! our acquiring request and the apiserver's answers take the rest). The real run also runs the simulated
//! one and checks that their takeover times are within 0.75 s of each other.

mod paired_common;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElection, LeaderElectionOptions};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_sim::apiserver::{ApiServer, Connection};
use leader_election_sim::checker::Checker;
use leader_election_sim::clientgo::{self, ClientGo, Leading};
use leader_election_sim::clock::{DriftClock, PauseGate, PPM};
use leader_election_sim::rng::Rng;
use leader_election_testkit::unique_resource;
use paired_common::{kubernetes_options, sim_link, wait_for};
use tokio::time::Instant;

/// Our candidate's timing: the Kubernetes real-server suite's.
fn options() -> LeaderElectionOptions {
    kubernetes_options()
}

/// client-go's timing: the peer's defaults (LeaseDuration 2 s,
/// RenewDeadline 1.5 s, RetryPeriod 500 ms).
const CLIENT_GO_LEASE: Duration = Duration::from_secs(2);
const CLIENT_GO_RENEW_DEADLINE: Duration = Duration::from_millis(1_500);
const CLIENT_GO_RETRY: Duration = Duration::from_millis(500);

/// How far apart the simulated and the real takeover may be.
const TOLERANCE: Duration = Duration::from_millis(750);

/// What a run of the script came to.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// client-go led before our candidate started.
    client_go_led_first: bool,
    /// Our candidate led at some point while client-go lived.
    ours_led_while_client_go_lived: bool,
    /// Our candidate led after the kill, within the window.
    ours_took_over_in_window: bool,
}

impl Outcome {
    fn expected() -> Self {
        Outcome {
            client_go_led_first: true,
            ours_led_while_client_go_lived: false,
            ours_took_over_in_window: true,
        }
    }
}

/// The window the takeover must fall in, after the kill.
fn window() -> (Duration, Duration) {
    let options = options();
    let expiry = Duration::from_secs(CLIENT_GO_LEASE.as_secs()) + options.grace_period;
    (
        expiry - CLIENT_GO_RETRY - Duration::from_millis(100),
        expiry + options.retry_interval + Duration::from_millis(500),
    )
}

/// Judges a run from its takeover time after the kill.
fn judge(label: &str, led_first: bool, led_early: bool, takeover: Duration) -> Outcome {
    let (low, high) = window();
    println!(
        "{label}: our candidate led {takeover:?} after client-go was killed (window {low:?}..{high:?})"
    );
    Outcome {
        client_go_led_first: led_first,
        ours_led_while_client_go_lived: led_early,
        ours_took_over_in_window: takeover >= low && takeover <= high,
    }
}

/// Our candidate `ours` for `resource` from `factory`.
fn ours(factory: &KubernetesLeaderElectionFactory, resource: &str) -> Arc<dyn LeaderElection> {
    paired_common::build(factory, resource, "ours")
}

/// Watches `election` for `span`: whether it led at any millisecond.
async fn led_during(election: &Arc<dyn LeaderElection>, span: Duration) -> bool {
    let until = Instant::now() + span;
    let mut led = false;
    while Instant::now() < until {
        led |= election.is_leader();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    led
}

/// The script in the simulation: returns the outcome and the takeover time.
async fn simulated(seed: u64) -> (Outcome, Duration) {
    leader_election_abstractions::seed_thread_jitter(Some(seed));
    let mut rng = Rng::new(seed);
    let server = ApiServer::new();
    let resource = unique_resource("paired-client-go");
    let checker = Checker::new();
    let leading = Leading::default();
    let pause = PauseGate::default();
    let clock = DriftClock::new(PPM, pause.clone());
    let origin = clock.now();
    let probe = leading.clone();
    let probe_clock = clock.clone();
    let who = checker.register(
        clientgo::IDENTITY,
        Arc::new(move || probe.now(&probe_clock, origin)),
        false,
    );
    let client_go = tokio::spawn(clientgo::run(ClientGo {
        server: server.clone(),
        link: sim_link(rng.fork()),
        name: resource.clone(),
        timing: clientgo::Timing {
            lease_seconds: CLIENT_GO_LEASE.as_secs(),
            renew_deadline: CLIENT_GO_RENEW_DEADLINE,
            retry_period: CLIENT_GO_RETRY,
        },
        rng: rng.fork(),
        checker,
        who,
        leading: leading.clone(),
        clock: clock.clone(),
        origin,
    }));
    wait_for("client-go to lead", Duration::from_secs(30), || {
        leading.now(&clock, origin)
    })
    .await;
    let client = kube::Client::new(
        Connection::new(server.clone(), sim_link(rng.fork())),
        "default",
    );
    let factory =
        KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options())
            .expect("factory");
    let election = ours(&factory, &resource);
    election.start().await.expect("start");
    // Killed at a point of client-go's renewal cycle the seed draws.
    let watched = Duration::from_secs(3) + rng.duration(Duration::ZERO, CLIENT_GO_RETRY);
    let led_early = led_during(&election, watched).await;
    // SIGKILL: the process is gone, nothing is released.
    client_go.abort();
    let _ = client_go.await;
    leading.crashed();
    let takeover = wait_for("our candidate to lead", Duration::from_secs(30), || {
        election.is_leader()
    })
    .await;
    election.stop().await.expect("stop");
    leader_election_abstractions::seed_thread_jitter(None);
    let label = format!("simulation seed {seed}");
    (judge(&label, true, led_early, takeover), takeover)
}

/// The simulated script on a paused runtime of its own.
fn simulated_paused(seed: u64) -> (Outcome, Duration) {
    leader_election_sim::block_on_paused(simulated(seed))
}

#[test]
fn simulated_client_go_killed_our_candidate_takes_over_after_lease_and_grace() {
    for seed in 0..10 {
        assert_eq!(simulated_paused(seed).0, Outcome::expected(), "seed {seed}");
    }
}

// ---- the same script against the real apiserver and client-go ----

/// The Kubernetes integration tests' support: the apiserver and clients
/// from the environment `cargo xtask integration kubernetes` sets, the
/// client-go peer, and the clean-up of the Leases a test made.
#[path = "../../leader-election-kubernetes/tests/support/mod.rs"]
mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the client-go peer: cargo xtask integration kubernetes"]
async fn real_client_go_killed_our_candidate_takes_over_after_lease_and_grace() {
    let cleanup = support::Cleanup::default();
    let resource = unique_resource("paired-client-go");
    cleanup.add_resource(&resource);
    let mut peer = support::Peer::spawn(
        &resource,
        "client-go-peer",
        &[
            "-lease-duration",
            "2s",
            "-renew-deadline",
            "1500ms",
            "-retry-period",
            "500ms",
            "-hold",
            "120s",
        ],
    );
    peer.until_leading().await;
    let client = support::client_via(support::apiserver_address().await).await;
    let factory =
        KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options())
            .expect("factory");
    let election = ours(&factory, &resource);
    election.start().await.expect("start");
    let led_early = led_during(&election, Duration::from_secs(3)).await;
    peer.signal("-KILL");
    let killed = Instant::now();
    let _ = peer.child.wait().await;
    let takeover = loop {
        if election.is_leader() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "our candidate did not lead within 30 s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    election.stop().await.expect("stop");
    drop(cleanup);
    let outcome = judge(
        "real kube-apiserver and client-go",
        true,
        led_early,
        takeover,
    );
    let (simulated, simulated_takeover) = std::thread::spawn(|| simulated_paused(0))
        .join()
        .expect("the simulated run");
    assert_eq!(simulated, Outcome::expected(), "the simulated run");
    assert_eq!(
        outcome, simulated,
        "the real run agrees with the simulation"
    );
    let apart = takeover.abs_diff(simulated_takeover);
    assert!(
        apart <= TOLERANCE,
        "the takeover came {takeover:?} after the kill against the real apiserver and {simulated_takeover:?} in the simulation: {apart:?} apart, more than {TOLERANCE:?}"
    );
}
