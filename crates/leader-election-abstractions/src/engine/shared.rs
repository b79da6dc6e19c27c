//! State shared between the election handle, its guards and the engine task.
//!
//! The leadership deadline lives in one atomic so that `is_leader()` is a
//! lock-free read computed against the clock at call time (contracts C2, C11).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::ElectionClock;
use crate::events::{EventStream, EVENT_BUFFER};
use crate::types::{FencingToken, LeaderElectionEvent, LossReason};
use crate::view::LeadershipState;

/// Where an election is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created, not started.
    Idle,
    /// The engine task runs.
    Running,
    /// `stop()` was called and waits for the engine task to end.
    Stopping,
    /// Ended; an election is used once.
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
    /// The election's clock and the origin of `deadline_nanos` on it, fixed
    /// when the election starts (inside the runtime whose clock it then uses).
    epoch: OnceLock<(ElectionClock, Instant)>,
    /// Nanoseconds after `epoch` plus one at which the current term ends;
    /// zero when not leading.
    deadline_nanos: AtomicU64,
    term_token: AtomicU64,
    /// Stop and resign requests the engine has not carried out yet. While
    /// any is pending no term may begin, so a grant that arrives after
    /// `stop()` or `resign()` was called never shows as leadership.
    ending: AtomicU32,
    /// Why the last term that ended ended, with that term's token: the first
    /// cause recorded wins (the handle's stop or resign, or the engine's).
    loss: Mutex<Option<(FencingToken, LossReason)>>,
    pub(crate) status: watch::Sender<Status>,
    /// The event channel, made on the first subscription.
    events: Mutex<Events>,
    /// The level-triggered view (`engine/view.rs`), republished wherever
    /// the state it is computed from changes.
    pub(super) view: watch::Sender<LeadershipState>,
    /// Why the engine task ended without `stop()`, if it did.
    pub(super) failure: Mutex<Option<String>>,
}

/// The event channel's life. A broadcast channel allocates its whole buffer
/// ([`EVENT_BUFFER`] events) up front, most of an election's memory, and a
/// process may hold thousands of elections that nobody subscribes to; so it
/// is made when the first subscriber comes. Nothing is lost by waiting: a
/// subscriber only ever receives events sent after it subscribed.
enum Events {
    /// Nobody subscribed yet: events are dropped, as a channel without
    /// receivers would drop them.
    Unsubscribed,
    Open(broadcast::Sender<LeaderElectionEvent>),
    /// Stopped, which ends every subscriber's stream.
    Closed,
}

impl Shared {
    pub(crate) fn new(resource: String, candidate_id: String) -> Self {
        let (status, _) = watch::channel(Status {
            phase: Phase::Idle,
            term: None,
            observed_leader: None,
        });
        Self {
            resource,
            candidate_id,
            epoch: OnceLock::new(),
            deadline_nanos: AtomicU64::new(0),
            term_token: AtomicU64::new(0),
            ending: AtomicU32::new(0),
            loss: Mutex::new(None),
            status,
            events: Mutex::new(Events::Unsubscribed),
            view: watch::channel(LeadershipState::NotStarted).0,
            failure: Mutex::new(None),
        }
    }

    /// Fixes the clock and its origin; called from inside the runtime at
    /// start. Returns the clock the election runs on (the first one given
    /// wins).
    pub(crate) fn init_clock(&self, clock: ElectionClock) -> ElectionClock {
        let (clock, _) = self.epoch.get_or_init(|| {
            let origin = clock.now();
            (clock, origin)
        });
        clock.clone()
    }

    /// The current term's token while its deadline has not passed.
    pub(crate) fn leading_term(&self) -> Option<FencingToken> {
        let nanos = self.deadline_nanos.load(Ordering::SeqCst);
        if nanos == 0 {
            return None;
        }
        let (clock, origin) = self.epoch.get()?;
        let deadline = *origin + std::time::Duration::from_nanos(nanos - 1);
        if clock.now() < deadline {
            Some(FencingToken(self.term_token.load(Ordering::SeqCst)))
        } else {
            None
        }
    }

    /// The current term's local deadline, if leading.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let nanos = self.deadline_nanos.load(Ordering::SeqCst);
        if nanos == 0 {
            return None;
        }
        let (_, origin) = self.epoch.get()?;
        Some(*origin + std::time::Duration::from_nanos(nanos - 1))
    }

    /// The election's clock now (Tokio's before the election started).
    pub(crate) fn now(&self) -> Instant {
        match self.epoch.get() {
            Some((clock, _)) => clock.now(),
            None => Instant::now(),
        }
    }

    /// Completes when the election's clock reaches `deadline` (at once
    /// before the election started: there is no term to wait for then).
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        if let Some((clock, _)) = self.epoch.get() {
            clock.sleep_until(deadline).await;
        }
    }

    fn encode(&self, deadline: Instant) -> Option<u64> {
        let (_, epoch) = self.epoch.get()?;
        let nanos = deadline.saturating_duration_since(*epoch).as_nanos();
        Some(u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1)
    }

    /// Begins a term. The token is written before the deadline so a reader
    /// that sees the new deadline also sees the new token. Returns false,
    /// leaving no leadership visible, when a stop or resign is pending.
    pub(crate) fn begin_term(&self, token: FencingToken, deadline: Instant) -> bool {
        let Some(nanos) = self.encode(deadline) else {
            return false;
        };
        self.term_token.store(token.0, Ordering::SeqCst);
        self.deadline_nanos.store(nanos, Ordering::SeqCst);
        // Checked after publishing: a request that raced with us either sees
        // the deadline (and clears it) or is seen here.
        if self.ending.load(Ordering::SeqCst) > 0 {
            self.clear_leadership();
            return false;
        }
        self.publish_view();
        true
    }

    /// Moves the current term's deadline from `from` to `to`. Fails, leaving
    /// the term ended, when the term was ended meanwhile (by `stop`,
    /// `resign` or an unhealthy score): a term that ended stays ended.
    pub(crate) fn extend_term(&self, from: Instant, to: Instant) -> bool {
        let (Some(from), Some(to)) = (self.encode(from), self.encode(to)) else {
            return false;
        };
        self.deadline_nanos
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Ends the term for readers at once.
    pub(crate) fn clear_leadership(&self) {
        self.deadline_nanos.store(0, Ordering::SeqCst);
        self.publish_view();
    }

    /// Ends the current term now, from the handle, before the engine task
    /// gets to it (it may be waiting on a store call): readers see it at
    /// once and the term's guards fire. The engine releases the lease and
    /// emits `LostLeadership` when it next runs.
    pub(crate) fn end_term_now(&self, reason: LossReason) {
        self.clear_leadership();
        if let Some((token, ended)) = &self.status.borrow().term {
            self.record_loss(*token, reason);
            ended.cancel();
        }
    }

    /// Registers a pending stop or resign (see `ending`) and ends the term.
    pub(crate) fn begin_ending(&self, reason: LossReason) {
        self.ending.fetch_add(1, Ordering::SeqCst);
        self.end_term_now(reason);
    }

    /// Records why the term with `token` ended, unless a cause is recorded
    /// for it already.
    pub(crate) fn record_loss(&self, token: FencingToken, reason: LossReason) {
        let mut loss = self.loss.lock();
        if loss.map(|(seen, _)| seen) != Some(token) {
            *loss = Some((token, reason));
        }
    }

    /// Why the term with `token` ended, if it has and the cause is known.
    pub(crate) fn loss_reason(&self, token: FencingToken) -> Option<LossReason> {
        let loss = self.loss.lock();
        loss.and_then(|(seen, reason)| (seen == token).then_some(reason))
    }

    /// Whether a stop or resign is pending (see `ending`).
    pub(crate) fn ending_pending(&self) -> bool {
        self.ending.load(Ordering::SeqCst) > 0
    }

    /// The engine carried out (or dropped) a pending resign.
    pub(crate) fn finish_ending(&self) {
        // Never below zero, even if called once too often.
        let _ = self
            .ending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    pub(crate) fn emit(&self, event: LeaderElectionEvent) {
        if let Events::Open(sender) = &*self.events.lock() {
            // No subscribers is fine: events are best-effort notifications.
            let _ = sender.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        let mut guard = self.events.lock();
        let receiver = match &*guard {
            Events::Open(sender) => Some(sender.subscribe()),
            Events::Unsubscribed => {
                let (sender, receiver) = broadcast::channel(EVENT_BUFFER);
                *guard = Events::Open(sender);
                Some(receiver)
            }
            Events::Closed => None,
        };
        EventStream::new(receiver)
    }

    /// Publishes a new phase of the election's life.
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.status.send_modify(|status| status.phase = phase);
        self.publish_view();
    }

    /// Marks the election stopped: no more leadership, no more events.
    pub(crate) fn finish(&self) {
        self.clear_leadership();
        *self.events.lock() = Events::Closed;
        self.status.send_modify(|status| {
            if let Some((_, ended)) = status.term.take() {
                ended.cancel();
            }
            status.phase = Phase::Stopped;
        });
        self.publish_view();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::{Events, Shared};
    use crate::types::{FencingToken, LeaderElectionEvent};

    fn changed(to: &str) -> LeaderElectionEvent {
        LeaderElectionEvent::LeaderChanged {
            resource: "r".into(),
            old_leader_id: None,
            new_leader_id: Some(to.into()),
            timestamp: std::time::SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn the_event_buffer_is_made_by_the_first_subscriber_and_dropped_at_stop() {
        let shared = Shared::new("r".into(), "me".into());
        shared.emit(changed("before"));
        assert!(matches!(*shared.events.lock(), Events::Unsubscribed));

        let mut first = shared.subscribe();
        let mut second = shared.subscribe();
        assert!(matches!(*shared.events.lock(), Events::Open(_)));
        shared.emit(changed("after"));
        shared.emit(LeaderElectionEvent::BecameLeader {
            candidate_id: "me".into(),
            resource: "r".into(),
            fencing_token: FencingToken(1),
            timestamp: std::time::SystemTime::now(),
        });
        shared.finish();
        for stream in [&mut first, &mut second] {
            // Only what was sent after subscribing, in order, then the end.
            let got: Vec<_> = stream.collect().await;
            assert_eq!(got.len(), 2, "{got:?}");
            assert!(
                matches!(&got[0], LeaderElectionEvent::LeaderChanged { new_leader_id: Some(id), .. } if id == "after")
            );
            assert!(matches!(got[1], LeaderElectionEvent::BecameLeader { .. }));
        }
        assert!(matches!(*shared.events.lock(), Events::Closed));
        assert_eq!(shared.subscribe().next().await, None);
    }

    /// A thread that panicked while holding the events lock leaves no trace:
    /// later events still reach the stream and stop still ends it (with
    /// std's poisoning mutex every later event was silently dropped and the
    /// stream never ended).
    #[tokio::test]
    async fn a_panic_while_holding_the_events_lock_silences_nothing() {
        let shared = std::sync::Arc::new(Shared::new("r".into(), "me".into()));
        let stream = shared.subscribe();
        let holder = std::sync::Arc::clone(&shared);
        let panicked = std::thread::spawn(move || {
            let _guard = holder.events.lock();
            panic!("a holder of the events lock panics");
        })
        .join();
        assert!(panicked.is_err(), "the holder panicked");
        shared.emit(changed("after the panic"));
        shared.finish();
        // A guard against a hang only: the stream ends at once after finish().
        let got: Vec<_> =
            tokio::time::timeout(std::time::Duration::from_secs(60), stream.collect())
                .await
                .expect("the stream ends after finish()");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            matches!(&got[0], LeaderElectionEvent::LeaderChanged { new_leader_id: Some(id), .. } if id == "after the panic")
        );
    }
}
