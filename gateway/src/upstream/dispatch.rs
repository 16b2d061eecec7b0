//! One request against its targets: order, cooldown, retries, fallback.
//!
//! For each target in weighted order: skip it if its breaker is open; if it is the
//! built-in mock, hand it back to the caller (the mock cannot fail); otherwise try it
//! up to `1 + max_retries` times, waiting with backoff between attempts on retryable
//! failures only. A client error (400, 404, 422, …) ends everything at once and goes
//! back to the client; any other failure moves on to the next target. When none is
//! left the client gets 502/503/504 naming the last failure; when every target was
//! cooling, 503 with `Retry-After`.
//!
//! What is sent is a [`Call`]: a chat request (translated per provider kind), or an
//! embeddings body (forwarded to the sibling `…/embeddings` endpoint of an
//! OpenAI-compatible provider). A target whose kind cannot serve the call (Anthropic
//! has no embeddings API) is skipped like a cooling one, without touching its breaker,
//! so a route can mix kinds; when no target of the model can serve it, the client gets
//! a 400 saying so. A legacy completion carries both its chat translation and the
//! client's body: an OpenAI-compatible provider gets the latter at `…/completions`, an
//! Anthropic one the former (see [`crate::openai::completions`]). A Messages request
//! (`/v1/messages`) mirrors that: an Anthropic provider gets the client's own body
//! (only `model` replaced) and its answer comes back as it was sent, a plain message
//! or the event stream, untranslated; any other provider gets the chat translation.
//! One that needs Anthropic (it uses server tools) is served by Anthropic targets
//! only, the others skipped like a kind that cannot serve embeddings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use aurora_schema::ProviderKind;

use crate::catalog::{Resolved, Target};
use crate::http::body::Response;
use crate::http::limits::Limits;
use crate::metrics::Metrics;
use crate::openai::types::{ChatCompletionRequest, Usage};
use crate::openai::ApiError;
use crate::upstream::breaker::Breakers;
use crate::upstream::buffered::{Hold, Pool};
use crate::upstream::client::HttpClient;
use crate::upstream::failure::{self, Failure, SizeLimit};
use crate::upstream::policy::UpstreamPolicy;
use crate::upstream::stream::StreamBounds;
use crate::upstream::{anthropic, balance, openai, retry, UpstreamClock};
use serde_json::{Map, Value};

/// Everything needed to call upstreams; one per server.
#[derive(Debug)]
pub struct Upstreams {
    /// Pooled client.
    pub client: HttpClient,
    /// Cooldown state per target.
    pub breakers: Breakers,
    /// Timeouts, retries, cooldown.
    pub policy: UpstreamPolicy,
    /// Size bounds of upstream answers and streams.
    pub limits: Limits,
    /// Upstream bytes held by all requests together.
    pub buffered: Arc<Pool>,
    rng: Mutex<fastrand::Rng>,
}

/// What is being sent upstream: one retry loop serves every kind of request.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// `/v1/chat/completions`, translated to the provider's protocol.
    Chat(&'a ChatCompletionRequest),
    /// `/v1/embeddings`: the client's body, sent with only `model` replaced.
    Embeddings(&'a Map<String, Value>),
    /// `/v1/completions`: the admitted chat translation (its one user message is the
    /// prompt after redaction) and the client's legacy body.
    Completions {
        /// What the policy admitted; sent to providers without a legacy endpoint.
        chat: &'a ChatCompletionRequest,
        /// The client's body, sent to OpenAI-compatible providers.
        legacy: &'a Map<String, Value>,
    },
    /// `/v1/messages`: the admitted chat translation and the client's Messages body.
    Messages {
        /// What the policy admitted; sent (translated) to non-Anthropic providers.
        chat: &'a ChatCompletionRequest,
        /// The client's body, passed through to Anthropic providers.
        native: &'a Map<String, Value>,
        /// The client's `anthropic-version` / `anthropic-beta`, sent with `native`
        /// (a missing version is [`anthropic::API_VERSION`]).
        headers: &'a [(&'static str, HeaderValue)],
        /// The request cannot be translated without loss that changes its meaning
        /// (server tools): only Anthropic providers may serve it.
        anthropic_only: bool,
    },
}

impl Call<'_> {
    /// Whether the answer is a stream (embeddings never are).
    fn is_stream(&self) -> bool {
        match self {
            Call::Chat(request)
            | Call::Completions { chat: request, .. }
            | Call::Messages { chat: request, .. } => request.is_stream(),
            Call::Embeddings(_) => false,
        }
    }

    /// Whether `target` (the mock or a provider) can serve this call at all.
    fn served_by(&self, target: &Target) -> bool {
        let anthropic = target.mock.is_none() && target.provider.kind == ProviderKind::Anthropic;
        match self {
            Call::Chat(_) | Call::Completions { .. } => true,
            Call::Messages { anthropic_only, .. } => anthropic || !anthropic_only,
            Call::Embeddings(_) => !anthropic,
        }
    }

    /// What the call is, for the logs.
    fn what(&self) -> &'static str {
        match self {
            Call::Chat(_) => "chat completions",
            Call::Embeddings(_) => "embeddings",
            Call::Completions { .. } => "completions",
            Call::Messages { .. } => "messages",
        }
    }

    /// The 400 when no target of the model can serve the call.
    fn unserved(&self) -> ApiError {
        let message = match self {
            Call::Messages { .. } => "No target of this model serves this request: it uses Anthropic server tools, which only an Anthropic provider runs.".to_owned(),
            _ => format!(
                "No target of this model serves {}: Anthropic providers have no {} API.",
                self.what(),
                self.what()
            ),
        };
        ApiError::bad_request(message)
            .with_param("model")
            .with_code("unsupported_model")
    }

    /// The URL to post to at a provider of `kind`: its endpoint, or for embeddings
    /// and OpenAI-compatible legacy completions its sibling (`…/chat/completions` →
    /// `…/embeddings`, `…/completions`).
    fn url(&self, endpoint: &str, kind: ProviderKind) -> String {
        let sibling = |name: &str| {
            let base = endpoint
                .strip_suffix("/chat/completions")
                .unwrap_or(endpoint);
            format!("{base}/{name}")
        };
        match (self, kind) {
            (Call::Chat(_) | Call::Messages { .. }, _)
            | (Call::Completions { .. }, ProviderKind::Anthropic) => endpoint.to_owned(),
            (Call::Embeddings(_), _) => sibling("embeddings"),
            (Call::Completions { .. }, _) => sibling("completions"),
        }
    }
}

/// What became of the request.
#[derive(Debug)]
pub enum Outcome {
    /// The chosen target is the built-in mock: the caller answers from it.
    Mock(Arc<Target>),
    /// A complete answer in OpenAI's shape, or for [`Call::Messages`] at an Anthropic
    /// target, Anthropic's.
    Plain {
        /// `chat.completion` JSON (for [`Call::Embeddings`], the `list` of embeddings;
        /// for a passed-through [`Call::Messages`], the Anthropic `message`).
        body: Bytes,
        /// Its usage, when reported.
        usage: Option<Usage>,
        /// Who answered.
        target: Arc<Target>,
        /// The body's share of the buffer pool: keep it until the answer is sent.
        hold: Hold,
    },
    /// A 200 stream, not yet read.
    Stream {
        /// The upstream body.
        body: Incoming,
        /// Who answers.
        target: Arc<Target>,
        /// Longest wait for the next chunk.
        idle: Duration,
    },
    /// The answer to send as is (a client error or the final upstream error).
    Failed(Response),
}

impl Upstreams {
    /// Upstream machinery with `policy`, `limits` and an already built client.
    pub fn new(client: HttpClient, policy: UpstreamPolicy, limits: Limits) -> Self {
        Self {
            client,
            breakers: Breakers::new(),
            policy,
            buffered: Pool::new(limits.max_buffered_upstream_bytes),
            limits,
            rng: Mutex::new(fastrand::Rng::new()),
        }
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, fastrand::Rng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the chat `request` against the targets of `resolved` (see the module docs).
    pub async fn dispatch(
        &self,
        resolved: &Resolved,
        request: &ChatCompletionRequest,
        metrics: &Metrics,
        clock: &UpstreamClock,
    ) -> Outcome {
        self.dispatch_call(resolved, Call::Chat(request), metrics, clock)
            .await
    }

    /// Runs `call` against the targets of `resolved` (see the module docs).
    pub async fn dispatch_call(
        &self,
        resolved: &Resolved,
        call: Call<'_>,
        metrics: &Metrics,
        clock: &UpstreamClock,
    ) -> Outcome {
        let order = balance::order(resolved, &mut self.rng());
        let mut last: Option<Failure> = None;
        let mut tried = 0usize;
        let mut unserved = 0usize;
        for target in &order {
            if !call.served_by(target) {
                tracing::debug!(target_id = %target.id, what = call.what(), "skipping a target that cannot serve the call");
                unserved += 1;
                continue;
            }
            let Some(_claim) = self.breakers.try_acquire(&target.id, Instant::now()) else {
                tracing::debug!(target_id = %target.id, "skipping a cooling target");
                continue;
            };
            if target.mock.is_some() {
                self.breakers.record_success(&target.id);
                return Outcome::Mock(Arc::clone(target));
            }
            tried += 1;
            clock.set_provider(&target.provider.name);
            match self
                .try_target(target, call, metrics, clock, tried > 1)
                .await
            {
                Ok(outcome) => {
                    self.breakers.record_success(&target.id);
                    return outcome;
                }
                Err(f) if f.is_client_error() => {
                    let Failure::Status { status, body, .. } = &f else {
                        return Outcome::Failed(failure::exhausted(&f, tried).into_response());
                    };
                    return Outcome::Failed(failure::passthrough(*status, body));
                }
                Err(f) => {
                    tracing::warn!(
                        target_id = %target.id,
                        error = %f.describe(),
                        "upstream target failed; trying the next one"
                    );
                    self.breakers.record_failure(
                        &target.id,
                        Instant::now(),
                        self.policy.cooldown_failures,
                        self.policy.cooldown(),
                    );
                    last = Some(f);
                }
            }
        }
        match last {
            Some(f) => Outcome::Failed(failure::exhausted(&f, tried).into_response()),
            None if unserved == order.len() => Outcome::Failed(call.unserved().into_response()),
            None => {
                let ids: Vec<&str> = order.iter().map(|t| &*t.id).collect();
                let wait = self.breakers.next_trial_in(&ids, Instant::now());
                Outcome::Failed(failure::all_cooling(wait).into_response())
            }
        }
    }

    /// Attempts on one target, with retries.
    async fn try_target(
        &self,
        target: &Arc<Target>,
        call: Call<'_>,
        metrics: &Metrics,
        clock: &UpstreamClock,
        fallback: bool,
    ) -> Result<Outcome, Failure> {
        let provider = &target.provider;
        let body = match (call, provider.kind) {
            (Call::Messages { native, .. }, ProviderKind::Anthropic) => {
                anthropic::native_body(native, &target.upstream_model)?
            }
            (Call::Chat(request), ProviderKind::Anthropic)
            | (Call::Completions { chat: request, .. }, ProviderKind::Anthropic) => {
                anthropic::request_body(request, &target.upstream_model)?
            }
            (Call::Completions { chat, legacy }, _) => {
                openai::legacy_completion_body(legacy, chat, &target.upstream_model)?
            }
            (Call::Chat(request) | Call::Messages { chat: request, .. }, _) => {
                openai::request_body(request, &target.upstream_model)?
            }
            (Call::Embeddings(body), _) => openai::passthrough_body(body, &target.upstream_model)?,
        };
        let url = call.url(&provider.endpoint, provider.kind);
        let timeout = provider.timeout;
        let retries = provider.max_retries;
        let max_wait = Duration::from_millis(self.policy.retry_max_ms);
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let span =
                crate::telemetry::attempt_span(&provider.name, &url, &target.id, attempt, fallback);
            let result = tracing::Instrument::instrument(
                self.attempt(target, &url, call, body.clone(), timeout),
                span.clone(),
            )
            .await;
            match &result {
                Ok(_) => crate::telemetry::record_attempt(&span, Some(200), None),
                Err(f) => {
                    let status = match f {
                        Failure::Status { status, .. } => Some(status.as_u16()),
                        _ => None,
                    };
                    crate::telemetry::record_attempt(&span, status, Some(f.kind()));
                }
            }
            clock.add(started.elapsed());
            let failure = match result {
                Ok(outcome) => return Ok(outcome),
                Err(f) => f,
            };
            metrics.upstream_error(&provider.name, failure.kind());
            if let Failure::TooLarge(limit) = failure {
                metrics.limit_exceeded(limit.label());
            }
            if !failure.retryable() || attempt >= retries {
                return Err(failure);
            }
            let asked = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = match asked {
                Some(wait) if wait > max_wait => return Err(failure),
                Some(wait) => wait,
                None => retry::backoff(
                    attempt,
                    Duration::from_millis(self.policy.retry_base_ms),
                    max_wait,
                    &mut self.rng(),
                ),
            };
            tracing::debug!(
                target_id = %target.id,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %failure.describe(),
                "retrying upstream"
            );
            let slept = Instant::now();
            tokio::time::sleep(wait).await;
            clock.add(slept.elapsed());
            attempt += 1;
        }
    }

    /// One HTTP exchange.
    async fn attempt(
        &self,
        target: &Arc<Target>,
        url: &str,
        call: Call<'_>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let provider = &target.provider;
        let stream = call.is_stream();
        let mut builder = Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            );
        let key = match (&provider.api_key, &provider.api_key_env) {
            (Some(key), _) => Some(key),
            (None, Some(var)) => return Err(Failure::MissingKey(var.clone())),
            (None, None) => None,
        };
        match provider.kind {
            ProviderKind::Anthropic => {
                match call {
                    Call::Messages { headers, .. } => {
                        if !headers.iter().any(|(name, _)| *name == "anthropic-version") {
                            builder = builder.header("anthropic-version", anthropic::API_VERSION);
                        }
                        for (name, value) in headers {
                            builder = builder.header(*name, value.clone());
                        }
                    }
                    _ => builder = builder.header("anthropic-version", anthropic::API_VERSION),
                }
                if let Some(key) = key {
                    let mut value = HeaderValue::from_str(key.expose())
                        .map_err(|_| Failure::MissingKey("(key has invalid characters)".into()))?;
                    value.set_sensitive(true);
                    builder = builder.header("x-api-key", value);
                }
            }
            _ => {
                if let Some(key) = key {
                    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                        .map_err(|_| Failure::MissingKey("(key has invalid characters)".into()))?;
                    value.set_sensitive(true);
                    builder = builder.header(http::header::AUTHORIZATION, value);
                }
            }
        }
        if let Some(headers) = builder.headers_mut() {
            crate::telemetry::inject(&tracing::Span::current(), headers);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| Failure::Protocol(format!("bad endpoint {url:?}: {e}")))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(Failure::Connect(error_chain(&e))),
            Ok(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            let retry_after = retry::retry_after(&parts.headers);
            let mut hold = self.buffered.hold();
            let body = self
                .read_body(body, deadline, &mut hold)
                .await
                .unwrap_or_default();
            return Err(Failure::Status {
                status: parts.status,
                body,
                retry_after,
            });
        }
        if stream {
            if parts.status != StatusCode::OK {
                return Err(Failure::Protocol(format!(
                    "stream answered {}",
                    parts.status
                )));
            }
            return Ok(Outcome::Stream {
                body,
                target: Arc::clone(target),
                idle: timeout,
            });
        }
        let mut hold = self.buffered.hold();
        let bytes = self.read_body(body, deadline, &mut hold).await?;
        let (body, usage) = match (call, provider.kind) {
            (Call::Embeddings(_), _) => {
                let usage = openai::read_embeddings(&bytes)?;
                (bytes, usage)
            }
            (Call::Messages { .. }, ProviderKind::Anthropic) => {
                let (usage, _cached) = anthropic::read_native_plain(&bytes)?;
                (bytes, Some(usage))
            }
            (Call::Chat(_) | Call::Completions { .. }, ProviderKind::Anthropic) => {
                let (body, usage) = anthropic::translate_plain(&bytes)?;
                (body, Some(usage))
            }
            // A `text_completion` has `choices` and `usage` as chat does.
            (Call::Chat(_) | Call::Completions { .. } | Call::Messages { .. }, _) => {
                let usage = openai::read_plain(&bytes)?;
                (bytes, usage)
            }
        };
        Ok(Outcome::Plain {
            body,
            usage,
            target: Arc::clone(target),
            hold,
        })
    }

    /// Reads a whole upstream body by `deadline`, refusing more than
    /// `max_upstream_body_bytes` and holding what it keeps in the shared pool.
    async fn read_body(
        &self,
        mut body: Incoming,
        deadline: tokio::time::Instant,
        hold: &mut Hold,
    ) -> Result<Bytes, Failure> {
        let limit = self.limits.max_upstream_body_bytes;
        let declared = http_body::Body::size_hint(&body).exact();
        if declared.is_some_and(|len| len > limit) {
            return Err(Failure::TooLarge(SizeLimit::Body));
        }
        let read = async {
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| Failure::Protocol(format!("reading the body: {e}")))?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                let total = (buf.len() + data.len()) as u64;
                if total > limit {
                    return Err(Failure::TooLarge(SizeLimit::Body));
                }
                hold.resize(total)
                    .map_err(|_| Failure::TooLarge(SizeLimit::Buffered))?;
                buf.extend_from_slice(&data);
            }
            Ok(Bytes::from(buf))
        };
        tokio::time::timeout_at(deadline, read)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    /// The bounds of a stream starting now.
    pub fn stream_bounds<'a>(&self, metrics: &'a Metrics) -> StreamBounds<'a> {
        StreamBounds {
            deadline: tokio::time::Instant::now() + self.limits.stream_max_duration(),
            max_bytes: self.limits.max_stream_bytes,
            max_event: Limits::bytes(self.limits.max_sse_event_bytes),
            hold: self.buffered.hold(),
            metrics,
        }
    }
}

/// The error and its causes on one line (hyper's top-level message alone is vague).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
