//! Shared scaffolding for the contract functions: candidate groups, waiting,
//! event logs and timing reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::{LeaderElection, LeaderElectionEvent, LeaderElectionOptions};
use tokio::time::Instant;

use crate::provider::{Candidate, Provider};
use crate::recorder::LeadershipRecorder;

/// A resource name no other test (or earlier run against a real server) uses.
pub fn unique_resource(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "conformance-{tag}-{nonce}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How often the suite samples and polls: fine enough to see a short overlap.
pub(crate) fn step(options: &LeaderElectionOptions) -> Duration {
    (options.lease_duration / 200).clamp(Duration::from_millis(1), Duration::from_millis(10))
}

/// The longest any liveness wait may take before the test fails: far beyond
/// what the contract allows, so it only catches a candidate that never acts.
pub(crate) fn liveness_limit(options: &LeaderElectionOptions) -> Duration {
    (options.lease_duration + options.grace_period) * 4 + Duration::from_secs(10)
}

/// Every event a candidate emitted, with the instant it was received.
#[derive(Clone, Default)]
pub(crate) struct EventLog {
    events: Arc<Mutex<Vec<(Instant, LeaderElectionEvent)>>>,
}

impl EventLog {
    pub(crate) fn attach(election: &dyn LeaderElection) -> Self {
        let log = Self::default();
        let sink = Arc::clone(&log.events);
        let mut stream = election.subscribe();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                sink.lock().push((Instant::now(), event));
            }
        });
        log
    }

    pub(crate) fn events(&self) -> Vec<LeaderElectionEvent> {
        self.timed().into_iter().map(|(_, e)| e).collect()
    }

    pub(crate) fn timed(&self) -> Vec<(Instant, LeaderElectionEvent)> {
        self.events.lock().clone()
    }
}

/// Candidates of one resource, started, recorded and logged.
pub(crate) struct Group<'p> {
    pub(crate) provider: &'p dyn Provider,
    pub(crate) resource: String,
    pub(crate) options: LeaderElectionOptions,
    pub(crate) members: Vec<Candidate>,
    pub(crate) logs: Vec<EventLog>,
    pub(crate) recorder: LeadershipRecorder,
}

impl<'p> Group<'p> {
    pub(crate) fn new(
        provider: &'p dyn Provider,
        tag: &str,
        options: LeaderElectionOptions,
    ) -> Self {
        Self {
            provider,
            resource: unique_resource(tag),
            recorder: LeadershipRecorder::start(step(&options)),
            options,
            members: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Adds a candidate; starts it unless `start` is false.
    pub(crate) async fn add(&mut self, id: &str, start: bool) -> usize {
        let candidate = self
            .provider
            .candidate(&self.resource, id, self.options.clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: creating candidate {id} failed: {e}",
                    self.provider.name()
                )
            });
        self.logs
            .push(EventLog::attach(candidate.election.as_ref()));
        let watched: Arc<dyn LeaderElection> = candidate.election.clone();
        self.recorder.watch(&watched);
        if start {
            candidate
                .election
                .start()
                .await
                .unwrap_or_else(|e| panic!("starting {id} failed: {e}"));
        }
        self.members.push(candidate);
        self.members.len() - 1
    }

    /// Adds and starts `n` candidates named `c0`, `c1`, ...
    pub(crate) async fn add_started(&mut self, n: usize) {
        for i in 0..n {
            self.add(&format!("c{i}"), true).await;
        }
    }

    pub(crate) fn leaders(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_leader())
            .collect()
    }

    /// Waits until exactly one candidate other than `except` leads; returns
    /// it and how long the wait took.
    pub(crate) async fn wait_for_leader(&self, except: &[usize]) -> (usize, Duration) {
        let mut found = None;
        let waited = self
            .wait_until("a single new leader", || {
                let leaders = self.leaders();
                match leaders.as_slice() {
                    [one] if !except.contains(one) => {
                        found = Some(*one);
                        true
                    }
                    _ => false,
                }
            })
            .await;
        // Record the new term even if the caller ends it before the next tick.
        self.recorder.sample_now();
        match found {
            Some(index) => (index, waited),
            None => panic!("no leader found"),
        }
    }

    /// Polls `condition` every step; panics after the liveness limit.
    pub(crate) async fn wait_until(&self, what: &str, condition: impl FnMut() -> bool) -> Duration {
        wait_until(self.provider, &self.options, what, condition).await
    }

    /// Stops every candidate still running and checks the recording.
    pub(crate) async fn finish(self) -> crate::recorder::LeadershipReport {
        for member in &self.members {
            let _ = member.election.stop().await;
        }
        let report = self.recorder.finish();
        report.assert_safe();
        report
    }
}

/// Polls `condition` every step; panics after the liveness limit.
pub(crate) async fn wait_until(
    provider: &dyn Provider,
    options: &LeaderElectionOptions,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    let limit = liveness_limit(options);
    while !condition() {
        if started.elapsed() > limit {
            panic!(
                "{}: waited {limit:?} for {what}, which never happened",
                provider.name()
            );
        }
        tokio::time::sleep(step(options)).await;
    }
    started.elapsed()
}

/// Asserts `measured <= bound` in virtual time; in real time prints both,
/// since wall-clock timing belongs to benchmarks, not tests.
pub(crate) fn timing(provider: &dyn Provider, what: &str, measured: Duration, bound: Duration) {
    println!(
        "{}: {what}: {measured:?} (contract bound {bound:?}{})",
        provider.name(),
        if provider.virtual_time() {
            ", virtual time"
        } else {
            ", wall clock, not asserted"
        }
    );
    if provider.virtual_time() {
        assert!(
            measured <= bound,
            "{}: {what} took {measured:?}, more than the contract's {bound:?}",
            provider.name()
        );
    }
}

/// The `BecameLeader` tokens in a log, in order.
pub(crate) fn became_tokens(log: &EventLog) -> Vec<u64> {
    log.events()
        .iter()
        .filter_map(|e| match e {
            LeaderElectionEvent::BecameLeader { fencing_token, .. } => Some(fencing_token.get()),
            _ => None,
        })
        .collect()
}

/// The reasons of every `LostLeadership` in a log, in order.
pub(crate) fn loss_reasons(log: &EventLog) -> Vec<leader_election_abstractions::LossReason> {
    log.events()
        .into_iter()
        .filter_map(|e| match e {
            LeaderElectionEvent::LostLeadership { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}
