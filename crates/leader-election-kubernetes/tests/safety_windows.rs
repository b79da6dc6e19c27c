//! The Kubernetes edges where two leaders were once possible, against a real
//! kube-apiserver (and client-go's own elector as the foreign candidate):
//!
//! - two elections configured with one candidate id (two processes, say);
//! - a client-go follower dating our renewals to the whole second while our
//!   leader is cut off, and our follower while a client-go leader is frozen;
//! - a Lease deleted and re-created by another client while our watch was
//!   disconnected.
//!
//! Overlaps across processes are checked on the wall clock both processes
//! read (they run on one machine). Run with `cargo xtask integration kubernetes`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, PostParams};
use leader_election_abstractions::{
    LeaderElection, LeaderElectionOptions, LossReason, StoreFactory,
};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_testkit::{next_loss_reason, Fault, LeadershipRecorder};
use tokio::time::{timeout, Instant};

use support::{
    admin_client, namespace, options_with, test_options, Cleanup, Peer, PeerEvent, WallInterval,
    WallSampler,
};

/// An election of `resource` under `id` with a factory (and client) of its
/// own, as another process would have.
async fn election_of_another_process(resource: &str, id: &str) -> Arc<dyn LeaderElection> {
    let factory = KubernetesLeaderElectionFactory::new(
        admin_client().await,
        KubernetesConfig::default(),
        test_options(),
    )
    .expect("factory");
    Arc::new(
        factory
            .election(resource)
            .candidate_id(id)
            .build()
            .expect("election"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn two_elections_with_one_candidate_id_never_both_lead() {
    let cleanup = Cleanup::default();
    let resource = cleanup.resource("twins");
    let live: Arc<std::sync::Mutex<Vec<Arc<dyn LeaderElection>>>> = Arc::default();
    let recorder = LeadershipRecorder::start(Duration::from_millis(1));
    let first = election_of_another_process(&resource, "same-id").await;
    recorder.watch(&first);
    first.start().await.expect("start");
    first.wait_for_leadership().await.expect("the first leads");
    live.lock().expect("live").push(first);
    // A plain thread reads every live twin, back to back, as application
    // threads would.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (live, done) = (Arc::clone(&live), Arc::clone(&done));
        std::thread::spawn(move || {
            let (mut reads, mut both) = (0u64, 0u64);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let twins = live.lock().expect("live").clone();
                let leading = twins.iter().filter(|t| t.is_leader()).count();
                reads += 1;
                both += u64::from(leading > 1);
                std::thread::sleep(Duration::from_micros(50));
            }
            (reads, both)
        })
    };
    // Twins start one after another while one of them leads (a replacement
    // process, a second replica with the same configured id); the one that
    // does not lead is stopped before the next arrives.
    for _ in 0..5 {
        let twin = election_of_another_process(&resource, "same-id").await;
        recorder.watch(&twin);
        live.lock().expect("live").push(Arc::clone(&twin));
        twin.start().await.expect("start");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let follower = {
            let mut twins = live.lock().expect("live");
            let index = twins.iter().position(|t| !t.is_leader());
            index.map(|i| twins.remove(i))
        };
        if let Some(follower) = follower {
            follower.stop().await.expect("stop");
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, both) = tokio::task::spawn_blocking(move || reader.join().expect("reader"))
        .await
        .expect("join");
    let report = recorder.finish();
    println!(
        "kubernetes: twins with one id: {} terms recorded, {both} of {reads} thread reads saw two leading",
        report.intervals.len()
    );
    assert_eq!(
        both, 0,
        "two elections with one id led at once in {both} of {reads} reads"
    );
    report.assert_safe();
    assert_eq!(
        report.intervals.len(),
        1,
        "the first twin kept leading: {:?}",
        report.intervals
    );
    // The leader hands over to a twin on stop, as to anyone else.
    let leader = live.lock().expect("live").pop().expect("the leader");
    let twin = election_of_another_process(&resource, "same-id").await;
    twin.start().await.expect("start");
    leader.stop().await.expect("stop");
    timeout(Duration::from_secs(30), twin.wait_for_leadership())
        .await
        .expect("the twin takes over after the release")
        .expect("leads");
    twin.stop().await.expect("stop");
}

fn millis(nanos: i128) -> f64 {
    nanos as f64 / 1e6
}

/// Our renewals every 250 ms, so several fall within one second of the
/// wall clock: a client-go follower sees only the first of them change the
/// record.
fn fast_renewing_options() -> LeaderElectionOptions {
    options_with(
        Duration::from_secs(2),
        Duration::from_millis(250),
        Duration::from_millis(300),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the client-go peer: cargo xtask integration kubernetes"]
async fn our_cut_off_leader_stops_before_a_client_go_follower_takes_over() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let trials = 5;
    for trial in 0..trials {
        let resource = cleanup.resource("cg-follower");
        let (ours, proxy) = provider
            .concrete(&resource, "ours", fast_renewing_options())
            .await
            .expect("ours");
        let ours: Arc<dyn LeaderElection> = Arc::new(ours);
        ours.start().await.expect("start");
        ours.wait_for_leadership().await.expect("ours leads");
        let sampler = WallSampler::start(Arc::clone(&ours));
        let mut peer = Peer::spawn(
            &resource,
            "client-go",
            &[
                "-lease-duration=2s",
                "-renew-deadline=1s",
                "-retry-period=300ms",
                "-hold=500ms",
            ],
        );
        assert_eq!(peer.next().await, PeerEvent::NewLeader("ours".to_owned()));
        // Let client-go watch a few of our renewals, at a different phase
        // of the second in every trial.
        tokio::time::sleep(Duration::from_millis(1_200 + 170 * trial)).await;
        proxy.set_fault(Fault::BlackHole);
        let cut = support::unix_nanos();
        let peer_start = peer.until_leading().await;
        // Our leader has stepped down by now or never will before the check.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (intervals, samples) = sampler.finish();
        let ours_end = intervals
            .last()
            .map(|i: &WallInterval| i.end)
            .expect("we led");
        println!(
            "kubernetes: trial {trial}: cut off at 0, our last term ended by {:+.1} ms, client-go's acquiring write began at {:+.1} ms ({samples} samples)",
            millis(ours_end - cut),
            millis(peer_start - cut)
        );
        assert!(
            ours_end < peer_start,
            "trial {trial}: our leader still led {:.1} ms after client-go began taking the Lease",
            millis(ours_end - peer_start)
        );
        proxy.set_fault(Fault::Reset);
        ours.stop().await.expect("stop");
        let _ = timeout(Duration::from_secs(10), peer.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the client-go peer: cargo xtask integration kubernetes"]
async fn our_follower_waits_out_a_frozen_client_go_leader() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("cg-frozen");
    // client-go's own leader gives up at the latest retry period + renew
    // deadline after its last successful renewal returned.
    let (retry, renew_deadline) = (Duration::from_millis(300), Duration::from_millis(1_500));
    let mut peer = Peer::spawn(
        &resource,
        "client-go",
        &[
            "-lease-duration=2s",
            "-renew-deadline=1500ms",
            "-retry-period=300ms",
            "-hold=120s",
        ],
    );
    peer.until_leading().await;
    let (ours, _proxy) = provider
        .concrete(&resource, "ours", fast_renewing_options())
        .await
        .expect("ours");
    let ours: Arc<dyn LeaderElection> = Arc::new(ours);
    ours.start().await.expect("start");
    let sampler = WallSampler::start(Arc::clone(&ours));
    let seen = Instant::now();
    while ours.current_leader_id().as_deref() != Some("client-go") {
        assert!(
            seen.elapsed() < Duration::from_secs(30),
            "we never saw client-go lead"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut last_renewal = None;
    for _ in 0..4 {
        if let PeerEvent::Renewed { end } = peer.next().await {
            last_renewal = Some(end);
        }
    }
    peer.signal("-STOP");
    // Renewals that completed before the freeze may still be in the pipe.
    while let Ok(event) = timeout(Duration::from_millis(200), peer.next()).await {
        if let PeerEvent::Renewed { end } = event {
            last_renewal = Some(end);
        }
    }
    let last_renewal = last_renewal.expect("client-go renewed before it was frozen");
    let client_go_gives_up =
        last_renewal + i128::try_from((retry + renew_deadline).as_nanos()).expect("fits");
    timeout(Duration::from_secs(30), ours.wait_for_leadership())
        .await
        .expect("we take over from the frozen leader")
        .expect("leads");
    // Let the sampler thread read the new state.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (intervals, _) = sampler.finish();
    let ours_start = intervals.first().map(|i| i.start).expect("we led");
    peer.signal("-CONT");
    println!(
        "kubernetes: frozen client-go leader would have given up {:.1} ms after its last renewal; we led from {:.1} ms after it",
        millis(client_go_gives_up - last_renewal),
        millis(ours_start - last_renewal)
    );
    assert!(
        ours_start > client_go_gives_up,
        "we led {:.1} ms before the frozen client-go leader's own deadline",
        millis(client_go_gives_up - ours_start)
    );
    loop {
        match peer.next().await {
            PeerEvent::Stopped(_) => break,
            PeerEvent::Other(line) => println!("client-go peer: {line}"),
            _ => {}
        }
    }
    ours.stop().await.expect("stop");
    let _ = timeout(Duration::from_secs(10), peer.child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn a_lease_recreated_by_another_client_ends_our_term_on_the_watch_view() {
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("recreated");
    // A long renew interval: the term can only end before the next renewal
    // is due if the watch view of the new Lease ends it.
    let renew_interval = Duration::from_secs(9);
    let options = options_with(
        Duration::from_secs(20),
        renew_interval,
        Duration::from_secs(2),
    );
    let (leader, proxy) = provider
        .concrete(&resource, "ours", options)
        .await
        .expect("ours");
    let mut events = leader.subscribe();
    let before_start = Instant::now();
    leader.start().await.expect("start");
    let term = leader.wait_for_leadership().await.expect("ours leads");
    // No request is in flight now (the acquisition is done and the next
    // renewal is 9 s away): cut the watch so it misses the deletion, then
    // delete the Lease and re-create it held by another client, as client-go
    // would create it (leaseTransitions 0).
    proxy.set_fault(Fault::Reset);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace());
    leases
        .delete(&resource, &DeleteParams::default())
        .await
        .expect("raw delete");
    let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let intruder = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(resource.clone()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("intruder".to_owned()),
            lease_duration_seconds: Some(20),
            acquire_time: Some(stamp.clone()),
            renew_time: Some(stamp),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    leases
        .create(&PostParams::default(), &intruder)
        .await
        .expect("raw re-create");
    let recreated = Instant::now();
    proxy.set_fault(Fault::PassThrough);
    assert!(
        leader.is_leader(),
        "the leader noticed nothing yet: its watch is down"
    );
    let renewal_due = before_start + renew_interval;
    tokio::select! {
        reason = next_loss_reason(&mut events) => {
            println!(
                "kubernetes: term {} ended {:?} after the re-creation ({reason})",
                term.fencing_token(),
                recreated.elapsed()
            );
            assert_eq!(reason, LossReason::LostToOtherHolder);
        }
        () = tokio::time::sleep_until(renewal_due) => panic!(
            "the leader kept leading on the re-created Lease until its next renewal was due"
        ),
    }
    assert!(!leader.is_leader());
    assert_eq!(leader.current_leader_id().as_deref(), Some("intruder"));
    leader.stop().await.expect("stop");
}
