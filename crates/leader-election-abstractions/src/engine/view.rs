//! The level-triggered view ([`LeadershipState`]), the engine's supervision
//! (a panicking or dropped engine ends the election with an error instead of
//! leaving waiters hanging) and the probe check ([`Unhealthy`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;

use crate::engine::shared::{Phase, Shared};
use crate::view::{LeadershipState, Unhealthy};

impl Shared {
    /// What the view shows now, from the phase, the lock-free deadline and
    /// the observed leader.
    fn current_view(&self) -> LeadershipState {
        let status = self.status.borrow();
        match status.phase {
            Phase::Idle => LeadershipState::NotStarted,
            Phase::Stopped => LeadershipState::Stopped {
                error: self.failure.lock().clone(),
            },
            Phase::Running | Phase::Stopping => {
                if let Some(fencing_token) = self.leading_term() {
                    return LeadershipState::Leading { fencing_token };
                }
                match &status.observed_leader {
                    Some(id) if *id != self.candidate_id => LeadershipState::Following {
                        leader_id: id.clone(),
                    },
                    // Ourselves after our term ended, or nobody.
                    _ => LeadershipState::Candidate,
                }
            }
        }
    }

    /// Publishes the current view if it changed. Computed under the view's
    /// lock, so two racing publishers never leave an older state behind.
    /// Never called while holding the status lock (the order is view, then
    /// status).
    pub(crate) fn publish_view(&self) {
        self.view.send_if_modified(|shown| {
            let now = self.current_view();
            if *shown == now {
                return false;
            }
            *shown = now;
            true
        });
    }

    /// A receiver of the view.
    pub(crate) fn watch_view(&self) -> watch::Receiver<LeadershipState> {
        self.view.subscribe()
    }

    /// Ends the election because its engine task ended without `stop()`:
    /// records `error`, then ends the term (guards fire), the event streams
    /// and every wait, as a stop would. Does nothing once stopped (a
    /// simulated crash aborts the task on purpose).
    pub(crate) fn engine_failed(&self, error: String) {
        if self.status.borrow().phase == Phase::Stopped {
            return;
        }
        tracing::error!(error = %error, "the election engine ended unexpectedly; the election is stopped");
        self.failure.lock().get_or_insert(error);
        self.finish();
    }

    /// Why the engine failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    /// The probe check: unhealthy when the engine failed, or when it still
    /// holds a term whose deadline passed more than `tolerance` ago.
    pub(crate) fn healthz(&self, tolerance: Duration) -> Result<(), Unhealthy> {
        if let Some(error) = self.failure() {
            return Err(Unhealthy::EngineFailed { error });
        }
        let held = self.status.borrow().term.as_ref().map(|(token, _)| *token);
        if let (Some(fencing_token), Some(deadline)) = (held, self.deadline()) {
            let overdue_by = self.now().saturating_duration_since(deadline);
            if overdue_by > tolerance {
                return Err(Unhealthy::RenewalOverdue {
                    fencing_token,
                    overdue_by,
                });
            }
        }
        Ok(())
    }

    /// Takes the view out of `Leading` at each term's local deadline, on a
    /// task of its own, so that neither a store call the engine waits on nor
    /// a starved engine task keeps it there after `is_leader()` turned
    /// false. A renewal that moved the deadline on keeps it waiting. Ends
    /// when the election stops.
    pub(crate) async fn end_view_at_deadlines(self: Arc<Self>) {
        let mut view = self.view.subscribe();
        loop {
            let deadline = match &*view.borrow_and_update() {
                LeadershipState::Stopped { .. } => return,
                LeadershipState::Leading { .. } => self.deadline(),
                _ => None,
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        biased;
                        () = self.sleep_until(at) => self.publish_view(),
                        changed = view.changed() => if changed.is_err() { return },
                    }
                }
                None => {
                    if view.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Runs the engine so that its end is always seen: a panic ends the
/// election with the panic's message, and so does the task being dropped
/// before the engine finished (its runtime shut down), even before its
/// first poll (the watchdog is made here, not inside the future).
pub(crate) fn supervised(
    shared: Arc<Shared>,
    engine: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    let watchdog = Watchdog {
        shared: Arc::clone(&shared),
        armed: true,
    };
    // A combinator, not an `async move` block: a block would keep the
    // engine future it captured next to the one it awaits, doubling the
    // size of every election's task.
    AssertUnwindSafe(engine).catch_unwind().map(move |outcome| {
        watchdog.disarm();
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            shared.engine_failed(format!("the election task panicked: {message}"));
        }
    })
}

/// Marks the election failed when the engine's task is dropped before the
/// engine finished.
struct Watchdog {
    shared: Arc<Shared>,
    armed: bool,
}

impl Watchdog {
    /// The engine finished (or its panic was caught): nothing to report.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.armed {
            self.shared.engine_failed(
                "the election task was dropped before it ended (its runtime shut down?)".to_owned(),
            );
        }
    }
}
