//! The `/healthz` example's responder over a real election (in-memory
//! provider): 200 while healthy, 503 with the reason once the election's
//! engine has failed. The failure is real, not faked: the election runs on
//! a runtime of its own, which the test shuts down, dropping the engine task
//! (as when an application's runtime dies under it).

use std::sync::Arc;
use std::time::Duration;

use examples::healthz::{get, serve};
use leader_election_abstractions::{LeaderElection, LeaderElectionFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};

#[test]
fn healthz_answers_200_while_healthy_and_503_once_the_engine_has_failed() {
    let factory = InMemoryLeaderElectionFactory::new(
        InMemoryStore::new(),
        examples::demo_options().expect("options"),
    )
    .expect("factory");
    let election: Arc<dyn LeaderElection> = factory
        .create_election("healthz-test", Some("me"))
        .expect("election");
    let engine_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("engine runtime");
    let probe_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("probe runtime");
    engine_runtime.block_on(async {
        election.start().await.expect("start");
        // A guard against a hang only.
        tokio::time::timeout(Duration::from_secs(60), election.wait_for_leadership())
            .await
            .expect("leads within a minute")
            .expect("leads");
    });
    let address = probe_runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(serve(
            listener,
            Arc::clone(&election),
            Duration::from_secs(10),
        ));
        address
    });
    let (code, body) = probe_runtime
        .block_on(get(address, "/healthz"))
        .expect("GET /healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    drop(engine_runtime);

    let (code, body) = probe_runtime
        .block_on(get(address, "/healthz"))
        .expect("GET /healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("engine failed"), "{body}");
    let (code, body) = probe_runtime
        .block_on(get(address, "/leader"))
        .expect("GET /leader");
    assert_eq!(code, 200);
    assert!(body.starts_with("Stopped { error: Some("), "{body}");
}
