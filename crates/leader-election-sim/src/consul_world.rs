//! The Consul backend: the real `ConsulLeaseStore` (through the Consul
//! client's transport seam) on the simulated cluster of [`crate::consul`],
//! each process on its own node.

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElectionOptions, Result};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use tokio::time::Instant;

use crate::checker::Checker;
use crate::consul::{short, Agent, Consul};
use crate::link::Link;
use crate::rng::Rng;
use crate::world::{Made, World, RESOURCE};

/// The agents' `session_ttl_min` in the simulation (Consul's default is
/// 10 s; the test agents run with a lower one too).
pub(crate) const SESSION_TTL_MIN: Duration = Duration::from_secs(1);

pub(crate) struct ConsulWorld {
    consul: Consul,
    checker: Checker,
    config: ConsulConfig,
    lease: Duration,
    lock_delay: Duration,
    nodes: usize,
}

impl ConsulWorld {
    pub(crate) fn boxed(
        rng: &mut Rng,
        checker: &Checker,
        options: &LeaderElectionOptions,
    ) -> Box<dyn World> {
        let config = ConsulConfig {
            address: "http://consul.sim:8500".to_owned(),
            session_ttl_min: SESSION_TTL_MIN,
            // Blocking queries of 5 to 60 s (the default): a follower's
            // watch, cut by a partition, waits up to this long.
            watch_wait: Duration::from_secs(rng.between(5, 60)),
            ..ConsulConfig::default()
        };
        Box::new(ConsulWorld {
            consul: Consul::new(rng.fork(), SESSION_TTL_MIN, checker.clone()),
            checker: checker.clone(),
            config,
            lease: options.lease_duration,
            lock_delay: (options.lease_duration + options.grace_period)
                .min(Duration::from_secs(60)),
            nodes: 0,
        })
    }

    fn key(&self) -> String {
        format!("{}/{RESOURCE}/.lock", self.config.key_prefix)
    }
}

impl World for ConsulWorld {
    fn election(
        &mut self,
        id: &str,
        options: LeaderElectionOptions,
        clock: Arc<dyn Clock>,
        link: Link,
    ) -> Result<Made> {
        self.nodes += 1;
        let node = format!("node-{}-{id}", self.nodes);
        let agent = Arc::new(Agent::new(self.consul.clone(), node, link));
        let factory =
            ConsulLeaderElectionFactory::with_transport(self.config.clone(), options, agent)?;
        Made::from_factory(&factory, id, clock)
    }

    fn operator_fault(&mut self, rng: &mut Rng) {
        let key = self.key();
        let holder = self.consul.holder(&key);
        let holder_session = holder.as_ref().and_then(|(s, _)| s.clone());
        match rng.between(0, 3) {
            0 | 1 => {
                // Early invalidation: the holder's node (mostly) is
                // deregistered; sometimes the node is lost as well.
                let nodes = self.consul.nodes();
                let node = match holder_session
                    .as_deref()
                    .and_then(|s| self.consul.node_of(s))
                {
                    Some(node) if rng.chance(0.8) => node,
                    _ if nodes.is_empty() => return,
                    _ => nodes[rng.index(nodes.len())].clone(),
                };
                let lost = rng.chance(0.5);
                let again = Instant::now() + rng.duration(Duration::ZERO, self.lease);
                let sessions = self.consul.deregister(&node, again, lost);
                let sessions: Vec<String> = sessions
                    .iter()
                    .map(|(id, delay)| format!("{} (lock-delay {delay:?})", short(id)))
                    .collect();
                self.checker.note(format!(
                    "operator deregisters {node}{}: sessions {} invalidated",
                    if lost {
                        " (node lost: its agent stops answering)"
                    } else {
                        ""
                    },
                    sessions.join(", ")
                ));
            }
            2 => {
                let Some(session) = holder_session else {
                    return;
                };
                self.checker.note(format!(
                    "operator destroys the holder's session {}",
                    short(&session)
                ));
                self.consul.destroy(&session);
            }
            _ => {
                let token = holder.map(|(_, index)| index);
                self.checker.note(format!(
                    "operator deletes the lock key (ModifyIndex {token:?})"
                ));
                // Every term up to the key's last write loses its key.
                self.checker.revoke_through(token, None);
                self.consul.delete(&key);
            }
        }
    }

    fn heal(&mut self) {
        self.consul.heal();
    }

    fn extra_liveness(&self) -> Duration {
        // A crashed holder's session lives up to 2 × TTL after its last
        // renewal, then its lock is blocked for the lock-delay; a follower
        // refused during the lock-delay retries a lock-delay later (on its
        // own clock, up to ~1/5 slower).
        self.lease + self.lock_delay + self.lock_delay / 5
    }
}
