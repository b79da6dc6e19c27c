//! The connection cap and its warnings, against fake agents (for these
//! unit tests only): a factory never has more than `max_connections`
//! requests open however many elections it runs, says so when requests
//! queue, and names the agent's per-client limit when it answers 429.
//! Runs in plain `cargo test`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use leader_election_abstractions::{LeaderElection, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use support::responder::{reply, unit_options, Responder};

const SESSION: &str = "0e4a0dbc-5f3d-4f5a-9a8e-2b7c1d6e9f01";

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut *self.0.lock().expect("lock"), buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

/// An agent that holds every request `hold` before answering it (a session
/// for session creates, `true` otherwise), one request per connection,
/// counting the requests it holds at once.
async fn slow_agent(hold: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let most_seen = Arc::clone(&most);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (open, most) = (Arc::clone(&open), Arc::clone(&most));
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(hold).await;
                let body = if request.starts_with(b"PUT /v1/session/create") {
                    format!(r#"{{"ID":"{SESSION}"}}"#)
                } else {
                    "true".to_owned()
                };
                // Counted out before the answer leaves, so the client cannot
                // start another request on this slot while it still counts.
                open.fetch_sub(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(&reply("200 OK", &["Connection: close"], body.as_bytes()))
                    .await;
            });
        }
    });
    (address, most_seen)
}

#[tokio::test]
async fn a_factory_never_has_more_requests_open_than_max_connections_and_warns_when_they_queue() {
    let logs = LogBuffer::default();
    let _guard = logs.capture();
    let (address, most) = slow_agent(Duration::from_millis(200)).await;
    let config = ConsulConfig {
        address: format!("http://{address}"),
        max_connections: 3,
        ..ConsulConfig::default()
    };
    let factory = ConsulLeaderElectionFactory::new(config, unit_options()).expect("factory");
    let elections: Vec<_> = (0..12)
        .map(|i| {
            factory
                .election(&format!("shard-{i}"))
                .candidate_id("a")
                .build()
                .expect("election")
        })
        .collect();
    // Each start creates its lock session: twelve requests at once.
    let started = join_all(elections.iter().map(|e| e.start())).await;
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    let most = most.load(Ordering::SeqCst);
    println!("at most {most} requests open at once");
    assert!(
        most >= 2,
        "the requests did not overlap ({most}): the test shows nothing"
    );
    assert!(
        most <= 3,
        "{most} requests open at once, more than max_connections (3)"
    );
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("max_connections"),
        "no warning naming max_connections: {text}"
    );
    drop(join_all(elections.iter().map(|e| e.stop())).await);
}

#[tokio::test]
async fn a_429_from_the_agent_is_a_warning_naming_its_per_client_limit_at_most_every_30_s() {
    let logs = LogBuffer::default();
    let _guard = logs.capture();
    let agent = Responder::start(|_| {
        reply(
            "429 Too Many Requests",
            &[],
            b"Your IP is issuing too many concurrent connections, please rate limit your calls",
        )
    })
    .await;
    let warnings = || logs.text().matches("http_max_conns_per_client").count();
    let election = |factory: &ConsulLeaderElectionFactory, id: &str| {
        factory
            .election("jobs")
            .candidate_id(id)
            .build()
            .expect("election")
    };
    let first = election(&agent.factory(), "a");
    first.start().await.expect("start");
    // The engine retries every 200 ms or so: several refusals, one warning.
    let mut waited = Duration::ZERO;
    while agent.seen().len() < 4 && waited < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let refusals = agent.seen().len();
    assert!(refusals >= 4, "only {refusals} requests in {waited:?}");
    assert!(!first.is_leader());
    assert_eq!(
        warnings(),
        1,
        "one warning per factory per 30 s: {}",
        logs.text()
    );
    assert!(logs.text().contains("WARN"), "{}", logs.text());
    // Another factory warns on its own.
    let second = election(&agent.factory(), "b");
    second.start().await.expect("start");
    let mut waited = Duration::ZERO;
    while warnings() < 2 && waited < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(warnings(), 2, "{}", logs.text());
    let _ = first.stop().await;
    let _ = second.stop().await;
}
