//! The engine's telemetry in one place: the metrics of
//! [`crate::telemetry`] (feature `metrics`; without it every method here is
//! empty) and the DEBUG span around each store call. Only the engine task
//! calls these, never the handle's reads.

use std::time::Duration;

use tracing::field::Empty;

use crate::telemetry::STORE_SPAN;
use crate::types::{FencingToken, LossReason};

/// How an acquisition attempt or a renewal ended, for the duration
/// histograms and the debug event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Acquired,
    Held,
    Renewed,
    Lost,
    Error,
    Timeout,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Acquired => "acquired",
            Outcome::Held => "held",
            Outcome::Renewed => "renewed",
            Outcome::Lost => "lost",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }

    #[cfg(feature = "metrics")]
    fn failed(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Timeout)
    }

    /// Whether the backend answered (successful contact).
    #[cfg(feature = "metrics")]
    fn answered(self) -> bool {
        !self.failed()
    }
}

/// One election's telemetry: its labels and names for spans.
pub(crate) struct Telemetry {
    resource: String,
    candidate: String,
    #[cfg(feature = "metrics")]
    labels: Vec<metrics::Label>,
}

impl Telemetry {
    /// Describes the metrics to the installed recorder and shows this
    /// candidate as not leading.
    pub(crate) fn new(resource: &str, candidate: &str) -> Self {
        let telemetry = Self {
            resource: resource.to_owned(),
            candidate: candidate.to_owned(),
            #[cfg(feature = "metrics")]
            labels: vec![
                metrics::Label::new(crate::telemetry::LABEL_NAME, resource.to_owned()),
                metrics::Label::new(crate::telemetry::LABEL_CANDIDATE, candidate.to_owned()),
            ],
        };
        #[cfg(feature = "metrics")]
        {
            recording::describe();
            telemetry.leading(false);
        }
        telemetry
    }

    /// The DEBUG span around one store call.
    pub(crate) fn span(&self, call: &'static str, token: Option<FencingToken>) -> tracing::Span {
        store_span(call, &self.resource, &self.candidate, token)
    }

    /// An acquisition attempt ended after `elapsed`.
    pub(crate) fn acquired(&self, span: &tracing::Span, elapsed: Duration, outcome: Outcome) {
        span.in_scope(|| tracing::debug!(outcome = outcome.label(), ?elapsed, "acquire done"));
        #[cfg(feature = "metrics")]
        self.call_done(
            crate::telemetry::ACQUIRE_DURATION,
            crate::telemetry::ACQUIRE_FAILURES,
            elapsed,
            outcome,
        );
    }

    /// A renewal ended after `elapsed`.
    pub(crate) fn renewed(&self, span: &tracing::Span, elapsed: Duration, outcome: Outcome) {
        span.in_scope(|| tracing::debug!(outcome = outcome.label(), ?elapsed, "renew done"));
        #[cfg(feature = "metrics")]
        self.call_done(
            crate::telemetry::RENEW_DURATION,
            crate::telemetry::RENEW_FAILURES,
            elapsed,
            outcome,
        );
    }

    /// The backend answered a call (other than acquire and renew, which
    /// report through their own methods) or sent a watch item.
    pub(crate) fn contact(&self) {
        #[cfg(feature = "metrics")]
        recording::contact(&self.labels);
    }

    /// A term began.
    pub(crate) fn began_term(&self) {
        #[cfg(feature = "metrics")]
        {
            self.leading(true);
            metrics::counter!(crate::telemetry::LEADERSHIP_ACQUIRED, self.labels.clone())
                .increment(1);
        }
    }

    /// A term ended for `reason`.
    pub(crate) fn ended_term(&self, reason: LossReason) {
        #[cfg(feature = "metrics")]
        {
            self.leading(false);
            let mut labels = self.labels.clone();
            labels.push(metrics::Label::new(
                crate::telemetry::LABEL_REASON,
                crate::telemetry::reason_label(reason),
            ));
            metrics::counter!(crate::telemetry::LEADERSHIP_LOST, labels).increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }

    #[cfg(feature = "metrics")]
    fn leading(&self, leading: bool) {
        metrics::gauge!(crate::telemetry::MASTER_STATUS, self.labels.clone()).set(if leading {
            1.0
        } else {
            0.0
        });
    }

    #[cfg(feature = "metrics")]
    fn call_done(
        &self,
        histogram: &'static str,
        failures: &'static str,
        elapsed: Duration,
        outcome: Outcome,
    ) {
        let mut labels = self.labels.clone();
        labels.push(metrics::Label::new(
            crate::telemetry::LABEL_OUTCOME,
            outcome.label(),
        ));
        metrics::histogram!(histogram, labels).record(elapsed.as_secs_f64());
        if outcome.failed() {
            metrics::counter!(failures, self.labels.clone()).increment(1);
        }
        if outcome.answered() {
            recording::contact(&self.labels);
        }
    }
}

/// The DEBUG span around one store call (`fencing_token` empty when `None`,
/// for the caller to record later).
pub(crate) fn store_span(
    call: &'static str,
    resource: &str,
    candidate: &str,
    token: Option<FencingToken>,
) -> tracing::Span {
    let span = tracing::debug_span!(
        STORE_SPAN,
        call,
        resource = %resource,
        candidate = %candidate,
        fencing_token = Empty,
    );
    if let Some(token) = token {
        span.record("fencing_token", token.0);
    }
    span
}

#[cfg(feature = "metrics")]
impl Drop for Telemetry {
    /// The engine task ended, however (stopped, aborted, panicked): this
    /// candidate no longer leads.
    fn drop(&mut self) {
        self.leading(false);
    }
}

#[cfg(feature = "metrics")]
mod recording {
    use std::time::SystemTime;

    use crate::telemetry::{
        ACQUIRE_DURATION, ACQUIRE_FAILURES, LAST_BACKEND_CONTACT, LEADERSHIP_ACQUIRED,
        LEADERSHIP_LOST, MASTER_STATUS, RENEW_DURATION, RENEW_FAILURES,
    };

    /// Gives the recorder each metric's unit and help text.
    pub(super) fn describe() {
        use metrics::Unit;
        metrics::describe_gauge!(
            MASTER_STATUS,
            "1 while this candidate leads the resource, 0 otherwise"
        );
        metrics::describe_counter!(LEADERSHIP_ACQUIRED, "Terms this candidate began");
        metrics::describe_counter!(LEADERSHIP_LOST, "Terms that ended, by reason");
        metrics::describe_counter!(
            ACQUIRE_FAILURES,
            "Acquisition attempts that failed (error or timeout)"
        );
        metrics::describe_counter!(RENEW_FAILURES, "Renewals that failed (error or timeout)");
        metrics::describe_histogram!(
            ACQUIRE_DURATION,
            Unit::Seconds,
            "Duration of acquisition attempts, by outcome"
        );
        metrics::describe_histogram!(
            RENEW_DURATION,
            Unit::Seconds,
            "Duration of renewals, by outcome"
        );
        metrics::describe_gauge!(
            LAST_BACKEND_CONTACT,
            Unit::Seconds,
            "Unix time of the last successful answer from the backend"
        );
    }

    /// Records a successful answer from the backend now.
    pub(super) fn contact(labels: &[metrics::Label]) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        metrics::gauge!(LAST_BACKEND_CONTACT, labels.to_vec()).set(now);
    }
}
