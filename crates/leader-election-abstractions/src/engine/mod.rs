//! The shared election engine and [`Election`], the handle every provider
//! returns. A provider supplies a [`LeaseStore`]; the engine does the rest.

mod jitter;
mod metrics;
mod run;
mod shared;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::{Clock, ElectionClock};
use crate::error::{Error, Result};
use crate::events::EventStream;
use crate::guard::LeadershipGuard;
use crate::limits::{validate_candidate_id, validate_metadata, validate_resource_name};
use crate::options::LeaderElectionOptions;
use crate::registry::Registration;
use crate::store::LeaseStore;
use crate::traits::{HealthBasedLeaderElection, LeaderElection};
use crate::types::{CandidateHealth, FencingToken, LossReason};
use crate::view::{LeadershipState, Unhealthy};

use run::{Command, Health, Setup};
use shared::Phase;
pub(crate) use shared::Shared;

#[cfg(feature = "test-util")]
pub(crate) use jitter::seed_thread as seed_jitter;

/// One candidate's election for one resource, driven by the shared engine
/// over a provider's [`LeaseStore`].
///
/// Cheap to clone; all clones are the same candidate. Implements
/// [`LeaderElection`] and [`HealthBasedLeaderElection`]. Dropping the last
/// clone of a started election stops it, releasing the lease best-effort.
///
/// Lifecycle: `start` on a running election does nothing; `start` after
/// `stop` returns [`Error::Stopped`] (an election is used once); `stop` is
/// idempotent. After `stop`, `is_leader` is false, `current_leader_id` is
/// `None`, `subscribe` returns an ended stream, and `resign`,
/// `update_health*`, `candidate_health` and `wait_for_leadership` return
/// [`Error::Stopped`].
pub struct Election<S: LeaseStore> {
    inner: Arc<Inner<S>>,
}

impl<S: LeaseStore> Clone for Election<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: LeaseStore> std::fmt::Debug for Election<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("resource", &self.inner.shared.resource)
            .field("candidate_id", &self.inner.shared.candidate_id)
            .field("is_leader", &self.is_leader())
            .finish()
    }
}

struct Inner<S: LeaseStore> {
    shared: Arc<Shared>,
    store: Arc<S>,
    options: Arc<LeaderElectionOptions>,
    term_limit: Duration,
    health_based: bool,
    health: watch::Sender<Health>,
    /// The monotonic clock the election runs on, fixed at `start`.
    clock: ElectionClock,
    /// The engine task and its command channel, while it runs. The lifecycle
    /// itself is the [`Phase`] in `shared.status`, changed only under this lock.
    task: Mutex<Option<Task>>,
    /// This election's place in its factory's registry, given up when it stops.
    registration: Mutex<Option<Registration>>,
}

/// A running engine task and the way to command it.
struct Task {
    commands: mpsc::UnboundedSender<Command>,
    handle: tokio::task::JoinHandle<()>,
}

impl<S: LeaseStore> Election<S> {
    /// Creates an election for `resource` over `store`, checking the options,
    /// the names (generic rules, then the store's own) and the metadata.
    /// `candidate_id` defaults to `options.instance_id`. `health_based`
    /// selects the behaviour of
    /// [`create_health_based_election`](crate::LeaderElectionFactory::create_health_based_election):
    /// publish health to the candidate registry and honour it.
    pub fn new(
        store: S,
        resource: &str,
        candidate_id: Option<&str>,
        options: LeaderElectionOptions,
        health_based: bool,
    ) -> Result<Self> {
        options.validate()?;
        let candidate_id = candidate_id.unwrap_or(&options.instance_id).to_owned();
        validate_resource_name(resource)?;
        validate_candidate_id(&candidate_id)?;
        store.validate(&options)?;
        let term_limit = store.term_limit(&options).min(options.lease_duration);
        if options.renew_interval >= term_limit {
            return Err(Error::invalid_option(
                "renew_interval",
                format!(
                    "must be shorter than the time this backend guarantees a term \
                     ({term_limit:?} with lease_duration {:?}), got {:?}",
                    options.lease_duration, options.renew_interval
                ),
            ));
        }
        let (health, _) = watch::channel(Health {
            score: 1.0,
            metadata: None,
        });
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(resource.to_owned(), candidate_id)),
                store: Arc::new(store),
                options: Arc::new(options),
                term_limit,
                health_based,
                health,
                clock: ElectionClock::Tokio,
                task: Mutex::new(None),
                registration: Mutex::new(None),
            }),
        })
    }

    /// Ties the election to its place in a factory's
    /// [`ElectionRegistry`](crate::ElectionRegistry): the place is given up
    /// when the election stops (or is dropped), so the factory can hand out
    /// the same (resource, candidate id) again.
    pub fn registered(self, registration: Registration) -> Self {
        *self.inner.registration.lock() = Some(registration);
        self
    }

    /// Runs the election on `clock` instead of Tokio's (see [`Clock`]):
    /// every reading and wait of the engine, the deadline `is_leader()`
    /// compares against and [`LeadershipGuard::lost`] go through it. For
    /// deterministic simulations and tests. Call it before cloning or
    /// starting the election; afterwards it is refused with
    /// `InvalidOption { field: "clock" }`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Result<Self> {
        let started = self.phase() != Phase::Idle;
        match Arc::get_mut(&mut self.inner) {
            Some(inner) if !started => {
                inner.clock = ElectionClock::Given(clock);
                Ok(self)
            }
            _ => Err(Error::invalid_option(
                "clock",
                "must be set before the election is cloned or started",
            )),
        }
    }

    /// The longest a term lasts from the start of the request that began or
    /// extended it: `lease_duration`, or less when the backend guarantees
    /// less (see [`LeaseStore::term_limit`]).
    pub fn term_limit(&self) -> Duration {
        self.inner.term_limit
    }

    /// The options this election runs with.
    pub fn options(&self) -> &LeaderElectionOptions {
        &self.inner.options
    }

    /// The store this election runs over (feature `test-util`: for tests
    /// that inspect what the store holds).
    #[cfg(feature = "test-util")]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Simulates a crash, for tests and demos: the background task ends at
    /// once without releasing the lease or withdrawing its candidate record,
    /// and without a `LostLeadership` event, as if the process had died.
    /// Other candidates take over only when the lease expires. The election
    /// counts as stopped afterwards. Feature `test-util`.
    #[cfg(feature = "test-util")]
    pub fn abort_without_release(&self) {
        let task = {
            let mut task = self.inner.task.lock();
            self.inner.shared.set_phase(Phase::Stopped);
            task.take()
        };
        if let Some(task) = task {
            task.handle.abort();
        }
        self.inner.shared.finish();
        self.inner.registration.lock().take();
    }

    /// Whether this election honours health scores (steps down when unhealthy).
    fn honours_health(&self) -> bool {
        self.inner.health_based && self.inner.options.enable_health_checks
    }

    fn phase(&self) -> Phase {
        self.inner.shared.status.borrow().phase
    }

    fn ensure_not_stopped(&self) -> Result<()> {
        if self.phase() == Phase::Stopped {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// The error for a call on a stopped election: why the engine failed,
    /// if it did, or `Stopped`.
    fn stopped(&self) -> Error {
        match self.inner.shared.failure() {
            Some(failure) => Error::backend(failure),
            None => Error::Stopped,
        }
    }

    /// For calls that need the engine: `NotStarted` before `start()`,
    /// `Stopped` after `stop()`.
    fn ensure_running(&self) -> Result<()> {
        match self.phase() {
            Phase::Idle => Err(Error::NotStarted),
            Phase::Running | Phase::Stopping => Ok(()),
            Phase::Stopped => Err(self.stopped()),
        }
    }

    async fn wait_until_stopped(&self) {
        let mut status = self.inner.shared.status.subscribe();
        // The sender lives in `Shared`, which we hold, so this cannot fail.
        let _ = status.wait_for(|s| s.phase == Phase::Stopped).await;
    }

    fn set_health(&self, score: f64, metadata: Option<BTreeMap<String, String>>) -> Result<()> {
        self.ensure_not_stopped()?;
        if !(0.0..=1.0).contains(&score) {
            return Err(Error::invalid_option(
                "health_score",
                format!("must be between 0 and 1, got {score}"),
            ));
        }
        if let Some(metadata) = &metadata {
            validate_metadata(metadata)?;
        }
        self.inner.health.send_modify(|health| {
            health.score = score;
            if metadata.is_some() {
                health.metadata = metadata;
            }
        });
        let options = &self.inner.options;
        if self.honours_health()
            && options.step_down_when_unhealthy
            && score < options.minimum_health_score
        {
            // Readers see the step-down now, not after a store call in flight.
            self.inner.shared.end_term_now(LossReason::Unhealthy);
        }
        Ok(())
    }
}

#[async_trait]
impl<S: LeaseStore> LeaderElection for Election<S> {
    fn candidate_id(&self) -> &str {
        &self.inner.shared.candidate_id
    }

    fn resource(&self) -> &str {
        &self.inner.shared.resource
    }

    fn is_leader(&self) -> bool {
        self.inner.shared.leading_term().is_some()
    }

    fn current_leader_id(&self) -> Option<String> {
        let observed = self.inner.shared.status.borrow().observed_leader.clone();
        match observed {
            // Our own term may have passed its deadline before the engine noticed.
            Some(id) if id == self.inner.shared.candidate_id && !self.is_leader() => None,
            other => other,
        }
    }

    fn fencing_token(&self) -> Option<FencingToken> {
        self.inner.shared.leading_term()
    }

    async fn start(&self) -> Result<()> {
        if self.phase() == Phase::Idle {
            // A configuration the backend refuses is the caller's error, not
            // something to retry forever.
            match self.inner.store.prepare().await {
                Err(error @ Error::InvalidOption { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(error = %error, "preparing the store failed; the election retries")
                }
                Ok(()) => {}
            }
        }
        let mut task = self.inner.task.lock();
        match self.phase() {
            Phase::Running => return Ok(()),
            Phase::Stopping | Phase::Stopped => return Err(Error::Stopped),
            Phase::Idle => {}
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let inner = &self.inner;
        let clock = inner.shared.init_clock(inner.clock.clone());
        inner.shared.set_phase(Phase::Running);
        let (commands, receiver) = mpsc::unbounded_channel();
        let setup = Setup {
            store: Arc::clone(&inner.store),
            shared: Arc::clone(&inner.shared),
            options: Arc::clone(&inner.options),
            term_limit: inner.term_limit,
            honour_health: self.honours_health(),
            health: inner.health.subscribe(),
            commands: receiver,
            clock,
        };
        // WARN level, so the fields reach warnings even under a `warn` filter.
        let span = tracing::warn_span!(
            "leader_election",
            resource = %inner.shared.resource,
            candidate = %inner.shared.candidate_id
        );
        let engine = view::supervised(Arc::clone(&inner.shared), setup.run());
        let handle = runtime.spawn(tracing::Instrument::instrument(engine, span));
        runtime.spawn(Arc::clone(&inner.shared).end_view_at_deadlines());
        *task = Some(Task { commands, handle });
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        // Readers see the term end now, even if the engine is in a store call.
        self.inner.shared.begin_ending(LossReason::Stopped);
        let (phase, running) = {
            let mut task = self.inner.task.lock();
            let phase = self.phase();
            match phase {
                Phase::Running => self.inner.shared.set_phase(Phase::Stopping),
                Phase::Idle => self.inner.shared.set_phase(Phase::Stopped),
                Phase::Stopping | Phase::Stopped => {}
            }
            (phase, task.take())
        };
        match (phase, running) {
            (Phase::Running, Some(task)) => {
                let _ = task.commands.send(Command::Stop);
                // A panic in the engine must still leave the election stopped,
                // and is reported rather than swallowed.
                let ended = task.handle.await;
                self.inner.shared.finish();
                if let Err(join) = ended {
                    if join.is_panic() {
                        self.inner.registration.lock().take();
                        return Err(Error::backend(format!(
                            "the election task panicked: {join}"
                        )));
                    }
                }
            }
            (Phase::Stopping, _) => self.wait_until_stopped().await,
            _ => self.inner.shared.finish(),
        }
        self.inner.registration.lock().take();
        // An engine that failed (panicked) is reported on every stop.
        match self.inner.shared.failure() {
            Some(_) => Err(self.stopped()),
            None => Ok(()),
        }
    }

    async fn resign(&self) -> Result<()> {
        self.ensure_running()?;
        let (ack, done) = oneshot::channel();
        let sent = match self.inner.task.lock().as_ref() {
            Some(task) => {
                // Readers see the term end now, even if the engine is in a
                // store call; no term begins until the engine has resigned.
                self.inner.shared.begin_ending(LossReason::Resigned);
                let sent = task.commands.send(Command::Resign(ack)).is_ok();
                if !sent {
                    self.inner.shared.finish_ending();
                }
                sent
            }
            None => false,
        };
        if sent {
            done.await.map_err(|_| Error::Stopped)?;
        }
        Ok(())
    }

    fn subscribe(&self) -> EventStream {
        self.inner.shared.subscribe()
    }

    fn watch_leadership(&self) -> watch::Receiver<LeadershipState> {
        self.inner.shared.watch_view()
    }

    fn healthz(&self, tolerance: Duration) -> std::result::Result<(), Unhealthy> {
        self.inner.shared.healthz(tolerance)
    }

    async fn wait_for_leadership(&self) -> Result<LeadershipGuard> {
        self.ensure_running()?;
        let mut status = self.inner.shared.status.subscribe();
        loop {
            {
                let current = status.borrow_and_update();
                if current.phase == Phase::Stopped {
                    return Err(self.stopped());
                }
                if let Some((token, ended)) = &current.term {
                    if self.inner.shared.leading_term() == Some(*token) {
                        return Ok(LeadershipGuard {
                            shared: Arc::clone(&self.inner.shared),
                            fencing_token: *token,
                            ended: ended.clone(),
                        });
                    }
                }
            }
            status.changed().await.map_err(|_| Error::Stopped)?;
        }
    }
}

#[async_trait]
impl<S: LeaseStore> HealthBasedLeaderElection for Election<S> {
    async fn update_health(
        &self,
        is_healthy: bool,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<()> {
        self.set_health(if is_healthy { 1.0 } else { 0.0 }, metadata)
    }

    async fn update_health_score(
        &self,
        score: f64,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<()> {
        self.set_health(score, metadata)
    }

    async fn candidate_health(&self) -> Result<Vec<CandidateHealth>> {
        self.ensure_not_stopped()?;
        let shared = &self.inner.shared;
        let span = metrics::store_span(
            "list_candidates",
            &shared.resource,
            &shared.candidate_id,
            None,
        );
        let records =
            tracing::Instrument::instrument(self.inner.store.list_candidates(), span).await?;
        let leader = self.current_leader_id();
        let mut listed: Vec<CandidateHealth> = records
            .into_iter()
            .map(|record| CandidateHealth {
                is_leader: leader.as_deref() == Some(record.candidate_id.as_str()),
                candidate_id: record.candidate_id,
                is_healthy: record.is_healthy,
                health_score: record.health_score,
                metadata: record.metadata,
                last_updated: record.updated_at,
            })
            .collect();
        listed.sort_by(|a, b| a.candidate_id.cmp(&b.candidate_id));
        Ok(listed)
    }
}
