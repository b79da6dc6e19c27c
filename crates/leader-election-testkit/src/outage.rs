//! A backend outage longer than the lease, checked end to end: the leader
//! steps down at its deadline (C2), nobody leads while the backend is gone,
//! exactly one candidate leads afterwards, and the recorder finds no overlap
//! (C1). Each provider supplies what "outage" means for its backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::LeaderElection;
use tokio::time::Instant;

use crate::recorder::LeadershipRecorder;

/// Starts and ends an outage of the backend for every candidate at once
/// (kill and restart a server, freeze and resume it, cut every connection).
#[async_trait]
pub trait Outage: Send {
    /// Makes the backend unreachable.
    async fn begin(&mut self);
    /// Makes it reachable again.
    async fn end(&mut self);
}

/// Runs `outage` against started candidates and checks mutual exclusion and
/// the local deadline through it; prints how long recovery took. Panics
/// naming `provider` on any violation.
pub async fn assert_safe_through_outage(
    provider: &str,
    elections: &[Arc<dyn LeaderElection>],
    lease_duration: Duration,
    outage: &mut dyn Outage,
) {
    let recorder = LeadershipRecorder::start(Duration::from_millis(2));
    for election in elections {
        recorder.watch(election);
    }
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    let leader = loop {
        if let Some(leader) = elections.iter().find(|e| e.is_leader()) {
            break Arc::clone(leader);
        }
        assert!(
            started.elapsed() < limit,
            "{provider}: nobody led before the outage"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Let a renewal land, so the deadline is a renewal's.
    tokio::time::sleep(lease_duration / 2).await;

    outage.begin().await;
    let began = Instant::now();
    // The last renewal started before the outage: one lease later it has
    // certainly stepped down.
    tokio::time::sleep(lease_duration + Duration::from_millis(100)).await;
    assert!(
        !leader.is_leader(),
        "{provider}: still leading {:?} into the outage",
        began.elapsed()
    );
    tokio::time::sleep(lease_duration).await;
    assert!(
        elections.iter().all(|e| !e.is_leader()),
        "{provider}: a leader while the backend is unreachable"
    );
    outage.end().await;

    let ended = Instant::now();
    while elections.iter().filter(|e| e.is_leader()).count() != 1 {
        assert!(
            ended.elapsed() < limit,
            "{provider}: no single leader after the outage"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{provider}: one leader again {:?} after the outage ended",
        ended.elapsed()
    );
    tokio::time::sleep(lease_duration * 2).await;
    for election in elections {
        let _ = election.stop().await;
    }
    let report = recorder.finish();
    report.assert_safe();
    assert!(
        report.intervals.len() >= 2,
        "{provider}: expected a term before and after the outage, saw {:?}",
        report.leaders()
    );
}
