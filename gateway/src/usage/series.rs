//! Time series over the usage log, for the overview charts of the admin UI
//! (`GET /admin/api/usage/series`, see [`super::admin`]).
//!
//! Everything comes from this node's own log: requests, errors (rows with a status
//! ≥ 400), tokens, spend and latency per time bucket, in total and for the largest
//! groups (keys or models). What the log does not hold, the series cannot show:
//! requests refused before authentication (401) and before the policy ran (a
//! malformed body, an unknown route) are counters in `/metrics` only, never rows.
//!
//! Why one query, grouped by (bucket, group, latency bin): it scans the rows of the
//! range once through the `time_ms` index, and what it returns is bounded by the
//! buckets × groups × bins of the answer as well as by the rows scanned. Counts and
//! sums of a bucket are the sums of its bins; latency percentiles come from the bins
//! (see [`Point::latency_p50_ms`]). Histograms add, so the total and an "other"
//! group are summed from the same rows.
//!
//! Why the largest groups only ([`MAX_GROUPS`]): a model name in a refused request's
//! row is what the client sent, so the set of groups is not bounded by the catalog.
//! The groups are ranked by requests over the range (then by name); the rest are
//! summed into one `other` group.

use rusqlite::params_from_iter;
use rusqlite::types::Value;
use serde::Serialize;

use super::{from_sql_int, sql_int, GroupBy, UsageLog, UsageLogError};

/// Most buckets one series answers (a day in minutes).
pub const MAX_BUCKETS: u64 = 1_440;
/// Most groups one series names (the rest are summed into `other`).
pub const MAX_GROUPS: u32 = 20;
/// Groups named when the caller does not say.
pub const DEFAULT_GROUPS: u32 = 8;

/// Inclusive upper bounds (ms) of the latency bins; past the last is one open bin.
/// Fine enough that a bin is at most half as wide as its lower bound above 10 ms.
pub const LATENCY_BINS_MS: [u64; 29] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
];
const BINS: usize = LATENCY_BINS_MS.len() + 1;

/// What [`UsageLog::series`] computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesQuery {
    /// Inclusive start of the rows counted, Unix ms.
    pub since_ms: u64,
    /// Exclusive end, Unix ms; above `since_ms`.
    pub until_ms: u64,
    /// Bucket width, ms; above 0. Buckets start at multiples of it (Unix time), so
    /// the first and last may cover only part of their width.
    pub bucket_ms: u64,
    /// Per key or per model besides the total; `None`: the total only.
    pub group_by: Option<GroupBy>,
    /// At most this many named groups (capped at [`MAX_GROUPS`]).
    pub groups: u32,
}

impl SeriesQuery {
    /// The start of the first bucket and the number of buckets (0 for an empty range).
    pub fn buckets(&self) -> (u64, u64) {
        if self.bucket_ms == 0 || self.until_ms <= self.since_ms {
            return (self.since_ms, 0);
        }
        let first = self.since_ms - self.since_ms % self.bucket_ms;
        let span = self.until_ms - first;
        (first, span.div_ceil(self.bucket_ms))
    }
}

/// One bucket of one series.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Requests that ended in the bucket.
    pub requests: u64,
    /// Of which answered with a status ≥ 400.
    pub errors: u64,
    /// Prompt tokens (cached included).
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Spend, nano-USD.
    pub cost_nanos: u64,
    /// The median latency, nearest rank, from the bins: the slowest request of the
    /// bin holding the rank, so never below the true median and above it by less
    /// than that bin's width (exact when the bin holds one value). `None` without
    /// requests.
    pub latency_p50_ms: Option<u64>,
    /// The 99th percentile, computed as the median is.
    pub latency_p99_ms: Option<u64>,
}

/// One series: the total or one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Series {
    /// The key id or model; `None` for the total, for anonymous requests (per key)
    /// and for `other`.
    pub group: Option<String>,
    /// Whether this is the sum of the groups not named.
    pub other: bool,
    /// Over the whole range.
    pub total: Point,
    /// One per bucket, in time order (empty buckets included).
    pub points: Vec<Point>,
}

/// The answer of [`UsageLog::series`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeriesSet {
    /// The start of each bucket, Unix ms.
    pub buckets: Vec<u64>,
    /// Every row of the range.
    pub total: Series,
    /// The largest groups by requests, then `other` if any row is in none of them.
    pub groups: Vec<Series>,
}

/// Counts and sums of one cell (bucket × group), with its latency bins.
#[derive(Clone, Debug, Default)]
struct Cell {
    point: Point,
    bins: [u64; BINS],
    /// The slowest request of each bin.
    bin_max: [u64; BINS],
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        let p = &mut self.point;
        let o = &other.point;
        p.requests += o.requests;
        p.errors += o.errors;
        p.prompt_tokens += o.prompt_tokens;
        p.completion_tokens += o.completion_tokens;
        p.cached_tokens += o.cached_tokens;
        p.cost_nanos = p.cost_nanos.saturating_add(o.cost_nanos);
        for i in 0..BINS {
            self.bins[i] += other.bins[i];
            self.bin_max[i] = self.bin_max[i].max(other.bin_max[i]);
        }
    }

    /// The point with its percentiles.
    fn finish(&self) -> Point {
        Point {
            latency_p50_ms: self.percentile(50),
            latency_p99_ms: self.percentile(99),
            ..self.point.clone()
        }
    }

    /// Nearest rank: the `ceil(n × pct / 100)`-th fastest request's bin.
    fn percentile(&self, pct: u64) -> Option<u64> {
        let n: u64 = self.bins.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (u128::from(n) * u128::from(pct)).div_ceil(100).max(1);
        let mut seen = 0u128;
        for (count, max) in self.bins.iter().zip(self.bin_max) {
            seen += u128::from(*count);
            if seen >= rank {
                return Some(max);
            }
        }
        self.bin_max.iter().copied().max()
    }
}

/// The SQL expression of a row's latency bin (0..BINS), from constants only.
fn bin_expression() -> String {
    let mut sql = String::from("CASE");
    for (i, le) in LATENCY_BINS_MS.iter().enumerate() {
        sql.push_str(&format!(" WHEN latency_ms <= {le} THEN {i}"));
    }
    sql.push_str(&format!(" ELSE {} END", LATENCY_BINS_MS.len()));
    sql
}

impl UsageLog {
    /// The series of `query` (see the module docs). The range is clamped to
    /// [`MAX_BUCKETS`] buckets ending at `until_ms`; callers that want an error
    /// instead check [`SeriesQuery::buckets`] first.
    pub fn series(&self, query: &SeriesQuery) -> Result<SeriesSet, UsageLogError> {
        let mut query = query.clone();
        if query.bucket_ms == 0 {
            query.bucket_ms = 60_000;
        }
        if query.buckets().1 > MAX_BUCKETS {
            let first_kept = (query.until_ms - 1) / query.bucket_ms + 1 - MAX_BUCKETS;
            query.since_ms = first_kept * query.bucket_ms;
        }
        let (first, count) = query.buckets();
        let count = usize::try_from(count).unwrap_or(0);
        let buckets: Vec<u64> = (0..count as u64)
            .map(|i| first + i * query.bucket_ms)
            .collect();
        let groups = query.groups.min(MAX_GROUPS);
        let column = match query.group_by {
            None => None,
            Some(GroupBy::Key) => Some("key_id"),
            Some(GroupBy::Model) => Some("model"),
        };
        let conn = self.reader();
        // The named groups: the largest by requests over the range. `column` is one
        // of two constants, never client input.
        let named: Vec<Option<String>> = match column {
            Some(column) if groups > 0 && count > 0 => {
                let sql = format!(
                    "SELECT {column} FROM usage_log WHERE time_ms >= ?1 AND time_ms < ?2
                     GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT ?3"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql_err(e))?;
                let rows = stmt
                    .query_map(
                        rusqlite::params![sql_int(query.since_ms), sql_int(query.until_ms), groups],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .map_err(|e| self.sql_err(e))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| self.sql_err(e))?
            }
            _ => Vec::new(),
        };
        // A row's group index: its position in `named`, or `named.len()` (other). The
        // names are bound as parameters.
        let mut args: Vec<Value> = vec![
            Value::Integer(sql_int(query.since_ms)),
            Value::Integer(sql_int(query.until_ms)),
            Value::Integer(sql_int(first)),
            Value::Integer(sql_int(query.bucket_ms)),
        ];
        let other = named.len();
        let group_sql = match column {
            None => "0".to_owned(),
            // No named group (the range has no rows, or `groups` is 0): every row is
            // `other`. A `CASE` without a `WHEN` is not SQL.
            Some(_) if named.is_empty() => other.to_string(),
            Some(column) => {
                let mut sql = String::from("CASE");
                for (i, name) in named.iter().enumerate() {
                    match name {
                        None => sql.push_str(&format!(" WHEN {column} IS NULL THEN {i}")),
                        Some(name) => {
                            args.push(Value::Text(name.clone()));
                            sql.push_str(&format!(" WHEN {column} = ?{} THEN {i}", args.len()));
                        }
                    }
                }
                sql.push_str(&format!(" ELSE {other} END"));
                sql
            }
        };
        let sql = format!(
            "SELECT (time_ms - ?3) / ?4 AS b, {group_sql} AS g, {bins} AS bin, COUNT(*),
                    SUM(status >= 400), SUM(prompt_tokens), SUM(completion_tokens),
                    SUM(cached_tokens), SUM(cost_nanos), MAX(latency_ms)
             FROM usage_log WHERE time_ms >= ?1 AND time_ms < ?2
             GROUP BY b, g, bin",
            bins = bin_expression()
        );
        let series_count = if column.is_some() { other + 1 } else { 1 };
        let mut cells = vec![vec![Cell::default(); count]; series_count];
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql_err(e))?;
        let mut rows = stmt
            .query(params_from_iter(args.iter()))
            .map_err(|e| self.sql_err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.sql_err(e))? {
            let get = |i: usize| {
                r.get::<_, Option<i64>>(i)
                    .map(|v| from_sql_int(v.unwrap_or(0)))
            };
            let (b, g, bin) = (
                get(0).map_err(|e| self.sql_err(e))?,
                get(1).map_err(|e| self.sql_err(e))?,
                get(2).map_err(|e| self.sql_err(e))?,
            );
            let (Ok(b), Ok(g), Ok(bin)) =
                (usize::try_from(b), usize::try_from(g), usize::try_from(bin))
            else {
                continue;
            };
            let Some(cell) = cells.get_mut(g).and_then(|c| c.get_mut(b)) else {
                continue;
            };
            let Some(slot) = cell.bins.get_mut(bin) else {
                continue;
            };
            let n = get(3).map_err(|e| self.sql_err(e))?;
            *slot += n;
            cell.bin_max[bin] = cell.bin_max[bin].max(get(9).map_err(|e| self.sql_err(e))?);
            let p = &mut cell.point;
            p.requests += n;
            p.errors += get(4).map_err(|e| self.sql_err(e))?;
            p.prompt_tokens += get(5).map_err(|e| self.sql_err(e))?;
            p.completion_tokens += get(6).map_err(|e| self.sql_err(e))?;
            p.cached_tokens += get(7).map_err(|e| self.sql_err(e))?;
            p.cost_nanos = p
                .cost_nanos
                .saturating_add(get(8).map_err(|e| self.sql_err(e))?);
        }
        let series = |group: Option<String>, other: bool, cells: &[Cell]| {
            let mut total = Cell::default();
            for cell in cells {
                total.add(cell);
            }
            Series {
                group,
                other,
                total: total.finish(),
                points: cells.iter().map(Cell::finish).collect(),
            }
        };
        let mut all = vec![Cell::default(); count];
        for group in &cells {
            for (sum, cell) in all.iter_mut().zip(group) {
                sum.add(cell);
            }
        }
        let mut out_groups = Vec::new();
        if column.is_some() {
            for (i, name) in named.into_iter().enumerate() {
                out_groups.push(series(name, false, &cells[i]));
            }
            if cells[other].iter().any(|c| c.point.requests > 0) {
                out_groups.push(series(None, true, &cells[other]));
            }
        }
        Ok(SeriesSet {
            buckets,
            total: series(None, false, &all),
            groups: out_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::usage::retention::Retention;
    use crate::usage::UsageRow;

    fn log(dir: &tempfile::TempDir) -> UsageLog {
        let keep = Retention {
            retention_days: 0,
            max_bytes: 0,
            ..Retention::default()
        };
        UsageLog::open_with(&dir.path().join("usage.db"), "node-a", keep).expect("open")
    }

    fn row(time_ms: u64, key: Option<&str>, model: &str, status: u16, latency_ms: u64) -> UsageRow {
        UsageRow {
            time_ms,
            key_id: key.map(str::to_owned),
            model: model.into(),
            prompt_tokens: 10,
            completion_tokens: 4,
            cached_tokens: 1,
            cost_nanos: 1_000,
            status,
            latency_ms,
            ..UsageRow::default()
        }
    }

    #[test]
    fn buckets_are_aligned_and_cover_the_range() {
        let q = |since_ms, until_ms, bucket_ms| SeriesQuery {
            since_ms,
            until_ms,
            bucket_ms,
            group_by: None,
            groups: 0,
        };
        assert_eq!(q(60_000, 120_000, 60_000).buckets(), (60_000, 1));
        assert_eq!(q(61_000, 120_001, 60_000).buckets(), (60_000, 2));
        assert_eq!(q(5, 5, 10).buckets(), (5, 0));
        assert_eq!(q(9, 5, 10).buckets(), (9, 0));
    }

    #[test]
    fn percentiles_are_the_slowest_of_the_bin_holding_the_rank() {
        let mut cell = Cell::default();
        assert_eq!(cell.percentile(50), None);
        // 98 fast (4 ms, 5 ms), 2 slow (900 ms): p50 in the 5 ms bin, p99 in the slow one.
        cell.bins[3] = 98;
        cell.bin_max[3] = 5;
        cell.bins[17] = 2;
        cell.bin_max[17] = 900;
        assert_eq!(cell.percentile(50), Some(5));
        assert_eq!(cell.percentile(99), Some(900));
        assert_eq!(cell.percentile(98), Some(5));
    }

    #[test]
    fn series_per_bucket_and_group_with_an_other_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(&dir);
        // Bucket 0 (60 s from 60_000): three m1 by alice (one failed), one m2 by bob.
        log.record(row(60_000, Some("alice"), "m1", 200, 4));
        log.record(row(61_000, Some("alice"), "m1", 200, 40));
        log.record(row(62_000, Some("alice"), "m1", 429, 400));
        log.record(row(70_000, Some("bob"), "m2", 200, 8));
        // Bucket 2: one m3 anonymous; bucket 1 stays empty.
        log.record(row(185_000, None, "m3", 502, 2_000));
        // Outside the range.
        log.record(row(59_999, Some("alice"), "m1", 200, 1));
        log.record(row(240_000, Some("alice"), "m1", 200, 1));
        assert!(log.flush(Duration::from_secs(10)));
        let query = SeriesQuery {
            since_ms: 60_000,
            until_ms: 240_000,
            bucket_ms: 60_000,
            group_by: Some(GroupBy::Model),
            groups: 1,
        };
        let set = log.series(&query).expect("series");
        assert_eq!(set.buckets, vec![60_000, 120_000, 180_000]);
        let t = &set.total;
        assert_eq!(t.total.requests, 5);
        assert_eq!(t.total.errors, 2);
        assert_eq!(t.total.cost_nanos, 5_000);
        assert_eq!(t.total.prompt_tokens, 50);
        assert_eq!(
            t.points.iter().map(|p| p.requests).collect::<Vec<_>>(),
            vec![4, 0, 1]
        );
        assert_eq!(t.points[1].latency_p50_ms, None);
        // p50 of 4, 8, 40, 400: the 2nd fastest, 8 ms (alone in its bin).
        assert_eq!(t.points[0].latency_p50_ms, Some(8));
        assert_eq!(t.points[0].latency_p99_ms, Some(400));
        assert_eq!(t.points[2].latency_p99_ms, Some(2_000));
        // One named group (m1, the most requests), the rest summed in `other`.
        assert_eq!(set.groups.len(), 2);
        assert_eq!(set.groups[0].group.as_deref(), Some("m1"));
        assert_eq!(set.groups[0].total.requests, 3);
        assert_eq!(set.groups[0].total.errors, 1);
        assert!(set.groups[1].other);
        assert_eq!(
            set.groups[1]
                .points
                .iter()
                .map(|p| p.requests)
                .collect::<Vec<_>>(),
            vec![1, 0, 1]
        );

        // Per key, anonymous requests are the `None` group, not `other`.
        let by_key = log
            .series(&SeriesQuery {
                group_by: Some(GroupBy::Key),
                groups: 5,
                ..query.clone()
            })
            .expect("series");
        let names: Vec<_> = by_key
            .groups
            .iter()
            .map(|s| (s.group.clone(), s.other, s.total.requests))
            .collect();
        assert_eq!(
            names,
            vec![
                (Some("alice".to_owned()), false, 3),
                (None, false, 1),
                (Some("bob".to_owned()), false, 1),
            ]
        );

        // Without grouping: the total only.
        let plain = log
            .series(&SeriesQuery {
                group_by: None,
                ..query
            })
            .expect("series");
        assert!(plain.groups.is_empty());
        assert_eq!(plain.total, set.total);
    }

    /// Found by schemathesis (gateway/tests/openapi/run.sh): grouping a range without
    /// rows named no group and built `CASE ELSE 0 END`, a 500.
    #[test]
    fn grouping_a_range_without_rows_is_an_empty_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(&dir);
        log.record(row(50_000, Some("a"), "m", 200, 1));
        assert!(log.flush(Duration::from_secs(10)));
        for (group_by, groups) in [(GroupBy::Key, 1), (GroupBy::Model, 8), (GroupBy::Key, 0)] {
            let set = log
                .series(&SeriesQuery {
                    since_ms: 0,
                    until_ms: 10_000,
                    bucket_ms: 1_000,
                    group_by: Some(group_by),
                    groups,
                })
                .expect("series of an empty range");
            assert_eq!(set.buckets.len(), 10);
            assert_eq!(set.total.total.requests, 0);
            assert!(set.groups.is_empty(), "{:?}", set.groups);
        }
        // `groups: 0` over rows: all of them are `other`.
        let set = log
            .series(&SeriesQuery {
                since_ms: 0,
                until_ms: 60_000,
                bucket_ms: 10_000,
                group_by: Some(GroupBy::Key),
                groups: 0,
            })
            .expect("series");
        assert_eq!(set.total.total.requests, 1);
        assert_eq!(set.groups.len(), 1);
        assert!(set.groups[0].other);
        assert_eq!(set.groups[0].total.requests, 1);
    }

    #[test]
    fn a_range_of_too_many_buckets_keeps_the_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(&dir);
        log.record(row(10, Some("a"), "m", 200, 1));
        log.record(row(MAX_BUCKETS * 1_000 + 9_999, Some("a"), "m", 200, 1));
        assert!(log.flush(Duration::from_secs(10)));
        let set = log
            .series(&SeriesQuery {
                since_ms: 0,
                until_ms: MAX_BUCKETS * 1_000 + 10_000,
                bucket_ms: 1_000,
                group_by: None,
                groups: 0,
            })
            .expect("series");
        assert_eq!(set.buckets.len() as u64, MAX_BUCKETS);
        assert_eq!(set.total.total.requests, 1);
        assert_eq!(set.total.points.last().map(|p| p.requests), Some(1));
    }
}
