//! Migration 7: every stored entry from the layout in which the core held the
//! gateway's typed records to the one in which it holds their bytes.
//!
//! Until schema 6 an entry's value embedded the record itself (`Value::Record(Record)`,
//! the record's postcard bytes in place), so finding where a record ends needs the
//! record types: this step decodes each legacy entry with `aurora-schema`'s types and
//! writes it back with the record as length-prefixed bytes (`Value::Record(RecordBytes)`;
//! the record's own bytes are unchanged, so are keys, timestamps and usage counters).
//!
//! It runs inside the migration's transaction (see `migrations::migrate`): one row
//! that does not decode fails the whole migration and leaves the file at version 6,
//! untouched, rather than dropping anything acknowledged. Tables holding entries:
//! `entries` (the live state) and `history` (replaced and removed record versions,
//! migration 6). The history trigger fires on `UPDATE OF entry ON entries`, so a row
//! of `entries` is rewritten by delete and insert, keeping its `since_ms`: the
//! re-encoding is no new version.

use aurora_core::encode_entry;
use aurora_core::state::store::{Entry, Key, Usage, Value};
use aurora_core::Hlc;
use rusqlite::Transaction;
use serde::Deserialize;

/// The schema version this step brings a file to.
pub(super) const VERSION: i64 = 7;

/// A value as schema 6 stored it: the record in place.
#[derive(Deserialize)]
enum LegacyValue {
    Record(aurora_schema::Record),
    Usage(Usage),
}

/// An entry as schema 6 stored it (the field order is the layout).
#[derive(Deserialize)]
struct LegacyEntry {
    key: Key,
    value: Option<LegacyValue>,
    hlc: Hlc,
    seq: u64,
}

/// A stored entry that does not decode in the legacy layout.
#[derive(Debug)]
pub(super) struct Undecodable {
    pub table: &'static str,
}

/// The current encoding of the schema-6 entry `bytes`, or `None` when they are not
/// one (trailing bytes included: a legacy entry is read whole).
pub(super) fn reencode(bytes: &[u8]) -> Option<Vec<u8>> {
    let (legacy, rest) = postcard::take_from_bytes::<LegacyEntry>(bytes).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let value = legacy.value.map(|v| match v {
        LegacyValue::Record(r) => Value::Record(aurora_schema::encode(&r)),
        LegacyValue::Usage(u) => Value::Usage(u),
    });
    Some(encode_entry(&Entry {
        key: legacy.key,
        value,
        hlc: legacy.hlc,
        seq: legacy.seq,
    }))
}

/// Rewrites every row of `entries` and `history` in the current layout.
pub(super) fn migrate(tx: &Transaction<'_>) -> Result<Result<(), Undecodable>, rusqlite::Error> {
    let rows: Vec<(Vec<u8>, Vec<u8>, Option<i64>)> = {
        let mut stmt = tx.prepare("SELECT key, entry, since_ms FROM entries")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (key, entry, since_ms) in rows {
        let Some(entry) = reencode(&entry) else {
            return Ok(Err(Undecodable { table: "entries" }));
        };
        tx.execute("DELETE FROM entries WHERE key = ?1", [&key])?;
        tx.execute(
            "INSERT INTO entries (key, entry, since_ms) VALUES (?1, ?2, ?3)",
            (&key, entry, since_ms),
        )?;
    }
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = tx.prepare("SELECT rowid, entry FROM history")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (rowid, entry) in rows {
        let Some(entry) = reencode(&entry) else {
            return Ok(Err(Undecodable { table: "history" }));
        };
        tx.execute(
            "UPDATE history SET entry = ?1 WHERE rowid = ?2",
            (entry, rowid),
        )?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests;
