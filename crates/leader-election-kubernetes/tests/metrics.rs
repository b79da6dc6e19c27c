//! The engine's metrics against the real apiserver: two candidates, a
//! handover by resignation, and the leader gauge rendered by the Prometheus
//! recorder moves from 1 to 0 for the old leader and from 0 to 1 for the new
//! one; each candidate's last backend contact is recent. The HTTP side of
//! the exporter is tested by `examples/tests/prometheus_metrics.rs`.
//! Run with `cargo xtask integration kubernetes`.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leader_election_abstractions::telemetry::{LAST_BACKEND_CONTACT, MASTER_STATUS};
use leader_election_abstractions::{LeaderElection, StoreFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use metrics_exporter_prometheus::PrometheusBuilder;

use support::{admin_client, test_options, Cleanup};

/// The exposition line of one candidate's leader gauge with `value`.
fn status_line(resource: &str, id: &str, value: u8) -> String {
    format!("{MASTER_STATUS}{{name=\"{resource}\",candidate=\"{id}\"}} {value}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn leader_gauge_follows_a_handover_on_the_real_apiserver() {
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let cleanup = Cleanup::default();
    let resource = cleanup.resource("metrics");
    let factory = KubernetesLeaderElectionFactory::new(
        admin_client().await,
        KubernetesConfig::default(),
        test_options(),
    )
    .expect("the factory");
    let build = |id: &str| {
        factory
            .election(&resource)
            .candidate_id(id)
            .build()
            .expect("the election")
    };
    let (old, new) = (build("node-1"), build("node-2"));
    let bound = Duration::from_secs(30);
    old.start().await.expect("start node-1");
    tokio::time::timeout(bound, old.wait_for_leadership())
        .await
        .expect("node-1 leads within 30 s")
        .expect("node-1 leads");
    new.start().await.expect("start node-2");
    tokio::time::timeout(bound, async {
        while new.current_leader_id().as_deref() != Some("node-1") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("node-2 sees node-1 lead within 30 s");
    let before = metrics.render();
    old.resign().await.expect("node-1 resigns");
    tokio::time::timeout(bound, new.wait_for_leadership())
        .await
        .expect("node-2 leads within 30 s")
        .expect("node-2 leads");
    let after = metrics.render();
    new.stop().await.expect("stop node-2");
    old.stop().await.expect("stop node-1");

    for (scrape, old_value, new_value) in [(&before, 1, 0), (&after, 0, 1)] {
        for (id, value) in [("node-1", old_value), ("node-2", new_value)] {
            let line = status_line(&resource, id, value);
            assert!(
                scrape.lines().any(|l| l == line),
                "no {line:?} in\n{scrape}"
            );
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    for id in ["node-1", "node-2"] {
        let prefix = format!("{LAST_BACKEND_CONTACT}{{name=\"{resource}\",candidate=\"{id}\"}} ");
        let contact: f64 = after
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} sample in\n{after}"));
        assert!(
            (now - contact).abs() < 60.0,
            "{id}: last contact {contact}, now {now}"
        );
    }
}
