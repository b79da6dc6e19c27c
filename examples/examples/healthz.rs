//! A `/healthz` endpoint for liveness and readiness probes, wired to
//! [`LeaderElection::healthz`] (client-go's `HealthzAdaptor`), plus
//! `/leader` showing [`LeaderElection::watch_leadership`].
//!
//! ```text
//! cargo run -p examples --example healthz        # serves on 127.0.0.1:8080
//! curl -i localhost:8080/healthz                 # 200 ok
//! curl localhost:8080/leader                     # Leading { fencing_token: .. }
//! ```
//!
//! A Kubernetes liveness probe on `/healthz` restarts the Pod when the
//! election's engine has failed or a leader is overdue on renewal by more
//! than the tolerance (here 10 s).

use std::sync::Arc;
use std::time::Duration;

use examples::{demo_options, init_tracing, stamp};
use leader_election_abstractions::{LeaderElection, LeaderElectionFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), demo_options()?)?;
    let election: Arc<dyn LeaderElection> = factory.create_election("healthz-demo", Some("me"))?;
    election.start().await?;
    let address = std::env::var("HEALTHZ_ADDRESS").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "{} serving /healthz and /leader on http://{address}",
        stamp()
    );
    tokio::select! {
        () = examples::healthz::serve(listener, Arc::clone(&election), Duration::from_secs(10)) => {}
        _ = tokio::signal::ctrl_c() => println!("{} stopping", stamp()),
    }
    election.stop().await?;
    Ok(())
}
