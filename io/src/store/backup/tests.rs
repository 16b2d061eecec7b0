use super::*;
use crate::store::Store;
use aurora_core::state::store::{Key, Value};
use aurora_core::{Hlc, Life, NodeId, Origin, PersistBatch, PersistItem};
use aurora_schema::{Collection, Model, Record, RecordId};

fn model_entry(id: &str, upstream: &str, seq: u64) -> Entry {
    let origin = Origin::new(NodeId(9), Life(3));
    Entry {
        key: Key::Record(Collection::Models.id(), RecordId::new(id).expect("id")),
        value: Some(Value::Record(aurora_schema::encode(&Record::Model(
            Model {
                provider_id: RecordId::new("mock").expect("id"),
                upstream_model: upstream.to_owned(),
                aliases: Vec::new(),
                context_window: None,
                enabled: true,
            },
        )))),
        hlc: Hlc {
            wall: 1_000 + seq,
            logical: 0,
            origin,
        },
        seq,
    }
}

fn tombstone(id: &str, seq: u64) -> Entry {
    Entry {
        value: None,
        ..model_entry(id, "x", seq)
    }
}

fn put(e: Entry) -> PersistBatch {
    PersistBatch {
        items: vec![PersistItem::Entry(Box::new(e))],
    }
}

fn upstream_at(conn: &Connection, at: i64) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = history::record_entries(conn, Some(u64::try_from(at).expect("positive")))
        .expect("read")
        .into_iter()
        .map(|e| {
            let id = match &e.key {
                Key::Record(_, id) => id.as_str().to_owned(),
                Key::Usage { .. } => unreachable!("only records"),
            };
            let up = match e.value {
                Some(Value::Record(bytes)) => {
                    match aurora_schema::decode(Collection::Models.id(), bytes.as_slice()) {
                        Ok(Record::Model(m)) => Some(m.upstream_model),
                        _ => None,
                    }
                }
                _ => None,
            };
            (id, up)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_version_is_answered_for_the_interval_it_was_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let mut store = Store::open(&path, NodeId(1)).expect("open");
    let t = wall_ms() + 10_000;
    store
        .apply_all_at(&[put(model_entry("m", "v1", 1))], t)
        .expect("v1");
    store
        .apply_all_at(&[put(model_entry("m", "v2", 2))], t + 100)
        .expect("v2");
    store
        .apply_all_at(&[put(tombstone("m", 3))], t + 200)
        .expect("delete");
    store
        .apply_all_at(
            &[PersistBatch {
                items: vec![PersistItem::Remove(Box::new(tombstone("m", 3).key))],
            }],
            t + 300,
        )
        .expect("collect the tombstone");
    // The same bytes again are no new version.
    store
        .apply_all_at(&[put(model_entry("n", "w", 4))], t + 400)
        .expect("n");
    store
        .apply_all_at(&[put(model_entry("n", "w", 4))], t + 500)
        .expect("n again");
    let conn = &store.conn;
    assert_eq!(upstream_at(conn, t - 1), vec![]);
    assert_eq!(upstream_at(conn, t), vec![("m".into(), Some("v1".into()))]);
    assert_eq!(
        upstream_at(conn, t + 99),
        vec![("m".into(), Some("v1".into()))]
    );
    assert_eq!(
        upstream_at(conn, t + 100),
        vec![("m".into(), Some("v2".into()))]
    );
    assert_eq!(
        upstream_at(conn, t + 250),
        vec![("m".into(), None)],
        "the tombstone"
    );
    assert_eq!(upstream_at(conn, t + 300), vec![]);
    assert_eq!(
        upstream_at(conn, t + 450),
        vec![("n".into(), Some("w".into()))]
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 3, "v1, v2 and the tombstone; not the repeated n");
}

#[test]
fn a_wall_clock_that_steps_back_never_makes_versions_overlap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let t = wall_ms() + 10_000;
    {
        let mut store = Store::open(&path, NodeId(1)).expect("open");
        store
            .apply_all_at(&[put(model_entry("m", "v1", 1))], t)
            .expect("v1");
    }
    // Restarted with the clock 5 s back: the commit is stamped at the last time used.
    let mut store = Store::open(&path, NodeId(1)).expect("reopen");
    store
        .apply_all_at(&[put(model_entry("m", "v2", 2))], t - 5_000)
        .expect("v2");
    assert_eq!(
        upstream_at(&store.conn, t),
        vec![("m".into(), Some("v2".into()))]
    );
    assert_eq!(upstream_at(&store.conn, t - 1), vec![]);
    store
        .apply_all_at(&[put(model_entry("m", "v3", 3))], t - 4_000)
        .expect("v3");
    assert_eq!(
        upstream_at(&store.conn, t),
        vec![("m".into(), Some("v3".into()))],
        "still no overlap within one run"
    );
}

#[test]
fn pruned_history_is_refused_not_guessed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let mut store = Store::open(&path, NodeId(1)).expect("open");
    store.set_history_retention(std::time::Duration::from_millis(1_000));
    let now = wall_ms();
    store
        .apply_all_at(&[put(model_entry("m", "v1", 1))], now)
        .expect("v1");
    let file = StateFile::open(&path).expect("read-only");
    let window = file.window().expect("window");
    assert_eq!(
        window.pruned_ms,
        u64::try_from(now - 1_000).expect("positive")
    );
    let before = window.earliest_ms() - 1;
    let err = file
        .record_entries(Some(before))
        .expect_err("before the window");
    assert!(
        matches!(
            err,
            BackupError::At {
                why: AtError::BeforeHistory { .. } | AtError::Pruned { .. },
                ..
            }
        ),
        "{err}"
    );
    let future = u64::try_from(wall_ms()).expect("positive") + 60_000;
    let err = file.record_entries(Some(future)).expect_err("future");
    assert!(
        matches!(
            err,
            BackupError::At {
                why: AtError::Future { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("in the future"), "{err}");
}

#[test]
fn a_restore_keeps_the_entries_and_drops_the_old_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("src").join(DB_FILE);
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    {
        let mut store = Store::open(&db, NodeId(1)).expect("open");
        store.record_life(Life(77)).expect("life");
        store
            .apply(&PersistBatch {
                items: vec![
                    PersistItem::Entry(Box::new(model_entry("m", "v1", 1))),
                    PersistItem::OwnSeq(41),
                    PersistItem::Binding {
                        node: NodeId(5),
                        life: Some(Life(6)),
                    },
                ],
            })
            .expect("write");
        // Still open (as a running node would be) while the backup is taken.
        let out = dir.path().join("b.db");
        let info = backup(&db, &out, false).expect("backup");
        assert_eq!(info.entries, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner-only: it holds key hashes");
        }
        assert!(!dir.path().join(".b.db.partial").exists());
        let err = backup(&db, &out, false).expect_err("exists");
        assert!(matches!(err, BackupError::Exists { .. }), "{err}");
        backup(&db, &out, true).expect("--force replaces");
    }
    let out = dir.path().join("b.db");
    let target = dir.path().join("restored");
    restore(&out, &target).expect("restore");
    let restored = target.join(DB_FILE);
    assert_eq!(
        all_entries(&restored).expect("entries"),
        vec![model_entry("m", "v1", 1)]
    );
    // Another node id is fine now (the identity went), and it is a new life.
    let store = Store::open(&restored, NodeId(2)).expect("a new member's file");
    assert_eq!(
        store.life().expect("life"),
        None,
        "a new life is made at start"
    );
    let loaded = store.load().expect("load");
    assert_eq!(loaded.own_seq, 0);
    assert!(loaded.bindings.is_empty());
    assert!(loaded.incarnation.is_none());
    drop(store);

    let err = restore(&out, &target).expect_err("not empty");
    assert!(matches!(err, BackupError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("node.db"), "{err}");
}

#[test]
fn damaged_foreign_and_missing_files_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("t");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just text").expect("write");
    let err = restore(&junk, &target).expect_err("junk");
    assert!(matches!(err, BackupError::NotSqlite { .. }), "{err}");
    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
        .expect("foreign");
    let err = restore(&foreign, &target).expect_err("foreign");
    assert!(
        matches!(err, BackupError::Store(StoreError::Foreign { .. })),
        "{err}"
    );
    let err = restore(&dir.path().join("absent.db"), &target).expect_err("absent");
    assert!(matches!(err, BackupError::Missing { .. }), "{err}");
    assert!(!target.exists(), "nothing was created");
}

#[test]
fn replaced_usage_counters_are_not_kept_but_records_are() {
    use aurora_core::state::store::Usage;
    // The trigger of migration 6 tells the two apart by the first byte of the key.
    let record_key = model_entry("m", "v1", 1).key;
    assert_eq!(encode_key(&record_key)[0], 0x00);
    let usage = |seq: u64, requests: u64| Entry {
        key: Key::Usage {
            budget: RecordId::new("b").expect("id"),
            period: 1,
            node: Origin::new(NodeId(9), Life(3)),
        },
        value: Some(Value::Usage(Usage {
            spend_nanos: 0,
            requests,
            tokens: 0,
        })),
        ..model_entry("m", "x", seq)
    };
    assert_ne!(encode_key(&usage(1, 1).key)[0], 0x00);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join(DB_FILE), NodeId(1)).expect("open");
    let t = wall_ms();
    for (i, e) in [
        usage(1, 1),
        usage(2, 5),
        model_entry("m", "v1", 3),
        model_entry("m", "v2", 4),
    ]
    .into_iter()
    .enumerate()
    {
        store.apply_all_at(&[put(e)], t + i as i64).expect("write");
    }
    let kept: Vec<Vec<u8>> = store
        .conn
        .prepare("SELECT key FROM history")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("history");
    assert_eq!(kept, vec![encode_key(&record_key)], "only the record's v1");
}

#[test]
fn times_when_the_node_was_not_running_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let before_stop;
    {
        let mut store = Store::open(&path, NodeId(1)).expect("open");
        store
            .apply_all_at(&[put(model_entry("m", "v1", 1))], wall_ms())
            .expect("v1");
        std::thread::sleep(std::time::Duration::from_millis(20));
        before_stop = u64::try_from(wall_ms()).expect("positive");
    } // a clean stop records its time
    std::thread::sleep(std::time::Duration::from_millis(50));
    let down = u64::try_from(wall_ms()).expect("positive");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let store = Store::open(&path, NodeId(1)).expect("restart");
    let file = StateFile::open(&path).expect("read-only");
    assert_eq!(
        file.record_entries(Some(before_stop))
            .expect("running then")
            .len(),
        1
    );
    let err = file
        .record_entries(Some(down))
        .expect_err("not running then");
    assert!(
        matches!(
            err,
            BackupError::At {
                why: AtError::NotRunning { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("was not running"), "{err}");
    let running = u64::try_from(wall_ms()).expect("positive");
    assert_eq!(
        file.record_entries(Some(running)).expect("running").len(),
        1
    );
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let stopped = u64::try_from(wall_ms()).expect("positive");
    let err = file
        .record_entries(Some(stopped))
        .expect_err("stopped and not started since");
    assert!(
        matches!(
            err,
            BackupError::At {
                why: AtError::NotRunning { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        file.record_entries(Some(running))
            .expect("before the stop")
            .len(),
        1
    );
}

/// Random puts, tombstones and removals of a few keys at times that repeat and step
/// back: at every time, the history answers exactly the state after the last commit
/// stamped at or before it.
#[test]
fn the_history_matches_a_model_of_every_commit() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join(DB_FILE), NodeId(1)).expect("open");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    type State = BTreeMap<String, Option<String>>;
    let base = wall_ms() + 100_000;
    let (mut wall, mut clock) = (base, 0_i64);
    let mut model: State = BTreeMap::new();
    // (commit time, state after it)
    let mut timeline: Vec<(i64, State)> = Vec::new();
    for seq in 1..=300u64 {
        wall += match next(10) {
            0 => -30, // the clock steps back
            1..=3 => 0,
            _ => i64::try_from(next(20)).expect("small"),
        };
        let id = ["a", "b", "c"][usize::try_from(next(3)).expect("small")];
        let item = match next(6) {
            0 => {
                model.insert(id.into(), None);
                PersistItem::Entry(Box::new(tombstone(id, seq)))
            }
            1 => {
                model.remove(id);
                PersistItem::Remove(Box::new(tombstone(id, seq).key))
            }
            _ => {
                let v = format!("v{}", next(4));
                model.insert(id.into(), Some(v.clone()));
                PersistItem::Entry(Box::new(model_entry(id, &v, seq)))
            }
        };
        store
            .apply_all_at(&[PersistBatch { items: vec![item] }], wall)
            .expect("commit");
        clock = clock.max(wall);
        timeline.push((clock, model.clone()));
    }
    let last = timeline.last().expect("commits").0;
    for t in base - 40..=last + 1 {
        let expected = timeline
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let got: State = upstream_at(&store.conn, t).into_iter().collect();
        assert_eq!(got, expected, "at {t} (base {base})");
    }
}
