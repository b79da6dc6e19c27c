//! A small Consul HTTP client: exactly the session and KV calls the store
//! makes, with status codes mapped to the crate's error kinds and every
//! answer parsed defensively (no panics on malformed replies).

use std::time::Duration;

use base64::Engine as _;
use leader_election_abstractions::{Error, Result};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::config::{Consistency, ConsulConfig};

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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionCreated {
    #[serde(rename = "ID")]
    id: String,
}

/// The HTTP client with the agent address and credentials baked in.
#[derive(Clone)]
pub(crate) struct ConsulClient {
    http: reqwest::Client,
    config: ConsulConfig,
}

impl std::fmt::Debug for ConsulClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulClient")
            .field("address", &self.config.address)
            .finish_non_exhaustive()
    }
}

fn read_pem(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid_option(field, format!("cannot read {}: {e}", path.display())))
}

impl ConsulClient {
    pub(crate) fn new(config: ConsulConfig) -> Result<Self> {
        config.validate()?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .use_rustls_tls();
        if let Some(ca) = &config.tls.ca_cert {
            let pem = read_pem("tls.ca_cert", ca)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::invalid_option("tls.ca_cert", format!("not a PEM certificate bundle: {e}"))
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let (Some(cert), Some(key)) = (&config.tls.client_cert, &config.tls.client_key) {
            let mut pem = read_pem("tls.client_cert", cert)?;
            pem.extend(read_pem("tls.client_key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::invalid_option(
                    "tls.client_cert",
                    format!("not a PEM certificate and key: {e}"),
                )
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| {
            Error::invalid_option("tls", format!("cannot build the HTTP client: {e}"))
        })?;
        Ok(Self { http, config })
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
    async fn send(&self, what: &str, request: RequestBuilder) -> Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|e| Error::BackendUnavailable {
                message: format!("Consul {what}: {}", describe_transport(&e)),
                source: Some(Box::new(e)),
            })?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let body = body.trim();
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::unauthorized(format!(
                "Consul refused {what} ({status}: {body}); the ACL token needs `key_prefix \"{}\" {{ policy = \"write\" }}` and `session_prefix \"\" {{ policy = \"write\" }}`",
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

    async fn json<T: for<'de> Deserialize<'de>>(what: &str, response: Response) -> Result<T> {
        let bytes = response.bytes().await.map_err(|e| {
            Error::unavailable(format!("Consul {what}: reading the body failed: {e}"))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::backend(format!(
                "Consul {what}: malformed answer ({e}): {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
            .with_source(e)
        })
    }

    /// `PUT /v1/session/create`: a TTL session with the given lock-delay.
    pub(crate) async fn create_session(
        &self,
        name: &str,
        ttl: Duration,
        lock_delay: Duration,
    ) -> Result<String> {
        let body = serde_json::json!({
            "Name": name,
            "TTL": go_duration(ttl),
            "LockDelay": go_duration(lock_delay),
            "Behavior": "release",
            "NodeChecks": self.config.node_checks,
        });
        let response = self
            .send(
                "session create",
                self.request(Method::PUT, "session/create").json(&body),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::backend("Consul session create: 404"));
        }
        let created: SessionCreated = Self::json("session create", response).await?;
        if created.id.is_empty() {
            return Err(Error::backend("Consul session create: empty session ID"));
        }
        Ok(created.id)
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
        let mut request = self.request(Method::GET, &format!("kv/{key}"));
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
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(KvRead { entry: None, index });
        }
        let entries: Vec<KvEntry> = Self::json("kv read", response).await?;
        let entry = entries.into_iter().find(|e| e.key == key);
        Ok(KvRead { entry, index })
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
        Self::json("kv list", response).await
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
        Self::json(what, response).await
    }
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
