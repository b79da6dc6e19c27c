//! State shared between the election handle, its guards and the engine task.
//!
//! The leadership deadline lives in one atomic so that `is_leader()` is a
//! lock-free read computed against the clock at call time (contracts C2, C11).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::events::{EventStream, EVENT_BUFFER};
use crate::types::{FencingToken, LeaderElectionEvent};

/// Where an election is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Running,
    Stopped,
}

/// What waiters need to see change; published through a watch channel.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) phase: Phase,
    /// The current term's token and its end signal, while leading.
    pub(crate) term: Option<(FencingToken, CancellationToken)>,
    /// The leader this candidate observes.
    pub(crate) observed_leader: Option<String>,
}

/// Shared by the handle, guards and the engine task.
pub(crate) struct Shared {
    pub(crate) resource: String,
    pub(crate) candidate_id: String,
    /// The clock origin of `deadline_nanos`, fixed when the election starts
    /// (inside the runtime whose clock it then uses).
    epoch: OnceLock<Instant>,
    /// Nanoseconds after `epoch` plus one at which the current term ends;
    /// zero when not leading.
    deadline_nanos: AtomicU64,
    term_token: AtomicU64,
    pub(crate) status: watch::Sender<Status>,
    /// `None` once stopped, which ends every subscriber's stream.
    events: Mutex<Option<broadcast::Sender<LeaderElectionEvent>>>,
}

impl Shared {
    pub(crate) fn new(resource: String, candidate_id: String) -> Self {
        let (status, _) = watch::channel(Status {
            phase: Phase::Idle,
            term: None,
            observed_leader: None,
        });
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            resource,
            candidate_id,
            epoch: OnceLock::new(),
            deadline_nanos: AtomicU64::new(0),
            term_token: AtomicU64::new(0),
            status,
            events: Mutex::new(Some(events)),
        }
    }

    /// Fixes the clock origin; called from inside the runtime at start.
    pub(crate) fn init_clock(&self) {
        self.epoch.get_or_init(Instant::now);
    }

    /// The current term's token while its deadline has not passed.
    pub(crate) fn leading_term(&self) -> Option<FencingToken> {
        let deadline = self.deadline()?;
        if Instant::now() < deadline {
            Some(FencingToken(self.term_token.load(Ordering::Acquire)))
        } else {
            None
        }
    }

    /// The current term's local deadline, if leading.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let nanos = self.deadline_nanos.load(Ordering::Acquire);
        if nanos == 0 {
            return None;
        }
        let epoch = self.epoch.get()?;
        Some(*epoch + std::time::Duration::from_nanos(nanos - 1))
    }

    /// Starts or extends a term. The token is written before the deadline so
    /// a reader that sees the new deadline also sees the new token.
    pub(crate) fn set_leadership(&self, token: FencingToken, deadline: Instant) {
        let Some(epoch) = self.epoch.get() else {
            return;
        };
        let nanos = deadline.saturating_duration_since(*epoch).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.term_token.store(token.0, Ordering::Release);
        self.deadline_nanos.store(nanos, Ordering::Release);
    }

    /// Ends the term for readers at once.
    pub(crate) fn clear_leadership(&self) {
        self.deadline_nanos.store(0, Ordering::Release);
    }

    pub(crate) fn emit(&self, event: LeaderElectionEvent) {
        if let Ok(guard) = self.events.lock() {
            if let Some(sender) = guard.as_ref() {
                // No subscribers is fine: events are best-effort notifications.
                let _ = sender.send(event);
            }
        }
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        let receiver = self
            .events
            .lock()
            .ok()
            .and_then(|guard| guard.as_ref().map(broadcast::Sender::subscribe));
        EventStream::new(receiver)
    }

    /// Marks the election stopped: no more leadership, no more events.
    pub(crate) fn finish(&self) {
        self.clear_leadership();
        if let Ok(mut guard) = self.events.lock() {
            guard.take();
        }
        self.status.send_modify(|status| {
            if let Some((_, ended)) = status.term.take() {
                ended.cancel();
            }
            status.phase = Phase::Stopped;
        });
    }
}
