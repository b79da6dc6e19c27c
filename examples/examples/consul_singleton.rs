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
//! the grace period, 2 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::{init_tracing, stamp};
use leader_election_abstractions::{
    LeaderElection, LeaderElectionFactory, LeaderElectionOptions, Result,
};
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

    let workers: Vec<Arc<dyn LeaderElection>> = vec![
        factory.create_election("consul-singleton", Some("worker-a"))?,
        factory.create_election("consul-singleton", Some("worker-b"))?,
    ];
    for worker in &workers {
        worker.start().await?;
    }

    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for worker in &workers {
            if let Some(token) = worker.fencing_token() {
                println!(
                    "{} {} runs the job (round {round}, fencing token {token})",
                    stamp(),
                    worker.candidate_id()
                );
            }
        }
        if round == 3 {
            if let Some(leader) = workers.iter().position(|w| w.is_leader()) {
                let next = &workers[1 - leader];
                println!(
                    "{} {} stops; it releases the lock",
                    stamp(),
                    workers[leader].candidate_id()
                );
                let started = Instant::now();
                workers[leader].stop().await?;
                let guard = next.wait_for_leadership().await?;
                println!(
                    "{} {} took over {:?} after the release (fencing token {})",
                    stamp(),
                    next.candidate_id(),
                    started.elapsed(),
                    guard.fencing_token()
                );
            }
        }
    }
    for worker in &workers {
        worker.stop().await?;
    }
    Ok(())
}
