//! kube-apiserver as a local process, envtest style: our own CA and serving
//! certificate (made with the `openssl` CLI), a service-account key pair,
//! static bearer tokens, RBAC on, no kubelet or controllers.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::etcd::failed;
use crate::http::Client;
use crate::proc::{self, wait_until};
use crate::state::Record;

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!("cannot run `openssl` ({e}); install it (Debian: `apt-get install -y openssl`)")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`openssl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Writes `ca.crt`, `apiserver.crt/.key` (SAN 127.0.0.1, localhost) and
/// `sa.key/.pub` into `pki`.
fn make_pki(pki: &Path) -> Result<(), String> {
    fs::create_dir_all(pki).map_err(|e| format!("cannot create {}: {e}", pki.display()))?;
    fs::write(
        pki.join("serving.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
         DNS:kubernetes.default.svc\n",
    )
    .map_err(|e| format!("cannot write serving.ext: {e}"))?;
    let steps: [&[&str]; 5] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "7",
            "-subj",
            "/CN=leader-election-rs test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "apiserver.key",
            "-out",
            "apiserver.csr",
            "-subj",
            "/CN=kube-apiserver",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "apiserver.crt",
            "-days",
            "7",
            "-extfile",
            "serving.ext",
        ],
        &["genrsa", "-out", "sa.key", "2048"],
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    ];
    for step in steps {
        openssl(pki, step)?;
    }
    Ok(())
}

/// A kubeconfig for `server` trusting `ca` and authenticating with `token`.
fn kubeconfig(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: le-test\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: le-admin\n  user:\n    token: {token}\n\
         contexts:\n- name: le-test\n  context:\n    cluster: le-test\n    user: le-admin\n    \
         namespace: default\ncurrent-context: le-test\n",
        ca = ca.display()
    )
}

/// Starts kube-apiserver against `etcd_url` and waits for `/readyz` and the
/// `default` namespace.
pub(crate) fn start(
    binary: &Path,
    dir: &Path,
    etcd_url: &str,
    detach: bool,
) -> Result<Record, String> {
    let started = Instant::now();
    let pki = dir.join("pki");
    make_pki(&pki)?;
    let admin_token = proc::random_hex(16)?;
    let limited_token = proc::random_hex(16)?;
    // token,user,uid,"groups": the admin bypasses RBAC via system:masters;
    // the limited user has no permissions until a test binds a Role to it.
    fs::write(
        dir.join("tokens.csv"),
        format!(
            "{admin_token},le-admin,le-admin,\"system:masters\"\n\
             {limited_token},le-limited,le-limited,\"le-testers\"\n"
        ),
    )
    .map_err(|e| format!("cannot write tokens.csv: {e}"))?;
    println!(
        "xtask: kube-apiserver: certificates and tokens made in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let port = proc::free_ports(1)?[0];
    let server = format!("https://127.0.0.1:{port}");
    let p = |name: &str| pki.join(name).display().to_string();
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", p("generated")),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        "--service-cluster-ip-range=10.0.0.0/24".to_string(),
        format!("--service-account-issuer={server}"),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        "--authorization-mode=RBAC".to_string(),
        "--disable-admission-plugins=ServiceAccount".to_string(),
        "--profiling=false".to_string(),
        "--v=1".to_string(),
    ];
    let log = dir.join("kube-apiserver.log");
    let pid = proc::spawn(binary, &args, &log, detach)?;
    let ca = pki.join("ca.crt");
    let kubeconfig_path = dir.join("kubeconfig");
    fs::write(&kubeconfig_path, kubeconfig(&server, &ca, &admin_token))
        .map_err(|e| format!("cannot write kubeconfig: {e}"))?;
    let record = Record {
        runtime: "process".into(),
        pid: Some(pid),
        binary: Some(binary.to_path_buf()),
        dir: dir.to_path_buf(),
        log,
        url: server.clone(),
        env: [
            ("KUBECONFIG", kubeconfig_path.display().to_string()),
            ("LE_KUBE_SERVER", server.clone()),
            ("LE_KUBE_CA_FILE", ca.display().to_string()),
            ("LE_KUBE_TOKEN", admin_token.clone()),
            ("LE_KUBE_LIMITED_TOKEN", limited_token),
            ("LE_KUBE_LIMITED_USER", "le-limited".to_string()),
            ("LE_KUBE_NAMESPACE", "default".to_string()),
            // Lets a test freeze (SIGSTOP) and resume (SIGCONT) the apiserver.
            ("LE_KUBE_APISERVER_PID", pid.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..Record::default()
    };
    let client = Client::new(Some(&ca), Some(admin_token))?;
    let readyz = format!("{server}/readyz");
    let ok = wait_until(Duration::from_secs(120), Duration::from_millis(250), || {
        !proc::alive(pid)
            || client
                .get(&readyz)
                .map(|r| r.status == 200)
                .unwrap_or(false)
    });
    if !ok || !proc::alive(pid) {
        return Err(failed(
            &record,
            "kube-apiserver did not answer /readyz within 120s",
        ));
    }
    let ready_at = started.elapsed().as_secs_f64();
    let ns = format!("{server}/api/v1/namespaces/default");
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(250), || {
        client.get(&ns).map(|r| r.status == 200).unwrap_or(false)
    });
    if !ok {
        return Err(failed(
            &record,
            "namespace `default` did not appear within 60s",
        ));
    }
    println!(
        "xtask: kube-apiserver: ready at {server} (pid {pid}): /readyz after {ready_at:.1}s, \
         namespace default after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(record)
}
