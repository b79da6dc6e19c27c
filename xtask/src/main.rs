//! Project automation, run as `cargo xtask <command>`.
//!
//! Every job CI does is a command here, so a developer can run exactly what CI
//! runs. Each step prints the command it runs and how long it took.

use std::process::{Command, ExitCode};
use std::time::Instant;

mod chaos;
mod chaos_faults;
mod chaos_parts;
mod chaos_run;
mod check;
mod consul;
mod docker;
mod etcd;
mod http;
mod integration;
mod kube;
mod proc;
mod provision;
mod servers;
mod state;
mod versions;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&args[1..]),
        Some("servers") => servers::command(&args[1..]),
        Some("integration") => integration::command(&args[1..]),
        Some("chaos") => chaos::command(&args[1..]),
        Some("bench") => bench(),
        Some("help") | Some("--help") | Some("-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         commands:\n  \
         ci [--integration]\n      fmt check, clippy -D warnings, cargo deny (licences, bans, sources), workspace tests (unit, doc, conformance), docs\n      \
         without warnings; with --integration also `integration all`\n  \
         servers up|down|status|check|build [etcd|kubernetes|consul|all] [--runtime process|docker]\n      \
         test servers on free loopback ports: etcd + kube-apiserver, a Consul agent.\n      \
         Binaries: $LE_ETCD_BIN / $LE_KUBE_APISERVER_BIN / $LE_CONSUL_BIN, else PATH, else\n      \
         the cache ($LE_CACHE_DIR, default ~/.cache/leader-election-rs), else built with Go.\n      \
         `up` writes target/test-servers/env (source it); `check` runs the smoke tests\n  \
         integration [consul|kubernetes|all] [--runtime process|docker]\n      \
         servers up, provider #[ignore]d tests with --ignored, servers down, one summary line\n      \
         per suite\n  \
         chaos [kubernetes|consul|all] [--duration D] [--seed N]\n      \
         adversarial multi-process run against the real servers: candidate processes (Rust,\n      \
         client-go, Consul api.Lock) behind fault proxies, seeded random faults, then the\n      \
         fenced-write log checker; one case per backend x fault mix (D per backend, default 2m)\n  \
         bench   timing numbers, printed not asserted: the hot-path benchmark, the\n      \
         quickstart's failover and handover times, and against the real servers the\n      \
         conformance suite's C2 deadline, C3 crash failover and C4 handover times\n  \
         help    this text"
    );
}

/// What CI runs: formatting, lints, every test of the workspace and the docs;
/// with `--integration`, then the integration suites against real servers.
fn ci(args: &[String]) -> Result<(), String> {
    let integration = match args.first().map(String::as_str) {
        None => false,
        Some("--integration") => true,
        Some(other) => {
            return Err(format!(
                "unknown `ci` argument `{other}`; expected --integration"
            ))
        }
    };
    run("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // Licences, bans and sources (advisories need the network; see deny.toml).
    run(
        "cargo",
        &["deny", "check", "licenses", "bans", "sources"],
        &[],
    )?;
    run("cargo", &["test", "--workspace"], &[])?;
    run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    if integration {
        println!("xtask: $ cargo xtask integration all");
        let started = Instant::now();
        let result = integration::run("all", servers::Runtime::Process);
        println!(
            "xtask: `cargo xtask integration all` finished in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        result?;
        println!("xtask: $ cargo xtask chaos all --duration 2m");
        let started = Instant::now();
        let result = chaos::run("all", std::time::Duration::from_secs(120), None);
        println!(
            "xtask: `cargo xtask chaos all --duration 2m` finished in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        result?;
    }
    Ok(())
}

/// Timing claims are measured here and printed, never asserted in tests.
fn bench() -> Result<(), String> {
    run(
        "cargo",
        &[
            "bench",
            "-p",
            "leader-election-abstractions",
            "--bench",
            "hot_path",
        ],
        &[],
    )?;
    run(
        "cargo",
        &[
            "run",
            "--release",
            "-p",
            "examples",
            "--example",
            "quickstart",
        ],
        &[],
    )?;
    integration::timings(servers::Runtime::Process)
}

/// Runs one command, echoing it first, and fails with its exit status.
fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    println!("xtask: $ {shown}");
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not run `{shown}`: {e}"))?;
    println!(
        "xtask: `{shown}` finished in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed with {status}"))
    }
}
