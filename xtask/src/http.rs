//! A minimal blocking HTTP(S) client for readiness probes and smoke checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, RequestBuilder};

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Response headers, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// Body as text.
    pub(crate) body: String,
}

impl Reply {
    /// A header value by (case-insensitive) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub(crate) fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("answer is not JSON ({e}): {}", self.body))
    }
}

/// A client with an optional bearer token, trusting only `ca` for HTTPS when
/// given.
#[derive(Clone)]
pub(crate) struct Client {
    agent: Agent,
    token: Option<String>,
}

impl Client {
    /// Builds a client. Non-2xx answers are returned, not raised.
    pub(crate) fn new(ca: Option<&Path>, token: Option<String>) -> Result<Self, String> {
        let mut builder = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)));
        if let Some(ca) = ca {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let mut certs = Vec::new();
            for item in parse_pem(&pem) {
                if let PemItem::Certificate(cert) =
                    item.map_err(|e| format!("bad PEM in {}: {e}", ca.display()))?
                {
                    certs.push(cert.to_owned());
                }
            }
            if certs.is_empty() {
                return Err(format!("no certificate in {}", ca.display()));
            }
            builder = builder.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(certs)))
                    .build(),
            );
        }
        Ok(Self {
            agent: builder.build().into(),
            token,
        })
    }

    fn headers<B>(&self, mut request: RequestBuilder<B>) -> RequestBuilder<B> {
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.header("Accept", "application/json")
    }

    /// Sends one request; `body` is sent as JSON for `POST` and `PUT`.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let result = match method {
            "GET" => self.headers(self.agent.get(url)).call(),
            "DELETE" => self.headers(self.agent.delete(url)).call(),
            "PUT" => self
                .headers(self.agent.put(url))
                .header("Content-Type", "application/json")
                .send(body.unwrap_or("")),
            "POST" => self
                .headers(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(body.unwrap_or("")),
            other => return Err(format!("unsupported method {other}")),
        };
        let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET url`.
    pub(crate) fn get(&self, url: &str) -> Result<Reply, String> {
        self.send("GET", url, None)
    }
}
