#![doc = include_str!("../README.md")]
//!
//! - **Key layout**: each candidate's key is
//!   `<key_prefix>/<resource>/<etcd lease id in hex>`, attached to its etcd
//!   lease; the leader is the key with the lowest create revision (etcd's
//!   rule). Go's `concurrency.NewElection(session, "<key_prefix>/<resource>")`
//!   uses the same prefix.
//! - **Acquire**: one transaction: if no key exists under the prefix
//!   (`CreateRevision(range) == 0`), put ours on a fresh lease; else read the
//!   oldest key, whose value names the holder. Our followers leave no key
//!   behind (they do not queue), so a waiting Go campaigner goes first.
//! - **Lease**: TTL = `lease_duration + grace_period` in whole seconds
//!   (rounded up), kept alive by each renewal; our leader's term ends
//!   `lease_duration` after the start of its last successful keep-alive, so
//!   it stops a grace period before etcd could free the key for anyone else.
//!   A keep-alive answer with a shorter TTL than asked ends the term.
//! - **Renew** = keep-alive + a read of our key (same create revision and
//!   lease); a lease revoked or a key deleted behind our back ends the term.
//! - **Fencing token** = our key's create revision: a cluster-wide store
//!   revision, strictly increasing across terms, restarts and foreign
//!   campaigners.
//! - **Watch**: followers and the leader watch the prefix from the revision
//!   after their read and re-read the oldest key at each event's revision;
//!   no polling. A watch that hears nothing for `lease_duration +
//!   grace_period` is reopened, so a dead connection is noticed.
//! - **Release** deletes our key (if its create revision is still ours) and
//!   revokes the lease.
//! - **Candidate registry**: `<key_prefix>/.candidates/<resource>/<id>`
//!   (JSON, on a lease of the record's TTL), outside the election prefix,
//!   which etcd's election clients read as their queue.
//! - **Auth**: with [`EtcdConfig::user`] the client authenticates and sends
//!   etcd's token (renewed when it expires); the user needs a role with
//!   `readwrite` on the prefix `<key_prefix>/` and nothing else
//!   (`etcdctl role grant-permission <role> --prefix=true readwrite
//!   <key_prefix>/`). A permission error becomes
//!   [`Error::Unauthorized`](leader_election_abstractions::Error::Unauthorized)
//!   naming that grant.
//!
//! # Why etcd's JSON gateway and not the `etcd-client` crate
//!
//! etcd serves its v3 API over gRPC and, on the same port, as JSON over HTTP
//! (its gRPC gateway, `/v3/kv/range`, `/v3/lease/keepalive`, `/v3/watch`,
//! ...; part of etcd's documented API since v3.3). This crate talks to the
//! gateway with `reqwest`, which the workspace already uses. We looked at
//! `etcd-client` 0.21 (MIT, maintained, a complete gRPC client over tonic):
//!
//! - **Build**: its build script runs `protoc`, which a fresh machine does
//!   not have (CI would install `protobuf-compiler` or vendor a `protoc`
//!   binary crate), and it brings tonic, prost, tower and a second hyper
//!   stack: minutes of extra compile time on our 2-core CI for five RPCs.
//! - **TLS**: it picks TLS through tonic's features (rustls or OpenSSL);
//!   with reqwest we keep the one rustls stack the other providers use.
//! - **Licence and maintenance**: both fine (MIT; releases follow tonic).
//!   The gateway's JSON is stable across etcd 3.4–3.6 and is tested here
//!   against etcd 3.6.16.
//!
//! What we give up: HTTP/1.1 instead of one multiplexed HTTP/2 connection
//! (each election holds one watch connection, and renewals use pooled
//! connections), and the gateway's JSON encoding (64-bit integers as
//! strings, bytes as base64), decoded in `wire.rs`.
//!
//! Where things are: `store.rs` acquire, renew and release; `store/watch.rs`
//! the watch; `store/candidates.rs` the candidate registry; `client.rs` the
//! gateway calls, auth and error kinds; `wire.rs` the JSON; `timing.rs` the
//! lease TTL; `config.rs` and `factory.rs` the configuration and the factory.

mod client;
mod config;
mod factory;
#[cfg(test)]
mod fuzz;
mod store;
mod timing;
#[cfg(feature = "test-util")]
pub mod transport;
mod wire;

pub use config::{EtcdConfig, EtcdTls, EtcdUser, Password};
pub use factory::EtcdLeaderElectionFactory;
pub use store::{EtcdGrant, EtcdLeaseStore};
pub use timing::MAX_LEASE_TTL_SECONDS;
