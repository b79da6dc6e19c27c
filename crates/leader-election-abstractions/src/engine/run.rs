//! The election engine's state machine: one task per started election.
//!
//! A follower tries to acquire when the lease becomes acquirable (learned from
//! the store's watch or from a refused attempt), never by blind polling when
//! it has a hint. A leader renews every `renew_interval`; its term ends at the
//! start of the last successful renewal plus `lease_duration` (C2), which
//! `Shared` exposes to readers without this task's help.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::ElectionClock;
use crate::engine::jitter::{backoff, jitter};
use crate::engine::metrics::{Outcome, Telemetry};
use crate::engine::shared::Shared;
use crate::error::Error;
use crate::mutants::{self, Mutant};
use crate::options::LeaderElectionOptions;
use crate::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use crate::types::{FencingToken, LeaderElectionEvent, LossReason};

/// Requests from the handle to the engine task.
pub(crate) enum Command {
    Stop,
    Resign(oneshot::Sender<()>),
}

/// What a step-down does with the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handback {
    /// Release it, so a waiting candidate takes over at once.
    Release,
    /// Leave it to expire (the backend already says it is not ours, or
    /// cannot be reached).
    LetExpire,
}

/// The candidate's self-reported health.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    pub(crate) score: f64,
    pub(crate) metadata: Option<BTreeMap<String, String>>,
}

struct Term<G> {
    grant: G,
    token: FencingToken,
    /// The backend object the grant is on, when the store can say.
    incarnation: Option<String>,
    deadline: Instant,
    next_renew: Instant,
    ended: CancellationToken,
}

/// What an engine is started with: its store, shared state, options and
/// the channels from its handle.
pub(crate) struct Setup<S: LeaseStore> {
    pub(crate) store: Arc<S>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: Arc<LeaderElectionOptions>,
    /// The longest a term lasts from the start of the request that began or
    /// extended it: the lease duration, or less when the store's backend
    /// guarantees less ([`LeaseStore::term_limit`]).
    pub(crate) term_limit: Duration,
    /// Health-based election with health checks on: publish and honour health.
    pub(crate) honour_health: bool,
    pub(crate) health: watch::Receiver<Health>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// The election's monotonic clock: every reading and wait goes through it.
    pub(crate) clock: ElectionClock,
}

/// The running engine: its setup plus the state of the current term and the
/// follower's schedule.
struct Engine<S: LeaseStore> {
    cfg: Setup<S>,
    term: Option<Term<S::Grant>>,
    next_attempt: Instant,
    /// No acquisition attempt before this instant (set by `resign`).
    hold_off_until: Instant,
    next_publish: Option<Instant>,
    published: bool,
    watch: Option<LeaseWatch>,
    watch_retry_at: Instant,
    failures: u32,
    observed: Option<String>,
    /// Metrics and store-call spans (`metrics.rs`).
    telemetry: Telemetry,
}

impl<S: LeaseStore> Setup<S> {
    /// Runs the election until stopped. The engine is built here and only
    /// borrowed by the future, so the future holds one copy of it, not two
    /// (an `async fn` taking `self` keeps its argument and the engine made
    /// from it side by side): it is the bulk of every election's task.
    pub(crate) fn run(self) -> impl Future<Output = ()> {
        let now = self.clock.now();
        let telemetry = Telemetry::new(&self.shared.resource, &self.shared.candidate_id);
        let mut engine = Engine {
            cfg: self,
            term: None,
            next_attempt: now,
            hold_off_until: now,
            next_publish: None,
            published: false,
            watch: None,
            watch_retry_at: now,
            failures: 0,
            observed: None,
            telemetry,
        };
        async move {
            // The schedule starts when the task first runs.
            let now = engine.now();
            engine.next_attempt = now;
            engine.hold_off_until = now;
            engine.watch_retry_at = now;
            engine.next_publish = engine.cfg.honour_health.then_some(now);
            engine.run().await;
        }
    }
}

async fn sleep_opt(clock: &ElectionClock, at: Option<Instant>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_view(watch: &mut Option<LeaseWatch>) -> Option<crate::Result<LeaseView>> {
    match watch {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

impl<S: LeaseStore> Engine<S> {
    fn me(&self) -> &str {
        &self.cfg.shared.candidate_id
    }

    /// Bound on every backend call that has no deadline of its own, so a hung
    /// backend cannot keep the engine from reacting to stop or health.
    fn call_timeout(&self) -> Duration {
        self.cfg.options.renew_interval
    }

    /// The election's clock reading now.
    fn now(&self) -> Instant {
        self.cfg.clock.now()
    }

    async fn run(&mut self) {
        loop {
            if self.ended_by_handle() {
                // The handle ended the term (an unhealthy score) and no stop
                // or resign will carry it out: the score may have recovered
                // before this task ran, but the term is over for readers,
                // so release the lease now instead of renewing a term nobody
                // sees until its deadline.
                let reason = self
                    .term
                    .as_ref()
                    .and_then(|t| self.cfg.shared.loss_reason(t.token));
                Box::pin(self.step_down(
                    reason.unwrap_or(LossReason::Unhealthy),
                    Handback::Release,
                    None,
                ))
                .await;
                continue;
            }
            let action_at = match &self.term {
                Some(term) => term.next_renew,
                None => self.next_attempt,
            };
            let deadline = self.term.as_ref().map(|t| t.deadline);
            let watching = self.watch.is_some();
            let clock = self.cfg.clock.clone();
            // The handlers are boxed: their store calls exist only while
            // they run, so a waiting election's task holds only the waits
            // below (an unboxed handler would size every task for the
            // largest call, all the time).
            tokio::select! {
                biased;
                command = self.cfg.commands.recv() => match command {
                    Some(Command::Resign(ack)) => {
                        Box::pin(self.step_down(LossReason::Resigned, Handback::Release, None)).await;
                        self.cfg.shared.finish_ending();
                        let _ = ack.send(());
                    }
                    // A dropped handle stops the election like `stop()` does.
                    Some(Command::Stop) | None => break,
                },
                () = sleep_opt(&clock, deadline) => Box::pin(self.step_down(LossReason::DeadlineExpired, Handback::LetExpire, None)).await,
                changed = self.cfg.health.changed() => match changed {
                    Ok(()) => Box::pin(self.on_health()).await,
                    Err(_) => break,
                },
                item = next_view(&mut self.watch), if watching => Box::pin(self.on_watch_item(item)).await,
                () = clock.sleep_until(self.watch_retry_at), if !watching => {
                    let span = self.telemetry.span("watch", None);
                    self.watch = Some(span.in_scope(|| self.cfg.store.watch()));
                }
                () = clock.sleep_until(action_at) => {
                    if self.term.is_some() {
                        Box::pin(self.renew()).await;
                    } else {
                        Box::pin(self.try_acquire()).await;
                    }
                }
                () = sleep_opt(&clock, self.next_publish) => Box::pin(self.publish()).await,
            }
        }
        Box::pin(self.shutdown()).await;
    }

    /// Whether the handle ended the current term (`end_term_now`) with no
    /// stop or resign pending that will step down for it.
    fn ended_by_handle(&self) -> bool {
        self.term
            .as_ref()
            .is_some_and(|t| t.ended.is_cancelled() && !self.cfg.shared.ending_pending())
    }

    fn eligible(&self) -> bool {
        !self.cfg.honour_health
            || self.cfg.health.borrow().score >= self.cfg.options.minimum_health_score
    }

    async fn try_acquire(&mut self) {
        if !self.eligible() {
            self.next_attempt = self.now() + self.cfg.options.retry_interval;
            return;
        }
        let claim = LeaseClaim {
            resource: self.cfg.shared.resource.clone(),
            candidate_id: self.me().to_owned(),
            lease_duration: self.cfg.options.lease_duration,
            grace_period: self.cfg.options.grace_period,
            holder_metadata: self.cfg.options.candidate_metadata.clone(),
        };
        let started = self.now();
        let span = self.telemetry.span("acquire", None);
        let call = self.cfg.store.try_acquire(&claim).instrument(span.clone());
        let outcome = self.cfg.clock.limit(self.call_timeout(), call).await;
        let elapsed = self.now().saturating_duration_since(started);
        let reported = match &outcome {
            Some(Ok(Acquisition::Acquired { fencing_token, .. })) => {
                span.record("fencing_token", fencing_token.0);
                Outcome::Acquired
            }
            Some(Ok(Acquisition::Held(_))) => Outcome::Held,
            Some(Err(_)) => Outcome::Error,
            None => Outcome::Timeout,
        };
        self.telemetry.acquired(&span, elapsed, reported);
        match outcome {
            Some(Ok(Acquisition::Acquired {
                grant,
                fencing_token,
            })) => {
                self.failures = 0;
                self.become_leader(grant, fencing_token, started).await;
            }
            Some(Ok(Acquisition::Held(view))) => {
                self.failures = 0;
                self.follow(view);
            }
            Some(Err(error)) => self.follower_failed(&error),
            None => self.follower_failed(&Error::unavailable("acquire timed out")),
        }
    }

    fn follower_failed(&mut self, error: &Error) {
        self.failures = self.failures.saturating_add(1);
        let delay = backoff(
            self.cfg.options.retry_interval,
            self.failures,
            self.cfg.options.lease_duration,
        );
        tracing::warn!(error = %error, retry_in = ?delay, "acquire attempt failed");
        self.next_attempt = self.now() + delay;
    }

    /// The local deadline of a term begun or extended by a request that
    /// started at `started`.
    fn term_end(&self, started: Instant) -> Instant {
        let end = started + self.cfg.term_limit;
        if mutants::is_active(Mutant::DeadlinePastLease) {
            return end + self.cfg.options.lease_duration;
        }
        end
    }

    async fn become_leader(&mut self, grant: S::Grant, token: FencingToken, started: Instant) {
        let deadline = self.term_end(started);
        let refusal = if self.now() >= deadline {
            // The grant arrived after it could already have expired: leading
            // now could overlap a successor.
            Some("lease granted too late to lead safely")
        } else if self.cfg.honour_health
            && !self.eligible()
            && self.cfg.options.step_down_when_unhealthy
        {
            Some("health fell below the minimum while acquiring")
        } else if !self.cfg.shared.begin_term(token, deadline) {
            Some("stop or resign requested while acquiring")
        } else {
            None
        };
        if let Some(why) = refusal {
            tracing::info!(fencing_token = token.0, "{why}; releasing the lease");
            let span = self.telemetry.span("release", Some(token));
            let call = self.cfg.store.release(&grant).instrument(span);
            if let Some(Ok(())) = self.cfg.clock.limit(self.call_timeout(), call).await {
                self.telemetry.contact();
            }
            self.next_attempt = self.now() + jitter(self.cfg.options.retry_interval, 0.2);
            return;
        }
        // Before readers waiting on the status hear of the term.
        self.telemetry.began_term();
        let ended = CancellationToken::new();
        self.term = Some(Term {
            incarnation: self.cfg.store.grant_incarnation(&grant),
            grant,
            token,
            deadline,
            next_renew: started + self.cfg.options.renew_interval,
            ended: ended.clone(),
        });
        self.cfg
            .shared
            .status
            .send_modify(|status| status.term = Some((token, ended)));
        tracing::info!(fencing_token = token.0, "became leader");
        self.cfg.shared.emit(LeaderElectionEvent::BecameLeader {
            candidate_id: self.me().to_owned(),
            resource: self.cfg.shared.resource.clone(),
            fencing_token: token,
            timestamp: SystemTime::now(),
        });
        self.observe(Some(self.me().to_owned()));
    }

    async fn renew(&mut self) {
        let Some(term) = self.term.as_ref() else {
            return;
        };
        let deadline = term.deadline;
        let started = self.now();
        // Bounded by the renew interval too, so that a stop or resign waits
        // at most that long behind a hung call (its effect on readers is
        // immediate: the handle ends the term itself).
        let limit = deadline.min(started + self.call_timeout());
        let span = self.telemetry.span("renew", Some(term.token));
        let call = self.cfg.store.renew(&term.grant).instrument(span.clone());
        let outcome = self.cfg.clock.within(limit, call).await;
        let reported = match &outcome {
            Some(Ok(Renewal::Renewed(_))) => Outcome::Renewed,
            Some(Ok(Renewal::Lost(_))) => Outcome::Lost,
            Some(Err(_)) => Outcome::Error,
            None => Outcome::Timeout,
        };
        let elapsed = self.now().saturating_duration_since(started);
        self.telemetry.renewed(&span, elapsed, reported);
        match outcome {
            None if self.now() >= deadline => {
                self.step_down(LossReason::DeadlineExpired, Handback::LetExpire, None)
                    .await
            }
            None => self.renew_failed(deadline, &Error::unavailable("renew timed out")),
            Some(Ok(Renewal::Renewed(grant))) => {
                self.failures = 0;
                let new_deadline = self.term_end(started).max(deadline);
                let incarnation = self.cfg.store.grant_incarnation(&grant);
                let now = self.now();
                let Some(term) = self.term.as_mut() else {
                    return;
                };
                // Keep the newest grant whatever happens next: a release needs it.
                term.grant = grant;
                if incarnation.is_some() {
                    term.incarnation = incarnation;
                }
                if now >= deadline {
                    // The answer came after the term had ended; it stays ended.
                    self.step_down(LossReason::DeadlineExpired, Handback::Release, None)
                        .await;
                } else if self.cfg.shared.extend_term(deadline, new_deadline) {
                    term.deadline = new_deadline;
                    term.next_renew = started + self.cfg.options.renew_interval;
                } else {
                    // Ended by stop, resign or an unhealthy score while the
                    // call was in flight; that request's step-down comes next.
                    // Meanwhile renew as usual, so the lease can be released.
                    term.next_renew = started + self.cfg.options.renew_interval;
                }
            }
            Some(Ok(Renewal::Lost(view))) => {
                let reason = match view.as_ref().and_then(|v| v.holder.as_deref()) {
                    Some(holder) if holder != self.me() => LossReason::LostToOtherHolder,
                    _ => LossReason::RenewRejected,
                };
                let holder = view.as_ref().and_then(|v| v.holder.clone());
                self.step_down(reason, Handback::LetExpire, holder).await;
                if let Some(view) = view {
                    self.follow(view);
                }
            }
            Some(Err(error)) => self.renew_failed(deadline, &error),
        }
    }

    /// Schedules the next renewal attempt after a failed one, well inside
    /// the deadline: keep leading while we may.
    fn renew_failed(&mut self, deadline: Instant, error: &Error) {
        self.failures = self.failures.saturating_add(1);
        let remaining = deadline.saturating_duration_since(self.now());
        let delay = jitter(self.cfg.options.retry_interval, 0.2)
            .min(remaining / 3)
            .max(Duration::from_millis(1));
        tracing::warn!(error = %error, retry_in = ?delay, remaining = ?remaining, "renewal failed");
        let now = self.now();
        if let Some(term) = self.term.as_mut() {
            term.next_renew = now + delay;
        }
    }

    /// Ends the current term: readers see it at once, then the lease is
    /// released (when asked), then `LostLeadership` is emitted, followed by
    /// `LeaderChanged` to `next_leader` (the holder we know of now, if any).
    async fn step_down(
        &mut self,
        reason: LossReason,
        lease: Handback,
        next_leader: Option<String>,
    ) {
        let Some(term) = self.term.take() else {
            return;
        };
        self.cfg.shared.clear_leadership();
        self.cfg.shared.record_loss(term.token, reason);
        term.ended.cancel();
        self.telemetry.ended_term(reason);
        if lease == Handback::Release {
            let span = self.telemetry.span("release", Some(term.token));
            let call = self.cfg.store.release(&term.grant).instrument(span);
            match self.cfg.clock.limit(self.call_timeout(), call).await {
                Some(Ok(())) => self.telemetry.contact(),
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "release failed; the lease will expire")
                }
                None => tracing::warn!("release timed out; the lease will expire"),
            }
        }
        self.cfg
            .shared
            .status
            .send_modify(|status| status.term = None);
        // Readers see the new leader (or none) by the time the event arrives.
        let changed = self.set_observed(next_leader);
        tracing::info!(fencing_token = term.token.0, reason = %reason, "lost leadership");
        self.cfg.shared.emit(LeaderElectionEvent::LostLeadership {
            candidate_id: self.me().to_owned(),
            resource: self.cfg.shared.resource.clone(),
            fencing_token: term.token,
            reason,
            timestamp: SystemTime::now(),
        });
        if let Some(old) = changed {
            self.emit_leader_changed(old);
        }
        let now = self.now();
        if reason == LossReason::Resigned {
            // Give the others a whole lease to take over before competing again.
            self.hold_off_until = now + self.cfg.options.lease_duration;
        }
        self.schedule_attempt(now + jitter(self.cfg.options.retry_interval, 0.2));
    }

    async fn on_watch_item(&mut self, item: Option<crate::Result<LeaseView>>) {
        match item {
            Some(Ok(view)) => {
                self.telemetry.contact();
                self.on_view(view).await
            }
            Some(Err(error)) => {
                let delay = jitter(self.cfg.options.retry_interval, 0.2);
                tracing::warn!(error = %error, retry_in = ?delay, "lease watch failed");
                self.watch = None;
                self.watch_retry_at = self.now() + delay;
            }
            None => {
                self.watch = None;
                self.watch_retry_at = self.now() + jitter(self.cfg.options.retry_interval, 0.2);
            }
        }
    }

    async fn on_view(&mut self, view: LeaseView) {
        tracing::debug!(holder = ?view.holder, acquirable_in = ?view.acquirable_in, "watch view");
        if let Some(term) = &self.term {
            let ours = view.holder.as_deref() == Some(self.me());
            // A view of another incarnation of the lease (ours was deleted,
            // maybe re-created by another client with tokens from zero)
            // always ends the term, whatever its token says.
            let same_object = match (&view.incarnation, &term.incarnation) {
                (Some(seen), Some(mine)) => seen == mine,
                _ => true,
            };
            if same_object {
                match view.fencing_token {
                    // Older than our term: the watch is catching up.
                    Some(seen) if seen < term.token => return,
                    Some(seen) if ours && seen == term.token => return,
                    None if ours => return,
                    _ => {}
                }
            }
            let reason = if view.holder.is_some() && !ours {
                LossReason::LostToOtherHolder
            } else {
                LossReason::RenewRejected
            };
            self.step_down(reason, Handback::LetExpire, view.holder.clone())
                .await;
        }
        self.follow(view);
    }

    /// Records what a follower learned and schedules its next attempt for
    /// the moment the lease becomes acquirable.
    fn follow(&mut self, view: LeaseView) {
        self.observe(view.holder.clone());
        let now = self.now();
        let small = jitter(self.cfg.options.retry_interval / 100, 1.0);
        // A hint beyond one lease plus grace is not trusted: look again then.
        let cap = self.cfg.options.lease_duration + self.cfg.options.grace_period;
        let wait = match (view.holder.as_deref(), view.acquirable_in) {
            (Some(holder), _)
                if holder == self.me() && mutants::is_active(Mutant::SameIdTakeBack) =>
            {
                small
            }
            // Free: try now. A release is the one moment a waiting candidate
            // is sure to find the lease free, and the store's compare-and-swap
            // settles a race between followers, so no delay is added here.
            (None, None) => Duration::ZERO,
            // Free but still blocked for a while (Consul's lock-delay).
            (None, Some(blocked_for)) => (blocked_for + small).min(cap),
            // A lease held under our own id is treated like anyone else's:
            // it may be another process's (a twin with our id), and only the
            // store can tell whether it is this election's own.
            (Some(_), Some(acquirable_in)) => (acquirable_in + small).min(cap),
            (Some(_), None) => jitter(self.cfg.options.retry_interval, 0.2),
        };
        tracing::debug!(attempt_in = ?wait, "next acquire attempt scheduled");
        self.schedule_attempt(now + wait);
    }

    /// Sets the next acquisition attempt, never before a resignation's hold-off.
    fn schedule_attempt(&mut self, at: Instant) {
        self.next_attempt = at.max(self.hold_off_until);
    }

    /// Emits `LeaderChanged` when the observed leader differs from before.
    fn observe(&mut self, leader: Option<String>) {
        if let Some(old) = self.set_observed(leader) {
            self.emit_leader_changed(old);
        }
    }

    /// Records the observed leader for readers; returns the previous one if
    /// it changed.
    fn set_observed(&mut self, leader: Option<String>) -> Option<Option<String>> {
        if leader == self.observed {
            return None;
        }
        let old = std::mem::replace(&mut self.observed, leader.clone());
        self.cfg
            .shared
            .status
            .send_modify(|status| status.observed_leader = leader);
        self.cfg.shared.publish_view();
        Some(old)
    }

    fn emit_leader_changed(&self, old: Option<String>) {
        self.cfg.shared.emit(LeaderElectionEvent::LeaderChanged {
            resource: self.cfg.shared.resource.clone(),
            old_leader_id: old,
            new_leader_id: self.observed.clone(),
            timestamp: SystemTime::now(),
        });
    }

    async fn on_health(&mut self) {
        if !self.cfg.honour_health {
            return;
        }
        let eligible = self.eligible();
        if !eligible && self.term.is_some() && self.cfg.options.step_down_when_unhealthy {
            self.step_down(LossReason::Unhealthy, Handback::Release, None)
                .await;
        }
        if eligible && self.term.is_none() {
            self.schedule_attempt(self.next_attempt.min(self.now()));
        }
        self.next_publish = Some(self.now());
    }

    async fn publish(&mut self) {
        // Publishing shares this task with renewals: while leading, a
        // publish may only use the time before the next renewal falls due
        // (a renewal held up by a slow publish has less of the term limit
        // left to land in, and a leader renewing twice per term limit lost
        // its term that way on a healthy backend). Too little time left:
        // publish right after that renewal instead.
        let mut limit = self.call_timeout();
        if let Some(term) = &self.term {
            let before_renewal = term.next_renew.saturating_duration_since(self.now());
            if before_renewal < limit / 4 {
                self.next_publish = Some(term.next_renew);
                return;
            }
            limit = limit.min(before_renewal);
        }
        let health = self.cfg.health.borrow().clone();
        let record = CandidateRecord {
            candidate_id: self.me().to_owned(),
            is_healthy: health.score >= self.cfg.options.minimum_health_score,
            health_score: health.score,
            // Health metadata adds to (and overrides keys of) the configured metadata.
            metadata: {
                let mut metadata = self.cfg.options.candidate_metadata.clone();
                metadata.extend(health.metadata.unwrap_or_default());
                metadata
            },
            updated_at: SystemTime::now(),
        };
        let ttl = self.cfg.options.lease_duration + self.cfg.options.grace_period;
        let span = self.telemetry.span("publish_candidate", None);
        let call = self
            .cfg
            .store
            .publish_candidate(&record, ttl)
            .instrument(span);
        let next = match self.cfg.clock.limit(limit, call).await {
            Some(Ok(())) => {
                self.telemetry.contact();
                self.published = true;
                self.cfg.options.renew_interval
            }
            Some(Err(error)) => {
                tracing::warn!(error = %error, "publishing candidate health failed");
                jitter(self.cfg.options.retry_interval, 0.2)
            }
            None => jitter(self.cfg.options.retry_interval, 0.2),
        };
        self.next_publish = Some(self.now() + next);
    }

    async fn shutdown(&mut self) {
        self.step_down(LossReason::Stopped, Handback::Release, None)
            .await;
        let limit = self.call_timeout();
        if self.published {
            let span = self.telemetry.span("withdraw_candidate", None);
            let call = self.cfg.store.withdraw_candidate().instrument(span);
            if matches!(self.cfg.clock.limit(limit, call).await, Some(Ok(()))) {
                self.telemetry.contact();
            } else {
                tracing::warn!("withdrawing the candidate record failed; it will expire");
            }
        }
        let span = self.telemetry.span("close", None);
        let call = self.cfg.store.close().instrument(span);
        if !matches!(self.cfg.clock.limit(limit, call).await, Some(Ok(()))) {
            tracing::warn!("closing the store failed");
        }
        self.cfg.shared.finish();
    }
}
