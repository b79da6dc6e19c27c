//! [`SharedWatch`]: one blocking query per factory on its whole key prefix
//! (`?recurse`), shared by all the factory's elections.
//!
//! A blocking query holds an HTTP connection while it waits, and a Consul
//! agent accepts only `limits.http_max_conns_per_client` (200 by default)
//! connections from one address: one query per election stopped working
//! at about 100 resources × 2 candidates per process. Here one task keeps
//! one query open on `<prefix>/`; every answer is the prefix's entries and
//! its `X-Consul-Index`, and each watched lock key gets the part that
//! concerns it. Consul answers a blocking query on a prefix as soon as
//! anything under it changes, so a release or an invalidated session is
//! seen as quickly as by a query on the key alone.
//!
//! Per key, an answer is passed on only when the key changed (another
//! `ModifyIndex`, session or existence) and never when it is older than
//! what was passed on before (a lagging server after a Consul leader
//! change): each election sees its key's `ModifyIndex` grow. A failed read
//! is passed on to every watching election as an error (each retries as
//! it always did); the task itself reads again after a growing pause. The
//! task ends when no election watches any more.
//!
//! Pacing: an answer that brings nothing new (the index did not move: no
//! `X-Consul-Index` behind a proxy, or the wait ran out) is followed by
//! the next read no sooner than 100 ms after it started, as before. An
//! answer with news is followed at once while the prefix is quiet, so a
//! release or a deleted key reaches the elections within a round trip
//! even if another key changed just before; a busy prefix (many elections
//! electing, health-based elections publishing) is read at most 10 times a
//! second on average (bursts of 5), since each answer is the whole prefix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use leader_election_abstractions::{Error, Result};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::client::{ConsulClient, KvEntry, KvRead};

/// The shortest time between two reads: a blocking query that returns at
/// once (no `X-Consul-Index` behind a proxy, an index that never moves, a
/// busy prefix) must not become a busy loop.
pub(crate) const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Reads with news that may follow each other at once, and how many such
/// reads a second are allowed on average.
const BURST: f64 = 5.0;
const NEWS_READS_PER_SECOND: f64 = 10.0;

/// The longest pause between reads after failures.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(5);

/// What a watched key's channel holds.
#[derive(Clone, Debug)]
pub(crate) enum KeyState {
    /// No read since the watch (re)started.
    Pending,
    /// The key as of the latest read that changed it.
    Read(KvRead),
    /// The latest read failed.
    Failed(Arc<Error>),
}

/// One blocking query on the factory's prefix, fanned out per key. Cheap
/// to clone.
#[derive(Clone)]
pub(crate) struct SharedWatch {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWatch")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: ConsulClient,
    /// `<key_prefix>/`.
    prefix: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, watch::Sender<KeyState>>,
    running: bool,
    /// The lock entries of the latest read and its index, while the task
    /// runs and its latest read succeeded; a new key starts from it.
    snapshot: Option<Snapshot>,
}

struct Snapshot {
    index: u64,
    entries: HashMap<String, KvEntry>,
}

impl Snapshot {
    fn read(&self, key: &str) -> KvRead {
        KvRead {
            entry: self.entries.get(key).cloned(),
            index: self.index,
        }
    }
}

impl SharedWatch {
    pub(crate) fn new(client: ConsulClient) -> Self {
        let prefix = format!("{}/", client.config().key_prefix);
        Self {
            inner: Arc::new(Inner {
                client,
                prefix,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A channel that follows `key`; starts the shared query if it is not
    /// running. Fails outside a Tokio runtime.
    pub(crate) fn subscribe(&self, key: &str) -> Result<watch::Receiver<KeyState>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut state = self.inner.state.lock();
        let receiver = match state.keys.get(key) {
            Some(sender) => sender.subscribe(),
            None => {
                let initial = state
                    .snapshot
                    .as_ref()
                    .map_or(KeyState::Pending, |s| KeyState::Read(s.read(key)));
                let (sender, receiver) = watch::channel(initial);
                state.keys.insert(key.to_owned(), sender);
                receiver
            }
        };
        if !state.running {
            state.running = true;
            runtime.spawn(run(Arc::clone(&self.inner)));
        }
        Ok(receiver)
    }
}

impl SharedWatch {
    /// The latest read of `key` that the shared query passed on, if an
    /// election watches it and that read succeeded. As recent as a read of
    /// the key with default consistency, give or take the query's round
    /// trip; a caller that writes on its strength must make the write
    /// conditional on it (`check-index`).
    pub(crate) fn latest(&self, key: &str) -> Option<KvRead> {
        let state = self.inner.state.lock();
        let sender = state
            .keys
            .get(key)
            .filter(|s| state.running && s.receiver_count() > 0);
        let latest = sender.and_then(|s| match &*s.borrow() {
            KeyState::Read(read) => Some(read.clone()),
            KeyState::Pending | KeyState::Failed(_) => None,
        });
        latest
    }
}

/// The shared query's loop; ends when no key is watched.
async fn run(inner: Arc<Inner>) {
    let config = inner.client.config();
    let (wait, consistency) = (config.watch_wait, config.consistency);
    let mut index = 0u64;
    let mut failures = 0u32;
    let mut next_start: Option<tokio::time::Instant> = None;
    let mut pacer = Pacer::new(tokio::time::Instant::now());
    loop {
        if let Some(at) = next_start {
            tokio::time::sleep_until(at).await;
        }
        {
            let mut state = inner.state.lock();
            state.keys.retain(|_, sender| sender.receiver_count() > 0);
            if state.keys.is_empty() {
                state.running = false;
                state.snapshot = None;
                return;
            }
        }
        let block = (index > 0).then_some((index, wait));
        let started = tokio::time::Instant::now();
        let read = inner
            .client
            .read_prefix(&inner.prefix, consistency, block)
            .await;
        let mut state = inner.state.lock();
        match read {
            Ok((entries, read_index)) => {
                failures = 0;
                let news = read_index > index;
                next_start = Some(pacer.next(tokio::time::Instant::now(), started, news));
                // Reset when the index goes backwards (a restored snapshot,
                // a new leader); never block on 0.
                index = if read_index < index {
                    0
                } else {
                    read_index.max(1)
                };
                let snapshot = Snapshot {
                    index: read_index,
                    entries: entries
                        .into_iter()
                        .filter(|entry| is_lock(&entry.key))
                        .map(|entry| (entry.key.clone(), entry))
                        .collect(),
                };
                for (key, sender) in &state.keys {
                    let read = snapshot.read(key);
                    sender.send_if_modified(|current| advance(current, read));
                }
                state.snapshot = Some(snapshot);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                index = 0;
                next_start = Some(started + pause(failures));
                if failures == 1 {
                    tracing::warn!(
                        prefix = %inner.prefix,
                        error = %error,
                        elections = state.keys.len(),
                        "the shared Consul watch failed; reading again"
                    );
                }
                let error = Arc::new(error);
                state.snapshot = None;
                for sender in state.keys.values() {
                    sender.send_replace(KeyState::Failed(Arc::clone(&error)));
                }
            }
        }
    }
}

/// When the next read may start after a successful one.
struct Pacer {
    tokens: f64,
    refilled: tokio::time::Instant,
}

impl Pacer {
    fn new(now: tokio::time::Instant) -> Self {
        Self {
            tokens: BURST,
            refilled: now,
        }
    }

    /// The start of the next read, now that the read started at `started`
    /// has returned, with `news` (its index moved) or without.
    fn next(
        &mut self,
        now: tokio::time::Instant,
        started: tokio::time::Instant,
        news: bool,
    ) -> tokio::time::Instant {
        if !news {
            return started + MIN_WATCH_INTERVAL;
        }
        let earned =
            now.saturating_duration_since(self.refilled).as_secs_f64() * NEWS_READS_PER_SECOND;
        self.tokens = (self.tokens + earned).min(BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return now;
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / NEWS_READS_PER_SECOND);
        self.tokens = 0.0;
        self.refilled = now + wait;
        now + wait
    }
}

/// The pause between two reads' starts after `failures` failures in a row.
fn pause(failures: u32) -> Duration {
    MIN_WATCH_INTERVAL
        .saturating_mul(1 << failures.min(6))
        .min(MAX_FAILURE_PAUSE)
}

fn is_lock(key: &str) -> bool {
    key.ends_with("/.lock")
}

/// Moves a key's state to `read` when that is news: the key changed and
/// the read is not older than what was passed on. Returns whether it moved.
pub(crate) fn advance(current: &mut KeyState, read: KvRead) -> bool {
    let news = match current {
        KeyState::Read(old) => match (&old.entry, &read.entry) {
            (None, None) => false,
            // Created: news unless a lagging server shows a key that was
            // gone at a later index.
            (None, Some(new)) => new.modify_index > old.index,
            // Deleted: news unless this read is older than the entry.
            (Some(old), None) => read.index >= old.modify_index,
            (Some(old), Some(new)) => {
                new.modify_index > old.modify_index
                    || (new.modify_index == old.modify_index && new.session != old.session)
            }
        },
        KeyState::Pending | KeyState::Failed(_) => true,
    };
    if news {
        *current = KeyState::Read(read);
    }
    news
}

/// A watching election's copy of a shared failure, of the same kind.
pub(crate) fn copy_error(error: &Arc<Error>) -> Error {
    let source = Some(Box::new(Arc::clone(error)) as leader_election_abstractions::BoxError);
    match error.as_ref() {
        Error::Unauthorized { message, .. } => Error::Unauthorized {
            message: format!("shared watch: {message}"),
            source,
        },
        Error::Backend { message, .. } => Error::Backend {
            message: format!("shared watch: {message}"),
            source,
        },
        other => Error::BackendUnavailable {
            message: format!("shared watch: {other}"),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(modify_index: u64, session: Option<&str>) -> KvEntry {
        KvEntry {
            key: "p/r/.lock".to_owned(),
            flags: 0,
            value: None,
            session: session.map(str::to_owned),
            modify_index,
        }
    }

    fn read(entry: Option<KvEntry>, index: u64) -> KvRead {
        KvRead { entry, index }
    }

    #[test]
    fn a_key_moves_only_forward_and_only_on_change() {
        let mut state = KeyState::Pending;
        assert!(advance(&mut state, read(Some(entry(10, Some("s"))), 10)));
        // Same entry, later index (another key changed): no news.
        assert!(!advance(&mut state, read(Some(entry(10, Some("s"))), 12)));
        // An older entry from a lagging server: ignored.
        assert!(!advance(&mut state, read(Some(entry(8, None)), 8)));
        // Released (new ModifyIndex, no session): news.
        assert!(advance(&mut state, read(Some(entry(13, None)), 13)));
        // Deleted, seen by a read older than the entry: ignored.
        assert!(!advance(&mut state, read(None, 11)));
        // Deleted: news; a stale re-appearance afterwards is not.
        assert!(advance(&mut state, read(None, 15)));
        assert!(!advance(&mut state, read(Some(entry(13, None)), 16)));
        assert!(!advance(&mut state, read(None, 17)));
        // Re-created later: news.
        assert!(advance(&mut state, read(Some(entry(18, Some("t"))), 18)));
        // After a failure anything is news.
        let mut failed = KeyState::Failed(Arc::new(Error::unavailable("down")));
        assert!(advance(&mut failed, read(None, 1)));
    }

    #[test]
    fn news_is_read_again_at_once_while_the_prefix_is_quiet_and_at_most_ten_a_second_when_busy() {
        let start = tokio::time::Instant::now();
        let mut pacer = Pacer::new(start);
        // Nothing new: 100 ms after the last read started.
        let later = start + Duration::from_millis(30);
        assert_eq!(pacer.next(later, start, false), start + MIN_WATCH_INTERVAL);
        // News on a quiet prefix: at once, five times in a row.
        for _ in 0..5 {
            assert_eq!(pacer.next(later, later, true), later);
        }
        // Then paced at ten a second.
        let mut now = later;
        let mut reads = 0;
        while now < later + Duration::from_secs(10) {
            now = pacer.next(now, now, true);
            reads += 1;
        }
        assert!((99..=101).contains(&reads), "{reads} reads in 10 s");
        // A quiet second later, at once again.
        let quiet = now + Duration::from_secs(1);
        assert_eq!(pacer.next(quiet, quiet, true), quiet);
    }

    #[test]
    fn pauses_grow_after_failures_and_stay_bounded() {
        assert_eq!(pause(0), MIN_WATCH_INTERVAL);
        assert!(pause(1) > pause(0));
        assert_eq!(pause(40), MAX_FAILURE_PAUSE);
    }

    #[test]
    fn copies_of_a_failure_keep_its_kind() {
        let denied = Arc::new(Error::unauthorized("no"));
        assert!(matches!(copy_error(&denied), Error::Unauthorized { .. }));
        let odd = Arc::new(Error::backend("odd"));
        assert!(matches!(copy_error(&odd), Error::Backend { .. }));
        let down = Arc::new(Error::unavailable("down"));
        assert!(matches!(
            copy_error(&down),
            Error::BackendUnavailable { .. }
        ));
    }
}
