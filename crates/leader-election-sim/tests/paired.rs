//! Paired scenarios: one script, run twice, in the simulation (virtual
//! time, the simulated Consul cluster) and against the real Consul agents
//! (`#[ignore]`d, run by `cargo xtask integration consul`). Both runs must
//! come to the same outcome: who led in which order, why the first leader
//! stopped, that it stopped before the next one began, and that the tokens
//! grew. Times are printed for comparison, never asserted as limits.
//!
//! The script: a leader leads and a follower sees it; then the leader is
//! cut off from its agent (both directions black-holed), and in the second
//! pair its node is also deregistered, so Consul invalidates its session at
//! once, long before the TTL (the early-invalidation window that the
//! lock-delay closes). The follower must take over only once the leader
//! has stepped down.

mod paired_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_consul::ConsulLeaderElectionFactory;
use leader_election_sim::checker::Checker;
use leader_election_sim::consul::{Agent, Consul};
use leader_election_sim::rng::Rng;
use leader_election_testkit::FaultProxy;
use paired_common::{
    behind_proxy, build, consul_config, consul_options, cut_off_script, link_cut, sim_link,
    Backend, BoxFuture, Candidate, Outcome, CONSUL_LOCK_DELAY,
};
use tokio::time::Instant;

async fn run_script(backend: &mut impl Backend, label: &str, deregister: bool) -> Outcome {
    let earliest = if deregister {
        CONSUL_LOCK_DELAY
    } else {
        Duration::ZERO
    };
    cut_off_script(backend, label, consul_options(), deregister, earliest).await
}

/// What both runs must come to.
fn expected() -> Outcome {
    Outcome::handed_over()
}

/// The simulated cluster, each candidate on its own node and link.
struct Simulated {
    consul: Consul,
    rng: Rng,
    leader_node: Option<String>,
}

impl Simulated {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Self {
            consul: Consul::new(rng.fork(), Duration::from_secs(1), Checker::new()),
            rng,
            leader_node: None,
        }
    }
}

impl Backend for Simulated {
    fn candidate<'a>(
        &'a mut self,
        resource: &'a str,
        id: &'a str,
        leader: bool,
        options: LeaderElectionOptions,
    ) -> BoxFuture<'a, Candidate> {
        Box::pin(async move {
            let link = sim_link(self.rng.fork());
            let node = format!("node-{id}");
            if leader {
                self.leader_node = Some(node.clone());
            }
            let agent = Arc::new(Agent::new(self.consul.clone(), node, link.clone()));
            let factory = ConsulLeaderElectionFactory::with_transport(
                consul_config("http://consul.sim:8500".into()),
                options,
                agent,
            )
            .expect("factory");
            Candidate {
                election: build(&factory, resource, id),
                cut: link_cut(link),
            }
        })
    }

    /// Deregisters the leader's node: Consul invalidates its sessions now.
    fn disturb<'a>(&'a mut self, _resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let node = self.leader_node.clone().expect("a leader");
            self.consul
                .deregister(&node, Instant::now() + Duration::from_secs(60), false);
        })
    }
}

/// Runs the script in the simulation: a paused current-thread runtime.
async fn simulated(seed: u64, deregister: bool) -> Outcome {
    leader_election_abstractions::seed_thread_jitter(Some(seed));
    let label = format!("simulation seed {seed}");
    let outcome = run_script(&mut Simulated::new(seed), &label, deregister).await;
    leader_election_abstractions::seed_thread_jitter(None);
    outcome
}

#[tokio::test(start_paused = true)]
async fn simulated_consul_leader_cut_off_hands_over_after_stepping_down() {
    for seed in 0..20 {
        assert_eq!(simulated(seed, false).await, expected(), "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn simulated_consul_leader_cut_off_and_deregistered_hands_over_after_the_lock_delay() {
    for seed in 0..20 {
        assert_eq!(simulated(seed, true).await, expected(), "seed {seed}");
    }
}

// ---- the same script against the real agents ----

fn env_address(name: &str) -> SocketAddr {
    let raw = std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test with `cargo xtask integration consul`, which starts a Consul server and a client agent")
    });
    let hostport = raw.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("{name}={raw:?} is not host:port: {e}"))
}

async fn agent_call(
    method: reqwest::Method,
    agent: SocketAddr,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut request = reqwest::Client::new().request(method, format!("http://{agent}/v1/{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// The real agents: the leader talks to the client agent (its node can be
/// deregistered at the server), the follower to the server agent, each
/// through its own fault proxy.
struct Real {
    server: SocketAddr,
    client: SocketAddr,
    node: String,
    proxies: Vec<FaultProxy>,
}

impl Real {
    fn new() -> Self {
        Self {
            server: env_address("CONSUL_HTTP_ADDR"),
            client: env_address("LE_CONSUL_CLIENT_URL"),
            node: std::env::var("LE_CONSUL_CLIENT_NODE").unwrap_or_else(|_| {
                panic!("LE_CONSUL_CLIENT_NODE is not set: run this test with `cargo xtask integration consul`")
            }),
            proxies: Vec::new(),
        }
    }

    /// Puts the client agent's node back in the catalog if a run
    /// deregistered it.
    async fn register_client_node(&self) {
        let path = format!("catalog/node/{}", self.node);
        if !agent_call(reqwest::Method::GET, self.server, &path, None)
            .await
            .is_null()
        {
            return;
        }
        let me = agent_call(reqwest::Method::GET, self.client, "agent/self", None).await;
        let id = me["Config"]["NodeID"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let node = serde_json::json!({"ID": id, "Node": self.node, "Address": "127.0.0.1"});
        agent_call(
            reqwest::Method::PUT,
            self.server,
            "catalog/register",
            Some(node),
        )
        .await;
    }
}

impl Backend for Real {
    fn candidate<'a>(
        &'a mut self,
        resource: &'a str,
        id: &'a str,
        leader: bool,
        options: LeaderElectionOptions,
    ) -> BoxFuture<'a, Candidate> {
        Box::pin(async move {
            let agent = if leader { self.client } else { self.server };
            let proxy = FaultProxy::start(agent).await.expect("fault proxy");
            let factory = ConsulLeaderElectionFactory::new(
                consul_config(format!("http://{}", proxy.local_addr())),
                options,
            )
            .expect("factory");
            behind_proxy(proxy, &mut self.proxies, build(&factory, resource, id))
        })
    }

    /// Deregisters the leader's node: Consul invalidates its sessions now.
    fn disturb<'a>(&'a mut self, _resource: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let node = serde_json::json!({"Node": self.node});
            agent_call(
                reqwest::Method::PUT,
                self.server,
                "catalog/deregister",
                Some(node),
            )
            .await;
        })
    }
}

/// The real tests share the client agent's node: one at a time, or one's
/// deregistration would invalidate the other's sessions.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn real(deregister: bool) -> Outcome {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut backend = Real::new();
    backend.register_client_node().await;
    let outcome = run_script(&mut backend, "real Consul", deregister).await;
    backend.register_client_node().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul server and client agent: cargo xtask integration consul"]
async fn real_consul_leader_cut_off_hands_over_after_stepping_down() {
    assert_eq!(real(false).await, expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul server and client agent: cargo xtask integration consul"]
async fn real_consul_leader_cut_off_and_deregistered_hands_over_after_the_lock_delay() {
    assert_eq!(real(true).await, expected());
}
