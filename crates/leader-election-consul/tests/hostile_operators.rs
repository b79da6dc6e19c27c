//! Operators, twins, crashes and refused configuration against the real
//! agent (through a recording proxy where a test needs to count or fail
//! requests). Run with `cargo xtask integration consul`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElection, LeaderElectionEvent, LeaderElectionOptions,
    StoreFactory,
};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulLeaseStore};
use leader_election_testkit::unique_resource;
use reqwest::Method;
use tokio::time::Instant;

use support::responder::{reply, Responder};
use support::{agent_address, config_for, test_options};

type Election = leader_election_abstractions::Election<ConsulLeaseStore>;

/// A health-based election of `resource` for `id` at `address`.
fn election(address: std::net::SocketAddr, resource: &str, id: &str) -> Election {
    election_with(config_for(address), test_options(), resource, id)
}

fn election_with(
    config: ConsulConfig,
    options: LeaderElectionOptions,
    resource: &str,
    id: &str,
) -> Election {
    ConsulLeaderElectionFactory::new(config, options.clone())
        .expect("factory")
        .election(resource)
        .candidate_id(id)
        .options(options)
        .health_based()
        .build()
        .expect("election")
}

/// Waits (bounded, only against hangs) until `condition` holds.
async fn eventually(what: &str, limit: Duration, condition: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {limit:?}: {what}");
}

fn lock_path(resource: &str) -> String {
    format!("kv/service/leader-election/{resource}/.lock")
}

/// An operator's HTTP call with a body.
async fn operator(method: Method, path: &str, body: &'static str) -> String {
    support::call(method, agent_address(), path, None, Some(body.into()))
        .await
        .1
}

/// The `Session` on the lock key, as Consul has it.
async fn lock_holder_session(resource: &str) -> Option<String> {
    let answer = operator(Method::GET, &lock_path(resource), "").await;
    let entries: serde_json::Value = serde_json::from_str(&answer).ok()?;
    entries[0]["Session"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn a_lock_held_under_our_id_by_another_session_is_waited_out_without_a_hot_loop() {
    let resource = unique_resource("twin-session");
    // A restarted process's old session still holds the lock under our id.
    let created = operator(
        Method::PUT,
        "session/create",
        r#"{"Name":"old process","TTL":"30s","LockDelay":"0s","NodeChecks":[],"Behavior":"release"}"#,
    )
    .await;
    let old: serde_json::Value = serde_json::from_str(&created).expect("session JSON");
    let old = old["ID"].as_str().expect("session id").to_owned();
    let acquired = operator(
        Method::PUT,
        &format!(
            "{}?acquire={old}&flags=3304740253564472344",
            lock_path(&resource)
        ),
        r#"{"candidate_id":"a"}"#,
    )
    .await;
    assert_eq!(acquired.trim(), "true");

    let proxy = Responder::proxy(agent_address(), |_| None).await;
    let candidate = election(proxy.address, &resource, "a");
    candidate.start().await.expect("start");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let requests = proxy.seen().len();
    println!("consul: {requests} requests in 5 s while another session held the lock under our id");
    assert!(
        !candidate.is_leader(),
        "led while another session holds the lock"
    );
    // Lease 2 s: a few acquire attempts, renewals of the registry session
    // every 500 ms, blocking reads. A hot loop makes thousands.
    assert!(requests < 100, "{requests} requests in 5 s: a hot loop");

    operator(Method::PUT, &format!("session/destroy/{old}"), "").await;
    eventually(
        "leads once the old session is gone",
        Duration::from_secs(30),
        || candidate.is_leader(),
    )
    .await;
    candidate.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn an_operators_plain_put_on_the_lock_key_does_not_depose_the_leader() {
    let resource = unique_resource("operator-put");
    let leader = election(agent_address(), &resource, "a");
    let follower = election(agent_address(), &resource, "b");
    let mut events = leader.subscribe();
    leader.start().await.expect("start");
    let guard = leader.wait_for_leadership().await.expect("leads");
    let token = guard.fencing_token();
    follower.start().await.expect("start");
    let session = leader.store().session_id().await.expect("a session");

    // `consul kv put <key> <value>`: a plain PUT, no acquire.
    let put = operator(Method::PUT, &lock_path(&resource), "operator was here").await;
    assert_eq!(put.trim(), "true");
    // Four renewals and watch rounds later the leader still leads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(leader.is_leader(), "the plain PUT deposed the leader");
    assert_eq!(
        leader.fencing_token(),
        Some(token),
        "the term's token changed"
    );
    assert_eq!(
        lock_holder_session(&resource).await,
        Some(session),
        "Consul moved the lock"
    );
    assert!(!follower.is_leader(), "two leaders");
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        assert!(
            !matches!(event, LeaderElectionEvent::LostLeadership { .. }),
            "{event:?}"
        );
    }

    // Fencing stays right: the next term has a larger token.
    leader.stop().await.expect("stop");
    let next = follower
        .wait_for_leadership()
        .await
        .expect("follower leads");
    assert!(
        next.fencing_token() > token,
        "{:?} after {token:?}",
        next.fencing_token()
    );
    follower.stop().await.expect("stop");
}

use futures_util::StreamExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn an_unhealthy_leader_whose_release_failed_does_not_keep_the_lock_alive() {
    let resource = unique_resource("failed-release");
    // Every release through this proxy fails, as with an agent that drops
    // out for exactly that call; everything else gets through.
    // (Acquires are transactions too, of `lock`: they get through.)
    let release = |request: &support::responder::Recorded| {
        request.line().starts_with("PUT /v1/txn")
            && String::from_utf8_lossy(&request.body).contains("\"unlock\"")
    };
    let proxy = Responder::proxy(agent_address(), move |request| {
        release(request).then(|| {
            reply(
                "500 Internal Server Error",
                &[],
                b"rpc error: No cluster leader",
            )
        })
    })
    .await;
    let leader = election(proxy.address, &resource, "a");
    leader.start().await.expect("start");
    leader.wait_for_leadership().await.expect("leads");
    let follower = election(agent_address(), &resource, "b");
    follower.start().await.expect("start");

    let unhealthy = Instant::now();
    leader
        .update_health(false, None)
        .await
        .expect("update_health");
    assert!(!leader.is_leader());
    // Lease 2 s: the abandoned session expires within about 2 × TTL, then
    // the 3 s lock-delay passes; 60 s only guards against a hang.
    let took = eventually(
        "the follower leads once the unhealthy leader's session has expired",
        Duration::from_secs(60),
        || follower.is_leader(),
    )
    .await;
    println!(
        "consul: follower led {:?} after the leader turned unhealthy and its release failed",
        took.max(unhealthy.elapsed())
    );
    assert!(!leader.is_leader(), "two leaders");
    assert!(
        proxy.seen().iter().any(release),
        "the leader never tried to release"
    );
    follower.stop().await.expect("stop");
    leader.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn a_crashed_candidates_record_disappears_from_consul() {
    let resource = unique_resource("crashed-record");
    let crashed = Arc::new(AtomicBool::new(false));
    let cut = Arc::clone(&crashed);
    let proxy = Responder::proxy(agent_address(), move |_| {
        cut.load(Ordering::SeqCst)
            .then(|| reply("503 Service Unavailable", &[], b"crashed"))
    })
    .await;
    let candidate = election(proxy.address, &resource, "a");
    candidate.start().await.expect("start");
    let prefix = format!("kv/service/leader-election/{resource}/candidates/?keys");
    let keys = || async { operator(Method::GET, &prefix, "").await };
    let mut published = false;
    for _ in 0..100 {
        if keys().await.contains("candidates/a") {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(published, "the record was never published");

    // The process dies: nothing of it reaches Consul any more.
    crashed.store(true, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        if !keys().await.contains("candidates/a") {
            break;
        }
        // Lease 2 s: the registry session expires within about 2 × TTL.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the crashed candidate's record is still in Consul after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "consul: a crashed candidate's record was deleted {:?} after its last contact",
        started.elapsed()
    );
    let _ = candidate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn a_session_ttl_the_agent_refuses_fails_start_naming_lease_duration() {
    // The test agent's session_ttl_min is 1 s; our config claims 100 ms.
    let config = ConsulConfig {
        session_ttl_min: Duration::from_millis(100),
        ..config_for(agent_address())
    };
    let options = leader_election_testkit::timing_options(
        Duration::from_millis(800),
        Duration::from_millis(200),
        Duration::from_millis(200),
        Duration::from_millis(100),
    );
    let refused = election_with(config, options, &unique_resource("ttl"), "a");
    match refused.start().await {
        Err(Error::InvalidOption { field, rule }) => {
            assert_eq!(field, "lease_duration");
            assert!(rule.contains("Invalid Session TTL"), "{rule}");
        }
        other => panic!("expected start() to refuse lease_duration, got {other:?}"),
    }
    assert!(!refused.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn a_late_release_of_an_earlier_term_leaves_the_sessions_next_term_alone() {
    // Found by the simulation: a release the caller gave up on (timed out)
    // can still reach Consul after the same session took the lock again.
    // Here it arrives late by being sent late. A plain `?release=<session>`
    // freed the new term; the release is conditional on the term's write.
    use leader_election_abstractions::store::{Acquisition, LeaseClaim, LeaseStore};
    let resource = unique_resource("late-release");
    let options = test_options();
    let factory = ConsulLeaderElectionFactory::new(config_for(agent_address()), options.clone())
        .expect("factory");
    let store = factory.store(&resource, "a", &options).expect("store");
    let claim = LeaseClaim {
        resource: resource.clone(),
        candidate_id: "a".into(),
        lease_duration: options.lease_duration,
        grace_period: options.grace_period,
        holder_metadata: Default::default(),
    };
    let acquire = || async {
        match store.try_acquire(&claim).await.expect("try_acquire") {
            Acquisition::Acquired { grant, .. } => grant,
            Acquisition::Held(view) => panic!("not acquired: {view:?}"),
        }
    };
    let first = acquire().await;
    store.release(&first).await.expect("release");
    let second = acquire().await;
    assert_ne!(first, second, "a new term, a new grant");
    // The first term's release again, late.
    store.release(&first).await.expect("late release");
    let session = store.session_id().await.expect("a session");
    assert_eq!(
        lock_holder_session(&resource).await,
        Some(session),
        "the late release freed the next term"
    );
    store
        .release(&second)
        .await
        .expect("release the second term");
    assert_eq!(lock_holder_session(&resource).await, None, "still held");
    store.close().await.expect("close");
}

/// A plain (not health-based) election of `resource` for `id` at `address`.
fn plain_election(
    address: std::net::SocketAddr,
    options: &LeaderElectionOptions,
    resource: &str,
    id: &str,
) -> Election {
    ConsulLeaderElectionFactory::new(config_for(address), options.clone())
        .expect("factory")
        .election(resource)
        .candidate_id(id)
        .options(options.clone())
        .build()
        .expect("election")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn a_handover_costs_the_follower_a_session_renewal_and_one_transaction() {
    // Lease 10 s: the follower's lock session, created by `start()`, is
    // still alive when it takes over a second or two later.
    let options = leader_election_testkit::timing_options(
        Duration::from_secs(10),
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_secs(1),
    );
    let resource = unique_resource("handover-requests");
    let proxy = Responder::proxy(agent_address(), |_| None).await;
    let leader = plain_election(agent_address(), &options, &resource, "a");
    let follower = plain_election(proxy.address, &options, &resource, "b");
    leader.start().await.expect("start a");
    eventually("a leads", Duration::from_secs(30), || leader.is_leader()).await;
    follower.start().await.expect("start b");
    eventually("b sees a lead", Duration::from_secs(30), || {
        follower.current_leader_id().as_deref() == Some("a")
    })
    .await;
    let before = proxy.seen().len();
    leader.stop().await.expect("stop a");
    eventually("b leads", Duration::from_secs(30), || follower.is_leader()).await;
    // What the follower sent from the release until it led, but for the
    // shared watch's blocking query on the prefix (which api.Lock's
    // follower has open too, and which counts as a request when it
    // returns with the release).
    let sent: Vec<String> = proxy.seen()[before..]
        .iter()
        .map(|r| r.line().to_owned())
        .filter(|line| !line.contains("recurse"))
        .collect();
    println!("consul: the follower's requests from the release until it led: {sent:#?}");
    // The token is the acquiring write's ModifyIndex, from the transaction's answer.
    let token = follower.fencing_token().expect("a token while leading");
    let key = operator(Method::GET, &lock_path(&resource), "").await;
    let key: serde_json::Value = serde_json::from_str(&key).expect("the lock key");
    assert_eq!(Some(token.0), key[0]["ModifyIndex"].as_u64(), "{key}");
    follower.stop().await.expect("stop b");
    // Was four: a read of the key, the renewal, `?acquire`, and a
    // consistent read for the acquiring write's ModifyIndex.
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[0].starts_with("PUT /v1/session/renew/"), "{sent:#?}");
    assert!(sent[1].starts_with("PUT /v1/txn"), "{sent:#?}");
}
