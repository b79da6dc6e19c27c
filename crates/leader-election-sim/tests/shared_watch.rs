//! The Kubernetes provider's shared Lease watch on the simulated apiserver:
//! the watches of one factory's elections are one list + one watch of the
//! namespace, dispatched by Lease name, through the provider's public
//! `LeaseStore::watch` (what the engine calls).

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use leader_election_abstractions::store::{LeaseStore, LeaseView, LeaseWatch};
use leader_election_abstractions::{LeaderElectionOptions, StoreFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use leader_election_sim::apiserver::{ApiServer, Connection};
use leader_election_sim::block_on_paused;
use leader_election_sim::clock::PauseGate;
use leader_election_sim::link::{Cut, Latency, Link};
use leader_election_sim::rng::Rng;

/// Generous bound (virtual time) on waits that only guard against hangs.
const HANG: Duration = Duration::from_secs(60);

fn link() -> Link {
    let latency = Latency {
        min: Duration::from_millis(1),
        max: Duration::from_millis(5),
        duplicate: 0.0,
    };
    Link::new(Rng::new(7), latency, PauseGate::default())
}

fn factory(server: &ApiServer, link: &Link) -> KubernetesLeaderElectionFactory {
    let client = kube::Client::new(Connection::new(server.clone(), link.clone()), "default");
    KubernetesLeaderElectionFactory::new(
        client,
        KubernetesConfig::default(),
        LeaderElectionOptions::default(),
    )
    .expect("factory")
}

fn watch(factory: &KubernetesLeaderElectionFactory, name: &str) -> LeaseWatch {
    let options = factory.options().clone();
    factory
        .store(name, "follower", &options)
        .expect("store")
        .watch()
}

fn held(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// Hands the Lease `name` to `holder` as another client would.
fn hand_over(server: &ApiServer, name: &str, holder: &str) {
    let mut lease = server.get(name).expect("the Lease exists");
    lease.spec = held(name, holder).spec;
    server.replace(name, lease).expect("replace");
}

async fn next(watch: &mut LeaseWatch) -> LeaseView {
    match tokio::time::timeout(HANG, watch.next()).await {
        Ok(Some(Ok(view))) => view,
        other => panic!("expected a view, got {other:?}"),
    }
}

/// Whether the watch yields nothing within a second (virtual time).
async fn quiet(watch: &mut LeaseWatch) -> bool {
    tokio::time::timeout(Duration::from_secs(1), watch.next())
        .await
        .is_err()
}

#[test]
fn the_elections_of_one_factory_share_one_list_and_one_watch() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        for i in 0..50 {
            server
                .create(held(&format!("lease-{i}"), &format!("holder-{i}")))
                .expect("create");
        }
        let factory = factory(&server, &link);
        let mut watches: Vec<LeaseWatch> = (0..50)
            .map(|i| watch(&factory, &format!("lease-{i}")))
            .collect();
        for (i, watch) in watches.iter_mut().enumerate() {
            let view = next(watch).await;
            assert_eq!(view.holder, Some(format!("holder-{i}")), "lease-{i}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.requests_served(), (1, 1), "(watches, lists)");
        assert_eq!(server.open_watches(), 1);

        // A change reaches the followers of that Lease only.
        hand_over(&server, "lease-7", "someone-else");
        assert_eq!(
            next(&mut watches[7]).await.holder.as_deref(),
            Some("someone-else")
        );
        assert!(quiet(&mut watches[8]).await, "lease-8 did not change");

        // A late subscriber gets the cached record at once, with no request.
        let mut late = watch(&factory, "lease-7");
        let view = tokio::time::timeout(Duration::from_millis(1), late.next())
            .await
            .expect("the cached record at once")
            .expect("a view")
            .expect("not an error");
        assert_eq!(view.holder.as_deref(), Some("someone-else"));
        // A Lease that does not exist yet: no holder, and its creation is seen.
        let mut absent = watch(&factory, "not-yet");
        assert_eq!(next(&mut absent).await, LeaseView::default());
        server.create(held("not-yet", "creator")).expect("create");
        assert_eq!(next(&mut absent).await.holder.as_deref(), Some("creator"));
        assert_eq!(server.requests_served(), (1, 1), "(watches, lists)");

        // Another factory has a watch of its own.
        let other = self::factory(&server, &link);
        let mut own = watch(&other, "lease-1");
        assert_eq!(next(&mut own).await.holder.as_deref(), Some("holder-1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.requests_served(), (2, 2), "(watches, lists)");
    });
}

#[test]
fn after_410_gone_the_shared_watch_lists_again_and_followers_see_only_newer_records() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        server.create(held("a", "first")).expect("create");
        server.create(held("b", "steady")).expect("create");
        let factory = factory(&server, &link);
        let mut a = watch(&factory, "a");
        let mut b = watch(&factory, "b");
        assert_eq!(next(&mut a).await.holder.as_deref(), Some("first"));
        assert_eq!(next(&mut b).await.holder.as_deref(), Some("steady"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.open_watches(), 1, "the watch is open");
        // Writes the watch misses (every watch ended just before them), then
        // compacted away: resuming from the last version gets 410 Gone.
        server.end_watches();
        hand_over(&server, "a", "second");
        server.delete("b");
        server.create(held("b", "recreated")).expect("create");
        server.compact();
        let b_uid = server.get("b").and_then(|l| l.metadata.uid);
        assert_eq!(next(&mut a).await.holder.as_deref(), Some("second"));
        let view = next(&mut b).await;
        assert_eq!(view.holder.as_deref(), Some("recreated"));
        assert_eq!(view.incarnation, b_uid, "the re-created Lease");
        // No older record follows; the streams are still open (no error).
        assert!(quiet(&mut a).await);
        assert!(quiet(&mut b).await);
        let (watches, lists) = server.requests_served();
        assert_eq!(lists, 2, "one list more after the 410");
        assert_eq!(watches, 3, "opened, resumed (410), opened after the list");
        hand_over(&server, "a", "third");
        assert_eq!(next(&mut a).await.holder.as_deref(), Some("third"));
    });
}

#[test]
fn a_lease_deleted_and_recreated_behind_our_back_is_seen() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        server.create(held("jobs", "old")).expect("create");
        let factory = factory(&server, &link);
        let mut jobs = watch(&factory, "jobs");
        let first = next(&mut jobs).await;
        assert_eq!(first.holder.as_deref(), Some("old"));
        server.delete("jobs");
        assert_eq!(next(&mut jobs).await, LeaseView::default(), "deleted");
        server.create(held("jobs", "new")).expect("create");
        let view = next(&mut jobs).await;
        assert_eq!(view.holder.as_deref(), Some("new"));
        assert_ne!(view.incarnation, first.incarnation);
    });
}

#[test]
fn a_failed_shared_watch_is_every_followers_watch_error() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        server.create(held("a", "x")).expect("create");
        server.create(held("b", "y")).expect("create");
        let factory = factory(&server, &link);
        let mut a = watch(&factory, "a");
        let mut b = watch(&factory, "b");
        next(&mut a).await;
        next(&mut b).await;
        // The connection breaks: the watch body ends with an error at the
        // next event it carries.
        link.set_cut(Some(Cut::Refused), Some(Cut::Refused));
        hand_over(&server, "a", "z");
        for (name, watch) in [("a", &mut a), ("b", &mut b)] {
            match tokio::time::timeout(HANG, watch.next()).await {
                Ok(Some(Err(error))) => println!("{name}: {error}"),
                other => panic!("{name}: expected the watch error, got {other:?}"),
            }
            let end = tokio::time::timeout(HANG, watch.next()).await;
            assert!(matches!(end, Ok(None)), "{name}: the watch ended");
        }
        // Watching again (as the engine does after its backoff) lists anew.
        link.set_cut(None, None);
        let mut again = watch(&factory, "a");
        assert_eq!(next(&mut again).await.holder.as_deref(), Some("z"));
        assert_eq!(server.requests_served().1, 2, "a second list");
    });
}

#[test]
fn the_shared_watch_ends_with_its_last_follower() {
    block_on_paused(async {
        let server = ApiServer::new();
        let link = link();
        server.create(held("a", "x")).expect("create");
        let factory = factory(&server, &link);
        let mut one = watch(&factory, "a");
        let mut two = watch(&factory, "a");
        next(&mut one).await;
        next(&mut two).await;
        drop(one);
        hand_over(&server, "a", "y");
        assert_eq!(next(&mut two).await.holder.as_deref(), Some("y"));
        assert_eq!(server.open_watches(), 1, "one follower left");
        drop(two);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The apiserver notices a closed watch when it next writes to it.
        hand_over(&server, "a", "z");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.open_watches(), 0, "nobody follows any Lease");
        // A new follower starts it again.
        let mut three = watch(&factory, "a");
        assert_eq!(next(&mut three).await.holder.as_deref(), Some("z"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.requests_served(), (2, 2), "(watches, lists)");
    });
}

#[test]
fn when_the_shared_task_dies_its_followers_watches_end_and_a_new_task_serves() {
    // The client (and its request buffer) lives on `outer`; the shared
    // task starts on `inner`, which then shuts down: the task is gone.
    let outer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = ApiServer::new();
    let link = link();
    server.create(held("a", "x")).expect("create");
    let factory = {
        let _entered = outer.enter();
        factory(&server, &link)
    };
    let mut follower = watch(&factory, "a");
    let inner = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    inner.block_on(async {
        assert_eq!(next(&mut follower).await.holder.as_deref(), Some("x"));
    });
    drop(inner);
    outer.block_on(async {
        let end = tokio::time::timeout(HANG, follower.next()).await;
        assert!(matches!(end, Ok(None)), "the watch ended: {end:?}");
        let mut again = watch(&factory, "a");
        assert_eq!(next(&mut again).await.holder.as_deref(), Some("x"));
        hand_over(&server, "a", "y");
        assert_eq!(next(&mut again).await.holder.as_deref(), Some("y"));
    });
}
