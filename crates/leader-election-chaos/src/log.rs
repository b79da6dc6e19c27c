//! The shared append-only log: its line format, parsing, and the fenced
//! writer the Rust candidates use (the Go candidates write the same format).
//!
//! ```text
//! W <t_check_ns> <token> <rust|foreign> <pid> <seq> <candidate-id>   a fenced write
//! D <t_done_ns> <pid> <seq>                                          that write has returned
//! F <t_ns> <fault-kind> <target>                                     the harness injected a fault
//! ```
//!
//! The file is opened with `O_APPEND` and every line is written with one
//! `write` call and stays far below `PIPE_BUF`, so lines from different
//! processes never interleave. `t_check_ns` is read before the fencing check,
//! `t_done_ns` after the write returned; both are `CLOCK_MONOTONIC`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::monotonic_ns;

/// Who wrote a line: our library or a foreign client of the same lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A candidate using this library.
    Rust,
    /// client-go's elector or Consul's `api.Lock`.
    Foreign,
}

impl Kind {
    /// The word used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Foreign => "foreign",
        }
    }
}

/// One parsed line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A fenced write: the candidate held `token` when it checked at `t_check`.
    Write {
        /// `CLOCK_MONOTONIC` before the fencing check.
        t_check: u64,
        /// The fencing token the check returned.
        token: u64,
        /// Rust or foreign.
        kind: Kind,
        /// The writing process.
        pid: u32,
        /// The process's write counter, matching its `Done` line.
        seq: u64,
        /// The candidate id the process runs with.
        id: String,
    },
    /// The write `(pid, seq)` returned at `t_done`.
    Done {
        /// `CLOCK_MONOTONIC` after the write returned.
        t_done: u64,
        /// The writing process.
        pid: u32,
        /// The write counter.
        seq: u64,
    },
    /// The harness injected a fault.
    Fault {
        /// `CLOCK_MONOTONIC` when it was injected.
        t: u64,
        /// Its kind (`sigkill`, `blackhole`, ...).
        kind: String,
        /// What it hit (a candidate id, `apiserver`, ...).
        target: String,
    },
}

impl Line {
    /// Parses one line; `None` for anything else (a torn last line of a
    /// killed writer, for instance).
    pub fn parse(text: &str) -> Option<Line> {
        let mut words = text.split_whitespace();
        let tag = words.next()?;
        let line = match tag {
            "W" => {
                let t_check = words.next()?.parse().ok()?;
                let token = words.next()?.parse().ok()?;
                let kind = match words.next()? {
                    "rust" => Kind::Rust,
                    "foreign" => Kind::Foreign,
                    _ => return None,
                };
                let pid = words.next()?.parse().ok()?;
                let seq = words.next()?.parse().ok()?;
                let id = words.next()?.to_owned();
                Line::Write {
                    t_check,
                    token,
                    kind,
                    pid,
                    seq,
                    id,
                }
            }
            "D" => Line::Done {
                t_done: words.next()?.parse().ok()?,
                pid: words.next()?.parse().ok()?,
                seq: words.next()?.parse().ok()?,
            },
            "F" => Line::Fault {
                t: words.next()?.parse().ok()?,
                kind: words.next()?.to_owned(),
                target: words.next().unwrap_or("-").to_owned(),
            },
            _ => return None,
        };
        if words.next().is_some() {
            return None;
        }
        Some(line)
    }

    /// The line as written to the log, with its newline.
    pub fn format(&self) -> String {
        match self {
            Line::Write {
                t_check,
                token,
                kind,
                pid,
                seq,
                id,
            } => format!("W {t_check} {token} {} {pid} {seq} {id}\n", kind.as_str()),
            Line::Done { t_done, pid, seq } => format!("D {t_done} {pid} {seq}\n"),
            Line::Fault { t, kind, target } => format!("F {t} {kind} {target}\n"),
        }
    }
}

/// Parses a whole log, skipping lines that do not parse.
pub fn parse_log(text: &str) -> Vec<Line> {
    text.lines().filter_map(Line::parse).collect()
}

/// Appends fenced writes to the shared log for one process.
#[derive(Debug)]
pub struct FencedLog {
    file: File,
    kind: Kind,
    id: String,
    pid: u32,
    seq: AtomicU64,
}

impl FencedLog {
    /// Opens `path` for appending (creating it) as candidate `id`.
    pub fn open(path: &Path, kind: Kind, id: &str) -> io::Result<Self> {
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("candidate id must be non-empty without whitespace, got {id:?}"),
            ));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file,
            kind,
            id: id.to_owned(),
            pid: std::process::id(),
            seq: AtomicU64::new(0),
        })
    }

    /// Reads the clock, calls `check` (the fencing check), and if it returned
    /// a token appends the write line, then its done line. Returns the token.
    pub fn write_if(&self, check: impl FnOnce() -> Option<u64>) -> io::Result<Option<u64>> {
        let t_check = monotonic_ns();
        let Some(token) = check() else {
            return Ok(None);
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let write = Line::Write {
            t_check,
            token,
            kind: self.kind,
            pid: self.pid,
            seq,
            id: self.id.clone(),
        };
        // One write call per line: O_APPEND makes it one atomic append.
        (&self.file).write_all(write.format().as_bytes())?;
        let done = Line::Done {
            t_done: monotonic_ns(),
            pid: self.pid,
            seq,
        };
        (&self.file).write_all(done.format().as_bytes())?;
        Ok(Some(token))
    }
}

/// Appends a fault line (the harness's record of what it injected).
pub fn append_fault(path: &Path, kind: &str, target: &str) -> io::Result<()> {
    let line = Line::Fault {
        t: monotonic_ns(),
        kind: kind.to_owned(),
        target: target.to_owned(),
    };
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.format().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_garbage_is_skipped() {
        let lines = vec![
            Line::Write {
                t_check: 5,
                token: 7,
                kind: Kind::Foreign,
                pid: 9,
                seq: 0,
                id: "go-1".into(),
            },
            Line::Done {
                t_done: 6,
                pid: 9,
                seq: 0,
            },
            Line::Fault {
                t: 1,
                kind: "sigkill".into(),
                target: "rust-1".into(),
            },
        ];
        let text: String = lines.iter().map(Line::format).collect();
        assert_eq!(parse_log(&format!("{text}W 1 2 rust\nX\n")), lines);
    }

    #[test]
    fn fenced_log_writes_only_when_the_check_returns_a_token() {
        let path = std::env::temp_dir().join(format!("chaos-log-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = FencedLog::open(&path, Kind::Rust, "rust-1").expect("open");
        assert_eq!(log.write_if(|| None).expect("write"), None);
        assert_eq!(log.write_if(|| Some(3)).expect("write"), Some(3));
        let parsed = parse_log(&std::fs::read_to_string(&path).expect("read"));
        let _ = std::fs::remove_file(&path);
        assert_eq!(parsed.len(), 2, "{parsed:?}");
        assert!(matches!(&parsed[0], Line::Write { token: 3, id, .. } if id == "rust-1"));
        assert!(matches!(parsed[1], Line::Done { seq: 0, .. }));
        assert!(FencedLog::open(&path, Kind::Rust, "a b").is_err());
        let _ = std::fs::remove_file(&path);
    }
}
