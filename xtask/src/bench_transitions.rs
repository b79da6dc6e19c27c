//! `cargo xtask bench`'s transitions between separate processes: graceful
//! handover (the leader stops after leading 1 s and a waiting process takes
//! over) and crash failover (the leader is killed with SIGKILL).
//!
//! - Kubernetes: our candidates (`leader-election-bench kubernetes-peer`)
//!   and client-go's elector (the interop test's `client-go-peer`), with the
//!   same lease settings: lease 2 s, renew 500 ms (client-go: renew
//!   deadline 1.5 s), retry 500 ms.
//! - Consul: our candidates (`leader-election-bench consul-peer`: lease =
//!   session TTL 2 s, renew/retry 500 ms, lock-delay = lease + grace = 3 s)
//!   and Go's `api.Lock` (the interop test's `consul-lock-peer -stamps`:
//!   session TTL 2 s, lock-delay 3 s; it renews the session every TTL / 2
//!   and, when an acquire fails during a lock-delay, retries after its fixed
//!   `DefaultLockRetryTime`, 5 s).
//! - etcd: our candidates (`leader-election-bench etcd-peer`: lease 2 s,
//!   grace 1 s, so an etcd lease TTL of 3 s, renew/retry 500 ms) and Go's
//!   `concurrency.Election` (the interop test's `etcd-election-peer`) on a
//!   session of the same TTL, 3 s (its client keeps the lease alive every
//!   TTL / 3), on the same election prefix layout.
//!
//! Every peer prints `LEADING <ns>` and `STOPPED <ns>` (Unix nanoseconds,
//! one host, one clock). A handover is measured from the old leader's
//! `STOPPED` (ours: the moment `stop()` is called, which ends the term for
//! readers before the release; client-go: `OnStoppedLeading`, after its
//! release; `api.Lock`: just before `Unlock`; `concurrency.Election`:
//! `RESIGNING`, just before `Resign`) to the new leader's `LEADING`
//! (ours: the `BecameLeader` event; client-go: the start of its acquiring
//! write; `api.Lock` and `concurrency.Election`: when `Lock` or `Campaign`
//! returned). On Kubernetes both choices
//! favour client-go by about one round trip. A crash failover is measured
//! from the SIGKILL to the new leader's `LEADING`.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a leader leads before it stops or is killed; the next
/// candidate starts meanwhile and has this long to be watching.
const HOLD: Duration = Duration::from_secs(1);

/// One candidate process and its output.
struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn spawn(program: &Path, args: &[String], env: &[(String, String)]) -> Result<Self, String> {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The nanoseconds of the next `<word> <ns>` line.
    fn wait_for(&mut self, word: &str) -> Result<i128, String> {
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Some(ns) = line.strip_prefix(word).and_then(|r| r.trim().parse().ok()) {
                return Ok(ns);
            }
        }
        Err(format!("a peer ended before printing {word}"))
    }

    fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Which elector the peers run.
#[derive(Clone, Copy)]
pub(crate) enum Elector<'a> {
    /// Ours on Kubernetes: the bench binary's `kubernetes-peer`.
    Ours(&'a Path),
    /// Ours on Consul: the bench binary's `consul-peer`.
    OursConsul(&'a Path),
    /// client-go's, the `client-go-peer` program.
    ClientGo(&'a Path),
    /// Go's `api.Lock`, the `consul-lock-peer` program.
    ApiLock(&'a Path),
    /// Ours on etcd: the bench binary's `etcd-peer`.
    OursEtcd(&'a Path),
    /// Go's `concurrency.Election`, the `etcd-election-peer` program.
    EtcdElection(&'a Path),
}

impl Elector<'_> {
    /// The word of the line that stamps a leader's last leading instant.
    fn stopped(&self) -> &'static str {
        match self {
            Elector::EtcdElection(_) => "RESIGNING",
            _ => "STOPPED",
        }
    }

    fn spawn(
        &self,
        lease: &str,
        id: &str,
        hold: Duration,
        env: &[(String, String)],
    ) -> Result<Peer, String> {
        match self {
            Elector::Ours(bin) | Elector::OursConsul(bin) | Elector::OursEtcd(bin) => Peer::spawn(
                bin,
                &[
                    match self {
                        Elector::Ours(_) => "kubernetes-peer".into(),
                        Elector::OursConsul(_) => "consul-peer".into(),
                        _ => "etcd-peer".into(),
                    },
                    lease.into(),
                    id.into(),
                    hold.as_millis().to_string(),
                ],
                env,
            ),
            Elector::ClientGo(bin) => Peer::spawn(
                bin,
                &[
                    format!("-name={lease}"),
                    format!("-id={id}"),
                    "-lease-duration=2s".into(),
                    "-renew-deadline=1500ms".into(),
                    "-retry-period=500ms".into(),
                    format!("-hold={}ms", hold.as_millis()),
                    "-wait=120s".into(),
                ],
                env,
            ),
            Elector::ApiLock(bin) => {
                let addr = env
                    .iter()
                    .find(|(k, _)| k == "CONSUL_HTTP_ADDR")
                    .map(|(_, v)| v.trim_start_matches("http://").to_owned())
                    .ok_or("CONSUL_HTTP_ADDR is not set")?;
                Peer::spawn(
                    bin,
                    &[
                        format!("-addr={addr}"),
                        // Our `consul-peer`'s key: the default prefix's.
                        format!("-key=service/leader-election/{lease}/.lock"),
                        "-ttl=2s".into(),
                        "-lock-delay=3s".into(),
                        format!("-hold={}ms", hold.as_millis()),
                        "-stamps".into(),
                    ],
                    env,
                )
            }
            Elector::EtcdElection(bin) => Peer::spawn(
                bin,
                &[
                    // Our `etcd-peer`'s election: the default key prefix's.
                    format!("-prefix=leader-election/{lease}"),
                    format!("-id={id}"),
                    "-ttl=3".into(),
                    format!("-hold={}ms", hold.as_millis()),
                    "-wait=120s".into(),
                ],
                env,
            ),
        }
    }
}

/// `n` transitions on a fresh Lease, in milliseconds: graceful handovers,
/// or crash failovers when `crash`.
pub(crate) fn measure(
    elector: Elector<'_>,
    label: &str,
    n: usize,
    crash: bool,
    env: &[(String, String)],
) -> Result<Vec<f64>, String> {
    let run = unix_nanos() / 1_000_000_000;
    let kind = if crash { "crash" } else { "handover" };
    let lease = format!("bench-{kind}-{label}-{run}");
    // A killed leader must not release, so crash peers would lead long.
    let hold = if crash {
        Duration::from_secs(600)
    } else {
        HOLD
    };
    let mut leader = elector.spawn(&lease, &format!("{label}-0"), hold, env)?;
    leader.wait_for("LEADING")?;
    let mut samples = Vec::with_capacity(n);
    for i in 1..=n {
        let mut next = elector.spawn(&lease, &format!("{label}-{i}"), hold, env)?;
        let from = if crash {
            std::thread::sleep(HOLD);
            let at = unix_nanos();
            let _ = leader.child.kill();
            at
        } else {
            leader.wait_for(elector.stopped())?
        };
        let to = next.wait_for("LEADING")?;
        samples.push((to - from) as f64 / 1e6);
        leader.end();
        leader = next;
    }
    leader.end();
    Ok(samples)
}

/// The `q` quantile (0..=1) of `samples`, nearest rank.
pub(crate) fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(quantile(&samples, 0.5), 25.0);
        assert_eq!(quantile(&samples, 0.99), 50.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }
}
