//! `consul <resources>`: elections per process against the Consul agent of
//! `CONSUL_HTTP_ADDR` (`cargo xtask servers up consul`), default options
//! and the agent's default limits.

use std::time::Duration;

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_consul::ConsulLeaderElectionFactory;

pub(crate) fn command(args: &[String]) -> Result<(), String> {
    let resources = crate::resources(args)?;
    let window = Duration::from_secs(crate::flag(args, "--window", 10u64)?);
    if std::env::var_os("CONSUL_HTTP_ADDR").is_none() {
        return Err("CONSUL_HTTP_ADDR is not set: run `cargo xtask servers up consul` and source its env file".into());
    }
    let runtime = crate::runtime()?;
    let factory = |id: &str| {
        let options = LeaderElectionOptions::builder()
            .instance_id(id)
            .build()
            .map_err(|e| e.to_string())?;
        // Built inside the runtime: the HTTP client may need it.
        let _guard = runtime.enter();
        ConsulLeaderElectionFactory::from_env(options).map_err(|e| e.to_string())
    };
    let replicas = [factory("replica-a")?, factory("replica-b")?];
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prefix = format!("bench-{run}-");
    // The process's open sockets (all of them to the agent: it talks to
    // nothing else).
    let sockets = crate::process::SocketSampler::start();
    let cap = replicas
        .iter()
        .map(|f| f.config().max_connections)
        .sum::<usize>();
    let measured = crate::elections::measure(
        "consul", &runtime, replicas, &prefix, resources, window, None,
    );
    let most = sockets.most();
    println!(
        "consul, {resources} resources x 2 candidates: at most {most} sockets open at once \
         (all to the agent) (the two factories' max_connections: {cap})"
    );
    crate::result(&[
        ("section", "connections".to_owned()),
        ("backend", "consul".to_owned()),
        ("resources", resources.to_string()),
        ("most", most.to_string()),
        ("cap", cap.to_string()),
    ]);
    measured
}
