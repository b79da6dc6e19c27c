//! The DEBUG span around each store call carries the call, resource,
//! candidate and fencing token: captured by a small collecting layer while
//! one candidate acquires, renews and releases over the in-memory store.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leader_election_abstractions::telemetry::STORE_SPAN;
use leader_election_abstractions::{LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The fields of one span, as text.
type Fields = BTreeMap<String, String>;

/// One span: its id, name and fields.
type Span = (Id, &'static str, Fields);

/// Keeps every span's name and fields (those given at creation and those
/// recorded later), in creation order.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

struct FieldText<'a>(&'a mut Fields);

impl Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut FieldText(&mut fields));
        let mut spans = self.spans.lock().expect("collector lock");
        spans.push((id.clone(), attrs.metadata().name(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.spans.lock().expect("collector lock");
        if let Some((_, _, fields)) = spans.iter_mut().rev().find(|(known, _, _)| known == id) {
            values.record(&mut FieldText(fields));
        }
    }
}

impl Collector {
    /// The fields of every store span of `call`, in order.
    fn store_calls(&self, call: &str) -> Vec<Fields> {
        let spans = self.spans.lock().expect("collector lock");
        spans
            .iter()
            .filter(|(_, name, fields)| {
                *name == STORE_SPAN && fields.get("call").map(String::as_str) == Some(call)
            })
            .map(|(_, _, fields)| fields.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn store_calls_run_in_spans_with_resource_candidate_and_token() {
    let collector = Collector::default();
    let subscriber = tracing_subscriber::registry().with(
        collector
            .clone()
            .with_filter(tracing::level_filters::LevelFilter::DEBUG),
    );
    // This thread only; the current-thread runtime runs the engine task here.
    let _default = tracing::subscriber::set_default(subscriber);

    let options = LeaderElectionOptions::default();
    let renew_interval = options.renew_interval;
    let factory =
        InMemoryLeaderElectionFactory::new(InMemoryStore::new(), options).expect("the factory");
    let election = factory
        .election("jobs")
        .candidate_id("node-a")
        .build()
        .expect("the election");
    election.start().await.expect("start");
    let guard = tokio::time::timeout(Duration::from_secs(60), election.wait_for_leadership())
        .await
        .expect("leadership within a minute of virtual time")
        .expect("leadership");
    let token = guard.fencing_token().0.to_string();
    tokio::time::sleep(renew_interval + Duration::from_millis(100)).await;
    election.stop().await.expect("stop");

    let expect = |call: &str| -> Vec<Fields> {
        let found = collector.store_calls(call);
        assert!(!found.is_empty(), "no {call} span");
        for fields in &found {
            assert_eq!(
                fields.get("resource").map(String::as_str),
                Some("jobs"),
                "{fields:?}"
            );
            assert_eq!(
                fields.get("candidate").map(String::as_str),
                Some("node-a"),
                "{fields:?}"
            );
        }
        found
    };
    let acquires = expect("acquire");
    assert_eq!(
        acquires[0].get("fencing_token"),
        Some(&token),
        "the granted token is recorded on the acquire span: {acquires:?}"
    );
    for call in ["renew", "release"] {
        for fields in expect(call) {
            assert_eq!(
                fields.get("fencing_token"),
                Some(&token),
                "{call}: {fields:?}"
            );
        }
    }
    expect("watch");
    expect("close");
}
