//! Thread safety (contract C11), as in the seed README's "Thread Safety".
//!
//! Election handles are `Send + Sync`: an `Arc<dyn LeaderElection>` moves into
//! plain OS threads, which read `is_leader()`, `current_leader_id()` and
//! `fencing_token()` in tight loops while the async side hands leadership
//! over. The reads take no lock the engine holds across an await: they load an
//! atomic deadline and compare it with the clock, so they cost nanoseconds and
//! never wait for the election's background task. About two seconds:
//!
//! ```text
//! cargo run -p examples --example thread_safety
//! ```

use std::collections::BTreeSet;
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::{demo_options, elapsed, init_tracing, stamp};
use leader_election_abstractions::{LeaderElection, LeaderElectionFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

const READERS: usize = 4;

/// What one reader thread saw.
struct Seen {
    reads: u64,
    is_leader_nanos: f64,
    leaders: BTreeSet<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    init_tracing();
    elapsed();
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), demo_options()?)?;
    let node_a = factory.create_election("thread-safety", Some("node-a"))?;
    let node_b = factory.create_election("thread-safety", Some("node-b"))?;
    node_a.start().await?;
    node_a.wait_for_leadership().await?;
    node_b.start().await?;

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (a, b, done) = (Arc::clone(&node_a), Arc::clone(&node_b), Arc::clone(&done));
            std::thread::spawn(move || read_until_done(&*a, &*b, &done))
        })
        .collect();
    println!("{} {READERS} OS threads reading both handles", stamp());

    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{} ==> node-a stops; node-b takes over", stamp());
    node_a.stop().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{} ==> node-b stops; nobody leads", stamp());
    node_b.stop().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::Relaxed);

    let mut total = 0;
    for (index, reader) in readers.into_iter().enumerate() {
        let seen = reader.join().map_err(|_| "reader thread panicked")?;
        total += seen.reads;
        println!(
            "reader {index}: {:>10} reads, is_leader() {:>5.1} ns per call, leaders observed {:?}",
            seen.reads, seen.is_leader_nanos, seen.leaders
        );
    }
    println!(
        "{total} reads in all; total run time {:.3}s",
        elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_until_done(a: &dyn LeaderElection, b: &dyn LeaderElection, done: &AtomicBool) -> Seen {
    let mut seen = Seen {
        reads: 0,
        is_leader_nanos: 0.0,
        leaders: BTreeSet::new(),
    };
    let mut timed = Duration::ZERO;
    let mut timed_calls = 0u32;
    while !done.load(Ordering::Relaxed) {
        // Time a batch of the hot read.
        let started = Instant::now();
        let mut leading = 0u32;
        for _ in 0..1000 {
            leading += u32::from(std::hint::black_box(a.is_leader()));
        }
        timed += started.elapsed();
        timed_calls += 1000;
        std::hint::black_box(leading);

        for election in [a, b] {
            if election.fencing_token().is_some() {
                seen.leaders.insert(election.candidate_id().to_owned());
            }
            let observed = election.current_leader_id();
            seen.leaders
                .insert(observed.unwrap_or_else(|| "none".to_owned()));
        }
        seen.reads += 1004;
    }
    seen.is_leader_nanos = timed.as_nanos() as f64 / f64::from(timed_calls.max(1));
    seen
}
