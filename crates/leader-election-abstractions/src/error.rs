//! The one error type of the abstractions crate.

use std::borrow::Cow;

/// A boxed error from a backend client, kept as an error's `source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong when configuring or running an election.
///
/// Each variant says what to do about it: fix the configuration, fix the
/// credentials, wait for the backend, or stop using a stopped election.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value that cannot work. Fix the configuration.
    #[error("invalid option `{field}`: {rule}")]
    InvalidOption {
        /// The option's field name, as in [`LeaderElectionOptions`](crate::LeaderElectionOptions)
        /// or a provider's options.
        field: Cow<'static, str>,
        /// The rule it breaks, in words.
        rule: String,
    },
    /// A resource name, candidate id or metadata entry breaks a naming rule.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// What was named: `resource name`, `candidate id`, `metadata key`, ...
        what: &'static str,
        /// The offending value (truncated when long).
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The backend refused the credentials or permissions (ACL token, RBAC).
    /// Retrying will not help; grant the permission named in the message.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What was refused and which permission is missing.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend could not be reached or answered with a transient error.
    /// The engine retries these itself; this error reaches callers only from
    /// one-shot calls such as [`candidate_health`](crate::HealthBasedLeaderElection::candidate_health).
    #[error("backend unavailable: {message}")]
    BackendUnavailable {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend answered with something that makes no sense (malformed or
    /// missing fields), or there is no usable configuration to reach it (no
    /// kubeconfig and no in-cluster service account, say). Reported rather
    /// than trusted; retrying will not help.
    #[error("unexpected backend response: {message}")]
    Backend {
        /// What made no sense.
        message: String,
        /// The underlying error (a decoding error, say), if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The election was stopped (or dropped); it cannot be used again.
    /// Create a new election to take part once more.
    #[error("the election was stopped")]
    Stopped,
    /// The operation needs a running election; call `start` first.
    #[error("the election is not started; call `start` first")]
    NotStarted,
    /// `start` was called outside a Tokio runtime; the election's engine
    /// runs as a task of one.
    #[error("start() must be called inside a Tokio runtime")]
    NoRuntime,
}

impl Error {
    /// Builds an [`Error::InvalidOption`].
    pub fn invalid_option(field: impl Into<Cow<'static, str>>, rule: impl Into<String>) -> Self {
        Error::InvalidOption {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// Builds an [`Error::InvalidName`], shortening very long values so the
    /// message stays readable.
    pub fn invalid_name(what: &'static str, value: &str, rule: impl Into<String>) -> Self {
        const SHOWN: usize = 64;
        let value = if value.chars().count() > SHOWN {
            let head: String = value.chars().take(SHOWN).collect();
            format!("{head}...")
        } else {
            value.to_owned()
        };
        Error::InvalidName {
            what,
            value,
            rule: rule.into(),
        }
    }

    /// Builds an [`Error::BackendUnavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::BackendUnavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Builds an [`Error::Unauthorized`] without a source.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::Unauthorized {
            message: message.into(),
            source: None,
        }
    }

    /// Builds an [`Error::Backend`] without a source.
    pub fn backend(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error to a backend error (`Unauthorized`,
    /// `BackendUnavailable`, `Backend`), so callers can walk the chain with
    /// [`std::error::Error::source`]. Other variants are returned unchanged.
    #[must_use]
    pub fn with_source(mut self, error: impl Into<BoxError>) -> Self {
        match &mut self {
            Error::Unauthorized { source, .. }
            | Error::BackendUnavailable { source, .. }
            | Error::Backend { source, .. } => *source = Some(error.into()),
            _ => {}
        }
        self
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
