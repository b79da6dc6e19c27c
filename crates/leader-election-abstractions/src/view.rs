//! The level-triggered view of an election ([`LeadershipState`], from
//! [`watch_leadership`](crate::LeaderElection::watch_leadership)) and the
//! probe's answer ([`Unhealthy`], from
//! [`healthz`](crate::LeaderElection::healthz)).

use std::fmt;
use std::time::Duration;

use crate::types::FencingToken;

/// Where this candidate stands now, as published by
/// [`watch_leadership`](crate::LeaderElection::watch_leadership).
///
/// The event stream says what happened; this says what holds. A reader that
/// only needs the current state (start a controller while leading, show who
/// leads) borrows the latest value and waits for the next change, and never
/// lags or misses the last state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeadershipState {
    /// Created, not started yet.
    NotStarted,
    /// This candidate leads the term with this fencing token. Leaves this
    /// state no later than [`is_leader`](crate::LeaderElection::is_leader)
    /// turns false, at the term's local deadline at the latest.
    Leading {
        /// The term's fencing token.
        fencing_token: FencingToken,
    },
    /// Another candidate leads, as this candidate last observed it.
    Following {
        /// The leader's candidate id.
        leader_id: String,
    },
    /// Taking part, with no leader known (the lease is free, not yet read,
    /// or the backend cannot be reached).
    Candidate,
    /// The election has ended: stopped, dropped, or its engine failed.
    Stopped {
        /// Why the engine failed, if it did (`None` after a `stop()`).
        error: Option<String>,
    },
}

impl LeadershipState {
    /// Whether this state is [`Leading`](Self::Leading).
    pub fn is_leading(&self) -> bool {
        matches!(self, Self::Leading { .. })
    }

    /// The fencing token while [`Leading`](Self::Leading).
    pub fn fencing_token(&self) -> Option<FencingToken> {
        match self {
            Self::Leading { fencing_token } => Some(*fencing_token),
            _ => None,
        }
    }
}

/// Why [`healthz`](crate::LeaderElection::healthz) reports an election
/// unhealthy: a probe should fail (and a liveness probe restart the process).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unhealthy {
    /// The election's engine task ended without `stop()`: it panicked (a bug)
    /// or its runtime shut down. The election is stopped; waiters have been
    /// woken with an error.
    EngineFailed {
        /// What ended it.
        error: String,
    },
    /// The engine still holds a term whose local deadline passed more than
    /// the tolerance ago: it has neither renewed nor stepped down, so its
    /// task is not running (a blocked thread, a starved runtime).
    RenewalOverdue {
        /// The overdue term's fencing token.
        fencing_token: FencingToken,
        /// How long ago the deadline passed.
        overdue_by: Duration,
    },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EngineFailed { error } => write!(f, "the election engine failed: {error}"),
            Self::RenewalOverdue {
                fencing_token,
                overdue_by,
            } => write!(
                f,
                "the leader of term {fencing_token} is overdue on renewal: its deadline \
                 passed {overdue_by:?} ago and the engine has not stepped down"
            ),
        }
    }
}

impl std::error::Error for Unhealthy {}
