//! `leader-election-bench`: the measurements behind `cargo xtask bench`,
//! built in release mode without Tokio's `test-util` feature.
//!
//! ```text
//! leader-election-bench inmemory|kubernetes|consul|etcd <resources> [--window <secs>]
//! leader-election-bench hot-path
//! leader-election-bench kubernetes-peer|consul-peer|etcd-peer <lease> <id> <hold-ms>
//! leader-election-bench kubernetes-requests|consul-requests|etcd-requests [--followers N] [--window <secs>]
//! ```
//!
//! Each command prints what it measures in words, then one line per figure
//! starting with `RESULT ` (`key=value` pairs) for xtask to gather into its
//! table. Nothing is asserted: these are measurements, not tests.

use std::process::ExitCode;

mod consul;
mod consul_requests;
mod counting_proxy;
mod elections;
mod etcd;
mod go_peers;
mod hot_path;
mod inmemory;
mod kubernetes;
mod peer;
mod process;
mod requests;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("inmemory") => inmemory::command(&args[1..]),
        Some("kubernetes") => kubernetes::command(&args[1..]),
        Some("consul") => consul::command(&args[1..]),
        Some("etcd") => etcd::command(&args[1..]),
        Some("kubernetes-peer") => peer::command(peer::Backend::Kubernetes, &args[1..]),
        Some("consul-peer") => peer::command(peer::Backend::Consul, &args[1..]),
        Some("etcd-peer") => peer::command(peer::Backend::Etcd, &args[1..]),
        Some("kubernetes-requests") => requests::command(&args[1..]),
        Some("consul-requests") => consul_requests::command(&args[1..]),
        Some("etcd-requests") => etcd::requests(&args[1..]),
        Some("hot-path") => hot_path::command(),
        _ => Err(
            "usage: leader-election-bench inmemory|kubernetes|consul|etcd <resources> [--window <secs>] | hot-path | kubernetes-peer|consul-peer|etcd-peer <lease> <id> <hold-ms> | kubernetes-requests|consul-requests|etcd-requests [--followers N] [--window <secs>]".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("leader-election-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints one machine-readable figure line.
pub(crate) fn result(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
}

/// Reads `--name <value>` from `args`, parsed, or `default`.
pub(crate) fn flag<T: std::str::FromStr>(
    args: &[String],
    name: &str,
    default: T,
) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("`{name}` needs a number")),
    }
}

/// The number of resources, the first argument.
pub(crate) fn resources(args: &[String]) -> Result<usize, String> {
    args.first()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| "the first argument is the number of resources (1 or more)".into())
}

/// The runtime elections run on: Tokio's default, one worker per core.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}
