//! Strategies for the providers' property tests over backend answers:
//! arbitrary JSON, fields that are absent, well typed or anything at all,
//! and encoded answers cut off or with a byte flipped.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, a few levels deep (numbers finite, as JSON has them).
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of an answer: mostly of the right kind (`typed`), sometimes
/// absent, sometimes any JSON at all.
pub fn field(typed: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        12 => typed.prop_map(Some),
        1 => any_json().prop_map(Some),
    ]
}

/// A JSON object of the fields that are present.
pub fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect::<Map<_, _>>(),
    )
}

/// An answer body: `value` encoded, any JSON, raw bytes, or `value`
/// encoded and then cut off or with one byte replaced.
pub fn body(value: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    let encoded = value.prop_map(|v| v.to_string().into_bytes());
    prop_oneof![
        4 => encoded.clone(),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..128),
        2 => (encoded, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut body, at, byte)| {
            if !body.is_empty() {
                let at = at.index(body.len());
                if byte % 2 == 0 {
                    body.truncate(at);
                } else {
                    body[at] = byte;
                }
            }
            body
        }),
    ]
}

/// Runs a property test (the strategy made by `strategy`) on a thread with a 256 MiB stack: in debug builds,
/// generating values of deeply nested strategies (a watch event around a
/// Lease around arbitrary JSON) can use more than the 2 MiB of a test
/// thread. The number of cases is proptest's (`PROPTEST_CASES`, 256 by
/// default); a failure panics with the minimal failing input.
pub fn check<S>(
    name: &'static str,
    strategy: fn() -> S,
    test: fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let run = move || {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
        if let Err(failure) = runner.run(&strategy(), test) {
            panic!("{name}: {failure}");
        }
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .stack_size(256 << 20)
            .spawn_scoped(scope, run)
            .expect("a test thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
}
