//! Migration 7 against a file in the schema-6 layout, built by hand from that layout
//! (not by this module's decoder): every record, tombstone, usage counter and history
//! version must read back, and a row that does not decode must leave the file as it
//! was.

use std::collections::BTreeMap;
use std::path::Path;

use aurora_core::state::store::{Entry, Key, Usage, Value};
use aurora_core::{decode_entry, encode_key};
use aurora_core::{Hlc, Life, NodeId, Origin, RecordId};
use aurora_schema::{AuthKey, Budget, BudgetPeriod, Collection, Model, Money, Record, RecordBytes};
use rusqlite::Connection;

use super::super::schema::{APPLICATION_ID, MIGRATIONS};
use super::super::{Store, StoreError};

fn id(s: &str) -> RecordId {
    RecordId::new(s).expect("valid id")
}

fn hlc(wall: u64) -> Hlc {
    Hlc {
        wall,
        logical: 3,
        origin: Origin::new(NodeId(9), Life(4)),
    }
}

fn model(upstream: &str) -> Record {
    Record::Model(Model {
        provider_id: id("mock"),
        upstream_model: upstream.into(),
        aliases: vec!["fast".into()],
        context_window: Some(8_192),
        enabled: true,
    })
}

/// An auth key that uses `max_parallel_requests`: written under the appended
/// variant (index 8), the longest legacy extent to find.
fn auth_key() -> Record {
    Record::AuthKey(AuthKey {
        name: "team a".into(),
        secret_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        key_prefix: "sk-aur-3f9a".into(),
        allowed_models: vec!["chat".into()],
        budget_id: Some(id("team-a")),
        workflow_id: None,
        rpm_limit: Some(60),
        tpm_limit: None,
        expires_at_ms: None,
        disabled: false,
        metadata: BTreeMap::from([("owner".into(), "alice".into())]),
        max_parallel_requests: Some(4),
    })
}

fn budget() -> Record {
    Record::Budget(Budget {
        name: "team a".into(),
        limit: Some(Money::from_nanos(5_000_000_000)),
        max_requests: None,
        period: BudgetPeriod::Monthly,
        on_partition: Default::default(),
    })
}

/// What schema 6 stored for an entry: the key, `Option` tag, `Value` variant, the
/// record's (or counter's) bytes in place, the HLC and the sequence number, each in
/// postcard, concatenated. No length before the record: that is the old layout.
fn legacy_bytes(e: &Entry) -> Vec<u8> {
    let mut out = postcard::to_allocvec(&e.key).expect("key");
    match &e.value {
        None => out.push(0),
        Some(Value::Record(bytes)) => {
            out.extend([1, 0]);
            out.extend_from_slice(bytes.as_slice());
        }
        Some(Value::Usage(u)) => {
            out.extend([1, 1]);
            out.extend(postcard::to_allocvec(u).expect("usage"));
        }
    }
    out.extend(postcard::to_allocvec(&e.hlc).expect("hlc"));
    out.extend(postcard::to_allocvec(&e.seq).expect("seq"));
    out
}

fn record_entry(c: Collection, key: &str, record: Option<&Record>, wall: u64, seq: u64) -> Entry {
    Entry {
        key: Key::Record(c.id(), id(key)),
        value: record.map(|r| Value::Record(aurora_schema::encode(r))),
        hlc: hlc(wall),
        seq,
    }
}

/// Entries of every kind, as this build encodes them.
fn sample() -> Vec<Entry> {
    vec![
        record_entry(Collection::AuthKeys, "key-1", Some(&auth_key()), 1_000, 1),
        record_entry(Collection::Models, "m1", Some(&model("up-v2")), 1_001, 2),
        record_entry(Collection::Models, "gone", None, 1_002, 3),
        record_entry(Collection::Budgets, "team-a", Some(&budget()), 1_003, 4),
        Entry {
            key: Key::Usage {
                budget: id("team-a"),
                period: 671,
                node: Origin::new(NodeId(9), Life(4)),
            },
            value: Some(Value::Usage(Usage {
                spend_nanos: 1_234,
                requests: 5,
                tokens: 678,
            })),
            hlc: hlc(1_004),
            seq: 5,
        },
    ]
}

/// A node file at schema 6 holding `entries` (and, in `history`, the version of
/// `m1` it replaced), every entry in the legacy layout.
fn schema6_file(path: &Path, entries: &[Entry], history: &Entry) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID};
         CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;
         INSERT INTO schema_version (version) VALUES (6);"
    ))
    .expect("version");
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 6) {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("migration {v}: {e}"));
    }
    conn.execute(
        "INSERT INTO identity (id, node_id, incarnation, own_seq, life) VALUES (1, 9, 2, 5, 4)",
        [],
    )
    .expect("identity");
    for e in entries {
        conn.execute(
            "INSERT INTO entries (key, entry, since_ms) VALUES (?1, ?2, 500)",
            (encode_key(&e.key), legacy_bytes(e)),
        )
        .expect("entry");
    }
    conn.execute(
        "INSERT INTO history (key, entry, since_ms, until_ms) VALUES (?1, ?2, 100, 500)",
        (encode_key(&history.key), legacy_bytes(history)),
    )
    .expect("history");
}

#[test]
fn every_legacy_entry_reads_back_after_migration_7() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let entries = sample();
    let replaced = record_entry(Collection::Models, "m1", Some(&model("up-v1")), 900, 1);
    schema6_file(&path, &entries, &replaced);
    // The old layout really differs where a record is (the length prefix), and only there.
    let record = &entries[1];
    assert_ne!(legacy_bytes(record), aurora_core::encode_entry(record));
    assert_eq!(
        legacy_bytes(&entries[4]),
        aurora_core::encode_entry(&entries[4])
    );

    let store = Store::open(&path, NodeId(9))?;
    assert_eq!(store.schema_version()?, super::super::migrations::latest());
    let restored = store.load()?;
    let want: BTreeMap<Key, Entry> = entries.iter().map(|e| (e.key.clone(), e.clone())).collect();
    assert_eq!(
        restored.entries, want,
        "every record, tombstone and counter"
    );
    assert_eq!(restored.own_seq, 5);
    // Each record decodes to what was written, under its collection.
    for e in &entries {
        if let (Key::Record(c, _), Some(Value::Record(b))) = (&e.key, &e.value) {
            aurora_schema::decode(*c, b.as_slice()).expect("a record of its collection");
        }
    }
    // The history version was re-encoded too, and the rewrite made no new version.
    let history: Vec<(Vec<u8>, i64)> = {
        let mut stmt = store
            .conn
            .prepare("SELECT entry, since_ms FROM history")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(history.len(), 1, "re-encoding is no new version");
    assert_eq!(decode_entry(&history[0].0).expect("decodes"), replaced);
    assert_eq!(history[0].1, 100);
    let since: i64 = store
        .conn
        .query_row("SELECT min(since_ms) FROM entries", [], |r| r.get(0))
        .expect("since");
    assert_eq!(since, 500, "since_ms kept");
    drop(store);
    // Opening again runs nothing more.
    let store = Store::open(&path, NodeId(9))?;
    assert_eq!(store.load()?.entries, want);
    Ok(())
}

#[test]
fn a_row_that_does_not_decode_leaves_the_file_at_schema_6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let replaced = record_entry(Collection::Models, "m1", Some(&model("up-v1")), 900, 1);
    schema6_file(&path, &sample(), &replaced);
    let conn = Connection::open(&path).expect("open");
    conn.execute(
        "INSERT INTO entries (key, entry) VALUES (x'0002026d32', x'01000299')",
        [],
    )
    .expect("bad row");
    drop(conn);
    let err = Store::open(&path, NodeId(9)).expect_err("must refuse");
    assert!(
        matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("`entries`") && detail.contains("migration 7")),
        "{err}"
    );
    let conn = Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 6, "the failed migration changed nothing");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 6);
}

#[test]
fn record_bytes_are_the_legacy_records_own() {
    // The new layout is the old one with a length before the record's bytes.
    let e = &sample()[0];
    let legacy = legacy_bytes(e);
    let new = super::reencode(&legacy).expect("decodes");
    let Some(Value::Record(bytes)) = &e.value else {
        unreachable!("a record entry")
    };
    let _: &RecordBytes = bytes;
    assert_eq!(new, aurora_core::encode_entry(e));
    assert!(
        super::reencode(&new[..new.len() - 1]).is_none(),
        "truncated"
    );
}

#[test]
fn a_backup_taken_at_schema_6_restores_with_every_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("before-upgrade.db");
    let entries = sample();
    let replaced = record_entry(Collection::Models, "m1", Some(&model("up-v1")), 900, 1);
    schema6_file(&backup, &entries, &replaced);
    let data_dir = dir.path().join("data");
    let info = super::super::backup::restore(&backup, &data_dir).expect("restores");
    assert_eq!(info.entries, entries.len() as u64);
    let mut restored = super::super::backup::all_entries(&data_dir.join("node.db")).expect("reads");
    restored.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want = entries;
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(restored, want);
}
