//! Auth keys: `POST /admin/api/keys` generates the secret, stores only its hash, and
//! answers the secret once; `PUT` changes everything but the secret.
//!
//! The secret is `sk-aurora-` followed by 64 lowercase hex digits: 32 bytes (256 bits)
//! from the OS random source, far beyond guessing, so a plain SHA-256 is the right
//! stored form (a slow password hash buys nothing against 256 random bits and would
//! cost every request). Only the digest (`secret_hash`) and `key_prefix` — the first
//! 8 hex digits after `sk-aurora-`, so operators can tell keys apart — are replicated;
//! the secret itself exists only in the creation response.

use std::collections::BTreeMap;
use std::sync::Arc;

use aurora_schema::{AuthKey, Collection, Record, RecordId};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error;
use super::records::{
    check, from_value, generated_id, json_object, record_json, with_status, write,
};
use crate::openai::ApiError;
use crate::state::AppState;

/// What every generated secret starts with.
pub const SECRET_PREFIX: &str = "sk-aurora-";

/// The fields a client may set on a key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFields {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    allowed_models: Vec<String>,
    #[serde(default)]
    budget_id: Option<RecordId>,
    #[serde(default)]
    workflow_id: Option<RecordId>,
    #[serde(default)]
    rpm_limit: Option<u32>,
    #[serde(default)]
    tpm_limit: Option<u32>,
    #[serde(default)]
    expires_at_ms: Option<u64>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    max_parallel_requests: Option<u32>,
}

/// A new secret from the OS random source.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", hex(&bytes)))
}

/// Lowercase hex SHA-256 of `secret`, the form stored in `secret_hash`.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /admin/api/keys`.
pub async fn create(
    state: &Arc<AppState>,
    body: &Bytes,
) -> Result<crate::http::body::Response, ApiError> {
    let fields: KeyFields = from_value(Value::Object(json_object(body)?))?;
    let id = match &fields.id {
        Some(s) => RecordId::new(s.as_str())
            .map_err(|e| super::records::field_error(e.field(), e.reason()))?,
        None => generated_id(Collection::AuthKeys)?,
    };
    let secret = new_secret().map_err(|e| {
        tracing::error!(error = %e, "OS random source failed");
        ApiError::internal()
    })?;
    let key_prefix = secret[SECRET_PREFIX.len()..SECRET_PREFIX.len() + 8].to_owned();
    let record = Record::AuthKey(fields.into_key(hash_secret(&secret), key_prefix));
    check(&record, &id)?;
    super::records::check_references(state, &record)?;
    if state
        .state_view
        .record(Collection::AuthKeys, id.as_str())
        .is_some()
    {
        return Err(error(
            StatusCode::CONFLICT,
            format!("auth key `{id}` already exists; use PUT to change it"),
            "already_exists",
        ));
    }
    write(state, id.clone(), record.clone()).await?;
    let mut json = record_json(&id, &record);
    if let Value::Object(map) = &mut json {
        map.insert("secret".to_owned(), Value::String(secret));
    }
    Ok(with_status(StatusCode::CREATED, &json))
}

/// `PUT /admin/api/keys/{id}`: the new fields over `current`, keeping its secret.
pub fn updated(current: &Record, body: &Bytes) -> Result<Record, ApiError> {
    let Record::AuthKey(current) = current else {
        return Err(ApiError::internal());
    };
    let mut object = json_object(body)?;
    // Showing the stored hash and prefix back is fine; changing them is not.
    for field in ["secret_hash", "key_prefix", "secret"] {
        match object.remove(field) {
            None => {}
            Some(Value::String(s))
                if (field == "secret_hash" && s == current.secret_hash)
                    || (field == "key_prefix" && s == current.key_prefix) => {}
            Some(_) => {
                return Err(super::records::field_error(
                    field,
                    "cannot be changed; create a new key to rotate the secret",
                ))
            }
        }
    }
    object.remove("id");
    let fields: KeyFields = from_value(Value::Object(object))?;
    Ok(Record::AuthKey(fields.into_key(
        current.secret_hash.clone(),
        current.key_prefix.clone(),
    )))
}

impl KeyFields {
    /// The key record with these operator-set fields and the given secret hash and
    /// prefix (new on create, kept on update: a secret never changes in place).
    fn into_key(self, secret_hash: String, key_prefix: String) -> AuthKey {
        AuthKey {
            name: self.name,
            secret_hash,
            key_prefix,
            allowed_models: self.allowed_models,
            budget_id: self.budget_id,
            workflow_id: self.workflow_id,
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            expires_at_ms: self.expires_at_ms,
            disabled: self.disabled,
            metadata: self.metadata,
            max_parallel_requests: self.max_parallel_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hash_to_hex() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        let h = hash_secret(&a);
        assert_eq!(h.len(), 64);
        assert!(h
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        // SHA-256("test"), a known vector.
        assert_eq!(
            hash_secret("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
