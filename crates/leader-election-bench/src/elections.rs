//! Elections per process: `resources` resources × 2 candidates, one from each
//! of two factories (as two replicas of a sharded service would hold them),
//! default options. Measures the time until every resource has a leader,
//! the resident memory per election, and, while steady (leaders renewing,
//! followers waiting), the CPU the process uses and how many resources
//! still have a leader at the end of the window. Works on any provider.

use std::time::{Duration, Instant};

use leader_election_abstractions::{Election, LeaderElection, StoreFactory};

use crate::process::{cpu_time, heap_bytes, rss_bytes};

/// What the server side saw over the steady window (where it can be read).
pub(crate) trait ServerProbe {
    /// A reading now; figures are differences of two readings.
    fn read(&self, runtime: &tokio::runtime::Runtime) -> Result<ServerReading, String>;
}

/// Counters read from the server.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerReading {
    /// Requests served so far (all clients).
    pub(crate) requests: f64,
    /// Watches of Leases open now.
    pub(crate) open_watches: f64,
    /// CPU time of the server process so far.
    pub(crate) cpu: Duration,
}

/// How long to wait for every resource to have a leader.
const ELECT_LIMIT: Duration = Duration::from_secs(120);

/// Runs the measurement and prints its figures, labelled `backend`.
pub(crate) fn measure<F: StoreFactory>(
    backend: &str,
    runtime: &tokio::runtime::Runtime,
    replicas: [F; 2],
    prefix: &str,
    resources: usize,
    window: Duration,
    probe: Option<&dyn ServerProbe>,
) -> Result<(), String> {
    let names: Vec<String> = (0..resources).map(|i| format!("{prefix}{i:05}")).collect();
    let rss_before = rss_bytes()?;
    let heap_before = heap_bytes();
    let started = Instant::now();
    let mut pairs: Vec<[Election<F::Store>; 2]> = Vec::with_capacity(resources);
    for name in &names {
        let make = |f: &F| f.election(name).build().map_err(|e| e.to_string());
        pairs.push([make(&replicas[0])?, make(&replicas[1])?]);
    }
    let rss_created = rss_bytes()?;
    let heap_created = heap_bytes();
    runtime.block_on(async {
        for pair in &pairs {
            for election in pair {
                election.start().await.map_err(|e| e.to_string())?;
            }
        }
        Ok::<_, String>(())
    })?;
    let led = |pairs: &[[Election<F::Store>; 2]]| {
        pairs
            .iter()
            .filter(|p| p[0].is_leader() || p[1].is_leader())
            .count()
    };
    let elect = loop {
        if led(&pairs) == resources {
            break Some(started.elapsed());
        }
        if started.elapsed() > ELECT_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let led_at_start = led(&pairs);
    let both = pairs
        .iter()
        .filter(|p| p[0].is_leader() && p[1].is_leader())
        .count();
    if both > 0 {
        return Err(format!("{backend}: {both} resources had two leaders"));
    }
    let rss_elected = rss_bytes()?;
    let heap_elected = heap_bytes();
    let elections = (2 * resources) as f64;
    let kib = |bytes: u64| bytes as f64 / elections / 1024.0;
    let created_kib = kib(rss_created.saturating_sub(rss_before));
    let total_kib = kib(rss_elected.saturating_sub(rss_before));
    let heap_kib = kib(heap_elected.saturating_sub(heap_before));
    let heap_created_kib = kib(heap_created.saturating_sub(heap_before));

    // Steady state: let the start-up settle, then measure over `window`.
    std::thread::sleep(Duration::from_secs(1));
    let server0 = probe.map(|p| p.read(runtime)).transpose()?;
    let (cpu0, wall0) = (cpu_time()?, Instant::now());
    let mut least_led = resources;
    while wall0.elapsed() < window {
        std::thread::sleep(Duration::from_millis(100));
        least_led = least_led.min(led(&pairs));
    }
    let (cpu1, wall1) = (cpu_time()?, Instant::now());
    let server1 = probe.map(|p| p.read(runtime)).transpose()?;
    let secs = (wall1 - wall0).as_secs_f64();
    let steady = (cpu1 - cpu0).as_secs_f64() / secs;
    let rss_steady = rss_bytes()?;

    let stop_started = Instant::now();
    runtime.block_on(async {
        for pair in &pairs {
            for election in pair {
                let _ = election.stop().await;
            }
        }
    });
    let stop = stop_started.elapsed();

    let elect_text = match elect {
        Some(t) => format!("every resource led after {:.3} s", t.as_secs_f64()),
        None => format!(
            "only {led_at_start} of {resources} resources led after {} s",
            ELECT_LIMIT.as_secs()
        ),
    };
    println!(
        "{backend}, {resources} resources x 2 candidates (default options): {elect_text}; \
         {total_kib:.1} KiB resident per election ({created_kib:.1} KiB of it before start), \
         {heap_kib:.1} KiB of heap ({heap_created_kib:.1} KiB before start); \
         RSS {:.0} MiB while steady; steady CPU {:.1} % of one core over {secs:.0} s, \
         at least {least_led} of {resources} resources led throughout; stopping all took {:.3} s",
        rss_steady as f64 / 1048576.0,
        steady * 100.0,
        stop.as_secs_f64()
    );
    let mut fields = vec![
        ("section", "elections".to_owned()),
        ("backend", backend.to_owned()),
        ("resources", resources.to_string()),
        (
            "elect_s",
            elect.map_or("-".into(), |t| format!("{:.3}", t.as_secs_f64())),
        ),
        ("kib_per_election", format!("{total_kib:.1}")),
        ("kib_created", format!("{created_kib:.1}")),
        ("heap_kib_per_election", format!("{heap_kib:.1}")),
        ("heap_kib_created", format!("{heap_created_kib:.1}")),
        ("rss_mib", format!("{:.0}", rss_steady as f64 / 1048576.0)),
        ("steady_cpu_pct", format!("{:.1}", steady * 100.0)),
        ("window_s", format!("{secs:.0}")),
        ("least_led", least_led.to_string()),
    ];
    if let (Some(s0), Some(s1)) = (server0, server1) {
        let rate = (s1.requests - s0.requests) / secs;
        let server_cpu = (s1.cpu.saturating_sub(s0.cpu)).as_secs_f64() / secs;
        println!(
            "{backend} server while steady: {rate:.0} requests/s, {:.0} open lease watches, \
             server CPU {:.1} % of one core",
            s1.open_watches,
            server_cpu * 100.0
        );
        fields.push(("server_requests_per_s", format!("{rate:.0}")));
        fields.push(("server_open_watches", format!("{:.0}", s1.open_watches)));
        fields.push(("server_cpu_pct", format!("{:.1}", server_cpu * 100.0)));
    }
    crate::result(&fields);
    Ok(())
}
