#![doc = include_str!("../README.md")]

pub mod answers;
pub mod conformance;
mod outage;
mod provider;
mod proxied;
pub mod proxy;
mod recorder;

pub use conformance::unique_resource;
pub use outage::{assert_safe_through_outage, Outage};
pub use provider::{Candidate, CandidateControl, NetworkFault, Provider};
pub use proxied::{
    assert_reelected_with_higher_token_after_removal, next_loss_reason, BuildElection,
    ProxiedProvider,
};
pub use proxy::{Fault, FaultHandle, FaultProxy};
pub use recorder::{check_no_overlap, LeadershipInterval, LeadershipRecorder, LeadershipReport};

/// Options for tests: the four timings (lease, renew, retry, grace) and the
/// `instance_id` `"test"`, everything else at its default. Panics if they
/// break a rule, which is a mistake in the test.
pub fn timing_options(
    lease: std::time::Duration,
    renew: std::time::Duration,
    retry: std::time::Duration,
    grace: std::time::Duration,
) -> leader_election_abstractions::LeaderElectionOptions {
    leader_election_abstractions::LeaderElectionOptions::builder()
        .lease_duration(lease)
        .renew_interval(renew)
        .retry_interval(retry)
        .grace_period(grace)
        .instance_id("test")
        .build()
        .unwrap_or_else(|e| panic!("test options must be valid: {e}"))
}

/// Generates one test per conformance function for a provider.
///
/// `$attr` are the attributes of each test (for example
/// `#[tokio::test(start_paused = true)]`, or `#[tokio::test] #[ignore]` for a
/// suite that needs a real server); `$provider` builds the provider.
#[macro_export]
macro_rules! conformance_suite {
    ($(#[$attr:meta])* provider = $provider:expr) => {
        $crate::conformance_suite!(@tests [$(#[$attr])*] $provider;
            c1_mutual_exclusion_under_churn,
            c1_twins_with_one_id_never_both_lead,
            c2_leader_steps_down_at_local_deadline_when_cut_off,
            c2_is_leader_false_at_deadline_even_if_runtime_starved,
            c2_leadership_view_agrees_with_is_leader,
            c3_crash_failover_within_lease_and_grace,
            c4_handover_on_stop,
            c4_handover_on_drop,
            c4_handover_on_resign,
            c4_handover_on_unhealthy_step_down,
            c5_fencing_tokens_strictly_increase,
            c6_events_alternate_and_every_candidate_sees_changes,
            c6_slow_subscriber_gets_lag_notice_and_never_blocks,
            c7_unhealthy_candidate_never_acquires,
            c7_leader_below_minimum_score_steps_down,
            c7_leader_keeps_lease_when_step_down_disabled,
            c7_candidate_health_lists_live_candidates_and_drops_dead_ones,
            c8_lifecycle_start_stop_and_calls_after_stop,
            c8_stopped_election_leaves_no_trace,
            c9_leader_survives_short_outage,
            c9_leader_steps_down_during_long_outage_and_recovers,
            c9_follower_retries_until_backend_returns,
            c10_bad_input_is_rejected_with_field_and_rule,
            c11_handles_are_safe_to_share_across_threads,
        );
    };
    (@tests $attrs:tt $provider:expr; $($name:ident,)*) => {
        $( $crate::conformance_suite!(@one $attrs $provider; $name); )*
    };
    (@one [$(#[$attr:meta])*] $provider:expr; $name:ident) => {
        $(#[$attr])*
        async fn $name() {
            let provider = $provider;
            $crate::conformance::$name(&provider).await;
        }
    };
}
