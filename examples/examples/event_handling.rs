//! Event handling, as in the seed README's `LeaderAwareService`.
//!
//! The seed's three events map to callbacks and to a stream:
//! - node-a registers callbacks: `on_became_leader` (the seed's
//!   `OnBecameLeader`, with the fencing token), `on_lost_leadership`
//!   (`OnLostLeadership`, with the reason) and `on_leader_changed`
//!   (`OnLeaderChanged`, old and new leader);
//! - node-b reads `subscribe()`, a `Stream` of every event in order, including
//!   the `Lagged` notice a slow subscriber gets instead of blocking the engine.
//!
//! The story: node-a leads; it resigns (releases the lease and stays out of
//! the race for one lease duration), node-b takes over at once; node-b stops,
//! and node-a takes over when its resignation hold-off ends. About four
//! seconds:
//!
//! ```text
//! cargo run -p examples --example event_handling
//! ```

use std::error::Error;
use std::time::Duration;

use examples::{demo_options, elapsed, init_tracing, stamp};
use futures_util::StreamExt;
use leader_election_abstractions::{LeaderElectionEvent, LeaderElectionExt, LeaderElectionFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

const RESOURCE: &str = "my-resource";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_tracing();
    elapsed();
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), demo_options()?)?;
    let node_a = factory.create_election(RESOURCE, Some("node-a"))?;
    let node_b = factory.create_election(RESOURCE, Some("node-b"))?;

    // Callbacks run on a background task, in event order, until the returned
    // handle is dropped (or, after `detach()`, until the election stops).
    let became = node_a.on_became_leader(|token| {
        println!(
            "{} node-a callback: became leader, fencing token {token}",
            stamp()
        );
        // Initialise leader-only resources: start jobs, take exclusive locks...
    });
    let lost = node_a.on_lost_leadership(|reason| {
        println!("{} node-a callback: lost leadership ({reason})", stamp());
        // Clean up leader-only resources: stop jobs, drain queues...
    });
    let changed = node_a.on_leader_changed(|old, new| {
        println!(
            "{} node-a callback: leader changed {} -> {}",
            stamp(),
            old.unwrap_or("none"),
            new.unwrap_or("none")
        );
        // Update routing, caches or monitoring.
    });

    // The stream form: one `match` over every event.
    let mut events = node_b.subscribe();
    let stream_reader = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                LeaderElectionEvent::BecameLeader { fencing_token, .. } => {
                    println!(
                        "{} node-b stream:   became leader, fencing token {fencing_token}",
                        stamp()
                    );
                }
                LeaderElectionEvent::LostLeadership { reason, .. } => {
                    println!("{} node-b stream:   lost leadership ({reason})", stamp());
                }
                LeaderElectionEvent::LeaderChanged {
                    old_leader_id,
                    new_leader_id,
                    ..
                } => println!(
                    "{} node-b stream:   leader changed {} -> {}",
                    stamp(),
                    old_leader_id.as_deref().unwrap_or("none"),
                    new_leader_id.as_deref().unwrap_or("none")
                ),
                LeaderElectionEvent::Lagged { missed } => {
                    // Events were dropped for this slow reader; the current
                    // state is always one call away.
                    println!("{} node-b stream:   missed {missed} events", stamp());
                }
                other => println!("{} node-b stream:   {other:?}", stamp()),
            }
        }
        println!("{} node-b stream:   ended (node-b stopped)", stamp());
    });

    node_a.start().await?;
    node_a.wait_for_leadership().await?;
    node_b.start().await?;

    tokio::time::sleep(Duration::from_millis(800)).await;
    println!("{} ==> node-a resigns", stamp());
    node_a.resign().await?;

    tokio::time::sleep(Duration::from_millis(700)).await;
    println!("{} ==> node-b stops", stamp());
    node_b.stop().await?;

    // node-a takes over when its hold-off (one lease duration) has passed.
    let guard =
        tokio::time::timeout(Duration::from_secs(10), node_a.wait_for_leadership()).await??;
    println!(
        "{} ==> node-a leads again with fencing token {}",
        stamp(),
        guard.fencing_token()
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("{} ==> node-a stops", stamp());
    node_a.stop().await?;

    // After `stop` no more events come; wait until every callback and the
    // stream reader have seen the last ones.
    became.finished().await;
    lost.finished().await;
    changed.finished().await;
    stream_reader.await?;
    println!("total run time: {:.3}s", elapsed().as_secs_f64());
    Ok(())
}
