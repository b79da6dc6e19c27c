//! Dependency-injection-style wiring, as in the seed README's
//! `ILeaderElectionFactory` section.
//!
//! - Library code (`mod reporting` below) depends on
//!   `leader_election_abstractions` alone and receives an
//!   `Arc<dyn LeaderElectionFactory>`; it never names a provider.
//! - The binary (`main`) picks the provider: here the in-memory one, with one
//!   store shared by two "processes" so they contend. Switching to Consul or
//!   Kubernetes changes `main` only.
//! - Options come from configuration (JSON via serde, human-readable
//!   durations) or from the builder; invalid ones are rejected with an error
//!   that names the field and the rule.
//!
//! About three seconds:
//!
//! ```text
//! cargo run -p examples --example factory_wiring
//! ```

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use examples::{elapsed, init_tracing, stamp};
use leader_election_abstractions::{LeaderElectionFactory, LeaderElectionOptions};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

/// Library code: knows only the abstractions (and the Tokio runtime it runs
/// on); it could live in its own crate with no provider dependency.
mod reporting {
    use std::sync::Arc;
    use std::time::Duration;

    use leader_election_abstractions::{LeaderElection, LeaderElectionFactory, Result};

    /// A report that exactly one instance of the service must produce.
    pub(crate) struct NightlyReport {
        election: Arc<dyn LeaderElection>,
    }

    impl NightlyReport {
        /// The candidate id comes from the factory's options (`instance_id`,
        /// by default the host name).
        pub(crate) fn new(factory: &Arc<dyn LeaderElectionFactory>) -> Result<Self> {
            Ok(Self {
                election: factory.create_election("nightly-report", None)?,
            })
        }

        /// Takes part for `rounds` rounds, producing the report while leading.
        pub(crate) async fn run(&self, rounds: u32) -> Result<u32> {
            let id = self.election.candidate_id();
            self.election.start().await?;
            let mut produced = 0;
            for _ in 0..rounds {
                if let Some(token) = self.election.fencing_token() {
                    println!("    {id} produces the report (fencing token {token})");
                    produced += 1;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            println!("    {id} shuts down");
            self.election.stop().await?;
            Ok(produced)
        }
    }
}

/// What a configuration file would hold for process A.
const CONFIG: &str = r#"{
    "lease_duration": "2s",
    "renew_interval": "500ms",
    "retry_interval": "300ms",
    "grace_period": "500ms",
    "instance_id": "reporting-a",
    "candidate_metadata": { "version": "1.0.0", "region": "eu-west-1" },
    "minimum_health_score": 0.75
}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_tracing();
    elapsed();

    // Process A: options from configuration. Missing fields take their
    // defaults; deserializing does not validate, so validate before use
    // (the factory validates too).
    let from_config: LeaderElectionOptions = serde_json::from_str(CONFIG)?;
    from_config.validate()?;
    println!("{} process A options from JSON: {from_config:?}", stamp());

    // Process B: the same settings through the builder, which validates.
    let from_builder = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(300))
        .grace_period(Duration::from_millis(500))
        .instance_id("reporting-b")
        .metadata("version", "1.0.0")
        .metadata("region", "eu-west-1")
        .minimum_health_score(0.75)
        .build()?;
    let same = LeaderElectionOptions {
        instance_id: from_config.instance_id.clone(),
        ..from_builder.clone()
    } == from_config;
    println!(
        "{} builder and JSON agree (apart from instance_id): {same}",
        stamp()
    );

    // Bad configuration fails up front and says which field breaks which rule.
    let too_slow = r#"{ "lease_duration": "2s", "renew_interval": "1500ms" }"#;
    if let Err(error) = serde_json::from_str::<LeaderElectionOptions>(too_slow)?.validate() {
        println!("{} rejected: {error}", stamp());
    }
    if let Err(error) = serde_json::from_str::<LeaderElectionOptions>(r#"{ "lease": "2s" }"#) {
        println!("{} rejected: {error}", stamp());
    }

    // The binary picks the provider. Both "processes" share one in-memory
    // store, so they contend; each has its own factory and options.
    let store = InMemoryStore::new();
    let factory_a: Arc<dyn LeaderElectionFactory> = Arc::new(InMemoryLeaderElectionFactory::new(
        store.clone(),
        from_config,
    )?);
    let factory_b: Arc<dyn LeaderElectionFactory> =
        Arc::new(InMemoryLeaderElectionFactory::new(store, from_builder)?);

    let report_a = reporting::NightlyReport::new(&factory_a)?;
    let report_b = reporting::NightlyReport::new(&factory_b)?;
    let (produced_a, produced_b) = tokio::join!(report_a.run(5), async {
        // B starts a moment later, so A leads first and B takes over when A leaves.
        tokio::time::sleep(Duration::from_millis(100)).await;
        report_b.run(10).await
    });
    let (produced_a, produced_b) = (produced_a?, produced_b?);
    println!();
    println!("reports produced: A {produced_a}, B {produced_b}");
    println!("total run time: {:.3}s", elapsed().as_secs_f64());
    if !same || produced_a == 0 || produced_b == 0 {
        return Err("expected both processes to produce the report in turn".into());
    }
    Ok(())
}
