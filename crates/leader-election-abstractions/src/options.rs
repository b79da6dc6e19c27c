//! [`LeaderElectionOptions`]: the seed's options, their defaults, a builder and
//! validation that names the field and the rule it breaks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{self as names, validate_metadata};

/// Options shared by every provider; the same fields and defaults as the .NET
/// `LeaderElectionOptions`.
///
/// Build them with [`LeaderElectionOptions::builder`] (validated on
/// [`build`](LeaderElectionOptionsBuilder::build)), start from
/// [`Default`], or deserialize them from configuration. Durations in
/// configuration are human-readable (`"15s"`, `"500ms"`); missing fields take
/// their defaults:
///
/// ```
/// # use leader_election_abstractions::LeaderElectionOptions;
/// let options: LeaderElectionOptions = serde_json::from_str(r#"{
///     "lease_duration": "30s",
///     "renew_interval": "10s",
///     "candidate_metadata": { "region": "eu-west-1" }
/// }"#).unwrap();
/// options.validate().unwrap();
/// assert_eq!(options.retry_interval, std::time::Duration::from_secs(2));
/// ```
///
/// | field | default | meaning |
/// |---|---|---|
/// | `lease_duration` | 15 s | how long a lease lasts without renewal |
/// | `renew_interval` | 5 s | how often the leader renews |
/// | `retry_interval` | 2 s | how often a follower retries when it has no better hint |
/// | `grace_period` | 5 s | extra wait before an expired lease is taken (clock-rate margin) |
/// | `instance_id` | host name + random suffix | this process's candidate id unless one is given |
/// | `candidate_metadata` | empty | key/value pairs other candidates can read |
/// | `enable_health_checks` | true | health-based elections publish and honour health |
/// | `minimum_health_score` | 0.8 | below it a candidate counts as unhealthy |
/// | `step_down_when_unhealthy` | true | an unhealthy leader releases the lease at once |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderElectionOptions {
    /// How long a lease lasts after its last successful renewal. A leader's
    /// [`is_leader`](crate::LeaderElection::is_leader) turns false at the
    /// start of its last successful renew plus this duration.
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How often the leader renews its lease. Must leave room for at least two
    /// renewals inside one lease (`2 × renew_interval < lease_duration`).
    #[serde(with = "humantime_serde")]
    pub renew_interval: Duration,
    /// How long a follower waits between attempts when the backend gave it no
    /// expiry hint, and the base of the backoff after backend errors.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// Extra time a follower waits after a lease expired before taking it: a
    /// margin for clocks that run at slightly different rates. Consul uses it
    /// as the session lock-delay.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// Candidate id used when `create_election` is given none. Defaults to the
    /// host name (the seed's `Environment.MachineName`).
    pub instance_id: String,
    /// Metadata published with this candidate (health-based elections) and
    /// with its lease when it leads.
    pub candidate_metadata: BTreeMap<String, String>,
    /// Whether health-based elections publish their health to the candidate
    /// registry and honour it: unhealthy candidates never acquire.
    pub enable_health_checks: bool,
    /// Health scores below this count as unhealthy. Between 0 and 1.
    pub minimum_health_score: f64,
    /// Whether a leader that becomes unhealthy releases its lease at once.
    pub step_down_when_unhealthy: bool,
}

impl Default for LeaderElectionOptions {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(2),
            grace_period: Duration::from_secs(5),
            instance_id: default_instance_id(),
            candidate_metadata: BTreeMap::new(),
            enable_health_checks: true,
            minimum_health_score: 0.8,
            step_down_when_unhealthy: true,
        }
    }
}

/// The host name (as the seed's `Environment.MachineName`; `"localhost"` when
/// it cannot be read) plus a random suffix fixed for the life of the process,
/// as controller-runtime does: two processes on one host, or a replacement
/// Pod that reuses its predecessor's name, never share a candidate id by
/// default.
fn default_instance_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let from_env = ["HOSTNAME", "COMPUTERNAME"]
            .iter()
            .filter_map(|key| std::env::var(key).ok())
            .find(|name| !name.trim().is_empty());
        let from_file = || {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let host = from_env
            .or_else(from_file)
            .unwrap_or_else(|| "localhost".to_owned());
        // Room for the suffix and for the `-N` a factory may add.
        let host: String = host.chars().take(names::MAX_NAME_BYTES / 4).collect();
        format!("{host}-{:08x}", process_nonce())
    })
    .clone()
}

/// 32 random bits, from the standard library's per-process hash keys mixed
/// with the process id and the time (not for cryptography: only to tell
/// processes apart).
fn process_nonce() -> u32 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut hasher);
    std::time::SystemTime::now().hash(&mut hasher);
    (hasher.finish() >> 32) as u32
}

impl LeaderElectionOptions {
    /// Starts a builder from the defaults.
    pub fn builder() -> LeaderElectionOptionsBuilder {
        LeaderElectionOptionsBuilder {
            options: Self::default(),
        }
    }

    /// Checks every rule; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<()> {
        positive("lease_duration", self.lease_duration)?;
        positive("renew_interval", self.renew_interval)?;
        positive("retry_interval", self.retry_interval)?;
        positive("grace_period", self.grace_period)?;
        if self.renew_interval.saturating_mul(2) >= self.lease_duration {
            return Err(Error::invalid_option(
                "renew_interval",
                format!(
                    "must leave room for at least two renewals inside the lease \
                     (2 × renew_interval < lease_duration), got renew_interval {:?} \
                     and lease_duration {:?}",
                    self.renew_interval, self.lease_duration
                ),
            ));
        }
        if self.retry_interval > self.lease_duration {
            return Err(Error::invalid_option(
                "retry_interval",
                format!(
                    "must not exceed lease_duration ({:?}), got {:?}",
                    self.lease_duration, self.retry_interval
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.minimum_health_score) {
            return Err(Error::invalid_option(
                "minimum_health_score",
                format!("must be between 0 and 1, got {}", self.minimum_health_score),
            ));
        }
        names::validate_candidate_id(&self.instance_id)
            .map_err(|e| Error::invalid_option("instance_id", e.to_string()))?;
        validate_metadata(&self.candidate_metadata)
    }
}

fn positive(field: &'static str, value: Duration) -> Result<()> {
    if value.is_zero() {
        return Err(Error::invalid_option(field, "must be greater than zero"));
    }
    Ok(())
}

/// Metadata from any iterator of string pairs, for
/// [`update_health`](crate::HealthBasedLeaderElection::update_health) and
/// [`candidate_metadata`](LeaderElectionOptions::candidate_metadata):
///
/// ```
/// let metadata = leader_election_abstractions::metadata([("version", "1.2.0"), ("zone", "a")]);
/// assert_eq!(metadata["zone"], "a");
/// ```
pub fn metadata<I, K, V>(pairs: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs
        .into_iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect()
}

/// Builds [`LeaderElectionOptions`] and validates them on [`build`](Self::build).
///
/// ```
/// # use std::time::Duration;
/// # use leader_election_abstractions::LeaderElectionOptions;
/// let options = LeaderElectionOptions::builder()
///     .lease_duration(Duration::from_secs(30))
///     .renew_interval(Duration::from_secs(10))
///     .instance_id("worker-1")
///     .metadata("version", "1.0.0")
///     .minimum_health_score(0.75)
///     .build()
///     .unwrap();
/// assert_eq!(options.retry_interval, Duration::from_secs(2));
///
/// let error = LeaderElectionOptions::builder()
///     .renew_interval(Duration::from_secs(10)) // 2 × 10s ≥ the default 15s lease
///     .build()
///     .unwrap_err();
/// assert!(error.to_string().contains("renew_interval"));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LeaderElectionOptionsBuilder {
    options: LeaderElectionOptions,
}

impl LeaderElectionOptionsBuilder {
    /// Sets [`LeaderElectionOptions::lease_duration`].
    pub fn lease_duration(mut self, value: Duration) -> Self {
        self.options.lease_duration = value;
        self
    }
    /// Sets [`LeaderElectionOptions::renew_interval`].
    pub fn renew_interval(mut self, value: Duration) -> Self {
        self.options.renew_interval = value;
        self
    }
    /// Sets [`LeaderElectionOptions::retry_interval`].
    pub fn retry_interval(mut self, value: Duration) -> Self {
        self.options.retry_interval = value;
        self
    }
    /// Sets [`LeaderElectionOptions::grace_period`].
    pub fn grace_period(mut self, value: Duration) -> Self {
        self.options.grace_period = value;
        self
    }
    /// Sets [`LeaderElectionOptions::instance_id`].
    pub fn instance_id(mut self, value: impl Into<String>) -> Self {
        self.options.instance_id = value.into();
        self
    }
    /// Adds one entry to [`LeaderElectionOptions::candidate_metadata`].
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options
            .candidate_metadata
            .insert(key.into(), value.into());
        self
    }
    /// Sets [`LeaderElectionOptions::enable_health_checks`].
    pub fn enable_health_checks(mut self, value: bool) -> Self {
        self.options.enable_health_checks = value;
        self
    }
    /// Sets [`LeaderElectionOptions::minimum_health_score`].
    pub fn minimum_health_score(mut self, value: f64) -> Self {
        self.options.minimum_health_score = value;
        self
    }
    /// Sets [`LeaderElectionOptions::step_down_when_unhealthy`].
    pub fn step_down_when_unhealthy(mut self, value: bool) -> Self {
        self.options.step_down_when_unhealthy = value;
        self
    }
    /// Validates and returns the options.
    pub fn build(self) -> Result<LeaderElectionOptions> {
        self.options.validate()?;
        Ok(self.options)
    }
}
