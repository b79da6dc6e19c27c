//! One chaos case: candidate processes of one backend behind per-candidate
//! fault proxies, faults injected at random (seeded) on the leader and
//! around it, then `chaos-check` on the shared log.
//!
//! Every process started here is a child of this xtask process, spawned
//! from its main thread, and is SIGCONTed and SIGKILLed when the case ends,
//! whichever way it ends. The candidates and the proxy process also set a
//! parent-death signal (SIGKILL), so a killed or Ctrl-C'd xtask takes them
//! with it even when they are SIGSTOPped. The kube-apiserver is frozen by a
//! separate `sh` in its own process group that always continues it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::chaos_faults::{FaultKind, Mix, Pending, Stats};
use crate::chaos_parts::{signal, LogTail, ProxyControl, Rng};
use crate::consul;
use crate::proc;
use crate::servers::Teardown;
use crate::state::State;

/// Which lock a case contends for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A `coordination.k8s.io/v1` Lease on the kube-apiserver.
    Kubernetes,
    /// A Consul KV lock.
    Consul,
    /// An etcd election (the key layout of etcd's `concurrency.Election`).
    Etcd,
}

impl Backend {
    /// The name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Consul => "consul",
            Self::Etcd => "etcd",
        }
    }

    /// Mixed into the seed so the backends do not get the same schedule.
    pub(crate) fn salt(self) -> u64 {
        match self {
            Self::Kubernetes => 0,
            Self::Consul => 0x5eed_c025_0000_0000,
            Self::Etcd => 0x5eed_e7cd_0000_0000,
        }
    }
}

/// Grace period of the Rust candidates.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

impl Backend {
    /// The lease of every candidate (the Go ones too): Kubernetes leases
    /// are whole seconds and the term must end a second before the lease
    /// (client-go dates renewals to the second), so 2 s is about the floor;
    /// Consul's test server allows a 1 s session TTL; on etcd the Rust
    /// candidates' etcd lease is lease + grace rounded up to whole seconds
    /// (2 s, etcd's smallest with its default election timeout), and the Go
    /// `concurrency.Election` peer's session TTL is the same 2 s.
    pub(crate) fn lease(self) -> Duration {
        match self {
            Self::Kubernetes => Duration::from_secs(2),
            Self::Consul | Self::Etcd => Duration::from_secs(1),
        }
    }

    /// The Rust candidates' renew interval (Consul and etcd need two renewals per term).
    fn renew(self) -> Duration {
        match self {
            // The term limit is (2 s - 1 s) × 2 / 2.5 = 800 ms.
            Self::Kubernetes => Duration::from_millis(300),
            Self::Consul | Self::Etcd => Duration::from_millis(300),
        }
    }

    /// The etcd election's prefix (`<key prefix>/<resource>`), the one the
    /// Rust candidates' default key prefix gives.
    fn etcd_prefix(resource: &str) -> String {
        format!("leader-election/{resource}")
    }
}

/// Everything a case needs.
pub(crate) struct Setup {
    pub(crate) backend: Backend,
    pub(crate) mix: &'static Mix,
    pub(crate) duration: Duration,
    pub(crate) seed: u64,
    pub(crate) bin_dir: PathBuf,
    /// The foreign candidate's program: `chaos-peers` (client-go's elector,
    /// Consul's `api.Lock`) or `etcd-election-peer` (etcd's `Election`).
    pub(crate) foreign: PathBuf,
    pub(crate) run_dir: PathBuf,
    pub(crate) state: State,
}

/// The outcome of a case, with the checker's summary fields.
pub(crate) struct CaseResult {
    pub(crate) name: String,
    pub(crate) passed: bool,
    pub(crate) reason: String,
    fields: BTreeMap<String, String>,
    /// The harness's own counts per fault kind.
    pub(crate) stats: Stats,
}

impl CaseResult {
    /// A field of the checker's `RESULT` line, `-` when absent.
    pub(crate) fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("-", String::as_str)
    }
}

/// Our library or a foreign client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Rust,
    Foreign,
}

/// One candidate position: an id, a proxy, and its current process.
pub(crate) struct Slot {
    pub(crate) id: String,
    pub(crate) who: Who,
    pub(crate) proxy: usize,
    port: u16,
    pub(crate) child: Option<Child>,
}

/// A running case. Dropping it kills every process it started.
pub(crate) struct Case<'a> {
    pub(crate) setup: &'a Setup,
    log: PathBuf,
    resource: String,
    pub(crate) upstream: String,
    pub(crate) proxy: ProxyControl,
    pub(crate) slots: Vec<Slot>,
    /// The port of the proxy twins connect through, once made.
    pub(crate) twin_port: Option<u16>,
    /// Twin processes running now (killed with the case).
    pub(crate) twins: Vec<Child>,
    pub(crate) rng: Rng,
    pub(crate) tail: LogTail,
    /// Ends of the faults still running.
    pub(crate) pending: Vec<Pending>,
    pub(crate) stats: Stats,
    /// The backend's lease.
    pub(crate) lease: Duration,
    started: Instant,
    unexpected_exits: u32,
    teardown: &'a mut Teardown,
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        let children = self
            .slots
            .iter_mut()
            .filter_map(|s| s.child.as_mut())
            .chain(self.twins.iter_mut());
        for child in children {
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Case<'_> {
    pub(crate) fn say(&self, text: &str) {
        println!(
            "[{:>6.1}s] {} {}: {text}",
            self.started.elapsed().as_secs_f64(),
            self.setup.backend.name(),
            self.setup.mix.name
        );
    }

    fn stderr_for(&self, name: &str) -> Result<File, String> {
        let path = self.setup.run_dir.join(format!("{name}.log"));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))
    }

    /// Starts a candidate as `id` through the proxy on `port`, its output in
    /// `<log_name>.log`.
    pub(crate) fn spawn(
        &self,
        who: Who,
        id: &str,
        port: u16,
        log_name: &str,
    ) -> Result<Child, String> {
        let setup = self.setup;
        let server = format!("127.0.0.1:{port}");
        let env = setup.state.env();
        let mut command = match (who, setup.backend) {
            (Who::Rust, backend) => {
                let mut c = Command::new(setup.bin_dir.join("chaos-candidate"));
                c.args(["--backend", backend.name(), "--server", &server])
                    .args(["--resource", &self.resource, "--id", id, "--log"])
                    .arg(&self.log)
                    .arg("--lease-ms")
                    .arg(backend.lease().as_millis().to_string())
                    .arg("--renew-ms")
                    .arg(backend.renew().as_millis().to_string());
                c
            }
            (Who::Foreign, Backend::Kubernetes) => {
                let mut c = Command::new(&setup.foreign);
                let namespace = env
                    .get("LE_KUBE_NAMESPACE")
                    .map_or("default", String::as_str);
                c.args(["kube", "-server", &server, "-namespace", namespace])
                    .args(["-name", &self.resource, "-id", id, "-log"])
                    .arg(&self.log);
                c
            }
            (Who::Foreign, Backend::Consul) => {
                let mut c = Command::new(&setup.foreign);
                let key = format!("service/leader-election/{}/.lock", self.resource);
                let ttl = format!("{}ms", setup.backend.lease().as_millis());
                c.args(["consul", "-addr", &server, "-key", &key, "-id", id, "-log"])
                    .arg(&self.log)
                    .args(["-ttl", &ttl, "-lock-delay", &ttl]);
                c
            }
            (Who::Foreign, Backend::Etcd) => {
                let mut c = Command::new(&setup.foreign);
                let ttl = (setup.backend.lease() + GRACE).as_secs_f64().ceil();
                c.args(["-endpoints", &format!("http://{server}")])
                    .args(["-prefix", &Backend::etcd_prefix(&self.resource)])
                    .args(["-id", id, "-ttl", &format!("{ttl}"), "-log"])
                    .arg(&self.log);
                c
            }
        };
        command
            .envs(env.iter())
            .stdin(Stdio::null())
            .stdout(self.stderr_for(log_name)?)
            .stderr(self.stderr_for(log_name)?);
        command
            .spawn()
            .map_err(|e| format!("cannot start candidate {id}: {e}"))
    }

    pub(crate) fn restart(&mut self, slot: usize) -> Result<(), String> {
        let (who, id, port) = {
            let s = &self.slots[slot];
            (s.who, s.id.clone(), s.port)
        };
        let child = self.spawn(who, &id, port, &id)?;
        self.slots[slot].child = Some(child);
        Ok(())
    }

    pub(crate) fn note(&mut self, kind: FaultKind, target: &str) -> Result<(), String> {
        let name = kind.name(self.setup.backend);
        self.say(&format!("{name} {target}"));
        self.proxy
            .command(&format!("note {name} {target}"))
            .map(drop)
    }

    /// The slot whose process wrote last, if it is one of the slots.
    pub(crate) fn leader(&mut self) -> Option<usize> {
        self.tail.poll();
        let pid = self.tail.last_writer?;
        self.slots
            .iter()
            .position(|s| s.child.as_ref().is_some_and(|c| c.id() == pid))
    }

    pub(crate) fn pid(&self, slot: usize) -> Option<u32> {
        self.slots[slot].child.as_ref().map(Child::id)
    }

    /// Restarts candidates that exited without being told to.
    pub(crate) fn reap_unexpected(&mut self) -> Result<(), String> {
        for slot in 0..self.slots.len() {
            let exited = match self.slots[slot].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            if let Some(status) = exited {
                self.unexpected_exits += 1;
                let id = self.slots[slot].id.clone();
                let log = self.setup.run_dir.join(format!("{id}.log"));
                self.say(&format!(
                    "candidate {id} exited by itself ({status}); restarting. Its log ends:\n{}",
                    proc::log_tail(&log, 10)
                ));
                if self.unexpected_exits > 20 {
                    return Err(format!(
                        "candidates exited by themselves {} times; see {}",
                        self.unexpected_exits,
                        self.setup.run_dir.display()
                    ));
                }
                self.restart(slot)?;
            }
        }
        Ok(())
    }

    pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) {
        let exited = proc::wait_until(timeout, Duration::from_millis(50), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// SIGSTOPs `server` (the kube-apiserver, etcd) past the lease. A `sh`
    /// in its own process group does the STOP and the CONT, so even if this
    /// process dies (or a Ctrl-C hits it) meanwhile, the server is continued.
    pub(crate) fn freeze_server(&mut self, server: &str) -> Result<(), String> {
        let state = State::load()?;
        let pid = state
            .servers
            .get(server)
            .and_then(|r| r.pid)
            .ok_or(format!("{server} has no recorded pid to freeze"))?;
        let lease = self.lease.as_millis() as u64;
        let hold = self.rng.millis(lease + 1000, lease + 2500);
        self.note(FaultKind::Server, server)?;
        let mut freezer = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "kill -STOP {pid} && sleep {:.3}; kill -CONT {pid}",
                hold.as_secs_f64()
            ))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the {server} freezer: {e}"))?;
        let _ = freezer.wait();
        signal(pid, "CONT");
        Ok(())
    }

    /// SIGKILLs the Consul server agent and starts it again on the same
    /// configuration and data, recording the new pid in the state file and
    /// in the teardown.
    pub(crate) fn restart_consul(&mut self) -> Result<(), String> {
        let state = State::load()?;
        let record = state
            .servers
            .get("consul")
            .cloned()
            .ok_or("no recorded Consul agent to restart")?;
        let (Some(pid), Some(binary)) = (record.pid, record.binary.clone()) else {
            return Err("the Consul agent has no recorded pid and binary".into());
        };
        if !proc::is_ours(pid, &binary) {
            return Err(format!(
                "Consul pid {pid} no longer runs {}",
                binary.display()
            ));
        }
        self.note(FaultKind::Server, "consul-agent")?;
        signal(pid, "KILL");
        proc::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            !proc::alive(pid)
        });
        sleep(self.rng.millis(500, 2000));
        let args = vec![
            "agent".to_string(),
            format!("-config-file={}", record.dir.join("config.json").display()),
        ];
        let log = record.dir.join("consul-restarted.log");
        let new_pid = proc::spawn(&binary, &args, &log, false)?;
        let dir = record.dir.clone();
        State::update(|s| {
            if let Some(r) = s.servers.get_mut("consul") {
                if r.dir == dir {
                    r.pid = Some(new_pid);
                }
            }
        })?;
        for (name, r) in self.teardown.records.iter_mut() {
            if name == "consul" && r.dir == dir {
                r.pid = Some(new_pid);
            }
        }
        consul::wait_ready(&record.url, consul::NODE, || proc::alive(new_pid))
            .map_err(|e| format!("the restarted Consul agent: {e}"))?;
        self.say(&format!("consul agent restarted as pid {new_pid}"));
        Ok(())
    }
}

/// Runs one case and checks its log.
pub(crate) fn run_case(setup: &Setup, teardown: &mut Teardown) -> CaseResult {
    let name = format!("{}/{}", setup.backend.name(), setup.mix.name);
    println!(
        "\nxtask: chaos {name}: {}s, seed {}, logs in {}",
        setup.duration.as_secs(),
        setup.seed,
        setup.run_dir.display()
    );
    let log = setup.run_dir.join("writes.log");
    let mut stats = Stats::default();
    let failed = |reason: String, stats: Stats| CaseResult {
        name: name.clone(),
        passed: false,
        reason,
        fields: BTreeMap::new(),
        stats,
    };
    if let Err(e) = drive(setup, &log, teardown, &mut stats) {
        println!("xtask: chaos {name}: FAILED to run: {e}");
        print!("{}", stats.table());
        return failed(e, stats);
    }
    let checker = setup.bin_dir.join("chaos-check");
    let output = match Command::new(&checker)
        .arg("--case")
        .arg(&name)
        .arg(&log)
        .output()
    {
        Ok(output) => output,
        Err(e) => return failed(format!("cannot run {}: {e}", checker.display()), stats),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    print!("{}", stats.table());
    let Some(result) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        return failed(
            format!("chaos-check printed no RESULT line ({})", output.status),
            stats,
        );
    };
    let mut words = result.split_whitespace();
    let passed = words.next() == Some("passed") && output.status.success();
    let fields = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let reason = text
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED: "))
        .collect::<Vec<_>>()
        .join("; ");
    CaseResult {
        name,
        passed,
        reason,
        fields,
        stats,
    }
}

/// Starts the candidates, injects faults until the case's time is up, and
/// stops everything gracefully. The harness's fault counts go to `stats`,
/// also when the case fails to run to its end.
fn drive(
    setup: &Setup,
    log: &Path,
    teardown: &mut Teardown,
    stats: &mut Stats,
) -> Result<(), String> {
    if setup.run_dir.exists() {
        fs::remove_dir_all(&setup.run_dir)
            .map_err(|e| format!("cannot clear {}: {e}", setup.run_dir.display()))?;
    }
    fs::create_dir_all(&setup.run_dir)
        .map_err(|e| format!("cannot create {}: {e}", setup.run_dir.display()))?;
    let env = setup.state.env();
    let upstream = match setup.backend {
        Backend::Kubernetes => env.get("LE_KUBE_SERVER").map(|s| {
            s.trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned()
        }),
        Backend::Consul => env.get("CONSUL_HTTP_ADDR").cloned(),
        Backend::Etcd => env.get("LE_ETCD_ENDPOINTS").map(|s| {
            s.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        }),
    }
    .ok_or("the server's address is not in the servers' environment")?;
    std::net::TcpStream::connect_timeout(
        &upstream
            .parse()
            .map_err(|e| format!("server address {upstream:?}: {e}"))?,
        Duration::from_secs(5),
    )
    .map_err(|e| format!("cannot reach the server at {upstream}: {e}"))?;
    let proxy_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.run_dir.join("proxy.log"))
        .map_err(|e| format!("proxy log: {e}"))?;
    let proxy = ProxyControl::start(&setup.bin_dir.join("chaos-proxy"), log, proxy_log)?;
    let resource = format!("chaos-{}-{:08x}", setup.mix.name, setup.seed & 0xffff_ffff);
    let mut case = Case {
        setup,
        log: log.to_path_buf(),
        resource,
        upstream,
        proxy,
        slots: Vec::new(),
        twin_port: None,
        twins: Vec::new(),
        rng: Rng(setup.seed),
        tail: LogTail::new(log.to_path_buf()),
        pending: Vec::new(),
        stats: Stats::default(),
        lease: setup.backend.lease(),
        started: Instant::now(),
        unexpected_exits: 0,
        teardown,
    };
    let candidates = [
        ("rust-1", Who::Rust),
        ("rust-2", Who::Rust),
        ("rust-3", Who::Rust),
        ("go-1", Who::Foreign),
    ];
    for (id, who) in candidates {
        let (proxy, port) = case.proxy.add(&case.upstream)?;
        let child = case.spawn(who, id, port, id)?;
        case.slots.push(Slot {
            id: id.to_owned(),
            who,
            proxy,
            port,
            child: Some(child),
        });
    }
    case.say(&format!(
        "{} candidates on resource {} (3 Rust, 1 foreign), each behind its own proxy",
        case.slots.len(),
        case.resource
    ));
    let first = proc::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        case.tail.poll();
        case.tail.writes > 0
    });
    if !first {
        case.reap_unexpected()?;
        return Err(format!(
            "no candidate wrote within 60s: is the server reachable? candidate logs in {}",
            setup.run_dir.display()
        ));
    }
    case.say("a leader is writing; injecting faults");
    let deadline = case.started + setup.duration;
    let injected = case.inject_until(deadline);
    *stats = std::mem::take(&mut case.stats);
    injected?;
    case.reap_unexpected()?;
    sleep(Duration::from_secs(2));
    case.tail.poll();
    let writes = case.tail.writes;
    case.say(&format!(
        "time is up after {writes} writes; stopping every candidate (SIGTERM)"
    ));
    for child in case
        .slots
        .iter_mut()
        .filter_map(|s| s.child.as_mut())
        .chain(case.twins.iter_mut())
    {
        signal(child.id(), "CONT");
        signal(child.id(), "TERM");
    }
    for child in case
        .slots
        .iter_mut()
        .filter_map(|s| s.child.as_mut())
        .chain(case.twins.iter_mut())
    {
        Case::wait_exit(child, Duration::from_secs(10));
    }
    Ok(())
}
