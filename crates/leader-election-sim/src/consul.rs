//! A simulated Consul cluster (one server, one agent per process) for the
//! session and KV calls of the real `ConsulLeaseStore`, which reaches it
//! through the Consul client's transport seam
//! (`leader_election_consul::transport`, feature `test-util`): the client
//! builds and reads real HTTP requests and answers; only the socket is
//! replaced by the process's simulated [`Link`].
//!
//! Modelled, from Consul's documentation (sessions, KV, blocking queries)
//! and what the real-agent suites observe:
//!
//! - **Sessions** with a TTL, a lock-delay and a behaviour (`release` or
//!   `delete`), each on the node of the agent that created it. The server
//!   invalidates a session no earlier than TTL and at most 2 × TTL after
//!   the last renewal reached it (each renewal draws the instant from the
//!   seed, so the whole documented range is exercised). A TTL outside
//!   `[session_ttl_min, 24 h]` is refused with Consul's 500 "Invalid
//!   Session TTL"; a lock-delay above 60 s with a 400.
//! - **Invalidation** (TTL, `session/destroy`, node deregistration) frees
//!   the session's keys (`release`: the `Session` is cleared; `delete`: the
//!   key is deleted) and blocks each of them for the session's lock-delay:
//!   an `?acquire` before it has passed answers `false`.
//! - **Early invalidation on node deregistration**: an operator fault
//!   invalidates every session of one node at once, long before its TTL;
//!   the node's agent then refuses new sessions ("Missing node
//!   registration") until it registers again. In the **node lost** variant
//!   the node's agent stops answering too (the process's calls hang), as
//!   when a machine drops off the network and an operator force-leaves it.
//! - **KV** with one Raft index for every write: `?acquire=<session>` (false
//!   if another session holds the key or its lock-delay runs; the holder
//!   may acquire again; an unknown session is a 500), `?release=<session>`
//!   (false unless it holds the key; no lock-delay), plain `DELETE`,
//!   `CreateIndex`/`ModifyIndex`/`LockIndex`, and a write that changes
//!   nothing keeps its `ModifyIndex`.
//! - **Transactions** (`/v1/txn`) of `check-index`, `check-not-exists`,
//!   `lock` (refused like `?acquire`, answering with the written entry) and
//!   `unlock`, applied atomically or not at all (409 with the failing
//!   operation).
//! - **Reads and blocking queries**: `X-Consul-Index` is the KV table's
//!   index (any KV write moves it, so a blocking query on one key also
//!   returns when another key changes, as Consul's do); `?index=N&wait=W`
//!   blocks until the index passes `N` or `W` plus up to `W / 16` of jitter
//!   has passed; `?recurse` lists a prefix; 404 for a missing key.
//!
//! Not modelled: several servers (Raft leader changes, which lose the
//! lock-delays Consul keeps in the leader's memory, and stale reads), ACLs,
//! health checks attached to sessions (the store creates them with none),
//! and the agent's own caching. The store stamps values with the host's
//! clock (a per-acquisition number, a candidate record's update time); the
//! agent replaces those stamps with simulated ones when a write arrives,
//! so that whether a write changes a key does not depend on the host.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use leader_election_consul::transport::{ConsulTransport, TransportFuture};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::apiserver::{decode, query_pairs};
use crate::checker::Checker;
use crate::link::{Delivery, Link};
use crate::rng::Rng;

/// Consul's cap on a session's lock-delay.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// The simulated wall clock at the start of a run (ms since the Unix
/// epoch): 2026-01-01T00:00:00Z, as on the simulated apiserver.
const WALL_START_MS: u64 = 1_767_225_600_000;
/// Consul's cap on a session TTL.
const MAX_TTL: Duration = Duration::from_secs(86_400);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behavior {
    Release,
    Delete,
}

#[derive(Clone, Debug)]
struct Session {
    node: String,
    ttl: Duration,
    lock_delay: Duration,
    behavior: Behavior,
    /// When the server invalidates it unless it is renewed first.
    expires: Instant,
}

#[derive(Clone, Debug)]
struct Entry {
    flags: u64,
    value: Vec<u8>,
    session: Option<String>,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

struct State {
    rng: Rng,
    /// The Raft index: every write takes the next one.
    index: u64,
    /// The KV table's index (the last KV write, deletions included).
    kv_index: u64,
    kv: BTreeMap<String, Entry>,
    sessions: BTreeMap<String, Session>,
    created: u64,
    /// Keys blocked until an instant by an invalidated session's lock-delay.
    lock_delays: BTreeMap<String, Instant>,
    /// Nodes deregistered, and until when their agent refuses new sessions.
    deregistered: BTreeMap<String, Instant>,
    /// Nodes whose agent does not answer (node lost).
    lost: Vec<String>,
    ttl_min: Duration,
    /// When the run began (the simulated wall clock's origin).
    start: Instant,
    /// The last unique stamp given to an acquisition's value.
    stamps: u64,
}

/// The simulated cluster; clones share it.
#[derive(Clone)]
pub struct Consul {
    state: Arc<Mutex<State>>,
    /// Wakes blocking queries after a KV write.
    changed: Arc<Notify>,
    /// Where the server's own doings (TTL invalidations) are traced.
    checker: Checker,
}

/// One answer: status, `X-Consul-Index` and body.
struct Answer {
    status: u16,
    index: Option<u64>,
    body: Vec<u8>,
}

impl Answer {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            index: None,
            body: body.into(),
        }
    }

    fn into_response(self) -> http::Response<Vec<u8>> {
        let mut response = http::Response::new(self.body);
        *response.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
        if let Some(index) = self.index {
            if let Ok(value) = http::HeaderValue::from_str(&index.to_string()) {
                response.headers_mut().insert("X-Consul-Index", value);
            }
        }
        response
    }
}

/// Parses the durations the client sends (`"1500ms"`, `"15s"`).
fn go_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(s) = text.strip_suffix('s') {
        return s.parse::<f64>().ok().map(Duration::from_secs_f64);
    }
    None
}

/// A parsed request.
#[derive(Debug)]
struct Call {
    method: http::Method,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Call {
    fn parse(request: http::Request<Vec<u8>>) -> Option<Call> {
        let (parts, body) = request.into_parts();
        let path = decode(parts.uri.path().strip_prefix("/v1/")?);
        let query = query_pairs(parts.uri.query());
        Some(Call {
            method: parts.method,
            path,
            query,
            body,
        })
    }
}

impl Consul {
    /// An empty cluster whose agents refuse TTLs below `ttl_min`, drawing
    /// its choices (TTL invalidation instants, query jitter) from `rng` and
    /// tracing TTL invalidations to `checker`.
    pub fn new(rng: Rng, ttl_min: Duration, checker: Checker) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                rng,
                index: 1,
                kv_index: 1,
                kv: BTreeMap::new(),
                sessions: BTreeMap::new(),
                created: 0,
                lock_delays: BTreeMap::new(),
                deregistered: BTreeMap::new(),
                lost: Vec::new(),
                ttl_min,
                start: Instant::now(),
                stamps: 0,
            })),
            changed: Arc::new(Notify::new()),
            checker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session holding `key` and the `ModifyIndex` of the key.
    pub fn holder(&self, key: &str) -> Option<(Option<String>, u64)> {
        let state = self.lock();
        state
            .kv
            .get(key)
            .map(|e| (e.session.clone(), e.modify_index))
    }

    /// The node of `session`.
    pub fn node_of(&self, session: &str) -> Option<String> {
        self.lock().sessions.get(session).map(|s| s.node.clone())
    }

    /// Every node that has a session now, in name order.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .lock()
            .sessions
            .values()
            .map(|s| s.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Deregisters `node` (`consul force-leave`, `catalog/deregister`): its
    /// sessions are invalidated now, and its agent refuses new sessions
    /// until `registered_again`. With `lost`, its agent stops answering
    /// until [`heal`](Self::heal). Returns the invalidated sessions and
    /// their lock-delays.
    pub fn deregister(
        &self,
        node: &str,
        registered_again: Instant,
        lost: bool,
    ) -> Vec<(String, Duration)> {
        let mut state = self.lock();
        let ids: Vec<(String, Duration)> = state
            .sessions
            .iter()
            .filter(|(_, s)| s.node == node)
            .map(|(id, s)| (id.clone(), s.lock_delay))
            .collect();
        for (id, _) in &ids {
            Self::invalidate(&mut state, id);
        }
        state.deregistered.insert(node.to_owned(), registered_again);
        if lost && !state.lost.iter().any(|n| n == node) {
            state.lost.push(node.to_owned());
        }
        drop(state);
        self.changed.notify_waiters();
        ids
    }

    /// `consul session destroy` by an operator.
    pub fn destroy(&self, session: &str) {
        let mut state = self.lock();
        Self::invalidate(&mut state, session);
        drop(state);
        self.changed.notify_waiters();
    }

    /// `consul kv delete` by an operator.
    pub fn delete(&self, key: &str) -> bool {
        let mut state = self.lock();
        let deleted = Self::delete_key(&mut state, key);
        drop(state);
        self.changed.notify_waiters();
        deleted
    }

    /// Every node registered and answering again.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.deregistered.clear();
        state.lost.clear();
    }

    fn is_lost(&self, node: &str) -> bool {
        self.lock().lost.iter().any(|n| n == node)
    }

    fn delete_key(state: &mut State, key: &str) -> bool {
        if state.kv.remove(key).is_none() {
            return false;
        }
        state.index += 1;
        state.kv_index = state.index;
        true
    }

    /// Invalidates `id`: its keys are released (or deleted) and blocked
    /// for its lock-delay.
    fn invalidate(state: &mut State, id: &str) {
        let Some(session) = state.sessions.remove(id) else {
            return;
        };
        let now = Instant::now();
        let held: Vec<String> = state
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in held {
            if !session.lock_delay.is_zero() {
                state
                    .lock_delays
                    .insert(key.clone(), now + session.lock_delay);
            }
            match session.behavior {
                Behavior::Delete => {
                    Self::delete_key(state, &key);
                }
                Behavior::Release => {
                    state.index += 1;
                    state.kv_index = state.index;
                    let index = state.index;
                    if let Some(entry) = state.kv.get_mut(&key) {
                        entry.session = None;
                        entry.modify_index = index;
                    }
                }
            }
        }
    }

    /// Starts (or restarts, after a renewal) the session's TTL timer: the
    /// server invalidates it between TTL and 2 × TTL from now.
    fn arm(&self, state: &mut State, id: &str) {
        let Some(ttl) = state.sessions.get(id).map(|s| s.ttl) else {
            return;
        };
        let expires = Instant::now() + state.rng.duration(ttl, ttl * 2);
        if let Some(session) = state.sessions.get_mut(id) {
            session.expires = expires;
        }
        let consul = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep_until(expires).await;
            let mut state = consul.lock();
            if state
                .sessions
                .get(&id)
                .is_some_and(|s| s.expires == expires)
            {
                Self::invalidate(&mut state, &id);
                drop(state);
                consul
                    .checker
                    .note(format!("consul invalidates session {} (TTL)", short(&id)));
                consul.changed.notify_waiters();
            }
        });
    }

    fn entry_json(key: &str, entry: &Entry) -> serde_json::Value {
        let mut value = serde_json::json!({
            "Key": key,
            "Flags": entry.flags,
            "Value": if entry.value.is_empty() {
                serde_json::Value::Null
            } else {
                base64::engine::general_purpose::STANDARD.encode(&entry.value).into()
            },
            "CreateIndex": entry.create_index,
            "ModifyIndex": entry.modify_index,
            "LockIndex": entry.lock_index,
        });
        if let Some(session) = &entry.session {
            value["Session"] = session.clone().into();
        }
        value
    }

    fn read(&self, key: &str, recurse: bool) -> Answer {
        let state = self.lock();
        let entries: Vec<serde_json::Value> = state
            .kv
            .iter()
            .filter(|(k, _)| {
                if recurse {
                    k.starts_with(key)
                } else {
                    *k == key
                }
            })
            .map(|(k, e)| Self::entry_json(k, e))
            .collect();
        let mut answer = if entries.is_empty() {
            Answer::new(404, Vec::new())
        } else {
            Answer::new(200, serde_json::Value::from(entries).to_string())
        };
        answer.index = Some(state.kv_index);
        answer
    }

    /// A blocking query (on a key, or a prefix with `recurse`): returns once
    /// the KV index passes `min`, or after
    /// `wait` plus up to `wait / 16` of jitter.
    async fn blocking_read(&self, key: &str, recurse: bool, min: u64, wait: Duration) -> Answer {
        let jitter = {
            let mut state = self.lock();
            state.rng.duration(Duration::ZERO, wait / 16)
        };
        let deadline = Instant::now() + wait + jitter;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.lock().kv_index > min {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        self.read(key, recurse)
    }

    fn create_session(&self, node: &str, body: &[u8]) -> Answer {
        let spec: serde_json::Value = match serde_json::from_slice(body) {
            Ok(spec) => spec,
            Err(error) => return Answer::new(400, format!("Request decode failed: {error}")),
        };
        let duration = |name: &str| {
            spec.get(name)
                .and_then(|v| v.as_str())
                .map(go_duration)
                .unwrap_or(Some(Duration::ZERO))
        };
        let (Some(ttl), Some(lock_delay)) = (duration("TTL"), duration("LockDelay")) else {
            return Answer::new(400, "Request decode failed: bad duration");
        };
        let behavior = match spec.get("Behavior").and_then(|v| v.as_str()) {
            Some("delete") => Behavior::Delete,
            Some("release") | None => Behavior::Release,
            Some(other) => return Answer::new(400, format!("Invalid Behavior setting '{other}'")),
        };
        let mut state = self.lock();
        if ttl < state.ttl_min || ttl > MAX_TTL {
            return Answer::new(
                500,
                format!(
                    "Invalid Session TTL '{ttl:?}', must be between [{:?}={MAX_TTL:?}]",
                    state.ttl_min
                ),
            );
        }
        if lock_delay > MAX_LOCK_DELAY {
            return Answer::new(400, format!("Invalid lock delay {lock_delay:?}"));
        }
        if state
            .deregistered
            .get(node)
            .is_some_and(|until| Instant::now() < *until)
        {
            return Answer::new(500, format!("Missing node registration for {node}"));
        }
        state.created += 1;
        state.index += 1;
        let id = format!("{:08x}-5151-4000-8000-{:012x}", state.created, state.index);
        state.sessions.insert(
            id.clone(),
            Session {
                node: node.to_owned(),
                ttl,
                lock_delay,
                behavior,
                expires: Instant::now(),
            },
        );
        self.arm(&mut state, &id);
        Answer::new(200, serde_json::json!({ "ID": id }).to_string())
    }

    fn renew_session(&self, id: &str) -> Answer {
        let mut state = self.lock();
        let Some(session) = state.sessions.get(id).cloned() else {
            return Answer::new(404, format!("Session id '{id}' not found"));
        };
        self.arm(&mut state, id);
        let body = serde_json::json!([{
            "ID": id,
            "Node": session.node,
            "TTL": format!("{}ms", session.ttl.as_millis()),
            "LockDelay": session.lock_delay.as_nanos() as u64,
        }]);
        Answer::new(200, body.to_string())
    }

    /// `value` with the store's host-clock stamps replaced: `acquisition`
    /// (unique per acquisition: host milliseconds and a process-wide
    /// counter) by a number unique in the run, `updated_unix_ms` by the
    /// simulated wall clock. Otherwise whether two writes are equal (and so
    /// whether the index moves) would depend on the host's clock.
    fn restamp(state: &mut State, value: &[u8]) -> Vec<u8> {
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(value) else {
            return value.to_vec();
        };
        if object.contains_key("acquisition") {
            state.stamps += 1;
            object.insert("acquisition".into(), state.stamps.into());
        }
        if object.contains_key("updated_unix_ms") {
            let elapsed = Instant::now().saturating_duration_since(state.start);
            let ms = WALL_START_MS + elapsed.as_millis() as u64;
            object.insert("updated_unix_ms".into(), ms.into());
        }
        serde_json::to_vec(&object).unwrap_or_else(|_| value.to_vec())
    }

    /// `PUT kv/<key>` with `?acquire`, `?release` or neither.
    fn write(&self, key: &str, call: &Call) -> Answer {
        let flags = call
            .query
            .get("flags")
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        let mut state = self.lock();
        let body = Self::restamp(&mut state, &call.body);
        let answer = if let Some(session) = call.query.get("acquire") {
            if !state.sessions.contains_key(session) {
                return Answer::new(500, format!("invalid session \"{session}\""));
            }
            let blocked = state
                .lock_delays
                .get(key)
                .is_some_and(|until| Instant::now() < *until);
            let current = state.kv.get(key).cloned();
            match current {
                _ if blocked => false,
                Some(entry)
                    if entry.session.is_some() && entry.session.as_ref() != Some(session) =>
                {
                    false
                }
                current => {
                    let holds = current.as_ref().and_then(|e| e.session.as_ref()) == Some(session);
                    let unchanged = current
                        .as_ref()
                        .is_some_and(|e| holds && e.value == body && e.flags == flags);
                    if !unchanged {
                        state.index += 1;
                        state.kv_index = state.index;
                        let index = state.index;
                        let entry = Entry {
                            flags,
                            value: body.clone(),
                            session: Some(session.clone()),
                            create_index: current.as_ref().map_or(index, |e| e.create_index),
                            modify_index: index,
                            lock_index: current.as_ref().map_or(0, |e| e.lock_index)
                                + u64::from(!holds),
                        };
                        state.kv.insert(key.to_owned(), entry);
                    }
                    true
                }
            }
        } else if let Some(session) = call.query.get("release") {
            match state.kv.get(key).cloned() {
                Some(entry) if entry.session.as_ref() == Some(session) => {
                    state.index += 1;
                    state.kv_index = state.index;
                    let index = state.index;
                    state.kv.insert(
                        key.to_owned(),
                        Entry {
                            flags,
                            value: body.clone(),
                            session: None,
                            modify_index: index,
                            ..entry
                        },
                    );
                    true
                }
                _ => false,
            }
        } else {
            state.index += 1;
            state.kv_index = state.index;
            let index = state.index;
            let current = state.kv.get(key).cloned();
            state.kv.insert(
                key.to_owned(),
                Entry {
                    flags,
                    value: body.clone(),
                    session: current.as_ref().and_then(|e| e.session.clone()),
                    create_index: current.as_ref().map_or(index, |e| e.create_index),
                    modify_index: index,
                    lock_index: current.as_ref().map_or(0, |e| e.lock_index),
                },
            );
            true
        };
        drop(state);
        self.changed.notify_waiters();
        Answer::new(200, answer.to_string())
    }

    /// `PUT /v1/txn` with the verbs the store uses (`check-index`,
    /// `check-not-exists`, `lock`, `unlock`), applied atomically: 200 when every operation succeeds, 409
    /// with the failing operation's error when one fails (nothing applied).
    fn txn(&self, body: &[u8]) -> Answer {
        let Ok(serde_json::Value::Array(ops)) = serde_json::from_slice(body) else {
            return Answer::new(400, "Failed to parse body");
        };
        let mut state = self.lock();
        let mut unlocks = Vec::new();
        let mut locks = Vec::new();
        // As Consul answers: `check-index` with the entry it checked (the
        // state before the transaction), `lock` with the entry it wrote.
        let mut results = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let kv = &op["KV"];
            let key = kv["Key"].as_str().unwrap_or_default().to_owned();
            let entry = state.kv.get(&key);
            let failed = match kv["Verb"].as_str() {
                Some("check-index") => match entry {
                    Some(e) if Some(e.modify_index) == kv["Index"].as_u64() => {
                        results.push(serde_json::json!({ "KV": {
                            "Key": key,
                            "Flags": e.flags,
                            "Value": null,
                            "Session": e.session,
                            "CreateIndex": e.create_index,
                            "ModifyIndex": e.modify_index,
                            "LockIndex": e.lock_index,
                        } }));
                        None
                    }
                    _ => Some(format!(
                        "current modify index {:?} != {}",
                        entry.map(|e| e.modify_index),
                        kv["Index"]
                    )),
                },
                Some("check-not-exists") => entry.is_some().then(|| format!("key {key:?} exists")),
                Some("lock") => {
                    let session = kv["Session"].as_str().unwrap_or_default();
                    let blocked = state
                        .lock_delays
                        .get(&key)
                        .is_some_and(|until| Instant::now() < *until);
                    let held = entry
                        .and_then(|e| e.session.as_deref())
                        .is_some_and(|holder| holder != session);
                    if !state.sessions.contains_key(session) {
                        Some(format!("invalid session {session:?}"))
                    } else if blocked {
                        Some(format!("failed to lock key {key:?} due to lock delay"))
                    } else if held {
                        Some(format!("failed to lock key {key:?}, lock is already held"))
                    } else {
                        let value = base64::engine::general_purpose::STANDARD
                            .decode(kv["Value"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        locks.push((
                            key.clone(),
                            session.to_owned(),
                            kv["Flags"].as_u64().unwrap_or(0),
                            value,
                        ));
                        None
                    }
                }
                Some("unlock") => {
                    let session = kv["Session"].as_str().unwrap_or_default();
                    if entry.and_then(|e| e.session.as_deref()) == Some(session) {
                        unlocks.push((key.clone(), kv["Flags"].as_u64().unwrap_or(0)));
                        None
                    } else {
                        Some(format!("failed to unlock key {key:?}, lock isn't held, or is held by another session"))
                    }
                }
                other => return Answer::new(400, format!("verb {other:?} not modelled")),
            };
            if let Some(what) = failed {
                let errors = serde_json::json!({ "Results": null, "Errors": [{ "OpIndex": i, "What": what }] });
                return Answer::new(409, errors.to_string());
            }
        }
        for (key, flags) in unlocks {
            state.index += 1;
            state.kv_index = state.index;
            let index = state.index;
            if let Some(entry) = state.kv.get_mut(&key) {
                entry.session = None;
                entry.value.clear();
                entry.flags = flags;
                entry.modify_index = index;
            }
        }
        for (key, session, flags, value) in locks {
            let body = Self::restamp(&mut state, &value);
            let current = state.kv.get(&key).cloned();
            let holds = current.as_ref().and_then(|e| e.session.as_ref()) == Some(&session);
            state.index += 1;
            state.kv_index = state.index;
            let index = state.index;
            let entry = Entry {
                flags,
                value: body,
                session: Some(session.clone()),
                create_index: current.as_ref().map_or(index, |e| e.create_index),
                modify_index: index,
                lock_index: current.as_ref().map_or(0, |e| e.lock_index) + u64::from(!holds),
            };
            results.push(serde_json::json!({ "KV": {
                "Key": key,
                "Flags": flags,
                "Value": null,
                "Session": session,
                "CreateIndex": entry.create_index,
                "ModifyIndex": index,
                "LockIndex": entry.lock_index,
            } }));
            state.kv.insert(key, entry);
        }
        drop(state);
        self.changed.notify_waiters();
        let answer = serde_json::json!({ "Results": results, "Errors": null });
        Answer::new(200, answer.to_string())
    }

    /// Serves one call arriving at `node`'s agent.
    async fn serve(&self, node: &str, call: &Call) -> Answer {
        let path = call.path.as_str();
        match (&call.method, path) {
            (&http::Method::PUT, "session/create") => self.create_session(node, &call.body),
            (&http::Method::PUT, "txn") => self.txn(&call.body),
            (&http::Method::PUT, _) if path.starts_with("session/renew/") => {
                self.renew_session(&path["session/renew/".len()..])
            }
            (&http::Method::PUT, _) if path.starts_with("session/destroy/") => {
                self.destroy(&path["session/destroy/".len()..]);
                Answer::new(200, "true")
            }
            (&http::Method::GET, _) if path.starts_with("kv/") => {
                let key = &path["kv/".len()..];
                let index = call.query.get("index").and_then(|i| i.parse::<u64>().ok());
                let wait = call
                    .query
                    .get("wait")
                    .and_then(|w| go_duration(w))
                    .unwrap_or(Duration::from_secs(300))
                    .min(Duration::from_secs(600));
                let recurse = call.query.contains_key("recurse");
                match index {
                    Some(min) if min > 0 => self.blocking_read(key, recurse, min, wait).await,
                    _ => self.read(key, recurse),
                }
            }
            (&http::Method::PUT, _) if path.starts_with("kv/") => {
                self.write(&path["kv/".len()..], call)
            }
            (&http::Method::DELETE, _) if path.starts_with("kv/") => {
                self.delete(&path["kv/".len()..]);
                Answer::new(200, "true")
            }
            _ => Answer::new(404, "not modelled"),
        }
    }
}

/// The first block of a session id, for the trace.
pub fn short(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

/// One process's agent: the node its sessions belong to, reached over the
/// process's link. The transport of its Consul client.
pub struct Agent {
    consul: Consul,
    node: String,
    link: Link,
}

impl Agent {
    /// The agent of `node` in `consul`, reached over `link`.
    pub fn new(consul: Consul, node: String, link: Link) -> Self {
        Self { consul, node, link }
    }
}

impl ConsulTransport for Agent {
    fn send(&self, request: http::Request<Vec<u8>>) -> TransportFuture {
        let consul = self.consul.clone();
        let node = self.node.clone();
        let link = self.link.clone();
        Box::pin(async move {
            let Some(call) = Call::parse(request) else {
                return Ok(Answer::new(404, "not modelled").into_response());
            };
            if consul.is_lost(&node) {
                // The node's agent is gone: the call hangs until the
                // client's timeout.
                link.pause().running().await;
                std::future::pending::<()>().await;
            }
            let call = Arc::new(call);
            match link
                .call(move || {
                    let (consul, node, call) = (consul.clone(), node.clone(), Arc::clone(&call));
                    async move { consul.serve(&node, &call).await }
                })
                .await
            {
                Delivery::Answer(answer) => Ok(answer.into_response()),
                Delivery::Refused => Err("simulated connection refused".into()),
            }
        })
    }
}
