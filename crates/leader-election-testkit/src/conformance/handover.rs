//! C4 graceful handover, C5 fencing tokens, C6 events.

use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::{LeaderElectionEvent, LossReason};

use super::support::{became_tokens, timing, EventLog, Group};
use crate::provider::Provider;

/// How a leader gives up in the handover tests.
#[derive(Clone, Copy, Debug)]
enum GiveUp {
    Stop,
    Drop,
    Resign,
    Unhealthy,
}

async fn handover(p: &dyn Provider, how: GiveUp) {
    let options = p.options();
    let mut group = Group::new(p, "c4", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let follower = 1 - leader;
    // The follower must know the leader before it can see the lease freed:
    // a follower that starts after a quick acquisition may not have read it yet.
    let leader_id = group.members[leader].id().to_owned();
    let follower_election = group.members[follower].election.clone();
    group
        .wait_until("the follower to observe the leader", || {
            follower_election.current_leader_id().as_deref() == Some(leader_id.as_str())
        })
        .await;
    let follower_log = group.logs[follower].clone();
    let before = follower_log.events().len();
    let started = tokio::time::Instant::now();
    match how {
        GiveUp::Stop => group.members[leader].election.stop().await.expect("stop"),
        GiveUp::Resign => group.members[leader]
            .election
            .resign()
            .await
            .expect("resign"),
        GiveUp::Unhealthy => group.members[leader]
            .election
            .update_health(false, None)
            .await
            .expect("update_health"),
        GiveUp::Drop => {
            let dropped = group.members.remove(leader);
            drop(dropped);
        }
    }
    let (next, _) = match how {
        GiveUp::Drop => group.wait_for_leader(&[]).await,
        _ => group.wait_for_leader(&[leader]).await,
    };
    let took = started.elapsed();
    // A released lease is seen free ("none") before the follower takes it;
    // an expired one would go straight from the old holder to the new.
    let saw_release = follower_log.events()[before..].iter().any(|e| {
        matches!(
            e,
            LeaderElectionEvent::LeaderChanged {
                new_leader_id: None,
                ..
            }
        )
    });
    assert!(
        saw_release,
        "{}: after {how:?} the follower never saw the lease free: it was not released",
        p.name()
    );
    timing(
        p,
        &format!("graceful handover after {how:?}"),
        took,
        // Watch-driven: far below the lease duration an expiry would take.
        options.retry_interval / 2 + p.round_trip(),
    );
    let _ = next;
    group.finish().await;
}

/// C4: `stop()` releases the lease and a waiting candidate leads within
/// about one round trip, not after the lease expires.
pub async fn c4_handover_on_stop(p: &dyn Provider) {
    handover(p, GiveUp::Stop).await;
}

/// C4: dropping the last handle of a leading election releases its lease.
pub async fn c4_handover_on_drop(p: &dyn Provider) {
    handover(p, GiveUp::Drop).await;
}

/// C4: `resign()` releases the lease and lets another candidate lead.
pub async fn c4_handover_on_resign(p: &dyn Provider) {
    handover(p, GiveUp::Resign).await;
}

/// C4: an unhealthy leader's step-down releases the lease.
pub async fn c4_handover_on_unhealthy_step_down(p: &dyn Provider) {
    handover(p, GiveUp::Unhealthy).await;
}

/// C5: every acquisition, by any candidate, through stops, crashes and
/// resignations, has a larger fencing token than all before it; the token is
/// the same in the `BecameLeader` event, the guard and `fencing_token()`.
pub async fn c5_fencing_tokens_strictly_increase(p: &dyn Provider) {
    let mut group = Group::new(p, "c5", p.options());
    group.add_started(3).await;
    let mut seen = Vec::new();
    let mut gone = Vec::new();
    for round in 0..5 {
        let (leader, _) = group.wait_for_leader(&gone).await;
        let guard = group.members[leader]
            .election
            .wait_for_leadership()
            .await
            .expect("guard");
        assert_eq!(
            group.members[leader].election.fencing_token(),
            Some(guard.fencing_token())
        );
        seen.push(guard.fencing_token().get());
        match round % 3 {
            0 => group.members[leader].election.stop().await.expect("stop"),
            1 => group.members[leader].control.crash(),
            _ => group.members[leader]
                .election
                .resign()
                .await
                .expect("resign"),
        }
        if round % 3 != 2 {
            gone.push(leader);
            group.add(&format!("late{round}"), true).await;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "{}: fencing tokens did not strictly increase: {seen:?}",
        p.name()
    );
    let mut from_events: Vec<u64> = group.logs.iter().flat_map(became_tokens).collect();
    from_events.sort_unstable();
    let distinct = from_events.len();
    from_events.dedup();
    assert_eq!(distinct, from_events.len(), "a token was issued twice");
    for token in &seen {
        assert!(
            from_events.contains(token),
            "guard token {token} had no BecameLeader event"
        );
    }
    group.finish().await;
}

/// C6: per candidate, every `BecameLeader` is followed by exactly one
/// `LostLeadership` for the same token before the next `BecameLeader`, and
/// every candidate sees `LeaderChanged` for each change it observes.
pub async fn c6_events_alternate_and_every_candidate_sees_changes(p: &dyn Provider) {
    let mut group = Group::new(p, "c6", p.options());
    group.add_started(3).await;
    let mut leaders = Vec::new();
    for _ in 0..4 {
        let (leader, _) = group.wait_for_leader(&[]).await;
        leaders.push(group.members[leader].id().to_owned());
        group.members[leader]
            .election
            .resign()
            .await
            .expect("resign");
        // Wait for someone else before the next round.
        group.wait_for_leader(&[leader]).await;
        // Resigns one round trip apart, as they would be in real time: in
        // virtual time they could all fall on one instant, and candidates
        // whose hold-offs end on the same instant tie for the next term.
        tokio::time::sleep(p.round_trip()).await;
    }
    let (last, _) = group.wait_for_leader(&[]).await;
    let last_id = group.members[last].id().to_owned();
    for member in &group.members {
        let id = member.id().to_owned();
        group
            .wait_until("every candidate to observe the last leader", || {
                member.election.current_leader_id().as_deref() == Some(last_id.as_str())
            })
            .await;
        let _ = id;
    }
    let logs: Vec<EventLog> = group.logs.clone();
    group.finish().await;
    for (index, log) in logs.iter().enumerate() {
        let mut open: Option<u64> = None;
        let mut observed: Option<String> = None;
        let mut saw_last = false;
        for event in log.events() {
            match event {
                LeaderElectionEvent::BecameLeader { fencing_token, .. } => {
                    assert!(
                        open.is_none(),
                        "c{index}: BecameLeader while already leading"
                    );
                    open = Some(fencing_token.get());
                }
                LeaderElectionEvent::LostLeadership { fencing_token, .. } => {
                    assert_eq!(
                        open.take(),
                        Some(fencing_token.get()),
                        "c{index}: LostLeadership without a matching BecameLeader"
                    );
                }
                LeaderElectionEvent::LeaderChanged {
                    old_leader_id,
                    new_leader_id,
                    ..
                } => {
                    assert_eq!(
                        old_leader_id, observed,
                        "c{index}: LeaderChanged out of order"
                    );
                    assert_ne!(
                        old_leader_id, new_leader_id,
                        "c{index}: LeaderChanged without a change"
                    );
                    saw_last |= new_leader_id.as_deref() == Some(last_id.as_str());
                    observed = new_leader_id;
                }
                LeaderElectionEvent::Lagged { missed } => panic!("c{index}: lagged by {missed}"),
                _ => {}
            }
        }
        assert!(
            open.is_none(),
            "c{index}: a term without LostLeadership after stop"
        );
        assert!(saw_last, "c{index}: never saw LeaderChanged to {last_id}");
    }
    assert!(leaders.len() >= 4);
}

/// C6: a subscriber that never reads does not slow the election down; when
/// it finally reads, it gets a `Lagged` notice, then later events in order.
pub async fn c6_slow_subscriber_gets_lag_notice_and_never_blocks(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c6-slow", options.clone());
    group.add_started(2).await;
    let mut stalled = group.members[0].election.subscribe();
    let mut terms = 0;
    // Each health flip forces a handover; each handover is several events.
    while group.logs[0].events().len() < 400 {
        let (leader, _) = group.wait_for_leader(&[]).await;
        let election = group.members[leader].election.clone();
        election
            .update_health(false, None)
            .await
            .expect("unhealthy");
        group.wait_for_leader(&[leader]).await;
        election.update_health(true, None).await.expect("healthy");
        terms += 1;
        assert!(terms < 1000, "{}: events are not being produced", p.name());
    }
    let first = tokio::time::timeout(Duration::from_secs(5), stalled.next())
        .await
        .expect("stalled subscriber has events");
    assert!(
        matches!(first, Some(LeaderElectionEvent::Lagged { missed }) if missed > 0),
        "{}: expected a lag notice first, got {first:?}",
        p.name()
    );
    group.finish().await;
    let rest: Vec<_> = stalled.collect().await;
    assert!(
        rest.iter().any(|e| matches!(
            e,
            LeaderElectionEvent::LostLeadership {
                reason: LossReason::Stopped,
                ..
            }
        ) || matches!(e, LeaderElectionEvent::LeaderChanged { .. })),
        "{}: no events after the lag notice",
        p.name()
    );
}
