//! The leadership-interval recorder and overlap checker.
//!
//! The recorder samples every candidate's `is_leader()` on a fine grid and
//! turns the samples into intervals; any sample where two candidates lead at
//! once is a violation of mutual exclusion (contract C1), and so is any pair
//! of overlapping intervals or a fencing token that does not grow from one
//! interval to the next.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use leader_election_abstractions::{FencingToken, LeaderElection};
use tokio::time::Instant;

/// One candidate's uninterrupted stretch of leadership, as sampled.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadershipInterval {
    /// Who led.
    pub candidate_id: String,
    /// The term's fencing token, if the candidate reported one.
    pub fencing_token: Option<FencingToken>,
    /// First sample at which it led.
    pub start: Instant,
    /// First sample at which it no longer led (or the end of recording).
    pub end: Instant,
}

/// A candidate's open term, if it leads: since when, with which token.
type OpenTerm = Option<(Instant, Option<FencingToken>)>;

#[derive(Default)]
struct Recording {
    watched: Vec<(String, Weak<dyn LeaderElection>, OpenTerm)>,
    intervals: Vec<LeadershipInterval>,
    violations: Vec<String>,
    samples: u64,
}

/// Samples `is_leader()` of a growing set of candidates until finished.
pub struct LeadershipRecorder {
    recording: Arc<Mutex<Recording>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LeadershipRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadershipRecorder").finish_non_exhaustive()
    }
}

impl LeadershipRecorder {
    /// Starts sampling every `step`.
    pub fn start(step: Duration) -> Self {
        let recording = Arc::new(Mutex::new(Recording::default()));
        let sampler = Arc::clone(&recording);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(step);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                sample(&mut sampler.lock(), Instant::now());
            }
        });
        Self { recording, task }
    }

    /// Adds a candidate to watch from now on. The recorder holds it weakly,
    /// so dropping the candidate's last handle still drops the election.
    pub fn watch(&self, election: &Arc<dyn LeaderElection>) {
        let id = election.candidate_id().to_owned();
        self.recording
            .lock()
            .watched
            .push((id, Arc::downgrade(election), None));
    }

    /// Takes one sample now, in addition to the periodic ones.
    pub fn sample_now(&self) {
        sample(&mut self.recording.lock(), Instant::now());
    }

    /// Stops sampling and returns what was recorded.
    pub fn finish(self) -> LeadershipReport {
        self.task.abort();
        let mut recording = self.recording.lock();
        let now = Instant::now();
        sample(&mut recording, now);
        let mut intervals = std::mem::take(&mut recording.intervals);
        for (id, _, open) in recording.watched.iter_mut() {
            if let Some((start, token)) = open.take() {
                intervals.push(LeadershipInterval {
                    candidate_id: id.clone(),
                    fencing_token: token,
                    start,
                    end: now,
                });
            }
        }
        intervals.sort_by_key(|i| i.start);
        LeadershipReport {
            intervals,
            violations: std::mem::take(&mut recording.violations),
            samples: recording.samples,
        }
    }
}

impl Drop for LeadershipRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sample(recording: &mut Recording, now: Instant) {
    recording.samples += 1;
    let mut leaders = Vec::new();
    let mut closed = Vec::new();
    for (id, election, open) in recording.watched.iter_mut() {
        let (leading, token) = match election.upgrade() {
            Some(election) => (election.is_leader(), election.fencing_token()),
            None => (false, None),
        };
        if leading {
            leaders.push(id.clone());
        }
        match (leading, open.as_ref()) {
            (true, None) => *open = Some((now, token)),
            (true, Some((start, old))) if token.is_some() && token != *old => {
                // A new term began between two samples.
                closed.push(LeadershipInterval {
                    candidate_id: id.clone(),
                    fencing_token: *old,
                    start: *start,
                    end: now,
                });
                *open = Some((now, token));
            }
            (false, Some((start, old))) => {
                closed.push(LeadershipInterval {
                    candidate_id: id.clone(),
                    fencing_token: *old,
                    start: *start,
                    end: now,
                });
                *open = None;
            }
            _ => {}
        }
    }
    recording.intervals.extend(closed);
    if leaders.len() > 1 {
        recording.violations.push(format!(
            "{} candidates led at once: {leaders:?}",
            leaders.len()
        ));
    }
}

/// What a [`LeadershipRecorder`] saw.
#[derive(Clone, Debug)]
pub struct LeadershipReport {
    /// Every leadership interval, ordered by start.
    pub intervals: Vec<LeadershipInterval>,
    /// Samples at which more than one candidate led.
    pub violations: Vec<String>,
    /// How many samples were taken.
    pub samples: u64,
}

impl LeadershipReport {
    /// Panics if two candidates ever led at once, if two intervals overlap,
    /// or if fencing tokens did not strictly grow from interval to interval.
    pub fn assert_safe(&self) {
        assert!(
            self.violations.is_empty(),
            "mutual exclusion violated at {} of {} samples, first: {:?}",
            self.violations.len(),
            self.samples,
            self.violations.iter().take(3).collect::<Vec<_>>()
        );
        check_no_overlap(&self.intervals).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The distinct candidates that led, in order of their terms.
    pub fn leaders(&self) -> Vec<&str> {
        self.intervals
            .iter()
            .map(|i| i.candidate_id.as_str())
            .collect()
    }
}

/// Checks intervals ordered by start: none may overlap another, and each
/// term's fencing token must exceed the previous term's.
pub fn check_no_overlap(intervals: &[LeadershipInterval]) -> Result<(), String> {
    let mut sorted: Vec<&LeadershipInterval> = intervals.iter().collect();
    sorted.sort_by_key(|i| i.start);
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.start < a.end {
            return Err(format!(
                "leadership intervals overlap: {} (token {:?}) until {:?} and {} (token {:?}) from {:?}",
                a.candidate_id, a.fencing_token, a.end, b.candidate_id, b.fencing_token, b.start
            ));
        }
        if let (Some(ta), Some(tb)) = (a.fencing_token, b.fencing_token) {
            if tb <= ta {
                return Err(format!(
                    "fencing token did not grow: {} had {ta}, then {} had {tb}",
                    a.candidate_id, b.candidate_id
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The checkers must fail on bad input, or a passing suite proves nothing.

    use super::*;

    fn interval(id: &str, token: u64, start_ms: u64, end_ms: u64) -> LeadershipInterval {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        LeadershipInterval {
            candidate_id: id.to_owned(),
            fencing_token: Some(FencingToken(token)),
            start: origin + Duration::from_millis(start_ms),
            end: origin + Duration::from_millis(end_ms),
        }
    }

    #[test]
    fn overlapping_intervals_are_reported() {
        let error = check_no_overlap(&[interval("a", 1, 0, 100), interval("b", 2, 99, 200)])
            .expect_err("a 1 ms overlap");
        assert!(error.contains("overlap"), "{error}");
    }

    #[test]
    fn tokens_that_do_not_grow_are_reported() {
        let error = check_no_overlap(&[interval("a", 2, 0, 100), interval("b", 2, 100, 200)])
            .expect_err("the same token twice");
        assert!(error.contains("did not grow"), "{error}");
        check_no_overlap(&[interval("a", 3, 0, 100), interval("b", 1, 150, 200)])
            .expect_err("a token going back");
    }

    #[test]
    fn back_to_back_terms_with_growing_tokens_pass() {
        check_no_overlap(&[
            interval("b", 2, 100, 200),
            interval("a", 1, 0, 100),
            interval("c", 3, 250, 300),
        ])
        .expect("clean input");
    }

    #[test]
    fn a_sample_with_two_leaders_is_a_violation() {
        let mut recording = Recording::default();
        let always: Arc<dyn LeaderElection> = Arc::new(AlwaysLeads("a", 1));
        let also: Arc<dyn LeaderElection> = Arc::new(AlwaysLeads("b", 2));
        recording
            .watched
            .push(("a".into(), Arc::downgrade(&always), None));
        recording
            .watched
            .push(("b".into(), Arc::downgrade(&also), None));
        sample(&mut recording, Instant::now());
        assert_eq!(recording.violations.len(), 1, "{:?}", recording.violations);
        let report = LeadershipReport {
            intervals: Vec::new(),
            violations: recording.violations.clone(),
            samples: 1,
        };
        let outcome = std::panic::catch_unwind(|| report.assert_safe());
        assert!(
            outcome.is_err(),
            "assert_safe passed a report with a violation"
        );
    }

    /// A fake election (allowed only here) that always claims to lead.
    struct AlwaysLeads(&'static str, u64);

    #[async_trait::async_trait]
    impl LeaderElection for AlwaysLeads {
        fn candidate_id(&self) -> &str {
            self.0
        }
        fn resource(&self) -> &str {
            "fake"
        }
        fn is_leader(&self) -> bool {
            true
        }
        fn current_leader_id(&self) -> Option<String> {
            Some(self.0.to_owned())
        }
        fn fencing_token(&self) -> Option<FencingToken> {
            Some(FencingToken(self.1))
        }
        async fn start(&self) -> leader_election_abstractions::Result<()> {
            Ok(())
        }
        async fn stop(&self) -> leader_election_abstractions::Result<()> {
            Ok(())
        }
        async fn resign(&self) -> leader_election_abstractions::Result<()> {
            Ok(())
        }
        fn subscribe(&self) -> leader_election_abstractions::EventStream {
            unimplemented!("not used by the recorder")
        }
        fn watch_leadership(
            &self,
        ) -> tokio::sync::watch::Receiver<leader_election_abstractions::LeadershipState> {
            unimplemented!("not used by the recorder")
        }
        fn healthz(
            &self,
            _: Duration,
        ) -> std::result::Result<(), leader_election_abstractions::Unhealthy> {
            Ok(())
        }
        async fn wait_for_leadership(
            &self,
        ) -> leader_election_abstractions::Result<leader_election_abstractions::LeadershipGuard>
        {
            Err(leader_election_abstractions::Error::Stopped)
        }
    }
}
