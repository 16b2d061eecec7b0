//! Online backup, verified restore, seeding a data directory, and reading a node file
//! while its node runs: what `aurora backup`, `aurora restore` and `aurora state
//! export/import --data-dir` do to `node.db`.
//!
//! Why these shapes:
//!
//! * **Backup is `VACUUM INTO` on a read-only connection.** In WAL mode a reader sees
//!   one committed snapshot and never blocks the node's commits, so the copy is
//!   consistent while the node runs and writes; it is written to a temporary name,
//!   checked, fsynced and only then linked to its final name (never a half file under
//!   the name an operator will restore from). An existing file is kept unless asked.
//! * **A restore is a new storage life, always.** The backup holds the old life's
//!   identity: node id, incarnation, the numbers it gave its own writes, epoch, roster
//!   and id -> life bindings. Reusing them while the original still runs, or after it
//!   wrote more than the backup holds, would let two writers number writes alike in one
//!   sequence space: peers would take one for the other and drop real writes for good
//!   (docs/security.md, storage lives). So a restore keeps only the replicated entries
//!   (under the origins that wrote them) and drops the identity row, the bindings and
//!   the history; the first start binds the node id it is given, makes a new
//!   `node.key` and so a new life, and catches up from its peers by anti-entropy like
//!   a member whose disk was replaced. There is no "same identity" restore: even when
//!   the original is gone for good, the backup cannot know the numbers that life used
//!   after it was taken.
//! * **Only into an empty (or absent) directory.** A non-empty one may hold another
//!   life's `node.key` or a running node's files; that is for the operator to move.

use std::fs::File;
use std::path::{Path, PathBuf};

use aurora_core::state::store::Entry;
use aurora_core::{decode_entry, encode_entry, encode_key};
use rusqlite::{Connection, OpenFlags};

use super::history::{self, AtError, ReadError, Window};
use super::migrations;
use super::schema::APPLICATION_ID;
use super::{check_header, wall_ms, StoreError};

/// The file name of the node database inside a data directory.
pub const DB_FILE: &str = "node.db";

/// Why a backup, restore, seed or read failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: no such file (is the data directory right?)")]
    Missing { path: PathBuf },
    #[error("{path}: not an SQLite database (bad header): neither a node.db nor a backup of one")]
    NotSqlite { path: PathBuf },
    #[error("{path} exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error(
        "{path} is not empty ({entries}); restore and import only write into an empty or \
         absent directory (move its files away, or name a new directory)"
    )]
    NotEmpty { path: PathBuf, entries: String },
    #[error(
        "{path}: schema version {found}; this build reads version {supported}: start a node \
         of this build on it once (it migrates), or use the build that wrote it"
    )]
    OldSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: {why}")]
    At { path: PathBuf, why: AtError },
    #[error("{path}: {what}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// What a backup or a verified file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub schema_version: i64,
    /// Rows in `entries` (records, tombstones and usage counters).
    pub entries: u64,
    pub bytes: u64,
}

/// A node file opened read-only: safe beside the running node (WAL readers never
/// block its commits), and never changed by this process.
pub struct StateFile {
    conn: Connection,
    path: PathBuf,
}

impl StateFile {
    /// Opens `path` read-only after the checks the node itself makes at start (SQLite
    /// header, Aurora's application id, `quick_check`) and requires the schema this
    /// build writes (an older file has no history; a newer one may hold fields this
    /// build cannot read).
    pub fn open(path: &Path) -> Result<StateFile, BackupError> {
        Self::open_with(path, true)
    }

    /// [`StateFile::open`] for the node process reading its own `node.db` (the admin
    /// API's `state/export?at=`): the file is opened through SQLite only, never as a
    /// plain file. Why: POSIX locks belong to the process, and closing *any* descriptor
    /// of a file drops all of them, so a header check here would silently release the
    /// running store's locks; the next outside program to close the database (an
    /// operator's `sqlite3`) would then take itself for the last user, checkpoint and
    /// delete the WAL the node still writes to, and the node's later commits would be
    /// lost at its next start. SQLite shares one descriptor per file between the
    /// connections of a process, so a second connection is safe. (The node checked the
    /// header when it opened the file at start.)
    pub fn open_own(path: &Path) -> Result<StateFile, BackupError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, header: bool) -> Result<StateFile, BackupError> {
        let conn = open_checked(path, "quick_check", header)?;
        let file = StateFile {
            conn,
            path: path.to_path_buf(),
        };
        let found = file.schema_version()?;
        let supported = migrations::latest();
        if found > supported {
            return Err(StoreError::TooNew {
                path: file.path.clone(),
                found,
                supported,
            }
            .into());
        }
        if found < supported {
            return Err(BackupError::OldSchema {
                path: file.path.clone(),
                found,
                supported,
            });
        }
        Ok(file)
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64, BackupError> {
        migrations::current_version(&self.conn).map_err(|e| self.sqlite(e))
    }

    /// The window of times [`StateFile::record_entries`] answers exactly.
    pub fn window(&self) -> Result<Window, BackupError> {
        history::window(&self.conn).map_err(|e| self.sqlite(e))
    }

    /// The record entries (tombstones included) held now, or at `at` (unix ms), which
    /// must lie inside [`StateFile::window`] up to the present: refused otherwise, never
    /// answered approximately.
    pub fn record_entries(&self, at: Option<u64>) -> Result<Vec<Entry>, BackupError> {
        if let Some(at) = at {
            let now = u64::try_from(wall_ms()).unwrap_or(0);
            let refuse = |why| BackupError::At {
                path: self.path.clone(),
                why,
            };
            self.window()?.check(at, now).map_err(refuse)?;
            if let Some((from, to)) = history::gap_at(&self.conn, at).map_err(|e| self.sqlite(e))? {
                return Err(refuse(AtError::NotRunning { at, from, to }));
            }
        }
        history::record_entries(&self.conn, at).map_err(|e| match e {
            ReadError::Sqlite(e) => self.sqlite(e),
            ReadError::Undecodable { table } => StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("an entry in table `{table}` does not decode"),
            }
            .into(),
        })
    }

    fn sqlite(&self, source: rusqlite::Error) -> BackupError {
        super::sqlite(&self.path, source).into()
    }
}

/// Copies the node file `db` (running or not) to `out`: consistent, fsynced, checked.
/// `out` must not exist unless `force`.
pub fn backup(db: &Path, out: &Path, force: bool) -> Result<FileInfo, BackupError> {
    if !force && out.exists() {
        return Err(BackupError::Exists {
            path: out.to_path_buf(),
        });
    }
    let source = StateFile::open(db)?;
    let partial = partial_path(out);
    remove_if_present(&partial)?;
    let result = (|| {
        vacuum_into(&source.conn, db, &partial)?;
        let info = verify_file(&partial)?;
        fsync(&partial)?;
        install(&partial, out, force)?;
        Ok(info)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Checks a backup file the way a restore will: SQLite header, application id, a full
/// `integrity_check` (every page and index), and a schema this build can migrate.
pub fn verify_file(path: &Path) -> Result<FileInfo, BackupError> {
    let conn = open_checked(path, "integrity_check", true)?;
    let sqlite = |e| BackupError::from(super::sqlite(path, e));
    let found = migrations::current_version(&conn).map_err(sqlite)?;
    let supported = migrations::latest();
    if found > supported {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        }
        .into());
    }
    if found < migrations::FIRST_WITH_LIVES {
        return Err(StoreError::BeforeLives {
            path: path.to_path_buf(),
            found,
        }
        .into());
    }
    let entries: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |row| row.get(0))
        .map_err(sqlite)?;
    let bytes = std::fs::metadata(path)
        .map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            what: "reading its size",
            source,
        })?
        .len();
    Ok(FileInfo {
        schema_version: found,
        entries: u64::try_from(entries).unwrap_or(0),
        bytes,
    })
}

/// Restores the backup `file` into the empty or absent directory `data_dir` as a new
/// storage life (see the module docs): the replicated entries only.
pub fn restore(file: &Path, data_dir: &Path) -> Result<FileInfo, BackupError> {
    if !file.exists() {
        return Err(BackupError::Missing {
            path: file.to_path_buf(),
        });
    }
    require_empty(data_dir)?;
    let info = verify_file(file)?;
    let source = open_checked(file, "quick_check", true)?;
    prepare_dir(data_dir)?;
    let target = data_dir.join(DB_FILE);
    let partial = partial_path(&target);
    remove_if_present(&partial)?;
    let result = (|| {
        vacuum_into(&source, file, &partial)?;
        let mut conn = Connection::open(&partial).map_err(|e| super::sqlite(&partial, e))?;
        new_life(&mut conn, &partial)?;
        drop(conn);
        fsync(&partial)?;
        install(&partial, &target, false)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| info)
}

/// Writes a new `node.db` holding `entries` into the empty or absent directory
/// `data_dir` (an import): no identity, so the first start binds its node id and makes
/// a new storage life, exactly as after a restore.
pub fn seed(data_dir: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    require_empty(data_dir)?;
    prepare_dir(data_dir)?;
    let target = data_dir.join(DB_FILE);
    let partial = partial_path(&target);
    remove_if_present(&partial)?;
    let result = (|| {
        let mut conn = Connection::open(&partial).map_err(|e| super::sqlite(&partial, e))?;
        let sqlite = |e| BackupError::from(super::sqlite(&partial, e));
        conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
            .map_err(sqlite)?;
        migrate(&mut conn, &partial)?;
        let tx = conn.transaction().map_err(sqlite)?;
        {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO entries (key, entry) VALUES (?1, ?2)")
                .map_err(sqlite)?;
            for entry in entries {
                insert
                    .execute((encode_key(&entry.key), encode_entry(entry)))
                    .map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)?;
        new_life(&mut conn, &partial)?;
        drop(conn);
        fsync(&partial)?;
        install(&partial, &target, false)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Every entry of a file (for tests and tools that check what a restore kept).
pub fn all_entries(path: &Path) -> Result<Vec<Entry>, BackupError> {
    let conn = open_checked(path, "quick_check", true)?;
    let sqlite = |e| BackupError::from(super::sqlite(path, e));
    let mut stmt = conn.prepare("SELECT entry FROM entries").map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let bytes = row
            .get_ref(0)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(sqlite)?;
        out.push(decode_entry(bytes).map_err(|_| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: "an entry in table `entries` does not decode".into(),
        })?);
    }
    Ok(out)
}

/// Drops what belongs to the storage life that wrote the file (identity row with node
/// id, incarnation, own write numbers, epoch, roster and life; the bindings) and starts
/// the history afresh, after bringing the file to this build's schema.
fn new_life(conn: &mut Connection, path: &Path) -> Result<(), BackupError> {
    migrate(conn, path)?;
    let sqlite = |e| BackupError::from(super::sqlite(path, e));
    let tx = conn.transaction().map_err(sqlite)?;
    tx.execute_batch("DELETE FROM identity; DELETE FROM bindings;")
        .map_err(sqlite)?;
    history::reset(&tx, wall_ms()).map_err(sqlite)?;
    tx.commit().map_err(sqlite)?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), BackupError> {
    migrations::migrate(conn).map_err(|e| e.at(path).into())
}

/// Opens an existing file read-only and runs `check` (`quick_check` or the full
/// `integrity_check`), refusing what is not an Aurora node file.
fn open_checked(path: &Path, check: &str, header: bool) -> Result<Connection, BackupError> {
    if !path.is_file() {
        return Err(BackupError::Missing {
            path: path.to_path_buf(),
        });
    }
    if header {
        check_header(path).map_err(|e| match e {
            StoreError::NotSqlite { path } => BackupError::NotSqlite { path },
            other => other.into(),
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| super::sqlite(path, e))?;
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let result: String = conn
        .query_row(&format!("PRAGMA {check}"), [], |row| row.get(0))
        .map_err(|e| corrupt(e.to_string()))?;
    if result != "ok" {
        return Err(corrupt(result).into());
    }
    let found: i32 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|e| super::sqlite(path, e))?;
    if found != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            found,
            expected: APPLICATION_ID,
        }
        .into());
    }
    Ok(conn)
}

/// `VACUUM INTO`: a consistent, compacted copy of what `conn` sees. The target is
/// created empty first, owner-only (0600): it holds every key's hash, like `node.db`
/// (SQLite writes into an empty file and keeps its mode).
fn vacuum_into(conn: &Connection, from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(to).map_err(|source| BackupError::Io {
        path: to.to_path_buf(),
        what: "creating the copy",
        source,
    })?;
    let target = to.to_str().ok_or_else(|| BackupError::Io {
        path: to.to_path_buf(),
        what: "the path is not UTF-8",
        source: std::io::Error::other("not UTF-8"),
    })?;
    conn.execute("VACUUM INTO ?1", [target])
        .map(drop)
        .map_err(|e| super::sqlite(from, e).into())
}

/// `.name.partial` beside `path`: never the name an operator restores from.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_owned());
    path.with_file_name(format!(".{name}.partial"))
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BackupError::Io {
            path: path.to_path_buf(),
            what: "removing a leftover partial file",
            source,
        }),
    }
}

/// Moves the finished `partial` to `out`: a rename when replacing is allowed, else a
/// hard link, which fails if `out` appeared meanwhile (never clobbers). Then fsyncs
/// the directory so the name survives a crash.
fn install(partial: &Path, out: &Path, replace: bool) -> Result<(), BackupError> {
    let io = |what, source| BackupError::Io {
        path: out.to_path_buf(),
        what,
        source,
    };
    if replace {
        std::fs::rename(partial, out).map_err(|e| io("renaming the finished copy", e))?;
    } else {
        match std::fs::hard_link(partial, out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists {
                    path: out.to_path_buf(),
                })
            }
            Err(e) => return Err(io("linking the finished copy", e)),
        }
        std::fs::remove_file(partial).map_err(|e| io("removing the partial name", e))?;
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsyncing its directory", e))
}

fn fsync(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            what: "fsyncing",
            source,
        })
}

/// An absent directory, or one with no entries at all.
fn require_empty(dir: &Path) -> Result<(), BackupError> {
    let mut names = match std::fs::read_dir(dir) {
        Ok(read) => read
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BackupError::Io {
                path: dir.to_path_buf(),
                what: "reading the directory",
                source,
            })
        }
    };
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    let entries = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    };
    Err(BackupError::NotEmpty {
        path: dir.to_path_buf(),
        entries,
    })
}

/// Creates the directory owner-only (0700), as `aurora serve` does.
fn prepare_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| BackupError::Io {
        path: dir.to_path_buf(),
        what: "creating the directory",
        source,
    })
}

#[cfg(test)]
mod tests;
