#![doc = include_str!("../README.md")]
//!
//! - **Acquire/renew**: PUT with `metadata.resourceVersion`; a 409 Conflict
//!   means re-read, never overwrite. Create on NotFound (AlreadyExists = lost
//!   the race).
//! - **Expiry**: client-go's observed-time rule on our own monotonic clock,
//!   plus the grace period; the remote `renewTime` is never trusted.
//! - **Release**: `holderIdentity: ""`, `leaseDurationSeconds: 1`, retried on 409.
//! - **Identity**: `holderIdentity` is the candidate id (client-go reads it);
//!   the annotation `leader-election-rs/holder-instance` names the election
//!   instance that acquired the Lease. Only that instance takes a Lease held
//!   under its id back early; a Lease held under the same id by another
//!   process or election is waited out like anyone else's, so two processes
//!   configured with one id never both lead. (client-go itself treats every
//!   record with its identity as its own: give client-go peers ids of their own.)
//! - **Term limit**: a term lasts at most `(lease_duration - 1 s) ×
//!   lease_duration / (lease_duration + grace_period)` from the start of the
//!   request that began or renewed it, and `renew_interval` must be shorter
//!   than that. client-go notices renewals by comparing records whose
//!   `renewTime` is serialised to whole seconds, so it can date our lease up to
//!   one second early, and it has no grace period, so the clock-rate margin
//!   our own followers get from the grace period comes off our term instead;
//!   together they keep our leader from outliving the lease in a client-go
//!   follower's eyes.
//! - **Fencing token**: `epoch × 2³¹ + leaseTransitions`, where the epoch is the
//!   storage revision (etcd's) read before the acquiring write, recorded in the
//!   annotation `leader-election-rs/token-epoch`. `leaseTransitions` grows by
//!   one per acquisition as in client-go (restarting at 0 under a new epoch
//!   when it would pass `i32::MAX`). Every acquisition of ours reads a revision
//!   above the epoch of every earlier acquisition, so our tokens strictly
//!   increase across deletion and re-creation of the Lease, foreign clients'
//!   acquisitions and revisions above 2³¹. Where that cannot hold (a
//!   `resourceVersion` that is not a number, or one of 2³³ or more) the store
//!   refuses to lead, with an error and an error log, rather than reuse a token.
//!   A foreign client's term on a Lease it re-created has its bare
//!   `leaseTransitions` as token: lower than ours.
//! - **Watch**: one list + watch of the namespace's Leases per factory,
//!   shared by its elections and dispatched by Lease name; resumed by
//!   resourceVersion, re-listed after a 410 Gone. Each election reads the
//!   records into its own observed-time view.
//! - **Lease duration** is written in whole seconds, rounded up; our own
//!   leader still steps down at its exact local deadline.
//! - **Candidate registry**: one small Lease per candidate,
//!   `<resource>-candidate-<hash>`, labelled with a hash of the resource.
//!
//! Where things are: `store.rs` writes the Lease (acquire, renew, release);
//! `observe.rs` is the observed-time rule (what a read of the Lease means);
//! `store/watch.rs` the factory's shared list-then-watch; `store/candidates.rs`
//! the candidate registry; `tokens.rs` the fencing tokens; `timing.rs` whole
//! seconds and the term limit; `errors.rs` how apiserver errors map to
//! [`Error`](leader_election_abstractions::Error) kinds; `config.rs` and
//! `factory.rs` the configuration and the factory; `clock.rs` the monotonic
//! clock the store's timing runs on (Tokio's, or one given to the factory).

mod client;
mod clock;
mod config;
mod errors;
mod factory;
#[cfg(test)]
mod fuzz;
mod observe;
mod store;
mod timing;
mod tokens;

pub use client::client_with_nodelay;
pub use config::{KubernetesConfig, MAX_RESOURCE_NAME};
pub use factory::KubernetesLeaderElectionFactory;
pub use store::{KubernetesGrant, KubernetesLeaseStore, INSTANCE_ANNOTATION};
pub use timing::CLIENT_GO_DATING_MARGIN;
pub use tokens::EPOCH_ANNOTATION;
