//! Many elections in one process against one real agent with its default
//! limits (`http_max_conns_per_client` = 200): more elections than the
//! agent accepts connections from this address, all leading steadily,
//! while the process's connections to the agent stay within the factories'
//! `max_connections`. Run with `cargo xtask integration consul`.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_consul::{ConsulLeaderElectionFactory, ConsulLeaseStore};

/// More elections (2 per resource) than the agent's default 200
/// connections per client address.
const RESOURCES: usize = 300;
/// Per factory; two factories (two replicas of a sharded service).
const MAX_CONNECTIONS: usize = 12;

/// The established TCP connections of this process to `port` on loopback:
/// the sockets among our file descriptors that `/proc/self/net/tcp` lists
/// as connected to that port.
fn connections_to(port: u16) -> usize {
    let mut ours = HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(fd) = fd else { continue };
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                ours.insert(inode.to_owned());
            }
        }
    }
    let mut count = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let remote_port = fields[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 01 = ESTABLISHED.
            if remote_port == Some(port) && fields[3] == "01" && ours.contains(fields[9]) {
                count += 1;
            }
        }
    }
    count
}

/// Ends the sampling thread when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn options() -> LeaderElectionOptions {
    // Leases long enough that 300 leaders renewing (two requests each per
    // renewal) stay a modest load on a shared test machine.
    leader_election_testkit::timing_options(
        Duration::from_secs(10),
        Duration::from_secs(3),
        Duration::from_secs(1),
        Duration::from_secs(2),
    )
}

fn led(pairs: &[[Election<ConsulLeaseStore>; 2]]) -> usize {
    pairs
        .iter()
        .filter(|p| p[0].is_leader() || p[1].is_leader())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Consul agent: cargo xtask integration consul"]
async fn more_elections_than_the_agent_allows_connections_all_lead_within_the_connection_cap() {
    let agent = support::agent_address();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let factory = |replica: &str| {
        let config = leader_election_consul::ConsulConfig {
            key_prefix: format!("le-scale-{run}"),
            max_connections: MAX_CONNECTIONS,
            ..support::config_for(agent)
        };
        let options = LeaderElectionOptions {
            instance_id: replica.to_owned(),
            ..options()
        };
        ConsulLeaderElectionFactory::new(config, options).expect("factory")
    };
    let replicas = [factory("replica-a"), factory("replica-b")];

    // Count this process's connections to the agent throughout, on a
    // thread of its own (ended by the guard, even when an assertion fails).
    let most = Arc::new(AtomicUsize::new(0));
    let sampling = StopOnDrop(Arc::new(AtomicBool::new(true)));
    {
        let (most, sampling) = (Arc::clone(&most), Arc::clone(&sampling.0));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                most.fetch_max(connections_to(agent.port()), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }

    let started = Instant::now();
    let pairs: Vec<[Election<ConsulLeaseStore>; 2]> = (0..RESOURCES)
        .map(|i| {
            let name = format!("shard-{i:04}");
            replicas
                .each_ref()
                .map(|f| f.election(&name).build().expect("election"))
        })
        .collect();
    for pair in &pairs {
        for election in pair {
            election.start().await.expect("start");
        }
    }
    let limit = Duration::from_secs(120);
    while led(&pairs) < RESOURCES && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elected = led(&pairs);
    println!(
        "{elected} of {RESOURCES} resources led after {:.1} s; so far at most {} connections to the agent",
        started.elapsed().as_secs_f64(),
        most.load(Ordering::Relaxed)
    );
    assert_eq!(
        elected, RESOURCES,
        "not every resource got a leader within {limit:?}"
    );

    // Steady: every resource keeps its leader and its term (same fencing
    // token) for longer than a lease and several renewals.
    let terms: Vec<_> = pairs
        .iter()
        .map(|p| {
            let leader = usize::from(!p[0].is_leader());
            (leader, p[leader].fencing_token())
        })
        .collect();
    let window = Instant::now();
    let mut least = RESOURCES;
    while window.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        least = least.min(led(&pairs));
        let both = pairs
            .iter()
            .filter(|p| p[0].is_leader() && p[1].is_leader())
            .count();
        assert_eq!(both, 0, "two leaders of one resource in one process");
    }
    let kept = pairs
        .iter()
        .zip(&terms)
        .filter(|(p, (leader, token))| {
            p[*leader].is_leader() && p[*leader].fencing_token() == *token
        })
        .count();
    drop(sampling);
    let most = most.load(Ordering::Relaxed);
    println!(
        "steady 15 s: at least {least} of {RESOURCES} led at every look, {kept} kept their term; \
         at most {most} connections to the agent (cap {})",
        2 * MAX_CONNECTIONS
    );
    join_all(pairs.iter().flatten().map(|e| e.stop())).await;

    assert_eq!(least, RESOURCES, "some resources lost their leader");
    assert_eq!(kept, RESOURCES, "some terms ended during the steady window");
    assert!(
        most > 0,
        "no connection to the agent was ever seen: the count is broken"
    );
    assert!(
        most <= 2 * MAX_CONNECTIONS,
        "{most} connections to the agent, more than the two factories' max_connections ({MAX_CONNECTIONS} each)"
    );
}
