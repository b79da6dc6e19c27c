//! C7 health: unhealthy candidates never acquire, unhealthy leaders step
//! down, and every candidate can list every live candidate's health.

use std::collections::BTreeMap;

use leader_election_abstractions::LossReason;

use super::support::{timing, Group};
use crate::provider::Provider;

/// C7: a candidate that reports itself unhealthy never acquires, even when
/// the lease is free for longer than a lease duration; once healthy it does.
pub async fn c7_unhealthy_candidate_never_acquires(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c7-never", options.clone());
    let sick = group.add("sick", false).await;
    group.members[sick]
        .election
        .update_health(false, None)
        .await
        .expect("update_health");
    group.members[sick].election.start().await.expect("start");
    let healthy = group.add("healthy", true).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    assert_eq!(
        leader,
        healthy,
        "{}: the unhealthy candidate acquired",
        p.name()
    );
    group.members[healthy].election.stop().await.expect("stop");
    tokio::time::sleep((options.lease_duration + options.grace_period) * 2).await;
    assert!(
        !group.members[sick].is_leader(),
        "{}: an unhealthy candidate acquired a free lease",
        p.name()
    );
    group.members[sick]
        .election
        .update_health(true, None)
        .await
        .expect("update_health");
    let (leader, _) = group.wait_for_leader(&[healthy]).await;
    assert_eq!(leader, sick);
    group.finish().await;
}

/// C7: a leader whose score drops below `minimum_health_score` steps down at
/// once with reason `Unhealthy`, and a healthy candidate takes over.
pub async fn c7_leader_below_minimum_score_steps_down(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c7-score", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let below = (options.minimum_health_score - 0.05).max(0.0);
    let started = tokio::time::Instant::now();
    group.members[leader]
        .election
        .update_health_score(below, None)
        .await
        .expect("update_health_score");
    group
        .wait_until("the unhealthy leader to step down", || {
            !group.members[leader].is_leader()
        })
        .await;
    timing(p, "unhealthy step-down", started.elapsed(), p.round_trip());
    group.wait_for_leader(&[leader]).await;
    let reasons = super::support::loss_reasons(&group.logs[leader]);
    assert_eq!(reasons, vec![LossReason::Unhealthy]);
    group.finish().await;
}

/// C7: with `step_down_when_unhealthy` off, an unhealthy leader keeps leading.
pub async fn c7_leader_keeps_lease_when_step_down_disabled(p: &dyn Provider) {
    let mut options = p.options();
    options.step_down_when_unhealthy = false;
    let mut group = Group::new(p, "c7-keep", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    group.members[leader]
        .election
        .update_health(false, None)
        .await
        .expect("update_health");
    tokio::time::sleep(options.lease_duration * 2).await;
    assert!(group.members[leader].is_leader());
    group.finish().await;
}

/// C7: every candidate lists every live candidate — id, health, score,
/// metadata and the leader flag on exactly the leader — and a crashed
/// candidate vanishes within lease duration + grace period.
pub async fn c7_candidate_health_lists_live_candidates_and_drops_dead_ones(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c7-list", options.clone());
    group.add_started(3).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let follower = (leader + 1) % 3;
    let metadata = BTreeMap::from([("zone".to_owned(), "b".to_owned())]);
    group.members[follower]
        .election
        .update_health_score(0.5, Some(metadata.clone()))
        .await
        .expect("update_health_score");
    let leader_id = group.members[leader].id().to_owned();
    let follower_id = group.members[follower].id().to_owned();
    for asking in 0..3 {
        let election = group.members[asking].election.clone();
        let mut attempt = 0;
        // Publishing is asynchronous; the list converges within a round trip or two.
        let listed = loop {
            let listed = election.candidate_health().await.expect("candidate_health");
            let fresh = listed
                .iter()
                .any(|c| c.candidate_id == follower_id && c.metadata == metadata);
            let knows_leader = election.current_leader_id().as_deref() == Some(leader_id.as_str());
            if (listed.len() == 3 && fresh && knows_leader) || attempt > 200 {
                break listed;
            }
            attempt += 1;
            tokio::time::sleep(super::support::step(&options) * 5).await;
        };
        assert_eq!(listed.len(), 3, "{}: candidate list {listed:?}", p.name());
        for entry in &listed {
            assert_eq!(
                entry.is_leader,
                entry.candidate_id == leader_id,
                "{entry:?}"
            );
            if entry.candidate_id == follower_id {
                assert!(!entry.is_healthy && (entry.health_score - 0.5).abs() < 1e-9);
                assert_eq!(entry.metadata, metadata);
            } else {
                assert!(entry.is_healthy, "{entry:?}");
            }
        }
    }
    let crashed = (leader + 2) % 3;
    let crashed_id = group.members[crashed].id().to_owned();
    group.members[crashed].control.crash();
    let asking = group.members[leader].election.clone();
    let started = tokio::time::Instant::now();
    loop {
        let listed = asking.candidate_health().await.expect("candidate_health");
        if !listed.iter().any(|c| c.candidate_id == crashed_id) {
            break;
        }
        assert!(
            started.elapsed() < super::support::liveness_limit(&options),
            "{}: a crashed candidate never left the list",
            p.name()
        );
        tokio::time::sleep(super::support::step(&options) * 5).await;
    }
    timing(
        p,
        "crashed candidate left the health list after",
        started.elapsed(),
        options.lease_duration + options.grace_period + p.round_trip(),
    );
    group.finish().await;
}
