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
//! [`telemetry`] (metric names and the store-call span),
//! `factory.rs` ([`StoreFactory`], [`ElectionBuilder`]), `registry.rs`
//! ([`ElectionRegistry`]: one live election per resource and id), `traits.rs`
//! (the seed's interfaces and [`LeaderElectionExt`]), `guard.rs`
//! ([`LeadershipGuard`]), `events.rs`, `options.rs`, `error.rs`, `types.rs`,
//! `view.rs` ([`LeadershipState`] of
//! [`watch_leadership`](LeaderElection::watch_leadership) and [`Unhealthy`] of
//! [`healthz`](LeaderElection::healthz)); `src/engine/view.rs` keeps the view
//! current and supervises the engine task.
//!
//! ## Features
//!
//! `test-util`: hooks for tests and demos (`Election::abort_without_release`,
//! a simulated crash, `Election::store`, and `seed_thread_jitter` for
//! deterministic simulations). Not for production code.
//!
//! `metrics`: the engine records its metrics through the `metrics` facade
//! (names and labels in [`telemetry`]); the application installs the
//! exporter. Off by default; off, no metric code is compiled.
//!
//! `sim-mutants`: lets the simulation switch on deliberately broken
//! behaviours ([`mutants`]); only the simulation crate enables it.
//!
//! A custom monotonic [`Clock`] (for simulations with drifting clocks) is
//! set through [`ElectionBuilder::clock`] or [`Election::with_clock`]; it
//! needs no feature, and elections without one use Tokio's clock directly.

pub mod clock;
mod engine;
mod error;
mod events;
mod factory;
mod guard;
pub mod limits;
pub mod mutants;
mod options;
mod registry;
pub mod store;
pub mod telemetry;
mod traits;
mod types;
mod view;

pub use clock::Clock;
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
pub use view::{LeadershipState, Unhealthy};

/// Makes the retry jitter of elections whose engines run on the calling
/// thread a deterministic sequence from `seed` (`None`: random again), so a
/// simulation that runs on one thread repeats exactly. Feature `test-util`.
#[cfg(feature = "test-util")]
pub fn seed_thread_jitter(seed: Option<u64>) {
    engine::seed_jitter(seed);
}
