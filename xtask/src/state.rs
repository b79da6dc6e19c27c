//! The state file of running test servers and the env block derived from it.
//!
//! `target/test-servers/state.json` records, per server, the pid and binary
//! (or Docker container / kind cluster), the temporary directory to remove,
//! and the connection environment. `target/test-servers/env` holds the same
//! environment as `export` lines for `source`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::provision::workspace_root;

/// One running server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Record {
    /// `process` or `docker`.
    pub(crate) runtime: String,
    /// Process id, for the `process` runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    /// Binary the pid must be running (checked before signalling it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binary: Option<PathBuf>,
    /// Docker container name, for the `docker` runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) container: Option<String>,
    /// kind cluster name, for the `docker` runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind_cluster: Option<String>,
    /// Temporary directory (data, logs, certificates), removed by `down`.
    pub(crate) dir: PathBuf,
    /// Log file.
    pub(crate) log: PathBuf,
    /// Main endpoint, for `status`.
    pub(crate) url: String,
    /// Connection environment exported to tests.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

/// Every server started by `cargo xtask servers up`, keyed by name
/// (`etcd`, `kube-apiserver`, `consul`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// The servers.
    pub(crate) servers: BTreeMap<String, Record>,
}

/// `target/test-servers/`.
pub(crate) fn state_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("test-servers")
}

fn state_file() -> PathBuf {
    state_dir().join("state.json")
}

/// The env file written next to the state file.
pub(crate) fn env_file() -> PathBuf {
    state_dir().join("env")
}

impl State {
    /// Loads the state file, or an empty state when there is none.
    pub(crate) fn load() -> Result<Self, String> {
        let path = state_file();
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{} is corrupt ({e}); remove it by hand", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes the state file and the env file (or removes both when empty).
    pub(crate) fn save(&self) -> Result<(), String> {
        let dir = state_dir();
        if self.servers.is_empty() {
            let _ = fs::remove_file(state_file());
            let _ = fs::remove_file(env_file());
            return Ok(());
        }
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| format!("cannot encode state: {e}"))?;
        fs::write(state_file(), json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", state_file().display()))?;
        fs::write(env_file(), self.env_block())
            .map_err(|e| format!("cannot write {}: {e}", env_file().display()))?;
        Ok(())
    }

    /// Read-modify-write under an exclusive lock on
    /// `target/test-servers/state.lock`, so that two xtask processes (say,
    /// `servers up kubernetes` in one shell and `integration consul` in
    /// another) never overwrite each other's records.
    pub(crate) fn update<T>(change: impl FnOnce(&mut Self) -> T) -> Result<T, String> {
        let dir = state_dir();
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock_path = dir.join("state.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let mut state = Self::load()?;
        let out = change(&mut state);
        state.save()?;
        Ok(out)
    }

    /// All connection variables of all servers.
    pub(crate) fn env(&self) -> BTreeMap<String, String> {
        self.servers
            .values()
            .flat_map(|r| r.env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// `export NAME='value'` lines, ready for `source`.
    pub(crate) fn env_block(&self) -> String {
        self.env()
            .iter()
            .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''")))
            .collect()
    }
}
