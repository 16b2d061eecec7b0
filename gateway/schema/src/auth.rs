//! Client API keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use aurora_core::{RecordError, RecordId};

use crate::checks::*;
use crate::limits::*;

/// A client API key. Only the SHA-256 of the secret is replicated: the gateway
/// hashes the presented bearer token and compares digests in constant time. Plain
/// SHA-256 is enough because secrets are long random strings, not passwords.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKey {
    /// Shown to operators; 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret: exactly 64 characters of `[0-9a-f]`.
    pub secret_hash: String,
    /// The first characters of the secret (e.g. `sk-aur-3f9a`), so operators can
    /// tell keys apart: at most 12 bytes of printable ASCII, no spaces.
    pub key_prefix: String,
    /// Public model names this key may call; empty means all. At most 256, each in
    /// the id alphabet, no duplicates.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// The budget charged for this key's requests.
    pub budget_id: Option<RecordId>,
    /// The guardrails and routing policy applied to this key's requests.
    pub workflow_id: Option<RecordId>,
    /// Requests per minute; at least 1 when set.
    pub rpm_limit: Option<u32>,
    /// Tokens per minute; at least 1 when set.
    pub tpm_limit: Option<u32>,
    /// Wall-clock expiry in Unix milliseconds; the key is refused from this instant.
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    /// Free-form labels (team, owner...): at most 64 entries, keys 1 to 128 bytes
    /// without control characters, values at most 1024 bytes.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Most requests of this key in flight at once on one node; at least 1 when set.
    /// Added after the first schema: a key with it set is written as the appended
    /// wire variant `AuthKeyV2` (see [`Record`]), a key without it in the original
    /// layout, so stored entries and older peers keep reading keys that do not use it.
    #[serde(default)]
    pub max_parallel_requests: Option<u32>,
}

impl AuthKey {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        if !is_sha256_hex(&self.secret_hash) {
            return Err(invalid(
                "secret_hash",
                "must be 64 lowercase hex digits (a SHA-256 digest, never the secret)",
            ));
        }
        if self.key_prefix.len() > MAX_KEY_PREFIX {
            return Err(invalid("key_prefix", "at most 12 bytes"));
        }
        if !self.key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "key_prefix",
                "must be printable ASCII without spaces",
            ));
        }
        check_id_list(
            "allowed_models",
            self.allowed_models.iter().map(String::as_str),
            MAX_VEC,
            "at most 256 models",
        )?;
        check_opt_id("budget_id", &self.budget_id)?;
        check_opt_id("workflow_id", &self.workflow_id)?;
        if self.rpm_limit == Some(0) {
            return Err(invalid(
                "rpm_limit",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.tpm_limit == Some(0) {
            return Err(invalid(
                "tpm_limit",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.max_parallel_requests == Some(0) {
            return Err(invalid(
                "max_parallel_requests",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.metadata.len() > MAX_MAP {
            return Err(invalid("metadata", "at most 64 entries"));
        }
        for (k, v) in &self.metadata {
            if k.is_empty() || k.len() > MAX_METADATA_KEY || k.chars().any(char::is_control) {
                return Err(invalid(
                    "metadata",
                    "keys must be 1 to 128 bytes without control characters",
                ));
            }
            check_max_str(v).map_err(|r| invalid(format!("metadata[{k:?}]"), r))?;
        }
        Ok(())
    }

    /// Whether the key has expired at wall-clock time `wall_ms` (expiry is inclusive).
    pub fn is_expired(&self, wall_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| wall_ms >= at)
    }

    /// Whether the key may call the public model name `model` (empty list: any).
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }
}

// ---------------------------------------------------------------------------------
