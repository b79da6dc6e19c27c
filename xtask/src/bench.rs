//! `cargo xtask bench [--local]`: every timing and scale figure of the
//! project, measured in one run on one machine and printed as one table
//! (Markdown, for the README), with the date, the machine and its load.
//! Nothing here is asserted: figures are printed, never test conditions.
//!
//! - The leadership reads and elections per process come from
//!   `leader-election-bench`, built in release mode as its own package, so
//!   Tokio's `test-util` feature (which slows every clock read) is not
//!   linked in, as it would be through dev-dependencies.
//! - Elections per process run against the real servers (brought up here
//!   and stopped again unless they were up already) at 100 and 1 000
//!   resources on Kubernetes, Consul and etcd.
//! - The conformance suite's C2 (local deadline), C3 (crash failover) and
//!   C4 (handover) cases against the real servers give the in-process
//!   timings.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bench_transitions::{self, quantile, Elector};
use crate::chaos::target_dir;
use crate::provision::workspace_root;
use crate::servers::{self, Runtime, Target};

/// One row of the table.
struct Row {
    measurement: String,
    backend: String,
    result: String,
}

/// Entry point of `cargo xtask bench`. `transitions_only`: only the
/// transitions between processes on that backend (`kubernetes`, `consul`
/// or `etcd`); `handover_only`: of those, only the graceful handovers (on
/// Kubernetes unless `transitions_only` names another backend).
pub(crate) fn run(
    local: bool,
    handover_only: bool,
    transitions_only: Option<&str>,
    requests_only: Option<&str>,
    transitions: usize,
) -> Result<(), String> {
    if let Some(backend) = requests_only {
        return requests_alone(backend);
    }
    let only = match (transitions_only, handover_only) {
        (Some(backend @ ("kubernetes" | "consul" | "etcd")), _) => Some(backend),
        (Some(other), _) => {
            return Err(format!(
                "--transitions-only: `{other}` is not a backend with transitions (kubernetes, consul or etcd)"
            ))
        }
        (None, true) => Some("kubernetes"),
        (None, false) => None,
    };
    if local && only.is_some() {
        return Err(
            "--local excludes --handover and --transitions-only: transitions need the servers"
                .into(),
        );
    }
    // Only transitions: nothing else is measured.
    let only_transitions = only.is_some();
    let header = machine_and_load("at start");
    let bin = build_bench()?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let measure = |args: &[&str],
                   env: &[(String, String)],
                   rows: &mut Vec<Row>,
                   failures: &mut Vec<String>| match bench(&bin, args, env) {
        Ok(found) => rows.extend(found),
        Err(e) => failures.push(e),
    };
    if !only_transitions {
        measure(&["hot-path"], &[], &mut rows, &mut failures);
        for n in ["100", "1000", "10000"] {
            measure(&["inmemory", n], &[], &mut rows, &mut failures);
        }
    }
    if !local {
        let backends = [
            (Target::Kubernetes, "kubernetes", ["100", "1000"]),
            (Target::Consul, "consul", ["100", "1000"]),
            (Target::Etcd, "etcd", ["100", "1000"]),
        ];
        for &(target, backend, sizes) in &backends {
            if only.is_some_and(|o| o != backend) {
                continue;
            }
            // Stops what it started when it goes out of scope.
            let (up, _teardown) = servers::up_for_run(target, Runtime::Process, "bench")?;
            match up {
                Ok(state) => {
                    let env: Vec<(String, String)> = state.env().into_iter().collect();
                    if !only_transitions {
                        for n in sizes {
                            measure(&[backend, n], &env, &mut rows, &mut failures);
                        }
                    }
                    let mut env = env.clone();
                    // The Go elector compared with ours, and the requests row.
                    let (program, var) = match backend {
                        "kubernetes" => ("client-go-peer", "LE_CLIENT_GO_PEER_BIN"),
                        "consul" => ("consul-lock-peer", "LE_CONSUL_LOCK_PEER_BIN"),
                        _ => ("etcd-election-peer", "LE_ETCD_ELECTION_PEER_BIN"),
                    };
                    env.extend(servers::optional_program(program, var)?);
                    if !only_transitions {
                        let requests = format!("{backend}-requests");
                        measure(&[&requests], &env, &mut rows, &mut failures);
                    }
                    match transitions_between_processes(
                        backend,
                        &bin,
                        transitions,
                        handover_only,
                        env,
                    ) {
                        Ok(found) => rows.extend(found),
                        Err(e) => failures.push(format!("{backend} transitions: {e}")),
                    }
                }
                Err(e) => failures.push(format!("{backend}: servers did not start: {e}")),
            }
        }
        if !only_transitions {
            match crate::integration::timings(Runtime::Process) {
                Ok(lines) => rows.extend(lines.iter().filter_map(|l| timing_row(l))),
                Err(e) => failures.push(e),
            }
        }
    }
    print_table(&header, &rows);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not everything was measured:\n  {}",
            failures.join("\n  ")
        ))
    }
}

/// `--requests-only <backend>`: the requests per minute of one leader and
/// one idle follower on `backend`, ours next to the Go elector's, alone.
fn requests_alone(backend: &str) -> Result<(), String> {
    let (target, program, var) = match backend {
        "kubernetes" => (Target::Kubernetes, "client-go-peer", "LE_CLIENT_GO_PEER_BIN"),
        "consul" => (Target::Consul, "consul-lock-peer", "LE_CONSUL_LOCK_PEER_BIN"),
        "etcd" => (Target::Etcd, "etcd-election-peer", "LE_ETCD_ELECTION_PEER_BIN"),
        other => {
            return Err(format!(
                "--requests-only: `{other}` is not a backend with a requests row (kubernetes, consul or etcd)"
            ))
        }
    };
    let header = machine_and_load("at start");
    let bin = build_bench()?;
    // Stops what it started when it goes out of scope.
    let (up, _teardown) = servers::up_for_run(target, Runtime::Process, "bench")?;
    let state = up.map_err(|e| format!("{backend}: servers did not start: {e}"))?;
    let mut env: Vec<(String, String)> = state.env().into_iter().collect();
    env.extend(servers::optional_program(program, var)?);
    let rows = bench(&bin, &[&format!("{backend}-requests")], &env)?;
    print_table(&header, &rows);
    Ok(())
}

/// Builds `leader-election-bench` (release); returns the binary's path.
fn build_bench() -> Result<std::path::PathBuf, String> {
    crate::run(
        "cargo",
        &["build", "--release", "-p", "leader-election-bench"],
        &[],
    )?;
    Ok(target_dir().join("release").join("leader-election-bench"))
}

/// The machine and load (`header` from the start, the load now), then the
/// rows as a Markdown table.
fn print_table(header: &str, rows: &[Row]) {
    let footer = machine_and_load("at end");
    println!("\nxtask: bench: {header}; {footer}\n");
    println!("| measurement | backend | result |");
    println!("|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.measurement, row.backend, row.result);
    }
}

/// Handover and crash failover between separate processes on `backend`
/// (`kubernetes`, `consul` or `etcd`), ours next to the Go elector's
/// (client-go's, `api.Lock` or `concurrency.Election`; see
/// [`bench_transitions`]); without the crash failovers
/// when `handover_only`.
fn transitions_between_processes(
    backend: &str,
    bin: &Path,
    n: usize,
    handover_only: bool,
    mut env: Vec<(String, String)>,
) -> Result<Vec<Row>, String> {
    let (var, program, label, settings) = match backend {
        "kubernetes" => (
            "LE_CLIENT_GO_PEER_BIN",
            "client-go-peer",
            "client-go",
            "lease 2 s, renew/retry 500 ms",
        ),
        "consul" => (
            "LE_CONSUL_LOCK_PEER_BIN",
            "consul-lock-peer",
            "api.Lock",
            "session TTL 2 s, lock-delay 3 s; ours renew/retry 500 ms",
        ),
        _ => (
            "LE_ETCD_ELECTION_PEER_BIN",
            "etcd-election-peer",
            "concurrency.Election",
            "etcd lease TTL 3 s on both sides; ours lease 2 s + grace 1 s, renew/retry 500 ms",
        ),
    };
    if !env.iter().any(|(k, _)| k == var) {
        env.extend(servers::optional_program(program, var)?);
    }
    let go = env
        .iter()
        .find(|(k, _)| k == var)
        .map(|(_, v)| std::path::PathBuf::from(v))
        .ok_or(format!("the {program} program could not be built"))?;
    let (ours, theirs) = match backend {
        "kubernetes" => (Elector::Ours(bin), Elector::ClientGo(&go)),
        "consul" => (Elector::OursConsul(bin), Elector::ApiLock(&go)),
        _ => (Elector::OursEtcd(bin), Elector::EtcdElection(&go)),
    };
    let mut rows = Vec::new();
    let kinds = [
        (false, "graceful handover (leader stops after 1 s)"),
        (true, "crash failover (leader SIGKILLed)"),
    ];
    let kinds = if handover_only {
        &kinds[..1]
    } else {
        &kinds[..]
    };
    for &(crash, what) in kinds {
        let mut figures = Vec::new();
        for (elector, who) in [(ours, "ours"), (theirs, label)] {
            println!("xtask: bench: {backend} {what}, {who}, {n} transitions");
            let tag = who.replace('.', "-").to_lowercase();
            let samples = bench_transitions::measure(elector, &tag, n, crash, &env)?;
            let mut sorted = samples.clone();
            sorted.sort_by(f64::total_cmp);
            let shown: Vec<String> = sorted.iter().map(|ms| format!("{ms:.1}")).collect();
            println!(
                "xtask: bench: {who}: samples, ms, sorted: {}",
                shown.join(" ")
            );
            figures.push((quantile(&samples, 0.5), quantile(&samples, 0.99)));
        }
        let ratio = figures[0].0 / figures[1].0;
        rows.push(Row {
            measurement: format!("{what} between separate processes, {n} transitions, {settings}"),
            backend: backend.into(),
            result: format!(
                "ours p50 {:.0} ms, p99 {:.0} ms; {label} p50 {:.0} ms, p99 {:.0} ms; \
                 ours / {label} (p50) {ratio:.2}",
                figures[0].0, figures[0].1, figures[1].0, figures[1].1
            ),
        });
    }
    Ok(rows)
}

/// Runs the bench binary with `args`, streaming its output, and turns its
/// `RESULT` lines into rows.
fn bench(bin: &Path, args: &[&str], env: &[(String, String)]) -> Result<Vec<Row>, String> {
    let shown = format!("leader-election-bench {}", args.join(" "));
    println!("xtask: bench: $ {shown}");
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let mut rows = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            match line.strip_prefix("RESULT ") {
                Some(fields) => rows.extend(row(&parse_fields(fields))),
                None => println!("{line}"),
            }
        }
    }
    let status = child.wait().map_err(|e| format!("`{shown}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{shown}` failed with {status}"));
    }
    Ok(rows)
}

fn parse_fields(text: &str) -> BTreeMap<&str, &str> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect()
}

/// A table row from one `RESULT` line of the bench binary.
fn row(f: &BTreeMap<&str, &str>) -> Option<Row> {
    let get = |k: &str| f.get(k).copied().unwrap_or("?");
    match get("section") {
        "hot-path" => Some(Row {
            measurement: "`is_leader()` / `fencing_token()` while leading, one thread, \
                          release build without Tokio `test-util`; one `Instant::now()` beside"
                .into(),
            backend: "any".into(),
            result: format!(
                "{} ns / {} ns; `std::time::Instant::now()` {} ns, `tokio::time::Instant::now()` {} ns",
                get("is_leader_ns"),
                get("fencing_token_ns"),
                get("std_now_ns"),
                get("tokio_now_ns")
            ),
        }),
        "elections" => {
            let resources = get("resources");
            let mut result = match get("elect_s") {
                "-" => format!("**not all led within 120 s** (at least {} led)", get("least_led")),
                secs => format!("all led in {secs} s"),
            };
            result.push_str(&format!(
                "; steady CPU {} % of a core ({} s); {} KiB per election",
                get("steady_cpu_pct"),
                get("window_s"),
                get("kib_per_election"),
            ));
            if let Some(heap) = f.get("heap_kib_per_election") {
                result.push_str(&format!(" ({heap} KiB of it heap)"));
            }
            result.push_str(&format!("; RSS {} MiB", get("rss_mib")));
            if get("least_led") != resources {
                result.push_str(&format!(
                    "; **only {} of {resources} led throughout the window**",
                    get("least_led")
                ));
            }
            if let Some(rate) = f.get("server_requests_per_s") {
                let (server, requests, watches) = match get("backend") {
                    "etcd" => ("etcd", "gRPC messages/s received", "watchers"),
                    _ => ("apiserver", "Lease requests/s", "open Lease watches"),
                };
                result.push_str(&format!(
                    "; {server}: {rate} {requests}, {} {watches}, {} % of a core",
                    get("server_open_watches"),
                    get("server_cpu_pct")
                ));
            }
            Some(Row {
                measurement: format!("{} resources × 2 candidates in one process, default options", group(resources)),
                backend: get("backend").into(),
                result,
            })
        }
        "requests" => Some(Row {
            measurement: format!(
                "{} per minute of one leader and one idle follower, {}, {}{}",
                match get("backend") {
                    "consul" => "Consul agent requests",
                    "etcd" => "etcd gRPC messages (unary calls and stream messages)",
                    _ => "apiserver requests",
                },
                get("elector"),
                get("timing").replace('_', " "),
                match get("counted") {
                    "?" => String::new(),
                    how => format!(" (counted by a {})", how.replace('_', " ")),
                }
            ),
            backend: get("backend").into(),
            result: format!(
                "leader {} ({}); idle follower {} ({})",
                get("leader_per_min"),
                get("leader_verbs").replace('_', " "),
                get("follower_per_min"),
                get("follower_verbs").replace('_', " ")
            ),
        }),
        "connections" if get("backend") == "etcd" => Some(Row {
            measurement: format!(
                "{} resources × 2 candidates in one process: most sockets open at once (all to etcd)",
                group(get("resources"))
            ),
            backend: "etcd".into(),
            result: format!(
                "{} (HTTP/1.1 to etcd's JSON gateway: one per open watch, plus pooled ones)",
                get("most")
            ),
        }),
        "connections" => Some(Row {
            measurement: format!(
                "{} resources × 2 candidates in one process: most sockets open at once (all to the server)",
                group(get("resources"))
            ),
            backend: get("backend").into(),
            result: format!(
                "{} (cap: the two factories' `max_connections`, {}; the agent accepts 200 per client address)",
                get("most"),
                get("cap")
            ),
        }),
        _ => None,
    }
}

/// `10000` as `10 000`.
fn group(digits: &str) -> String {
    let chars: Vec<char> = digits.chars().collect();
    let groups: Vec<String> = chars.rchunks(3).rev().map(|c| c.iter().collect()).collect();
    groups.join(" ")
}

/// A row from a conformance timing line:
/// `<provider>: <what>: <measured> (contract bound <b>, wall clock, not asserted)`.
fn timing_row(line: &str) -> Option<Row> {
    let (backend, rest) = line.split_once(": ")?;
    let (what, rest) = rest.rsplit_once(": ")?;
    let measured = rest.split(" (").next()?;
    let bound = rest
        .split_once("contract bound ")
        .and_then(|(_, b)| b.split(',').next())
        .unwrap_or("?");
    Some(Row {
        measurement: format!("{what} (conformance suite, in one process, debug build)"),
        backend: backend.into(),
        result: format!(
            "{} (contract bound {})",
            readable(measured),
            readable(bound)
        ),
    })
}

/// A `Duration`'s `Debug` text (`700.969548ms`, `2.703749756s`) shortened
/// to milliseconds or seconds with a sensible precision; other text as is.
fn readable(debug: &str) -> String {
    let number = |suffix: &str| {
        debug
            .strip_suffix(suffix)
            .and_then(|n| n.parse::<f64>().ok())
    };
    let ms = number("ms")
        .or_else(|| number("µs").map(|us| us / 1000.0))
        .or_else(|| number("s").map(|s| s * 1000.0));
    match ms {
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => debug.to_owned(),
    }
}

/// The date, the machine (CPUs and model) and its load average.
fn machine_and_load(when: &str) -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    if when == "at end" {
        return format!("load average {load} {when}");
    }
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{date}, {cpus} CPUs ({model}), load average {load} {when}")
}

#[cfg(test)]
mod tests {
    use super::{group, parse_fields, row, timing_row};

    #[test]
    fn result_lines_become_rows() {
        let fields = parse_fields(
            "section=elections backend=in-memory resources=10000 elect_s=0.539 \
             kib_per_election=5.5 kib_created=1.0 heap_kib_per_election=4.9 rss_mib=120 \
             steady_cpu_pct=2.7 window_s=10 least_led=10000",
        );
        let r = row(&fields).expect("a row");
        assert!(
            r.result
                .contains("5.5 KiB per election (4.9 KiB of it heap); RSS 120 MiB"),
            "{}",
            r.result
        );
        assert_eq!(r.backend, "in-memory");
        assert!(
            r.measurement.starts_with("10 000 resources"),
            "{}",
            r.measurement
        );
        assert!(r.result.starts_with("all led in 0.539 s"), "{}", r.result);
        assert!(!r.result.contains("only"), "{}", r.result);

        let unsettled = parse_fields(
            "section=elections backend=consul resources=100 elect_s=- kib_per_election=47.5 \
             rss_mib=15 steady_cpu_pct=1.1 window_s=20 least_led=99",
        );
        let r = row(&unsettled).expect("a row");
        assert!(r.result.contains("not all led"), "{}", r.result);
        assert!(r.result.contains("only 99 of 100"), "{}", r.result);
        let etcd = parse_fields(
            "section=elections backend=etcd resources=1000 elect_s=33.650 kib_per_election=79.3 \
             rss_mib=162 steady_cpu_pct=21.8 window_s=10 least_led=1000 \
             server_requests_per_s=1206 server_open_watches=2000 server_cpu_pct=19.9",
        );
        let r = row(&etcd).expect("a row");
        assert!(
            r.result
                .ends_with("etcd: 1206 gRPC messages/s received, 2000 watchers, 19.9 % of a core"),
            "{}",
            r.result
        );
        let sockets = parse_fields("section=connections backend=etcd resources=100 most=671");
        let r = row(&sockets).expect("a row");
        assert!(r.result.starts_with("671 (HTTP/1.1"), "{}", r.result);
        assert_eq!(group("1000"), "1 000");
        assert_eq!(group("100"), "100");
    }

    #[test]
    fn conformance_timing_lines_become_rows() {
        let r = timing_row(
            "kubernetes: C4 handover after stop: 21.3ms (contract bound 1s, wall clock, not asserted)",
        )
        .expect("a row");
        assert_eq!(r.backend, "kubernetes");
        assert_eq!(r.result, "21 ms (contract bound 1.00 s)");
        assert_eq!(super::readable("2.703749756s"), "2.70 s");
        assert_eq!(super::readable("700.969548ms"), "701 ms");
        assert!(
            r.measurement.starts_with("C4 handover after stop"),
            "{}",
            r.measurement
        );
    }
}
