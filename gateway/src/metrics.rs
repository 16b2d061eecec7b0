//! Request metrics and their Prometheus text exposition.
//!
//! Written by hand rather than with a metrics crate: three metric families do not
//! justify a registry, and owning the exposition keeps label cardinality under our
//! control. Every label value is a `&'static str` from a fixed set (route patterns,
//! catalog model ids, status codes), so a client sending random model names or paths
//! cannot blow up the series count.
//!
//! A request is counted when its response body has been fully produced (or dropped,
//! if the client went away), so streamed completions are timed end to end and the
//! in-flight gauge covers streams still being written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implicit.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Labels of one finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// Route pattern, e.g. `/v1/chat/completions`, or `unmatched`.
    pub route: &'static str,
    /// Catalog model id, or `""` when the request did not resolve to a model.
    pub model: &'static str,
    /// HTTP status code.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<RequestLabels, u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// The gateway's metrics. Cheap to update: one uncontended mutex per finished request
/// (fine at the rates of this slice; sharded counters can replace it without changing
/// the exposition).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves counters that are still valid numbers,
        // so recover instead of propagating the poison.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request started.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request finished after `elapsed`.
    pub fn request_finished(&self, labels: RequestLabels, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut inner = self.lock();
        *inner.requests.entry(labels).or_insert(0) += 1;
        inner
            .latency
            .entry(labels.route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Requests currently being served (including streams still being written).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(
            out,
            "# HELP aurora_http_requests_total HTTP requests served, by route, model and status."
        );
        let _ = writeln!(out, "# TYPE aurora_http_requests_total counter");
        for (l, n) in &inner.requests {
            let _ = writeln!(
                out,
                "aurora_http_requests_total{{route=\"{}\",model=\"{}\",status=\"{}\"}} {n}",
                escape(l.route),
                escape(l.model),
                l.status
            );
        }
        let _ = writeln!(
            out,
            "# HELP aurora_http_request_duration_seconds Time from request start to the end of its response body."
        );
        let _ = writeln!(out, "# TYPE aurora_http_request_duration_seconds histogram");
        for (route, h) in &inner.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = writeln!(
                    out,
                    "aurora_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += h.buckets[LATENCY_BUCKETS.len()];
            let _ = writeln!(
                out,
                "aurora_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "aurora_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "aurora_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        drop(inner);
        let _ = writeln!(
            out,
            "# HELP aurora_http_requests_in_flight Requests being served, streams included."
        );
        let _ = writeln!(out, "# TYPE aurora_http_requests_in_flight gauge");
        let _ = writeln!(out, "aurora_http_requests_in_flight {}", self.in_flight());
        let _ = writeln!(
            out,
            "# HELP aurora_build_info Build information; the value is always 1."
        );
        let _ = writeln!(out, "# TYPE aurora_build_info gauge");
        let _ = writeln!(
            out,
            "aurora_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        out
    }
}

/// `GET /metrics`: the exposition with Prometheus's content type.
pub fn endpoint(state: &crate::state::AppState) -> crate::http::body::Response {
    let mut response = http::Response::new(crate::http::body::full(state.metrics.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Escapes a label value as the exposition format requires (`\`, `"`, newline).
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::new();
        let labels = RequestLabels {
            route: "/health",
            model: "",
            status: 200,
        };
        for ms in [0, 3, 3, 700, 120_000] {
            m.request_started();
            m.request_finished(labels, Duration::from_millis(ms));
        }
        let text = m.render();
        assert!(text
            .contains("aurora_http_requests_total{route=\"/health\",model=\"\",status=\"200\"} 5"));
        assert!(text.contains(
            "aurora_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "aurora_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.005\"} 3"
        ));
        assert!(text.contains(
            "aurora_http_request_duration_seconds_bucket{route=\"/health\",le=\"60\"} 4"
        ));
        assert!(text.contains(
            "aurora_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 5"
        ));
        assert!(text.contains("aurora_http_request_duration_seconds_count{route=\"/health\"} 5"));
        assert!(text.contains("aurora_http_requests_in_flight 0"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
