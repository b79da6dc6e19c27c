//! The candidate registry: `<key_prefix>/.candidates/<resource>/<id>`, a
//! JSON record on an etcd lease of the record's TTL, so a dead candidate's
//! record disappears by itself. It lives outside the election prefix, which
//! etcd's own election clients read as a queue of campaigners.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leader_election_abstractions::store::CandidateRecord;
use leader_election_abstractions::Result;
use serde::{Deserialize, Serialize};

use super::Inner;
use crate::timing::whole_seconds;
use crate::wire::KeyValue;

/// What a candidate key holds.
#[derive(Serialize, Deserialize)]
struct Record {
    candidate_id: String,
    is_healthy: bool,
    health_score: f64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    updated_at_ms: u64,
}

/// The candidate id as one key segment: `%` and `/` escaped.
fn segment(candidate_id: &str) -> String {
    candidate_id.replace('%', "%25").replace('/', "%2F")
}

fn key(inner: &Inner) -> String {
    format!(
        "{}{}",
        inner.candidates_prefix,
        segment(&inner.candidate_id)
    )
}

pub(super) async fn publish(inner: &Inner, record: &CandidateRecord, ttl: Duration) -> Result<()> {
    let seconds = whole_seconds(ttl);
    let mut slot = inner.candidate_lease.lock().await;
    let alive = match *slot {
        Some((lease, ttl)) if ttl == seconds => {
            inner.client.keep_alive(lease, inner.timeout).await? > 0
        }
        _ => false,
    };
    if !alive {
        if let Some((old, _)) = slot.take() {
            let _ = inner.client.revoke(old, inner.timeout).await;
        }
        let lease = inner.client.grant(seconds, inner.timeout).await?;
        *slot = Some((lease.id, seconds));
    }
    let Some((lease, _)) = *slot else {
        return Ok(());
    };
    let updated_at_ms = record
        .updated_at
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let value = serde_json::to_vec(&Record {
        candidate_id: record.candidate_id.clone(),
        is_healthy: record.is_healthy,
        health_score: record.health_score,
        metadata: record.metadata.clone(),
        updated_at_ms,
    })
    .map_err(|e| {
        leader_election_abstractions::Error::backend(format!("encoding a candidate record: {e}"))
    })?;
    inner
        .client
        .put(&key(inner), &value, lease, inner.timeout)
        .await
}

pub(super) async fn list(inner: &Inner) -> Result<Vec<CandidateRecord>> {
    let kvs = inner
        .client
        .keys(&inner.candidates_prefix, inner.timeout)
        .await?;
    let mut records = Vec::with_capacity(kvs.len());
    for kv in kvs {
        match record_of(&kv) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(
                key = %String::from_utf8_lossy(&kv.key),
                error = %error,
                "ignoring a candidate record that is not ours"
            ),
        }
    }
    Ok(records)
}

/// The candidate record in a registry key's value.
pub(crate) fn record_of(kv: &KeyValue) -> serde_json::Result<CandidateRecord> {
    let record = serde_json::from_slice::<Record>(&kv.value)?;
    Ok(CandidateRecord {
        candidate_id: record.candidate_id,
        is_healthy: record.is_healthy,
        health_score: record.health_score,
        metadata: record.metadata,
        updated_at: SystemTime::UNIX_EPOCH + Duration::from_millis(record.updated_at_ms),
    })
}

pub(super) async fn withdraw(inner: &Inner) -> Result<()> {
    let mut slot = inner.candidate_lease.lock().await;
    let deleted = inner.client.delete(&key(inner), inner.timeout).await;
    if let Some((lease, _)) = *slot {
        inner.client.revoke(lease, inner.timeout).await?;
        *slot = None;
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn candidate_ids_become_one_key_segment() {
        assert_eq!(segment("pod-1"), "pod-1");
        assert_eq!(segment("a/b%c"), "a%2Fb%25c");
    }
}
