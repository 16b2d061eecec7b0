//! The state export document: every replicated collection as the admin API shows it
//! (auth keys with their SHA-256 `secret_hash`, never a secret), in a deterministic
//! order, with a digest; and the diff between two states that an import applies.
//!
//! What holds:
//! * the same records give the same `collections` bytes and the same `digest`, on any
//!   node, from the live admin API or from a `node.db`, now or `--at` a past time: the
//!   collections are sorted by name, records by id, and every record is rendered from
//!   its typed form (so how a file was indented or ordered never matters);
//! * the digest covers the records only, not when or where they were exported, so two
//!   exports of equal states compare equal by digest alone;
//! * usage counters (spend so far) are not in it: they are per-node tallies of the
//!   current period, not control-plane state, and importing them would double-count.

use std::collections::BTreeMap;

use aurora_core::state::store::{Entry, Key, Value};
use aurora_schema::{Collection, Record, RecordId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::admin::records::{parse_record, path_name, record_json};

/// `object` of an export document.
pub const OBJECT: &str = "aurora.state";
/// The document format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Every live record, per collection (indexed by `Collection as usize`), by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records(pub [BTreeMap<RecordId, Record>; 8]);

impl Records {
    /// The live records among `entries` (tombstones and usage counters skipped).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Records {
        let mut out = Records::default();
        for entry in entries {
            if let (Key::Record(c, id), Some(Value::Record(bytes))) = (entry.key, entry.value) {
                // The node merged only records its schema reads (this one).
                if let Ok(r) = aurora_schema::decode(c, bytes.as_slice()) {
                    out.0[r.collection() as usize].insert(id, r);
                }
            }
        }
        out
    }

    /// The records of a live node's snapshot.
    pub fn from_snapshot(snapshot: &aurora_io::StateSnapshot) -> Records {
        let mut out = Records::default();
        for c in Collection::ALL {
            out.0[c as usize] = snapshot
                .records(c)
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect();
        }
        out
    }

    /// The collections as the admin API lists them, by path name, each sorted by id.
    pub fn collections(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        Collection::ALL
            .into_iter()
            .map(|c| {
                let rows = self.0[c as usize]
                    .iter()
                    .map(|(id, r)| record_json(id, r))
                    .collect();
                (path_name(c).to_owned(), rows)
            })
            .collect()
    }

    /// `sha256:` and the hex SHA-256 of the compact JSON of [`Records::collections`].
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.collections()).unwrap_or_default();
        let hash = Sha256::digest(&bytes);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// How many records in all.
    pub fn len(&self) -> usize {
        self.0.iter().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The export document of these records.
    pub fn document(&self, at_ms: Option<u64>, exported_at_ms: u64, source: String) -> Document {
        Document {
            object: OBJECT.to_owned(),
            format: FORMAT,
            source,
            exported_at: super::time::rfc3339(exported_at_ms),
            exported_at_ms,
            at: at_ms.map(super::time::rfc3339),
            at_ms,
            records: self.len(),
            digest: Some(self.digest()),
            collections: self.collections(),
        }
    }

    /// Entries that write these records under `origin`, numbered from 1 at `wall_ms`:
    /// what an import into an empty data directory stores.
    pub fn entries(&self, origin: aurora_core::Origin, wall_ms: u64) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.len());
        for c in Collection::ALL {
            for (id, r) in &self.0[c as usize] {
                let seq = out.len() as u64 + 1;
                out.push(Entry {
                    key: Key::Record(c.id(), id.clone()),
                    value: Some(Value::Record(aurora_schema::encode(r))),
                    hlc: aurora_core::Hlc {
                        wall: wall_ms,
                        logical: u32::try_from(seq).unwrap_or(u32::MAX),
                        origin,
                    },
                    seq,
                });
            }
        }
        out
    }
}

/// The JSON an export writes and an import reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    pub object: String,
    pub format: u32,
    /// Where it came from (`node.db in DIR`, or the node's URL).
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub exported_at: String,
    #[serde(default)]
    pub exported_at_ms: u64,
    /// The point in time asked for (`--at`), or `null` for "now".
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub at_ms: Option<u64>,
    #[serde(default)]
    pub records: usize,
    /// Of the collections; an import checks it (remove it to import an edited file).
    #[serde(default)]
    pub digest: Option<String>,
    pub collections: BTreeMap<String, Vec<serde_json::Value>>,
}

/// Why a document was refused (nothing is imported then).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("not an Aurora state export: {0}")]
    Shape(String),
    #[error("`object` is `{0}`, not `{OBJECT}`: not an Aurora state export")]
    Object(String),
    #[error("format {0} is not the format this build reads ({FORMAT})")]
    Format(u32),
    #[error("unknown collection `{0}`")]
    Collection(String),
    #[error("{collection}[{index}]: {reason}")]
    Record {
        collection: String,
        index: usize,
        reason: String,
    },
    #[error("{collection}: id `{id}` occurs twice")]
    Duplicate { collection: String, id: String },
    #[error(
        "the digest does not match the records: the file says {stated}, its records give \
         {actual}; it was changed after export (to import an edited file on purpose, \
         delete its `digest` field)"
    )]
    Digest { stated: String, actual: String },
}

impl Document {
    /// Parses and checks an export: shape, format, every record validated as the
    /// admin API would, no id twice, and the digest if the file states one.
    pub fn parse(bytes: &[u8]) -> Result<(Document, Records), DocumentError> {
        let doc: Document =
            serde_json::from_slice(bytes).map_err(|e| DocumentError::Shape(e.to_string()))?;
        if doc.object != OBJECT {
            return Err(DocumentError::Object(doc.object));
        }
        if doc.format != FORMAT {
            return Err(DocumentError::Format(doc.format));
        }
        let mut records = Records::default();
        for (name, rows) in &doc.collections {
            let collection = crate::admin::records::collection(name)
                .ok_or_else(|| DocumentError::Collection(name.clone()))?;
            for (index, row) in rows.iter().enumerate() {
                let bad = |reason: String| DocumentError::Record {
                    collection: name.clone(),
                    index,
                    reason,
                };
                let mut object = match row {
                    serde_json::Value::Object(map) => map.clone(),
                    _ => return Err(bad("not an object".into())),
                };
                let id = match object.remove("id") {
                    Some(serde_json::Value::String(s)) => s,
                    _ => return Err(bad("`id` is missing or not a string".into())),
                };
                let id = RecordId::new(id.as_str()).map_err(|e| bad(format!("id: {e}")))?;
                let record = parse_record(collection, serde_json::Value::Object(object))
                    .map_err(|e| bad(format!("id `{id}`: {}", e.message)))?;
                record
                    .validate_with_id(&id)
                    .map_err(|e| bad(format!("id `{id}`: {e}")))?;
                if records.0[collection as usize]
                    .insert(id.clone(), record)
                    .is_some()
                {
                    return Err(DocumentError::Duplicate {
                        collection: name.clone(),
                        id: id.into_string(),
                    });
                }
            }
        }
        if let Some(stated) = &doc.digest {
            let actual = records.digest();
            if *stated != actual {
                return Err(DocumentError::Digest {
                    stated: stated.clone(),
                    actual,
                });
            }
        }
        Ok((doc, records))
    }
}

/// Per collection: ids the import adds, changes and removes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CollectionDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl CollectionDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// What turns `from` into `to`, by collection path name (every collection listed).
pub fn diff(from: &Records, to: &Records) -> BTreeMap<String, CollectionDiff> {
    Collection::ALL
        .into_iter()
        .map(|c| {
            let (a, b) = (&from.0[c as usize], &to.0[c as usize]);
            let mut d = CollectionDiff::default();
            for (id, r) in b {
                match a.get(id) {
                    None => d.added.push(id.as_str().to_owned()),
                    Some(old) if old != r => d.changed.push(id.as_str().to_owned()),
                    Some(_) => {}
                }
            }
            d.removed = a
                .keys()
                .filter(|id| !b.contains_key(*id))
                .map(|id| id.as_str().to_owned())
                .collect();
            (path_name(c).to_owned(), d)
        })
        .collect()
}
