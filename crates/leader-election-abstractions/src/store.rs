//! The narrow interface a provider implements: atomic operations on one named
//! lease, plus a candidate registry. Timing, state, events, health and fencing
//! live once, in the [engine](crate::Election); a store only says what the
//! backend did.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, SystemTime};

use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::options::LeaderElectionOptions;
use crate::types::FencingToken;

/// A request to take a resource's lease.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseClaim {
    /// The contested resource.
    pub resource: String,
    /// Who asks.
    pub candidate_id: String,
    /// How long the lease lasts without renewal once granted.
    pub lease_duration: Duration,
    /// Extra wait after an expired lease before it may be taken.
    pub grace_period: Duration,
    /// Published with the lease so other candidates can read it.
    pub holder_metadata: BTreeMap<String, String>,
}

/// What a store knows about a resource's lease at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaseView {
    /// The current holder, if any.
    pub holder: Option<String>,
    /// The fencing token of the holder's acquisition, or — when there is no
    /// holder — of the last acquisition. `None` when the backend cannot say.
    /// The engine uses it to recognise views older than its own term.
    pub fencing_token: Option<FencingToken>,
    /// How long from the moment this view was produced until the store will
    /// let another candidate take the lease (its expiry plus grace, by the
    /// store's rules). `None` when there is no holder or no hint.
    pub acquirable_in: Option<Duration>,
    /// An opaque identity of the backend object that holds the lease, which
    /// changes when the object is deleted and re-created (a Kubernetes
    /// Lease's `uid`). `None` when the backend has no such notion. While
    /// leading, the engine ignores a view with a lower token than its term's
    /// only if it comes from the same incarnation as its own grant: a lease
    /// re-created by another client restarts its tokens, and such a view
    /// means the term is over.
    pub incarnation: Option<String>,
}

/// The answer to [`LeaseStore::try_acquire`].
#[derive(Clone, Debug)]
pub enum Acquisition<G> {
    /// The lease is ours.
    Acquired {
        /// Whatever the store needs to renew and release it.
        grant: G,
        /// Strictly greater than every earlier acquisition's token.
        fencing_token: FencingToken,
    },
    /// Someone else holds it; try again when the view says.
    Held(LeaseView),
}

/// The answer to [`LeaseStore::renew`].
#[derive(Clone, Debug)]
pub enum Renewal<G> {
    /// Still ours; use the returned grant from now on.
    Renewed(G),
    /// The backend says it is no longer ours. The view, if any, says who
    /// holds it now.
    Lost(Option<LeaseView>),
}

/// One candidate's entry in the candidate registry.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateRecord {
    /// The candidate's id.
    pub candidate_id: String,
    /// Whether it counts as healthy.
    pub is_healthy: bool,
    /// Its health score between 0 and 1.
    pub health_score: f64,
    /// Its published metadata.
    pub metadata: BTreeMap<String, String>,
    /// When it published this record.
    pub updated_at: SystemTime,
}

/// A stream of lease views: the current one first, then one per change.
/// An error item means the watch broke; the engine backs off and calls
/// [`LeaseStore::watch`] again. The stream may also simply end.
pub type LeaseWatch = BoxStream<'static, Result<LeaseView>>;

/// Atomic operations on one named lease, implemented once per backend.
///
/// A store value belongs to one election: it is made (by the provider's
/// [`StoreFactory`](crate::StoreFactory)) for one resource and one candidate
/// id, so no method takes them again. The engine calls it from one task at a
/// time, except [`list_candidates`](Self::list_candidates), which the
/// election handle may call concurrently. It is only used generically, so
/// its methods are plain `async fn`s in implementations (the returned
/// futures must be `Send`). Errors: return
/// [`Error::BackendUnavailable`](crate::Error::BackendUnavailable) for
/// anything worth retrying, [`Error::Unauthorized`](crate::Error::Unauthorized)
/// for permission problems and [`Error::Backend`](crate::Error::Backend) for
/// answers that make no sense. Never panic on a backend answer.
pub trait LeaseStore: Send + Sync + 'static {
    /// What the store needs to renew and release a lease it granted.
    type Grant: Clone + Debug + Send + Sync + 'static;

    /// Checks provider-specific limits on names and options (contract C10),
    /// called when an election is created. The generic rules are already checked.
    fn validate(&self, _options: &LeaderElectionOptions) -> Result<()> {
        Ok(())
    }

    /// Called by `start()` before the election runs: checks what only the
    /// backend can tell about the configuration (Consul's refusal of a
    /// session TTL, say). An [`Error::InvalidOption`](crate::Error::InvalidOption)
    /// returned here is returned by `start()`, which then does not start;
    /// any other error (an unreachable backend) is logged and the election
    /// starts and retries as usual. The default does nothing.
    fn prepare(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// The longest a term may last, counted from the start of the
    /// `try_acquire` or `renew` request that began or extended it: the time
    /// for which the backend guarantees that no other candidate (of this
    /// library or a foreign client) can take the lease. The engine never lets
    /// a term's local deadline pass the request's start plus this, and
    /// refuses options whose `renew_interval` does not fit inside it.
    ///
    /// The default is `options.lease_duration`. A backend that can free the
    /// lease earlier returns less: Consul, whose lock is free again a
    /// lock-delay after a session is invalidated early, returns at most the
    /// lock-delay; Kubernetes, whose foreign clients date renewals to the
    /// second, keeps a margin for that.
    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        options.lease_duration
    }

    /// Takes the lease if it is free, expired by the store's rules, or held
    /// by **this store value's own** earlier acquisition (a term the engine
    /// lost track of). A lease held under the same candidate id by another
    /// store value (another process, another election in this process,
    /// another Consul session) is someone else's: it is taken only once it
    /// has expired, like any other holder's.
    fn try_acquire(
        &self,
        claim: &LeaseClaim,
    ) -> impl Future<Output = Result<Acquisition<Self::Grant>>> + Send;

    /// The incarnation (see [`LeaseView::incarnation`]) of the backend object
    /// a grant is on, so the engine can tell a lease re-created by another
    /// client from a late view of its own. `None` (the default) when the
    /// backend has no such notion.
    fn grant_incarnation(&self, _grant: &Self::Grant) -> Option<String> {
        None
    }

    /// Extends a lease this candidate holds.
    fn renew(
        &self,
        grant: &Self::Grant,
    ) -> impl Future<Output = Result<Renewal<Self::Grant>>> + Send;

    /// Gives the lease up so a waiting candidate can take it at once. Must not
    /// disturb a lease that another candidate holds by now.
    fn release(&self, grant: &Self::Grant) -> impl Future<Output = Result<()>> + Send;

    /// Watches the lease.
    fn watch(&self) -> LeaseWatch;

    /// Publishes (or refreshes) this candidate's record; it must disappear by
    /// itself `ttl` after the last publish if the candidate dies.
    fn publish_candidate(
        &self,
        record: &CandidateRecord,
        ttl: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Lists the live (unexpired) candidates of the resource.
    fn list_candidates(&self) -> impl Future<Output = Result<Vec<CandidateRecord>>> + Send;

    /// Removes this candidate's record.
    fn withdraw_candidate(&self) -> impl Future<Output = Result<()>> + Send;

    /// Frees whatever the store holds for this election (a Consul session,
    /// say). Called once when the election stops, after the release.
    fn close(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}
