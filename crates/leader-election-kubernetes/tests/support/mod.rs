//! Shared by the Kubernetes integration tests: the apiserver from the
//! environment (`cargo xtask integration kubernetes` sets `KUBECONFIG`) and a
//! provider that puts each candidate behind its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use leader_election_abstractions::{LeaderElectionOptions, StoreFactory};
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};
use leader_election_testkit::{unique_resource, ProxiedProvider};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::time::timeout;

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
    leader_election_kubernetes::client_with_nodelay(config).expect("kube client")
}

/// A client straight to the apiserver, as an operator's `kubectl` would be;
/// built as the factory's `infer` builds it (TCP_NODELAY).
pub async fn admin_client() -> kube::Client {
    leader_election_kubernetes::client_with_nodelay(kube_config().await).expect("kube client")
}

/// Test options with whole-second leases as Kubernetes needs, a 1 s grace
/// period and the given timing.
pub fn options_with(
    lease_duration: Duration,
    renew_interval: Duration,
    retry_interval: Duration,
) -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(lease_duration)
        .renew_interval(renew_interval)
        .retry_interval(retry_interval)
        .grace_period(Duration::from_secs(1))
        .instance_id("kubernetes-test")
        .build()
        .expect("valid test options")
}

/// The suite's timing: 2 s lease, renewals every 250 ms, retries every 500 ms.
pub fn test_options() -> LeaderElectionOptions {
    // The term limit is (2 s - 1 s) × 2 / 3 ≈ 667 ms: renewing every 250 ms
    // leaves a loaded machine room for a slow renewal.
    options_with(
        Duration::from_secs(2),
        Duration::from_millis(250),
        Duration::from_millis(500),
    )
}

/// Candidates against the real apiserver, each behind its own fault proxy
/// (TLS passes through it as bytes).
pub type KubernetesProvider = ProxiedProvider<KubernetesLeaseStore>;

/// The conformance provider for the apiserver named by `KUBECONFIG`. The
/// Leases of every resource it builds elections for are deleted when the
/// provider is dropped (see [`Cleanup`]).
pub async fn kubernetes_provider() -> KubernetesProvider {
    let cleanup = Arc::new(Cleanup::default());
    ProxiedProvider::new(
        "kubernetes",
        apiserver_address().await,
        test_options(),
        Box::new(move |address, resource, candidate_id, options| {
            cleanup.add_resource(&resource);
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

/// What a test made on the apiserver, deleted when this is dropped: at the
/// end of the test and also when it fails (drop runs while a panic unwinds),
/// so servers reused by later suites and `cargo xtask servers check` find
/// nothing of it. Declare it before the elections, so they are dropped (and
/// stop) before it deletes.
#[derive(Debug, Default)]
pub struct Cleanup {
    made: Mutex<Made>,
}

#[derive(Clone, Debug, Default)]
struct Made {
    /// Resources whose Lease and candidate Leases go.
    resources: BTreeSet<String>,
    /// Roles and the RoleBindings of the same name that go.
    roles: BTreeSet<String>,
}

impl Cleanup {
    /// A unique resource name with `tag` in it, whose Leases go at the end.
    pub fn resource(&self, tag: &str) -> String {
        let resource = unique_resource(tag);
        self.add_resource(&resource);
        resource
    }

    /// `resource`'s Lease and its candidates' Leases go at the end.
    pub fn add_resource(&self, resource: &str) {
        self.made().resources.insert(resource.to_owned());
    }

    /// The Role `name` and the RoleBinding `name` go at the end.
    pub fn add_role(&self, name: &str) {
        self.made().roles.insert(name.to_owned());
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let made = std::mem::take(&mut *self.made());
        if made.resources.is_empty() && made.roles.is_empty() {
            return;
        }
        // A runtime of its own on a thread of its own: this may run inside
        // the test's runtime, which cannot be blocked on from within.
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("a runtime for the cleanup: {e}"))?
                .block_on(delete_made(&made))
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup thread panicked".to_owned()));
        match outcome {
            Ok(()) => {}
            // Already failing: say so, but do not turn the failure into an abort.
            Err(why) if std::thread::panicking() => eprintln!("cleanup failed: {why}"),
            Err(why) => panic!("cleanup failed: {why}"),
        }
    }
}

/// Deletes what `made` names, as the admin.
async fn delete_made(made: &Made) -> Result<(), String> {
    let client = admin_client().await;
    let namespace = namespace();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &namespace);
    let roles: Api<Role> = Api::namespaced(client.clone(), &namespace);
    for name in &made.roles {
        delete_if_present(&bindings, name).await?;
        delete_if_present(&roles, name).await?;
    }
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    // Elections dropped just before may still be releasing or withdrawing
    // for a moment: delete until a list shows none of the Leases left.
    for _ in 0..10 {
        let listed = leases
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing Leases: {e}"))?;
        let left: Vec<String> = listed
            .items
            .into_iter()
            .filter_map(|lease| lease.metadata.name)
            .filter(|name| made.resources.iter().any(|r| is_lease_of(name, r)))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        for name in &left {
            delete_if_present(&leases, name).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("Leases of {:?} kept coming back", made.resources))
}

/// Whether the Lease `name` is `resource`'s own or one of its candidates'.
fn is_lease_of(name: &str, resource: &str) -> bool {
    name == resource
        || name
            .strip_prefix(resource)
            .is_some_and(|rest| rest.starts_with("-candidate-"))
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(format!("deleting {name}: {e}")),
    }
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

/// client-go's elector running as a separate process, and its stdout lines.
pub struct Peer {
    /// The peer process (killed when dropped).
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

/// A line of the peer, with its Unix-nanosecond stamps.
#[derive(Debug, PartialEq)]
pub enum PeerEvent {
    /// `NEW_LEADER <id>`: it saw `<id>` become the holder.
    NewLeader(String),
    /// `LEADING <ns>`: it leads; when its acquiring write began.
    Leading(i128),
    /// `RENEWED <start> <end>`: a renewal, and when its write returned.
    Renewed {
        /// When the renewing write returned.
        end: i128,
    },
    /// `RELEASED <ns>`: it released the Lease.
    Released,
    /// `STOPPED <ns>`: it stopped leading.
    Stopped(i128),
    /// Anything else it printed.
    Other(String),
}

impl Peer {
    /// Starts client-go's elector on `resource` as `id`, with `timing` flags.
    pub fn spawn(resource: &str, id: &str, timing: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(client_go_peer())
            .args(["-name", resource, "-namespace", &namespace(), "-id", id])
            .args(timing)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the client-go peer");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, lines }
    }

    /// The next line, parsed; panics after 60 s of silence or at exit.
    pub async fn next(&mut self) -> PeerEvent {
        let line = timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the client-go peer said something within 60 s")
            .expect("reading the peer")
            .expect("the client-go peer exited early");
        let mut words = line.split(' ');
        let stamp = |word: Option<&str>| -> i128 {
            word.and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("a stamp in {line:?}"))
        };
        match words.next() {
            Some("NEW_LEADER") => PeerEvent::NewLeader(words.next().unwrap_or("").to_owned()),
            Some("LEADING") => PeerEvent::Leading(stamp(words.next())),
            Some("RENEWED") => {
                let _start = stamp(words.next());
                PeerEvent::Renewed {
                    end: stamp(words.next()),
                }
            }
            Some("RELEASED") => PeerEvent::Released,
            Some("STOPPED") => PeerEvent::Stopped(stamp(words.next())),
            _ => PeerEvent::Other(line.clone()),
        }
    }

    /// Waits for `LEADING`; when its acquiring write began.
    pub async fn until_leading(&mut self) -> i128 {
        loop {
            if let PeerEvent::Leading(at) = self.next().await {
                return at;
            }
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the peer.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the peer runs").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }
}
