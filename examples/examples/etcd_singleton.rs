//! Pattern 1 (singleton job) against a real etcd.
//!
//! Two candidates in this process contend for the election prefix
//! `leader-election/etcd-singleton/` on the etcd named by
//! `ETCDCTL_ENDPOINTS` (default `http://127.0.0.1:2379`; `ETCDCTL_USER`,
//! `ETCDCTL_CACERT`, `ETCDCTL_CERT` and `ETCDCTL_KEY` are read too). The
//! leader runs the job with its fencing token (its key's create revision);
//! after a few rounds it stops, deleting its key and revoking its lease, and
//! the other candidate, woken by its watch, takes over about one round trip
//! later. A Go program campaigning with `concurrency.NewElection(session,
//! "leader-election/etcd-singleton")` contends correctly with both, and
//! `etcdctl get --prefix leader-election/etcd-singleton/` shows the keys.
//!
//! ```text
//! cargo xtask servers up etcd
//! source target/test-servers/env       # exports ETCDCTL_ENDPOINTS
//! cargo run -p examples --example etcd_singleton
//! ```

use std::time::Duration;

use examples::{init_tracing, singleton_rounds, stamp};
use leader_election_abstractions::{LeaderElectionFactory, LeaderElectionOptions, Result};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing();
    // The etcd lease behind a term is lease + grace, rounded up to seconds.
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .renew_interval(Duration::from_secs(1))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .build()?;
    let config = EtcdConfig::from_env()?;
    println!("{} etcd at {}", stamp(), config.endpoints.join(","));
    let factory = EtcdLeaderElectionFactory::new(config, options)?;

    let workers = [
        factory.create_election("etcd-singleton", Some("worker-a"))?,
        factory.create_election("etcd-singleton", Some("worker-b"))?,
    ];
    for worker in &workers {
        worker.start().await?;
    }
    singleton_rounds(workers).await
}
