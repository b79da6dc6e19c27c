//! The chaos harness's library: the shared fenced-write log that every
//! candidate process appends to, and the external checker that reads it.
//!
//! `cargo xtask chaos` starts the candidate processes (the `chaos-candidate`
//! binary of this crate for Rust candidates, a Go program for client-go's
//! elector, Consul's `api.Lock` and etcd's `concurrency.Election`), puts each behind its own fault proxy
//! (the `chaos-proxy` binary), injects faults at random, and finally runs
//! `chaos-check`, which calls [`checker::analyse`] on the log.
//!
//! Every candidate, from a plain OS thread, reads `CLOCK_MONOTONIC`, then
//! checks its fencing token, then appends one [`log::Line::Write`] line; after
//! the write returns it reads the clock again and appends a
//! [`log::Line::Done`] line. `CLOCK_MONOTONIC` is one clock for the whole
//! machine on Linux, so times from different processes compare.
//!
//! # What a passing run shows
//!
//! No write of ours was checked after a newer term's write had returned (a
//! *stale write*), our terms' tokens strictly increased, and no token of ours
//! was used by two processes, across every fault of the run: fast handovers
//! (`resign()`, unhealthy step-down, SIGTERM) and slow ones (SIGKILL,
//! SIGSTOP past the lease, a black-holed or slowed connection, a frozen
//! kube-apiserver or etcd, a restarted Consul agent), a twin process with
//! the Rust leader's explicit id beside it, and a foreign client (client-go's
//! elector, Go's `api.Lock`, etcd's `concurrency.Election`) contending for
//! the same lock.
//!
//! # Limits
//!
//! * One machine: every process reads the same `CLOCK_MONOTONIC`, so clock
//!   skew or drift between hosts is not exercised, and neither is a host
//!   suspend (`CLOCK_MONOTONIC` stops while the host sleeps, so a leader's
//!   local deadline stops with it).
//! * A stale write is an ordering fact between two log lines, so an overlap
//!   is seen only if both terms write during it: candidates write every
//!   10 ms, and shorter overlaps can go unseen.
//! * A *late write* (checked in time, then paused before it landed) is
//!   printed, not failed: no lock prevents it; a fencing token checked by the
//!   store does.
//! * Single-server backends (one Consul server plus a client agent, one
//!   kube-apiserver on one etcd): server-side failover, raft leader changes
//!   and partitions between servers are not tested. The proxy faults act on
//!   a candidate's TCP connections (drop everything, or delay every chunk),
//!   not on single packets.
//! * Takeover gaps are attributed to the last fault injected before the new
//!   term's first write (within 10 s), so a takeover that a load spike caused
//!   is counted under whatever fault came last.

pub mod checker;
pub mod log;
pub mod rng;

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine (it does not advance while the host is suspended).
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}
