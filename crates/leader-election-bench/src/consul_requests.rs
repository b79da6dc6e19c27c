//! `consul-requests [--followers N] [--window <secs>]`: the requests one
//! leader and one idle follower send the Consul agent per minute, for our
//! elections and (when `LE_CONSUL_LOCK_PEER_BIN` names the Go peer) Go's
//! `api.Lock`, with the same session settings: TTL 15 s (our default
//! `lease_duration`) and lock-delay 20 s (ours: lease + the default grace
//! period 5 s).
//!
//! Counted exactly by [`CountingProxy`]s on loopback between the
//! candidates and the agent (one for the leader, one for its `N`
//! followers, per elector), each request when its answer starts: a
//! blocking query counts when it returns. The agent's `/v1/agent/metrics`
//! would not do: it aggregates over 10 s intervals, keeps only the last
//! minute, and mixes in every other client's requests. Ours run in this
//! process, each candidate on a factory of its own (as separate processes
//! would be) under a key prefix of their own, so no other key's change
//! wakes their watches; `api.Lock`'s are processes of the Go peer, both
//! run side by side over the same window.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulLeaseStore};

use crate::counting_proxy::{CountingProxy, Counts};
use crate::go_peers::{wait_for, Peers};

/// Session TTL and lock-delay on both sides.
const TTL: Duration = Duration::from_secs(15);
const LOCK_DELAY: Duration = Duration::from_secs(20);

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let followers: usize = crate::flag(args, "--followers", 10)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 60u64)?);
    let agent = agent_address()?;
    let runtime = crate::runtime()?;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let proxy = || runtime.block_on(CountingProxy::start(agent));
    let (ours_leader, ours_followers) = (proxy()?, proxy()?);

    // Ours: default options, so lease (TTL) 15 s, grace 5 s, lock-delay 20 s.
    let prefix = format!("bench-requests-{run}");
    let made = |id: &str, via: SocketAddr| -> Result<Election<ConsulLeaseStore>, String> {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        let config = ConsulConfig {
            address: format!("http://{via}"),
            key_prefix: prefix.clone(),
            ..ConsulConfig::from_env()
        };
        let _guard = runtime.enter();
        ConsulLeaderElectionFactory::new(config, options)
            .map_err(|e| e.to_string())?
            .election("jobs")
            .build()
            .map_err(|e| e.to_string())
    };
    let leader = made("leader", ours_leader.address)?;
    runtime.block_on(async {
        leader.start().await.map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(60), leader.wait_for_leadership())
            .await
            .map_err(|_| "ours: the leader did not lead within 60 s".to_owned())?
            .map_err(|e| e.to_string())
    })?;
    let mut idle = Vec::new();
    for i in 0..followers {
        let follower = made(&format!("follower-{i}"), ours_followers.address)?;
        runtime
            .block_on(follower.start())
            .map_err(|e| e.to_string())?;
        idle.push(follower);
    }
    let since = Instant::now();
    while idle
        .iter()
        .any(|f| f.current_leader_id().as_deref() != Some("leader"))
    {
        if since.elapsed() > Duration::from_secs(60) {
            return Err("ours: followers did not see the leader within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // api.Lock, alongside, through proxies of its own.
    let go = match std::env::var_os("LE_CONSUL_LOCK_PEER_BIN") {
        None => {
            println!("consul requests: LE_CONSUL_LOCK_PEER_BIN is not set: api.Lock not measured");
            None
        }
        Some(peer) => {
            let (go_leader, go_followers) = (proxy()?, proxy()?);
            let key = format!("bench-requests-api-lock-{run}/jobs/.lock");
            let mut peers = Peers::default();
            let first = spawn(&mut peers, &peer, go_leader.address, &key)?;
            wait_for(&first, "consul-lock-peer", "LOCKED")?;
            let mut lines = Vec::new();
            for _ in 0..followers {
                lines.push(spawn(&mut peers, &peer, go_followers.address, &key)?);
            }
            for line in &lines {
                wait_for(line, "consul-lock-peer", "WAITING")?;
            }
            Some((go_leader, go_followers, peers))
        }
    };

    // Settle (sessions created, first blocking queries open), then count.
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "consul requests: ours{} over {window:?}, {followers} followers each",
        if go.is_some() { " and api.Lock" } else { "" }
    );
    let proxies: Vec<&CountingProxy> = [&ours_leader, &ours_followers]
        .into_iter()
        .chain(go.iter().flat_map(|(l, f, _)| [l, f]))
        .collect();
    let before: Vec<Counts> = proxies.iter().map(|p| p.counts()).collect();
    let started = Instant::now();
    std::thread::sleep(window);
    let after: Vec<Counts> = proxies.iter().map(|p| p.counts()).collect();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let still_leading = leader.is_leader();
    runtime.block_on(async {
        for election in idle.iter().chain([&leader]) {
            let _ = election.stop().await;
        }
    });
    drop(go);
    if !still_leading {
        return Err("ours: the leader lost leadership during the window".into());
    }
    let per_minute = |i: usize, share: usize| per_minute(&before[i], &after[i], minutes, share);
    report(
        "ours",
        "default options (lease = session TTL 15 s, renew 5 s, lock-delay 20 s)",
        &per_minute(0, 1),
        &per_minute(1, followers.max(1)),
    );
    if after.len() == 4 {
        report(
            "api.Lock",
            "session TTL 15 s, lock-delay 20 s, its defaults otherwise (renew every TTL / 2, LockWaitTime 15 s)",
            &per_minute(2, 1),
            &per_minute(3, followers.max(1)),
        );
    }
    Ok(())
}

/// The agent's address from `CONSUL_HTTP_ADDR` (with or without scheme).
fn agent_address() -> Result<SocketAddr, String> {
    let addr = std::env::var("CONSUL_HTTP_ADDR").map_err(|_| {
        "CONSUL_HTTP_ADDR is not set: run `cargo xtask servers up consul` and source its env file"
            .to_owned()
    })?;
    let host_port = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    host_port.parse().map_err(|_| {
        format!("CONSUL_HTTP_ADDR `{addr}`: the counting proxy needs a plain http IP:port")
    })
}

/// Requests per minute by kind, of one of `share` candidates.
fn per_minute(before: &Counts, after: &Counts, minutes: f64, share: usize) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(kind, n)| {
            let delta = n - before.get(kind).copied().unwrap_or(0);
            (kind.clone(), delta as f64 / minutes / share as f64)
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect()
}

fn describe(rates: &[(String, f64)]) -> (f64, String) {
    let total = rates.iter().map(|(_, r)| r).sum();
    let detail: Vec<String> = rates
        .iter()
        .map(|(kind, rate)| format!("{kind} {rate:.1}"))
        .collect();
    let detail = if detail.is_empty() {
        "none".to_owned()
    } else {
        detail.join(", ")
    };
    (total, detail)
}

fn report(elector: &str, timing: &str, leader: &[(String, f64)], follower: &[(String, f64)]) {
    let (leader_total, leader_detail) = describe(leader);
    let (follower_total, follower_detail) = describe(follower);
    println!(
        "consul requests per minute, {elector} with {timing}: leader {leader_total:.1} \
         ({leader_detail}); idle follower {follower_total:.1} ({follower_detail})"
    );
    crate::result(&[
        ("section", "requests".to_owned()),
        ("backend", "consul".to_owned()),
        ("elector", elector.to_owned()),
        ("timing", timing.replace(' ', "_")),
        ("counted", "counting_loopback_proxy".to_owned()),
        ("leader_per_min", format!("{leader_total:.1}")),
        ("leader_verbs", leader_detail.replace(' ', "_")),
        ("follower_per_min", format!("{follower_total:.1}")),
        ("follower_verbs", follower_detail.replace(' ', "_")),
    ]);
}

/// Starts one `api.Lock` candidate on `key` through `via`; its stdout lines.
fn spawn(
    peers: &mut Peers,
    peer: &std::ffi::OsStr,
    via: SocketAddr,
    key: &str,
) -> Result<mpsc::Receiver<String>, String> {
    let mut command = Command::new(peer);
    command.args([
        format!("-addr={via}"),
        format!("-key={key}"),
        format!("-ttl={}s", TTL.as_secs()),
        format!("-lock-delay={}s", LOCK_DELAY.as_secs()),
        "-hold=1h".to_owned(),
    ]);
    peers.spawn(command)
}
