//! Candidates' clocks on simulated global time: each runs at its own rate,
//! and a paused process's timers do not fire until it resumes.
//!
//! Global time is Tokio's paused clock (`tokio::time::Instant::now()` on the
//! simulation's runtime). A candidate's clock reads
//! `origin + (global − origin) × rate`; its sleeps are converted back to
//! global time and complete once its own reading has reached the deadline
//! and the process is not paused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::Clock;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Parts per million: a rate of `1_000_000` is global time's.
pub const PPM: u64 = 1_000_000;

/// Whether a simulated process is paused (as by `SIGSTOP`): while it is,
/// its timers do not fire and its network calls neither leave nor return.
///
/// Waiters resume in the order they began to wait (a `Notify`; tokio's
/// `watch` would wake them in a random order and break determinism).
#[derive(Clone, Debug, Default)]
pub struct PauseGate(Arc<(AtomicBool, Notify)>);

impl PauseGate {
    /// Pauses (`true`) or resumes (`false`) the process.
    pub fn set(&self, paused: bool) {
        self.0 .0.store(paused, Ordering::SeqCst);
        if !paused {
            self.0 .1.notify_waiters();
        }
    }

    /// Whether the process is paused now.
    pub fn is_paused(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Completes at once if running, else when the process resumes.
    pub async fn running(&self) {
        loop {
            let resumed = self.0 .1.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if !self.is_paused() {
                return;
            }
            resumed.await;
        }
    }
}

/// A candidate's monotonic clock running at `rate_ppm / 1 000 000` of global
/// time.
#[derive(Clone, Debug)]
pub struct DriftClock {
    origin: Instant,
    rate_ppm: u64,
    pause: PauseGate,
}

impl DriftClock {
    /// A clock that reads global time at creation and then advances at
    /// `rate_ppm` parts per million of global time.
    pub fn new(rate_ppm: u64, pause: PauseGate) -> Self {
        Self {
            origin: Instant::now(),
            rate_ppm: rate_ppm.max(1),
            pause,
        }
    }

    /// The clock's rate in parts per million of global time.
    pub fn rate_ppm(&self) -> u64 {
        self.rate_ppm
    }

    /// The first global instant at which this clock reads at least `local`.
    pub fn global_at(&self, local: Instant) -> Instant {
        let local_nanos = local.saturating_duration_since(self.origin).as_nanos();
        let rate = u128::from(self.rate_ppm);
        let global_nanos = (local_nanos * u128::from(PPM)).div_ceil(rate);
        self.origin + Duration::from_nanos(u64::try_from(global_nanos).unwrap_or(u64::MAX))
    }

    fn read(&self) -> Instant {
        let global_nanos = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos();
        let local_nanos = global_nanos * u128::from(self.rate_ppm) / u128::from(PPM);
        self.origin + Duration::from_nanos(u64::try_from(local_nanos).unwrap_or(u64::MAX))
    }
}

impl Clock for DriftClock {
    fn now(&self) -> Instant {
        self.read()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let clock = self.clone();
        Box::pin(async move {
            // Tokio's timer rounds to milliseconds: sleep again until our own
            // reading has really reached the deadline.
            while clock.read() < deadline {
                tokio::time::sleep_until(clock.global_at(deadline)).await;
            }
            clock.pause.running().await;
        })
    }
}
