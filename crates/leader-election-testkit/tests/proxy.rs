//! Behaviour of the fault-injecting TCP proxy against a loopback echo server.
//!
//! These tests use real sockets and real time. The short timeouts only decide
//! whether bytes arrived at all; they are fault checks, not performance claims.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use leader_election_testkit::proxy::{Fault, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Long enough that a proxy which forwards would have delivered on loopback.
const SILENCE: Duration = Duration::from_millis(200);
/// Upper bound for things that must happen "at once"; generous for slow CI.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn start_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo server address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn start_proxy() -> FaultProxy {
    let upstream = start_echo_server().await;
    FaultProxy::start(upstream).await.expect("start proxy")
}

async fn connect(proxy: &FaultProxy) -> TcpStream {
    TcpStream::connect(proxy.local_addr())
        .await
        .expect("connect to proxy")
}

async fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.expect("write");
    let mut reply = vec![0u8; message.len()];
    timeout(PROMPTLY, stream.read_exact(&mut reply))
        .await
        .expect("echo arrives")
        .expect("read echo");
    reply
}

/// True when the connection reports EOF or an error, i.e. it was closed.
async fn is_closed_promptly(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(PROMPTLY, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// True when nothing arrives on `stream` for the silence window (a black
/// hole); any byte, end of stream or error is not silence.
async fn is_silent(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    timeout(SILENCE, stream.read(&mut buf)).await.is_err()
}

#[tokio::test]
async fn pass_through_forwards_bytes_both_ways() {
    let proxy = start_proxy().await;
    assert_eq!(proxy.fault(), Fault::PassThrough);

    let mut stream = connect(&proxy).await;

    assert_eq!(echo(&mut stream, b"ping").await, b"ping");
    assert_eq!(echo(&mut stream, b"pong").await, b"pong");
}

#[tokio::test]
async fn black_hole_silences_open_connection_without_closing_it() {
    let proxy = start_proxy().await;
    let mut stream = connect(&proxy).await;
    assert_eq!(echo(&mut stream, b"before").await, b"before");

    proxy.set_fault(Fault::BlackHole);
    stream
        .write_all(b"into the void")
        .await
        .expect("writes are accepted");

    assert!(is_silent(&mut stream).await, "expected silence");
}

#[tokio::test]
async fn black_hole_holds_new_connections_open_and_silent() {
    let proxy = start_proxy().await;
    proxy.set_fault(Fault::BlackHole);

    let mut stream = connect(&proxy).await;
    stream
        .write_all(b"anyone?")
        .await
        .expect("writes are accepted");

    assert!(is_silent(&mut stream).await, "expected silence");
}

#[tokio::test]
async fn open_connection_resumes_after_black_hole_and_loses_bytes_sent_during_it() {
    let proxy = start_proxy().await;
    let mut stream = connect(&proxy).await;
    assert_eq!(echo(&mut stream, b"before").await, b"before");

    proxy.set_fault(Fault::BlackHole);
    stream
        .write_all(b"lost")
        .await
        .expect("writes are accepted");
    // Waiting for the silence also gives the proxy time to read and discard
    // "lost" before the fault is lifted.
    assert!(is_silent(&mut stream).await);

    proxy.set_fault(Fault::PassThrough);

    assert_eq!(echo(&mut stream, b"after").await, b"after");
}

#[tokio::test]
async fn connection_accepted_during_black_hole_works_once_lifted() {
    let proxy = start_proxy().await;
    proxy.set_fault(Fault::BlackHole);
    let mut stream = connect(&proxy).await;
    assert!(is_silent(&mut stream).await);

    proxy.set_fault(Fault::PassThrough);

    assert_eq!(echo(&mut stream, b"hello").await, b"hello");
}

#[tokio::test]
async fn reset_closes_open_connections_at_once() {
    let proxy = start_proxy().await;
    let mut active = connect(&proxy).await;
    assert_eq!(echo(&mut active, b"hi").await, b"hi");
    proxy.set_fault(Fault::BlackHole);
    let mut held = connect(&proxy).await;
    // Let the proxy accept `held` before the reset.
    assert!(is_silent(&mut held).await);

    proxy.set_fault(Fault::Reset);

    assert!(
        is_closed_promptly(&mut active).await,
        "active connection still open"
    );
    assert!(
        is_closed_promptly(&mut held).await,
        "black-holed connection still open"
    );
}

#[tokio::test]
async fn reset_refuses_new_connections_at_once() {
    let proxy = start_proxy().await;
    proxy.set_fault(Fault::Reset);

    // The kernel may complete the handshake before the proxy resets it, so
    // either the connect fails or the connection closes right away.
    if let Ok(mut stream) = TcpStream::connect(proxy.local_addr()).await {
        assert!(
            is_closed_promptly(&mut stream).await,
            "new connection stayed open"
        );
    }
}

#[tokio::test]
async fn new_connections_work_again_after_reset_is_lifted() {
    let proxy = start_proxy().await;
    proxy.set_fault(Fault::Reset);
    if let Ok(mut refused) = TcpStream::connect(proxy.local_addr()).await {
        assert!(is_closed_promptly(&mut refused).await);
    }

    proxy.set_fault(Fault::PassThrough);

    let mut stream = connect(&proxy).await;
    assert_eq!(echo(&mut stream, b"back").await, b"back");
}

#[tokio::test]
async fn latency_delays_each_direction_by_at_least_the_latency() {
    let latency = Duration::from_millis(100);
    let proxy = start_proxy().await;
    let mut stream = connect(&proxy).await;
    proxy.set_fault(Fault::Latency(latency));

    let started = Instant::now();
    assert_eq!(echo(&mut stream, b"slow").await, b"slow");
    let round_trip = started.elapsed();

    assert!(
        round_trip >= 2 * latency,
        "round trip {round_trip:?} is shorter than the latency both ways"
    );
}

#[tokio::test]
async fn connections_total_counts_every_accepted_client() {
    let proxy = start_proxy().await;
    let mut first = connect(&proxy).await;
    let mut second = connect(&proxy).await;
    echo(&mut first, b"1").await;
    echo(&mut second, b"2").await;

    assert_eq!(proxy.connections_total(), 2);
}

#[tokio::test]
async fn handle_switches_faults_from_another_task() {
    let proxy = start_proxy().await;
    let handle = proxy.handle();

    tokio::spawn(async move { handle.set_fault(Fault::BlackHole) })
        .await
        .expect("fault task");

    assert_eq!(proxy.fault(), Fault::BlackHole);
    let mut stream = connect(&proxy).await;
    stream.write_all(b"x").await.expect("writes are accepted");
    assert!(is_silent(&mut stream).await);
}

async fn wait_for_alive_tasks(expected: usize) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    let _ = timeout(PROMPTLY, async {
        while metrics.num_alive_tasks() != expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    metrics.num_alive_tasks()
}

#[tokio::test]
async fn shutdown_closes_connections_and_leaves_no_tasks_behind() {
    let upstream = start_echo_server().await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let proxy = FaultProxy::start(upstream).await.expect("start proxy");
    let addr = proxy.local_addr();
    let mut open = connect(&proxy).await;
    assert_eq!(echo(&mut open, b"hi").await, b"hi");

    proxy.shutdown().await;

    assert!(
        is_closed_promptly(&mut open).await,
        "connection survived shutdown"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener survived shutdown"
    );
    // The echo server's per-connection task ends once the proxy's upstream
    // side closes, so the count returns to what it was before the proxy.
    assert_eq!(wait_for_alive_tasks(tasks_before).await, tasks_before);
}

#[tokio::test]
async fn dropping_the_proxy_closes_connections_and_leaves_no_tasks_behind() {
    let upstream = start_echo_server().await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let proxy = FaultProxy::start(upstream).await.expect("start proxy");
    let mut open = connect(&proxy).await;
    assert_eq!(echo(&mut open, b"hi").await, b"hi");

    drop(proxy);

    assert!(
        is_closed_promptly(&mut open).await,
        "connection survived drop"
    );
    assert_eq!(wait_for_alive_tasks(tasks_before).await, tasks_before);
}
