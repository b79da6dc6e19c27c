//! `kubernetes <resources>`: elections per process against the apiserver of
//! `KUBECONFIG` (`cargo xtask servers up kubernetes`), with the apiserver's
//! own figures: Lease requests per second, open Lease watches (from its
//! `/metrics`) and, when `LE_KUBE_APISERVER_PID` names its process, its CPU.

use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

use crate::elections::{ServerProbe, ServerReading};
use crate::process::cpu_time_of;

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let resources = crate::resources(args)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 10u64)?);
    if std::env::var_os("KUBECONFIG").is_none() {
        return Err("KUBECONFIG is not set: run `cargo xtask servers up kubernetes` and source its env file".into());
    }
    let runtime = crate::runtime()?;
    let client = || {
        runtime.block_on(async {
            kube::Client::try_default()
                .await
                .map_err(|e| format!("kube client from KUBECONFIG: {e}"))
        })
    };
    let factory = |id: &str| {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        KubernetesLeaderElectionFactory::new(client()?, KubernetesConfig::default(), options)
            .map_err(|e| e.to_string())
    };
    let replicas = [factory("replica-a")?, factory("replica-b")?];
    let probe = Apiserver {
        client: client()?,
        pid: std::env::var("LE_KUBE_APISERVER_PID").ok(),
    };
    // A fresh set of Lease names per run, so runs do not see each other's.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prefix = format!("bench-{run}-");
    crate::elections::measure(
        "kubernetes",
        &runtime,
        replicas,
        &prefix,
        resources,
        window,
        Some(&probe),
    )
}

/// The apiserver's metrics endpoint and process.
struct Apiserver {
    client: kube::Client,
    pid: Option<String>,
}

impl ServerProbe for Apiserver {
    fn read(&self, runtime: &tokio::runtime::Runtime) -> Result<ServerReading, String> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = runtime
            .block_on(self.client.request_text(request))
            .map_err(|e| format!("apiserver /metrics: {e}"))?;
        let sum = |metric: &str, filter: &dyn Fn(&str) -> bool| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(metric) && filter(l))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                .sum()
        };
        let leases = |l: &str| l.contains("resource=\"leases\"");
        Ok(ServerReading {
            requests: sum("apiserver_request_total{", &leases),
            open_watches: sum("apiserver_longrunning_requests{", &|l| {
                leases(l) && l.contains("verb=\"WATCH\"")
            }),
            cpu: match &self.pid {
                Some(pid) => cpu_time_of(pid)?,
                None => Duration::ZERO,
            },
        })
    }
}
