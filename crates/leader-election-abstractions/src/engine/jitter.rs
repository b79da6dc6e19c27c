//! Randomised delays, so candidates that failed together do not retry in lockstep.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A number in `[0, 1)`; not for cryptography, only to spread retries.
fn unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
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
