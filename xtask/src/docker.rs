//! `--runtime docker`: for developers who have Docker and kind. Consul runs
//! as a dev-mode container (same pinned version, `session_ttl_min = 1s`),
//! Kubernetes as a kind cluster. Not exercised on this project's machines
//! (they have no Docker engine); the default runtime is local processes.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::state::Record;
use crate::{consul, proc, versions};

/// Runs a command, returning its trimmed stdout.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    println!("xtask: $ {program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}` ({e}); --runtime docker needs it on PATH"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Starts `hashicorp/consul:<pinned>` in dev mode on a free loopback port.
pub(crate) fn start_consul(dir: &Path) -> Result<Record, String> {
    let started = Instant::now();
    let port = proc::free_ports(1)?[0];
    let name = format!("le-test-consul-{}", proc::random_hex(4)?);
    let image = format!(
        "hashicorp/consul:{}",
        versions::CONSUL.version.trim_start_matches('v')
    );
    let publish = format!("127.0.0.1:{port}:8500");
    run(
        "docker",
        &[
            "run",
            "--detach",
            "--rm",
            "--name",
            &name,
            "--publish",
            &publish,
            &image,
            "agent",
            "-dev",
            "-client=0.0.0.0",
            "-hcl=session_ttl_min = \"1s\"",
        ],
    )?;
    let url = format!("http://127.0.0.1:{port}");
    let record = Record {
        runtime: "docker".into(),
        container: Some(name.clone()),
        dir: dir.to_path_buf(),
        log: dir.join("docker-logs-consul.txt"),
        url: url.clone(),
        env: consul::consul_env(&url),
        ..Record::default()
    };
    // The dev agent's node name is the container's hostname, so only wait
    // for the leader here.
    if let Err(e) = wait_leader(&url) {
        let _ = stop(&record);
        return Err(e);
    }
    println!(
        "xtask: consul (docker {name}): ready at {url} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(record)
}

fn wait_leader(url: &str) -> Result<(), String> {
    let client = crate::http::Client::new(None, None)?;
    let leader = format!("{url}/v1/status/leader");
    let ok = proc::wait_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(200),
        || {
            client
                .get(&leader)
                .map(|r| r.body.contains(':'))
                .unwrap_or(false)
        },
    );
    if ok {
        Ok(())
    } else {
        Err("the Consul container elected no leader within 60s".into())
    }
}

/// Creates a kind cluster whose kubeconfig is written into `dir`.
pub(crate) fn start_kind(dir: &Path) -> Result<Record, String> {
    let started = Instant::now();
    let name = format!("le-test-{}", proc::random_hex(3)?);
    let kubeconfig = dir.join("kubeconfig");
    let kubeconfig_arg = kubeconfig.display().to_string();
    run(
        "kind",
        &[
            "create",
            "cluster",
            "--name",
            &name,
            "--kubeconfig",
            &kubeconfig_arg,
            "--wait",
            "120s",
        ],
    )?;
    let record = Record {
        runtime: "docker".into(),
        kind_cluster: Some(name.clone()),
        dir: dir.to_path_buf(),
        log: dir.join("kind.txt"),
        url: format!("kind cluster {name}"),
        env: [
            ("KUBECONFIG".to_string(), kubeconfig_arg.clone()),
            ("LE_KUBE_NAMESPACE".to_string(), "default".to_string()),
        ]
        .into(),
        ..Record::default()
    };
    if let Err(e) = run(
        "kubectl",
        &[
            "--kubeconfig",
            &kubeconfig_arg,
            "get",
            "namespace",
            "default",
        ],
    ) {
        let _ = stop(&record);
        return Err(e);
    }
    println!(
        "xtask: kind cluster {name}: ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(record)
}

/// True while the container or kind cluster exists.
pub(crate) fn running(record: &Record) -> bool {
    if let Some(container) = &record.container {
        return run(
            "docker",
            &["inspect", "--format", "{{.State.Running}}", container],
        )
        .map(|s| s == "true")
        .unwrap_or(false);
    }
    if let Some(cluster) = &record.kind_cluster {
        return run("kind", &["get", "clusters"])
            .map(|s| s.lines().any(|l| l == cluster))
            .unwrap_or(false);
    }
    false
}

/// Removes the container or deletes the kind cluster.
pub(crate) fn stop(record: &Record) -> Result<String, String> {
    if let Some(container) = &record.container {
        run("docker", &["rm", "--force", container])?;
        return Ok(format!("container {container} removed"));
    }
    if let Some(cluster) = &record.kind_cluster {
        run("kind", &["delete", "cluster", "--name", cluster])?;
        return Ok(format!("kind cluster {cluster} deleted"));
    }
    Ok("nothing recorded to stop".into())
}

/// The Lease smoke check through `kubectl`, for a kind cluster (whose
/// kubeconfig authenticates with a client certificate).
pub(crate) fn check_kind(record: &Record) -> Result<usize, String> {
    let kubeconfig = record
        .env
        .get("KUBECONFIG")
        .ok_or("state lacks KUBECONFIG")?;
    let name = format!("le-smoke-{}", proc::random_hex(4)?);
    let file = record.dir.join("lease.json");
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"holderIdentity": "smoke-a", "leaseDurationSeconds": 15}
    });
    std::fs::write(&file, lease.to_string())
        .map_err(|e| format!("cannot write lease.json: {e}"))?;
    let file = file.display().to_string();
    let k = |args: &[&str]| {
        let mut all = vec![
            "--kubeconfig",
            kubeconfig.as_str(),
            "--namespace",
            "default",
        ];
        all.extend_from_slice(args);
        run("kubectl", &all)
    };
    let holder = |k: &dyn Fn(&[&str]) -> Result<String, String>| {
        k(&[
            "get",
            "lease",
            &name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    k(&["create", "-f", &file])?;
    let first = holder(&k)?;
    k(&[
        "patch",
        "lease",
        &name,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"smoke-b"}}"#,
    ])?;
    let second = holder(&k)?;
    k(&["delete", "lease", &name])?;
    if first == "smoke-a" && second == "smoke-b" {
        println!("xtask: check kubernetes (kind): ok   create, read, update, delete Lease {name}");
        Ok(1)
    } else {
        Err(format!(
            "Lease holder read back as `{first}` then `{second}`"
        ))
    }
}
