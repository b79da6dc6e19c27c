//! The monotonic clock an election runs on: Tokio's by default, or one the
//! caller gives it ([`ElectionBuilder::clock`](crate::ElectionBuilder::clock)).
//!
//! Every reading and every wait of the engine goes through the election's
//! clock: the local deadline `is_leader()` compares against, the renewal and
//! retry schedule, call timeouts and `LeadershipGuard::lost`. A simulation
//! can therefore run candidates whose clocks advance at different rates, which
//! is exactly what the contract's mutual-exclusion promise (C1) is stated
//! about.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

/// A monotonic clock for one election.
///
/// Readings are [`tokio::time::Instant`]s on the clock's own time line: two
/// clocks may disagree about how much time passed between two moments (that
/// is the point of drift), but each must be monotonic, and
/// [`sleep_until`](Self::sleep_until) must complete once
/// [`now`](Self::now) has reached its deadline. The engine's safety rests on
/// the clock advancing at about the rate of the backend's and the other
/// candidates' clocks (within the grace period's margin); a clock that runs
/// slow lets a leader believe in a term the backend has already ended.
///
/// Implement it for deterministic simulations and tests; production code
/// keeps the default, Tokio's clock, which costs nothing extra.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current reading.
    fn now(&self) -> Instant;

    /// Completes once [`now`](Self::now) is at or past `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The clock an election uses: Tokio's (no indirection) or a given one.
#[derive(Clone, Debug, Default)]
pub(crate) enum ElectionClock {
    /// `tokio::time::Instant::now()` and `tokio::time::sleep_until`.
    #[default]
    Tokio,
    /// A clock given through the builder.
    Given(Arc<dyn Clock>),
}

impl ElectionClock {
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Self::Tokio => Instant::now(),
            Self::Given(clock) => clock.now(),
        }
    }

    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        match self {
            // A deadline already reached completes at once: Tokio's timer
            // would fire it at its next millisecond tick (up to 1 ms later),
            // which a follower acquiring a just-released lease would wait.
            Self::Tokio if deadline <= Instant::now() => {}
            Self::Tokio => tokio::time::sleep_until(deadline).await,
            Self::Given(clock) => clock.sleep_until(deadline).await,
        }
    }

    /// Runs `call` until it completes or this clock reaches `deadline`
    /// (`None` then). The call is polled first, so an answer that is ready
    /// at the deadline still counts.
    pub(crate) async fn within<F: Future>(&self, deadline: Instant, call: F) -> Option<F::Output> {
        match self {
            Self::Tokio => tokio::time::timeout_at(deadline, call).await.ok(),
            Self::Given(_) => {
                tokio::select! {
                    biased;
                    output = call => Some(output),
                    () = self.sleep_until(deadline) => None,
                }
            }
        }
    }

    /// [`within`](Self::within) for `limit` from now.
    pub(crate) async fn limit<F: Future>(
        &self,
        limit: std::time::Duration,
        call: F,
    ) -> Option<F::Output> {
        let deadline = self.now() + limit;
        self.within(deadline, call).await
    }
}
