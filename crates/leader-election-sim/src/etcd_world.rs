//! The etcd backend: the real `EtcdLeaseStore` (through the etcd client's
//! transport seam) on the simulated cluster of [`crate::etcd`].

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Clock, LeaderElectionOptions, Result};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};

use crate::checker::Checker;
use crate::etcd::{Etcd, Member, ELECTION_TIMEOUT};
use crate::link::Link;
use crate::rng::Rng;
use crate::world::{Made, World, RESOURCE};

pub(crate) struct EtcdWorld {
    etcd: Etcd,
    checker: Checker,
    config: EtcdConfig,
}

impl EtcdWorld {
    pub(crate) fn boxed(rng: &mut Rng, checker: &Checker) -> Box<dyn World> {
        let config = EtcdConfig {
            endpoints: vec!["http://etcd.sim:2379".to_owned()],
            ..EtcdConfig::default()
        };
        Box::new(EtcdWorld {
            etcd: Etcd::new(rng.fork(), checker.clone()),
            checker: checker.clone(),
            config,
        })
    }

    fn prefix(&self) -> String {
        format!("{}/{RESOURCE}/", self.config.key_prefix)
    }
}

impl World for EtcdWorld {
    fn election(
        &mut self,
        id: &str,
        options: LeaderElectionOptions,
        clock: Arc<dyn Clock>,
        link: Link,
    ) -> Result<Made> {
        let member = Arc::new(Member::new(self.etcd.clone(), link));
        let factory =
            EtcdLeaderElectionFactory::with_transport(self.config.clone(), options, member)?;
        Made::from_factory(&factory, id, clock)
    }

    fn operator_fault(&mut self, rng: &mut Rng) {
        let holder = self.etcd.first_under(&self.prefix());
        match rng.between(0, 4) {
            0 => {
                let Some((_, lease, create_revision)) = holder else {
                    return;
                };
                self.checker.note(format!(
                    "operator revokes the holder's lease {lease:x} (create revision {create_revision})"
                ));
                self.checker
                    .revoke_through(u64::try_from(create_revision).ok(), None);
                self.etcd.revoke(lease);
            }
            1 => {
                let Some((key, _, create_revision)) = holder else {
                    return;
                };
                self.checker.note(format!(
                    "operator deletes the holder's key {} (create revision {create_revision})",
                    String::from_utf8_lossy(&key)
                ));
                self.checker
                    .revoke_through(u64::try_from(create_revision).ok(), None);
                self.etcd.delete(&key);
            }
            2 => {
                let at = self.etcd.compact();
                self.checker
                    .note(format!("operator compacts at revision {at}"));
            }
            3 => {
                let election = rng.duration(Duration::from_millis(100), ELECTION_TIMEOUT);
                self.checker.note(format!(
                    "etcd leader change: no leader for {election:?}, then every lease renewed for its TTL + {ELECTION_TIMEOUT:?}"
                ));
                self.etcd.leader_change(election);
            }
            _ => {
                let ended = self.etcd.end_watches();
                self.checker
                    .note(format!("etcd member restart: {ended} watch streams end"));
            }
        }
    }

    fn heal(&mut self) {
        self.etcd.heal();
    }

    fn extra_liveness(&self) -> Duration {
        // A crashed holder's key goes when its lease expires: its TTL is
        // lease + grace rounded up to whole seconds (up to 1 s more), a
        // leader change just before the heal renews it for the TTL plus
        // the election timeout, and the lessor notices an expiry up to
        // 500 ms late.
        Duration::from_secs(1) + ELECTION_TIMEOUT * 2 + Duration::from_millis(500)
    }
}
