//! The seed's interfaces: [`LeaderElection`], [`HealthBasedLeaderElection`],
//! [`LeaderElectionFactory`], and the Rust helpers in [`LeaderElectionExt`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::events::{EventCallback, EventStream};
use crate::guard::LeadershipGuard;
use crate::types::{CandidateHealth, FencingToken, LeaderElectionEvent, LossReason};
use crate::view::{LeadershipState, Unhealthy};

/// How [`run_while_leader`](LeaderElectionExt::run_while_leader) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum RunOutcome<T> {
    /// The work finished while this candidate led; its output.
    Completed(T),
    /// Leadership ended first and the work was dropped; why it ended.
    Ended(LossReason),
}

/// Taking part in the election for one resource (the seed's `ILeaderElection`).
///
/// Every method may be called from any thread at any time (contract C11).
/// [`is_leader`](Self::is_leader) and [`current_leader_id`](Self::current_leader_id)
/// read atomics and never wait for the background task.
///
/// The trait is object-safe: library code can hold an `Arc<dyn LeaderElection>`.
#[async_trait]
pub trait LeaderElection: Send + Sync {
    /// This candidate's id.
    fn candidate_id(&self) -> &str;

    /// The contested resource.
    fn resource(&self) -> &str;

    /// Whether this candidate leads right now. Turns false no later than the
    /// start of the last successful renewal plus the lease duration, computed
    /// when called, even if the background task has not run since (contract C2).
    fn is_leader(&self) -> bool;

    /// The leader this candidate observes, if any (itself included).
    fn current_leader_id(&self) -> Option<String>;

    /// The fencing token of the current term while this candidate leads.
    fn fencing_token(&self) -> Option<FencingToken>;

    /// Starts taking part: the background task tries to acquire and, once
    /// leader, renews. It returns before the first attempt, so `is_leader()`
    /// right after `start` is false; await
    /// [`wait_for_leadership`](Self::wait_for_leadership) to know. Calling it
    /// on a running election does nothing; on a stopped one it returns
    /// [`Error::Stopped`](crate::Error::Stopped). Needs a Tokio runtime.
    async fn start(&self) -> Result<()>;

    /// Stops taking part. A leader releases its lease first, so a waiting
    /// candidate takes over at once, and emits `LostLeadership` with reason
    /// `Stopped`. When it returns, no further events are emitted and no
    /// background task runs. Calling it again (or before `start`) does nothing.
    /// Returns `Error::Backend` if the election's task panicked (a bug; the
    /// election is stopped all the same), on this and every later call.
    async fn stop(&self) -> Result<()>;

    /// Gives up leadership but stays a candidate: releases the lease (if
    /// leading) and does not try to acquire again for one lease duration, so
    /// another candidate can take over. Does nothing when not leading.
    /// `is_leader()` is false from the moment it is called, even while the
    /// engine waits on a backend call. Returns
    /// [`Error::NotStarted`](crate::Error::NotStarted) before `start()`.
    async fn resign(&self) -> Result<()>;

    /// A stream of this candidate's events, from now on, in order. A slow
    /// subscriber never blocks the election; it receives
    /// [`LeaderElectionEvent::Lagged`] instead. The stream ends after `stop`.
    fn subscribe(&self) -> EventStream;

    /// The current state, level-triggered: leading (with the term's fencing
    /// token), following a known leader, a candidate with no known leader,
    /// or stopped (with the engine's error if it failed). Borrow the latest
    /// value, await `changed()` for the next; a reader never lags.
    ///
    /// It agrees with [`is_leader`](Self::is_leader): it shows
    /// [`Leading`](LeadershipState::Leading) only after `is_leader()` turned
    /// true, and leaves it when a term ends (stop, resign, step-down) before
    /// those calls return, and at the term's local deadline on a timer of
    /// its own, not waiting for the engine. A value already borrowed is a
    /// snapshot: code that acts on leadership still checks `is_leader()` or
    /// holds a [`LeadershipGuard`].
    fn watch_leadership(&self) -> tokio::sync::watch::Receiver<LeadershipState>;

    /// A check for a liveness or readiness probe (client-go's
    /// `HealthzAdaptor`). Unhealthy when the engine task failed (panicked,
    /// or its runtime shut down: the election is stopped with that error),
    /// or when the engine still holds a term whose local deadline passed
    /// more than `tolerance` ago (it neither renewed nor stepped down: its
    /// task does not run). Healthy otherwise: followers, candidates, an
    /// election not started yet or stopped by `stop()`.
    fn healthz(&self, tolerance: std::time::Duration) -> std::result::Result<(), Unhealthy>;

    /// Waits until this candidate leads and returns a guard with the term's
    /// fencing token and a signal that fires when the term ends. Returns
    /// [`Error::NotStarted`](crate::Error::NotStarted) before `start()` (it
    /// would wait forever), and [`Error::Stopped`](crate::Error::Stopped) if
    /// the election stops first.
    async fn wait_for_leadership(&self) -> Result<LeadershipGuard>;
}

/// A leader election that knows its candidates' health (the seed's
/// `IHealthBasedLeaderElection`).
///
/// With `enable_health_checks` on, an unhealthy candidate never acquires and,
/// with `step_down_when_unhealthy`, an unhealthy leader releases its lease at
/// once (contract C7).
#[async_trait]
pub trait HealthBasedLeaderElection: LeaderElection {
    /// Reports health as healthy (score 1) or unhealthy (score 0), with
    /// optional metadata. It is published on top of the options'
    /// `candidate_metadata` (its keys win). `Some(metadata)` replaces the
    /// metadata of the previous health report; `None` keeps it (pass
    /// `Some(BTreeMap::new())` to clear it). May be called before `start()`
    /// to set the health the election starts with.
    async fn update_health(
        &self,
        is_healthy: bool,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<()>;

    /// Reports a health score between 0 and 1; below `minimum_health_score`
    /// the candidate counts as unhealthy.
    async fn update_health_score(
        &self,
        score: f64,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<()>;

    /// Lists every live candidate of the resource, from the backend's
    /// candidate registry.
    async fn candidate_health(&self) -> Result<Vec<CandidateHealth>>;
}

/// Creates elections (the seed's `ILeaderElectionFactory`). A binary picks a
/// provider's factory; library code receives an `Arc<dyn LeaderElectionFactory>`.
pub trait LeaderElectionFactory: Send + Sync {
    /// Creates an election for `resource`. The candidate id defaults to the
    /// options' `instance_id`. Names and options are validated here.
    fn create_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn LeaderElection>>;

    /// Creates a health-based election for `resource`.
    fn create_health_based_election(
        &self,
        resource: &str,
        candidate_id: Option<&str>,
    ) -> Result<Arc<dyn HealthBasedLeaderElection>>;
}

/// Helpers for every [`LeaderElection`], including `dyn LeaderElection`.
pub trait LeaderElectionExt: LeaderElection {
    /// Waits for leadership, then runs `work` with the term's guard until it
    /// finishes or leadership ends, whichever comes first. When leadership
    /// ends first, `work`'s future is dropped (cancelled) no later than the
    /// term's local deadline, and [`RunOutcome::Ended`] says why (including
    /// [`LossReason::Stopped`](crate::LossReason::Stopped) when `stop()` ended
    /// it). Returns [`Error::NotStarted`](crate::Error::NotStarted) before
    /// `start()` and [`Error::Stopped`](crate::Error::Stopped) after `stop()`.
    ///
    /// This is the active-passive pattern in one call; loop over it to become
    /// active again after the next election.
    fn run_while_leader<'a, F, Fut, T>(
        &'a self,
        work: F,
    ) -> impl Future<Output = Result<RunOutcome<T>>> + Send + 'a
    where
        F: FnOnce(LeadershipGuard) -> Fut + Send + 'a,
        Fut: Future<Output = T> + Send + 'a,
        T: Send + 'a,
    {
        async move {
            let guard = self.wait_for_leadership().await?;
            let ended = guard.clone();
            tokio::select! {
                output = work(guard) => Ok(RunOutcome::Completed(output)),
                () = ended.lost() => Ok(RunOutcome::Ended(
                    ended.loss_reason().unwrap_or(LossReason::DeadlineExpired),
                )),
            }
        }
    }

    /// Starts the election and stops it when `shutdown` is cancelled (the
    /// seed's `StartAsync(cancellationToken)`): on cancellation a leader
    /// releases its lease, as with [`stop`](LeaderElection::stop). Returns
    /// once started; the stop runs on a task of the current runtime. Await
    /// `stop()` after cancelling to know it has finished (it is idempotent).
    fn start_until(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl Future<Output = Result<()>> + Send
    where
        Self: 'static,
    {
        async move {
            self.start().await?;
            tokio::spawn(async move {
                shutdown.cancelled().await;
                // stop() reports no errors worth acting on here; it is idempotent.
                let _ = self.stop().await;
            });
            Ok(())
        }
    }

    /// Calls `callback` for every event, in order, on a background task (the
    /// seed's `event` handlers). The callback runs until the returned handle
    /// is dropped, unless it is [detached](EventCallback::detach). Called
    /// inside a Tokio runtime, the callback runs on a task of that runtime;
    /// called from any other thread, on a thread of its own.
    ///
    /// Each registration has its own task: one callback sees events in order,
    /// but two callbacks may run in either order for the same moment. Register
    /// one `on_event` callback when the relative order matters.
    fn on_event<F>(&self, callback: F) -> EventCallback
    where
        F: FnMut(&LeaderElectionEvent) + Send + 'static,
    {
        EventCallback::spawn(self.subscribe(), callback)
    }

    /// Calls `callback` with the fencing token whenever this candidate becomes
    /// leader (the seed's `OnBecameLeader`).
    fn on_became_leader<F>(&self, mut callback: F) -> EventCallback
    where
        F: FnMut(FencingToken) + Send + 'static,
    {
        self.on_event(move |event| {
            if let LeaderElectionEvent::BecameLeader { fencing_token, .. } = event {
                callback(*fencing_token);
            }
        })
    }

    /// Calls `callback` whenever this candidate stops leading (the seed's
    /// `OnLostLeadership`).
    fn on_lost_leadership<F>(&self, mut callback: F) -> EventCallback
    where
        F: FnMut(crate::LossReason) + Send + 'static,
    {
        self.on_event(move |event| {
            if let LeaderElectionEvent::LostLeadership { reason, .. } = event {
                callback(*reason);
            }
        })
    }

    /// Calls `callback(old, new)` whenever the observed leader changes (the
    /// seed's `OnLeaderChanged`).
    fn on_leader_changed<F>(&self, mut callback: F) -> EventCallback
    where
        F: FnMut(Option<&str>, Option<&str>) + Send + 'static,
    {
        self.on_event(move |event| {
            if let LeaderElectionEvent::LeaderChanged {
                old_leader_id,
                new_leader_id,
                ..
            } = event
            {
                callback(old_leader_id.as_deref(), new_leader_id.as_deref());
            }
        })
    }
}

impl<T: LeaderElection + ?Sized> LeaderElectionExt for T {}
