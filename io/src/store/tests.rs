use super::*;

fn node() -> NodeId {
    NodeId::from_name("n1")
}

fn batch(i: u64) -> PersistBatch {
    PersistBatch {
        items: vec![PersistItem::Incarnation(Incarnation(i))],
    }
}

#[test]
fn fresh_file_loads_empty() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|source| StoreError::Io {
        path: "tempdir".into(),
        source,
    })?;
    let store = Store::open(dir.path().join("node.db"), node())?;
    assert_eq!(store.load()?, Restored::default());
    assert_eq!(store.schema_version()?, migrations::latest());
    Ok(())
}

#[test]
fn round_trip_and_restart_keeps_incarnation() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&batch(3))?;
        store.apply_all(&[batch(4), batch(7)])?;
        assert_eq!(store.load()?.incarnation, Some(Incarnation(7)));
    }
    let store = Store::open(&path, node())?;
    assert_eq!(store.load()?.incarnation, Some(Incarnation(7)));
    // The core restarts above it.
    let mut restored = store.load()?;
    restored.apply(&batch(8));
    assert_eq!(restored.incarnation, Some(Incarnation(8)));
    Ok(())
}

#[test]
fn u64_values_round_trip_bit_for_bit() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let big = NodeId(u64::MAX - 5);
    let mut store = Store::open(&path, big)?;
    store.apply(&batch(u64::MAX))?;
    drop(store);
    let store = Store::open(&path, big)?;
    assert_eq!(store.load()?.incarnation, Some(Incarnation(u64::MAX)));
    Ok(())
}

#[test]
fn empty_batches_are_no_ops() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join("node.db"), node())?;
    store.apply_all(&[])?;
    store.apply(&PersistBatch::default())?;
    assert_eq!(store.load()?.incarnation, None);
    Ok(())
}

#[test]
fn wal_mode_and_full_sync_are_set() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("node.db"), node())?;
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| store.err(e))?;
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(|e| store.err(e))?;
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "FULL");
    Ok(())
}

#[test]
fn cache_and_checkpoint_settings_are_applied() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("node.db"), node())?;
    let pragma = |name: &str| -> Result<i64, StoreError> {
        store
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| store.err(e))
    };
    assert_eq!(pragma("cache_size")?, -CACHE_KIB);
    assert_eq!(pragma("wal_autocheckpoint")?, CHECKPOINT_PAGES);
    assert_eq!(pragma("journal_size_limit")?, WAL_LIMIT_BYTES);
    Ok(())
}

#[test]
fn non_sqlite_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let garbage = b"this is definitely not a database, just some text\n".repeat(100);
    std::fs::write(&path, &garbage).expect("write");
    let err = Store::open(&path, node()).expect_err("must refuse");
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        garbage,
        "file untouched"
    );
}

#[test]
fn corrupt_sqlite_file_is_refused() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&batch(1))?;
        // Fold the WAL into the main file so the damage below hits real pages.
        store
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .map_err(|e| store.err(e))?;
    }
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 4096);
    // Keep the 100-byte header, trash the rest of page 1 and everything after.
    for b in bytes.iter_mut().skip(100) {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = Store::open(&path, node()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::Corrupt { .. } | StoreError::Sqlite { .. }),
        "{err}"
    );
    assert!(!matches!(err, StoreError::NotSqlite { .. }));
    Ok(())
}

#[test]
fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Another application's file, with its own application id.
    let other = dir.path().join("other.db");
    {
        let conn = Connection::open(&other).expect("open");
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
            .expect("create");
    }
    let err = Store::open(&other, node()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::Foreign { found: 1234, .. }),
        "{err}"
    );
    // A plain SQLite file with tables but no application id.
    let plain = dir.path().join("plain.db");
    {
        let conn = Connection::open(&plain).expect("open");
        conn.execute_batch("CREATE TABLE users (name TEXT);")
            .expect("create");
    }
    let err = Store::open(&plain, node()).expect_err("must refuse");
    assert!(matches!(err, StoreError::Foreign { found: 0, .. }), "{err}");
}

#[test]
fn another_nodes_file_is_refused() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    drop(Store::open(&path, node())?);
    let err = Store::open(&path, NodeId::from_name("n2")).expect_err("must refuse");
    assert!(matches!(err, StoreError::WrongNode { .. }), "{err}");
    Ok(())
}

#[test]
fn migrations_are_idempotent() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let mut store = Store::open(&path, node())?;
    store.apply(&batch(2))?;
    migrations::migrate(&mut store.conn).map_err(|_| store.err(rusqlite::Error::InvalidQuery))?;
    migrations::migrate(&mut store.conn).map_err(|_| store.err(rusqlite::Error::InvalidQuery))?;
    assert_eq!(store.schema_version()?, migrations::latest());
    let rows: i64 = store
        .conn
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .map_err(|e| store.err(e))?;
    assert_eq!(rows, 1);
    drop(store);
    let store = Store::open(&path, node())?;
    assert_eq!(store.load()?.incarnation, Some(Incarnation(2)));
    Ok(())
}

#[test]
fn newer_schema_is_refused() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let store = Store::open(&path, node())?;
        store
            .conn
            .execute("UPDATE schema_version SET version = 999", [])
            .map_err(|e| store.err(e))?;
    }
    let err = Store::open(&path, node()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_file_from_before_storage_lives_is_refused_untouched() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let store = Store::open(&path, node())?;
        store
            .conn
            .execute("UPDATE schema_version SET version = 4", [])
            .map_err(|e| store.err(e))?;
    }
    let err = Store::open(&path, node()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::BeforeLives { found: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("empty data directory"), "{err}");
    // Refused before any migration ran: the file still says version 4.
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 4);
    Ok(())
}

/// Not a benchmark harness, just a guard that batching works: many batches in one
/// transaction must cost about one commit. Prints the rate for the report.
#[test]
fn batched_apply_is_one_transaction() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join("node.db"), node())?;
    let batches: Vec<PersistBatch> = (1..=10_000).map(batch).collect();
    let start = std::time::Instant::now();
    store.apply_all(&batches)?;
    let elapsed = start.elapsed();
    eprintln!(
        "applied {} items in one transaction in {:?} ({:.0} items/s)",
        batches.len(),
        elapsed,
        batches.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    assert_eq!(store.load()?.incarnation, Some(Incarnation(10_000)));
    Ok(())
}

fn usage_entry(node: u64, seq: u64, requests: u64) -> aurora_core::state::store::Entry {
    use aurora_core::state::store::{Entry, Key, Usage, Value};
    use aurora_schema::RecordId;
    Entry {
        key: Key::Usage {
            budget: RecordId::new("team-a").expect("valid id"),
            period: 7,
            node: aurora_core::Origin::new(NodeId(node), aurora_core::Life(1)),
        },
        value: Some(Value::Usage(Usage {
            spend_nanos: 10 * requests,
            requests,
            tokens: 0,
        })),
        hlc: aurora_core::Hlc {
            wall: 1_000 + seq,
            logical: 0,
            origin: aurora_core::Origin::new(NodeId(node), aurora_core::Life(1)),
        },
        seq,
    }
}

#[test]
fn replicated_entries_and_own_seq_survive_a_restart() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let first = usage_entry(1, 1, 5);
    let newer = usage_entry(1, 2, 9);
    let other = usage_entry(2, 1, 3);
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::Entry(Box::new(first)),
                PersistItem::OwnSeq(1),
                PersistItem::Entry(Box::new(other.clone())),
            ],
        })?;
        // A newer write to the same key replaces the row; own_seq never goes back.
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::Entry(Box::new(newer.clone())),
                PersistItem::OwnSeq(2),
                PersistItem::OwnSeq(1),
            ],
        })?;
    }
    let restored = Store::open(&path, node())?.load()?;
    assert_eq!(restored.own_seq, 2);
    assert_eq!(restored.entries.len(), 2);
    assert_eq!(restored.entries.get(&newer.key), Some(&newer));
    assert_eq!(restored.entries.get(&other.key), Some(&other));
    Ok(())
}

#[test]
fn an_undecodable_entry_is_a_corrupt_file_not_a_reset() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let store = Store::open(&path, node())?;
        store
            .conn
            .execute(
                "INSERT INTO entries (key, entry) VALUES (x'01', x'ffffffff')",
                [],
            )
            .map_err(|e| store.err(e))?;
    }
    let store = Store::open(&path, node())?;
    assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
    Ok(())
}

#[test]
fn failover_epoch_and_roster_survive_a_restart() -> Result<(), StoreError> {
    use aurora_core::{Epoch, Roster, RosterState, RosterVersion};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let state = RosterState {
        roster: Some(Roster::new(
            RosterVersion {
                epoch: Epoch(4),
                seq: 2,
            },
            [NodeId(1), NodeId(2), NodeId(3)],
        )),
        bootstrapped: true,
    };
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::Epoch(Epoch(5)),
                PersistItem::Roster(Box::new(state.clone())),
            ],
        })?;
    }
    let restored = Store::open(&path, node())?.load()?;
    assert_eq!(restored.epoch, Some(Epoch(5)));
    assert_eq!(restored.roster, Some(state));
    Ok(())
}

#[test]
fn storage_life_is_recorded_once_per_file_and_bindings_persist() -> Result<(), StoreError> {
    use aurora_core::Life;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    {
        let mut store = Store::open(&path, node())?;
        assert_eq!(store.life()?, None, "a new file has no life yet");
        store.record_life(Life(11))?;
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::Binding {
                    node: NodeId(5),
                    life: Some(Life(50)),
                },
                PersistItem::Binding {
                    node: NodeId(6),
                    life: Some(Life(60)),
                },
                PersistItem::Binding {
                    node: NodeId(6),
                    life: None,
                },
            ],
        })?;
    }
    let store = Store::open(&path, node())?;
    // A restart reads back the life it recorded; only a new file (a lost disk) has none.
    assert_eq!(store.life()?, Some(Life(11)));
    let restored = store.load()?;
    assert_eq!(
        restored.bindings.into_iter().collect::<Vec<_>>(),
        vec![(NodeId(5), Life(50))]
    );
    let fresh = dir.path().join("other.db");
    assert_eq!(Store::open(&fresh, node())?.life()?, None);
    Ok(())
}

#[test]
fn the_quota_keepers_fence_and_ledger_survive_a_restart() -> Result<(), StoreError> {
    use aurora_core::quota::{LedgerEntry, QuotaKey, Session, Slot};
    use aurora_core::Epoch;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let entry = |allowance, released| LedgerEntry {
        key: QuotaKey {
            quota: 3,
            window: 9,
        },
        holder: Session {
            node: NodeId(2),
            session: 4,
        },
        slot: Slot {
            allowance,
            released,
        },
    };
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::QuotaFence(Epoch(6)),
                PersistItem::QuotaEntry(entry(8, 0)),
                PersistItem::QuotaEntry(entry(12, 3)),
                // A fence never goes back.
                PersistItem::QuotaFence(Epoch(2)),
            ],
        })?;
    }
    let restored = Store::open(&path, node())?.load()?;
    assert_eq!(restored.quota_fence, Epoch(6));
    assert_eq!(
        restored.quota.entries().collect::<Vec<_>>(),
        vec![entry(12, 3)]
    );
    // A forgotten entry is deleted from disk, and the others stay.
    let other = LedgerEntry {
        key: QuotaKey {
            quota: 3,
            window: 10,
        },
        ..entry(1, 0)
    };
    {
        let mut store = Store::open(&path, node())?;
        store.apply(&PersistBatch {
            items: vec![
                PersistItem::QuotaEntry(other),
                PersistItem::QuotaForget {
                    key: entry(0, 0).key,
                    holder: entry(0, 0).holder,
                },
            ],
        })?;
    }
    let restored = Store::open(&path, node())?.load()?;
    assert_eq!(restored.quota.entries().collect::<Vec<_>>(), vec![other]);
    Ok(())
}
