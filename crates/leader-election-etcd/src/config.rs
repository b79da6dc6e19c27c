//! [`EtcdConfig`]: where etcd is, how to authenticate, and where the
//! elections live; validated with errors that name the field and the rule.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use leader_election_abstractions::{Error, Result};

/// A password. Never shown by `Debug`, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An etcd user (etcd's auth: users with roles granting key ranges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdUser {
    /// The user name.
    pub name: String,
    /// Its password.
    pub password: Password,
}

/// TLS settings for `https` endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM file with the CA certificate(s) that signed etcd's certificate
    /// (`ETCDCTL_CACERT`); they replace the built-in roots. Without it the
    /// built-in (Mozilla) roots are used.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`ETCDCTL_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`ETCDCTL_KEY`).
    pub client_key: Option<PathBuf>,
}

/// Everything the etcd provider needs to know besides the election options.
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdConfig {
    /// Client URLs, `http://host:port` or `https://host:port`. Requests go
    /// to the first that answers; a connection failure moves on to the next.
    pub endpoints: Vec<String>,
    /// A user, when etcd has auth enabled.
    pub user: Option<EtcdUser>,
    /// Each resource's election lives under `<key_prefix>/<resource>/` (the
    /// prefix etcd's `concurrency.NewElection(session, "<key_prefix>/<resource>")`
    /// uses) and its candidate registry under
    /// `<key_prefix>/.candidates/<resource>/`.
    pub key_prefix: String,
    /// TLS settings for `https` endpoints.
    pub tls: EtcdTls,
    /// Timeout of every request except the watch; by default
    /// `max(1 s, renew_interval / 2)`.
    pub request_timeout: Option<Duration>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            user: None,
            key_prefix: "leader-election".to_owned(),
            tls: EtcdTls::default(),
            request_timeout: None,
        }
    }
}

impl EtcdConfig {
    /// Reads etcdctl's variables: `ETCDCTL_ENDPOINTS` (comma-separated),
    /// `ETCDCTL_USER` (`name:password`), `ETCDCTL_CACERT`, `ETCDCTL_CERT`
    /// and `ETCDCTL_KEY`; the rest is the default.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = Self::default();
        if let Some(endpoints) = var("ETCDCTL_ENDPOINTS") {
            config.endpoints = endpoints.split(',').map(|e| e.trim().to_owned()).collect();
        }
        if let Some(user) = var("ETCDCTL_USER") {
            let Some((name, password)) = user.split_once(':') else {
                return Err(Error::invalid_option(
                    "user",
                    "ETCDCTL_USER must be `name:password`",
                ));
            };
            config.user = Some(EtcdUser {
                name: name.to_owned(),
                password: Password::new(password),
            });
        }
        config.tls = EtcdTls {
            ca_cert: var("ETCDCTL_CACERT").map(PathBuf::from),
            client_cert: var("ETCDCTL_CERT").map(PathBuf::from),
            client_key: var("ETCDCTL_KEY").map(PathBuf::from),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration, naming the field and the rule.
    pub fn validate(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(Error::invalid_option(
                "endpoints",
                "at least one etcd client URL is needed",
            ));
        }
        for endpoint in &self.endpoints {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || reqwest::Url::parse(endpoint).is_err() {
                return Err(Error::invalid_option(
                    "endpoints",
                    format!("must be http:// or https:// URLs, got {endpoint:?}"),
                ));
            }
        }
        let prefix = &self.key_prefix;
        if prefix.is_empty()
            || prefix.ends_with('/')
            || prefix.chars().any(char::is_control)
            || prefix.len() > 512
        {
            return Err(Error::invalid_option(
                "key_prefix",
                format!("must be 1 to 512 bytes without control characters or a trailing '/', got {prefix:?}"),
            ));
        }
        if let Some(user) = &self.user {
            if user.name.is_empty() || user.name.contains(':') {
                return Err(Error::invalid_option(
                    "user.name",
                    "must be non-empty and contain no ':'",
                ));
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(Error::invalid_option(
                "tls.client_cert",
                "client_cert and client_key go together",
            ));
        }
        if self.request_timeout == Some(Duration::ZERO) {
            return Err(Error::invalid_option(
                "request_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(config: &EtcdConfig) -> (String, String) {
        match config.validate() {
            Err(Error::InvalidOption { field, rule }) => (field.into_owned(), rule),
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn the_default_is_valid() {
        assert!(EtcdConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut config = EtcdConfig {
            endpoints: vec![],
            ..EtcdConfig::default()
        };
        assert_eq!(rule_of(&config).0, "endpoints");
        config.endpoints = vec!["127.0.0.1:2379".into()];
        assert!(rule_of(&config).1.contains("http://"));
        config = EtcdConfig {
            key_prefix: "a/".into(),
            ..EtcdConfig::default()
        };
        assert_eq!(rule_of(&config).0, "key_prefix");
        config = EtcdConfig {
            tls: EtcdTls {
                client_cert: Some("c.pem".into()),
                ..EtcdTls::default()
            },
            ..EtcdConfig::default()
        };
        assert_eq!(rule_of(&config).0, "tls.client_cert");
    }

    #[test]
    fn passwords_are_not_shown() {
        let user = EtcdUser {
            name: "app".into(),
            password: Password::new("s3cret"),
        };
        assert!(!format!("{user:?}").contains("s3cret"));
    }
}
