//! Project automation, run as `cargo xtask <command>`.
//!
//! Every job CI does is a command here, so a developer can run exactly what CI
//! runs. Each step prints the command it runs and how long it took.

use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod bench_transitions;
mod chaos;
mod chaos_faults;
mod chaos_parts;
mod chaos_run;
mod check;
mod consul;
mod docker;
mod etcd;
mod flags;
mod http;
mod integration;
mod kube;
mod proc;
mod provision;
mod servers;
mod state;
mod versions;

fn main() -> ExitCode {
    let flags = match flags::Xtask::from_env() {
        Ok(flags) => flags,
        Err(error) => {
            // `--help` arrives here too, as the help text.
            eprintln!("{error}");
            return if error.is_help() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let result = match flags.subcommand {
        flags::XtaskCmd::Ci(ci_flags) => ci(ci_flags.integration),
        flags::XtaskCmd::Servers(servers_flags) => servers::command(servers_flags.subcommand),
        flags::XtaskCmd::Integration(flags) => runtime(flags.runtime.as_deref())
            .and_then(|runtime| integration::run(suite(flags.suite.as_deref())?, runtime)),
        flags::XtaskCmd::Chaos(flags) => chaos::command(flags),
        flags::XtaskCmd::Bench(flags) => bench::run(
            flags.local,
            flags.handover,
            flags.transitions_only.as_deref(),
            flags.requests_only.as_deref(),
            flags.transitions.unwrap_or(50),
        ),
        flags::XtaskCmd::Sim(flags) => sim(&sim_args(&flags)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--runtime process|docker`, process by default.
pub(crate) fn runtime(value: Option<&str>) -> Result<servers::Runtime, String> {
    value.map_or(Ok(servers::Runtime::Process), servers::Runtime::parse)
}

/// An integration suite name: consul, kubernetes, etcd, cli or all (the default).
fn suite(value: Option<&str>) -> Result<&str, String> {
    match value {
        None => Ok("all"),
        Some(name @ ("consul" | "kubernetes" | "etcd" | "cli" | "all")) => Ok(name),
        Some(other) => Err(format!(
            "unknown suite `{other}`; expected consul, kubernetes, etcd, cli or all"
        )),
    }
}

/// What CI runs: formatting, lints, every test of the workspace and the docs;
/// with `--integration`, then the integration suites against real servers.
fn ci(integration: bool) -> Result<(), String> {
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
    package()?;
    tls_features()?;
    if integration {
        // The simulation needs no servers, only a release build: 10 000
        // seeds on the in-memory and Kubernetes backends, 3 000 on Consul
        // (its runs last longer: leases up to 120 s past the lock-delay
        // cap), 5 000 on etcd, then every mutant must be caught.
        for (backend, seeds) in [
            ("memory", "10000"),
            ("kubernetes", "10000"),
            ("consul", "3000"),
            ("etcd", "5000"),
        ] {
            sim(&[
                "--seeds".into(),
                seeds.into(),
                "--backend".into(),
                backend.into(),
            ])?;
        }
        sim(&["--mutants".into(), "--seeds".into(), "2000".into()])?;
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

/// The simulator's arguments for `cargo xtask sim` flags.
fn sim_args(flags: &flags::Sim) -> Vec<String> {
    let mut args = Vec::new();
    let mut pair = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            args.push(name.to_owned());
            args.push(value);
        }
    };
    pair("--seeds", flags.seeds.map(|v| v.to_string()));
    pair("--first", flags.first.map(|v| v.to_string()));
    pair("--seed", flags.seed.map(|v| v.to_string()));
    pair("--backend", flags.backend.clone());
    pair("--drift", flags.drift.clone());
    pair("--mutant", flags.mutant.clone());
    for (on, name) in [
        (flags.mutants, "--mutants"),
        (flags.trace, "--trace"),
        (flags.repeat, "--repeat"),
    ] {
        if on {
            args.push(name.to_owned());
        }
    }
    args
}

/// Runs the deterministic simulation in release mode, mutants compiled in
/// (they stay off unless asked for).
fn sim(args: &[String]) -> Result<(), String> {
    let mut command = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "leader-election-sim",
        "--features",
        "mutants",
        "--",
    ];
    command.extend(args.iter().map(String::as_str));
    run("cargo", &command, &[])
}

/// The crates published to crates.io, in dependency order.
const PUBLISHED: [&str; 7] = [
    "leader-election-abstractions",
    "leader-election-inmemory",
    "leader-election-testkit",
    "leader-election-consul",
    "leader-election-etcd",
    "leader-election-kubernetes",
    "leader-election-cli",
];

/// What `cargo publish` would upload, checked without uploading. Every
/// published crate is packaged together (cargo resolves their dependencies on
/// each other through a local overlay, since none is on crates.io yet): this
/// checks manifests, file lists and lockfiles. The crates that build alone
/// are then built from their tarballs (`publish --dry-run`). The Kubernetes
/// crate cannot: like every library on `kube`, it leaves the `k8s-openapi`
/// version feature to the binary, and the command depends on it, so both are
/// only packaged (`--no-verify`); `cargo test` builds them in the workspace.
fn package() -> Result<(), String> {
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for name in PUBLISHED {
        args.extend(["-p", name]);
    }
    run("cargo", &args, &[])?;
    forget_unpacked_overlay()?;
    let mut args = vec!["publish", "--dry-run", "--allow-dirty"];
    for name in PUBLISHED
        .iter()
        .filter(|name| !matches!(**name, "leader-election-kubernetes" | "leader-election-cli"))
    {
        args.extend(["-p", name]);
    }
    run("cargo", &args, &[])
}

/// cargo unpacks the local overlay of our own packaged crates into
/// `$CARGO_HOME/registry/src/-<hash>/<name>-<version>` and reuses that copy
/// while the version stays the same, so a second run would build the first
/// run's sources. Only those copies (a registry without a name, crates
/// named `leader-election-*`) are removed.
fn forget_unpacked_overlay() -> Result<(), String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return Ok(()); // nothing unpacked yet
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for krate in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if krate
                .file_name()
                .to_string_lossy()
                .starts_with("leader-election-")
            {
                std::fs::remove_dir_all(krate.path())
                    .map_err(|e| format!("cannot remove {}: {e}", krate.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Each TLS feature of the provider crates, built alone (the default,
/// `rustls-ring`, is what every other step builds): `rustls-aws-lc` and
/// `native-tls` must not pull in `ring`, and a build without any TLS feature
/// (plain `http://` only) must compile. The etcd crate has no
/// `rustls-aws-lc` (see its Cargo.toml).
fn tls_features() -> Result<(), String> {
    let builds: [(&str, &[&str]); 3] = [
        (
            "rustls-aws-lc",
            &["leader-election-consul", "leader-election-kubernetes"],
        ),
        (
            "native-tls",
            &[
                "leader-election-consul",
                "leader-election-kubernetes",
                "leader-election-etcd",
            ],
        ),
        ("", &["leader-election-consul", "leader-election-etcd"]),
    ];
    for (feature, crates) in builds {
        let mut features: Vec<String> = crates
            .iter()
            .filter(|_| !feature.is_empty())
            .map(|name| format!("{name}/{feature}"))
            .collect();
        if crates.contains(&"leader-election-kubernetes") {
            // Libraries on kube leave the Kubernetes version to the binary.
            features.push("k8s-openapi/v1_36".to_owned());
        }
        let features = features.join(",");
        let mut args = vec!["--no-default-features"];
        for name in crates {
            args.extend(["-p", name]);
        }
        if !features.is_empty() {
            args.extend(["--features", &features]);
        }
        run("cargo", &[&["check"][..], &args].concat(), &[])?;
        let tree = Command::new("cargo")
            .args(["tree", "-e", "normal", "-i", "ring"])
            .args(&args)
            .output()
            .map_err(|e| format!("could not run `cargo tree`: {e}"))?;
        let shown = String::from_utf8_lossy(&tree.stdout);
        if shown.contains("ring v") {
            return Err(format!(
                "the TLS feature `{feature}` of {crates:?} pulls in ring:\n{shown}"
            ));
        }
        let built = if feature.is_empty() {
            "without a TLS feature".to_owned()
        } else {
            format!("with TLS feature `{feature}`")
        };
        println!("xtask: {crates:?} {built}: built, no ring");
    }
    // An application that installs aws-lc-rs while the providers keep their
    // default ring: its own build, so aws-lc-rs stays out of the others.
    run(
        "cargo",
        &[
            "test",
            "-p",
            "examples",
            "--features",
            "aws-lc",
            "--test",
            "aws_lc_process_default",
        ],
        &[],
    )
}

/// Runs one command, echoing it first, and fails with its exit status.
pub(crate) fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
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
