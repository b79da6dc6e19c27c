//! Processes: free loopback ports, spawning servers, stopping exactly the
//! processes we recorded, and polling helpers.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Children spawned by this xtask process, kept so that we can reap them
/// after stopping them (otherwise they linger as zombies until we exit).
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Reserves `n` distinct free TCP ports on 127.0.0.1. The listeners are
/// dropped before returning, so a tiny race with other programs remains.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind a free loopback port: {e}"))?;
        listeners.push(listener);
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| format!("cannot read local port: {e}"))
        })
        .collect()
}

/// Starts `binary` with `args`, its stdout and stderr appended to `log`.
///
/// With `detach`, the child gets its own process group so that a Ctrl-C in
/// the terminal that ran `cargo xtask servers up` does not kill it.
pub(crate) fn spawn(
    binary: &Path,
    args: &[String],
    log: &Path,
    detach: bool,
) -> Result<u32, String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot clone log handle: {e}"))?;
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if detach {
        command.process_group(0);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id();
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(child);
    }
    Ok(pid)
}

/// Reaps any of our own children that have exited.
fn reap() {
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
}

/// True while `pid` exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    reap();
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The executable of `pid`, if it is running and readable.
pub(crate) fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// True when `pid` is alive and runs `binary` — so that a recycled pid of an
/// unrelated process is never signalled.
pub(crate) fn is_ours(pid: u32, binary: &Path) -> bool {
    if !alive(pid) {
        return false;
    }
    let expected = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    match exe_of(pid) {
        Some(exe) => exe == expected,
        None => false,
    }
}

/// Sends `signal` (e.g. `TERM`, `KILL`) to `pid` through `kill(1)`.
fn signal(pid: u32, signal: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if status.success() || !alive(pid) {
        Ok(())
    } else {
        Err(format!("kill -{signal} {pid} failed with {status}"))
    }
}

/// Stops `pid` if it still runs `binary`: SIGTERM, then SIGKILL after
/// `grace`. Returns a description of what happened.
pub(crate) fn stop(pid: u32, binary: &Path, grace: Duration) -> Result<String, String> {
    if !is_ours(pid, binary) {
        return Ok(format!("pid {pid} was not running {}", binary.display()));
    }
    signal(pid, "TERM")?;
    if wait_until(grace, Duration::from_millis(50), || !alive(pid)) {
        wait_reaped(pid);
        return Ok(format!("pid {pid} stopped (SIGTERM)"));
    }
    signal(pid, "KILL")?;
    if wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        !alive(pid)
    }) {
        Ok(format!("pid {pid} killed (SIGKILL after {grace:?})"))
    } else {
        Err(format!("pid {pid} survived SIGKILL"))
    }
}

/// Gives whoever inherited an orphaned server (init) a moment to reap it,
/// so that `pgrep` right after `down` shows nothing. Best effort.
fn wait_reaped(pid: u32) {
    let gone = || {
        reap();
        !Path::new(&format!("/proc/{pid}")).exists()
    };
    wait_until(Duration::from_secs(3), Duration::from_millis(50), gone);
}

/// Polls `done` every `every` until it returns true or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(every);
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// A short random hex string from the kernel's random source.
pub(crate) fn random_hex(bytes: usize) -> Result<String, String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
