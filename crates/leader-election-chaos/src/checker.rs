//! The external checker: reads the shared log after a run and reports what
//! the fencing tokens promised and what actually happened.
//!
//! * A **stale write** is a write whose fencing check started after a write of
//!   a newer term (a higher token) had already returned: the candidate
//!   believed it led while a newer term was provably writing. Both times are
//!   `CLOCK_MONOTONIC`, so this is an ordering fact, not a timing guess. It
//!   must never happen to our candidates; foreign candidates' stale writes are
//!   counted and printed, not failed.
//! * A **late write** checked in time but landed in the file after a newer
//!   term's write (the writer was paused between its check and its write).
//!   No lock can prevent that; it is what a fencing token at the store is
//!   for. Printed, not failed.
//! * **Tokens** must strictly increase from term to term (terms ordered by
//!   their first write), and no token may be used by two processes.
//! * **Takeover gaps**: last write of a term to the first write of the next,
//!   grouped by the fault injected last before the takeover.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::log::{Kind, Line};

/// A fault counts as the cause of a takeover if it was injected at most this
/// long before the old term's last write.
const ATTRIBUTION_WINDOW_NS: u64 = 10_000_000_000;

/// One fenced write, joined with its `Done` line.
#[derive(Debug, Clone)]
struct Write {
    t_check: u64,
    t_done: Option<u64>,
    token: u64,
    kind: Kind,
    pid: u32,
    id: String,
}

/// One term: every write with one token.
#[derive(Debug, Clone)]
struct Term {
    token: u64,
    kind: Kind,
    pids: BTreeSet<u32>,
    ids: BTreeSet<String>,
    first: u64,
    last: u64,
    writes: usize,
}

/// A takeover from one term to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The old term's token.
    pub from_token: u64,
    /// The new term's token.
    pub to_token: u64,
    /// Last write of the old term to first write of the new one, in
    /// nanoseconds (negative when the new term's first check started before
    /// the old term's last write returned).
    pub gap_ns: i64,
    /// The fault injected last before it, or `none`.
    pub fault: String,
}

/// What the checker found in one log.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Fenced writes, per kind.
    pub writes: BTreeMap<Kind, usize>,
    /// Number of terms (distinct tokens).
    pub terms: usize,
    /// Stale writes, per kind.
    pub stale: BTreeMap<Kind, usize>,
    /// Late writes (checked in time, landed after a newer term's write), per kind.
    pub late: BTreeMap<Kind, usize>,
    /// Descriptions of the first stale writes, per kind.
    pub stale_examples: BTreeMap<Kind, Vec<String>>,
    /// Terms that started with a token not above the previous term's, with
    /// the kind of the term that started.
    pub token_order_violations: Vec<(Kind, String)>,
    /// Tokens written by more than one process, with the kinds involved.
    pub shared_tokens: Vec<(BTreeSet<Kind>, String)>,
    /// Every takeover, in order.
    pub takeovers: Vec<Takeover>,
    /// Faults injected, per kind.
    pub faults: BTreeMap<String, usize>,
}

/// Reads the log's lines and checks them.
pub fn analyse(lines: &[Line]) -> Report {
    let mut report = Report::default();
    let mut done: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut faults: Vec<(u64, String)> = Vec::new();
    for line in lines {
        match line {
            Line::Done { t_done, pid, seq } => {
                done.insert((*pid, *seq), *t_done);
            }
            Line::Fault { t, kind, .. } => {
                faults.push((*t, kind.clone()));
                *report.faults.entry(kind.clone()).or_default() += 1;
            }
            Line::Write { .. } => {}
        }
    }
    faults.sort();
    let writes: Vec<Write> = lines
        .iter()
        .filter_map(|line| match line {
            Line::Write {
                t_check,
                token,
                kind,
                pid,
                seq,
                id,
            } => Some(Write {
                t_check: *t_check,
                t_done: done.get(&(*pid, *seq)).copied(),
                token: *token,
                kind: *kind,
                pid: *pid,
                id: id.clone(),
            }),
            _ => None,
        })
        .collect();
    let origin = writes
        .iter()
        .map(|w| w.t_check)
        .chain(faults.iter().map(|f| f.0))
        .min()
        .unwrap_or(0);
    let secs = |t: u64| t.saturating_sub(origin) as f64 / 1e9;
    for w in &writes {
        *report.writes.entry(w.kind).or_default() += 1;
    }

    // Stale: some write of a higher token had returned before this check.
    let mut returned: Vec<(u64, u64)> = writes
        .iter()
        .filter_map(|w| w.t_done.map(|t| (t, w.token)))
        .collect();
    returned.sort_unstable();
    let mut highest_so_far = Vec::with_capacity(returned.len());
    let mut highest = 0u64;
    for &(_, token) in &returned {
        highest = highest.max(token);
        highest_so_far.push(highest);
    }
    let mut highest_in_file = 0u64;
    for w in &writes {
        let before = returned.partition_point(|&(t, _)| t < w.t_check);
        let newer = before
            .checked_sub(1)
            .map(|i| highest_so_far[i])
            .filter(|&h| h > w.token);
        if let Some(newer) = newer {
            *report.stale.entry(w.kind).or_default() += 1;
            let examples = report.stale_examples.entry(w.kind).or_default();
            if examples.len() < 5 {
                examples.push(format!(
                    "{} {} (pid {}) wrote with token {} checked at {:.3}s, after token {} had written",
                    w.kind.as_str(),
                    w.id,
                    w.pid,
                    w.token,
                    secs(w.t_check),
                    newer
                ));
            }
        } else if highest_in_file > w.token {
            *report.late.entry(w.kind).or_default() += 1;
        }
        highest_in_file = highest_in_file.max(w.token);
    }

    // Terms, ordered by their first write.
    let mut by_token: BTreeMap<u64, Term> = BTreeMap::new();
    for w in &writes {
        let last = w.t_done.unwrap_or(w.t_check);
        let term = by_token.entry(w.token).or_insert_with(|| Term {
            token: w.token,
            kind: w.kind,
            pids: BTreeSet::new(),
            ids: BTreeSet::new(),
            first: w.t_check,
            last,
            writes: 0,
        });
        term.pids.insert(w.pid);
        term.ids.insert(format!("{}:{}", w.kind.as_str(), w.id));
        term.first = term.first.min(w.t_check);
        term.last = term.last.max(last);
        term.writes += 1;
        if w.kind == Kind::Rust {
            term.kind = Kind::Rust;
        }
    }
    for term in by_token.values() {
        if term.pids.len() > 1 {
            let kinds: BTreeSet<Kind> = writes
                .iter()
                .filter(|w| w.token == term.token)
                .map(|w| w.kind)
                .collect();
            report.shared_tokens.push((
                kinds,
                format!(
                    "token {} written by {} processes ({}), {} writes from {:.3}s to {:.3}s",
                    term.token,
                    term.pids.len(),
                    term.ids.iter().cloned().collect::<Vec<_>>().join(", "),
                    term.writes,
                    secs(term.first),
                    secs(term.last)
                ),
            ));
        }
    }
    let mut terms: Vec<Term> = by_token.into_values().collect();
    terms.sort_by_key(|t| (t.first, t.token));
    report.terms = terms.len();
    for pair in terms.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        if new.token <= old.token {
            report.token_order_violations.push((
                new.kind,
                format!(
                    "term with token {} ({}) began at {:.3}s after the term with token {} ({})",
                    new.token,
                    new.ids.iter().cloned().collect::<Vec<_>>().join(", "),
                    secs(new.first),
                    old.token,
                    old.ids.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let cause = faults
            .iter()
            .rev()
            .find(|(t, _)| *t <= new.first)
            .filter(|(t, _)| t.saturating_add(ATTRIBUTION_WINDOW_NS) >= old.last)
            .map_or_else(|| "none".to_owned(), |(_, kind)| kind.clone());
        let gap = i128::from(new.first) - i128::from(old.last);
        report.takeovers.push(Takeover {
            from_token: old.token,
            to_token: new.token,
            gap_ns: i64::try_from(gap).unwrap_or(i64::MAX),
            fault: cause,
        });
    }
    report
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(ns: i64) -> String {
    format!("{:.0}ms", ns as f64 / 1e6)
}

impl Report {
    /// Why the run failed; empty when it passed. Only our candidates'
    /// violations count, plus a run that proved nothing (no write, no takeover).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let rust_stale = self.stale.get(&Kind::Rust).copied().unwrap_or(0);
        if rust_stale > 0 {
            failures.push(format!("{rust_stale} stale writes by our candidates"));
        }
        let order = self
            .token_order_violations
            .iter()
            .filter(|(kind, _)| *kind == Kind::Rust)
            .count();
        if order > 0 {
            failures.push(format!(
                "{order} terms of our candidates began with a token not above the previous term's"
            ));
        }
        let shared = self
            .shared_tokens
            .iter()
            .filter(|(kinds, _)| kinds.contains(&Kind::Rust))
            .count();
        if shared > 0 {
            failures.push(format!(
                "{shared} tokens used by more than one process, one of ours among them"
            ));
        }
        if self.writes.values().sum::<usize>() == 0 {
            failures.push("no candidate ever wrote: nothing was tested".to_owned());
        } else if self.takeovers.is_empty() {
            failures.push("no takeover happened: the faults tested nothing".to_owned());
        }
        failures
    }

    /// True when [`failures`](Self::failures) is empty.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The per-fault-kind takeover table and the counts, for people.
    pub fn table(&self) -> String {
        let get = |map: &BTreeMap<Kind, usize>, kind| map.get(&kind).copied().unwrap_or(0);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "writes: rust {}, foreign {}; terms {}; takeovers {}",
            get(&self.writes, Kind::Rust),
            get(&self.writes, Kind::Foreign),
            self.terms,
            self.takeovers.len()
        );
        let _ = writeln!(
            out,
            "stale writes: rust {} (must be 0), foreign {} (counted, not failed)",
            get(&self.stale, Kind::Rust),
            get(&self.stale, Kind::Foreign)
        );
        let _ = writeln!(
            out,
            "late writes (checked in time, landed after a newer term's write): rust {}, foreign {}",
            get(&self.late, Kind::Rust),
            get(&self.late, Kind::Foreign)
        );
        for examples in self.stale_examples.values() {
            for example in examples {
                let _ = writeln!(out, "  stale: {example}");
            }
        }
        if self.token_order_violations.is_empty() && self.shared_tokens.is_empty() {
            let _ = writeln!(
                out,
                "tokens: strictly increasing across {} terms, none shared",
                self.terms
            );
        }
        for (kind, text) in &self.token_order_violations {
            let _ = writeln!(out, "  token order ({}): {text}", kind.as_str());
        }
        for (_, text) in &self.shared_tokens {
            let _ = writeln!(out, "  shared token: {text}");
        }
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "fault", "injected", "takeovers", "gap min", "median", "p90", "max"
        );
        let mut kinds: BTreeSet<&str> = self.faults.keys().map(String::as_str).collect();
        kinds.extend(self.takeovers.iter().map(|t| t.fault.as_str()));
        for kind in kinds {
            let mut gaps: Vec<i64> = self
                .takeovers
                .iter()
                .filter(|t| t.fault == kind)
                .map(|t| t.gap_ns)
                .collect();
            gaps.sort_unstable();
            let injected = self.faults.get(kind).copied().unwrap_or(0);
            if gaps.is_empty() {
                let _ = writeln!(out, "{kind:<12} {injected:>8} {:>9}", 0);
                continue;
            }
            let _ = writeln!(
                out,
                "{kind:<12} {injected:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
                gaps.len(),
                ms(gaps[0]),
                ms(percentile(&gaps, 50)),
                ms(percentile(&gaps, 90)),
                ms(gaps[gaps.len() - 1])
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// A write checked at `t` seconds that returned 1 ms later.
    fn write(lines: &mut Vec<Line>, t: f64, token: u64, kind: Kind, pid: u32) {
        let t_check = (t * S as f64) as u64;
        let seq = lines.len() as u64;
        lines.push(Line::Write {
            t_check,
            token,
            kind,
            pid,
            seq,
            id: format!("c{pid}"),
        });
        lines.push(Line::Done {
            t_done: t_check + 1_000_000,
            pid,
            seq,
        });
    }

    fn fault(lines: &mut Vec<Line>, t: f64, kind: &str) {
        lines.push(Line::Fault {
            t: (t * S as f64) as u64,
            kind: kind.into(),
            target: "c1".into(),
        });
    }

    /// Leader 1 (token 5) writes until 1.0 s, is killed, leader 2 (token 6)
    /// writes from 3.5 s; then a graceful handover to token 7.
    fn clean_log() -> Vec<Line> {
        let mut lines = Vec::new();
        for i in 0..10 {
            write(&mut lines, 0.1 * f64::from(i), 5, Kind::Rust, 1);
        }
        fault(&mut lines, 1.05, "sigkill");
        for i in 0..10 {
            write(&mut lines, 3.5 + 0.1 * f64::from(i), 6, Kind::Rust, 2);
        }
        fault(&mut lines, 4.45, "sigterm");
        write(&mut lines, 4.5, 7, Kind::Foreign, 3);
        lines
    }

    #[test]
    fn clean_handovers_pass_with_gaps_per_fault() {
        let report = analyse(&clean_log());
        assert!(
            report.passed(),
            "{:?}\n{}",
            report.failures(),
            report.table()
        );
        assert_eq!(report.terms, 3);
        assert_eq!(report.stale.values().sum::<usize>(), 0);
        let kinds: Vec<&str> = report.takeovers.iter().map(|t| t.fault.as_str()).collect();
        assert_eq!(kinds, ["sigkill", "sigterm"]);
        // 0.9 s + 1 ms returned, 3.5 s checked.
        assert_eq!(report.takeovers[0].gap_ns, 2_599_000_000);
        assert!(report.table().contains("sigkill"), "{}", report.table());
    }

    #[test]
    fn an_old_term_writing_after_a_newer_term_wrote_fails() {
        let mut lines = clean_log();
        // The killed leader was only paused: it checks again at 3.7 s, after
        // token 6 had written at 3.5 s.
        write(&mut lines, 3.7, 5, Kind::Rust, 1);
        let report = analyse(&lines);
        assert_eq!(report.stale.get(&Kind::Rust), Some(&1));
        assert!(!report.passed());
        assert!(
            report.failures()[0].contains("1 stale writes"),
            "{:?}",
            report.failures()
        );
    }

    #[test]
    fn overlapping_leaders_sharing_a_token_fail() {
        let mut lines = Vec::new();
        // Two processes with one id, each believing it leads with token 5.
        for i in 0..10 {
            write(&mut lines, 0.1 * f64::from(i), 5, Kind::Rust, 1);
            write(&mut lines, 0.1 * f64::from(i) + 0.05, 5, Kind::Rust, 2);
        }
        write(&mut lines, 2.0, 6, Kind::Rust, 3);
        let report = analyse(&lines);
        assert_eq!(report.shared_tokens.len(), 1);
        assert!(!report.passed(), "{}", report.table());
    }

    #[test]
    fn a_term_starting_with_a_lower_token_fails() {
        let mut lines = Vec::new();
        write(&mut lines, 0.0, 9, Kind::Rust, 1);
        write(&mut lines, 2.0, 4, Kind::Rust, 2);
        let report = analyse(&lines);
        assert_eq!(report.token_order_violations.len(), 1);
        assert!(!report.passed());
    }

    #[test]
    fn foreign_stale_writes_are_counted_but_do_not_fail() {
        let mut lines = clean_log();
        write(&mut lines, 5.0, 8, Kind::Rust, 2);
        // The foreign holder of token 7 was frozen and writes on waking.
        write(&mut lines, 5.5, 7, Kind::Foreign, 3);
        let report = analyse(&lines);
        assert_eq!(report.stale.get(&Kind::Foreign), Some(&1));
        assert_eq!(report.stale.get(&Kind::Rust), None);
        assert!(report.passed(), "{:?}", report.failures());
    }

    #[test]
    fn a_write_checked_before_the_newer_write_returned_is_late_not_stale() {
        let mut lines = clean_log();
        // Checked at 3.5 s (before token 6's first write returned at
        // 3.501 s), then paused: it lands in the file after token 6's write.
        lines.push(Line::Write {
            t_check: 35 * S / 10,
            token: 5,
            kind: Kind::Rust,
            pid: 1,
            seq: 999,
            id: "c1".into(),
        });
        let report = analyse(&lines);
        assert_eq!(report.stale.get(&Kind::Rust), None);
        assert_eq!(report.late.get(&Kind::Rust), Some(&1));
        assert!(report.passed(), "{:?}", report.failures());
    }

    #[test]
    fn a_run_without_writes_or_takeovers_fails() {
        assert!(!analyse(&[]).passed());
        let mut lines = Vec::new();
        write(&mut lines, 0.0, 1, Kind::Rust, 1);
        write(&mut lines, 1.0, 1, Kind::Rust, 1);
        let report = analyse(&lines);
        assert!(
            report.failures()[0].contains("no takeover"),
            "{:?}",
            report.failures()
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&values, 50), 5);
        assert_eq!(percentile(&values, 90), 9);
        assert_eq!(percentile(&values, 100), 10);
        assert_eq!(percentile(&[], 50), 0);
    }
}
