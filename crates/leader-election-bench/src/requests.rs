//! `kubernetes-requests [--followers N] [--window <secs>]`: the apiserver
//! requests one leader and one idle follower cost per minute, with each
//! library's default timing, for our elections and (when
//! `LE_CLIENT_GO_PEER_BIN` names the client-go peer) client-go's elector.
//!
//! Counted from the apiserver's `/metrics` (`apiserver_request_total` for
//! `leases`, by verb) over three windows on a fresh Lease: nothing running
//! (the apiserver's own Lease traffic, subtracted), the leader alone, then
//! the leader and `N` followers. Ours run in this process, each candidate on
//! a factory of its own (as separate processes would); client-go's are
//! separate processes of the peer, run with client-go's usual timing
//! (lease 15 s, renew deadline 10 s, retry period 2 s).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use leader_election_abstractions::store::LeaseStore;
use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_kubernetes::{
    KubernetesConfig, KubernetesLeaderElectionFactory, KubernetesLeaseStore,
};

use crate::go_peers::{wait_for, Peers};

/// Lease requests served so far, by verb (`GET`, `PUT`, `WATCH`, ...).
type Counts = BTreeMap<String, f64>;

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let followers: usize = crate::flag(args, "--followers", 10)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 20u64)?);
    if std::env::var_os("KUBECONFIG").is_none() {
        return Err("KUBECONFIG is not set: run `cargo xtask servers up kubernetes` and source its env file".into());
    }
    let runtime = crate::runtime()?;
    let client = runtime.block_on(async {
        kube::Client::try_default()
            .await
            .map_err(|e| format!("kube client from KUBECONFIG: {e}"))
    })?;
    let read = || runtime.block_on(lease_requests(&client));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    println!("kubernetes requests: baseline (nothing of ours running) over {window:?}");
    let baseline = rate(&read, window)?;
    let ours = {
        let lease = format!("bench-requests-ours-{run}");
        let made = |id: &str| -> Result<Election<KubernetesLeaseStore>, String> {
            let options = LeaderElectionOptions::builder()
                .instance_id(id)
                .build()
                .map_err(|e| e.to_string())?;
            let client = runtime.block_on(async {
                kube::Client::try_default()
                    .await
                    .map_err(|e| format!("kube client: {e}"))
            })?;
            KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
                .map_err(|e| e.to_string())?
                .election(&lease)
                .build()
                .map_err(|e| e.to_string())
        };
        ours_per_role(
            "kubernetes",
            &runtime,
            &made,
            &read,
            &baseline,
            window,
            followers,
        )?
    };
    report(
        "kubernetes",
        "ours",
        "default options (lease 15 s, renew 5 s, retry 2 s)",
        &ours,
    );

    let Some(peer) = std::env::var_os("LE_CLIENT_GO_PEER_BIN") else {
        println!("kubernetes requests: LE_CLIENT_GO_PEER_BIN is not set: client-go not measured");
        return Ok(());
    };
    let lease = format!("bench-requests-client-go-{run}");
    let args = |id: &str| {
        vec![
            format!("-name={lease}"),
            format!("-id={id}"),
            "-lease-duration=15s".into(),
            "-renew-deadline=10s".into(),
            "-retry-period=2s".into(),
            "-hold=1h".into(),
            "-wait=1h".into(),
        ]
    };
    let theirs = go_per_role(
        ("kubernetes", "client-go"),
        &peer,
        &args,
        "NEW_LEADER leader",
        (&read, &baseline, window),
        followers,
    )?;
    report(
        "kubernetes",
        "client-go",
        "client-go's usual timing (lease 15 s, renew deadline 10 s, retry period 2 s)",
        &theirs,
    );
    Ok(())
}

/// Our side of a requests measurement: a leader made by `made`, measured
/// alone over `window`, then with `followers` idle followers; requests per
/// minute by role (see [`per_role`]), `baseline` subtracted.
pub(crate) fn ours_per_role<S: LeaseStore>(
    backend: &str,
    runtime: &tokio::runtime::Runtime,
    made: &dyn Fn(&str) -> Result<Election<S>, String>,
    read: &dyn Fn() -> Result<Counts, String>,
    baseline: &Counts,
    window: Duration,
    followers: usize,
) -> Result<(Counts, Counts), String> {
    let leader = made("leader")?;
    runtime.block_on(async {
        leader.start().await.map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(60), leader.wait_for_leadership())
            .await
            .map_err(|_| "ours: the leader did not lead within 60 s".to_owned())?
            .map_err(|e| e.to_string())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    println!("{backend} requests: ours, the leader alone over {window:?}");
    let alone = rate(read, window)?;
    let mut idle = Vec::new();
    for i in 0..followers {
        let follower = made(&format!("follower-{i}"))?;
        runtime
            .block_on(follower.start())
            .map_err(|e| e.to_string())?;
        idle.push(follower);
    }
    let since = Instant::now();
    while idle.iter().any(|f| f.current_leader_id().is_none()) {
        if since.elapsed() > Duration::from_secs(60) {
            return Err("ours: followers did not see the leader within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    println!("{backend} requests: ours, the leader and {followers} followers over {window:?}");
    let with = rate(read, window)?;
    runtime.block_on(async {
        for election in idle.iter().chain([&leader]) {
            let _ = election.stop().await;
        }
    });
    Ok(per_role(baseline, &alone, &with, followers))
}

/// The Go side of a requests measurement: a leader process of `program`
/// (run with `args(id)`), measured alone over `window`, then with
/// `followers` follower processes, each waited for until it prints a line
/// starting with `follower_ready`; requests per minute by role.
pub(crate) fn go_per_role(
    (backend, elector): (&str, &str),
    program: &std::ffi::OsStr,
    args: &dyn Fn(&str) -> Vec<String>,
    follower_ready: &str,
    (read, baseline, window): (&dyn Fn() -> Result<Counts, String>, &Counts, Duration),
    followers: usize,
) -> Result<(Counts, Counts), String> {
    let spawn = |peers: &mut Peers, id: &str| {
        let mut command = Command::new(program);
        command.args(args(id));
        peers.spawn(command)
    };
    let mut peers = Peers::default();
    let leading = spawn(&mut peers, "leader")?;
    wait_for(&leading, elector, "LEADING")?;
    std::thread::sleep(Duration::from_secs(2));
    println!("{backend} requests: {elector}, the leader alone over {window:?}");
    let alone = rate(read, window)?;
    let mut lines = Vec::new();
    for i in 0..followers {
        lines.push(spawn(&mut peers, &format!("follower-{i}"))?);
    }
    for follower in &lines {
        wait_for(follower, elector, follower_ready)?;
    }
    std::thread::sleep(Duration::from_secs(2));
    println!("{backend} requests: {elector}, the leader and {followers} followers over {window:?}");
    let with = rate(read, window)?;
    drop(peers);
    Ok(per_role(baseline, &alone, &with, followers))
}

/// Requests per second by verb (or method) over `window`.
pub(crate) fn rate(
    read: &dyn Fn() -> Result<Counts, String>,
    window: Duration,
) -> Result<Counts, String> {
    let before = read()?;
    let started = Instant::now();
    std::thread::sleep(window);
    let after = read()?;
    let secs = started.elapsed().as_secs_f64();
    Ok(after
        .iter()
        .map(|(verb, n)| {
            let delta = n - before.get(verb).copied().unwrap_or(0.0);
            (verb.clone(), delta / secs)
        })
        .collect())
}

/// Requests per minute by verb: the leader's (leader alone minus
/// baseline) and one follower's (leader and followers minus leader alone,
/// divided among the followers), never below zero.
pub(crate) fn per_role(
    baseline: &Counts,
    alone: &Counts,
    with: &Counts,
    followers: usize,
) -> (Counts, Counts) {
    let minus = |a: &Counts, b: &Counts, share: f64| -> Counts {
        a.iter()
            .map(|(verb, r)| {
                let d = (r - b.get(verb).copied().unwrap_or(0.0)) / share * 60.0;
                (verb.clone(), d.max(0.0))
            })
            .collect()
    };
    (
        minus(alone, baseline, 1.0),
        minus(with, alone, followers.max(1) as f64),
    )
}

fn describe(counts: &Counts) -> (f64, String) {
    let total: f64 = counts.values().sum();
    let by_verb: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n >= 0.05)
        .map(|(verb, n)| format!("{verb} {n:.1}"))
        .collect();
    let detail = if by_verb.is_empty() {
        "none".to_owned()
    } else {
        by_verb.join(", ")
    };
    (total, detail)
}

/// Prints one elector's requests per minute by role, and its `RESULT` line.
pub(crate) fn report(
    backend: &str,
    elector: &str,
    timing: &str,
    (leader, follower): &(Counts, Counts),
) {
    let (leader_total, leader_detail) = describe(leader);
    let (follower_total, follower_detail) = describe(follower);
    println!(
        "{backend} requests per minute, {elector} with {timing}: leader {leader_total:.1} \
         ({leader_detail}); idle follower {follower_total:.1} ({follower_detail})"
    );
    crate::result(&[
        ("section", "requests".to_owned()),
        ("backend", backend.to_owned()),
        ("elector", elector.to_owned()),
        ("timing", timing.replace(' ', "_")),
        ("leader_per_min", format!("{leader_total:.1}")),
        ("leader_verbs", leader_detail.replace(' ', "_")),
        ("follower_per_min", format!("{follower_total:.1}")),
        ("follower_verbs", follower_detail.replace(' ', "_")),
    ]);
}

/// The apiserver's Lease requests so far, by verb, from its `/metrics`.
async fn lease_requests(client: &kube::Client) -> Result<Counts, String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("apiserver /metrics: {e}"))?;
    let mut counts = Counts::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"leases\""))
    {
        let verb = line
            .split("verb=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        if let Some(n) = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok())
        {
            *counts.entry(verb.to_owned()).or_default() += n;
        }
    }
    Ok(counts)
}
