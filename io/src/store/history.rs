//! Point-in-time history: the versions of replicated records this node replaced, so
//! that `aurora state export --at T` can answer what this node held at time `T`.
//!
//! Why a history table at all: the store is one last-writer-wins register per key,
//! so a record overwritten after `T` has lost its older value. Keeping every version
//! a node replaces, for as long as tombstones are kept (`cluster.timing.tombstone_ttl`,
//! one day in the default timing; `launch` passes it to the store), makes "the state as of `T`" exact instead of a guess.
//!
//! What "as of `T`" means, and why: each version carries the interval during which it
//! was *this node's* copy, `since_ms <= t < until_ms`, on this node's wall clock at
//! commit time (stamped as the transaction starts, so a commit in flight at `T` for the
//! few milliseconds of its fsync counts as done at `T`; every write acknowledged before
//! `T` is in, every write started after `T` is out). So the answer is the state this
//! node's admin API showed at `T` (an export taken then gives the same document and
//! digest, short of that in-flight commit). It is not a cut by
//! the writers' hybrid clocks: a node only ever sees the versions that reached it
//! (anti-entropy sends the latest version of a key, not every one in between), so a
//! cut by write time could silently miss versions; the node's own view cannot. On a
//! converged cluster all nodes' views differ only by the propagation delay (well
//! under a second, docs/operations.md); during a partition a node's view at `T` lacks
//! what the other side wrote, exactly as its admin API did then.
//!
//! What holds:
//! * per key, the intervals of its versions never overlap: commit times are taken
//!   from a clock that never goes back, even if the wall clock does (across a restart
//!   too: it starts above every time the file's rows carry, see `load_clock`);
//! * usage counters are not kept (they change on every flush and are not part of the
//!   control-plane state an export carries);
//! * a time is answered only inside the window where the history is complete: not
//!   before the file started keeping it (`since_ms`: the first open by a build with
//!   this table, a restore or an import), not before what was pruned (`pruned_ms`),
//!   not while the node was not running (`history_gaps`: from its last commit or clean
//!   stop to its next start, when its copy was not kept current; and after a clean
//!   stop it has not started from since), and not in the future (it could still
//!   change). A node killed and not restarted cannot know it stopped: until its next
//!   start records the gap, its file answers times after the crash with what it held. Everything else is an [`AtError`] saying which.

use aurora_core::state::store::{Entry, Key};
use aurora_core::{decode_entry, encode_key};
use rusqlite::{Connection, Transaction};

/// How often (store clock, ms) a commit also prunes versions older than the retention.
pub const PRUNE_EVERY_MS: i64 = 60_000;

/// The bounds of what the history can answer, from `history_meta`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// History is complete from this time on (ms since the Unix epoch).
    pub since_ms: u64,
    /// Versions that ended before this time were pruned.
    pub pruned_ms: u64,
    /// The commit time recorded at the last prune, restore, import or clean stop (the
    /// latest commit time is at least this).
    pub clock_ms: u64,
    /// When the node stopped cleanly, if it has not started since (0 while it runs).
    pub stopped_ms: u64,
}

impl Window {
    /// The earliest time answered exactly.
    pub fn earliest_ms(&self) -> u64 {
        self.since_ms.max(self.pruned_ms)
    }

    /// Checks that `at` can be answered exactly at wall time `now_ms`.
    pub fn check(&self, at: u64, now_ms: u64) -> Result<(), AtError> {
        if at > now_ms {
            return Err(AtError::Future { at, now: now_ms });
        }
        if at < self.since_ms {
            return Err(AtError::BeforeHistory {
                at,
                since: self.since_ms,
            });
        }
        if at < self.pruned_ms {
            return Err(AtError::Pruned {
                at,
                pruned: self.pruned_ms,
            });
        }
        if self.stopped_ms > 0 && at > self.stopped_ms {
            return Err(AtError::NotRunning {
                at,
                from: self.stopped_ms,
                to: now_ms,
            });
        }
        Ok(())
    }
}

/// Why a point in time cannot be answered exactly.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    #[error("--at {at} is in the future (now is {now}): the state then is not known yet")]
    Future { at: u64, now: u64 },
    #[error(
        "--at {at} is before this node.db started keeping history ({since}, unix ms: its \
         creation, restore, import or upgrade to history); its state before then is not \
         known exactly, so nothing is exported"
    )]
    BeforeHistory { at: u64, since: u64 },
    #[error(
        "--at {at} is while this node was not running (from {from} to {to}, unix ms): its \
         copy was not kept current then, so nothing is exported; ask a node that ran then"
    )]
    NotRunning { at: u64, from: u64, to: u64 },
    #[error(
        "--at {at} is older than the history kept ({pruned}, unix ms: versions are kept \
         for the tombstone TTL, cluster.timing.tombstone_ttl_seconds); an older state is \
         not known exactly, so nothing is exported"
    )]
    Pruned { at: u64, pruned: u64 },
}

/// Whether versions of this key are kept (records yes, usage counters no).
pub(super) fn keeps(key: &Key) -> bool {
    matches!(key, Key::Record(..))
}

/// The stretch when the node was not running that contains `at` (strictly inside:
/// at its start the last commit is known, from its end the node held its file again).
pub fn gap_at(conn: &Connection, at: u64) -> rusqlite::Result<Option<(u64, u64)>> {
    let at = i64::try_from(at).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT from_ms, to_ms FROM history_gaps WHERE from_ms < ?1 AND ?1 < to_ms LIMIT 1",
    )?;
    let mut rows = stmt.query([at])?;
    match rows.next()? {
        Some(row) => Ok(Some((non_negative(row.get(0)?), non_negative(row.get(1)?)))),
        None => Ok(None),
    }
}

/// Records at start (`now`) that the node did not run since `last` (its last commit
/// or clean stop).
pub(super) fn record_gap(conn: &Connection, last: i64, now: i64) -> rusqlite::Result<()> {
    conn.execute("UPDATE history_meta SET stopped_ms = 0 WHERE id = 1", [])?;
    if last > 0 && now > last {
        conn.execute(
            "INSERT INTO history_gaps (from_ms, to_ms) VALUES (?1, ?2)",
            [last, now],
        )?;
    }
    Ok(())
}

/// Records a clean stop at `now`, so the next start's gap begins there rather than
/// at the last commit.
pub(super) fn record_stop(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE history_meta SET clock_ms = max(clock_ms, ?1), stopped_ms = ?1 WHERE id = 1",
        [now],
    )?;
    Ok(())
}

/// Reads `history_meta`.
pub fn window(conn: &Connection) -> rusqlite::Result<Window> {
    conn.query_row(
        "SELECT since_ms, pruned_ms, clock_ms, stopped_ms FROM history_meta WHERE id = 1",
        [],
        |row| {
            Ok(Window {
                since_ms: non_negative(row.get(0)?),
                pruned_ms: non_negative(row.get(1)?),
                clock_ms: non_negative(row.get(2)?),
                stopped_ms: non_negative(row.get(3)?),
            })
        },
    )
}

/// The commit time after `clock_ms` for wall time `wall_ms`: never earlier than the
/// last one.
pub(super) fn next_clock(clock_ms: i64, wall_ms: i64) -> i64 {
    wall_ms.max(clock_ms)
}

/// Before `key` is removed at `now`: moves the version stored now into the history,
/// ending at `now`. (A replacement is moved by the trigger of migration 6.)
pub(super) fn remove(tx: &Transaction<'_>, key: &Key, now: i64) -> rusqlite::Result<()> {
    if !keeps(key) {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO history (key, entry, since_ms, until_ms)
         SELECT key, entry, coalesce(since_ms, (SELECT since_ms FROM history_meta)), ?2
         FROM entries WHERE key = ?1",
    )?
    .execute((encode_key(key), now))?;
    Ok(())
}

/// Drops versions that ended before `cutoff` and records that the history now starts
/// there.
pub(super) fn prune(tx: &Transaction<'_>, cutoff: i64, now: i64) -> rusqlite::Result<usize> {
    let removed = tx
        .prepare_cached("DELETE FROM history WHERE until_ms < ?1")?
        .execute([cutoff])?;
    tx.prepare_cached("DELETE FROM history_gaps WHERE to_ms < ?1")?
        .execute([cutoff])?;
    tx.prepare_cached(
        "UPDATE history_meta SET pruned_ms = max(pruned_ms, ?1), clock_ms = max(clock_ms, ?2)
         WHERE id = 1",
    )?
    .execute([cutoff, now])?;
    Ok(removed)
}

/// The latest commit time the file holds (0 for none), read once at open so that
/// commit times never go back across a restart either. Not written on every commit
/// (that would be one more page per commit in the WAL): it is the largest of the
/// times the rows themselves carry (`entries.since_ms`: one pass, beside the one the
/// start-up load makes anyway; `history.until_ms`: its index) and `clock_ms` (set by a
/// restore, an import, a prune).
pub(super) fn load_clock(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(
            coalesce((SELECT clock_ms FROM history_meta WHERE id = 1), 0),
            coalesce((SELECT max(since_ms) FROM entries), 0),
            coalesce((SELECT max(until_ms) FROM history), 0))",
        [],
        |row| row.get(0),
    )
}

/// Starts the history afresh at `now`: nothing before is known (a restore or an
/// import of a file whose past is not this node's).
pub(super) fn reset(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute_batch("DELETE FROM history; DELETE FROM history_gaps;")?;
    conn.execute("UPDATE entries SET since_ms = ?1", [now])?;
    conn.execute(
        "UPDATE history_meta SET since_ms = ?1, pruned_ms = 0, clock_ms = ?1, stopped_ms = 0
         WHERE id = 1",
        [now],
    )?;
    Ok(())
}

/// Why stored bytes could not be read back as entries.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("an entry in table `{table}` does not decode")]
    Undecodable { table: &'static str },
}

/// The record entries (tombstones included) this file held at `at`, or now (`None`),
/// in one read transaction so a concurrent commit of the running node is either
/// wholly in or wholly out. The caller checks `at` against [`window`] first.
pub fn record_entries(conn: &Connection, at: Option<u64>) -> Result<Vec<Entry>, ReadError> {
    let tx = conn.unchecked_transaction()?;
    let mut out = Vec::new();
    let mut read = |sql: &str, table: &'static str, at: Option<i64>| -> Result<(), ReadError> {
        let mut stmt = tx.prepare(sql)?;
        let mut rows = match at {
            Some(at) => stmt.query([at])?,
            None => stmt.query([])?,
        };
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let entry = decode_entry(bytes).map_err(|_| ReadError::Undecodable { table })?;
            if keeps(&entry.key) {
                out.push(entry);
            }
        }
        Ok(())
    };
    match at.map(|t| i64::try_from(t).unwrap_or(i64::MAX)) {
        None => read("SELECT entry FROM entries", "entries", None)?,
        Some(t) => {
            read(
                "SELECT entry FROM entries
                 WHERE coalesce(since_ms, (SELECT since_ms FROM history_meta)) <= ?1",
                "entries",
                Some(t),
            )?;
            read(
                "SELECT entry FROM history WHERE since_ms <= ?1 AND until_ms > ?1",
                "history",
                Some(t),
            )?;
        }
    }
    tx.commit()?;
    Ok(out)
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
