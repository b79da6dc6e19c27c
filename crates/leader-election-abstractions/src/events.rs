//! Event delivery: a [`Stream`](futures_core::Stream) per subscriber and
//! callback registration on top of it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::{broadcast, oneshot};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

use crate::types::LeaderElectionEvent;

/// Events buffered per subscriber before a slow one starts to lag.
pub(crate) const EVENT_BUFFER: usize = 256;

/// A subscriber's stream of events; see
/// [`LeaderElection::subscribe`](crate::LeaderElection::subscribe).
///
/// Yields [`LeaderElectionEvent::Lagged`] when the subscriber fell behind, and
/// ends once the election has stopped and every earlier event was read.
pub struct EventStream {
    inner: Option<BroadcastStream<LeaderElectionEvent>>,
}

impl EventStream {
    pub(crate) fn new(receiver: Option<broadcast::Receiver<LeaderElectionEvent>>) -> Self {
        Self {
            inner: receiver.map(BroadcastStream::new),
        }
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("ended", &self.inner.is_none())
            .finish()
    }
}

impl Stream for EventStream {
    type Item = LeaderElectionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(event)),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                Poll::Ready(Some(LeaderElectionEvent::Lagged { missed }))
            }
            Poll::Ready(None) => {
                self.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A registered event callback; see
/// [`LeaderElectionExt::on_event`](crate::LeaderElectionExt::on_event).
///
/// Dropping it unregisters the callback; [`detach`](Self::detach) keeps it
/// running until the election stops.
#[must_use = "dropping the handle unregisters the callback; call .detach() to keep it"]
#[derive(Debug)]
pub struct EventCallback {
    runner: Option<Runner>,
}

/// Where a callback runs.
#[derive(Debug)]
enum Runner {
    /// On a task of the Tokio runtime it was registered from.
    Task(tokio::task::JoinHandle<()>),
    /// Registered outside any Tokio runtime: on a thread of its own.
    Thread {
        stop: CancellationToken,
        done: oneshot::Receiver<()>,
    },
}

impl EventCallback {
    pub(crate) fn spawn<F>(mut events: EventStream, mut callback: F) -> Self
    where
        F: FnMut(&LeaderElectionEvent) + Send + 'static,
    {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = runtime.spawn(async move {
                while let Some(event) = events.next().await {
                    callback(&event);
                }
            });
            return Self {
                runner: Some(Runner::Task(task)),
            };
        }
        let stop = CancellationToken::new();
        let (finished, done) = oneshot::channel();
        let stopped = stop.clone();
        let deliver = move || {
            // The event stream needs no reactor, only something to poll it.
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() {
                runtime.block_on(async {
                    loop {
                        tokio::select! {
                            () = stopped.cancelled() => break,
                            event = events.next() => match event {
                                Some(event) => callback(&event),
                                None => break,
                            },
                        }
                    }
                });
            }
            let _ = finished.send(());
        };
        let spawned = std::thread::Builder::new()
            .name("leader-election-callback".into())
            .spawn(deliver);
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start a thread for an event callback");
        }
        Self {
            runner: Some(Runner::Thread { stop, done }),
        }
    }

    /// Keeps the callback registered for the rest of the election's life.
    pub fn detach(mut self) {
        self.runner = None;
    }

    /// Waits until every event up to the election's stop was delivered.
    pub async fn finished(mut self) {
        match self.runner.take() {
            // A panicking callback ends its own task only; nothing to report here.
            Some(Runner::Task(task)) => {
                let _ = task.await;
            }
            Some(Runner::Thread { done, .. }) => {
                let _ = done.await;
            }
            None => {}
        }
    }
}

impl Drop for EventCallback {
    fn drop(&mut self) {
        match self.runner.take() {
            Some(Runner::Task(task)) => task.abort(),
            Some(Runner::Thread { stop, .. }) => stop.cancel(),
            None => {}
        }
    }
}
