//! One seed, one trace: a seed run twice gives the same trace, line for line.

use leader_election_sim::{run, Backend, Config, Drift};

fn twice(backend: Backend, seed: u64) {
    let config = Config {
        seed,
        backend,
        drift: Drift::Within,
    };
    let first = run(config);
    let second = run(config);
    assert!(
        first.trace.len() > 10,
        "a run records its faults and terms: {:?}",
        first.trace
    );
    assert!(first.terms > 0, "someone led in seed {seed}");
    assert_eq!(first.trace, second.trace, "seed {seed} on {backend:?}");
}

#[test]
fn a_memory_seed_repeats_exactly() {
    for seed in [1, 2, 3] {
        twice(Backend::Memory, seed);
    }
}

#[test]
fn a_kubernetes_seed_repeats_exactly() {
    for seed in [1, 2] {
        twice(Backend::Kubernetes, seed);
    }
}

#[test]
fn a_consul_seed_repeats_exactly() {
    for seed in [1, 2] {
        twice(Backend::Consul, seed);
    }
}

#[test]
fn an_etcd_seed_repeats_exactly() {
    for seed in [1, 2, 3] {
        twice(Backend::Etcd, seed);
    }
}

#[test]
fn different_seeds_make_different_runs() {
    let trace = |seed| {
        run(Config {
            seed,
            backend: Backend::Memory,
            drift: Drift::Within,
        })
        .trace
    };
    assert_ne!(trace(1), trace(2));
}

#[test]
fn seeds_pass_with_the_fixes_applied() {
    for seed in 0..40 {
        for backend in Backend::ALL {
            let outcome = run(Config {
                seed,
                backend,
                drift: Drift::Within,
            });
            assert!(
                outcome.passed(),
                "seed {seed} on {backend:?}:\n{}",
                outcome.trace.join("\n")
            );
        }
    }
}
