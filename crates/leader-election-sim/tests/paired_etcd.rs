//! Paired scenario for etcd: the script of `paired_common` run in the
//! simulation (virtual time, the simulated etcd) and against the real etcd
//! (`#[ignore]`d, run by `cargo xtask integration etcd`). Both runs must
//! come to the same outcome: who led in which order, why the first leader
//! stopped, that it stopped before the next one began, that the tokens
//! grew, and that the follower waited for etcd to expire the leader's
//! lease. Times are printed for comparison, never asserted as limits.
//!
//! The script: a leader leads and a follower sees it; then the leader is
//! cut off from etcd (both directions black-holed). The leader must step
//! down at its local deadline (`DeadlineExpired`); the follower may take
//! over only once etcd has expired the leader's lease and deleted its key:
//! the lease TTL (lease + grace, whole seconds) after the last keep-alive
//! reached etcd, which was at most one renewal interval before the cut.

mod paired_common;

use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};
use leader_election_sim::checker::Checker;
use leader_election_sim::etcd::{Etcd, Member};
use leader_election_sim::rng::Rng;
use leader_election_testkit::FaultProxy;
use paired_common::{
    behind_proxy, build, cut_off_script, link_cut, sim_link, Backend, BoxFuture, Candidate, Outcome,
};

/// The etcd real-server suite's timing: lease 2 s, renewals and retries
/// every 500 ms, grace 1 s (an etcd lease TTL of 3 s).
fn options() -> LeaderElectionOptions {
    leader_election_testkit::timing_options(
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
}

/// The earliest the follower may lead after the cut: the lease TTL after
/// the last keep-alive that reached etcd, at most one renewal interval
/// before the cut.
fn earliest() -> Duration {
    let options = options();
    let ttl = (options.lease_duration + options.grace_period)
        .as_secs_f64()
        .ceil();
    Duration::from_secs_f64(ttl) - options.renew_interval
}

/// The key prefix of the paired elections.
const PREFIX: &str = "le-paired";

/// The simulated etcd, each candidate on its own link.
struct Simulated {
    etcd: Etcd,
    rng: Rng,
}

impl Backend for Simulated {
    fn candidate<'a>(
        &'a mut self,
        resource: &'a str,
        id: &'a str,
        _leader: bool,
        options: LeaderElectionOptions,
    ) -> BoxFuture<'a, Candidate> {
        Box::pin(async move {
            let link = sim_link(self.rng.fork());
            let member = std::sync::Arc::new(Member::new(self.etcd.clone(), link.clone()));
            let config = EtcdConfig {
                endpoints: vec!["http://etcd.sim:2379".to_owned()],
                key_prefix: PREFIX.to_owned(),
                ..EtcdConfig::default()
            };
            let factory = EtcdLeaderElectionFactory::with_transport(config, options, member)
                .expect("factory");
            Candidate {
                election: build(&factory, resource, id),
                cut: link_cut(link),
            }
        })
    }

    fn disturb<'a>(&'a mut self, _resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Runs the script in the simulation: a paused current-thread runtime.
async fn simulated(seed: u64) -> Outcome {
    leader_election_abstractions::seed_thread_jitter(Some(seed));
    let mut rng = Rng::new(seed);
    let mut backend = Simulated {
        etcd: Etcd::new(rng.fork(), Checker::new()),
        rng,
    };
    let label = format!("simulation seed {seed}");
    let outcome = cut_off_script(&mut backend, &label, options(), false, earliest()).await;
    leader_election_abstractions::seed_thread_jitter(None);
    outcome
}

#[tokio::test(start_paused = true)]
async fn simulated_etcd_leader_cut_off_hands_over_after_stepping_down() {
    for seed in 0..20 {
        assert_eq!(simulated(seed).await, Outcome::handed_over(), "seed {seed}");
    }
}

// ---- the same script against the real etcd ----

/// The real etcd (`LE_ETCD_ENDPOINTS`, set by `cargo xtask integration
/// etcd`), each candidate behind its own fault proxy.
struct Real {
    etcd: SocketAddr,
    proxies: Vec<FaultProxy>,
}

impl Real {
    fn new() -> Self {
        let endpoints = std::env::var("LE_ETCD_ENDPOINTS").unwrap_or_else(|_| {
            panic!("LE_ETCD_ENDPOINTS is not set: run this test with `cargo xtask integration etcd`, which starts etcd")
        });
        let url = endpoints.split(',').next().unwrap_or_default().trim();
        let etcd = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("{url} is not http://IP:port: {e}"));
        Self {
            etcd,
            proxies: Vec::new(),
        }
    }
}

impl Backend for Real {
    fn candidate<'a>(
        &'a mut self,
        resource: &'a str,
        id: &'a str,
        _leader: bool,
        options: LeaderElectionOptions,
    ) -> BoxFuture<'a, Candidate> {
        Box::pin(async move {
            let proxy = FaultProxy::start(self.etcd).await.expect("fault proxy");
            let config = EtcdConfig {
                endpoints: vec![format!("http://{}", proxy.local_addr())],
                key_prefix: PREFIX.to_owned(),
                ..EtcdConfig::default()
            };
            let factory = EtcdLeaderElectionFactory::new(config, options).expect("factory");
            behind_proxy(proxy, &mut self.proxies, build(&factory, resource, id))
        })
    }

    fn disturb<'a>(&'a mut self, _resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn real_etcd_leader_cut_off_hands_over_after_stepping_down() {
    let mut backend = Real::new();
    let outcome = cut_off_script(&mut backend, "real etcd", options(), false, earliest()).await;
    drop(backend);
    assert_eq!(outcome, Outcome::handed_over());
}
