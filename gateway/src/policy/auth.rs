//! Client API keys: reading the presented secret, hashing it, finding the key.
//!
//! The secret comes from `Authorization: Bearer <secret>` (what OpenAI SDKs send) or
//! from `x-api-key: <secret>` (Anthropic-style clients). Only its SHA-256 is
//! replicated (`AuthKey::secret_hash`, lowercase hex), so the gateway hashes the
//! presented secret and looks the digest up in an index `digest → key id` built from
//! the `auth_keys` collection. The index is rebuilt when the collection's source says
//! something changed ([`PolicyData::version`]); a source that cannot tell gets a
//! rebuild on a miss, at most every [`REBUILD_EVERY`], so a flood of wrong keys
//! costs one scan per interval, not one per request.
//!
//! The hash-map probe is on the *digest* of the presented secret: its timing can at
//! most reveal something about digests, which does not help find a secret (that would
//! need a SHA-256 preimage). The final check re-reads the key record and compares its
//! stored digest with the presented one in constant time (`subtle`), so a key that was
//! just deleted, disabled or rotated is never accepted from a stale index.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use aurora_schema::{AuthKey, Collection, Record, RecordId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::data::PolicyData;

/// Shortest interval between two index rebuilds caused by unknown keys, when the data
/// source has no change counter.
pub const REBUILD_EVERY: Duration = Duration::from_millis(100);

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// The secret a request presents, if any: `Authorization: Bearer …` first, then
/// `x-api-key`. Empty values count as absent.
pub fn presented_secret(headers: &http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// SHA-256 of `secret`.
pub fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lowercase hex of a digest, the form stored in `AuthKey::secret_hash`.
pub fn to_hex(digest: &Digest32) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// The digest of a stored lowercase (or upper-case) hex hash; `None` if malformed.
pub fn from_hex(hex: &str) -> Option<Digest32> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The outcome of looking up a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The `auth_keys` collection is empty: the gateway is open (first run).
    NoKeysExist,
    /// Keys exist and the request presented none.
    Missing,
    /// Keys exist and the presented secret matches none of them.
    Unknown,
    /// The key whose stored digest matches the secret.
    Found(RecordId, Box<AuthKey>),
}

#[derive(Debug, Default)]
struct Index {
    /// The source's version this index was built from.
    version: Option<u64>,
    built: Option<Instant>,
    by_digest: HashMap<Digest32, RecordId>,
}

/// The digest → key id index.
#[derive(Debug, Default)]
pub struct KeyIndex {
    inner: RwLock<Index>,
}

impl KeyIndex {
    /// An empty index (built on first use).
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds from `data`; returns the ids now indexed.
    fn rebuild(&self, data: &dyn PolicyData, version: Option<u64>, now: Instant) {
        let mut by_digest = HashMap::new();
        for (id, record) in data.records(Collection::AuthKeys) {
            if let Record::AuthKey(key) = record {
                match from_hex(&key.secret_hash) {
                    Some(d) => {
                        by_digest.insert(d, id);
                    }
                    None => {
                        tracing::warn!(key_id = %id, "auth key with a malformed secret_hash ignored")
                    }
                }
            }
        }
        let mut index = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *index = Index {
            version,
            built: Some(now),
            by_digest,
        };
    }

    /// Whether a key id is in the index (used to drop state of deleted keys).
    pub fn contains_id(&self, id: &str) -> bool {
        self.read().by_digest.values().any(|k| k.as_str() == id)
    }

    /// Number of keys indexed.
    pub fn len(&self) -> usize {
        self.read().by_digest.len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the key for `secret` (see the module docs). `rebuilt` tells the caller
    /// that the index was rebuilt, so per-key state of deleted keys can be dropped.
    pub fn lookup(
        &self,
        data: &dyn PolicyData,
        secret: Option<&str>,
        now: Instant,
    ) -> (Lookup, bool) {
        let version = data.version();
        let presented = secret.map(digest);
        let mut rebuilt = false;
        for _ in 0..2 {
            let stale_or_miss = {
                let index = self.read();
                let stale = match version {
                    Some(v) => index.version != Some(v) || index.built.is_none(),
                    // Without a change counter an empty index is re-checked every time
                    // (scanning an empty collection is free), so the first key created
                    // closes the gateway at once.
                    None => index.built.is_none() || index.by_digest.is_empty(),
                };
                if stale && !rebuilt {
                    true
                } else if index.by_digest.is_empty() {
                    return (Lookup::NoKeysExist, rebuilt);
                } else {
                    let Some(d) = presented else {
                        return (Lookup::Missing, rebuilt);
                    };
                    let found = index.by_digest.get(&d).cloned();
                    let may_retry = version.is_none()
                        && !rebuilt
                        && index
                            .built
                            .is_none_or(|b| now.saturating_duration_since(b) >= REBUILD_EVERY);
                    drop(index);
                    match found.and_then(|id| verify(data, id, &d)) {
                        Some((id, key)) => return (Lookup::Found(id, key), rebuilt),
                        None if may_retry => true,
                        None => return (Lookup::Unknown, rebuilt),
                    }
                }
            };
            if stale_or_miss {
                self.rebuild(data, version, now);
                rebuilt = true;
            }
        }
        // Two rounds always end in a return above; answer "unknown" to be safe.
        (Lookup::Unknown, rebuilt)
    }
}

/// Re-reads key `id` and checks its stored digest against `presented` in constant time.
fn verify(
    data: &dyn PolicyData,
    id: RecordId,
    presented: &Digest32,
) -> Option<(RecordId, Box<AuthKey>)> {
    let Some(Record::AuthKey(key)) = data.record(Collection::AuthKeys, id.as_str()) else {
        return None;
    };
    let stored = from_hex(&key.secret_hash)?;
    bool::from(stored.ct_eq(presented)).then(|| (id, Box::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::data::MemoryData;
    use std::collections::BTreeMap;

    pub(crate) fn key(secret: &str) -> AuthKey {
        AuthKey {
            name: "k".into(),
            secret_hash: to_hex(&digest(secret)),
            key_prefix: "sk-aur".into(),
            allowed_models: vec![],
            budget_id: None,
            workflow_id: None,
            rpm_limit: None,
            tpm_limit: None,
            expires_at_ms: None,
            disabled: false,
            metadata: BTreeMap::new(),
            max_parallel_requests: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn secret_from_bearer_or_x_api_key() {
        assert_eq!(
            presented_secret(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_secret(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            presented_secret(&headers(&[("x-api-key", "xyz")])),
            Some("xyz")
        );
        assert_eq!(
            presented_secret(&headers(&[
                ("authorization", "Basic Zm9v"),
                ("x-api-key", "xyz")
            ])),
            Some("xyz")
        );
        assert_eq!(
            presented_secret(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(presented_secret(&headers(&[])), None);
    }

    #[test]
    fn sha256_hex_round_trip() {
        // SHA-256("test"), the value in aurora-core's record tests.
        let hex = to_hex(&digest("test"));
        assert_eq!(
            hex,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(from_hex(&hex), Some(digest("test")));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn lookup_follows_the_collection() {
        let data = MemoryData::new();
        let index = KeyIndex::new();
        let now = Instant::now();
        assert_eq!(index.lookup(&data, None, now).0, Lookup::NoKeysExist);
        assert_eq!(
            index.lookup(&data, Some("anything"), now).0,
            Lookup::NoKeysExist
        );
        data.put("alice", Record::AuthKey(key("s3cret"))).unwrap();
        assert_eq!(index.lookup(&data, None, now).0, Lookup::Missing);
        assert_eq!(index.lookup(&data, Some("wrong"), now).0, Lookup::Unknown);
        match index.lookup(&data, Some("s3cret"), now).0 {
            Lookup::Found(id, _) => assert_eq!(id.as_str(), "alice"),
            other => panic!("{other:?}"),
        }
        // Rotation: the old secret stops working at once.
        data.put("alice", Record::AuthKey(key("new"))).unwrap();
        assert_eq!(index.lookup(&data, Some("s3cret"), now).0, Lookup::Unknown);
        assert!(matches!(
            index.lookup(&data, Some("new"), now).0,
            Lookup::Found(..)
        ));
        assert!(data.delete(Collection::AuthKeys, "alice"));
        assert_eq!(index.lookup(&data, Some("new"), now).0, Lookup::NoKeysExist);
    }
}
