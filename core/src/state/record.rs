//! What the core knows of a record: which collection it is in ([`CollectionId`]), its
//! key ([`RecordId`]), and its value as opaque bytes ([`RecordBytes`]) that a
//! [`Schema`] given to the node can check.
//!
//! The core replicates records without knowing their types: the CRDT store, gossip and
//! anti-entropy need only keys, HLCs and bytes. What a record *is* (the gateway's auth
//! keys, providers, budgets…) lives in the schema crate (`aurora-schema`), which
//! implements [`Schema`]. So a change to a gateway record is not a protocol change; a
//! malformed record from a peer is still refused at the door, because the node asks
//! its schema about every record it receives before merging it.
//!
//! # Encoding
//!
//! A [`CollectionId`] is a postcard varint (what the schema's collection enum index
//! was before the split, so store keys keep their bytes and order). A record value is
//! the schema's own encoding of the record, length-prefixed inside the entry.

use core::fmt;
use core::str::FromStr;
use std::borrow::Borrow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest [`RecordId`], in bytes.
pub const MAX_ID: usize = 128;

/// A collection of records, as the core names it: a small number the schema assigns
/// (and names, [`Schema::collection_name`]). Ordered like the store's keys.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CollectionId(pub u32);

impl fmt::Display for CollectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collection {}", self.0)
    }
}

/// A record value in the schema's encoding, opaque to the core. Encoded as
/// length-prefixed bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RecordBytes(Vec<u8>);

impl RecordBytes {
    /// Wraps bytes the schema encoded.
    pub fn new(bytes: Vec<u8>) -> RecordBytes {
        RecordBytes(bytes)
    }

    /// The schema's encoding of the record.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes the record takes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes at all (no schema encodes a record so).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for RecordBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordBytes(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for RecordBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // postcard: a varint length, then the bytes.
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for RecordBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = RecordBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("record bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RecordBytes, E> {
                Ok(RecordBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<RecordBytes, E> {
                Ok(RecordBytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RecordBytes, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(RecordBytes(v))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// What the core asks of the records it replicates. The node holds one, given at
/// `Node::new`, and asks it about every record a peer sends before merging it, and
/// about the records that own usage counters when it compacts them.
///
/// Implementations must be deterministic (the same answer for the same bytes on
/// every node, every time): replicas that disagree on what is well formed diverge.
pub trait Schema: fmt::Debug + Send + Sync {
    /// Whether `bytes` are a well-formed record of `collection` stored under `id`:
    /// they decode, completely, as a record of that collection, and every rule holds.
    /// The error names the field at fault.
    fn validate(
        &self,
        collection: CollectionId,
        id: &RecordId,
        bytes: &[u8],
    ) -> Result<(), RecordError>;

    /// The stable name of a collection (for messages), `None` for one the schema
    /// does not define.
    fn collection_name(&self, collection: CollectionId) -> Option<&'static str>;

    /// The collection whose records own usage counters (`Key::Usage { budget, .. }`
    /// names a record of it), if any.
    fn usage_owner(&self) -> Option<CollectionId>;

    /// The index of the usage period that contains wall time `wall_ms` for the
    /// owner record `bytes` (of [`Schema::usage_owner`]); `None` when the bytes are
    /// not such a record. Counters of a period before the previous one are dropped.
    fn period_index(&self, bytes: &[u8], wall_ms: u64) -> Option<u64>;
}

// ---------------------------------------------------------------------------------
// Errors and ids
// ---------------------------------------------------------------------------------

/// Why a record (or a record id) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// `field` is a path in the serde shape of the record, e.g. `targets[1].weight`,
    /// `metadata["team"]` or `id` for the record's own key.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Where in the record (a serde path, or `id`).
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl RecordError {
    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            RecordError::Invalid { field, .. } => field,
        }
    }

    /// Why the field was refused.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Invalid { reason, .. } => reason,
        }
    }
}

impl RecordError {
    /// The error for `field`, refused for `reason`.
    pub fn invalid(field: impl Into<String>, reason: &'static str) -> RecordError {
        RecordError::Invalid {
            field: field.into(),
            reason,
        }
    }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> RecordError {
    RecordError::invalid(field, reason)
}

/// The key of a record within its collection: 1 to 128 bytes of
/// `[A-Za-z0-9._:/@-]`, not starting or ending with `/`.
///
/// The alphabet covers model names such as `openai/gpt-4o-mini`,
/// `accounts/fireworks/models/llama-v3` or `claude-sonnet-4@20250514` and is safe in
/// URL paths, SQLite keys, log lines and metric labels without escaping. The slash
/// rule keeps `/admin/api/models/{id}` unambiguous.
///
/// [`RecordId::new`] checks the rules; a decoded id is checked by
/// [`RecordId::validate`] or by the `validate` of the record that holds it, the same
/// "decode, then validate" pass as every other field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(String);

impl RecordId {
    /// Builds an id, refusing one that breaks the rules (the error's field is `id`).
    pub fn new(id: impl Into<String>) -> Result<RecordId, RecordError> {
        let id = RecordId(id.into());
        id.validate()?;
        Ok(id)
    }

    /// Checks the rules on any string, e.g. a model name or an alias, which share
    /// the id namespace. The error is the reason, for the caller to attach a field.
    pub fn check(s: &str) -> Result<(), &'static str> {
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.len() > MAX_ID {
            return Err("at most 128 bytes");
        }
        if !s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'-')
        }) {
            return Err("only letters, digits and . _ : / @ - are allowed");
        }
        if s.starts_with('/') || s.ends_with('/') {
            return Err("must not start or end with '/'");
        }
        Ok(())
    }

    /// Checks a decoded id (the error's field is `id`).
    pub fn validate(&self) -> Result<(), RecordError> {
        RecordId::check(&self.0).map_err(|r| invalid("id", r))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's text, without copying.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RecordId {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordId::new(s)
    }
}

impl TryFrom<String> for RecordId {
    type Error = RecordError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        RecordId::new(s)
    }
}

impl AsRef<str> for RecordId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `RecordId` be searched with a `&str` (a request's model name)
/// without allocating. Sound because the derived `Hash`, `Eq` and `Ord` of this
/// one-field newtype are exactly those of the `String` inside.
impl Borrow<str> for RecordId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_rules() {
        for ok in [
            "a",
            "openai/gpt-4o-mini",
            "accounts/fireworks/models/llama-v3",
            "claude-sonnet-4@20250514",
            "ns:key_1.v2",
            &"x".repeat(128),
        ] {
            assert!(RecordId::new(ok).is_ok(), "{ok:?}");
        }
        for (bad, reason) in [
            ("", "must not be empty"),
            (&"x".repeat(129), "at most 128 bytes"),
            (
                "has space",
                "only letters, digits and . _ : / @ - are allowed",
            ),
            ("é", "only letters, digits and . _ : / @ - are allowed"),
            ("a*", "only letters, digits and . _ : / @ - are allowed"),
            ("/lead", "must not start or end with '/'"),
            ("trail/", "must not start or end with '/'"),
            ("/", "must not start or end with '/'"),
        ] {
            assert_eq!(
                RecordId::new(bad),
                Err(invalid("id", reason)),
                "{bad:?} should be refused"
            );
        }
        let r: RecordId = "a/b".parse().unwrap();
        assert_eq!(r.to_string(), "a/b");
        assert_eq!(
            RecordId::try_from(String::from("a b")).unwrap_err().field(),
            "id"
        );
        // Borrow<str> lets maps be searched by &str.
        let map = std::collections::BTreeMap::from([(RecordId::new("k").unwrap(), 1)]);
        assert_eq!(map.get("k"), Some(&1));
    }

    #[test]
    fn decoded_record_id_is_checked_by_validate() {
        let bad: RecordId =
            postcard::from_bytes(&postcard::to_allocvec("no spaces").unwrap()).unwrap();
        assert_eq!(bad.validate().unwrap_err().field(), "id");
    }

    #[test]
    fn collection_ids_and_record_bytes_encode_as_before() {
        // A varint, as the schema's collection enum index was.
        assert_eq!(postcard::to_allocvec(&CollectionId(7)).unwrap(), [7]);
        assert_eq!(
            postcard::to_allocvec(&CollectionId(300)).unwrap(),
            [0xac, 0x02]
        );
        let bytes = RecordBytes::new(vec![1, 2, 3]);
        let encoded = postcard::to_allocvec(&bytes).unwrap();
        assert_eq!(encoded, [3, 1, 2, 3]);
        assert_eq!(
            postcard::from_bytes::<RecordBytes>(&encoded).unwrap(),
            bytes
        );
        // Human-readable formats read the sequence form.
        let json = serde_json::to_string(&bytes).unwrap();
        assert_eq!(serde_json::from_str::<RecordBytes>(&json).unwrap(), bytes);
    }
}

/// A tiny schema for the core's own tests (and, with the `testing` feature, for
/// harness tests outside it), so they need not know the gateway's: collection 0,
/// `notes`, holds 1 to 64 bytes of UTF-8; collection 1, `budgets`, owns usage
/// counters and holds a period length in ms as 8 little-endian bytes (0: one period
/// forever).
#[cfg(any(test, feature = "testing"))]
pub mod test_schema {
    use super::*;

    /// Collection 0: short UTF-8 notes.
    pub const NOTES: CollectionId = CollectionId(0);
    /// Collection 1: budgets, by period length.
    pub const BUDGETS: CollectionId = CollectionId(1);

    /// The test schema.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct TestSchema;

    /// The test schema as a node takes it.
    pub fn arc() -> std::sync::Arc<dyn Schema> {
        std::sync::Arc::new(TestSchema)
    }

    /// A note's bytes.
    pub fn note(text: &str) -> RecordBytes {
        RecordBytes::new(text.as_bytes().to_vec())
    }

    /// A budget's bytes: periods of `period_ms` (0: never resets).
    pub fn budget(period_ms: u64) -> RecordBytes {
        RecordBytes::new(period_ms.to_le_bytes().to_vec())
    }

    impl Schema for TestSchema {
        fn validate(
            &self,
            collection: CollectionId,
            id: &RecordId,
            bytes: &[u8],
        ) -> Result<(), RecordError> {
            id.validate()?;
            match collection {
                NOTES => match core::str::from_utf8(bytes) {
                    Ok(s) if !s.is_empty() && s.len() <= 64 => Ok(()),
                    _ => Err(invalid("note", "1 to 64 bytes of UTF-8")),
                },
                BUDGETS if bytes.len() == 8 => Ok(()),
                BUDGETS => Err(invalid("period_ms", "8 bytes")),
                _ => Err(invalid("collection", "no such collection")),
            }
        }

        fn collection_name(&self, collection: CollectionId) -> Option<&'static str> {
            match collection {
                NOTES => Some("notes"),
                BUDGETS => Some("budgets"),
                _ => None,
            }
        }

        fn usage_owner(&self) -> Option<CollectionId> {
            Some(BUDGETS)
        }

        fn period_index(&self, bytes: &[u8], wall_ms: u64) -> Option<u64> {
            let period = u64::from_le_bytes(bytes.try_into().ok()?);
            Some(wall_ms.checked_div(period).unwrap_or(0))
        }
    }
}
