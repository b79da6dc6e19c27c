//! Interop with etcd's own election client: a Go program using
//! `go.etcd.io/etcd/client/v3/concurrency` (`Session` + `Election`,
//! `Campaign`/`Resign`) on the same prefix as our candidates. They never both
//! lead, and leadership passes both ways. Run with `cargo xtask integration etcd`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::LeaderElection;
use support::{etcd_provider, test_options, Admin, GoPeer, WallInterval, WallSampler};
use tokio::time::{timeout, Instant};

fn overlaps(ours: &[WallInterval], go: (i128, i128)) -> Vec<WallInterval> {
    ours.iter()
        .copied()
        .filter(|i| i.start < go.1 && go.0 < i.end)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_go_campaigner_that_leads_first_keeps_ours_waiting_until_it_resigns() {
    let resource = support::resource("go-first");
    let mut peer = GoPeer::spawn(&resource, "go-peer", &["-hold=3s", "-ttl=2"]);
    let go_started = peer.until("LEADING").await;

    let provider = etcd_provider();
    let (ours, _) = provider
        .concrete(&resource, "ours", test_options())
        .await
        .expect("ours");
    let ours = Arc::new(ours);
    let sampler = WallSampler::start(Arc::clone(&ours) as Arc<dyn LeaderElection>);
    ours.start().await.expect("start");

    // Ours sees Go's proposal as the leader and waits.
    let seen = Instant::now();
    while ours.current_leader_id().as_deref() != Some("go-peer") {
        assert!(
            seen.elapsed() < Duration::from_secs(10),
            "ours never saw the Go leader"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let go_stopped = peer.until("RESIGNING").await;
    peer.until("RESIGNED").await;
    let resigned = Instant::now();
    timeout(Duration::from_secs(10), ours.wait_for_leadership())
        .await
        .expect("ours leads soon after the Go peer resigned")
        .expect("leads");
    println!(
        "etcd: ours took over {:?} after the Go peer resigned (wall clock, not asserted)",
        resigned.elapsed()
    );
    // Lead through a renewal, so the sampler sees the term.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(ours.is_leader(), "ours keeps leading");
    ours.stop().await.expect("stop");
    let intervals = sampler.finish();
    assert!(!intervals.is_empty(), "ours never led");
    let both = overlaps(&intervals, (go_started, go_stopped));
    assert!(both.is_empty(), "ours led while the Go peer led: {both:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn ours_leading_first_keeps_a_go_campaigner_waiting_until_we_release() {
    let resource = support::resource("ours-first");
    let provider = etcd_provider();
    let (ours, _) = provider
        .concrete(&resource, "ours", test_options())
        .await
        .expect("ours");
    let ours = Arc::new(ours);
    let sampler = WallSampler::start(Arc::clone(&ours) as Arc<dyn LeaderElection>);
    ours.start().await.expect("start");
    ours.wait_for_leadership().await.expect("ours leads");

    let mut peer = GoPeer::spawn(&resource, "go-peer", &["-hold=1s", "-ttl=2"]);
    peer.until("CAMPAIGNING").await;
    // Go's key is queued behind ours: the oldest key is ours, Go's is next.
    let keys = Admin::shared()
        .keys(&format!("{}/", support::election_prefix(&resource)))
        .await;
    let holders: Vec<&str> = keys.iter().map(|k| k.3.as_str()).collect();
    assert_eq!(holders, ["ours", "go-peer"], "{keys:?}");
    // Several of our renewals pass; Go keeps waiting.
    let early = timeout(Duration::from_secs(3), peer.next()).await;
    assert!(
        early.is_err(),
        "the Go peer said something while we led: {early:?}"
    );
    assert!(ours.is_leader());

    let released = Instant::now();
    ours.stop().await.expect("stop");
    let go_started = peer.until("LEADING").await;
    println!(
        "etcd: the Go peer took over {:?} after our release (wall clock, not asserted)",
        released.elapsed()
    );
    let go_stopped = peer.until("RESIGNING").await;
    peer.until("RESIGNED").await;
    assert!(peer.child.wait().await.expect("peer exits").success());
    let intervals = sampler.finish();
    assert_eq!(intervals.len(), 1, "one term of ours: {intervals:?}");
    let both = overlaps(&intervals, (go_started, go_stopped));
    assert!(both.is_empty(), "the Go peer led while we led: {both:?}");
}
