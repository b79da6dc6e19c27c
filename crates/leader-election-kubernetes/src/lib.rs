//! Kubernetes provider for leader-election-rs: each resource is a
//! `coordination.k8s.io/v1` Lease, read and written exactly as client-go's
//! `LeaseLock` does, so a Go controller using client-go's elector and a Rust
//! service using this crate never both lead.
//!
//! - **Acquire/renew**: PUT with `metadata.resourceVersion`; a 409 Conflict
//!   means re-read, never overwrite. Create on NotFound (AlreadyExists = lost
//!   the race).
//! - **Expiry**: client-go's observed-time rule on our own monotonic clock,
//!   plus the grace period; the remote `renewTime` is never trusted.
//! - **Release**: `holderIdentity: ""`, `leaseDurationSeconds: 1`, retried on 409.
//! - **Fencing token**: `leaseTransitions`, incremented on every acquisition.
//!   A Lease we create starts at the storage revision reported by a
//!   consistent list (etcd's revision), which exceeds every `leaseTransitions`
//!   a deleted predecessor can have reached, so tokens keep increasing even
//!   if someone deletes the Lease. (Should the revision not fit an `int32`,
//!   the creator continues above the highest value it observed.)
//! - **Watch**: the one Lease (field selector on its name), resumed by
//!   resourceVersion and re-listed after errors.
//! - **Lease duration** is written in whole seconds, rounded up; our own
//!   leader still steps down at its exact local deadline.
//! - **Candidate registry**: one small Lease per candidate,
//!   `<resource>-candidate-<hash>`, labelled with a hash of the resource.
//!
//! RBAC: `get`, `list`, `watch`, `create`, `update`, `delete` on `leases` in
//! `coordination.k8s.io` (see `examples/kubernetes/rbac.yaml`).
//!
//! The crate does not pick a `k8s-openapi` version feature; your binary does
//! (for example `k8s-openapi = { version = "0.29", features = ["v1_36"] }`).
//!
//! ```no_run
//! use leader_election_abstractions::{LeaderElection, LeaderElectionOptions};
//! use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};
//!
//! # async fn run() -> leader_election_abstractions::Result<()> {
//! let factory = KubernetesLeaderElectionFactory::infer(
//!     KubernetesConfig::default(),
//!     LeaderElectionOptions::default(),
//! )
//! .await?;
//! let election = factory.election("nightly-report", Some("worker-1"), false)?;
//! election.start().await?;
//! let guard = election.wait_for_leadership().await?;
//! println!("leading with fencing token {}", guard.fencing_token());
//! election.stop().await
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod config;
mod factory;
mod store;

pub use config::{KubernetesConfig, MAX_RESOURCE_NAME};
pub use factory::KubernetesLeaderElectionFactory;
pub use store::{KubernetesGrant, KubernetesLeaseStore};
