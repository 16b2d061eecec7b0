//! The built-in mock provider: deterministic answers with no network and no key.
//!
//! Models (listed by `GET /v1/models` under the mock provider's name, `mock/…` in the
//! default catalog):
//! - `mock/echo` answers with the text of the last user message, verbatim;
//! - `mock/gpt-4o-mini` and `mock/gpt-4o` answer with exactly `tokens` words: first the
//!   64-bit FNV-1a digest of the last user message as four 4-hex-digit words, then
//!   words drawn from a small vocabulary by a generator seeded with that digest. Every
//!   word is at most four characters, so by the [`tokens`](super::tokens) rule the
//!   answer is exactly `tokens` completion tokens.
//!
//! The same request always gets the same answer, byte for byte, so tests can snapshot
//! it and benchmarks measure the gateway rather than a backend's mood.
//!
//! Per-request knobs ride in the model name as a query string, overriding the server's
//! defaults (`--mock-latency-ms`, `--mock-chunk-ms`, `--mock-completion-tokens`):
//! `mock/gpt-4o-mini?latency_ms=50&chunk_ms=5&tokens=100`. `latency_ms` delays the
//! answer (the first chunk when streaming), `chunk_ms` spaces streamed chunks.
//! `max_tokens` / `max_completion_tokens` cut the answer short with
//! `finish_reason: "length"`, as a real model would.
//!
//! Tool calls ([`tool_call`]): when the request offers function `tools`, the mock calls
//! one instead of answering with text if `tool_choice` forces it (`"required"`: the
//! first tool; `{"type":"function","function":{"name":…}}`: that one), or, with
//! `tool_choice` absent or `"auto"`, if the last message is the user's and names a
//! tool (case-insensitive). `"none"` never calls. The call's id is `call_` and the
//! FNV-1a digest of the last user message and the tool name; its arguments are a JSON
//! object with one placeholder per *required* property of the tool's schema (by type:
//! `"mock"`, `1`, `true`, `[]`, `{}`, or the first `enum` value), so a client's
//! schema validation passes. The answer then has `finish_reason: "tool_calls"`.
//!
//! Every mock model also answers `POST /v1/embeddings` ([`embed`]): one vector per
//! input of [`EMBEDDING_DIMENSIONS`] floats (or the request's `dimensions`, at most
//! [`MAX_EMBEDDING_DIMENSIONS`]), drawn by SplitMix64 seeded with the 64-bit FNV-1a
//! digest of the input (its UTF-8 text, or for a token array its ids as little-endian
//! `u32`s), mapped to `[-1, 1)` and L2-normalized. Equal inputs get equal vectors,
//! different inputs unrelated ones: good for wiring tests, useless for similarity.
//! `POST /v1/completions` is answered through chat, so by [`complete`] as above.

use aurora_core::fnv1a64;

use crate::config::MockDefaults;
use serde_json::{Map, Value};

use crate::openai::types::ChatMessage;
use crate::provider::tokens;

/// What a mock model does with the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockKind {
    /// Repeats the last user message.
    Echo,
    /// Digest of the last user message, then seeded filler, `tokens` words long.
    Digest,
}

/// One built-in model of the mock provider.
#[derive(Debug, PartialEq, Eq)]
pub struct MockModel {
    /// Model name within the provider, e.g. `echo` (clients send `mock/echo`).
    pub name: &'static str,
    /// Behaviour.
    pub kind: MockKind,
}

/// The catalog, in the order `/v1/models` lists it.
pub const MODELS: &[MockModel] = &[
    MockModel {
        name: "echo",
        kind: MockKind::Echo,
    },
    MockModel {
        name: "gpt-4o-mini",
        kind: MockKind::Digest,
    },
    MockModel {
        name: "gpt-4o",
        kind: MockKind::Digest,
    },
];

/// `created` of every mock model (2025-01-01T00:00:00Z): fixed, so listings are stable.
pub const CREATED: u64 = 1_735_689_600;

/// `owned_by` of every mock model.
pub const OWNED_BY: &str = "aurora-mock";

/// Limits on the per-request knobs, so one request cannot pin a task for hours or
/// allocate an enormous answer.
pub const MAX_LATENCY_MS: u64 = 600_000;
/// See [`MAX_LATENCY_MS`].
pub const MAX_CHUNK_MS: u64 = 60_000;
/// See [`MAX_LATENCY_MS`].
pub const MAX_TOKENS: u32 = 100_000;

/// Effective knobs of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockParams {
    /// Delay before the answer / first chunk, ms.
    pub latency_ms: u64,
    /// Delay between streamed chunks, ms.
    pub chunk_ms: u64,
    /// Answer length of digest models, tokens.
    pub completion_tokens: u32,
}

/// The built-in model named `name` (without the provider prefix).
pub fn find(name: &str) -> Option<&'static MockModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// Applies the `key=value&…` options of a model name (the part after `?`) to
/// `defaults`; the error says which option is wrong and why.
pub fn params(query: Option<&str>, defaults: MockDefaults) -> Result<MockParams, String> {
    let mut params = MockParams {
        latency_ms: defaults.latency_ms,
        chunk_ms: defaults.chunk_ms,
        completion_tokens: defaults.completion_tokens,
    };
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "latency_ms" => params.latency_ms = parse(key, value, 0, MAX_LATENCY_MS)?,
            "chunk_ms" => params.chunk_ms = parse(key, value, 0, MAX_CHUNK_MS)?,
            "tokens" => {
                params.completion_tokens = parse(key, value, 1, u64::from(MAX_TOKENS))? as u32
            }
            _ => {
                return Err(format!(
                    "Unknown mock model option `{key}`; use latency_ms, chunk_ms or tokens."
                ))
            }
        }
    }
    Ok(params)
}

fn parse(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            format!(
                "Mock model option `{key}` must be an integer from {min} to {max}, got `{value}`."
            )
        })
}

/// Why the answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The whole answer was produced.
    Stop,
    /// Cut short by `max_tokens`.
    Length,
    /// The answer is a tool call.
    ToolCalls,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// A finished answer, split into the pieces a stream sends one chunk each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Text pieces; their concatenation is the answer.
    pub pieces: Vec<String>,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens in the answer.
    pub completion_tokens: u32,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// The tool call that replaces the text, if the request asked for one.
    pub tool_call: Option<ToolCall>,
}

impl Completion {
    /// The whole answer.
    pub fn text(&self) -> String {
        self.pieces.concat()
    }

    /// This answer with `call` instead of text (no call: unchanged). The call's
    /// arguments count as the completion tokens.
    pub fn with_tool_call(mut self, call: Option<ToolCall>) -> Self {
        if let Some(call) = call {
            self.pieces.clear();
            self.completion_tokens = tokens::count(&call.arguments);
            self.finish_reason = FinishReason::ToolCalls;
            self.tool_call = Some(call);
        }
        self
    }
}

/// A deterministic function call of the mock (see the module docs for the rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// `call_` and 16 hex digits.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments split the way a stream sends them: the opening brace, then one
    /// piece per property (so a streamed call has more than one delta).
    pub fn argument_pieces(&self) -> Vec<String> {
        let mut pieces = Vec::new();
        let mut current = String::new();
        for c in self.arguments.chars() {
            current.push(c);
            if c == '{' && pieces.is_empty() || c == ',' {
                pieces.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            pieces.push(current);
        }
        pieces
    }
}

/// The tool call the mock makes for a request offering `tools` with `tool_choice`
/// over `messages`, or `None` to answer with text (the rule is in the module docs).
pub fn tool_call(
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
    messages: &[ChatMessage],
) -> Option<ToolCall> {
    let functions: Vec<&Map<String, Value>> = tools?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("function")?.as_object())
        .filter(|f| f.get("name").and_then(Value::as_str).is_some())
        .collect();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(ChatMessage::text)
        .unwrap_or_default();
    let chosen = match tool_choice {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::String(s)) if s == "required" => functions.first().copied(),
        Some(Value::Object(o)) => {
            let wanted = o.get("function").and_then(|f| f.get("name"))?.as_str()?;
            functions.iter().copied().find(|f| name_of(f) == wanted)
        }
        _ => {
            let asks = messages.last().is_some_and(|m| m.role == "user");
            let lower = last_user.to_lowercase();
            functions
                .iter()
                .copied()
                .filter(|_| asks)
                .find(|f| lower.contains(&name_of(f).to_lowercase()))
        }
    }?;
    let name = name_of(chosen).to_owned();
    let digest = fnv1a64(format!("{last_user}\u{0}{name}").as_bytes());
    let arguments = placeholder_arguments(chosen.get("parameters"));
    Some(ToolCall {
        id: format!("call_{digest:016x}"),
        name,
        arguments: Value::Object(arguments).to_string(),
    })
}

fn name_of(function: &Map<String, Value>) -> &str {
    function.get("name").and_then(Value::as_str).unwrap_or("")
}

/// One placeholder per required property of a JSON schema, by its type.
fn placeholder_arguments(schema: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(schema) = schema else { return out };
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    for key in required.into_iter().flatten().filter_map(Value::as_str) {
        let property = properties.and_then(|p| p.get(key));
        let value = match property
            .and_then(|p| p.get("enum"))
            .and_then(Value::as_array)
        {
            Some(values) if !values.is_empty() => values[0].clone(),
            _ => match property.and_then(|p| p.get("type")).and_then(Value::as_str) {
                Some("integer" | "number") => Value::from(1),
                Some("boolean") => Value::Bool(true),
                Some("array") => Value::Array(Vec::new()),
                Some("object") => Value::Object(Map::new()),
                Some("null") => Value::Null,
                _ => Value::from("mock"),
            },
        };
        out.insert(key.to_owned(), value);
    }
    out
}

/// Answers `messages` as `model` would. `max_tokens` caps the answer's length.
pub fn complete(
    model: &MockModel,
    params: MockParams,
    messages: &[ChatMessage],
    max_tokens: Option<u32>,
) -> Completion {
    let prompt_tokens = u32::try_from(tokens::prompt(messages)).unwrap_or(u32::MAX);
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(ChatMessage::text)
        .unwrap_or_default();
    let cap = max_tokens.unwrap_or(u32::MAX);
    let (pieces, completion_tokens, finish_reason) = match model.kind {
        MockKind::Echo => echo(&last_user, cap),
        MockKind::Digest => digest_words(&last_user, params.completion_tokens, cap),
    };
    Completion {
        pieces,
        prompt_tokens,
        completion_tokens,
        finish_reason,
        tool_call: None,
    }
}

fn echo(text: &str, cap: u32) -> (Vec<String>, u32, FinishReason) {
    let mut pieces: Vec<String> = Vec::new();
    let mut used = 0u32;
    for piece in text.split_inclusive(char::is_whitespace) {
        let cost = tokens::count(piece);
        if used + cost > cap {
            if let Some(last) = pieces.last_mut() {
                let len = last.trim_end().len();
                last.truncate(len);
            }
            return (pieces, used, FinishReason::Length);
        }
        used += cost;
        pieces.push(piece.to_owned());
    }
    (pieces, used, FinishReason::Stop)
}

const VOCAB: [&str; 16] = [
    "the", "mock", "says", "ok", "node", "data", "fast", "calm", "blue", "gate", "way", "sun",
    "tree", "road", "rain", "echo",
];

fn digest_words(text: &str, wanted: u32, cap: u32) -> (Vec<String>, u32, FinishReason) {
    let n = wanted.min(cap);
    let digest = fnv1a64(text.as_bytes());
    let hex = format!("{digest:016x}");
    let mut state = digest;
    let mut pieces = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let word = if i < 4 {
            &hex[i * 4..i * 4 + 4]
        } else {
            VOCAB[(splitmix64(&mut state) % VOCAB.len() as u64) as usize]
        };
        pieces.push(if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        });
    }
    let reason = if wanted > cap {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    (pieces, n, reason)
}

/// Length of a mock embedding when the request names no `dimensions`.
pub const EMBEDDING_DIMENSIONS: u32 = 256;

/// Most `dimensions` a mock embedding may ask for (OpenAI's largest model has 3072).
pub const MAX_EMBEDDING_DIMENSIONS: u32 = 4096;

/// The mock embedding of an input whose bytes are `input` (see the module docs):
/// `dimensions` floats with an L2 norm of 1 (0 dimensions give an empty vector).
pub fn embed(input: &[u8], dimensions: u32) -> Vec<f32> {
    let mut state = fnv1a64(input);
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            // The top 53 bits as a fraction in [0, 1), then shifted to [-1, 1).
            let unit = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return raw.iter().map(|_| 0.0).collect();
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// SplitMix64: a tiny, well-mixed generator with a fixed definition, so answers never
/// change with a dependency's version.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors_of_the_asked_length() {
        let a = embed(b"hello", EMBEDDING_DIMENSIONS);
        assert_eq!(a.len(), 256);
        assert_eq!(a, embed(b"hello", EMBEDDING_DIMENSIONS));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert_ne!(a, embed(b"hello!", EMBEDDING_DIMENSIONS));
        assert_eq!(embed(b"x", 3).len(), 3);
        assert!(embed(b"x", 0).is_empty());
    }

    fn user(text: &str) -> ChatMessage {
        serde_json::from_value(serde_json::json!({"role": "user", "content": text})).unwrap()
    }

    fn params(tokens: u32) -> MockParams {
        MockParams {
            latency_ms: 0,
            chunk_ms: 0,
            completion_tokens: tokens,
        }
    }

    #[test]
    fn params_apply_query_knobs() {
        let d = MockDefaults::default();
        let p = super::params(Some("latency_ms=5&tokens=3"), d).unwrap();
        assert_eq!((p.latency_ms, p.chunk_ms, p.completion_tokens), (5, 0, 3));
        assert_eq!(find("gpt-4o-mini").map(|m| m.name), Some("gpt-4o-mini"));
        assert_eq!(find("mock/gpt-4o"), None);
        assert!(super::params(Some("tokens=0"), d).is_err());
        assert!(super::params(Some("speed=1"), d).is_err());
        assert_eq!(super::params(None, d).map(|p| p.completion_tokens), Ok(16));
    }

    #[test]
    fn digest_answer_is_deterministic_and_exactly_n_tokens() {
        let model = &MODELS[1];
        let a = complete(model, params(12), &[user("hi there")], None);
        let b = complete(model, params(12), &[user("hi there")], None);
        assert_eq!(a, b);
        assert_eq!(a.completion_tokens, 12);
        assert_eq!(tokens::count(&a.text()), 12);
        assert!(a
            .text()
            .starts_with(&format!("{:016x}", fnv1a64(b"hi there"))[..4]));
        let other = complete(model, params(12), &[user("hi there!")], None);
        assert_ne!(a.text(), other.text());
        assert_eq!(a.prompt_tokens, 3);
    }

    #[test]
    fn max_tokens_cuts_with_length() {
        let c = complete(&MODELS[1], params(10), &[user("x")], Some(4));
        assert_eq!(
            (c.completion_tokens, c.finish_reason),
            (4, FinishReason::Length)
        );
        let e = complete(&MODELS[0], params(1), &[user("one two three")], Some(2));
        assert_eq!(e.text(), "one two");
        assert_eq!(
            (e.completion_tokens, e.finish_reason),
            (2, FinishReason::Length)
        );
    }

    fn tools() -> Value {
        serde_json::json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]},
                               "days": {"type": "integer"}, "note": {"type": "string"}},
                "required": ["city", "unit", "days"]}}},
            {"type": "function", "function": {"name": "get_time"}}
        ])
    }

    #[test]
    fn tool_is_called_when_named_or_forced_and_never_with_none() {
        let tools = tools();
        let msgs = [user("Please use GET_WEATHER for Paris")];
        let call = tool_call(Some(&tools), None, &msgs).unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, r#"{"city":"mock","days":1,"unit":"c"}"#);
        assert!(call.id.starts_with("call_") && call.id.len() == 21);
        assert_eq!(tool_call(Some(&tools), None, &msgs), Some(call.clone()));
        assert_eq!(call.argument_pieces().concat(), call.arguments);
        assert_eq!(call.argument_pieces().len(), 4);
        // Not named: text.
        assert_eq!(tool_call(Some(&tools), None, &[user("hello")]), None);
        let none = serde_json::json!("none");
        assert_eq!(tool_call(Some(&tools), Some(&none), &msgs), None);
        let required = serde_json::json!("required");
        let forced = tool_call(Some(&tools), Some(&required), &[user("hello")]).unwrap();
        assert_eq!(forced.name, "get_weather");
        let named = serde_json::json!({"type": "function", "function": {"name": "get_time"}});
        let forced = tool_call(Some(&tools), Some(&named), &[user("hello")]).unwrap();
        assert_eq!(
            (forced.name.as_str(), forced.arguments.as_str()),
            ("get_time", "{}")
        );
        // No tools, or tools of the wrong shape: never a call, never a panic.
        assert_eq!(tool_call(None, Some(&required), &msgs), None);
        let odd = serde_json::json!([1, {"function": 2}, {"function": {"name": 3}}]);
        assert_eq!(tool_call(Some(&odd), Some(&required), &msgs), None);
        // After a tool result, auto does not call again.
        let result: ChatMessage = serde_json::from_value(
            serde_json::json!({"role": "tool", "tool_call_id": "x", "content": "sunny"}),
        )
        .unwrap();
        assert_eq!(
            tool_call(Some(&tools), None, &[user("use get_weather"), result]),
            None
        );
        let done = complete(&MODELS[0], params(1), &msgs, None).with_tool_call(Some(call));
        assert_eq!(done.finish_reason, FinishReason::ToolCalls);
        assert!(done.pieces.is_empty());
    }

    #[test]
    fn echo_repeats_the_last_user_message() {
        let msgs = [user("first"), user("hello  world")];
        let c = complete(&MODELS[0], params(1), &msgs, None);
        assert_eq!(c.text(), "hello  world");
        assert_eq!(
            (c.completion_tokens, c.finish_reason),
            (4, FinishReason::Stop)
        );
    }
}
