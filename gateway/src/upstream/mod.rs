//! Calling real model providers: OpenAI-compatible APIs and Anthropic's Messages API.
//!
//! A request resolved by the catalog to one or more targets goes through
//! [`dispatch::dispatch`]: targets in weighted order ([`balance`]), cooling targets
//! skipped ([`breaker`]), each tried with retries and backoff on 429/5xx/timeouts/
//! connect errors ([`retry`], [`failure`]), through one pooled client ([`client`]).
//! Bodies are translated per protocol ([`openai`], [`anthropic`]); streams are pumped
//! to the client event by event ([`sse`], [`stream`]). Answers are bounded in size, per
//! request and together ([`buffered`], `gateway.limits`).

pub mod anthropic;
pub mod balance;
pub mod breaker;
pub mod buffered;
pub mod client;
pub mod dispatch;
pub mod failure;
pub mod openai;
pub mod policy;
pub mod retry;
pub mod sse;
pub mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time a request spent waiting on upstreams (all attempts, retry waits included),
/// and the provider that served or last failed it. Shared by the handler, the stream
/// pump and the metrics guard, which computes gateway overhead as total minus this.
#[derive(Debug, Default)]
pub struct UpstreamClock {
    nanos: AtomicU64,
    provider: Mutex<Option<Arc<str>>>,
}

impl UpstreamClock {
    /// Adds `d` of upstream time.
    pub fn add(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(n, Ordering::Relaxed);
    }

    /// Upstream time so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Notes the provider being called.
    pub fn set_provider(&self, name: &Arc<str>) {
        let mut p = self.provider.lock().unwrap_or_else(|e| e.into_inner());
        *p = Some(Arc::clone(name));
    }

    /// The provider last called, if any upstream was called at all.
    pub fn provider(&self) -> Option<Arc<str>> {
        self.provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A token count an upstream reported, as a non-negative integer: negative numbers
/// read as 0, fractions are cut, and anything beyond `u64` (or not a number) is
/// clamped, so no answer can make billing panic, wrap or go negative. The upstream
/// is outside our control; its counts are not trusted to fit a type.
pub fn token_count(v: &serde_json::Value) -> u64 {
    if let Some(n) = v.as_u64() {
        return n;
    }
    match v.as_f64() {
        // `as` saturates: above u64::MAX gives u64::MAX, negatives and NaN give 0.
        Some(f) => f as u64,
        None => 0,
    }
}

/// Deserializes a token count with [`token_count`] (`#[serde(deserialize_with)]`).
pub fn lenient_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(token_count(&v))
}
