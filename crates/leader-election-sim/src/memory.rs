//! The in-memory backend in simulation: the real `InMemoryLeaseStore`
//! behind a simulated network [`Link`]. The store's expiry clock is Tokio's,
//! which in the simulation is global time: the backend's clock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::store::{
    Acquisition, CandidateRecord, LeaseClaim, LeaseStore, LeaseWatch, Renewal,
};
use leader_election_abstractions::{Error, LeaderElectionOptions, Result};
use leader_election_inmemory::{InMemoryGrant, InMemoryLeaseStore};

use crate::link::{Delivery, Link};

/// One process's handle on the shared in-memory backend, over its link.
#[derive(Clone, Debug)]
pub struct LinkedMemoryStore {
    inner: Arc<InMemoryLeaseStore>,
    link: Link,
}

impl LinkedMemoryStore {
    /// `inner` reached over `link`.
    pub fn new(inner: InMemoryLeaseStore, link: Link) -> Self {
        Self {
            inner: Arc::new(inner),
            link,
        }
    }

    async fn call<T, F, Fut>(&self, serve: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<InMemoryLeaseStore>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match self.link.call(move || serve(Arc::clone(&inner))).await {
            Delivery::Answer(answer) => answer,
            Delivery::Refused => Err(Error::unavailable("simulated connection refused")),
        }
    }
}

impl LeaseStore for LinkedMemoryStore {
    type Grant = InMemoryGrant;

    fn validate(&self, options: &LeaderElectionOptions) -> Result<()> {
        self.inner.validate(options)
    }

    fn term_limit(&self, options: &LeaderElectionOptions) -> Duration {
        self.inner.term_limit(options)
    }

    async fn try_acquire(&self, claim: &LeaseClaim) -> Result<Acquisition<InMemoryGrant>> {
        let claim = claim.clone();
        self.call(move |inner| {
            let claim = claim.clone();
            async move { inner.try_acquire(&claim).await }
        })
        .await
    }

    async fn renew(&self, grant: &InMemoryGrant) -> Result<Renewal<InMemoryGrant>> {
        let grant = grant.clone();
        self.call(move |inner| {
            let grant = grant.clone();
            async move { inner.renew(&grant).await }
        })
        .await
    }

    async fn release(&self, grant: &InMemoryGrant) -> Result<()> {
        let grant = grant.clone();
        self.call(move |inner| {
            let grant = grant.clone();
            async move { inner.release(&grant).await }
        })
        .await
    }

    fn watch(&self) -> LeaseWatch {
        // One connection: views keep their order, each one delayed; a cut
        // or a pause breaks or stalls the stream as a real one would.
        let link = self.link.clone();
        let inner = self.inner.watch();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut inner = inner;
            let mut last = tokio::time::Instant::now();
            if link.up().is_err() {
                let _ = tx.send(Err(Error::unavailable("simulated watch cut")));
                return;
            }
            while let Some(item) = inner.next().await {
                let at = (tokio::time::Instant::now() + link.delay()).max(last);
                last = at;
                tokio::time::sleep_until(at).await;
                if link.up().is_err() || link.down().is_err() {
                    let _ = tx.send(Err(Error::unavailable("simulated watch cut")));
                    return;
                }
                link.pause().running().await;
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    async fn publish_candidate(&self, record: &CandidateRecord, ttl: Duration) -> Result<()> {
        let record = record.clone();
        self.call(move |inner| {
            let record = record.clone();
            async move { inner.publish_candidate(&record, ttl).await }
        })
        .await
    }

    async fn list_candidates(&self) -> Result<Vec<CandidateRecord>> {
        self.call(|inner| async move { inner.list_candidates().await })
            .await
    }

    async fn withdraw_candidate(&self) -> Result<()> {
        self.call(|inner| async move { inner.withdraw_candidate().await })
            .await
    }
}
