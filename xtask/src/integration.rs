//! `cargo xtask integration [consul|kubernetes|etcd|cli|all] [--runtime process|docker]`:
//! brings the needed servers up, runs each suite crate's (a provider's, the
//! `leader-election` command's) `#[ignore]`d tests with `--ignored` and the connection environment, then
//! the suite's further targets (the Kubernetes suite runs the gated-controller
//! example's test), tears down what it
//! started (also on failure), and prints one `<suite>: N passed, M failed`
//! line per suite and further target.
//!

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::provision::workspace_root;
use crate::servers::{self, Runtime, Target};

/// One suite: a provider crate and the servers it needs.
struct Suite {
    name: &'static str,
    krate: &'static str,
    target: Target,
    /// Go peer programs (`xtask/go/<dir>`, env var) its interop tests run.
    peers: &'static [(&'static str, &'static str)],
    /// Whether it is a provider's, with the conformance suite's timing
    /// cases that `cargo xtask bench` runs.
    conformance: bool,
    /// Further `#[ignore]`d test targets (package, test) that need the same
    /// servers, run after the crate's own.
    also: &'static [(&'static str, &'static str)],
}

const SUITES: [Suite; 4] = [
    Suite {
        name: "kubernetes",
        krate: "leader-election-kubernetes",
        target: Target::Kubernetes,
        peers: &[("client-go-peer", "LE_CLIENT_GO_PEER_BIN")],
        conformance: true,
        // The kube-runtime controller gated on leadership, against the
        // apiserver; the simulation's paired scenarios, their real half.
        also: &[
            ("examples", "gated_controller"),
            ("leader-election-sim", "paired_kubernetes"),
            ("leader-election-sim", "paired_client_go"),
        ],
    },
    Suite {
        name: "consul",
        krate: "leader-election-consul",
        target: Target::Consul,
        peers: &[("consul-lock-peer", "LE_CONSUL_LOCK_PEER_BIN")],
        conformance: true,
        // The simulation's paired scenarios, their real-agent half.
        also: &[("leader-election-sim", "paired")],
    },
    Suite {
        name: "etcd",
        krate: "leader-election-etcd",
        target: Target::Etcd,
        peers: &[("etcd-election-peer", "LE_ETCD_ELECTION_PEER_BIN")],
        conformance: true,
        // The simulation's paired scenario, its real-etcd half.
        also: &[("leader-election-sim", "paired_etcd")],
    },
    // The `leader-election` command end to end, on every backend it offers
    // (its interop test runs the real `consul lock`).
    Suite {
        name: "cli",
        krate: "leader-election-cli",
        target: Target::All,
        peers: &[],
        conformance: false,
        also: &[],
    },
];

/// The outcome of one suite.
struct Outcome {
    line: String,
    failed: bool,
}

/// How long one suite (its build and its tests) may run before the watchdog
/// kills it: a hung test must fail the run, not eat the CI budget.
/// `LE_INTEGRATION_SUITE_TIMEOUT_SECS` overrides it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(25 * 60);

/// The suite deadline: [`SUITE_TIMEOUT`] or the environment's override.
fn suite_timeout() -> Result<Duration, String> {
    const VAR: &str = "LE_INTEGRATION_SUITE_TIMEOUT_SECS";
    match std::env::var(VAR) {
        Err(_) => Ok(SUITE_TIMEOUT),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(format!(
                "{VAR}={text:?}: must be a whole number of seconds above 0"
            )),
        },
    }
}

/// Kills process group `group`: the suite's cargo, its test binaries and
/// every process they started without a group of their own.
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// Runs `cargo test <target> -- --ignored` (`target`: `-p <crate>`, maybe
/// with `--test <name>`) with `env`, streaming its output and adding up the
/// `test result:` lines; kills it (and everything it started) when it
/// outlives the suite deadline. `name` labels its summary line.
fn cargo_test(name: &str, target: &[&str], env: &[(String, String)]) -> Result<Outcome, String> {
    let shown = format!(
        "cargo test --no-fail-fast {} -- --ignored",
        target.join(" ")
    );
    let timeout = suite_timeout()?;
    println!(
        "xtask: integration {name}: $ {shown} (killed after {} s)",
        timeout.as_secs()
    );
    let started = Instant::now();
    let mut child = Command::new("cargo")
        .args(["test", "--no-fail-fast"])
        .args(target)
        .args(["--", "--ignored"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        // Its own process group, so that the watchdog can kill the test
        // binaries and the processes they spawned along with cargo.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    // Lines come through a thread, so that a hung suite whose output pipe
    // stays open (a grandchild in a group of its own holds it) cannot block
    // the deadline.
    let (lines_tx, lines) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let deadline = started + timeout;
    let (mut passed, mut failed, mut results) = (0u64, 0u64, 0u32);
    let mut killed = false;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_group(child.id());
                killed = true;
                break;
            }
        };
        println!("{line}");
        if let Some((p, f)) = parse_test_result(&line) {
            results += 1;
            passed += p;
            failed += f;
        }
    }
    let status = child.wait().map_err(|e| format!("`{shown}`: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if killed {
        return Ok(Outcome {
            line: format!(
                "{name}: timed out - killed after {} s ({passed} passed, {failed} failed \
                 before that; libtest names a test running for over 60 s above)",
                timeout.as_secs()
            ),
            failed: true,
        });
    }
    if !status.success() && failed == 0 {
        return Ok(Outcome {
            line: format!(
                "{name}: `{shown}` exited with {status} after {results} test binaries \
                 ({passed} tests passed before that) - see the output above"
            ),
            failed: true,
        });
    }
    if results == 0 {
        println!("xtask: integration {name}: cargo test printed no `test result:` line");
    }
    println!("xtask: integration {name}: finished in {secs:.1}s");
    // A provider crate whose suite runs nothing must not look green.
    let none_ran = passed + failed == 0;
    Ok(Outcome {
        line: if none_ran {
            format!("{name}: 0 passed, 0 failed - no #[ignore]d integration test ran, which counts as a failure")
        } else {
            format!("{name}: {passed} passed, {failed} failed")
        },
        failed: failed > 0 || !status.success() || results == 0 || none_ran,
    })
}

/// Reads libtest's `test result: ok. 3 passed; 1 failed; ...` line.
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (mut passed, mut failed) = (0, 0);
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(label), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        match label {
            "passed" => passed += n,
            "failed" => failed += n,
            _ => {}
        }
    }
    Some((passed, failed))
}

/// Entry point of `cargo xtask integration`.
/// Runs the suites named by `which` (`consul`, `kubernetes`, `etcd`, `cli` or `all`).
pub(crate) fn run(which: &str, runtime: Runtime) -> Result<(), String> {
    let started = Instant::now();
    let chosen = |suite: &Suite| which == "all" || suite.name == which;
    let outcomes = with_servers(chosen, runtime, |suite, env| {
        let failed_to_run = |name: &str, e: String| Outcome {
            line: format!("{name}: {e}"),
            failed: true,
        };
        let mut outcome = cargo_test(suite.name, &["-p", suite.krate], env)
            .unwrap_or_else(|e| failed_to_run(suite.name, e));
        for &(package, test) in suite.also {
            let name = format!("{} ({package} --test {test})", suite.name);
            let more = cargo_test(&name, &["-p", package, "--test", test], env)
                .unwrap_or_else(|e| failed_to_run(&name, e));
            outcome.line = format!("{}\n{}", outcome.line, more.line);
            outcome.failed |= more.failed;
        }
        outcome
    })?;
    println!(
        "\nxtask: integration summary ({:.0}s):",
        started.elapsed().as_secs_f64()
    );
    for outcome in &outcomes {
        println!("{}", outcome.line);
    }
    if outcomes.iter().any(|o| o.failed) {
        Err("integration suites failed (see the summary above)".into())
    } else {
        Ok(())
    }
}

/// For each suite `chosen` selects: brings its servers up, calls `body` with
/// the connection environment (peers included), and tears down what it
/// started, whatever happens.
fn with_servers(
    chosen: impl Fn(&Suite) -> bool,
    runtime: Runtime,
    mut body: impl FnMut(&Suite, &[(String, String)]) -> Outcome,
) -> Result<Vec<Outcome>, String> {
    let suites: Vec<&Suite> = SUITES.iter().filter(|s| chosen(s)).collect();
    let mut outcomes = Vec::new();
    for suite in suites {
        // Tear down exactly what this suite started, whatever happens next;
        // servers that were already up before stay up.
        let (up, _teardown) = servers::up_for_run(suite.target, runtime, "integration")?;
        let state = match up {
            Ok(state) => state,
            Err(e) => {
                outcomes.push(Outcome {
                    line: format!("{}: servers did not start: {e}", suite.name),
                    failed: true,
                });
                continue;
            }
        };
        let mut env = state.env();
        // Servers started by an older xtask may lack a peer variable.
        for &(dir, var) in suite.peers {
            if !env.contains_key(var) {
                match servers::optional_program(dir, var) {
                    Ok(peer) => env.extend(peer),
                    Err(e) => println!("xtask: integration {}: {e}", suite.name),
                }
            }
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        outcomes.push(body(suite, &env));
    }
    Ok(outcomes)
}

/// `cargo xtask bench`'s in-process timings: runs the conformance suite's
/// timing cases (C2 local deadline, C3 crash failover, C4 handover) against
/// the real servers and returns the lines with the times they measure
/// (wall clock, not asserted).
pub(crate) fn timings(runtime: Runtime) -> Result<Vec<String>, String> {
    let mut measured = Vec::new();
    let outcomes = with_servers(
        |suite| suite.conformance,
        runtime,
        |suite, env| {
            let args = [
                "test",
                "-q",
                "-p",
                suite.krate,
                "--test",
                "conformance",
                "--",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
                "c2_",
                "c3_",
                "c4_",
            ];
            println!("xtask: bench {}: $ cargo {}", suite.name, args.join(" "));
            let output = Command::new("cargo")
                .args(args)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .current_dir(workspace_root())
                .stderr(Stdio::inherit())
                .output();
            match output {
                Ok(output) => {
                    let text = String::from_utf8_lossy(&output.stdout);
                    measured.extend(
                        text.lines()
                            .filter(|l| l.contains("wall clock, not asserted"))
                            // `-q` prints a progress dot per test before the line.
                            .map(|l| l.trim_start_matches('.').to_owned()),
                    );
                    Outcome {
                        line: format!("{}: timing cases {}", suite.name, output.status),
                        failed: !output.status.success(),
                    }
                }
                Err(e) => Outcome {
                    line: format!("{}: cannot run cargo test: {e}", suite.name),
                    failed: true,
                },
            }
        },
    )?;
    for outcome in &outcomes {
        println!("xtask: bench: {}", outcome.line);
    }
    if measured.is_empty() || outcomes.iter().any(|o| o.failed) {
        Err("the real-server timing cases did not all run (see above)".into())
    } else {
        Ok(measured)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_test_result;

    #[test]
    fn reads_libtest_summaries() {
        let ok = "test result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(parse_test_result(ok), Some((3, 0)));
        let bad = "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(parse_test_result(bad), Some((1, 2)));
        assert_eq!(parse_test_result("running 3 tests"), None);
    }
}
