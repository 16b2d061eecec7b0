//! Request metrics, and `/metrics` ([`endpoint`]) with every series of the node.
//!
//! Counted here rather than in a metrics crate's registry: a handful of metric
//! families do not justify one, and owning the counters keeps label cardinality under
//! our control; the text is written by the one writer, [`exposition`]. Every label value comes from a bounded set (route patterns, names in the
//! catalog, provider names, error kinds, status codes): a request naming an unknown
//! model is labelled `""`, so a client sending random model names or paths cannot
//! blow up the series count.
//!
//! For requests that reached an upstream, the time spent waiting on it is recorded
//! (`aurora_upstream_duration_seconds`) and so is the rest, the gateway's own overhead
//! (`aurora_gateway_overhead_seconds` = total − upstream), which is the number a
//! gateway is judged by.
//!
//! A request is counted when its response body has been fully produced (or dropped,
//! if the client went away), so streamed completions are timed end to end and the
//! in-flight gauge covers streams still being written.

pub mod exposition;
pub mod history;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use exposition::{Exposition, Kind};

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implicit.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Upper bounds (seconds) of the gateway-overhead buckets: overhead is measured in
/// microseconds, so these start at 10 µs.
pub const OVERHEAD_BUCKETS: [f64; 14] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.5,
];

/// Labels of one finished request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// Route pattern, e.g. `/v1/chat/completions`, or `unmatched`.
    pub route: &'static str,
    /// Catalog name the model resolved to, or `""` when it did not resolve.
    pub model: Arc<str>,
    /// HTTP status code.
    pub status: u16,
}

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len() + 1],
            sum_seconds: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(self.bounds.len());
        self.buckets[slot] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut Exposition, label: &str, value: &str) {
        out.histogram(
            &[(label, &value)],
            self.bounds.iter().copied(),
            &self.buckets,
            self.sum_seconds,
        );
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<RequestLabels, u64>,
    latency: BTreeMap<&'static str, Histogram>,
    upstream_latency: BTreeMap<Arc<str>, Histogram>,
    overhead: BTreeMap<&'static str, Histogram>,
    upstream_errors: BTreeMap<(Arc<str>, &'static str), u64>,
    tokens: BTreeMap<(Arc<str>, &'static str), u64>,
    /// Chat requests by auth key id and status; at most [`MAX_KEY_LABELS`] key ids.
    key_requests: BTreeMap<(Arc<str>, u16), u64>,
    key_labels: std::collections::BTreeSet<Arc<str>>,
    /// Requests refused by the policy layer, by status and reason.
    rejections: BTreeMap<(u16, &'static str), u64>,
    /// Spend in nano-USD by model.
    cost_nanos: BTreeMap<Arc<str>, u64>,
    /// Requests or streams cut off by a bound of `gateway.limits`, by bound.
    limits: BTreeMap<&'static str, u64>,
    /// Answered requests charged an estimate (no usage reported), by final status.
    billed_estimates: BTreeMap<u16, u64>,
}

/// Most distinct key ids used as a label; later keys are counted under `_other`, so a
/// deployment with many keys cannot blow up the series count.
pub const MAX_KEY_LABELS: usize = 1_000;

/// The gateway's metrics. Cheap to update: one uncontended mutex per finished request
/// (fine at the rates of this slice; sharded counters can replace it without changing
/// the exposition).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
    /// Replicated providers left out of the catalog for their `api_key_env`.
    providers_refused: AtomicU64,
    /// Failed admin logins, by surface (`api`, `dashboard`).
    admin_auth_failures: [AtomicU64; 3],
    /// Admin requests answered 429 because their IP failed too often.
    admin_auth_limited: AtomicU64,
    /// Samples of the API routes' counters, for the admin UI ([`history`]).
    pub history: history::History,
}

/// Where an admin credential was presented (a bounded metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminSurface {
    /// `/admin/api/…` (bearer token).
    Api,
    /// `/admin/dashboard/…` (bearer or HTTP Basic).
    Dashboard,
    /// `/metrics` with `gateway.metrics_auth: admin`.
    Metrics,
}

impl AdminSurface {
    fn label(self) -> &'static str {
        match self {
            AdminSurface::Api => "api",
            AdminSurface::Dashboard => "dashboard",
            AdminSurface::Metrics => "metrics",
        }
    }
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

    /// A request finished after `elapsed`; `upstream` is the provider it reached and
    /// the time spent waiting on it, if it went upstream at all.
    pub fn request_finished(
        &self,
        labels: RequestLabels,
        elapsed: Duration,
        upstream: Option<(Arc<str>, Duration)>,
    ) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut inner = self.lock();
        let route = labels.route;
        *inner.requests.entry(labels).or_insert(0) += 1;
        inner
            .latency
            .entry(route)
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(elapsed.as_secs_f64());
        if let Some((provider, waited)) = upstream {
            inner
                .upstream_latency
                .entry(provider)
                .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(waited.as_secs_f64());
            inner
                .overhead
                .entry(route)
                .or_insert_with(|| Histogram::new(&OVERHEAD_BUCKETS))
                .observe(elapsed.saturating_sub(waited).as_secs_f64());
        }
    }

    /// One failed upstream attempt of `provider`, by failure kind.
    pub fn upstream_error(&self, provider: &Arc<str>, kind: &'static str) {
        *self
            .lock()
            .upstream_errors
            .entry((Arc::clone(provider), kind))
            .or_insert(0) += 1;
    }

    /// Tokens of one answer from `model` (a catalog name).
    pub fn tokens(&self, model: &Arc<str>, prompt: u32, completion: u32) {
        let mut inner = self.lock();
        for (direction, n) in [("input", prompt), ("output", completion)] {
            *inner
                .tokens
                .entry((Arc::clone(model), direction))
                .or_insert(0) += u64::from(n);
        }
    }

    /// One chat request of auth key `key` finished with `status`.
    pub fn key_request(&self, key: &Arc<str>, status: u16) {
        let mut inner = self.lock();
        let label = if inner.key_labels.contains(key) {
            Arc::clone(key)
        } else if inner.key_labels.len() < MAX_KEY_LABELS {
            inner.key_labels.insert(Arc::clone(key));
            Arc::clone(key)
        } else {
            Arc::from("_other")
        };
        *inner.key_requests.entry((label, status)).or_insert(0) += 1;
    }

    /// A request refused by the policy layer (401, 402, 403, 429, guardrails).
    pub fn policy_rejection(&self, status: u16, reason: &'static str) {
        *self.lock().rejections.entry((status, reason)).or_insert(0) += 1;
    }

    /// A request or stream was cut off by the bound `limit` (one of a fixed set:
    /// `body_read_timeout`, `stream_duration`, `upstream_body`, `upstream_stream`,
    /// `upstream_event`, `upstream_buffered`).
    pub fn limit_exceeded(&self, limit: &'static str) {
        *self.lock().limits.entry(limit).or_insert(0) += 1;
    }

    /// How often `limit` was hit so far.
    pub fn limit_count(&self, limit: &str) -> u64 {
        self.lock().limits.get(limit).copied().unwrap_or(0)
    }

    /// One answered request was charged an estimate because no usage was reported
    /// (the client left, the upstream broke, or it never sent usage); `status` is how
    /// it ended (200, 499, 502…: a handful of values).
    pub fn billed_estimate(&self, status: u16) {
        *self.lock().billed_estimates.entry(status).or_insert(0) += 1;
    }

    /// Spend of one request on `model`, in nano-USD.
    pub fn cost(&self, model: &Arc<str>, nanos: u64) {
        let mut inner = self.lock();
        let slot = inner.cost_nanos.entry(Arc::clone(model)).or_insert(0);
        *slot = slot.saturating_add(nanos);
    }

    /// Sets how many replicated providers are left out for their `api_key_env`.
    pub fn set_providers_refused(&self, n: u64) {
        self.providers_refused.store(n, Ordering::Relaxed);
    }

    /// One failed admin login on `surface`.
    pub fn admin_auth_failure(&self, surface: AdminSurface) {
        self.admin_auth_failures[surface as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One admin request refused (429) after too many failures from its IP.
    pub fn admin_auth_limited(&self) {
        self.admin_auth_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests currently being served (including streams still being written).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// These series as Prometheus text (a test's view; `/metrics` is [`endpoint`]).
    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        self.write(&mut out);
        out.into_string()
    }

    /// Writes these series into `out`.
    pub fn write(&self, out: &mut Exposition) {
        let inner = self.lock();
        out.family(
            "aurora_http_requests_total",
            "HTTP requests served, by route, model and status.",
            Kind::Counter,
        );
        for (l, n) in &inner.requests {
            out.sample(
                &[
                    ("route", &l.route),
                    ("model", &l.model),
                    ("status", &l.status),
                ],
                n,
            );
        }
        out.family(
            "aurora_http_request_duration_seconds",
            "Time from request start to the end of its response body.",
            Kind::Histogram,
        );
        for (route, h) in &inner.latency {
            h.write(out, "route", route);
        }
        out.family(
            "aurora_upstream_duration_seconds",
            "Time a request waited on upstreams (all attempts and retry waits), by the provider that served or last failed it.",
            Kind::Histogram,
        );
        for (provider, h) in &inner.upstream_latency {
            h.write(out, "provider", provider);
        }
        out.family(
            "aurora_gateway_overhead_seconds",
            "Total request time minus upstream time, for requests that reached an upstream.",
            Kind::Histogram,
        );
        for (route, h) in &inner.overhead {
            h.write(out, "route", route);
        }
        out.family(
            "aurora_upstream_errors_total",
            "Failed upstream attempts, by provider and kind (connect, timeout, rate_limited, server_error, auth, client_error, protocol, config, stream).",
            Kind::Counter,
        );
        for ((provider, kind), n) in &inner.upstream_errors {
            out.sample(&[("provider", provider), ("kind", kind)], n);
        }
        out.family(
            "aurora_tokens_total",
            "Tokens of answered requests, by model and direction (input, output).",
            Kind::Counter,
        );
        for ((model, direction), n) in &inner.tokens {
            out.sample(&[("model", model), ("direction", direction)], n);
        }
        out.family(
            "aurora_key_requests_total",
            "Chat requests by auth key id (at most 1000 ids, then `_other`) and status.",
            Kind::Counter,
        );
        for ((key, status), n) in &inner.key_requests {
            out.sample(&[("key", key), ("status", status)], n);
        }
        out.family(
            "aurora_policy_rejections_total",
            "Requests refused before going upstream, by status and reason (missing_key, unknown_key, key_disabled, key_expired, key_misconfigured, model_not_allowed, guardrail_denied, guardrail_input_too_large, budget_exceeded, max_parallel_requests, rpm_limit, tpm_limit).",
            Kind::Counter,
        );
        for ((status, reason), n) in &inner.rejections {
            out.sample(&[("status", status), ("reason", reason)], n);
        }
        out.family(
            "aurora_billed_estimates_total",
            "Answered requests charged an estimate (prompt + streamed tokens by the heuristic) because no usage was reported, by final status.",
            Kind::Counter,
        );
        for (status, n) in &inner.billed_estimates {
            out.sample(&[("status", status)], n);
        }
        out.family(
            "aurora_cost_nanousd_total",
            "Spend of answered requests in nano-USD (10^-9 USD, exact), by model.",
            Kind::Counter,
        );
        for (model, n) in &inner.cost_nanos {
            out.sample(&[("model", model)], n);
        }
        out.family(
            "aurora_limit_exceeded_total",
            "Requests and streams cut off by a bound of gateway.limits (body_read_timeout, stream_duration, upstream_body, upstream_stream, upstream_event, upstream_buffered).",
            Kind::Counter,
        );
        for (limit, n) in &inner.limits {
            out.sample(&[("limit", limit)], n);
        }
        drop(inner);
        out.single(
            "aurora_http_requests_in_flight",
            "Requests being served, streams included.",
            Kind::Gauge,
            self.in_flight(),
        );
        out.single(
            "aurora_replicated_providers_refused",
            "Replicated providers left out of the catalog because their api_key_env is outside gateway.provider_env_prefix.",
            Kind::Gauge,
            self.providers_refused.load(Ordering::Relaxed),
        );
        out.family(
            "aurora_admin_auth_failures_total",
            "Admin requests with a missing or wrong admin token, by surface.",
            Kind::Counter,
        );
        for surface in [
            AdminSurface::Api,
            AdminSurface::Dashboard,
            AdminSurface::Metrics,
        ] {
            out.sample(
                &[("surface", &surface.label())],
                self.admin_auth_failures[surface as usize].load(Ordering::Relaxed),
            );
        }
        out.single(
            "aurora_admin_auth_limited_total",
            "Admin requests refused (429) because their client IP failed to log in too often.",
            Kind::Counter,
            self.admin_auth_limited.load(Ordering::Relaxed),
        );
        out.family(
            "aurora_build_info",
            "Build information; the value is always 1.",
            Kind::Gauge,
        )
        .sample(&[("version", &env!("CARGO_PKG_VERSION"))], 1);
    }
}

/// `GET /metrics`: every series of the node, with Prometheus's content type: the
/// request metrics, each upstream target's breaker, the connection caps, buffered
/// upstream bytes, readiness, the usage log and the cluster.
pub fn endpoint(state: &crate::state::AppState) -> crate::http::body::Response {
    let mut out = Exposition::new();
    state.metrics.write(&mut out);
    out.family(
        "aurora_upstream_target_state",
        "Cooldown breaker of each upstream target that has failed: 0 closed, 1 open (cooling down), 2 half-open (trial allowed).",
        Kind::Gauge,
    );
    for (target, breaker) in state.upstreams.breakers.states(std::time::Instant::now()) {
        out.sample(&[("target", &target)], breaker.gauge());
    }
    state.connections.write_metrics(&mut out);
    state.cache.write_metrics(&mut out);
    if let Some(leases) = state.policy.leases() {
        leases.write_metrics(&mut out);
    }
    out.single(
        "aurora_upstream_buffered_bytes",
        "Upstream answer bytes held in memory now, all requests together (bounded by gateway.limits.max_buffered_upstream_bytes).",
        Kind::Gauge,
        state.upstreams.buffered.used(),
    );
    // What /health/ready answers now, one series per status (1 for the current one),
    // so an alert can tell "syncing for minutes" from "standby" (expected).
    let now = match crate::admission::readiness(state) {
        Ok(()) => "ready",
        Err(not) => not.status(),
    };
    out.family(
        "aurora_readiness",
        "What /health/ready answers: 1 for the current status (ready, standby, syncing, draining, driver_stopped), 0 for the others.",
        Kind::Gauge,
    );
    for status in ["ready", "standby", "syncing", "draining", "driver_stopped"] {
        out.sample(&[("status", &status)], u8::from(status == now));
    }
    if let Some(log) = state.policy.usage_log() {
        crate::usage::write_metrics(&log, &mut out);
    }
    crate::cluster::status::write_metrics(&state.cluster, &mut out);
    let mut response = http::Response::new(crate::http::body::full(out.into_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::new();
        let labels = RequestLabels {
            route: "/health",
            model: "".into(),
            status: 200,
        };
        for ms in [0, 3, 3, 700, 120_000] {
            m.request_started();
            m.request_finished(labels.clone(), Duration::from_millis(ms), None);
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
    fn overhead_is_total_minus_upstream() {
        let m = Metrics::new();
        let labels = RequestLabels {
            route: "/v1/chat/completions",
            model: "up/m".into(),
            status: 200,
        };
        m.request_started();
        m.request_finished(
            labels,
            Duration::from_micros(10_040),
            Some(("up".into(), Duration::from_millis(10))),
        );
        m.upstream_error(&"up".into(), "timeout");
        m.tokens(&"up/m".into(), 3, 5);
        let text = m.render();
        assert!(text.contains(
            "aurora_gateway_overhead_seconds_bucket{route=\"/v1/chat/completions\",le=\"0.00005\"} 1"
        ));
        assert!(text.contains(
            "aurora_gateway_overhead_seconds_bucket{route=\"/v1/chat/completions\",le=\"0.000025\"} 0"
        ));
        assert!(
            text.contains("aurora_upstream_duration_seconds_bucket{provider=\"up\",le=\"0.01\"} 1")
        );
        assert!(text.contains("aurora_upstream_errors_total{provider=\"up\",kind=\"timeout\"} 1"));
        assert!(text.contains("aurora_tokens_total{model=\"up/m\",direction=\"output\"} 5"));
    }

    #[test]
    fn key_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_KEY_LABELS + 5 {
            m.key_request(&Arc::from(format!("k{i}")), 200);
        }
        m.key_request(&Arc::from("k0"), 200);
        m.policy_rejection(401, "unknown_key");
        m.cost(&"m".into(), 1_500);
        m.cost(&"m".into(), 500);
        let text = m.render();
        assert!(text.contains("aurora_key_requests_total{key=\"k0\",status=\"200\"} 2"));
        assert!(text.contains("aurora_key_requests_total{key=\"_other\",status=\"200\"} 5"));
        assert!(text
            .contains("aurora_policy_rejections_total{status=\"401\",reason=\"unknown_key\"} 1"));
        assert!(text.contains("aurora_cost_nanousd_total{model=\"m\"} 2000"));
    }
}
