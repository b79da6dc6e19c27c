//! The monotonic clock the store's own timing runs on: Tokio's by default,
//! or the one given to the factory
//! ([`KubernetesLeaderElectionFactory::with_clock`](crate::KubernetesLeaderElectionFactory::with_clock)).
//!
//! Everything the provider times goes through it: the observed-time rule's
//! dating of records ([`crate::observe`]), the request timeout of every call,
//! and the shared watch's list and watch-open timeouts. So a simulation that
//! runs a candidate on a drifting clock drifts its store too. Wall-clock
//! stamps (`renewTime`, `acquireTime`, the candidate registry's expiry) are
//! not monotonic readings and stay on the system clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::Clock;
use tokio::time::Instant;

/// The store's clock: Tokio's (no indirection) or a given one.
#[derive(Clone, Debug, Default)]
pub(crate) enum StoreClock {
    /// `tokio::time::Instant::now()` and `tokio::time::timeout`.
    #[default]
    Tokio,
    /// A clock handed to the factory.
    Given(Arc<dyn Clock>),
}

impl StoreClock {
    /// The current reading.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Self::Tokio => Instant::now(),
            Self::Given(clock) => clock.now(),
        }
    }

    /// Runs `call` until it completes or `limit` has passed on this clock
    /// (`None` then). The call is polled first, so an answer that is ready
    /// at the limit still counts.
    pub(crate) async fn timeout<F: Future>(&self, limit: Duration, call: F) -> Option<F::Output> {
        match self {
            Self::Tokio => tokio::time::timeout(limit, call).await.ok(),
            Self::Given(clock) => {
                let deadline = clock.now() + limit;
                tokio::select! {
                    biased;
                    output = call => Some(output),
                    () = clock.sleep_until(deadline) => None,
                }
            }
        }
    }
}
