//! [`KubernetesConfig`] and the Kubernetes naming rules checked up front.

use std::time::Duration;

use leader_election_abstractions::{Error, Result};

/// Where the Leases live and how long one API call may take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// Namespace of the Leases. `None`: the client's default namespace (the
    /// in-cluster service account's namespace, or the kubeconfig context's,
    /// else `default`).
    pub namespace: Option<String>,
    /// Timeout of every API call. `None`: like client-go,
    /// `max(1 s, renew_interval / 2)`.
    pub request_timeout: Option<Duration>,
}

impl KubernetesConfig {
    /// Checks the namespace (a DNS-1123 label).
    pub fn validate(&self) -> Result<()> {
        if let Some(namespace) = &self.namespace {
            if !is_dns_label(namespace) {
                return Err(Error::invalid_option(
                    "namespace",
                    format!("must be a DNS-1123 label (lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit), got {namespace:?}"),
                ));
            }
        }
        if self.request_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid_option(
                "request_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The longest resource name: the candidate Leases append `-candidate-` and a
/// 16-digit hash, and the whole name must stay a 253-character DNS subdomain.
pub const MAX_RESOURCE_NAME: usize = 253 - 27;

/// Checks that `resource` can name a Lease: a DNS-1123 subdomain (lowercase
/// letters, digits, '-' and '.', dot-separated labels that start and end with
/// a letter or digit), short enough for the candidate Leases too.
pub(crate) fn validate_resource(resource: &str) -> Result<()> {
    let labels_ok = resource.split('.').all(is_dns_label);
    if resource.len() > MAX_RESOURCE_NAME || !labels_ok {
        return Err(Error::invalid_name(
            "resource name",
            resource,
            format!(
                "must be a Kubernetes object name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.', at most {MAX_RESOURCE_NAME} characters"
            ),
        ));
    }
    Ok(())
}

/// FNV-1a: a stable, dependency-free hash for deriving object names and label
/// values from arbitrary strings. Not for security.
pub(crate) fn stable_hash(value: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
