//! The whole conformance suite against a real etcd.
//! Run with `cargo xtask integration etcd`.

mod support;

leader_election_testkit::conformance_suite!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs etcd: cargo xtask integration etcd"]
    provider = support::etcd_provider()
);
