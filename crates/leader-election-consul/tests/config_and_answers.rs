//! Consul configuration checks (contract C10) and the provider's handling of
//! answers no healthy agent gives (C9), against `FakeAgent`: a fake HTTP
//! responder for these unit tests only. Runs in plain `cargo test`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leader_election_abstractions::{
    Error, HealthBasedLeaderElection, LeaderElection, LeaderElectionOptions, StoreFactory,
};
use leader_election_consul::{AclToken, ConsulConfig, ConsulLeaderElectionFactory};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(10))
        .renew_interval(Duration::from_secs(3))
        .instance_id("unit")
        .build()
        .expect("valid")
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

/// A fake agent: answers every request with the next canned response.
struct FakeAgent {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeAgent {
    async fn start(responses: Vec<&'static str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            let mut index = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 16 * 1024];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push(request);
                let body = responses[index % responses.len()];
                index += 1;
                let (status, body) = body.split_once('|').unwrap_or(("200 OK", body));
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Consul-Index: 7\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        Self { address, requests }
    }

    fn factory(&self) -> ConsulLeaderElectionFactory {
        let config = ConsulConfig {
            address: format!("http://{}", self.address),
            request_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        ConsulLeaderElectionFactory::new(config, options()).expect("factory")
    }
}

#[tokio::test]
async fn malformed_answers_are_errors_and_never_panics() {
    let agent = FakeAgent::start(vec![
        "{not json",
        "[{\"Key\": 42}]",
        "500 Internal Server Error|No cluster leader",
        "[{\"Key\":\"service/leader-election/jobs/.lock\",\"ModifyIndex\":\"nan\"}]",
        "",
        "true",
        "[]",
        "{\"ID\": 5}",
    ])
    .await;
    let election = agent
        .factory()
        .election("jobs")
        .candidate_id("a")
        .health_based()
        .build()
        .expect("election");
    election.start().await.expect("start");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!election.is_leader(), "led on garbage answers");
    for _ in 0..5 {
        // One-shot calls surface the problem as an error value.
        let _ = election.candidate_health().await;
    }
    election.stop().await.expect("stop");
    assert!(
        agent.requests.lock().expect("lock").len() > 3,
        "the engine gave up instead of retrying"
    );
}

#[tokio::test]
async fn forbidden_answers_say_which_acl_permission_is_missing() {
    let agent = FakeAgent::start(vec!["403 Forbidden|Permission denied"]).await;
    let election = agent
        .factory()
        .election("jobs")
        .candidate_id("a")
        .health_based()
        .build()
        .expect("election");
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

/// The error of one acquire attempt of an election against `agent`.
async fn first_acquire_error(agent: &FakeAgent) -> Error {
    use leader_election_abstractions::LeaseStore;
    let election = agent
        .factory()
        .election("jobs")
        .candidate_id("a")
        .build()
        .expect("election");
    let claim = leader_election_abstractions::store::LeaseClaim {
        resource: "jobs".into(),
        candidate_id: "a".into(),
        lease_duration: Duration::from_secs(10),
        grace_period: Duration::from_secs(5),
        holder_metadata: Default::default(),
    };
    election
        .store()
        .try_acquire(&claim)
        .await
        .expect_err("the agent's answer is an error")
}

#[tokio::test]
async fn a_session_ttl_consul_rejects_is_an_option_error_naming_lease_duration() {
    let agent = FakeAgent::start(vec![
        "404 Not Found|",
        "500 Internal Server Error|Invalid Session TTL '10000000000', must be between [30s=24h0m0s]",
    ])
    .await;
    let error = first_acquire_error(&agent).await;
    assert!(
        matches!(&error, Error::InvalidOption { field, .. } if field == "lease_duration"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_malformed_answer_keeps_the_decoding_error_as_its_source() {
    use std::error::Error as _;
    let agent = FakeAgent::start(vec!["{not json"]).await;
    let error = first_acquire_error(&agent).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.source().is_some(),
        "the serde error was dropped: {error:?}"
    );
}
