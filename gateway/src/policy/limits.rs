//! Per-key rate limits: requests per minute and tokens per minute, as token buckets
//! local to this node.
//!
//! Each key with an `rpm_limit` has a bucket of that many requests that refills
//! continuously at `rpm / 60` per second (so a key may burst its whole minute, then
//! runs at the steady rate); likewise `tpm_limit` in tokens. A request takes one
//! request token on admission; its tokens are only known when the answer ends, so the
//! token bucket is debited then and may go negative — a key over its token budget is
//! refused until the bucket is positive again. `Retry-After` says when that will be.
//!
//! # Accuracy across nodes
//!
//! The buckets live in this node's memory and are not replicated: behind a load
//! balancer spreading a key's traffic over N nodes, the key can get up to N × its
//! limit (each node grants the full rate), and N × the burst. That is the same
//! weakness as LiteLLM's per-instance limits, accepted here on purpose for rpm/tpm:
//! a minute-scale limit must answer in microseconds, and the replicated counters
//! converge in about a second (500 ms flush + gossip), which is too coarse to shape
//! traffic within a minute yet costs a counter entry per key per minute per node.
//! In a cluster that elects a leader the rpm limit is not judged here but by quota
//! leases ([`super::leases`]): exact across the cluster, as a rolling minute. The
//! tpm limit stays with these buckets (per node) either way.
//!
//! # Headers
//!
//! Every answer to a key with a limit carries OpenAI's `x-ratelimit-limit-*`,
//! `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers for requests and
//! tokens ([`RateHeaders`]): from these buckets, or for a leased rpm limit from the
//! leases (the cluster's figure as this node last heard it, and the time until the
//! rolling minute's next window).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

/// What is left of one limit, for the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    /// The limit, per minute.
    pub limit: u64,
    /// What is left of it now.
    pub remaining: u64,
    /// Until when it is whole again (a bucket), or until capacity may come back (a
    /// leased rolling minute: its next window).
    pub reset: Duration,
}

/// The `x-ratelimit-*` headers of one answer: requests and tokens per minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// The key's requests per minute, if limited.
    pub requests: Option<Remaining>,
    /// The key's tokens per minute, if limited.
    pub tokens: Option<Remaining>,
}

/// The header names, per limit: (limit, remaining, reset).
const REQUESTS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
const TOKENS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

impl RateHeaders {
    /// Writes the headers of the limits there are.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let limits = usize::from(self.requests.is_some()) + usize::from(self.tokens.is_some());
        // At most one growth of the map, not one per header.
        headers.reserve(3 * limits);
        for (names, remaining) in [(&REQUESTS, self.requests), (&TOKENS, self.tokens)] {
            let Some(r) = remaining else { continue };
            let [limit, left, reset] = names.clone();
            headers.insert(limit, HeaderValue::from(r.limit));
            headers.insert(left, HeaderValue::from(r.remaining));
            let mut text = [0u8; 32];
            let len = openai_duration(r.reset, &mut text);
            if let Ok(value) = HeaderValue::from_bytes(&text[..len]) {
                headers.insert(reset, value);
            }
        }
    }
}

/// A duration as OpenAI writes its reset headers: `20ms`, `1s`, `6m0s`, written into
/// `out` (on the stack: one header per answer); returns its length.
fn openai_duration(d: Duration, out: &mut [u8; 32]) -> usize {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    // 32 bytes hold any u64 pair written here: a write cannot fail.
    let _ = if d < Duration::from_secs(1) {
        write!(cursor, "{}ms", d.as_millis())
    } else {
        let secs = d.as_secs_f64().ceil() as u64;
        match secs / 60 {
            0 => write!(cursor, "{secs}s"),
            minutes => write!(cursor, "{minutes}m{}s", secs % 60),
        }
    };
    cursor.position() as usize
}

/// Why a request was refused, and when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// `true` for the token limit, `false` for the request limit.
    pub tokens: bool,
    /// The limit that was hit, per minute.
    pub limit: u32,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after: u64,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available; may be negative for the token bucket (debt).
    level: f64,
    limit: u32,
    updated: Instant,
}

impl Bucket {
    fn new(limit: u32, now: Instant) -> Self {
        Self {
            level: f64::from(limit),
            limit,
            updated: now,
        }
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.limit) / 60.0
    }

    /// Refills up to the limit; a changed limit takes effect at once.
    fn refill(&mut self, limit: u32, now: Instant) {
        if limit != self.limit {
            self.limit = limit;
            self.level = self.level.min(f64::from(limit));
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * self.rate_per_sec()).min(f64::from(limit));
        self.updated = now;
    }

    /// Seconds until the level reaches `needed`.
    fn wait_for(&self, needed: f64) -> u64 {
        let missing = (needed - self.level).max(0.0);
        let secs = (missing / self.rate_per_sec()).ceil();
        // At least 1 s (Retry-After is in whole seconds) and at most a minute.
        (secs as u64).clamp(1, 60)
    }
}

#[derive(Debug, Default)]
struct KeyBuckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The buckets of every key seen, by key id.
#[derive(Debug, Default)]
pub struct RateLimiter {
    keys: Mutex<HashMap<Arc<str>, KeyBuckets>>,
}

impl RateLimiter {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, KeyBuckets>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one request of `key` or says which limit refused it. Nothing is taken
    /// when the request is refused.
    pub fn admit(
        &self,
        key: &Arc<str>,
        rpm: Option<u32>,
        tpm: Option<u32>,
        now: Instant,
    ) -> Result<(), Limited> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        let mut keys = self.lock();
        let buckets = keys.entry(Arc::clone(key)).or_default();
        if let Some(limit) = tpm {
            let bucket = buckets
                .tokens
                .get_or_insert_with(|| Bucket::new(limit, now));
            bucket.refill(limit, now);
            if bucket.level <= 0.0 {
                return Err(Limited {
                    tokens: true,
                    limit,
                    retry_after: bucket.wait_for(f64::MIN_POSITIVE),
                });
            }
        } else {
            buckets.tokens = None;
        }
        if let Some(limit) = rpm {
            let bucket = buckets
                .requests
                .get_or_insert_with(|| Bucket::new(limit, now));
            bucket.refill(limit, now);
            if bucket.level < 1.0 {
                return Err(Limited {
                    tokens: false,
                    limit,
                    retry_after: bucket.wait_for(1.0),
                });
            }
            bucket.level -= 1.0;
        } else {
            buckets.requests = None;
        }
        Ok(())
    }

    /// Debits `tokens` used by a finished request of `key` (no-op without a tpm bucket).
    pub fn consume_tokens(&self, key: &str, tokens: u64, now: Instant) {
        let mut keys = self.lock();
        if let Some(bucket) = keys.get_mut(key).and_then(|b| b.tokens.as_mut()) {
            let limit = bucket.limit;
            bucket.refill(limit, now);
            bucket.level -= tokens as f64;
        }
    }

    /// The headers of `key`'s buckets at `now` (after any refill).
    pub fn headers(&self, key: &str, now: Instant) -> RateHeaders {
        let mut keys = self.lock();
        let Some(buckets) = keys.get_mut(key) else {
            return RateHeaders::default();
        };
        let remaining = |bucket: &mut Option<Bucket>| {
            bucket.as_mut().map(|b| {
                let limit = b.limit;
                b.refill(limit, now);
                let missing = (f64::from(limit) - b.level).max(0.0);
                Remaining {
                    limit: u64::from(limit),
                    remaining: b.level.max(0.0).floor() as u64,
                    reset: Duration::from_secs_f64(missing / b.rate_per_sec()),
                }
            })
        };
        RateHeaders {
            requests: remaining(&mut buckets.requests),
            tokens: remaining(&mut buckets.tokens),
        }
    }

    /// Drops the buckets of keys for which `keep` is false (deleted keys).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|k, _| keep(k));
    }

    /// Keys with buckets.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key has buckets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rpm_bursts_then_refills_at_the_steady_rate() {
        let l = RateLimiter::new();
        let k: Arc<str> = "k".into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(&k, Some(3), None, t0), Ok(()));
        }
        let refused = l.admit(&k, Some(3), None, t0).unwrap_err();
        assert_eq!((refused.tokens, refused.limit), (false, 3));
        // 3 per minute = one every 20 s.
        assert_eq!(refused.retry_after, 20);
        assert!(l
            .admit(&k, Some(3), None, t0 + Duration::from_secs(19))
            .is_err());
        assert_eq!(
            l.admit(&k, Some(3), None, t0 + Duration::from_secs(21)),
            Ok(())
        );
    }

    #[test]
    fn tpm_goes_into_debt_and_blocks_until_repaid() {
        let l = RateLimiter::new();
        let k: Arc<str> = "k".into();
        let t0 = Instant::now();
        assert_eq!(l.admit(&k, None, Some(600), t0), Ok(()));
        l.consume_tokens("k", 900, t0);
        let refused = l.admit(&k, None, Some(600), t0).unwrap_err();
        assert!(refused.tokens);
        // 300 tokens of debt at 10 per second.
        assert_eq!(refused.retry_after, 30);
        assert_eq!(
            l.admit(&k, None, Some(600), t0 + Duration::from_secs(31)),
            Ok(())
        );
        // Keys are independent; keys without limits have no buckets.
        assert_eq!(l.admit(&"other".into(), None, Some(600), t0), Ok(()));
        assert_eq!(l.admit(&"free".into(), None, None, t0), Ok(()));
        assert_eq!(l.len(), 2);
        l.retain(|k| k == "k");
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn lowering_a_limit_applies_at_once() {
        let l = RateLimiter::new();
        let k: Arc<str> = "k".into();
        let t0 = Instant::now();
        assert_eq!(l.admit(&k, Some(100), None, t0), Ok(()));
        assert_eq!(l.admit(&k, Some(1), None, t0), Ok(()));
        assert!(l.admit(&k, Some(1), None, t0).is_err());
    }

    #[test]
    fn headers_say_what_is_left_and_when_it_is_whole() {
        let l = RateLimiter::new();
        let (k, t0): (Arc<str>, _) = ("k".into(), Instant::now());
        assert_eq!(l.headers(&k, t0), RateHeaders::default());
        l.admit(&k, Some(60), Some(600), t0).unwrap();
        l.consume_tokens(&k, 300, t0);
        let h = l.headers(&k, t0);
        let requests = h.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (60, 59));
        assert_eq!(requests.reset, Duration::from_secs(1));
        let tokens = h.tokens.unwrap();
        assert_eq!((tokens.limit, tokens.remaining), (600, 300));
        assert_eq!(tokens.reset, Duration::from_secs(30));
        let mut map = HeaderMap::new();
        h.apply(&mut map);
        assert_eq!(map["x-ratelimit-remaining-requests"], "59");
        assert_eq!(map["x-ratelimit-reset-requests"], "1s");
        assert_eq!(map["x-ratelimit-limit-tokens"], "600");
        assert_eq!(map["x-ratelimit-reset-tokens"], "30s");
        let text = |d| {
            let mut out = [0u8; 32];
            let len = openai_duration(d, &mut out);
            String::from_utf8(out[..len].to_vec()).expect("ascii")
        };
        assert_eq!(text(Duration::from_millis(20)), "20ms");
        assert_eq!(text(Duration::from_secs(360)), "6m0s");
        assert_eq!(text(Duration::from_millis(4_200)), "5s");
        let longest = format!("{}m{}s", u64::MAX / 60, u64::MAX % 60);
        assert_eq!(
            text(Duration::from_secs(u64::MAX)),
            longest,
            "the longest fits"
        );
    }
}
