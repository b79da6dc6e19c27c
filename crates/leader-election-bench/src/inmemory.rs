//! `inmemory <resources>`: elections per process on the in-memory provider.

use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let resources = crate::resources(args)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 10u64)?);
    let runtime = crate::runtime()?;
    let store = InMemoryStore::new();
    let factory = |id: &str| {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        InMemoryLeaderElectionFactory::new(store.clone(), options).map_err(|e| e.to_string())
    };
    let replicas = [factory("replica-a")?, factory("replica-b")?];
    crate::elections::measure(
        "in-memory",
        &runtime,
        replicas,
        "shard-",
        resources,
        window,
        None,
    )
}
