//! The TLS configuration of the agent connection, on the stack the crate's
//! features picked: a configured CA *replaces* the built-in roots (as the
//! `consul` CLI does), and the client certificate and key are read from
//! their own files. rustls (`rustls-ring`, `rustls-aws-lc`) is preferred
//! when several are enabled; `native-tls` cannot check the certificate
//! against a configured server name and refuses that setting.

#[cfg(any(feature = "__rustls", feature = "native-tls"))]
use std::path::Path;

use leader_election_abstractions::{Error, Result};
#[cfg(any(feature = "__rustls", feature = "native-tls"))]
use rustls_pki_types::{pem::PemObject, CertificateDer};

use crate::config::ConsulConfig;
#[cfg(any(feature = "__rustls", feature = "native-tls"))]
use crate::config::ConsulTls;

#[cfg(feature = "__rustls")]
mod rustls_config;

#[cfg(any(feature = "__rustls", feature = "native-tls"))]
fn read(field: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid_option(field, format!("cannot read {}: {e}", path.display())))
}

/// Every certificate in a PEM file; at least one.
#[cfg(any(feature = "__rustls", feature = "native-tls"))]
fn certificates(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(field, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::invalid_option(
                field,
                format!("{} is not a PEM certificate file: {e}", path.display()),
            )
        })?;
    if certificates.is_empty() {
        return Err(Error::invalid_option(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certificates)
}

/// The configured CAs (`ca_cert`, then every file of `ca_path` in name
/// order) with the field each came from; `None` when neither is set (the
/// built-in roots are used).
#[cfg(any(feature = "__rustls", feature = "native-tls"))]
fn configured_cas(tls: &ConsulTls) -> Result<Option<Vec<(&'static str, CertificateDer<'static>)>>> {
    if tls.ca_cert.is_none() && tls.ca_path.is_none() {
        return Ok(None);
    }
    let mut configured = Vec::new();
    if let Some(file) = &tls.ca_cert {
        configured.extend(
            certificates("tls.ca_cert", file)?
                .into_iter()
                .map(|c| ("tls.ca_cert", c)),
        );
    }
    if let Some(dir) = &tls.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::invalid_option("tls.ca_path", format!("cannot read {}: {e}", dir.display()))
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::invalid_option(
                "tls.ca_path",
                format!("{} holds no certificate file", dir.display()),
            ));
        }
        for file in files {
            configured.extend(
                certificates("tls.ca_path", &file)?
                    .into_iter()
                    .map(|c| ("tls.ca_path", c)),
            );
        }
    }
    Ok(Some(configured))
}

/// The client for `config`, on the TLS stack of the crate's features.
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    config: &ConsulConfig,
) -> Result<reqwest::ClientBuilder> {
    #[cfg(feature = "__rustls")]
    {
        Ok(builder.use_preconfigured_tls(rustls_config::client_config(&config.tls)?))
    }
    #[cfg(all(feature = "native-tls", not(feature = "__rustls")))]
    {
        native(builder, &config.tls)
    }
    #[cfg(not(any(feature = "__rustls", feature = "native-tls")))]
    {
        let tls = &config.tls;
        if config.address.starts_with("https://")
            || tls.ca_cert.is_some()
            || tls.ca_path.is_some()
            || tls.client_cert.is_some()
            || tls.server_name.is_some()
        {
            return Err(Error::invalid_option(
                "tls",
                "this build has no TLS: enable the feature rustls-ring, rustls-aws-lc or native-tls of leader-election-consul",
            ));
        }
        Ok(builder)
    }
}

/// The platform's TLS (`native-tls`): the same settings, except a server
/// name other than the address's host, which it cannot check.
#[cfg(all(feature = "native-tls", not(feature = "__rustls")))]
fn native(mut builder: reqwest::ClientBuilder, tls: &ConsulTls) -> Result<reqwest::ClientBuilder> {
    if tls.server_name.is_some() {
        return Err(Error::invalid_option(
            "tls.server_name",
            "the native-tls feature cannot check a certificate against another name than the address's host; use the rustls-ring or rustls-aws-lc feature",
        ));
    }
    builder = builder.use_native_tls();
    if let Some(configured) = configured_cas(tls)? {
        builder = builder.tls_built_in_root_certs(false);
        for (field, certificate) in configured {
            let certificate = reqwest::Certificate::from_der(&certificate).map_err(|e| {
                Error::invalid_option(field, format!("not a usable CA certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        let identity = reqwest::Identity::from_pkcs8_pem(
            &read("tls.client_cert", cert)?,
            &read("tls.client_key", key)?,
        )
        .map_err(|e| {
            Error::invalid_option(
                "tls.client_key",
                format!("not a PEM certificate and PKCS#8 key (native-tls reads only PKCS#8): {e}"),
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder.danger_accept_invalid_certs(tls.insecure_skip_verify))
}
