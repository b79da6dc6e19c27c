//! A seam for the deterministic simulation (feature `test-util`): the
//! client can hand its requests to an [`EtcdTransport`] instead of sending
//! them over HTTP with reqwest.
//!
//! Everything above the wire is unchanged: the same gateway requests are
//! built (paths, headers, JSON bodies), the same answers are read through
//! `reqwest::Response` (status, body, streamed watch messages, JSON
//! parsing), and the per-request timeouts still apply, on Tokio's clock.
//! Only the socket is replaced. A build without the feature has neither
//! the trait nor the field that holds it, so users' builds cannot differ.
//!
//! Why a seam and not a simulated etcd on a loopback socket: with Tokio's
//! paused clock the runtime advances time whenever it has nothing to run,
//! so a socket whose data the kernel has not delivered yet would let
//! virtual time jump past timeouts, and runs would depend on the host's
//! scheduling. Through the seam every byte moves on the simulation's own
//! tasks and timers.

use std::future::Future;
use std::pin::Pin;

/// An error of the replaced transport (a refused connection, a cut link):
/// reported as `Error::BackendUnavailable`, like reqwest's transport errors.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// The answer an [`EtcdTransport`] gives for one request: its status and
/// headers, and a body that may stream (the watch's messages), built with
/// `reqwest::Body::wrap`.
pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<reqwest::Body>, TransportError>> + Send>>;

/// Sends one HTTP request to a (simulated) etcd gateway and returns its
/// answer. The request's URL is the current endpoint plus the gateway path
/// (`/v3/kv/range`, `/v3/watch`, ...); the body is the JSON the client
/// would have sent.
pub trait EtcdTransport: Send + Sync + 'static {
    /// Sends `request`; the client applies its own timeout around the
    /// returned future (and, for a watch, its idle timeout to the body).
    fn send(&self, request: http::Request<Vec<u8>>) -> TransportFuture;
}
