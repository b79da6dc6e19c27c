//! Property tests ("fuzzing" on stable) over every parser of the
//! apiserver's answers: Lease objects (with our annotations inside them)
//! and watch events. Nothing may panic; every failure is a typed error.
//! `cargo test` runs 256 cases per target; `PROPTEST_CASES=N` runs N (see
//! the README).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::WatchEvent;
use leader_election_abstractions::Error;
use leader_election_testkit::answers::{body, check, field, object};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::errors::classify;
use crate::observe::{lease_token, Observer};
use crate::store::candidates::{record_of, HEALTH_ANNOTATION};
use crate::store::watch::{on_event, Seen};
use crate::tokens::{next_term, EPOCH_ANNOTATION};

/// A number as a string: small, around 2^31 and 2^33, huge, or not a number.
fn numeric_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..1_000_000).prop_map(|n| json!(n.to_string())),
        ((1u64 << 30)..(1u64 << 34)).prop_map(|n| json!(n.to_string())),
        any::<u64>().prop_map(|n| json!(n.to_string())),
        Just(json!("18446744073709551616")),
        Just(json!("-1")),
        ".{0,12}".prop_map(Value::from),
    ]
}

/// A `MicroTime`: well formed, at the edges of its range, or not a time.
fn micro_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0i64..4_000_000_000, 0u32..1_000_000).prop_map(|(s, us)| {
            let t = Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
            json!(format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S")) + &format!(".{us:06}Z"))
        }),
        1 => Just(json!("9999-12-31T23:59:59.999999Z")),
        1 => Just(json!("0001-01-01T00:00:00.000000Z")),
        1 => ".{0,30}".prop_map(Value::from),
    ]
}

fn health_annotation() -> impl Strategy<Value = Value> {
    (
        field(prop_oneof![
            Just(json!("a")),
            ".{0,8}".prop_map(Value::from)
        ]),
        field(prop_oneof![
            Just(json!("jobs")),
            ".{0,8}".prop_map(Value::from)
        ]),
        field(any::<bool>().prop_map(Value::from)),
        field(
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
        ),
    )
        .prop_map(|(id, resource, healthy, score)| {
            let inner = object(vec![
                ("candidate_id", id),
                ("resource", resource),
                ("is_healthy", healthy),
                ("health_score", score),
            ]);
            json!(inner.to_string())
        })
}

/// A Lease object, or something near it.
fn lease() -> impl Strategy<Value = Value> {
    let i64s = || any::<i64>().prop_map(Value::from);
    let small = || (-5i64..400).prop_map(Value::from);
    let metadata = (
        field(".{0,12}".prop_map(Value::from)),
        field(numeric_string()),
        field(numeric_string()),
        field(health_annotation()),
    )
        .prop_map(|(uid, version, epoch, health)| {
            let annotations = object(vec![(EPOCH_ANNOTATION, epoch), (HEALTH_ANNOTATION, health)]);
            object(vec![
                ("name", Some(json!("jobs"))),
                ("uid", uid),
                ("resourceVersion", version),
                ("annotations", Some(annotations)),
            ])
        });
    let spec = (
        field(prop_oneof![
            Just(json!("a")),
            Just(json!("")),
            ".{0,12}".prop_map(Value::from)
        ]),
        field(prop_oneof![4 => small(), 1 => any::<i32>().prop_map(Value::from), 1 => i64s()]),
        field(micro_time()),
        field(micro_time()),
        field(prop_oneof![
            4 => small(),
            1 => Just(json!(i32::MAX)),
            1 => any::<i32>().prop_map(Value::from),
            1 => i64s(),
        ]),
    )
        .prop_map(|(holder, duration, acquire, renew, transitions)| {
            object(vec![
                ("holderIdentity", holder),
                ("leaseDurationSeconds", duration),
                ("acquireTime", acquire),
                ("renewTime", renew),
                ("leaseTransitions", transitions),
            ])
        });
    (field(metadata), field(spec)).prop_map(|(metadata, spec)| {
        object(vec![
            ("apiVersion", Some(json!("coordination.k8s.io/v1"))),
            ("kind", Some(json!("Lease"))),
            ("metadata", metadata),
            ("spec", spec),
        ])
    })
}

/// A watch event: a type and a Lease, a Status, or anything.
fn watch_event() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(json!("ADDED")),
        Just(json!("MODIFIED")),
        Just(json!("DELETED")),
        Just(json!("BOOKMARK")),
        Just(json!("ERROR")),
        ".{0,8}".prop_map(Value::from),
    ];
    let status = (
        field(any::<u16>().prop_map(Value::from)),
        field(".{0,16}".prop_map(Value::from)),
    )
        .prop_map(|(code, message)| {
            object(vec![
                ("kind", Some(json!("Status"))),
                ("apiVersion", Some(json!("v1"))),
                ("code", code),
                ("message", message),
                ("status", Some(json!("Failure"))),
            ])
        });
    (field(kind), field(prop_oneof![lease(), status]))
        .prop_map(|(kind, object_)| object(vec![("type", kind), ("object", object_)]))
}

/// What kube does with a body: decode it, a decoding failure classified.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> leader_election_abstractions::Result<T> {
    serde_json::from_slice(body).map_err(|e| classify("get lease", kube::Error::SerdeError(e)))
}

fn typed<T>(result: &leader_election_abstractions::Result<T>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Backend { message, .. } | Error::BackendUnavailable { message, .. })
            if !message.is_empty() =>
        {
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("untyped failure: {other:?}"))),
    }
}

fn lease_object(body: Vec<u8>, now: i64) -> Result<(), TestCaseError> {
    let decoded = decode::<Lease>(&body);
    typed(&decoded)?;
    if let Ok(lease) = decoded {
        let observer = Observer::new(Duration::from_secs(1), crate::clock::StoreClock::Tokio);
        let view = observer.observe(Some(&lease));
        prop_assert_eq!(view.fencing_token, lease_token(&lease));
        let now = Timestamp::from_second(now).unwrap_or(Timestamp::UNIX_EPOCH);
        let _ = record_of(&lease, "jobs", now);
        let spec = lease.spec.as_ref();
        typed(&next_term(
            lease.metadata.resource_version.as_deref(),
            spec.and_then(|s| s.lease_transitions),
        ))?;
    }
    Ok(())
}

fn watch_event_answer(body: Vec<u8>) -> Result<(), TestCaseError> {
    let decoded = decode::<WatchEvent<Lease>>(&body);
    typed(&decoded)?;
    if let Ok(event) = decoded {
        let observer = Observer::new(Duration::from_secs(1), crate::clock::StoreClock::Tokio);
        match on_event(event) {
            Seen::Changed(lease) | Seen::Deleted(lease) => {
                let _ = observer.observe(Some(&lease));
            }
            Seen::Bookmark(_) | Seen::Gone => {}
            Seen::Ended(error) => typed::<()>(&Err(error))?,
        }
    }
    Ok(())
}

#[test]
fn lease_objects_never_panic() {
    check(
        "lease_objects_never_panic",
        || (body(lease().boxed()), 0i64..4_000_000_000),
        |(body, now)| lease_object(body, now),
    );
}

#[test]
fn watch_events_never_panic() {
    check(
        "watch_events_never_panic",
        || body(watch_event().boxed()),
        watch_event_answer,
    );
}
