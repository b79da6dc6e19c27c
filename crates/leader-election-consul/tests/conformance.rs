//! The whole conformance suite against a real Consul agent.
//! Run with `cargo xtask integration consul`.

mod support;

leader_election_testkit::conformance_suite!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a Consul agent: cargo xtask integration consul"]
    provider = support::consul_provider()
);
