//! The least-privilege ACL policy the README documents, against a real
//! agent of the test's own with ACLs enabled (`default_policy = deny`):
//! elections work with it, and it cannot touch other nodes' sessions or
//! keys outside the prefix. Run with `cargo xtask integration consul`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::{Error, LeaderElection, StoreFactory};
use leader_election_consul::{AclToken, ConsulConfig, ConsulLeaderElectionFactory};
use leader_election_testkit::unique_resource;
use reqwest::{Method, StatusCode};

use support::{config_for, test_options, PrivateAgent};

const MANAGEMENT: &str = "6f1c1c5e-3b0a-4c3e-9d3c-0d6f6a1e2b7a";
const NODE: &str = "le-acl-node";

/// The policy the README documents, for the agent's node.
fn least_privilege_rules() -> String {
    format!(
        "key_prefix \"service/leader-election/\" {{ policy = \"write\" }}\n\
         session \"{NODE}\" {{ policy = \"write\" }}\n"
    )
}

/// A call with `token`; returns the status and the body.
async fn call(
    agent: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, String) {
    let body = (!body.is_null()).then(|| body.to_string().into());
    support::call(method, agent, path, Some(token), body).await
}

async fn management(
    agent: SocketAddr,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, text) = call(agent, MANAGEMENT, method, path, body).await;
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// A new token whose only policy has `rules`.
async fn token_with(agent: SocketAddr, name: &str, rules: &str) -> String {
    let policy = management(
        agent,
        Method::PUT,
        "acl/policy",
        serde_json::json!({ "Name": name, "Rules": rules }),
    )
    .await;
    let token = management(
        agent,
        Method::PUT,
        "acl/token",
        serde_json::json!({ "Policies": [{ "ID": policy["ID"] }] }),
    )
    .await;
    token["SecretID"].as_str().expect("token secret").to_owned()
}

/// Awaits `leads`, failing the test (instead of hanging the suite) if it
/// has not led within a minute: the lease here is seconds.
async fn within<F>(leads: F, what: &str) -> leader_election_abstractions::LeadershipGuard
where
    F: std::future::Future<
        Output = leader_election_abstractions::Result<
            leader_election_abstractions::LeadershipGuard,
        >,
    >,
{
    match tokio::time::timeout(Duration::from_secs(60), leads).await {
        Ok(guard) => guard.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => panic!("{what}: no leadership within 60 s"),
    }
}

/// Starts an ACL-enabled agent and makes a token with the README's policy.
async fn acl_agent() -> (PrivateAgent, String) {
    let agent = PrivateAgent::start_with(
        "acl",
        serde_json::json!({
            "node_name": NODE,
            "acl": {
                "enabled": true,
                "default_policy": "deny",
                "enable_token_persistence": false,
                "tokens": { "initial_management": MANAGEMENT, "agent": MANAGEMENT }
            }
        }),
    )
    .await;
    let address = agent.address();
    // The agent registers its node with the agent token in the background;
    // sessions need that registration.
    let mut registered = false;
    for _ in 0..400 {
        let (status, text) = call(
            address,
            MANAGEMENT,
            Method::GET,
            &format!("catalog/node/{NODE}"),
            serde_json::Value::Null,
        )
        .await;
        if status.is_success() && text.contains(NODE) {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        registered,
        "the ACL agent did not register its node {NODE} within 20 s"
    );
    let secret = token_with(address, "leader-election", &least_privilege_rules()).await;
    (agent, secret)
}

fn factory(agent: SocketAddr, token: &str) -> ConsulLeaderElectionFactory {
    let config = ConsulConfig {
        token: Some(AclToken::new(token)),
        ..config_for(agent)
    };
    ConsulLeaderElectionFactory::new(config, test_options()).expect("factory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Consul binary: cargo xtask integration consul"]
async fn the_least_privilege_policy_is_enough_to_elect_and_no_more() {
    let (agent, token) = acl_agent().await;
    let address = agent.address();
    let resource = unique_resource("acl");
    let build = |id: &str| {
        factory(address, &token)
            .election(&resource)
            .candidate_id(id)
            .health_based()
            .build()
            .expect("election")
    };
    let (a, b) = (build("a"), build("b"));
    a.start().await.expect("start a");
    b.start().await.expect("start b");
    let first = within(a.wait_for_leadership(), "a leads").await;
    use leader_election_abstractions::HealthBasedLeaderElection as _;
    let mut candidates = Vec::new();
    for _ in 0..100 {
        candidates = b.candidate_health().await.expect("candidate list");
        if candidates.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        candidates.len(),
        2,
        "both candidates publish: {candidates:?}"
    );
    a.stop().await.expect("stop a");
    let second = within(b.wait_for_leadership(), "b leads after a stops").await;
    assert!(second.fencing_token() > first.fencing_token());
    b.stop().await.expect("stop b");

    // What the old `session_prefix ""` policy allowed: destroying another
    // node's session, so breaking another service's lock.
    management(
        address,
        Method::PUT,
        "catalog/register",
        serde_json::json!({ "Node": "other-node", "Address": "127.0.0.2" }),
    )
    .await;
    let other = management(
        address,
        Method::PUT,
        "session/create",
        serde_json::json!({ "Node": "other-node", "NodeChecks": [], "TTL": "60s" }),
    )
    .await;
    let other = other["ID"].as_str().expect("session id");
    let (status, text) = call(
        address,
        &token,
        Method::PUT,
        &format!("session/destroy/{other}"),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "destroyed another node's session: {text}"
    );
    let (status, text) = call(
        address,
        &token,
        Method::PUT,
        "session/create",
        serde_json::json!({ "Node": "other-node", "NodeChecks": [], "TTL": "60s" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "made a session on another node: {text}"
    );
    let (status, text) = call(
        address,
        &token,
        Method::PUT,
        "kv/other-team/config",
        serde_json::json!("x"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "wrote outside the prefix: {text}"
    );

    // Without the session rule, the error says what is missing.
    let keys_only = token_with(
        address,
        "keys-only",
        "key_prefix \"service/leader-election/\" { policy = \"write\" }",
    )
    .await;
    let refused = factory(address, &keys_only)
        .election(&resource)
        .candidate_id("c")
        .build()
        .expect("election");
    let claim = leader_election_abstractions::store::LeaseClaim {
        resource: resource.clone(),
        candidate_id: "c".into(),
        lease_duration: Duration::from_secs(2),
        grace_period: Duration::from_secs(1),
        holder_metadata: Default::default(),
    };
    use leader_election_abstractions::LeaseStore as _;
    match refused.store().try_acquire(&claim).await {
        Err(Error::Unauthorized { message, .. }) => {
            assert!(message.contains("<the agent's node name>"), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}
