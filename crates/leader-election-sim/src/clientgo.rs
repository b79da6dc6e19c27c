//! A client-go-style leader elector as a foreign participant on the
//! simulated apiserver, modelled on the documented behaviour of
//! `k8s.io/client-go/tools/leaderelection` with a `LeaseLock`:
//!
//! - it polls the Lease every retry period (with client-go's jitter factor
//!   1.2 while it does not lead; a leader renews every retry period) and
//!   compares the **record** it reads with the last one: holder,
//!   `leaseDurationSeconds`, `acquireTime` and `renewTime` *to the whole
//!   second* (client-go's `LeaderElectionRecord` holds `metav1.Time`), and
//!   `leaseTransitions`. When the record changed, it notes its own clock;
//! - it takes a Lease held by someone else once `leaseDurationSeconds` have
//!   passed on its clock since it noted the record (no grace), writing with
//!   the read `resourceVersion` (409: someone else won);
//! - as leader it renews every retry period and gives up when no renewal
//!   succeeded for the renew deadline; it counts as leading until then;
//! - it runs on its own clock ([`DriftClock`], a rate within the drift bound
//!   like our candidates'), which a pause stops like theirs, and a request
//!   that gets no answer is abandoned after the renew deadline (client-go
//!   bounds a renewal by it; the model bounds its reads and acquiring writes
//!   the same way rather than hang on a black-holed connection).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::Instant;

use leader_election_abstractions::Clock;

use crate::apiserver::ApiServer;
use crate::checker::Checker;
use crate::clock::DriftClock;
use crate::link::{Delivery, Link};
use crate::rng::Rng;

/// The identity the model uses.
pub const IDENTITY: &str = "client-go";

/// Timing of the model (client-go's `LeaderElectionConfig`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `LeaseDuration` (whole seconds, as written to the Lease).
    pub lease_seconds: u64,
    /// `RenewDeadline`.
    pub renew_deadline: Duration,
    /// `RetryPeriod`.
    pub retry_period: Duration,
}

/// What the model exposes to the checker: whether it leads now.
#[derive(Clone, Debug, Default)]
pub struct Leading {
    leading: Arc<AtomicBool>,
    /// Global-time nanoseconds since `origin` until which the term holds.
    until_nanos: Arc<AtomicU64>,
}

impl Leading {
    /// Whether the model leads at this instant: it won or renewed, and less
    /// than the renew deadline has passed on its `clock` since that request
    /// started.
    pub fn now(&self, clock: &DriftClock, origin: Instant) -> bool {
        let until = self.until_nanos.load(Ordering::SeqCst);
        self.leading.load(Ordering::SeqCst)
            && (clock.now().saturating_duration_since(origin).as_nanos() as u64) < until
    }

    /// The process is gone (crashed): it leads no more.
    pub fn crashed(&self) {
        self.leading.store(false, Ordering::SeqCst);
    }
}

/// The comparable form of a record, with times to the second.
fn record(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    let second = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| {
        t.map(|t| t.0.as_second())
    };
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        spec.holder_identity,
        spec.lease_duration_seconds,
        second(spec.acquire_time),
        second(spec.renew_time),
        spec.lease_transitions
    )
}

/// The model's parts.
pub struct ClientGo {
    /// The apiserver.
    pub server: ApiServer,
    /// Its network link.
    pub link: Link,
    /// The Lease's name.
    pub name: String,
    /// Its timing.
    pub timing: Timing,
    /// Its jitter.
    pub rng: Rng,
    /// Where it reports becoming leader.
    pub checker: Checker,
    /// Its index in the checker.
    pub who: usize,
    /// Whether it leads, for the checker.
    pub leading: Leading,
    /// Its monotonic clock (it stops while the process is paused).
    pub clock: DriftClock,
    /// The origin of `leading`'s time line, on `clock`.
    pub origin: Instant,
}

/// `call` through `link`, abandoned (`None`) once `limit` has passed on
/// `clock` without an answer.
async fn bounded<T>(
    clock: &DriftClock,
    limit: Duration,
    call: impl std::future::Future<Output = Delivery<T>>,
) -> Option<Delivery<T>> {
    let deadline = clock.now() + limit;
    tokio::select! {
        biased;
        delivered = call => Some(delivered),
        () = clock.sleep_until(deadline) => None,
    }
}

/// Runs the model until aborted.
pub async fn run(model: ClientGo) {
    let ClientGo {
        server,
        link,
        name,
        timing,
        mut rng,
        checker,
        who,
        leading,
        clock,
        origin,
    } = model;
    let mut observed: Option<(String, Instant)> = None;
    let mut last_success: Option<Instant> = None;
    loop {
        // Acquiring, client-go retries with jitter (factor 1.2); leading, it
        // renews every retry period.
        let jittered = timing.retry_period.mul_f64(1.0 + 1.2 * rng.unit());
        let wait = if last_success.is_some() {
            timing.retry_period
        } else {
            jittered
        };
        clock.sleep_until(clock.now() + wait).await;
        let started = clock.now();
        if let Some(at) = last_success {
            if started >= at + timing.renew_deadline {
                leading.leading.store(false, Ordering::SeqCst);
                last_success = None;
                checker.note(format!("{IDENTITY} stopped leading (renew deadline)"));
            }
        }
        let reading = server.clone();
        let reading_name = name.clone();
        let read = link.call(move || {
            let lease = reading.get(&reading_name);
            async move { lease }
        });
        let current = match bounded(&clock, timing.renew_deadline, read).await {
            Some(Delivery::Answer(lease)) => lease,
            Some(Delivery::Refused) | None => continue,
        };
        let now = clock.now();
        let mut lease = match current {
            None => Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                spec: None,
            },
            Some(lease) => {
                let key = record(&lease);
                if observed.as_ref().is_none_or(|(seen, _)| *seen != key) {
                    observed = Some((key, now));
                }
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
                let since = observed.as_ref().map_or(now, |(_, at)| *at);
                if !holder.is_empty()
                    && holder != IDENTITY
                    && now < since + Duration::from_secs(seconds)
                {
                    continue;
                }
                lease
            }
        };
        let exists = lease.metadata.resource_version.is_some();
        let mut spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(IDENTITY);
        let stamp = server.wall_now();
        if !ours {
            spec.acquire_time = Some(stamp.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + i32::from(exists));
        }
        spec.holder_identity = Some(IDENTITY.to_owned());
        spec.lease_duration_seconds = Some(timing.lease_seconds as i32);
        spec.renew_time = Some(stamp);
        lease.spec = Some(LeaseSpec { ..spec });
        let writing = server.clone();
        let target = name.clone();
        let write = link.call(move || {
            let lease = lease.clone();
            let result = if exists {
                writing.replace(&target, lease)
            } else {
                writing.create(lease)
            };
            async move { result }
        });
        let Some(Delivery::Answer(Ok(written))) =
            bounded(&clock, timing.renew_deadline, write).await
        else {
            continue;
        };
        observed = Some((record(&written), clock.now()));
        let uid = written.metadata.uid.clone();
        if clock.now() >= started + timing.renew_deadline {
            continue;
        }
        last_success = Some(started);
        let until = (started + timing.renew_deadline).saturating_duration_since(origin);
        leading
            .until_nanos
            .store(until.as_nanos() as u64, Ordering::SeqCst);
        if !ours || !leading.leading.load(Ordering::SeqCst) {
            leading.leading.store(true, Ordering::SeqCst);
            checker.foreign_became(who, "became leader", uid);
        }
    }
}
