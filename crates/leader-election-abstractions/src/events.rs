//! Event delivery: a [`Stream`](futures_core::Stream) per subscriber and
//! callback registration on top of it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

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
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EventCallback {
    pub(crate) fn spawn<F>(mut events: EventStream, mut callback: F) -> Self
    where
        F: FnMut(&LeaderElectionEvent) + Send + 'static,
    {
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                callback(&event);
            }
        });
        Self { task: Some(task) }
    }

    /// Keeps the callback registered for the rest of the election's life.
    pub fn detach(mut self) {
        self.task = None;
    }

    /// Waits until every event up to the election's stop was delivered.
    pub async fn finished(mut self) {
        if let Some(task) = self.task.take() {
            // A panicking callback ends its own task only; nothing to report here.
            let _ = task.await;
        }
    }
}

impl Drop for EventCallback {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
