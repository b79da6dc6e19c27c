//! Fencing tokens over `int32` `leaseTransitions`.
//!
//! client-go counts acquisitions in `leaseTransitions`, an `int32` that the
//! apiserver requires to be non-negative. A counter alone cannot give tokens
//! that keep increasing: a Lease deleted and re-created starts again at 0,
//! and the counter runs out at `i32::MAX` (client-go would then write a
//! negative value, which the apiserver rejects). So a term's token is
//!
//! ```text
//! token = epoch × 2³¹ + leaseTransitions
//! ```
//!
//! where the *epoch* is a storage revision this library records in the
//! annotation [`EPOCH_ANNOTATION`] on every acquisition it makes: the
//! `resourceVersion` it read just before its acquiring write (the Lease's own
//! for an update, a consistent list's for a create). etcd revisions only grow,
//! and every write, deletion included, gets a revision above every earlier
//! one, so each of our acquisitions has an epoch above the epoch of every
//! earlier acquisition of the Lease, in any of its incarnations. Within one
//! epoch, `leaseTransitions` grows by one per acquisition, ours and foreign
//! clients' alike (client-go keeps annotations it does not know).
//!
//! Hence tokens of this library's terms strictly increase across deletion and
//! re-creation, foreign acquisitions in between, revisions above 2³¹ and
//! `leaseTransitions` reaching `i32::MAX` (the next acquisition restarts the
//! counter at 0 under its larger epoch). A term of a foreign client on a
//! Lease it re-created itself carries no epoch, so its token is its bare
//! `leaseTransitions`: lower than ours, which is why the engine tells Lease
//! incarnations apart by uid rather than by token.
//!
//! Where this cannot hold, the store refuses to lead rather than reuse a
//! token: a `resourceVersion` that is not a decimal number (no etcd behind
//! the apiserver) or one of 2³³ or more (the token would not fit a `u64`).

use leader_election_abstractions::{Error, FencingToken, Result};

/// Annotation on the Lease: the storage revision read before this library's
/// last acquisition (the epoch of the token).
pub const EPOCH_ANNOTATION: &str = "leader-election-rs/token-epoch";

/// Tokens per epoch: every value `leaseTransitions` can hold.
const PER_EPOCH: u64 = 1 << 31;

/// The fencing token of a term whose Lease carries `epoch` (the annotation,
/// if present and a number) and `transitions`. `None` when the Lease has no
/// usable counter (missing or negative) or the token would not fit a `u64`.
pub(crate) fn token_of(epoch: Option<&str>, transitions: Option<i32>) -> Option<FencingToken> {
    let transitions = u64::try_from(transitions?).ok()?;
    let epoch = match epoch {
        Some(value) => value.parse::<u64>().ok()?,
        None => 0,
    };
    epoch
        .checked_mul(PER_EPOCH)?
        .checked_add(transitions)
        .map(FencingToken)
}

/// What an acquisition writes: the epoch annotation, `leaseTransitions`, and
/// the token they make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NextTerm {
    /// Goes into [`EPOCH_ANNOTATION`].
    pub(crate) epoch: String,
    /// Goes into `spec.leaseTransitions`.
    pub(crate) transitions: i32,
    /// The term's fencing token.
    pub(crate) token: FencingToken,
}

/// The term an acquisition begins, given the `resourceVersion` read just
/// before the acquiring write and the Lease's current `leaseTransitions`
/// (`None` for a Lease we create, which starts at 0 like client-go's).
///
/// Refuses (an error the engine retries, logged) when the revision cannot
/// serve as an epoch, instead of issuing a token that may not be above every
/// earlier one.
pub(crate) fn next_term(read_revision: Option<&str>, previous: Option<i32>) -> Result<NextTerm> {
    let revision = read_revision.unwrap_or_default();
    let Ok(epoch) = revision.parse::<u64>() else {
        return Err(refuse(format!(
            "the Lease's resourceVersion {revision:?} is not a decimal storage revision, so no fencing token above every earlier one can be derived from it"
        )));
    };
    let transitions = match previous {
        None => 0,
        Some(count) if (0..i32::MAX).contains(&count) => count + 1,
        // Exhausted (or written negative, which only a wrapped counter does):
        // the larger epoch alone keeps the token increasing.
        Some(_) => 0,
    };
    let token = token_of(Some(revision), Some(transitions)).ok_or_else(|| {
        refuse(format!(
            "the storage revision {epoch} is too large: epoch × 2³¹ + leaseTransitions would not fit a 64-bit fencing token"
        ))
    })?;
    Ok(NextTerm {
        epoch: epoch.to_string(),
        transitions,
        token,
    })
}

fn refuse(why: String) -> Error {
    tracing::error!(reason = %why, "refusing to lead: no safe fencing token");
    Error::backend(format!("refusing to lead: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(epoch: u64, transitions: i32) -> u64 {
        token_of(Some(&epoch.to_string()), Some(transitions))
            .expect("fits")
            .get()
    }

    #[test]
    fn an_acquisition_increments_the_counter_under_a_newer_epoch() {
        let next = next_term(Some("120"), Some(4)).expect("next");
        assert_eq!(next.transitions, 5);
        assert_eq!(next.epoch, "120");
        assert_eq!(next.token.get(), token(120, 5));
    }

    #[test]
    fn a_created_lease_starts_at_zero_above_every_earlier_epoch() {
        // The predecessor reached i32::MAX under epoch 99; the create reads 100.
        let created = next_term(Some("100"), None).expect("next");
        assert_eq!(created.transitions, 0);
        assert!(created.token.get() > token(99, i32::MAX));
    }

    #[test]
    fn the_counter_one_below_the_maximum_still_increments() {
        let next = next_term(Some("7"), Some(i32::MAX - 1)).expect("next");
        assert_eq!(next.transitions, i32::MAX);
        assert!(next.token.get() > token(6, i32::MAX - 1));
    }

    #[test]
    fn an_exhausted_counter_restarts_under_the_larger_epoch_and_never_repeats() {
        let before = token(7, i32::MAX);
        let next = next_term(Some("8"), Some(i32::MAX)).expect("next");
        assert_eq!(next.transitions, 0);
        assert!(next.token.get() > before, "{} <= {before}", next.token);
        // The token after that is higher again.
        let after = next_term(Some("9"), Some(next.transitions)).expect("next");
        assert!(after.token > next.token);
    }

    #[test]
    fn a_negative_counter_written_by_a_wrapping_client_is_not_a_token() {
        assert_eq!(token_of(Some("5"), Some(-1)), None);
        assert_eq!(token_of(None, Some(i32::MIN)), None);
        let next = next_term(Some("6"), Some(i32::MIN)).expect("next");
        assert_eq!(next.transitions, 0);
        assert!(next.token.get() > token(5, i32::MAX));
    }

    #[test]
    fn revisions_above_two_to_the_31_give_increasing_tokens() {
        let big = u64::from(u32::MAX) + 10; // > 2^32
        let first = next_term(Some(&big.to_string()), Some(3)).expect("next");
        let second =
            next_term(Some(&(big + 1).to_string()), Some(first.transitions)).expect("next");
        assert!(second.token > first.token);
        assert!(first.token.get() > token(big - 1, i32::MAX));
    }

    #[test]
    fn a_revision_too_large_for_a_64_bit_token_is_refused() {
        let limit = 1u64 << 33;
        assert!(next_term(Some(&(limit - 1).to_string()), Some(0)).is_ok());
        let error = next_term(Some(&limit.to_string()), Some(0)).expect_err("too large");
        assert!(error.to_string().contains("too large"), "{error}");
    }

    #[test]
    fn a_revision_that_is_not_a_number_is_refused() {
        for bad in [None, Some(""), Some("abc"), Some("-1")] {
            let error = next_term(bad, Some(1)).expect_err("refused");
            assert!(error.to_string().contains("resourceVersion"), "{error}");
        }
    }

    #[test]
    fn a_foreign_lease_without_an_epoch_has_its_bare_counter_as_token() {
        assert_eq!(token_of(None, Some(3)), Some(FencingToken(3)));
        assert_eq!(token_of(Some("x"), Some(3)), None);
        assert_eq!(token_of(Some("1"), None), None);
    }

    #[test]
    fn foreign_acquisitions_within_an_epoch_keep_tokens_increasing() {
        // client-go keeps our annotation and adds one.
        assert!(token(50, 11) > token(50, 10));
    }
}
