//! The conformance suite: one public async function per case of contract
//! items C1–C11 (the contract in the repository's README). Each panics with a message naming the
//! provider and the broken rule.
//!
//! Run all of them with [`conformance_suite!`](crate::conformance_suite).

mod handover;
mod health;
mod lifecycle;
mod safety;
pub(crate) mod support;
mod view;

pub use support::unique_resource;

pub use handover::{
    c4_handover_on_drop, c4_handover_on_resign, c4_handover_on_stop,
    c4_handover_on_unhealthy_step_down, c5_fencing_tokens_strictly_increase,
    c6_events_alternate_and_every_candidate_sees_changes,
    c6_slow_subscriber_gets_lag_notice_and_never_blocks,
};
pub use health::{
    c7_candidate_health_lists_live_candidates_and_drops_dead_ones,
    c7_leader_below_minimum_score_steps_down, c7_leader_keeps_lease_when_step_down_disabled,
    c7_unhealthy_candidate_never_acquires,
};
pub use lifecycle::{
    c10_bad_input_is_rejected_with_field_and_rule, c11_handles_are_safe_to_share_across_threads,
    c8_lifecycle_start_stop_and_calls_after_stop, c8_stopped_election_leaves_no_trace,
};
pub use safety::{
    c1_mutual_exclusion_under_churn, c1_twins_with_one_id_never_both_lead,
    c2_is_leader_false_at_deadline_even_if_runtime_starved,
    c2_leader_steps_down_at_local_deadline_when_cut_off, c3_crash_failover_within_lease_and_grace,
    c9_follower_retries_until_backend_returns,
    c9_leader_steps_down_during_long_outage_and_recovers, c9_leader_survives_short_outage,
};
pub use view::c2_leadership_view_agrees_with_is_leader;
