//! The chaos harness's small parts: a seeded generator, signals, the
//! `chaos-proxy` control channel, and a follower of the shared log.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// SplitMix64 (the same generator as the chaos crate's, which xtask does not
/// depend on).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            low
        } else {
            low + self.next() % (high - low)
        }
    }

    pub(crate) fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.range(0, items.len() as u64)).unwrap_or(0)]
    }
}

/// Sends `signal` to `pid` with kill(1).
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The `chaos-proxy` process: fault proxies and fault notes.
pub(crate) struct ProxyControl {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ProxyControl {
    pub(crate) fn start(binary: &Path, log: &Path, stderr: File) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .arg("--log")
            .arg(log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("chaos-proxy has no stdin/stdout".into());
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    pub(crate) fn command(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("chaos-proxy: {line}: {e}"))?;
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .map_err(|e| format!("chaos-proxy: {line}: {e}"))?;
        let answer = answer.trim().to_owned();
        if answer.starts_with("ok") {
            Ok(answer)
        } else {
            Err(format!("chaos-proxy: {line}: {answer:?}"))
        }
    }

    /// Starts a proxy to `upstream`; returns its index and port.
    pub(crate) fn add(&mut self, upstream: &str) -> Result<(usize, u16), String> {
        let answer = self.command(&format!("add {upstream}"))?;
        let mut words = answer.split_whitespace().skip(1);
        let index = words.next().and_then(|w| w.parse().ok());
        let port = words.next().and_then(|w| w.parse().ok());
        index
            .zip(port)
            .ok_or_else(|| format!("chaos-proxy: bad answer {answer:?}"))
    }
}

impl Drop for ProxyControl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows the shared log to know who wrote last (the leader).
pub(crate) struct LogTail {
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) partial: String,
    pub(crate) last_writer: Option<u32>,
    pub(crate) writes: u64,
    /// The highest token written so far.
    pub(crate) max_token: u64,
    /// A process whose writes are counted (a twin).
    pub(crate) watched: Option<u32>,
    /// Writes by `watched` since `watch`.
    pub(crate) watched_writes: u64,
}

impl LogTail {
    /// A follower from the start of `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: String::new(),
            last_writer: None,
            writes: 0,
            max_token: 0,
            watched: None,
            watched_writes: 0,
        }
    }

    /// Counts `pid`'s writes from now on (after reading what is there).
    pub(crate) fn watch(&mut self, pid: u32) {
        self.poll();
        self.watched = Some(pid);
        self.watched_writes = 0;
    }

    /// Stops counting.
    pub(crate) fn unwatch(&mut self) {
        self.watched = None;
    }

    pub(crate) fn poll(&mut self) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut text = String::new();
        if let Ok(n) = file.read_to_string(&mut text) {
            self.offset += n as u64;
        }
        self.partial.push_str(&text);
        let complete = match self.partial.rfind('\n') {
            Some(end) => self.partial[..=end].to_owned(),
            None => return,
        };
        self.partial.drain(..complete.len());
        for line in complete.lines() {
            let mut words = line.split_whitespace();
            // W <t_check> <token> <kind> <pid> <seq> <id>
            if words.next() != Some("W") {
                continue;
            }
            let token = words.nth(1).and_then(|t| t.parse::<u64>().ok());
            let pid = words.nth(1).and_then(|pid| pid.parse::<u32>().ok());
            let (Some(token), Some(pid)) = (token, pid) else {
                continue;
            };
            self.writes += 1;
            self.last_writer = Some(pid);
            self.max_token = self.max_token.max(token);
            if self.watched == Some(pid) {
                self.watched_writes += 1;
            }
        }
    }
}
