//! [`LeadershipGuard`]: proof of one term of leadership, with its fencing
//! token and the signal that the term has ended.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Shared;
use crate::types::{FencingToken, LossReason};

/// One term of leadership, returned by
/// [`wait_for_leadership`](crate::LeaderElection::wait_for_leadership).
///
/// Cheap to clone. Hand [`fencing_token`](Self::fencing_token) to the systems
/// you write to; stop writing when [`lost`](Self::lost) completes.
///
/// A guard is a view of one term, not ownership of the lease: dropping it
/// does **not** resign or release anything. To give leadership up, call
/// [`resign`](crate::LeaderElection::resign) or
/// [`stop`](crate::LeaderElection::stop). (It is not `#[must_use]`:
/// `wait_for_leadership().await?;` only to wait, dropping the guard, is a
/// normal use.)
#[derive(Clone)]
pub struct LeadershipGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) fencing_token: FencingToken,
    pub(crate) ended: CancellationToken,
}

impl std::fmt::Debug for LeadershipGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadershipGuard")
            .field("resource", &self.shared.resource)
            .field("candidate_id", &self.shared.candidate_id)
            .field("fencing_token", &self.fencing_token)
            .field("is_valid", &self.is_valid())
            .finish()
    }
}

impl LeadershipGuard {
    /// The term's fencing token.
    pub fn fencing_token(&self) -> FencingToken {
        self.fencing_token
    }

    /// The resource this term leads.
    pub fn resource(&self) -> &str {
        &self.shared.resource
    }

    /// Whether the term still holds: same term and inside its local deadline,
    /// computed now (contract C2).
    pub fn is_valid(&self) -> bool {
        !self.ended.is_cancelled() && self.shared.leading_term() == Some(self.fencing_token)
    }

    /// Completes when the term ends: when the engine notices a loss, or at the
    /// term's local deadline, whichever comes first — the deadline fires even
    /// if the engine's task is starved.
    pub async fn lost(&self) {
        loop {
            if !self.is_valid() {
                return;
            }
            let deadline = self.shared.deadline();
            tokio::select! {
                biased;
                () = self.ended.cancelled() => return,
                () = self.sleep_until_opt(deadline) => {}
            }
        }
    }

    /// Completes when the term ends, or as soon as less than `margin` is
    /// left before its local deadline, whichever comes first. A renewal
    /// that moves the deadline on in time keeps it waiting.
    ///
    /// This is the moment to begin stopping work that needs up to `margin`
    /// to stop, so that it has stopped *by* the deadline rather than at it
    /// (a supervisor that gives its child process a shutdown grace, say).
    /// `ending_within(Duration::ZERO)` completes when [`lost`](Self::lost) does.
    pub async fn ending_within(&self, margin: Duration) {
        loop {
            if !self.is_valid() {
                return;
            }
            let Some(deadline) = self.shared.deadline() else {
                return;
            };
            let Some(begin_at) = deadline.checked_sub(margin) else {
                return; // less than `margin` is left of any deadline this clock can have
            };
            if self.shared.now() >= begin_at {
                return;
            }
            tokio::select! {
                biased;
                () = self.ended.cancelled() => return,
                () = self.shared.sleep_until(begin_at) => {}
            }
        }
    }

    /// Why the term ended, once it has: the first cause known (`stop`,
    /// `resign`, an unhealthy score, or what the engine saw). `None` while
    /// the term holds, and when it ended only by its local deadline passing
    /// before the engine ran (that is [`LossReason::DeadlineExpired`]).
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.shared.loss_reason(self.fencing_token)
    }

    /// A token cancelled when the engine notices the term has ended (loss,
    /// deadline, stop). Prefer [`lost`](Self::lost), which also fires at the
    /// deadline without the engine's help.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.ended.child_token()
    }

    /// Sleeps on the election's clock until `deadline`, or forever without one.
    async fn sleep_until_opt(&self, deadline: Option<tokio::time::Instant>) {
        match deadline {
            Some(at) => self.shared.sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}
