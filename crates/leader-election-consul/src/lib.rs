#![doc = include_str!("../README.md")]
//!
//! - **Session**: TTL = `lease_duration`, lock-delay = `lease_duration +
//!   grace_period` (capped at Consul's 60 s), no node checks unless
//!   [`ConsulConfig::node_checks`] asks. A session Consul invalidates early
//!   (its agent leaves, its node is deregistered) frees the lock after the
//!   lock-delay alone, so the leader's term never outlasts the lock-delay
//!   minus the grace period: when the cap bites, terms last `60 s −
//!   grace_period` from each renewal's start, not a whole lease.
//! - **Acquire** with `?acquire=`, then a consistent read; the fencing token is
//!   the key's `ModifyIndex` after the acquire, which grows with every write in
//!   the cluster, so it stays increasing even if the key is deleted and re-created.
//! - **Renew**: session renew plus a consistent read of the key; a 404 or a
//!   foreign `Session` means lost (an operator's plain PUT, which keeps our
//!   session on the key, does not, as in `api.Lock`). The leader steps down at its local deadline
//!   whatever Consul answers, unlike Go's lock, which can notice a lost lock
//!   minutes late.
//! - **Watch**: one blocking query per factory on the whole key prefix,
//!   shared by its elections; followers react to a release or an
//!   invalidated session at once. At most
//!   [`ConsulConfig::max_connections`] requests per factory are in flight.
//! - **Candidate registry**: `<prefix>/<resource>/candidates/<id>`, bound to a
//!   second session of the candidate's (`Behavior = delete`), so Consul
//!   deletes the record when the candidate dies.

mod client;
mod config;
mod factory;
mod shared_watch;
mod store;
mod tls;
#[cfg(feature = "test-util")]
pub mod transport;

pub use config::{
    AclToken, Consistency, ConsulConfig, ConsulTls, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_SESSION_TTL_MIN, MAX_CONNECTIONS_LIMIT, MAX_LOCK_DELAY,
    MAX_SESSION_TTL,
};
pub use factory::ConsulLeaderElectionFactory;
pub use store::{ConsulGrant, ConsulLeaseStore};

#[cfg(test)]
mod fuzz;
