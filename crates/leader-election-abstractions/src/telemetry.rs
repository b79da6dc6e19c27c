//! What the engine reports about itself: metrics (feature `metrics`) and
//! tracing spans (always).
//!
//! ## Metrics
//!
//! With the `metrics` feature the engine records, through the
//! [`metrics`](https://docs.rs/metrics) facade, the metrics named by the
//! constants below; the application installs the exporter (Prometheus,
//! StatsD, ...) before it starts its elections. Every metric carries the
//! labels [`LABEL_NAME`] (the resource, named `name` as in client-go) and
//! [`LABEL_CANDIDATE`] (the candidate id). Only the engine task records
//! them, at its own steps: `is_leader()` and the other reads of the handle
//! make no metric calls. Without the feature none of this code is compiled.
//!
//! ## Tracing
//!
//! Each store call of an election runs in a DEBUG span named [`STORE_SPAN`]
//! with the fields `call` (`acquire`, `renew`, `release`, `watch`,
//! `publish_candidate`, `withdraw_candidate`, `list_candidates`, `close`),
//! `resource`, `candidate` and `fencing_token` (the term's token; for
//! `acquire`, recorded when the lease is granted). Acquire and renew end with
//! a DEBUG event `outcome` and `elapsed` inside that span.

/// Gauge, 1 while this candidate leads `name`, 0 otherwise (set to 0 when
/// the election starts, stops or its task ends). client-go's name.
pub const MASTER_STATUS: &str = "leader_election_master_status";
/// Counter, terms this candidate began.
pub const LEADERSHIP_ACQUIRED: &str = "leader_election_leadership_acquired_total";
/// Counter, terms that ended, by label [`LABEL_REASON`] (see [`reason_label`]).
pub const LEADERSHIP_LOST: &str = "leader_election_leadership_lost_total";
/// Counter, acquisition attempts that failed (an error or a timeout; a lease
/// held by another candidate is not a failure).
pub const ACQUIRE_FAILURES: &str = "leader_election_acquire_failures_total";
/// Counter, renewals that failed (an error or a timeout; the term goes on
/// until its deadline). A renewal refused by the backend ends the term and
/// counts in [`LEADERSHIP_LOST`] instead.
pub const RENEW_FAILURES: &str = "leader_election_renew_failures_total";
/// Histogram, seconds per acquisition attempt, by label [`LABEL_OUTCOME`]:
/// `acquired`, `held`, `error`, `timeout`.
pub const ACQUIRE_DURATION: &str = "leader_election_acquire_duration_seconds";
/// Histogram, seconds per renewal, by label [`LABEL_OUTCOME`]: `renewed`,
/// `lost`, `error`, `timeout`.
pub const RENEW_DURATION: &str = "leader_election_renew_duration_seconds";
/// Gauge, Unix time in seconds of the last successful answer from the
/// backend (any store call or watch item that did not fail). Alert on
/// `time() - leader_election_last_backend_contact_timestamp_seconds`.
pub const LAST_BACKEND_CONTACT: &str = "leader_election_last_backend_contact_timestamp_seconds";

/// Label on every metric: the contested resource (client-go calls it `name`).
pub const LABEL_NAME: &str = "name";
/// Label on every metric: the candidate id.
pub const LABEL_CANDIDATE: &str = "candidate";
/// Label of [`LEADERSHIP_LOST`]: why the term ended.
pub const LABEL_REASON: &str = "reason";
/// Label of the duration histograms: how the call ended.
pub const LABEL_OUTCOME: &str = "outcome";

/// The name of the DEBUG span around every store call.
pub const STORE_SPAN: &str = "lease_store";

/// The value of [`LABEL_REASON`] for a loss reason: `stopped`, `resigned`,
/// `unhealthy`, `deadline_expired`, `renew_rejected`, `lost_to_other_holder`.
pub fn reason_label(reason: crate::LossReason) -> &'static str {
    use crate::LossReason;
    match reason {
        LossReason::Stopped => "stopped",
        LossReason::Resigned => "resigned",
        LossReason::Unhealthy => "unhealthy",
        LossReason::DeadlineExpired => "deadline_expired",
        LossReason::RenewRejected => "renew_rejected",
        LossReason::LostToOtherHolder => "lost_to_other_holder",
    }
}
