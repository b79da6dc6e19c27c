//! A simulated etcd cluster, as the real `EtcdLeaseStore` sees it through
//! etcd's JSON gateway (`/v3/...`), reached through the etcd client's
//! transport seam (`leader_election_etcd::transport`, feature `test-util`):
//! the client builds and reads real gateway requests and answers, watch
//! streams included; only the socket is replaced by the process's simulated
//! [`Link`].
//!
//! Modelled, from etcd's API documentation (the v3 API reference:
//! `KV.Range`, `KV.Put`, `KV.DeleteRange`, `KV.Txn`, `Lease.*`,
//! `Watch.Watch`; "etcd API guarantees"; the lease section of "How etcd
//! works": a lease expires when its TTL passes without a keep-alive reaching
//! the leader) and from what the real-server suite
//! (`crates/leader-election-etcd/tests`) observes:
//!
//! - **One store revision** for the whole cluster, starting at 1; every
//!   write request (a put, a delete that deletes something, a transaction
//!   that writes, a lease revocation or expiry that deletes keys) takes the
//!   next one, shared by all its changes. Keys carry `create_revision`,
//!   `mod_revision`, `version` and `lease`; a put on an existing key keeps
//!   its `create_revision`.
//! - **Range** of one key or a range (`range_end`, `\0` for "every key from
//!   here"), sorted by create revision when asked, with `limit`, and at a
//!   past `revision`: a revision below the compaction point is refused
//!   ("mvcc: required revision has been compacted", gRPC `OutOfRange`), as
//!   is a future one.
//! - **Txn** with compares on `CREATE`, `MOD`, `VERSION` or `LEASE`
//!   (`EQUAL`, `NOT_EQUAL`, `GREATER`, `LESS`); a compare on a range holds
//!   for every key in it, and an empty range compares as one key with every
//!   field 0 (so `CreateRevision(prefix) == 0` means "no key there");
//!   `request_put`, `request_range` and `request_delete_range` operations,
//!   applied atomically at one revision. A put on a lease that does not
//!   exist fails the whole request (`NotFound`, "requested lease not
//!   found").
//! - **Leases**: a grant's TTL is at least etcd's minimum (`minTTL`, 2 s
//!   with the default 100 ms heartbeat and 1 s election timeout); a lease
//!   expires when its TTL passes without a keep-alive reaching the server,
//!   noticed by the lessor's expiry loop within 500 ms (each expiry draws
//!   its delay from the seed); expiry and revocation delete the lease's
//!   keys in one revision. A keep-alive answers the lease's full TTL, or
//!   TTL 0 for a lease that is gone or already past its expiry (etcd's
//!   `LeaseKeepAlive` turns "lease not found" into TTL 0); a revocation of
//!   an unknown lease is `NotFound`.
//! - **Leader changes** (an operator fault): for a while no request is
//!   served ("etcdserver: no leader", gRPC `Unavailable`), then the new
//!   leader's lessor promotes every lease with its full TTL plus the
//!   election timeout (etcd's `Lessor.Promote(extend)`; without lease
//!   checkpointing, off by default, the remaining TTL is not kept): leases
//!   live longer, never shorter.
//! - **Watch** of a key range from a start revision: a `created` message,
//!   then the events since the start revision (from history), then each
//!   write's events as one message whose header carries that write's
//!   revision, line-delimited, in order. A start revision below the
//!   compaction point gets a message with `compact_revision` and
//!   `canceled` (the client must read the range again and watch anew).
//!   Streams end when an operator restarts the member (every stream ends)
//!   or the link is cut (the stream breaks).
//! - **Compaction** (an operator fault, `etcdctl compact`) at the current
//!   revision: older versions of keys go, so reads and watches from before
//!   it are refused.
//!
//! Not modelled: several members (each answers from the same state, with
//! linearizable reads; no stale serializable reads), auth and TLS, lease
//! checkpointing, request size limits, `prev_kv` and watch filters,
//! progress notifications, and fragmenting of large watch responses.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use leader_election_etcd::transport::{EtcdTransport, TransportFuture};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::checker::Checker;
use crate::link::{Delivery, Link};
use crate::rng::Rng;

/// etcd's smallest lease TTL with the default timing (`minTTL`: 1.5 ×
/// election timeout, rounded up to whole seconds).
pub const MIN_TTL: i64 = 2;
/// How late the lessor's expiry loop may notice an expired lease.
const EXPIRY_CHECK: Duration = Duration::from_millis(500);
/// The election timeout the new leader adds to every lease on promotion.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// gRPC codes the gateway reports.
const NOT_FOUND: i32 = 5;
const OUT_OF_RANGE: i32 = 11;
const UNAVAILABLE: i32 = 14;
const INVALID_ARGUMENT: i32 = 3;

#[derive(Clone, Debug)]
struct Kv {
    value: Vec<u8>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

#[derive(Clone, Debug)]
struct Lease {
    ttl: i64,
    /// When it expires unless a keep-alive reaches the server first.
    expires: Instant,
}

/// A key's versions: (revision, the key then or `None` once deleted).
type History = Vec<(i64, Option<Kv>)>;

struct Watcher {
    start: Vec<u8>,
    end: Vec<u8>,
    sender: mpsc::UnboundedSender<Bytes>,
}

struct State {
    rng: Rng,
    revision: i64,
    compacted: i64,
    keys: BTreeMap<Vec<u8>, History>,
    leases: BTreeMap<i64, Lease>,
    watchers: Vec<Watcher>,
    /// Requests fail until then (a leader election is under way).
    no_leader_until: Option<Instant>,
}

/// The simulated cluster; clones share it.
#[derive(Clone)]
pub struct Etcd {
    state: Arc<Mutex<State>>,
    checker: Checker,
}

/// One answer: HTTP status and body (or a stream of watch messages).
pub enum Answer {
    /// A unary answer.
    Unary(u16, Vec<u8>),
    /// A watch: its messages, each one line.
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

fn error(code: i32, message: &str) -> Answer {
    // The gateway's HTTP status for a gRPC code (grpc-gateway's mapping).
    let status = match code {
        NOT_FOUND => 404,
        OUT_OF_RANGE | INVALID_ARGUMENT => 400,
        UNAVAILABLE => 503,
        _ => 500,
    };
    let body = json!({ "error": message, "code": code, "message": message });
    Answer::Unary(status, body.to_string().into_bytes())
}

fn ok(body: Value) -> Answer {
    Answer::Unary(200, body.to_string().into_bytes())
}

fn bytes_field(body: &Value, name: &str) -> Vec<u8> {
    body.get(name)
        .and_then(Value::as_str)
        .and_then(|text| STANDARD.decode(text).ok())
        .unwrap_or_default()
}

fn int_field(body: &Value, name: &str) -> i64 {
    match body.get(name) {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Whether `key` is in the range `[start, end)` as etcd reads it: an empty
/// `end` is the key alone, `\0` every key from `start` on.
fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

fn header(revision: i64) -> Value {
    json!({ "revision": revision.to_string() })
}

fn kv_json(key: &[u8], kv: &Kv) -> Value {
    let mut value = json!({
        "key": STANDARD.encode(key),
        "create_revision": kv.create_revision.to_string(),
        "mod_revision": kv.mod_revision.to_string(),
        "version": kv.version.to_string(),
    });
    if !kv.value.is_empty() {
        value["value"] = STANDARD.encode(&kv.value).into();
    }
    if kv.lease != 0 {
        value["lease"] = kv.lease.to_string().into();
    }
    value
}

/// One change of a write, for watchers.
struct Event {
    key: Vec<u8>,
    kv: Option<Kv>,
    revision: i64,
}

fn event_json(event: &Event) -> Value {
    match &event.kv {
        Some(kv) => json!({ "kv": kv_json(&event.key, kv) }),
        None => json!({
            "type": "DELETE",
            "kv": { "key": STANDARD.encode(&event.key), "mod_revision": event.revision.to_string() },
        }),
    }
}

fn line(result: Value) -> Bytes {
    let mut text = json!({ "result": result }).to_string();
    text.push('\n');
    Bytes::from(text)
}

impl State {
    fn current(&self, key: &[u8]) -> Option<&Kv> {
        self.keys
            .get(key)
            .and_then(|h| h.last())
            .and_then(|(_, kv)| kv.as_ref())
    }

    /// Keys in the range at `revision` (the latest version at or before it).
    fn range_at(&self, start: &[u8], end: &[u8], revision: i64) -> Vec<(Vec<u8>, Kv)> {
        self.keys
            .iter()
            .filter(|(key, _)| in_range(key, start, end))
            .filter_map(|(key, history)| {
                history
                    .iter()
                    .rev()
                    .find(|(rev, _)| *rev <= revision)
                    .and_then(|(_, kv)| kv.clone())
                    .map(|kv| (key.clone(), kv))
            })
            .collect()
    }

    /// Writes `kv` (or deletes with `None`) at `revision`.
    fn set(&mut self, key: &[u8], kv: Option<Kv>, revision: i64, events: &mut Vec<Event>) {
        self.keys
            .entry(key.to_vec())
            .or_default()
            .push((revision, kv.clone()));
        events.push(Event {
            key: key.to_vec(),
            kv,
            revision,
        });
    }

    fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
        revision: i64,
        events: &mut Vec<Event>,
    ) {
        let kv = match self.current(key) {
            Some(old) => Kv {
                value,
                create_revision: old.create_revision,
                mod_revision: revision,
                version: old.version + 1,
                lease,
            },
            None => Kv {
                value,
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease,
            },
        };
        self.set(key, Some(kv), revision, events);
    }

    fn delete_range(
        &mut self,
        start: &[u8],
        end: &[u8],
        revision: i64,
        events: &mut Vec<Event>,
    ) -> usize {
        let doomed: Vec<Vec<u8>> = self
            .keys
            .iter()
            .filter(|(key, history)| {
                in_range(key, start, end) && history.last().is_some_and(|(_, kv)| kv.is_some())
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in &doomed {
            self.set(key, None, revision, events);
        }
        doomed.len()
    }

    /// Sends `events` (of one revision) to every watcher of their keys;
    /// drops watchers whose stream is gone.
    fn notify(&mut self, events: &[Event]) {
        let Some(revision) = events.first().map(|e| e.revision) else {
            return;
        };
        self.watchers.retain(|w| {
            let mine: Vec<Value> = events
                .iter()
                .filter(|e| in_range(&e.key, &w.start, &w.end))
                .map(event_json)
                .collect();
            if mine.is_empty() {
                return !w.sender.is_closed();
            }
            w.sender
                .send(line(json!({ "header": header(revision), "events": mine })))
                .is_ok()
        });
    }

    /// Revokes `id`: its keys go in one revision.
    fn revoke(&mut self, id: i64) -> bool {
        if self.leases.remove(&id).is_none() {
            return false;
        }
        let doomed: Vec<Vec<u8>> = self
            .keys
            .iter()
            .filter(|(_, h)| {
                h.last()
                    .and_then(|(_, kv)| kv.as_ref())
                    .is_some_and(|kv| kv.lease == id)
            })
            .map(|(key, _)| key.clone())
            .collect();
        if doomed.is_empty() {
            return true;
        }
        self.revision += 1;
        let revision = self.revision;
        let mut events = Vec::new();
        for key in doomed {
            self.set(&key, None, revision, &mut events);
        }
        self.notify(&events);
        true
    }
}

impl Etcd {
    /// An empty cluster at revision 1, drawing its choices (lease ids,
    /// expiry delays) from `rng` and tracing expiries to `checker`.
    pub fn new(rng: Rng, checker: Checker) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                rng,
                revision: 1,
                compacted: 0,
                keys: BTreeMap::new(),
                leases: BTreeMap::new(),
                watchers: Vec::new(),
                no_leader_until: None,
            })),
            checker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest key (lowest create revision) under `prefix`: its lease
    /// and create revision.
    pub fn first_under(&self, prefix: &str) -> Option<(Vec<u8>, i64, i64)> {
        let state = self.lock();
        let end = leader_prefix_end(prefix.as_bytes());
        let mut keys = state.range_at(prefix.as_bytes(), &end, state.revision);
        keys.sort_by_key(|(_, kv)| kv.create_revision);
        keys.into_iter()
            .next()
            .map(|(key, kv)| (key, kv.lease, kv.create_revision))
    }

    /// `etcdctl lease revoke` by an operator.
    pub fn revoke(&self, id: i64) -> bool {
        self.lock().revoke(id)
    }

    /// `etcdctl del` by an operator.
    pub fn delete(&self, key: &[u8]) -> bool {
        let mut state = self.lock();
        if state.current(key).is_none() {
            return false;
        }
        state.revision += 1;
        let revision = state.revision;
        let mut events = Vec::new();
        state.delete_range(key, &[], revision, &mut events);
        state.notify(&events);
        true
    }

    /// `etcdctl compact <current revision>`: history before it goes.
    pub fn compact(&self) -> i64 {
        let mut state = self.lock();
        let at = state.revision;
        state.compacted = at;
        for history in state.keys.values_mut() {
            // Keep every version from `at` on, and the one live before it.
            let keep_from = history
                .iter()
                .rposition(|(rev, _)| *rev < at)
                .map_or(0, |i| if history[i].1.is_some() { i } else { i + 1 });
            history.drain(..keep_from);
        }
        state.keys.retain(|_, h| !h.is_empty());
        at
    }

    /// A member restart: every watch stream ends.
    pub fn end_watches(&self) -> usize {
        let mut state = self.lock();
        let count = state.watchers.len();
        state.watchers.clear();
        count
    }

    /// A leader election lasting `election`: requests fail until it ends,
    /// then every lease lives its full TTL plus [`ELECTION_TIMEOUT`] from
    /// then on.
    pub fn leader_change(&self, election: Duration) {
        let promoted = Instant::now() + election;
        let mut state = self.lock();
        state.no_leader_until = Some(promoted);
        let ids: Vec<i64> = state.leases.keys().copied().collect();
        for id in ids {
            let ttl = state.leases[&id].ttl;
            let expires = promoted + ELECTION_TIMEOUT + secs(ttl);
            self.arm(&mut state, id, expires);
        }
    }

    /// Ends backend-side faults (a leader election under way).
    pub fn heal(&self) {
        self.lock().no_leader_until = None;
    }

    /// Sets lease `id` to expire at `expires` and starts the lessor's
    /// timer: it is revoked once `expires` has passed (noticed up to
    /// [`EXPIRY_CHECK`] later) unless a keep-alive moved it first.
    fn arm(&self, state: &mut State, id: i64, expires: Instant) {
        let Some(lease) = state.leases.get_mut(&id) else {
            return;
        };
        lease.expires = expires;
        let noticed = expires + state.rng.duration(Duration::ZERO, EXPIRY_CHECK);
        let etcd = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(noticed).await;
            let mut state = etcd.lock();
            if state.leases.get(&id).is_some_and(|l| l.expires == expires) {
                state.revoke(id);
                drop(state);
                etcd.checker
                    .note(format!("etcd expires lease {id:x} (TTL)"));
            }
        });
    }

    fn range(state: &State, body: &Value) -> Result<Value, Answer> {
        let start = bytes_field(body, "key");
        let end = bytes_field(body, "range_end");
        let asked = int_field(body, "revision");
        let revision = if asked <= 0 { state.revision } else { asked };
        if revision > state.revision {
            return Err(error(
                OUT_OF_RANGE,
                "mvcc: required revision is a future revision",
            ));
        }
        if revision < state.compacted {
            return Err(error(
                OUT_OF_RANGE,
                "mvcc: required revision has been compacted",
            ));
        }
        let mut kvs = state.range_at(&start, &end, revision);
        if body.get("sort_target").and_then(Value::as_str) == Some("CREATE") {
            kvs.sort_by_key(|(_, kv)| kv.create_revision);
        }
        if body.get("sort_order").and_then(Value::as_str) == Some("DESCEND") {
            kvs.reverse();
        }
        let count = kvs.len();
        let limit = int_field(body, "limit");
        if limit > 0 {
            kvs.truncate(limit as usize);
        }
        let mut answer = json!({ "header": header(state.revision) });
        if !kvs.is_empty() {
            answer["kvs"] = kvs.iter().map(|(k, kv)| kv_json(k, kv)).collect();
            answer["count"] = count.to_string().into();
        }
        if count > kvs.len() {
            answer["more"] = true.into();
        }
        Ok(answer)
    }

    fn check_put(state: &State, put: &Value) -> Result<(), Answer> {
        let lease = int_field(put, "lease");
        if lease != 0 && !state.leases.contains_key(&lease) {
            return Err(error(NOT_FOUND, "etcdserver: requested lease not found"));
        }
        Ok(())
    }

    fn compare(state: &State, compare: &Value) -> bool {
        let start = bytes_field(compare, "key");
        let end = bytes_field(compare, "range_end");
        let (field, target) = match compare.get("target").and_then(Value::as_str) {
            Some("MOD") => ("mod_revision", 1),
            Some("VERSION") | None => ("version", 2),
            Some("LEASE") => ("lease", 3),
            _ => ("create_revision", 0),
        };
        let want = int_field(compare, field);
        let result = compare
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or("EQUAL");
        let mut kvs: Vec<Kv> = state
            .range_at(&start, &end, state.revision)
            .into_iter()
            .map(|(_, kv)| kv)
            .collect();
        if kvs.is_empty() {
            kvs.push(Kv {
                value: Vec::new(),
                create_revision: 0,
                mod_revision: 0,
                version: 0,
                lease: 0,
            });
        }
        kvs.iter().all(|kv| {
            let have = match target {
                1 => kv.mod_revision,
                2 => kv.version,
                3 => kv.lease,
                _ => kv.create_revision,
            };
            match result {
                "NOT_EQUAL" => have != want,
                "GREATER" => have > want,
                "LESS" => have < want,
                _ => have == want,
            }
        })
    }

    /// A transaction, or a plain put/delete as a transaction of one write.
    fn txn(state: &mut State, body: &Value) -> Answer {
        let empty = Vec::new();
        let compares = body
            .get("compare")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let succeeded = compares.iter().all(|c| Self::compare(state, c));
        let branch = if succeeded { "success" } else { "failure" };
        let ops = body
            .get(branch)
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .clone();
        for op in &ops {
            if let Some(put) = op.get("request_put") {
                if let Err(answer) = Self::check_put(state, put) {
                    return answer;
                }
            }
            if let Some(range) = op.get("request_range") {
                if let Err(answer) = Self::range(state, range) {
                    return answer;
                }
            }
        }
        let writes = ops.iter().any(|op| {
            op.get("request_put").is_some()
                || op.get("request_delete_range").is_some_and(|d| {
                    let (s, e) = (bytes_field(d, "key"), bytes_field(d, "range_end"));
                    !state.range_at(&s, &e, state.revision).is_empty()
                })
        });
        let revision = state.revision + i64::from(writes);
        let mut events = Vec::new();
        let mut responses = Vec::new();
        for op in &ops {
            if let Some(put) = op.get("request_put") {
                let key = bytes_field(put, "key");
                state.put(
                    &key,
                    bytes_field(put, "value"),
                    int_field(put, "lease"),
                    revision,
                    &mut events,
                );
                responses.push(json!({ "response_put": { "header": header(revision) } }));
            } else if let Some(range) = op.get("request_range") {
                // Reads inside a transaction see its earlier writes.
                let saved = state.revision;
                state.revision = revision;
                let answer = Self::range(state, range).unwrap_or_else(|_| json!({}));
                state.revision = saved;
                responses.push(json!({ "response_range": answer }));
            } else if let Some(delete) = op.get("request_delete_range") {
                let (s, e) = (bytes_field(delete, "key"), bytes_field(delete, "range_end"));
                let deleted = state.delete_range(&s, &e, revision, &mut events);
                responses.push(json!({ "response_delete_range": {
                    "header": header(revision), "deleted": deleted.to_string() } }));
            }
        }
        state.revision = revision;
        state.notify(&events);
        let mut answer = json!({ "header": header(revision), "responses": responses });
        if succeeded {
            answer["succeeded"] = true.into();
        }
        ok(answer)
    }

    fn grant(&self, state: &mut State, body: &Value) -> Answer {
        let ttl = int_field(body, "TTL");
        if ttl > leader_election_etcd::MAX_LEASE_TTL_SECONDS {
            return error(OUT_OF_RANGE, "etcdserver: too large lease TTL");
        }
        let ttl = ttl.max(MIN_TTL);
        let mut id = int_field(body, "ID");
        while id <= 0 || state.leases.contains_key(&id) {
            id = (state.rng.next_u64() >> 1) as i64;
        }
        let expires = Instant::now() + secs(ttl);
        state.leases.insert(id, Lease { ttl, expires });
        self.arm(state, id, expires);
        ok(
            json!({ "header": header(state.revision), "ID": id.to_string(), "TTL": ttl.to_string() }),
        )
    }

    fn keep_alive(&self, state: &mut State, body: &Value) -> Answer {
        let id = int_field(body, "ID");
        let lease = state.leases.get(&id).cloned();
        let mut answer = json!({ "header": header(state.revision), "ID": id.to_string() });
        match lease {
            Some(lease) if Instant::now() < lease.expires => {
                self.arm(state, id, Instant::now() + secs(lease.ttl));
                answer["TTL"] = lease.ttl.to_string().into();
            }
            Some(_) => {
                // Expired, its revocation not applied yet: etcd waits for
                // it and answers "not found", which the keep-alive turns
                // into TTL 0.
                state.revoke(id);
                self.checker
                    .note(format!("etcd expires lease {id:x} (TTL)"));
            }
            None => {}
        }
        let mut text = json!({ "result": answer }).to_string();
        text.push('\n');
        Answer::Unary(200, text.into_bytes())
    }

    fn watch(state: &mut State, body: &Value, checker: &Checker) -> Answer {
        let Some(create) = body.get("create_request") else {
            return error(INVALID_ARGUMENT, "only create_request is modelled");
        };
        let start = bytes_field(create, "key");
        let end = bytes_field(create, "range_end");
        let from = int_field(create, "start_revision");
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(line(
            json!({ "header": header(state.revision), "created": true }),
        ));
        if from > 0 && from < state.compacted {
            checker.note(format!(
                "etcd cancels a watch from revision {from}: compacted at {}",
                state.compacted
            ));
            let _ = sender.send(line(json!({
                "header": header(state.revision),
                "compact_revision": state.compacted.to_string(),
                "canceled": true,
            })));
            return Answer::Stream(receiver);
        }
        if from > 0 && from <= state.revision {
            // Catch up from history: every change since `from`.
            let mut past: Vec<(i64, Value)> = Vec::new();
            for (key, history) in &state.keys {
                if !in_range(key, &start, &end) {
                    continue;
                }
                for (rev, kv) in history.iter().filter(|(rev, _)| *rev >= from) {
                    let event = Event {
                        key: key.clone(),
                        kv: kv.clone(),
                        revision: *rev,
                    };
                    past.push((*rev, event_json(&event)));
                }
            }
            past.sort_by_key(|(rev, _)| *rev);
            if !past.is_empty() {
                let events: Vec<Value> = past.into_iter().map(|(_, e)| e).collect();
                let _ = sender.send(line(
                    json!({ "header": header(state.revision), "events": events }),
                ));
            }
        }
        state.watchers.push(Watcher { start, end, sender });
        Answer::Stream(receiver)
    }

    /// Serves one gateway call.
    fn serve(&self, path: &str, body: &[u8]) -> Answer {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return error(INVALID_ARGUMENT, "malformed JSON");
        };
        let mut state = self.lock();
        if state
            .no_leader_until
            .is_some_and(|until| Instant::now() < until)
        {
            return error(UNAVAILABLE, "etcdserver: no leader");
        }
        match path {
            "/v3/kv/range" => match Self::range(&state, &body) {
                Ok(answer) => ok(answer),
                Err(answer) => {
                    self.checker.note(format!(
                        "etcd refuses a read at revision {} (compacted at {}, now {})",
                        int_field(&body, "revision"),
                        state.compacted,
                        state.revision
                    ));
                    answer
                }
            },
            "/v3/kv/put" => Self::txn(&mut state, &json!({ "success": [{ "request_put": body }] })),
            "/v3/kv/deleterange" => Self::txn(
                &mut state,
                &json!({ "success": [{ "request_delete_range": body }] }),
            ),
            "/v3/kv/txn" => Self::txn(&mut state, &body),
            "/v3/lease/grant" => self.grant(&mut state, &body),
            "/v3/lease/keepalive" => self.keep_alive(&mut state, &body),
            "/v3/lease/revoke" => {
                let id = int_field(&body, "ID");
                if state.revoke(id) {
                    ok(json!({ "header": header(state.revision) }))
                } else {
                    error(NOT_FOUND, "etcdserver: requested lease not found")
                }
            }
            "/v3/watch" => Self::watch(&mut state, &body, &self.checker),
            _ => Answer::Unary(404, b"Not Found".to_vec()),
        }
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// The range end of every key starting with `prefix`.
fn leader_prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A streaming body fed by a channel (a watch's messages as the link
/// delivers them; an error when the link breaks).
struct ChannelBody(mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

/// Delivers a watch's messages over `link`, each delayed, in order (one
/// TCP stream); a cut breaks the stream with an error.
fn stream_body(mut messages: mpsc::UnboundedReceiver<Bytes>, link: Link) -> reqwest::Body {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut last = Instant::now();
        while let Some(message) = messages.recv().await {
            let at = (Instant::now() + link.delay()).max(last);
            last = at;
            tokio::time::sleep_until(at).await;
            if link.up().is_err() || link.down().is_err() {
                let _ = tx.send(Err(std::io::Error::other("simulated watch stream cut")));
                return;
            }
            link.pause().running().await;
            if tx.send(Ok(message)).is_err() {
                return;
            }
        }
    });
    reqwest::Body::wrap(ChannelBody(rx))
}

/// One process's connection to the cluster, over the process's link: the
/// transport of its etcd client.
pub struct Member {
    etcd: Etcd,
    link: Link,
}

impl Member {
    /// `etcd` reached over `link`.
    pub fn new(etcd: Etcd, link: Link) -> Self {
        Self { etcd, link }
    }
}

impl EtcdTransport for Member {
    fn send(&self, request: http::Request<Vec<u8>>) -> TransportFuture {
        let etcd = self.etcd.clone();
        let link = self.link.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let body = Arc::new(request.into_body());
            let answer = link
                .call(move || {
                    let (etcd, path, body) = (etcd.clone(), path.clone(), Arc::clone(&body));
                    async move { etcd.serve(&path, &body) }
                })
                .await;
            let answer = match answer {
                Delivery::Answer(answer) => answer,
                Delivery::Refused => return Err("simulated connection refused".into()),
            };
            let (status, body) = match answer {
                Answer::Unary(status, body) => (status, reqwest::Body::from(body)),
                Answer::Stream(messages) => (200, stream_body(messages, link)),
            };
            let mut response = http::Response::new(body);
            *response.status_mut() =
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
            Ok(response)
        })
    }
}
