//! `cargo xtask servers up|down|status|check|build [etcd|kubernetes|consul|all]`.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::state::{env_file, Record, State};
use crate::{check, consul, docker, etcd, kube, proc, provision, versions};

/// Which servers a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// etcd alone.
    Etcd,
    /// etcd + kube-apiserver.
    Kubernetes,
    /// The Consul server agent and a client agent joined to it.
    Consul,
    /// Everything.
    All,
}

impl Target {
    /// Parses a target name; none means `all`.
    pub(crate) fn parse(arg: Option<&str>) -> Result<Self, String> {
        match arg {
            None | Some("all") => Ok(Self::All),
            Some("etcd") => Ok(Self::Etcd),
            Some("kubernetes") | Some("kube") | Some("k8s") => Ok(Self::Kubernetes),
            Some("consul") => Ok(Self::Consul),
            Some(other) => Err(format!(
                "unknown server `{other}`; expected etcd, kubernetes, consul or all"
            )),
        }
    }

    /// Server names in start order.
    pub(crate) fn servers(self) -> &'static [&'static str] {
        match self {
            Self::Etcd => &["etcd"],
            Self::Kubernetes => &["etcd", "kube-apiserver"],
            Self::Consul => &["consul", "consul-client"],
            Self::All => &["etcd", "kube-apiserver", "consul", "consul-client"],
        }
    }
}

/// Where the servers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// Local processes from provisioned binaries (the default).
    Process,
    /// A Consul dev container and a kind cluster.
    Docker,
}

impl Runtime {
    /// Parses `process` or `docker`.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        match value {
            "process" | "local" => Ok(Self::Process),
            "docker" => Ok(Self::Docker),
            other => Err(format!(
                "unknown runtime `{other}`; expected process or docker"
            )),
        }
    }
}

/// A fresh temporary directory for one server.
fn temp_dir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "leader-election-rs-{name}-{}",
        proc::random_hex(4)?
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Builds the Go peer program in `xtask/go/<dir>` if that directory exists,
/// returning `env_var=<binary>` for the test environment.
pub(crate) fn optional_program(
    dir: &str,
    env_var: &str,
) -> Result<Option<(String, String)>, String> {
    if !provision::workspace_root()
        .join("xtask/go")
        .join(dir)
        .join("go.mod")
        .exists()
    {
        println!("xtask: {dir}: xtask/go/{dir} does not exist; {env_var} stays unset");
        return Ok(None);
    }
    let bin = provision::ensure_program(dir, env_var)?;
    Ok(Some((env_var.to_string(), bin.display().to_string())))
}

/// True when the recorded server is still up.
fn running(record: &Record) -> bool {
    match (record.pid, &record.binary) {
        (Some(pid), Some(binary)) => proc::is_ours(pid, binary),
        _ => docker::running(record),
    }
}

/// Starts the servers of `target` that are not already running.
///
/// `detach` puts local processes in their own process group (for
/// `servers up`, whose processes outlive the command).
pub(crate) fn up(target: Target, runtime: Runtime, detach: bool) -> Result<State, String> {
    let started = Instant::now();
    let mut state = State::load()?;
    let mut started_now: Vec<&str> = Vec::new();
    for &name in target.servers() {
        if let Some(record) = state.servers.get(name) {
            // A client agent joined a server that is gone; it cannot follow
            // a new one on other ports.
            let orphan = name == "consul-client" && started_now.contains(&"consul");
            if orphan && running(record) {
                println!("xtask: {name}: joined to a server that is gone; restarting it");
                stop_records(&[(name.to_string(), record.clone())])?;
            }
            if running(record) {
                println!("xtask: {name}: already running at {}", record.url);
                continue;
            }
            println!("xtask: {name}: recorded but not running; starting a new one");
            let _ = fs::remove_dir_all(&record.dir);
            let stale = record.clone();
            State::update(|s| forget(s, name, &stale))?;
            state.servers.remove(name);
        }
        let record = match (runtime, name) {
            // The Docker runtime has the dev agent only.
            (Runtime::Docker, "etcd" | "consul-client") => continue,
            (Runtime::Docker, "kube-apiserver") => docker::start_kind(&temp_dir(name)?)?,
            (Runtime::Docker, _) => docker::start_consul(&temp_dir(name)?)?,
            (Runtime::Process, "etcd") => {
                let bin = provision::ensure(&versions::ETCD)?;
                // The `leader-election` command's interop test runs `etcdctl lock`.
                let etcdctl = provision::ensure(&versions::ETCDCTL)?;
                let mut record = etcd::start(&bin, &temp_dir(name)?, detach)?;
                record
                    .env
                    .insert("LE_ETCDCTL_BIN".into(), etcdctl.display().to_string());
                record
            }
            (Runtime::Process, "kube-apiserver") => {
                let bin = provision::ensure(&versions::KUBE_APISERVER)?;
                let etcd_url = state
                    .servers
                    .get("etcd")
                    .map(|r| r.url.clone())
                    .ok_or("kube-apiserver needs etcd, which is not running")?;
                // The provider's interop test runs a client-go elector.
                let peer = optional_program("client-go-peer", "LE_CLIENT_GO_PEER_BIN")?;
                let mut record = kube::start(&bin, &temp_dir(name)?, &etcd_url, detach)?;
                record.env.extend(peer);
                record
            }
            (Runtime::Process, "consul-client") => {
                let bin = provision::ensure(&versions::CONSUL)?;
                let server = state.servers.get("consul").ok_or(
                    "the Consul client agent needs the server agent, which is not running",
                )?;
                consul::start_client(&bin, &temp_dir(name)?, server, detach)?
            }
            (Runtime::Process, _) => {
                let bin = provision::ensure(&versions::CONSUL)?;
                // The provider's interop tests run `consul lock` and Go's
                // `api.Lock` against the agent.
                let peer = optional_program("consul-lock-peer", "LE_CONSUL_LOCK_PEER_BIN")?;
                let mut record = consul::start(&bin, &temp_dir(name)?, detach)?;
                record
                    .env
                    .insert("LE_CONSUL_BIN".into(), bin.display().to_string());
                record.env.extend(peer);
                record
            }
        };
        started_now.push(name);
        let saved = record.clone();
        State::update(|s| s.servers.insert(name.to_string(), saved))?;
        state.servers.insert(name.to_string(), record);
    }
    println!(
        "xtask: servers up ({:?}) in {:.1}s; state in {}",
        target,
        started.elapsed().as_secs_f64(),
        env_file().display()
    );
    Ok(state)
}

/// Stops the servers of `target` (kube-apiserver before etcd) by their
/// recorded pid or container, and removes their temporary directories.
pub(crate) fn down(target: Target) -> Result<(), String> {
    down_names(target.servers())
}

/// Stops the named servers, in reverse start order.
pub(crate) fn down_names(names: &[&str]) -> Result<(), String> {
    let state = State::load()?;
    let records: Vec<(String, Record)> = names
        .iter()
        .rev()
        .filter_map(|&n| state.servers.get(n).map(|r| (n.to_string(), r.clone())))
        .collect();
    stop_records(&records)
}

/// Removes `name` from `state` if it is still the given record (not one
/// that another xtask process has started since).
fn forget(state: &mut State, name: &str, record: &Record) {
    let same = state
        .servers
        .get(name)
        .is_some_and(|r| r.pid == record.pid && r.dir == record.dir);
    if same {
        state.servers.remove(name);
    }
}

/// Stops, on drop, exactly the servers one run started (from the records in
/// memory, so a state file changed meanwhile cannot make it miss one); servers
/// that were already up stay up. `records` is public so a run that restarts a
/// server (the chaos harness's Consul restart) can record the new pid.
pub(crate) struct Teardown {
    /// Who started them, for the log lines (`integration`, `chaos`).
    who: &'static str,
    pub(crate) records: Vec<(String, Record)>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let names: Vec<&str> = self.records.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "xtask: {}: stopping the servers it started: {}",
            self.who,
            names.join(", ")
        );
        // kube-apiserver before etcd: reverse start order.
        self.records.reverse();
        if let Err(e) = stop_records(&self.records) {
            eprintln!("xtask: {}: teardown: {e}", self.who);
        }
    }
}

/// Brings `target`'s servers up for one run (reusing any already up) and
/// returns the outcome with the [`Teardown`] of exactly those this call
/// started, also when starting failed half-way.
pub(crate) fn up_for_run(
    target: Target,
    runtime: Runtime,
    who: &'static str,
) -> Result<(Result<State, String>, Teardown), String> {
    let before = State::load()?;
    let up = up(target, runtime, false);
    let after = match &up {
        Ok(state) => state.clone(),
        Err(_) => State::load()?,
    };
    let records = target
        .servers()
        .iter()
        .filter_map(|&n| {
            let record = after.servers.get(n)?;
            let old = before.servers.get(n);
            let new = old.is_none_or(|o| o.pid != record.pid || o.dir != record.dir);
            new.then(|| (n.to_string(), record.clone()))
        })
        .collect();
    Ok((up, Teardown { who, records }))
}

/// Stops exactly these servers (by recorded pid or container), removes
/// their temporary directories and their entries in the state file.
pub(crate) fn stop_records(records: &[(String, Record)]) -> Result<(), String> {
    let mut errors = Vec::new();
    for (name, record) in records {
        let outcome = match (record.pid, &record.binary) {
            (Some(pid), Some(binary)) => proc::stop(pid, binary, Duration::from_secs(15)),
            _ => docker::stop(record),
        };
        match outcome {
            Ok(what) => println!("xtask: {name}: {what}"),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
        if let Err(e) = fs::remove_dir_all(&record.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!(
                    "{name}: cannot remove {}: {e}",
                    record.dir.display()
                ));
            }
        }
        State::update(|s| forget(s, name, record))?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Prints what is recorded and whether it still runs.
pub(crate) fn status() -> Result<(), String> {
    let state = State::load()?;
    if state.servers.is_empty() {
        println!("xtask: no test servers recorded");
        return Ok(());
    }
    for (name, record) in &state.servers {
        let who = record
            .pid
            .map(|p| format!("pid {p}"))
            .or_else(|| record.container.clone().map(|c| format!("container {c}")))
            .or_else(|| {
                record
                    .kind_cluster
                    .clone()
                    .map(|c| format!("kind cluster {c}"))
            })
            .unwrap_or_default();
        let alive = if running(record) {
            "running"
        } else {
            "NOT RUNNING"
        };
        println!(
            "{name:<15} {alive:<12} {who:<20} {}  (log {})",
            record.url,
            record.log.display()
        );
    }
    println!("\n# source {}\n{}", env_file().display(), state.env_block());
    Ok(())
}

/// Runs the smoke checks of `target` against running servers; returns the
/// number of checks passed.
pub(crate) fn check(target: Target) -> Result<usize, String> {
    let state = State::load()?;
    let mut passed = 0;
    let wants = |n: &str| target.servers().contains(&n);
    let get = |name: &str| {
        state
            .servers
            .get(name)
            .filter(|r| running(r))
            .ok_or_else(|| format!("{name} is not running; start it with `cargo xtask servers up`"))
    };
    if wants("kube-apiserver") {
        let record = get("kube-apiserver")?;
        passed += if record.runtime == "docker" {
            docker::check_kind(record)?
        } else {
            check::kubernetes(record)?
        };
    } else if wants("etcd") {
        passed += check::etcd(get("etcd")?)?;
    }
    if wants("consul") {
        passed += check::consul(get("consul")?)?;
        if let Some(client) = state.servers.get("consul-client") {
            let client = Some(client).filter(|r| running(r)).ok_or(
                "consul-client is not running; start it with `cargo xtask servers up consul`",
            )?;
            passed += check::consul_client(client)?;
        }
    }
    Ok(passed)
}

/// Dispatches `cargo xtask servers <sub> [target] [--runtime R]`.
pub(crate) fn command(command: crate::flags::ServersCmd) -> Result<(), String> {
    use crate::flags::ServersCmd;
    match command {
        ServersCmd::Up(flags) => {
            let runtime = crate::runtime(flags.runtime.as_deref())?;
            let state = up(Target::parse(flags.target.as_deref())?, runtime, true)?;
            println!("\n# source {}\n{}", env_file().display(), state.env_block());
            Ok(())
        }
        ServersCmd::Down(flags) => down(Target::parse(flags.target.as_deref())?),
        ServersCmd::Status(_) => status(),
        ServersCmd::Check(flags) => {
            let started = Instant::now();
            let n = check(Target::parse(flags.target.as_deref())?)?;
            println!(
                "xtask: servers check: {n} checks passed in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        ServersCmd::Build(_) => provision::ensure_all(),
    }
}
