//! `leader-election` end to end against the real servers (run by
//! `cargo xtask integration cli`): children that append fenced writes to a
//! shared log are never both running (checked by the chaos harness's
//! checker), the child is dead before the leader's local deadline when the
//! backend is black-holed, signals reach the child, exit codes, `--once`,
//! `--restart`, `status` and `watch` on Kubernetes, Consul and etcd, and
//! `consul lock` and `etcdctl lock` on the same lock.

mod support;

use std::time::Duration;

use leader_election_testkit::Fault;
use rustix::process::Signal;
use support::*;

/// Two `run --restart` processes whose children write for about a second
/// and exit: the lease alternates, and the log shows no overlap.
async fn two_runs_never_run_their_children_together(backend: Backend) {
    let dir = scratch(&format!("two-{}", backend.name()));
    let log = dir.join("log");
    let log_s = log.display().to_string();
    let resource = resource("two");
    let env = [("LOG", log_s.as_str()), ("WRITES", "40")];
    let mut a = run_writer(
        backend,
        &resource,
        None,
        &["--restart", "--id", "a"],
        &env,
        &dir,
        "a",
    );
    let mut b = run_writer(
        backend,
        &resource,
        None,
        &["--restart", "--id", "b"],
        &env,
        &dir,
        "b",
    );
    // Both must have led, twice in all at least, before we judge.
    wait_until(
        "both candidates led and the lease changed hands twice",
        || {
            let (a_terms, b_terms) = (terms_of(&log, "a"), terms_of(&log, "b"));
            !a_terms.is_empty() && !b_terms.is_empty() && a_terms.len() + b_terms.len() >= 3
        },
    )
    .await;
    signal(&a, Signal::TERM);
    signal(&b, Signal::TERM);
    let (sa, sb) = (exit_of(&mut a, "a").await, exit_of(&mut b, "b").await);
    let report = check_log(&log);
    assert!(report.takeovers.len() >= 2, "{}", report.table());
    // SIGTERM: forwarded to a running child (which dies of it) or ends the wait.
    for (status, name) in [(sa, "a"), (sb, "b")] {
        assert_eq!(
            status.code(),
            Some(143),
            "{name}: {}",
            output_of(&dir, name)
        );
    }
}

/// The distinct tokens candidate `id` wrote with.
fn terms_of(log: &std::path::Path, id: &str) -> std::collections::BTreeSet<u64> {
    writes_by(log, id)
        .into_iter()
        .map(|(_, token)| token)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_two_runs_never_run_their_children_together() {
    two_runs_never_run_their_children_together(Backend::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_two_runs_never_run_their_children_together() {
    two_runs_never_run_their_children_together(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_two_runs_never_run_their_children_together() {
    two_runs_never_run_their_children_together(Backend::Etcd).await;
}

/// The leader's connection is black-holed while its child ignores SIGTERM:
/// the child must be killed (SIGKILL) before the leader's local deadline,
/// which is at most one lease after the black hole began, and before the
/// other candidate's child writes.
async fn child_dies_before_the_deadline_when_the_backend_is_black_holed(backend: Backend) {
    let dir = scratch(&format!("blackhole-{}", backend.name()));
    let log = dir.join("log");
    let log_s = log.display().to_string();
    let resource = resource("blackhole");
    let via = Via::proxy(backend, &dir).await;
    let stubborn = [("LOG", log_s.as_str()), ("IGNORE_TERM", "1")];
    let mut cut = run_writer(
        backend,
        &resource,
        Some(&via),
        &["--id", "cut"],
        &stubborn,
        &dir,
        "cut",
    );
    wait_until("the first candidate's child writes", || {
        !writes_by(&log, "cut").is_empty()
    })
    .await;
    let env = [("LOG", log_s.as_str())];
    let mut other = run_writer(
        backend,
        &resource,
        None,
        &["--id", "other"],
        &env,
        &dir,
        "other",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let black_hole_at = now_ns();
    via.proxy.set_fault(Fault::BlackHole);
    let status = exit_of(&mut cut, "the cut-off candidate").await;
    assert_eq!(
        status.code(),
        Some(76),
        "lost leadership: {}",
        output_of(&dir, "cut")
    );
    let last_write = writes_by(&log, "cut")
        .iter()
        .map(|(t, _)| *t)
        .max()
        .expect("writes");
    // The last renewal began before the black hole, so the local deadline
    // is at most one term limit after it.
    let limit = term_limit(backend);
    let deadline = black_hole_at + u64::try_from(limit.as_nanos()).expect("fits");
    assert!(
        last_write < deadline,
        "the child wrote {:.3}s after the black hole began, past the term limit ({limit:?})",
        (last_write - black_hole_at) as f64 / 1e9
    );
    println!(
        "{}: child's last write {:.3}s after the black hole began (term limit {limit:?})",
        backend.name(),
        (last_write.saturating_sub(black_hole_at)) as f64 / 1e9
    );
    wait_until("the other candidate takes over and writes", || {
        !writes_by(&log, "other").is_empty()
    })
    .await;
    signal(&other, Signal::TERM);
    exit_of(&mut other, "the other candidate").await;
    check_log(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_child_dies_before_the_deadline_when_the_backend_is_black_holed() {
    child_dies_before_the_deadline_when_the_backend_is_black_holed(Backend::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_child_dies_before_the_deadline_when_the_backend_is_black_holed() {
    child_dies_before_the_deadline_when_the_backend_is_black_holed(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_child_dies_before_the_deadline_when_the_backend_is_black_holed() {
    child_dies_before_the_deadline_when_the_backend_is_black_holed(Backend::Etcd).await;
}

/// SIGINT and SIGTERM to `leader-election` reach the child, whose exit
/// status becomes ours; the lease is released.
async fn signals_reach_the_child(backend: Backend, sent: Signal, name: &str) {
    let dir = scratch(&format!("signal-{name}-{}", backend.name()));
    let marks = dir.join("marks");
    let resource = resource("signal");
    let script = format!(
        "trap 'echo got-{name} >> {m}; exit 42' {name}; echo ready >> {m}; \
         while :; do sleep 0.05; done",
        m = marks.display()
    );
    let mut command = cli(backend, &resource, None);
    command
        .arg("run")
        .args(TIMING)
        .args(["--", "sh", "-c", &script]);
    let mut run = spawn_logged(command, &dir, "run");
    wait_until("the child is ready", || {
        std::fs::read_to_string(&marks).is_ok_and(|m| m.contains("ready"))
    })
    .await;
    signal(&run, sent);
    let status = exit_of(&mut run, "leader-election").await;
    assert_eq!(status.code(), Some(42), "{}", output_of(&dir, "run"));
    let marks = std::fs::read_to_string(&marks).expect("marks");
    assert!(marks.contains(&format!("got-{name}")), "{marks}");
    assert_released(backend, &resource).await;
}

/// `status --output json` says nobody holds the lease.
async fn assert_released(backend: Backend, resource: &str) {
    let output = cli(backend, resource, None)
        .args(["status", "--output", "json"])
        .output()
        .await
        .expect("status");
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("status prints JSON");
    assert_eq!(status["holder"], serde_json::Value::Null, "{status}");
    assert_eq!(status["resource"], resource);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_sigterm_reaches_the_child() {
    signals_reach_the_child(Backend::Consul, Signal::TERM, "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_sigint_reaches_the_child() {
    signals_reach_the_child(Backend::Kubernetes, Signal::INT, "INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_sigterm_reaches_the_child() {
    signals_reach_the_child(Backend::Etcd, Signal::TERM, "TERM").await;
}

/// The child's exit status is ours, the lease is released when it exits,
/// and `status` shows the holder while it runs.
async fn exit_status_is_the_childs_and_status_shows_the_holder(backend: Backend) {
    let dir = scratch(&format!("exit-{}", backend.name()));
    let go = dir.join("go");
    let resource = resource("exit");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; exit 7",
        go = go.display()
    );
    let mut command = cli(backend, &resource, None);
    command
        .arg("run")
        .args(TIMING)
        .args(["--id", "exit-holder", "--", "sh", "-c", &script]);
    let mut run = spawn_logged(command, &dir, "run");
    let mut holder = serde_json::Value::Null;
    for _ in 0..200 {
        let output = cli(backend, &resource, None)
            .args(["status", "-o", "json"])
            .output()
            .await
            .expect("status");
        assert!(output.status.success(), "{output:?}");
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        holder = status["holder"].clone();
        if holder == "exit-holder" {
            assert!(status["fencing_token"].is_u64(), "{status}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder, "exit-holder", "status never showed the holder");
    std::fs::write(&go, "").expect("go");
    let status = exit_of(&mut run, "leader-election").await;
    assert_eq!(status.code(), Some(7), "{}", output_of(&dir, "run"));
    assert_released(backend, &resource).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_exit_status_is_the_childs_and_status_shows_the_holder() {
    exit_status_is_the_childs_and_status_shows_the_holder(Backend::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_exit_status_is_the_childs_and_status_shows_the_holder() {
    exit_status_is_the_childs_and_status_shows_the_holder(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_exit_status_is_the_childs_and_status_shows_the_holder() {
    exit_status_is_the_childs_and_status_shows_the_holder(Backend::Etcd).await;
}

/// `--once` exits 75 without running its command while another leads.
async fn once_exits_when_another_leads(backend: Backend) {
    let dir = scratch(&format!("once-{}", backend.name()));
    let ran = dir.join("ran");
    let resource = resource("once");
    let mut command = cli(backend, &resource, None);
    command
        .arg("run")
        .args(TIMING)
        .args(["--id", "holder", "--", "sleep", "60"]);
    let mut holder = spawn_logged(command, &dir, "holder");
    wait_until("the holder leads", || {
        output_of(&dir, "holder").contains("starting the command")
    })
    .await;
    let mut once = cli(backend, &resource, None);
    once.arg("run").args(TIMING).args([
        "--once",
        "--",
        "sh",
        "-c",
        &format!("touch {}", ran.display()),
    ]);
    let output = tokio::time::timeout(HANG_GUARD, once.output())
        .await
        .expect("--once returns")
        .expect("run");
    assert_eq!(output.status.code(), Some(75), "{output:?}");
    assert!(!ran.exists(), "--once ran its command while another led");
    signal(&holder, Signal::TERM);
    assert_eq!(exit_of(&mut holder, "holder").await.code(), Some(143));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_once_exits_when_another_leads() {
    once_exits_when_another_leads(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_once_exits_when_another_leads() {
    once_exits_when_another_leads(Backend::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_once_exits_when_another_leads() {
    once_exits_when_another_leads(Backend::Etcd).await;
}

/// `--restart` runs the command again at the next term; without it, one run.
async fn restart_runs_the_command_again_at_the_next_term(backend: Backend) {
    let dir = scratch(&format!("restart-{}", backend.name()));
    let runs = dir.join("runs");
    let resource = resource("restart");
    let script = format!("echo $LEADER_ELECTION_FENCING_TOKEN >> {}", runs.display());
    let mut command = cli(backend, &resource, None);
    command
        .arg("run")
        .args(TIMING)
        .args(["--restart", "--", "sh", "-c", &script]);
    let mut run = spawn_logged(command, &dir, "run");
    wait_until("the command ran twice", || {
        std::fs::read_to_string(&runs).is_ok_and(|r| r.lines().count() >= 2)
    })
    .await;
    signal(&run, Signal::TERM);
    assert_eq!(exit_of(&mut run, "run").await.code(), Some(143));
    let tokens: Vec<u64> = std::fs::read_to_string(&runs)
        .expect("runs")
        .lines()
        .map(|l| l.parse().expect("a token"))
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "each run is a new term with a greater token: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_restart_runs_the_command_again_at_the_next_term() {
    restart_runs_the_command_again_at_the_next_term(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_restart_runs_the_command_again_at_the_next_term() {
    restart_runs_the_command_again_at_the_next_term(Backend::Etcd).await;
}

/// `leader-election run` and the real `consul lock` on one lock: their
/// children (both appending fenced writes; `consul lock`'s child takes the
/// lock key's ModifyIndex as its token, the same number our token is) never
/// run together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers and the consul binary: cargo xtask integration cli"]
async fn consul_lock_and_run_never_run_their_children_together() {
    let dir = scratch("consul-lock");
    let log = dir.join("log");
    let log_s = log.display().to_string();
    let resource = resource("interop");
    // `consul lock <key_prefix>/<resource>` locks `<key_prefix>/<resource>/.lock`, our key.
    let key_prefix = "leader-election-cli-test";
    let prefix = format!("{key_prefix}/{resource}");
    let consul = required_env("LE_CONSUL_BIN");
    let addr = required_env("CONSUL_HTTP_ADDR");
    let writer = dir.join("writer.sh");
    std::fs::write(&writer, WRITER).expect("write the writer script");
    let env = [("LOG", log_s.as_str()), ("WRITES", "40")];
    let mut ours = run_writer(
        Backend::Consul,
        &resource,
        None,
        &["--restart", "--id", "ours", "--consul-prefix", key_prefix],
        &env,
        &dir,
        "ours",
    );
    let token_cmd = format!(
        "{consul} kv get -http-addr={addr} -detailed {prefix}/.lock | awk '/^ModifyIndex/ {{print $2}}'"
    );
    for round in 0..3 {
        let mut lock = tokio::process::Command::new(&consul);
        lock.arg("lock")
            .arg(format!("-http-addr={addr}"))
            .arg(&prefix)
            .arg(format!("sh {}", writer.display()))
            .env("LOG", &log_s)
            .env("WRITES", "40")
            .env("KIND", "foreign")
            .env("TOKEN_CMD", &token_cmd)
            .kill_on_drop(true);
        let mut child = spawn_logged(lock, &dir, &format!("lock-{round}"));
        let status = exit_of(&mut child, "consul lock").await;
        assert!(
            status.success(),
            "{}",
            output_of(&dir, &format!("lock-{round}"))
        );
    }
    wait_until("ours led too", || !writes_by(&log, "ours").is_empty()).await;
    signal(&ours, Signal::TERM);
    exit_of(&mut ours, "ours").await;
    let report = check_log(&log);
    let foreign_stale = report
        .stale
        .get(&leader_election_chaos::log::Kind::Foreign)
        .copied()
        .unwrap_or(0);
    assert_eq!(foreign_stale, 0, "{}", report.table());
    assert!(report.takeovers.len() >= 3, "{}", report.table());
    assert!(
        !writes_by(&log, "foreign").is_empty(),
        "consul lock's child never wrote"
    );
}

/// `leader-election run --backend etcd` and the real `etcdctl lock` on one
/// lock: `etcdctl lock leader-election/<resource>` queues a key under the
/// prefix our etcd elections use, with etcd's `concurrency.Mutex` (the key
/// layout of `concurrency.Election`), and runs its command while it holds
/// the lock. Their children (both appending fenced writes; `etcdctl lock`'s
/// takes `ETCD_LOCK_REV`, the revision it acquired at, which lies between
/// its key's create revision and any later term's) never run together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers and etcdctl: cargo xtask integration cli"]
async fn etcdctl_lock_and_run_never_run_their_children_together() {
    let dir = scratch("etcdctl-lock");
    let log = dir.join("log");
    let log_s = log.display().to_string();
    let resource = resource("etcdctl");
    let etcdctl = required_env("LE_ETCDCTL_BIN");
    let endpoints = required_env("LE_ETCD_ENDPOINTS");
    let writer = dir.join("writer.sh");
    std::fs::write(&writer, WRITER).expect("write the writer script");
    let env = [("LOG", log_s.as_str()), ("WRITES", "40")];
    let mut ours = run_writer(
        Backend::Etcd,
        &resource,
        None,
        &["--restart", "--id", "ours"],
        &env,
        &dir,
        "ours",
    );
    for round in 0..3 {
        let mut lock = tokio::process::Command::new(&etcdctl);
        // etcdctl's own variable (a flag beside it in the environment is refused).
        lock.env("ETCDCTL_ENDPOINTS", &endpoints)
            .arg("lock")
            .arg(format!("leader-election/{resource}"))
            .arg("sh")
            .arg(&writer)
            .env_remove("LEADER_ELECTION_FENCING_TOKEN")
            .env_remove("LEADER_ELECTION_ID")
            .env("LOG", &log_s)
            .env("WRITES", "40")
            .env("KIND", "foreign")
            .env("TOKEN_CMD", "echo $ETCD_LOCK_REV")
            .kill_on_drop(true);
        let mut child = spawn_logged(lock, &dir, &format!("lock-{round}"));
        let status = exit_of(&mut child, "etcdctl lock").await;
        assert!(
            status.success(),
            "{}",
            output_of(&dir, &format!("lock-{round}"))
        );
    }
    wait_until("ours led too", || !writes_by(&log, "ours").is_empty()).await;
    signal(&ours, Signal::TERM);
    exit_of(&mut ours, "ours").await;
    let report = check_log(&log);
    let foreign_stale = report
        .stale
        .get(&leader_election_chaos::log::Kind::Foreign)
        .copied()
        .unwrap_or(0);
    assert_eq!(foreign_stale, 0, "{}", report.table());
    assert!(report.takeovers.len() >= 3, "{}", report.table());
    assert_eq!(
        writes_by(&log, "foreign").len(),
        3 * 40,
        "each etcdctl lock child wrote its 40 writes"
    );
}

/// `watch` prints the lease's state, then one line per change: a holder,
/// then none once its command exited.
async fn watch_prints_each_change(backend: Backend) {
    let dir = scratch(&format!("watch-{}", backend.name()));
    let resource = resource("watch");
    let mut watch = cli(backend, &resource, None);
    watch.args(["watch", "--output", "json"]);
    let mut watch = spawn_logged(watch, &dir, "watch");
    let lines = |dir: &std::path::Path| -> Vec<serde_json::Value> {
        output_of(dir, "watch")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    wait_until("watch prints the first state", || !lines(&dir).is_empty()).await;
    let mut run = cli(backend, &resource, None);
    run.arg("run")
        .args(TIMING)
        .args(["--id", "watched", "--", "sleep", "1"]);
    let status = tokio::time::timeout(HANG_GUARD, run.output())
        .await
        .expect("run returns")
        .expect("run");
    assert!(status.status.success(), "{status:?}");
    wait_until("watch prints the holder, then its release", || {
        let holders: Vec<serde_json::Value> =
            lines(&dir).iter().map(|l| l["holder"].clone()).collect();
        holders
            .iter()
            .position(|h| h == "watched")
            .is_some_and(|i| holders[i + 1..].contains(&serde_json::Value::Null))
    })
    .await;
    signal(&watch, Signal::TERM);
    exit_of(&mut watch, "watch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn consul_watch_prints_each_change() {
    watch_prints_each_change(Backend::Consul).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_watch_prints_each_change() {
    watch_prints_each_change(Backend::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn etcd_watch_prints_each_change() {
    watch_prints_each_change(Backend::Etcd).await;
}

/// etcd's connection comes from etcdctl's variables, checked before anything
/// is sent: a bad one is a usage error (status 2) naming the variable and
/// the rule. Needs no server.
#[tokio::test]
async fn etcd_connection_errors_name_the_etcdctl_variable() {
    for (variable, value, named) in [
        ("ETCDCTL_ENDPOINTS", "127.0.0.1:2379", "ETCDCTL_ENDPOINTS"),
        ("ETCDCTL_USER", "no-password", "ETCDCTL_USER"),
        (
            "ETCDCTL_CERT",
            "/nonexistent/cert.pem",
            "ETCDCTL_CERT and ETCDCTL_KEY",
        ),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_leader-election"))
            .args(["status", "--backend", "etcd", "--resource", "r"])
            .env_remove("ETCDCTL_ENDPOINTS")
            .env_remove("ETCDCTL_USER")
            .env_remove("ETCDCTL_CERT")
            .env_remove("ETCDCTL_KEY")
            .env(variable, value)
            .output()
            .await
            .expect("leader-election runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(named), "{variable}: {stderr}");
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_leader-election"))
        .args(["status", "--backend", "etcd", "--resource", "r"])
        .args(["--etcd-prefix", "trailing/"])
        .env_remove("ETCDCTL_ENDPOINTS")
        .output()
        .await
        .expect("leader-election runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--etcd-prefix"), "{stderr}");
}

/// A kubeconfig whose current context points at a closed port and whose
/// `real` context is xtask's cluster: written as JSON, which YAML readers
/// read too.
fn kubeconfig_with_a_dead_current_context(dir: &std::path::Path) -> std::path::PathBuf {
    let real = kube::config::Kubeconfig::read_from(support::required_env("KUBECONFIG"))
        .expect("xtask's kubeconfig");
    let mut config = real.clone();
    let mut dead_cluster = real.clusters[0].clone();
    dead_cluster.name = "dead".into();
    if let Some(cluster) = dead_cluster.cluster.as_mut() {
        cluster.server = Some("https://127.0.0.1:1".into());
    }
    config.clusters.push(dead_cluster);
    let mut real_context = real.contexts[0].clone();
    real_context.name = "real".into();
    let mut dead_context = real.contexts[0].clone();
    dead_context.name = "dead".into();
    if let Some(context) = dead_context.context.as_mut() {
        context.cluster = "dead".into();
    }
    config.contexts = vec![dead_context, real_context];
    config.current_context = Some("dead".into());
    let path = dir.join("kubeconfig.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("JSON")).expect("write");
    path
}

/// `--context` picks a kubeconfig context other than the current one: with
/// the current context dead, `status` fails; with `--context real` it
/// reaches the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the servers: cargo xtask integration cli"]
async fn kubernetes_context_flag_picks_the_kubeconfig_context() {
    let dir = scratch("context");
    let kubeconfig = kubeconfig_with_a_dead_current_context(&dir);
    let status = |context: Option<&str>| {
        let mut command = cli(Backend::Kubernetes, &resource("context"), None);
        command
            .env("KUBECONFIG", &kubeconfig)
            .env("LEADER_ELECTION_LOG", "error")
            .args(["status", "-o", "json"]);
        if let Some(context) = context {
            command.args(["--context", context]);
        }
        command.output()
    };
    let current = status(None).await.expect("status runs");
    assert_eq!(
        current.status.code(),
        Some(1),
        "the current context's server is a closed port: {current:?}"
    );
    let chosen = status(Some("real")).await.expect("status runs");
    assert!(chosen.status.success(), "{chosen:?}");
    let shown: serde_json::Value = serde_json::from_slice(&chosen.stdout).expect("JSON");
    assert!(
        shown["holder"].is_null(),
        "nobody leads a new resource: {shown}"
    );
    let missing = status(Some("nope")).await.expect("status runs");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--context \"nope\""), "{stderr}");
}
