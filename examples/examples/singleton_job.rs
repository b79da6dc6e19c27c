//! Pattern 1 of the seed README: a single leader for singleton work.
//!
//! Two workers run the same service; on every tick only the one that leads
//! runs the job. Half-way through, worker-1 (the first leader) shuts down
//! gracefully and worker-2 takes the job over at once. Each job run carries
//! the term's fencing token, and the (simulated) system the job writes to
//! rejects any token older than one it has already seen, so a stale leader
//! could never overwrite its successor's work. Ends after a fixed number of
//! ticks, about four seconds:
//!
//! ```text
//! cargo run -p examples --example singleton_job
//! ```

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::{demo_options, elapsed, init_tracing, stamp};
use leader_election_abstractions::{FencingToken, LeaderElection, LeaderElectionFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

/// How often each worker checks whether it should run the job (the seed
/// waits a minute; a demo cannot).
const TICK: Duration = Duration::from_millis(250);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_tracing();
    elapsed();
    let factory: Arc<dyn LeaderElectionFactory> = Arc::new(InMemoryLeaderElectionFactory::new(
        InMemoryStore::new(),
        demo_options()?,
    )?);
    let sink = Arc::new(JobSink::default());

    // worker-1 runs 8 ticks and then leaves (a rolling deploy, say);
    // worker-2 runs 16. Starting worker-1 first makes it the first leader.
    let first = tokio::spawn(singleton_job_service(
        factory.create_election("singleton-job", Some("worker-1"))?,
        8,
        Arc::clone(&sink),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn(singleton_job_service(
        factory.create_election("singleton-job", Some("worker-2"))?,
        16,
        Arc::clone(&sink),
    ));

    let runs_1 = first.await??;
    let runs_2 = second.await??;
    let rejected = sink.rejected();
    println!();
    println!("job runs: worker-1 {runs_1}, worker-2 {runs_2}; stale writes rejected: {rejected}");
    println!("total run time: {:.3}s", elapsed().as_secs_f64());
    if rejected > 0 || runs_1 == 0 || runs_2 == 0 {
        return Err("expected both workers to run the job in turn, with no stale writes".into());
    }
    Ok(())
}

/// The seed's `SingletonJobService.ExecuteAsync`, with a bounded loop.
async fn singleton_job_service(
    election: Arc<dyn LeaderElection>,
    ticks: u32,
    sink: Arc<JobSink>,
) -> Result<u32, leader_election_abstractions::Error> {
    election.start().await?;
    let mut runs = 0;
    for _ in 0..ticks {
        // `fencing_token()` is `is_leader()` plus the term's token, in one
        // read: `Some` exactly while this worker leads.
        if let Some(token) = election.fencing_token() {
            process_job(election.candidate_id(), token, &sink).await;
            runs += 1;
        }
        tokio::time::sleep(TICK).await;
    }
    println!("{} {} shuts down", stamp(), election.candidate_id());
    // Releases the lease if leading, so the other worker takes over at once.
    election.stop().await?;
    Ok(runs)
}

async fn process_job(worker: &str, token: FencingToken, sink: &JobSink) {
    let accepted = sink.write(token);
    println!(
        "{} {worker} runs the job with fencing token {token}{}",
        stamp(),
        if accepted {
            ""
        } else {
            " -- REJECTED as stale"
        }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Stands in for the database or queue the job writes to: it remembers the
/// highest fencing token it has seen and refuses older ones.
#[derive(Default)]
struct JobSink {
    state: Mutex<(u64, u32)>, // (highest token seen, writes rejected)
}

impl JobSink {
    fn write(&self, token: FencingToken) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if token.get() < state.0 {
            state.1 += 1;
            return false;
        }
        state.0 = token.get();
        true
    }

    fn rejected(&self) -> u32 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}
