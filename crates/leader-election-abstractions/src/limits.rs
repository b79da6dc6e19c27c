//! The limits every provider shares, and their validators: resource names,
//! candidate ids and candidate metadata. Providers add their own, stricter
//! rules (Kubernetes object names, Consul keys) in
//! [`LeaseStore::validate`](crate::LeaseStore::validate).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Most metadata entries a candidate may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 253;
/// Total size of all metadata keys and values together, in bytes.
///
/// Metadata travels with every candidate-registry write, so it is kept small;
/// Consul's 512 KiB value limit and Kubernetes' annotation limits are far above it.
pub const MAX_METADATA_TOTAL_BYTES: usize = 16 * 1024;

/// Longest resource name or candidate id, in bytes (the Kubernetes object-name limit).
pub const MAX_NAME_BYTES: usize = 253;

/// Checks a resource name: 1 to 253 bytes of ASCII letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
///
/// The rule is the intersection that every backend can store as one path
/// segment or object name without escaping.
pub fn validate_resource_name(name: &str) -> Result<()> {
    const WHAT: &str = "resource name";
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_name(
            WHAT,
            name,
            format!("must be 1 to {MAX_NAME_BYTES} bytes"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::invalid_name(
            WHAT,
            name,
            format!("may contain only ASCII letters, digits, '-', '_' and '.', found {bad:?}"),
        ));
    }
    let edges_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !edges_ok {
        return Err(Error::invalid_name(
            WHAT,
            name,
            "must start and end with an ASCII letter or digit",
        ));
    }
    Ok(())
}

/// Checks a candidate id: 1 to 253 bytes, no control characters, no leading or
/// trailing whitespace.
pub fn validate_candidate_id(id: &str) -> Result<()> {
    const WHAT: &str = "candidate id";
    if id.is_empty() || id.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_name(
            WHAT,
            id,
            format!("must be 1 to {MAX_NAME_BYTES} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid_name(
            WHAT,
            id,
            "must not contain control characters",
        ));
    }
    if id.trim() != id {
        return Err(Error::invalid_name(
            WHAT,
            id,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}

/// Checks the metadata limits: entry count, key shape and total size.
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid_option(
            "candidate_metadata",
            format!(
                "at most {MAX_METADATA_ENTRIES} entries, got {}",
                metadata.len()
            ),
        ));
    }
    let mut total = 0usize;
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
            return Err(Error::invalid_name(
                "metadata key",
                key,
                format!("must be 1 to {MAX_METADATA_KEY_BYTES} bytes"),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(Error::invalid_name(
                "metadata key",
                key,
                "must not contain control characters",
            ));
        }
        total += key.len() + value.len();
    }
    if total > MAX_METADATA_TOTAL_BYTES {
        return Err(Error::invalid_option(
            "candidate_metadata",
            format!(
                "keys and values together must not exceed {MAX_METADATA_TOTAL_BYTES} bytes, got {total}"
            ),
        ));
    }
    Ok(())
}
