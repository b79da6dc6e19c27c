//! Shared by the etcd integration tests: the etcd from the environment
//! (`cargo xtask integration etcd` sets `LE_ETCD_ENDPOINTS` and
//! `LE_ETCD_BIN`), a provider that puts each candidate behind its own fault
//! proxy, an admin client for acting behind the candidates' backs, and
//! private etcd servers for the tests that stop one or turn auth on.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use leader_election_abstractions::{LeaderElectionOptions, StoreFactory};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory, EtcdLeaseStore};
use leader_election_testkit::{unique_resource, ProxiedProvider};
use serde_json::{json, Value};

/// The key prefix of every test election.
pub const PREFIX: &str = "le-test";

/// The shared etcd's client URL; fails loudly without `LE_ETCD_ENDPOINTS`.
pub fn endpoint() -> String {
    let endpoints = std::env::var("LE_ETCD_ENDPOINTS").unwrap_or_else(|_| {
        panic!("LE_ETCD_ENDPOINTS is not set: run these tests with `cargo xtask integration etcd`, which starts etcd")
    });
    endpoints
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `host:port` of an `http://host:port` URL.
pub fn address_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url} is not http://IP:port: {e}"))
}

/// The configuration for a client of `url`.
pub fn config_for(url: &str) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![url.to_owned()],
        key_prefix: PREFIX.to_owned(),
        ..EtcdConfig::default()
    }
}

/// Test options: 2 s lease, 1 s grace, renewals and retries every 500 ms.
pub fn test_options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .instance_id("etcd-test")
        .build()
        .expect("valid test options")
}

/// Candidates against the real etcd, each behind its own fault proxy.
pub type EtcdProvider = ProxiedProvider<EtcdLeaseStore>;

/// Logs to the test output when `RUST_LOG` asks for them.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The conformance provider for the etcd named by `LE_ETCD_ENDPOINTS`.
pub fn etcd_provider() -> EtcdProvider {
    init_logs();
    provider_for(&endpoint(), test_options())
}

/// A provider for the etcd at `url` with `options` as the suite's base.
pub fn provider_for(url: &str, options: LeaderElectionOptions) -> EtcdProvider {
    ProxiedProvider::new(
        "etcd",
        address_of(url),
        options,
        Box::new(move |address, resource, candidate_id, options| {
            Box::pin(async move {
                let factory = EtcdLeaderElectionFactory::new(
                    config_for(&format!("http://{address}")),
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

/// A unique resource name with `tag` in it.
pub fn resource(tag: &str) -> String {
    unique_resource(tag)
}

/// The election prefix of `resource`, as Go's `NewElection` is given it
/// (without the trailing `/`).
pub fn election_prefix(resource: &str) -> String {
    format!("{PREFIX}/{resource}")
}

/// An operator's client: raw calls to etcd's JSON gateway.
#[derive(Clone, Debug)]
pub struct Admin {
    url: String,
    http: reqwest::Client,
    token: Arc<Mutex<Option<String>>>,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// The end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    String::from_utf8(end).expect("ASCII prefix")
}

impl Admin {
    /// An unauthenticated client of `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: Arc::new(Mutex::new(None)),
        }
    }

    /// A client of the shared etcd.
    pub fn shared() -> Self {
        Self::new(&endpoint())
    }

    /// Authenticates as `name` for the following calls.
    pub async fn login(&self, name: &str, password: &str) {
        let answer = self
            .call(
                "/v3/auth/authenticate",
                json!({ "name": name, "password": password }),
            )
            .await;
        let token = answer["token"].as_str().expect("a token").to_owned();
        *self.token.lock().expect("token") = Some(token);
    }

    /// One call; panics on an error answer.
    pub async fn call(&self, path: &str, body: Value) -> Value {
        self.try_call(path, body)
            .await
            .unwrap_or_else(|e| panic!("etcd {path}: {e}"))
    }

    /// One call; an error answer as text.
    pub async fn try_call(&self, path: &str, body: Value) -> Result<Value, String> {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = self.token.lock().expect("token").clone() {
            request = request.header("Authorization", token);
        }
        let response = request
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// The keys under `prefix` (oldest first): (key, create revision, lease, value).
    pub async fn keys(&self, prefix: &str) -> Vec<(String, i64, i64, String)> {
        let answer = self
            .call(
                "/v3/kv/range",
                json!({ "key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                        "sort_order": "ASCEND", "sort_target": "CREATE" }),
            )
            .await;
        let text = |v: &Value| {
            String::from_utf8(STANDARD.decode(v.as_str().unwrap_or("")).expect("base64"))
                .expect("utf-8")
        };
        let int = |v: &Value| v.as_str().unwrap_or("0").parse::<i64>().expect("int64");
        answer["kvs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|kv| {
                (
                    text(&kv["key"]),
                    int(&kv["create_revision"]),
                    int(&kv["lease"]),
                    text(&kv["value"]),
                )
            })
            .collect()
    }

    /// Deletes every key under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) {
        self.call(
            "/v3/kv/deleterange",
            json!({ "key": b64(prefix), "range_end": b64(prefix_end(prefix)) }),
        )
        .await;
    }

    /// Deletes one key.
    pub async fn delete(&self, key: &str) {
        self.call("/v3/kv/deleterange", json!({ "key": b64(key) }))
            .await;
    }

    /// Revokes a lease.
    pub async fn revoke(&self, lease: i64) {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await;
    }

    /// Waits (bounded) until `prefix` holds exactly one key; returns it.
    pub async fn single_key(&self, prefix: &str) -> (String, i64, i64, String) {
        let started = tokio::time::Instant::now();
        loop {
            let keys = self.keys(prefix).await;
            if keys.len() == 1 {
                return keys.into_iter().next().expect("one key");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{prefix} never held exactly one key: {keys:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Unix nanoseconds on the wall clock, the clock the Go peer stamps its
/// lines with (both run on this machine).
pub fn unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The etcd binary xtask provisioned, for private servers.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("LE_ETCD_BIN").map(Into::into).unwrap_or_else(|| {
        panic!("LE_ETCD_BIN is not set: run `cargo xtask integration etcd`, which provides the etcd binary")
    })
}

/// A free loopback port below Linux's ephemeral range (32768 and up), so
/// that a restarted server finds its port still free: the fault proxies and
/// clients of tests running meanwhile take their ports from that range.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1_000 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = 20_000 + u16::try_from(hasher.finish() % 12_000).expect("fits");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// An etcd of this test's own (killed when dropped), on free loopback
/// ports with a temporary data dir that survives restarts.
pub struct PrivateEtcd {
    child: Option<std::process::Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    extra: Vec<String>,
    tls: Option<TlsFiles>,
}

/// PEM files of a test PKI made with the `openssl` CLI: a CA, etcd's server
/// certificate for 127.0.0.1 and a client certificate, all signed by the CA.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// etcd's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// The client's certificate and key.
    pub client: (PathBuf, PathBuf),
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (install it; .ci/run does): {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TlsFiles {
    /// Makes the PKI in `dir`.
    pub fn make(dir: &std::path::Path) -> Self {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=leader-election-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        // etcd's JSON gateway dials etcd's own gRPC port with the server
        // certificate as its client certificate: it needs both usages.
        for (name, usage) in [
            ("server", "serverAuth,clientAuth"),
            ("client", "clientAuth"),
        ] {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
            )
            .expect("extensions file");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    "1",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Self {
            ca: dir.join("ca.crt"),
            server: (dir.join("server.crt"), dir.join("server.key")),
            client: (dir.join("client.crt"), dir.join("client.key")),
        }
    }
}

impl PrivateEtcd {
    /// Starts one and waits until it is healthy.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts one with extra flags and waits until it is healthy.
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "leader-election-etcd-test-{}-{}",
            std::process::id(),
            unique_resource("d")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut etcd = Self {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            extra: extra.iter().map(|&a| a.to_owned()).collect(),
            tls: None,
        };
        etcd.run().await;
        etcd
    }

    /// Starts one that serves clients only over TLS and requires a client
    /// certificate signed by the test CA.
    pub async fn start_tls() -> Self {
        let mut etcd = Self {
            child: None,
            dir: std::env::temp_dir().join(format!(
                "leader-election-etcd-test-{}-{}",
                std::process::id(),
                unique_resource("tls")
            )),
            client_port: free_port(),
            peer_port: free_port(),
            extra: Vec::new(),
            tls: None,
        };
        std::fs::create_dir_all(&etcd.dir).expect("temp dir");
        let files = TlsFiles::make(&etcd.dir);
        etcd.extra = vec![
            format!("--cert-file={}", files.server.0.display()),
            format!("--key-file={}", files.server.1.display()),
            format!("--trusted-ca-file={}", files.ca.display()),
            "--client-cert-auth=true".to_owned(),
        ];
        etcd.tls = Some(files);
        etcd.run().await;
        etcd
    }

    /// The PKI of a TLS server.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    async fn run(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("log file");
        let child = std::process::Command::new(etcd_binary())
            .args([
                "--name=private".to_owned(),
                format!("--data-dir={}", self.dir.join("data").display()),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=private={peer}"),
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ])
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning etcd");
        self.child = Some(child);
        let mut health = reqwest::Client::builder().use_rustls_tls();
        if let Some(files) = &self.tls {
            let ca = std::fs::read(&files.ca).expect("CA");
            let mut identity = std::fs::read(&files.client.0).expect("client cert");
            identity.extend(std::fs::read(&files.client.1).expect("client key"));
            health = health
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
                .identity(reqwest::Identity::from_pem(&identity).expect("identity PEM"));
        }
        let health = health.build().expect("health client");
        let started = tokio::time::Instant::now();
        loop {
            let healthy = health
                .get(format!("{client}/health"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .is_some();
            if healthy {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "private etcd not healthy within 30 s (exit: {exited:?}); its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Go peer campaigning with etcd's `concurrency.Election`, built by xtask.
pub fn election_peer() -> PathBuf {
    std::env::var_os("LE_ETCD_ELECTION_PEER_BIN").map(Into::into).unwrap_or_else(|| {
        panic!("LE_ETCD_ELECTION_PEER_BIN is not set: run `cargo xtask integration etcd`, which builds the Go election peer")
    })
}

/// A line of the Go peer: its word and Unix-nanosecond stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLine {
    /// `CAMPAIGNING`, `LEADING`, `RESIGNING`, `RESIGNED`, `LOST` or `GAVE_UP`.
    pub word: String,
    /// When it happened (wall clock).
    pub at: i128,
}

/// The Go peer process (killed when dropped) and its stdout lines.
pub struct GoPeer {
    /// The process.
    pub child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl GoPeer {
    /// Campaigns on `<PREFIX>/<resource>` as `id` with `args` (`-hold`, `-ttl`, ...).
    pub fn spawn(resource: &str, id: &str, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(election_peer())
            .args([
                "-endpoints",
                &endpoint(),
                "-prefix",
                &election_prefix(resource),
                "-id",
                id,
            ])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the Go election peer");
        let stdout = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// The next line; panics after 60 s of silence or at exit.
    pub async fn next(&mut self) -> PeerLine {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the Go peer said something within 60 s")
            .expect("reading the Go peer")
            .expect("the Go peer exited early");
        let (word, at) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("a stamped line, got {line:?}"));
        PeerLine {
            word: word.to_owned(),
            at: at.parse().unwrap_or_else(|_| panic!("a stamp in {line:?}")),
        }
    }

    /// Reads lines until `word`; its stamp.
    pub async fn until(&mut self, word: &str) -> i128 {
        loop {
            let line = self.next().await;
            if line.word == word {
                return line.at;
            }
            assert!(
                !matches!(line.word.as_str(), "LOST" | "GAVE_UP"),
                "the Go peer ended with {line:?} while waiting for {word}"
            );
        }
    }
}

/// A leadership interval on the wall clock (Unix nanoseconds): widened to the
/// last sample before it and the first after it that read false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallInterval {
    /// Last sample before the term that read false.
    pub start: i128,
    /// First sample after the term that read false (or the end of sampling).
    pub end: i128,
}

/// Reads one election's `is_leader()` from an OS thread, back to back, and
/// keeps its leadership intervals on the wall clock, to compare them with
/// another process's.
pub struct WallSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<WallInterval>>,
}

impl WallSampler {
    /// Starts sampling `election`.
    pub fn start(election: Arc<dyn leader_election_abstractions::LeaderElection>) -> Self {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut intervals = Vec::new();
            let mut last_false = unix_nanos();
            let mut open: Option<i128> = None;
            loop {
                let done = stopped.load(Ordering::Relaxed);
                let before = unix_nanos();
                let leading = election.is_leader();
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
                if done {
                    if let Some(start) = open {
                        intervals.push(WallInterval {
                            start,
                            end: unix_nanos(),
                        });
                    }
                    return intervals;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        Self { stop, thread }
    }

    /// Stops sampling; the intervals.
    pub fn finish(self) -> Vec<WallInterval> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}
