//! Quick start: three in-memory candidates contend for one resource.
//!
//! 1. They elect a leader.
//! 2. The leader crashes (`abort_without_release`: no release, no last event,
//!    as if the process died); another candidate takes over once the lease
//!    has expired plus the grace period.
//! 3. The new leader stops gracefully (`stop()` releases the lease); the last
//!    candidate takes over at once.
//!
//! Every event is printed with the time since start and its fencing token.
//! At the end the program checks that the fencing tokens strictly increased
//! and exits non-zero if they did not. Runs in about four seconds:
//!
//! ```text
//! cargo run -p examples --example quickstart
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use examples::{demo_options, describe, elapsed, init_tracing, stamp};
use futures_util::StreamExt;
use leader_election_abstractions::{
    FencingToken, LeaderElection, LeaderElectionEvent, StoreFactory,
};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
use tokio::sync::mpsc;

const RESOURCE: &str = "quickstart";
const CANDIDATES: [&str; 3] = ["alpha", "bravo", "charlie"];
/// Give up if a step takes longer than this (it takes about 2.5 s at most).
const STEP_LIMIT: Duration = Duration::from_secs(15);

/// An event as the main task sees it: when, whose, what.
type Seen = (Duration, String, LeaderElectionEvent);

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error>> {
    init_tracing();
    elapsed(); // starts the clock
    let options = demo_options()?;
    println!(
        "{} three candidates for {RESOURCE:?}: lease {:?}, renew {:?}, retry {:?}, grace {:?}",
        stamp(),
        options.lease_duration,
        options.renew_interval,
        options.retry_interval,
        options.grace_period
    );

    // One shared store: every election made from it contends for the same lease.
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options.clone())?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    let mut elections = Vec::new();
    for id in CANDIDATES {
        // `election` returns the concrete `Election`, which can simulate a crash;
        // `create_election` would return an `Arc<dyn LeaderElection>`.
        let election = factory.election(RESOURCE).candidate_id(id).build()?;
        let mut events = election.subscribe();
        let seen_tx = seen_tx.clone();
        tokio::spawn(async move {
            // The stream ends when the election stops (or crashes).
            while let Some(event) = events.next().await {
                println!("{} {id:<8} {}", stamp(), describe(&event));
                let _ = seen_tx.send((elapsed(), id.to_owned(), event));
            }
        });
        elections.push(election);
    }
    drop(seen_tx);
    for election in &elections {
        election.start().await?;
    }

    let mut tokens = Vec::new();

    // 1. Election.
    let (_, first, token) = next_leader(&mut seen, &mut tokens).await?;
    println!("{} ==> {first} leads with fencing token {token}", stamp());

    // Let it renew a few times, then crash it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let crashed = find(&elections, &first)?;
    let crashed_at = elapsed();
    println!(
        "{} ==> crashing {first}: no release, no LostLeadership event",
        stamp()
    );
    crashed.abort_without_release();

    // 2. Crash failover.
    let (took_over_at, second, token) = next_leader(&mut seen, &mut tokens).await?;
    let failover = took_over_at.saturating_sub(crashed_at);
    println!(
        "{} ==> {second} took over with fencing token {token}",
        stamp()
    );

    // 3. Graceful handover.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopping = find(&elections, &second)?;
    let stop_at = elapsed();
    println!("{} ==> stopping {second} gracefully", stamp());
    stopping.stop().await?;
    let (handed_over_at, third, token) = next_leader(&mut seen, &mut tokens).await?;
    let handover = handed_over_at.saturating_sub(stop_at);
    println!(
        "{} ==> {third} took over with fencing token {token}",
        stamp()
    );

    // Stop everyone (stop is idempotent, also on the crashed one) and wait
    // until every event stream has ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for election in &elections {
        election.stop().await?;
    }
    while let Some((_, _, event)) = seen.recv().await {
        if let LeaderElectionEvent::BecameLeader { fencing_token, .. } = event {
            tokens.push(fencing_token);
        }
    }

    println!();
    println!(
        "crash failover:    {:>6.3}s  (bound: lease {:?} + grace {:?} after the last renewal)",
        failover.as_secs_f64(),
        options.lease_duration,
        options.grace_period
    );
    println!(
        "graceful handover: {:>6.3}s  (the lease is released, the next candidate is woken by its watch)",
        handover.as_secs_f64()
    );
    let listed: Vec<String> = tokens.iter().map(ToString::to_string).collect();
    let increasing = tokens.len() == CANDIDATES.len() && tokens.windows(2).all(|w| w[0] < w[1]);
    if increasing {
        println!(
            "fencing tokens:    {}  strictly increasing",
            listed.join(" < ")
        );
        println!("total run time:    {:>6.3}s", elapsed().as_secs_f64());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "FAILED: expected {} strictly increasing fencing tokens, got [{}]",
            CANDIDATES.len(),
            listed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Reads events until some candidate becomes leader; records its token.
async fn next_leader(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    tokens: &mut Vec<FencingToken>,
) -> Result<(Duration, String, FencingToken), Box<dyn Error>> {
    let wait = async {
        while let Some((at, id, event)) = seen.recv().await {
            if let LeaderElectionEvent::BecameLeader { fencing_token, .. } = event {
                tokens.push(fencing_token);
                return Some((at, id, fencing_token));
            }
        }
        None
    };
    match tokio::time::timeout(STEP_LIMIT, wait).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err("every event stream ended before a leader was elected".into()),
        Err(_) => Err(format!("no leader within {STEP_LIMIT:?}").into()),
    }
}

fn find<'a, T: LeaderElection>(elections: &'a [T], id: &str) -> Result<&'a T, Box<dyn Error>> {
    elections
        .iter()
        .find(|e| e.candidate_id() == id)
        .ok_or_else(|| format!("no candidate {id}").into())
}
