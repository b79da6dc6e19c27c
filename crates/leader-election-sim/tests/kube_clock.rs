//! The Kubernetes store's own timing follows the clock handed to its factory
//! (`KubernetesLeaderElectionFactory::with_clock`), as the simulation's
//! drifting clocks need: the observed-time expiry of a held Lease, the
//! request timeout, and the shared watch's list timeout. Global time is
//! Tokio's paused clock; the candidate's clock runs at another rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use leader_election_abstractions::store::{Acquisition, LeaseClaim, LeaseStore};
use leader_election_abstractions::{Error, LeaderElectionOptions, StoreFactory};
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};
use leader_election_sim::apiserver::{ApiServer, Connection};
use leader_election_sim::block_on_paused;
use leader_election_sim::clock::{DriftClock, PauseGate, PPM};
use leader_election_sim::link::{Cut, Latency, Link};
use leader_election_sim::rng::Rng;
use tokio::time::Instant;

/// Generous bound (virtual time) on waits that only guard against hangs.
const HANG: Duration = Duration::from_secs(600);

fn link() -> Link {
    let latency = Latency {
        min: Duration::from_millis(1),
        max: Duration::from_millis(1),
        duplicate: 0.0,
    };
    Link::new(Rng::new(11), latency, PauseGate::default())
}

fn options() -> LeaderElectionOptions {
    LeaderElectionOptions {
        lease_duration: Duration::from_secs(4),
        renew_interval: Duration::from_millis(500),
        grace_period: Duration::from_secs(1),
        ..LeaderElectionOptions::default()
    }
}

/// A factory on the simulated apiserver through `link`, its stores on a
/// clock running at `rate_ppm` of global time.
fn factory(
    server: &ApiServer,
    link: &Link,
    rate_ppm: u64,
    config: KubernetesConfig,
) -> KubernetesLeaderElectionFactory {
    let client = kube::Client::new(Connection::new(server.clone(), link.clone()), "default");
    KubernetesLeaderElectionFactory::new(client, config, options())
        .expect("factory")
        .with_clock(Arc::new(DriftClock::new(rate_ppm, PauseGate::default())))
}

fn store(factory: &KubernetesLeaderElectionFactory) -> KubernetesLeaseStore {
    factory
        .store("jobs", "follower", &options())
        .expect("store")
}

fn claim() -> LeaseClaim {
    LeaseClaim {
        resource: "jobs".to_owned(),
        candidate_id: "follower".to_owned(),
        lease_duration: options().lease_duration,
        grace_period: options().grace_period,
        holder_metadata: BTreeMap::new(),
    }
}

/// A Lease held by `other` for 4 s that nobody renews.
fn held_by_other() -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("jobs".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("other".to_owned()),
            lease_duration_seconds: Some(4),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

async fn acquirable_in(store: &KubernetesLeaseStore) -> Duration {
    match store.try_acquire(&claim()).await.expect("an answer") {
        Acquisition::Held(view) => view.acquirable_in.expect("held by someone"),
        Acquisition::Acquired { .. } => panic!("acquired a Lease held by another"),
    }
}

#[test]
fn a_held_lease_expires_on_the_stores_clock_not_on_global_time() {
    block_on_paused(async {
        let server = ApiServer::new();
        server.create(held_by_other()).expect("create");
        let link = link();
        // A clock running twice as fast as global time.
        let store = store(&factory(
            &server,
            &link,
            2 * PPM,
            KubernetesConfig::default(),
        ));
        // First sight: the whole lease plus grace (less the answer's delay).
        let first = acquirable_in(&store).await;
        assert!(
            first <= Duration::from_secs(5) && first > Duration::from_millis(4_990),
            "{first:?}"
        );
        // One global second later the store's clock has advanced two.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = acquirable_in(&store).await;
        let advanced = first - later;
        assert!(
            advanced > Duration::from_millis(1_990) && advanced <= Duration::from_millis(2_010),
            "the record's age advanced by {advanced:?} on a 2x clock in one global second"
        );
        // And it is taken once the store's clock says the lease plus grace
        // passed: 2.5 s of global time after the first sight, not 5 s.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        assert!(
            matches!(
                store.try_acquire(&claim()).await.expect("an answer"),
                Acquisition::Acquired { .. }
            ),
            "acquired after 2.6 global seconds on a 2x clock"
        );
    });
}

#[test]
fn a_request_times_out_on_the_stores_clock() {
    block_on_paused(async {
        let server = ApiServer::new();
        server.create(held_by_other()).expect("create");
        let link = link();
        let config = KubernetesConfig {
            request_timeout: Some(Duration::from_secs(2)),
            ..KubernetesConfig::default()
        };
        // A clock running at half the rate of global time.
        let store = store(&factory(&server, &link, PPM / 2, config));
        link.set_cut(Some(Cut::BlackHole), None);
        let started = Instant::now();
        let answer = tokio::time::timeout(HANG, store.try_acquire(&claim()))
            .await
            .expect("the request gives up");
        let waited = started.elapsed();
        assert!(
            matches!(answer, Err(Error::BackendUnavailable { .. })),
            "{answer:?}"
        );
        // 2 s on a half-rate clock is 4 s of global time.
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_millis(4_100),
            "gave up after {waited:?} of global time"
        );
    });
}

#[test]
fn the_shared_watch_lists_with_a_timeout_on_the_factorys_clock() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        // A clock running at half the rate of global time; the hub's list
        // timeout is its minimum, 10 s.
        let store = store(&factory(
            &server,
            &link,
            PPM / 2,
            KubernetesConfig::default(),
        ));
        link.set_cut(Some(Cut::BlackHole), None);
        let started = Instant::now();
        let mut watch = store.watch();
        let item = tokio::time::timeout(HANG, watch.next())
            .await
            .expect("the watch gives up");
        let waited = started.elapsed();
        assert!(
            matches!(item, Some(Err(Error::BackendUnavailable { .. }))),
            "{item:?}"
        );
        // 10 s on a half-rate clock is 20 s of global time.
        assert!(
            waited >= Duration::from_secs(20) && waited < Duration::from_millis(20_100),
            "the list gave up after {waited:?} of global time"
        );
    });
}
