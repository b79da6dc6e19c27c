//! Consul configuration checks (contract C10) and the provider's handling of
//! answers no healthy agent gives (C9), against `Responder`: a fake HTTP
//! responder for these unit tests only. Runs in plain `cargo test`.

mod support;

use std::time::Duration;

use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElectionOptions, StoreFactory,
};
use leader_election_consul::{AclToken, ConsulConfig, ConsulLeaderElectionFactory};
use support::responder::{acquire_error, Responder};

fn options() -> LeaderElectionOptions {
    support::responder::unit_options()
}

fn field(error: Error) -> String {
    match error {
        Error::InvalidOption { field, .. } => field.into_owned(),
        other => panic!("expected an invalid option, got {other:?}"),
    }
}

#[test]
fn bad_configuration_is_rejected_naming_the_field() {
    let cases: Vec<(ConsulConfig, &str)> = vec![
        (
            ConsulConfig {
                address: "127.0.0.1:8500".into(),
                ..Default::default()
            },
            "address",
        ),
        (
            ConsulConfig {
                key_prefix: "/leading".into(),
                ..Default::default()
            },
            "key_prefix",
        ),
        (
            ConsulConfig {
                key_prefix: "a/../b".into(),
                ..Default::default()
            },
            "key_prefix",
        ),
        (
            ConsulConfig {
                key_prefix: "spaces here".into(),
                ..Default::default()
            },
            "key_prefix",
        ),
        (
            ConsulConfig {
                request_timeout: Duration::ZERO,
                ..Default::default()
            },
            "request_timeout",
        ),
        (
            ConsulConfig {
                watch_wait: Duration::from_secs(3600),
                ..Default::default()
            },
            "watch_wait",
        ),
        (
            ConsulConfig {
                datacenter: Some("dc 1".into()),
                ..Default::default()
            },
            "datacenter",
        ),
        (
            ConsulConfig {
                max_connections: 1,
                ..Default::default()
            },
            "max_connections",
        ),
        (
            ConsulConfig {
                max_connections: 1_000_000,
                ..Default::default()
            },
            "max_connections",
        ),
    ];
    for (config, expected) in cases {
        let error = ConsulLeaderElectionFactory::new(config, options()).expect_err(expected);
        assert_eq!(field(error), expected);
    }
}

#[test]
fn lease_duration_must_fit_the_session_ttl_bounds() {
    let factory =
        ConsulLeaderElectionFactory::new(ConsulConfig::default(), options()).expect("factory");
    let short = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(5))
        .renew_interval(Duration::from_secs(1))
        .instance_id("unit")
        .build()
        .expect("valid in general");
    let error = factory
        .election("jobs")
        .options(short)
        .build()
        .expect_err("below Consul's default session_ttl_min");
    assert!(error.to_string().contains("session_ttl_min"), "{error}");
    assert_eq!(field(error), "lease_duration");
}

fn timed(lease: u64, renew: u64, grace: u64) -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(lease))
        .renew_interval(Duration::from_secs(renew))
        .grace_period(Duration::from_secs(grace))
        .instance_id("unit")
        .build()
        .expect("valid in general")
}

#[test]
fn lock_delay_outlasts_every_term_by_the_grace_period() {
    use leader_election_abstractions::LeaseStore;
    let factory =
        ConsulLeaderElectionFactory::new(ConsulConfig::default(), options()).expect("factory");
    // (lease, renew, grace) -> (lock-delay, term limit)
    let cases = [
        ((15, 5, 5), (20, 15)),
        ((10, 3, 1), (11, 10)),
        // Consul caps the lock-delay at 60 s: the term shrinks instead.
        ((58, 20, 5), (60, 55)),
        ((300, 20, 10), (60, 50)),
    ];
    for ((lease, renew, grace), (lock_delay, term)) in cases {
        let options = timed(lease, renew, grace);
        let election = factory
            .election("jobs")
            .options(options.clone())
            .build()
            .expect("valid options");
        let store = election.store();
        assert_eq!(
            store.lock_delay(),
            Duration::from_secs(lock_delay),
            "lease {lease}s grace {grace}s"
        );
        assert_eq!(
            store.term_limit(&options),
            Duration::from_secs(term),
            "lease {lease}s grace {grace}s"
        );
    }
}

#[test]
fn terms_that_cannot_fit_under_the_lock_delay_cap_are_rejected_naming_the_field() {
    let factory =
        ConsulLeaderElectionFactory::new(ConsulConfig::default(), options()).expect("factory");
    let error = factory
        .election("jobs")
        .options(timed(120, 10, 60))
        .build()
        .expect_err("no term fits under a 60 s lock-delay minus a 60 s grace period");
    assert!(error.to_string().contains("60 s lock-delay cap"), "{error}");
    assert_eq!(field(error), "grace_period");
    let error = factory
        .election("jobs")
        .options(timed(120, 25, 10))
        .build()
        .expect_err("two 25 s renewals do not fit in a 50 s term");
    assert!(error.to_string().contains("term limit"), "{error}");
    assert_eq!(field(error), "renew_interval");
}

#[test]
fn the_acl_token_never_appears_in_debug_output() {
    let config = ConsulConfig {
        token: Some(AclToken::new("s3cr3t-token")),
        ..Default::default()
    };
    let factory = ConsulLeaderElectionFactory::new(config.clone(), options()).expect("factory");
    for shown in [format!("{config:?}"), format!("{factory:?}")] {
        assert!(!shown.contains("s3cr3t"), "token leaked: {shown}");
    }
}

#[tokio::test]
async fn forbidden_answers_say_which_acl_permission_is_missing() {
    let agent = Responder::canned(vec!["403 Forbidden|Permission denied"]).await;
    let election = agent.election();
    let error = election.candidate_health().await.expect_err("forbidden");
    match error {
        Error::Unauthorized { message, .. } => {
            assert!(
                message.contains("key_prefix") && message.contains("session"),
                "{message}"
            );
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_ttl_consul_rejects_is_an_option_error_naming_lease_duration() {
    let agent = Responder::canned(vec![
        "404 Not Found|",
        "500 Internal Server Error|Invalid Session TTL '10000000000', must be between [30s=24h0m0s]",
    ])
    .await;
    let error = acquire_error(&agent.factory()).await;
    assert!(
        matches!(&error, Error::InvalidOption { field, .. } if field == "lease_duration"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_malformed_answer_keeps_the_decoding_error_as_its_source() {
    use std::error::Error as _;
    let agent = Responder::canned(vec!["{not json"]).await;
    let error = acquire_error(&agent.factory()).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.source().is_some(),
        "the serde error was dropped: {error:?}"
    );
}
