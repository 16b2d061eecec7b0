//! When to try again, and how long to wait first.
//!
//! Exponential backoff with jitter: retry `n` (0-based) waits a random time between
//! half and all of `min(base · 2ⁿ, max)`. The random half spreads the retries of many
//! clients hit by the same outage, so they do not return in lockstep; the fixed half
//! keeps a retry from firing at once. An upstream's own `Retry-After` /
//! `retry-after-ms` wins when present and not longer than `max`; a longer one means
//! "not this target, not now", and the request moves on to the next target.

use std::time::Duration;

use http::HeaderMap;

/// The delay before retry `n` (0-based).
pub fn backoff(n: u32, base: Duration, max: Duration, rng: &mut fastrand::Rng) -> Duration {
    let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
    let full = base.saturating_mul(factor).min(max);
    let half = full / 2;
    let spread = (full - half).as_micros() as u64;
    half + Duration::from_micros(rng.u64(0..=spread))
}

/// The wait an upstream asked for: `retry-after-ms` (OpenAI's, milliseconds) or
/// `Retry-After` in seconds. HTTP-date values are ignored (backoff applies).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64((ms / 1000.0).min(86_400.0)));
    }
    number("retry-after").map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut rng = fastrand::Rng::with_seed(1);
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for _ in 0..200 {
            let d0 = backoff(0, base, max, &mut rng);
            assert!((50..=100).contains(&d0.as_millis()), "{d0:?}");
            let d2 = backoff(2, base, max, &mut rng);
            assert!((200..=400).contains(&d2.as_millis()), "{d2:?}");
            let d9 = backoff(9, base, max, &mut rng);
            assert!((500..=1000).contains(&d9.as_millis()), "{d9:?}");
            assert!(backoff(u32::MAX, base, max, &mut rng) <= max);
        }
    }

    #[test]
    fn retry_after_reads_ms_then_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&d), None);
    }
}
