//! The apiserver process stopped (SIGSTOP) for longer than the lease, then
//! continued (SIGCONT): the leader steps down at its local deadline, nobody
//! leads while the apiserver is stopped, exactly one leads afterwards, and
//! the overlap recorder finds no overlap.
//!
//! This freezes the shared apiserver, so it lives in a test binary of its
//! own: cargo runs test binaries one after another, never side by side.
//! Run with `cargo xtask integration kubernetes`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::LeaderElection;
use leader_election_testkit::LeadershipRecorder;
use tokio::time::Instant;

use support::{test_options, KubernetesProvider};

fn signal(pid: &str, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap_or_else(|e| panic!("running kill {signal} {pid}: {e}"));
    assert!(status.success(), "kill {signal} {pid} failed: {status}");
}

/// Continues the apiserver even if the test fails half-way.
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn apiserver_stopped_longer_than_the_lease_then_continued_never_yields_two_leaders() {
    let pid = std::env::var("LE_KUBE_APISERVER_PID").unwrap_or_else(|_| {
        panic!("LE_KUBE_APISERVER_PID is not set: run `cargo xtask integration kubernetes`")
    });
    let provider = KubernetesProvider::new();
    let resource = format!(
        "stopped-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    );
    let options = test_options();
    let recorder = LeadershipRecorder::start(Duration::from_millis(5));
    let mut elections = Vec::new();
    // The recorder holds candidates weakly: keep the handles it watches alive.
    let mut watched = Vec::new();
    for id in ["a", "b", "c"] {
        let (election, _) = provider
            .concrete(&resource, id, options.clone())
            .await
            .expect("candidate");
        let handle: Arc<dyn LeaderElection> = Arc::new(election.clone());
        recorder.watch(&handle);
        watched.push(handle);
        election.start().await.expect("start");
        elections.push(election);
    }
    let leader = loop {
        if let Some(e) = elections.iter().find(|e| e.is_leader()) {
            break e.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let a renewal land so the deadline is a renewal's, not the acquisition's.
    tokio::time::sleep(options.renew_interval * 2).await;

    signal(&pid, "-STOP");
    let resume = Resume(pid.clone());
    let stopped = Instant::now();
    tokio::time::sleep(options.lease_duration + Duration::from_millis(100)).await;
    assert!(
        !leader.is_leader(),
        "still leading {:?} after the apiserver stopped",
        stopped.elapsed()
    );
    tokio::time::sleep(options.lease_duration).await;
    assert!(
        elections.iter().all(|e| !e.is_leader()),
        "a leader while the apiserver is stopped"
    );
    signal(&pid, "-CONT");
    drop(resume);

    let continued = Instant::now();
    while elections.iter().filter(|e| e.is_leader()).count() != 1 {
        assert!(
            continued.elapsed() < Duration::from_secs(60),
            "no leader after the apiserver continued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "kubernetes: one leader again {:?} after the apiserver continued",
        continued.elapsed()
    );
    tokio::time::sleep(options.lease_duration * 2).await;
    for election in &elections {
        election.stop().await.expect("stop");
    }
    let report = recorder.finish();
    report.assert_safe();
    assert!(report.intervals.len() >= 2, "{:?}", report.leaders());
}
