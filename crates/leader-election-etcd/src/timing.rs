//! The etcd rules on time: whole-second lease TTLs that cover the lease plus
//! the grace period, and the term limit.

use std::time::Duration;

use leader_election_abstractions::{Error, LeaderElectionOptions, Result};

/// etcd's largest lease TTL (`MaxLeaseTTL`, 9 000 000 000 s).
pub const MAX_LEASE_TTL_SECONDS: i64 = 9_000_000_000;

/// Whole seconds, rounded up, at least one.
pub(crate) fn whole_seconds(duration: Duration) -> i64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i64::try_from(seconds).unwrap_or(i64::MAX).max(1)
}

/// The TTL of the etcd lease behind a term: `lease_duration + grace_period`
/// rounded up to whole seconds. etcd deletes our key (freeing the election
/// for everyone, etcd's own clients included) only this long after the last
/// keep-alive reached it, so the grace period stays the margin between our
/// leader's local deadline (`lease_duration` after the keep-alive was sent)
/// and the moment anyone else can lead, as on the other backends.
pub(crate) fn lease_ttl(options: &LeaderElectionOptions) -> i64 {
    whole_seconds(options.lease_duration.saturating_add(options.grace_period))
}

/// The longest a term may last from the start of the keep-alive (or the
/// acquiring transaction) that began or extended it: the lease duration,
/// and never more than the lease TTL minus the grace period, so etcd keeps
/// our key at least a grace period past our leader's deadline.
pub(crate) fn term_limit(options: &LeaderElectionOptions) -> Duration {
    let ttl = Duration::from_secs(u64::try_from(lease_ttl(options)).unwrap_or(u64::MAX));
    options
        .lease_duration
        .min(ttl.saturating_sub(options.grace_period))
}

/// The etcd rule on options: the lease TTL must be one etcd grants.
pub(crate) fn validate(options: &LeaderElectionOptions) -> Result<()> {
    let ttl = lease_ttl(options);
    if ttl > MAX_LEASE_TTL_SECONDS {
        return Err(Error::invalid_option(
            "lease_duration",
            format!(
                "lease_duration + grace_period must be at most etcd's largest lease TTL ({MAX_LEASE_TTL_SECONDS} s), got {ttl} s"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(lease_ms: u64, grace_ms: u64) -> LeaderElectionOptions {
        LeaderElectionOptions {
            lease_duration: Duration::from_millis(lease_ms),
            grace_period: Duration::from_millis(grace_ms),
            ..LeaderElectionOptions::default()
        }
    }

    #[test]
    fn the_lease_ttl_covers_lease_and_grace_rounded_up() {
        assert_eq!(lease_ttl(&options(2_000, 1_000)), 3);
        assert_eq!(lease_ttl(&options(2_500, 0)), 3);
        assert_eq!(lease_ttl(&options(1, 0)), 1);
        assert_eq!(lease_ttl(&options(15_000, 2_000)), 17);
    }

    #[test]
    fn a_term_ends_at_least_a_grace_period_before_etcd_frees_the_key() {
        for (lease, grace) in [(2_000, 1_000), (2_500, 0), (1_200, 300), (15_000, 2_000)] {
            let o = options(lease, grace);
            let ttl = Duration::from_secs(u64::try_from(lease_ttl(&o)).expect("positive"));
            assert_eq!(term_limit(&o), o.lease_duration);
            assert!(term_limit(&o) + o.grace_period <= ttl, "{lease} {grace}");
        }
    }

    #[test]
    fn a_ttl_beyond_etcds_limit_is_refused_naming_the_field() {
        let huge = options(u64::MAX / 2, 0);
        match validate(&huge) {
            Err(Error::InvalidOption { field, rule }) => {
                assert_eq!(field, "lease_duration");
                assert!(rule.contains("largest lease TTL"), "{rule}");
            }
            other => panic!("expected an invalid option, got {other:?}"),
        }
        assert!(validate(&options(2_000, 1_000)).is_ok());
    }
}
