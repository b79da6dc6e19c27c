//! Runnable examples for leader-election-rs; see `examples/` and run one with
//! `cargo run -p examples --example <name>`.
//!
//! Every example uses the in-memory provider with short leases
//! ([`demo_options`]) so it finishes in a few seconds of real time. This
//! library holds the few helpers they share: the options, a clock relative to
//! the start of the program, and a one-line description of an event.

pub mod gated_controller;
pub mod healthz;
pub mod prometheus;

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use leader_election_abstractions::{LeaderElectionEvent, LeaderElectionOptions, Result};

/// Lease 2 s, renew every 500 ms, retry every 300 ms, grace 500 ms: production
/// defaults are 15 s / 5 s / 2 s / 5 s, far too slow for a demo.
pub fn demo_options() -> Result<LeaderElectionOptions> {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(300))
        .grace_period(Duration::from_millis(500))
        .build()
}

/// Installs a log subscriber: the engine's warnings by default, more with
/// `RUST_LOG` (for example `RUST_LOG=leader_election_abstractions=info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (or another subscriber) is harmless for a demo.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn program_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Time since the first call to any clock helper of this crate (call it once
/// at the top of `main`).
pub fn elapsed() -> Duration {
    program_start().elapsed()
}

/// `[  1.234s]`: a timestamp relative to the start of the program.
pub fn stamp() -> String {
    format!("[{:>7.3}s]", elapsed().as_secs_f64())
}

/// One line describing an event, without its wall-clock timestamp.
pub fn describe(event: &LeaderElectionEvent) -> String {
    match event {
        LeaderElectionEvent::BecameLeader { fencing_token, .. } => {
            format!("BecameLeader      fencing token {fencing_token}")
        }
        LeaderElectionEvent::LostLeadership {
            fencing_token,
            reason,
            ..
        } => format!("LostLeadership    fencing token {fencing_token} ({reason})"),
        LeaderElectionEvent::LeaderChanged {
            old_leader_id,
            new_leader_id,
            ..
        } => format!(
            "LeaderChanged     {} -> {}",
            old_leader_id.as_deref().unwrap_or("none"),
            new_leader_id.as_deref().unwrap_or("none")
        ),
        LeaderElectionEvent::Lagged { missed } => {
            format!("Lagged            missed {missed} events; re-read is_leader()")
        }
        // `LeaderElectionEvent` is non-exhaustive; print anything newer as is.
        other => format!("{other:?}"),
    }
}

/// The singleton-job demo the backend examples share: two started workers,
/// eight rounds of 500 ms in which the leader runs the job with its fencing
/// token; after round 3 the leader stops (releasing the lease) and the time
/// until the other takes over is printed. Stops both at the end.
pub async fn singleton_rounds(
    workers: [std::sync::Arc<dyn leader_election_abstractions::LeaderElection>; 2],
) -> Result<()> {
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for worker in &workers {
            if let Some(token) = worker.fencing_token() {
                println!(
                    "{} {} runs the job (round {round}, fencing token {token})",
                    stamp(),
                    worker.candidate_id()
                );
            }
        }
        if round == 3 {
            if let Some(leader) = workers.iter().position(|w| w.is_leader()) {
                let next = &workers[1 - leader];
                println!(
                    "{} {} stops; it releases the lease",
                    stamp(),
                    workers[leader].candidate_id()
                );
                let started = Instant::now();
                workers[leader].stop().await?;
                let guard = next.wait_for_leadership().await?;
                println!(
                    "{} {} took over {:?} after the release (fencing token {})",
                    stamp(),
                    next.candidate_id(),
                    started.elapsed(),
                    guard.fencing_token()
                );
            }
        }
    }
    for worker in &workers {
        worker.stop().await?;
    }
    Ok(())
}

/// The repository README's Rust blocks, compiled and run as doc tests of this
/// crate (it depends on every provider the README uses).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
