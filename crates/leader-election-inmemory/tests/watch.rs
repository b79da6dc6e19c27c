//! The in-memory store's watches: a change of one resource's lease wakes
//! that resource's watches only, so a process with thousands of elections
//! does not do work proportional to all of them on every renewal.

use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::store::{Acquisition, LeaseClaim, LeaseStore};
use leader_election_inmemory::InMemoryStore;

fn claim(resource: &str, candidate: &str) -> LeaseClaim {
    LeaseClaim {
        resource: resource.to_owned(),
        candidate_id: candidate.to_owned(),
        lease_duration: Duration::from_secs(15),
        grace_period: Duration::from_secs(5),
        holder_metadata: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_of_one_resource_does_not_wake_the_watches_of_another() {
    let store = InMemoryStore::new();
    let watcher = store.for_election("quiet", "follower", Duration::from_secs(5));
    let busy = store.for_election("busy", "leader", Duration::from_secs(5));
    let mut watch = watcher.watch();
    let first = watch.next().await.expect("first view").expect("view");
    assert_eq!(first.holder, None);

    let Acquisition::Acquired { grant, .. } = busy
        .try_acquire(&claim("busy", "leader"))
        .await
        .expect("acquire")
    else {
        panic!("a free lease is acquired");
    };
    busy.renew(&grant).await.expect("renew");
    busy.release(&grant).await.expect("release");
    // Virtual time: the wait costs nothing and only guards against a hang.
    let woken = tokio::time::timeout(Duration::from_secs(60), watch.next()).await;
    assert!(
        woken.is_err(),
        "the watch of `quiet` woke for `busy`: {woken:?}"
    );

    // Its own resource's changes still arrive, each as a view.
    let own = store.for_election("quiet", "leader", Duration::from_secs(5));
    let acquired = own
        .try_acquire(&claim("quiet", "leader"))
        .await
        .expect("acquire");
    assert!(matches!(acquired, Acquisition::Acquired { .. }));
    let view = tokio::time::timeout(Duration::from_secs(60), watch.next())
        .await
        .expect("the watch wakes for its own resource")
        .expect("an item")
        .expect("a view");
    assert_eq!(view.holder.as_deref(), Some("leader"));
}
