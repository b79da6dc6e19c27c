//! Many elections in one process against one real agent with its default
//! limits (`http_max_conns_per_client` = 200): more elections than the
//! agent accepts connections from this address, all leading steadily,
//! while the process's sockets (all connections to the agent) stay within
//! the factories' `max_connections`. Run with `cargo xtask integration consul`.

mod support;

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

/// The sockets this process holds open: an upper bound of its connections
/// to the agent (it talks to nothing else), cheap enough to count every
/// 20 ms (`/proc/self/net/tcp` lists every socket of the host and takes
/// tens of milliseconds to read).
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
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

    // Count this process's sockets throughout, on a
    // thread of its own (ended by the guard, even when an assertion fails).
    let most = Arc::new(AtomicUsize::new(0));
    let sampling = StopOnDrop(Arc::new(AtomicBool::new(true)));
    {
        let (most, sampling) = (Arc::clone(&most), Arc::clone(&sampling.0));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                most.fetch_max(open_sockets(), Ordering::Relaxed);
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
        "{elected} of {RESOURCES} resources led after {:.1} s; so far at most {} sockets open",
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
         at most {most} sockets open, all to the agent (cap {})",
        2 * MAX_CONNECTIONS
    );
    join_all(pairs.iter().flatten().map(|e| e.stop())).await;

    assert_eq!(least, RESOURCES, "some resources lost their leader");
    assert_eq!(kept, RESOURCES, "some terms ended during the steady window");
    assert!(most > 0, "no socket was ever seen: the count is broken");
    // Requests in flight never exceed max_connections; sockets may pass it
    // by the connections hyper's pool finishes opening for a request that
    // meanwhile got a reused one (kept idle, at most max_connections per
    // factory), and by sockets the agent closed that are not yet dropped.
    assert!(
        most <= 2 * 2 * MAX_CONNECTIONS,
        "{most} sockets open to the agent, more than twice the two factories' \
         max_connections ({MAX_CONNECTIONS} each)"
    );
}
