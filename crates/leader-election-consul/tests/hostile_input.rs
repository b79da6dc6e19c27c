//! Hostile or broken answers, proxies and operators, against `Responder`,
//! a fake HTTP responder for these unit tests only: no redirect is followed,
//! bodies are bounded, error text is cut, session ids are checked before
//! they reach a URL, the token travels only in its header, and what goes
//! over the wire has the shape Consul expects. Runs in plain `cargo test`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use leader_election_abstractions::{Error, HealthBasedLeaderElection, LeaderElection, LeaseStore};
use leader_election_consul::{AclToken, ConsulConfig, ConsulLeaderElectionFactory};

use support::responder::{
    acquire_error, election_of, ok, plain_election_of, reply, unit_options, Recorded, Responder,
};

const SESSION: &str = "0e4a0dbc-5f3d-4f5a-9a8e-2b7c1d6e9f01";
const LOCK: &str = "/v1/kv/service/leader-election/jobs/.lock";

#[tokio::test]
async fn redirects_are_not_followed_so_the_token_never_leaves_for_another_host() {
    let target = Responder::start(|_| ok("[]")).await;
    let location = format!("Location: http://{}/v1/kv/stolen", target.address);
    let redirector =
        Responder::start(move |_| reply("307 Temporary Redirect", &[&location], b"")).await;
    let config = ConsulConfig {
        token: Some(AclToken::new("s3cr3t-token")),
        ..redirector.config()
    };
    let factory = ConsulLeaderElectionFactory::new(config, unit_options()).expect("factory");
    let error = acquire_error(&factory).await;
    assert!(error.to_string().contains("307"), "{error}");
    assert!(
        !redirector.seen().is_empty(),
        "the request never reached the redirector"
    );
    let leaked: Vec<_> = target
        .seen()
        .into_iter()
        .filter(|r| r.head.contains("s3cr3t"))
        .map(|r| r.head)
        .collect();
    assert!(
        leaked.is_empty(),
        "the token followed the redirect: {leaked:?}"
    );
    assert!(target.seen().is_empty(), "a redirect was followed");
}

#[tokio::test]
async fn error_bodies_are_cut_and_cleaned_before_they_reach_a_message() {
    let body = format!("line one\nFORGED LOG LINE\u{1b}[31m{}", "x".repeat(100_000));
    let agent =
        Responder::start(move |_| reply("500 Internal Server Error", &[], body.as_bytes())).await;
    let message = acquire_error(&agent.factory()).await.to_string();
    assert!(
        message.len() < 1_000,
        "{} bytes: {message:.200}",
        message.len()
    );
    assert!(
        !message.contains('\n') && !message.contains('\u{1b}'),
        "control characters reach the message: {message:?}"
    );
    assert!(message.contains("more characters"), "{message}");
}

#[tokio::test]
async fn an_answer_beyond_max_response_bytes_is_an_error_naming_the_limit() {
    // A valid JSON list of 8 MiB: a key prefix any writer can grow.
    let huge = format!(
        "[{}]",
        vec!["{\"Key\":\"k\",\"ModifyIndex\":1}"; 300_000].join(",")
    );
    assert!(huge.len() > 8 << 20);
    let with_length = {
        let huge = huge.clone();
        Responder::start(move |_| ok(&huge)).await
    };
    // The same without Content-Length: read until the connection closes.
    let without_length = Responder::start(move |_| {
        let mut out = b"HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nConnection: close\r\n\r\n".to_vec();
        out.extend_from_slice(huge.as_bytes());
        out
    })
    .await;
    for agent in [with_length, without_length] {
        let election = agent.election();
        let error = election
            .candidate_health()
            .await
            .expect_err("an 8 MiB answer");
        assert!(error.to_string().contains("max_response_bytes"), "{error}");
    }
}

#[test]
fn max_response_bytes_outside_its_bounds_is_refused_naming_it() {
    for bad in [0, 1_000, 2 << 30] {
        let config = ConsulConfig {
            max_response_bytes: bad,
            ..Default::default()
        };
        match ConsulLeaderElectionFactory::new(config, unit_options()) {
            Err(Error::InvalidOption { field, .. }) => assert_eq!(field, "max_response_bytes"),
            other => panic!("{bad}: expected an invalid max_response_bytes, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_id_that_is_not_a_uuid_never_reaches_a_url() {
    let agent = Responder::start(|request| {
        if request.line().starts_with("PUT /v1/session/create") {
            ok(r#"{"ID":"../../kv/service/other-team/.lock?release=x"}"#)
        } else {
            reply("404 Not Found", &["X-Consul-Index: 7"], b"")
        }
    })
    .await;
    let error = acquire_error(&agent.factory()).await;
    assert!(
        matches!(&error, Error::Backend { message, .. } if message.contains("not a UUID")),
        "{error:?}"
    );
    let paths: Vec<_> = agent.seen().iter().map(|r| r.line().to_owned()).collect();
    assert!(
        paths.iter().all(|line| !line.contains("other-team")),
        "{paths:?}"
    );
}

#[test]
fn from_env_reads_every_variable_the_consul_cli_reads() {
    let vars = [
        ("CONSUL_HTTP_ADDR", "consul.internal:8501"),
        ("CONSUL_HTTP_SSL", "T"),
        ("CONSUL_HTTP_TOKEN_FILE", "/run/secrets/consul-token"),
        ("CONSUL_CACERT", "/etc/consul/ca.pem"),
        ("CONSUL_CAPATH", "/etc/consul/cas"),
        ("CONSUL_CLIENT_CERT", "/etc/consul/client.pem"),
        ("CONSUL_CLIENT_KEY", "/etc/consul/client-key.pem"),
        ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"),
        ("CONSUL_HTTP_SSL_VERIFY", "false"),
    ];
    let config = ConsulConfig::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    });
    assert_eq!(config.address, "https://consul.internal:8501");
    assert_eq!(config.token, None);
    assert_eq!(
        config.token_file.as_deref(),
        Some(std::path::Path::new("/run/secrets/consul-token"))
    );
    assert_eq!(
        config.tls.ca_path.as_deref(),
        Some(std::path::Path::new("/etc/consul/cas"))
    );
    assert_eq!(config.tls.server_name.as_deref(), Some("server.dc1.consul"));
    assert!(config.tls.insecure_skip_verify);
    // Verification stays on for anything but a false value.
    for value in ["true", "1", "yes-please", ""] {
        let config = ConsulConfig::from_lookup(|name| {
            (name == "CONSUL_HTTP_SSL_VERIFY").then(|| value.to_owned())
        });
        assert!(!config.tls.insecure_skip_verify, "{value:?}");
    }
}

fn token_file(contents: &str) -> tempfile_like::TempFile {
    tempfile_like::TempFile::with(contents)
}

/// A file removed when dropped (no extra dependency for one helper).
mod tempfile_like {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(super) struct TempFile(pub(super) PathBuf);

    impl TempFile {
        pub(super) fn with(contents: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "le-consul-token-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).expect("temp file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::test]
async fn the_token_file_is_read_and_the_token_variable_wins_over_it() {
    let seen_tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seen_tokens);
    let agent = Responder::start(move |request: &Recorded| {
        seen.lock()
            .expect("lock")
            .push(request.header("x-consul-token").map(str::to_owned));
        reply("403 Forbidden", &[], b"Permission denied")
    })
    .await;
    let file = token_file("from-the-file\n");
    let from_file = ConsulConfig {
        token_file: Some(file.0.clone()),
        ..agent.config()
    };
    let both = ConsulConfig {
        token: Some(AclToken::new("from-the-variable")),
        ..from_file.clone()
    };
    for config in [from_file, both] {
        let factory = ConsulLeaderElectionFactory::new(config, unit_options()).expect("factory");
        let _ = acquire_error(&factory).await;
    }
    let tokens = seen_tokens.lock().expect("lock").clone();
    assert_eq!(
        tokens,
        vec![
            Some("from-the-file".to_owned()),
            Some("from-the-variable".to_owned())
        ]
    );
    for (contents, why) in [("", "empty"), ("a\nb", "two lines")] {
        let file = token_file(contents);
        let config = ConsulConfig {
            token_file: Some(file.0.clone()),
            ..agent.config()
        };
        match ConsulLeaderElectionFactory::new(config, unit_options()) {
            Err(Error::InvalidOption { field, .. }) => assert_eq!(field, "token_file", "{why}"),
            other => panic!("{why}: expected an invalid token_file, got {other:?}"),
        }
    }
    let missing = ConsulConfig {
        token_file: Some("/nonexistent/consul-token".into()),
        ..agent.config()
    };
    match ConsulLeaderElectionFactory::new(missing, unit_options()) {
        Err(Error::InvalidOption { field, .. }) => assert_eq!(field, "token_file"),
        other => panic!("expected an invalid token_file, got {other:?}"),
    }
}

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// An agent that grants the lock to the first session it creates and then
/// behaves, so an election against it leads.
fn granting_agent(request: &Recorded) -> Vec<u8> {
    let line = request.line();
    let entry = format!(
        r#"[{{"Key":"service/leader-election/jobs/.lock","Flags":3304740253564472344,"Session":"{SESSION}","ModifyIndex":9,"Value":null}}]"#
    );
    if line.starts_with("PUT /v1/session/create") {
        ok(&format!(r#"{{"ID":"{SESSION}"}}"#))
    } else if line.starts_with("PUT /v1/session/") {
        ok("[]")
    } else if line.starts_with(&format!("PUT {LOCK}")) {
        ok("true")
    } else if line.starts_with("PUT /v1/txn")
        && String::from_utf8_lossy(&request.body).contains(r#""lock""#)
    {
        // The acquiring transaction: Consul answers with the entry as written.
        let written = entry.trim_start_matches('[').trim_end_matches(']');
        ok(&format!(
            r#"{{"Results":[{{"KV":{written}}}],"Errors":null}}"#
        ))
    } else if line.starts_with(&format!("GET {LOCK}?consistent")) {
        ok(&entry)
    } else if line.starts_with(&format!("GET {LOCK}")) && line.contains("index=") {
        // A blocking query: answer slowly, as an agent with no news does.
        std::thread::sleep(Duration::from_millis(50));
        ok(&entry)
    } else if line.starts_with("GET /v1/kv/") || line.starts_with("DELETE /v1/kv/") {
        reply("404 Not Found", &["X-Consul-Index: 7"], b"")
    } else {
        ok("true")
    }
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn the_token_is_sent_in_its_header_only_never_in_urls_or_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let fail_once = AtomicBool::new(true);
    let agent = Responder::start(move |request| {
        // One refused acquire (a transaction) first, so an error is logged too.
        if request.line().starts_with("PUT /v1/txn") && fail_once.swap(false, Ordering::SeqCst) {
            return reply(
                "500 Internal Server Error",
                &[],
                b"rpc error: No cluster leader",
            );
        }
        granting_agent(request)
    })
    .await;
    let config = ConsulConfig {
        token: Some(AclToken::new("s3cr3t-token")),
        ..agent.config()
    };
    let factory = ConsulLeaderElectionFactory::new(config, unit_options()).expect("factory");
    let election = election_of(&factory);
    election.start().await.expect("start");
    wait_for("leadership", || election.is_leader()).await;
    election.stop().await.expect("stop");
    let requests = agent.seen();
    assert!(requests.len() > 4, "{requests:?}");
    for request in &requests {
        assert_eq!(
            request.header("x-consul-token"),
            Some("s3cr3t-token"),
            "{}",
            request.head
        );
        assert!(
            !request.line().contains("s3cr3t"),
            "token in the URL: {}",
            request.line()
        );
    }
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(
        logged.contains("No cluster leader"),
        "nothing was logged: {logged:.500}"
    );
    assert!(!logged.contains("s3cr3t"), "token logged");
}

#[tokio::test]
async fn sessions_and_lock_writes_have_the_shape_consul_and_api_lock_expect() {
    let agent = Responder::start(granting_agent).await;
    let options = leader_election_abstractions::LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(15))
        .renew_interval(Duration::from_secs(5))
        .grace_period(Duration::from_millis(2_500))
        .instance_id("unit")
        .build()
        .expect("valid");
    let factory = ConsulLeaderElectionFactory::new(agent.config(), options).expect("factory");
    let election = election_of(&factory);
    election.start().await.expect("start");
    wait_for("leadership", || election.is_leader()).await;
    wait_for("a published candidate record", || {
        agent
            .seen()
            .iter()
            .any(|r| r.line().contains("/candidates/"))
    })
    .await;
    election.stop().await.expect("stop");
    let requests = agent.seen();
    let sessions: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.line().starts_with("PUT /v1/session/create"))
        .map(|r| serde_json::from_slice(&r.body).expect("JSON session body"))
        .collect();
    let behaviours: Vec<_> = sessions.iter().map(|s| s["Behavior"].clone()).collect();
    assert!(
        behaviours.contains(&"release".into()) && behaviours.contains(&"delete".into()),
        "one lock session (release) and one registry session (delete): {sessions:?}"
    );
    for session in &sessions {
        assert_eq!(session["TTL"], "15000ms", "{session}");
        assert_eq!(session["NodeChecks"], serde_json::json!([]), "{session}");
        let delay = if session["Behavior"] == "release" {
            "17500ms"
        } else {
            "0ms"
        };
        assert_eq!(session["LockDelay"], delay, "{session}");
    }
    // The acquire is a transaction too: the key still absent (as the read
    // before it found it), then `lock` with api.Lock's flag.
    let acquire = agent
        .first("PUT /v1/txn")
        .expect("an acquire of the lock key");
    let ops: serde_json::Value = serde_json::from_slice(&acquire.body).expect("JSON txn");
    let key = "service/leader-election/jobs/.lock";
    assert_eq!(
        ops[0],
        serde_json::json!({ "KV": { "Verb": "check-not-exists", "Key": key } })
    );
    let lock = &ops[1]["KV"];
    assert_eq!(lock["Verb"], "lock", "{ops}");
    assert_eq!(lock["Key"], key, "{ops}");
    assert_eq!(lock["Session"], SESSION, "{ops}");
    assert_eq!(lock["Flags"], 3304740253564472344u64, "{ops}");
    let value = base64::engine::general_purpose::STANDARD
        .decode(lock["Value"].as_str().expect("a base64 value"))
        .expect("base64");
    let value: serde_json::Value = serde_json::from_slice(&value).expect("JSON lock value");
    assert_eq!(value["candidate_id"], "a");
    // The release is conditional on the term's acquiring write (a
    // transaction: check-index, then unlock with the lock flag).
    let release = requests
        .iter()
        .find(|r| {
            r.line().starts_with("PUT /v1/txn") && r.body.windows(8).any(|w| w == b"\"unlock\"")
        })
        .expect("stop releases the lock");
    let ops: serde_json::Value = serde_json::from_slice(&release.body).expect("JSON txn");
    assert_eq!(
        ops,
        serde_json::json!([
            { "KV": { "Verb": "check-index", "Key": key, "Index": 9 } },
            { "KV": { "Verb": "unlock", "Key": key, "Session": SESSION, "Flags": 3304740253564472344u64 } },
        ]),
    );
    assert!(
        requests.iter().any(|r| r
            .line()
            .starts_with(&format!("PUT /v1/session/destroy/{SESSION}"))),
        "stop destroys the session"
    );
}

#[tokio::test]
async fn a_watch_on_an_agent_without_x_consul_index_is_paced() {
    // What a proxy that drops X-Consul-Index looks like: every blocking
    // query returns at once.
    let agent = Responder::start(|_| reply("200 OK", &[], b"[]")).await;
    let election = plain_election_of(&agent.factory());
    let mut watch = election.store().watch();
    let reads = tokio::time::timeout(Duration::from_secs(1), async {
        let mut reads = 0u32;
        while watch.next().await.is_some() {
            reads += 1;
        }
        reads
    })
    .await;
    let requests = agent.seen().len();
    assert!(reads.is_err(), "the watch ended");
    println!("watch without X-Consul-Index: {requests} reads in 1 s");
    assert!(
        requests <= 15,
        "{requests} reads in one second: the watch spins"
    );
}

/// Answers a healthy agent never gives; none may lead or panic.
const GARBAGE: &[&str] = &[
    "{not json",
    "[{\"Key\": 42}]",
    "500 Internal Server Error|No cluster leader",
    "[{\"Key\":\"service/leader-election/jobs/.lock\",\"ModifyIndex\":\"nan\"}]",
    "",
    "true",
    "false",
    "[]",
    "null",
    "{\"ID\": 5}",
    "{\"ID\": \"\"}",
    "{\"ID\": \"not-a-uuid\"}",
    "[{\"Key\":\"service/leader-election/jobs/.lock\",\"ModifyIndex\":18446744073709551615,\"Session\":\"someone\",\"Flags\":1}]",
    "302 Found|",
    "200 OK|\u{0}\u{1}\u{2}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_never_lead_and_never_panic_while_a_sane_agent_leads() {
    // The control: the same harness with sane answers leads, so the
    // assertion below could fail.
    let sane = Responder::start(granting_agent).await;
    let mut elections = vec![("sane", sane.election())];
    let mut agents = vec![sane];
    for garbage in GARBAGE {
        let (status, body) = garbage.split_once('|').unwrap_or(("200 OK", garbage));
        let answer = reply(status, &["X-Consul-Index: 7"], body.as_bytes());
        let agent = Responder::start(move |request| {
            // Every answer is garbage, except the ones needed to get as far
            // as possible: a session and a granted acquire.
            if request.line().starts_with("PUT /v1/session/create")
                && status == "200 OK"
                && body.starts_with('[')
            {
                ok(&format!(r#"{{"ID":"{SESSION}"}}"#))
            } else {
                answer.clone()
            }
        })
        .await;
        let election = agent.election();
        elections.push((garbage, election));
        agents.push(agent);
    }
    for (_, election) in &elections {
        election.start().await.expect("start");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (garbage, election) in &elections {
        if *garbage == "sane" {
            assert!(
                election.is_leader(),
                "the sane agent's candidate does not lead"
            );
        } else {
            assert!(!election.is_leader(), "led on {garbage:?}");
            let _ = election.candidate_health().await;
        }
    }
    for (garbage, election) in elections {
        election
            .stop()
            .await
            .unwrap_or_else(|e| panic!("{garbage:?}: {e}"));
    }
    for agent in &agents {
        assert!(
            agent.seen().len() > 1,
            "the engine gave up instead of retrying"
        );
    }
}
