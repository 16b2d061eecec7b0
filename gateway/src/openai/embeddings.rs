//! `POST /v1/embeddings`.
//!
//! `input` is a string, an array of strings, an array of token ids or an array of
//! token-id arrays; `encoding_format` is `float` (default) or `base64` (each vector's
//! little-endian `f32` bytes, as OpenAI sends them); `dimensions` shortens the vectors.
//!
//! The request goes through the same steps as chat, in the same order (authentication,
//! body size, JSON, fields, model lookup, policy, provider, bill): for the policy, every
//! text input is one user message of a [`ChatCompletionRequest`] with no output
//! allowance, so key model lists, guardrails, budgets and rate limits read the real
//! input, and redaction rewrites it (the redacted texts are what the provider gets).
//! Token-id inputs carry no text: guardrails cannot read them, and they are counted one
//! token per id. The answer is billed by input tokens alone (completion 0).
//!
//! Bounds, so one request cannot make the node build an answer of gigabytes: at most
//! [`MAX_INPUTS`] inputs and [`MAX_TOKEN_IDS`] token ids (OpenAI's own limits), and a
//! mock answer of at most [`MOCK_MAX_NUMBERS`] numbers (inputs × dimensions).
//!
//! The mock answers every model with [`mock::embed`]; an OpenAI-compatible target gets
//! the client's body at its sibling `…/embeddings` endpoint with only `model` replaced
//! and its answer is forwarded unchanged; Anthropic targets are skipped, and a model
//! with no other target answers 400 ([`crate::upstream::dispatch::Call`]).

use std::sync::Arc;
use std::time::Instant;

/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// Most token ids in one request, over all its inputs (OpenAI's limit).
pub const MAX_TOKEN_IDS: usize = 300_000;

/// Most numbers (inputs × dimensions) in one mock answer: 4 MiB of `f32`, about 20 MB
/// of JSON.
pub const MOCK_MAX_NUMBERS: u64 = 1 << 20;

use bytes::Bytes;
use http::Request;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cache::{CacheKey, CallKind, Directive, Gate};
use crate::catalog::{Resolved, Target};
use crate::http::body::{held, json_ok, json_response, read_limited, ModelLabel, Response};
use crate::openai::billing::Bill;
use crate::openai::chat::{self, refuse};
use crate::openai::run_to_end::RunToEnd;
use crate::openai::types::{ChatCompletionRequest, ChatMessage, MessageContent};
use crate::openai::ApiError;
use crate::policy::{Allowance, Caller, TokenUsage};
use crate::provider::{mock, tokens};
use crate::state::AppState;
use crate::upstream::dispatch::{Call, Outcome};
use crate::upstream::UpstreamClock;

/// The inputs of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `"input": "…"`
    Text(String),
    /// `"input": ["…", …]`
    Texts(Vec<String>),
    /// `"input": [1, 2, …]`: one input of token ids.
    Tokens(Vec<u32>),
    /// `"input": [[1, 2], …]`
    TokenLists(Vec<Vec<u32>>),
}

impl Input {
    /// Reads `input`, or says what is wrong with it.
    fn from_value(value: &Value) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "'input' must be a string, an array of strings, an array of token ids or an \
                 array of token-id arrays.",
            )
            .with_param("input")
            .with_code("invalid_type")
        };
        let token = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        let input = match value {
            Value::String(s) => Input::Text(s.clone()),
            Value::Array(items) if items.is_empty() => {
                return Err(ApiError::bad_request("'input' must not be empty.").with_param("input"))
            }
            Value::Array(items) => match &items[0] {
                Value::String(_) => Input::Texts(
                    items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(invalid)?,
                ),
                Value::Number(_) => Input::Tokens(
                    items
                        .iter()
                        .map(token)
                        .collect::<Option<_>>()
                        .ok_or_else(invalid)?,
                ),
                Value::Array(_) => Input::TokenLists(
                    items
                        .iter()
                        .map(|v| {
                            v.as_array()?
                                .iter()
                                .map(token)
                                .collect::<Option<Vec<u32>>>()
                        })
                        .collect::<Option<_>>()
                        .ok_or_else(invalid)?,
                ),
                _ => return Err(invalid()),
            },
            _ => return Err(invalid()),
        };
        let (count, ids) = match &input {
            Input::Text(_) => (1, 0),
            Input::Texts(v) => (v.len(), 0),
            Input::Tokens(v) => (1, v.len()),
            Input::TokenLists(v) => (v.len(), v.iter().map(Vec::len).sum()),
        };
        if count > MAX_INPUTS {
            return Err(ApiError::bad_request(format!(
                "'input' has {count} inputs; at most {MAX_INPUTS} are allowed per request."
            ))
            .with_param("input"));
        }
        if ids > MAX_TOKEN_IDS {
            return Err(ApiError::bad_request(format!(
                "'input' has {ids} token ids; at most {MAX_TOKEN_IDS} are allowed per request."
            ))
            .with_param("input"));
        }
        let empty = match &input {
            Input::Text(s) => s.is_empty(),
            Input::Texts(v) => v.iter().any(String::is_empty),
            Input::Tokens(v) => v.is_empty(),
            Input::TokenLists(v) => v.iter().any(Vec::is_empty),
        };
        if empty {
            return Err(
                ApiError::bad_request("'input' must not contain an empty input.")
                    .with_param("input"),
            );
        }
        Ok(input)
    }

    /// How many inputs (vectors in the answer).
    fn count(&self) -> usize {
        match self {
            Input::Text(_) | Input::Tokens(_) => 1,
            Input::Texts(v) => v.len(),
            Input::TokenLists(v) => v.len(),
        }
    }

    /// The texts, if the inputs are text.
    fn texts(&self) -> Option<Vec<&str>> {
        match self {
            Input::Text(s) => Some(vec![s]),
            Input::Texts(v) => Some(v.iter().map(String::as_str).collect()),
            Input::Tokens(_) | Input::TokenLists(_) => None,
        }
    }

    /// Each input's bytes (UTF-8 text, or token ids as little-endian `u32`s): what
    /// the mock's vectors are derived from.
    fn bytes(&self) -> Vec<Vec<u8>> {
        let ids = |v: &[u32]| v.iter().flat_map(|id| id.to_le_bytes()).collect();
        match self {
            Input::Text(s) => vec![s.as_bytes().to_vec()],
            Input::Texts(v) => v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            Input::Tokens(v) => vec![ids(v)],
            Input::TokenLists(v) => v.iter().map(|l| ids(l)).collect(),
        }
    }

    /// Input tokens: by the mock's heuristic for text, one per id for tokens.
    fn tokens(&self) -> u64 {
        match self {
            Input::Text(s) => u64::from(tokens::count(s)),
            Input::Texts(v) => v.iter().map(|s| u64::from(tokens::count(s))).sum(),
            Input::Tokens(v) => v.len() as u64,
            Input::TokenLists(v) => v.iter().map(|l| l.len() as u64).sum(),
        }
    }
}

/// How vectors are written in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON array of numbers.
    Float,
    /// Base64 of the little-endian `f32` bytes.
    Base64,
}

/// A parsed, validated embeddings request.
#[derive(Clone, Debug)]
pub struct EmbeddingsRequest {
    /// The model as the client named it.
    pub model: String,
    /// The inputs.
    pub input: Input,
    /// How vectors are written.
    pub encoding: Encoding,
    /// Requested vector length.
    pub dimensions: Option<u32>,
    /// The body as sent, forwarded upstream with `model` (and a redacted `input`)
    /// replaced.
    pub body: Map<String, Value>,
}

/// Parses and validates the body, or the 400 that explains what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ApiError::invalid_json)?;
    let Value::Object(body) = value else {
        return Err(ApiError::invalid_json("the body is not an object"));
    };
    for required in ["model", "input"] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(ApiError::missing_param(required));
        }
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request("'model' must not be empty.").with_param("model"))
        }
        _ => {
            return Err(ApiError::bad_request("'model' must be a string.")
                .with_param("model")
                .with_code("invalid_type"))
        }
    };
    let input = Input::from_value(body.get("input").unwrap_or(&Value::Null))?;
    let encoding = match body.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(f)) if f == "float" => Encoding::Float,
        Some(Value::String(f)) if f == "base64" => Encoding::Base64,
        Some(_) => {
            return Err(
                ApiError::bad_request("'encoding_format' must be \"float\" or \"base64\".")
                    .with_param("encoding_format"),
            )
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(
                    ApiError::bad_request("'dimensions' must be a positive integer.")
                        .with_param("dimensions"),
                )
            }
        },
    };
    Ok(EmbeddingsRequest {
        model,
        input,
        encoding,
        dimensions,
        body,
    })
}

/// Serves one embeddings request.
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

/// The chat request the policy reads: one user message per text input (none for
/// token ids), no output allowance.
fn policy_view(request: &EmbeddingsRequest) -> ChatCompletionRequest {
    let messages = request
        .input
        .texts()
        .unwrap_or_default()
        .into_iter()
        .map(|text| ChatMessage {
            role: "user".to_owned(),
            content: Some(MessageContent::Text(text.to_owned())),
            extra: Map::new(),
        })
        .collect();
    ChatCompletionRequest {
        model: request.model.clone(),
        messages,
        stream: None,
        stream_options: None,
        max_tokens: None,
        max_completion_tokens: None,
        extra: Map::new(),
    }
}

/// The client's field for `param` of the policy's chat view: `messages[i].content` is
/// `input[i]` (`input` for a single string), `messages` is `input`.
fn input_param(param: &str, input: &Input) -> String {
    let Some(rest) = param.strip_prefix("messages") else {
        return param.to_owned();
    };
    let index = rest
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .filter(|i| i.parse::<usize>().is_ok());
    match (index, input) {
        (Some(i), Input::Texts(_)) => format!("input[{i}]"),
        _ => "input".to_owned(),
    }
}

/// Puts the texts of `view` (after the policy, so redacted) back into `request`.
fn take_redactions(request: &mut EmbeddingsRequest, view: &ChatCompletionRequest) {
    let texts: Vec<String> = view.messages.iter().map(ChatMessage::text).collect();
    let input = match (&request.input, texts.as_slice()) {
        (Input::Text(_), [one]) => Input::Text(one.clone()),
        (Input::Texts(v), all) if all.len() == v.len() => Input::Texts(all.to_vec()),
        _ => return,
    };
    let json = match &input {
        Input::Text(s) => Value::String(s.clone()),
        Input::Texts(v) => Value::from(v.clone()),
        Input::Tokens(_) | Input::TokenLists(_) => return,
    };
    request.body.insert("input".to_owned(), json);
    request.input = input;
}

/// Answers an authenticated, parsed embeddings request (see the module docs).
pub async fn serve(
    state: &Arc<AppState>,
    caller: &Caller,
    request: EmbeddingsRequest,
    cache: Directive,
    started: Instant,
) -> Response {
    let response = serve_admitted(state, caller, request, cache, started).await;
    super::chat::with_rate_headers(state, caller, response)
}

async fn serve_admitted(
    state: &Arc<AppState>,
    caller: &Caller,
    mut request: EmbeddingsRequest,
    cache: Directive,
    started: Instant,
) -> Response {
    let snapshot = state.catalog.load();
    let Some(resolved) = snapshot.resolve(&request.model) else {
        return ApiError::model_not_found(&request.model).into_response();
    };
    let mocked = resolved
        .targets
        .iter()
        .map(|(t, _)| t)
        .chain(&resolved.fallbacks)
        .any(|t| t.mock.is_some());
    if mocked && request.dimensions > Some(mock::MAX_EMBEDDING_DIMENSIONS) {
        return ApiError::bad_request(format!(
            "'dimensions' must be at most {} for mock models.",
            mock::MAX_EMBEDDING_DIMENSIONS
        ))
        .with_param("dimensions")
        .into_response();
    }
    let numbers = request.input.count() as u64
        * u64::from(request.dimensions.unwrap_or(mock::EMBEDDING_DIMENSIONS));
    if mocked && numbers > MOCK_MAX_NUMBERS {
        return ApiError::bad_request(format!(
            "A mock model answers at most {MOCK_MAX_NUMBERS} numbers per request (inputs × \
             dimensions, here {numbers}); send fewer inputs or smaller 'dimensions'."
        ))
        .with_param("input")
        .into_response();
    }
    let label = Arc::clone(&resolved.label);
    let priced_as: Vec<Arc<str>> = resolved
        .targets
        .iter()
        .map(|(t, _)| t)
        .chain(&resolved.fallbacks)
        .map(|t| Arc::clone(&t.id))
        .collect();
    let allowance = Allowance {
        output_tokens: 0,
        priced_as: &priced_as,
    };
    let mut view = policy_view(&request);
    let name = request.model.clone();
    let prepared = state
        .policy
        .ready(&state.state_view, caller, &view, &name, &allowance)
        .await;
    let ticket = match state.policy.admit_prepared(
        &state.state_view,
        caller,
        &mut view,
        &name,
        &allowance,
        prepared,
    ) {
        Ok(ticket) => ticket,
        Err(mut rejection) => {
            // The policy names a field of its chat view; name the client's instead.
            rejection.error.param = rejection
                .error
                .param
                .map(|param| input_param(&param, &request.input));
            let mut response = refuse(state, &rejection, caller.key_id(), &name, started);
            response.extensions_mut().insert(ModelLabel(label));
            return response;
        }
    };
    take_redactions(&mut request, &view);
    let mut bill = Bill::new(state, ticket, &view);
    let key_id = caller.key_id().map(|k| &**k);
    let pass = match state
        .cache
        .gate(cache, key_id, &name, |scope| {
            CacheKey::of(scope, key_id, CallKind::Embeddings, &request.body, None)
        })
        .await
    {
        Gate::Hit(answer) => return chat::hit(answer, bill, label),
        Gate::Pass(pass) => pass,
    };
    if pass.looked() {
        bill.cache_missed();
    }
    let clock = Arc::new(UpstreamClock::default());
    let answered = answer(
        Arc::clone(state),
        resolved.clone(),
        request,
        Arc::clone(&label),
        bill,
        Arc::clone(&clock),
    );
    let mut response = RunToEnd::new(async move { pass.wrap(answered.await) }).await;
    response.extensions_mut().insert(ModelLabel(label));
    if clock.provider().is_some() {
        response
            .extensions_mut()
            .insert(crate::http::body::UpstreamTiming(clock));
    }
    response
}

/// Calls the provider for an admitted request and settles its `bill`.
async fn answer(
    state: Arc<AppState>,
    resolved: Resolved,
    request: EmbeddingsRequest,
    label: Arc<str>,
    mut bill: Bill,
    clock: Arc<UpstreamClock>,
) -> Response {
    let outcome = state
        .upstreams
        .dispatch_call(
            &resolved,
            Call::Embeddings(&request.body),
            &state.metrics,
            &clock,
        )
        .await;
    match outcome {
        Outcome::Mock(target) => serve_mock(&state, &request, &label, bill, &target),
        Outcome::Plain {
            body,
            usage,
            target,
            hold,
        } => {
            bill.answered(&target);
            let tokens = usage.map(|u| {
                state.metrics.tokens(&label, u.prompt_tokens, 0);
                TokenUsage {
                    prompt: u64::from(u.prompt_tokens),
                    completion: 0,
                    cached: 0,
                }
            });
            bill.finish(200, tokens);
            held(json_response(http::StatusCode::OK, body), hold)
        }
        Outcome::Stream { .. } => {
            // Embeddings are never streamed: `Call::Embeddings` asks for JSON.
            bill.finish(500, None);
            ApiError::internal().into_response()
        }
        Outcome::Failed(response) => {
            bill.finish(response.status().as_u16(), None);
            response
        }
    }
}

/// `{"object":"list","data":[…],"model":…,"usage":…}`
#[derive(Serialize)]
struct EmbeddingList {
    object: &'static str,
    data: Vec<Embedding>,
    model: String,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, Deserialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Answers from the built-in mock.
fn serve_mock(
    state: &AppState,
    request: &EmbeddingsRequest,
    label: &Arc<str>,
    mut bill: Bill,
    target: &Arc<Target>,
) -> Response {
    let dimensions = request.dimensions.unwrap_or(mock::EMBEDDING_DIMENSIONS);
    let data = request
        .input
        .bytes()
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            let vector = mock::embed(bytes, dimensions);
            Embedding {
                object: "embedding",
                index,
                embedding: match request.encoding {
                    Encoding::Float => Vector::Float(vector),
                    Encoding::Base64 => Vector::Base64(base64_f32(&vector)),
                },
            }
        })
        .collect();
    let prompt = request.input.tokens();
    state
        .metrics
        .tokens(label, u32::try_from(prompt).unwrap_or(u32::MAX), 0);
    bill.answered(target);
    bill.finish(
        200,
        Some(TokenUsage {
            prompt,
            completion: 0,
            cached: 0,
        }),
    );
    json_ok(&EmbeddingList {
        object: "list",
        data,
        model: request.model.clone(),
        usage: EmbeddingUsage {
            prompt_tokens: prompt,
            total_tokens: prompt,
        },
    })
}

/// Standard base64 (with padding) of `vector`'s little-endian `f32` bytes.
pub fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
        // 1.0f32 is 00 00 80 3f little-endian.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    fn input_of(body: &str) -> Result<Input, Option<String>> {
        parse(body.as_bytes()).map(|r| r.input).map_err(|e| e.param)
    }

    #[test]
    fn every_input_shape_is_read_and_bad_ones_name_the_field() {
        assert_eq!(
            input_of(r#"{"model":"m","input":"hi"}"#),
            Ok(Input::Text("hi".into()))
        );
        assert_eq!(
            input_of(r#"{"model":"m","input":["a","b"]}"#),
            Ok(Input::Texts(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            input_of(r#"{"model":"m","input":[1,2,3]}"#),
            Ok(Input::Tokens(vec![1, 2, 3]))
        );
        assert_eq!(
            input_of(r#"{"model":"m","input":[[1],[2,3]]}"#),
            Ok(Input::TokenLists(vec![vec![1], vec![2, 3]]))
        );
        let param = |body: &str| input_of(body).err().flatten();
        assert_eq!(param(r#"{"model":"m"}"#).as_deref(), Some("input"));
        assert_eq!(param(r#"{"input":"x"}"#).as_deref(), Some("model"));
        for bad in [
            r#"{"model":"m","input":[]}"#,
            r#"{"model":"m","input":[""]}"#,
            r#"{"model":"m","input":["a",1]}"#,
            r#"{"model":"m","input":[-1]}"#,
            r#"{"model":"m","input":[[1],"a"]}"#,
            r#"{"model":"m","input":{"a":1}}"#,
        ] {
            assert_eq!(param(bad).as_deref(), Some("input"), "{bad}");
        }
        assert_eq!(
            param(r#"{"model":"m","input":"x","encoding_format":"int8"}"#).as_deref(),
            Some("encoding_format")
        );
        assert_eq!(
            param(r#"{"model":"m","input":"x","dimensions":0}"#).as_deref(),
            Some("dimensions")
        );
        assert!(parse(b"[1]").is_err());
    }

    #[test]
    fn too_many_inputs_or_token_ids_are_refused_before_any_work() {
        let texts = serde_json::json!({"model": "m", "input": vec!["a"; MAX_INPUTS + 1]});
        assert_eq!(
            input_of(&texts.to_string()).err().flatten().as_deref(),
            Some("input")
        );
        let lists = serde_json::json!({"model": "m", "input": vec![[0]; MAX_INPUTS + 1]});
        assert!(input_of(&lists.to_string()).is_err());
        let ids = serde_json::json!({"model": "m", "input": vec![1; MAX_TOKEN_IDS + 1]});
        assert!(input_of(&ids.to_string()).is_err());
        let ok = serde_json::json!({"model": "m", "input": vec!["a"; MAX_INPUTS]});
        assert_eq!(input_of(&ok.to_string()).map(|i| i.count()), Ok(MAX_INPUTS));
    }

    #[test]
    fn policy_params_name_the_input() {
        let texts = Input::Texts(vec!["a".into(), "b".into()]);
        assert_eq!(input_param("messages[1].content", &texts), "input[1]");
        assert_eq!(input_param("messages", &texts), "input");
        assert_eq!(
            input_param("messages[0].content", &Input::Text("a".into())),
            "input"
        );
        assert_eq!(input_param("model", &texts), "model");
    }

    #[test]
    fn redacted_texts_replace_the_forwarded_input() {
        let mut request =
            parse(br#"{"model":"m","input":["a secret","b"],"user":"u"}"#).expect("request");
        let mut view = policy_view(&request);
        view.messages[0].content = Some(MessageContent::Text("a [REDACTED]".into()));
        take_redactions(&mut request, &view);
        assert_eq!(
            request.body["input"],
            serde_json::json!(["a [REDACTED]", "b"])
        );
        assert_eq!(request.body["user"], "u");
        assert_eq!(request.input.texts(), Some(vec!["a [REDACTED]", "b"]));
    }
}
