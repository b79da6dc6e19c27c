//! The cost of the leadership reads (`is_leader()`, `fencing_token()`) on a
//! leading election, next to one `Instant::now()` (std's and Tokio's), the
//! floor for any deadline check, measured in the same process.

use std::hint::black_box;
use std::time::{Duration, Instant};

use leader_election_abstractions::{LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

const CALLS: u32 = 20_000_000;

/// Nanoseconds per call of `f`, the best of three runs of `CALLS` calls.
fn per_call(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            started.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .fold(f64::INFINITY, f64::min)
}

pub(crate) fn command() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(30))
        .renew_interval(Duration::from_secs(10))
        .instance_id("bench")
        .build()
        .map_err(|e| e.to_string())?;
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options)
        .map_err(|e| e.to_string())?;
    let leader = factory
        .election("bench")
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(async {
            leader.start().await?;
            leader.wait_for_leadership().await.map(drop)
        })
        .map_err(|e| e.to_string())?;

    let std_now = per_call(|| {
        black_box(Instant::now());
    });
    let tokio_now = per_call(|| {
        black_box(tokio::time::Instant::now());
    });
    let is_leader = per_call(|| {
        black_box(black_box(&leader).is_leader());
    });
    let token = per_call(|| {
        black_box(black_box(&leader).fencing_token());
    });
    runtime
        .block_on(async { leader.stop().await })
        .map_err(|e| e.to_string())?;

    println!(
        "hot path, leading, one thread, release build without tokio test-util: \
         std Instant::now() {std_now:.1} ns, tokio Instant::now() {tokio_now:.1} ns, \
         is_leader() {is_leader:.1} ns, fencing_token() {token:.1} ns"
    );
    crate::result(&[
        ("section", "hot-path".into()),
        ("std_now_ns", format!("{std_now:.1}")),
        ("tokio_now_ns", format!("{tokio_now:.1}")),
        ("is_leader_ns", format!("{is_leader:.1}")),
        ("fencing_token_ns", format!("{token:.1}")),
    ]);
    Ok(())
}
