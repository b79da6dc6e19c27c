//! The candidate registry: one small Lease per candidate,
//! `<resource>-candidate-<hash of the candidate id>`, labelled with a hash of
//! the resource and annotated with the candidate's health record (JSON).
//!
//! Entries are informational (who stands, how healthy), so their expiry is
//! judged on the wall clock from `renewTime` + `leaseDurationSeconds`, unlike
//! the main Lease's observed-time rule.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use leader_election_abstractions::store::CandidateRecord;
use leader_election_abstractions::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{now, KubernetesLeaseStore};
use crate::config::stable_hash;
use crate::errors::{classify, status_code};
use crate::observe::annotation;
use crate::timing::whole_seconds;

/// Label on candidate Leases: a hash of the resource they stand for.
const RESOURCE_LABEL: &str = "leader-election-rs/resource-hash";
/// Annotation on candidate Leases with the health record (JSON).
pub(crate) const HEALTH_ANNOTATION: &str = "leader-election-rs/health";

/// What we store in a candidate Lease's annotation.
#[derive(Serialize, Deserialize)]
struct HealthAnnotation {
    candidate_id: String,
    resource: String,
    is_healthy: bool,
    health_score: f64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// The name of `candidate_id`'s Lease for `resource`.
fn lease_name(resource: &str, candidate_id: &str) -> String {
    format!("{resource}-candidate-{}", stable_hash(candidate_id))
}

/// Creates or updates this candidate's Lease, valid for `ttl`.
pub(super) async fn publish(
    store: &KubernetesLeaseStore,
    record: &CandidateRecord,
    ttl: Duration,
) -> Result<()> {
    let resource = store.name.as_str();
    let name = lease_name(resource, &record.candidate_id);
    let annotation = serde_json::to_string(&HealthAnnotation {
        candidate_id: record.candidate_id.clone(),
        resource: resource.to_owned(),
        is_healthy: record.is_healthy,
        health_score: record.health_score,
        metadata: record.metadata.clone(),
    })
    .map_err(|e| Error::backend(format!("encoding the candidate record: {e}")).with_source(e))?;
    let existing = store
        .call("get candidate lease", store.api.get_opt(&name))
        .await?
        .map_err(|e| classify("get candidate lease", e))?;
    let mut lease = existing.clone().unwrap_or_default();
    lease.metadata.name = Some(name.clone());
    lease.metadata.namespace = Some(store.namespace.clone());
    lease
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(RESOURCE_LABEL.to_owned(), stable_hash(resource));
    lease
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(HEALTH_ANNOTATION.to_owned(), annotation);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(record.candidate_id.clone()),
        lease_duration_seconds: Some(whole_seconds(ttl)),
        renew_time: Some(now()),
        ..LeaseSpec::default()
    });
    let written = match existing {
        Some(_) => {
            store
                .call(
                    "update candidate lease",
                    store.api.replace(&name, &PostParams::default(), &lease),
                )
                .await?
        }
        None => {
            store
                .call(
                    "create candidate lease",
                    store.api.create(&PostParams::default(), &lease),
                )
                .await?
        }
    };
    match written {
        Ok(_) => Ok(()),
        // Only this candidate writes its own record; a conflict is a retry away.
        Err(e) if status_code(&e) == Some(409) => {
            Err(Error::unavailable("candidate lease changed concurrently"))
        }
        Err(e) => Err(classify("write candidate lease", e)),
    }
}

/// The unexpired records of the resource's candidates.
pub(super) async fn list(store: &KubernetesLeaseStore) -> Result<Vec<CandidateRecord>> {
    let resource = store.name.as_str();
    let params =
        ListParams::default().labels(&format!("{RESOURCE_LABEL}={}", stable_hash(resource)));
    let listed = store
        .call("list candidate leases", store.api.list(&params))
        .await?
        .map_err(|e| classify("list candidate leases", e))?;
    let now = Timestamp::now();
    Ok(listed
        .items
        .iter()
        .filter_map(|lease| record_of(lease, resource, now))
        .collect())
}

/// Deletes this candidate's Lease (absent already is fine).
pub(super) async fn withdraw(store: &KubernetesLeaseStore) -> Result<()> {
    let name = lease_name(&store.name, &store.candidate_id);
    match store
        .call(
            "delete candidate lease",
            store.api.delete(&name, &DeleteParams::default()),
        )
        .await?
    {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(classify("delete candidate lease", e)),
    }
}

/// The record a candidate Lease holds for `resource`, if it is one (a
/// readable health annotation for this very resource, not just a label hash
/// collision) and has not expired at `now`.
pub(crate) fn record_of(lease: &Lease, resource: &str, now: Timestamp) -> Option<CandidateRecord> {
    let health = annotation(lease, HEALTH_ANNOTATION)
        .and_then(|json| serde_json::from_str::<HealthAnnotation>(json).ok())?;
    if health.resource != resource {
        return None;
    }
    let spec = lease.spec.as_ref()?;
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return None;
    };
    let expires = renewed.0.as_second().saturating_add(i64::from(seconds));
    if expires <= now.as_second() {
        return None;
    }
    let updated = SystemTime::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(renewed.0.as_millisecond()).unwrap_or(0));
    Some(CandidateRecord {
        candidate_id: health.candidate_id,
        is_healthy: health.is_healthy,
        health_score: health.health_score,
        metadata: health.metadata,
        updated_at: updated,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn candidate_lease(annotation: Option<&str>, renewed_ms: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|a| BTreeMap::from([(HEALTH_ANNOTATION.to_owned(), a.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("c".to_owned()),
                lease_duration_seconds: Some(10),
                renew_time: Some(MicroTime(
                    Timestamp::from_millisecond(renewed_ms).expect("a valid time"),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    fn health(resource: &str) -> String {
        serde_json::to_string(&HealthAnnotation {
            candidate_id: "c".to_owned(),
            resource: resource.to_owned(),
            is_healthy: true,
            health_score: 0.75,
            metadata: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        })
        .expect("json")
    }

    fn at_second(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a valid time")
    }

    #[test]
    fn a_live_candidate_lease_reads_back_as_its_record() {
        let lease = candidate_lease(Some(&health("jobs")), 1_000_500);
        let record = record_of(&lease, "jobs", at_second(1_005)).expect("a record");
        assert_eq!(record.candidate_id, "c");
        assert!(record.is_healthy);
        assert_eq!(record.health_score, 0.75);
        assert_eq!(record.metadata.get("zone").map(String::as_str), Some("a"));
        assert_eq!(
            record.updated_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_500)
        );
    }

    #[test]
    fn an_expired_candidate_lease_is_not_listed() {
        let lease = candidate_lease(Some(&health("jobs")), 1_000_000);
        assert!(record_of(&lease, "jobs", at_second(1_009)).is_some());
        assert!(record_of(&lease, "jobs", at_second(1_010)).is_none());
    }

    #[test]
    fn leases_of_other_resources_or_without_a_readable_record_are_skipped() {
        let now = at_second(1_001);
        let other = candidate_lease(Some(&health("other")), 1_000_000);
        assert!(record_of(&other, "jobs", now).is_none());
        let unannotated = candidate_lease(None, 1_000_000);
        assert!(record_of(&unannotated, "jobs", now).is_none());
        let garbled = candidate_lease(Some("{not json"), 1_000_000);
        assert!(record_of(&garbled, "jobs", now).is_none());
        let mut undated = candidate_lease(Some(&health("jobs")), 1_000_000);
        undated.spec = Some(LeaseSpec::default());
        assert!(record_of(&undated, "jobs", now).is_none());
    }

    #[test]
    fn candidate_lease_names_are_stable_per_candidate() {
        assert_eq!(lease_name("jobs", "c"), lease_name("jobs", "c"));
        assert_ne!(lease_name("jobs", "c"), lease_name("jobs", "d"));
        assert!(lease_name("jobs", "c").starts_with("jobs-candidate-"));
    }
}
