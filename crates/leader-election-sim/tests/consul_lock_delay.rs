//! A follower on a fast clock after Consul's lock-delay: the simulated
//! Consul cluster, virtual time.
//!
//! The leader's node is deregistered, so Consul invalidates its session at
//! once and refuses the lock for the lock-delay. The follower is refused
//! when it first sees the key free, and waits the lock-delay on its own
//! clock, which runs 10 % fast (inside the drift bound these options allow)
//! and so comes back just before the lock-delay has passed. It used to be
//! refused again and wait a whole lock-delay more (sim seed 3616 on Consul
//! found the liveness bound broken that way); it must now lead soon after
//! the lock-delay ends.

mod paired_common;

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElection, StoreFactory};
use leader_election_consul::ConsulLeaderElectionFactory;
use leader_election_sim::checker::Checker;
use leader_election_sim::clock::{DriftClock, PauseGate};
use leader_election_sim::consul::{Agent, Consul};
use leader_election_sim::rng::Rng;
use paired_common::{consul_config, consul_options, sim_link, wait_for, CONSUL_LOCK_DELAY};
use tokio::time::{sleep, Instant};

fn candidate(consul: &Consul, rng: &mut Rng, id: &str, rate_ppm: u64) -> Arc<dyn LeaderElection> {
    let agent = Arc::new(Agent::new(
        consul.clone(),
        format!("node-{id}"),
        sim_link(rng.fork()),
    ));
    let config = consul_config("http://consul.sim:8500".into());
    let factory = ConsulLeaderElectionFactory::with_transport(config, consul_options(), agent)
        .expect("factory");
    let clock: Arc<dyn Clock> = Arc::new(DriftClock::new(rate_ppm, PauseGate::default()));
    Arc::new(
        factory
            .election("lock-delay")
            .candidate_id(id)
            .health_based()
            .clock(clock)
            .build()
            .expect("election"),
    )
}

#[tokio::test(start_paused = true)]
async fn a_fast_clocked_follower_leads_soon_after_the_lock_delay_ends() {
    for seed in 0..5 {
        leader_election_abstractions::seed_thread_jitter(Some(seed));
        let mut rng = Rng::new(seed);
        let consul = Consul::new(rng.fork(), Duration::from_secs(1), Checker::new());
        let leader = candidate(&consul, &mut rng, "a", 1_000_000);
        leader.start().await.expect("start a");
        wait_for(
            &format!("a to lead (seed {seed})"),
            Duration::from_secs(10),
            || leader.is_leader(),
        )
        .await;
        let follower = candidate(&consul, &mut rng, "b", 1_100_000);
        follower.start().await.expect("start b");
        sleep(Duration::from_secs(1)).await;
        assert!(!follower.is_leader(), "seed {seed}: b leads beside a");

        consul.deregister("node-a", Instant::now() + Duration::from_secs(60), false);
        let after = wait_for(
            &format!("b to lead (seed {seed})"),
            Duration::from_secs(10),
            || follower.is_leader(),
        )
        .await;
        // The lock-delay, then at most a sixteenth of it to come back, and
        // a few round trips.
        assert!(
            after >= CONSUL_LOCK_DELAY,
            "seed {seed}: b led {after:?} after the invalidation, inside the lock-delay"
        );
        assert!(
            after <= CONSUL_LOCK_DELAY + CONSUL_LOCK_DELAY / 16 + Duration::from_millis(100),
            "seed {seed}: b led {after:?} after the invalidation (lock-delay {CONSUL_LOCK_DELAY:?})"
        );
        let _ = follower.stop().await;
        let _ = leader.stop().await;
        leader_election_abstractions::seed_thread_jitter(None);
    }
}
