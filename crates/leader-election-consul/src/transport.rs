//! A seam for the deterministic simulation (feature `test-util`): the
//! client can hand its requests to a [`ConsulTransport`] instead of
//! sending them over HTTP with reqwest.
//!
//! Everything above the wire is unchanged: the same requests are built
//! (paths, query, headers, bodies), the same answers are read through
//! `reqwest::Response` (status, `X-Consul-Index`, body limits, JSON
//! parsing), and the per-request timeouts still apply, on Tokio's clock.
//! Only the socket is replaced. A build without the feature has neither
//! the trait nor the field that holds it, so users' builds cannot differ.
//!
//! Why a seam and not a simulated agent on a loopback socket: with Tokio's
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

/// The answer a [`ConsulTransport`] gives for one request.
pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send>>;

/// Sends one HTTP request to a (simulated) Consul agent and returns its
/// whole answer. The request's URL is the configured address plus
/// `/v1/...` and the query the client added; the body is the bytes the
/// client would have sent.
pub trait ConsulTransport: Send + Sync + 'static {
    /// Sends `request`; the client applies its own timeout around the
    /// returned future.
    fn send(&self, request: http::Request<Vec<u8>>) -> TransportFuture;
}
