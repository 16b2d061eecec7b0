//! What every request handler shares.
//!
//! One `Arc<AppState>` per server: configuration, metrics, the readiness flag flipped
//! by shutdown, the admin token and the id generator. Later the read-only view of the
//! replicated state (issue 5's driver) joins it here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::admin::token::AdminToken;
use crate::config::GatewayConfig;
use crate::metrics::Metrics;

/// Shared, immutable-after-start state plus a few atomics.
#[derive(Debug)]
pub struct AppState {
    /// Request handling knobs.
    pub config: GatewayConfig,
    /// Request counters and latency histograms.
    pub metrics: Metrics,
    /// Token that guards `/admin/api`.
    pub admin_token: AdminToken,
    draining: AtomicBool,
    ids: IdGen,
}

impl AppState {
    /// Fresh state: ready, no requests counted.
    pub fn new(config: GatewayConfig, admin_token: AdminToken) -> Self {
        Self {
            config,
            metrics: Metrics::new(),
            admin_token,
            draining: AtomicBool::new(false),
            ids: IdGen::new(),
        }
    }

    /// Whether shutdown has begun; `/health/ready` answers 503 from then on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as draining (not ready). Idempotent.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// A new completion id (`chatcmpl-…`), unique within this process and, thanks to a
    /// random per-process prefix, across processes with overwhelming probability.
    pub fn next_completion_id(&self) -> String {
        self.ids.next("chatcmpl-")
    }
}

/// Ids as a random per-process prefix plus a counter: unique without a syscall per
/// request.
#[derive(Debug)]
struct IdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGen {
    fn new() -> Self {
        // A failed OS random source only weakens cross-process uniqueness, so fall back
        // to the clock rather than refusing to start.
        let prefix = getrandom::u64().unwrap_or_else(|_| unix_nanos());
        Self {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{kind}{:016x}{n:08x}", self.prefix)
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, for the `created` field of responses; 0 if the clock
/// is before 1970.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
