//! The cache key: a canonical hash of what makes an answer.
//!
//! Two requests get the same key exactly when an upstream would be sent the same
//! thing for them: the kind of call, the model name the client asked for, and the
//! request as admitted (after redaction rewrote it), minus the fields that only
//! describe the caller (`user`, `metadata`, `store`). The request is written as JSON
//! with object keys sorted at every depth, so the order in which a client wrote its
//! fields does not matter, while every value (and `stream`, whose answer has another
//! form) does. With [`Scope::Key`] the caller's key id is part of the hash, so one
//! tenant is never answered from another's request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::settings::Scope;

/// Fields that say who asks, not what: left out of the key.
const CALLER_FIELDS: [&str; 3] = ["user", "metadata", "store"];

/// Bumped when the key's recipe changes, so old entries are never mistaken for new.
const RECIPE: &[u8] = b"aurora-cache-key-v1\0";

/// Which endpoint's answer is cached (a chat answer and a legacy completion of the
/// same prompt differ in shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// `/v1/chat/completions`, and the dialects answered through it.
    Chat,
    /// `/v1/completions` (the legacy body is hashed too).
    Completions,
    /// `/v1/embeddings` (the client's body, after redaction).
    Embeddings,
    /// `/v1/messages`: an Anthropic target answers its native body in Anthropic's
    /// shape, so the native body (and its headers) are hashed too.
    Messages,
}

impl CallKind {
    fn tag(self) -> u8 {
        match self {
            CallKind::Chat => 1,
            CallKind::Completions => 2,
            CallKind::Embeddings => 3,
            CallKind::Messages => 4,
        }
    }
}

/// A SHA-256 over the canonical request (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl CacheKey {
    /// The key of an admitted request. `caller` is the key id (`None`: anonymous),
    /// used with [`Scope::Key`] only. `None` when the request cannot be written as
    /// JSON (a map with non-string keys): such a request does not use the cache,
    /// rather than share one key with every other unwritable request.
    pub fn of(
        scope: Scope,
        caller: Option<&str>,
        kind: CallKind,
        request: &impl serde::Serialize,
        legacy: Option<&Map<String, Value>>,
    ) -> Option<CacheKey> {
        let mut hash = Sha256::new();
        hash.update(RECIPE);
        hash.update([kind.tag()]);
        match (scope, caller) {
            (Scope::Shared, _) => hash.update([0]),
            (Scope::Key, None) => hash.update([1]),
            (Scope::Key, Some(id)) => {
                hash.update([2]);
                hash.update((id.len() as u64).to_le_bytes());
                hash.update(id.as_bytes());
            }
        }
        let mut text = Vec::with_capacity(256);
        let value = serde_json::to_value(request).ok()?;
        write_canonical(&mut text, &strip_caller_fields(value));
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(&text);
        if let Some(legacy) = legacy {
            text.clear();
            write_canonical(
                &mut text,
                &strip_caller_fields(Value::Object(legacy.clone())),
            );
            hash.update(&text);
        }
        Some(CacheKey(hash.finalize().into()))
    }
}

/// `object` without the fields that only describe the caller (`user`, `metadata`,
/// `store`): for a body nested in what is hashed (a passed-through Messages body),
/// whose top level [`CacheKey::of`] does not see.
pub fn without_caller_fields(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(name, _)| !CALLER_FIELDS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn strip_caller_fields(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        for field in CALLER_FIELDS {
            object.remove(field);
        }
    }
    value
}

/// JSON with object keys sorted at every depth (whatever order the map keeps).
fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(out, &Value::String(k.clone()));
                out.push(b':');
                write_canonical(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, v);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut Vec<u8>, value: &Value) {
    // Writing a scalar to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::types::ChatCompletionRequest;

    fn request(json: &str) -> ChatCompletionRequest {
        serde_json::from_str(json).unwrap()
    }

    fn key(json: &str) -> CacheKey {
        CacheKey::of(Scope::Key, Some("k1"), CallKind::Chat, &request(json), None).unwrap()
    }

    #[test]
    fn field_order_and_caller_fields_do_not_change_the_key() {
        let a = key(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"response_format":{"type":"json_object","x":1}}"#,
        );
        let b = key(
            r#"{"response_format":{"x":1,"type":"json_object"},"temperature":0.5,"user":"u-9","metadata":{"a":"b"},"messages":[{"content":"hi","role":"user"}],"model":"m"}"#,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn anything_that_changes_the_answer_changes_the_key() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let others = [
            r#"{"model":"m2","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"m","messages":[{"role":"system","content":"hi"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[]}"#,
        ];
        for other in others {
            assert_ne!(key(base), key(other), "{other}");
        }
        let r = request(base);
        let k = |scope, caller, kind| CacheKey::of(scope, caller, kind, &r, None).unwrap();
        assert_ne!(
            k(Scope::Key, Some("k1"), CallKind::Chat),
            k(Scope::Key, Some("k2"), CallKind::Chat)
        );
        assert_ne!(
            k(Scope::Key, None, CallKind::Chat),
            k(Scope::Shared, None, CallKind::Chat)
        );
        assert_eq!(
            k(Scope::Shared, Some("k1"), CallKind::Chat),
            k(Scope::Shared, Some("k2"), CallKind::Chat)
        );
        assert_ne!(
            k(Scope::Shared, None, CallKind::Chat),
            k(Scope::Shared, None, CallKind::Completions)
        );
    }

    #[test]
    fn a_request_that_cannot_be_written_as_json_has_no_key() {
        let mut unwritable = std::collections::HashMap::new();
        unwritable.insert((1, 2), "a map with tuple keys");
        let k = CacheKey::of(Scope::Shared, None, CallKind::Chat, &unwritable, None);
        assert_eq!(k, None);
    }

    #[test]
    fn the_caller_fields_of_a_nested_body_go_too() {
        let body = serde_json::json!({"model":"m","metadata":{"user_id":"u-1"},"max_tokens":5});
        let kept = without_caller_fields(body.as_object().unwrap());
        assert_eq!(
            Value::Object(kept),
            serde_json::json!({"model":"m","max_tokens":5})
        );
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let mut out = Vec::new();
        write_canonical(
            &mut out,
            &serde_json::json!({"b":[{"z":1,"a":"\"q"}],"a":null}),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":null,"b":[{"a":"\"q","z":1}]}"#
        );
    }
}
