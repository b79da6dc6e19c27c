//! A small Consul HTTP client: exactly the session and KV calls the store
//! makes, with status codes mapped to the crate's error kinds and every
//! answer parsed defensively (no panics on malformed replies).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use leader_election_abstractions::{Error, Result};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{AclToken, Consistency, ConsulConfig};

/// The `Flags` value Consul's `api.Lock` (and `consul lock`) writes on its
/// lock keys, `0x2ddccbc058a50c18`; we write it too so both contend correctly.
pub(crate) const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// One KV entry as Consul returns it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KvEntry {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) flags: u64,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) session: Option<String>,
    pub(crate) modify_index: u64,
}

impl KvEntry {
    /// The decoded value; `None` when absent or not valid base64.
    pub(crate) fn value_bytes(&self) -> Option<Vec<u8>> {
        let encoded = self.value.as_deref()?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
    }

    pub(crate) fn holder_session(&self) -> Option<&str> {
        self.session.as_deref().filter(|s| !s.is_empty())
    }
}

/// A KV read: the entry (if the key exists) and the `X-Consul-Index`.
#[derive(Clone, Debug)]
pub(crate) struct KvRead {
    pub(crate) entry: Option<KvEntry>,
    pub(crate) index: u64,
}

impl KvRead {
    /// The read of `key` from the entries a `GET kv/<key>` returned.
    pub(crate) fn from_entries(key: &str, entries: Vec<KvEntry>, index: u64) -> Self {
        let entry = entries.into_iter().find(|e| e.key == key);
        Self { entry, index }
    }
}

/// What [`ConsulClient::lock_at`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockOutcome {
    /// Acquired by the write at this `ModifyIndex`.
    Locked(u64),
    /// The key is no longer as the caller saw it; nothing was written.
    Changed,
    /// Refused: the key's lock-delay runs.
    LockDelay,
    /// Refused: another session holds the key, or ours is gone.
    Refused,
}

/// The answer to `PUT /v1/txn`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnAnswer {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
struct TxnResult {
    #[serde(rename = "KV", default)]
    kv: Option<KvEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    #[serde(default)]
    op_index: usize,
    #[serde(default)]
    what: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionCreated {
    #[serde(rename = "ID")]
    id: String,
}

/// What a session is created with.
#[derive(Clone, Debug)]
pub(crate) struct SessionSpec {
    pub(crate) name: String,
    pub(crate) ttl: Duration,
    pub(crate) lock_delay: Duration,
    /// `"release"` (the lock's session) or `"delete"` (the candidate
    /// registry's: a dead candidate's records go with its session).
    pub(crate) behavior: &'static str,
}

impl SessionSpec {
    /// The JSON body of `PUT /v1/session/create`.
    pub(crate) fn body(&self, node_checks: &[String]) -> serde_json::Value {
        serde_json::json!({
            "Name": self.name,
            "TTL": go_duration(self.ttl),
            "LockDelay": go_duration(self.lock_delay),
            "Behavior": self.behavior,
            "NodeChecks": node_checks,
        })
    }
}

/// The HTTP client with the agent address and credentials baked in.
#[derive(Clone)]
pub(crate) struct ConsulClient {
    http: reqwest::Client,
    config: ConsulConfig,
    gate: Arc<Gate>,
    /// Replaces the HTTP transport in the simulation (`test-util`).
    #[cfg(feature = "test-util")]
    transport: Option<std::sync::Arc<dyn crate::transport::ConsulTransport>>,
}

/// Bounds the requests in flight, and so the connections open, to
/// `max_connections`; says so (at most every [`WARN_EVERY`]) when requests
/// queue or the agent refuses connections.
#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    created: Instant,
    /// Milliseconds after `created` of the last warning of each kind,
    /// `u64::MAX` for never.
    last_busy_warning: AtomicU64,
    last_refusal_warning: AtomicU64,
}

/// The shortest time between two warnings of one kind from one factory.
const WARN_EVERY: Duration = Duration::from_secs(30);

impl Gate {
    /// Whether a warning whose last one is `last` is due now (and, if so,
    /// records it as given).
    fn due(&self, last: &AtomicU64) -> bool {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        let previous = last.load(Ordering::Relaxed);
        let due = previous == u64::MAX || now.saturating_sub(previous) >= every;
        due && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// An answer with the connection slot it occupies: the slot is free again
/// when the answer (and so its body) is dropped.
pub(crate) struct Answer {
    response: Response,
    _permit: OwnedSemaphorePermit,
}

impl Answer {
    fn status(&self) -> StatusCode {
        self.response.status()
    }

    fn headers(&self) -> &reqwest::header::HeaderMap {
        self.response.headers()
    }
}

impl std::fmt::Debug for ConsulClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulClient")
            .field("address", &self.config.address)
            .finish_non_exhaustive()
    }
}

/// How much of an error answer is read, and how much of it is quoted in
/// an error message: enough for Consul's one-line errors, never a flood.
const ERROR_BODY_READ: usize = 16 * 1024;
const ERROR_BODY_QUOTED: usize = 256;

impl ConsulClient {
    pub(crate) fn new(mut config: ConsulConfig) -> Result<Self> {
        config.validate()?;
        if config.token.is_none() {
            if let Some(path) = &config.token_file {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    Error::invalid_option(
                        "token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let token = token.trim();
                if token.is_empty() || token.chars().any(|c| c.is_control()) {
                    return Err(Error::invalid_option(
                        "token_file",
                        format!("{} must hold one non-empty line", path.display()),
                    ));
                }
                config.token = Some(AclToken::new(token));
            }
        }
        if let Some(token) = &config.token {
            if reqwest::header::HeaderValue::from_str(token.expose()).is_err() {
                return Err(Error::invalid_option(
                    "token",
                    "must be printable ASCII (it is sent as an HTTP header)",
                ));
            }
        }
        let builder = reqwest::Client::builder()
            // Requests in flight never exceed max_connections (the gate);
            // neither do the connections kept for reuse.
            .pool_max_idle_per_host(config.max_connections)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A redirect would carry X-Consul-Token to wherever it points
            // (reqwest strips only standard credential headers): never follow.
            .redirect(reqwest::redirect::Policy::none());
        let http = crate::tls::configure(builder, &config)?
            .build()
            .map_err(|e| {
                Error::invalid_option("tls", format!("cannot build the HTTP client: {e}"))
            })?;
        let gate = Arc::new(Gate {
            permits: Arc::new(Semaphore::new(config.max_connections)),
            created: Instant::now(),
            last_busy_warning: AtomicU64::new(u64::MAX),
            last_refusal_warning: AtomicU64::new(u64::MAX),
        });
        Ok(Self {
            http,
            config,
            gate,
            #[cfg(feature = "test-util")]
            transport: None,
        })
    }

    /// A connection slot: at once if one is free, else after a warning
    /// (at most every 30 s) once the queue forms.
    async fn slot(&self) -> OwnedSemaphorePermit {
        let permits = &self.gate.permits;
        if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
            return permit;
        }
        if self.gate.due(&self.gate.last_busy_warning) {
            tracing::warn!(
                max_connections = self.config.max_connections,
                "all max_connections connections to the Consul agent are busy; requests queue \
                 (renewals may come late: raise ConsulConfig::max_connections if the agent's \
                 http_max_conns_per_client allows it, or use fewer elections per factory)"
            );
        }
        // The semaphore is never closed.
        Arc::clone(permits)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the gate's semaphore is never closed"))
    }

    /// The client with its requests handed to `transport` instead of the
    /// network (the simulation's seam, see [`crate::transport`]).
    #[cfg(feature = "test-util")]
    pub(crate) fn with_transport(
        mut self,
        transport: std::sync::Arc<dyn crate::transport::ConsulTransport>,
    ) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sends `request` through the replaced transport, with the timeout
    /// reqwest would have applied.
    #[cfg(feature = "test-util")]
    async fn send_through(
        &self,
        what: &str,
        transport: &dyn crate::transport::ConsulTransport,
        request: RequestBuilder,
    ) -> Result<Response> {
        let unavailable = |message: String| Error::unavailable(format!("Consul {what}: {message}"));
        let request = request
            .build()
            .map_err(|e| unavailable(e.to_string()).with_source(e))?;
        let timeout = request
            .timeout()
            .copied()
            .unwrap_or(self.config.request_timeout);
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
        match tokio::time::timeout(timeout, transport.send(request)).await {
            Ok(Ok(answer)) => Ok(Response::from(answer)),
            Ok(Err(error)) => Err(Error::BackendUnavailable {
                message: format!("Consul {what}: {error}"),
                source: Some(error),
            }),
            Err(_) => Err(unavailable("request timed out".to_owned())),
        }
    }

    pub(crate) fn config(&self) -> &ConsulConfig {
        &self.config
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}/v1/{path}", self.config.address.trim_end_matches('/'));
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.config.token {
            request = request.header("X-Consul-Token", token.expose());
        }
        if let Some(dc) = &self.config.datacenter {
            request = request.query(&[("dc", dc)]);
        }
        request
    }

    /// Sends a request and turns transport failures and error statuses into
    /// the crate's error kinds. 404 is returned to the caller as a response.
    async fn send(&self, what: &str, request: RequestBuilder) -> Result<Answer> {
        self.send_allowing(what, request, StatusCode::NOT_FOUND)
            .await
    }

    /// [`send`](Self::send), with `also` returned as a response too.
    async fn send_allowing(
        &self,
        what: &str,
        request: RequestBuilder,
        also: StatusCode,
    ) -> Result<Answer> {
        let permit = self.slot().await;
        #[cfg(feature = "test-util")]
        let response = match &self.transport {
            Some(transport) => self.send_through(what, transport.as_ref(), request).await?,
            None => Self::send_http(what, request).await?,
        };
        #[cfg(not(feature = "test-util"))]
        let response = Self::send_http(what, request).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND || status == also {
            return Ok(Answer {
                response,
                _permit: permit,
            });
        }
        let body = quote(&read_prefix(response, ERROR_BODY_READ).await);
        drop(permit);
        let body = body.as_str();
        if status == StatusCode::TOO_MANY_REQUESTS && self.gate.due(&self.gate.last_refusal_warning)
        {
            tracing::warn!(
                max_connections = self.config.max_connections,
                answer = body,
                "the Consul agent refuses requests from this address (429): its per-client \
                 connection limit (limits.http_max_conns_per_client, 200 by default) is shared \
                 by every process on this host; leaders whose renewals keep failing step down. \
                 Lower ConsulConfig::max_connections or the number of processes, or raise the \
                 agent's limit"
            );
        }
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::unauthorized(format!(
                "Consul refused {what} ({status}: {body}); the ACL token needs `key_prefix \"{}/\" {{ policy = \"write\" }}` and `session \"<the agent's node name>\" {{ policy = \"write\" }}`",
                self.config.key_prefix
            )),
            StatusCode::TOO_MANY_REQUESTS => Error::unavailable(format!("Consul {what}: rate limited ({body})")),
            // Consul answers a TTL outside its `session_ttl_min`..24 h with a
            // 500 whose body is its only signal; it is a configuration error,
            // not an outage, so it is classified here, where the answer is read.
            StatusCode::INTERNAL_SERVER_ERROR if body.starts_with("Invalid Session TTL") => {
                Error::invalid_option(
                    "lease_duration",
                    format!("Consul rejected it as the session TTL: {body}"),
                )
            }
            s if s.is_server_error() => Error::unavailable(format!("Consul {what}: {status}: {body}")),
            _ => Error::backend(format!("Consul {what}: {status}: {body}")),
        })
    }

    /// Sends a request over HTTP.
    async fn send_http(what: &str, request: RequestBuilder) -> Result<Response> {
        request.send().await.map_err(|e| Error::BackendUnavailable {
            message: format!("Consul {what}: {}", describe_transport(&e)),
            source: Some(Box::new(e)),
        })
    }

    /// The whole body, or an error once it passes `max_response_bytes`.
    async fn body(&self, what: &str, answer: Answer) -> Result<Vec<u8>> {
        let Answer {
            mut response,
            _permit,
        } = answer;
        let limit = self.config.max_response_bytes;
        let too_large = || {
            Error::backend(format!(
                "Consul {what}: the answer exceeds max_response_bytes ({limit} bytes)"
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::BackendUnavailable {
                message: format!(
                    "Consul {what}: reading the answer failed: {}",
                    describe_transport(&e)
                ),
                source: Some(Box::new(e)),
            })?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn json<T: for<'de> Deserialize<'de>>(&self, what: &str, response: Answer) -> Result<T> {
        let bytes = self.body(what, response).await?;
        parse_json(what, &bytes)
    }

    /// `PUT /v1/session/create`: a TTL session with the given lock-delay
    /// and behaviour (`"release"` or `"delete"`).
    pub(crate) async fn create_session(&self, spec: &SessionSpec) -> Result<String> {
        let body = spec.body(&self.config.node_checks);
        let response = self
            .send(
                "session create",
                self.request(Method::PUT, "session/create").json(&body),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::backend("Consul session create: 404"));
        }
        decode_session_created(&self.body("session create", response).await?)
    }

    /// `PUT /v1/session/renew/<id>`; `Ok(false)` when the session is gone.
    pub(crate) async fn renew_session(&self, id: &str) -> Result<bool> {
        let response = self
            .send(
                "session renew",
                self.request(Method::PUT, &format!("session/renew/{id}")),
            )
            .await?;
        Ok(response.status() != StatusCode::NOT_FOUND)
    }

    /// `PUT /v1/session/destroy/<id>` (idempotent).
    pub(crate) async fn destroy_session(&self, id: &str) -> Result<()> {
        self.send(
            "session destroy",
            self.request(Method::PUT, &format!("session/destroy/{id}")),
        )
        .await
        .map(drop)
    }

    /// `GET /v1/kv/<key>`, optionally blocking until the index moves past `index`.
    pub(crate) async fn read(
        &self,
        key: &str,
        consistency: Consistency,
        block: Option<(u64, Duration)>,
    ) -> Result<KvRead> {
        match self.read_body(key, false, consistency, block).await? {
            (Some(body), index) => decode_kv_read(key, &body, index),
            (None, index) => Ok(KvRead { entry: None, index }),
        }
    }

    /// `GET /v1/kv/<prefix>?recurse`, optionally blocking until the index
    /// moves past `index`: every entry under `prefix` and the
    /// `X-Consul-Index` (the prefix's latest change).
    pub(crate) async fn read_prefix(
        &self,
        prefix: &str,
        consistency: Consistency,
        block: Option<(u64, Duration)>,
    ) -> Result<(Vec<KvEntry>, u64)> {
        match self.read_body(prefix, true, consistency, block).await? {
            (Some(body), index) => Ok((parse_json("kv read", &body)?, index)),
            (None, index) => Ok((Vec::new(), index)),
        }
    }

    /// The body of a KV read (`None` for a 404) and its `X-Consul-Index`.
    async fn read_body(
        &self,
        key: &str,
        recurse: bool,
        consistency: Consistency,
        block: Option<(u64, Duration)>,
    ) -> Result<(Option<Vec<u8>>, u64)> {
        let mut request = self.request(Method::GET, &format!("kv/{key}"));
        if recurse {
            request = request.query(&[("recurse", "")]);
        }
        match consistency {
            Consistency::Consistent => request = request.query(&[("consistent", "")]),
            Consistency::Stale => request = request.query(&[("stale", "")]),
            Consistency::Default => {}
        }
        if let Some((index, wait)) = block {
            // Consul adds up to wait/16 of jitter to a blocking query.
            let timeout = wait + wait / 16 + self.config.request_timeout;
            request = request
                .query(&[
                    ("index", index.max(1).to_string()),
                    ("wait", format!("{}ms", wait.as_millis())),
                ])
                .timeout(timeout);
        }
        let response = self.send("kv read", request).await?;
        let index = consul_index(response.headers());
        if response.status() == StatusCode::NOT_FOUND {
            return Ok((None, index));
        }
        Ok((Some(self.body("kv read", response).await?), index))
    }

    /// `GET /v1/kv/<prefix>?recurse`.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<KvEntry>> {
        let request = self
            .request(Method::GET, &format!("kv/{prefix}"))
            .query(&[("recurse", "")]);
        let response = self.send("kv list", request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        self.json("kv list", response).await
    }

    /// `PUT /v1/kv/<key>?acquire=<session>[&flags=..]`; true when acquired.
    pub(crate) async fn acquire(
        &self,
        key: &str,
        session: &str,
        flags: u64,
        value: Vec<u8>,
    ) -> Result<bool> {
        let request = self
            .request(Method::PUT, &format!("kv/{key}"))
            .query(&[
                ("acquire", session.to_owned()),
                ("flags", flags.to_string()),
            ])
            .body(value);
        self.boolean("kv acquire", request).await
    }

    /// `PUT /v1/kv/<key>?release=<session>&flags=..`; true when it was ours.
    /// A release rewrites the key's flags like any PUT, so they are sent
    /// again: Go's `api.Lock` refuses keys without its flag.
    pub(crate) async fn release(&self, key: &str, session: &str, flags: u64) -> Result<bool> {
        let request = self.request(Method::PUT, &format!("kv/{key}")).query(&[
            ("release", session.to_owned()),
            ("flags", flags.to_string()),
        ]);
        self.boolean("kv release", request).await
    }

    /// Releases `key` held by `session` only if its `ModifyIndex` is still
    /// `index`: one `PUT /v1/txn` of `check-index` then `unlock` (with the
    /// lock flag, as [`release`](Self::release) sends it). True when
    /// released; false when the transaction was rolled back (the index
    /// moved, or the session does not hold the key).
    pub(crate) async fn release_at(
        &self,
        key: &str,
        session: &str,
        flags: u64,
        index: u64,
    ) -> Result<bool> {
        let ops = serde_json::json!([
            { "KV": { "Verb": "check-index", "Key": key, "Index": index } },
            { "KV": { "Verb": "unlock", "Key": key, "Session": session, "Flags": flags } },
        ]);
        let request = self.request(Method::PUT, "txn").json(&ops);
        let response = self
            .send_allowing("kv release", request, StatusCode::CONFLICT)
            .await?;
        match response.status() {
            StatusCode::CONFLICT => Ok(false),
            StatusCode::NOT_FOUND => Err(Error::backend("Consul kv release: txn: 404")),
            _ => Ok(true),
        }
    }

    /// Acquires `key` for `session` only if it is still as the caller saw
    /// it (`ModifyIndex` `seen`, or absent for `None`): one `PUT /v1/txn` of
    /// `check-index` (or `check-not-exists`) then `lock`. Consul applies the
    /// lock-delay to a transaction's `lock` as to `?acquire` (it checks it
    /// before the Raft apply) and answers with the written entry, whose
    /// `ModifyIndex` is the acquiring write's: no read is needed for it.
    pub(crate) async fn lock_at(
        &self,
        key: &str,
        seen: Option<u64>,
        session: &str,
        flags: u64,
        value: &[u8],
    ) -> Result<LockOutcome> {
        let check = match seen {
            Some(index) => {
                serde_json::json!({ "KV": { "Verb": "check-index", "Key": key, "Index": index } })
            }
            None => serde_json::json!({ "KV": { "Verb": "check-not-exists", "Key": key } }),
        };
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        let ops = serde_json::json!([
            check,
            { "KV": { "Verb": "lock", "Key": key, "Value": value, "Flags": flags, "Session": session } },
        ]);
        let request = self.request(Method::PUT, "txn").json(&ops);
        let response = self
            .send_allowing("kv acquire", request, StatusCode::CONFLICT)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::backend("Consul kv acquire: txn: 404")),
            StatusCode::CONFLICT => {
                let answer: TxnAnswer = self.json("kv acquire", response).await?;
                let error = answer.errors.unwrap_or_default().into_iter().next();
                Ok(match error {
                    Some(e) if e.op_index == 0 => LockOutcome::Changed,
                    Some(e) if e.what.contains("lock delay") => LockOutcome::LockDelay,
                    _ => LockOutcome::Refused,
                })
            }
            _ => {
                let answer: TxnAnswer = self.json("kv acquire", response).await?;
                // The last result is the `lock`'s: the entry as written.
                // (`check-index` answers with the entry before it, which may
                // name our session too when we held the key already;
                // `check-not-exists` answers with nothing.)
                let written = answer
                    .results
                    .unwrap_or_default()
                    .into_iter()
                    .last()
                    .and_then(|r| r.kv)
                    .filter(|e| e.key == key && e.holder_session() == Some(session));
                written
                    .map(|e| LockOutcome::Locked(e.modify_index))
                    .ok_or_else(|| {
                        Error::backend("Consul kv acquire: txn: the answer lacks the locked entry")
                    })
            }
        }
    }

    /// `DELETE /v1/kv/<key>`.
    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        self.send(
            "kv delete",
            self.request(Method::DELETE, &format!("kv/{key}")),
        )
        .await
        .map(drop)
    }

    async fn boolean(&self, what: &str, request: RequestBuilder) -> Result<bool> {
        let response = self.send(what, request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::backend(format!("Consul {what}: 404")));
        }
        self.json(what, response).await
    }
}

/// Parses a JSON answer; the error keeps serde's as its source and quotes
/// the start of the answer.
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::backend(format!(
            "Consul {what}: malformed answer ({e}): {}",
            quote(bytes)
        ))
        .with_source(e)
    })
}

/// The `X-Consul-Index` header; 0 when it is missing or not a number (a
/// proxy in between may drop it).
pub(crate) fn consul_index(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// The entry of `key` in the answer to `GET /v1/kv/<key>`.
pub(crate) fn decode_kv_read(key: &str, bytes: &[u8], index: u64) -> Result<KvRead> {
    let entries: Vec<KvEntry> = parse_json("kv read", bytes)?;
    Ok(KvRead::from_entries(key, entries, index))
}

/// The session id in the answer to `PUT /v1/session/create`, checked.
pub(crate) fn decode_session_created(bytes: &[u8]) -> Result<String> {
    let created: SessionCreated = parse_json("session create", bytes)?;
    parse_session_id(&created.id)?;
    Ok(created.id)
}

/// Checks that a session id from the agent is a UUID (`8-4-4-4-12` hex
/// digits) before it goes into a URL path.
pub(crate) fn parse_session_id(id: &str) -> Result<()> {
    let bytes = id.as_bytes();
    let well_formed = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if well_formed {
        Ok(())
    } else {
        Err(Error::backend(format!(
            "Consul session create: the session ID {} is not a UUID",
            quote(id.as_bytes())
        )))
    }
}

/// Up to `limit` bytes of a body (the rest is never read); nothing on errors.
async fn read_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(limit);
    body
}

/// At most `ERROR_BODY_QUOTED` characters of an answer for a message or a
/// log line, control characters (line breaks, escapes) replaced, and a note
/// when it was cut.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut quoted: String = text
        .chars()
        .take(ERROR_BODY_QUOTED)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let total = text.chars().count();
    if total > ERROR_BODY_QUOTED {
        quoted.push_str(&format!(
            "… ({} more characters)",
            total - ERROR_BODY_QUOTED
        ));
    }
    quoted
}

/// A duration in the form Go's `time.ParseDuration` reads (`"1500ms"`),
/// rounded up: a session TTL must never be shorter than the lease it backs.
pub(crate) fn go_duration(duration: Duration) -> String {
    format!("{}ms", duration.as_nanos().div_ceil(1_000_000))
}

fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "request timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect to the agent".to_owned()
    } else {
        error.to_string()
    }
}
