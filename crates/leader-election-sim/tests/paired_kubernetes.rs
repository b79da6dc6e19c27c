//! Paired scenarios for Kubernetes: the script of `paired_common` run in
//! the simulation (virtual time, the simulated apiserver) and against the
//! real kube-apiserver (`#[ignore]`d, run by
//! `cargo xtask integration kubernetes`). Both runs must come to the same
//! outcome: who led in which order, why the first leader stopped, that it
//! stopped before the next one began, that the tokens grew, and that the
//! follower waited for the Lease to expire as it observed it. Times are
//! printed for comparison, never asserted as limits.
//!
//! The script: a leader leads and a follower sees it; then the leader is
//! cut off from the apiserver (both directions black-holed). The leader
//! must step down at its local deadline; the follower may take over only
//! once the Lease it last saw renewed has expired (lease duration after it
//! saw the last renewal, which was at most one renewal interval before the
//! cut).
//!
//! The second script: while the leader leads, an operator deletes the Lease
//! (`kubectl delete lease`). Both runs must agree on who leads afterwards,
//! whether and why the leader lost, and that every later term's token is
//! above the first.

mod paired_common;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use leader_election_abstractions::{LeaderElectionOptions, LossReason};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_sim::apiserver::{ApiServer, Connection};
use leader_election_sim::rng::Rng;

use leader_election_testkit::{unique_resource, FaultProxy};
use paired_common::{
    behind_proxy, build, cut_off_script, first_loss, link_cut, sim_link, start_pair, Backend,
    BoxFuture, Candidate, Outcome, Pair,
};

/// What both runs of the deletion script come to: the leader's next
/// renewal finds the Lease gone and it loses with `RenewRejected`; then one
/// new term begins, with a higher token. Who holds it is a race between
/// the leader's retry and the follower's (both runs show either), so it is
/// printed, not compared.
fn lease_deleted() -> DeleteOutcome {
    DeleteOutcome {
        first_leader: "leader".into(),
        terms: 2,
        leader_loss: Some(LossReason::RenewRejected),
        tokens_grew: true,
    }
}

/// The Kubernetes real-server suite's timing: lease 2 s, renewals every
/// 250 ms, retries every 500 ms, grace 1 s.
fn options() -> LeaderElectionOptions {
    paired_common::kubernetes_options()
}

/// The earliest the follower may lead after the cut: lease + grace after
/// the last renewal it saw, which came at most one renewal interval before
/// the cut.
fn earliest() -> Duration {
    let options = options();
    options.lease_duration + options.grace_period - options.renew_interval
}

/// The simulated apiserver, each candidate on its own link.
struct Simulated {
    server: ApiServer,
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
            let client = kube::Client::new(
                Connection::new(self.server.clone(), link.clone()),
                "default",
            );
            let factory =
                KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
                    .expect("factory");
            Candidate {
                election: build(&factory, resource, id),
                cut: link_cut(link),
            }
        })
    }

    /// Deletes the Lease as an operator would.
    fn disturb<'a>(&'a mut self, resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            assert!(self.server.delete(resource), "the Lease {resource} exists");
        })
    }
}

/// Runs the script in the simulation: a paused current-thread runtime.
async fn simulated(seed: u64) -> Outcome {
    leader_election_abstractions::seed_thread_jitter(Some(seed));
    let mut backend = Simulated {
        server: ApiServer::new(),
        rng: Rng::new(seed),
    };
    let label = format!("simulation seed {seed}");
    let outcome = cut_off_script(&mut backend, &label, options(), false, earliest()).await;
    leader_election_abstractions::seed_thread_jitter(None);
    outcome
}

#[tokio::test(start_paused = true)]
async fn simulated_kubernetes_leader_cut_off_hands_over_after_stepping_down() {
    for seed in 0..20 {
        assert_eq!(simulated(seed).await, Outcome::handed_over(), "seed {seed}");
    }
}

/// What the deletion script came to: the parts both runs must agree on.
#[derive(Debug, PartialEq)]
struct DeleteOutcome {
    /// Who led first.
    first_leader: String,
    /// How many terms there were.
    terms: usize,
    /// Why the first leader's term ended, if it did.
    leader_loss: Option<LossReason>,
    /// Every later term's token is above the first term's.
    tokens_grew: bool,
}

/// A leader leads and a follower sees it; an operator deletes the Lease
/// (`backend.disturb`); then both run for three lease durations.
async fn delete_script(backend: &mut impl Backend, label: &str) -> DeleteOutcome {
    let options = options();
    let resource = unique_resource("paired-delete");
    let Pair {
        leader,
        follower,
        mut leader_events,
        recorder,
        ..
    } = start_pair(backend, &resource, &options).await;
    backend.disturb(&resource).await;
    tokio::time::sleep(options.lease_duration * 3).await;
    recorder.sample_now();
    let report = recorder.finish();
    let leader_loss = first_loss(&mut leader_events).await;
    let tokens: Vec<_> = report.intervals.iter().map(|i| i.fencing_token).collect();
    println!(
        "{label}: after the Lease was deleted: terms {:?}, the leader's loss {leader_loss:?}",
        report
            .intervals
            .iter()
            .map(|i| (&i.candidate_id, i.fencing_token))
            .collect::<Vec<_>>(),
    );
    let _ = follower.election.stop().await;
    let _ = leader.election.stop().await;
    report.assert_safe();
    DeleteOutcome {
        first_leader: report
            .leaders()
            .first()
            .map(|s| (*s).to_owned())
            .unwrap_or_default(),
        terms: report.intervals.len(),
        leader_loss,
        tokens_grew: tokens.iter().skip(1).all(|t| *t > tokens[0]),
    }
}

#[tokio::test(start_paused = true)]
async fn simulated_kubernetes_lease_deleted_under_the_leader() {
    let mut outcomes = Vec::new();
    for seed in 0..20 {
        leader_election_abstractions::seed_thread_jitter(Some(seed));
        let mut backend = Simulated {
            server: ApiServer::new(),
            rng: Rng::new(seed),
        };
        outcomes.push(delete_script(&mut backend, &format!("simulation seed {seed}")).await);
        leader_election_abstractions::seed_thread_jitter(None);
    }
    for (seed, outcome) in outcomes.into_iter().enumerate() {
        assert_eq!(outcome, lease_deleted(), "seed {seed}");
    }
}

// ---- the same scripts against the real apiserver ----

/// The Kubernetes integration tests' support: the apiserver and clients
/// from the environment `cargo xtask integration kubernetes` sets, and the
/// clean-up of the Leases a test made.
#[path = "../../leader-election-kubernetes/tests/support/mod.rs"]
mod support;

/// The real apiserver, each candidate behind its own fault proxy (TLS
/// passes through it as bytes). Its Leases are deleted when it is dropped.
struct Real {
    apiserver: SocketAddr,
    proxies: Vec<FaultProxy>,
    cleanup: support::Cleanup,
}

impl Real {
    async fn new() -> Self {
        Self {
            apiserver: support::apiserver_address().await,
            proxies: Vec::new(),
            cleanup: support::Cleanup::default(),
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
            self.cleanup.add_resource(resource);
            let proxy = FaultProxy::start(self.apiserver)
                .await
                .expect("fault proxy");
            let client = support::client_via(proxy.local_addr()).await;
            let factory =
                KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
                    .expect("factory");
            behind_proxy(proxy, &mut self.proxies, build(&factory, resource, id))
        })
    }

    /// Deletes the Lease as an operator would, straight at the apiserver.
    fn disturb<'a>(&'a mut self, resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let leases: Api<Lease> =
                Api::namespaced(support::admin_client().await, &support::namespace());
            leases
                .delete(resource, &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("deleting the Lease {resource}: {e}"));
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn real_kubernetes_leader_cut_off_hands_over_after_stepping_down() {
    let mut backend = Real::new().await;
    let outcome = cut_off_script(
        &mut backend,
        "real kube-apiserver",
        options(),
        false,
        earliest(),
    )
    .await;
    drop(backend);
    assert_eq!(outcome, Outcome::handed_over());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
async fn real_kubernetes_lease_deleted_under_the_leader() {
    let mut backend = Real::new().await;
    let outcome = delete_script(&mut backend, "real kube-apiserver").await;
    drop(backend);
    assert_eq!(outcome, lease_deleted());
}
