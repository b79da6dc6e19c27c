//! The factory's shared Lease watch: one list + watch of the namespace's
//! Leases per factory, dispatched by Lease name to the elections that follow
//! each Lease.
//!
//! A [`WatchHub`] belongs to a factory (and its clones). The first election
//! that watches starts the hub's task; the task lists every Lease of the
//! namespace, keeps the newest record of each by name, watches from the
//! list's `resourceVersion`, and hands each change to the elections
//! following that name. Each election turns a record into its own view
//! ([`Observer`]), so the observed-time expiry is still dated by the
//! election's own first sight of a record, and its acquire, renew and
//! release requests stay its own.
//!
//! - A late subscriber gets the cached record of its Lease at once (after
//!   the first list of the task, if that is still running).
//! - Per Lease, records only move forward: a record whose numeric
//!   `resourceVersion` is not above the cached one is dropped.
//! - When the apiserver ends the watch (its timeout), the task resumes from
//!   the last version. A 410 Gone (the version was compacted away) makes it
//!   list again and dispatch only what changed, to the same subscribers.
//! - Any other failure (a list or watch that fails, an error event other
//!   than 410) is the watch error of every election following a Lease of
//!   this hub: each gets the error and its watch ends, so its engine backs
//!   off and watches again, as with a broken watch of its own.
//! - The task owns every subscriber's channel: if it ends for any reason
//!   (including a panic), every subscriber's watch ends, and the next
//!   subscription starts a new task.
//! - When the last subscriber goes (its election stops), the task closes the
//!   watch and ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use leader_election_abstractions::store::LeaseWatch;
use leader_election_abstractions::{Error, Result};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::clock::StoreClock;
use crate::errors::{classify, status_code, timed_out, watch_ended};
use crate::observe::{version_number, Observer};

/// How long the apiserver keeps one watch open (seconds), below its own
/// limit, before the watch is re-opened from the last version.
const WATCH_SECONDS: u32 = 290;

/// The shortest bound on the hub's list and watch-open requests: a list of
/// every Lease in a namespace may take longer than one Lease's GET.
const MIN_LIST_TIMEOUT: Duration = Duration::from_secs(10);

type Events = BoxStream<'static, kube::Result<WatchEvent<Lease>>>;

/// What the task hands a subscriber.
enum Update {
    /// The Lease's newest record (`None`: it does not exist), as of the
    /// storage revision `version` (the record's own `resourceVersion`, or
    /// for an absent Lease the list's or the deletion's).
    Record {
        lease: Option<Arc<Lease>>,
        version: Option<u64>,
    },
    /// The shared watch failed; the subscriber's watch ends after this.
    Failed(Arc<Error>),
}

/// A request to the task.
enum Command {
    Subscribe {
        name: String,
        id: u64,
        updates: mpsc::UnboundedSender<Update>,
    },
    Unsubscribe {
        name: String,
        id: u64,
    },
}

/// The shared Lease watch of one factory (one namespace); clones of the
/// factory share it through an `Arc`.
pub(crate) struct WatchHub {
    api: Api<Lease>,
    timeout: Duration,
    /// The clock `timeout` runs on (the factory's).
    clock: StoreClock,
    /// The running task's command channel; `None` when no task runs.
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("running", &self.commands.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl WatchHub {
    /// A hub over the Leases of `api`'s namespace; its list and watch-open
    /// requests are bounded by `request_timeout` (at least 10 s) on `clock`.
    pub(crate) fn new(api: Api<Lease>, request_timeout: Duration, clock: StoreClock) -> Self {
        Self {
            api,
            timeout: request_timeout.max(MIN_LIST_TIMEOUT),
            clock,
            commands: Mutex::new(None),
            next_id: AtomicU64::new(0),
        }
    }

    /// The clock the hub's timeouts run on: the factory's.
    pub(crate) fn clock(&self) -> &StoreClock {
        &self.clock
    }

    /// Follows the Lease `name`: a new subscription, starting the task if
    /// none runs. Must be called inside a Tokio runtime.
    fn subscribe(self: &Arc<Self>, name: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (updates, receiver) = mpsc::unbounded_channel();
        let command = Command::Subscribe {
            name: name.to_owned(),
            id,
            updates,
        };
        let mut slot = self.commands.lock();
        let command = match slot.as_ref() {
            Some(sender) => match sender.send(command) {
                Ok(()) => return Subscription::new(sender.clone(), receiver, name, id),
                // The task is gone (a panic, or its runtime shut down):
                // start another one with the same request.
                Err(mpsc::error::SendError(command)) => command,
            },
            None => command,
        };
        let (sender, commands) = mpsc::unbounded_channel();
        // A new channel's receiver is alive: the send cannot fail.
        let _ = sender.send(command);
        *slot = Some(sender.clone());
        drop(slot);
        let task = Task {
            hub: self.clone(),
            commands,
            followers: HashMap::new(),
            cache: HashMap::new(),
            synced: false,
            as_of: None,
        };
        tokio::spawn(task.run());
        Subscription::new(sender, receiver, name, id)
    }
}

/// One election's subscription: its updates, and its leave notice to the
/// task when dropped (the election stopped or dropped its watch).
struct Subscription {
    updates: mpsc::UnboundedReceiver<Update>,
    _leave: Leave,
}

impl Subscription {
    fn new(
        commands: mpsc::UnboundedSender<Command>,
        updates: mpsc::UnboundedReceiver<Update>,
        name: &str,
        id: u64,
    ) -> Self {
        Self {
            updates,
            _leave: Leave {
                commands,
                name: name.to_owned(),
                id,
            },
        }
    }
}

/// Tells the task a subscriber left, when dropped.
struct Leave {
    commands: mpsc::UnboundedSender<Command>,
    name: String,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        // A task that is gone has no subscriber to forget.
        let _ = self.commands.send(Command::Unsubscribe {
            name: std::mem::take(&mut self.name),
            id: self.id,
        });
    }
}

/// The views of the Lease `name` through the `hub`, each read into the
/// election's `observed` when the election takes it: the current one, then
/// one per change; an error ends the stream.
pub(super) fn watch(hub: Arc<WatchHub>, name: String, observed: Arc<Observer>) -> LeaseWatch {
    let state = (hub, name, observed, None::<Subscription>);
    stream::unfold(state, |(hub, name, observed, subscription)| async move {
        // Subscribing on the first poll: inside the engine's task, so
        // inside its runtime.
        let mut subscription = subscription.unwrap_or_else(|| hub.subscribe(&name));
        let item = loop {
            match subscription.updates.recv().await? {
                // Older than what this election saw already (its own write
                // that the shared watch has not carried yet, say): the
                // election never sees the Lease go back in time.
                Update::Record { version, .. } if observed.is_older(version) => continue,
                Update::Record { lease, version } => {
                    let view = observed.observe(lease.as_deref());
                    if let Some(version) = version {
                        observed.saw_version(version);
                    }
                    break Ok(view);
                }
                Update::Failed(error) => break Err(copy_error(&error)),
            }
        };
        Some((item, (hub, name, observed, Some(subscription))))
    })
    .boxed()
}

/// The same failure for another subscriber (errors are not `Clone`): the
/// same kind and message.
fn copy_error(error: &Error) -> Error {
    match error {
        Error::Unauthorized { message, .. } => Error::unauthorized(message.clone()),
        Error::Backend { message, .. } => Error::backend(message.clone()),
        Error::BackendUnavailable { message, .. } => Error::unavailable(message.clone()),
        other => Error::unavailable(format!("Kubernetes shared Lease watch: {other}")),
    }
}

/// Whether `new` is a newer record of a Lease than `old`: a higher
/// `resourceVersion` (a different one when either is not a number).
fn is_newer(old: &Lease, new: &Lease) -> bool {
    let old = old.metadata.resource_version.as_deref();
    let new = new.metadata.resource_version.as_deref();
    match (
        old.and_then(|v| v.parse::<u64>().ok()),
        new.and_then(|v| v.parse::<u64>().ok()),
    ) {
        (Some(old), Some(new)) => new > old,
        _ => old != new,
    }
}

/// What one watch event means to the hub.
pub(crate) enum Seen {
    /// A Lease's new record (`Added`, `Modified`).
    Changed(Lease),
    /// A Lease was deleted; its last record.
    Deleted(Lease),
    /// A bookmark: only a newer version to resume from.
    Bookmark(Option<String>),
    /// 410 Gone: the version to resume from was compacted away; list again.
    Gone,
    /// Any other error event: the watch is over.
    Ended(Error),
}

/// Reads one watch event.
pub(crate) fn on_event(event: WatchEvent<Lease>) -> Seen {
    match event {
        WatchEvent::Added(lease) | WatchEvent::Modified(lease) => Seen::Changed(lease),
        WatchEvent::Deleted(lease) => Seen::Deleted(lease),
        WatchEvent::Bookmark(mark) => Seen::Bookmark(Some(mark.metadata.resource_version)),
        WatchEvent::Error(status) if status.code == 410 => Seen::Gone,
        WatchEvent::Error(status) => Seen::Ended(watch_ended(&status)),
    }
}

/// How reading an open watch ended, short of a failure.
enum Closed {
    /// The server closed it (its timeout): resume from the last version.
    ByServer,
    /// 410 Gone: list again.
    Gone,
    /// Nobody follows any Lease any more.
    Idle,
}

/// The hub's task: the list, the watch, the cache and the subscribers.
struct Task {
    hub: Arc<WatchHub>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Subscribers by Lease name.
    followers: HashMap<String, Vec<(u64, mpsc::UnboundedSender<Update>)>>,
    /// The newest record of every Lease of the namespace, by name.
    cache: HashMap<String, Arc<Lease>>,
    /// Whether `cache` holds a list (else new subscribers wait for it).
    synced: bool,
    /// The storage revision the cache is complete as of (the list's, then
    /// each event's): an absent Lease is known absent as of it.
    as_of: Option<u64>,
}

impl Task {
    async fn run(mut self) {
        loop {
            if !self.followers.is_empty() {
                if let Err(error) = self.session().await {
                    self.fail_all(error);
                }
            }
            // Nobody follows: end, unless a request is waiting. Checked under
            // the hub's lock, which every subscription takes to send its
            // request, so none is lost between the check and the end.
            let mut slot = self.hub.commands.lock();
            match self.commands.try_recv() {
                Ok(command) => {
                    drop(slot);
                    self.on_command(command);
                }
                Err(_) => {
                    *slot = None;
                    return;
                }
            }
        }
    }

    /// Lists, then watches, until nobody follows (`Ok`) or the shared watch
    /// fails (`Err`).
    async fn session(&mut self) -> Result<()> {
        self.synced = false;
        self.cache.clear();
        self.as_of = None;
        let mut version = self.list().await?;
        loop {
            if self.followers.is_empty() {
                return Ok(());
            }
            let api = self.hub.api.clone();
            let timeout = self.hub.timeout;
            let clock = self.hub.clock.clone();
            let from = version.clone();
            let opened = self
                .serving(async move {
                    let params = WatchParams::default().timeout(WATCH_SECONDS);
                    clock.timeout(timeout, api.watch(&params, &from)).await
                })
                .await;
            let closed = match opened {
                None => return Err(timed_out("watch leases", timeout)),
                Some(Ok(events)) => self.read(&mut version, events.boxed()).await?,
                Some(Err(e)) if status_code(&e) == Some(410) => Closed::Gone,
                Some(Err(e)) => return Err(classify("watch leases", e)),
            };
            match closed {
                Closed::ByServer => {}
                Closed::Gone => {
                    tracing::debug!(%version, "Lease watch: 410 Gone, listing again");
                    version = self.list().await?;
                }
                Closed::Idle => return Ok(()),
            }
        }
    }

    /// Runs `request` (which must not need the task) while serving
    /// subscriptions.
    async fn serving<F: Future>(&mut self, request: F) -> F::Output {
        tokio::pin!(request);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    // Not while the hub keeps its sender; finish the request.
                    None => return request.await,
                },
                done = &mut request => return done,
            }
        }
    }

    /// Lists every Lease of the namespace into the cache and hands each
    /// subscriber its record: all of them after the first list, the changed
    /// ones after a list that follows a 410. Returns the list's version.
    async fn list(&mut self) -> Result<String> {
        let api = self.hub.api.clone();
        let timeout = self.hub.timeout;
        let clock = self.hub.clock.clone();
        let listed = self
            .serving(async move {
                clock
                    .timeout(timeout, api.list(&ListParams::default()))
                    .await
            })
            .await
            .ok_or_else(|| timed_out("list leases", timeout))?
            .map_err(|e| classify("list leases", e))?;
        let mut fresh: HashMap<String, Arc<Lease>> = HashMap::with_capacity(listed.items.len());
        for lease in listed.items {
            if let Some(name) = lease.metadata.name.clone() {
                fresh.insert(name, Arc::new(lease));
            }
        }
        let version = listed.metadata.resource_version.unwrap_or_default();
        tracing::debug!(
            leases = fresh.len(),
            %version,
            "watching the namespace's Leases"
        );
        let first = !self.synced;
        let old = std::mem::replace(&mut self.cache, fresh);
        self.as_of = version_number(Some(&version));
        self.synced = true;
        let names: Vec<String> = self.followers.keys().cloned().collect();
        for name in names {
            match (old.get(&name), self.cache.get(&name)) {
                // Never an older record after a newer one.
                (Some(old), Some(new)) if !first && !is_newer(old, new) => {
                    self.cache.insert(name, old.clone());
                }
                (None, None) if !first => {}
                _ => self.dispatch(&name),
            }
        }
        Ok(version)
    }

    /// Reads the open watch until it closes, updating `version`.
    async fn read(&mut self, version: &mut String, mut events: Events) -> Result<Closed> {
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        if self.followers.is_empty() {
                            return Ok(Closed::Idle);
                        }
                    }
                    None => return Ok(Closed::Idle),
                },
                event = events.next() => match event {
                    Some(Ok(event)) => match on_event(event) {
                        Seen::Changed(lease) => {
                            self.resume_from(version, lease.metadata.resource_version.as_deref());
                            self.changed(lease);
                        }
                        Seen::Deleted(lease) => {
                            self.resume_from(version, lease.metadata.resource_version.as_deref());
                            self.deleted(&lease);
                        }
                        Seen::Bookmark(mark) => self.resume_from(version, mark.as_deref()),
                        Seen::Gone => return Ok(Closed::Gone),
                        Seen::Ended(error) => {
                            tracing::debug!(error = %error, "the Lease watch ended with an error event");
                            return Err(error);
                        }
                    },
                    Some(Err(e)) => return Err(classify("watch leases", e)),
                    None => {
                        tracing::trace!(%version, "the apiserver closed the Lease watch; re-opening");
                        return Ok(Closed::ByServer);
                    }
                },
            }
        }
    }

    /// A Lease's new record: cached and handed on if newer than the cached one.
    fn changed(&mut self, lease: Lease) {
        let Some(name) = lease.metadata.name.clone() else {
            return;
        };
        if lease.metadata.resource_version.is_none() {
            tracing::warn!(lease = %name, "a Lease watch event without a resourceVersion");
        }
        tracing::debug!(
            lease = %name,
            holder = ?lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()),
            "a Lease changed"
        );
        if self
            .cache
            .get(&name)
            .is_some_and(|old| !is_newer(old, &lease))
        {
            return;
        }
        self.cache.insert(name.clone(), Arc::new(lease));
        self.dispatch(&name);
    }

    /// A Lease was deleted: forgotten, and its followers told.
    fn deleted(&mut self, lease: &Lease) {
        let Some(name) = lease.metadata.name.as_deref() else {
            return;
        };
        if self.cache.remove(name).is_some() {
            self.dispatch(name);
        }
    }

    /// What a subscriber of `name` is told of the Lease now.
    fn record_of(&self, name: &str) -> Update {
        let lease = self.cache.get(name).cloned();
        let version = match &lease {
            Some(lease) => version_number(lease.metadata.resource_version.as_deref()),
            None => self.as_of,
        };
        Update::Record { lease, version }
    }

    /// Tells every subscriber of `name` the Lease's cached state, forgetting
    /// those gone.
    fn dispatch(&mut self, name: &str) {
        let Update::Record { lease, version } = self.record_of(name) else {
            return;
        };
        if let Some(followers) = self.followers.get_mut(name) {
            followers.retain(|(_, updates)| {
                let update = Update::Record {
                    lease: lease.clone(),
                    version,
                };
                updates.send(update).is_ok()
            });
            if followers.is_empty() {
                self.followers.remove(name);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Subscribe { name, id, updates } => {
                if self.synced && updates.send(self.record_of(&name)).is_err() {
                    return;
                }
                self.followers.entry(name).or_default().push((id, updates));
            }
            Command::Unsubscribe { name, id } => {
                if let Some(followers) = self.followers.get_mut(&name) {
                    followers.retain(|(follower, _)| *follower != id);
                    if followers.is_empty() {
                        self.followers.remove(&name);
                    }
                }
            }
        }
    }

    /// Remembers `seen` (an event's version) as the one to resume the watch
    /// from and the one the cache is complete as of.
    fn resume_from(&mut self, version: &mut String, seen: Option<&str>) {
        if let Some(seen) = seen.filter(|v| !v.is_empty()) {
            seen.clone_into(version);
            if let Some(number) = version_number(Some(seen)) {
                self.as_of = Some(self.as_of.map_or(number, |old| old.max(number)));
            }
        }
    }

    /// The shared watch failed: every subscriber gets the error and its
    /// watch ends.
    fn fail_all(&mut self, error: Error) {
        tracing::debug!(error = %error, "shared Lease watch failed");
        let error = Arc::new(error);
        for (_, followers) in self.followers.drain() {
            for (_, updates) in followers {
                let _ = updates.send(Update::Failed(error.clone()));
            }
        }
        self.cache.clear();
        self.synced = false;
        self.as_of = None;
    }
}
