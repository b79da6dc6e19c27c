//! etcd serving clients over TLS with client-certificate auth: elections run
//! with the CA and a client certificate from [`EtcdTls`]; without them the
//! handshake fails as a retryable error, never a panic.
//! Run with `cargo xtask integration etcd` (needs the `openssl` CLI).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use leader_election_abstractions::store::{LeaseClaim, LeaseStore};
use leader_election_abstractions::{Error, LeaderElection, StoreFactory};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory, EtcdTls};
use support::{test_options, PrivateEtcd};

fn factory(etcd: &PrivateEtcd, tls: EtcdTls) -> EtcdLeaderElectionFactory {
    EtcdLeaderElectionFactory::new(
        EtcdConfig {
            tls,
            ..support::config_for(&etcd.url())
        },
        test_options(),
    )
    .expect("factory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn elections_run_over_tls_with_a_client_certificate_and_fail_cleanly_without() {
    let etcd = PrivateEtcd::start_tls().await;
    let files = etcd.tls().expect("TLS files").clone();
    let resource = support::resource("tls");
    let good = factory(
        &etcd,
        EtcdTls {
            ca_cert: Some(files.ca.clone()),
            client_cert: Some(files.client.0.clone()),
            client_key: Some(files.client.1.clone()),
        },
    );
    let a = good
        .election(&resource)
        .candidate_id("a")
        .build()
        .expect("a");
    let b = good
        .election(&resource)
        .candidate_id("b")
        .build()
        .expect("b");
    a.start().await.expect("start a");
    let first = tokio::time::timeout(Duration::from_secs(30), a.wait_for_leadership())
        .await
        .expect("a leads over TLS within 30 s")
        .expect("leads");
    b.start().await.expect("start b");
    a.stop().await.expect("stop a");
    let second = tokio::time::timeout(Duration::from_secs(10), b.wait_for_leadership())
        .await
        .expect("b leads after a's release")
        .expect("leads");
    assert!(second.fencing_token() > first.fencing_token());
    b.stop().await.expect("stop b");

    let claim = LeaseClaim {
        resource: resource.clone(),
        candidate_id: "c".to_owned(),
        lease_duration: Duration::from_secs(2),
        grace_period: Duration::from_secs(1),
        holder_metadata: BTreeMap::new(),
    };
    for (what, tls) in [
        ("no CA", EtcdTls::default()),
        (
            "no client certificate",
            EtcdTls {
                ca_cert: Some(files.ca.clone()),
                ..EtcdTls::default()
            },
        ),
    ] {
        let store = factory(&etcd, tls)
            .store(&resource, "c", &test_options())
            .expect("store");
        match store.try_acquire(&claim).await {
            Err(Error::BackendUnavailable { .. }) => {}
            other => panic!("{what}: expected BackendUnavailable, got {other:?}"),
        }
    }
}
