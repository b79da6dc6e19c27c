//! The election's watch: the view now, then an etcd watch on the election
//! prefix from the next revision; each batch of events becomes the view at
//! the batch's revision (a revision-bounded read of the oldest key). No
//! polling: a quiet election costs one open stream.

use std::sync::Arc;

use futures_util::stream;
use leader_election_abstractions::store::{LeaseView, LeaseWatch};
use leader_election_abstractions::{Error, Result};
use reqwest::Response;
use serde_json::json;

use super::Inner;
use crate::client::{classify, decode};
use crate::wire::{b64, prefix_end, Streamed, WatchResponse};

/// A watch message larger than this is refused rather than buffered.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

enum Phase {
    /// Read the view now.
    Start,
    /// Open the etcd watch from this revision.
    Open(i64),
    /// Read the stream's messages.
    Streaming { response: Response, buffer: Vec<u8> },
    /// The stream has ended (after an error).
    Done,
}

pub(super) fn watch(inner: Arc<Inner>) -> LeaseWatch {
    Box::pin(stream::unfold(
        (inner, Phase::Start),
        |(inner, phase)| async move {
            let (item, phase) = step(&inner, phase).await?;
            Some((item, (inner, phase)))
        },
    ))
}

/// Advances the watch to its next item; `None` ends the stream.
async fn step(inner: &Inner, mut phase: Phase) -> Option<(Result<LeaseView>, Phase)> {
    loop {
        phase = match phase {
            Phase::Done => return None,
            Phase::Start => match inner.view_at(None).await {
                Ok((view, revision)) => {
                    tracing::debug!(revision, holder = ?view.holder, "watching the election");
                    return Some((Ok(view), Phase::Open(revision + 1)));
                }
                Err(error) => return Some((Err(error), Phase::Done)),
            },
            Phase::Open(from) => {
                let body = json!({ "create_request": {
                    "key": b64(&inner.election_prefix),
                    "range_end": b64(prefix_end(&inner.election_prefix)),
                    "start_revision": from.to_string(),
                }});
                match inner
                    .client
                    .open_stream("watch", "/v3/watch", &body, inner.timeout)
                    .await
                {
                    Ok(response) => Phase::Streaming {
                        response,
                        buffer: Vec::new(),
                    },
                    Err(error) => return Some((Err(error), Phase::Done)),
                }
            }
            Phase::Streaming {
                mut response,
                mut buffer,
            } => {
                let line = match next_message(inner, &mut response, &mut buffer).await {
                    Ok(Some(line)) => line,
                    // Quiet for a whole lease, or closed by etcd: read the
                    // view again and open a new watch from there, so a
                    // connection that died silently is replaced without a
                    // gap in what the engine sees.
                    Ok(None) => {
                        phase = Phase::Start;
                        continue;
                    }
                    Err(error) => return Some((Err(error), Phase::Done)),
                };
                match on_message(inner, &line).await {
                    Ok(Some(view)) => {
                        return Some((Ok(view), Phase::Streaming { response, buffer }))
                    }
                    Ok(None) => Phase::Streaming { response, buffer },
                    Err(error) => return Some((Err(error), Phase::Done)),
                }
            }
        };
    }
}

/// The next newline-separated message of the stream; `None` when the stream
/// ended or stayed quiet for `watch_idle`.
async fn next_message(
    inner: &Inner,
    response: &mut Response,
    buffer: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>> {
    loop {
        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(Some(line));
            }
            continue;
        }
        if buffer.len() > MAX_MESSAGE_BYTES {
            return Err(Error::backend(format!(
                "etcd watch: a message of more than {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        match tokio::time::timeout(inner.watch_idle, response.chunk()).await {
            Err(_) => return Ok(None),
            Ok(Ok(Some(chunk))) => buffer.extend_from_slice(&chunk),
            Ok(Ok(None)) if buffer.iter().any(|b| !b.is_ascii_whitespace()) => {
                return Ok(Some(std::mem::take(buffer)))
            }
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(error)) => {
                return Err(Error::unavailable(format!("etcd watch: {error}")).with_source(error))
            }
        }
    }
}

/// What one watch message means: a new view when events came.
async fn on_message(inner: &Inner, line: &[u8]) -> Result<Option<LeaseView>> {
    let Some(revision) = changed_at(inner.client.config().key_prefix.as_str(), line)? else {
        return Ok(None);
    };
    let (view, _) = inner.view_at(Some(revision)).await?;
    tracing::debug!(revision, holder = ?view.holder, "election changed");
    Ok(Some(view))
}

/// Reads one watch message (`key_prefix` names a refused permission's
/// grant): the revision to read the election at when events came, none for
/// a message without events.
pub(crate) fn changed_at(key_prefix: &str, line: &[u8]) -> Result<Option<i64>> {
    let message: Streamed<WatchResponse> = decode("watch", line)?;
    if let Some(status) = message.error {
        return Err(classify(key_prefix, "watch", &status));
    }
    let Some(answer) = message.result else {
        return Err(Error::backend(
            "etcd watch: a message with neither result nor error",
        ));
    };
    if answer.canceled || answer.compact_revision > 0 {
        // Compacted past our start, or refused (permissions): start over.
        return Err(Error::unavailable(format!(
            "etcd watch canceled (compact revision {}): {}",
            answer.compact_revision, answer.cancel_reason
        )));
    }
    if answer.created || answer.events.is_empty() {
        return Ok(None);
    }
    Ok(Some(answer.header.revision))
}
