//! [`EtcdClient`]: etcd's v3 API through its gRPC gateway (JSON over HTTP),
//! with the endpoints, credentials and TLS baked in. Every answer is checked;
//! errors become the abstractions' kinds (retryable, unauthorized, backend).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use leader_election_abstractions::{Error, Result};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::config::EtcdConfig;
use crate::wire::{
    b64, prefix_end, AuthAnswer, KeyValue, LeaseAnswer, RangeResponse, Status, TxnResponse,
};

/// gRPC status codes etcd uses that we act on.
const NOT_FOUND: i32 = 5;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;
const RETRYABLE: [i32; 5] = [4, 8, 10, 13, 14];

/// A client of one etcd cluster. Cheap to clone (shared state).
#[derive(Clone)]
pub(crate) struct EtcdClient {
    http: reqwest::Client,
    config: Arc<EtcdConfig>,
    /// The endpoint requests go to; moves on after a connection failure.
    current: Arc<AtomicUsize>,
    /// The auth token, when a user is configured and has authenticated.
    token: Arc<Mutex<Option<String>>>,
    /// Replaces the HTTP transport in the simulation (`test-util`).
    #[cfg(feature = "test-util")]
    transport: Option<Arc<dyn crate::transport::EtcdTransport>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.config.endpoints)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "rustls-ring", feature = "native-tls"))]
fn read_pem(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid_option(field, format!("cannot read {}: {e}", path.display())))
}

/// The TLS stack the crate's features picked, with the configured CA and
/// client certificate.
#[cfg(any(feature = "rustls-ring", feature = "native-tls"))]
fn tls(builder: reqwest::ClientBuilder, config: &EtcdConfig) -> Result<reqwest::ClientBuilder> {
    // rustls when both are enabled (as with --all-features).
    #[cfg(feature = "rustls-ring")]
    let mut builder = builder.use_rustls_tls();
    #[cfg(not(feature = "rustls-ring"))]
    let mut builder = builder.use_native_tls();
    if let Some(ca) = &config.tls.ca_cert {
        // A configured CA replaces the built-in roots, as with etcdctl's
        // --cacert: only certificates it signed are trusted.
        builder = builder.tls_built_in_root_certs(false);
        let pem = read_pem("tls.ca_cert", ca)?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::invalid_option("tls.ca_cert", format!("not a PEM certificate bundle: {e}"))
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert), Some(key)) = (&config.tls.client_cert, &config.tls.client_key) {
        let cert = read_pem("tls.client_cert", cert)?;
        let key = read_pem("tls.client_key", key)?;
        #[cfg(feature = "rustls-ring")]
        let identity = reqwest::Identity::from_pem(&[cert, key].concat());
        // native-tls takes the key in PKCS#8 only.
        #[cfg(not(feature = "rustls-ring"))]
        let identity = reqwest::Identity::from_pkcs8_pem(&cert, &key);
        let identity = identity.map_err(|e| {
            Error::invalid_option(
                "tls.client_cert",
                format!("not a PEM certificate and key: {e}"),
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// Built without TLS: plain `http://` endpoints only, and no TLS settings.
#[cfg(not(any(feature = "rustls-ring", feature = "native-tls")))]
fn tls(builder: reqwest::ClientBuilder, config: &EtcdConfig) -> Result<reqwest::ClientBuilder> {
    let https = config.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = &config.tls;
    if https || tls.ca_cert.is_some() || tls.client_cert.is_some() || tls.client_key.is_some() {
        return Err(Error::invalid_option(
            "tls",
            "this build has no TLS: enable the feature rustls-ring or native-tls of leader-election-etcd",
        ));
    }
    Ok(builder)
}

fn range_request(prefix: &str, revision: Option<i64>, limit: Option<i64>) -> Value {
    let mut body = json!({
        "key": b64(prefix),
        "range_end": b64(prefix_end(prefix)),
        "sort_order": "ASCEND",
        "sort_target": "CREATE",
    });
    if let Some(revision) = revision {
        body["revision"] = json!(revision.to_string());
    }
    if let Some(limit) = limit {
        body["limit"] = json!(limit.to_string());
    }
    body
}

impl EtcdClient {
    pub(crate) fn new(config: EtcdConfig) -> Result<Self> {
        config.validate()?;
        let builder = tls(reqwest::Client::builder(), &config)?;
        let http = builder.build().map_err(|e| {
            Error::invalid_option("tls", format!("cannot build the HTTP client: {e}"))
        })?;
        Ok(Self {
            http,
            config: Arc::new(config),
            current: Arc::new(AtomicUsize::new(0)),
            token: Arc::new(Mutex::new(None)),
            #[cfg(feature = "test-util")]
            transport: None,
        })
    }

    /// The client with its requests handed to `transport` instead of the
    /// network (the simulation's seam, see [`crate::transport`]).
    #[cfg(feature = "test-util")]
    pub(crate) fn with_transport(
        mut self,
        transport: Arc<dyn crate::transport::EtcdTransport>,
    ) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sends `request` over HTTP, or through the replaced transport in the
    /// simulation; a transport failure is retryable and moves on to the
    /// next endpoint.
    async fn send(&self, what: &str, index: usize, request: RequestBuilder) -> Result<Response> {
        #[cfg(feature = "test-util")]
        if let Some(transport) = &self.transport {
            return self
                .send_through(what, index, transport.as_ref(), request)
                .await;
        }
        request.send().await.map_err(|e| {
            self.move_on(index);
            Error::BackendUnavailable {
                message: format!("etcd {what}: {}", describe_transport(&e)),
                source: Some(Box::new(e)),
            }
        })
    }

    /// Sends `request` through the replaced transport, with the timeout
    /// reqwest would have applied (none for a stream: its caller times the
    /// opening and each message).
    #[cfg(feature = "test-util")]
    async fn send_through(
        &self,
        what: &str,
        index: usize,
        transport: &dyn crate::transport::EtcdTransport,
        request: RequestBuilder,
    ) -> Result<Response> {
        let unavailable = |message: String| {
            self.move_on(index);
            Error::unavailable(format!("etcd {what}: {message}"))
        };
        let request = request
            .build()
            .map_err(|e| unavailable(e.to_string()).with_source(e))?;
        let timeout = request.timeout().copied();
        let mut builder = http::Request::builder()
            .method(request.method().clone())
            .uri(request.url().as_str());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let request = builder
            .body(body)
            .map_err(|e| unavailable(e.to_string()).with_source(e))?;
        let answer = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, transport.send(request))
                .await
                .map_err(|_| unavailable("request timed out".to_owned()))?,
            None => transport.send(request).await,
        };
        match answer {
            Ok(answer) => Ok(Response::from(answer)),
            Err(error) => {
                self.move_on(index);
                Err(Error::BackendUnavailable {
                    message: format!("etcd {what}: {error}"),
                    source: Some(error),
                })
            }
        }
    }

    pub(crate) fn config(&self) -> &EtcdConfig {
        &self.config
    }

    fn endpoint(&self) -> (usize, &str) {
        let index = self.current.load(Ordering::Relaxed) % self.config.endpoints.len();
        (index, self.config.endpoints[index].trim_end_matches('/'))
    }

    /// After a connection failure on endpoint `index`, the next request goes
    /// to the next endpoint (unless another request moved on already).
    fn move_on(&self, index: usize) {
        let next = (index + 1) % self.config.endpoints.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn cached_token(&self) -> Option<String> {
        self.token.lock().clone()
    }

    fn set_token(&self, token: Option<String>) {
        *self.token.lock() = token;
    }

    /// A request with the auth token, authenticating first when needed.
    async fn request(&self, path: &str, body: &Value) -> Result<(usize, RequestBuilder)> {
        let token = match (&self.config.user, self.cached_token()) {
            (None, _) => None,
            (Some(_), Some(token)) => Some(token),
            (Some(_), None) => Some(self.authenticate().await?),
        };
        let (index, endpoint) = self.endpoint();
        let mut request = self.http.post(format!("{endpoint}{path}")).json(body);
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        Ok((index, request))
    }

    async fn authenticate(&self) -> Result<String> {
        let Some(user) = &self.config.user else {
            return Err(Error::backend("authenticate called without a user"));
        };
        let (index, endpoint) = self.endpoint();
        let request = self
            .http
            .post(format!("{endpoint}/v3/auth/authenticate"))
            .json(&json!({ "name": user.name, "password": user.password.expose() }))
            .timeout(Duration::from_secs(10));
        let answer: AuthAnswer = match self.exchange("authenticate", index, request).await? {
            Ok(answer) => answer,
            Err(status) => {
                return Err(Error::unauthorized(format!(
                    "etcd refused to authenticate user {:?}: {} (code {})",
                    user.name, status.message, status.code
                )))
            }
        };
        let token = auth_token(answer)?;
        self.set_token(Some(token.clone()));
        Ok(token)
    }

    /// Sends a request; a transport failure is retryable (and moves on to
    /// the next endpoint). A gRPC error comes back as the inner `Err`.
    async fn exchange<T: DeserializeOwned>(
        &self,
        what: &str,
        index: usize,
        request: RequestBuilder,
    ) -> Result<std::result::Result<T, Status>> {
        let response = self.send(what, index, request).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            Error::unavailable(format!("etcd {what}: reading the answer failed: {e}"))
        })?;
        if status.is_success() {
            return decode(what, &bytes).map(Ok);
        }
        Ok(Err(error_status(status, &bytes)))
    }

    /// One unary call of the gateway; gRPC errors are returned for the
    /// caller to judge. An expired auth token is renewed once.
    pub(crate) async fn call_status<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<std::result::Result<T, Status>> {
        for attempt in 0..2 {
            let (index, request) = self.request(path, body).await?;
            let answer = self.exchange(what, index, request.timeout(timeout)).await?;
            match answer {
                Err(status)
                    if status.code == UNAUTHENTICATED
                        && self.config.user.is_some()
                        && attempt == 0 =>
                {
                    // Simple tokens expire (--auth-token-ttl): log in again.
                    self.set_token(None);
                }
                other => return Ok(other),
            }
        }
        Err(Error::unauthorized(format!(
            "etcd {what}: the auth token was refused twice"
        )))
    }

    /// One unary call; every gRPC error becomes an [`Error`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T> {
        self.call_status(what, path, body, timeout)
            .await?
            .map_err(|status| self.classify(what, &status))
    }

    /// What a gRPC error from etcd means for us.
    pub(crate) fn classify(&self, what: &str, status: &Status) -> Error {
        classify(&self.config.key_prefix, what, status)
    }

    /// Opens a server stream (the watch): the response whose body streams.
    pub(crate) async fn open_stream(
        &self,
        what: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Response> {
        for attempt in 0..2 {
            let (index, request) = self.request(path, body).await?;
            let response = tokio::time::timeout(timeout, self.send(what, index, request))
                .await
                .map_err(|_| {
                    self.move_on(index);
                    Error::unavailable(format!("etcd {what}: no answer within {timeout:?}"))
                })??;
            if response.status().is_success() {
                return Ok(response);
            }
            let code = response.status();
            let bytes = response.bytes().await.unwrap_or_default();
            let status = error_status(code, &bytes);
            if status.code == UNAUTHENTICATED && self.config.user.is_some() && attempt == 0 {
                self.set_token(None);
                continue;
            }
            return Err(self.classify(what, &status));
        }
        Err(Error::unauthorized(format!(
            "etcd {what}: the auth token was refused twice"
        )))
    }

    // --- The operations the store uses. ---

    /// The key with the lowest create revision under `prefix`, at `revision`
    /// (or now), and the revision the answer is of.
    pub(crate) async fn first_key(
        &self,
        prefix: &str,
        revision: Option<i64>,
        timeout: Duration,
    ) -> Result<(Option<KeyValue>, i64)> {
        let range: RangeResponse = self
            .call(
                "range",
                "/v3/kv/range",
                &range_request(prefix, revision, Some(1)),
                timeout,
            )
            .await?;
        Ok((range.kvs.into_iter().next(), range.header.revision))
    }

    /// Every key under `prefix`, oldest first.
    pub(crate) async fn keys(&self, prefix: &str, timeout: Duration) -> Result<Vec<KeyValue>> {
        let range: RangeResponse = self
            .call(
                "range",
                "/v3/kv/range",
                &range_request(prefix, None, None),
                timeout,
            )
            .await?;
        Ok(range.kvs)
    }

    /// One key, if it exists.
    pub(crate) async fn key(&self, key: &str, timeout: Duration) -> Result<Option<KeyValue>> {
        let range: RangeResponse = self
            .call(
                "range",
                "/v3/kv/range",
                &json!({ "key": b64(key) }),
                timeout,
            )
            .await?;
        Ok(range.kvs.into_iter().next())
    }

    /// A new lease of `ttl` seconds.
    pub(crate) async fn grant(&self, ttl: i64, timeout: Duration) -> Result<LeaseAnswer> {
        let answer: LeaseAnswer = self
            .call(
                "lease grant",
                "/v3/lease/grant",
                &json!({ "TTL": ttl.to_string() }),
                timeout,
            )
            .await?;
        granted(ttl, answer)
    }

    /// One keep-alive of lease `id`: its TTL in seconds from now, 0 when the
    /// lease does not exist any more.
    pub(crate) async fn keep_alive(&self, id: i64, timeout: Duration) -> Result<i64> {
        let message: crate::wire::Streamed<LeaseAnswer> = self
            .call(
                "lease keep-alive",
                "/v3/lease/keepalive",
                &json!({ "ID": id.to_string() }),
                timeout,
            )
            .await?;
        kept_alive(&self.config.key_prefix, id, message)
    }

    /// Revokes lease `id` (deleting its keys); a lease already gone is fine.
    pub(crate) async fn revoke(&self, id: i64, timeout: Duration) -> Result<()> {
        match self
            .call_status::<Value>(
                "lease revoke",
                "/v3/lease/revoke",
                &json!({ "ID": id.to_string() }),
                timeout,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(status) if status.code == NOT_FOUND => Ok(()),
            Err(status) => Err(self.classify("lease revoke", &status)),
        }
    }

    /// Puts `key` on lease `lease` if no key exists under `prefix` (etcd
    /// compares every key of the range: with none, create revision 0 holds);
    /// otherwise reads the oldest key there. The transaction's answer.
    pub(crate) async fn create_if_empty(
        &self,
        prefix: &str,
        key: &str,
        value: &str,
        lease: i64,
        timeout: Duration,
    ) -> Result<TxnResponse> {
        let body = json!({
            "compare": [{
                "target": "CREATE",
                "key": b64(prefix),
                "range_end": b64(prefix_end(prefix)),
                "result": "EQUAL",
                "create_revision": "0",
            }],
            "success": [{ "request_put": { "key": b64(key), "value": b64(value), "lease": lease.to_string() } }],
            "failure": [{ "request_range": range_request(prefix, None, Some(1)) }],
        });
        self.call(
            "transaction (create the election key)",
            "/v3/kv/txn",
            &body,
            timeout,
        )
        .await
    }

    /// Deletes `key` if its create revision is still `create_revision`.
    pub(crate) async fn delete_if_created_at(
        &self,
        key: &str,
        create_revision: i64,
        timeout: Duration,
    ) -> Result<bool> {
        let body = json!({
            "compare": [{ "target": "CREATE", "key": b64(key), "result": "EQUAL", "create_revision": create_revision.to_string() }],
            "success": [{ "request_delete_range": { "key": b64(key) } }],
        });
        let answer: TxnResponse = self
            .call(
                "transaction (delete the election key)",
                "/v3/kv/txn",
                &body,
                timeout,
            )
            .await?;
        Ok(answer.succeeded)
    }

    /// Puts `key` on lease `lease`.
    pub(crate) async fn put(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        timeout: Duration,
    ) -> Result<()> {
        let _: Value = self
            .call(
                "put",
                "/v3/kv/put",
                &json!({ "key": b64(key), "value": b64(value), "lease": lease.to_string() }),
                timeout,
            )
            .await?;
        Ok(())
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, key: &str, timeout: Duration) -> Result<()> {
        let _: Value = self
            .call(
                "delete",
                "/v3/kv/deleterange",
                &json!({ "key": b64(key) }),
                timeout,
            )
            .await?;
        Ok(())
    }
}

/// What a gRPC error from etcd means for us (`key_prefix` names the grant a
/// refused permission needs).
pub(crate) fn classify(key_prefix: &str, what: &str, status: &Status) -> Error {
    let message = &status.message;
    match status.code {
        UNAUTHENTICATED => Error::unauthorized(format!(
            "etcd refused {what}: not authenticated ({message}); check EtcdConfig::user"
        )),
        PERMISSION_DENIED => Error::unauthorized(format!(
            "etcd refused {what} ({message}); the user needs a role with readwrite permission on the key prefix `{key_prefix}/` (etcdctl role grant-permission <role> --prefix=true readwrite {key_prefix}/)"
        )),
        code if RETRYABLE.contains(&code) => {
            Error::unavailable(format!("etcd {what}: {message} (code {code})"))
        }
        code => Error::backend(format!("etcd {what}: {message} (code {code})")),
    }
}

/// The gRPC status of an HTTP error answer: the gateway's JSON body, or
/// else one made from the HTTP status (retryable for 5xx and 429) and the
/// start of the body.
pub(crate) fn error_status(http: StatusCode, bytes: &[u8]) -> Status {
    serde_json::from_slice::<Status>(bytes).unwrap_or_else(|_| Status {
        code: if http.is_server_error() || http == StatusCode::TOO_MANY_REQUESTS {
            14
        } else {
            2
        },
        message: format!(
            "{http}: {}",
            String::from_utf8_lossy(bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    })
}

/// The token of an authentication answer.
pub(crate) fn auth_token(answer: AuthAnswer) -> Result<String> {
    if answer.token.is_empty() {
        return Err(Error::backend(
            "etcd answered the authentication without a token (is auth enabled?)",
        ));
    }
    Ok(answer.token)
}

/// A grant's answer, checked: a lease was granted.
pub(crate) fn granted(ttl: i64, answer: LeaseAnswer) -> Result<LeaseAnswer> {
    if !answer.error.is_empty() || answer.id <= 0 {
        return Err(Error::backend(format!(
            "etcd refused a lease of {ttl} s: id {} ({})",
            answer.id, answer.error
        )));
    }
    Ok(answer)
}

/// A keep-alive's answer for lease `id`: the lease's TTL in seconds from
/// now, 0 when it does not exist any more.
pub(crate) fn kept_alive(
    key_prefix: &str,
    id: i64,
    message: crate::wire::Streamed<LeaseAnswer>,
) -> Result<i64> {
    match (message.result, message.error) {
        (_, Some(status)) => Err(classify(key_prefix, "lease keep-alive", &status)),
        (Some(answer), None) if answer.id == id => Ok(answer.ttl.max(0)),
        (Some(answer), None) => Err(Error::backend(format!(
            "etcd answered a keep-alive of lease {id:x} for lease {:x}",
            answer.id
        ))),
        (None, None) => Err(Error::backend(
            "etcd answered a keep-alive with neither result nor error",
        )),
    }
}

/// Decodes an answer; a malformed one is a backend error quoting it.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::backend(format!(
            "etcd {what}: malformed answer ({e}): {}",
            String::from_utf8_lossy(bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ))
        .with_source(e)
    })
}

fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "request timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect to etcd".to_owned()
    } else {
        error.to_string()
    }
}
