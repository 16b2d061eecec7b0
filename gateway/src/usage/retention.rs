//! How long the usage log keeps its rows, and how big it may grow (`gateway.usage_log`).
//!
//! The log is append-only, so without a bound it grows with traffic until the disk is
//! full. The writer thread (never a request) prunes it every `prune_interval_ms`, and
//! once at start: first the rows older than `retention_days`, then, while the live
//! data is above `max_bytes`, the oldest rows. Deletes go in chunks of
//! [`CHUNK`] rows so the writer is never away from its queue for long (rows that
//! arrive meanwhile wait in the bounded queue).
//!
//! "Bytes" are SQLite's pages in use (`page_count - freelist_count`, times the page
//! size), not the file's size: SQLite reuses freed pages rather than shrinking the
//! file, so after the first prune the file stops growing at about `max_bytes` (plus
//! the WAL, checkpointed after each prune). The bound is approximate by a few pages of
//! the secondary indexes.

use serde::{Deserialize, Serialize};

use rusqlite::{params, Connection};

use crate::catalog::CatalogError;

/// Rows deleted per statement.
pub const CHUNK: u64 = 10_000;

/// Retention settings (defaults in [`Retention::default`]).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Rows older than this many days are deleted; 0: no age limit.
    pub retention_days: u32,
    /// The log's data is kept under about this many bytes by deleting the oldest rows;
    /// 0: no size limit.
    pub max_bytes: u64,
    /// How often the writer prunes, ms.
    pub prune_interval_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            retention_days: 90,
            max_bytes: 1 << 30,
            prune_interval_ms: 10 * 60_000,
        }
    }
}

impl Retention {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.retention_days > 36_500 {
            return Err(CatalogError::new(
                "retention_days",
                format!("must be from 0 to 36500, got {}", self.retention_days),
            ));
        }
        if self.max_bytes != 0 && !(1 << 16..=1 << 40).contains(&self.max_bytes) {
            return Err(CatalogError::new(
                "max_bytes",
                format!(
                    "must be 0 (no limit) or from 65536 to 1099511627776, got {}",
                    self.max_bytes
                ),
            ));
        }
        if !(10..=86_400_000).contains(&self.prune_interval_ms) {
            return Err(CatalogError::new(
                "prune_interval_ms",
                format!(
                    "must be from 10 to 86400000, got {}",
                    self.prune_interval_ms
                ),
            ));
        }
        Ok(())
    }

    /// [`Retention::prune_interval_ms`].
    pub fn prune_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.prune_interval_ms)
    }
}

/// What one prune did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted for their age.
    pub by_age: u64,
    /// Rows deleted to get under `max_bytes`.
    pub by_size: u64,
    /// Bytes in use afterwards.
    pub bytes: u64,
}

/// Bytes of the database in use (pages not on the free list).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
    };
    let pages = pragma("page_count")? - pragma("freelist_count")?;
    Ok(u64::try_from(pages.max(0)).unwrap_or(0) * u64::try_from(pragma("page_size")?).unwrap_or(0))
}

fn delete_oldest(conn: &Connection, before_ms: Option<i64>, n: u64) -> rusqlite::Result<u64> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let deleted = conn.execute(
        "DELETE FROM usage_log WHERE id IN (
             SELECT id FROM usage_log WHERE (?1 IS NULL OR time_ms < ?1)
             ORDER BY time_ms, id LIMIT ?2)",
        params![before_ms, n],
    )?;
    Ok(deleted as u64)
}

/// Applies `retention` at wall-clock time `now_ms` (see the module docs).
pub fn prune(conn: &Connection, retention: &Retention, now_ms: u64) -> rusqlite::Result<Pruned> {
    let mut pruned = Pruned::default();
    if retention.retention_days > 0 {
        let age_ms = u64::from(retention.retention_days) * 86_400_000;
        let cutoff = i64::try_from(now_ms.saturating_sub(age_ms)).unwrap_or(i64::MAX);
        loop {
            let n = delete_oldest(conn, Some(cutoff), CHUNK)?;
            pruned.by_age += n;
            if n < CHUNK {
                break;
            }
        }
    }
    let mut used = used_bytes(conn)?;
    if retention.max_bytes > 0 {
        // Each round deletes the share of rows the excess stands for, plus a tenth of the
        // target so a round frees whole pages; bounded so a log whose pages do not free
        // up (indexes only) cannot spin.
        for _ in 0..64 {
            if used <= retention.max_bytes {
                break;
            }
            let rows: i64 = conn.query_row("SELECT COUNT(*) FROM usage_log", [], |r| r.get(0))?;
            let rows = u64::try_from(rows).unwrap_or(0);
            if rows == 0 {
                break;
            }
            let target = retention.max_bytes - retention.max_bytes / 10;
            let share = (used - target.min(used)) as f64 / used as f64;
            let n = ((rows as f64 * share).ceil() as u64).clamp(1, CHUNK);
            pruned.by_size += delete_oldest(conn, None, n)?;
            used = used_bytes(conn)?;
        }
    }
    if pruned.by_age + pruned.by_size > 0 {
        // Give the WAL's pages back too; a busy reader only delays this to the next prune.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    pruned.bytes = used;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::wall_ms;
    use crate::usage::{UsageLog, UsageRow};

    fn row(time_ms: u64) -> UsageRow {
        UsageRow {
            time_ms,
            key_id: Some("alice".into()),
            model: "mock/m".into(),
            status: 200,
            ..UsageRow::default()
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn rows_past_their_age_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = UsageLog::open_with(
            &dir.path().join("usage.db"),
            "n",
            Retention {
                retention_days: 7,
                max_bytes: 0,
                prune_interval_ms: 3_600_000,
            },
        )
        .expect("open");
        let now = wall_ms();
        for age_days in [30, 10, 8, 6, 1, 0] {
            log.record(row(now - age_days * DAY));
        }
        let pruned = log.prune_now(Duration::from_secs(10)).expect("pruned");
        assert_eq!((pruned.by_age, pruned.by_size), (3, 0));
        assert_eq!(log.rows().expect("rows"), 3);
        assert_eq!(
            log.stats()
                .pruned
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn the_oldest_rows_go_when_the_log_is_over_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max_bytes = 256 * 1024;
        let log = UsageLog::open_with(
            &dir.path().join("usage.db"),
            "n",
            Retention {
                retention_days: 0,
                max_bytes,
                prune_interval_ms: 3_600_000,
            },
        )
        .expect("open");
        for i in 0..20_000u64 {
            log.record(row(1_000_000 + i));
            if i % 4_000 == 3_999 {
                // Below the queue's size, so no row is dropped.
                assert!(log.flush(Duration::from_secs(30)));
            }
        }
        assert!(log.flush(Duration::from_secs(30)));
        let pruned = log.prune_now(Duration::from_secs(30)).expect("pruned");
        assert!(pruned.by_size > 0 && pruned.by_age == 0, "{pruned:?}");
        assert!(pruned.bytes <= max_bytes, "{pruned:?}");
        // The writer may also have pruned on its own while the rows arrived (and a
        // full queue drops rows, counted).
        let stat = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        let s = log.stats();
        let all_pruned = stat(&s.pruned);
        assert_eq!((stat(&s.written), stat(&s.dropped)), (20_000, 0));
        assert_eq!(log.rows().expect("rows"), stat(&s.written) - all_pruned);
        // The newest rows are the ones kept.
        let newest = log.query(&crate::usage::Filter::default()).expect("query");
        assert_eq!(newest[0].time_ms, 1_000_000 + 19_999);
        // Whatever is kept is the newest run of rows: no row older than a deleted one.
        let kept = log
            .query(&crate::usage::Filter {
                limit: crate::usage::MAX_LIMIT,
                ..crate::usage::Filter::default()
            })
            .expect("query");
        assert!(kept.windows(2).all(|w| w[0].time_ms > w[1].time_ms));
    }

    #[test]
    fn the_writer_prunes_on_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = UsageLog::open_with(
            &dir.path().join("usage.db"),
            "n",
            Retention {
                retention_days: 1,
                max_bytes: 0,
                prune_interval_ms: 20,
            },
        )
        .expect("open");
        log.record(row(wall_ms() - 2 * DAY));
        log.record(row(wall_ms()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log
            .stats()
            .pruned
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(std::time::Instant::now() < deadline, "never pruned");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(log.flush(Duration::from_secs(10)));
        assert_eq!(log.rows().expect("rows"), 1);
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(Retention::default().validate(), Ok(()));
        for (bad, field) in [
            (
                Retention {
                    max_bytes: 100,
                    ..Retention::default()
                },
                "max_bytes",
            ),
            (
                Retention {
                    prune_interval_ms: 0,
                    ..Retention::default()
                },
                "prune_interval_ms",
            ),
            (
                Retention {
                    retention_days: 100_000,
                    ..Retention::default()
                },
                "retention_days",
            ),
        ] {
            assert_eq!(bad.validate().map_err(|e| e.path), Err(field.to_owned()));
        }
    }
}
