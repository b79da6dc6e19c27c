//! The command line of `cargo xtask`, declared once; `xflags` parses it and
//! prints `--help` from these doc comments.

xflags::xflags! {
    /// Project automation: what CI runs, test servers, integration suites,
    /// the chaos harness and benchmarks.
    cmd xtask {
        /// fmt check, clippy -D warnings, cargo deny (licences, bans,
        /// sources), workspace tests (unit, doc, conformance, the README's
        /// Rust blocks), docs without warnings, and each published crate
        /// packaged (`cargo package`, `cargo publish --dry-run`), and every
        /// TLS feature of the providers built alone.
        cmd ci {
            /// Then `integration all` and `chaos all --duration 2m` against
            /// real servers (what `.ci/run` does).
            optional --integration
        }
        /// Test servers on free loopback ports: etcd + kube-apiserver, a
        /// Consul server and client agent. Binaries: $LE_ETCD_BIN /
        /// $LE_KUBE_APISERVER_BIN / $LE_CONSUL_BIN, else PATH, else the cache
        /// ($LE_CACHE_DIR, default ~/.cache/leader-election-rs), else built
        /// with Go.
        cmd servers {
            /// Start servers (etcd|kubernetes|consul|all) and write
            /// target/test-servers/env (source it).
            cmd up {
                optional target: String
                /// process (default) or docker.
                optional --runtime runtime: String
            }
            /// Stop recorded servers and remove their data.
            cmd down {
                optional target: String
            }
            /// What runs, plus the env block.
            cmd status {}
            /// Smoke tests against running servers.
            cmd check {
                optional target: String
            }
            /// Only provision the binaries.
            cmd build {}
        }
        /// Servers up, each provider's #[ignore]d tests with --ignored,
        /// servers down; one summary line per suite.
        cmd integration {
            /// consul, kubernetes, etcd, cli (the `leader-election` command) or all (default).
            optional suite: String
            /// process (default) or docker.
            optional --runtime runtime: String
        }
        /// Adversarial multi-process run against the real servers: candidate
        /// processes (Rust, client-go, Consul api.Lock) behind fault proxies,
        /// seeded random faults, then the fenced-write log checker; one case
        /// per backend x fault mix.
        cmd chaos {
            /// kubernetes, consul, etcd or all (default).
            optional backend: String
            /// Per backend, e.g. 2m (default), 90s, 1m30s or seconds.
            optional --duration duration: String
            /// Repeats the fault choices of an earlier run.
            optional --seed seed: u64
        }
        /// Deterministic simulation (crate leader-election-sim, built in
        /// release mode with the mutants compiled in): seeded schedules of
        /// partitions, pauses, crashes, twins and drifting clocks against
        /// the real engine and stores, checked on simulated global time.
        /// Prints `sim: N passed, M failed`; a failing seed prints its trace
        /// and the command that replays it.
        cmd sim {
            /// Seeds per backend (default 1000).
            optional --seeds seeds: u64
            /// The first seed of the range (default 0).
            optional --first first: u64
            /// Run this one seed (replay a failure).
            optional --seed seed: u64
            /// memory, kubernetes, consul, etcd or all (default).
            optional --backend backend: String
            /// Clock rates: none (all equal), within (default) or beyond the
            /// contract's bound.
            optional --drift drift: String
            /// Run with one deliberately broken behaviour switched on.
            optional --mutant mutant: String
            /// Check that every mutant is caught within the seeds.
            optional --mutants
            /// Print the trace of a passing --seed too.
            optional --trace
            /// Run every seed twice and compare the traces (determinism).
            optional --repeat
        }
        /// Timing and scale figures in one table, printed not asserted: the
        /// cost of the leadership reads (release, without tokio test-util),
        /// elections per process (in-memory 100/1 000/10 000, Kubernetes,
        /// Consul and etcd 100/1 000), handover and crash failover between
        /// processes on Kubernetes next to client-go's, on Consul next to
        /// Go's api.Lock and on etcd next to Go's concurrency.Election, and the conformance
        /// suite's C2 deadline, C3 crash failover and C4 handover times.
        /// Not part of CI.
        cmd bench {
            /// Only the in-process figures (no servers).
            optional --local
            /// Handovers and crash failovers measured per elector (default 50).
            optional --transitions transitions: usize
            /// Only the graceful handovers between processes (ours and the Go
            /// elector's), on Kubernetes unless --transitions-only says otherwise.
            optional --handover
            /// Only the handovers and crash failovers between processes on
            /// this backend (kubernetes, consul or etcd), ours next to
            /// client-go's, api.Lock's or concurrency.Election's; with
            /// --handover, only the handovers.
            optional --transitions-only backend: String
            /// Only the requests per minute of one leader and one idle
            /// follower on this backend (kubernetes, consul or etcd), ours next
            /// to client-go's, api.Lock's or concurrency.Election's.
            optional --requests-only requests_backend: String
        }
    }
}
