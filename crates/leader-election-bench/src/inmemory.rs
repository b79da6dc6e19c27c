//! Elections per process on the in-memory provider: `resources` resources ×
//! 2 candidates (two factories over one store, as two replicas would be),
//! default options. Measures the time until every resource has a leader,
//! the resident memory per election, and the CPU the process uses while
//! steady (leaders renewing, followers waiting).

use std::time::{Duration, Instant};

use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryLeaseStore, InMemoryStore};

use crate::process::{cpu_time, rss_bytes};

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let resources: usize = args
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or("inmemory needs the number of resources")?;
    let window = Duration::from_secs(crate::flag(args, "--window", 10u64)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let store = InMemoryStore::new();
    let factory = |id: &str| {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        InMemoryLeaderElectionFactory::new(store.clone(), options).map_err(|e| e.to_string())
    };
    let replicas = [factory("replica-a")?, factory("replica-b")?];
    let names: Vec<String> = (0..resources).map(|i| format!("shard-{i:05}")).collect();

    let rss_before = rss_bytes()?;
    let started = Instant::now();
    let mut pairs: Vec<[Election<InMemoryLeaseStore>; 2]> = Vec::with_capacity(resources);
    for name in &names {
        let make =
            |f: &InMemoryLeaderElectionFactory| f.election(name).build().map_err(|e| e.to_string());
        pairs.push([make(&replicas[0])?, make(&replicas[1])?]);
    }
    runtime.block_on(async {
        for pair in &pairs {
            for election in pair {
                election.start().await.map_err(|e| e.to_string())?;
            }
        }
        Ok::<_, String>(())
    })?;
    // Every resource led by exactly one of its two candidates.
    let give_up = started + Duration::from_secs(300);
    loop {
        let led = pairs
            .iter()
            .filter(|p| p[0].is_leader() || p[1].is_leader())
            .count();
        if led == resources {
            break;
        }
        if Instant::now() > give_up {
            return Err(format!(
                "only {led} of {resources} resources had a leader after 300 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elect = started.elapsed();
    let both = pairs
        .iter()
        .filter(|p| p[0].is_leader() && p[1].is_leader())
        .count();
    if both > 0 {
        return Err(format!("{both} resources had two leaders"));
    }
    let rss_elected = rss_bytes()?;
    let elections = 2 * resources;
    let per_election = rss_elected.saturating_sub(rss_before) as f64 / elections as f64;

    // Steady state: let the start-up settle, then measure over `window`.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, wall0) = (cpu_time()?, Instant::now());
    std::thread::sleep(window);
    let (cpu1, wall1) = (cpu_time()?, Instant::now());
    let steady = (cpu1 - cpu0).as_secs_f64() / (wall1 - wall0).as_secs_f64();
    let still_led = pairs
        .iter()
        .filter(|p| p[0].is_leader() || p[1].is_leader())
        .count();

    let stop_started = Instant::now();
    runtime.block_on(async {
        for pair in &pairs {
            for election in pair {
                let _ = election.stop().await;
            }
        }
    });
    let stop = stop_started.elapsed();

    println!(
        "in-memory, {resources} resources x 2 candidates (default options): every resource led after {:.3} s; \
         {:.1} KiB resident per election; steady CPU {:.1} % of one core over {} s \
         ({still_led} of {resources} led at its end); stopping all took {:.3} s",
        elect.as_secs_f64(),
        per_election / 1024.0,
        steady * 100.0,
        window.as_secs(),
        stop.as_secs_f64()
    );
    crate::result(&[
        ("section", "elections".into()),
        ("backend", "in-memory".into()),
        ("resources", resources.to_string()),
        ("elect_s", format!("{:.3}", elect.as_secs_f64())),
        ("kib_per_election", format!("{:.1}", per_election / 1024.0)),
        ("steady_cpu_pct", format!("{:.1}", steady * 100.0)),
        ("window_s", window.as_secs().to_string()),
        ("still_led", still_led.to_string()),
    ]);
    Ok(())
}
