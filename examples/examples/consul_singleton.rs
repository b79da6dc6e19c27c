//! Pattern 1 (singleton job) against a real Consul agent.
//!
//! Two candidates in this process contend for `service/leader-election/
//! consul-singleton/.lock` on the agent named by `CONSUL_HTTP_ADDR` (default
//! `http://127.0.0.1:8500`; `CONSUL_HTTP_TOKEN` is sent if set). The leader
//! runs the job with its fencing token; after a few rounds it stops, releasing
//! the lock, and the other candidate takes over about one round trip later.
//!
//! ```text
//! cargo xtask servers up consul        # or any agent you have
//! source target/test-servers/env       # exports CONSUL_HTTP_ADDR
//! cargo run -p examples --example consul_singleton
//! ```
//!
//! The lease is 10 s (Consul's default `session_ttl_min`); the lock-delay is
//! the lease plus the grace period, 12 s.

use std::time::Duration;

use examples::{init_tracing, singleton_rounds, stamp};
use leader_election_abstractions::{LeaderElectionFactory, LeaderElectionOptions, Result};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing();
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(10))
        .renew_interval(Duration::from_secs(3))
        .retry_interval(Duration::from_secs(1))
        .grace_period(Duration::from_secs(2))
        .build()?;
    let config = ConsulConfig::from_env();
    println!("{} Consul agent at {}", stamp(), config.address);
    let factory = ConsulLeaderElectionFactory::new(config, options)?;

    let workers = [
        factory.create_election("consul-singleton", Some("worker-a"))?,
        factory.create_election("consul-singleton", Some("worker-b"))?,
    ];
    for worker in &workers {
        worker.start().await?;
    }
    singleton_rounds(workers).await
}
