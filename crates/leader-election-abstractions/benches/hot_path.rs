//! Measures what contract C11 promises: `is_leader()`, `fencing_token()` and
//! `current_leader_id()` cost nanoseconds, also while other threads read.
//! Prints numbers; asserts nothing. Run with `cargo bench -p leader-election-abstractions`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leader_election_abstractions::{LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

const CALLS: u32 = 5_000_000;

fn per_call(label: &str, threads: usize, f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for _ in 0..CALLS {
                    f();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("bench thread");
    }
    let nanos = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
    println!("{label:<40} {threads} thread(s): {nanos:>8.1} ns/call");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(30))
        .renew_interval(Duration::from_secs(10))
        .instance_id("bench")
        .build()
        .expect("options");
    let factory =
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options).expect("factory");
    let leader = factory
        .election("bench")
        .candidate_id("leader")
        .build()
        .expect("election");
    runtime.block_on(async {
        leader.start().await.expect("start");
        leader.wait_for_leadership().await.expect("leads");
    });
    for threads in [1, 2] {
        let e = leader.clone();
        per_call("is_leader (leading)", threads, move || {
            black_box(e.is_leader());
        });
        let e = leader.clone();
        per_call("fencing_token (leading)", threads, move || {
            black_box(e.fencing_token());
        });
        let e = leader.clone();
        per_call("current_leader_id (leading)", threads, move || {
            black_box(e.current_leader_id());
        });
    }
    runtime.block_on(async { leader.stop().await.expect("stop") });
    let e = leader.clone();
    per_call("is_leader (stopped)", 1, move || {
        black_box(e.is_leader());
    });
}
