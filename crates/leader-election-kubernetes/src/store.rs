//! [`KubernetesLeaseStore`]: the engine's lease operations over one
//! `coordination.k8s.io/v1` Lease, wire-compatible with client-go's `LeaseLock`.
//!
//! This file holds the compare-and-swap writes (acquire, renew, release);
//! what a read of the Lease means is [`crate::observe`], the watch (one per
//! factory, shared by its elections) is [`watch`], the candidate registry [`candidates`], and the mapping of
//! apiserver errors [`crate::errors`].
//!
//! Every write is a PUT carrying `metadata.resourceVersion`; a 409 Conflict
//! means someone else wrote first, and we re-read rather than overwrite.
//!
//! `holderIdentity` is the candidate id, as client-go expects, and the
//! annotation [`INSTANCE_ANNOTATION`] says which store value (one per
//! election) made the acquisition. Only that store value takes a Lease held
//! under its id back early; a Lease held under the same id by another
//! process or election is anybody else's, taken only after it expired.

pub(crate) mod candidates;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectList, PostParams};
use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, FencingToken, LeaderElectionOptions, Result};

use crate::clock::StoreClock;
use crate::config::validate_resource;
use crate::errors::{classify, status_code, timed_out};
use crate::observe::{annotation, lease_token, Observer};
use crate::timing::{term_limit, validate_timing, whole_seconds};
use crate::tokens::{next_term, EPOCH_ANNOTATION};
use watch::WatchHub;

/// Annotation on the Lease: the store value (election instance) whose
/// acquisition the current holder's term is. Random per store value.
pub const INSTANCE_ANNOTATION: &str = "leader-election-rs/holder-instance";

/// How many times one renew (or release) call re-reads and retries after a
/// 409 Conflict on a term that is still intact (someone wrote other fields),
/// before it reports the backend unavailable and lets the engine retry later.
const CONFLICT_RETRIES: usize = 3;

/// A held Lease: the object as we last wrote it (with its resourceVersion)
/// and the term's fencing token.
#[derive(Clone, Debug)]
pub struct KubernetesGrant {
    lease: Lease,
    token: FencingToken,
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
    timeout: Duration,
    /// The clock request timeouts run on (the factory's).
    clock: StoreClock,
    /// What the reads so far mean (client-go's observed-time rule); clones
    /// (the watch) share it.
    observed: Arc<Observer>,
    /// The factory's shared Lease watch.
    hub: Arc<WatchHub>,
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

impl KubernetesLeaseStore {
    pub(crate) fn new(
        client: kube::Client,
        namespace: &str,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
        timeout: Duration,
        hub: Arc<WatchHub>,
    ) -> Self {
        // The factory's clock, which its watch runs on too.
        let clock = hub.clock().clone();
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: resource.to_owned(),
            candidate_id: candidate_id.to_owned(),
            instance: instance_nonce(),
            lease_seconds: whole_seconds(options.lease_duration),
            timeout,
            observed: Arc::new(Observer::new(options.grace_period, clock.clone())),
            clock,
            hub,
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

    /// Runs one API call within the request timeout, logging the request
    /// (TRACE) and its answer (TRACE when it succeeded, DEBUG with the
    /// status otherwise). Requests carry no secrets of ours (the client's
    /// credentials never reach these logs).
    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<kube::Result<T>> {
        tracing::trace!(request = what, namespace = %self.namespace, resource = %self.name, "Kubernetes request");
        let answer = self.clock.timeout(self.timeout, call).await;
        match &answer {
            Some(Ok(_)) => tracing::trace!(request = what, "Kubernetes answered"),
            Some(Err(error)) => tracing::debug!(
                request = what,
                status = ?status_code(error),
                error = %error,
                "Kubernetes answered with an error"
            ),
            None => {
                tracing::debug!(request = what, timeout = ?self.timeout, "Kubernetes request timed out")
            }
        }
        answer.ok_or_else(|| timed_out(what, self.timeout))
    }

    async fn get(&self) -> Result<Option<Lease>> {
        self.call("get lease", self.api.get_opt(&self.name))
            .await?
            .map_err(|e| classify("get lease", e))
    }

    /// A consistent list of the one Lease (none or one item), with the
    /// storage revision of the list.
    async fn list_lease(&self) -> Result<ObjectList<Lease>> {
        let params = ListParams::default().fields(&format!("metadata.name={}", self.name));
        self.call("list lease", self.api.list(&params))
            .await?
            .map_err(|e| classify("list lease", e))
    }

    /// The storage revision of a consistent list of the Lease: above the
    /// revision of every write so far, including the deletion of any earlier
    /// incarnation of the Lease.
    async fn list_revision(&self) -> Result<Option<String>> {
        Ok(self.list_lease().await?.metadata.resource_version)
    }

    /// Whether the Lease records an acquisition by this very store value.
    fn is_ours(&self, lease: &Lease) -> bool {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        holder == Some(self.candidate_id.as_str())
            && (annotation(lease, INSTANCE_ANNOTATION) == Some(self.instance.as_str())
                || is_active(Mutant::SameIdTakeBack))
    }

    /// What an acquiring write (`what`) came to: the term `token` is ours,
    /// or after a 409 Conflict someone else wrote first, and we read who
    /// holds the Lease now instead of overwriting it.
    async fn settle(
        &self,
        what: &str,
        written: kube::Result<Lease>,
        token: FencingToken,
    ) -> Result<Acquisition<KubernetesGrant>> {
        match written {
            Ok(lease) => {
                self.observed.observe(Some(&lease));
                tracing::debug!(
                    request = what,
                    fencing_token = token.0,
                    resource_version = ?lease.metadata.resource_version,
                    "Lease acquired"
                );
                Ok(Acquisition::Acquired {
                    grant: KubernetesGrant { lease, token },
                    fencing_token: token,
                })
            }
            Err(e) if status_code(&e) == Some(409) => {
                tracing::debug!(request = what, "another candidate wrote the Lease first");
                Ok(Acquisition::Held(
                    self.observed.observe(self.get().await?.as_ref()),
                ))
            }
            Err(e) => Err(classify(what, e)),
        }
    }

    /// Whether `lease` still records `grant`'s term: acquired by this store
    /// value, with the same token.
    fn holds_term(&self, lease: &Lease, grant: &KubernetesGrant) -> bool {
        self.is_ours(lease) && lease_token(lease) == Some(grant.token)
    }

    /// PUTs `lease` (carrying its `resourceVersion`) as the request `what`.
    async fn replace(&self, what: &str, lease: &Lease) -> Result<kube::Result<Lease>> {
        self.call(
            what,
            self.api.replace(&self.name, &PostParams::default(), lease),
        )
        .await
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
            // A 409 here is AlreadyExists: another candidate created it first.
            let created = self
                .call(
                    "create lease",
                    self.api.create(&PostParams::default(), &fresh),
                )
                .await?;
            return self.settle("create lease", created, next.token).await;
        };
        let view = self.observed.observe(Some(&lease));
        // Held under our candidate id counts as ours only if this store value
        // acquired it: another process or election with the same id is
        // someone else, whose lease we wait out like any other.
        let ours = self.is_ours(&lease);
        let free = view.holder.is_none() || ours || view.acquirable_in == Some(Duration::ZERO);
        if !free {
            tracing::debug!(
                holder = ?view.holder,
                acquirable_in = ?view.acquirable_in,
                "Lease held by another candidate"
            );
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
        // A 409 here means someone wrote between our read and our update.
        let updated = self.replace("update lease", &lease).await?;
        self.settle("update lease", updated, next.token).await
    }

    async fn renew(&self, grant: &KubernetesGrant) -> Result<Renewal<KubernetesGrant>> {
        let mut lease = grant.lease.clone();
        for _ in 0..CONFLICT_RETRIES {
            let mut spec = lease.spec.clone().unwrap_or_default();
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(self.lease_seconds);
            lease.spec = Some(spec);
            // Fast path like client-go: update the cached object without a GET.
            match self.replace("renew lease", &lease).await? {
                Ok(updated) => {
                    self.observed.observe(Some(&updated));
                    return Ok(Renewal::Renewed(KubernetesGrant {
                        lease: updated,
                        token: grant.token,
                    }));
                }
                Err(e) if status_code(&e) == Some(409) || status_code(&e) == Some(404) => {
                    let current = self.get().await?;
                    let view = self.observed.observe(current.as_ref());
                    match current {
                        // Our term is intact (someone touched other fields):
                        // renew on the fresh object.
                        Some(fresh) if self.holds_term(&fresh, grant) => {
                            tracing::warn!(
                                fencing_token = grant.token.0,
                                "another client wrote our Lease without taking it; renewing the fresh object"
                            );
                            lease = fresh;
                        }
                        _ => {
                            tracing::debug!(
                                fencing_token = grant.token.0,
                                holder = ?view.holder,
                                "the Lease is no longer ours"
                            );
                            return Ok(Renewal::Lost(Some(view)));
                        }
                    }
                }
                Err(e) => return Err(classify("renew lease", e)),
            }
        }
        tracing::warn!(
            fencing_token = grant.token.0,
            retries = CONFLICT_RETRIES,
            "renew kept conflicting with other writers of an intact term"
        );
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
            if is_active(Mutant::ReleaseWithoutCas) {
                // An unconditional update: whoever holds the Lease now.
                lease.metadata.resource_version = None;
            }
            match self.replace("release lease", &lease).await? {
                Ok(released) => {
                    self.observed.observe(Some(&released));
                    return Ok(());
                }
                Err(e) if status_code(&e) == Some(409) => {
                    // A racing renew bumped the resourceVersion: release the fresh
                    // object if it is still our term, else there is nothing to do.
                    let Some(fresh) = self.get().await? else {
                        tracing::debug!("the Lease was deleted before the release");
                        return Ok(());
                    };
                    if !self.holds_term(&fresh, grant) {
                        tracing::debug!("the Lease changed hands before the release");
                        return Ok(());
                    }
                    lease = fresh;
                }
                Err(e) if status_code(&e) == Some(404) => {
                    tracing::debug!("the Lease was deleted before the release");
                    return Ok(());
                }
                Err(e) => return Err(classify("release lease", e)),
            }
        }
        tracing::warn!(
            fencing_token = grant.token.0,
            "release kept conflicting; the Lease will expire"
        );
        Err(Error::unavailable(
            "Kubernetes release kept conflicting; the lease will expire",
        ))
    }

    fn watch(&self) -> LeaseWatch {
        watch::watch(self.hub.clone(), self.name.clone(), self.observed.clone())
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        candidates::publish(self, record, ttl).await
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        candidates::list(self).await
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        candidates::withdraw(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_value_gets_its_own_instance_mark() {
        let marks: std::collections::BTreeSet<String> =
            (0..1_000).map(|_| instance_nonce()).collect();
        assert_eq!(marks.len(), 1_000);
    }
}
