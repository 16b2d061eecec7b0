//! `POST /v1/chat/completions`, plain and streamed.
//!
//! Authentication runs first, from the headers alone ([`crate::policy`]: 401/403), so
//! an unauthenticated client costs no body read. Validation then runs in the order a
//! client can act on: body size (413), JSON syntax,
//! then the required `model` and `messages` (400 with `param` naming the field), then
//! field types (400 with the JSON path, e.g. `messages[0].role`), then the model
//! (404 `model_not_found`, looked up in the catalog: a `provider/model` name, an alias
//! or a route), then the key's model list, guardrails, budget and rate limits
//! (403/400/413/402/429, [`crate::policy::Policy::admit`]; redaction rewrites the
//! request here). Only then is a provider called: the built-in mock answers here, any
//! other target goes through [`crate::upstream::dispatch`] (retries, fallbacks,
//! cooldown) and its answer is forwarded, translated where the protocol differs.
//! Once admitted, the request is answered by a [`RunToEnd`], so a client that goes
//! away (hyper then drops this handler) cannot stop an upstream call that will be
//! billed anyway, nor the settle. When the answer is complete (for streams: when the
//! stream ends, or breaks, or the client leaves) the request is settled exactly once
//! by its [`Bill`]: priced, charged to its budget and written to the usage log — with
//! the reported usage, or an estimate when the answer was cut short.
//!
//! The mock's streams follow OpenAI's event sequence exactly: a first chunk with
//! `delta.role`, one chunk per text piece, a chunk with an empty delta and the
//! `finish_reason`, then — only if `stream_options.include_usage` — a chunk with
//! `choices: []` and `usage`, then `data: [DONE]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use serde_json::{Map, Value};

use crate::cache::{Answer, Cache, CacheKey, CallKind, Directive, Gate};
use crate::catalog::Resolved;
use crate::catalog::Target;
use crate::clock::unix_seconds;
use crate::http::body::{
    held, json_ok, json_response, read_limited, ChannelBody, ModelLabel, Response, UpstreamTiming,
};
use crate::openai::billing::{completion_tokens_in, Bill, CLIENT_GONE};
use crate::openai::run_to_end::RunToEnd;
use crate::openai::types::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice,
    ChunkChoice, Delta, Usage,
};
use crate::openai::ApiError;
use crate::policy::{cached_tokens_in, Allowance, Caller, Rejection, TokenUsage};
use crate::provider::mock::{self, Completion, MockModel, MockParams};
use crate::state::AppState;
use crate::upstream::anthropic::{self, AnthropicStream, NativeStream};
use crate::upstream::dispatch::{Call, Outcome};
use crate::upstream::openai::OpenAiStream;
use crate::upstream::stream::{pump, send_bounded, End, Stopped, Translator};
use crate::upstream::UpstreamClock;
use aurora_schema::ProviderKind;

/// Chunks buffered between the producer and the socket: enough to keep the writer
/// busy, small enough that a slow reader applies back-pressure quickly.
const STREAM_BUFFER: usize = 16;

/// Serves one chat completion request.
pub async fn handle<B>(state: &Arc<AppState>, request: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let caller = match crate::admission::authenticate(state, &parts.headers) {
        Ok(caller) => caller,
        Err(rejection) => return refuse(state, &rejection, None, "", started),
    };
    let bytes = match read_limited(
        &parts.headers,
        body,
        state.config.max_body_bytes,
        state.config.limits.body_read_timeout(),
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let request = match parse(&bytes) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    serve(
        state,
        &caller,
        request,
        Directive::of(&parts.headers),
        started,
    )
    .await
}

/// Answers an authenticated, parsed chat request: model lookup, policy, the provider,
/// the bill (every step after the body is read, see the module docs). The other client
/// dialects translate their request into chat and answer through here (`/v1/responses`)
/// or [`serve_call`] (`/v1/completions`, `/v1/messages`), so they share routing,
/// policy and billing with chat.
pub async fn serve(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ChatCompletionRequest,
    cache: Directive,
    started: Instant,
) -> Response {
    serve_call(state, caller, request, None, cache, started).await
}

/// The client's own body, kept beside its chat translation by a dialect whose body
/// some providers are sent as it came.
#[derive(Clone, Debug)]
pub enum Original {
    /// `/v1/completions`: the legacy body, sent to OpenAI-compatible targets, which
    /// answer in the legacy shape ([`Call::Completions`]).
    Completions(Map<String, Value>),
    /// `/v1/messages`: the Messages body, passed through to Anthropic targets, which
    /// answer in Anthropic's shape, marked [`Untranslated`] ([`Call::Messages`]).
    Messages {
        /// The body as the client sent it.
        body: Map<String, Value>,
        /// The client's `anthropic-version` and `anthropic-beta` headers, sent with
        /// the body (the body may use what they enable).
        headers: Vec<(&'static str, HeaderValue)>,
        /// It uses what only Anthropic runs (server tools): no other target serves it.
        anthropic_only: bool,
    },
}

/// Marks an answer that an Anthropic target gave to a passed-through Messages request:
/// its body (plain or stream) is already in Anthropic's shape, not chat's.
#[derive(Clone, Copy, Debug)]
pub struct Untranslated;

/// [`serve`] for a request that also has its client's `original` body
/// (`/v1/completions`, `/v1/messages`): the targets that speak that dialect natively
/// are sent that body instead of the chat translation, and answer in the dialect's
/// shape (see [`Original`]).
pub async fn serve_call(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ChatCompletionRequest,
    original: Option<Original>,
    cache: Directive,
    started: Instant,
) -> Response {
    let response = serve_admitted(state, caller, request, original, cache, started).await;
    with_rate_headers(state, caller, response)
}

/// Adds the `x-ratelimit-*` headers of `caller`'s key to `response` (any answer,
/// refusals too: see [`crate::policy::RateHeaders`]).
pub fn with_rate_headers(state: &AppState, caller: &Caller, mut response: Response) -> Response {
    if let Some(headers) = state.policy.rate_headers(&state.state_view, caller) {
        headers.apply(response.headers_mut());
    }
    response
}

async fn serve_admitted(
    state: &Arc<AppState>,
    caller: &Caller,
    mut request: ChatCompletionRequest,
    original: Option<Original>,
    cache: Directive,
    started: Instant,
) -> Response {
    // `?key=value` options after the name tune the mock (latency, length).
    let (name, options) = match request.model.split_once('?') {
        Some((name, options)) => (name, Some(options)),
        None => (request.model.as_str(), None),
    };
    crate::telemetry::record_request_model(name);
    let snapshot = state.catalog.load();
    let Some(resolved) = snapshot.resolve(name) else {
        return ApiError::model_not_found(&request.model).into_response();
    };
    let upstream_targets = resolved
        .targets
        .iter()
        .map(|(t, _)| t)
        .chain(&resolved.fallbacks)
        .any(|t| t.mock.is_none());
    if options.is_some() && upstream_targets {
        return ApiError::bad_request(
            "Options after `?` in the model name apply to mock models only.",
        )
        .with_param("model")
        .into_response();
    }
    let mock_params = match mock::params(options, state.config.mock) {
        Ok(params) => params,
        Err(message) => {
            return ApiError::bad_request(message)
                .with_param("model")
                .into_response()
        }
    };
    let label = Arc::clone(&resolved.label);
    let name = name.to_owned();
    let priced_as: Vec<Arc<str>> = resolved
        .targets
        .iter()
        .map(|(t, _)| t)
        .chain(&resolved.fallbacks)
        .map(|t| Arc::clone(&t.id))
        .collect();
    let allowance = Allowance {
        output_tokens: state
            .config
            .budgets
            .output_tokens_for(&name, priced_as.iter().map(|t| &**t)),
        priced_as: &priced_as,
    };
    // A budget whose request limit is leased: the request's unit first (the first
    // requests of a period wait briefly for their grant).
    let prepared = state
        .policy
        .ready(&state.state_view, caller, &request, &name, &allowance)
        .await;
    // Admission (and a refusal) in the policy span; no await until it is left.
    let policy_span = crate::telemetry::policy_span();
    let in_policy = policy_span.enter();
    let ticket = match state.policy.admit_prepared(
        &state.state_view,
        caller,
        &mut request,
        &name,
        &allowance,
        prepared,
    ) {
        Ok(ticket) => ticket,
        Err(rejection) => {
            let mut response = refuse(state, &rejection, caller.key_id(), &name, started);
            response.extensions_mut().insert(ModelLabel(label));
            return response;
        }
    };
    drop(in_policy);
    let mut bill = Bill::new(state, ticket, &request);
    // The response cache, after admission (a hit is refused what a miss would be) and
    // on the request as admitted (redaction has rewritten it).
    let key_id = caller.key_id().map(|k| &**k);
    let pass = match state
        .cache
        .gate(cache, key_id, &name, |scope| match &original {
            None => CacheKey::of(scope, key_id, CallKind::Chat, &request, None),
            Some(Original::Completions(legacy)) => {
                CacheKey::of(scope, key_id, CallKind::Completions, &request, Some(legacy))
            }
            // An Anthropic target answers the client's own body in Anthropic's shape,
            // with what its headers enable: both are part of what makes the answer.
            Some(Original::Messages { body, headers, .. }) => {
                let mut native = Map::new();
                // `metadata.user_id` says who asks, not what.
                let body = crate::cache::key::without_caller_fields(body);
                native.insert("body".into(), Value::Object(body));
                let headers = headers
                    .iter()
                    .map(|(name, value)| {
                        Value::from(vec![*name, value.to_str().unwrap_or_default()])
                    })
                    .collect();
                native.insert("headers".into(), Value::Array(headers));
                CacheKey::of(scope, key_id, CallKind::Messages, &request, Some(&native))
            }
        })
        .await
    {
        Gate::Hit(answer) => return hit(answer, bill, label),
        Gate::Pass(pass) => pass,
    };
    if pass.looked() {
        bill.cache_missed();
    }
    let clock = Arc::new(UpstreamClock::default());
    // From here on the request runs to its end even if this handler is dropped (the
    // client went away): the upstream answers, the bill settles (see the module docs).
    // In the request's span even when it finishes in a task of its own.
    let answered = answer(
        Arc::clone(state),
        resolved.clone(),
        (request, original),
        mock_params,
        Arc::clone(&label),
        bill,
        Arc::clone(&clock),
    );
    // A fill records the answer as it goes out and stores it at the key's owner.
    let mut response = RunToEnd::new(tracing::Instrument::in_current_span(async move {
        pass.wrap(answered.await)
    }))
    .await;
    response.extensions_mut().insert(ModelLabel(label));
    if clock.provider().is_some() {
        response.extensions_mut().insert(UpstreamTiming(clock));
    }
    response
}

/// The answer of a cache hit: settled at no cost, labelled for the metrics.
pub fn hit(answer: Arc<Answer>, bill: Bill, label: Arc<str>) -> Response {
    bill.finish_cached(answer.status);
    let mut response = Cache::hit_response(&answer);
    response.extensions_mut().insert(ModelLabel(label));
    response
}

/// A refusal by the policy layer: counted, logged, answered.
pub fn refuse(
    state: &AppState,
    rejection: &Rejection,
    key_id: Option<&Arc<str>>,
    model: &str,
    started: Instant,
) -> Response {
    state
        .policy
        .rejected(&state.metrics, rejection, key_id, model, started);
    rejection.error.clone().into_response()
}

/// Calls the provider for an admitted request and settles its `bill`; runs to its
/// end even when the client goes away ([`RunToEnd`]).
async fn answer(
    state: Arc<AppState>,
    resolved: Resolved,
    // The admitted request, and the client's body it came from, if any.
    (request, original): (ChatCompletionRequest, Option<Original>),
    mock_params: MockParams,
    label: Arc<str>,
    mut bill: Bill,
    clock: Arc<UpstreamClock>,
) -> Response {
    let call = match &original {
        Some(Original::Completions(legacy)) => Call::Completions {
            chat: &request,
            legacy,
        },
        // The client's Messages body holds the text as it was before a guardrail
        // rewrote it (redaction): it is never sent then, every target gets the
        // admitted translation instead.
        Some(Original::Messages {
            body,
            headers,
            anthropic_only,
        }) if !bill.rewrote_input() => Call::Messages {
            chat: &request,
            native: body,
            headers,
            anthropic_only: *anthropic_only,
        },
        Some(Original::Messages {
            anthropic_only: true,
            ..
        }) => {
            bill.finish(400, None);
            return ApiError::bad_request(
                "A guardrail rewrote this request, so it cannot be passed through to Anthropic as sent, and its server tools have no translation.",
            )
            .with_param("tools")
            .with_code("unsupported_parameter")
            .into_response();
        }
        _ => Call::Chat(&request),
    };
    // Whether `target`'s answer is the Anthropic answer to the client's own body.
    let passed_through = |target: &Target| {
        matches!(call, Call::Messages { .. })
            && target.mock.is_none()
            && target.provider.kind == ProviderKind::Anthropic
    };
    let outcome = state
        .upstreams
        .dispatch_call(&resolved, call, &state.metrics, &clock)
        .await;
    match outcome {
        Outcome::Mock(target) => match target.mock {
            Some(model) => {
                serve_mock(&state, &request, model, mock_params, &label, bill, &target).await
            }
            None => {
                bill.finish(500, None);
                ApiError::internal().into_response()
            }
        },
        Outcome::Plain {
            body,
            usage,
            target,
            hold,
        } => {
            bill.answered(&target);
            if let Some(usage) = usage {
                state
                    .metrics
                    .tokens(&label, usage.prompt_tokens, usage.completion_tokens);
            } else {
                bill.streamed(completion_tokens_in(&body));
            }
            let untranslated = passed_through(&target);
            let cached = if untranslated {
                anthropic::read_native_plain(&body).map_or(0, |(_, cached)| cached)
            } else {
                cached_tokens_in(&body)
            };
            let tokens = usage.map(|u| TokenUsage {
                prompt: u64::from(u.prompt_tokens),
                completion: u64::from(u.completion_tokens),
                cached,
            });
            bill.finish(200, tokens);
            let mut response = held(json_response(StatusCode::OK, body), hold);
            if untranslated {
                response.extensions_mut().insert(Untranslated);
            }
            response
        }
        Outcome::Stream { body, target, idle } => {
            bill.answered(&target);
            let untranslated = passed_through(&target);
            let mut translator = match target.provider.kind {
                ProviderKind::Anthropic if untranslated => Translator::Native(NativeStream::new()),
                ProviderKind::Anthropic => {
                    Translator::Anthropic(AnthropicStream::new(request.include_usage()))
                }
                _ => Translator::OpenAi(OpenAiStream::new(request.include_usage())),
            };
            let (tx, channel) = ChannelBody::channel(STREAM_BUFFER);
            tokio::spawn(async move {
                let bounds = state.upstreams.stream_bounds(&state.metrics);
                let end = pump(body, &mut translator, &tx, idle, Arc::clone(&clock), bounds).await;
                let usage = translator.usage();
                if let Some(usage) = usage {
                    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                    state
                        .metrics
                        .tokens(&label, clamp(usage.prompt), clamp(usage.completion));
                }
                if end == End::Failed {
                    state
                        .metrics
                        .upstream_error(&target.provider.name, "stream");
                }
                let status = match end {
                    End::Done => 200,
                    End::Failed => 502,
                    End::ClientGone => CLIENT_GONE,
                };
                bill.streamed(translator.streamed_tokens());
                bill.finish(status, usage);
                // Dropping `tx` (after the metrics above) ends the client's body.
                drop(tx);
            });
            let mut response = sse_response(channel);
            if untranslated {
                response.extensions_mut().insert(Untranslated);
            }
            response
        }
        Outcome::Failed(response) => {
            bill.finish(response.status().as_u16(), None);
            response
        }
    }
}

/// Answers from the built-in mock.
async fn serve_mock(
    state: &Arc<AppState>,
    request: &ChatCompletionRequest,
    model: &MockModel,
    params: MockParams,
    label: &Arc<str>,
    mut bill: Bill,
    target: &Arc<Target>,
) -> Response {
    let call = mock::tool_call(
        request.extra.get("tools"),
        request.extra.get("tool_choice"),
        &request.messages,
    );
    let completion =
        mock::complete(model, params, &request.messages, request.token_cap()).with_tool_call(call);
    state.metrics.tokens(
        label,
        completion.prompt_tokens,
        completion.completion_tokens,
    );
    let latency = Duration::from_millis(params.latency_ms);
    let usage = TokenUsage {
        prompt: u64::from(completion.prompt_tokens),
        completion: u64::from(completion.completion_tokens),
        cached: 0,
    };
    if request.is_stream() {
        // The 200 goes out at once: the answer has begun.
        bill.answered(target);
        return stream(
            state,
            request,
            completion,
            latency,
            Duration::from_millis(params.chunk_ms),
            bill,
            usage,
        );
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    bill.answered(target);
    bill.finish(200, Some(usage));
    json_ok(&ChatCompletion {
        id: state.next_completion_id(),
        object: "chat.completion",
        created: unix_seconds(),
        model: request.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: completion.tool_call.is_none().then(|| completion.text()),
                refusal: None,
                tool_calls: completion.tool_call.as_ref().map(|call| {
                    vec![serde_json::json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })]
                }),
            },
            logprobs: None,
            finish_reason: completion.finish_reason.as_str(),
        }],
        usage: Usage::new(completion.prompt_tokens, completion.completion_tokens),
    })
}

/// Parses and validates the body into a request, or the 400 that explains what is
/// wrong with it.
pub fn parse(bytes: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ApiError::invalid_json)?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid_json("the body is not an object"));
    };
    for required in ["model", "messages"] {
        if object.get(required).is_none_or(Value::is_null) {
            return Err(ApiError::missing_param(required));
        }
    }
    let request: ChatCompletionRequest = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde reports a missing nested field at its parent's path; name the field.
        let param = match inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            Some(field) if path == "." => field.to_owned(),
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        ApiError::bad_request(format!("Invalid value for '{param}': {inner}."))
            .with_param(param)
            .with_code("invalid_type")
    })?;
    if request.model.is_empty() {
        return Err(ApiError::bad_request("'model' must not be empty.").with_param("model"));
    }
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("'messages' must contain at least one message.")
                .with_param("messages"),
        );
    }
    for (param, value) in [
        ("max_tokens", request.max_tokens),
        ("max_completion_tokens", request.max_completion_tokens),
    ] {
        if value == Some(0) {
            return Err(
                ApiError::bad_request(format!("'{param}' must be at least 1.")).with_param(param),
            );
        }
    }
    Ok(request)
}

/// Starts a task that writes the SSE events of `completion` into the response body,
/// then settles `bill`: with `usage` when every event went out, with the estimate
/// of what was sent when the client left first.
fn stream(
    state: &Arc<AppState>,
    request: &ChatCompletionRequest,
    completion: Completion,
    latency: Duration,
    chunk_gap: Duration,
    mut bill: Bill,
    usage: TokenUsage,
) -> Response {
    let events = sse_events(
        &state.next_completion_id(),
        unix_seconds(),
        &request.model,
        &completion,
        request.include_usage(),
    );
    // Completion tokens sent once event `i` went out: event 0 is the role chunk,
    // events 1..=pieces carry the text (or a tool call's argument fragments), the
    // rest carry none.
    let mut sent_after = Vec::with_capacity(events.len());
    let mut sent = 0u64;
    sent_after.push(0);
    let fragments = completion
        .tool_call
        .as_ref()
        .map(mock::ToolCall::argument_pieces)
        .unwrap_or_default();
    for piece in completion.pieces.iter().chain(&fragments) {
        sent = sent.saturating_add(u64::from(crate::provider::tokens::count(piece)));
        sent_after.push(sent);
    }
    let (tx, body) = ChannelBody::channel(STREAM_BUFFER);
    let deadline = tokio::time::Instant::now() + state.config.limits.stream_max_duration();
    let state = Arc::clone(state);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            let pause = if i == 0 { latency } else { chunk_gap };
            if !pause.is_zero() {
                tokio::time::sleep_until((tokio::time::Instant::now() + pause).min(deadline)).await;
            }
            match send_bounded(&tx, event, deadline, &state.metrics).await {
                Ok(()) => {}
                // The client went away; stop producing, charge what was sent.
                Err(Stopped::ClientGone) => return bill.finish(CLIENT_GONE, None),
                // `stream_max_duration_ms` passed; the error event is queued.
                Err(Stopped::MaxDuration) => return bill.finish(502, None),
            }
            bill.streamed(sent_after.get(i).copied().unwrap_or(sent));
        }
        bill.finish(200, Some(usage));
    });
    sse_response(body)
}

/// A 200 `text/event-stream` response fed by `body`.
fn sse_response(body: ChannelBody) -> Response {
    let mut response = http::Response::new(http_body_util::BodyExt::boxed(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// The complete event sequence of one streamed answer, each a `data: …\n\n` frame.
pub fn sse_events(
    id: &str,
    created: u64,
    model: &str,
    completion: &Completion,
    include_usage: bool,
) -> Vec<Bytes> {
    let usage_null = include_usage.then_some(None);
    let chunk = |delta: Delta, finish_reason: Option<&'static str>| ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk",
        created,
        model: model.to_owned(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }],
        usage: usage_null,
    };
    let mut chunks = Vec::with_capacity(completion.pieces.len() + 3);
    match &completion.tool_call {
        None => chunks.push(chunk(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                tool_calls: None,
            },
            None,
        )),
        // As OpenAI streams a call: the first delta carries the id, the name and empty
        // arguments, the next ones only argument fragments.
        Some(call) => {
            chunks.push(chunk(
                Delta {
                    role: Some("assistant"),
                    content: None,
                    tool_calls: Some(vec![serde_json::json!({
                        "index": 0, "id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    })]),
                },
                None,
            ));
            for piece in call.argument_pieces() {
                chunks.push(chunk(
                    Delta {
                        tool_calls: Some(vec![serde_json::json!({
                            "index": 0, "function": {"arguments": piece},
                        })]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        }
    }
    for piece in &completion.pieces {
        chunks.push(chunk(
            Delta {
                role: None,
                content: Some(piece.clone()),
                tool_calls: None,
            },
            None,
        ));
    }
    chunks.push(chunk(
        Delta::default(),
        Some(completion.finish_reason.as_str()),
    ));
    if include_usage {
        chunks.push(ChatCompletionChunk {
            choices: Vec::new(),
            usage: Some(Some(Usage::new(
                completion.prompt_tokens,
                completion.completion_tokens,
            ))),
            ..chunk(Delta::default(), None)
        });
    }
    let mut events: Vec<Bytes> = chunks.iter().filter_map(sse_data).collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn sse_data(chunk: &ChatCompletionChunk) -> Option<Bytes> {
    match serde_json::to_vec(chunk) {
        Ok(json) => {
            let mut frame = Vec::with_capacity(json.len() + 8);
            frame.extend_from_slice(b"data: ");
            frame.extend_from_slice(&json);
            frame.extend_from_slice(b"\n\n");
            Some(Bytes::from(frame))
        }
        Err(error) => {
            // Cannot happen for these types; never send a half-built event.
            tracing::error!(%error, "failed to serialize a stream chunk");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> Option<String> {
        parse(body.as_bytes()).err().and_then(|e| e.param)
    }

    #[test]
    fn params_name_the_field_at_fault() {
        assert_eq!(param_of(r#"{"messages":[]}"#).as_deref(), Some("model"));
        assert_eq!(param_of(r#"{"model":"m"}"#).as_deref(), Some("messages"));
        assert_eq!(
            param_of(r#"{"model":"m","messages":null}"#).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"content":"x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}"#
            )
            .as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[]}"#).as_deref(),
            Some("messages")
        );
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{").is_err());
    }
}
