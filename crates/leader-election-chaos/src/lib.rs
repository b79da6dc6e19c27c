//! The chaos harness's library: the shared fenced-write log that every
//! candidate process appends to, and the external checker that reads it.
//!
//! `cargo xtask chaos` starts the candidate processes (the `chaos-candidate`
//! binary of this crate for Rust candidates, a Go program for client-go's
//! elector and Consul's `api.Lock`), puts each behind its own fault proxy
//! (the `chaos-proxy` binary), injects faults at random, and finally runs
//! `chaos-check`, which calls [`checker::analyse`] on the log.
//!
//! Every candidate, from a plain OS thread, reads `CLOCK_MONOTONIC`, then
//! checks its fencing token, then appends one [`log::Line::Write`] line; after
//! the write returns it reads the clock again and appends a
//! [`log::Line::Done`] line. `CLOCK_MONOTONIC` is one clock for the whole
//! machine on Linux, so times from different processes compare.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod checker;
pub mod log;
pub mod rng;

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine (it does not advance while the host is suspended).
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}
