//! `cargo xtask servers check`: smoke tests proving the servers do what the
//! providers need, before the providers exist. Each step that passes prints
//! one `ok` line; the first failure is returned as an error.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::http::Client;
use crate::proc::random_hex;
use crate::state::Record;

/// Consul's lock flag (`api.LockFlagValue`), so `consul lock` sees our key
/// as a lock.
const CONSUL_LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

fn ok(server: &str, what: &str, count: &mut usize) {
    *count += 1;
    println!("xtask: check {server}: ok   {what}");
}

fn expect(cond: bool, what: &str, detail: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}: {}", detail()))
    }
}

/// Now as a Kubernetes `MicroTime` (`2006-01-02T15:04:05.000000Z`, UTC).
fn micro_time_now() -> String {
    micro_time(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// `since_epoch` as a Kubernetes `MicroTime`.
fn micro_time(now: std::time::Duration) -> String {
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// etcd answers `/version`.
pub(crate) fn etcd(record: &Record) -> Result<usize, String> {
    let mut count = 0;
    let reply = Client::new(None, None)?.get(&format!("{}/version", record.url))?;
    expect(reply.status == 200, "GET /version", || reply.body.clone())?;
    ok(
        "etcd",
        &format!("GET /version -> {}", reply.body.trim()),
        &mut count,
    );
    Ok(count)
}

/// Create, read, update (and a stale update conflicts) a
/// `coordination.k8s.io/v1` Lease; RBAC denies the limited user; delete.
pub(crate) fn kubernetes(record: &Record) -> Result<usize, String> {
    let env = |k: &str| record.env.get(k).cloned().ok_or(format!("state lacks {k}"));
    let server = env("LE_KUBE_SERVER")?;
    let ca = env("LE_KUBE_CA_FILE")?;
    let admin = Client::new(Some(Path::new(&ca)), Some(env("LE_KUBE_TOKEN")?))?;
    let limited = Client::new(Some(Path::new(&ca)), Some(env("LE_KUBE_LIMITED_TOKEN")?))?;
    let mut count = 0;
    let s = "kubernetes";

    let version = admin.get(&format!("{server}/version"))?;
    let v = version.json()?;
    expect(version.status == 200, "GET /version", || {
        version.body.clone()
    })?;
    ok(
        s,
        &format!(
            "GET /version -> {}",
            v["gitVersion"].as_str().unwrap_or("?")
        ),
        &mut count,
    );

    let leases = format!("{server}/apis/coordination.k8s.io/v1/namespaces/default/leases");
    let name = format!("le-smoke-{}", random_hex(4)?);
    let now = micro_time_now();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"holderIdentity": "smoke-a", "leaseDurationSeconds": 15,
                 "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
    });
    let created = admin.send("POST", &leases, Some(&lease.to_string()))?;
    expect(created.status == 201, "create Lease", || {
        format!("{} {}", created.status, created.body)
    })?;
    ok(s, &format!("create Lease default/{name} (201)"), &mut count);

    let url = format!("{leases}/{name}");
    let read = admin.get(&url)?;
    let mut current: Value = read.json()?;
    expect(
        read.status == 200 && current["spec"]["holderIdentity"] == "smoke-a",
        "read Lease",
        || read.body.clone(),
    )?;
    let stale_rv = current["metadata"]["resourceVersion"].clone();
    ok(
        s,
        &format!("read Lease: holder smoke-a, resourceVersion {stale_rv}"),
        &mut count,
    );

    current["spec"]["holderIdentity"] = json!("smoke-b");
    current["spec"]["leaseTransitions"] = json!(1);
    current["spec"]["acquireTime"] = json!(micro_time_now());
    current["spec"]["renewTime"] = json!(micro_time_now());
    let updated = admin.send("PUT", &url, Some(&current.to_string()))?;
    let after: Value = updated.json()?;
    expect(
        updated.status == 200 && after["spec"]["holderIdentity"] == "smoke-b",
        "update Lease",
        || format!("{} {}", updated.status, updated.body),
    )?;
    ok(
        s,
        &format!(
            "update Lease to holder smoke-b, resourceVersion {}",
            after["metadata"]["resourceVersion"]
        ),
        &mut count,
    );

    // The same update with the old resourceVersion must conflict: this is
    // what makes client-go's LeaseLock (and ours) safe.
    let stale = admin.send("PUT", &url, Some(&current.to_string()))?;
    expect(
        stale.status == 409,
        "stale update must be 409 Conflict",
        || format!("{} {}", stale.status, stale.body),
    )?;
    ok(
        s,
        "update with a stale resourceVersion -> 409 Conflict",
        &mut count,
    );

    let denied = limited.get(&url)?;
    expect(
        denied.status == 403,
        "RBAC must deny the limited user",
        || format!("{} {}", denied.status, denied.body),
    )?;
    ok(
        s,
        "limited user without a Role -> 403 Forbidden (RBAC on)",
        &mut count,
    );

    let deleted = admin.send("DELETE", &url, None)?;
    expect(deleted.status == 200, "delete Lease", || {
        deleted.body.clone()
    })?;
    ok(s, "delete Lease", &mut count);
    Ok(count)
}

/// Creates a session and returns its id.
fn session(client: &Client, url: &str, name: &str, ttl: &str) -> Result<String, String> {
    let body = json!({"Name": name, "TTL": ttl, "LockDelay": "1s", "Behavior": "delete", "NodeChecks": []});
    let reply = client.send(
        "PUT",
        &format!("{url}/v1/session/create"),
        Some(&body.to_string()),
    )?;
    expect(reply.status == 200, "create session", || {
        format!("{} {}", reply.status, reply.body)
    })?;
    reply.json()?["ID"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("session create returned no ID: {}", reply.body))
}

/// Acquire, contend, release and hand over a Consul KV lock held with
/// sessions, the way `api.Lock` does; a 1s session TTL is accepted.
pub(crate) fn consul(record: &Record) -> Result<usize, String> {
    let url = record.url.as_str();
    let client = Client::new(None, None)?;
    let mut count = 0;
    let s = "consul";

    let leader = client.get(&format!("{url}/v1/status/leader"))?;
    ok(s, &format!("leader {}", leader.body.trim()), &mut count);

    let a = session(&client, url, "le-smoke-a", "10s")?;
    let b = session(&client, url, "le-smoke-b", "10s")?;
    ok(
        s,
        "create two sessions (TTL 10s, lock-delay 1s, no node checks)",
        &mut count,
    );

    let key = format!("{url}/v1/kv/le-smoke/{}/.lock", random_hex(4)?);
    let acquire = |sid: &str, value: &str| -> Result<bool, String> {
        let r = client.send(
            "PUT",
            &format!("{key}?acquire={sid}&flags={CONSUL_LOCK_FLAG}"),
            Some(value),
        )?;
        expect(r.status == 200, "acquire", || {
            format!("{} {}", r.status, r.body)
        })?;
        Ok(r.body.trim() == "true")
    };
    expect(
        acquire(&a, "smoke-a")?,
        "session A must acquire a free lock",
        String::new,
    )?;
    ok(s, "session A acquires the lock", &mut count);
    expect(
        !acquire(&b, "smoke-b")?,
        "session B must not acquire a held lock",
        String::new,
    )?;
    ok(s, "session B is refused while A holds it", &mut count);

    let held = client.get(&key)?.json()?;
    expect(
        held[0]["Session"] == json!(a) && held[0]["Flags"] == json!(CONSUL_LOCK_FLAG),
        "the key must name session A and carry the lock flag",
        || held.to_string(),
    )?;
    ok(
        s,
        "the key names session A and carries the lock flag",
        &mut count,
    );

    let release = client.send("PUT", &format!("{key}?release={a}"), Some(""))?;
    expect(release.body.trim() == "true", "release", || {
        release.body.clone()
    })?;
    ok(s, "session A releases the lock", &mut count);
    expect(
        acquire(&b, "smoke-b")?,
        "session B must acquire after release (no lock-delay)",
        String::new,
    )?;
    ok(s, "session B acquires right after the release", &mut count);

    for sid in [&a, &b] {
        let r = client.send("PUT", &format!("{url}/v1/session/destroy/{sid}"), Some(""))?;
        expect(r.status == 200, "destroy session", || r.body.clone())?;
    }
    let gone = client.get(&key)?;
    expect(
        gone.status == 404,
        "Behavior=delete must remove the key with its session",
        || format!("{} {}", gone.status, gone.body),
    )?;
    ok(
        s,
        "destroying the sessions deletes the lock key",
        &mut count,
    );

    let short = session(&client, url, "le-smoke-short", "1s")?;
    let _ = client.send(
        "PUT",
        &format!("{url}/v1/session/destroy/{short}"),
        Some(""),
    )?;
    ok(
        s,
        "a session with TTL 1s is accepted (session_ttl_min = 1s)",
        &mut count,
    );
    Ok(count)
}

/// The client agent is a member of the server's cluster: its node is in the
/// catalog, and a session created through it lives on that node.
pub(crate) fn consul_client(record: &Record) -> Result<usize, String> {
    let url = record.url.as_str();
    let client = Client::new(None, None)?;
    let mut count = 0;
    let s = "consul-client";
    let node = crate::consul::CLIENT_NODE;

    let leader = client.get(&format!("{url}/v1/status/leader"))?;
    expect(
        leader.status == 200 && leader.body.contains(':'),
        "the client agent must know the server's leader",
        || format!("{} {}", leader.status, leader.body),
    )?;
    ok(
        s,
        &format!("reaches leader {}", leader.body.trim()),
        &mut count,
    );

    let sid = session(&client, url, "le-smoke-client", "10s")?;
    let info = client
        .get(&format!("{url}/v1/session/info/{sid}"))?
        .json()?;
    let _ = client.send("PUT", &format!("{url}/v1/session/destroy/{sid}"), Some(""))?;
    expect(
        info[0]["Node"] == json!(node),
        "a session created through the client agent must live on its node",
        || info.to_string(),
    )?;
    ok(
        s,
        &format!("a session created through it lives on node {node}"),
        &mut count,
    );
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn micro_time_is_rfc3339_with_six_digits() {
        assert_eq!(
            super::micro_time(Duration::ZERO),
            "1970-01-01T00:00:00.000000Z"
        );
        // 2024-02-29T12:34:56.123456Z, a leap day.
        let t = Duration::new(1_709_210_096, 123_456_789);
        assert_eq!(super::micro_time(t), "2024-02-29T12:34:56.123456Z");
    }
}
