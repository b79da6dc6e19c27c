//! The invariant checker, on simulated global time.
//!
//! `is_leader()` only turns true when a term begins, and the engine emits
//! `BecameLeader` in the same step, with no await in between. The recorder
//! of each participant's events runs at the same simulated instant (time
//! advances only when no task can run), so checking every other
//! participant's `is_leader()` when a term begins finds every instant at
//! which two participants lead: an overlap always starts with a term
//! beginning while another term still holds. Each participant's
//! `is_leader()` is read on its own (possibly drifting) clock, exactly as
//! its application would read it. Nothing is sampled.
//!
//! Checked: mutual exclusion (C1), fencing tokens strictly increasing over
//! all of our acquisitions of the resource (C5), `BecameLeader` /
//! `LostLeadership` alternating with matching tokens per election (C6), and
//! liveness after the faults heal (C3), which the scenario asks for.

use std::sync::{Arc, Mutex};

use leader_election_abstractions::LeaderElectionEvent;
use tokio::time::Instant;

/// Reads whether a participant leads now.
pub type LeaderProbe = Arc<dyn Fn() -> bool + Send + Sync>;

struct Participant {
    name: String,
    leads: LeaderProbe,
    /// One of ours (its tokens and events are checked), or a foreign client.
    ours: bool,
    /// The token of the term whose `LostLeadership` is due.
    open_term: Option<u64>,
    /// A foreign participant's current term: the Lease incarnation (uid)
    /// it holds.
    foreign_uid: Option<String>,
}

struct State {
    start: Instant,
    trace: Vec<String>,
    violations: Vec<String>,
    participants: Vec<Participant>,
    last_token: Option<u64>,
    /// Terms with tokens up to this one had their lease deleted by an
    /// operator: the contract promises nothing about them any more, so they
    /// do not count for C1.
    revoked_through: Option<u64>,
    /// Lease incarnations an operator deleted (for foreign terms).
    revoked_uids: Vec<String>,
    terms: usize,
}

/// Shared by the scenario and every recorder task.
#[derive(Clone)]
pub struct Checker(Arc<Mutex<State>>);

impl Checker {
    /// A checker whose trace counts time from now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(State {
            start: Instant::now(),
            trace: Vec::new(),
            violations: Vec::new(),
            participants: Vec::new(),
            last_token: None,
            revoked_through: None,
            revoked_uids: Vec::new(),
            terms: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a participant; returns its index.
    pub fn register(&self, name: &str, leads: LeaderProbe, ours: bool) -> usize {
        let mut state = self.lock();
        state.participants.push(Participant {
            name: name.to_owned(),
            leads,
            ours,
            open_term: None,
            foreign_uid: None,
        });
        state.participants.len() - 1
    }

    /// Adds a line to the trace, stamped with simulated time.
    pub fn note(&self, line: impl AsRef<str>) {
        let mut state = self.lock();
        let at = Instant::now().saturating_duration_since(state.start);
        let line = format!("{:>11.6}s {}", at.as_secs_f64(), line.as_ref());
        state.trace.push(line);
    }

    /// Records a violation (and puts it in the trace).
    pub fn violation(&self, what: impl AsRef<str>) {
        self.note(format!("VIOLATION {}", what.as_ref()));
        let line = self.lock().trace.last().cloned().unwrap_or_default();
        self.lock().violations.push(line);
    }

    /// Checks that no participant other than `who` leads now.
    pub fn check_alone(&self, who: usize) {
        let others: Vec<String> = {
            let state = self.lock();
            let revoked = |p: &Participant| {
                if p.ours {
                    p.open_term
                        .is_some_and(|t| Some(t) <= state.revoked_through)
                } else {
                    p.foreign_uid
                        .as_ref()
                        .is_some_and(|uid| state.revoked_uids.contains(uid))
                }
            };
            if revoked(&state.participants[who]) {
                return;
            }
            state
                .participants
                .iter()
                .enumerate()
                .filter(|(i, p)| *i != who && (p.leads)() && !revoked(p))
                .map(|(_, p)| p.name.clone())
                .collect()
        };
        if !others.is_empty() {
            let name = self.lock().participants[who].name.clone();
            self.violation(format!(
                "C1 two leaders: {name} began a term while {} led",
                others.join(", ")
            ));
        }
    }

    /// An operator deleted the lease of the term with `token` (and so of
    /// every earlier one): those terms lost their lease without their
    /// holder's doing, so overlaps with them are not C1's.
    pub fn revoke_through(&self, token: Option<u64>, uid: Option<String>) {
        let mut state = self.lock();
        state.revoked_through = state.revoked_through.max(token);
        state.revoked_uids.extend(uid);
    }

    /// Handles one event of participant `who`.
    pub fn event(&self, who: usize, event: &LeaderElectionEvent) {
        let name = self.lock().participants[who].name.clone();
        match event {
            LeaderElectionEvent::BecameLeader { fencing_token, .. } => {
                let token = fencing_token.0;
                self.note(format!("{name} BecameLeader token={token}"));
                let (open, last, revoked) = {
                    let mut state = self.lock();
                    state.terms += 1;
                    let open = state.participants[who].open_term.replace(token);
                    let last = state.last_token;
                    if state.participants[who].ours {
                        state.last_token = Some(last.map_or(token, |l| l.max(token)));
                    }
                    (open, last, Some(token) <= state.revoked_through)
                };
                // A grant whose lease an operator deleted before its answer
                // arrived: nothing is promised about it (and a later grant
                // may have been observed first).
                if revoked {
                    self.note(format!(
                        "{name} term token={token} was revoked by the operator"
                    ));
                } else {
                    self.check_alone(who);
                }
                if let Some(open) = open {
                    self.violation(format!(
                        "C6 {name} BecameLeader token={token} before LostLeadership of token={open}"
                    ));
                }
                if let Some(last) = last.filter(|&last| token <= last && !revoked) {
                    self.violation(format!(
                        "C5 token {token} of {name} not above the previous acquisition's {last}"
                    ));
                }
            }
            LeaderElectionEvent::LostLeadership {
                fencing_token,
                reason,
                ..
            } => {
                let token = fencing_token.0;
                self.note(format!(
                    "{name} LostLeadership token={token} reason={reason:?}"
                ));
                let open = self.lock().participants[who].open_term.take();
                if open != Some(token) {
                    self.violation(format!(
                        "C6 {name} LostLeadership token={token} but the open term was {open:?}"
                    ));
                }
            }
            LeaderElectionEvent::Lagged { missed } => {
                self.violation(format!("{name} event stream lagged by {missed}"));
            }
            _ => {}
        }
    }

    /// A foreign participant (not ours: no token or event rules) began
    /// leading on the Lease incarnation `uid`.
    pub fn foreign_became(&self, who: usize, what: &str, uid: Option<String>) {
        let name = {
            let mut state = self.lock();
            state.terms += 1;
            state.participants[who].foreign_uid = uid;
            state.participants[who].name.clone()
        };
        self.note(format!("{name} {what}"));
        self.check_alone(who);
    }

    /// After an election stopped and its events were all read: its last
    /// term must have ended with `LostLeadership` (unless it crashed).
    pub fn closed(&self, who: usize, crashed: bool) {
        let (name, open) = {
            let state = self.lock();
            let p = &state.participants[who];
            (p.name.clone(), p.open_term)
        };
        if let (Some(token), false) = (open, crashed) {
            self.violation(format!(
                "C6 {name} stopped without LostLeadership for token={token}"
            ));
        }
    }

    /// Whether any participant leads now.
    pub fn anyone_leads(&self) -> bool {
        self.lock().participants.iter().any(|p| (p.leads)())
    }

    /// The trace so far.
    pub fn trace(&self) -> Vec<String> {
        self.lock().trace.clone()
    }

    /// The violations so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// How many terms began.
    pub fn terms(&self) -> usize {
        self.lock().terms
    }
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}
