//! The whole conformance suite against a real kube-apiserver.
//! Run with `cargo xtask integration kubernetes`.

mod support;

leader_election_testkit::conformance_suite!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs kube-apiserver: cargo xtask integration kubernetes"]
    provider = support::kubernetes_provider().await
);
