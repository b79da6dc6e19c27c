//! TLS to the agent, against `Responder` over TLS (a fake HTTP responder for
//! these unit tests only) with certificates `openssl` makes for each run: a
//! configured CA is the only one trusted, the server name can be set (with
//! rustls), the client certificate and key are read from separate files.
//! `cargo test -p leader-election-consul --no-default-features --features
//! native-tls --test tls` runs them on native-tls.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use leader_election_abstractions::{Error, HealthBasedLeaderElection, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use support::responder::{ok, unit_options, Responder};

/// A directory of certificates made by the `openssl` command.
struct Pki(PathBuf);

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("le-consul-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("the openssl command (needed by these tests, as by xtask)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA `<name>.pem` / `<name>.key`.
    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// A leaf `<name>.pem` / `<name>.key` signed by `ca`, with `ext` (SANs, usage).
    fn leaf(&self, name: &str, ca: &str, ext: &str) {
        std::fs::write(self.path(&format!("{name}.ext")), ext).expect("ext file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    fn chain(&self, name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
            .expect("pem")
            .collect::<Result<_, _>>()
            .expect("certificates")
    }

    fn key(&self, name: &str) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS responder presenting `name`'s certificate; with `client_ca`, it
/// requires a client certificate signed by that CA.
async fn agent(pki: &Pki, name: &str, client_ca: Option<&str>) -> Responder {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocols");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in pki.chain(ca) {
                roots.add(certificate).expect("client CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(pki.chain(name), pki.key(name))
        .expect("server config");
    Responder::start_tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)), |_| {
        ok("[]")
    })
    .await
}

/// One call through a client with `tls` to `https://<host>:<port>`.
async fn call(
    agent: &Responder,
    host: &str,
    tls: ConsulTls,
) -> leader_election_abstractions::Result<()> {
    let config = ConsulConfig {
        address: format!("https://{host}:{}", agent.address.port()),
        tls,
        ..agent.config()
    };
    let factory = ConsulLeaderElectionFactory::new(config, unit_options())?;
    let election = factory
        .election("jobs")
        .candidate_id("a")
        .health_based()
        .build()?;
    election.candidate_health().await.map(drop)
}

fn ca_file(pki: &Pki, ca: &str) -> ConsulTls {
    ConsulTls {
        ca_cert: Some(pki.path(&format!("{ca}.pem"))),
        ..ConsulTls::default()
    }
}

#[tokio::test]
async fn a_configured_ca_is_the_only_one_trusted() {
    let pki = Pki::new("trust");
    pki.ca("ours");
    pki.ca("theirs");
    pki.leaf("good", "ours", SERVER_EXT);
    pki.leaf("impostor", "theirs", SERVER_EXT);
    let good = agent(&pki, "good", None).await;
    let impostor = agent(&pki, "impostor", None).await;
    call(&good, "127.0.0.1", ca_file(&pki, "ours"))
        .await
        .expect("the configured CA's certificate is accepted");
    let error = call(&impostor, "127.0.0.1", ca_file(&pki, "ours"))
        .await
        .expect_err("another CA's certificate is refused");
    assert!(
        matches!(error, Error::BackendUnavailable { .. }),
        "{error:?}"
    );
    // CONSUL_CAPATH: a directory of CA files.
    let cas = pki.path("cas");
    std::fs::create_dir_all(&cas).expect("ca dir");
    std::fs::copy(pki.path("ours.pem"), cas.join("ours.pem")).expect("copy");
    let ca_dir = || ConsulTls {
        ca_path: Some(cas.clone()),
        ..ConsulTls::default()
    };
    call(&good, "127.0.0.1", ca_dir())
        .await
        .expect("ca_path trusts its CA");
    call(&impostor, "127.0.0.1", ca_dir())
        .await
        .expect_err("ca_path trusts nothing else");
    // CONSUL_HTTP_SSL_VERIFY=false: anything goes (and is documented as such).
    call(
        &impostor,
        "127.0.0.1",
        ConsulTls {
            insecure_skip_verify: true,
            ..ca_file(&pki, "ours")
        },
    )
    .await
    .expect("verification off");
}

/// rustls only: native-tls cannot check another name (the next test).
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
#[tokio::test]
async fn the_server_name_can_differ_from_the_address() {
    let pki = Pki::new("name");
    pki.ca("ca");
    pki.leaf(
        "named",
        "ca",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:server.dc1.consul\n",
    );
    let agent = agent(&pki, "named", None).await;
    call(&agent, "127.0.0.1", ca_file(&pki, "ca"))
        .await
        .expect_err("the certificate does not name 127.0.0.1");
    call(
        &agent,
        "127.0.0.1",
        ConsulTls {
            server_name: Some("server.dc1.consul".into()),
            ..ca_file(&pki, "ca")
        },
    )
    .await
    .expect("CONSUL_TLS_SERVER_NAME names the certificate");
}

/// Built with native-tls alone, a server name is refused at once, naming
/// the field, instead of being silently not checked.
#[cfg(all(
    feature = "native-tls",
    not(any(feature = "rustls-ring", feature = "rustls-aws-lc"))
))]
#[test]
fn native_tls_refuses_a_server_name_naming_the_field() {
    let config = ConsulConfig {
        address: "https://127.0.0.1:8501".into(),
        tls: ConsulTls {
            server_name: Some("server.dc1.consul".into()),
            ..ConsulTls::default()
        },
        ..ConsulConfig::default()
    };
    match ConsulLeaderElectionFactory::new(config, unit_options()) {
        Err(Error::InvalidOption { field, rule }) => {
            assert_eq!(field, "tls.server_name");
            assert!(rule.contains("rustls"), "{rule}");
        }
        other => panic!("expected an InvalidOption, got {other:?}"),
    }
}

fn strip_trailing_newline(path: &Path) {
    let text = std::fs::read_to_string(path).expect("pem");
    std::fs::write(path, text.trim_end()).expect("pem");
}

#[tokio::test]
async fn a_client_certificate_without_a_final_newline_is_presented() {
    let pki = Pki::new("client");
    pki.ca("ca");
    pki.leaf("server", "ca", SERVER_EXT);
    pki.leaf(
        "client",
        "ca",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    strip_trailing_newline(&pki.path("client.pem"));
    let agent = agent(&pki, "server", Some("ca")).await;
    call(&agent, "127.0.0.1", ca_file(&pki, "ca"))
        .await
        .expect_err("the agent requires a client certificate");
    call(
        &agent,
        "127.0.0.1",
        ConsulTls {
            client_cert: Some(pki.path("client.pem")),
            client_key: Some(pki.path("client.key")),
            ..ca_file(&pki, "ca")
        },
    )
    .await
    .expect("the client certificate is presented");
}

#[test]
fn unreadable_or_wrong_tls_files_are_refused_naming_the_field() {
    let pki = Pki::new("files");
    pki.ca("ca");
    std::fs::write(pki.path("garbage.pem"), "not a certificate").expect("write");
    std::fs::create_dir_all(pki.path("empty")).expect("dir");
    let cases = [
        (
            ConsulTls {
                ca_cert: Some("/nonexistent/ca.pem".into()),
                ..ConsulTls::default()
            },
            "tls.ca_cert",
        ),
        (
            ConsulTls {
                ca_cert: Some(pki.path("garbage.pem")),
                ..ConsulTls::default()
            },
            "tls.ca_cert",
        ),
        (
            ConsulTls {
                ca_path: Some(pki.path("empty")),
                ..ConsulTls::default()
            },
            "tls.ca_path",
        ),
        (
            ConsulTls {
                ca_path: Some("/nonexistent".into()),
                ..ConsulTls::default()
            },
            "tls.ca_path",
        ),
        (
            ConsulTls {
                client_cert: Some(pki.path("ca.pem")),
                ..ConsulTls::default()
            },
            "tls.client_cert",
        ),
        (
            ConsulTls {
                client_cert: Some(pki.path("ca.pem")),
                client_key: Some(pki.path("garbage.pem")),
                ..ConsulTls::default()
            },
            "tls.client_key",
        ),
        (
            ConsulTls {
                server_name: Some("not a name".into()),
                ..ConsulTls::default()
            },
            "tls.server_name",
        ),
    ];
    for (tls, expected) in cases {
        let config = ConsulConfig {
            address: "https://127.0.0.1:8501".into(),
            tls,
            ..ConsulConfig::default()
        };
        match ConsulLeaderElectionFactory::new(config, unit_options()) {
            Err(Error::InvalidOption { field, .. }) => assert_eq!(field, expected),
            other => panic!("expected an invalid {expected}, got {other:?}"),
        }
    }
}
