//! The command line: every flag, its `LEADER_ELECTION_*` variable, and the
//! help text (`leader-election --help`, `leader-election run --help`).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit status when `--once` found another candidate leading.
pub(crate) const EXIT_COULD_NOT_LEAD: u8 = 75;
/// Exit status when leadership ended and the child was stopped for it.
pub(crate) const EXIT_LOST_LEADERSHIP: u8 = 76;
/// Exit status for bad flags or options (clap's own usage errors use it too).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status for a backend or system error (unreachable configuration,
/// permissions, the child could not be started).
pub(crate) const EXIT_FAILURE: u8 = 1;

const EXAMPLES: &str = "\
Examples:
  # Run the nightly report on exactly one of N machines (cron, every node):
  leader-election run --backend kubernetes --resource nightly-report --once -- ./report.sh

  # A singleton daemon on Consul, restarted whenever this node leads again:
  CONSUL_HTTP_ADDR=127.0.0.1:8500 \\
    leader-election run --backend consul --resource indexer --restart -- indexer --serve

  # Contend with `consul lock service/leader-election/indexer ...` on the same lock:
  leader-election run --backend consul --resource indexer -- indexer --serve

  # etcd, with etcdctl's variables; contends with etcd's own election clients
  # (`etcdctl elect leader-election/indexer ...`) on the same prefix:
  ETCDCTL_ENDPOINTS=https://etcd-1:2379,https://etcd-2:2379 ETCDCTL_CACERT=/etc/etcd/ca.pem \\
    leader-election run --backend etcd --resource indexer --restart -- indexer --serve

  # Who leads, as JSON; then follow every change:
  leader-election status --backend kubernetes --resource nightly-report --output json
  leader-election watch --backend kubernetes --resource nightly-report

Exit status of `run`:
  0-255   the child's own status (128+N when signal N ended it)
  75      --once: another candidate leads
  76      leadership ended (lost, or its deadline near) and the child was stopped
  2       bad flags or options (the message names the flag and the rule)
  1       backend or system error (no configuration, permission refused)
  126/127 the command cannot be executed / was not found
  128+N   signal N (SIGINT, SIGTERM) arrived before this process led

The child runs in a process group of its own: signals go to the whole group,
and whatever the child leaves running in it is killed when the child exits.
If leader-election itself is killed with SIGKILL, nothing stops the child:
run it where the whole group or cgroup dies with it (systemd, a Pod).";

/// Run a program only while this process leads a distributed lock.
///
/// `leader-election run` waits until it holds the lease of RESOURCE on the
/// backend, starts COMMAND with LEADER_ELECTION_FENCING_TOKEN,
/// LEADER_ELECTION_RESOURCE and LEADER_ELECTION_ID in its environment, and
/// renews the lease while COMMAND runs. When the lease is lost, or when the
/// backend has been unreachable so long that the lease may soon pass to
/// someone else, COMMAND gets SIGTERM, then SIGKILL after --shutdown-grace,
/// and is dead before this process's own deadline for the lease. When
/// COMMAND exits, the lease is released at once.
///
/// Connection: Kubernetes from the in-cluster service account or the
/// kubeconfig (KUBECONFIG, ~/.kube/config); Consul from CONSUL_HTTP_ADDR,
/// CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT,
/// CONSUL_CLIENT_KEY; etcd from etcdctl's ETCDCTL_ENDPOINTS (comma-separated
/// URLs), ETCDCTL_USER (name:password), ETCDCTL_CACERT, ETCDCTL_CERT,
/// ETCDCTL_KEY. Every flag can also be set by the LEADER_ELECTION_*
/// variable shown in its help.
#[derive(Debug, Parser)]
#[command(name = "leader-election", version, after_long_help = EXAMPLES, after_help = "See --help for examples and exit codes.")]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Wait for leadership, run COMMAND while leading, stop it before the lease can pass on.
    #[command(after_long_help = EXAMPLES)]
    Run(RunArgs),
    /// Print who holds the lease, its fencing token and when it can be taken over.
    Status(StatusArgs),
    /// Print the lease's state, then one line per change, until interrupted.
    Watch(WatchArgs),
}

/// Which backend holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// A `coordination.k8s.io/v1` Lease (wire-compatible with client-go).
    Kubernetes,
    /// A Consul session lock on `<prefix>/<resource>/.lock` (the key of `consul lock <prefix>/<resource>`).
    Consul,
    /// An etcd v3 election on `<prefix>/<resource>/` (the layout of etcd's `concurrency.Election`).
    Etcd,
}

/// The lock: backend, resource and how to reach it.
#[derive(Clone, Debug, Args)]
pub(crate) struct Target {
    /// The backend.
    #[arg(long, env = "LEADER_ELECTION_BACKEND", value_enum)]
    pub(crate) backend: Backend,
    /// The lock's name: a Lease name on Kubernetes, a key segment on Consul and etcd.
    #[arg(long, env = "LEADER_ELECTION_RESOURCE")]
    pub(crate) resource: String,
    /// Kubernetes: namespace of the Lease [default: the in-cluster or kubeconfig namespace].
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE", help_heading = "Kubernetes")]
    pub(crate) namespace: Option<String>,
    /// Kubernetes: the kubeconfig context to use [default: its current-context, or in-cluster].
    #[arg(
        long,
        env = "LEADER_ELECTION_KUBE_CONTEXT",
        help_heading = "Kubernetes"
    )]
    pub(crate) context: Option<String>,
    /// Consul: KV prefix; the lock key is `<PREFIX>/<RESOURCE>/.lock`, as `consul lock <PREFIX>/<RESOURCE>` uses.
    #[arg(
        long,
        env = "LEADER_ELECTION_CONSUL_PREFIX",
        default_value = "service/leader-election",
        help_heading = "Consul"
    )]
    pub(crate) consul_prefix: String,
    /// Consul: datacenter [default: the agent's].
    #[arg(
        long,
        env = "LEADER_ELECTION_CONSUL_DATACENTER",
        help_heading = "Consul"
    )]
    pub(crate) consul_datacenter: Option<String>,
    /// Consul: the agent's session_ttl_min; --lease below it is refused.
    #[arg(long, env = "LEADER_ELECTION_CONSUL_SESSION_TTL_MIN", default_value = "10s",
          value_parser = humantime::parse_duration, help_heading = "Consul")]
    pub(crate) consul_session_ttl_min: Duration,
    /// etcd: key prefix; the election is `<PREFIX>/<RESOURCE>/`, as etcd's
    /// `concurrency.NewElection(session, "<PREFIX>/<RESOURCE>")` and
    /// `etcdctl elect <PREFIX>/<RESOURCE>` use.
    #[arg(
        long,
        env = "LEADER_ELECTION_ETCD_PREFIX",
        default_value = "leader-election",
        help_heading = "etcd"
    )]
    pub(crate) etcd_prefix: String,
}

/// The lease's timing (the library's options, same defaults).
#[derive(Clone, Debug, Args)]
pub(crate) struct Timing {
    /// How long the lease lasts after its last renewal.
    #[arg(long, env = "LEADER_ELECTION_LEASE", default_value = "15s", value_parser = humantime::parse_duration, help_heading = "Timing")]
    pub(crate) lease: Duration,
    /// How often the leader renews (2 × --renew < --lease). 3 s, not the
    /// library's 5 s, so that with the default lease, grace and
    /// --shutdown-grace a renewal and the child's stop fit the Kubernetes
    /// term limit (10.5 s).
    #[arg(long, env = "LEADER_ELECTION_RENEW", default_value = "3s", value_parser = humantime::parse_duration, help_heading = "Timing")]
    pub(crate) renew: Duration,
    /// How often a follower retries without an expiry hint (≤ --lease).
    #[arg(long, env = "LEADER_ELECTION_RETRY", default_value = "2s", value_parser = humantime::parse_duration, help_heading = "Timing")]
    pub(crate) retry: Duration,
    /// Extra wait after a lease expired before taking it (clock-rate margin).
    #[arg(long, env = "LEADER_ELECTION_GRACE", default_value = "5s", value_parser = humantime::parse_duration, help_heading = "Timing")]
    pub(crate) grace: Duration,
}

/// `leader-election run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The lock.
    #[command(flatten)]
    pub(crate) target: Target,
    /// The lease's timing.
    #[command(flatten)]
    pub(crate) timing: Timing,
    /// Candidate id [default: host name plus a random suffix].
    #[arg(long, env = "LEADER_ELECTION_ID")]
    pub(crate) id: Option<String>,
    /// Time between SIGTERM and SIGKILL. The child is signalled early enough
    /// to be dead before the lease's local deadline, so it must fit:
    /// 2 × --renew + --shutdown-grace + 250ms ≤ the backend's term limit
    /// (--lease on Consul and etcd, (--lease − 1s) × --lease / (--lease +
    /// --grace) on Kubernetes).
    #[arg(long, env = "LEADER_ELECTION_SHUTDOWN_GRACE", default_value = "3s", value_parser = humantime::parse_duration, help_heading = "Timing")]
    pub(crate) shutdown_grace: Duration,
    /// Exit with status 75 instead of waiting when another candidate leads.
    #[arg(long, env = "LEADER_ELECTION_ONCE", conflicts_with = "restart")]
    pub(crate) once: bool,
    /// Run COMMAND again at each new term instead of exiting when it exits
    /// or leadership ends (after it exits, the lease is released and this
    /// process waits one lease before contending again).
    #[arg(long, env = "LEADER_ELECTION_RESTART")]
    pub(crate) restart: bool,
    /// The program to run while leading, and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// How `status` and `watch` print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// One human-readable line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `leader-election status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The lock.
    #[command(flatten)]
    pub(crate) target: Target,
    /// The lease's timing (the grace period dates a takeover).
    #[command(flatten)]
    pub(crate) timing: Timing,
    /// Output format.
    #[arg(
        long,
        short,
        env = "LEADER_ELECTION_OUTPUT",
        value_enum,
        default_value_t
    )]
    pub(crate) output: Output,
}

/// `leader-election watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Same flags as `status`.
    #[command(flatten)]
    pub(crate) status: StatusArgs,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_double_dash_and_refuses_once_with_restart() {
        let parsed = Cli::try_parse_from([
            "leader-election",
            "run",
            "--backend",
            "consul",
            "--resource",
            "r",
            "--lease",
            "30s",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .expect("parses");
        let Command::Run(run) = parsed.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["sh", "-c", "exit 3"]);
        assert_eq!(run.timing.lease, Duration::from_secs(30));
        let both = Cli::try_parse_from([
            "leader-election",
            "run",
            "--backend",
            "consul",
            "--resource",
            "r",
            "--once",
            "--restart",
            "--",
            "true",
        ]);
        assert!(both.is_err_and(|e| e.kind() == clap::error::ErrorKind::ArgumentConflict));
        let bad = Cli::try_parse_from([
            "leader-election",
            "run",
            "--backend",
            "consul",
            "--resource",
            "r",
            "--lease",
            "soon",
            "--",
            "true",
        ]);
        assert!(bad.is_err_and(|e| e.to_string().contains("--lease")));
    }
}
