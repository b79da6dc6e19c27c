//! The rustls configuration (features `rustls-ring`, `rustls-aws-lc`): a
//! configured CA replaces the built-in roots, the certificate may be checked
//! against a configured server name, and the crypto provider is the one the
//! application installed as the process default, else the feature's.

use std::sync::Arc;

use leader_election_abstractions::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{certificates, configured_cas, read};
use crate::config::ConsulTls;

/// The process default if the application installed one (so its choice,
/// for example aws-lc-rs, holds), else the provider of the crate's feature.
fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "rustls-ring")]
    let fallback = rustls::crypto::ring::default_provider;
    #[cfg(not(feature = "rustls-ring"))]
    let fallback = rustls::crypto::aws_lc_rs::default_provider;
    CryptoProvider::get_default()
        .map(Arc::clone)
        .unwrap_or_else(|| Arc::new(fallback()))
}

/// The trusted roots: the configured CAs only, else the built-in Mozilla roots.
fn roots(tls: &ConsulTls) -> Result<RootCertStore> {
    let Some(configured) = configured_cas(tls)? else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = RootCertStore::empty();
    for (field, certificate) in configured {
        roots.add(certificate).map_err(|e| {
            Error::invalid_option(field, format!("not a usable CA certificate: {e}"))
        })?;
    }
    Ok(roots)
}

/// The rustls client configuration for `tls`.
pub(super) fn client_config(tls: &ConsulTls) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(AcceptAnyCertificate(Arc::clone(&provider)))
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(tls)?),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| Error::invalid_option("tls.ca_cert", format!("{e}")))?;
        match &tls.server_name {
            Some(name) => Arc::new(ServerNameOverride {
                inner: webpki,
                name: ServerName::try_from(name.clone()).map_err(|e| {
                    Error::invalid_option("tls.server_name", format!("{name:?}: {e}"))
                })?,
            }),
            None => webpki,
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid_option("tls", format!("{e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("tls.client_cert", cert)?;
            let key =
                PrivateKeyDer::from_pem_slice(&read("tls.client_key", key)?).map_err(|e| {
                    Error::invalid_option(
                        "tls.client_key",
                        format!("{} is not a PEM private key: {e}", key.display()),
                    )
                })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::invalid_option(
                    "tls.client_key",
                    format!("does not match the client certificate: {e}"),
                )
            })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Checks the agent's certificate against the configured server name
/// instead of the address's host (`CONSUL_TLS_SERVER_NAME`).
#[derive(Debug)]
struct ServerNameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ServerNameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `CONSUL_HTTP_SSL_VERIFY=false`: any certificate is accepted (the
/// handshake signatures are still checked).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (its key was thrown away).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBujCCAWGgAwIBAgIUSboY6JjhEQHUpXc3uSVuQccQZrowCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfbGVhZGVyLWVsZWN0aW9uLXJzLXVuaXQtdGVzdC1jYTAgFw0y
NjExMjcwMTMwMjhaGA8yMTI2MTEwMzAxMzAyOFowKjEoMCYGA1UEAwwfbGVhZGVy
LWVsZWN0aW9uLXJzLXVuaXQtdGVzdC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABJmwBFhZbvEFRxh3LwFwobDfWyQwnsw2YJcQNxxkrK6aOTPPiP/irxqcsKui
4ekKuycKY/C/7p6Sk2x4xOlK+UWjYzBhMB0GA1UdDgQWBBRkv9IwPU6dUjVRLcMl
15SteUtyODAfBgNVHSMEGDAWgBRkv9IwPU6dUjVRLcMl15SteUtyODAPBgNVHRMB
Af8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiB306gF
yOnEN0KCAM3ULj8AlZjws+9zDjCCBujh04oQ/QIgceHWLVJLosovOqk7VR++6TqF
NfwgO44zfoWJIsepCHo=
-----END CERTIFICATE-----
";

    /// An application's choice of crypto provider holds: the one it installed
    /// as the process default is the one the agent connection runs on (the
    /// crate used to build every configuration on ring).
    #[test]
    fn the_process_default_provider_is_used() {
        // Nothing else in this test binary installs one; ignore a second install.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let installed = CryptoProvider::get_default().expect("a process default");
        let config = client_config(&ConsulTls::default()).expect("client config");
        assert!(Arc::ptr_eq(config.crypto_provider(), installed));
    }

    #[test]
    fn a_configured_ca_replaces_the_built_in_roots() {
        let dir = std::env::temp_dir().join(format!("le-consul-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ca.pem");
        std::fs::write(&file, CA).expect("ca file");
        let built_in = roots(&ConsulTls::default()).expect("built-in roots");
        assert!(built_in.len() > 50, "{} built-in roots", built_in.len());
        let from_file = roots(&ConsulTls {
            ca_cert: Some(file),
            ..ConsulTls::default()
        })
        .expect("roots from ca_cert");
        assert_eq!(from_file.len(), 1, "only the configured CA is trusted");
        let from_dir = roots(&ConsulTls {
            ca_path: Some(dir.clone()),
            ..ConsulTls::default()
        })
        .expect("roots from ca_path");
        assert_eq!(from_dir.len(), 1, "only the configured CA is trusted");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
