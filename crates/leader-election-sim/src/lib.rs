//! Deterministic simulation of leader-election-rs.
//!
//! One seed → one schedule of faults → one trace, the same every time. Each
//! seed runs on a fresh single-threaded Tokio runtime with paused (virtual)
//! time, so simulated global time is Tokio's clock and nothing depends on
//! the host's speed:
//!
//! - every candidate is a simulated **process**: a real [`Election`] (the
//!   real engine) over a real provider store, running on its own
//!   [`DriftClock`](clock::DriftClock) (a rate of `1 ± ε` of global time,
//!   injected through the engine's `Clock`), behind its own network
//!   [`Link`](link::Link) (random per-message delays that reorder answers,
//!   one-way partitions that black-hole or refuse, duplicated requests,
//!   requests that go on after the caller gave up) and its own
//!   [`PauseGate`](clock::PauseGate) (a paused process's timers and calls
//!   wait until it resumes);
//! - the **backends** are the real in-memory store and the real Kubernetes
//!   store talking HTTP to a simulated apiserver ([`apiserver`]) through
//!   `kube::Client` built on a tower service, next to a client-go-style
//!   elector ([`clientgo`]) that compares records to the second, the real
//!   Consul store on a simulated Consul cluster ([`consul`]) and the real
//!   etcd store on a simulated etcd cluster ([`etcd`]), both through their
//!   client's transport seam (feature `test-util`);
//! - the retry jitter of the engine comes from the seed
//!   (`seed_thread_jitter`), and every `tokio::select!` the engine runs is
//!   `biased`, so task order on the single thread is a function of the seed;
//! - the [`checker`] checks the contract exactly on global time.
//!
//! Why not `turmoil`: turmoil simulates hosts and sockets (its
//! `turmoil::net` types replace `tokio::net`), with one simulated clock for
//! all hosts. Our seams are above the socket: the `LeaseStore` trait and
//! kube's tower `Service`, so messages can be delayed, dropped, duplicated
//! and reordered there without a TCP stack, and the stores' HTTP clients
//! (reqwest, hyper) need no socket substitution. What turmoil does not give
//! is a clock per host running at its own rate, which is the point of
//! issue 10 (the contract's C1 is stated about clock rates). A single
//! current-thread runtime with paused time gives the same determinism.
//!
//! [`Election`]: leader_election_abstractions::Election

pub mod apiserver;
pub mod checker;
pub mod clientgo;
pub mod clock;
pub mod consul;
mod consul_world;
pub mod etcd;
mod etcd_world;
mod kube_world;
pub mod link;
pub mod log;
pub mod memory;
pub mod rng;
mod scenario;
mod world;

pub use scenario::{run, Backend, Config, Drift, Outcome};

/// Runs `future` to completion on a fresh current-thread runtime with
/// paused (virtual) time, as each seed runs: for tests that drive parts of
/// the simulation by hand. Panics if the runtime cannot be built.
pub fn block_on_paused<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}
