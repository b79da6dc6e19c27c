//! Pattern 2 of the seed README: active-passive failover.
//!
//! Two nodes run the same service; the leader is active (serves requests),
//! the other is a passive standby. `run_while_leader` replaces the seed's
//! `OnBecameLeader`/`OnLostLeadership` handlers and their cancellation token:
//! it waits for leadership, runs the active work with the term's
//! `LeadershipGuard`, and drops (cancels) that work when leadership ends —
//! at the latest at the term's local deadline, even if the engine could not
//! tell the store anything.
//!
//! The story: node-1 leads; then it is cut off from the store (a network
//! partition, simulated with `InMemoryStore::set_fault`). It cannot renew, so
//! its active work is cancelled at its local deadline, and node-2 takes over
//! once the lease has expired plus the grace period: the two are never active
//! at once. The partition heals, node-1 becomes the standby; node-2 stops
//! gracefully and node-1 takes over at once. About five seconds:
//!
//! ```text
//! cargo run -p examples --example active_passive
//! ```

use std::convert::Infallible;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use examples::{demo_options, elapsed, init_tracing, stamp};
use leader_election_abstractions::{
    LeaderElection, LeaderElectionExt, LeaderElectionFactory, LeadershipGuard, RunOutcome,
};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore, StoreFault};

const RESOURCE: &str = "active-passive";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_tracing();
    elapsed();
    let store = InMemoryStore::new();
    let factory = InMemoryLeaderElectionFactory::new(store.clone(), demo_options()?)?;
    let active = Arc::new(ActiveCount::default());

    let node_1 = factory.create_election(RESOURCE, Some("node-1"))?;
    let node_2 = factory.create_election(RESOURCE, Some("node-2"))?;
    let service_1 = tokio::spawn(active_passive_service(
        Arc::clone(&node_1),
        Arc::clone(&active),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let service_2 = tokio::spawn(active_passive_service(
        Arc::clone(&node_2),
        Arc::clone(&active),
    ));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    println!(
        "{} ==> partition: node-1 can no longer reach the store",
        stamp()
    );
    store.set_fault("node-1", Some(StoreFault::Hang));

    tokio::time::sleep(Duration::from_millis(2800)).await;
    println!("{} ==> partition healed", stamp());
    store.set_fault("node-1", None);

    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{} ==> stopping node-2 gracefully", stamp());
    node_2.stop().await?;

    tokio::time::sleep(Duration::from_millis(600)).await;
    println!("{} ==> stopping node-1", stamp());
    node_1.stop().await?;

    let terms_1 = service_1.await??;
    let terms_2 = service_2.await??;
    let most = active.most_at_once.load(Ordering::SeqCst);
    println!();
    println!("terms served: node-1 {terms_1}, node-2 {terms_2}; most nodes active at once: {most}");
    println!("total run time: {:.3}s", elapsed().as_secs_f64());
    if most > 1 || terms_1 != 2 || terms_2 != 1 {
        return Err(
            "expected node-1, node-2, node-1 to be active in turn, never two at once".into(),
        );
    }
    Ok(())
}

/// The seed's `ActivePassiveService`: become active whenever elected, go
/// passive when leadership ends, until the election stops.
async fn active_passive_service(
    election: Arc<dyn LeaderElection>,
    active: Arc<ActiveCount>,
) -> Result<u32, leader_election_abstractions::Error> {
    election.start().await?;
    let id = election.candidate_id().to_owned();
    let mut terms = 0;
    loop {
        let work = |guard| serve_while_active(id.clone(), guard, Arc::clone(&active));
        match election.run_while_leader(work).await {
            // The active work never finishes by itself; it ends by being cancelled.
            Ok(RunOutcome::Completed(never)) => match never {},
            Ok(RunOutcome::Ended(reason)) => {
                terms += 1;
                println!("{} {id} is passive again ({reason})", stamp());
            }
            Err(leader_election_abstractions::Error::Stopped) => return Ok(terms),
            Err(other) => return Err(other),
        }
    }
}

/// Leader-scoped work: runs until `run_while_leader` drops it.
async fn serve_while_active(
    id: String,
    guard: LeadershipGuard,
    active: Arc<ActiveCount>,
) -> Infallible {
    let token = guard.fencing_token();
    let _active = active.enter(&id, token.get());
    let mut request = 0u32;
    loop {
        request += 1;
        println!(
            "{} {id} serves request {request} (fencing token {token})",
            stamp()
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// Counts active nodes, to check that two are never active at once.
#[derive(Default)]
struct ActiveCount {
    now: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl ActiveCount {
    fn enter(self: &Arc<Self>, id: &str, token: u64) -> ActiveWork {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        println!("{} {id} ACTIVE with fencing token {token}", stamp());
        ActiveWork {
            id: id.to_owned(),
            count: Arc::clone(self),
        }
    }
}

/// Dropped when the active work is cancelled.
struct ActiveWork {
    id: String,
    count: Arc<ActiveCount>,
}

impl Drop for ActiveWork {
    fn drop(&mut self) {
        self.count.now.fetch_sub(1, Ordering::SeqCst);
        println!("{} {} active work cancelled", stamp(), self.id);
    }
}
