//! A fault-injecting TCP proxy for tests.
//!
//! Put a [`FaultProxy`] between a provider and its backend (Consul agent,
//! kube-apiserver) and switch [`Fault`]s at run time to check how an election
//! behaves when the backend is slow, silent or drops connections. The proxy
//! forwards raw bytes, so TLS passes through untouched.
//!
//! A fault applies to new *and* already-open connections as soon as it is set.

use std::collections::VecDeque;
use std::future::pending;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, sleep_until, Instant};

/// Read size per chunk; also the unit that [`Fault::Latency`] delays.
const CHUNK_SIZE: usize = 16 * 1024;

/// Bounds the bytes a latency-delayed direction buffers (`CHUNK_SIZE` each),
/// so a fast sender meets back-pressure instead of growing memory.
const MAX_CHUNKS_IN_FLIGHT: usize = 64;

/// What the proxy does to the traffic passing through it.
///
/// Set with [`FaultProxy::set_fault`] or [`FaultHandle::set_fault`]; the new
/// fault takes effect on open connections and on those accepted later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward bytes both ways unchanged.
    #[default]
    PassThrough,
    /// Deliver each chunk this long after it was read, in both directions.
    ///
    /// Chunks are pipelined, so this models a slow link rather than a slow
    /// peer: a stream of chunks is shifted by the latency, not multiplied by it.
    Latency(Duration),
    /// Accept and hold connections, read and discard everything in both
    /// directions, forward nothing and close nothing.
    ///
    /// When the fault is lifted, open connections resume: bytes sent after
    /// that flow again, bytes sent during the black hole are lost, and a close
    /// that happened during it is forwarded then. A connection accepted during
    /// the black hole connects upstream only when it is lifted.
    BlackHole,
    /// Reset every open connection at once (TCP RST) and reset new ones as
    /// soon as they are accepted.
    Reset,
}

#[derive(Debug)]
struct Shared {
    fault: watch::Sender<Fault>,
    connections_total: AtomicU64,
}

/// A cloneable handle that switches the fault of a [`FaultProxy`].
///
/// Hand it to another task that drives faults while the test body runs. It
/// does not keep the proxy alive: once the proxy is dropped, setting a fault
/// has no effect.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// Switches the proxy to `fault`, for open and new connections alike.
    pub fn set_fault(&self, fault: Fault) {
        // send_replace, not send: setting a fault must not fail just because
        // no connection is open at the moment.
        self.shared.fault.send_replace(fault);
        tracing::debug!(?fault, "fault proxy switched fault");
    }

    /// The fault in force now.
    pub fn fault(&self) -> Fault {
        *self.shared.fault.borrow()
    }

    /// How many client connections the proxy has accepted so far, including
    /// those it reset at once under [`Fault::Reset`].
    pub fn connections_total(&self) -> u64 {
        self.shared.connections_total.load(Ordering::Relaxed)
    }
}

/// A TCP proxy on `127.0.0.1` that forwards to one upstream address and
/// injects [`Fault`]s on demand.
///
/// Dropping the proxy, or awaiting [`FaultProxy::shutdown`], closes the
/// listener and every connection and ends all of the proxy's tasks.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use leader_election_testkit::proxy::{Fault, FaultProxy};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::{TcpListener, TcpStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // An upstream that sends one greeting to every client.
/// let upstream = TcpListener::bind("127.0.0.1:0").await?;
/// let upstream_addr = upstream.local_addr()?;
/// tokio::spawn(async move {
///     while let Ok((mut stream, _)) = upstream.accept().await {
///         let _ = stream.write_all(b"hello").await;
///         let _ = stream.shutdown().await;
///     }
/// });
///
/// let proxy = FaultProxy::start(upstream_addr).await?;
/// let mut greeting = Vec::new();
/// TcpStream::connect(proxy.local_addr()).await?.read_to_end(&mut greeting).await?;
/// assert_eq!(greeting, b"hello");
///
/// proxy.set_fault(Fault::BlackHole);
/// let mut silent = TcpStream::connect(proxy.local_addr()).await?;
/// let mut byte = [0u8; 1];
/// let read = tokio::time::timeout(Duration::from_millis(100), silent.read(&mut byte)).await;
/// assert!(read.is_err(), "a black-holed connection neither delivers nor closes");
///
/// proxy.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    handle: FaultHandle,
    // Dropping the sender is the stop signal, so Drop needs no extra code.
    stop: Option<oneshot::Sender<()>>,
    listener_task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds `127.0.0.1` on a free port and starts forwarding every accepted
    /// connection to `upstream`, with [`Fault::PassThrough`].
    ///
    /// Must be called inside a Tokio runtime. The upstream is dialled per
    /// client connection; if it cannot be reached, that client is reset.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local_addr = listener.local_addr()?;
        let (fault, faults) = watch::channel(Fault::PassThrough);
        let shared = Arc::new(Shared {
            fault,
            connections_total: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let listener_task = tokio::spawn(run_listener(
            listener,
            upstream,
            Arc::clone(&shared),
            faults,
            stopped,
        ));
        tracing::debug!(%local_addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            local_addr,
            handle: FaultHandle { shared },
            stop: Some(stop),
            listener_task: Some(listener_task),
        })
    }

    /// The address clients connect to instead of the upstream.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A cloneable handle for switching faults from another task.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// Switches the proxy to `fault`, for open and new connections alike.
    pub fn set_fault(&self, fault: Fault) {
        self.handle.set_fault(fault);
    }

    /// The fault in force now.
    pub fn fault(&self) -> Fault {
        self.handle.fault()
    }

    /// How many client connections the proxy has accepted so far, including
    /// those it reset at once under [`Fault::Reset`].
    pub fn connections_total(&self) -> u64 {
        self.handle.connections_total()
    }

    /// Stops the proxy and waits until the listener is closed and every
    /// connection task has ended.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.listener_task.take() {
            // The listener task never panics; a JoinError can only mean the
            // runtime is shutting down, which stops the tasks anyway.
            let _ = task.await;
        }
    }
}

async fn run_listener(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    faults: watch::Receiver<Fault>,
    mut stopped: oneshot::Receiver<()>,
) {
    // Owning every connection task here means stopping this task stops them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    shared.connections_total.fetch_add(1, Ordering::Relaxed);
                    if *faults.borrow() == Fault::Reset {
                        tracing::debug!(%peer, "fault proxy reset a new connection");
                        abort_connection(client);
                    } else {
                        connections.spawn(serve_connection(client, upstream, faults.clone()));
                    }
                }
                Err(error) => {
                    // Accept errors are usually transient (EMFILE, a peer that
                    // gave up in the backlog); pausing avoids a hot loop.
                    tracing::debug!(%error, "fault proxy failed to accept");
                    sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
    tracing::debug!("fault proxy stopped");
}

/// Closes with RST rather than FIN, so the peer sees a reset like a crashed
/// or restarted server produces, not an orderly close.
fn abort_connection(stream: TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "fault proxy could not set zero linger; closing with FIN");
    }
    drop(stream);
}

async fn serve_connection(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    mut faults: watch::Receiver<Fault>,
) {
    let Some(mut upstream) = connect_when_allowed(&mut client, upstream_addr, &mut faults).await
    else {
        abort_connection(client);
        return;
    };
    // Chunks are forwarded as read; Nagle would add delay the test did not ask for.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let failure = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let both_ways = async {
            tokio::try_join!(
                pump(client_read, upstream_write, faults.clone()),
                pump(upstream_read, client_write, faults.clone()),
            )
        };
        let mut reset_watch = faults.clone();
        tokio::select! {
            result = both_ways => result.err(),
            () = reset_requested(&mut reset_watch) => {
                Some(io::Error::new(io::ErrorKind::ConnectionReset, "Fault::Reset"))
            }
        }
    };
    if let Some(error) = failure {
        // Whether the fault or one broken side ended it, resetting both sides
        // tells each peer what a direct connection would have told it.
        tracing::debug!(%error, "fault proxy reset a connection");
        abort_connection(client);
        abort_connection(upstream);
    }
}

/// Holds a client that arrived during a black hole until the fault lets
/// traffic through, then dials the upstream. `None` means reset the client.
async fn connect_when_allowed(
    client: &mut TcpStream,
    upstream_addr: SocketAddr,
    faults: &mut watch::Receiver<Fault>,
) -> Option<TcpStream> {
    let mut discard = vec![0u8; CHUNK_SIZE];
    let mut client_closed = false;
    loop {
        let fault = *faults.borrow_and_update();
        match fault {
            Fault::Reset => return None,
            Fault::BlackHole => {
                tokio::select! {
                    changed = faults.changed() => {
                        // The sender outlives the proxy's tasks, so this only
                        // fails while the proxy is stopping.
                        if changed.is_err() {
                            return None;
                        }
                    }
                    read = client.read(&mut discard), if !client_closed => match read {
                        Ok(0) => client_closed = true,
                        Ok(_) => {}
                        Err(_) => return None,
                    },
                }
            }
            Fault::PassThrough | Fault::Latency(_) => break,
        }
    }
    tokio::select! {
        connected = TcpStream::connect(upstream_addr) => match connected {
            Ok(upstream) => Some(upstream),
            Err(error) => {
                tracing::debug!(%error, upstream = %upstream_addr, "fault proxy could not reach upstream");
                None
            }
        },
        () = reset_requested(faults) => None,
    }
}

async fn reset_requested(faults: &mut watch::Receiver<Fault>) {
    if faults
        .wait_for(|fault| *fault == Fault::Reset)
        .await
        .is_err()
    {
        // The proxy is stopping; its JoinSet will end this task.
        pending::<()>().await;
    }
}

/// Forwards one direction, applying the fault in force when each chunk is
/// read and again when it is due, so a switch affects chunks in flight too.
async fn pump<R, W>(mut from: R, mut to: W, mut faults: watch::Receiver<Fault>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut in_flight: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut eof = false;
    loop {
        if eof && in_flight.is_empty() {
            // A close is traffic too: a black hole must not let the peer see it.
            let fault = faults
                .wait_for(|fault| *fault != Fault::BlackHole)
                .await
                .map(|fault| *fault);
            if matches!(fault, Ok(Fault::Reset) | Err(_)) {
                return pending().await;
            }
            return to.shutdown().await;
        }
        let next_due = in_flight.front().map(|(due, _)| *due);
        tokio::select! {
            // Deliver what is due before reading more, keeping memory bounded.
            biased;
            () = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                if let Some((_, chunk)) = in_flight.pop_front() {
                    if *faults.borrow() != Fault::BlackHole {
                        to.write_all(&chunk).await?;
                    }
                }
            }
            read = from.read(&mut buf), if !eof && in_flight.len() < MAX_CHUNKS_IN_FLIGHT => {
                let n = read?;
                if n == 0 {
                    eof = true;
                    continue;
                }
                let fault = *faults.borrow();
                match fault {
                    Fault::BlackHole | Fault::Reset => {}
                    Fault::PassThrough if in_flight.is_empty() => to.write_all(&buf[..n]).await?,
                    // Queued behind earlier chunks, never ahead, so bytes
                    // keep their order when the latency shrinks.
                    Fault::PassThrough => in_flight.push_back((Instant::now(), buf[..n].to_vec())),
                    Fault::Latency(latency) => {
                        in_flight.push_back((Instant::now() + latency, buf[..n].to_vec()));
                    }
                }
            }
        }
    }
}
