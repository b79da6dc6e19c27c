//! The engine's metrics (feature `metrics`), read from a small collecting
//! recorder while an in-memory election goes through failures: renewals
//! fail, the term ends at its deadline, acquisitions fail, the other
//! candidate takes over, and its engine is killed. Needs the features
//! `metrics` and `test-util` (on in `cargo test --workspace`, where the
//! examples crate enables both).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leader_election_abstractions::telemetry::{
    ACQUIRE_DURATION, ACQUIRE_FAILURES, LAST_BACKEND_CONTACT, LEADERSHIP_ACQUIRED, LEADERSHIP_LOST,
    MASTER_STATUS, RENEW_DURATION, RENEW_FAILURES,
};
use leader_election_abstractions::{Election, LeaderElection, LeaderElectionOptions, StoreFactory};
use leader_election_inmemory::{
    InMemoryLeaderElectionFactory, InMemoryLeaseStore, InMemoryStore, StoreFault,
};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// A metric's name and its labels, in the order given.
type Series = (String, Vec<(String, String)>);

/// Every series' value: counters add, gauges hold the last value,
/// histograms count their samples.
#[derive(Clone, Default)]
struct Collector {
    values: Arc<Mutex<BTreeMap<Series, f64>>>,
}

struct Cell {
    series: Series,
    values: Arc<Mutex<BTreeMap<Series, f64>>>,
}

impl Cell {
    fn update(&self, change: impl FnOnce(&mut f64)) {
        let mut values = self.values.lock().expect("collector lock");
        change(values.entry(self.series.clone()).or_insert(0.0));
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|v| *v += value as f64);
    }
    fn absolute(&self, value: u64) {
        self.update(|v| *v = v.max(value as f64));
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|v| *v += value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| *v -= value);
    }
    fn set(&self, value: f64) {
        self.update(|v| *v = value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.update(|v| *v += 1.0);
    }
}

impl Collector {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        Arc::new(Cell {
            series: (key.name().to_owned(), labels),
            values: Arc::clone(&self.values),
        })
    }

    /// The value of the one series of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values = self.values.lock().expect("collector lock");
        let mut found = values.iter().filter(|((metric, have), _)| {
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
        });
        let (_, first) = found.next()?;
        found.next().is_none().then_some(*first)
    }
}

impl Recorder for Collector {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// Polls `done` every 100 ms of virtual time; panics after five minutes.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(300), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

fn election(factory: &InMemoryLeaderElectionFactory, id: &str) -> Election<InMemoryLeaseStore> {
    factory
        .election("jobs")
        .candidate_id(id)
        .build()
        .expect("the election")
}

#[tokio::test(start_paused = true)]
async fn failures_losses_takeover_and_a_killed_engine_show_in_the_metrics() {
    let collector = Collector::default();
    // This thread only; the current-thread runtime runs the engines here.
    let _recorder = metrics::set_default_local_recorder(&collector);
    let store = InMemoryStore::new();
    let factory =
        InMemoryLeaderElectionFactory::new(store.clone(), LeaderElectionOptions::default())
            .expect("the factory");
    let a = election(&factory, "node-a");
    let b = election(&factory, "node-b");
    let of = |id: &'static str| [("name", "jobs"), ("candidate", id)];
    let m = |name: &str, labels: &[(&str, &str)]| collector.value(name, labels);

    a.start().await.expect("start a");
    until("a leads", || a.is_leader()).await;
    b.start().await.expect("start b");
    until("b follows a", || {
        b.current_leader_id().as_deref() == Some("node-a")
    })
    .await;
    assert_eq!(m(MASTER_STATUS, &of("node-a")), Some(1.0));
    assert_eq!(m(MASTER_STATUS, &of("node-b")), Some(0.0));
    assert_eq!(m(LEADERSHIP_ACQUIRED, &of("node-a")), Some(1.0));
    let [name, cand] = of("node-a");
    assert_eq!(
        m(ACQUIRE_DURATION, &[name, cand, ("outcome", "acquired")]),
        Some(1.0)
    );
    // The follower learned of a from the store (its watch, or an attempt).
    for id in ["node-a", "node-b"] {
        assert!(
            m(LAST_BACKEND_CONTACT, &of(id)).is_some_and(|t| t > 1.0e9),
            "{id}"
        );
    }

    // a is cut off: its renewals fail until the term's deadline.
    store.set_fault("node-a", Some(StoreFault::Unavailable));
    until("a's term ends", || !a.is_leader()).await;
    until("a's gauge drops", || {
        m(MASTER_STATUS, &of("node-a")) == Some(0.0)
    })
    .await;
    let [name, cand] = of("node-a");
    assert_eq!(
        m(
            LEADERSHIP_LOST,
            &[name, cand, ("reason", "deadline_expired")]
        ),
        Some(1.0)
    );
    assert!(m(RENEW_FAILURES, &of("node-a")).is_some_and(|n| n >= 1.0));
    assert!(m(RENEW_DURATION, &[name, cand, ("outcome", "error")]).is_some_and(|n| n >= 1.0));
    until("a's acquisitions fail", || {
        m(ACQUIRE_FAILURES, &of("node-a")).is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(m(ACQUIRE_FAILURES, &of("node-b")), None, "b never failed");

    // b takes over once the lease has expired.
    until("b leads", || b.is_leader()).await;
    until("b's gauge rises", || {
        m(MASTER_STATUS, &of("node-b")) == Some(1.0)
    })
    .await;
    assert_eq!(m(LEADERSHIP_ACQUIRED, &of("node-b")), Some(1.0));

    // b's engine dies without a step-down: its gauge must not stay at 1.
    b.abort_without_release();
    until("b's gauge drops", || {
        m(MASTER_STATUS, &of("node-b")) == Some(0.0)
    })
    .await;
    let [name, cand] = of("node-b");
    assert_eq!(
        m(LEADERSHIP_LOST, &[name, cand]),
        None,
        "no loss event for a crash"
    );

    store.set_fault("node-a", None);
    a.stop().await.expect("stop a");
}
