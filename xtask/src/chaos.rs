//! `cargo xtask chaos [kubernetes|consul|etcd|all] [--duration D] [--seed N]`: the
//! adversarial multi-process harness against the real servers.
//!
//! Per backend it brings the servers up (like `integration`, stopping only
//! what it started, also on failure), builds the `leader-election-chaos`
//! binaries and the Go foreign candidates (`go/chaos-peers` for Kubernetes and
//! Consul, `go/etcd-election-peer` for etcd, cached under a hash of their
//! sources), and runs one case per fault mix (see
//! `chaos_faults`), each for its share of `--duration` (the time per backend).
//! Every case ends with `chaos-check` on the case's shared log. It prints the
//! checker's report per case, a table, and `chaos: N passed, M failed`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::chaos_faults::{Mix, Stats, MIXES};
use crate::chaos_run::{self, Backend, CaseResult};
use crate::provision::{self, workspace_root};
use crate::servers::{self, Runtime, Target};

/// Parses `2m`, `90s`, `1m30s` or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--duration {text:?}: expected e.g. 2m, 90s, 1m30s or seconds");
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += match c {
            'h' => n * 3600,
            'm' => n * 60,
            's' => n,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Entry point of `cargo xtask chaos`.
pub(crate) fn command(flags: crate::flags::Chaos) -> Result<(), String> {
    let which = match flags.backend.as_deref() {
        None => "all",
        Some(name @ ("kubernetes" | "consul" | "etcd" | "all")) => name,
        Some(other) => {
            return Err(format!(
                "unknown backend `{other}`; expected kubernetes, consul, etcd or all"
            ))
        }
    };
    let duration = match flags.duration.as_deref() {
        Some(text) => parse_duration(text)?,
        None => Duration::from_secs(120),
    };
    run(which, duration, flags.seed)
}

/// The cargo target directory (where the chaos binaries and run logs go).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the chaos binaries; returns the directory they are in.
fn build_binaries() -> Result<PathBuf, String> {
    let shown = "cargo build -p leader-election-chaos --bins";
    println!("xtask: chaos: $ {shown}");
    let status = Command::new("cargo")
        .args(["build", "-p", "leader-election-chaos", "--bins"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{shown}` failed with {status}"));
    }
    Ok(target_dir().join("debug"))
}

/// The backends `chaos all` runs, in order.
const BACKENDS: [Backend; 3] = [Backend::Kubernetes, Backend::Consul, Backend::Etcd];

/// The Go program of the Kubernetes and Consul foreign candidates.
fn chaos_peers() -> Result<PathBuf, String> {
    provision::ensure_program("chaos-peers", "LE_CHAOS_PEERS_BIN")
}

/// Runs the chaos cases of `which` for `duration` per backend.
pub(crate) fn run(which: &str, duration: Duration, seed: Option<u64>) -> Result<(), String> {
    let started = Instant::now();
    let seed = match seed {
        Some(seed) => seed,
        None => u64::from_str_radix(&crate::proc::random_hex(8)?, 16)
            .map_err(|e| format!("seed: {e}"))?,
    };
    println!("xtask: chaos: seed {seed} (repeat the fault choices with --seed {seed})");
    let backends: Vec<Backend> = BACKENDS
        .into_iter()
        .filter(|b| which == "all" || b.name() == which)
        .collect();
    let bin_dir = build_binaries()?;
    let mut results: Vec<CaseResult> = Vec::new();
    for backend in backends {
        let (target, foreign) = match backend {
            Backend::Kubernetes => (Target::Kubernetes, chaos_peers()?),
            Backend::Consul => (Target::Consul, chaos_peers()?),
            Backend::Etcd => (
                Target::Etcd,
                provision::ensure_program("etcd-election-peer", "LE_ETCD_ELECTION_PEER_BIN")?,
            ),
        };
        let (up, mut teardown) = servers::up_for_run(target, Runtime::Process, "chaos")?;
        let state = up.map_err(|e| {
            format!(
                "chaos {}: servers did not start, so nothing can be tested: {e}",
                backend.name()
            )
        })?;
        let mixes: Vec<&Mix> = MIXES.iter().collect();
        let per_case = duration / u32::try_from(mixes.len()).unwrap_or(1);
        for (i, mix) in mixes.into_iter().enumerate() {
            let case_seed =
                seed.wrapping_add(u64::try_from(i).unwrap_or(0) * 1_000_003) ^ backend.salt();
            let setup = chaos_run::Setup {
                backend,
                mix,
                duration: per_case,
                seed: case_seed,
                bin_dir: bin_dir.clone(),
                foreign: foreign.clone(),
                run_dir: target_dir().join("chaos").join(format!(
                    "{}-{}-{seed}",
                    backend.name(),
                    mix.name
                )),
                state: state.clone(),
            };
            results.push(chaos_run::run_case(&setup, &mut teardown));
        }
    }
    print_summary(&results, seed, started.elapsed());
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        Err(format!(
            "{failed} chaos cases failed (see the reports above)"
        ))
    } else {
        Ok(())
    }
}

fn print_summary(results: &[CaseResult], seed: u64, elapsed: Duration) {
    println!(
        "\nxtask: chaos summary (seed {seed}, {:.0}s):",
        elapsed.as_secs_f64()
    );
    println!(
        "{:<22} {:>6} {:>7} {:>9} {:>11} {:>12} {:>13}  result",
        "case",
        "faults",
        "takeovers",
        "rust writes",
        "foreign writes",
        "rust stale",
        "foreign stale"
    );
    for r in results {
        println!(
            "{:<22} {:>6} {:>7} {:>9} {:>11} {:>12} {:>13}  {}",
            r.name,
            r.field("faults"),
            r.field("takeovers"),
            r.field("rust_writes"),
            r.field("foreign_writes"),
            r.field("rust_stale"),
            r.field("foreign_stale"),
            if r.passed {
                "passed".to_owned()
            } else {
                format!("FAILED: {}", r.reason)
            }
        );
    }
    for backend in BACKENDS {
        let cases: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.name.starts_with(&format!("{}/", backend.name())))
            .collect();
        if cases.is_empty() {
            continue;
        }
        let transitions: u64 = cases
            .iter()
            .filter_map(|r| r.field("takeovers").parse::<u64>().ok())
            .sum();
        let mut stats = Stats::default();
        for r in &cases {
            stats.add(&r.stats);
        }
        println!(
            "\n{}: {transitions} transitions (takeovers in the log); the harness's fault counts:",
            backend.name()
        );
        print!("{}", stats.table());
    }
    let transitions: u64 = results
        .iter()
        .filter_map(|r| r.field("takeovers").parse::<u64>().ok())
        .sum();
    println!("transitions in total: {transitions}");
    let passed = results.iter().filter(|r| r.passed).count();
    println!("chaos: {passed} passed, {} failed", results.len() - passed);
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5m3").is_err());
    }
}
