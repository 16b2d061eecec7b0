//! The usage log: one row per chat request in this node's own SQLite file
//! (`<data-dir>/usage.db`), queried by the admin API ([`admin`]).
//!
//! Why a separate file and not the node's replicated store: the log is local history
//! (this node's requests), append-only and large, while the store holds small
//! replicated records; sharing a file would make every request's row contend with the
//! driver's commits. Cluster-wide *totals* per budget live in the replicated counters;
//! this log answers "which requests, which key, how long, how much" on this node.
//!
//! Why batched writes off the request path: a request only pushes its row into a
//! bounded channel (no I/O, no lock shared with SQLite). A writer thread — SQLite is
//! blocking, so a plain thread rather than a Tokio task — waits up to [`LINGER`] after
//! the first row of a batch for more, up to [`MAX_BATCH`] rows, and inserts them in one
//! transaction. Without the wait a writer as fast as the requests committed each row
//! on its own: 1.6 rows a transaction at 2,000 req/s, about 85 µs a transaction (wall time)
//! (docs/benchmarks-gateway.md). The wait only delays the log (a flush ends it at
//! once); a crash loses what is queued either way, and budgets do not depend on it
//! (they count in the replicated store). WAL mode lets the admin queries read while
//! the writer appends. If the writer falls [`QUEUE`] rows behind, new rows are dropped
//! and counted (`aurora_usage_log_rows_total{result="dropped"}`) rather than slowing
//! requests or growing memory without bound.
//!
//! Why retention: the log grows with traffic, so the writer also deletes rows past
//! their age or beyond the size budget ([`retention`]), on its own thread, never on a
//! request. Requests refused before authentication (401) are no rows at all, only a
//! counter (`aurora_policy_rejections_total{status="401"}`): a flood of junk keys
//! must not grow any file.

pub mod admin;
pub mod retention;
pub mod series;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde::Serialize;

use self::retention::{Pruned, Retention};
use crate::metrics::{Exposition, Kind};

/// Rows that may wait for the writer.
pub const QUEUE: usize = 16_384;
/// Most rows per transaction.
pub const MAX_BATCH: usize = 1_024;
/// How long the writer waits after a batch's first row for more (see the module docs).
pub const LINGER: Duration = Duration::from_millis(10);
/// Most rows one query returns.
pub const MAX_LIMIT: u32 = 1_000;

/// One request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Unix milliseconds when the request ended.
    pub time_ms: u64,
    /// The auth key's id; `None` for anonymous and unauthenticated requests.
    pub key_id: Option<String>,
    /// The model that served it (catalog name), or the name the client asked for.
    pub model: String,
    /// The provider that served it.
    pub provider: Option<String>,
    /// Prompt tokens (cached included).
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Cost in nano-USD.
    pub cost_nanos: u64,
    /// HTTP status (499: client went away mid-stream; 502: the stream failed).
    pub status: u16,
    /// Time from the request's admission to its end.
    pub latency_ms: u64,
    /// The node that served it; filled in by the log when `None`.
    pub node: Option<String>,
    /// How it went through the response cache: `hit` (answered from it, at no cost),
    /// `miss`, or `null` (it did not use the cache).
    pub cache: Option<crate::cache::CacheUse>,
}

/// Why the log could not be opened or queried.
#[derive(Debug, thiserror::Error)]
pub enum UsageLogError {
    /// SQLite refused.
    #[error("usage log {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The writer thread could not start.
    #[error("usage log writer: {0}")]
    Thread(std::io::Error),
}

/// Counters of the writer, for /metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Rows committed.
    pub written: AtomicU64,
    /// Rows dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Rows lost because a transaction failed.
    pub failed: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Total commit time, microseconds.
    pub commit_micros: AtomicU64,
    /// Rows deleted by retention.
    pub pruned: AtomicU64,
    /// Bytes in use after the last prune.
    pub bytes: AtomicU64,
}

enum Message {
    Row(Box<UsageRow>),
    /// Answered once every row queued before it is committed.
    Flush(mpsc::Sender<()>),
    /// Prune now (after the rows queued before it) and answer what was deleted.
    Prune(mpsc::Sender<Pruned>),
}

/// The log: a queue into the writer thread and a read connection for queries.
#[derive(Debug)]
pub struct UsageLog {
    tx: SyncSender<Message>,
    reader: Mutex<Connection>,
    node: String,
    path: PathBuf,
    stats: Arc<LogStats>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Row(_) => "Row",
            Message::Flush(_) => "Flush",
            Message::Prune(_) => "Prune",
        })
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_log (
    id                INTEGER PRIMARY KEY,
    time_ms           INTEGER NOT NULL,
    key_id            TEXT,
    model             TEXT NOT NULL,
    provider          TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    node              TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_log_time ON usage_log (time_ms);
CREATE INDEX IF NOT EXISTS usage_log_key_time ON usage_log (key_id, time_ms);
CREATE INDEX IF NOT EXISTS usage_log_model_time ON usage_log (model, time_ms);
";

/// Adds the `cache` column (hit, miss or NULL) to a log written before the response
/// cache existed; a no-op on a log that has it. Old rows read as NULL: no cache.
fn add_cache_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('usage_log') WHERE name = 'cache'",
        [],
        |r| r.get(0),
    )?;
    if has > 0 {
        return Ok(());
    }
    alter_add_cache(conn)
}

fn alter_add_cache(conn: &Connection) -> rusqlite::Result<()> {
    match conn.execute_batch("ALTER TABLE usage_log ADD COLUMN cache TEXT") {
        // Another process opening the same file may add the column between the
        // check and the ALTER; its column is the one this would have added.
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("duplicate column") => {
            Ok(())
        }
        other => other,
    }
}

fn open_connection(path: &Path) -> Result<Connection, UsageLogError> {
    let err = |source| UsageLogError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    // WAL: readers (admin queries) never block the writer and vice versa. NORMAL
    // sync: a power cut may lose the last batches of a log, never corrupt it.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

/// SQLite integers are signed; counts above `i64::MAX` are clamped.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl UsageLog {
    /// Opens (creating if needed) the log at `path`, written as node `node`, with the
    /// default retention, and starts its writer thread. The thread ends when the log
    /// is dropped, after writing what was queued.
    pub fn open(path: &Path, node: &str) -> Result<Self, UsageLogError> {
        Self::open_with(path, node, Retention::default())
    }

    /// [`UsageLog::open`] with `retention` (checked by the caller, see
    /// [`Retention::validate`]).
    pub fn open_with(path: &Path, node: &str, retention: Retention) -> Result<Self, UsageLogError> {
        Self::open_lingering(path, node, retention, LINGER)
    }

    /// [`UsageLog::open_with`], the writer waiting `linger` for more rows per batch.
    fn open_lingering(
        path: &Path,
        node: &str,
        retention: Retention,
        linger: Duration,
    ) -> Result<Self, UsageLogError> {
        let writer = open_connection(path)?;
        writer
            .execute_batch(SCHEMA)
            .and_then(|()| add_cache_column(&writer))
            .map_err(|source| UsageLogError::Sqlite {
                path: path.to_owned(),
                source,
            })?;
        let reader = open_connection(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let stats = Arc::new(LogStats::default());
        let thread_stats = Arc::clone(&stats);
        let node_name = node.to_owned();
        std::thread::Builder::new()
            .name("aurora-usage-log".into())
            .spawn(move || {
                write_loop(writer, rx, &node_name, &thread_stats, &retention, linger);
            })
            .map_err(UsageLogError::Thread)?;
        Ok(Self {
            tx,
            reader: Mutex::new(reader),
            node: node.to_owned(),
            path: path.to_owned(),
            stats,
        })
    }

    /// Queues a row; never blocks (a full queue drops the row and counts it).
    pub fn record(&self, row: UsageRow) {
        match self.tx.try_send(Message::Row(Box::new(row))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits (blocking, at most `timeout`) until every row queued so far is committed.
    /// For tests and for the admin API, so a query sees the requests just made.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Message::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }

    /// Prunes now (after the rows queued so far are written), waiting at most
    /// `timeout`; `None` if the writer did not answer in time.
    pub fn prune_now(&self, timeout: Duration) -> Option<Pruned> {
        let (done, wait) = mpsc::channel();
        self.tx.send(Message::Prune(done)).ok()?;
        wait.recv_timeout(timeout).ok()
    }

    /// Rows in the log.
    pub fn rows(&self) -> Result<u64, UsageLogError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT COUNT(*) FROM usage_log", [], |r| r.get(0))
            .map_err(|e| self.sql_err(e))?;
        Ok(from_sql_int(n))
    }

    /// The writer's counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// This node's name in the rows.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sql_err(&self, source: rusqlite::Error) -> UsageLogError {
        UsageLogError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Rows matching `filter`, newest first.
    pub fn query(&self, filter: &Filter) -> Result<Vec<UsageRow>, UsageLogError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT time_ms, key_id, model, provider, prompt_tokens, completion_tokens,
                        cached_tokens, cost_nanos, status, latency_ms, node, cache
                 FROM usage_log
                 WHERE time_ms >= ?1 AND time_ms < ?2
                   AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4)
                 ORDER BY time_ms DESC, id DESC
                 LIMIT ?5",
            )
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map(
                params![
                    sql_int(filter.since_ms),
                    sql_int(filter.until_ms),
                    filter.key,
                    filter.model,
                    filter.limit.min(MAX_LIMIT)
                ],
                |r| {
                    Ok(UsageRow {
                        time_ms: from_sql_int(r.get(0)?),
                        key_id: r.get(1)?,
                        model: r.get(2)?,
                        provider: r.get(3)?,
                        prompt_tokens: from_sql_int(r.get(4)?),
                        completion_tokens: from_sql_int(r.get(5)?),
                        cached_tokens: from_sql_int(r.get(6)?),
                        cost_nanos: from_sql_int(r.get(7)?),
                        status: u16::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                        latency_ms: from_sql_int(r.get(9)?),
                        node: r.get(10)?,
                        cache: r
                            .get::<_, Option<String>>(11)?
                            .as_deref()
                            .and_then(crate::cache::CacheUse::parse),
                    })
                },
            )
            .map_err(|e| self.sql_err(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql_err(e))
    }

    /// Totals per key or per model over `[since, until)`, largest cost first.
    pub fn summary(
        &self,
        group_by: GroupBy,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<SummaryRow>, UsageLogError> {
        let column = match group_by {
            GroupBy::Key => "key_id",
            GroupBy::Model => "model",
        };
        // `column` is one of two constants, never client input.
        let sql = format!(
            "SELECT {column}, COUNT(*), SUM(status >= 400), SUM(prompt_tokens),
                    SUM(completion_tokens), SUM(cached_tokens), SUM(cost_nanos)
             FROM usage_log WHERE time_ms >= ?1 AND time_ms < ?2
             GROUP BY {column} ORDER BY SUM(cost_nanos) DESC, COUNT(*) DESC LIMIT {MAX_LIMIT}"
        );
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map(params![sql_int(since_ms), sql_int(until_ms)], |r| {
                Ok(SummaryRow {
                    group: r.get(0)?,
                    requests: from_sql_int(r.get(1)?),
                    errors: from_sql_int(r.get(2)?),
                    prompt_tokens: from_sql_int(r.get(3)?),
                    completion_tokens: from_sql_int(r.get(4)?),
                    cached_tokens: from_sql_int(r.get(5)?),
                    cost_nanos: from_sql_int(r.get(6)?),
                })
            })
            .map_err(|e| self.sql_err(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql_err(e))
    }
}

/// What [`UsageLog::query`] selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Inclusive start, Unix ms.
    pub since_ms: u64,
    /// Exclusive end, Unix ms.
    pub until_ms: u64,
    /// Only this key id.
    pub key: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// At most this many rows (capped at [`MAX_LIMIT`]).
    pub limit: u32,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            since_ms: 0,
            until_ms: i64::MAX as u64,
            key: None,
            model: None,
            limit: 100,
        }
    }
}

/// The grouping of a summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// Per auth key (anonymous requests are the `null` group).
    Key,
    /// Per model.
    Model,
}

/// Totals of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// The key id or model; `None` for anonymous requests.
    pub group: Option<String>,
    /// Requests.
    pub requests: u64,
    /// Of which answered with a status ≥ 400.
    pub errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Cost, nano-USD.
    pub cost_nanos: u64,
}

/// Appends the usage log's counters to a Prometheus exposition.
pub fn write_metrics(log: &UsageLog, out: &mut Exposition) {
    let s = log.stats();
    out.family(
        "aurora_usage_log_rows_total",
        "Usage-log rows by result (written, dropped: queue full, failed: transaction error, pruned: deleted by retention).",
        Kind::Counter,
    );
    for (result, n) in [
        ("written", &s.written),
        ("dropped", &s.dropped),
        ("failed", &s.failed),
        ("pruned", &s.pruned),
    ] {
        out.sample(&[("result", &result)], n.load(Ordering::Relaxed));
    }
    out.family(
        "aurora_usage_log_commit_seconds",
        "SQLite transactions of the usage log: count and total time.",
        Kind::Summary,
    )
    .summary(
        &[],
        s.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
        s.batches.load(Ordering::Relaxed),
    );
    out.single(
        "aurora_usage_log_bytes",
        "Bytes of the usage log in use at its last prune (kept under gateway.usage_log.max_bytes).",
        Kind::Gauge,
        s.bytes.load(Ordering::Relaxed),
    );
}

fn write_loop(
    mut conn: Connection,
    rx: Receiver<Message>,
    node: &str,
    stats: &LogStats,
    retention: &Retention,
    linger: Duration,
) {
    let mut rows: Vec<UsageRow> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
    let mut pruners: Vec<mpsc::Sender<Pruned>> = Vec::new();
    // Pruned once at start, then every interval.
    let mut next_prune = Instant::now();
    loop {
        let wait = next_prune.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(message) => Some(message),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            // Every sender is gone: the log was dropped.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Collect until the batch is full, a flush or prune asks for the rows now, or
        // `linger` has passed since the first row.
        let lingered = Instant::now() + linger;
        let mut urgent = false;
        let mut next = first;
        while let Some(message) = next.take() {
            match message {
                Message::Row(row) => rows.push(*row),
                Message::Flush(done) => {
                    waiters.push(done);
                    urgent = true;
                }
                Message::Prune(done) => {
                    pruners.push(done);
                    urgent = true;
                }
            }
            if rows.len() >= MAX_BATCH {
                break;
            }
            next = match rx.try_recv() {
                Ok(message) => Some(message),
                Err(_) if urgent => None,
                Err(_) => rx
                    .recv_timeout(lingered.saturating_duration_since(Instant::now()))
                    .ok(),
            };
        }
        if !rows.is_empty() {
            let started = Instant::now();
            let n = rows.len() as u64;
            match insert(&mut conn, &rows, node) {
                Ok(()) => {
                    stats.written.fetch_add(n, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats
                        .commit_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    stats.failed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(%error, rows = n, "usage log batch failed");
                }
            }
            rows.clear();
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
        if !pruners.is_empty() || Instant::now() >= next_prune {
            let pruned = prune(&conn, retention, stats);
            for done in pruners.drain(..) {
                let _ = done.send(pruned);
            }
            next_prune = Instant::now() + retention.prune_interval();
        }
    }
}

/// One retention pass of the writer, counted in `stats`.
fn prune(conn: &Connection, retention: &Retention, stats: &LogStats) -> Pruned {
    match retention::prune(conn, retention, crate::clock::wall_ms()) {
        Ok(pruned) => {
            let n = pruned.by_age + pruned.by_size;
            stats.pruned.fetch_add(n, Ordering::Relaxed);
            stats.bytes.store(pruned.bytes, Ordering::Relaxed);
            if n > 0 {
                tracing::info!(
                    by_age = pruned.by_age,
                    by_size = pruned.by_size,
                    bytes = pruned.bytes,
                    "usage log pruned"
                );
            }
            pruned
        }
        Err(error) => {
            tracing::warn!(%error, "usage log prune failed; retrying at the next interval");
            Pruned::default()
        }
    }
}

fn insert(conn: &mut Connection, rows: &[UsageRow], node: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO usage_log (time_ms, key_id, model, provider, prompt_tokens,
                 completion_tokens, cached_tokens, cost_nanos, status, latency_ms, node, cache)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in rows {
            stmt.execute(params![
                sql_int(r.time_ms),
                r.key_id,
                r.model,
                r.provider,
                sql_int(r.prompt_tokens),
                sql_int(r.completion_tokens),
                sql_int(r.cached_tokens),
                sql_int(r.cost_nanos),
                i64::from(r.status),
                sql_int(r.latency_ms),
                r.node.as_deref().unwrap_or(node),
                r.cache.map(crate::cache::CacheUse::as_str),
            ])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: Option<&str>, model: &str, cost: u64, status: u16, time_ms: u64) -> UsageRow {
        UsageRow {
            time_ms,
            key_id: key.map(str::to_owned),
            model: model.into(),
            provider: Some("mock".into()),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 2,
            cost_nanos: cost,
            status,
            latency_ms: 3,
            node: None,
            cache: None,
        }
    }

    #[test]
    fn a_log_from_before_the_cache_gains_the_column_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage.db");
        {
            // The schema as it was: no `cache` column.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(SCHEMA).expect("schema");
            conn.execute(
                "INSERT INTO usage_log (time_ms, key_id, model, provider, prompt_tokens,
                     completion_tokens, cached_tokens, cost_nanos, status, latency_ms, node)
                 VALUES (1000, 'k', 'm', NULL, 1, 2, 0, 5, 200, 3, 'n')",
                [],
            )
            .expect("old row");
        }
        // No retention: the rows are dated 1970 and would be pruned at once.
        let keep = Retention {
            retention_days: 0,
            max_bytes: 0,
            ..Retention::default()
        };
        let log = UsageLog::open_with(&path, "n", keep.clone()).expect("open upgrades");
        log.record(UsageRow {
            cache: Some(crate::cache::CacheUse::Hit),
            ..row(Some("k"), "m", 0, 200, 2000)
        });
        assert!(log.flush(Duration::from_secs(5)));
        let rows = log
            .query(&Filter {
                since_ms: 0,
                until_ms: 10_000,
                key: None,
                model: None,
                limit: 10,
            })
            .expect("query");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cache, Some(crate::cache::CacheUse::Hit));
        assert_eq!(rows[1].cache, None, "an old row did not use the cache");
        assert_eq!(rows[1].cost_nanos, 5);
        drop(log);
        // Opening again is a no-op.
        UsageLog::open_with(&path, "n", keep).expect("reopen");
    }

    /// Two processes opening an old log at once may both see no column; the one
    /// whose ALTER comes second must still open the log.
    #[test]
    fn a_column_added_by_another_process_meanwhile_is_no_error() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute_batch("ALTER TABLE usage_log ADD COLUMN cache TEXT")
            .expect("the other process");
        assert!(alter_add_cache(&conn).is_ok());
    }

    /// Rows that trickle in faster than the linger share one transaction, where a
    /// writer that took only what had queued committed each on its own; a flush
    /// commits at once instead of waiting out the linger.
    #[test]
    fn rows_arriving_within_the_linger_share_a_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = Retention {
            retention_days: 0,
            max_bytes: 0,
            ..Retention::default()
        };
        let log = UsageLog::open_lingering(
            &dir.path().join("usage.db"),
            "node-a",
            keep,
            Duration::from_secs(30),
        )
        .expect("open");
        for i in 0..5u64 {
            log.record(row(Some("alice"), "m1", i, 200, 1_000 + i));
            std::thread::sleep(Duration::from_millis(20));
        }
        let asked = Instant::now();
        assert!(log.flush(Duration::from_secs(10)));
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "the flush waited out the linger"
        );
        assert_eq!(log.stats().written.load(Ordering::Relaxed), 5);
        assert_eq!(log.stats().batches.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rows_are_written_in_batches_and_queried() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Rows from 1970: no retention, or they would be pruned at once.
        let keep = Retention {
            retention_days: 0,
            max_bytes: 0,
            ..Retention::default()
        };
        let log = UsageLog::open_with(&dir.path().join("usage.db"), "node-a", keep.clone())
            .expect("open");
        for i in 0..2_500u64 {
            let key = if i % 2 == 0 { Some("alice") } else { None };
            log.record(row(
                key,
                if i % 5 == 0 { "m1" } else { "m2" },
                i,
                200,
                1_000 + i,
            ));
        }
        log.record(row(Some("bob"), "m1", 7, 429, 9_000));
        assert!(log.flush(Duration::from_secs(10)));
        assert_eq!(log.stats().written.load(Ordering::Relaxed), 2_501);
        let batches = log.stats().batches.load(Ordering::Relaxed);
        assert!((3..2_501).contains(&batches), "{batches} batches");
        let newest = log
            .query(&Filter {
                limit: 2,
                ..Filter::default()
            })
            .expect("query");
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[0].key_id.as_deref(), Some("bob"));
        assert_eq!(newest[0].node.as_deref(), Some("node-a"));
        assert_eq!(newest[0].status, 429);
        let alice = log
            .query(&Filter {
                key: Some("alice".into()),
                since_ms: 1_000,
                until_ms: 1_010,
                limit: 1_000,
                ..Filter::default()
            })
            .expect("query");
        assert_eq!(alice.len(), 5);
        let by_key = log.summary(GroupBy::Key, 0, u64::MAX).expect("summary");
        let bob = by_key
            .iter()
            .find(|s| s.group.as_deref() == Some("bob"))
            .expect("bob");
        assert_eq!((bob.requests, bob.errors, bob.cost_nanos), (1, 1, 7));
        let anon = by_key
            .iter()
            .find(|s| s.group.is_none())
            .expect("anonymous");
        assert_eq!(anon.requests, 1_250);
        let by_model = log.summary(GroupBy::Model, 0, u64::MAX).expect("summary");
        assert_eq!(by_model.iter().map(|s| s.requests).sum::<u64>(), 2_501);
        // Reopening keeps the rows.
        drop(log);
        let again =
            UsageLog::open_with(&dir.path().join("usage.db"), "node-a", keep).expect("reopen");
        assert_eq!(
            again
                .summary(GroupBy::Model, 0, u64::MAX)
                .expect("summary")
                .iter()
                .map(|s| s.requests)
                .sum::<u64>(),
            2_501
        );
    }
}
