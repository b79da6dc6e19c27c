//! Pattern 1 of the seed README: a single leader for singleton work.
//!
//! Two workers run the same service; each waits for leadership and, while its
//! term lasts, runs the job on every tick. Half-way through, worker-1 (the
//! first leader) is told to shut down (its cancellation token is cancelled)
//! and worker-2 takes the job over at once. Each job run carries
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
use leader_election_abstractions::{
    Error as ElectionError, FencingToken, LeaderElection, LeaderElectionExt, LeaderElectionFactory,
};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
use tokio_util::sync::CancellationToken;

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

    // worker-1 runs for 8 ticks and then leaves (a rolling deploy, say);
    // worker-2 for 16. Starting worker-1 first makes it the first leader.
    let (stop_1, stop_2) = (CancellationToken::new(), CancellationToken::new());
    let first = tokio::spawn(singleton_job_service(
        factory.create_election("singleton-job", Some("worker-1"))?,
        stop_1.clone(),
        Arc::clone(&sink),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn(singleton_job_service(
        factory.create_election("singleton-job", Some("worker-2"))?,
        stop_2.clone(),
        Arc::clone(&sink),
    ));
    tokio::time::sleep(TICK * 8).await;
    stop_1.cancel();
    tokio::time::sleep(TICK * 8).await;
    stop_2.cancel();

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

/// The seed's `SingletonJobService.ExecuteAsync(stoppingToken)`: the
/// election lives until `stopping` is cancelled; the job runs on every tick
/// of each term this worker leads, and not a moment after the term ends.
async fn singleton_job_service(
    election: Arc<dyn LeaderElection>,
    stopping: CancellationToken,
    sink: Arc<JobSink>,
) -> Result<u32, ElectionError> {
    // Cancelling `stopping` stops the election and releases the lease.
    Arc::clone(&election).start_until(stopping.clone()).await?;
    let id = election.candidate_id().to_owned();
    let mut runs = 0;
    loop {
        let guard = tokio::select! {
            () = stopping.cancelled() => break,
            guard = election.wait_for_leadership() => match guard {
                Ok(guard) => guard,
                Err(ElectionError::Stopped) => break,
                Err(other) => return Err(other),
            },
        };
        // Leading: run the job every tick until the term ends.
        loop {
            process_job(&id, guard.fencing_token(), &sink).await;
            runs += 1;
            tokio::select! {
                () = guard.lost() => break,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }
    println!("{} {id} shuts down", stamp());
    // Waits for the stop that the cancellation began (stop() is idempotent).
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
