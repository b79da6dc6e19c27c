//! Shared by the Consul integration tests: the agent address from the
//! environment (set by `cargo xtask integration consul`) and a provider that
//! gives each candidate its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

pub mod responder;

use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::{LeaderElectionOptions, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulLeaseStore};
use leader_election_testkit::ProxiedProvider;

/// The agent's HTTP address; integration tests fail loudly without it.
pub fn agent_address() -> SocketAddr {
    let raw = std::env::var("CONSUL_HTTP_ADDR").unwrap_or_else(|_| {
        panic!("CONSUL_HTTP_ADDR is not set: run these tests with `cargo xtask integration consul`, which starts a Consul agent")
    });
    let hostport = raw.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("CONSUL_HTTP_ADDR={raw:?} is not host:port: {e}"))
}

/// The HTTP address of the client agent joined to the server agent
/// (`LE_CONSUL_CLIENT_URL`, set by `cargo xtask integration consul`).
pub fn client_agent_address() -> SocketAddr {
    let raw = std::env::var("LE_CONSUL_CLIENT_URL").unwrap_or_else(|_| {
        panic!("LE_CONSUL_CLIENT_URL is not set: run these tests with `cargo xtask integration consul`, which starts a Consul server and a client agent joined to it")
    });
    let hostport = raw.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("LE_CONSUL_CLIENT_URL={raw:?} is not http://host:port: {e}"))
}

/// The client agent's node name (`LE_CONSUL_CLIENT_NODE`).
pub fn client_agent_node() -> String {
    std::env::var("LE_CONSUL_CLIENT_NODE").unwrap_or_else(|_| {
        panic!("LE_CONSUL_CLIENT_NODE is not set: run these tests with `cargo xtask integration consul`")
    })
}

/// Config for an agent (or a proxy in front of it) on loopback; the test
/// agent runs with `session_ttl_min = 1s`.
pub fn config_for(address: SocketAddr) -> ConsulConfig {
    ConsulConfig {
        address: format!("http://{address}"),
        session_ttl_min: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        watch_wait: Duration::from_secs(10),
        ..ConsulConfig::default()
    }
}

/// Short leases so the suite runs in minutes: TTL 2 s, lock-delay 1 s.
pub fn test_options() -> LeaderElectionOptions {
    leader_election_testkit::timing_options(
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
}

/// Candidates against the real agent, each behind its own fault proxy.
pub type ConsulProvider = ProxiedProvider<ConsulLeaseStore>;

/// The conformance provider for the agent at `CONSUL_HTTP_ADDR`.
pub fn consul_provider() -> ConsulProvider {
    provider_for("consul", agent_address())
}

/// Candidates that reach the agent at `agent` through fault proxies.
pub fn provider_for(name: &str, agent: SocketAddr) -> ConsulProvider {
    ProxiedProvider::new(
        name,
        agent,
        test_options(),
        Box::new(|address, resource, candidate_id, options| {
            Box::pin(async move {
                let factory =
                    ConsulLeaderElectionFactory::new(config_for(address), options.clone())?;
                factory
                    .election(&resource)
                    .candidate_id(&candidate_id)
                    .options(options)
                    .health_based()
                    .build()
            })
        }),
    )
}

/// The Consul binary: `LE_CONSUL_BIN` (set by xtask), else `consul` on PATH.
pub fn consul_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("LE_CONSUL_BIN") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("consul"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!("no Consul binary: set LE_CONSUL_BIN or run `cargo xtask integration consul`")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A Consul agent of the test's own, so the test may stop and restart it.
pub struct PrivateAgent {
    dir: std::path::PathBuf,
    http: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateAgent {
    /// Starts a single-server agent on free loopback ports and waits for a leader.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, serde_json::json!({})).await
    }

    /// Like [`start`](Self::start), with the keys of `extra` added to (or
    /// replacing those of) the agent's configuration.
    pub async fn start_with(name: &str, extra: serde_json::Value) -> Self {
        let dir = std::env::temp_dir().join(format!("le-consul-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("agent dir");
        let (http, serf_lan, serf_wan, server) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "server": true, "bootstrap": true, "bind_addr": "127.0.0.1", "client_addr": "127.0.0.1",
            "data_dir": dir.join("data"), "disable_update_check": true, "log_level": "warn",
            "performance": { "raft_multiplier": 1 }, "session_ttl_min": "1s",
            "ports": { "http": http, "dns": -1, "https": -1, "grpc": -1, "grpc_tls": -1,
                       "serf_lan": serf_lan, "serf_wan": serf_wan, "server": server }
        });
        let mut config = config;
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        std::fs::write(dir.join("config.json"), config.to_string()).expect("agent config");
        let mut agent = Self {
            dir,
            http,
            child: None,
        };
        agent.restart().await;
        agent
    }

    /// The agent's HTTP address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http))
    }

    /// Kills the agent process at once, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// (Re)starts the agent on the same ports and data, and waits for a leader.
    pub async fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("agent.log")).expect("agent log");
        let child = tokio::process::Command::new(consul_binary())
            .arg("agent")
            .arg("-config-file")
            .arg(self.dir.join("config.json"))
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the Consul agent");
        self.child = Some(child);
        let url = format!("http://{}/v1/status/leader", self.address());
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(response) = client.get(&url).send().await {
                if response.text().await.is_ok_and(|t| t.contains(':')) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the private Consul agent in {} never elected a leader",
            self.dir.display()
        );
    }
}

impl Drop for PrivateAgent {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A raw HTTP call to the agent, as an operator's `curl` would make.
pub async fn raw(method: reqwest::Method, address: SocketAddr, path: &str) -> String {
    call(method, address, path, None, None).await.1
}

/// A raw HTTP call with an optional ACL token and body; the status and the
/// answer's text.
pub async fn call(
    method: reqwest::Method,
    address: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<reqwest::Body>,
) -> (reqwest::StatusCode, String) {
    let mut request = reqwest::Client::new().request(method, format!("http://{address}/v1/{path}"));
    if let Some(token) = token {
        request = request.header("X-Consul-Token", token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("raw call {path}: {e}"));
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}
