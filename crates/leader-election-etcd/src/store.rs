//! [`EtcdLeaseStore`]: one election on etcd, laid out as etcd's own
//! `concurrency.Election` lays it out.
//!
//! - Every candidate key is `<key_prefix>/<resource>/<lease id in hex>`,
//!   attached to an etcd lease; the leader is the key with the lowest create
//!   revision. A Go program campaigning with `concurrency.NewElection(session,
//!   "<key_prefix>/<resource>")` therefore sees our leader as its leader and
//!   queues behind it, and we see its key as the holder.
//! - We acquire only when the prefix is empty, in one transaction that
//!   compares the create revision of the whole range with 0 and puts our key
//!   on a fresh lease: our key is then the oldest, and every later key
//!   (ours or Go's) is younger. We do not queue behind a holder: a follower
//!   of ours leaves no key, so `Observe` and `Leader` in Go see only leaders
//!   and Go campaigners.
//! - The fencing token is our key's create revision: the store revision of
//!   that transaction, which only grows in the cluster.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, FencingToken, LeaderElectionOptions, Result};

use crate::client::EtcdClient;
use crate::timing;
use crate::wire::{KeyValue, TxnResponse};

pub(crate) mod candidates;
pub(crate) mod watch;

/// What renewing and releasing a term needs: its etcd lease and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdGrant {
    lease_id: i64,
    key: String,
    create_revision: i64,
}

impl EtcdGrant {
    /// The etcd lease the election key is attached to.
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// The election key, `<key_prefix>/<resource>/<lease id in hex>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key's create revision: the term's fencing token.
    pub fn create_revision(&self) -> i64 {
        self.create_revision
    }
}

/// One election's handle on etcd (made by
/// [`EtcdLeaderElectionFactory`](crate::EtcdLeaderElectionFactory)).
#[derive(Clone, Debug)]
pub struct EtcdLeaseStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: EtcdClient,
    candidate_id: String,
    /// `<key_prefix>/<resource>/`: the election's keys.
    election_prefix: String,
    /// `<key_prefix>/.candidates/<resource>/`: the candidate registry.
    candidates_prefix: String,
    /// Seconds of every election lease we grant.
    ttl: i64,
    /// `lease_duration + grace_period`: the longest our own holders' keys
    /// outlive their last keep-alive.
    hint_cap: Duration,
    /// A watch that hears nothing for this long ends (the engine opens a
    /// new one), so a silently dead connection is noticed.
    watch_idle: Duration,
    timeout: Duration,
    /// Election leases this store granted and has not revoked.
    own_leases: Mutex<Vec<i64>>,
    /// The candidate record's lease and its TTL in seconds.
    candidate_lease: tokio::sync::Mutex<Option<(i64, i64)>>,
}

impl EtcdLeaseStore {
    pub(crate) fn new(
        client: EtcdClient,
        resource: &str,
        candidate_id: &str,
        options: &LeaderElectionOptions,
        timeout: Duration,
    ) -> Self {
        let prefix = client.config().key_prefix.clone();
        let hint_cap = options.lease_duration.saturating_add(options.grace_period);
        Self {
            inner: Arc::new(Inner {
                client,
                candidate_id: candidate_id.to_owned(),
                election_prefix: format!("{prefix}/{resource}/"),
                candidates_prefix: format!("{prefix}/.candidates/{resource}/"),
                ttl: if is_active(Mutant::EtcdTtlWithoutGrace) {
                    // The simulation's mutant: no grace margin in etcd.
                    timing::whole_seconds(options.lease_duration)
                } else {
                    timing::lease_ttl(options)
                },
                hint_cap,
                watch_idle: hint_cap.max(Duration::from_secs(1)),
                timeout,
                own_leases: Mutex::new(Vec::new()),
                candidate_lease: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The prefix of this election's keys, `<key_prefix>/<resource>/`.
    pub fn election_prefix(&self) -> &str {
        &self.inner.election_prefix
    }
}

/// The candidate id in a key's value: ours write the candidate id, as Go's
/// `Campaign` writes its proposal. A value that is empty or not UTF-8 is
/// named by its key.
fn holder_of(kv: &KeyValue) -> String {
    match std::str::from_utf8(&kv.value) {
        Ok(value) if !value.is_empty() => value.to_owned(),
        _ => format!("etcd-key:{}", String::from_utf8_lossy(&kv.key)),
    }
}

/// What the oldest key (or its absence) at revision `at` means: one
/// snapshot, so every view a follower sees is consistent. `hint_cap` is
/// when to look again.
pub(crate) fn view_of(first: Option<KeyValue>, at: i64, hint_cap: Duration) -> LeaseView {
    let Some(kv) = first else {
        // No holder: the token of the view is the revision it is of,
        // below every later acquisition's, so the engine can tell a late
        // "free" view from the loss of its own key.
        return LeaseView {
            fencing_token: u64::try_from(at).ok().map(FencingToken),
            ..LeaseView::default()
        };
    };
    LeaseView {
        holder: Some(holder_of(&kv)),
        fencing_token: u64::try_from(kv.create_revision).ok().map(FencingToken),
        // etcd deletes the key when its lease expires, which our lease
        // TTL bounds by lease + grace; the watch reports the deletion the
        // moment it happens, so this is only when to look again if it
        // did not.
        acquirable_in: Some(hint_cap),
        incarnation: None,
    }
}

/// What the acquiring transaction's answer says.
#[derive(Debug)]
pub(crate) enum Created {
    /// Our key was put, at this revision (its create revision, our token).
    Ours(i64, FencingToken),
    /// The prefix was not empty: its oldest key (if the answer carries it),
    /// and the revision the answer is of.
    Held(Option<KeyValue>, i64),
}

/// Reads the acquiring transaction's answer.
pub(crate) fn created(answer: TxnResponse) -> Result<Created> {
    if answer.succeeded {
        let create_revision = answer.header.revision;
        return Ok(Created::Ours(create_revision, token(create_revision)?));
    }
    let first = answer
        .responses
        .into_iter()
        .next()
        .and_then(|op| op.response_range)
        .and_then(|range| range.kvs.into_iter().next());
    Ok(Created::Held(first, answer.header.revision))
}

fn token(revision: i64) -> Result<FencingToken> {
    u64::try_from(revision)
        .ok()
        .filter(|r| *r > 0)
        .map(FencingToken)
        .ok_or_else(|| Error::backend(format!("etcd answered with revision {revision}")))
}

impl Inner {
    fn key_for(&self, lease: i64) -> String {
        format!("{}{lease:x}", self.election_prefix)
    }

    fn remember(&self, lease: i64) {
        self.own_leases.lock().push(lease);
    }

    fn forget(&self, lease: i64) {
        self.own_leases.lock().retain(|l| *l != lease);
    }

    fn owns(&self, kv: &KeyValue) -> bool {
        kv.lease != 0
            && kv.key == self.key_for(kv.lease).as_bytes()
            && self.own_leases.lock().contains(&kv.lease)
    }

    /// What the oldest key (or its absence) at revision `at` means.
    fn view_of(&self, first: Option<KeyValue>, at: i64) -> LeaseView {
        view_of(first, at, self.hint_cap)
    }

    /// The election now (or at `revision`), and the revision it is of.
    async fn view_at(&self, revision: Option<i64>) -> Result<(LeaseView, i64)> {
        let (first, now) = self
            .client
            .first_key(&self.election_prefix, revision, self.timeout)
            .await?;
        // A read at a past revision answers with the current revision in
        // its header; the view is of the revision asked for.
        let at = revision.unwrap_or(now);
        Ok((self.view_of(first, at), at))
    }

    /// Revokes one of our election leases, logging a failure (it expires).
    async fn revoke_quietly(&self, lease: i64) {
        match self.client.revoke(lease, self.timeout).await {
            Ok(()) => self.forget(lease),
            Err(error) => {
                tracing::warn!(error = %error, lease = %format!("{lease:x}"), "revoking an election lease failed; it will expire")
            }
        }
    }
}

impl LeaseStore for EtcdLeaseStore {
    type Grant = EtcdGrant;

    fn validate(&self, options: &LeaderElectionOptions) -> Result<()> {
        timing::validate(options)
    }

    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        timing::term_limit(options)
    }

    async fn try_acquire(&self, _claim: &LeaseClaim) -> Result<Acquisition<EtcdGrant>> {
        let inner = &self.inner;
        let (first, revision) = inner
            .client
            .first_key(&inner.election_prefix, None, inner.timeout)
            .await?;
        if let Some(kv) = first {
            if !inner.owns(&kv) {
                let view = inner.view_of(Some(kv), revision);
                tracing::debug!(holder = ?view.holder, revision, "election held");
                return Ok(Acquisition::Held(view));
            }
            // A term of ours the engine lost track of (its deadline passed
            // while the lease lived on). Taking the key back would repeat its
            // token; give it up and compete with a new key instead.
            inner.client.revoke(kv.lease, inner.timeout).await?;
            inner.forget(kv.lease);
        }
        let lease = inner.client.grant(inner.ttl, inner.timeout).await?;
        inner.remember(lease.id);
        if lease.ttl < inner.ttl {
            inner.revoke_quietly(lease.id).await;
            return Err(Error::backend(format!(
                "etcd granted a lease of {} s for the {} s asked",
                lease.ttl, inner.ttl
            )));
        }
        let key = inner.key_for(lease.id);
        let answer = match inner
            .client
            .create_if_empty(
                &inner.election_prefix,
                &key,
                &inner.candidate_id,
                lease.id,
                inner.timeout,
            )
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                // The put may have happened; the lease takes the key with it.
                inner.revoke_quietly(lease.id).await;
                return Err(error);
            }
        };
        match created(answer) {
            Ok(Created::Ours(create_revision, fencing_token)) => Ok(Acquisition::Acquired {
                grant: EtcdGrant {
                    lease_id: lease.id,
                    key,
                    create_revision,
                },
                fencing_token,
            }),
            Ok(Created::Held(first, revision)) => {
                tracing::debug!(revision, "another candidate created its key first");
                inner.revoke_quietly(lease.id).await;
                Ok(Acquisition::Held(inner.view_of(first, revision)))
            }
            Err(error) => {
                inner.revoke_quietly(lease.id).await;
                Err(error)
            }
        }
    }

    async fn renew(&self, grant: &EtcdGrant) -> Result<Renewal<EtcdGrant>> {
        let inner = &self.inner;
        let ttl = inner
            .client
            .keep_alive(grant.lease_id, inner.timeout)
            .await?;
        if ttl == 0 {
            // Revoked or expired: etcd has deleted our key with it.
            inner.forget(grant.lease_id);
            return Ok(Renewal::Lost(
                inner.view_at(None).await.ok().map(|(v, _)| v),
            ));
        }
        if ttl < inner.ttl {
            // Never seen from a sound etcd; leading on a shorter lease than
            // the term assumes could outlast it.
            tracing::error!(
                ttl,
                expected = inner.ttl,
                "etcd kept our lease alive for less than its TTL; stepping down"
            );
            inner.revoke_quietly(grant.lease_id).await;
            return Ok(Renewal::Lost(None));
        }
        match inner.client.key(&grant.key, inner.timeout).await? {
            Some(kv)
                if kv.create_revision == grant.create_revision && kv.lease == grant.lease_id =>
            {
                Ok(Renewal::Renewed(grant.clone()))
            }
            _ => {
                // Deleted behind our back (maybe re-created since): the
                // election moved on without us.
                inner.revoke_quietly(grant.lease_id).await;
                Ok(Renewal::Lost(
                    inner.view_at(None).await.ok().map(|(v, _)| v),
                ))
            }
        }
    }

    async fn release(&self, grant: &EtcdGrant) -> Result<()> {
        let inner = &self.inner;
        let deleted = inner
            .client
            .delete_if_created_at(&grant.key, grant.create_revision, inner.timeout)
            .await;
        let revoked = inner.client.revoke(grant.lease_id, inner.timeout).await;
        if revoked.is_ok() {
            inner.forget(grant.lease_id);
        }
        deleted.map(|_| ()).and(revoked)
    }

    fn watch(&self) -> LeaseWatch {
        watch::watch(Arc::clone(&self.inner))
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        candidates::publish(&self.inner, record, ttl).await
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        candidates::list(&self.inner).await
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        candidates::withdraw(&self.inner).await
    }

    async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        // Leases of terms that ended without a release (their deadline
        // passed): nobody leads on them, so they can go now.
        let leftover = inner.own_leases.lock().clone();
        for lease in leftover {
            inner.revoke_quietly(lease).await;
        }
        candidates::withdraw(inner).await
    }
}
