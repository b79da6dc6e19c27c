//! C8 lifecycle, C10 bad input, C11 concurrency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::{Error, LeaderElectionEvent, LossReason};

use super::support::{unique_resource, Group};
use crate::provider::Provider;

/// C8: `start` twice is a no-op, `stop` is idempotent (also concurrently),
/// after `stop` returns no event is emitted and the stream ends, and every
/// later call reports `Stopped`.
pub async fn c8_lifecycle_start_stop_and_calls_after_stop(p: &dyn Provider) {
    let mut group = Group::new(p, "c8", p.options());
    let only = group.add("only", true).await;
    let election = group.members[only].election.clone();
    election.start().await.expect("second start is a no-op");
    let guard = election.wait_for_leadership().await.expect("leads alone");
    let mut events = election.subscribe();

    let (a, b) = tokio::join!(election.stop(), election.stop());
    a.expect("stop");
    b.expect("concurrent stop");
    election.stop().await.expect("third stop");
    assert!(!election.is_leader());
    assert!(!guard.is_valid());
    assert_eq!(election.current_leader_id(), None);

    let after: Vec<LeaderElectionEvent> =
        tokio::time::timeout(Duration::from_secs(5), events.by_ref().collect())
            .await
            .expect("the event stream ends after stop");
    assert!(
        after.iter().any(|e| matches!(
            e,
            LeaderElectionEvent::LostLeadership {
                reason: LossReason::Stopped,
                ..
            }
        )),
        "{}: no LostLeadership(Stopped) before the stream ended: {after:?}",
        p.name()
    );
    assert!(matches!(election.start().await, Err(Error::Stopped)));
    assert!(matches!(election.resign().await, Err(Error::Stopped)));
    assert!(matches!(
        election.update_health(true, None).await,
        Err(Error::Stopped)
    ));
    assert!(matches!(
        election.candidate_health().await,
        Err(Error::Stopped)
    ));
    assert!(matches!(
        election.wait_for_leadership().await,
        Err(Error::Stopped)
    ));
    assert!(election.subscribe().next().await.is_none());

    // Stopping an election that never started is fine too.
    let idle = group.add("idle", false).await;
    group.members[idle]
        .election
        .stop()
        .await
        .expect("stop before start");
    assert!(matches!(
        group.members[idle].election.start().await,
        Err(Error::Stopped)
    ));
    group.finish().await;
}

/// C8: an election that was stopped leaves nothing running: the lease is
/// released, so another candidate's `candidate_health` no longer lists it and
/// a new candidate leads at once.
pub async fn c8_stopped_election_leaves_no_trace(p: &dyn Provider) {
    let mut group = Group::new(p, "c8-trace", p.options());
    group.add_started(1).await;
    group.wait_for_leader(&[]).await;
    let gone = group.members[0].id().to_owned();
    group.members[0].election.stop().await.expect("stop");
    let next = group.add("next", true).await;
    group.wait_for_leader(&[0]).await;
    let listed = group.members[next]
        .election
        .candidate_health()
        .await
        .expect("candidate_health");
    assert!(
        !listed.iter().any(|c| c.candidate_id == gone),
        "{}: a stopped candidate is still listed: {listed:?}",
        p.name()
    );
    group.finish().await;
}

/// C10: invalid options, resource names, candidate ids and metadata are
/// rejected when the candidate is created, with an error naming the field or
/// the name and the rule.
pub async fn c10_bad_input_is_rejected_with_field_and_rule(p: &dyn Provider) {
    let resource = unique_resource("c10");
    let expect_error =
        |result: Result<crate::provider::Candidate, Error>, mentions: &str| match result {
            Ok(candidate) => panic!(
                "{}: accepted bad input ({mentions}) for {}",
                p.name(),
                candidate.id()
            ),
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains(mentions),
                    "{}: error {message:?} does not mention {mentions:?}",
                    p.name()
                );
                assert!(
                    matches!(
                        error,
                        Error::InvalidOption { .. } | Error::InvalidName { .. }
                    ),
                    "{}: wrong error kind: {error:?}",
                    p.name()
                );
            }
        };
    let base = p.options();

    let mut zero_lease = base.clone();
    zero_lease.lease_duration = Duration::ZERO;
    expect_error(
        p.candidate(&resource, "a", zero_lease).await,
        "lease_duration",
    );

    let mut no_room = base.clone();
    no_room.renew_interval = base.lease_duration / 2;
    expect_error(p.candidate(&resource, "a", no_room).await, "renew_interval");

    let mut bad_score = base.clone();
    bad_score.minimum_health_score = 1.5;
    expect_error(
        p.candidate(&resource, "a", bad_score).await,
        "minimum_health_score",
    );

    let mut nan_score = base.clone();
    nan_score.minimum_health_score = f64::NAN;
    expect_error(
        p.candidate(&resource, "a", nan_score).await,
        "minimum_health_score",
    );

    let mut huge_metadata = base.clone();
    huge_metadata.candidate_metadata = BTreeMap::from([(
        "blob".to_owned(),
        "x".repeat(leader_election_abstractions::limits::MAX_METADATA_TOTAL_BYTES + 1),
    )]);
    expect_error(
        p.candidate(&resource, "a", huge_metadata).await,
        "candidate_metadata",
    );

    expect_error(p.candidate("", "a", base.clone()).await, "resource name");
    expect_error(
        p.candidate("has space", "a", base.clone()).await,
        "resource name",
    );
    expect_error(
        p.candidate(&"r".repeat(300), "a", base.clone()).await,
        "resource name",
    );
    expect_error(
        p.candidate(&resource, "", base.clone()).await,
        "candidate id",
    );
    expect_error(
        p.candidate(&resource, "bad\nid", base.clone()).await,
        "candidate id",
    );

    // Valid input passes, and health updates are checked too.
    let candidate = p
        .candidate(&resource, "a", base.clone())
        .await
        .expect("valid input accepted");
    let error = candidate
        .election
        .update_health_score(2.0, None)
        .await
        .expect_err("score above 1 rejected");
    assert!(error.to_string().contains("health_score"), "{error}");
    candidate.election.stop().await.expect("stop");
}

/// Blocks (in real time, which virtual time cannot skip) until every counter
/// has reached `at_least`; panics if the reader threads are never scheduled.
fn wait_for_reads(p: &dyn Provider, counters: &[Arc<AtomicU64>], at_least: u64) {
    let started = std::time::Instant::now();
    while counters
        .iter()
        .any(|c| c.load(Ordering::Relaxed) < at_least)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{}: reader threads did not run within a minute",
            p.name()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// C11: every handle method may be called from many threads at once while
/// the election changes hands; no thread ever sees the fencing token go
/// backwards, and nothing deadlocks or panics.
pub async fn c11_handles_are_safe_to_share_across_threads(p: &dyn Provider) {
    let mut group = Group::new(p, "c11", p.options());
    group.add_started(2).await;
    let running = Arc::new(AtomicBool::new(true));
    let runtime = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    let mut counters = Vec::new();
    for member in &group.members {
        for _ in 0..2 {
            let election = member.election.clone();
            let running = Arc::clone(&running);
            let reads = Arc::new(AtomicU64::new(0));
            counters.push(Arc::clone(&reads));
            let runtime = runtime.clone();
            threads.push(std::thread::spawn(move || {
                // Enter the runtime so virtual-time clocks agree with the engine's.
                let _entered = runtime.enter();
                // Terms only grow, so the tokens one thread reads never go back.
                let mut highest = 0u64;
                let mut backwards = 0u64;
                while running.load(Ordering::Acquire) {
                    if let Some(token) = election.fencing_token() {
                        if token.get() < highest {
                            backwards += 1;
                        }
                        highest = highest.max(token.get());
                    }
                    let _ = election.is_leader();
                    let _ = election.current_leader_id();
                    let _stream = election.subscribe();
                    reads.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                }
                backwards
            }));
        }
    }
    // Every reader must really run during the handovers, not only before or
    // after them (under load, OS threads can start late).
    wait_for_reads(p, &counters, 1);
    for _ in 0..3 {
        let (leader, _) = group.wait_for_leader(&[]).await;
        let election = group.members[leader].election.clone();
        let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let (resigned, health) =
            tokio::join!(election.resign(), election.update_health(true, None));
        resigned.expect("resign");
        health.expect("update_health");
        group.wait_for_leader(&[leader]).await;
        // Resigns one round trip apart (see c6_events_alternate...): hold-offs
        // ending on one virtual instant would tie.
        tokio::time::sleep(p.round_trip()).await;
        // Each reader reads again after this handover before the next one.
        for (counter, seen) in counters.iter().zip(before) {
            wait_for_reads(p, std::slice::from_ref(counter), seen + 1);
        }
    }
    running.store(false, Ordering::Release);
    let mut backwards = 0;
    for thread in threads {
        backwards += thread.join().expect("reader thread panicked");
    }
    assert_eq!(
        backwards,
        0,
        "{}: a reader thread saw the fencing token go backwards",
        p.name()
    );
    group.finish().await;
}
