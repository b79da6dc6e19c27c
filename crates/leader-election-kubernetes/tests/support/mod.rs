//! Shared by the Kubernetes integration tests: the apiserver from the
//! environment (`cargo xtask integration kubernetes` sets `KUBECONFIG`) and a
//! provider that puts each candidate behind its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::{LeaderElectionOptions, StoreFactory};
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};
use leader_election_testkit::ProxiedProvider;

/// The kubeconfig's client configuration; fails loudly without `KUBECONFIG`.
pub async fn kube_config() -> kube::Config {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!("KUBECONFIG is not set: run these tests with `cargo xtask integration kubernetes`, which starts etcd and kube-apiserver");
    }
    kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("reading KUBECONFIG: {e}"))
}

/// The apiserver's address from the kubeconfig.
pub async fn apiserver_address() -> SocketAddr {
    let config = kube_config().await;
    let authority = config
        .cluster_url
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    authority
        .parse()
        .unwrap_or_else(|e| panic!("cluster URL {} is not an IP:port: {e}", config.cluster_url))
}

/// A client talking to `address` (the apiserver or a proxy in front of it)
/// with the kubeconfig's credentials.
pub async fn client_via(address: SocketAddr) -> kube::Client {
    let mut config = kube_config().await;
    config.cluster_url = format!("https://{address}").parse().expect("proxy URL");
    kube::Client::try_from(config).expect("kube client")
}

/// A client straight to the apiserver, as an operator's `kubectl` would be.
pub async fn admin_client() -> kube::Client {
    kube::Client::try_from(kube_config().await).expect("kube client")
}

/// Whole-second leases as Kubernetes needs: 2 s lease, 1 s grace.
pub fn test_options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .instance_id("kubernetes-test")
        .build()
        .expect("valid test options")
}

/// Candidates against the real apiserver, each behind its own fault proxy
/// (TLS passes through it as bytes).
pub type KubernetesProvider = ProxiedProvider<KubernetesLeaseStore>;

/// The conformance provider for the apiserver named by `KUBECONFIG`.
pub async fn kubernetes_provider() -> KubernetesProvider {
    ProxiedProvider::new(
        "kubernetes",
        apiserver_address().await,
        test_options(),
        Box::new(|address, resource, candidate_id, options| {
            Box::pin(async move {
                let client = client_via(address).await;
                let factory = KubernetesLeaderElectionFactory::new(
                    client,
                    KubernetesConfig::default(),
                    options.clone(),
                )?;
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

/// Unix nanoseconds on the wall clock, the clock the client-go peer stamps
/// its lines with (both run on this machine).
pub fn unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

/// One stretch of `is_leader() == true`, widened to the samples around it:
/// from the last sample that read false before it to the first that read
/// false after it (Unix nanoseconds). Widening can only make an overlap
/// check stricter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallInterval {
    /// Last sample before the term that read false.
    pub start: i128,
    /// First sample after the term that read false (or the end of sampling).
    pub end: i128,
}

/// Reads one election's `is_leader()` from a plain OS thread, back to back,
/// and keeps its leadership intervals on the wall clock, so they can be
/// compared with another process's.
pub struct WallSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<WallInterval>, u64)>,
}

impl WallSampler {
    /// Starts sampling `election`.
    pub fn start(
        election: std::sync::Arc<dyn leader_election_abstractions::LeaderElection>,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut intervals = Vec::new();
            let mut samples = 0u64;
            let mut last_false = unix_nanos();
            let mut open: Option<i128> = None;
            while !stopped.load(Ordering::Relaxed) {
                let before = unix_nanos();
                let leading = election.is_leader();
                samples += 1;
                match (leading, open) {
                    (true, None) => open = Some(last_false),
                    (false, Some(start)) => {
                        intervals.push(WallInterval {
                            start,
                            end: unix_nanos(),
                        });
                        open = None;
                    }
                    _ => {}
                }
                if !leading {
                    last_false = before;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            // One last read after the stop request, so a state reached just
            // before it is recorded even if this thread was not scheduled.
            samples += 1;
            let start = match (election.is_leader(), open) {
                (_, Some(start)) => Some(start),
                (true, None) => Some(last_false),
                (false, None) => None,
            };
            if let Some(start) = start {
                intervals.push(WallInterval {
                    start,
                    end: unix_nanos(),
                });
            }
            (intervals, samples)
        });
        Self { stop, thread }
    }

    /// Stops sampling; the intervals and the number of samples taken.
    pub fn finish(self) -> (Vec<WallInterval>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// client-go's elector, built by xtask from `k8s.io/client-go`.
pub fn client_go_peer() -> std::path::PathBuf {
    std::env::var_os("LE_CLIENT_GO_PEER_BIN").map(Into::into).unwrap_or_else(|| {
        panic!("LE_CLIENT_GO_PEER_BIN is not set: run `cargo xtask integration kubernetes`, which builds the client-go peer")
    })
}

/// The namespace of the test Leases.
pub fn namespace() -> String {
    std::env::var("LE_KUBE_NAMESPACE").unwrap_or_else(|_| "default".to_owned())
}
