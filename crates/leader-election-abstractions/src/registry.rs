//! [`ElectionRegistry`]: at most one live election per (resource, candidate
//! id) in a factory.
//!
//! Two live elections of one resource under one candidate id are two
//! contenders the backend cannot tell apart by name. A factory therefore
//! refuses a second one created with an explicit id, and gives one created
//! without an id (which takes the process's default id) a distinct identity:
//! the default id with `-2`, `-3`, … appended.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::limits::validate_candidate_id;

/// The live elections a factory has handed out. Clones share one registry.
#[derive(Clone, Debug, Default)]
pub struct ElectionRegistry {
    live: Arc<Mutex<HashSet<(String, String)>>>,
}

/// One live election's place in an [`ElectionRegistry`]; given up when
/// dropped (an [`Election`](crate::Election) holds it until it stops).
#[derive(Debug)]
pub struct Registration {
    registry: ElectionRegistry,
    resource: String,
    candidate_id: String,
}

impl ElectionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves (resource, candidate id) for a new election.
    ///
    /// With `requested` set, that id is used, or an
    /// [`InvalidOption`](Error::InvalidOption) error names `candidate_id` if
    /// an election of `resource` with that id is still live. Without it,
    /// `default_id` is used if free, otherwise the first free
    /// `default_id-N` (N = 2, 3, …).
    pub fn register(
        &self,
        resource: &str,
        requested: Option<&str>,
        default_id: &str,
    ) -> Result<Registration> {
        let mut live = self.lock();
        let taken = |id: &str| live.contains(&(resource.to_owned(), id.to_owned()));
        let candidate_id = match requested {
            Some(id) if taken(id) => {
                return Err(Error::invalid_option(
                    "candidate_id",
                    format!(
                        "an election of resource '{resource}' with candidate id '{id}' is \
                         already running in this factory; two would contend under one name \
                         (stop the first, or give each a distinct id)"
                    ),
                ))
            }
            Some(id) => id.to_owned(),
            None => (1u32..)
                .map(|n| match n {
                    1 => default_id.to_owned(),
                    n => format!("{default_id}-{n}"),
                })
                .find(|id| !taken(id))
                .unwrap_or_else(|| default_id.to_owned()),
        };
        validate_candidate_id(&candidate_id)?;
        live.insert((resource.to_owned(), candidate_id.clone()));
        Ok(Registration {
            registry: self.clone(),
            resource: resource.to_owned(),
            candidate_id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<(String, String)>> {
        self.live.lock()
    }
}

impl Registration {
    /// The candidate id reserved for the election.
    pub fn candidate_id(&self) -> &str {
        &self.candidate_id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let key = (
            std::mem::take(&mut self.resource),
            std::mem::take(&mut self.candidate_id),
        );
        self.registry.lock().remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_duplicate_is_refused_until_the_first_is_gone() {
        let registry = ElectionRegistry::new();
        let first = registry.register("jobs", Some("a"), "host").expect("first");
        let error = registry
            .register("jobs", Some("a"), "host")
            .expect_err("duplicate");
        assert!(error.to_string().contains("candidate_id"), "{error}");
        // Another resource, or another id, is fine.
        let _other = registry
            .register("reports", Some("a"), "host")
            .expect("other resource");
        drop(first);
        registry
            .register("jobs", Some("a"), "host")
            .expect("free again");
    }

    #[test]
    fn default_ids_get_distinct_identities() {
        let registry = ElectionRegistry::new();
        let one = registry.register("jobs", None, "host-1f2e").expect("one");
        let two = registry.register("jobs", None, "host-1f2e").expect("two");
        let three = registry.register("jobs", None, "host-1f2e").expect("three");
        assert_eq!(one.candidate_id(), "host-1f2e");
        assert_eq!(two.candidate_id(), "host-1f2e-2");
        assert_eq!(three.candidate_id(), "host-1f2e-3");
        drop(two);
        let again = registry.register("jobs", None, "host-1f2e").expect("again");
        assert_eq!(again.candidate_id(), "host-1f2e-2");
    }
}
