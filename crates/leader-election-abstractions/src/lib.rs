#![doc = include_str!("../README.md")]
//!
//! ## How do I …
//!
//! - **create an election?** Library code: [`LeaderElectionFactory::create_election`]
//!   (or `create_health_based_election`) on the `Arc<dyn ...>` it was given.
//!   A binary that wants the concrete type: the provider factory's
//!   [`StoreFactory::election`] builder,
//!   `factory.election("jobs").candidate_id("a").options(o).health_based().build()`.
//! - **add a provider?** Implement [`LeaseStore`] (the atomic operations on
//!   one lease, plus a candidate registry) and [`StoreFactory`] (one store
//!   per election); the engine does the rest. Then run the conformance suite
//!   of `leader-election-testkit` against the real server.
//! - **find the state machine?** `src/engine/run.rs` (the engine task:
//!   acquire, renew, step down, follow); `src/engine/shared.rs` holds the
//!   lock-free deadline that `is_leader()` reads; `src/engine/mod.rs` is the
//!   [`Election`] handle. The contract it keeps (C1–C11) is in the
//!   repository's README.
//!
//! ## Modules and files
//!
//! [`store`] (the provider interface), [`limits`] (name and metadata rules),
//! `factory.rs` ([`StoreFactory`], [`ElectionBuilder`]), `registry.rs`
//! ([`ElectionRegistry`]: one live election per resource and id), `traits.rs`
//! (the seed's interfaces and [`LeaderElectionExt`]), `guard.rs`
//! ([`LeadershipGuard`]), `events.rs`, `options.rs`, `error.rs`, `types.rs`.
//!
//! ## Features
//!
//! `test-util`: hooks for tests and demos (`Election::abort_without_release`,
//! a simulated crash, and `Election::store`). Not for production code.

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
pub use options::{metadata, LeaderElectionOptions, LeaderElectionOptionsBuilder};
pub use registry::{ElectionRegistry, Registration};
pub use store::LeaseStore;
pub use traits::{
    HealthBasedLeaderElection, LeaderElection, LeaderElectionExt, LeaderElectionFactory, RunOutcome,
};
pub use types::{CandidateHealth, FencingToken, LeaderElectionEvent, LossReason};
