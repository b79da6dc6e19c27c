//! Value types: fencing tokens, events, candidate health.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A number that grows with every acquisition of a resource's lease, by any
/// candidate (contract C5).
///
/// Pass it to the systems your leader writes to and have them reject writes
/// carrying a smaller token than one they have already seen: a paused former
/// leader then cannot overwrite its successor's work (Kleppmann's fencing
/// argument). Tokens compare as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The token as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a candidate stopped leading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LossReason {
    /// `stop()` was called or the last handle was dropped; the lease was released.
    Stopped,
    /// `resign()` was called; the lease was released.
    Resigned,
    /// Health fell below the minimum and `step_down_when_unhealthy` is on;
    /// the lease was released.
    Unhealthy,
    /// The lease's local deadline passed without a successful renewal
    /// (backend unreachable or too slow).
    DeadlineExpired,
    /// The backend said the lease is no longer ours (session invalidated,
    /// lease deleted or expired on the server).
    RenewRejected,
    /// Another candidate holds the lease now (seen through a renewal or a watch).
    LostToOtherHolder,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            LossReason::Stopped => "stopped",
            LossReason::Resigned => "resigned",
            LossReason::Unhealthy => "unhealthy",
            LossReason::DeadlineExpired => "lease deadline expired",
            LossReason::RenewRejected => "renewal rejected by the backend",
            LossReason::LostToOtherHolder => "lost to another holder",
        };
        f.write_str(text)
    }
}

/// Something that happened to an election, in the order it happened.
///
/// Per candidate, every [`BecameLeader`](Self::BecameLeader) is followed by
/// exactly one [`LostLeadership`](Self::LostLeadership) before the next
/// `BecameLeader` (contract C6).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LeaderElectionEvent {
    /// This candidate acquired the lease.
    BecameLeader {
        /// This candidate's id.
        candidate_id: String,
        /// The contested resource.
        resource: String,
        /// The acquisition's fencing token.
        fencing_token: FencingToken,
        /// Wall-clock time of the event.
        timestamp: SystemTime,
    },
    /// This candidate stopped leading.
    LostLeadership {
        /// This candidate's id.
        candidate_id: String,
        /// The contested resource.
        resource: String,
        /// The fencing token of the term that ended.
        fencing_token: FencingToken,
        /// Why it ended.
        reason: LossReason,
        /// Wall-clock time of the event.
        timestamp: SystemTime,
    },
    /// The leader this candidate observes changed (including to or from none).
    LeaderChanged {
        /// The contested resource.
        resource: String,
        /// The previous leader, if any.
        old_leader_id: Option<String>,
        /// The new leader, if any.
        new_leader_id: Option<String>,
        /// Wall-clock time of the event.
        timestamp: SystemTime,
    },
    /// The subscriber fell behind and this many events were dropped for it.
    /// The engine never waits for a slow subscriber. Read
    /// [`is_leader`](crate::LeaderElection::is_leader) to resynchronise.
    Lagged {
        /// How many events were skipped.
        missed: u64,
    },
}

/// The health of one live candidate, as listed by
/// [`candidate_health`](crate::HealthBasedLeaderElection::candidate_health).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateHealth {
    /// The candidate's id.
    pub candidate_id: String,
    /// Whether it counts as healthy (its score is at least its minimum).
    pub is_healthy: bool,
    /// Its health score between 0 and 1.
    pub health_score: f64,
    /// Whether it is the leader the asking candidate observes.
    pub is_leader: bool,
    /// The metadata it published.
    pub metadata: BTreeMap<String, String>,
    /// When it last published its health.
    pub last_updated: SystemTime,
}
