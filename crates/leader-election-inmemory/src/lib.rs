//! In-process lease store for leader-election-rs: for tests, development and
//! single-process applications.
//!
//! Candidates contend when their factories share one [`InMemoryStore`]
//! (clone it). The store keeps time with Tokio's clock, so tests can run under
//! `tokio::time::pause()` in virtual time. Faults can be injected per
//! candidate ([`InMemoryStore::set_fault`]) to exercise the engine's safety
//! rules without a network.
//!
//! ```
//! use std::sync::Arc;
//! use leader_election_abstractions::{LeaderElection, LeaderElectionFactory, LeaderElectionOptions};
//! use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> leader_election_abstractions::Result<()> {
//! let store = InMemoryStore::new();
//! let factory: Arc<dyn LeaderElectionFactory> =
//!     Arc::new(InMemoryLeaderElectionFactory::new(store, LeaderElectionOptions::default())?);
//! let election = factory.create_election("reports", Some("worker-1"))?;
//! election.start().await?;
//! let guard = election.wait_for_leadership().await?;
//! assert!(election.is_leader());
//! assert_eq!(guard.fencing_token().get(), 1);
//! election.stop().await?;
//! # Ok(()) }
//! ```

mod factory;
mod store;

pub use factory::InMemoryLeaderElectionFactory;
pub use store::{InMemoryGrant, InMemoryLeaseStore, InMemoryStore, StoreFault};
