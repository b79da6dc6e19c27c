//! `etcd <resources>`: elections per process against the etcd of
//! `ETCDCTL_ENDPOINTS` (`cargo xtask servers up etcd`), default options,
//! with etcd's own figures from its `/metrics`: the gRPC messages its
//! clients sent per second (`grpc_server_msg_received_total`: one per unary
//! call, one per message on a stream; our provider's JSON gateway calls
//! reach etcd's gRPC server as such calls), its watchers
//! (`etcd_debugging_mvcc_watcher_total`) and, when `LE_ETCD_PID` names its
//! process, its CPU.

use std::collections::BTreeMap;
use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};

use crate::elections::{ServerProbe, ServerReading};
use crate::process::cpu_time_of;

/// gRPC messages received so far, by method (`Range`, `Txn`,
/// `LeaseKeepAlive`, `Watch`, ...).
pub(crate) type Counts = BTreeMap<String, f64>;

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let resources = crate::resources(args)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 10u64)?);
    let runtime = crate::runtime()?;
    let metrics = Metrics::from_env()?;
    let factory = |id: &str| {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        let _guard = runtime.enter();
        EtcdLeaderElectionFactory::from_env(options).map_err(|e| e.to_string())
    };
    let replicas = [factory("replica-a")?, factory("replica-b")?];
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prefix = format!("bench-{run}-");
    // The process's open sockets (all of them to etcd).
    let sockets = crate::process::SocketSampler::start();
    let measured = crate::elections::measure(
        "etcd",
        &runtime,
        replicas,
        &prefix,
        resources,
        window,
        Some(&metrics),
    );
    let most = sockets.most();
    println!(
        "etcd, {resources} resources x 2 candidates: at most {most} sockets open at once (all to etcd)"
    );
    crate::result(&[
        ("section", "connections".to_owned()),
        ("backend", "etcd".to_owned()),
        ("resources", resources.to_string()),
        ("most", most.to_string()),
    ]);
    measured
}

/// etcd's `/metrics` and process.
pub(crate) struct Metrics {
    http: reqwest::Client,
    url: String,
    pid: Option<String>,
}

impl Metrics {
    /// The first endpoint of `ETCDCTL_ENDPOINTS`, and `LE_ETCD_PID`.
    pub(crate) fn from_env() -> Result<Self, String> {
        if std::env::var_os("ETCDCTL_ENDPOINTS").is_none() {
            return Err("ETCDCTL_ENDPOINTS is not set: run `cargo xtask servers up etcd` and source its env file".into());
        }
        let config = EtcdConfig::from_env().map_err(|e| e.to_string())?;
        let endpoint = config.endpoints.first().ok_or("no etcd endpoint")?;
        Ok(Self {
            http: reqwest::Client::new(),
            url: format!("{}/metrics", endpoint.trim_end_matches('/')),
            pid: std::env::var("LE_ETCD_PID").ok(),
        })
    }

    /// The text of `/metrics`.
    async fn text(&self) -> Result<String, String> {
        let answer = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("etcd /metrics: {e}"))?;
        answer
            .text()
            .await
            .map_err(|e| format!("etcd /metrics: {e}"))
    }

    /// gRPC messages received so far, by method.
    pub(crate) async fn messages(&self) -> Result<Counts, String> {
        Ok(messages_by_method(&self.text().await?))
    }
}

/// `grpc_server_msg_received_total` by `grpc_method`.
pub(crate) fn messages_by_method(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("grpc_server_msg_received_total{"))
    {
        let method = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        if let Some(n) = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok())
        {
            *counts.entry(method.to_owned()).or_default() += n;
        }
    }
    counts
}

/// The value of the unlabelled gauge `name`.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

impl ServerProbe for Metrics {
    fn read(&self, runtime: &tokio::runtime::Runtime) -> Result<ServerReading, String> {
        let text = runtime.block_on(self.text())?;
        Ok(ServerReading {
            requests: messages_by_method(&text).values().sum(),
            open_watches: gauge(&text, "etcd_debugging_mvcc_watcher_total"),
            cpu: match &self.pid {
                Some(pid) => cpu_time_of(pid)?,
                None => Duration::ZERO,
            },
        })
    }
}

/// `etcd-requests [--followers N] [--window <secs>]`: the gRPC messages one
/// leader and one idle follower send etcd per minute, ours (default options:
/// lease 15 s, renew 5 s, grace 5 s, so an etcd lease TTL of 20 s) next to
/// Go's `concurrency.Election` (when `LE_ETCD_ELECTION_PEER_BIN` names the
/// peer) on sessions of the same TTL, 20 s. Counted from etcd's `/metrics`
/// over three windows on a fresh election, as `kubernetes-requests` does:
/// nothing running (subtracted), the leader alone, then the leader and `N`
/// followers. Ours run in this process, each candidate on a factory (and
/// connection pool) of its own, as separate processes would.
pub(crate) fn requests(args: &[String]) -> Result<(), String> {
    use crate::requests::{go_per_role, ours_per_role, rate, report};
    use leader_election_abstractions::{Election, StoreFactory};
    use leader_election_etcd::EtcdLeaseStore;

    let followers: usize = crate::flag(args, "--followers", 10)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 40u64)?);
    let runtime = crate::runtime()?;
    let metrics = Metrics::from_env()?;
    let read = || runtime.block_on(metrics.messages());
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    println!("etcd requests: baseline (nothing of ours running) over {window:?}");
    let baseline = rate(&read, window)?;
    let ours = {
        let resource = format!("bench-requests-ours-{run}");
        let made = |id: &str| -> Result<Election<EtcdLeaseStore>, String> {
            let options = LeaderElectionOptions::builder()
                .instance_id(id)
                .build()
                .map_err(|e| e.to_string())?;
            let _guard = runtime.enter();
            EtcdLeaderElectionFactory::from_env(options)
                .map_err(|e| e.to_string())?
                .election(&resource)
                .build()
                .map_err(|e| e.to_string())
        };
        ours_per_role("etcd", &runtime, &made, &read, &baseline, window, followers)?
    };
    report(
        "etcd",
        "ours",
        "default options (lease 15 s, renew 5 s, grace 5 s: etcd lease TTL 20 s)",
        &ours,
    );

    let Some(peer) = std::env::var_os("LE_ETCD_ELECTION_PEER_BIN") else {
        println!("etcd requests: LE_ETCD_ELECTION_PEER_BIN is not set: concurrency.Election not measured");
        return Ok(());
    };
    let endpoints = std::env::var("ETCDCTL_ENDPOINTS").unwrap_or_default();
    // Our provider's key layout: `<key_prefix>/<resource>`.
    let prefix = format!("leader-election/bench-requests-go-{run}");
    let args = |id: &str| {
        vec![
            format!("-endpoints={endpoints}"),
            format!("-prefix={prefix}"),
            format!("-id={id}"),
            "-ttl=20".into(),
            "-hold=1h".into(),
            "-wait=1h".into(),
        ]
    };
    // A waiting campaigner prints nothing more: its key is written (and its
    // watch on the key ahead of it opened) right after CAMPAIGNING.
    let theirs = go_per_role(
        ("etcd", "concurrency.Election"),
        &peer,
        &args,
        "CAMPAIGNING",
        (&read, &baseline, window),
        followers,
    )?;
    report(
        "etcd",
        "concurrency.Election",
        "session TTL 20 s (its client keeps the lease alive every TTL / 3)",
        &theirs,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{gauge, messages_by_method};

    #[test]
    fn metrics_are_read_by_method() {
        let text = "# HELP grpc_server_msg_received_total x\n\
            grpc_server_msg_received_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 12\n\
            grpc_server_msg_received_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 3\n\
            grpc_server_msg_received_total{grpc_method=\"Range\",grpc_service=\"other\",grpc_type=\"unary\"} 1\n\
            grpc_server_handled_total{grpc_method=\"Range\",grpc_code=\"OK\"} 99\n\
            etcd_debugging_mvcc_watcher_total 7\n";
        let counts = messages_by_method(text);
        assert_eq!(counts.get("Range"), Some(&13.0));
        assert_eq!(counts.get("Watch"), Some(&3.0));
        assert_eq!(counts.len(), 2);
        assert_eq!(gauge(text, "etcd_debugging_mvcc_watcher_total"), 7.0);
        assert_eq!(gauge(text, "etcd_debugging_mvcc_watch"), 0.0);
    }
}
