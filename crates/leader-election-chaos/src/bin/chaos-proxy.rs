//! `chaos-proxy`: fault proxies (the testkit's `FaultProxy`) controlled line
//! by line on standard input, one answer line per command on standard output.
//!
//! ```text
//! chaos-proxy --log <shared log>
//! add <upstream host:port>         -> ok <n> <local port>
//! fault <n> pass|hole|latency <ms> -> ok
//! note <fault-kind> <target>       -> ok   (appends an `F` line to the log)
//! ```
//!
//! `note` exists because the harness (`cargo xtask`) cannot read
//! `CLOCK_MONOTONIC` itself; this process stamps the fault line for it.
//!
//! It exits when standard input closes (its parent, `cargo xtask chaos`, is
//! gone) and is killed with its parent through the parent-death signal.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::{Path, PathBuf};

use leader_election_chaos::log::append_fault;
use leader_election_testkit::proxy::{Fault, FaultProxy};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn main() -> std::process::ExitCode {
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        eprintln!("chaos-proxy: cannot set the parent-death signal: {e}");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let log = match args.as_slice() {
        [flag, path] if flag == "--log" => PathBuf::from(path),
        _ => {
            eprintln!("usage: chaos-proxy --log <shared log>");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos-proxy: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(&log));
    std::process::ExitCode::SUCCESS
}

async fn serve(log: &Path) {
    let mut proxies: Vec<FaultProxy> = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = command(&line, &mut proxies, log)
            .await
            .unwrap_or_else(|e| format!("error {e}"));
        if out
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
            || out.flush().await.is_err()
        {
            break;
        }
    }
}

async fn command(line: &str, proxies: &mut Vec<FaultProxy>, log: &Path) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["add", upstream] => {
            let upstream: SocketAddr = upstream
                .parse()
                .map_err(|e| format!("upstream {upstream:?} is not host:port: {e}"))?;
            let proxy = FaultProxy::start(upstream)
                .await
                .map_err(|e| format!("cannot start a proxy: {e}"))?;
            let port = proxy.local_addr().port();
            proxies.push(proxy);
            Ok(format!("ok {} {port}", proxies.len() - 1))
        }
        ["fault", n, rest @ ..] => {
            let proxy = n
                .parse::<usize>()
                .ok()
                .and_then(|n| proxies.get(n))
                .ok_or_else(|| format!("no proxy {n}"))?;
            let fault = match rest {
                ["pass"] => Fault::PassThrough,
                ["hole"] => Fault::BlackHole,
                ["latency", ms] => Fault::Latency(Duration::from_millis(
                    ms.parse().map_err(|e| format!("latency {ms:?}: {e}"))?,
                )),
                _ => return Err(format!("unknown fault {rest:?}")),
            };
            proxy.set_fault(fault);
            Ok("ok".to_owned())
        }
        ["note", kind, target] => append_fault(log, kind, target)
            .map(|()| "ok".to_owned())
            .map_err(|e| format!("cannot append to {}: {e}", log.display())),
        _ => Err(format!("unknown command {line:?}")),
    }
}
