//! The Kubernetes rules on time: whole-second lease durations and the term
//! limit that keeps a client-go follower from seeing our lease expire while
//! we still lead.

use std::time::Duration;

use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::{Error, LeaderElectionOptions, Result};

/// How much earlier than the truth a client-go follower may date our last
/// renewal. client-go notices a renewal by comparing raw records in which
/// `renewTime` is serialised to whole seconds, so renewals within one second
/// look unchanged to it: it can date the lease from a renewal up to one
/// second older than our last. A term therefore lasts at most
/// `lease_duration` minus this, shortened further for clock rates (see
/// [`LeaseStore::term_limit`](leader_election_abstractions::store::LeaseStore::term_limit)).
pub const CLIENT_GO_DATING_MARGIN: Duration = Duration::from_secs(1);

/// `leaseDurationSeconds` for a duration: whole seconds, rounded up (and at
/// least one), so observers never take the lease before our own deadline
/// passed.
pub(crate) fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX).max(1)
}

/// The longest a term may last from the start of the request that began or
/// extended it, on our own clock: the lease minus
/// [`CLIENT_GO_DATING_MARGIN`], shortened by the clock-rate margin the grace
/// period stands for, `× lease / (lease + grace)`.
///
/// Our own followers wait `lease + grace` on their clocks, so a leader whose
/// clock runs slower than theirs by up to that ratio still ends its term in
/// time. A client-go follower has no grace period: it takes the lease
/// `leaseDurationSeconds` after it dated our last renewal. So a leader whose
/// clock runs slow must count its term shorter for it, by the same ratio
/// (found by the simulation: a leader with a clock 9 % slow, inside that
/// bound, still led when a client-go follower took over). With the defaults
/// (15 s lease, 5 s grace) that is 14 s × 15/20 = 10.5 s; client-go's own
/// leaders stop at `renewDeadline`, 10 s by default, for the same reason.
pub(crate) fn term_limit(options: &LeaderElectionOptions) -> Duration {
    if is_active(Mutant::KubernetesFullLeaseTerm) {
        return options.lease_duration;
    }
    let lease = options.lease_duration.as_nanos();
    let dated = options
        .lease_duration
        .saturating_sub(CLIENT_GO_DATING_MARGIN)
        .as_nanos();
    let paced = lease.saturating_add(options.grace_period.as_nanos());
    if paced == 0 {
        return Duration::ZERO;
    }
    // dated × lease / (lease + grace), in nanoseconds: at most `dated`.
    let nanos = dated.saturating_mul(lease) / paced;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The Kubernetes rule on options: a renewal must fall due inside a term.
pub(crate) fn validate_timing(options: &LeaderElectionOptions) -> Result<()> {
    let limit = term_limit(options);
    if options.renew_interval >= limit {
        return Err(Error::invalid_option(
            "renew_interval",
            format!(
                "must be shorter than the term limit on Kubernetes, (lease_duration - 1 s) × lease_duration / (lease_duration + grace_period) = {limit:?} (client-go followers date renewals to the whole second and have no grace period, so a term lasts at most that on our clock), got renew_interval {:?}, lease_duration {:?} and grace_period {:?}",
                options.renew_interval, options.lease_duration, options.grace_period
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(lease_ms: u64, renew_ms: u64) -> LeaderElectionOptions {
        LeaderElectionOptions {
            lease_duration: Duration::from_millis(lease_ms),
            renew_interval: Duration::from_millis(renew_ms),
            grace_period: Duration::from_millis(lease_ms / 4),
            ..LeaderElectionOptions::default()
        }
    }

    #[test]
    fn lease_durations_round_up_to_whole_seconds() {
        let cases = [
            (Duration::from_secs(2), 2),
            (Duration::from_millis(2_001), 3),
            (Duration::from_nanos(1_000_000_001), 2),
            (Duration::from_millis(500), 1),
            (Duration::from_millis(15_999), 16),
        ];
        for (duration, seconds) in cases {
            assert_eq!(whole_seconds(duration), seconds, "{duration:?}");
        }
    }

    #[test]
    fn a_zero_duration_is_one_second_and_a_huge_one_saturates() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), i32::MAX);
        assert_eq!(
            whole_seconds(Duration::from_secs(
                u64::try_from(i32::MAX).expect("fits") + 1
            )),
            i32::MAX
        );
    }

    #[test]
    fn a_term_keeps_a_one_second_margin_for_client_go_followers_and_the_drift_margin() {
        // (2 s - 1 s) × 2 / 2.5
        assert_eq!(term_limit(&options(2_000, 500)), Duration::from_millis(800));
        // (15 s - 1 s) × 15 / 20
        assert_eq!(
            term_limit(&LeaderElectionOptions::default()),
            Duration::from_millis(10_500)
        );
        assert_eq!(term_limit(&options(800, 100)), Duration::ZERO);
        let no_grace = LeaderElectionOptions {
            grace_period: Duration::ZERO,
            ..options(4_000, 500)
        };
        assert_eq!(term_limit(&no_grace), Duration::from_secs(3));
    }

    #[test]
    fn a_renew_interval_that_does_not_fit_the_term_is_refused_naming_the_rule() {
        assert!(validate_timing(&options(2_000, 799)).is_ok());
        for (lease, renew) in [(2_000, 800), (1_500, 600), (1_000, 100)] {
            let error = validate_timing(&options(lease, renew)).expect_err("refused");
            match &error {
                Error::InvalidOption { field, rule } => {
                    assert_eq!(field, "renew_interval");
                    assert!(rule.contains("(lease_duration - 1 s) × lease_duration / (lease_duration + grace_period)"), "{rule}");
                }
                other => panic!("expected an invalid option, got {other:?}"),
            }
        }
    }
}
