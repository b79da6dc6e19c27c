//! Randomised delays, so candidates that failed together do not retry in lockstep.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::cell::Cell;

thread_local! {
    /// A seeded generator's state for this thread, when a simulation set one.
    static SEEDED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes the jitter of elections whose engines run on this thread a
/// deterministic sequence from `seed` (`None`: random again). For
/// deterministic simulations, which run each seed on one thread.
#[cfg(feature = "test-util")]
pub(crate) fn seed_thread(seed: Option<u64>) {
    SEEDED.with(|state| state.set(seed));
}

/// A number in `[0, 1)`; not for cryptography, only to spread retries.
fn unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = SEEDED.with(|state| {
        state.get().map(|seed| {
            // splitmix64: a full-period sequence, good enough to spread retries.
            let next = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(Some(next));
            let mut z = next;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    });
    let bits = bits
        .unwrap_or_else(|| RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `base` scaled by a random factor in `[1 - spread, 1 + spread)`.
pub(crate) fn jitter(base: Duration, spread: f64) -> Duration {
    base.mul_f64((1.0 - spread + 2.0 * spread * unit()).max(0.0))
}

/// Exponential backoff from `base` after `failures` consecutive failures,
/// capped at `cap` (but never below `base`), with ±20 % jitter.
pub(crate) fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(6);
    jitter(base.saturating_mul(factor).min(cap.max(base)), 0.2)
}
