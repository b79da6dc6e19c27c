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

use leader_election_abstractions::LeaderElection;
use leader_election_testkit::{assert_safe_through_outage, Outage};

use support::{test_options, Cleanup};

fn signal(pid: &str, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap_or_else(|e| panic!("running kill {signal} {pid}: {e}"));
    assert!(status.success(), "kill {signal} {pid} failed: {status}");
}

/// SIGSTOP then SIGCONT on the apiserver; continued on drop too, so a failed
/// test never leaves it frozen for the tests after it.
struct Freeze(String);

#[async_trait::async_trait]
impl Outage for Freeze {
    async fn begin(&mut self) {
        signal(&self.0, "-STOP");
    }

    async fn end(&mut self) {
        signal(&self.0, "-CONT");
    }
}

impl Drop for Freeze {
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
    let cleanup = Cleanup::default();
    let provider = support::kubernetes_provider().await;
    let resource = cleanup.resource("stopped");
    let options = test_options();
    let mut elections: Vec<Arc<dyn LeaderElection>> = Vec::new();
    for id in ["a", "b", "c"] {
        let (election, _) = provider
            .concrete(&resource, id, options.clone())
            .await
            .expect("candidate");
        election.start().await.expect("start");
        elections.push(Arc::new(election));
    }
    assert_safe_through_outage(
        "kubernetes",
        &elections,
        options.lease_duration,
        &mut Freeze(pid),
    )
    .await;
}
