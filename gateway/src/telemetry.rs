//! OpenTelemetry traces: spans of each client request exported over OTLP/HTTP.
//!
//! Off by default. With no OTLP endpoint configured nothing here is installed: no
//! `tracing-opentelemetry` layer, no exporter thread, and the helpers below return at
//! once on one relaxed atomic load ([`enabled`]), so a node without traces does no more
//! work than before.
//!
//! With an endpoint, [`Telemetry::start`] builds a batch span exporter that posts
//! OTLP/HTTP JSON to `{endpoint}/v1/traces` through the gateway's own hyper client
//! ([`OtlpClient`], no reqwest or tonic), and hands back a layer for the existing
//! tracing subscriber. Spans then exist per client request:
//!
//! - `aurora.request` ([`request_span`]): `gen_ai.operation.name`, the models, token
//!   usage, `aurora.cost_usd`, `http.response.status_code`; its parent is the
//!   incoming W3C `traceparent`, when there is a valid one;
//! - `aurora.policy` ([`policy_span`]): admission (keys, guardrails, limits, budgets);
//! - `aurora.upstream.attempt` ([`attempt_span`]): one per HTTP exchange with a
//!   provider, retries and fallbacks included; the request sent carries a
//!   `traceparent` naming this span ([`inject`]), so the provider's trace joins ours.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether a layer was installed in this process (set by [`Telemetry::start`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: the helpers do nothing when not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where and as whom to export.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The OTLP/HTTP base URL (`http://collector:4318`); `/v1/traces` is appended
    /// unless the URL already ends with it. `None`: traces are off.
    pub otlp_endpoint: Option<String>,
    /// The node id, exported as `service.instance.id` and `aurora.node_id`.
    pub node_id: Option<String>,
}

/// `gateway.telemetry` of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// As [`Settings::otlp_endpoint`]; `--otlp-endpoint` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` win over it.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

/// The service name every span is exported under.
pub const SERVICE_NAME: &str = "aurora";

/// Why traces could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built (a bad endpoint URL, for one).
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
    /// The HTTP client or its runtime could not be built.
    #[error("the OTLP HTTP client: {0}")]
    Client(String),
}

/// The running exporter; keep it for the life of the process and [`Telemetry::shutdown`]
/// it at the end so the last spans go out.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts exporting per `settings`: `Ok(None)` when no endpoint is set (traces off).
    pub fn start(settings: &Settings) -> Result<Option<Telemetry>, TelemetryError> {
        let Some(endpoint) = settings.otlp_endpoint.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if endpoint.is_empty() {
            return Ok(None);
        }
        let endpoint = traces_url(endpoint);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpClient::new()?)
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let mut resource = Resource::builder_empty().with_service_name(SERVICE_NAME);
        if let Some(node) = &settings.node_id {
            resource = resource.with_attributes([
                KeyValue::new("service.instance.id", node.clone()),
                KeyValue::new("aurora.node_id", node.clone()),
            ]);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry { provider }))
    }

    /// The layer to add to the tracing subscriber.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(SERVICE_NAME))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
    }

    /// Exports every finished span now (tests; shutdown does it too).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans failed");
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "stopping the span exporter failed");
        }
    }
}

/// `{base}/v1/traces`, unless `base` already names that path.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// `gen_ai.operation.name` of a client route label (`/v1/chat/completions` → `chat`).
pub fn operation_name(route: &str) -> Option<&'static str> {
    Some(match route {
        "/v1/chat/completions" | "/v1/messages" => "chat",
        "/v1/embeddings" => "embeddings",
        "/v1/completions" => "text_completion",
        "/v1/responses" => "responses",
        _ => return None,
    })
}

/// The span of one client request on `route` (a route label), child of the incoming
/// `traceparent` in `headers` when valid; disabled when traces are off or the route
/// is not a client API call.
pub fn request_span(route: &str, headers: &HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let Some(operation) = operation_name(route) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        "aurora.request",
        otel.name = format!("{operation} {route}"),
        otel.kind = "server",
        gen_ai.operation.name = operation,
        http.route = route,
        gen_ai.request.model = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        aurora.cost_usd = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // An absent or invalid traceparent extracts an empty context: the span is a root.
    let _ = span.set_parent(parent);
    span
}

/// Records the HTTP status the client got on the request span.
pub fn record_status(span: &Span, status: u16) {
    if enabled() {
        span.record("http.response.status_code", i64::from(status));
    }
}

/// Records the model the client asked for on the current (request) span.
pub fn record_request_model(model: &str) {
    if enabled() {
        Span::current().record("gen_ai.request.model", model);
    }
}

/// Records the settled answer on `span` (the request span): who answered, tokens, cost.
pub fn record_settled(
    span: &Span,
    response_model: Option<&str>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
) {
    if !enabled() {
        return;
    }
    if let Some(model) = response_model {
        span.record("gen_ai.response.model", model);
    }
    span.record("gen_ai.usage.input_tokens", as_int(input_tokens));
    span.record("gen_ai.usage.output_tokens", as_int(output_tokens));
    span.record("aurora.cost_usd", cost_usd);
}

/// `n` as an OTLP int (tracing-opentelemetry exports a `u64` as a string).
fn as_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The admission span, child of the current (request) span.
pub fn policy_span() -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!("aurora.policy", otel.name = "policy")
}

/// The response-cache lookup span, child of the current (request) span; its
/// `aurora.cache.result` (hit, miss) is recorded by [`record_cache`].
pub fn cache_span() -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "aurora.cache",
        otel.name = "cache",
        aurora.cache.result = tracing::field::Empty
    )
}

/// Records how the lookup of `span` ([`cache_span`]) went.
pub fn record_cache(span: &Span, result: &'static str) {
    if enabled() {
        span.record("aurora.cache.result", result);
    }
}

/// The span of one upstream attempt: `attempt` counts from 0 on a target (above 0:
/// a retry), `fallback` says an earlier target of the request already failed.
pub fn attempt_span(
    provider: &str,
    endpoint: &str,
    target_id: &str,
    attempt: u32,
    fallback: bool,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let server = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let address = server.rsplit_once(':').map_or(server, |(host, _)| host);
    tracing::info_span!(
        "aurora.upstream.attempt",
        otel.name = format!("upstream {provider}"),
        otel.kind = "client",
        gen_ai.system = provider,
        server.address = address,
        aurora.target_id = target_id,
        aurora.attempt = i64::from(attempt),
        aurora.retry = attempt > 0,
        aurora.fallback = fallback,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Records how an attempt ended on its span.
pub fn record_attempt(span: &Span, status: Option<u16>, error: Option<&str>) {
    if !enabled() {
        return;
    }
    if let Some(status) = status {
        span.record("http.response.status_code", i64::from(status));
    }
    if let Some(error) = error {
        span.record("error.type", error);
    }
}

/// Writes `span`'s W3C `traceparent` (and `tracestate`) into `headers` of a request
/// going upstream.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The exporter's HTTP client: the gateway's hyper client (TLS included) on a small
/// runtime of its own, because the batch exporter calls it from its own thread with
/// no tokio runtime around it.
#[derive(Debug, Clone)]
pub struct OtlpClient {
    client: crate::upstream::client::HttpClient,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// Longest wait for one export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl OtlpClient {
    fn new() -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aurora-otlp")
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Client(e.to_string()))?;
        // Built inside the runtime: the connector's timers belong to it.
        let client = {
            let _inside = runtime.enter();
            crate::upstream::client::build(Duration::from_secs(5))
                .map_err(|e| TelemetryError::Client(e.to_string()))?
        };
        Ok(Self {
            client,
            runtime: Arc::new(runtime),
        })
    }
}

impl opentelemetry_http::HttpClient for OtlpClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Response<Bytes>, HttpError>> + Send + 'b>,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let request = request.map(Full::new);
            let response = tokio::time::timeout(EXPORT_TIMEOUT, client.request(request))
                .await
                .map_err(|_| "the OTLP export timed out")??;
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(EXPORT_TIMEOUT, body.collect())
                .await
                .map_err(|_| "reading the OTLP answer timed out")??
                .to_bytes();
            Ok::<_, HttpError>(http::Response::from_parts(parts, body))
        });
        Box::pin(async move { task.await.map_err(|e| Box::new(e) as HttpError)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_path_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn no_endpoint_starts_nothing() {
        assert!(Telemetry::start(&Settings::default()).unwrap().is_none());
        let blank = Settings {
            otlp_endpoint: Some("  ".into()),
            node_id: None,
        };
        assert!(Telemetry::start(&blank).unwrap().is_none());
        assert!(!enabled());
        assert!(request_span("/v1/chat/completions", &HeaderMap::new()).is_none());
    }

    #[test]
    fn an_unusable_endpoint_is_an_error_not_a_panic() {
        let bad = Settings {
            otlp_endpoint: Some("http://bad host:4318".into()),
            node_id: None,
        };
        assert!(matches!(
            Telemetry::start(&bad),
            Err(TelemetryError::Exporter(_))
        ));
    }

    #[test]
    fn operation_names_follow_the_genai_conventions() {
        assert_eq!(operation_name("/v1/chat/completions"), Some("chat"));
        assert_eq!(operation_name("/v1/embeddings"), Some("embeddings"));
        assert_eq!(operation_name("/health"), None);
    }
}
