//! etcd with auth enabled: a user whose only role grants `readwrite` on the
//! key prefix (least privilege) runs elections; a user without it gets
//! `Error::Unauthorized` naming the grant; a wrong password is refused.
//! Run with `cargo xtask integration etcd`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use leader_election_abstractions::store::{LeaseClaim, LeaseStore};
use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElection, StoreFactory,
};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory, EtcdUser, Password};
use serde_json::json;
use support::{test_options, Admin, PrivateEtcd, PREFIX};
use tokio::time::Instant;

/// A private etcd with auth on: `root`, and `app` whose role grants
/// readwrite on `<PREFIX>/` only; `stranger` has no role.
async fn etcd_with_auth() -> PrivateEtcd {
    etcd_with_auth_and(&[]).await
}

/// [`etcd_with_auth`] with extra etcd flags.
async fn etcd_with_auth_and(flags: &[&str]) -> PrivateEtcd {
    let etcd = PrivateEtcd::start_with(flags).await;
    let admin = Admin::new(&etcd.url());
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let prefix = format!("{PREFIX}/");
    for (path, body) in [
        (
            "/v3/auth/user/add",
            json!({ "name": "root", "password": "root-pw" }),
        ),
        ("/v3/auth/role/add", json!({ "name": "root" })),
        (
            "/v3/auth/user/grant",
            json!({ "user": "root", "role": "root" }),
        ),
        ("/v3/auth/role/add", json!({ "name": "elections" })),
        (
            "/v3/auth/role/grant",
            json!({ "name": "elections", "perm": {
                "permType": "READWRITE",
                "key": b64(&prefix),
                "range_end": b64(&support::prefix_end(&prefix)),
            }}),
        ),
        (
            "/v3/auth/user/add",
            json!({ "name": "app", "password": "app-pw" }),
        ),
        (
            "/v3/auth/user/grant",
            json!({ "user": "app", "role": "elections" }),
        ),
        (
            "/v3/auth/user/add",
            json!({ "name": "stranger", "password": "stranger-pw" }),
        ),
        ("/v3/auth/enable", json!({})),
    ] {
        admin.call(path, body).await;
    }
    etcd
}

fn factory_as(etcd: &PrivateEtcd, user: &str, password: &str) -> EtcdLeaderElectionFactory {
    EtcdLeaderElectionFactory::new(
        EtcdConfig {
            user: Some(EtcdUser {
                name: user.to_owned(),
                password: Password::new(password),
            }),
            ..support::config_for(&etcd.url())
        },
        test_options(),
    )
    .expect("factory")
}

fn claim(resource: &str, candidate_id: &str) -> LeaseClaim {
    LeaseClaim {
        resource: resource.to_owned(),
        candidate_id: candidate_id.to_owned(),
        lease_duration: Duration::from_secs(2),
        grace_period: Duration::from_secs(1),
        holder_metadata: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_user_limited_to_the_prefix_runs_elections_with_health_and_handover() {
    let etcd = etcd_with_auth().await;
    let factory = factory_as(&etcd, "app", "app-pw");
    let resource = support::resource("auth");
    let a = factory
        .election(&resource)
        .candidate_id("a")
        .health_based()
        .build()
        .expect("a");
    let b = factory
        .election(&resource)
        .candidate_id("b")
        .health_based()
        .build()
        .expect("b");
    a.start().await.expect("start a");
    let first = a.wait_for_leadership().await.expect("a leads");
    b.start().await.expect("start b");
    let listed = Instant::now();
    loop {
        let health = a.candidate_health().await.expect("candidate health");
        if health.len() == 2 {
            break;
        }
        assert!(
            listed.elapsed() < Duration::from_secs(10),
            "never listed both: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await.expect("stop a (release under auth)");
    let second = tokio::time::timeout(Duration::from_secs(10), b.wait_for_leadership())
        .await
        .expect("b leads after a's release")
        .expect("leads");
    assert!(second.fencing_token() > first.fencing_token());
    b.stop().await.expect("stop b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn a_user_without_the_grant_or_with_a_wrong_password_is_refused_by_name() {
    let etcd = etcd_with_auth().await;
    let resource = support::resource("denied");

    let stranger = factory_as(&etcd, "stranger", "stranger-pw")
        .store(&resource, "s", &test_options())
        .expect("store");
    match stranger.try_acquire(&claim(&resource, "s")).await {
        Err(Error::Unauthorized { message, .. }) => {
            assert!(message.contains("grant-permission"), "{message}");
            assert!(message.contains(&format!("{PREFIX}/")), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    let wrong = factory_as(&etcd, "app", "not-the-password")
        .store(&resource, "w", &test_options())
        .expect("store");
    match wrong.list_candidates().await {
        Err(Error::Unauthorized { message, .. }) => {
            assert!(message.contains("\"app\""), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration etcd"]
async fn an_expired_auth_token_is_replaced_by_logging_in_again() {
    // Simple tokens expire a second after their last use here.
    let etcd = etcd_with_auth_and(&["--auth-token-ttl=1"]).await;
    let resource = support::resource("token");
    let store = factory_as(&etcd, "app", "app-pw")
        .store(&resource, "t", &test_options())
        .expect("store");
    store.list_candidates().await.expect("first call logs in");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    store
        .list_candidates()
        .await
        .expect("a call after the token expired logs in again");
}
