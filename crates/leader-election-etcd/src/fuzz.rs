//! Property tests ("fuzzing" on stable) over every parser of the etcd
//! gateway's answers: ranges (the oldest election key and the views made
//! of it), the acquiring transaction, lease grants and keep-alives, watch
//! messages, error bodies with any HTTP status, authentication answers and
//! candidate records. Nothing may panic; every failure is a typed error
//! (backend, unavailable or unauthorized, with a message). `cargo test`
//! runs 256 cases per target; `PROPTEST_CASES=N` runs N (see the README).

use std::time::Duration;

use leader_election_abstractions::Error;
use leader_election_testkit::answers::{any_json, body, check, field, object};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::client::{auth_token, classify, decode, error_status, granted, kept_alive};
use crate::store::candidates::record_of;
use crate::store::watch::changed_at;
use crate::store::{created, view_of, Created};
use crate::wire::{
    b64, AuthAnswer, KeyValue, LeaseAnswer, RangeResponse, Status, Streamed, TxnResponse,
};

const PREFIX: &str = "leader-election";
const LEASE: i64 = 0x694d_7a3c_1b2a_0001;

/// An `int64` as the gateway writes it (a string), as a number, at the
/// edges, or not an integer at all.
fn int64() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..1_000_000).prop_map(|n| json!(n.to_string())),
        2 => any::<i64>().prop_map(|n| json!(n.to_string())),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(LEASE.to_string())),
        1 => Just(json!("9223372036854775808")),
        1 => Just(json!("-1")),
        1 => ".{0,12}".prop_map(Value::from),
    ]
}

/// `bytes` as base64 of something like ours, base64 of junk, or not base64.
fn bytes_of(like: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => like.prop_map(|s| json!(b64(s))),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| json!(b64(b))),
        1 => ".{0,24}".prop_map(Value::from),
    ]
}

/// An election key: `<prefix>/<resource>/<lease hex>` or anything.
fn election_key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|l| format!("{PREFIX}/jobs/{l:x}")),
        ".{0,40}",
    ]
}

/// A candidate record as we write it into the registry, or near it.
fn candidate_record() -> impl Strategy<Value = String> {
    let score = any::<f64>()
        .prop_filter("JSON numbers are finite", |f| f.is_finite())
        .prop_map(Value::from);
    (
        field(".{0,20}".prop_map(Value::from)),
        field(any::<bool>().prop_map(Value::from)),
        field(score),
        field(prop::collection::btree_map(".{0,8}", ".{0,8}", 0..3).prop_map(|m| json!(m))),
        field(any::<u64>().prop_map(Value::from)),
    )
        .prop_map(|(id, healthy, score, metadata, updated)| {
            object(vec![
                ("candidate_id", id),
                ("is_healthy", healthy),
                ("health_score", score),
                ("metadata", metadata),
                ("updated_at_ms", updated),
            ])
            .to_string()
        })
}

/// One `mvccpb.KeyValue`, or something near it.
fn key_value() -> impl Strategy<Value = Value> {
    (
        field(bytes_of(election_key())),
        field(int64()),
        field(bytes_of(prop_oneof![".{0,20}", candidate_record()])),
        field(int64()),
        field(int64()),
    )
        .prop_map(|(key, create_revision, value, lease, mod_revision)| {
            object(vec![
                ("key", key),
                ("create_revision", create_revision),
                ("value", value),
                ("lease", lease),
                ("mod_revision", mod_revision),
            ])
        })
}

fn header() -> impl Strategy<Value = Value> {
    (field(int64()), field(int64())).prop_map(|(revision, cluster)| {
        object(vec![("revision", revision), ("cluster_id", cluster)])
    })
}

/// A `RangeResponse`, or something near it.
fn range() -> impl Strategy<Value = Value> {
    (
        field(header()),
        field(prop::collection::vec(key_value(), 0..3).prop_map(Value::from)),
        field(int64()),
    )
        .prop_map(|(header, kvs, count)| {
            object(vec![("header", header), ("kvs", kvs), ("count", count)])
        })
}

/// A gRPC status as the gateway writes it.
fn status() -> impl Strategy<Value = Value> {
    (
        field(prop_oneof![
            (0i32..20).prop_map(Value::from),
            any::<i32>().prop_map(Value::from)
        ]),
        field(".{0,30}".prop_map(Value::from)),
    )
        .prop_map(|(code, message)| object(vec![("code", code), ("message", message)]))
}

/// A server-stream message: `{"result": ...}` or `{"error": ...}`, either,
/// both or neither.
fn streamed(result: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    (
        prop_oneof![3 => result.prop_map(Some), 1 => Just(None)],
        prop_oneof![3 => Just(None), 1 => status().prop_map(Some)],
    )
        .prop_map(|(result, error)| object(vec![("result", result), ("error", error)]))
}

/// A lease answer (grant, keep-alive).
fn lease_answer() -> impl Strategy<Value = Value> {
    (
        field(header()),
        field(prop_oneof![3 => Just(json!(LEASE.to_string())), 1 => int64()]),
        field(int64()),
        field(prop_oneof![
            Just(json!("")),
            ".{0,20}".prop_map(Value::from)
        ]),
    )
        .prop_map(|(header, id, ttl, error)| {
            object(vec![
                ("header", header),
                ("ID", id),
                ("TTL", ttl),
                ("error", error),
            ])
        })
}

/// A `WatchResponse`.
fn watch_response() -> impl Strategy<Value = Value> {
    let event = (
        field(prop_oneof![
            Just(json!("PUT")),
            Just(json!("DELETE")),
            ".{0,6}".prop_map(Value::from)
        ]),
        field(key_value()),
    )
        .prop_map(|(kind, kv)| object(vec![("type", kind), ("kv", kv)]));
    // Mostly a message with events (the one that leads to a read), so the
    // deeper checks are reached often.
    let rarely = || prop_oneof![4 => Just(json!(false)), 1 => Just(json!(true))];
    (
        field(header()),
        field(rarely()),
        field(rarely()),
        field(prop_oneof![3 => Just(json!("0")), 1 => int64()]),
        field(".{0,20}".prop_map(Value::from)),
        field(prop::collection::vec(event, 0..3).prop_map(Value::from)),
    )
        .prop_map(|(header, created, canceled, compact, reason, events)| {
            object(vec![
                ("header", header),
                ("created", created),
                ("canceled", canceled),
                ("compact_revision", compact),
                ("cancel_reason", reason),
                ("events", events),
            ])
        })
}

/// Every failure of a parser is a typed error with a message.
fn typed<T>(result: &leader_election_abstractions::Result<T>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(
            Error::Backend { message, .. }
            | Error::BackendUnavailable { message, .. }
            | Error::Unauthorized { message, .. },
        ) if !message.is_empty() => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("untyped failure: {other:?}"))),
    }
}

const HINT: Duration = Duration::from_secs(20);

/// A range answer and the view of the election made of its oldest key.
#[test]
fn range_answers_never_panic() {
    check(
        "range_answers_never_panic",
        || body(range().boxed()),
        |body| {
            let range = decode::<RangeResponse>("range", &body);
            typed(&range)?;
            if let Ok(range) = range {
                let at = range.header.revision;
                let view = view_of(range.kvs.into_iter().next(), at, HINT);
                if let Some(holder) = &view.holder {
                    prop_assert!(!holder.is_empty());
                }
            }
            Ok(())
        },
    );
}

/// The acquiring transaction's answer: our key's revision and token, or the
/// oldest key of the range inside it.
#[test]
fn transaction_answers_never_panic() {
    fn answer() -> impl Strategy<Value = Value> {
        let op = field(range()).prop_map(|r| object(vec![("response_range", r)]));
        (
            field(header()),
            field(any::<bool>().prop_map(Value::from)),
            field(prop::collection::vec(op, 1..3).prop_map(Value::from)),
        )
            .prop_map(|(header, succeeded, responses)| {
                object(vec![
                    ("header", header),
                    ("succeeded", succeeded),
                    ("responses", responses),
                ])
            })
    }
    check(
        "transaction_answers_never_panic",
        || body(answer().boxed()),
        |body| {
            let answer = decode::<TxnResponse>("transaction", &body);
            typed(&answer)?;
            if let Ok(answer) = answer {
                let outcome = created(answer);
                typed(&outcome)?;
                match outcome {
                    Ok(Created::Ours(revision, token)) => {
                        prop_assert!(revision > 0 && token.0 == revision.unsigned_abs());
                    }
                    Ok(Created::Held(first, at)) => {
                        let _ = view_of(first, at, HINT);
                    }
                    Err(_) => {}
                }
            }
            Ok(())
        },
    );
}

/// Lease grants and keep-alives (a stream message around the answer).
#[test]
fn lease_answers_never_panic() {
    check(
        "lease_answers_never_panic",
        || {
            (
                body(lease_answer().boxed()),
                body(streamed(lease_answer().boxed()).boxed()),
                1i64..100,
            )
        },
        |(grant, keep_alive, ttl)| {
            let answer = decode::<LeaseAnswer>("lease grant", &grant);
            typed(&answer)?;
            if let Ok(answer) = answer {
                let lease = granted(ttl, answer);
                typed(&lease)?;
                if let Ok(lease) = lease {
                    prop_assert!(lease.id > 0);
                }
            }
            let message = decode::<Streamed<LeaseAnswer>>("lease keep-alive", &keep_alive);
            typed(&message)?;
            if let Ok(message) = message {
                let left = kept_alive(PREFIX, LEASE, message);
                typed(&left)?;
                if let Ok(left) = left {
                    prop_assert!(left >= 0);
                }
            }
            Ok(())
        },
    );
}

/// Watch messages: the revision to read the election at, or nothing.
#[test]
fn watch_messages_never_panic() {
    check(
        "watch_messages_never_panic",
        || body(streamed(watch_response().boxed()).boxed()),
        |line| {
            typed(&changed_at(PREFIX, &line))?;
            Ok(())
        },
    );
}

/// Error answers with any HTTP status: the gateway's status body or not.
#[test]
fn error_answers_never_panic() {
    check(
        "error_answers_never_panic",
        || {
            (
                100u16..1000,
                prop_oneof![
                    2 => body(status().boxed()).boxed(),
                    1 => prop::collection::vec(any::<u8>(), 0..512).boxed(),
                ],
            )
        },
        |(code, body)| {
            let Ok(http) = StatusCode::from_u16(code) else {
                return Ok(());
            };
            let status = error_status(http, &body);
            let error = classify(PREFIX, "range", &status);
            typed::<()>(&Err(error))?;
            if serde_json::from_slice::<Status>(&body).is_err() {
                // Not the gateway's body: retryable exactly for 5xx and 429.
                let retryable = http.is_server_error() || http == StatusCode::TOO_MANY_REQUESTS;
                prop_assert_eq!(status.code, if retryable { 14 } else { 2 });
            }
            Ok(())
        },
    );
}

/// Authentication answers: a token, or a typed error.
#[test]
fn auth_answers_never_panic() {
    check(
        "auth_answers_never_panic",
        || {
            body(
                (
                    field(header()),
                    field(prop_oneof![".{0,40}".prop_map(Value::from), any_json()]),
                )
                    .prop_map(|(header, token)| object(vec![("header", header), ("token", token)]))
                    .boxed(),
            )
        },
        |body| {
            let answer = decode::<AuthAnswer>("authenticate", &body);
            typed(&answer)?;
            if let Ok(answer) = answer {
                let token = auth_token(answer);
                typed(&token)?;
                if let Ok(token) = token {
                    // It goes into a header: a bad one must be refusable, not a panic.
                    let _ = reqwest::header::HeaderValue::from_str(&token);
                }
            }
            Ok(())
        },
    );
}

/// Candidate registry entries: a range of keys whose values are records
/// (or not); each decodes or is skipped, none panics.
#[test]
fn candidate_records_never_panic() {
    check(
        "candidate_records_never_panic",
        || body(range().boxed()),
        |body| {
            let range = decode::<RangeResponse>("range", &body);
            typed(&range)?;
            for kv in range.map(|r| r.kvs).unwrap_or_default() {
                let kv: KeyValue = kv;
                if let Ok(record) = record_of(&kv) {
                    prop_assert!(record.health_score.is_finite());
                }
            }
            Ok(())
        },
    );
}
