//! Helpers for the end-to-end tests: the `leader-election` binary against
//! the real servers that `cargo xtask integration cli` starts, children that
//! append fenced writes to a shared log in the chaos harness's format, and
//! that harness's checker.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leader_election_chaos::checker::{analyse, Report};
use leader_election_chaos::log::{parse_log, Line};
use leader_election_testkit::FaultProxy;
use tokio::process::{Child, Command};

/// Short timings so that terms change within seconds. Kubernetes leases are
/// whole seconds and its term limit is (lease − 1 s) × lease / (lease +
/// grace): 2.4 s here, which fits 2 × 500 ms renewals + 1 s shutdown grace
/// + the kill margin (2.25 s).
pub const TIMING: [&str; 10] = [
    "--lease",
    "4s",
    "--renew",
    "500ms",
    "--retry",
    "500ms",
    "--grace",
    "1s",
    "--shutdown-grace",
    "1s",
];

/// The lease, as in [`TIMING`].
pub const LEASE: Duration = Duration::from_secs(4);

/// The longest a term lasts from its last renewal's start with [`TIMING`]:
/// the lease on Consul (the lock-delay, lease + grace, minus the grace) and
/// on etcd (the etcd lease's TTL, lease + grace, minus the grace), the
/// lease minus client-go's one-second dating margin, shortened by the
/// grace period's clock-rate margin, on Kubernetes.
pub fn term_limit(backend: Backend) -> Duration {
    match backend {
        // (lease - 1 s) × lease / (lease + grace): 3 s × 4/5.
        Backend::Kubernetes => (LEASE - Duration::from_secs(1)) * 4 / 5,
        Backend::Consul | Backend::Etcd => LEASE,
    }
}

/// A bound that only guards against hangs.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

/// The backends the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Kubernetes,
    Consul,
    Etcd,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Kubernetes => "kubernetes",
            Backend::Consul => "consul",
            Backend::Etcd => "etcd",
        }
    }
}

/// A variable xtask sets; its absence fails the test loudly.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `cargo xtask integration cli`, which starts the servers")
    })
}

/// A fresh resource name, valid on every backend.
pub fn resource(tag: &str) -> String {
    leader_election_testkit::unique_resource(&format!("cli-{tag}"))
}

/// A scratch directory for one test, removed when the test passes (kept
/// for a look when it fails).
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh [`Scratch`] directory.
pub fn scratch(tag: &str) -> Scratch {
    let dir =
        std::env::temp_dir().join(format!("le-cli-{tag}-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// Wall-clock nanoseconds: the children write `date +%s%N`, the same clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A child that appends fenced writes (the chaos harness's `W`/`D` lines,
/// with its `LEADER_ELECTION_FENCING_TOKEN`) to `$LOG` every 20 ms; stops
/// after `$WRITES` writes if set. With `IGNORE_TERM=1` it ignores SIGTERM,
/// so only SIGKILL stops it. Kind `$KIND` (rust unless set) and token
/// `$TOKEN_CMD`'s output if set (for children of foreign lock holders).
pub const WRITER: &str = r#"
[ "$IGNORE_TERM" = 1 ] && trap '' TERM
kind=${KIND:-rust}
token=$LEADER_ELECTION_FENCING_TOKEN
[ -n "$TOKEN_CMD" ] && token=$(sh -c "$TOKEN_CMD")
id=${LEADER_ELECTION_ID:-foreign}
seq=0
while :; do
  t=$(date +%s%N)
  echo "W $t $token $kind $$ $seq $id" >> "$LOG"
  d=$(date +%s%N)
  echo "D $d $$ $seq" >> "$LOG"
  seq=$((seq+1))
  if [ -n "$WRITES" ] && [ "$seq" -ge "$WRITES" ]; then exit 0; fi
  sleep 0.02
done
"#;

/// `leader-election` with the backend's connection: `KUBECONFIG` (from
/// xtask, or the proxied one of `via`), `CONSUL_HTTP_ADDR` or
/// `ETCDCTL_ENDPOINTS` (xtask's `LE_ETCD_ENDPOINTS`, or `via`'s proxy).
pub fn cli(backend: Backend, resource: &str, via: Option<&Via>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leader-election"));
    command
        .env_remove("LEADER_ELECTION_FENCING_TOKEN")
        .env_remove("LEADER_ELECTION_ID")
        .env("LEADER_ELECTION_LOG", "info")
        .env("LEADER_ELECTION_BACKEND", backend.name())
        .env("LEADER_ELECTION_RESOURCE", resource)
        .kill_on_drop(true);
    match backend {
        Backend::Kubernetes => {
            let kubeconfig = via
                .and_then(|v| v.kubeconfig.clone())
                .unwrap_or_else(|| PathBuf::from(required_env("KUBECONFIG")));
            command.env("KUBECONFIG", kubeconfig);
        }
        Backend::Consul => {
            let addr = via
                .and_then(|v| v.consul_addr.clone())
                .unwrap_or_else(|| required_env("CONSUL_HTTP_ADDR"));
            command
                .env("CONSUL_HTTP_ADDR", addr)
                .env("LEADER_ELECTION_CONSUL_SESSION_TTL_MIN", "1s");
        }
        Backend::Etcd => {
            let endpoints = via
                .and_then(|v| v.etcd_endpoints.clone())
                .unwrap_or_else(|| required_env("LE_ETCD_ENDPOINTS"));
            command
                .env("ETCDCTL_ENDPOINTS", endpoints)
                .env_remove("ETCDCTL_USER")
                .env_remove("ETCDCTL_CACERT")
                .env_remove("ETCDCTL_CERT")
                .env_remove("ETCDCTL_KEY");
        }
    }
    command
}

/// `leader-election run` with [`TIMING`] and `extra` flags, running the
/// [`WRITER`] child with `child_env`, output to `dir/<name>.out`.
pub fn run_writer(
    backend: Backend,
    resource: &str,
    via: Option<&Via>,
    extra: &[&str],
    child_env: &[(&str, &str)],
    dir: &Path,
    name: &str,
) -> Child {
    let mut command = cli(backend, resource, via);
    command
        .arg("run")
        .args(TIMING)
        .args(extra)
        .args(["--", "sh", "-c", WRITER]);
    for (k, v) in child_env {
        command.env(k, v);
    }
    spawn_logged(command, dir, name)
}

/// Spawns `command` with stdout and stderr to `dir/<name>.out`.
pub fn spawn_logged(mut command: Command, dir: &Path, name: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("output file");
    let err = out.try_clone().expect("output file");
    command
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn")
}

/// What a process printed, for failure messages.
pub fn output_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default()
}

/// A connection through a fault proxy instead of the server's address.
pub struct Via {
    pub proxy: FaultProxy,
    kubeconfig: Option<PathBuf>,
    consul_addr: Option<String>,
    etcd_endpoints: Option<String>,
}

impl Via {
    /// A proxy in front of the backend's server, and the connection settings
    /// that go through it.
    pub async fn proxy(backend: Backend, dir: &Path) -> Via {
        match backend {
            Backend::Kubernetes => {
                let server = required_env("LE_KUBE_SERVER");
                let upstream = server
                    .trim_start_matches("https://")
                    .parse()
                    .expect("LE_KUBE_SERVER is https://<ip>:<port>");
                let proxy = FaultProxy::start(upstream).await.expect("proxy");
                let config =
                    std::fs::read_to_string(required_env("KUBECONFIG")).expect("read KUBECONFIG");
                let proxied = config.replace(&server, &format!("https://{}", proxy.local_addr()));
                assert_ne!(proxied, config, "the kubeconfig names LE_KUBE_SERVER");
                let path = dir.join("kubeconfig");
                std::fs::write(&path, proxied).expect("write kubeconfig");
                Via {
                    proxy,
                    kubeconfig: Some(path),
                    consul_addr: None,
                    etcd_endpoints: None,
                }
            }
            Backend::Consul => {
                let upstream = required_env("CONSUL_HTTP_ADDR")
                    .parse()
                    .expect("CONSUL_HTTP_ADDR is <ip>:<port>");
                let proxy = FaultProxy::start(upstream).await.expect("proxy");
                let addr = proxy.local_addr().to_string();
                Via {
                    proxy,
                    kubeconfig: None,
                    consul_addr: Some(addr),
                    etcd_endpoints: None,
                }
            }
            Backend::Etcd => {
                let endpoint = required_env("LE_ETCD_ENDPOINTS");
                let upstream = endpoint
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse()
                    .expect("LE_ETCD_ENDPOINTS starts with http://<ip>:<port>");
                let proxy = FaultProxy::start(upstream).await.expect("proxy");
                let endpoints = format!("http://{}", proxy.local_addr());
                Via {
                    proxy,
                    kubeconfig: None,
                    consul_addr: None,
                    etcd_endpoints: Some(endpoints),
                }
            }
        }
    }
}

/// Sends `signal` to a process we started.
pub fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
        .expect("the process is running");
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// Waits (bounded) for a process to exit.
pub async fn exit_of(child: &mut Child, what: &str) -> ExitStatus {
    tokio::time::timeout(HANG_GUARD, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} did not exit within {HANG_GUARD:?}"))
        .expect("wait")
}

/// Waits (bounded) until `condition` holds, polling.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < HANG_GUARD,
            "{what}: not within {HANG_GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log's lines (empty if it does not exist yet).
pub fn log_lines(log: &Path) -> Vec<Line> {
    parse_log(&std::fs::read_to_string(log).unwrap_or_default())
}

/// The writes in the log by candidate id.
pub fn writes_by(log: &Path, id_prefix: &str) -> Vec<(u64, u64)> {
    log_lines(log)
        .into_iter()
        .filter_map(|line| match line {
            Line::Write {
                t_check, token, id, ..
            } if id.starts_with(id_prefix) => Some((t_check, token)),
            _ => None,
        })
        .collect()
}

/// The chaos harness's checker on the log; panics with its findings unless
/// it passed (no stale write of ours, tokens increasing, none shared).
pub fn check_log(log: &Path) -> Report {
    let report = analyse(&log_lines(log));
    assert!(
        report.passed(),
        "the shared log shows overlapping terms: {:?}\n{}",
        report.failures(),
        report.table()
    );
    report
}
