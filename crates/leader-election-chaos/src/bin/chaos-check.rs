//! `chaos-check --case <name> <log>`: checks one chaos run's shared log and
//! prints the report. The last line is machine-read by `cargo xtask chaos`:
//! `RESULT passed|failed <name> <summary>`. Exits 0 when the case passed,
//! 1 when it failed, 2 when the log could not be read.

use std::process::ExitCode;

use leader_election_chaos::checker::analyse;
use leader_election_chaos::log::{parse_log, Kind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (case, path) = match args.as_slice() {
        [flag, case, path] if flag == "--case" => (case.clone(), path.clone()),
        _ => {
            eprintln!("usage: chaos-check --case <name> <log>");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("chaos-check: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = analyse(&parse_log(&text));
    println!("--- chaos case {case} (log {path})");
    print!("{}", report.table());
    let failures = report.failures();
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    let count =
        |map: &std::collections::BTreeMap<Kind, usize>, kind| map.get(&kind).copied().unwrap_or(0);
    println!(
        "RESULT {} {case} takeovers={} faults={} rust_writes={} foreign_writes={} rust_stale={} foreign_stale={}",
        if failures.is_empty() { "passed" } else { "failed" },
        report.takeovers.len(),
        report.faults.values().sum::<usize>(),
        count(&report.writes, Kind::Rust),
        count(&report.writes, Kind::Foreign),
        count(&report.stale, Kind::Rust),
        count(&report.stale, Kind::Foreign),
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
