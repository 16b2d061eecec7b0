//! Admin queries over the usage log:
//!
//! - `GET /admin/api/usage?since=&until=&key=&model=&limit=` — rows, newest first;
//!   `since`/`until` in Unix milliseconds (`[since, until)`), `limit` 1–1000
//!   (default 100).
//! - `GET /admin/api/usage/summary?group_by=key|model&since=&until=` — totals per key
//!   or model, largest cost first.
//! - `GET /admin/api/usage/series?since=&until=&window=&bucket=&group_by=key|model&groups=`
//!   — per time bucket: requests, errors, tokens, spend, p50/p99 latency, in total and
//!   for the `groups` (1–20, default 8) largest keys or models plus `other`
//!   ([`super::series`]). `until` defaults to now, `since` to `until − window`
//!   (`window` a duration such as `15m`, `1h`, `24h`; default `1h`); `bucket` a
//!   duration from `1s` to `1d` (default `1m`), at most 1,440 buckets.
//!
//! Costs are reported both as exact nano-USD integers and as decimal USD strings (the
//! same representation as the pricing records). The handlers run the (indexed,
//! row-capped) SQLite query synchronously: a few milliseconds for rows and summaries,
//! up to about a second for a day's series on a large log, so the admin dispatcher
//! calls [`handle`] on a blocking thread, never on a runtime worker.
//!
//! Authentication is the admin API's: [`handle`] is meant to be called from the admin
//! dispatcher after the admin token was checked. [`routes`] lists the paths it serves.

use std::time::Duration;

use aurora_schema::Money;
use http::{Method, StatusCode};
use serde::Serialize;

use super::series::{Point, Series, SeriesQuery, DEFAULT_GROUPS, MAX_BUCKETS, MAX_GROUPS};
use super::{Filter, GroupBy, SummaryRow, UsageRow, MAX_LIMIT};
use crate::http::body::{json_ok, Response};
use crate::openai::ApiError;
use crate::state::AppState;

/// Paths served by [`handle`], for the admin dispatcher to mount.
pub fn routes() -> &'static [&'static str] {
    &[
        "/admin/api/usage",
        "/admin/api/usage/summary",
        "/admin/api/usage/series",
    ]
}

/// Serves `method path?query` if it is a usage path (`None` otherwise). The caller has
/// already checked the admin token.
pub fn handle(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Response> {
    if !routes().contains(&path) {
        return None;
    }
    if method != Method::GET {
        let mut response = ApiError::method_not_allowed(method, path, "GET").into_response();
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return Some(response);
    }
    Some(match serve(state, path, query.unwrap_or("")) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

#[derive(Serialize)]
struct RowOut<'a> {
    #[serde(flatten)]
    row: &'a UsageRow,
    cost_usd: String,
}

#[derive(Serialize)]
struct SummaryOut<'a> {
    #[serde(flatten)]
    row: &'a SummaryRow,
    cost_usd: String,
}

#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
}

#[derive(Serialize)]
struct Summary<'a> {
    object: &'static str,
    group_by: &'static str,
    data: Vec<SummaryOut<'a>>,
}

fn serve(state: &AppState, path: &str, query: &str) -> Result<Response, ApiError> {
    let Some(log) = state.policy.usage_log() else {
        return Err(ApiError::server_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The usage log is not enabled on this node.",
            "usage_log_disabled",
        ));
    };
    let params = Params::parse(query)?;
    // Make the requests just answered visible (bounded wait).
    log.flush(Duration::from_millis(500));
    let since_ms = params.number("since")?.unwrap_or(0);
    let until_ms = params.number("until")?.unwrap_or(i64::MAX as u64);
    let internal = |e: super::UsageLogError| {
        tracing::error!(error = %e, "usage log query failed");
        ApiError::internal()
    };
    if path.ends_with("/series") {
        return series(&log, &params);
    }
    if path.ends_with("/summary") {
        let group_by = params.group_by()?.unwrap_or(GroupBy::Key);
        let rows = log
            .summary(group_by, since_ms, until_ms)
            .map_err(internal)?;
        return Ok(json_ok(&Summary {
            object: "usage.summary",
            group_by: match group_by {
                GroupBy::Key => "key",
                GroupBy::Model => "model",
            },
            data: rows
                .iter()
                .map(|row| SummaryOut {
                    row,
                    cost_usd: Money::from_nanos(row.cost_nanos).to_string(),
                })
                .collect(),
        }));
    }
    let limit = match params.number("limit")? {
        None => 100,
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => n as u32,
        Some(_) => {
            return Err(
                ApiError::bad_request(format!("'limit' must be 1 to {MAX_LIMIT}."))
                    .with_param("limit"),
            )
        }
    };
    let filter = Filter {
        since_ms,
        until_ms,
        key: params.get("key").map(str::to_owned),
        model: params.get("model").map(str::to_owned),
        limit,
    };
    let rows = log.query(&filter).map_err(internal)?;
    Ok(json_ok(&List {
        object: "list",
        data: rows
            .iter()
            .map(|row| RowOut {
                row,
                cost_usd: Money::from_nanos(row.cost_nanos).to_string(),
            })
            .collect(),
    }))
}

#[derive(Serialize)]
struct PointOut<'a> {
    #[serde(flatten)]
    point: &'a Point,
    cost_usd: String,
}

impl<'a> PointOut<'a> {
    fn of(point: &'a Point) -> Self {
        Self {
            point,
            cost_usd: Money::from_nanos(point.cost_nanos).to_string(),
        }
    }
}

#[derive(Serialize)]
struct SeriesOut<'a> {
    group: Option<&'a str>,
    other: bool,
    total: PointOut<'a>,
    points: Vec<PointOut<'a>>,
}

impl<'a> SeriesOut<'a> {
    fn of(series: &'a Series) -> Self {
        Self {
            group: series.group.as_deref(),
            other: series.other,
            total: PointOut::of(&series.total),
            points: series.points.iter().map(PointOut::of).collect(),
        }
    }
}

#[derive(Serialize)]
struct SeriesDocument<'a> {
    object: &'static str,
    since: u64,
    until: u64,
    bucket_ms: u64,
    group_by: Option<&'static str>,
    buckets: &'a [u64],
    total: SeriesOut<'a>,
    groups: Vec<SeriesOut<'a>>,
}

/// The most a bucket or a window may span: a day, and 400 days.
const MAX_BUCKET_MS: u64 = 86_400_000;
const MAX_WINDOW_MS: u64 = 400 * 86_400_000;

fn series(log: &super::UsageLog, params: &Params) -> Result<Response, ApiError> {
    let until_ms = match params.number("until")? {
        Some(until) => until,
        None => crate::clock::wall_ms(),
    };
    let bucket_ms = params
        .duration("bucket", 1_000, MAX_BUCKET_MS)?
        .unwrap_or(60_000);
    let since_ms = match params.number("since")? {
        Some(since) => since,
        None => {
            let window = params
                .duration("window", 1_000, MAX_WINDOW_MS)?
                .unwrap_or(3_600_000);
            until_ms.saturating_sub(window)
        }
    };
    if since_ms >= until_ms {
        return Err(ApiError::bad_request("'since' must be before 'until'.").with_param("since"));
    }
    let groups = match params.number("groups")? {
        None => DEFAULT_GROUPS,
        Some(n) if (1..=u64::from(MAX_GROUPS)).contains(&n) => n as u32,
        Some(_) => {
            return Err(
                ApiError::bad_request(format!("'groups' must be 1 to {MAX_GROUPS}."))
                    .with_param("groups"),
            )
        }
    };
    let group_by = params.group_by()?;
    let query = SeriesQuery {
        since_ms,
        until_ms,
        bucket_ms,
        group_by,
        groups,
    };
    let (_, count) = query.buckets();
    if count > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "The range holds {count} buckets of {bucket_ms} ms; at most {MAX_BUCKETS}: choose a wider 'bucket' or a shorter range."
        ))
        .with_param("bucket"));
    }
    let set = log.series(&query).map_err(|e| {
        tracing::error!(error = %e, "usage series query failed");
        ApiError::internal()
    })?;
    Ok(json_ok(&SeriesDocument {
        object: "usage.series",
        since: since_ms,
        until: until_ms,
        bucket_ms,
        group_by: group_by.map(|g| match g {
            GroupBy::Key => "key",
            GroupBy::Model => "model",
        }),
        buckets: &set.buckets,
        total: SeriesOut::of(&set.total),
        groups: set.groups.iter().map(SeriesOut::of).collect(),
    }))
}

/// Decoded query parameters (the last occurrence of a name wins).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k)
                .ok_or_else(|| ApiError::bad_request("Malformed query string."))?;
            let v = percent_decode(v).ok_or_else(|| {
                ApiError::bad_request(format!("Malformed value of '{k}'.")).with_param(k.clone())
            })?;
            out.push((k, v));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn group_by(&self) -> Result<Option<GroupBy>, ApiError> {
        match self.get("group_by") {
            None => Ok(None),
            Some("key") => Ok(Some(GroupBy::Key)),
            Some("model") => Ok(Some(GroupBy::Model)),
            Some(_) => Err(
                ApiError::bad_request("'group_by' must be `key` or `model`.")
                    .with_param("group_by"),
            ),
        }
    }

    /// A duration such as `500ms`, `10s`, `5m`, `1h`, `1d` (a bare number is
    /// milliseconds), in milliseconds from `min` to `max`.
    fn duration(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let bad = || {
            ApiError::bad_request(format!(
                "'{name}' must be a duration such as `10s`, `5m`, `1h` or `1d`, from {min} to {max} ms."
            ))
            .with_param(name)
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let scale = match unit {
            "" | "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(scale).ok_or_else(bad)?;
        if !(min..=max).contains(&ms) {
            return Err(bad());
        }
        Ok(Some(ms))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "'{name}' must be a non-negative integer (Unix milliseconds for since/until)."
                    ))
                    .with_param(name)
                })
            })
            .transpose()
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; the
/// result must be UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
        let p = Params::parse("key=team%3Aa&limit=5&limit=7&model=").unwrap();
        assert_eq!(p.get("key"), Some("team:a"));
        assert_eq!(p.number("limit").unwrap(), Some(7));
        assert_eq!(p.get("model"), None);
        assert!(Params::parse("since=-1").unwrap().number("since").is_err());
    }

    #[test]
    fn durations_parse_with_their_units_and_bounds() {
        let p =
            Params::parse("a=10s&b=5m&c=1h&d=1d&e=250&f=2x&g=0s&h=99999999999999999999d").unwrap();
        let d = |name| p.duration(name, 1_000, 86_400_000);
        assert_eq!(d("a").unwrap(), Some(10_000));
        assert_eq!(d("b").unwrap(), Some(300_000));
        assert_eq!(d("c").unwrap(), Some(3_600_000));
        assert_eq!(d("d").unwrap(), Some(86_400_000));
        assert_eq!(d("missing").unwrap(), None);
        for bad in ["e", "f", "g", "h"] {
            let error = d(bad).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(bad));
        }
    }
}
