//! [`client_with_nodelay`]: kube's client stack with `TCP_NODELAY` set.
//!
//! kube's own `Client::try_from(Config)` connects with hyper's defaults,
//! which leave Nagle's algorithm on. Over TLS 1.3 the client's first request
//! on a new connection follows its handshake `Finished` message in a second
//! small write; with Nagle on, the kernel holds that request until the
//! server acknowledges the `Finished`, and the server delays that
//! acknowledgement (40 ms on Linux). A waiting candidate's connection for
//! requests is usually a new one when a handover comes (its watch holds the
//! other, and idle connections are closed after 90 s), so its acquiring
//! request paid those 40 ms in every handover. Go's clients (client-go) set
//! `TCP_NODELAY` on every connection.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ConfigExt};
use leader_election_abstractions::{Error, Result};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// A Kubernetes client for `config` whose connections set `TCP_NODELAY`,
/// otherwise built as kube's `Client::try_from(config)` builds it: the same
/// TLS settings, authentication (including refreshed tokens), extra headers
/// (impersonation), timeouts and retries of overloaded-server answers.
/// [`KubernetesLeaderElectionFactory::infer`](crate::KubernetesLeaderElectionFactory::infer)
/// uses it; use it where you build the client yourself.
///
/// Without `TCP_NODELAY` (kube's default client) the first request on each
/// new TLS connection waits about 40 ms (Nagle's algorithm meeting the
/// server's delayed acknowledgement), which a handover between processes
/// pays for the new leader's acquiring request.
///
/// Not supported: a proxy (`config.proxy_url`), refused with
/// [`Error::InvalidOption`] naming the field (build kube's own client for
/// it).
pub fn client_with_nodelay(config: kube::Config) -> Result<kube::Client> {
    if config.proxy_url.is_some() {
        return Err(Error::invalid_option(
            "proxy_url",
            "client_with_nodelay does not connect through a proxy; use kube::Client::try_from",
        ));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let kube_error = |what: &str, e: kube::Error| {
        Error::backend(format!("Kubernetes client {what}: {e}")).with_source(e)
    };
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    let connector = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| kube_error("TLS settings", e))?;
    #[cfg(all(
        feature = "native-tls",
        not(any(feature = "rustls-ring", feature = "rustls-aws-lc"))
    ))]
    let connector = config
        .openssl_https_connector_with_connector(http)
        .map_err(|e| kube_error("TLS settings", e))?;
    #[cfg(not(any(
        feature = "rustls-ring",
        feature = "rustls-aws-lc",
        feature = "native-tls"
    )))]
    let connector = {
        if config.cluster_url.scheme_str() == Some("https") {
            return Err(Error::invalid_option(
                "cluster_url",
                "an https apiserver needs a TLS feature of leader-election-kubernetes \
                 (rustls-ring, rustls-aws-lc or native-tls)",
            ));
        }
        http
    };
    let mut connector = hyper_timeout::TimeoutConnector::new(connector);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(
            config
                .auth_layer()
                .map_err(|e| kube_error("authentication", e))?,
        )
        .layer(
            config
                .extra_headers_layer()
                .map_err(|e| kube_error("headers", e))?,
        )
        .map_err(BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}
