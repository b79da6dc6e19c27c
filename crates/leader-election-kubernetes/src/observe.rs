//! client-go's observed-time rule: what a read of the Lease means.
//!
//! A lease held by someone else may be taken once `leaseDurationSeconds`
//! (from the record) plus our grace period have passed on *our* monotonic
//! clock since we first saw the record in its current form. The remote
//! `renewTime` is never compared with the local clock, so clock skew between
//! machines does not matter (only clock *rate* does, which the grace period
//! covers). A record is "the same" while its [`RecordKey`] is: any change a
//! holder makes when it renews, or a re-created Lease (new uid), restarts the
//! count.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use leader_election_abstractions::mutants::{is_active, Mutant};
use leader_election_abstractions::store::LeaseView;
use leader_election_abstractions::FencingToken;
use tokio::time::Instant;

use crate::clock::StoreClock;
use crate::tokens::{token_of, EPOCH_ANNOTATION};

/// The value of the annotation `key` on `lease`, if set.
pub(crate) fn annotation<'a>(lease: &'a Lease, key: &str) -> Option<&'a str> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The fencing token of the term the Lease records.
pub(crate) fn lease_token(lease: &Lease) -> Option<FencingToken> {
    token_of(
        annotation(lease, EPOCH_ANNOTATION),
        lease.spec.as_ref().and_then(|s| s.lease_transitions),
    )
}

/// The fields that make a record "the same" for the observed-time rule.
#[derive(Clone, Debug, PartialEq)]
struct RecordKey {
    /// The Lease object's uid: a re-created Lease is a new record.
    uid: Option<String>,
    /// `holderIdentity`; an empty one (a release) is no holder.
    holder: Option<String>,
    duration: Option<i32>,
    acquire: Option<MicroTime>,
    renew: Option<MicroTime>,
    transitions: Option<i32>,
    epoch: Option<String>,
}

impl RecordKey {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        RecordKey {
            uid: lease.metadata.uid.clone(),
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: spec.lease_duration_seconds,
            acquire: spec.acquire_time,
            renew: spec.renew_time,
            transitions: spec.lease_transitions,
            epoch: annotation(lease, EPOCH_ANNOTATION).map(str::to_owned),
        }
    }

    /// What this record, first seen at `first_seen`, means at `now`.
    fn view(&self, first_seen: Instant, grace: Duration, now: Instant) -> LeaseView {
        let acquirable_in = self.holder.as_ref().map(|_| {
            // A missing or nonsensical duration counts as one second, like a release.
            let seconds = u64::try_from(self.duration.unwrap_or(1).max(1)).unwrap_or(1);
            let grace = if is_active(Mutant::GraceIgnored) {
                Duration::ZERO
            } else {
                grace
            };
            (first_seen + Duration::from_secs(seconds) + grace).saturating_duration_since(now)
        });
        LeaseView {
            holder: self.holder.clone(),
            fencing_token: token_of(self.epoch.as_deref(), self.transitions),
            acquirable_in,
            incarnation: self.uid.clone(),
        }
    }
}

/// One election's memory of the Lease record: the last record seen and when
/// it was first seen in that form. Shared by the store's requests and its
/// watch, so either one's read dates the record.
#[derive(Debug)]
pub(crate) struct Observer {
    grace: Duration,
    /// The clock records are dated on: the election's.
    clock: StoreClock,
    record: Mutex<Option<(RecordKey, Instant)>>,
    /// The highest `resourceVersion` this election has seen of the Lease
    /// (0: none yet), through its requests or its watch.
    newest: AtomicU64,
}

/// A `resourceVersion` as a number, if it is one.
pub(crate) fn version_number(version: Option<&str>) -> Option<u64> {
    version.and_then(|v| v.parse().ok())
}

impl Observer {
    /// An observer that has seen nothing yet, adding `grace` to every lease
    /// and dating records on `clock`.
    pub(crate) fn new(grace: Duration, clock: StoreClock) -> Self {
        Self {
            grace,
            clock,
            record: Mutex::new(None),
            newest: AtomicU64::new(0),
        }
    }

    /// Records a read of the Lease (`None`: it does not exist) and says what
    /// it means now.
    pub(crate) fn observe(&self, lease: Option<&Lease>) -> LeaseView {
        if let Some(version) =
            lease.and_then(|l| version_number(l.metadata.resource_version.as_deref()))
        {
            self.saw_version(version);
        }
        let now = self.clock.now();
        let mut record = self.record.lock();
        let Some(lease) = lease else {
            *record = None;
            return LeaseView::default();
        };
        let key = RecordKey::of(lease);
        let first_seen = match &*record {
            Some((previous, at)) if *previous == key => *at,
            _ => now,
        };
        let view = key.view(first_seen, self.grace, now);
        *record = Some((key, first_seen));
        view
    }

    /// Notes that the Lease's state as of `version` has been seen.
    pub(crate) fn saw_version(&self, version: u64) {
        self.newest.fetch_max(version, Ordering::Relaxed);
    }

    /// Whether the Lease's state as of `version` is older than something
    /// this election has already seen (then it must not be shown again).
    pub(crate) fn is_older(&self, version: Option<u64>) -> bool {
        version.is_some_and(|v| v < self.newest.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    const GRACE: Duration = Duration::from_secs(1);

    fn lease(uid: &str, holder: &str, seconds: Option<i32>, renewed_at: i64) -> Lease {
        let stamp = MicroTime(Timestamp::from_second(renewed_at).expect("a valid time"));
        Lease {
            metadata: ObjectMeta {
                uid: Some(uid.to_owned()),
                annotations: Some(BTreeMap::from([(
                    EPOCH_ANNOTATION.to_owned(),
                    "7".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: seconds,
                acquire_time: Some(stamp.clone()),
                renew_time: Some(stamp),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    fn secs(seconds: u64) -> Option<Duration> {
        Some(Duration::from_secs(seconds))
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_record_is_acquirable_after_its_duration_plus_grace_on_our_clock() {
        let observer = Observer::new(GRACE, StoreClock::Tokio);
        let held = lease("u1", "a", Some(2), 1_000);
        assert_eq!(observer.observe(Some(&held)).acquirable_in, secs(3));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(observer.observe(Some(&held)).acquirable_in, secs(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            observer.observe(Some(&held)).acquirable_in,
            Some(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_remote_renew_time_is_never_compared_with_our_clock() {
        // Renewed "in 1970" or far in the future: only our first sight counts.
        for renewed_at in [0, 4_000_000_000] {
            let observer = Observer::new(GRACE, StoreClock::Tokio);
            let view = observer.observe(Some(&lease("u1", "a", Some(2), renewed_at)));
            assert_eq!(view.acquirable_in, secs(3), "renewed at {renewed_at}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn any_change_to_the_record_restarts_the_count() {
        let original = lease("u1", "a", Some(2), 1_000);
        let mut other_counter = original.clone();
        if let Some(spec) = other_counter.spec.as_mut() {
            spec.lease_transitions = Some(4);
        }
        let changes = [
            ("a renewal", lease("u1", "a", Some(2), 1_002)),
            ("another holder", lease("u1", "b", Some(2), 1_000)),
            ("a re-created Lease", lease("u2", "a", Some(2), 1_000)),
            ("another counter", other_counter),
        ];
        for (change, changed) in changes {
            let observer = Observer::new(GRACE, StoreClock::Tokio);
            observer.observe(Some(&original));
            tokio::time::advance(Duration::from_secs(2)).await;
            let view = observer.observe(Some(&changed));
            assert_eq!(view.acquirable_in, secs(3), "after {change}");
            assert_eq!(view.incarnation, changed.metadata.uid, "after {change}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_or_nonsensical_duration_counts_as_one_second() {
        for seconds in [None, Some(0), Some(-5)] {
            let observer = Observer::new(GRACE, StoreClock::Tokio);
            let view = observer.observe(Some(&lease("u1", "a", seconds, 1_000)));
            assert_eq!(view.acquirable_in, secs(2), "{seconds:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_has_no_holder_and_no_wait() {
        let observer = Observer::new(GRACE, StoreClock::Tokio);
        let view = observer.observe(Some(&lease("u1", "", Some(1), 1_000)));
        assert_eq!(view.holder, None);
        assert_eq!(view.acquirable_in, None);
        assert_eq!(view.fencing_token, Some(FencingToken(7 * (1 << 31) + 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_view_names_the_holder_its_token_and_incarnation() {
        let observer = Observer::new(GRACE, StoreClock::Tokio);
        let view = observer.observe(Some(&lease("u9", "worker-1", Some(15), 1_000)));
        assert_eq!(view.holder.as_deref(), Some("worker-1"));
        assert_eq!(view.fencing_token, Some(FencingToken(7 * (1 << 31) + 3)));
        assert_eq!(view.incarnation.as_deref(), Some("u9"));
        assert_eq!(view.acquirable_in, secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn an_absent_lease_is_free_and_forgets_the_record() {
        let observer = Observer::new(GRACE, StoreClock::Tokio);
        let held = lease("u1", "a", Some(2), 1_000);
        observer.observe(Some(&held));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(observer.observe(None), LeaseView::default());
        // Seen again after the gap: counted from now, not from before.
        assert_eq!(observer.observe(Some(&held)).acquirable_in, secs(3));
    }

    #[test]
    fn the_token_comes_from_the_epoch_annotation_and_the_counter() {
        let held = lease("u1", "a", Some(2), 1_000);
        assert_eq!(lease_token(&held), Some(FencingToken(7 * (1 << 31) + 3)));
        let mut foreign = held.clone();
        foreign.metadata.annotations = None;
        assert_eq!(lease_token(&foreign), Some(FencingToken(3)));
        assert_eq!(annotation(&foreign, EPOCH_ANNOTATION), None);
    }
}
