//! Applies [`super::schema::MIGRATIONS`] in order, each once.
//!
//! The version lives in a `schema_version` table (one row) rather than `PRAGMA
//! user_version` so that it is visible to anyone inspecting the file with ordinary SQL
//! and updated inside the same transaction as the migration it records.

use rusqlite::{Connection, OptionalExtension};

use super::schema::MIGRATIONS;

#[derive(Debug)]
pub(super) enum MigrateError {
    TooNew {
        found: i64,
        supported: i64,
    },
    /// Written before [`FIRST_WITH_LIVES`]: its entries name origins without a storage
    /// life, which this build cannot read (there is no conversion).
    BeforeLives {
        found: i64,
    },
    /// A stored entry did not decode in the layout of the version it was written
    /// under, so a migration that re-encodes entries could not read it; nothing was
    /// changed.
    Undecodable {
        version: i64,
        table: &'static str,
    },
    Sqlite(rusqlite::Error),
}

impl MigrateError {
    /// The store's error for a migration of the file at `path` that failed so.
    pub(super) fn at(self, path: &std::path::Path) -> super::StoreError {
        use super::StoreError;
        match self {
            MigrateError::TooNew { found, supported } => StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported,
            },
            MigrateError::BeforeLives { found } => StoreError::BeforeLives {
                path: path.to_path_buf(),
                found,
            },
            MigrateError::Undecodable { version, table } => StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "an entry in table `{table}` does not decode in the layout migration \
                     {version} converts from"
                ),
            },
            MigrateError::Sqlite(e) => super::sqlite(path, e),
        }
    }
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// The first schema whose entries carry their origin's storage life (migration 5).
/// A file of an earlier version is refused whole before anything is changed.
pub(super) const FIRST_WITH_LIVES: i64 = 5;

/// The newest version this build knows.
pub(super) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// The version recorded in the file (0 for a fresh file).
pub(super) fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(conn
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Brings the file to [`latest`]. Running it again is a no-op.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT;",
    )?;
    let current = current_version(conn)?;
    if current > latest() {
        return Err(MigrateError::TooNew {
            found: current,
            supported: latest(),
        });
    }
    if current > 0 && current < FIRST_WITH_LIVES {
        return Err(MigrateError::BeforeLives { found: current });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if *version == super::reencode::VERSION {
            if let Err(e) = super::reencode::migrate(&tx)? {
                return Err(MigrateError::Undecodable {
                    version: *version,
                    table: e.table,
                });
            }
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied storage migration");
    }
    Ok(())
}
