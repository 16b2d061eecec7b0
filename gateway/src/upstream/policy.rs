//! How hard the gateway tries an upstream: timeouts, retries, cooldown.
//!
//! This is node configuration (the `upstream:` key of the `gateway:` section), not a
//! replicated record: two nodes may sit on different networks and need different
//! timeouts. A provider record can override the timeout and the retry count.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogError;

/// Retry, timeout and cooldown settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamPolicy {
    /// TCP (and TLS) connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Per attempt: time to the response headers, to the whole body of a plain
    /// answer, and the longest gap between two streamed chunks, ms.
    pub request_timeout_ms: u64,
    /// Retries of one target after the first attempt, on 429, 5xx, timeouts and
    /// connect errors only.
    pub max_retries: u32,
    /// First retry delay, ms; doubled each retry, with jitter.
    pub retry_base_ms: u64,
    /// Upper bound of one retry delay, and of a `Retry-After` the gateway is willing
    /// to wait for (a longer one moves on to the next target at once), ms.
    pub retry_max_ms: u64,
    /// Consecutive failed requests after which a target cools down.
    pub cooldown_failures: u32,
    /// How long a cooling target is skipped before one trial request, ms.
    pub cooldown_ms: u64,
}

impl Default for UpstreamPolicy {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 120_000,
            max_retries: 2,
            retry_base_ms: 200,
            retry_max_ms: 5_000,
            cooldown_failures: 3,
            cooldown_ms: 10_000,
        }
    }
}

impl UpstreamPolicy {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let checks: [(&str, u64, u64, u64); 7] = [
            ("connect_timeout_ms", self.connect_timeout_ms, 1, 600_000),
            ("request_timeout_ms", self.request_timeout_ms, 1, 3_600_000),
            ("max_retries", u64::from(self.max_retries), 0, 10),
            ("retry_base_ms", self.retry_base_ms, 1, 600_000),
            ("retry_max_ms", self.retry_max_ms, 1, 600_000),
            (
                "cooldown_failures",
                u64::from(self.cooldown_failures),
                1,
                1_000,
            ),
            ("cooldown_ms", self.cooldown_ms, 0, 86_400_000),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(CatalogError::new(
                    field,
                    format!("must be from {min} to {max}, got {value}"),
                ));
            }
        }
        Ok(())
    }

    /// Connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Default per-attempt timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Cooldown length.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }
}
