//! [`ConsulConfig`]: where the agent is, how to authenticate, and where the
//! locks live; validated with errors that name the field and the rule.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use leader_election_abstractions::{Error, Result};

/// Consul's own upper bound on a session TTL.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(86_400);
/// Consul's upper bound on a session's lock-delay. The lock-delay is
/// `lease_duration + grace_period`, capped here; a capped lock-delay
/// shortens the leader's term to `MAX_LOCK_DELAY − grace_period`.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul's default `session_ttl_min`.
pub const DEFAULT_SESSION_TTL_MIN: Duration = Duration::from_secs(10);

/// An ACL token. Never shown by `Debug` or `Display`, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct AclToken(String);

impl AclToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AclToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AclToken(<redacted>)")
    }
}

/// TLS settings for an `https` agent address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsulTls {
    /// PEM file with the CA certificate(s) that signed the agent's certificate
    /// (`CONSUL_CACERT`). Without it the system roots are used.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`CONSUL_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`CONSUL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

/// How observers read the lock key (the holder always checks with a
/// `consistent` read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consistency {
    /// Served by the leader; may be briefly stale after a leader change.
    #[default]
    Default,
    /// The leader confirms with a quorum first.
    Consistent,
    /// Any server answers; cheapest, may lag.
    Stale,
}

/// Everything the Consul provider needs to know besides the election options.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsulConfig {
    /// Agent address, `http://host:port` or `https://host:port`.
    pub address: String,
    /// ACL token sent as `X-Consul-Token`.
    pub token: Option<AclToken>,
    /// Datacenter to use instead of the agent's own.
    pub datacenter: Option<String>,
    /// KV prefix under which each resource gets `<prefix>/<resource>/.lock`
    /// (the key `consul lock <prefix>/<resource>` uses) and its candidate registry.
    pub key_prefix: String,
    /// TLS settings for `https` addresses.
    pub tls: ConsulTls,
    /// Timeout of every non-blocking HTTP request.
    pub request_timeout: Duration,
    /// How long one blocking query on the lock key waits at most.
    pub watch_wait: Duration,
    /// Consistency of observers' reads.
    pub consistency: Consistency,
    /// The agent's `session_ttl_min`: lease durations below it are rejected
    /// up front. Consul's default is 10 s.
    pub session_ttl_min: Duration,
    /// Health checks the session follows. Empty by default, so that a node
    /// health flap does not end a leadership that the lease itself still covers.
    pub node_checks: Vec<String>,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:8500".to_owned(),
            token: None,
            datacenter: None,
            key_prefix: "service/leader-election".to_owned(),
            tls: ConsulTls::default(),
            request_timeout: Duration::from_secs(5),
            watch_wait: Duration::from_secs(60),
            consistency: Consistency::Default,
            session_ttl_min: DEFAULT_SESSION_TTL_MIN,
            node_checks: Vec::new(),
        }
    }
}

impl ConsulConfig {
    /// Defaults overridden by the standard Consul variables: `CONSUL_HTTP_ADDR`
    /// (with or without scheme), `CONSUL_HTTP_SSL`, `CONSUL_HTTP_TOKEN`,
    /// `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        let https = var("CONSUL_HTTP_SSL").is_some_and(|v| v == "true" || v == "1");
        if let Some(address) = var("CONSUL_HTTP_ADDR") {
            config.address = if address.contains("://") {
                address
            } else if https {
                format!("https://{address}")
            } else {
                format!("http://{address}")
            };
        }
        config.token = var("CONSUL_HTTP_TOKEN").map(AclToken::new);
        config.tls.ca_cert = var("CONSUL_CACERT").map(PathBuf::from);
        config.tls.client_cert = var("CONSUL_CLIENT_CERT").map(PathBuf::from);
        config.tls.client_key = var("CONSUL_CLIENT_KEY").map(PathBuf::from);
        config
    }

    /// Checks every field; the error names the first one that breaks a rule.
    pub fn validate(&self) -> Result<()> {
        let scheme_ok = self.address.starts_with("http://") || self.address.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&self.address).is_err() {
            return Err(Error::invalid_option(
                "address",
                format!("must be an http:// or https:// URL, got {:?}", self.address),
            ));
        }
        validate_key_prefix(&self.key_prefix)?;
        if self.request_timeout.is_zero() {
            return Err(Error::invalid_option(
                "request_timeout",
                "must be greater than zero",
            ));
        }
        if self.watch_wait < Duration::from_secs(1) || self.watch_wait > Duration::from_secs(600) {
            return Err(Error::invalid_option(
                "watch_wait",
                "must be between 1 s and 10 min (Consul's maximum blocking wait)",
            ));
        }
        if let Some(dc) = &self.datacenter {
            if dc.is_empty()
                || !dc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::invalid_option(
                    "datacenter",
                    "must be non-empty ASCII letters, digits, '-' or '_'",
                ));
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(Error::invalid_option(
                "tls.client_cert",
                "client_cert and client_key must be given together",
            ));
        }
        Ok(())
    }
}

/// Key characters recent Consul versions accept: `A-Za-z0-9,-_./`, no
/// leading `/`, no empty or `..` segments.
pub(crate) fn validate_key_prefix(prefix: &str) -> Result<()> {
    let rule = "must be 1 to 256 characters of A-Za-z0-9 , - _ . /, \
                without a leading or trailing '/', empty segments or '..'";
    let chars_ok = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | '-' | '_' | '.' | '/'));
    let segments_ok = prefix
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if prefix.is_empty() || prefix.len() > 256 || !chars_ok || !segments_ok {
        return Err(Error::invalid_option(
            "key_prefix",
            format!("{rule}; got {prefix:?}"),
        ));
    }
    Ok(())
}

/// Encodes a candidate id as one key segment: letters, digits, `-` and `_`
/// stay, every other byte becomes `,HH` (so no id can form `.` or `..`).
pub(crate) fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!(",{byte:02X}"));
        }
    }
    out
}
