//! etcd as a local process (the storage of kube-apiserver).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::http::Client;
use crate::proc::{self, wait_until};
use crate::state::Record;

/// Starts etcd with a temporary data dir on free loopback ports and waits
/// until `GET /health` reports healthy.
pub(crate) fn start(binary: &Path, dir: &Path, detach: bool) -> Result<Record, String> {
    let ports = proc::free_ports(2)?;
    let (client, peer) = (ports[0], ports[1]);
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = dir.join("data");
    let log = dir.join("etcd.log");
    let args = vec![
        "--name=le-test".to_string(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=le-test={peer_url}"),
        "--unsafe-no-fsync=true".to_string(),
        "--log-level=warn".to_string(),
    ];
    let started = Instant::now();
    let pid = proc::spawn(binary, &args, &log, detach)?;
    let record = Record {
        runtime: "process".into(),
        pid: Some(pid),
        binary: Some(binary.to_path_buf()),
        dir: dir.to_path_buf(),
        log: log.clone(),
        url: client_url.clone(),
        // ETCDCTL_ENDPOINTS is what etcdctl and the etcd provider's
        // `EtcdConfig::from_env` read. The provider's tests start private
        // servers of their own (auth enabled, stopped and restarted) from
        // the same binary.
        env: [
            ("LE_ETCD_ENDPOINTS".to_string(), client_url.clone()),
            ("ETCDCTL_ENDPOINTS".to_string(), client_url.clone()),
            ("LE_ETCD_BIN".to_string(), binary.display().to_string()),
            // For `cargo xtask bench`'s reading of etcd's CPU time.
            ("LE_ETCD_PID".to_string(), pid.to_string()),
        ]
        .into(),
        ..Record::default()
    };
    let http = Client::new(None, None)?;
    let health = format!("{client_url}/health");
    let ready = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        !proc::alive(pid)
            || http
                .get(&health)
                .map(|r| r.status == 200 && r.body.contains("\"true\""))
                .unwrap_or(false)
    });
    if !ready || !proc::alive(pid) {
        return Err(failed(&record, "etcd did not report healthy within 30s"));
    }
    println!(
        "xtask: etcd: ready at {client_url} (pid {pid}) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(record)
}

/// An error message with the server's log tail, after stopping it.
pub(crate) fn failed(record: &Record, what: &str) -> String {
    if let (Some(pid), Some(binary)) = (record.pid, &record.binary) {
        let _ = proc::stop(pid, binary, Duration::from_secs(5));
    }
    format!(
        "{what}; last lines of {}:\n{}",
        record.log.display(),
        proc::log_tail(&record.log, 30)
    )
}
