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
