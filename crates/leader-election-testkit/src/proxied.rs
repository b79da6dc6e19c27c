//! [`ProxiedProvider`]: the [`Provider`] of a real-server backend whose
//! candidates each reach the server through a [`FaultProxy`] of their own,
//! plus scenario helpers the backends' own tests share.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use leader_election_abstractions::{
    Election, EventStream, LeaderElection, LeaderElectionEvent, LeaderElectionOptions, LeaseStore,
    LossReason, Result,
};

use crate::provider::{Candidate, Provider};
use crate::proxy::{FaultHandle, FaultProxy};

/// Builds a candidate's (not yet started) election whose client talks to the
/// given address: the candidate's proxy.
pub type BuildElection<S> = Box<
    dyn Fn(
            SocketAddr,
            String,
            String,
            LeaderElectionOptions,
        ) -> BoxFuture<'static, Result<Election<S>>>
        + Send
        + Sync,
>;

/// Candidates of a real server, each behind its own fault proxy, so the
/// suite can crash them or cut their network one by one.
pub struct ProxiedProvider<S: LeaseStore> {
    name: String,
    server: SocketAddr,
    options: LeaderElectionOptions,
    build: BuildElection<S>,
    /// Kept as long as the provider, so a dropped election can still release
    /// its lease through its proxy.
    proxies: Mutex<Vec<FaultProxy>>,
}

impl<S: LeaseStore> std::fmt::Debug for ProxiedProvider<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxiedProvider")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl<S: LeaseStore> ProxiedProvider<S> {
    /// A provider named `name` for the server at `server`, with the suite's
    /// base `options` and a way to build an election against an address.
    pub fn new(
        name: &str,
        server: SocketAddr,
        options: LeaderElectionOptions,
        build: BuildElection<S>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            server,
            options,
            build,
            proxies: Mutex::new(Vec::new()),
        }
    }

    /// The server's address (not a proxy's).
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// A candidate's concrete election and its proxy, for tests beyond the suite.
    pub async fn concrete(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<(Election<S>, FaultHandle)> {
        let proxy = FaultProxy::start(self.server)
            .await
            .unwrap_or_else(|e| panic!("{}: starting a fault proxy: {e}", self.name));
        let handle = proxy.handle();
        let address = proxy.local_addr();
        self.proxies.lock().push(proxy);
        let election = (self.build)(
            address,
            resource.to_owned(),
            candidate_id.to_owned(),
            options,
        )
        .await?;
        Ok((election, handle))
    }
}

#[async_trait]
impl<S: LeaseStore> Provider for ProxiedProvider<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn options(&self) -> LeaderElectionOptions {
        self.options.clone()
    }

    fn virtual_time(&self) -> bool {
        false
    }

    fn round_trip(&self) -> Duration {
        Duration::from_millis(50)
    }

    async fn candidate(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<Candidate> {
        let (election, proxy) = self.concrete(resource, candidate_id, options).await?;
        Ok(Candidate::behind_proxy(election, proxy))
    }
}

/// The reason of the next `LostLeadership` on `events`; panics after 30 s.
pub async fn next_loss_reason(events: &mut EventStream) -> LossReason {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
            Ok(Some(LeaderElectionEvent::LostLeadership { reason, .. })) => return reason,
            Ok(Some(_)) => continue,
            other => panic!("no LostLeadership event within 30 s: {other:?}"),
        }
    }
}

/// `a` leads and `b` follows (and has observed `a`); `remove` deletes the
/// lease behind their backs (as an operator would). `a` must lose it with `RenewRejected`, and the
/// next leader's fencing token must be above `a`'s.
pub async fn assert_reelected_with_higher_token_after_removal(
    a: &dyn LeaderElection,
    b: &dyn LeaderElection,
    remove: BoxFuture<'_, ()>,
) {
    a.start().await.expect("start a");
    let first = a.wait_for_leadership().await.expect("a leads");
    b.start().await.expect("start b");
    // Both have seen the lease before it goes: a backend whose tokens live in
    // the lease itself (Kubernetes' leaseTransitions) can only continue above
    // what the re-creator observed.
    let seen = tokio::time::Instant::now();
    while b.current_leader_id().as_deref() != Some(a.candidate_id()) {
        assert!(
            seen.elapsed() < Duration::from_secs(30),
            "b never observed a as the leader"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut events = a.subscribe();
    remove.await;
    assert_eq!(
        next_loss_reason(&mut events).await,
        LossReason::RenewRejected
    );
    let next = tokio::select! {
        guard = a.wait_for_leadership() => guard,
        guard = b.wait_for_leadership() => guard,
    }
    .expect("someone leads again");
    assert!(
        next.fencing_token() > first.fencing_token(),
        "token {} after the removal is not above {}",
        next.fencing_token(),
        first.fencing_token()
    );
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
}
