//! Property tests ("fuzzing" on stable) over every parser of the agent's
//! answers: KV reads and lists (with the lock and candidate values inside
//! them), session creation, boolean answers and `X-Consul-Index`. Nothing
//! may panic; every failure is an `Error::Backend`. `cargo test` runs 256
//! cases per target; `PROPTEST_CASES=N` runs N (see the README).

use base64::Engine as _;
use leader_election_abstractions::Error;
use leader_election_testkit::answers::{any_json, body, field, object};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::client::{
    consul_index, decode_kv_read, decode_session_created, parse_json, KvEntry, LOCK_FLAG,
};
use crate::store::{live_records, ViewMaker};

const KEY: &str = "service/leader-election/jobs/.lock";
const SESSION: &str = "0e4a0dbc-5f3d-4f5a-9a8e-2b7c1d6e9f01";

fn id_like() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("a")),
        Just(json!("")),
        ".{0,40}".prop_map(Value::from)
    ]
}

fn metadata() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(".{0,8}", ".{0,8}", 0..3).prop_map(|m| json!(m))
}

/// What we write into the lock key, or something near it.
fn holder_value() -> impl Strategy<Value = Value> {
    (
        field(id_like()),
        field(metadata()),
        field(any::<u64>().prop_map(Value::from)),
    )
        .prop_map(|(candidate_id, metadata, acquisition)| {
            object(vec![
                ("candidate_id", candidate_id),
                ("metadata", metadata),
                ("acquisition", acquisition),
            ])
        })
}

/// What we write into a candidate key, or something near it.
fn candidate_value() -> impl Strategy<Value = Value> {
    (
        field(id_like()),
        field(any::<bool>().prop_map(Value::from)),
        field(
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
        ),
        field(metadata()),
        field(any::<u64>().prop_map(Value::from)),
        field(any::<u64>().prop_map(Value::from)),
    )
        .prop_map(|(id, healthy, score, metadata, updated, ttl)| {
            object(vec![
                ("candidate_id", id),
                ("is_healthy", healthy),
                ("health_score", score),
                ("metadata", metadata),
                ("updated_unix_ms", updated),
                ("ttl_ms", ttl),
            ])
        })
}

/// A KV `Value`: base64 of one of our values, base64 of junk, or junk.
fn kv_value() -> impl Strategy<Value = Value> {
    let encode =
        |bytes: Vec<u8>| Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
    prop_oneof![
        holder_value().prop_map(move |v| encode(v.to_string().into_bytes())),
        candidate_value().prop_map(move |v| encode(v.to_string().into_bytes())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(encode),
        ".{0,24}".prop_map(Value::from),
    ]
}

/// One KV entry as Consul returns it, or something near it.
fn kv_entry() -> impl Strategy<Value = Value> {
    let u64s = || any::<u64>().prop_map(Value::from);
    (
        field(prop_oneof![3 => Just(json!(KEY)), 1 => ".{0,40}".prop_map(Value::from)]),
        field(prop_oneof![Just(json!(LOCK_FLAG)), Just(json!(0)), u64s()]),
        field(kv_value()),
        field(prop_oneof![
            3 => Just(json!(SESSION)),
            1 => Just(json!("")),
            1 => ".{0,40}".prop_map(Value::from),
        ]),
        field(u64s()),
        field(u64s()),
    )
        .prop_map(|(key, flags, value, session, modify, lock)| {
            object(vec![
                ("Key", key),
                ("Flags", flags),
                ("Value", value),
                ("Session", session),
                ("ModifyIndex", modify),
                ("LockIndex", lock),
            ])
        })
}

/// An answer body around a list of entries.
fn kv_answer() -> impl Strategy<Value = Vec<u8>> {
    body(
        prop::collection::vec(kv_entry(), 0..4)
            .prop_map(Value::from)
            .boxed(),
    )
}

/// Every failure of a parser is a typed backend error with a message.
fn typed<T>(result: &leader_election_abstractions::Result<T>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Backend { message, .. }) if !message.is_empty() => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("untyped failure: {other:?}"))),
    }
}

fn viewer() -> ViewMaker {
    ViewMaker {
        candidate_id: "a".to_owned(),
        lease_duration: std::time::Duration::from_secs(15),
        lock_delay: std::time::Duration::from_secs(20),
    }
}

proptest! {
    #[test]
    fn kv_read_answers_never_panic(body in kv_answer(), index in any::<u64>(), own in any::<bool>()) {
        let read = decode_kv_read(KEY, &body, index);
        typed(&read)?;
        if let Ok(read) = read {
            let view = viewer().view(&read, own.then_some(SESSION));
            if let Some(holder) = view.holder {
                prop_assert!(!holder.is_empty());
            }
        }
    }

    #[test]
    fn kv_list_answers_never_panic(body in kv_answer(), now in any::<u64>()) {
        let entries = parse_json::<Vec<KvEntry>>("kv list", &body);
        typed(&entries)?;
        if let Ok(entries) = entries {
            for record in live_records(&entries, now) {
                prop_assert!(record.health_score.is_finite());
            }
        }
    }

    #[test]
    fn session_create_answers_never_panic(
        body in prop_oneof![
            field(prop_oneof![Just(json!(SESSION)), ".{0,40}".prop_map(Value::from)])
                .prop_map(|id| object(vec![("ID", id)]).to_string().into_bytes()),
            any_json().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    ) {
        let id = decode_session_created(&body);
        typed(&id)?;
        if let Ok(id) = id {
            prop_assert!(id.len() == 36 && !id.contains('/'), "{id}");
        }
    }

    #[test]
    fn boolean_answers_never_panic(
        body in prop_oneof![
            any_json().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..16),
        ]
    ) {
        typed(&parse_json::<bool>("kv acquire", &body))?;
    }

    #[test]
    fn index_headers_never_panic(value in prop::collection::vec(any::<u8>(), 0..24)) {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(&value) {
            headers.insert("X-Consul-Index", value);
        }
        let _ = consul_index(&headers);
    }
}
