//! The store's watch: the one Lease's views as they change.
//!
//! A small state machine over the apiserver's list-then-watch protocol:
//!
//! - [`State::List`]: list the Lease (field selector on its name), yield its
//!   view, and watch from the list's `resourceVersion`;
//! - [`State::Open`]: open a watch from a version;
//! - [`State::Read`]: yield a view per event, remembering each event's
//!   version; when the server ends the watch (its timeout), yield the current
//!   view and open a new watch from the last version.
//!
//! Any error, including an error event such as 410 Gone (the version is too
//! old), is yielded and followed by a fresh list.

use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{WatchEvent, WatchParams};
use leader_election_abstractions::store::{LeaseView, LeaseWatch};
use leader_election_abstractions::Result;

use super::KubernetesLeaseStore;
use crate::errors::{classify, watch_ended};
use crate::observe::Observer;

/// How long the apiserver keeps one watch open (seconds), below its own
/// limit, before the watch is re-opened from the last version.
const WATCH_SECONDS: u32 = 290;

type Events = BoxStream<'static, kube::Result<WatchEvent<Lease>>>;

enum State {
    /// Nothing to resume from: list afresh.
    List,
    /// Open a watch from `version`.
    Open { version: String },
    /// Read the open watch; `version` is the last one seen.
    Read { version: String, events: Events },
}

/// The views of `store`'s Lease: the current one, then one per change.
pub(super) fn watch(store: KubernetesLeaseStore) -> LeaseWatch {
    stream::unfold((store, State::List), |(store, state)| async move {
        let (item, next) = step(&store, state).await;
        Some((item, (store, next)))
    })
    .boxed()
}

/// One item of the watch and the state after it.
async fn step(store: &KubernetesLeaseStore, state: State) -> (Result<LeaseView>, State) {
    match state {
        State::List => match store.list_lease().await {
            Ok(listed) => {
                if listed.items.len() > 1 {
                    tracing::warn!(
                        items = listed.items.len(),
                        "the field selector on the Lease name listed several objects; using the first"
                    );
                }
                let view = store.observed.observe(listed.items.first());
                let version = listed.metadata.resource_version.unwrap_or_default();
                tracing::debug!(holder = ?view.holder, %version, "watching the Lease");
                (Ok(view), State::Open { version })
            }
            Err(e) => (Err(e), State::List),
        },
        State::Open { version } => {
            let params = WatchParams::default()
                .fields(&store.name_selector())
                .timeout(WATCH_SECONDS);
            match store.api.watch(&params, &version).await {
                Ok(events) => read(store, version, events.boxed()).await,
                Err(e) => (Err(classify("watch lease", e)), State::List),
            }
        }
        State::Read { version, events } => read(store, version, events).await,
    }
}

/// What one watch event means.
pub(crate) enum Seen {
    /// A view, and the event's `resourceVersion` to resume from.
    View {
        view: LeaseView,
        version: Option<String>,
    },
    /// Nothing to report (a bookmark).
    Skip,
    /// An error event: the watch is over.
    Ended(leader_election_abstractions::Error),
}

/// Reads one event of the watch into `observed`.
pub(crate) fn on_event(observed: &Observer, event: WatchEvent<Lease>) -> Seen {
    match event {
        WatchEvent::Added(lease) | WatchEvent::Modified(lease) => Seen::View {
            view: observed.observe(Some(&lease)),
            version: lease.metadata.resource_version,
        },
        WatchEvent::Deleted(lease) => Seen::View {
            view: observed.observe(None),
            version: lease.metadata.resource_version,
        },
        WatchEvent::Bookmark(_) => Seen::Skip,
        WatchEvent::Error(status) => Seen::Ended(watch_ended(&status)),
    }
}

/// The next view from an open watch.
async fn read(
    store: &KubernetesLeaseStore,
    version: String,
    mut events: Events,
) -> (Result<LeaseView>, State) {
    loop {
        match events.next().await {
            Some(Ok(event)) => match on_event(&store.observed, event) {
                Seen::Skip => continue,
                Seen::Ended(error) => {
                    tracing::debug!(error = %error, "the Lease watch ended with an error event");
                    return (Err(error), State::List);
                }
                Seen::View {
                    view,
                    version: seen,
                } => {
                    if seen.is_none() {
                        tracing::warn!("a Lease watch event without a resourceVersion");
                    }
                    let version = seen.unwrap_or(version);
                    tracing::debug!(holder = ?view.holder, %version, "the Lease changed");
                    return (Ok(view), State::Read { version, events });
                }
            },
            Some(Err(e)) => return (Err(classify("watch lease", e)), State::List),
            // The server closed the watch (timeout): resume from where we were.
            None => {
                tracing::trace!(%version, "the apiserver closed the Lease watch; re-opening");
                return (Ok(store.observed.current_view()), State::Open { version });
            }
        }
    }
}
