//! The in-process lease store: one mutex-protected table per process, with
//! change notification per resource for watches and per-candidate fault
//! injection.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream;
use futures_util::StreamExt;
use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseView, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, FencingToken, Result};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// A fault injected for one candidate's calls, to simulate a network problem
/// between that candidate and the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreFault {
    /// Every call fails at once with a transient error; watches break.
    Unavailable,
    /// Every call hangs until the fault is lifted (a black-holed network);
    /// watches deliver nothing meanwhile.
    Hang,
}

/// The shared in-memory backend. Clone it into every factory that should
/// contend; clones share one table.
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    faults: Arc<watch::Sender<HashMap<String, StoreFault>>>,
}

#[derive(Debug, Default)]
struct State {
    resources: HashMap<String, Resource>,
}

#[derive(Debug, Default)]
struct Resource {
    lease: Option<Lease>,
    /// The token of the last acquisition; never decreases, even across releases.
    last_token: u64,
    candidates: BTreeMap<String, (CandidateRecord, Instant)>,
    /// Bumped on every change of this resource's lease, so its watches (and
    /// only its watches: a store holds thousands of resources) wake up.
    changes: Arc<Changes>,
}

impl Resource {
    /// Wakes this resource's watches.
    fn changed(&self) {
        self.changes.version.fetch_add(1, Ordering::SeqCst);
        self.changes.notify.notify_waiters();
    }
}

/// The version of one resource's lease, bumped on every change, and the
/// watches waiting for the next one. Waiters are woken in the order they
/// began to wait (a `Notify`), not in the random order of
/// `tokio::sync::watch`, so a seeded simulation repeats exactly.
#[derive(Debug, Default)]
struct Changes {
    version: AtomicU64,
    notify: Notify,
}

impl Changes {
    /// Waits until the version differs from `seen` (at once if it does
    /// already); returns the version then.
    async fn after(&self, seen: Option<u64>) -> u64 {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.version.load(Ordering::SeqCst);
            if seen != Some(version) {
                return version;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
struct Lease {
    holder: String,
    /// The [`InMemoryLeaseStore`] value that took it (see its `instance`).
    instance: u64,
    token: u64,
    renewed_at: Instant,
    duration: Duration,
}

impl Lease {
    fn expires_at(&self) -> Instant {
        self.renewed_at + self.duration
    }
}

/// What an in-memory lease grant carries: enough to recognise the term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InMemoryGrant {
    resource: String,
    holder: String,
    token: u64,
}

impl InMemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The per-election view of the store: one candidate's handle on one
    /// resource. `grace_period` is how long this candidate waits after an
    /// expiry before taking the lease.
    pub fn for_election(
        &self,
        resource: &str,
        candidate_id: &str,
        grace_period: Duration,
    ) -> InMemoryLeaseStore {
        static INSTANCES: AtomicU64 = AtomicU64::new(1);
        InMemoryLeaseStore {
            store: self.clone(),
            resource: resource.to_owned(),
            candidate_id: candidate_id.to_owned(),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            grace_period,
        }
    }

    /// Injects `fault` into every call made by `candidate_id`'s elections, or
    /// lifts it with `None`.
    pub fn set_fault(&self, candidate_id: &str, fault: Option<StoreFault>) {
        self.faults.send_modify(|faults| match fault {
            Some(fault) => {
                faults.insert(candidate_id.to_owned(), fault);
            }
            None => {
                faults.remove(candidate_id);
            }
        });
    }

    /// The current holder of `resource`'s lease, expired or not (for tests).
    pub fn holder(&self, resource: &str) -> Option<String> {
        self.lock()
            .resources
            .get(resource)
            .and_then(|r| r.lease.as_ref().map(|l| l.holder.clone()))
    }

    /// Removes `resource`'s lease as an operator would, keeping the token
    /// counter. Returns the fencing token of the lease it removed, if any.
    pub fn delete_lease(&self, resource: &str) -> Option<FencingToken> {
        let mut state = self.lock();
        let resource = state.resources.get_mut(resource)?;
        let removed = resource.lease.take();
        resource.changed();
        removed.map(|lease| FencingToken(lease.token))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// One candidate's handle on an [`InMemoryStore`]; the [`LeaseStore`] the
/// engine drives.
#[derive(Clone, Debug)]
pub struct InMemoryLeaseStore {
    store: InMemoryStore,
    resource: String,
    candidate_id: String,
    /// Tells this store value's leases from those of another value with the
    /// same candidate id (another election, as if in another process).
    instance: u64,
    grace_period: Duration,
}

impl InMemoryLeaseStore {
    /// Waits out or fails on an injected fault.
    async fn check_fault(&self) -> Result<()> {
        let mut faults = self.store.faults.subscribe();
        loop {
            let fault = faults.borrow_and_update().get(&self.candidate_id).copied();
            match fault {
                None => return Ok(()),
                Some(StoreFault::Unavailable) => {
                    return Err(Error::unavailable("injected fault: store unavailable"))
                }
                Some(StoreFault::Hang) => {
                    if faults.changed().await.is_err() {
                        return Err(Error::unavailable("store dropped"));
                    }
                }
            }
        }
    }

    fn view(&self, resource: Option<&Resource>, now: Instant) -> LeaseView {
        let Some(resource) = resource else {
            return LeaseView::default();
        };
        match &resource.lease {
            Some(lease) => LeaseView {
                holder: Some(lease.holder.clone()),
                fencing_token: Some(FencingToken(lease.token)),
                acquirable_in: Some(
                    (lease.expires_at() + self.grace_period).saturating_duration_since(now),
                ),
                incarnation: None,
            },
            None => LeaseView {
                holder: None,
                fencing_token: (resource.last_token > 0)
                    .then_some(FencingToken(resource.last_token)),
                acquirable_in: None,
                incarnation: None,
            },
        }
    }
}

impl LeaseStore for InMemoryLeaseStore {
    type Grant = InMemoryGrant;

    async fn try_acquire(&self, claim: &LeaseClaim) -> Result<Acquisition<InMemoryGrant>> {
        self.check_fault().await?;
        let now = Instant::now();
        let mut state = self.store.lock();
        let resource = state.resources.entry(claim.resource.clone()).or_default();
        let free = match &resource.lease {
            None => true,
            Some(lease) => {
                // Only this store value's own lease is taken back early; a
                // twin with our id waits for expiry like anyone else.
                let grace = if is_active(Mutant::GraceIgnored) {
                    Duration::ZERO
                } else {
                    claim.grace_period
                };
                let mine = lease.instance == self.instance || is_active(Mutant::SameIdTakeBack);
                (lease.holder == claim.candidate_id && mine) || now >= lease.expires_at() + grace
            }
        };
        if !free {
            return Ok(Acquisition::Held(self.view(Some(resource), now)));
        }
        if resource.last_token == 0 || !is_active(Mutant::TokensNotIncremented) {
            resource.last_token += 1;
        }
        let token = resource.last_token;
        resource.lease = Some(Lease {
            holder: claim.candidate_id.clone(),
            instance: self.instance,
            token,
            renewed_at: now,
            duration: claim.lease_duration,
        });
        resource.changed();
        drop(state);
        Ok(Acquisition::Acquired {
            grant: InMemoryGrant {
                resource: claim.resource.clone(),
                holder: claim.candidate_id.clone(),
                token,
            },
            fencing_token: FencingToken(token),
        })
    }

    async fn renew(&self, grant: &InMemoryGrant) -> Result<Renewal<InMemoryGrant>> {
        self.check_fault().await?;
        let now = Instant::now();
        let mut state = self.store.lock();
        let resource = state.resources.get_mut(&grant.resource);
        let ours = resource
            .as_ref()
            .and_then(|r| r.lease.as_ref())
            .is_some_and(|l| l.token == grant.token && l.holder == grant.holder);
        if !ours {
            return Ok(Renewal::Lost(Some(self.view(resource.map(|r| &*r), now))));
        }
        if let Some(resource) = resource {
            if let Some(lease) = resource.lease.as_mut() {
                lease.renewed_at = now;
            }
            resource.changed();
        }
        drop(state);
        Ok(Renewal::Renewed(grant.clone()))
    }

    async fn release(&self, grant: &InMemoryGrant) -> Result<()> {
        self.check_fault().await?;
        let mut state = self.store.lock();
        let Some(resource) = state.resources.get_mut(&grant.resource) else {
            return Ok(());
        };
        if resource
            .lease
            .as_ref()
            .is_some_and(|l| l.token == grant.token || is_active(Mutant::ReleaseWithoutCas))
        {
            resource.lease = None;
            resource.changed();
        }
        Ok(())
    }

    fn watch(&self) -> LeaseWatch {
        let this = self.clone();
        let resource = self.resource.clone();
        let changes = Arc::clone(
            &self
                .store
                .lock()
                .resources
                .entry(resource.clone())
                .or_default()
                .changes,
        );
        stream::unfold(Some((this, resource, changes, None)), |state| async move {
            let (this, resource, changes, seen) = state?;
            let seen = Some(changes.after(seen).await);
            if let Err(error) = this.check_fault().await {
                // A broken watch ends after reporting; the engine re-watches.
                return Some((Err(error), None));
            }
            let view = {
                let state = this.store.lock();
                this.view(state.resources.get(&resource), Instant::now())
            };
            Some((Ok(view), Some((this, resource, changes, seen))))
        })
        .boxed()
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        self.check_fault().await?;
        let expires = Instant::now() + ttl;
        self.store
            .lock()
            .resources
            .entry(self.resource.clone())
            .or_default()
            .candidates
            .insert(record.candidate_id.clone(), (record.clone(), expires));
        Ok(())
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        self.check_fault().await?;
        let now = Instant::now();
        let mut state = self.store.lock();
        let Some(resource) = state.resources.get_mut(&self.resource) else {
            return Ok(Vec::new());
        };
        resource.candidates.retain(|_, (_, expires)| *expires > now);
        Ok(resource
            .candidates
            .values()
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        self.check_fault().await?;
        if let Some(resource) = self.store.lock().resources.get_mut(&self.resource) {
            resource.candidates.remove(&self.candidate_id);
        }
        Ok(())
    }
}
