//! `kubernetes-peer|consul-peer|etcd-peer <lease> <id> <hold-ms>`: one candidate
//! process for the handover and failover measurements of `cargo xtask
//! bench`, with the same line protocol as the Go peers it is compared with
//! (`LEADING <ns>`, `STOPPED <ns>`, Unix nanoseconds): it leads for
//! `hold-ms`, then stops (releasing the lease) and exits. Lease 2 s,
//! renewals and retries every 500 ms, grace 1 s, on both backends (the
//! Consul session TTL is the lease, 2 s, which the test agent's
//! `session_ttl_min = 1s` allows; the lock-delay is lease + grace, 3 s; the
//! etcd lease TTL is lease + grace, 3 s).
//!
//! Kubernetes: the kube client is `client_with_nodelay`'s
//! (`LE_BENCH_KUBE_CLIENT=kube`: kube's default, with Nagle's algorithm
//! on). Consul: the agent of `CONSUL_HTTP_ADDR`. etcd: the endpoints of
//! `ETCDCTL_ENDPOINTS`, elections under the default key prefix. `LE_BENCH_TRACE=<filter>`
//! traces each step of a handover on stderr.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use leader_election_abstractions::{
    LeaderElection, LeaderElectionEvent, LeaderElectionOptions, StoreFactory,
};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use leader_election_etcd::EtcdLeaderElectionFactory;
use leader_election_kubernetes::{
    client_with_nodelay, KubernetesConfig, KubernetesLeaderElectionFactory,
};

/// The backend a peer runs against.
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    Kubernetes,
    Consul,
    Etcd,
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub(crate) fn command(backend: Backend, args: &[String]) -> Result<(), String> {
    let [lease, id, hold] = args else {
        return Err("a peer needs <lease> <id> <hold-ms>".into());
    };
    let hold = Duration::from_millis(hold.parse().map_err(|_| "<hold-ms> is a number")?);
    if let Ok(filter) = std::env::var("LE_BENCH_TRACE") {
        // Each step of a handover, timestamped to the microsecond, on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_span_events(
                tracing_subscriber::fmt::format::FmtSpan::NEW
                    | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
            )
            .init();
    }
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .instance_id(id.as_str())
        .build()
        .map_err(|e| e.to_string())?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        match backend {
            Backend::Kubernetes => lead(kubernetes(options).await?, lease, hold).await,
            Backend::Consul => {
                if std::env::var_os("CONSUL_HTTP_ADDR").is_none() {
                    return Err("CONSUL_HTTP_ADDR is not set: run `cargo xtask servers up consul` and source its env file".into());
                }
                let mut config = ConsulConfig::from_env();
                // The test agent's `session_ttl_min`, so the 2 s lease is allowed.
                config.session_ttl_min = Duration::from_secs(1);
                let factory =
                    ConsulLeaderElectionFactory::new(config, options).map_err(|e| e.to_string())?;
                lead(factory, lease, hold).await
            }
            Backend::Etcd => {
                if std::env::var_os("ETCDCTL_ENDPOINTS").is_none() {
                    return Err("ETCDCTL_ENDPOINTS is not set: run `cargo xtask servers up etcd` and source its env file".into());
                }
                let factory =
                    EtcdLeaderElectionFactory::from_env(options).map_err(|e| e.to_string())?;
                lead(factory, lease, hold).await
            }
        }
    })
}

async fn kubernetes(
    options: LeaderElectionOptions,
) -> Result<KubernetesLeaderElectionFactory, String> {
    let client = if std::env::var("LE_BENCH_KUBE_CLIENT").as_deref() == Ok("kube") {
        // kube's default client, Nagle's algorithm on: for comparison.
        kube::Client::try_default()
            .await
            .map_err(|e| format!("kube client from KUBECONFIG: {e}"))?
    } else {
        let config = kube::Config::infer()
            .await
            .map_err(|e| format!("kube config from KUBECONFIG: {e}"))?;
        client_with_nodelay(config).map_err(|e| e.to_string())?
    };
    KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
        .map_err(|e| e.to_string())
}

/// Waits to lead `lease`, prints `LEADING`, leads for `hold`, prints
/// `STOPPED` and stops.
async fn lead<F: StoreFactory>(factory: F, lease: &str, hold: Duration) -> Result<(), String> {
    let election = factory.election(lease).build().map_err(|e| e.to_string())?;
    let mut events = election.subscribe();
    election.start().await.map_err(|e| e.to_string())?;
    while let Some(event) = events.next().await {
        if let LeaderElectionEvent::BecameLeader { .. } = event {
            println!("LEADING {}", unix_nanos());
            break;
        }
    }
    tokio::time::sleep(hold).await;
    // The last leading instant: `stop()` ends the term for readers at once.
    println!("STOPPED {}", unix_nanos());
    election.stop().await.map_err(|e| e.to_string())
}
