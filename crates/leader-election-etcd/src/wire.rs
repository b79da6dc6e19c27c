//! The JSON of etcd's gRPC gateway (`/v3/...`): protobuf messages with
//! 64-bit integers as strings, bytes as base64 and zero values left out.
//! Only the fields this crate reads are declared; unknown ones are ignored.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// An `int64` the gateway writes as a string (or, leniently, a number).
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(deserializer)? {
        Int::Number(n) => Ok(n),
        Int::Text(text) => text
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an int64"))),
    }
}

/// `bytes`, base64 in JSON.
fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("bytes that are not base64: {e}")))
}

/// Base64 for a request's `bytes` field.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// The end of the key range holding every key that starts with `prefix`
/// (etcd's `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented and what follows dropped.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes (or nothing): "every key from here on".
    vec![0]
}

/// `ResponseHeader`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Header {
    /// The store revision when the request was applied.
    #[serde(default, deserialize_with = "int64")]
    pub(crate) revision: i64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct KeyValue {
    #[serde(default, deserialize_with = "bytes")]
    pub(crate) key: Vec<u8>,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) create_revision: i64,
    #[serde(default, deserialize_with = "bytes")]
    pub(crate) value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    #[serde(default, deserialize_with = "int64")]
    pub(crate) lease: i64,
}

/// `RangeResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RangeResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) kvs: Vec<KeyValue>,
}

/// `ResponseOp`: one of the answers inside a transaction.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ResponseOp {
    pub(crate) response_range: Option<RangeResponse>,
}

/// `TxnResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct TxnResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) succeeded: bool,
    #[serde(default)]
    pub(crate) responses: Vec<ResponseOp>,
}

/// `LeaseGrantResponse`, `LeaseKeepAliveResponse` and
/// `LeaseTimeToLiveResponse`: a lease id and its TTL in seconds (absent or
/// at most 0 when the lease does not exist; -1 from time-to-live when it
/// has expired or never existed).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct LeaseAnswer {
    #[serde(default, rename = "ID", deserialize_with = "int64")]
    pub(crate) id: i64,
    #[serde(default, rename = "TTL", deserialize_with = "int64")]
    pub(crate) ttl: i64,
    /// Set by a grant the server refused.
    #[serde(default)]
    pub(crate) error: String,
}

/// The gateway's error body, also the `error` of a streamed message.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Status {
    /// A gRPC status code.
    #[serde(default)]
    pub(crate) code: i32,
    #[serde(default)]
    pub(crate) message: String,
}

/// One message of a server stream (`/v3/watch`, `/v3/lease/keepalive`).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Streamed<T> {
    pub(crate) result: Option<T>,
    pub(crate) error: Option<Status>,
}

/// `WatchResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WatchResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) created: bool,
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) events: Vec<serde_json::Value>,
}

/// `AuthenticateResponse`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct AuthAnswer {
    #[serde(default)]
    pub(crate) token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_increment_the_last_byte() {
        assert_eq!(prefix_end("a/b/"), b"a/b0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn gateway_json_decodes_strings_base64_and_missing_fields() {
        let text = r#"{"header":{"revision":"7"},"kvs":[{"key":"YS9iLzE=","create_revision":"2","value":"aGk=","lease":"694d"}]}"#;
        assert!(
            serde_json::from_str::<RangeResponse>(text).is_err(),
            "a lease that is not a number"
        );
        let text = r#"{"header":{"revision":"7"},"kvs":[{"key":"YS9iLzE=","create_revision":"2","value":"aGk=","lease":"42"}]}"#;
        let range: RangeResponse = serde_json::from_str(text).expect("decodes");
        assert_eq!(range.header.revision, 7);
        assert_eq!(range.kvs[0].key, b"a/b/1");
        assert_eq!(range.kvs[0].value, b"hi");
        assert_eq!(range.kvs[0].lease, 42);
        let empty: RangeResponse = serde_json::from_str("{}").expect("decodes");
        assert!(empty.kvs.is_empty());
        let lease: LeaseAnswer = serde_json::from_str(r#"{"ID":"5"}"#).expect("decodes");
        assert_eq!((lease.id, lease.ttl), (5, 0));
        assert!(serde_json::from_str::<KeyValue>(r#"{"key":"%%%"}"#).is_err());
    }
}
