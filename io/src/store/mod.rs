//! The node's SQLite file: what the core asked to make durable, read back at start-up.
//!
//! Why SQLite: one file per node, crash-safe transactions, and an inspectable format an
//! operator can open with the `sqlite3` shell. Why these settings:
//!
//! * **WAL journal.** Readers (the online [`backup`], the history queries) never block the driver's
//!   commits, and a commit is one sequential append rather than a rewrite of pages.
//! * **`synchronous=FULL`.** In WAL mode `NORMAL` survives a process crash but may lose
//!   the last commits on power loss. The core's contract is stronger: an incarnation the
//!   node announced must still be on disk after *any* crash (else a restarted node could
//!   reuse it and be ignored by the cluster), and an acknowledged write must never be
//!   lost. So every commit is fsynced; the driver amortises that by committing a whole
//!   burst of batches in one transaction.
//! * **A page cache of up to [`CACHE_KIB`] KiB and a checkpoint every
//!   [`CHECKPOINT_PAGES`] WAL pages.** Replicated records land under random keys, so a
//!   commit of *n* records dirties up to *n* B-tree pages. With SQLite's default 2 MB
//!   cache a large commit spilled pages to the WAL mid-transaction and re-read them, and
//!   the default checkpoint (every 1,000 pages) copied the same hot pages back to the
//!   main file again and again. `cargo bench -p aurora-io --bench node -- persist`
//!   measures the gain (docs/benchmarks.md has the figures before and after). The cost
//!   is memory that grows with use, up to 64 MiB (the whole file of a node holding
//!   ~200,000 records), and a WAL of up to ~40 MiB before it is folded back (truncated
//!   to [`WAL_LIMIT_BYTES`] afterwards).
//! * **`application_id`.** A magic number in the SQLite header, so pointing the node at
//!   some other application's database is a start-up error ([`StoreError::Foreign`])
//!   instead of Aurora quietly creating its tables beside someone else's.
//! * **Header check before opening.** SQLite happily "opens" any file and fails only on
//!   the first read; checking the 16-byte header first turns a non-SQLite file into a
//!   clear [`StoreError::NotSqlite`]. A damaged SQLite file fails `quick_check` and is
//!   reported as [`StoreError::Corrupt`]. Neither case is ever reset silently.
//!
//! [`Store::apply`] commits one [`PersistBatch`] in one transaction; [`Store::apply_all`]
//! commits several. Each `PersistItem` kind is matched exhaustively, so when the core adds
//! a kind this crate stops compiling until the new kind has a table and a migration.

pub mod backup;
pub mod history;
mod migrations;
mod reencode;
mod schema;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use aurora_core::state::store::{Entry, Key};
use aurora_core::{decode_entry, encode_entry, encode_key};
use aurora_core::{Incarnation, Life, NodeId, PersistBatch, PersistItem, Restored};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

pub use schema::APPLICATION_ID;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// Most page-cache memory per connection, in KiB (`PRAGMA cache_size` takes it negated).
pub const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages (4 KiB each) written before SQLite folds them back into the main file.
pub const CHECKPOINT_PAGES: i64 = 10_000;
/// Size the WAL file is truncated to after a checkpoint that emptied it.
pub const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not an SQLite database (bad header); refusing to overwrite it")]
    NotSqlite { path: PathBuf },
    #[error("{path}: an SQLite database of another application (application_id {found:#x}, expected {expected:#x})")]
    Foreign {
        path: PathBuf,
        found: i32,
        expected: i32,
    },
    #[error("{path}: database is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: schema version {found} is newer than this build supports ({supported}); upgrade Aurora")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "{path}: schema version {found} was written by an Aurora build from before storage \
         lives, whose entries this build cannot read; the file is left untouched: start this \
         node on an empty data directory and let it catch up from its peers (docs/operations.md)"
    )]
    BeforeLives { path: PathBuf, found: i64 },
    #[error("{path}: the file belongs to node {stored}, but this node is {configured}")]
    WrongNode {
        path: PathBuf,
        stored: NodeId,
        configured: NodeId,
    },
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: SQLite error: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// How long replaced record versions are kept until [`Store::set_history_retention`]
/// says otherwise (`launch` sets the configured tombstone TTL, one day by default).
pub const DEFAULT_HISTORY_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// An open node database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    node: NodeId,
    /// The latest commit time used ([`history`]); never goes back.
    history_clock: i64,
    /// How long replaced versions are kept ([`Store::set_history_retention`]).
    history_retention_ms: i64,
    /// When (store clock) the history was last pruned.
    last_prune: i64,
}

impl Store {
    /// Opens (creating if absent) the database at `path` for node `node`, migrating it
    /// to the current schema. A file that is not Aurora's, or that is another node's, is
    /// an error: nothing is ever reset.
    pub fn open(path: impl AsRef<Path>, node: NodeId) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        check_header(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| sqlite(&path, e))?;
        let mut store = Store {
            conn,
            path,
            node,
            history_clock: 0,
            history_retention_ms: DEFAULT_HISTORY_RETENTION_MS,
            last_prune: 0,
        };
        store.check_integrity()?;
        store.check_application_id()?;
        store.configure()?;
        migrations::migrate(&mut store.conn).map_err(|e| e.at(&store.path))?;
        store.bind_node()?;
        store.history_clock = history::load_clock(&store.conn).map_err(|e| store.err(e))?;
        history::record_gap(&store.conn, store.history_clock, wall_ms())
            .map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// Keeps replaced record versions for `retention` (the tombstone TTL: the window
    /// in which `state export --at` answers exactly).
    pub fn set_history_retention(&mut self, retention: std::time::Duration) {
        self.history_retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    }

    /// The storage life this file was written under, if one was recorded
    /// ([`Store::record_life`]); `None` for a new file. The life is the node key's
    /// ([`crate::NodeKey::life`]): the key and this file are one storage life, and
    /// `launch` refuses to pair a file with a key of another life.
    pub fn life(&self) -> Result<Option<Life>, StoreError> {
        let stored: Option<i64> = self
            .conn
            .query_row("SELECT life FROM identity WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        Ok(stored.map(|life| Life(from_sql_u64(life))))
    }

    /// Records the storage life of a new file. Called once, before the node writes
    /// anything under that life.
    pub fn record_life(&mut self, life: Life) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE identity SET life = ?1 WHERE id = 1",
                [to_sql_u64(life.0)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the core needs back at start-up.
    ///
    /// Start-up time grows with the number of records, so this is one pass: the
    /// identity row in one query, then every entry decoded straight from SQLite's buffer
    /// (no copy per row), and the map built in bulk from the list.
    pub fn load(&self) -> Result<Restored, StoreError> {
        let identity = self
            .conn
            .query_row(
                "SELECT incarnation, own_seq, epoch, roster FROM identity WHERE id = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, Option<i64>>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let (incarnation, own_seq, epoch, roster) = identity.unwrap_or((None, 0, 0, None));
        let roster = roster
            .map(|bytes| {
                aurora_core::decode_roster(&bytes).map_err(|_| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: "the failover roster in table `identity` does not decode".into(),
                })
            })
            .transpose()?;
        let bindings = self.load_bindings()?;
        let (quota_fence, quota) = self.load_quota()?;
        let entries = self.load_entries()?;
        // The scan filled the page cache with the whole file; hand that memory back for
        // the maps built from it next. Writes bring back the pages they touch.
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .map_err(|e| self.err(e))?;
        Ok(Restored {
            incarnation: incarnation.map(|i| Incarnation(from_sql_u64(i))),
            entries,
            own_seq: from_sql_u64(own_seq),
            epoch: (epoch > 0).then(|| aurora_core::Epoch(from_sql_u64(epoch))),
            roster,
            bindings,
            quota_fence,
            quota,
        })
    }

    /// The quota keeper's fence and ledger. A row that does not decode is
    /// [`StoreError::Corrupt`].
    fn load_quota(&self) -> Result<(aurora_core::Epoch, aurora_core::quota::Ledger), StoreError> {
        let fence: i64 = self
            .conn
            .query_row("SELECT quota_fence FROM identity WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or(0);
        let mut stmt = self
            .conn
            .prepare("SELECT entry FROM quota_ledger")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .map_err(|e| self.err(e))?;
        let mut ledger = aurora_core::quota::Ledger::default();
        for row in rows {
            let bytes = row.map_err(|e| self.err(e))?;
            let entry =
                aurora_core::decode_quota_entry(&bytes).map_err(|_| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: "a row of table `quota_ledger` does not decode".into(),
                })?;
            ledger.merge(entry);
        }
        Ok((aurora_core::Epoch(from_sql_u64(fence)), ledger))
    }

    /// The node id -> storage life bindings.
    fn load_bindings(&self) -> Result<BTreeMap<NodeId, Life>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT node_id, life FROM bindings")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (node, life) = row.map_err(|e| self.err(e))?;
            out.insert(NodeId(from_sql_u64(node)), Life(from_sql_u64(life)));
        }
        Ok(out)
    }

    /// Every stored entry by key. A row that does not decode is [`StoreError::Corrupt`].
    fn load_entries(&self) -> Result<BTreeMap<Key, Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT entry FROM entries")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let bytes = row
                .get_ref(0)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(|e| self.err(e))?;
            let entry = decode_entry(bytes).map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                detail: "an entry in table `entries` does not decode".into(),
            })?;
            entries.push((entry.key.clone(), entry));
        }
        // Sorts once (rows already come in nearly that order) and builds the tree
        // bottom-up: cheaper than one insert per row.
        Ok(entries.into_iter().collect())
    }

    /// Commits one batch in one transaction.
    pub fn apply(&mut self, batch: &PersistBatch) -> Result<(), StoreError> {
        self.apply_all(std::slice::from_ref(batch))
    }

    /// Commits several batches in one transaction (one fsync), in order. Either all of
    /// them are durable afterwards or none is.
    pub fn apply_all(&mut self, batches: &[PersistBatch]) -> Result<(), StoreError> {
        self.apply_all_at(batches, wall_ms())
    }

    /// [`Store::apply_all`] with the wall clock given (ms since the Unix epoch): the
    /// commit time recorded in the history is the later of it and the last one used.
    pub fn apply_all_at(
        &mut self,
        batches: &[PersistBatch],
        wall_ms: i64,
    ) -> Result<(), StoreError> {
        if batches.iter().all(|b| b.items.is_empty()) {
            return Ok(());
        }
        let now = history::next_clock(self.history_clock, wall_ms);
        let prune = now.saturating_sub(self.last_prune) >= history::PRUNE_EVERY_MS;
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sqlite(&path, e))?;
        for batch in batches {
            for item in &batch.items {
                apply_item(&tx, item, now).map_err(|e| sqlite(&path, e))?;
            }
        }
        if prune {
            let cutoff = now.saturating_sub(self.history_retention_ms);
            history::prune(&tx, cutoff, now).map_err(|e| sqlite(&path, e))?;
        }
        tx.commit().map_err(|e| sqlite(&path, e))?;
        self.history_clock = now;
        if prune {
            self.last_prune = now;
        }
        Ok(())
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::current_version(&self.conn).map_err(|e| self.err(e))
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite(&self.path, e)
    }

    /// `quick_check` reads every page's structure (not every index entry), so a file
    /// damaged by a bad disk or a stray write is refused at start-up, not found
    /// half-way through serving.
    fn check_integrity(&self) -> Result<(), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if result != "ok" {
            return Err(corrupt(result));
        }
        Ok(())
    }

    /// A fresh file has id 0 and no tables; anything else with a foreign id, or with
    /// id 0 but tables in it, belongs to someone else.
    fn check_application_id(&self) -> Result<(), StoreError> {
        let found: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |row| row.get(0))
            .map_err(|e| self.err(e))?;
        if found == APPLICATION_ID {
            return Ok(());
        }
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(|e| self.err(e))?;
        if found != 0 || tables != 0 {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                found,
                expected: APPLICATION_ID,
            });
        }
        Ok(())
    }

    fn configure(&self) -> Result<(), StoreError> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("cannot switch to WAL journal (got {mode})"),
            });
        }
        self.conn
            .execute_batch(&format!(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA cache_size = -{CACHE_KIB}; PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};
                 PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
            ))
            .map_err(|e| self.err(e))
    }

    /// Records which node owns the file on first use and refuses another node's file
    /// later: restoring node A's incarnation into node B would break both.
    fn bind_node(&mut self) -> Result<(), StoreError> {
        let stored: Option<i64> = self
            .conn
            .query_row("SELECT node_id FROM identity WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        match stored {
            Some(id) if from_sql_u64(id) != self.node.0 => Err(StoreError::WrongNode {
                path: self.path.clone(),
                stored: NodeId(from_sql_u64(id)),
                configured: self.node,
            }),
            Some(_) => Ok(()),
            None => self
                .conn
                .execute(
                    "INSERT INTO identity (id, node_id, incarnation) VALUES (1, ?1, NULL)",
                    [to_sql_u64(self.node.0)],
                )
                .map(drop)
                .map_err(|e| self.err(e)),
        }
    }
}

impl Drop for Store {
    /// A clean stop: the time is recorded, so a point-in-time export knows the node's
    /// copy was current until now (after a crash it is known only until the last
    /// commit). A failure here only makes that window more cautious.
    fn drop(&mut self) {
        if let Err(error) = history::record_stop(&self.conn, wall_ms()) {
            tracing::warn!(path = %self.path.display(), %error, "could not record the stop time in the history");
        }
    }
}

/// Writes one item inside the caller's transaction. New `PersistItem` kinds get an arm
/// here (and a table in a new migration).
fn apply_item(tx: &Transaction<'_>, item: &PersistItem, now: i64) -> rusqlite::Result<()> {
    match item {
        PersistItem::Incarnation(i) => {
            tx.prepare_cached("UPDATE identity SET incarnation = ?1 WHERE id = 1")?
                .execute([to_sql_u64(i.0)])?;
        }
        PersistItem::Entry(e) => {
            // An upsert, not `INSERT OR REPLACE`: an update fires the trigger that
            // keeps the replaced version (migration 6), and unchanged bytes keep
            // their `since_ms` (they are no new version).
            tx.prepare_cached(
                "INSERT INTO entries (key, entry, since_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET entry = excluded.entry, since_ms = excluded.since_ms
                 WHERE entries.entry != excluded.entry",
            )?
            .execute((encode_key(&e.key), encode_entry(e), now))?;
        }
        PersistItem::Epoch(epoch) => {
            tx.prepare_cached("UPDATE identity SET epoch = max(epoch, ?1) WHERE id = 1")?
                .execute([to_sql_u64(epoch.0)])?;
        }
        PersistItem::Remove(key) => {
            history::remove(tx, key, now)?;
            tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?
                .execute([encode_key(key)])?;
        }
        PersistItem::Roster(state) => {
            tx.prepare_cached("UPDATE identity SET roster = ?1 WHERE id = 1")?
                .execute([aurora_core::encode_roster(state)])?;
        }
        PersistItem::Binding { node, life } => match life {
            Some(life) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO bindings (node_id, life) VALUES (?1, ?2)",
                )?
                .execute([to_sql_u64(node.0), to_sql_u64(life.0)])?;
            }
            None => {
                tx.prepare_cached("DELETE FROM bindings WHERE node_id = ?1")?
                    .execute([to_sql_u64(node.0)])?;
            }
        },
        PersistItem::QuotaFence(epoch) => {
            // Only grows; compared in Rust like `own_seq` (raw u64 bits).
            let current: i64 =
                tx.query_row("SELECT quota_fence FROM identity WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            if epoch.0 > from_sql_u64(current) {
                tx.prepare_cached("UPDATE identity SET quota_fence = ?1 WHERE id = 1")?
                    .execute([to_sql_u64(epoch.0)])?;
            }
        }
        PersistItem::QuotaEntry(entry) => {
            // The core sends a whole slot that only grew: it replaces the row.
            tx.prepare_cached("INSERT OR REPLACE INTO quota_ledger (key, entry) VALUES (?1, ?2)")?
                .execute((
                    aurora_core::encode_quota_key(entry.key, entry.holder),
                    aurora_core::encode_quota_entry(entry),
                ))?;
        }
        PersistItem::QuotaForget { key, holder } => {
            tx.prepare_cached("DELETE FROM quota_ledger WHERE key = ?1")?
                .execute([aurora_core::encode_quota_key(*key, *holder)])?;
        }
        PersistItem::OwnSeq(seq) => {
            // Stored as the raw bits of a u64; compare in Rust, not SQL, to keep
            // values above i64::MAX ordered correctly.
            let current: i64 =
                tx.query_row("SELECT own_seq FROM identity WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            if *seq > from_sql_u64(current) {
                tx.prepare_cached("UPDATE identity SET own_seq = ?1 WHERE id = 1")?
                    .execute([to_sql_u64(*seq)])?;
            }
        }
    }
    Ok(())
}

/// Reads the first bytes of an existing, non-empty file and refuses anything that is
/// not SQLite. A missing or empty file is fine: SQLite creates a database there.
fn check_header(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(io)?;
    if header.is_empty() || header == SQLITE_HEADER {
        Ok(())
    } else {
        Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        })
    }
}

fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// [`crate::clock::unix_ms`] as SQLite stores it.
pub fn wall_ms() -> i64 {
    i64::try_from(crate::clock::unix_ms()).unwrap_or(i64::MAX)
}

/// SQLite integers are signed 64-bit; ids and counters are `u64`. They are stored
/// bit-for-bit (two's complement), which round-trips exactly and keeps equality.
fn to_sql_u64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn from_sql_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(test)]
mod tests;
