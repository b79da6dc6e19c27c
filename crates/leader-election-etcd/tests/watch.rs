//! The store's watch against a real etcd: views follow the election's keys
//! as they change, without polling. Run with `cargo xtask integration etcd`.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::store::LeaseStore;
use leader_election_abstractions::StoreFactory;
use leader_election_etcd::EtcdLeaderElectionFactory;
use serde_json::json;
use support::{config_for, endpoint, test_options, Admin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn the_watch_reports_each_holder_and_the_free_election_in_order() {
    support::init_logs();
    let resource = support::resource("watch");
    let factory =
        EtcdLeaderElectionFactory::new(config_for(&endpoint()), test_options()).expect("factory");
    let store = factory
        .store(&resource, "observer", &test_options())
        .expect("store");
    let mut watch = store.watch();
    let first = next(&mut watch).await;
    assert_eq!(first.holder, None);

    let admin = Admin::shared();
    let key = format!("{}/{resource}/1234", support::PREFIX);
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    admin
        .call(
            "/v3/kv/put",
            json!({ "key": b64(&key), "value": b64("someone") }),
        )
        .await;
    let held = next(&mut watch).await;
    assert_eq!(held.holder.as_deref(), Some("someone"));
    let created = held.fencing_token.expect("a token").get();

    admin.delete(&key).await;
    let free = next(&mut watch).await;
    assert_eq!(free.holder, None);
    assert!(
        free.fencing_token.expect("the view's revision").get() > created,
        "the free view's token is the revision of the deletion: {free:?}"
    );
}

/// The next view; panics after 10 s, at the end of the stream or on an error.
async fn next(
    watch: &mut leader_election_abstractions::store::LeaseWatch,
) -> leader_election_abstractions::store::LeaseView {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a view within 10 s")
        .expect("the watch goes on")
        .expect("a view, not an error")
}
