//! C2 and C8 through the level-triggered view (`watch_leadership`) and the
//! probe check (`healthz`).

use std::time::Duration;

use leader_election_abstractions::{LeaderElection, LeadershipState};
use tokio::time::Instant;

use super::support::{timing, Group};
use crate::provider::{NetworkFault, Provider};

/// The state `election`'s view shows now.
fn shown(election: &dyn LeaderElection) -> LeadershipState {
    election.watch_leadership().borrow().clone()
}

/// C2, C8: `watch_leadership()` agrees with `is_leader()` on a real backend.
/// The leader's view shows its term's token and the follower's names it;
/// a cut-off leader's view leaves `Leading` no later than `is_leader()` turns
/// false (when the view changes, `is_leader()` is already false; the lag
/// behind the first poll that saw `is_leader()` false is asserted in virtual
/// time and printed in real time); the view leaves `Leading` before
/// `resign()` returns and shows `Stopped` when `stop()` returns; `healthz`
/// (with a tolerance of one lease) stays healthy throughout: nothing failed,
/// nothing is overdue.
pub async fn c2_leadership_view_agrees_with_is_leader(p: &dyn Provider) {
    let mut group = Group::new(p, "c2-view", p.options());
    group.add_started(2).await;
    let (leader, _) = group.wait_for_leader(&[]).await;
    let follower = 1 - leader;
    let lead = group.members[leader].election.clone();
    let follow = group.members[follower].election.clone();
    let token = lead.fencing_token().expect("the leader has a token");
    group
        .wait_until("the leader's view to show its term", || {
            shown(lead.as_ref())
                == LeadershipState::Leading {
                    fencing_token: token,
                }
        })
        .await;
    let leader_id = lead.candidate_id().to_owned();
    group
        .wait_until("the follower's view to name the leader", || {
            shown(follow.as_ref())
                == LeadershipState::Following {
                    leader_id: leader_id.clone(),
                }
        })
        .await;
    // A tolerance, as a probe would give: a leader whose deadline has just
    // passed may be a moment from its engine's step-down.
    let tolerance = p.options().lease_duration;
    let healthy = |who: &dyn LeaderElection| {
        who.healthz(tolerance)
            .unwrap_or_else(|e| panic!("{}: {} unhealthy: {e}", p.name(), who.candidate_id()))
    };
    healthy(lead.as_ref());
    healthy(follow.as_ref());

    // Cut the leader off: its view must leave Leading by its deadline.
    let flipped = {
        let lead = lead.clone();
        let mut view = lead.watch_leadership();
        tokio::spawn(async move {
            let _ = view.wait_for(|s| !s.is_leading()).await;
            (Instant::now(), lead.is_leader())
        })
    };
    group.members[leader]
        .control
        .set_network_fault(Some(NetworkFault::BlackHole));
    group
        .wait_until("the cut-off leader to step down", || !lead.is_leader())
        .await;
    let first_seen_false = Instant::now();
    let (flipped_at, leading_then) = flipped.await.expect("view task");
    assert!(
        !leading_then,
        "{}: the view left Leading while is_leader() was still true",
        p.name()
    );
    timing(
        p,
        "view left Leading after the first poll that saw is_leader() false",
        flipped_at.saturating_duration_since(first_seen_false),
        Duration::ZERO,
    );
    assert!(!shown(lead.as_ref()).is_leading());
    healthy(lead.as_ref());

    // The follower takes over; its view shows the newer term.
    let (next, _) = group.wait_for_leader(&[leader]).await;
    assert_eq!(next, follower);
    let next_token = follow.fencing_token().expect("the new leader has a token");
    assert!(next_token > token, "{}: tokens must grow", p.name());
    group
        .wait_until("the new leader's view to show its term", || {
            shown(follow.as_ref()).fencing_token() == Some(next_token)
        })
        .await;
    group.members[leader].control.set_network_fault(None);
    let next_id = follow.candidate_id().to_owned();
    group
        .wait_until("the old leader's view to name the new one", || {
            shown(lead.as_ref())
                == LeadershipState::Following {
                    leader_id: next_id.clone(),
                }
        })
        .await;

    follow.resign().await.expect("resign");
    assert!(
        !shown(follow.as_ref()).is_leading(),
        "{}: the view still shows Leading after resign() returned",
        p.name()
    );
    follow.stop().await.expect("stop");
    assert_eq!(
        shown(follow.as_ref()),
        LeadershipState::Stopped { error: None },
        "{}: the view must show Stopped when stop() returns",
        p.name()
    );
    healthy(follow.as_ref());
    group.finish().await;
}
