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
/// Default of [`ConsulConfig::max_response_bytes`]: 4 MiB, several times the
/// largest answer a lock key (512 KiB value) or a candidate list gives.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Consul's default `session_ttl_min`.
pub const DEFAULT_SESSION_TTL_MIN: Duration = Duration::from_secs(10);
/// Default of [`ConsulConfig::max_connections`]: well under the agent's
/// default `http_max_conns_per_client` (200), which every process on the
/// host shares.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
/// Largest accepted [`ConsulConfig::max_connections`].
pub const MAX_CONNECTIONS_LIMIT: usize = 10_000;

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
    /// (`CONSUL_CACERT`). When it or [`ca_path`](Self::ca_path) is set, only
    /// these CAs are trusted (as the `consul` CLI does); otherwise the
    /// built-in Mozilla roots are.
    pub ca_cert: Option<PathBuf>,
    /// A directory whose every file is a PEM file of trusted CA certificates
    /// (`CONSUL_CAPATH`); replaces the built-in roots like `ca_cert`.
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`CONSUL_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`CONSUL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// The name the agent's certificate must carry, when it differs from
    /// the address's host (`CONSUL_TLS_SERVER_NAME`).
    pub server_name: Option<String>,
    /// Accepts any server certificate (`CONSUL_HTTP_SSL_VERIFY=false`).
    /// Anyone on the path can then read the token: for tests only.
    pub insecure_skip_verify: bool,
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
    /// A file holding the ACL token (`CONSUL_HTTP_TOKEN_FILE`), read when the
    /// client is built; used only when [`token`](Self::token) is `None`.
    pub token_file: Option<PathBuf>,
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
    /// The largest answer body read from the agent; a longer one is an
    /// error, never read into memory whole. Between 1 MiB and 1 GiB,
    /// default [`DEFAULT_MAX_RESPONSE_BYTES`]. The factory's shared watch
    /// reads the whole `key_prefix` in one answer, so this also bounds how
    /// much a prefix may hold.
    pub max_response_bytes: usize,
    /// The most requests one factory has in flight at once, its shared
    /// watch included, and the most idle connections it keeps: so about
    /// the most connections it holds to the agent (the pool may briefly
    /// finish opening one more for a request that got a reused one).
    /// Further requests wait for a free slot (and a warning is logged). The agent refuses
    /// more than `limits.http_max_conns_per_client` (200 by default)
    /// connections from one IP address, shared by every process on the
    /// host, so keep the sum over a host's factories below it. Between 2
    /// and 10 000, default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:8500".to_owned(),
            token: None,
            token_file: None,
            datacenter: None,
            key_prefix: "service/leader-election".to_owned(),
            tls: ConsulTls::default(),
            request_timeout: Duration::from_secs(5),
            watch_wait: Duration::from_secs(60),
            consistency: Consistency::Default,
            session_ttl_min: DEFAULT_SESSION_TTL_MIN,
            node_checks: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConsulConfig {
    /// Defaults overridden by the standard Consul variables, read as the
    /// `consul` CLI reads them: `CONSUL_HTTP_ADDR` (with or without scheme),
    /// `CONSUL_HTTP_SSL`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE` (when
    /// no token is given), `CONSUL_CACERT`, `CONSUL_CAPATH`,
    /// `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`
    /// and `CONSUL_HTTP_SSL_VERIFY`. Files are read when the client is
    /// built, so a missing one is an error naming its field there.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables taken from `lookup`
    /// instead of the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &str| {
            let value = var(name)?;
            let parsed = parse_go_bool(&value);
            if parsed.is_none() {
                tracing::warn!(variable = name, value = %value, "not a boolean; ignored");
            }
            parsed
        };
        let mut config = Self::default();
        let https = flag("CONSUL_HTTP_SSL") == Some(true);
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
        config.token_file = var("CONSUL_HTTP_TOKEN_FILE").map(PathBuf::from);
        config.tls.ca_cert = var("CONSUL_CACERT").map(PathBuf::from);
        config.tls.ca_path = var("CONSUL_CAPATH").map(PathBuf::from);
        config.tls.client_cert = var("CONSUL_CLIENT_CERT").map(PathBuf::from);
        config.tls.client_key = var("CONSUL_CLIENT_KEY").map(PathBuf::from);
        config.tls.server_name = var("CONSUL_TLS_SERVER_NAME");
        config.tls.insecure_skip_verify = flag("CONSUL_HTTP_SSL_VERIFY") == Some(false);
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
        if !(1 << 20..=1 << 30).contains(&self.max_response_bytes) {
            return Err(Error::invalid_option(
                "max_response_bytes",
                format!(
                    "must be between 1 MiB and 1 GiB, got {}",
                    self.max_response_bytes
                ),
            ));
        }
        if !(2..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(Error::invalid_option(
                "max_connections",
                format!(
                    "must be between 2 (the shared watch holds one) and {MAX_CONNECTIONS_LIMIT}, got {}",
                    self.max_connections
                ),
            ));
        }
        if let Some(name) = &self.tls.server_name {
            if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(Error::invalid_option(
                    "tls.server_name",
                    format!("must be a DNS name or IP address, got {name:?}"),
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

/// Go's `strconv.ParseBool`, which the `consul` CLI applies to its flags.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
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
