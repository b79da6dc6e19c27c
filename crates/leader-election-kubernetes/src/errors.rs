//! How the apiserver's refusals and failures map to the engine's error kinds.
//!
//! - 401/403: [`Error::Unauthorized`], naming the verbs, resource and API
//!   group the Role needs (retrying will not help);
//! - 5xx and 429 Too Many Requests, and failures to reach the apiserver at
//!   all: [`Error::BackendUnavailable`] (the engine retries);
//! - any other status: [`Error::Backend`].
//!
//! Every mapped error keeps the kube error as its `source()`. Statuses the
//! store handles itself (409 Conflict, 404 Not Found) are read with
//! [`status_code`] before anything is classified.

use std::time::Duration;

use kube::core::Status;
use leader_election_abstractions::Error;

/// What the Role must grant, named in every refusal.
const REQUIRED_PERMISSIONS: &str = "the Role needs the verbs get, list, watch, create, update and delete on `leases` in the API group `coordination.k8s.io`";

/// Maps a kube error from the request `what` (say, "update lease") to the
/// engine's error kinds, keeping it as the source.
pub(crate) fn classify(what: &str, error: kube::Error) -> Error {
    let classified = match &error {
        kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
            Error::unauthorized(format!(
                "Kubernetes refused {what}: {}; {REQUIRED_PERMISSIONS}",
                status.message
            ))
        }
        kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
            Error::unavailable(describe(what, status))
        }
        kube::Error::Api(status) => Error::backend(describe(what, status)),
        // An answer that does not decode makes no sense; retrying as if the
        // apiserver were down would hide that.
        kube::Error::SerdeError(e) => {
            Error::backend(format!("Kubernetes {what}: malformed answer: {e}"))
        }
        _ => Error::unavailable(format!("Kubernetes {what}: {error}")),
    };
    classified.with_source(error)
}

/// An error event on an open watch (410 Gone among others): the watch is
/// over and the store lists afresh.
pub(crate) fn watch_ended(status: &Status) -> Error {
    Error::unavailable(describe("watch", status))
}

/// A request that got no answer within the store's request timeout.
pub(crate) fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::unavailable(format!("Kubernetes {what} timed out after {timeout:?}"))
}

/// The HTTP status of an answer the apiserver gave, if it gave one.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn describe(what: &str, status: &Status) -> String {
    format!("Kubernetes {what}: {} ({})", status.message, status.code)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn answer(code: u16) -> kube::Error {
        kube::Error::Api(
            Status::failure(&format!("the apiserver said {code}"), "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    /// The classified error's source is the kube error it came from.
    fn assert_keeps_source(error: &Error, code: Option<u16>) {
        let source = error
            .source()
            .and_then(|s| s.downcast_ref::<kube::Error>())
            .unwrap_or_else(|| panic!("no kube error as the source of {error:?}"));
        assert_eq!(status_code(source), code);
    }

    #[test]
    fn refusals_are_unauthorized_and_name_the_verbs_the_role_needs() {
        for code in [401, 403] {
            let error = classify("update lease", answer(code));
            let Error::Unauthorized { message, .. } = &error else {
                panic!("{code}: expected unauthorized, got {error:?}");
            };
            for needed in [
                "update lease",
                "get, list, watch, create, update and delete",
                "`leases`",
                "coordination.k8s.io",
                &format!("the apiserver said {code}"),
            ] {
                assert!(message.contains(needed), "{code}: {needed:?} in {message}");
            }
            assert_keeps_source(&error, Some(code));
        }
    }

    #[test]
    fn server_errors_and_throttling_are_unavailable() {
        for code in [429, 500, 503, 504] {
            let error = classify("get lease", answer(code));
            let Error::BackendUnavailable { message, .. } = &error else {
                panic!("{code}: expected unavailable, got {error:?}");
            };
            assert!(message.contains(&format!("({code})")), "{message}");
            assert!(message.contains("get lease"), "{message}");
            assert_keeps_source(&error, Some(code));
        }
    }

    #[test]
    fn other_statuses_are_unexpected_answers() {
        for code in [400, 404, 409, 410, 422] {
            let error = classify("create lease", answer(code));
            let Error::Backend { message, .. } = &error else {
                panic!("{code}: expected a backend error, got {error:?}");
            };
            assert!(message.contains(&format!("({code})")), "{message}");
            assert_keeps_source(&error, Some(code));
        }
    }

    #[test]
    fn failing_to_reach_the_apiserver_is_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let error = classify("list lease", kube::Error::ReadEvents(io));
        assert!(
            matches!(error, Error::BackendUnavailable { .. }),
            "{error:?}"
        );
        assert_keeps_source(&error, None);
    }

    #[test]
    fn an_answer_that_does_not_decode_is_a_backend_error() {
        let serde = serde_json::from_str::<u8>("{").expect_err("not JSON");
        let error = classify("get lease", kube::Error::SerdeError(serde));
        assert!(matches!(error, Error::Backend { .. }), "{error:?}");
        assert_keeps_source(&error, None);
    }

    #[test]
    fn a_watch_error_event_is_unavailable_and_says_the_status() {
        let status = Status::failure("too old resource version", "Expired").with_code(410);
        let error = watch_ended(&status);
        assert!(
            matches!(&error, Error::BackendUnavailable { message, .. }
                if message == "Kubernetes watch: too old resource version (410)"),
            "{error:?}"
        );
    }
}
