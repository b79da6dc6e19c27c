//! A single-node Consul server agent as a local process, configured like
//! Consul's own test agent (`sdk/testutil`): bootstrap server on loopback,
//! free ports, no DNS/HTTPS/gRPC listeners, and `session_ttl_min = 1s` so
//! tests can use short leases. Next to it, a client agent joined to it
//! (other loopback ports, its own data dir and node name): tests make a
//! candidate's agent leave or lose its node while the server stays up.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::etcd::failed;
use crate::http::Client;
use crate::proc::{self, wait_until};
use crate::state::Record;

/// The node name of the test agent.
pub(crate) const NODE: &str = "le-test";
/// The node name of the client agent joined to the test agent.
pub(crate) const CLIENT_NODE: &str = "le-test-client";

/// Starts the agent and waits until it has a leader and its node is
/// registered with a passing `serfHealth` check.
pub(crate) fn start(binary: &Path, dir: &Path, detach: bool) -> Result<Record, String> {
    let ports = proc::free_ports(4)?;
    let (http, serf_lan, serf_wan, server) = (ports[0], ports[1], ports[2], ports[3]);
    let config = serde_json::json!({
        "node_name": NODE,
        "datacenter": "dc1",
        "server": true,
        "bootstrap": true,
        "bind_addr": "127.0.0.1",
        "advertise_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "data_dir": dir.join("data").display().to_string(),
        "log_level": "info",
        "disable_update_check": true,
        "skip_leave_on_interrupt": true,
        "leave_on_terminate": false,
        "performance": {"raft_multiplier": 1},
        "session_ttl_min": "1s",
        "connect": {"enabled": false},
        "ui_config": {"enabled": false},
        "ports": {
            "http": http, "https": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
            "serf_lan": serf_lan, "serf_wan": serf_wan, "server": server
        }
    });
    let url = format!("http://127.0.0.1:{http}");
    let env = consul_env(&url);
    run_agent(binary, dir, &config, "consul", NODE, env, detach)
}

/// Starts a client agent (not a server) that joins the server agent whose
/// record is `server`, and waits until it reaches the server's leader and
/// its own node is registered and healthy. It retries the join, so it
/// follows a server restarted on the same ports.
pub(crate) fn start_client(
    binary: &Path,
    dir: &Path,
    server: &Record,
    detach: bool,
) -> Result<Record, String> {
    let server_config = server.dir.join("config.json");
    let server_serf = fs::read_to_string(&server_config)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|config| config["ports"]["serf_lan"].as_u64())
        .ok_or_else(|| {
            format!(
                "cannot read the server agent's serf_lan port from {}",
                server_config.display()
            )
        })?;
    let ports = proc::free_ports(3)?;
    // A client agent opens no server port, but Consul wants one configured.
    let (http, serf_lan, server_port) = (ports[0], ports[1], ports[2]);
    let config = serde_json::json!({
        "node_name": CLIENT_NODE,
        "datacenter": "dc1",
        "server": false,
        "bind_addr": "127.0.0.1",
        "advertise_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "data_dir": dir.join("data").display().to_string(),
        "log_level": "info",
        "disable_update_check": true,
        "retry_join": [format!("127.0.0.1:{server_serf}")],
        "retry_interval": "1s",
        "connect": {"enabled": false},
        "ui_config": {"enabled": false},
        "ports": {
            "http": http, "https": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
            "serf_lan": serf_lan, "serf_wan": -1, "server": server_port
        }
    });
    let url = format!("http://127.0.0.1:{http}");
    let env = [
        ("LE_CONSUL_CLIENT_URL".to_string(), url),
        ("LE_CONSUL_CLIENT_NODE".to_string(), CLIENT_NODE.to_string()),
    ]
    .into();
    run_agent(
        binary,
        dir,
        &config,
        "consul-client",
        CLIENT_NODE,
        env,
        detach,
    )
}

/// Writes `config` to `dir/config.json`, starts `consul agent` with it
/// (logging to `dir/<name>.log`), and waits until the agent is ready with
/// its node `node` registered. `env` is the record's connection environment.
fn run_agent(
    binary: &Path,
    dir: &Path,
    config: &serde_json::Value,
    name: &str,
    node: &str,
    env: std::collections::BTreeMap<String, String>,
    detach: bool,
) -> Result<Record, String> {
    let config_path = dir.join("config.json");
    fs::write(&config_path, config.to_string())
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let http = config["ports"]["http"].as_u64().unwrap_or_default();
    let url = format!("http://127.0.0.1:{http}");
    let log = dir.join(format!("{name}.log"));
    let started = Instant::now();
    let args = vec![
        "agent".to_string(),
        format!("-config-file={}", config_path.display()),
    ];
    let pid = proc::spawn(binary, &args, &log, detach)?;
    let record = Record {
        runtime: "process".into(),
        pid: Some(pid),
        binary: Some(binary.to_path_buf()),
        dir: dir.to_path_buf(),
        log,
        url: url.clone(),
        env,
        ..Record::default()
    };
    wait_ready(&url, node, || proc::alive(pid)).map_err(|e| failed(&record, &e))?;
    println!(
        "xtask: {name}: ready at {url} (pid {pid}) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(record)
}

/// The connection environment for an agent at `url`.
pub(crate) fn consul_env(url: &str) -> std::collections::BTreeMap<String, String> {
    let addr = url.trim_start_matches("http://").to_string();
    [
        ("CONSUL_HTTP_ADDR".to_string(), addr),
        ("LE_CONSUL_URL".to_string(), url.to_string()),
    ]
    .into()
}

/// Waits until the agent at `url` knows its leader and its node `node` is
/// healthy. `running` reports whether the agent process still lives.
pub(crate) fn wait_ready(url: &str, node: &str, running: impl Fn() -> bool) -> Result<(), String> {
    let client = Client::new(None, None)?;
    let leader_url = format!("{url}/v1/status/leader");
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        !running()
            || client
                .get(&leader_url)
                .map(|r| r.status == 200 && r.body.trim().trim_matches('"').contains(':'))
                .unwrap_or(false)
    });
    if !ok || !running() {
        return Err("consul elected no leader within 60s".into());
    }
    let nodes_url = format!("{url}/v1/catalog/nodes");
    let health_url = format!("{url}/v1/health/node/{node}");
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let known = client.get(&nodes_url).ok().is_some_and(|r| {
            r.status == 200
                && r.header("X-Consul-KnownLeader") == Some("true")
                && r.header("X-Consul-Index")
                    .and_then(|i| i.parse::<u64>().ok())
                    .is_some_and(|i| i >= 2)
        });
        known
            && client
                .get(&health_url)
                .ok()
                .and_then(|r| r.json().ok())
                .is_some_and(|checks| {
                    checks.as_array().is_some_and(|a| {
                        a.iter()
                            .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing")
                    })
                })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "consul has a leader but node {node} did not become healthy within 60s"
        ))
    }
}
