//! Seeds that once found a violation, kept so that they keep passing.

use leader_election_sim::{run, Backend, Config, Drift};

/// Our leader's clock ran about 9 % slow (inside the drift bound) while a
/// client-go follower, which dates our sub-second renewals to the second and
/// has no grace period, waited out the lease: with a term of
/// `lease − 1 s` on our clock, the follower took the lease 10 ms before our
/// leader's deadline (seed 93128, at 6.297 s; seed 85072 likewise at
/// 39.242 s). The term limit now also shrinks by the drift bound the grace
/// period allows.
#[test]
fn a_slow_clocked_leader_ends_its_term_before_a_client_go_follower_takes_over() {
    for seed in [85_072, 93_128] {
        let outcome = run(Config {
            seed,
            backend: Backend::Kubernetes,
            drift: Drift::Within,
        });
        assert!(
            outcome.passed(),
            "seed {seed}: {:?}\n{}",
            outcome.violations,
            outcome.trace.join("\n")
        );
    }
}
