//! Distributed leader election for Rust services: the traits library code
//! depends on, and the one election engine every provider shares.
//!
//! A service depends on this crate alone and receives an
//! `Arc<dyn LeaderElectionFactory>`; its binary picks a provider
//! (`leader-election-inmemory`, Consul, Kubernetes). Exactly one candidate of
//! a resource leads at a time; it knows at every instant whether it still
//! leads ([`LeaderElection::is_leader`] is computed against a local deadline),
//! hands over fast on `stop`, and receives a [`FencingToken`] to protect what
//! it writes.
//!
//! ```
//! use std::sync::Arc;
//! use leader_election_abstractions::{LeaderElection, LeaderElectionFactory};
//!
//! /// Library code sees only the abstraction.
//! async fn run_singleton(factory: Arc<dyn LeaderElectionFactory>) -> leader_election_abstractions::Result<()> {
//!     let election = factory.create_election("nightly-report", Some("worker-1"))?;
//!     election.start().await?;
//!     let guard = election.wait_for_leadership().await?;
//!     println!("leading with fencing token {}", guard.fencing_token());
//!     election.stop().await
//! }
//! ```
//!
//! Providers implement [`LeaseStore`] and hand it to [`Election::new`]; the
//! engine owns timing, state, events, health step-down and fencing.
//!
//! No feature flags.

mod engine;
mod error;
mod events;
mod factory;
mod guard;
pub mod limits;
mod options;
mod registry;
pub mod store;
mod traits;
mod types;

pub use engine::Election;
pub use error::{BoxError, Error, Result};
pub use events::{EventCallback, EventStream};
pub use factory::{ElectionBuilder, StoreFactory};
pub use guard::LeadershipGuard;
pub use options::{LeaderElectionOptions, LeaderElectionOptionsBuilder};
pub use registry::{ElectionRegistry, Registration};
pub use store::LeaseStore;
pub use traits::{
    HealthBasedLeaderElection, LeaderElection, LeaderElectionExt, LeaderElectionFactory, RunOutcome,
};
pub use types::{CandidateHealth, FencingToken, LeaderElectionEvent, LossReason};
