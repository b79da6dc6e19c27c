//! A minimal HTTP responder for probes, on a plain Tokio `TcpListener` (no
//! web framework): `GET /healthz` answers `200 ok` while
//! [`LeaderElection::healthz`] is healthy and `503` with the reason when it
//! is not; `GET /leader` shows [`LeaderElection::watch_leadership`]'s state.
//! Used by `examples/healthz.rs` and its test.

use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::LeaderElection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves probe requests on `listener` for `election` until the task is
/// dropped. `tolerance` is how long past its deadline a leader may be before
/// `/healthz` fails (client-go's `HealthzAdaptor` timeout).
pub async fn serve(listener: TcpListener, election: Arc<dyn LeaderElection>, tolerance: Duration) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let election = Arc::clone(&election);
        tokio::spawn(async move {
            // A probe that hangs up early is not our problem.
            let _ = answer(stream, election.as_ref(), tolerance).await;
        });
    }
}

/// Reads one request's head and writes the answer.
async fn answer(
    mut stream: TcpStream,
    election: &dyn LeaderElection,
    tolerance: Duration,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/healthz" => match election.healthz(tolerance) {
            Ok(()) => ("200 OK", "ok\n".to_owned()),
            Err(unhealthy) => ("503 Service Unavailable", format!("{unhealthy}\n")),
        },
        "/leader" => (
            "200 OK",
            format!("{:?}\n", *election.watch_leadership().borrow()),
        ),
        _ => ("404 Not Found", "try /healthz or /leader\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// `GET path` on `address`, for the example's test and demo: the status
/// code and the body.
pub async fn get(address: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}
