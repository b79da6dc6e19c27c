//! `chaos-candidate`: one Rust candidate process of the chaos harness.
//!
//! ```text
//! chaos-candidate --backend kubernetes|consul|etcd --server <host:port> --resource <name>
//!                 --id <candidate id> --log <path> [--lease-ms N] [--renew-ms N]
//! ```
//!
//! It runs a health-based election through the provider crate's factory
//! (lease `--lease-ms`, default 2000, renew `--renew-ms`, default 500, retry
//! 250 ms, grace 500 ms) against `--server` (the harness's fault proxy in
//! front of the kube-apiserver, the Consul agent or etcd; Kubernetes credentials
//! come from `KUBECONFIG`, the namespace from `LE_KUBE_NAMESPACE` when set).
//! A plain OS thread checks `fencing_token()` right before every append to
//! the shared log.
//!
//! Signals drive it (the harness's faults): SIGUSR1 reports it unhealthy (a
//! leader steps down at once), SIGUSR2 healthy again, SIGHUP resigns
//! (`resign()`: the lease is released and it stays a candidate), SIGTERM
//! stops the election gracefully (the lease is released) and exits. Health
//! is set, not toggled, so a lost or repeated signal cannot leave it inverted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{
    HealthBasedLeaderElection, LeaderElectionFactory, LeaderElectionOptions,
};
use leader_election_chaos::log::{FencedLog, Kind};
use leader_election_chaos::monotonic_ns;
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
use tokio::signal::unix::{signal, SignalKind};

/// How often the writer thread checks and writes.
const WRITE_EVERY: Duration = Duration::from_millis(10);

struct Args {
    backend: String,
    server: String,
    resource: String,
    id: String,
    log: PathBuf,
    lease: Duration,
    renew: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut backend, mut server, mut resource, mut id, mut log) = (None, None, None, None, None);
    let (mut lease, mut renew) = (Duration::from_secs(2), Duration::from_millis(500));
    let millis = |flag: &str, value: &str| {
        value
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("{flag} {value:?}: {e}"))
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => backend = Some(value),
            "--server" => server = Some(value),
            "--resource" => resource = Some(value),
            "--id" => id = Some(value),
            "--log" => log = Some(PathBuf::from(value)),
            "--lease-ms" => lease = millis(&flag, &value)?,
            "--renew-ms" => renew = millis(&flag, &value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        backend: backend.ok_or("--backend is required")?,
        server: server.ok_or("--server is required")?,
        resource: resource.ok_or("--resource is required")?,
        id: id.ok_or("--id is required")?,
        log: log.ok_or("--log is required")?,
        lease,
        renew,
    })
}

fn main() -> ExitCode {
    // Die with the harness, even when SIGSTOPped at that moment.
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        eprintln!("chaos-candidate: cannot set the parent-death signal: {e}");
    }
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos-candidate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options(args: &Args) -> Result<LeaderElectionOptions, String> {
    LeaderElectionOptions::builder()
        .lease_duration(args.lease)
        .renew_interval(args.renew)
        .retry_interval(Duration::from_millis(250))
        .grace_period(Duration::from_millis(500))
        .instance_id(&args.id)
        .build()
        .map_err(|e| format!("options: {e}"))
}

async fn election(args: &Args) -> Result<Arc<dyn HealthBasedLeaderElection>, String> {
    let options = options(args)?;
    match args.backend.as_str() {
        "kubernetes" => {
            let mut config =
                kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|e| format!("reading KUBECONFIG: {e}"))?;
            config.cluster_url = format!("https://{}", args.server)
                .parse()
                .map_err(|e| format!("--server {}: {e}", args.server))?;
            let client = kube::Client::try_from(config).map_err(|e| format!("kube client: {e}"))?;
            let kube_config = KubernetesConfig {
                namespace: std::env::var("LE_KUBE_NAMESPACE").ok(),
                ..KubernetesConfig::default()
            };
            let factory = KubernetesLeaderElectionFactory::new(client, kube_config, options)
                .map_err(|e| format!("factory: {e}"))?;
            health_based_election(&factory, args)
        }
        "consul" => {
            let config = ConsulConfig {
                address: format!("http://{}", args.server),
                session_ttl_min: Duration::from_secs(1),
                request_timeout: Duration::from_secs(2),
                watch_wait: Duration::from_secs(10),
                ..ConsulConfig::default()
            };
            let factory = ConsulLeaderElectionFactory::new(config, options)
                .map_err(|e| format!("factory: {e}"))?;
            health_based_election(&factory, args)
        }
        "etcd" => {
            let config = EtcdConfig {
                endpoints: vec![format!("http://{}", args.server)],
                ..EtcdConfig::default()
            };
            let factory = EtcdLeaderElectionFactory::new(config, options)
                .map_err(|e| format!("factory: {e}"))?;
            health_based_election(&factory, args)
        }
        other => Err(format!(
            "--backend must be kubernetes, consul or etcd, got {other:?}"
        )),
    }
}

/// The candidate's health-based election, through the object-safe factory
/// every provider implements.
fn health_based_election(
    factory: &dyn LeaderElectionFactory,
    args: &Args,
) -> Result<Arc<dyn HealthBasedLeaderElection>, String> {
    factory
        .create_health_based_election(&args.resource, Some(&args.id))
        .map_err(|e| format!("election: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let log = FencedLog::open(&args.log, Kind::Rust, &args.id)
        .map_err(|e| format!("opening {}: {e}", args.log.display()))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut unhealthy = signal(SignalKind::user_defined1()).map_err(|e| format!("SIGUSR1: {e}"))?;
    let mut healthy = signal(SignalKind::user_defined2()).map_err(|e| format!("SIGUSR2: {e}"))?;
    let mut resign = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP: {e}"))?;
    let election = election(&args).await?;
    election.start().await.map_err(|e| format!("start: {e}"))?;

    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let election = Arc::clone(&election);
        let stop_writing = Arc::clone(&stop_writing);
        let id = args.id.clone();
        std::thread::spawn(move || {
            let mut last = None;
            while !stop_writing.load(Ordering::Relaxed) {
                match log.write_if(|| election.fencing_token().map(|t| t.0)) {
                    Ok(token) => {
                        if token != last {
                            eprintln!("[{}] {id}: fencing token {token:?}", monotonic_ns());
                            last = token;
                        }
                    }
                    Err(e) => eprintln!("[{}] {id}: log write failed: {e}", monotonic_ns()),
                }
                std::thread::sleep(WRITE_EVERY);
            }
        })
    };

    loop {
        let health = tokio::select! {
            _ = terminate.recv() => break,
            _ = unhealthy.recv() => false,
            _ = healthy.recv() => true,
            _ = resign.recv() => {
                eprintln!("[{}] {}: resigning", monotonic_ns(), args.id);
                if let Err(e) = election.resign().await {
                    eprintln!("[{}] {}: resign: {e}", monotonic_ns(), args.id);
                }
                continue;
            }
        };
        eprintln!("[{}] {}: health -> {health}", monotonic_ns(), args.id);
        if let Err(e) = election.update_health(health, None).await {
            eprintln!("[{}] {}: update_health: {e}", monotonic_ns(), args.id);
        }
    }
    // The writer keeps checking through the graceful stop: the release is
    // part of what is tested.
    let stopped = election.stop().await;
    stop_writing.store(true, Ordering::Relaxed);
    let _ = writer.join();
    eprintln!("[{}] {}: stopped: {stopped:?}", monotonic_ns(), args.id);
    stopped.map_err(|e| format!("stop: {e}"))
}
