//! C1 mutual exclusion, C2 local deadline, C3 crash failover, C9 faults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{LeaderElectionEvent, LossReason};
use tokio::time::Instant;

use super::support::{timing, unique_resource, Group};
use crate::provider::{NetworkFault, Provider};

/// C1: through graceful stops, crashes and a network partition of the
/// leader, no two candidates ever lead at once and every new term carries a
/// larger fencing token.
pub async fn c1_mutual_exclusion_under_churn(p: &dyn Provider) {
    let mut group = Group::new(p, "c1", p.options());
    group.add_started(3).await;
    let (first, _) = group.wait_for_leader(&[]).await;

    group.members[first].election.stop().await.expect("stop");
    let (second, _) = group.wait_for_leader(&[first]).await;

    group.members[second].control.crash();
    group.add("c3", true).await;
    let (third, _) = group.wait_for_leader(&[first, second]).await;

    group.members[third]
        .control
        .set_network_fault(Some(NetworkFault::BlackHole));
    let (fourth, _) = group.wait_for_leader(&[first, second, third]).await;
    group.members[third].control.set_network_fault(None);

    // Let the healed former leader come back as a follower for a while.
    let settle = p.options().lease_duration * 2;
    tokio::time::sleep(settle).await;
    assert!(
        group.members[fourth].is_leader(),
        "{}: the leader changed without cause after the partition healed",
        p.name()
    );
    let report = group.finish().await;
    assert!(
        report.intervals.len() >= 4,
        "expected at least four terms, saw {:?}",
        report.intervals
    );
}

/// C1 for twins: two candidates configured with one candidate id (two
/// processes given the same id, or a replacement started while its
/// predecessor still runs) never both lead. A lease held under one's id by
/// the other is someone else's lease: it is waited out, never taken back.
pub async fn c1_twins_with_one_id_never_both_lead(p: &dyn Provider) {
    let mut group = Group::new(p, "c1-twins", p.options());
    group.add("twin", true).await;
    let (first, _) = group.wait_for_leader(&[]).await;
    let second = group.add("twin", true).await;
    // Several renewals and retries of both, while the recorder watches.
    tokio::time::sleep(p.options().lease_duration * 2).await;
    assert!(
        group.members[first].is_leader() && !group.members[second].is_leader(),
        "{}: a twin with the leader's id took its lease",
        p.name()
    );
    // A graceful stop hands the lease over to the twin, as to anyone.
    group.members[first].election.stop().await.expect("stop");
    group.wait_for_leader(&[first]).await;
    // The recording (checked for overlaps by `finish`) holds the first
    // twin's term and the second's.
    let report = group.finish().await;
    assert!(
        report.intervals.len() >= 2,
        "{}: expected the first twin's term and the second's, saw {:?}",
        p.name(),
        report.intervals
    );
}

/// C2: a leader cut off from its backend (packets dropped) stops reporting
/// leadership no later than its last successful renewal plus the lease
/// duration, and its leadership guard fires by then too.
pub async fn c2_leader_steps_down_at_local_deadline_when_cut_off(p: &dyn Provider) {
    let mut group = Group::new(p, "c2", p.options());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let guard = group.members[leader]
        .election
        .wait_for_leadership()
        .await
        .expect("leader has a guard");
    // Let a renewal pass so the deadline is not simply the acquisition's.
    tokio::time::sleep(p.options().renew_interval + p.options().renew_interval / 2).await;

    let cut = Instant::now();
    group.members[leader]
        .control
        .set_network_fault(Some(NetworkFault::BlackHole));
    let guard_fired = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard.lost().await;
            Instant::now()
        })
    };
    let waited = group
        .wait_until("the cut-off leader to step down", || {
            !group.members[leader].is_leader()
        })
        .await;
    // The last successful renewal started before the cut, so the deadline
    // is at most one lease after it.
    timing(
        p,
        "cut-off leader stepped down after",
        waited,
        p.options().lease_duration,
    );
    let fired_at = guard_fired.await.expect("guard task");
    timing(
        p,
        "leadership guard fired after",
        fired_at.saturating_duration_since(cut),
        p.options().lease_duration,
    );
    assert!(!guard.is_valid());
    let (other, _) = group.wait_for_leader(&[leader]).await;
    assert_ne!(other, leader);
    group.members[leader].control.set_network_fault(None);
    group.finish().await;
}

/// C2: `is_leader()` turns false at the deadline even when the election's
/// runtime is completely starved (a blocked executor, a stopped process):
/// the answer is computed at read time, not by a background task.
///
/// Runs in real time on a runtime of its own, whatever the provider's clock.
pub async fn c2_is_leader_false_at_deadline_even_if_runtime_starved(p: &dyn Provider) {
    let options = p.options();
    let lease = options.lease_duration;
    let resource = unique_resource("c2-starved");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let release_runtime = Arc::new(AtomicBool::new(false));
    let release = Arc::clone(&release_runtime);
    std::thread::scope(|scope| {
        let starved = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let candidate = runtime.block_on(async {
                let candidate = p
                    .candidate(&resource, "starved", options.clone())
                    .await
                    .expect("candidate");
                candidate.election.start().await.expect("start");
                candidate
                    .election
                    .wait_for_leadership()
                    .await
                    .expect("leadership");
                candidate
            });
            ready_tx
                .send(candidate.election.clone())
                .expect("report readiness");
            // Starve the runtime: nothing on it runs while this thread sleeps.
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            runtime.block_on(async {
                let _ = candidate.election.stop().await;
            });
        });
        // Read the clock from a thread outside every runtime, so `is_leader`
        // compares against real time like the starved runtime's clock.
        let checker = scope.spawn(move || {
            let election = ready_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the starved candidate never led");
            let leading_seen = std::time::Instant::now();
            // The last renewal started before `leading_seen`, so one lease
            // after it the deadline has certainly passed.
            std::thread::sleep(lease + Duration::from_millis(50));
            let verdict = (election.is_leader(), election.fencing_token());
            release_runtime.store(true, Ordering::Release);
            (verdict, leading_seen.elapsed())
        });
        let ((still_leading, token), checked_after) = checker.join().expect("checker thread");
        starved.join().expect("starved thread");
        println!(
            "{}: starved leader checked {checked_after:?} after it was seen leading",
            p.name()
        );
        assert!(
            !still_leading && token.is_none(),
            "{}: is_leader() stayed true past the deadline while the runtime was starved",
            p.name()
        );
    });
}

/// C3: when the leader dies without releasing, a live candidate leads within
/// lease duration + grace period + one round trip.
pub async fn c3_crash_failover_within_lease_and_grace(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c3", options.clone());
    group.add_started(3).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    // Wait for a renewal so followers have observed a fresh lease.
    tokio::time::sleep(options.renew_interval + options.renew_interval / 2).await;
    group.members[leader].control.crash();
    let (_, failover) = group.wait_for_leader(&[leader]).await;
    let bound = options.lease_duration + options.grace_period + p.round_trip();
    timing(p, "crash failover", failover, bound);
    group.finish().await;
}

/// C9: a leader keeps leading through a backend outage shorter than its
/// remaining lease (errors are retried), with no `LostLeadership`.
pub async fn c9_leader_survives_short_outage(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c9-short", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    // Right after a renewal, an outage of one renew interval leaves at
    // least one renew interval of lease to spare (2 × renew < lease).
    let guard = group.members[leader]
        .election
        .wait_for_leadership()
        .await
        .expect("guard");
    tokio::time::sleep(options.renew_interval / 10).await;
    group.members[leader]
        .control
        .set_network_fault(Some(NetworkFault::Unavailable));
    tokio::time::sleep(options.renew_interval).await;
    group.members[leader].control.set_network_fault(None);
    tokio::time::sleep(options.lease_duration).await;
    assert!(
        group.members[leader].is_leader() && guard.is_valid(),
        "{}: a short outage cost the leader its lease",
        p.name()
    );
    let lost = group.logs[leader]
        .events()
        .into_iter()
        .any(|e| matches!(e, LeaderElectionEvent::LostLeadership { .. }));
    assert!(!lost, "{}: LostLeadership during a short outage", p.name());
    group.finish().await;
}

/// C9: during a long outage (fast errors) the leader steps down at its
/// deadline with reason `DeadlineExpired`, another candidate takes over, and
/// the former leader follows again after the outage.
pub async fn c9_leader_steps_down_during_long_outage_and_recovers(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c9-long", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    group.members[leader]
        .control
        .set_network_fault(Some(NetworkFault::Unavailable));
    let (other, _) = group.wait_for_leader(&[leader]).await;
    let reasons = super::support::loss_reasons(&group.logs[leader]);
    assert_eq!(
        reasons,
        vec![LossReason::DeadlineExpired],
        "{}: unexpected loss reasons",
        p.name()
    );
    group.members[leader].control.set_network_fault(None);
    let former = leader;
    group
        .wait_until("the former leader to observe the new one", || {
            group.members[former]
                .election
                .current_leader_id()
                .as_deref()
                == Some(group.members[other].id())
        })
        .await;
    assert!(group.members[other].is_leader());
    group.finish().await;
}

/// C9: a follower whose backend calls fail keeps retrying and takes over
/// once the backend is reachable again.
pub async fn c9_follower_retries_until_backend_returns(p: &dyn Provider) {
    let options = p.options();
    let mut group = Group::new(p, "c9-follower", options.clone());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let follower = 1 - leader;
    group.members[follower]
        .control
        .set_network_fault(Some(NetworkFault::Unavailable));
    group.members[leader].election.stop().await.expect("stop");
    tokio::time::sleep(options.lease_duration).await;
    assert!(!group.members[follower].is_leader());
    group.members[follower].control.set_network_fault(None);
    let (next, _) = group.wait_for_leader(&[leader]).await;
    assert_eq!(next, follower);
    group.finish().await;
}
