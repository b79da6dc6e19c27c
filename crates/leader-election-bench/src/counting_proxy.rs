//! A counting loopback proxy for HTTP/1.1: forwards every byte between its
//! clients and one upstream address and counts the requests, each when its
//! answer starts to arrive (so a blocking query counts when it returns, not
//! when it is sent), by kind (`PUT session/renew`, `GET kv (blocking)`,
//! `PUT txn`, ...).
//!
//! Exact for clients that wait for an answer before sending the next
//! request on a connection (no pipelining), which holds for reqwest and
//! Go's `net/http`: request heads and bodies (`Content-Length` or chunked)
//! are parsed, answers are passed on unparsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests answered so far, by kind.
pub(crate) type Counts = BTreeMap<String, u64>;

/// A running proxy; it stops with the runtime it was started on.
pub(crate) struct CountingProxy {
    /// Where clients connect.
    pub(crate) address: SocketAddr,
    counts: Arc<Mutex<Counts>>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("counting proxy: bind: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("counting proxy: {e}"))?;
        let counts = Arc::new(Mutex::new(Counts::new()));
        let shared = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, counts).await;
                    }
                });
            }
        });
        Ok(Self { address, counts })
    }

    /// The requests answered so far, by kind.
    pub(crate) fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }
}

/// The guard of `mutex`, poisoned or not (a count is all it holds).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The requests of one connection: the one sent and not yet answered.
async fn relay(client: TcpStream, server: TcpStream, counts: Arc<Mutex<Counts>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let pending: Arc<Mutex<Option<String>>> = Arc::default();
    let sent = Arc::clone(&pending);
    let upstream = async move {
        let mut parser = RequestParser::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for kind in parser.feed(&buffer[..n]) {
                *lock(&sent) = Some(kind);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The answer to the request sent last starts (or goes on).
            if let Some(kind) = lock(&pending).take() {
                *lock(&counts).entry(kind).or_default() += 1;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Splits a client's byte stream into requests.
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    body: Body,
}

#[derive(Default)]
enum Body {
    /// Reading a request head.
    #[default]
    None,
    /// This many body bytes still to pass.
    Length(usize),
    /// A chunked body: the chunk-size line read so far.
    ChunkSize(Vec<u8>),
    /// Inside a chunk: its bytes and the CRLF after it still to pass.
    Chunk(usize),
    /// After the last (empty) chunk: the trailer lines until an empty one.
    Trailer(Vec<u8>),
}

impl RequestParser {
    /// Passes `bytes` through the parser; returns the kinds of the
    /// requests whose heads were completed.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut kinds = Vec::new();
        while !bytes.is_empty() {
            match &mut self.body {
                Body::None => {
                    self.head.push(bytes[0]);
                    bytes = &bytes[1..];
                    if self.head.ends_with(b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&self.head).into_owned();
                        self.head.clear();
                        kinds.push(kind(&head));
                        self.body = body_of(&head);
                    }
                }
                Body::Length(left) => {
                    let take = (*left).min(bytes.len());
                    *left -= take;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.body = Body::None;
                    }
                }
                Body::ChunkSize(line) => {
                    line.push(bytes[0]);
                    bytes = &bytes[1..];
                    if line.ends_with(b"\r\n") {
                        let text = String::from_utf8_lossy(line);
                        let size = text.trim().split(';').next().unwrap_or("0");
                        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                        self.body = if size == 0 {
                            Body::Trailer(Vec::new())
                        } else {
                            Body::Chunk(size + 2)
                        };
                    }
                }
                Body::Chunk(left) => {
                    let take = (*left).min(bytes.len());
                    *left -= take;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.body = Body::ChunkSize(Vec::new());
                    }
                }
                Body::Trailer(line) => {
                    line.push(bytes[0]);
                    bytes = &bytes[1..];
                    if line.ends_with(b"\r\n") {
                        if line.len() == 2 {
                            self.body = Body::None;
                        } else {
                            line.clear();
                        }
                    }
                }
            }
        }
        kinds
    }
}

/// How the body of the request with `head` is framed.
fn body_of(head: &str) -> Body {
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Body::ChunkSize(Vec::new());
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(0) | None => Body::None,
        Some(n) => Body::Length(n),
    }
}

/// A request's kind from its head: the method and the Consul endpoint
/// (`kv`, `txn`, `session/renew`, ...), `(blocking)` for a query with
/// `index=`, `(acquire)` / `(release)` for lock writes.
fn kind(head: &str) -> String {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("?");
    let target = parts.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.trim_start_matches("/v1/");
    let endpoint = if path.starts_with("kv/") {
        "kv".to_owned()
    } else {
        // `session/renew/<id>` → `session/renew`.
        path.split('/').take(2).collect::<Vec<_>>().join("/")
    };
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let detail = if has("index") {
        " (blocking)"
    } else if has("acquire") {
        " (acquire)"
    } else if has("release") {
        " (release)"
    } else {
        ""
    };
    format!("{method} {endpoint}{detail}")
}

#[cfg(test)]
mod tests {
    use super::RequestParser;

    #[test]
    fn requests_are_split_and_named_whatever_the_reads() {
        let stream = b"PUT /v1/session/renew/abc HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
GET /v1/kv/p/?recurse&index=7&wait=60000ms HTTP/1.1\r\nHost: x\r\n\r\n\
PUT /v1/txn HTTP/1.1\r\ncontent-length: 5\r\n\r\n[1,2]\
PUT /v1/kv/p/.lock?acquire=s&flags=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /v1/kv/p/.lock?consistent= HTTP/1.1\r\n\r\n";
        let expected = [
            "PUT session/renew",
            "GET kv (blocking)",
            "PUT txn",
            "PUT kv (acquire)",
            "GET kv",
        ];
        for step in [1, 3, 7, stream.len()] {
            let mut parser = RequestParser::default();
            let kinds: Vec<String> = stream.chunks(step).flat_map(|c| parser.feed(c)).collect();
            assert_eq!(kinds, expected, "read {step} bytes at a time");
        }
    }
}
