//! Retry timing: exponential backoff with jitter, capped.
//!
//! Floor 0: imports nothing of the crate.

use std::time::Duration;

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped at `max`, with
/// "equal jitter" (`jitter` in 0..=1 picks a point in the upper half) so retries of a burst
/// spread out. Always at least one second: SQS visibility has whole-second resolution.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let half = raw / 2;
    let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    jittered.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_until_the_cap() {
        let b = Duration::from_secs(4);
        let m = Duration::from_secs(20);
        assert_eq!(backoff(1, b, m, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(2, b, m, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(3, b, m, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(4, b, m, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(2, b, m, 0.0), Duration::from_secs(4));
    }

    proptest! {
        #[test]
        fn stays_within_bounds(attempt in 0u32..100, base in 0u64..1000, max in 0u64..5000, j in 0.0f64..=1.0) {
            let d = backoff(attempt, Duration::from_secs(base), Duration::from_secs(max), j);
            prop_assert!(d >= Duration::from_secs(1));
            prop_assert!(d <= Duration::from_secs(max.max(1)));
        }
    }
}
