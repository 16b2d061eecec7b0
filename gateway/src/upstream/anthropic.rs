//! Anthropic's Messages API behind OpenAI's shapes, both ways, streaming included.
//!
//! Request (OpenAI → Anthropic): `system`/`developer` messages become the top-level
//! `system`; text and image parts become content blocks; an assistant's `tool_calls`
//! become `tool_use` blocks and `tool` messages `tool_result` blocks; `max_tokens` is
//! required by Anthropic, so a request without one gets [`DEFAULT_MAX_TOKENS`];
//! `stop` becomes `stop_sequences`, `tools`/`tool_choice` are mapped (and
//! `parallel_tool_calls: false` becomes `tool_choice.disable_parallel_tool_use`),
//! `temperature`, `top_p` and `user` (as `metadata.user_id`) carried over. Other
//! OpenAI-only fields (`response_format`, `seed`, `logit_bias`, …) are dropped:
//! Anthropic rejects unknown fields and has no JSON mode.
//!
//! Response (Anthropic → OpenAI): text blocks are concatenated into `content`,
//! `tool_use` blocks become `tool_calls`, `stop_reason` maps to `finish_reason`, and
//! usage follows OpenAI's convention that `prompt_tokens` *includes* cached input
//! (Anthropic's `input_tokens` excludes cache reads and writes), with the cache reads
//! reported as `prompt_tokens_details.cached_tokens`.
//!
//! Stream: `message_start` → the role chunk, `text_delta` → content chunks,
//! `tool_use` starts and `input_json_delta` → `tool_calls` chunks, `message_delta` →
//! the `finish_reason` chunk, `message_stop` → the usage chunk (if asked) and
//! `[DONE]`; an `error` event becomes a `data: {"error":…}` line.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::clock::unix_seconds;
use crate::openai::types::{ChatCompletionRequest, ChatMessage, MessageContent, Usage};
use crate::provider::tokens;
use crate::upstream::failure::Failure;
use crate::upstream::sse::Event;
use crate::upstream::stream::{data_frame, error_frame, Flow};

/// `max_tokens` sent when the client gave none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The `anthropic-version` header value this translation is written against.
pub const API_VERSION: &str = "2023-06-01";

/// The Anthropic request for `request`, sent to `upstream_model`.
pub fn request_body(
    request: &ChatCompletionRequest,
    upstream_model: &str,
) -> Result<Bytes, Failure> {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role.as_str() {
            "system" | "developer" => system.push(m.text()),
            "tool" => {
                let id = m.extra.get("tool_call_id").cloned().unwrap_or(Value::Null);
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": m.text()}
                ]}));
            }
            "assistant" => {
                messages.push(json!({"role": "assistant", "content": assistant_blocks(m)}))
            }
            _ => messages.push(json!({"role": "user", "content": user_blocks(m)})),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    body.insert(
        "max_tokens".into(),
        request.token_cap().unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    body.insert("messages".into(), messages.into());
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    if request.is_stream() {
        body.insert("stream".into(), true.into());
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = request.extra.get(key).filter(|v| !v.is_null()) {
            body.insert(key.into(), v.clone());
        }
    }
    match request.extra.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            body.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = request.extra.get("user").filter(|u| u.is_string()) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(Value::Array(tools)) = request.extra.get("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut tool = Map::new();
                tool.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
                if let Some(d) = f.get("description") {
                    tool.insert("description".into(), d.clone());
                }
                tool.insert(
                    "input_schema".into(),
                    f.get("parameters")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                );
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    match request.extra.get("tool_choice") {
        Some(Value::String(s)) => {
            let choice = match s.as_str() {
                "required" => json!({"type": "any"}),
                "none" => json!({"type": "none"}),
                _ => json!({"type": "auto"}),
            };
            body.insert("tool_choice".into(), choice);
        }
        Some(Value::Object(o)) => {
            if let Some(name) = o.get("function").and_then(|f| f.get("name")) {
                body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
            }
        }
        _ => {}
    }
    // `parallel_tool_calls: false` (at most one call) is a flag of Anthropic's tool
    // choice; `none` takes no flag.
    if request.extra.get("parallel_tool_calls") == Some(&Value::Bool(false))
        && body.contains_key("tools")
    {
        let choice = body
            .entry("tool_choice")
            .or_insert_with(|| json!({"type": "auto"}));
        if choice.get("type").and_then(Value::as_str) != Some("none") {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    serde_json::to_vec(&Value::Object(body))
        .map(Bytes::from)
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))
}

fn user_blocks(m: &ChatMessage) -> Value {
    match &m.content {
        None | Some(MessageContent::Null) => json!([]),
        Some(MessageContent::Text(t)) => Value::String(t.clone()),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Some(
                    json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}),
                ),
                Some("image_url") => {
                    let url = p
                        .get("image_url")
                        .and_then(|i| i.get("url"))
                        .and_then(Value::as_str)?;
                    Some(image_block(url))
                }
                _ => None,
            })
            .collect(),
    }
}

/// `data:image/png;base64,…` becomes a base64 source, anything else a URL source.
fn image_block(url: &str) -> Value {
    if let Some((meta, data)) = url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
        let media_type = meta.strip_suffix(";base64").unwrap_or(meta);
        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    } else {
        json!({"type": "image", "source": {"type": "url", "url": url}})
    }
}

fn assistant_blocks(m: &ChatMessage) -> Value {
    let mut blocks = Vec::new();
    let text = m.text();
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(Value::Array(calls)) = m.extra.get("tool_calls") {
        for call in calls {
            let f = call.get("function");
            let args = f
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .unwrap_or_else(|| json!({}));
            blocks.push(json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or(Value::Null),
                "name": f.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null),
                "input": args,
            }));
        }
    }
    Value::Array(blocks)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Usage in OpenAI's convention from an Anthropic `usage` object.
fn usage_of(u: &Value) -> (Usage, u64) {
    // Upstream numbers: bounded and added without overflow (issue 10 item 10e).
    let n = |k: &str| u.get(k).map_or(0, super::token_count);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens")
        .saturating_add(cached)
        .saturating_add(n("cache_creation_input_tokens"));
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    (Usage::new(clamp(prompt), clamp(n("output_tokens"))), cached)
}

fn usage_json(usage: Usage, cached: u64) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Translates a plain Anthropic answer; returns the OpenAI body and its usage.
pub fn translate_plain(body: &[u8]) -> Result<(Bytes, Usage), Failure> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Failure::Protocol(format!("not JSON: {e}")))?;
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(Failure::Protocol(
            "no `content` in the Anthropic answer".into(),
        ));
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let (usage, cached) = usage_of(v.get("usage").unwrap_or(&Value::Null));
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let out = json!({
        "id": v.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": unix_seconds(),
        "model": v.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(v.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage_json(usage, cached),
    });
    serde_json::to_vec(&out)
        .map(|b| (Bytes::from(b), usage))
        .map_err(|e| Failure::Protocol(format!("cannot encode the answer: {e}")))
}

/// The outgoing body of a `/v1/messages` request passed through to an Anthropic
/// target: the client's `native` body as it came, with only `model` replaced by
/// `upstream_model` (`stream`, `cache_control`, `thinking`, `metadata`, server tools
/// and every other field go out unchanged).
pub fn native_body(native: &Map<String, Value>, upstream_model: &str) -> Result<Bytes, Failure> {
    let mut out = native.clone();
    out.insert("model".to_owned(), Value::String(upstream_model.to_owned()));
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))
}

/// Checks a plain Anthropic answer that is forwarded as it came (pass-through) and
/// reads its usage in OpenAI's convention (cache reads and writes in the prompt) and
/// its cache reads, for billing. A body without a `content` list is not a message.
pub fn read_native_plain(body: &[u8]) -> Result<(Usage, u64), Failure> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Failure::Protocol(format!("not JSON: {e}")))?;
    if !v.get("content").is_some_and(Value::is_array) {
        return Err(Failure::Protocol(
            "no `content` in the Anthropic answer".into(),
        ));
    }
    Ok(usage_of(v.get("usage").unwrap_or(&Value::Null)))
}

/// Stream state of one Anthropic stream forwarded as it came (pass-through).
///
/// Every event goes to the client unchanged (its `event:` name and `data:` as the
/// upstream sent them); only the usage is read on the way: the prompt side from
/// `message_start`, the final counts from `message_delta` (whose fields win, as
/// Anthropic's later counts are cumulative). `message_stop` ends the stream; an
/// `error` event is forwarded and ends it as failed. Errors the gateway adds itself
/// (a stall, a broken connection, a bound) are Anthropic `error` events too, so the
/// client sees one dialect.
#[derive(Debug, Default)]
pub struct NativeStream {
    prompt: Value,
    usage: Option<Usage>,
    cached: u64,
    /// Output tokens streamed so far, by the token heuristic.
    streamed: u64,
}

impl NativeStream {
    /// A pass-through for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Output tokens streamed so far, by the token heuristic (text, tool input and
    /// thinking deltas): the estimate billed when the stream ends before its usage.
    pub fn streamed_tokens(&self) -> u64 {
        self.streamed
    }

    /// Usage reported so far (set by `message_delta`).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Prompt tokens read from Anthropic's cache, as reported so far.
    pub fn cached(&self) -> u64 {
        self.cached
    }

    /// An error the gateway reports mid-stream, as an Anthropic `error` event.
    pub fn error_frame(message: &str) -> Bytes {
        crate::openai::messages_stream::error_event("api_error", message)
    }

    /// Forwards one upstream event into `out`, reading usage on the way.
    pub fn on_event(&mut self, event: Event, out: &mut Vec<Bytes>) -> Flow {
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            out.push(Self::error_frame(
                "The upstream sent an event that is not JSON.",
            ));
            return Flow::Error;
        };
        out.push(if event.event.is_empty() {
            data_frame(event.data.as_bytes())
        } else {
            Bytes::from(format!("event: {}\ndata: {}\n\n", event.event, event.data))
        });
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                self.prompt = v.pointer("/message/usage").cloned().unwrap_or(Value::Null);
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                for key in ["text", "partial_json", "thinking"] {
                    if let Some(text) = delta.get(key).and_then(Value::as_str) {
                        self.streamed =
                            self.streamed.saturating_add(u64::from(tokens::count(text)));
                    }
                }
            }
            "message_delta" => {
                let mut merged = match &self.prompt {
                    Value::Object(m) => m.clone(),
                    _ => Map::new(),
                };
                if let Some(Value::Object(u)) = v.get("usage") {
                    for (k, val) in u {
                        merged.insert(k.clone(), val.clone());
                    }
                }
                let (usage, cached) = usage_of(&Value::Object(merged));
                self.usage = Some(usage);
                self.cached = cached;
            }
            "message_stop" => return Flow::Done,
            "error" => return Flow::Error,
            _ => {}
        }
        Flow::Continue
    }
}

/// Stream state of one translated Anthropic stream.
#[derive(Debug)]
pub struct AnthropicStream {
    client_wants_usage: bool,
    id: String,
    model: String,
    created: u64,
    prompt: Value,
    usage: Option<Usage>,
    cached: u64,
    /// OpenAI `tool_calls` index of each Anthropic content block that is a tool use.
    tool_index: Vec<(u64, usize)>,
    /// Completion tokens streamed so far, by the token heuristic.
    streamed: u64,
}

impl AnthropicStream {
    /// A translator for one stream.
    pub fn new(client_wants_usage: bool) -> Self {
        Self {
            client_wants_usage,
            id: String::new(),
            model: String::new(),
            created: unix_seconds(),
            prompt: Value::Null,
            usage: None,
            cached: 0,
            tool_index: Vec::new(),
            streamed: 0,
        }
    }

    /// Completion tokens streamed so far, by the token heuristic (the estimate
    /// billed when the stream ends before its usage).
    pub fn streamed_tokens(&self) -> u64 {
        self.streamed
    }

    fn count(&mut self, text: &str) {
        self.streamed = self.streamed.saturating_add(u64::from(tokens::count(text)));
    }

    /// Usage reported so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Prompt tokens read from Anthropic's cache, as reported so far.
    pub fn cached(&self) -> u64 {
        self.cached
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.client_wants_usage {
            chunk["usage"] = Value::Null;
        }
        data_frame(chunk.to_string().as_bytes())
    }

    /// Handles one upstream event, pushing the frames for the client into `out`.
    pub fn on_event(&mut self, event: Event, out: &mut Vec<Bytes>) -> Flow {
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            out.push(error_frame("The upstream sent an event that is not JSON."));
            return Flow::Error;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                m.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .clone_into(&mut self.id);
                m.get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .clone_into(&mut self.model);
                self.prompt = m.get("usage").cloned().unwrap_or(Value::Null);
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tool_index.len();
                        self.tool_index.push((index, n));
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": n,
                                "id": block.get("id").cloned().unwrap_or(Value::Null),
                                "type": "function",
                                "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                            }]}),
                            None,
                        ));
                    }
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        self.count(text);
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        self.count(text);
                        out.push(self.chunk(json!({"content": text}), None));
                    }
                    Some("input_json_delta") => {
                        if let Some(&(_, n)) = self.tool_index.iter().find(|(i, _)| *i == index) {
                            let part = delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            self.count(part);
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": part}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                let mut merged = self.prompt.clone();
                if let (Some(m), Some(Value::Object(u))) = (merged.as_object_mut(), v.get("usage"))
                {
                    for (k, val) in u {
                        m.insert(k.clone(), val.clone());
                    }
                }
                let (usage, cached) = usage_of(&merged);
                self.usage = Some(usage);
                self.cached = cached;
                let stop = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                out.push(self.chunk(json!({}), Some(finish_reason(stop))));
            }
            "message_stop" => {
                if self.client_wants_usage {
                    let usage = self.usage.unwrap_or(Usage::new(0, 0));
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_json(usage, self.cached),
                    });
                    out.push(data_frame(chunk.to_string().as_bytes()));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                return Flow::Done;
            }
            "error" => {
                let message = v
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("The upstream reported an error mid-stream.");
                out.push(error_frame(message));
                return Flow::Error;
            }
            _ => {}
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 item 10e: an Anthropic usage object with counts at `u64::MAX` (or
    /// negative) must not overflow when the parts of the prompt are added up.
    #[test]
    fn huge_or_negative_usage_does_not_overflow() {
        let (usage, cached) = usage_of(&json!({
            "input_tokens": u64::MAX, "cache_read_input_tokens": u64::MAX,
            "cache_creation_input_tokens": 5, "output_tokens": -3
        }));
        assert_eq!(cached, u64::MAX);
        assert_eq!(usage.prompt_tokens, u32::MAX);
        assert_eq!(usage.completion_tokens, 0);
    }

    #[test]
    fn no_parallel_tool_calls_becomes_disable_parallel_tool_use() {
        let translate = |extra: Value| {
            let mut req = json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "parallel_tool_calls": false});
            req.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let req: ChatCompletionRequest = serde_json::from_value(req).expect("request");
            let body: Value =
                serde_json::from_slice(&request_body(&req, "c").expect("body")).expect("json");
            body["tool_choice"].clone()
        };
        assert_eq!(
            translate(json!({})),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            translate(json!({"tool_choice": "required"})),
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            translate(json!({"tool_choice": "none"})),
            json!({"type": "none"})
        );
        assert_eq!(
            translate(json!({"parallel_tool_calls": true})),
            Value::Null,
            "the default needs no flag"
        );
    }

    #[test]
    fn request_translation() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "claude", "max_tokens": 50, "temperature": 0.1, "stop": "END", "user": "u1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "frequency_penalty": 0.5
        }))
        .expect("request");
        let body: Value =
            serde_json::from_slice(&request_body(&req, "claude-x").expect("body")).expect("json");
        assert_eq!(
            body,
            json!({
                "model": "claude-x", "max_tokens": 50, "system": "be brief", "temperature": 0.1,
                "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "what is"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "42"}]}
                ],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"}
            })
        );
    }

    #[test]
    fn streamed_tool_use_becomes_tool_call_deltas() {
        let mut s = AnthropicStream::new(false);
        let mut out = Vec::new();
        let ev = |v: Value| Event {
            event: String::new(),
            data: v.to_string(),
        };
        for v in [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 4}}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 6}}),
        ] {
            assert_eq!(s.on_event(ev(v), &mut out), Flow::Continue);
        }
        assert_eq!(
            s.on_event(ev(json!({"type": "message_stop"})), &mut out),
            Flow::Done
        );
        let chunks: Vec<Value> = out
            .iter()
            .filter_map(|b| std::str::from_utf8(b).ok()?.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect();
        let delta = |i: usize| &chunks[i]["choices"][0]["delta"];
        assert_eq!(delta(1)["tool_calls"][0]["id"], "t1");
        assert_eq!(delta(1)["tool_calls"][0]["function"]["name"], "f");
        let args: String = (2..4)
            .filter_map(|i| delta(i)["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, "{\"a\":1}");
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(s.usage(), Some(Usage::new(4, 6)));
    }

    #[test]
    fn a_native_stream_is_forwarded_unchanged_and_its_usage_read() {
        let mut s = NativeStream::new();
        let mut out = Vec::new();
        let ev = |name: &str, v: Value| Event {
            event: name.to_owned(),
            data: v.to_string(),
        };
        let events = [
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "m",
                "usage": {"input_tokens": 4, "cache_read_input_tokens": 10, "output_tokens": 1}}}),
            ),
            ev("ping", json!({"type": "ping"})),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "one two"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "text_delta", "text": "three"}}),
            ),
        ];
        let sent: Vec<Bytes> = events
            .iter()
            .map(|e| Bytes::from(format!("event: {}\ndata: {}\n\n", e.event, e.data)))
            .collect();
        for e in events {
            assert_eq!(s.on_event(e, &mut out), Flow::Continue);
        }
        assert_eq!(out, sent, "forwarded byte for byte");
        assert_eq!(s.usage(), None, "no usage before message_delta");
        assert_eq!(
            s.streamed_tokens(),
            u64::from(tokens::count("one two") + tokens::count("three")),
            "thinking counts as output"
        );
        let delta = ev(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}}),
        );
        assert_eq!(s.on_event(delta, &mut out), Flow::Continue);
        assert_eq!((s.usage(), s.cached()), (Some(Usage::new(14, 6)), 10));
        assert_eq!(
            s.on_event(
                ev("message_stop", json!({"type": "message_stop"})),
                &mut out
            ),
            Flow::Done
        );
        // An upstream error is forwarded and ends the stream; junk becomes an
        // Anthropic error event.
        let mut out = Vec::new();
        let error = ev(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        );
        assert_eq!(NativeStream::new().on_event(error, &mut out), Flow::Error);
        assert!(std::str::from_utf8(&out[0])
            .unwrap()
            .starts_with("event: error\n"));
        let junk = Event {
            event: String::new(),
            data: "{".into(),
        };
        let mut out = Vec::new();
        assert_eq!(NativeStream::new().on_event(junk, &mut out), Flow::Error);
        let text = String::from_utf8(out[0].to_vec()).unwrap();
        assert!(text.starts_with("event: error\ndata: "), "{text}");
        assert!(text.contains("api_error"), "{text}");
    }

    #[test]
    fn a_native_plain_answer_is_checked_and_its_usage_read() {
        let body = json!({"type": "message", "content": [],
            "usage": {"input_tokens": 2, "cache_creation_input_tokens": 3, "output_tokens": 5}});
        assert_eq!(
            read_native_plain(body.to_string().as_bytes()).unwrap(),
            (Usage::new(5, 5), 0)
        );
        assert!(read_native_plain(b"{\"type\":\"message\"}").is_err());
        assert!(read_native_plain(b"nope").is_err());
        let native: Map<String, Value> =
            serde_json::from_value(json!({"model": "alias", "stream": true, "x": [1]})).unwrap();
        let sent: Value =
            serde_json::from_slice(&native_body(&native, "claude-x").unwrap()).unwrap();
        assert_eq!(sent, json!({"model": "claude-x", "stream": true, "x": [1]}));
    }

    #[test]
    fn usage_counts_cached_input_as_prompt() {
        let (u, cached) = usage_of(&json!({"input_tokens": 10, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5, "output_tokens": 7}));
        assert_eq!((u, cached), (Usage::new(115, 7), 100));
    }
}
