//! Retry delays for failing handlers and dead-letter publishes.

use std::time::Duration;

use rand::Rng;

/// `base × attempt²` (100 ms, 400 ms, 900 ms … for a 100 ms base), with ±20 % jitter so
/// consumers that failed together do not retry together.
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    let nominal = base.saturating_mul(attempt.saturating_mul(attempt));
    let jitter = rand::rng().random_range(0.8..=1.2);
    nominal.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_quadratically_within_jitter() {
        let base = Duration::from_millis(100);
        for (attempt, nominal_ms) in [(1, 100.0), (2, 400.0), (3, 900.0)] {
            let ms = backoff(base, attempt).as_secs_f64() * 1000.0;
            assert!((nominal_ms * 0.8..=nominal_ms * 1.2).contains(&ms), "attempt {attempt}: {ms} ms");
        }
    }
}
