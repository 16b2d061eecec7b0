//! `gateway.cache`: how big the cache is, how long answers live, and who uses it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogError;

/// Whose answers a request may be given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only answers to requests of the same API key (the default: a tenant never learns
    /// what another asked, and never gets an answer shaped by another's workflow).
    #[default]
    Key,
    /// Any key's identical request.
    Shared,
}

/// Settings of the response cache (defaults in [`CacheSettings::default`]).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Answers this node keeps, as the owner of their keys, in bytes (bodies plus a
    /// small overhead each); the least recently used go first. 0 turns the cache off:
    /// nothing is looked up, stored or coalesced.
    pub max_bytes: u64,
    /// Largest answer stored; a longer one is passed to its client and not kept.
    pub max_entry_bytes: u64,
    /// How long a stored answer is served.
    pub ttl_seconds: u64,
    /// Public model names (models, aliases, routes) whose requests always use the
    /// cache. Other requests use it when their key is listed in `keys`, or when they
    /// send `x-aurora-cache: use`.
    pub models: Vec<String>,
    /// Auth key ids whose requests always use the cache.
    pub keys: Vec<String>,
    /// Whose answers a request may be given ([`Scope`]).
    pub scope: Scope,
    /// Store answers that call a tool (off: a tool call usually acts on the world, and
    /// the next identical request wants its own).
    pub store_tool_calls: bool,
    /// Store an upstream's client-error answers (400, 404, 413, 422); off by default.
    /// Refusals by the gateway itself, 5xx, 408 and 429 are never stored.
    pub store_errors: bool,
    /// How long identical requests wait for the first one's answer before each calls
    /// the upstream on its own; also how long the first one holds the right to fill.
    pub fill_timeout_ms: u64,
    /// How long a node waits for the owner of a key to answer a lookup, beyond the
    /// fill wait, before it serves the request without the cache.
    pub peer_timeout_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            ttl_seconds: 3600,
            models: Vec::new(),
            keys: Vec::new(),
            scope: Scope::Key,
            store_tool_calls: false,
            store_errors: false,
            fill_timeout_ms: 120_000,
            peer_timeout_ms: 2_000,
        }
    }
}

impl CacheSettings {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let range = |field: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(CatalogError::new(
                    field,
                    format!("must be from {min} to {max}, got {value}"),
                ))
            }
        };
        if self.max_bytes != 0 {
            range("max_bytes", self.max_bytes, 1 << 16, 1 << 40)?;
        }
        range("max_entry_bytes", self.max_entry_bytes, 1 << 10, 64 << 20)?;
        if self.max_bytes != 0 && self.max_entry_bytes > self.max_bytes {
            return Err(CatalogError::new(
                "max_entry_bytes",
                format!(
                    "must not exceed max_bytes ({}), got {}",
                    self.max_bytes, self.max_entry_bytes
                ),
            ));
        }
        range("ttl_seconds", self.ttl_seconds, 1, 30 * 86_400)?;
        range("fill_timeout_ms", self.fill_timeout_ms, 100, 3_600_000)?;
        range("peer_timeout_ms", self.peer_timeout_ms, 10, 60_000)?;
        if self.models.len() > 1024 || self.keys.len() > 65_536 {
            return Err(CatalogError::new(
                "models",
                "at most 1024 models and 65536 keys",
            ));
        }
        Ok(())
    }

    /// Whether the cache is on at all.
    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// [`CacheSettings::ttl_seconds`].
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }

    /// [`CacheSettings::fill_timeout_ms`].
    pub fn fill_timeout(&self) -> Duration {
        Duration::from_millis(self.fill_timeout_ms)
    }

    /// [`CacheSettings::peer_timeout_ms`].
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_field() {
        CacheSettings::default().validate().unwrap();
        let off = CacheSettings {
            max_bytes: 0,
            ..Default::default()
        };
        off.validate().unwrap();
        assert!(!off.enabled());
        for (settings, field) in [
            (
                CacheSettings {
                    max_bytes: 10,
                    ..Default::default()
                },
                "max_bytes",
            ),
            (
                CacheSettings {
                    ttl_seconds: 0,
                    ..Default::default()
                },
                "ttl_seconds",
            ),
            (
                CacheSettings {
                    max_bytes: 1 << 16,
                    max_entry_bytes: 1 << 20,
                    ..Default::default()
                },
                "max_entry_bytes",
            ),
            (
                CacheSettings {
                    fill_timeout_ms: 1,
                    ..Default::default()
                },
                "fill_timeout_ms",
            ),
        ] {
            let error = settings.validate().unwrap_err();
            assert!(error.to_string().contains(field), "{error}");
        }
    }
}
