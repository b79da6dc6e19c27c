//! A simulated kube-apiserver for `coordination.k8s.io/v1` Leases, served as
//! a tower [`Service`] so the real `KubernetesLeaseStore` runs on it through
//! `kube::Client::new(service, namespace)`.
//!
//! Modelled, from the Kubernetes API conventions and what the real-server
//! suite observes: one storage revision counter for every write (etcd's),
//! `resourceVersion` compare-and-swap on PUT (409 Conflict on a stale
//! version, an unconditional update without one), 409 AlreadyExists on a
//! POST of an existing name, 404 NotFound, `uid` per incarnation (a Lease
//! deleted and created again gets a new one), lists with the list's
//! revision, field selectors on `metadata.name` and equality label
//! selectors, and watches resumed from a revision, ended by the server at
//! times, and answered with a 410 Gone error event once the revision is
//! compacted away (the client must list again).
//!
//! Not modelled: admission, RBAC, server-side apply, PATCH, multiple
//! apiservers and etcd members.
//!
//! `spec.renewTime`/`spec.acquireTime` are wall-clock stamps written by the
//! client; the store under test reads the host's clock, which barely moves
//! during a simulated run, so the server replaces a stamp that changed with
//! the simulated wall clock (global time) at the moment the write arrives.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower_service::Service;

use crate::link::{Delivery, Link};

/// The simulated wall clock's reading at the start of a run (microseconds
/// since the Unix epoch): 2026-01-01T00:00:00Z.
const WALL_START_MICROS: i64 = 1_767_225_600_000_000;

/// The response body type of the simulated apiserver.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A watch event line and the revision it carries.
type WatchItem = Bytes;

struct Watcher {
    field_name: Option<String>,
    sender: mpsc::UnboundedSender<WatchItem>,
}

struct State {
    start: Instant,
    revision: u64,
    /// Revisions at or below this are compacted: a watch from them gets 410.
    compacted: u64,
    uids: u64,
    objects: BTreeMap<String, Lease>,
    /// Every event, for watches resumed from a revision.
    history: Vec<(u64, &'static str, Lease)>,
    watchers: Vec<Watcher>,
    /// How many watches were opened so far.
    watches_opened: u64,
    /// How many lists were served so far.
    lists: u64,
}

/// The simulated apiserver; clones share it.
#[derive(Clone)]
pub struct ApiServer(Arc<Mutex<State>>);

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// An answer: status and JSON body.
type Answer = (StatusCode, Vec<u8>);

fn status(code: StatusCode, reason: &str, message: &str) -> Answer {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, body.to_string().into_bytes())
}

fn json(code: StatusCode, value: &impl serde::Serialize) -> Answer {
    match serde_json::to_vec(value) {
        Ok(body) => (code, body),
        Err(error) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &error.to_string(),
        ),
    }
}

/// A URL's query, `k=v&…`, decoded into its pairs (a key without `=` has an
/// empty value).
pub(crate) fn query_pairs(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed request to the Lease API.
#[derive(Clone, Debug)]
struct Call {
    method: Method,
    name: Option<String>,
    query: BTreeMap<String, String>,
    body: Bytes,
}

impl Call {
    fn parse(method: Method, uri: &http::Uri, body: Bytes) -> Option<Call> {
        let path = uri.path();
        let rest = path.strip_prefix("/apis/coordination.k8s.io/v1/namespaces/")?;
        let mut parts = rest.split('/');
        let _namespace = parts.next()?;
        if parts.next()? != "leases" {
            return None;
        }
        let name = parts.next().map(decode).filter(|n| !n.is_empty());
        let query = query_pairs(uri.query());
        Some(Call {
            method,
            name,
            query,
            body,
        })
    }

    fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|v| v == "true" || v == "1")
    }

    /// `metadata.name=X` from the field selector.
    fn field_name(&self) -> Option<String> {
        self.query
            .get("fieldSelector")
            .and_then(|s| s.strip_prefix("metadata.name=").map(str::to_owned))
    }

    fn labels(&self) -> Vec<(String, String)> {
        self.query
            .get("labelSelector")
            .map(|s| {
                s.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn matches(lease: &Lease, field_name: Option<&str>, labels: &[(String, String)]) -> bool {
    let name_ok = field_name.is_none_or(|n| lease.metadata.name.as_deref() == Some(n));
    let labels_ok = labels.iter().all(|(k, v)| {
        lease
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|x| x == v)
    });
    name_ok && labels_ok
}

impl ApiServer {
    /// An empty apiserver whose simulated wall clock starts now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(State {
            start: Instant::now(),
            revision: 1,
            compacted: 0,
            uids: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            watchers: Vec::new(),
            watches_opened: 0,
            lists: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The simulated wall clock now.
    pub fn wall_now(&self) -> MicroTime {
        let start = self.lock().start;
        let micros = Instant::now().saturating_duration_since(start).as_micros() as i64;
        MicroTime(
            Timestamp::from_microsecond(WALL_START_MICROS + micros)
                .unwrap_or(Timestamp::UNIX_EPOCH),
        )
    }

    /// The current object called `name`.
    pub fn get(&self, name: &str) -> Option<Lease> {
        self.lock().objects.get(name).cloned()
    }

    /// Deletes `name` as an operator would (`kubectl delete lease`).
    pub fn delete(&self, name: &str) -> bool {
        let mut state = self.lock();
        Self::remove(&mut state, name)
    }

    /// Compacts history up to now and ends every open watch: watches resumed
    /// from an older revision now get 410 Gone and must list again.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.compacted = state.revision;
        state.history.clear();
        state.watchers.clear();
    }

    /// How many watches were opened so far, and how many lists served.
    pub fn requests_served(&self) -> (u64, u64) {
        let state = self.lock();
        (state.watches_opened, state.lists)
    }

    /// The watches open now (one whose client went away counts until the
    /// next event would be sent to it).
    pub fn open_watches(&self) -> usize {
        let state = self.lock();
        state
            .watchers
            .iter()
            .filter(|w| !w.sender.is_closed())
            .count()
    }

    /// Ends every open watch (as the apiserver does at its watch timeout).
    pub fn end_watches(&self) {
        self.lock().watchers.clear();
    }

    fn remove(state: &mut State, name: &str) -> bool {
        let Some(mut lease) = state.objects.remove(name) else {
            return false;
        };
        state.revision += 1;
        lease.metadata.resource_version = Some(state.revision.to_string());
        Self::publish(state, "DELETED", lease);
        true
    }

    fn publish(state: &mut State, kind: &'static str, lease: Lease) {
        let revision = state.revision;
        let line = Self::event_line(kind, &lease);
        state.watchers.retain(|w| {
            if !matches(&lease, w.field_name.as_deref(), &[]) {
                return !w.sender.is_closed();
            }
            w.sender.send(line.clone()).is_ok()
        });
        state.history.push((revision, kind, lease));
    }

    fn event_line(kind: &str, lease: &Lease) -> Bytes {
        let mut line = serde_json::json!({ "type": kind, "object": lease }).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    /// Replaces changed wall-clock stamps with the simulated wall clock.
    fn stamp(&self, lease: &mut Lease, stored: Option<&Lease>) {
        let now = self.wall_now();
        let old = stored.and_then(|s| s.spec.as_ref());
        if let Some(spec) = lease.spec.as_mut() {
            if spec.renew_time.is_some()
                && spec.renew_time != old.and_then(|o| o.renew_time.clone())
            {
                spec.renew_time = Some(now.clone());
            }
            if spec.acquire_time.is_some()
                && spec.acquire_time != old.and_then(|o| o.acquire_time.clone())
            {
                spec.acquire_time = Some(now);
            }
        }
    }

    /// Creates `lease` unless the name exists (the compare-and-swap of a
    /// creation). Public for the client-go model.
    pub fn create(&self, mut lease: Lease) -> std::result::Result<Lease, StatusCode> {
        self.stamp(&mut lease, None);
        let mut state = self.lock();
        let Some(name) = lease.metadata.name.clone() else {
            return Err(StatusCode::UNPROCESSABLE_ENTITY);
        };
        if state.objects.contains_key(&name) {
            return Err(StatusCode::CONFLICT);
        }
        state.revision += 1;
        state.uids += 1;
        lease.metadata.uid = Some(format!("uid-{}", state.uids));
        lease.metadata.resource_version = Some(state.revision.to_string());
        lease
            .metadata
            .namespace
            .get_or_insert_with(|| "default".to_owned());
        state.objects.insert(name, lease.clone());
        Self::publish(&mut state, "ADDED", lease.clone());
        Ok(lease)
    }

    /// Replaces `name` with `lease` if its `resourceVersion` is current (or
    /// absent: an unconditional update). Public for the client-go model.
    pub fn replace(&self, name: &str, mut lease: Lease) -> std::result::Result<Lease, StatusCode> {
        let stored = self.get(name);
        self.stamp(&mut lease, stored.as_ref());
        let mut state = self.lock();
        let Some(current) = state.objects.get(name).cloned() else {
            return Err(StatusCode::NOT_FOUND);
        };
        if let Some(version) = &lease.metadata.resource_version {
            if Some(version) != current.metadata.resource_version.as_ref() {
                return Err(StatusCode::CONFLICT);
            }
        }
        if lease.metadata.uid.is_some() && lease.metadata.uid != current.metadata.uid {
            return Err(StatusCode::CONFLICT);
        }
        state.revision += 1;
        lease.metadata.uid = current.metadata.uid;
        lease.metadata.resource_version = Some(state.revision.to_string());
        lease.metadata.name = Some(name.to_owned());
        lease
            .metadata
            .namespace
            .get_or_insert_with(|| "default".to_owned());
        state.objects.insert(name.to_owned(), lease.clone());
        Self::publish(&mut state, "MODIFIED", lease.clone());
        Ok(lease)
    }

    fn serve(&self, call: &Call) -> Answer {
        let conflict = |what: &str| status(StatusCode::CONFLICT, "Conflict", what);
        match (&call.method, &call.name) {
            (&Method::GET, Some(name)) => match self.get(name) {
                Some(lease) => json(StatusCode::OK, &lease),
                None => status(StatusCode::NOT_FOUND, "NotFound", "leases not found"),
            },
            (&Method::GET, None) => {
                let mut state = self.lock();
                state.lists += 1;
                let field = call.field_name();
                let labels = call.labels();
                let items: Vec<&Lease> = state
                    .objects
                    .values()
                    .filter(|l| matches(l, field.as_deref(), &labels))
                    .collect();
                let list = serde_json::json!({
                    "kind": "LeaseList",
                    "apiVersion": "coordination.k8s.io/v1",
                    "metadata": { "resourceVersion": state.revision.to_string() },
                    "items": items,
                });
                json(StatusCode::OK, &list)
            }
            (&Method::POST, None) => match serde_json::from_slice::<Lease>(&call.body) {
                Ok(lease) => match self.create(lease) {
                    Ok(created) => json(StatusCode::CREATED, &created),
                    Err(StatusCode::CONFLICT) => status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        "leases already exists",
                    ),
                    Err(code) => status(code, "Invalid", "bad lease"),
                },
                Err(error) => status(StatusCode::BAD_REQUEST, "BadRequest", &error.to_string()),
            },
            (&Method::PUT, Some(name)) => match serde_json::from_slice::<Lease>(&call.body) {
                Ok(lease) => match self.replace(name, lease) {
                    Ok(updated) => json(StatusCode::OK, &updated),
                    Err(StatusCode::CONFLICT) => conflict("the object has been modified"),
                    Err(StatusCode::NOT_FOUND) => {
                        status(StatusCode::NOT_FOUND, "NotFound", "leases not found")
                    }
                    Err(code) => status(code, "Invalid", "bad lease"),
                },
                Err(error) => status(StatusCode::BAD_REQUEST, "BadRequest", &error.to_string()),
            },
            (&Method::DELETE, Some(name)) => {
                if self.delete(name) {
                    json(
                        StatusCode::OK,
                        &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                } else {
                    status(StatusCode::NOT_FOUND, "NotFound", "leases not found")
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not modelled",
            ),
        }
    }

    /// Opens a watch: the events after `resourceVersion`, then live ones.
    fn open_watch(&self, call: &Call) -> Result<mpsc::UnboundedReceiver<WatchItem>, Answer> {
        let mut state = self.lock();
        state.watches_opened += 1;
        let field = call.field_name();
        let from: u64 = call
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(state.revision);
        let (sender, receiver) = mpsc::unbounded_channel();
        if from < state.compacted {
            let gone = serde_json::json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "reason": "Expired", "code": 410,
                    "message": format!("too old resource version: {from} ({})", state.compacted),
                }
            });
            let _ = sender.send(Bytes::from(format!("{gone}\n")));
            return Ok(receiver);
        }
        for (revision, kind, lease) in &state.history {
            if *revision > from && matches(lease, field.as_deref(), &[]) {
                let _ = sender.send(Self::event_line(kind, lease));
            }
        }
        state.watchers.push(Watcher {
            field_name: field,
            sender,
        });
        Ok(receiver)
    }
}

/// One process's connection to the apiserver over its [`Link`]: the
/// `tower::Service` a `kube::Client` is built on.
#[derive(Clone)]
pub struct Connection {
    server: ApiServer,
    link: Link,
}

impl Connection {
    /// A connection to `server` over `link`.
    pub fn new(server: ApiServer, link: Link) -> Self {
        Self { server, link }
    }
}

fn full(answer: Answer) -> Response<Body> {
    let (code, bytes) = answer;
    let mut response = Response::new(
        Full::new(Bytes::from(bytes))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Request<kube::client::Body>> for Connection {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let server = self.server.clone();
        let link = self.link.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let Some(call) = Call::parse(parts.method.clone(), &parts.uri, body) else {
                return Ok(full(status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "path not modelled",
                )));
            };
            if call.is_watch() {
                let watching = server.clone();
                let delivered = link
                    .call(move || {
                        let result = watching.open_watch(&call);
                        async move { result }
                    })
                    .await;
                let receiver = match delivered {
                    Delivery::Answer(Ok(receiver)) => receiver,
                    Delivery::Answer(Err(answer)) => return Ok(full(answer)),
                    Delivery::Refused => return Err("simulated connection refused".into()),
                };
                return Ok(watch_response(receiver, link));
            }
            let serving = server.clone();
            let call = Arc::new(call);
            match link
                .call(move || {
                    let answer = serving.serve(&call);
                    async move { answer }
                })
                .await
            {
                Delivery::Answer(answer) => Ok(full(answer)),
                Delivery::Refused => Err("simulated connection refused".into()),
            }
        })
    }
}

/// The streaming body of a watch: each event delayed in order by the link;
/// a cut ends the stream with an error, as a broken connection does.
fn watch_response(mut events: mpsc::UnboundedReceiver<WatchItem>, link: Link) -> Response<Body> {
    let (tx, rx) = mpsc::unbounded_channel::<Result<http_body::Frame<Bytes>, std::io::Error>>();
    tokio::spawn(async move {
        let mut last = Instant::now();
        while let Some(line) = events.recv().await {
            let at = (Instant::now() + link.delay()).max(last);
            last = at;
            tokio::time::sleep_until(at).await;
            if link.up().is_err() || link.down().is_err() {
                let _ = tx.send(Err(std::io::Error::other("simulated watch cut")));
                return;
            }
            link.pause().running().await;
            if tx.send(Ok(http_body::Frame::data(line))).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(StreamExt::boxed(
        stream,
    ))));
    *response.status_mut() = StatusCode::OK;
    response
}
