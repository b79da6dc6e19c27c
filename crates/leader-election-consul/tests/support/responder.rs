//! `Responder`: a fake HTTP responder for the unit tests only (plain
//! `cargo test`), answering each request with whatever the test's closure
//! returns and recording every request it saw.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use leader_election_abstractions::{Election, LeaderElectionOptions, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulLeaseStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One request as the responder received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request line and headers, as sent.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The request line (`PUT /v1/kv/x?acquire=… HTTP/1.1`).
    pub fn line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// An HTTP/1.1 answer: status line, extra header lines, body.
pub fn reply(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 200 answer with `X-Consul-Index: 7`.
pub fn ok(body: &str) -> Vec<u8> {
    reply("200 OK", &["X-Consul-Index: 7"], body.as_bytes())
}

type Answer = dyn Fn(Recorded) -> BoxFuture<'static, Vec<u8>> + Send + Sync;

/// The fake responder.
pub struct Responder {
    /// Where it listens.
    pub address: SocketAddr,
    /// Every request seen, in order.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Responder {
    /// Starts answering each request with `answer(request)` (one request per connection).
    pub async fn start(answer: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::start_with(None, sync(answer)).await
    }

    /// A recording proxy in front of the real agent at `upstream`: each
    /// request goes to the agent unless `intercept` answers it itself.
    pub async fn proxy(
        upstream: SocketAddr,
        intercept: impl Fn(&Recorded) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        let client = reqwest::Client::new();
        let intercept = Arc::new(intercept);
        let answer = move |request: Recorded| {
            let (client, intercept) = (client.clone(), Arc::clone(&intercept));
            async move {
                if let Some(answer) = intercept(&request) {
                    return answer;
                }
                forward(&client, upstream, &request).await
            }
            .boxed()
        };
        Self::start_with(None, Box::new(answer)).await
    }

    /// Like [`start`](Self::start), over TLS with `acceptor`'s certificate.
    pub async fn start_tls(
        acceptor: tokio_rustls::TlsAcceptor,
        answer: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Some(acceptor), sync(answer)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>, answer: Box<Answer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let answer: Arc<Answer> = Arc::from(answer);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(socket, &seen, &*answer).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(socket).await {
                                serve(stream, &seen, &*answer).await;
                            }
                        }
                    }
                });
            }
        });
        Self { address, requests }
    }

    /// Answers the requests in turn with `responses` (cycling), each
    /// `"<status>|<body>"` or just a body for `200 OK`.
    pub async fn canned(responses: Vec<&'static str>) -> Self {
        let next = std::sync::atomic::AtomicUsize::new(0);
        Self::start(move |_| {
            let at = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let canned = responses[at % responses.len()];
            let (status, body) = canned.split_once('|').unwrap_or(("200 OK", canned));
            reply(status, &["X-Consul-Index: 7"], body.as_bytes())
        })
        .await
    }

    /// A snapshot of the requests seen so far.
    pub fn seen(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// The configuration for a client of this responder.
    pub fn config(&self) -> ConsulConfig {
        ConsulConfig {
            address: format!("http://{}", self.address),
            request_timeout: Duration::from_millis(500),
            ..Default::default()
        }
    }

    /// A factory for clients of this responder, with `unit_options()`.
    pub fn factory(&self) -> ConsulLeaderElectionFactory {
        ConsulLeaderElectionFactory::new(self.config(), unit_options()).expect("factory")
    }

    /// A health-based election of `jobs` for candidate `a` against this responder.
    pub fn election(&self) -> Election<ConsulLeaseStore> {
        election_of(&self.factory())
    }

    /// The first request whose request line starts with `prefix`.
    pub fn first(&self, prefix: &str) -> Option<Recorded> {
        self.seen()
            .into_iter()
            .find(|r| r.line().starts_with(prefix))
    }
}

/// A plain election of `jobs` for candidate `a` from `factory`.
pub fn plain_election_of(factory: &ConsulLeaderElectionFactory) -> Election<ConsulLeaseStore> {
    factory
        .election("jobs")
        .candidate_id("a")
        .build()
        .expect("election")
}

/// The error of one acquire attempt of candidate `a` on `jobs` against
/// `factory`'s agent (the test fails if the attempt succeeds).
pub async fn acquire_error(
    factory: &ConsulLeaderElectionFactory,
) -> leader_election_abstractions::Error {
    use leader_election_abstractions::LeaseStore as _;
    let claim = leader_election_abstractions::store::LeaseClaim {
        resource: "jobs".into(),
        candidate_id: "a".into(),
        lease_duration: Duration::from_secs(10),
        grace_period: Duration::from_secs(5),
        holder_metadata: Default::default(),
    };
    plain_election_of(factory)
        .store()
        .try_acquire(&claim)
        .await
        .expect_err("the answer is an error")
}

/// A health-based election of `jobs` for candidate `a` from `factory`.
pub fn election_of(factory: &ConsulLeaderElectionFactory) -> Election<ConsulLeaseStore> {
    factory
        .election("jobs")
        .candidate_id("a")
        .health_based()
        .build()
        .expect("election")
}

/// Options Consul accepts with its default `session_ttl_min`.
pub fn unit_options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(10))
        .renew_interval(Duration::from_secs(3))
        .retry_interval(Duration::from_millis(200))
        .instance_id("unit")
        .build()
        .expect("valid")
}

/// A synchronous answer as an [`Answer`].
fn sync(answer: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static) -> Box<Answer> {
    Box::new(move |request: Recorded| std::future::ready(answer(&request)).boxed())
}

/// Sends `request` on to the agent at `upstream` and returns its answer
/// (a 502 when the agent cannot be reached).
async fn forward(client: &reqwest::Client, upstream: SocketAddr, request: &Recorded) -> Vec<u8> {
    let mut parts = request.line().split(' ');
    let (method, target) = (parts.next().unwrap_or("GET"), parts.next().unwrap_or("/"));
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut call = client
        .request(method, format!("http://{upstream}{target}"))
        .body(request.body.clone());
    if let Some(token) = request.header("x-consul-token") {
        call = call.header("X-Consul-Token", token);
    }
    match call.send().await {
        Ok(response) => {
            let status = response.status();
            let index = response
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .map(|v| format!("X-Consul-Index: {v}"));
            let body = response.bytes().await.unwrap_or_default();
            let headers: Vec<&str> = index.iter().map(String::as_str).collect();
            reply(&status.to_string(), &headers, &body)
        }
        Err(error) => reply("502 Bad Gateway", &[], error.to_string().as_bytes()),
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    seen: &Mutex<Vec<Recorded>>,
    answer: &Answer,
) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    seen.lock().expect("lock").push(request.clone());
    let _ = socket.write_all(&answer(request).await).await;
    let _ = socket.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(socket: &mut S) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut request = Recorded {
        head,
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    request.body = body;
    Some(request)
}
