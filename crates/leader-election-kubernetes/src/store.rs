//! [`KubernetesLeaseStore`]: the engine's lease operations over one
//! `coordination.k8s.io/v1` Lease, wire-compatible with client-go's `LeaseLock`.
//!
//! Expiry follows client-go's observed-time rule: a lease held by someone
//! else may be taken once `leaseDurationSeconds` (from the record) plus our
//! grace period have passed on *our* monotonic clock since we first saw the
//! record in its current form. The remote `renewTime` is never compared with
//! the local clock, so clock skew between machines does not matter (only
//! clock *rate* does, which the grace period covers).
//!
//! Every write is a PUT carrying `metadata.resourceVersion`; a 409 Conflict
//! means someone else wrote first, and we re-read rather than overwrite.
//!
//! `holderIdentity` is the candidate id, as client-go expects, and the
//! annotation [`INSTANCE_ANNOTATION`] says which store value (one per
//! election) made the acquisition. Only that store value takes a Lease held
//! under its id back early; a Lease held under the same id by another
//! process or election is anybody else's, taken only after it expired.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, FencingToken, LeaderElectionOptions, Result};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{stable_hash, validate_resource};
use crate::tokens::{next_term, token_of, EPOCH_ANNOTATION};

/// Label on candidate Leases: a hash of the resource they stand for.
const RESOURCE_LABEL: &str = "leader-election-rs/resource-hash";
/// Annotation on candidate Leases with the health record (JSON).
const HEALTH_ANNOTATION: &str = "leader-election-rs/health";
/// Annotation on the Lease: the store value (election instance) whose
/// acquisition the current holder's term is. Random per store value.
pub const INSTANCE_ANNOTATION: &str = "leader-election-rs/holder-instance";

/// How much earlier than the truth a client-go follower may date our last
/// renewal. client-go notices a renewal by comparing raw records in which
/// `renewTime` is serialised to whole seconds, so renewals within one second
/// look unchanged to it: it can date the lease from a renewal up to one
/// second older than our last. A term therefore lasts at most
/// `lease_duration` minus this (see [`LeaseStore::term_limit`]).
pub const CLIENT_GO_DATING_MARGIN: Duration = Duration::from_secs(1);

/// How many times one renew call re-reads and retries after a 409 Conflict
/// on a term that is still intact (someone wrote other fields), before it
/// reports the backend unavailable and lets the engine retry later.
const CONFLICT_RETRIES: usize = 3;

/// A held Lease: the object as we last wrote it (with its resourceVersion)
/// and the term's fencing token.
#[derive(Clone, Debug)]
pub struct KubernetesGrant {
    lease: Lease,
    token: FencingToken,
}

/// The fields that make a record "the same" for the observed-time rule.
#[derive(Clone, Debug, PartialEq)]
struct RecordKey {
    /// The Lease object's uid: a re-created Lease is a new record.
    uid: Option<String>,
    holder: Option<String>,
    duration: Option<i32>,
    acquire: Option<MicroTime>,
    renew: Option<MicroTime>,
    transitions: Option<i32>,
    epoch: Option<String>,
}

#[derive(Debug, Default)]
struct Observation {
    record: Option<(RecordKey, Instant)>,
}

/// The per-election Kubernetes store.
#[derive(Clone)]
pub struct KubernetesLeaseStore {
    api: Api<Lease>,
    namespace: String,
    name: String,
    candidate_id: String,
    /// This store value's mark on its acquisitions ([`INSTANCE_ANNOTATION`]);
    /// clones (the watch) share it.
    instance: String,
    lease_seconds: i32,
    grace: Duration,
    timeout: Duration,
    observed: Arc<Mutex<Observation>>,
}

impl std::fmt::Debug for KubernetesLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesLeaseStore")
            .field("namespace", &self.namespace)
            .field("lease", &self.name)
            .field("candidate_id", &self.candidate_id)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// A value no other store value (in this process or another) is expected to
/// pick: std's randomly keyed hasher over the process id, a counter and the
/// time. Not for security; only to tell election instances apart.
fn instance_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    static CREATED: AtomicU64 = AtomicU64::new(0);
    let count = CREATED.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut halves = [0u64; 2];
    for (salt, half) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(salt);
        hasher.write_u32(std::process::id());
        hasher.write_u64(count);
        hasher.write_u128(nanos);
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// `leaseDurationSeconds` for a lease duration: whole seconds, rounded up,
/// so observers never take the lease before our own deadline passed.
pub(crate) fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX).max(1)
}

/// The longest a term may last from the start of the request that began or
/// extended it: the lease minus [`CLIENT_GO_DATING_MARGIN`].
pub(crate) fn term_limit(options: &LeaderElectionOptions) -> Duration {
    options
        .lease_duration
        .saturating_sub(CLIENT_GO_DATING_MARGIN)
}

/// The Kubernetes rule on options: a renewal must fall due inside a term.
pub(crate) fn validate_timing(options: &LeaderElectionOptions) -> Result<()> {
    let limit = term_limit(options);
    if options.renew_interval >= limit {
        return Err(Error::invalid_option(
            "renew_interval",
            format!(
                "must be shorter than lease_duration minus 1 s on Kubernetes (client-go followers date renewals to the whole second, so a term lasts at most lease_duration - 1 s: renew_interval < lease_duration - 1 s), got renew_interval {:?} and lease_duration {:?}",
                options.renew_interval, options.lease_duration
            ),
        ));
    }
    Ok(())
}

/// Maps a kube error to the engine's error kinds.
fn classify(what: &str, error: kube::Error) -> Error {
    let classified = match &error {
        kube::Error::Api(status) if status.code == 403 || status.code == 401 => Error::unauthorized(format!(
            "Kubernetes refused {what}: {}; the Role needs the verbs get, list, watch, create, update and delete on `leases` in the API group `coordination.k8s.io`",
            status.message
        )),
        kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
            Error::unavailable(format!("Kubernetes {what}: {} ({})", status.message, status.code))
        }
        kube::Error::Api(status) => Error::backend(format!("Kubernetes {what}: {} ({})", status.message, status.code)),
        _ => Error::unavailable(format!("Kubernetes {what}: {error}")),
    };
    classified.with_source(error)
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn annotation<'a>(lease: &'a Lease, key: &str) -> Option<&'a str> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The fencing token of the term the Lease records.
fn lease_token(lease: &Lease) -> Option<FencingToken> {
    token_of(
        annotation(lease, EPOCH_ANNOTATION),
        lease.spec.as_ref().and_then(|s| s.lease_transitions),
    )
}

impl KubernetesLeaseStore {
    pub(crate) fn new(
        client: kube::Client,
        namespace: &str,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
        timeout: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: resource.to_owned(),
            candidate_id: candidate_id.to_owned(),
            instance: instance_nonce(),
            lease_seconds: whole_seconds(options.lease_duration),
            grace: options.grace_period,
            timeout,
            observed: Arc::new(Mutex::new(Observation::default())),
        }
    }

    /// The Lease's name (the resource name).
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// The namespace of the Lease.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// This store value's mark in [`INSTANCE_ANNOTATION`] on the Leases it
    /// acquires.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<kube::Result<T>> {
        tokio::time::timeout(self.timeout, call).await.map_err(|_| {
            Error::unavailable(format!(
                "Kubernetes {what} timed out after {:?}",
                self.timeout
            ))
        })
    }

    async fn get(&self) -> Result<Option<Lease>> {
        self.call("get lease", self.api.get_opt(&self.name))
            .await?
            .map_err(|e| classify("get lease", e))
    }

    /// Records a read of the Lease (or its absence) and says what it means.
    fn observe(&self, lease: Option<&Lease>) -> LeaseView {
        observe(&self.observed, lease, self.grace)
    }

    /// Whether the Lease records an acquisition by this very store value.
    fn is_ours(&self, lease: &Lease) -> bool {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        holder == Some(self.candidate_id.as_str())
            && annotation(lease, INSTANCE_ANNOTATION) == Some(self.instance.as_str())
    }

    /// Writes this store value's acquisition into `lease`: the spec as
    /// client-go writes it, plus our instance and the token's epoch.
    fn claim_for_us(&self, lease: &mut Lease, epoch: &str, transitions: i32) {
        let stamp = now();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.candidate_id.clone()),
            lease_duration_seconds: Some(self.lease_seconds),
            acquire_time: Some(stamp.clone()),
            renew_time: Some(stamp),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        });
        let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(INSTANCE_ANNOTATION.to_owned(), self.instance.clone());
        annotations.insert(EPOCH_ANNOTATION.to_owned(), epoch.to_owned());
    }

    /// The storage revision of a consistent list of the Lease: above the
    /// revision of every write so far, including the deletion of any earlier
    /// incarnation of the Lease.
    async fn list_revision(&self) -> Result<Option<String>> {
        let params = ListParams::default().fields(&format!("metadata.name={}", self.name));
        let listed = self
            .call("list lease", self.api.list(&params))
            .await?
            .map_err(|e| classify("list lease", e))?;
        Ok(listed.metadata.resource_version)
    }

    fn candidate_lease_name(&self, candidate_id: &str) -> String {
        format!("{}-candidate-{}", self.name, stable_hash(candidate_id))
    }
}

fn record_key(lease: &Lease) -> RecordKey {
    let spec = lease.spec.clone().unwrap_or_default();
    RecordKey {
        uid: lease.metadata.uid.clone(),
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        duration: spec.lease_duration_seconds,
        acquire: spec.acquire_time,
        renew: spec.renew_time,
        transitions: spec.lease_transitions,
        epoch: annotation(lease, EPOCH_ANNOTATION).map(str::to_owned),
    }
}

fn observe(observed: &Mutex<Observation>, lease: Option<&Lease>, grace: Duration) -> LeaseView {
    let now = Instant::now();
    let mut observation = observed.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lease) = lease else {
        observation.record = None;
        return LeaseView::default();
    };
    let key = record_key(lease);
    let first_seen = match &observation.record {
        Some((previous, at)) if *previous == key => *at,
        _ => now,
    };
    observation.record = Some((key.clone(), first_seen));
    view_of(&key, first_seen, grace, now)
}

/// What a record first seen at `first_seen` means at `now`, by client-go's
/// observed-time rule.
fn view_of(key: &RecordKey, first_seen: Instant, grace: Duration, now: Instant) -> LeaseView {
    let acquirable_in = key.holder.as_ref().map(|_| {
        // A missing or nonsensical duration counts as one second, like a release.
        let seconds = u64::try_from(key.duration.unwrap_or(1).max(1)).unwrap_or(1);
        (first_seen + Duration::from_secs(seconds) + grace).saturating_duration_since(now)
    });
    LeaseView {
        holder: key.holder.clone(),
        fencing_token: token_of(key.epoch.as_deref(), key.transitions),
        acquirable_in,
        incarnation: key.uid.clone(),
    }
}

/// What we store in a candidate Lease's annotation.
#[derive(Serialize, Deserialize)]
struct HealthAnnotation {
    candidate_id: String,
    resource: String,
    is_healthy: bool,
    health_score: f64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl LeaseStore for KubernetesLeaseStore {
    type Grant = KubernetesGrant;

    fn validate(&self, options: &LeaderElectionOptions) -> Result<()> {
        validate_resource(&self.name)?;
        validate_timing(options)
    }

    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        term_limit(options)
    }

    fn grant_incarnation(&self, grant: &KubernetesGrant) -> Option<String> {
        grant.lease.metadata.uid.clone()
    }

    async fn try_acquire(&self, _claim: &LeaseClaim) -> Result<Acquisition<KubernetesGrant>> {
        let current = self.get().await?;
        let Some(mut lease) = current else {
            let revision = self.list_revision().await?;
            let next = next_term(revision.as_deref(), None)?;
            let mut fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: None,
            };
            self.claim_for_us(&mut fresh, &next.epoch, next.transitions);
            return match self
                .call(
                    "create lease",
                    self.api.create(&PostParams::default(), &fresh),
                )
                .await?
            {
                Ok(created) => {
                    self.observe(Some(&created));
                    Ok(Acquisition::Acquired {
                        grant: KubernetesGrant {
                            lease: created,
                            token: next.token,
                        },
                        fencing_token: next.token,
                    })
                }
                // AlreadyExists: another candidate created it first.
                Err(e) if status_code(&e) == Some(409) => {
                    Ok(Acquisition::Held(self.observe(self.get().await?.as_ref())))
                }
                Err(e) => Err(classify("create lease", e)),
            };
        };
        let view = self.observe(Some(&lease));
        // Held under our candidate id counts as ours only if this store value
        // acquired it: another process or election with the same id is
        // someone else, whose lease we wait out like any other.
        let ours = self.is_ours(&lease);
        let free = view.holder.is_none() || ours || view.acquirable_in == Some(Duration::ZERO);
        if !free {
            return Ok(Acquisition::Held(view));
        }
        // A missing counter counts as 0, as in client-go: this is transition 1.
        let previous = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        let next = next_term(lease.metadata.resource_version.as_deref(), Some(previous))?;
        self.claim_for_us(&mut lease, &next.epoch, next.transitions);
        match self
            .call(
                "update lease",
                self.api.replace(&self.name, &PostParams::default(), &lease),
            )
            .await?
        {
            Ok(updated) => {
                self.observe(Some(&updated));
                Ok(Acquisition::Acquired {
                    grant: KubernetesGrant {
                        lease: updated,
                        token: next.token,
                    },
                    fencing_token: next.token,
                })
            }
            // Someone wrote between our read and our update: never overwrite.
            Err(e) if status_code(&e) == Some(409) => {
                Ok(Acquisition::Held(self.observe(self.get().await?.as_ref())))
            }
            Err(e) => Err(classify("update lease", e)),
        }
    }

    async fn renew(&self, grant: &KubernetesGrant) -> Result<Renewal<KubernetesGrant>> {
        let mut lease = grant.lease.clone();
        for _ in 0..CONFLICT_RETRIES {
            let mut spec = lease.spec.clone().unwrap_or_default();
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(self.lease_seconds);
            lease.spec = Some(spec);
            // Fast path like client-go: update the cached object without a GET.
            match self
                .call(
                    "renew lease",
                    self.api.replace(&self.name, &PostParams::default(), &lease),
                )
                .await?
            {
                Ok(updated) => {
                    self.observe(Some(&updated));
                    return Ok(Renewal::Renewed(KubernetesGrant {
                        lease: updated,
                        token: grant.token,
                    }));
                }
                Err(e) if status_code(&e) == Some(409) || status_code(&e) == Some(404) => {
                    let current = self.get().await?;
                    let view = self.observe(current.as_ref());
                    match current {
                        // Our term is intact (someone touched other fields):
                        // renew on the fresh object.
                        Some(fresh)
                            if self.is_ours(&fresh) && lease_token(&fresh) == Some(grant.token) =>
                        {
                            lease = fresh;
                        }
                        _ => return Ok(Renewal::Lost(Some(view))),
                    }
                }
                Err(e) => return Err(classify("renew lease", e)),
            }
        }
        Err(Error::unavailable(format!(
            "Kubernetes renew conflicted {CONFLICT_RETRIES} times with other writers of an intact term"
        )))
    }

    async fn release(&self, grant: &KubernetesGrant) -> Result<()> {
        let mut lease = grant.lease.clone();
        for _ in 0..CONFLICT_RETRIES {
            // client-go's release: empty holder, one-second duration, same transitions.
            let stamp = now();
            let mut spec = lease.spec.clone().unwrap_or_default();
            spec.holder_identity = Some(String::new());
            spec.lease_duration_seconds = Some(1);
            spec.acquire_time = Some(stamp.clone());
            spec.renew_time = Some(stamp);
            lease.spec = Some(spec);
            match self
                .call(
                    "release lease",
                    self.api.replace(&self.name, &PostParams::default(), &lease),
                )
                .await?
            {
                Ok(released) => {
                    self.observe(Some(&released));
                    return Ok(());
                }
                Err(e) if status_code(&e) == Some(409) => {
                    // A racing renew bumped the resourceVersion: release the fresh
                    // object if it is still our term, else there is nothing to do.
                    let Some(fresh) = self.get().await? else {
                        return Ok(());
                    };
                    if !(self.is_ours(&fresh) && lease_token(&fresh) == Some(grant.token)) {
                        return Ok(());
                    }
                    lease = fresh;
                }
                Err(e) if status_code(&e) == Some(404) => return Ok(()),
                Err(e) => return Err(classify("release lease", e)),
            }
        }
        Err(Error::unavailable(
            "Kubernetes release kept conflicting; the lease will expire",
        ))
    }

    fn watch(&self) -> LeaseWatch {
        let store = self.clone();
        // State: the resourceVersion to resume from and the open watch, if any.
        type Events = futures_util::stream::BoxStream<'static, kube::Result<WatchEvent<Lease>>>;
        let initial: (Option<String>, Option<Events>) = (None, None);
        stream::unfold((store, initial), |(store, (version, events))| async move {
            let (version, mut events) = match (version, events) {
                (Some(version), Some(events)) => (version, events),
                (version, None) => {
                    let version = match version {
                        Some(version) => version,
                        None => {
                            // (Re)list: one view now and a version to watch from.
                            let params = ListParams::default()
                                .fields(&format!("metadata.name={}", store.name));
                            let listed =
                                match store.call("list lease", store.api.list(&params)).await {
                                    Ok(Ok(list)) => list,
                                    Ok(Err(e)) => {
                                        return Some((
                                            Err(classify("list lease", e)),
                                            (store, (None, None)),
                                        ))
                                    }
                                    Err(e) => return Some((Err(e), (store, (None, None)))),
                                };
                            let view = store.observe(listed.items.first());
                            let version = listed.metadata.resource_version.unwrap_or_default();
                            return Some((Ok(view), (store, (Some(version), None))));
                        }
                    };
                    let params = WatchParams::default()
                        .fields(&format!("metadata.name={}", store.name))
                        .timeout(290);
                    match store.api.watch(&params, &version).await {
                        Ok(events) => (version, events.boxed()),
                        Err(e) => {
                            return Some((Err(classify("watch lease", e)), (store, (None, None))))
                        }
                    }
                }
                (None, Some(_)) => {
                    return Some((
                        Err(Error::unavailable("watch lost its version")),
                        (store, (None, None)),
                    ))
                }
            };
            loop {
                match events.next().await {
                    Some(Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease))) => {
                        let next = lease.metadata.resource_version.clone().unwrap_or(version);
                        let view = store.observe(Some(&lease));
                        return Some((Ok(view), (store, (Some(next), Some(events)))));
                    }
                    Some(Ok(WatchEvent::Deleted(lease))) => {
                        let next = lease.metadata.resource_version.clone().unwrap_or(version);
                        let view = store.observe(None);
                        return Some((Ok(view), (store, (Some(next), Some(events)))));
                    }
                    Some(Ok(WatchEvent::Bookmark(_))) => continue,
                    // 410 Gone and other errors: start over with a fresh list.
                    Some(Ok(WatchEvent::Error(status))) => {
                        let error = Error::unavailable(format!(
                            "Kubernetes watch: {} ({})",
                            status.message, status.code
                        ));
                        return Some((Err(error), (store, (None, None))));
                    }
                    Some(Err(e)) => {
                        return Some((Err(classify("watch lease", e)), (store, (None, None))))
                    }
                    // The server closed the watch (timeout): resume from where we were.
                    None => {
                        return Some((Ok(store.current_view()), (store, (Some(version), None))))
                    }
                }
            }
        })
        .boxed()
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        let resource = self.name.as_str();
        let name = self.candidate_lease_name(&record.candidate_id);
        let annotation = serde_json::to_string(&HealthAnnotation {
            candidate_id: record.candidate_id.clone(),
            resource: resource.to_owned(),
            is_healthy: record.is_healthy,
            health_score: record.health_score,
            metadata: record.metadata.clone(),
        })
        .map_err(|e| {
            Error::backend(format!("encoding the candidate record: {e}")).with_source(e)
        })?;
        let existing = self
            .call("get candidate lease", self.api.get_opt(&name))
            .await?
            .map_err(|e| classify("get candidate lease", e))?;
        let mut lease = existing.clone().unwrap_or_default();
        lease.metadata.name = Some(name.clone());
        lease.metadata.namespace = Some(self.namespace.clone());
        lease
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(RESOURCE_LABEL.to_owned(), stable_hash(resource));
        lease
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(HEALTH_ANNOTATION.to_owned(), annotation);
        let stamp = now();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(record.candidate_id.clone()),
            lease_duration_seconds: Some(whole_seconds(ttl)),
            renew_time: Some(stamp),
            ..LeaseSpec::default()
        });
        let written = match existing {
            Some(_) => {
                self.call(
                    "update candidate lease",
                    self.api.replace(&name, &PostParams::default(), &lease),
                )
                .await?
            }
            None => {
                self.call(
                    "create candidate lease",
                    self.api.create(&PostParams::default(), &lease),
                )
                .await?
            }
        };
        match written {
            Ok(_) => Ok(()),
            // Only this candidate writes its own record; a conflict is a retry away.
            Err(e) if status_code(&e) == Some(409) => {
                Err(Error::unavailable("candidate lease changed concurrently"))
            }
            Err(e) => Err(classify("write candidate lease", e)),
        }
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        let resource = self.name.as_str();
        let params =
            ListParams::default().labels(&format!("{RESOURCE_LABEL}={}", stable_hash(resource)));
        let listed = self
            .call("list candidate leases", self.api.list(&params))
            .await?
            .map_err(|e| classify("list candidate leases", e))?;
        let now = Timestamp::now();
        let mut records = Vec::new();
        for lease in listed.items {
            let spec = lease.spec.clone().unwrap_or_default();
            let Some(health) = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HEALTH_ANNOTATION))
                .and_then(|json| serde_json::from_str::<HealthAnnotation>(json).ok())
            else {
                continue;
            };
            if health.resource != resource {
                continue;
            }
            // Registry entries are informational, so wall-clock expiry is
            // acceptable here (unlike the main lease).
            let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds)
            else {
                continue;
            };
            let expires = renewed.0.as_second().saturating_add(i64::from(seconds));
            if expires <= now.as_second() {
                continue;
            }
            let updated = std::time::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(renewed.0.as_millisecond()).unwrap_or(0));
            records.push(CandidateRecord {
                candidate_id: health.candidate_id,
                is_healthy: health.is_healthy,
                health_score: health.health_score,
                metadata: health.metadata,
                updated_at: updated,
            });
        }
        Ok(records)
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        let name = self.candidate_lease_name(&self.candidate_id);
        match self
            .call(
                "delete candidate lease",
                self.api.delete(&name, &DeleteParams::default()),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(classify("delete candidate lease", e)),
        }
    }
}

impl KubernetesLeaseStore {
    /// The view from the last observation, for a watch that closed quietly.
    fn current_view(&self) -> LeaseView {
        let observation = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match &observation.record {
            None => LeaseView::default(),
            Some((key, first_seen)) => view_of(key, *first_seen, self.grace, Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(lease_ms: u64, renew_ms: u64) -> LeaderElectionOptions {
        LeaderElectionOptions {
            lease_duration: Duration::from_millis(lease_ms),
            renew_interval: Duration::from_millis(renew_ms),
            ..LeaderElectionOptions::default()
        }
    }

    #[test]
    fn a_term_keeps_a_one_second_margin_for_client_go_followers() {
        assert_eq!(term_limit(&options(2_000, 500)), Duration::from_secs(1));
        assert_eq!(
            term_limit(&LeaderElectionOptions::default()),
            Duration::from_secs(14)
        );
        assert_eq!(term_limit(&options(800, 100)), Duration::ZERO);
    }

    #[test]
    fn a_renew_interval_that_does_not_fit_the_term_is_refused_naming_the_rule() {
        assert!(validate_timing(&options(2_000, 999)).is_ok());
        for (lease, renew) in [(2_000, 1_000), (1_500, 600), (1_000, 100)] {
            let error = validate_timing(&options(lease, renew)).expect_err("refused");
            match &error {
                Error::InvalidOption { field, rule } => {
                    assert_eq!(field, "renew_interval");
                    assert!(rule.contains("lease_duration - 1 s"), "{rule}");
                }
                other => panic!("expected an invalid option, got {other:?}"),
            }
        }
    }

    #[test]
    fn every_store_value_gets_its_own_instance_mark() {
        let marks: std::collections::BTreeSet<String> =
            (0..1_000).map(|_| instance_nonce()).collect();
        assert_eq!(marks.len(), 1_000);
    }
}
