//! [`ConsulLeaseStore`]: the engine's lease operations over one Consul
//! session and the lock key `<prefix>/<resource>/.lock`.
//!
//! Why the leader always stops before the lock can pass to anyone else:
//!
//! - **Expiry.** The session's TTL is the lease duration. Consul invalidates
//!   a session no earlier than TTL after the last renewal reached the server
//!   (in practice about 2 × TTL), while our leader stops leading at the start
//!   of its last successful renewal plus the lease duration (contract C2).
//! - **Early invalidation.** Consul may also invalidate a session long before
//!   its TTL: its agent leaves gracefully, its node is deregistered or
//!   force-left, a check it follows turns critical. The lock is then free
//!   again after the session's lock-delay alone. So the lock-delay is
//!   `lease_duration + grace_period` (like Go's `api.Lock`, whose default
//!   lock-delay of 15 s equals its default TTL, plus the grace period as the
//!   clock-rate margin it is everywhere else), and
//!   [`term_limit`](LeaseStore::term_limit) keeps the leader's term inside
//!   the lock-delay minus that margin. Consul caps the lock-delay at 60 s;
//!   when `lease_duration + grace_period` exceeds that, the term is
//!   shortened to `60 s − grace_period` (and `renew_interval` must fit it).
//!
//! Not covered: Consul keeps lock-delays in the memory of its Raft leader,
//! so a Consul leader change in the same instant as an early invalidation
//! can free the lock at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{stream, StreamExt};
use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, FencingToken, LeaderElectionOptions, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::client::{ConsulClient, KvEntry, KvRead, LockOutcome, SessionSpec, LOCK_FLAG};
use crate::config::{encode_segment, Consistency, MAX_LOCK_DELAY, MAX_SESSION_TTL};
use crate::shared_watch::{copy_error, KeyState, SharedWatch};

/// Consul's default `kv_max_value_size`.
const MAX_VALUE_BYTES: usize = 512 * 1024;

/// What we write into the lock key: who holds it.
#[derive(Serialize, Deserialize)]
struct HolderValue {
    candidate_id: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Differs on every acquisition. Consul skips a write that changes
    /// nothing, so without it a re-acquisition by the same session would
    /// keep the old `ModifyIndex` and repeat a fencing token.
    #[serde(default)]
    acquisition: u64,
}

/// What we write into a candidate-registry key.
#[derive(Serialize, Deserialize)]
struct CandidateValue {
    candidate_id: String,
    is_healthy: bool,
    health_score: f64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    updated_unix_ms: u64,
    ttl_ms: u64,
}

/// A held Consul lock: the session that holds it and the `ModifyIndex` of
/// the acquiring write, which is also the fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulGrant {
    session: String,
    key: String,
    modify_index: u64,
}

/// The per-election Consul store: two sessions, each created on first use
/// and re-created if Consul invalidates it.
///
/// - The **lock session** (`Behavior = release`, the lock-delay) holds the
///   lock key. Only contending and leading renew it, so a candidate that
///   stops contending (unhealthy, or its release failed) lets it expire and
///   the lock go free.
/// - The **registry session** (`Behavior = delete`, no lock-delay) holds the
///   candidate record, renewed by each publish; when a candidate dies,
///   Consul deletes its record with the session.
#[derive(Debug)]
pub struct ConsulLeaseStore {
    client: ConsulClient,
    watches: SharedWatch,
    candidate_id: String,
    resource: String,
    lease_duration: Duration,
    lock_delay: Duration,
    session: Arc<SessionSlot>,
    registry_session: SessionSlot,
    /// The `ModifyIndex` of this store's latest acquisition: a release of
    /// an older term must leave a later one alone.
    last_acquired: AtomicU64,
    /// The freed key (its `ModifyIndex`) Consul last refused for its
    /// lock-delay, and when it first did.
    lock_delay_refused: parking_lot::Mutex<Option<(u64, tokio::time::Instant)>>,
}

/// One session's id. Creating and renewing are serialised by an async
/// mutex; the id itself sits behind a plain mutex that is never held across
/// an await, so a watch stream can read it without queueing behind (and
/// so stalling) a renewal in the engine's own task.
#[derive(Debug, Default)]
struct SessionSlot {
    serial: Mutex<()>,
    id: parking_lot::Mutex<Option<String>>,
}

impl SessionSlot {
    fn get(&self) -> Option<String> {
        self.id.lock().clone()
    }

    fn set(&self, id: Option<String>) {
        *self.id.lock() = id;
    }

    fn take(&self) -> Option<String> {
        self.id.lock().take()
    }
}

impl ConsulLeaseStore {
    pub(crate) fn new(
        client: ConsulClient,
        watches: SharedWatch,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
    ) -> Self {
        Self {
            client,
            watches,
            candidate_id: candidate_id.to_owned(),
            resource: resource.to_owned(),
            lease_duration: options.lease_duration,
            lock_delay: lock_delay(options),
            session: Arc::new(SessionSlot::default()),
            registry_session: SessionSlot::default(),
            last_acquired: AtomicU64::new(0),
            lock_delay_refused: parking_lot::Mutex::new(None),
        }
    }

    /// How long to wait after Consul refused the freed key `after` for its
    /// lock-delay. The delay began when the previous holder's session was
    /// invalidated, which Consul does not say: the first refusal of a freed
    /// key waits the whole lock-delay; a further refusal of the same key
    /// (same `ModifyIndex`) waits what is left of it counted from that first
    /// refusal, and at least a sixteenth of it. A candidate whose clock runs
    /// fast comes back before the lock-delay has passed, and a whole
    /// lock-delay more would make it that much late.
    fn lock_delay_left(&self, after: &KvRead) -> Duration {
        let Some(index) = after.entry.as_ref().map(|e| e.modify_index) else {
            return self.lock_delay;
        };
        let now = tokio::time::Instant::now();
        let mut refused = self.lock_delay_refused.lock();
        match *refused {
            Some((seen, first)) if seen == index => self
                .lock_delay
                .saturating_sub(now.saturating_duration_since(first))
                .max(self.lock_delay / 16),
            _ => {
                *refused = Some((index, now));
                self.lock_delay
            }
        }
    }

    /// The lock-delay of this election's sessions: how long Consul keeps the
    /// lock blocked after a session holding it is invalidated.
    pub fn lock_delay(&self) -> Duration {
        self.lock_delay
    }

    /// `<prefix>/<resource>/.lock`, the key `consul lock <prefix>/<resource>` uses.
    pub fn lock_key(&self) -> String {
        lock_key(&self.client.config().key_prefix, &self.resource)
    }

    fn candidates_prefix(&self) -> String {
        format!(
            "{}/{}/candidates/",
            self.client.config().key_prefix,
            self.resource
        )
    }

    /// The id of this election's current lock session, if one exists.
    pub async fn session_id(&self) -> Option<String> {
        self.session.get()
    }

    /// The id of this election's current candidate-registry session, if one exists.
    pub async fn registry_session_id(&self) -> Option<String> {
        self.registry_session.get()
    }

    /// What the lock session is created with.
    fn lock_session_spec(&self) -> SessionSpec {
        SessionSpec {
            name: format!("leader-election-rs {} {}", self.resource, self.candidate_id),
            ttl: self.lease_duration,
            lock_delay: self.lock_delay,
            behavior: "release",
        }
    }

    /// A live lock session (see [`live`]).
    async fn live_session(&self) -> Result<String> {
        live(&self.client, &self.session, &self.lock_session_spec()).await
    }

    /// A live registry session (see [`live`]).
    async fn live_registry_session(&self) -> Result<String> {
        let spec = SessionSpec {
            name: format!(
                "leader-election-rs {} {} candidate",
                self.resource, self.candidate_id
            ),
            ttl: self.lease_duration,
            lock_delay: Duration::ZERO,
            behavior: "delete",
        };
        live(&self.client, &self.registry_session, &spec).await
    }

    async fn forget_session(&self, id: &str) {
        let _serial = self.session.serial.lock().await;
        if self.session.get().as_deref() == Some(id) {
            self.session.set(None);
        }
    }

    fn holder_value(&self, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        static ACQUISITIONS: AtomicU64 = AtomicU64::new(0);
        let value = serde_json::to_vec(&HolderValue {
            candidate_id: self.candidate_id.clone(),
            metadata: metadata.clone(),
            acquisition: unix_ms(SystemTime::now())
                .wrapping_mul(1_000)
                .wrapping_add(ACQUISITIONS.fetch_add(1, Ordering::Relaxed) % 1_000),
        })
        .map_err(|e| Error::backend(format!("encoding the lock value: {e}")).with_source(e))?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::invalid_option(
                "candidate_metadata",
                "the lock value exceeds Consul's 512 KiB limit",
            ));
        }
        Ok(value)
    }

    /// What a read of the lock key says about the lease, given our lock session.
    fn view(&self, read: &KvRead, own_session: Option<&str>) -> LeaseView {
        self.viewer().view(read, own_session)
    }

    fn viewer(&self) -> ViewMaker {
        ViewMaker {
            candidate_id: self.candidate_id.clone(),
            lease_duration: self.lease_duration,
            lock_delay: self.lock_delay,
        }
    }
}

/// Returns a live session from `slot`: renews the current one, or creates a
/// new one from `spec` when there is none or Consul no longer knows it.
async fn live(client: &ConsulClient, slot: &SessionSlot, spec: &SessionSpec) -> Result<String> {
    let _serial = slot.serial.lock().await;
    if let Some(id) = slot.get() {
        if client.renew_session(&id).await? {
            return Ok(id);
        }
        tracing::info!(session = %id, "Consul session is gone; creating a new one");
    }
    let id = client.create_session(spec).await?;
    slot.set(Some(id.clone()));
    Ok(id)
}

/// The sessions' lock-delay for `options`: a lease plus the grace period,
/// capped at Consul's maximum.
fn lock_delay(options: &LeaderElectionOptions) -> Duration {
    if is_active(Mutant::ConsulLockDelayGrace) {
        return options.grace_period.min(MAX_LOCK_DELAY);
    }
    options
        .lease_duration
        .saturating_add(options.grace_period)
        .min(MAX_LOCK_DELAY)
}

/// How long a term may last from its request's start: the lease, but never
/// past the lock-delay minus the grace period's clock-rate margin, since an
/// early-invalidated session frees the lock after the lock-delay alone.
fn term_limit(options: &LeaderElectionOptions) -> Duration {
    if is_active(Mutant::ConsulIgnoreLockDelay) || is_active(Mutant::ConsulLockDelayGrace) {
        return options.lease_duration;
    }
    options
        .lease_duration
        .min(lock_delay(options).saturating_sub(options.grace_period))
}

/// The lock key of a resource.
pub(crate) fn lock_key(prefix: &str, resource: &str) -> String {
    format!("{prefix}/{resource}/.lock")
}

/// The candidate id in a lock value we wrote; for other clients (`consul
/// lock`, Go's `api.Lock`) the holding session.
fn holder_of(entry: &KvEntry, session: &str) -> String {
    entry
        .value_bytes()
        .and_then(|bytes| serde_json::from_slice::<HolderValue>(&bytes).ok())
        .map(|value| value.candidate_id)
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("consul-session:{session}"))
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl LeaseStore for ConsulLeaseStore {
    type Grant = ConsulGrant;

    fn validate(&self, options: &LeaderElectionOptions) -> Result<()> {
        let min = self.client.config().session_ttl_min;
        if options.lease_duration < min || options.lease_duration > MAX_SESSION_TTL {
            return Err(Error::invalid_option(
                "lease_duration",
                format!(
                    "is the Consul session TTL, so it must be between session_ttl_min ({min:?}) and 24 h, got {:?}",
                    options.lease_duration
                ),
            ));
        }
        if options.grace_period >= MAX_LOCK_DELAY {
            return Err(Error::invalid_option(
                "grace_period",
                format!(
                    "must be below Consul's 60 s lock-delay cap: the term must end a grace period \
                     before an early-invalidated session's lock is free, got {:?}",
                    options.grace_period
                ),
            ));
        }
        let limit = term_limit(options);
        if options.renew_interval.saturating_mul(2) >= limit {
            return Err(Error::invalid_option(
                "renew_interval",
                format!(
                    "must leave room for two renewals inside the Consul term limit \
                     (2 × renew_interval < min(lease_duration, 60 s lock-delay cap − grace_period) = {limit:?}), \
                     got {:?}",
                    options.renew_interval
                ),
            ));
        }
        self.holder_value(&options.candidate_metadata).map(drop)
    }

    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        term_limit(options)
    }

    /// Creates the lock session, so that a TTL the agent refuses (below its
    /// `session_ttl_min`) fails `start()` naming `lease_duration`.
    async fn prepare(&self) -> Result<()> {
        self.live_session().await.map(drop)
    }

    /// Two requests when the election's watch has the key: a session
    /// renewal (or creation), then one transaction that locks the key only
    /// if it is still what the watch showed (`check-index`, or
    /// `check-not-exists`) and answers with the acquiring write's
    /// `ModifyIndex`, the fencing token. A read of the key comes first only
    /// when the watch has nothing (the first attempt after `start()`, a
    /// failing watch) or shows the key held by another session, and after
    /// a lock refused because the key changed.
    async fn try_acquire(&self, claim: &LeaseClaim) -> Result<Acquisition<ConsulGrant>> {
        let key = self.lock_key();
        // Only a watched key that looks free (or ours) is taken on trust,
        // since the transaction re-checks it. One that looks held by
        // another session is read again: the watch's query may be stuck
        // (a black-holed connection waits out its timeout, about
        // `watch_wait`) and miss the release, which would leave this
        // candidate waiting with no request sent (found by the
        // simulation, Consul seed 208).
        let ours = self.session.get();
        let watched = self.watches.latest(&key).filter(|read| {
            let holder = read.entry.as_ref().and_then(KvEntry::holder_session);
            holder.is_none() || holder == ours.as_deref()
        });
        let (mut current, mut fresh) = match watched {
            Some(read) => (read, false),
            None => (
                self.client.read(&key, Consistency::Default, None).await?,
                true,
            ),
        };
        let mut session = None;
        loop {
            if let Some(entry) = &current.entry {
                if entry.flags != LOCK_FLAG && entry.flags != 0 {
                    return Err(Error::backend(format!(
                        "{key} carries flags {:#x}, not a lock's: another kind of client (a semaphore?) uses it",
                        entry.flags
                    )));
                }
                let ours = self.session.get();
                match entry.holder_session() {
                    Some(holder) if Some(holder) != ours.as_deref() => {
                        return Ok(Acquisition::Held(self.view(&current, ours.as_deref())));
                    }
                    _ => {}
                }
            }
            // Renewed (or created) after the claim's start, so Consul keeps
            // the session at least a TTL past it: the whole term.
            let session = match &session {
                Some(id) => Clone::clone(id),
                None => session.insert(self.live_session().await?).clone(),
            };
            let value = self.holder_value(&claim.holder_metadata)?;
            let seen = current.entry.as_ref().map(|e| e.modify_index);
            let outcome = self
                .client
                .lock_at(&key, seen, &session, LOCK_FLAG, &value)
                .await?;
            match outcome {
                LockOutcome::Locked(modify_index) => {
                    self.last_acquired.fetch_max(modify_index, Ordering::SeqCst);
                    return Ok(Acquisition::Acquired {
                        fencing_token: FencingToken(modify_index),
                        grant: ConsulGrant {
                            session,
                            key,
                            modify_index,
                        },
                    });
                }
                // The watch's view was behind: look again, once.
                LockOutcome::Changed if !fresh => {
                    current = self.client.read(&key, Consistency::Default, None).await?;
                    fresh = true;
                }
                LockOutcome::Changed | LockOutcome::LockDelay | LockOutcome::Refused => {
                    let after = self
                        .client
                        .read(&key, Consistency::Consistent, None)
                        .await?;
                    let mut view = self.view(&after, Some(&session));
                    if view.holder.is_none() && outcome == LockOutcome::LockDelay {
                        // Free but refused: Consul's lock-delay after the
                        // previous holder's session died. Try again when it
                        // has passed.
                        view.acquirable_in = Some(self.lock_delay_left(&after));
                    }
                    return Ok(Acquisition::Held(view));
                }
            }
        }
    }

    async fn renew(&self, grant: &ConsulGrant) -> Result<Renewal<ConsulGrant>> {
        if !self.client.renew_session(&grant.session).await? {
            self.forget_session(&grant.session).await;
            return Ok(Renewal::Lost(None));
        }
        let read = self
            .client
            .read(&grant.key, Consistency::Consistent, None)
            .await?;
        // Like `api.Lock`, the lock is ours while the key names our session:
        // an operator's plain PUT (new value, new ModifyIndex) leaves the
        // session on the key, and no one else can take it before the session
        // ends. The term keeps its token, the acquiring write's ModifyIndex;
        // whoever acquires next gets a larger one.
        match &read.entry {
            Some(entry) if entry.holder_session() == Some(grant.session.as_str()) => {
                Ok(Renewal::Renewed(grant.clone()))
            }
            _ => Ok(Renewal::Lost(Some(self.view(&read, Some(&grant.session))))),
        }
    }

    async fn release(&self, grant: &ConsulGrant) -> Result<()> {
        // An unlock, not a destroy: a destroy would impose the lock-delay on
        // the next holder.
        if is_active(Mutant::ConsulReleaseWithoutIndex) {
            return self
                .client
                .release(&grant.key, &grant.session, LOCK_FLAG)
                .await
                .map(drop);
        }
        // Conditional on the term's own write: a release that is still on
        // its way after the caller gave up on it (timed out) must not free
        // a later term that this session acquired in the meantime; a plain
        // `?release=<session>` would.
        if self
            .client
            .release_at(&grant.key, &grant.session, LOCK_FLAG, grant.modify_index)
            .await?
        {
            return Ok(());
        }
        // The key moved since the term began. If this store acquired it
        // again, that later term is not ours to end. Otherwise an
        // operator's plain PUT rewrote it during the term (our session still
        // holds it): release at the index just read.
        let read = self
            .client
            .read(&grant.key, Consistency::Consistent, None)
            .await?;
        match read.entry {
            Some(entry)
                if entry.holder_session() == Some(grant.session.as_str())
                    && self.last_acquired.load(Ordering::SeqCst) <= grant.modify_index =>
            {
                self.client
                    .release_at(&grant.key, &grant.session, LOCK_FLAG, entry.modify_index)
                    .await
                    .map(drop)
            }
            _ => Ok(()),
        }
    }

    /// The lock key's part of the factory's shared watch (one blocking
    /// query on the whole prefix, see the crate's README): a view each time
    /// the key changes, an error each time the shared query fails.
    fn watch(&self) -> LeaseWatch {
        let receiver = match self.watches.subscribe(&self.lock_key()) {
            Ok(receiver) => receiver,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        let viewer = self.viewer();
        let session = Arc::clone(&self.session);
        // `fresh`: the channel's current state has not been looked at. A
        // failure found there is an old one, which the election has seen
        // already (it is why the election watches again): wait for news.
        stream::unfold((receiver, true), move |(mut receiver, fresh)| {
            let (viewer, session) = (viewer.clone(), Arc::clone(&session));
            async move {
                let mut look_now = fresh;
                loop {
                    if !look_now && receiver.changed().await.is_err() {
                        return None;
                    }
                    let state = receiver.borrow_and_update().clone();
                    match state {
                        KeyState::Read(read) => {
                            let view = viewer.view(&read, session.get().as_deref());
                            return Some((Ok(view), (receiver, false)));
                        }
                        KeyState::Failed(error) if !look_now => {
                            return Some((Err(copy_error(&error)), (receiver, false)));
                        }
                        KeyState::Failed(_) | KeyState::Pending => look_now = false,
                    }
                }
            }
        })
        .boxed()
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        let session = self.live_registry_session().await?;
        let value = serde_json::to_vec(&CandidateValue {
            candidate_id: record.candidate_id.clone(),
            is_healthy: record.is_healthy,
            health_score: record.health_score,
            metadata: record.metadata.clone(),
            updated_unix_ms: unix_ms(record.updated_at),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        })
        .map_err(|e| {
            Error::backend(format!("encoding the candidate record: {e}")).with_source(e)
        })?;
        let key = format!(
            "{}{}",
            self.candidates_prefix(),
            encode_segment(&record.candidate_id)
        );
        // Bound to the registry session (Behavior = delete), the entry is
        // deleted by Consul when we die.
        if !self.client.acquire(&key, &session, 0, value).await? {
            return Err(Error::unavailable(format!(
                "Consul refused to bind {key} to our session"
            )));
        }
        Ok(())
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        let entries = self.client.list(&self.candidates_prefix()).await?;
        Ok(live_records(&entries, unix_ms(SystemTime::now())))
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        let key = format!(
            "{}{}",
            self.candidates_prefix(),
            encode_segment(&self.candidate_id)
        );
        self.client.delete(&key).await
    }

    async fn close(&self) -> Result<()> {
        let lock = {
            let _serial = self.session.serial.lock().await;
            self.session.take()
        };
        let registry = {
            let _serial = self.registry_session.serial.lock().await;
            self.registry_session.take()
        };
        let mut result = Ok(());
        for id in [lock, registry].into_iter().flatten() {
            if let Err(error) = self.client.destroy_session(&id).await {
                result = Err(error);
            }
        }
        result
    }
}

/// The live candidate records among registry entries at `now_ms`: bound
/// to a session (unbound: its session died), readable, and not expired.
pub(crate) fn live_records(entries: &[KvEntry], now_ms: u64) -> Vec<CandidateRecord> {
    entries
        .iter()
        .filter(|entry| entry.holder_session().is_some())
        .filter_map(|entry| serde_json::from_slice::<CandidateValue>(&entry.value_bytes()?).ok())
        .filter(|value| value.updated_unix_ms.saturating_add(value.ttl_ms) > now_ms)
        .map(|value| CandidateRecord {
            candidate_id: value.candidate_id,
            is_healthy: value.is_healthy,
            health_score: value.health_score,
            metadata: value.metadata,
            updated_at: UNIX_EPOCH + Duration::from_millis(value.updated_unix_ms),
        })
        .collect()
}

/// The part of the store a watch stream needs to turn reads into views.
#[derive(Clone)]
pub(crate) struct ViewMaker {
    pub(crate) candidate_id: String,
    pub(crate) lease_duration: Duration,
    pub(crate) lock_delay: Duration,
}

impl ViewMaker {
    /// What a read of the lock key says about the lease. A key held by our
    /// own lock session is ours whatever its value says (an operator may
    /// have overwritten it) and carries no token: the term's token stays
    /// that of the acquiring write.
    pub(crate) fn view(&self, read: &KvRead, own_session: Option<&str>) -> LeaseView {
        if let Some(entry) = &read.entry {
            if entry.holder_session().is_some() && entry.holder_session() == own_session {
                return LeaseView {
                    holder: Some(self.candidate_id.clone()),
                    fencing_token: None,
                    acquirable_in: None,
                    incarnation: None,
                };
            }
        }
        match &read.entry {
            None => LeaseView {
                holder: None,
                fencing_token: Some(FencingToken(read.index)),
                acquirable_in: None,
                incarnation: None,
            },
            Some(entry) => LeaseView {
                holder: entry
                    .holder_session()
                    .map(|session| holder_of(entry, session)),
                fencing_token: Some(FencingToken(entry.modify_index)),
                acquirable_in: entry
                    .holder_session()
                    .map(|_| self.lease_duration * 2 + self.lock_delay),
                incarnation: None,
            },
        }
    }
}
