//! Interop with etcd's own election client: a Go program using
//! `go.etcd.io/etcd/client/v3/concurrency` (`Session` + `Election`,
//! `Campaign`/`Resign`) on the same prefix as our candidates. They never both
//! lead, and leadership passes both ways; and the real `etcdctl elect`
//! (which campaigns and observes with the same package) on our elections.
//! Run with `cargo xtask integration etcd`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::LeaderElection;
use support::{etcd_provider, test_options, unix_nanos, Admin, GoPeer, WallInterval, WallSampler};
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

/// The real `etcdctl elect` (built by xtask, `LE_ETCDCTL_BIN`) on the shared
/// etcd, killed when dropped, and its stdout lines.
struct Etcdctl {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Etcdctl {
    fn elect(args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let bin = std::env::var_os("LE_ETCDCTL_BIN").unwrap_or_else(|| {
            panic!("LE_ETCDCTL_BIN is not set: run `cargo xtask integration etcd`, which builds etcdctl")
        });
        let mut child = tokio::process::Command::new(bin)
            // The variable, not `--endpoints`: etcdctl refuses both at once.
            .env("ETCDCTL_ENDPOINTS", support::endpoint())
            .arg("elect")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning etcdctl");
        let stdout = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// The next line within `wait`, `None` if it said nothing.
    async fn line_within(&mut self, wait: Duration) -> Option<String> {
        match timeout(wait, self.lines.next_line()).await {
            Err(_) => None,
            Ok(line) => Some(
                line.expect("reading etcdctl")
                    .expect("etcdctl exited early"),
            ),
        }
    }

    /// Reads lines until one equals `value` (`etcdctl elect` prints the
    /// leader's key, then its value).
    async fn until(&mut self, value: &str) {
        loop {
            let line = self
                .line_within(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("etcdctl did not print {value:?} within 30 s"));
            if line == value {
                return;
            }
        }
    }

    /// SIGINT, on which `etcdctl elect` resigns and exits.
    async fn interrupt(mut self) {
        let pid = self.child.id().expect("etcdctl runs").to_string();
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -INT {pid}: {status}");
        timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("etcdctl exits on SIGINT")
            .expect("etcdctl's status");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd and etcdctl: cargo xtask integration etcd"]
async fn etcdctl_elect_observes_our_leader_waits_for_our_release_and_holds_ours_off() {
    let resource = support::resource("etcdctl-elect");
    let prefix = support::election_prefix(&resource);
    let provider = etcd_provider();
    let (ours, _) = provider
        .concrete(&resource, "ours", test_options())
        .await
        .expect("ours");
    ours.start().await.expect("start");
    ours.wait_for_leadership().await.expect("ours leads");

    // `etcdctl elect -l` reads our key as the election's leader.
    let mut observer = Etcdctl::elect(&["-l", &prefix]);
    observer.until("ours").await;

    // `etcdctl elect` queues behind our key and stays silent while we lead.
    let mut campaigner = Etcdctl::elect(&[&prefix, "etcdctl-proposal"]);
    let early = campaigner.line_within(Duration::from_secs(3)).await;
    assert_eq!(early, None, "etcdctl elect won while we led");
    assert!(ours.is_leader());
    ours.stop().await.expect("stop");
    campaigner.until("etcdctl-proposal").await;
    let etcdctl_led = unix_nanos();
    observer.until("etcdctl-proposal").await;

    // Our next candidate sees etcdctl's proposal as the leader and waits.
    let (next, _) = provider
        .concrete(&resource, "ours-2", test_options())
        .await
        .expect("ours-2");
    let next = Arc::new(next);
    let sampler = WallSampler::start(Arc::clone(&next) as Arc<dyn LeaderElection>);
    next.start().await.expect("start ours-2");
    let seen = Instant::now();
    while next.current_leader_id().as_deref() != Some("etcdctl-proposal") {
        assert!(
            seen.elapsed() < Duration::from_secs(10),
            "ours-2 never saw etcdctl's leader"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Through several of etcdctl's keep-alives, ours-2 stays a follower.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resigned_from = unix_nanos();
    campaigner.interrupt().await;
    timeout(Duration::from_secs(10), next.wait_for_leadership())
        .await
        .expect("ours-2 leads soon after etcdctl resigned")
        .expect("leads");
    observer.until("ours-2").await;
    next.stop().await.expect("stop ours-2");
    let intervals = sampler.finish();
    assert!(!intervals.is_empty(), "ours-2 never led");
    let both = overlaps(&intervals, (etcdctl_led, resigned_from));
    assert!(both.is_empty(), "ours-2 led while etcdctl led: {both:?}");
}
