//! `POST /v1/messages`: Anthropic's Messages API inbound, so Claude SDK users can point
//! at Aurora.
//!
//! The request is translated into a [`ChatCompletionRequest`] and answered through
//! [`chat::serve_call`] with the client's body beside it ([`Original::Messages`]), so
//! it goes through the same keys, guardrails, limits, budgets, usage log, metrics and
//! routing (aliases, weighted targets, fallbacks) as chat, to any upstream kind. An
//! Anthropic target is sent the client's body as it came (only `model` replaced) and
//! its answer, plain or streamed, comes back marked [`Untranslated`] and goes to the
//! client unchanged, so Anthropic-only fields survive both ways; every other target
//! (the mock, OpenAI-compatible providers) gets the translation, and its answer is
//! translated back here. When a guardrail rewrote the translation's text (redaction)
//! the client's body still holds the original, so it is not sent: every target gets
//! the translation (a request with server tools, which has none, is refused). The
//! opposite direction (chat → an Anthropic upstream) is [`crate::upstream::anthropic`];
//! this module only reads Anthropic's shapes from clients and writes them to clients.
//!
//! Headers: the key comes as `x-api-key` or `Authorization: Bearer` (both accepted by
//! [`crate::admission::authenticate`]). `anthropic-version` is accepted with any value
//! and a missing one means [`crate::upstream::anthropic::API_VERSION`] (2023-06-01): the
//! translation is written against that version and no later version changed the
//! fields used here. A passed-through request is sent with the client's
//! `anthropic-version` (or that default) and `anthropic-beta` headers, since its body
//! may use what they enable; the translation ignores them.
//!
//! Request → chat: `system` (a string or text blocks) becomes the first `system`
//! message; `messages[].content` as a string stays text, blocks map one by one: `text`
//! → a text part, `image` (base64 or url source) → an `image_url` part (base64 as a
//! `data:` URL), `tool_use` (assistant) → `tool_calls` with the input as the arguments
//! text, `tool_result` (user) → a `tool` message with the result's text (images in a
//! result and `is_error` have no chat equivalent and are dropped) before the user's
//! other blocks, as OpenAI requires the results right after the call; `thinking`
//! blocks are dropped.
//! `max_tokens` (required, 400 if missing) → `max_tokens`, `stop_sequences` → `stop`,
//! `temperature`, `top_p` and `top_k` are carried over, `tools` (`name`, `description`,
//! `input_schema`) → function tools, `tool_choice` auto/any/tool/none → `"auto"`,
//! `"required"`, a named function, `"none"` (`disable_parallel_tool_use` →
//! `parallel_tool_calls: false`), `metadata.user_id` → `user`, `stream` → `stream`
//! with `include_usage` (the final usage feeds `message_delta`). Other fields are
//! left to the pass-through. Anthropic's server tools (a `tools[]` entry with a
//! `type` other than `custom`, and the `server_tool_use` / `…_tool_result` blocks
//! they leave in assistant turns) have no chat form: they are left out of the
//! translation and make the request `anthropic_only`, served by Anthropic targets
//! alone.
//!
//! Chat → answer: text → a `text` block, `tool_calls` → `tool_use` blocks (arguments
//! that are not a JSON object become `{}`), `finish_reason` → `stop_reason` (`stop` →
//! `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter`
//! → `refusal`; a `stop` whose choice names the matched string in `stop_reason`, as
//! vLLM does, → `stop_sequence` with that `stop_sequence`; OpenAI does not say which
//! sequence matched, so there it is null — a passed-through answer has Anthropic's
//! own), usage →
//! `input_tokens` (without cached input, Anthropic's convention) and `output_tokens`.
//! Streams are translated event by event by [`messages_stream`].
//!
//! Errors use Anthropic's shape `{"type":"error","error":{"type","message"}}` with the
//! status and message of the chat error: 400 `invalid_request_error`, 401
//! `authentication_error`, 402 `billing_error`, 403 `permission_error`, 404
//! `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`, 503 and 529
//! `overloaded_error`, other 5xx `api_error`.
//!
//! [`messages_stream`]: super::messages_stream

use crate::cache::Directive;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::http::body::{full, keeping, read_limited, Response};
use crate::openai::chat::{self, Original, Untranslated};
use crate::openai::messages_stream;
use crate::openai::types::{ChatCompletionRequest, ChatMessage, MessageContent, StreamOptions};
use crate::openai::ApiError;
use crate::state::AppState;

/// Serves one Messages request.
pub async fn handle<B>(state: &Arc<AppState>, request: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let caller = match crate::admission::authenticate(state, &parts.headers) {
        Ok(caller) => caller,
        Err(rejection) => {
            return to_anthropic(chat::refuse(state, &rejection, None, "", started), "", 0).await
        }
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
        Err(error) => return error_response(&error),
    };
    let (request, mut original) = match to_chat(&bytes) {
        Ok(translated) => translated,
        Err(error) => return error_response(&error),
    };
    if let Original::Messages { headers, .. } = &mut original {
        for name in ["anthropic-version", "anthropic-beta"] {
            for value in parts.headers.get_all(name) {
                headers.push((name, value.clone()));
            }
        }
    }
    let model = request.model.clone();
    // What a translated stream's `message_start` reports before the real count comes.
    let input_tokens = crate::provider::tokens::prompt(&request.messages);
    let response = chat::serve_call(
        state,
        &caller,
        request,
        Some(original),
        Directive::of(&parts.headers),
        started,
    )
    .await;
    to_anthropic(response, &model, input_tokens).await
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error body.
pub fn error_body(status: StatusCode, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// `error` as an Anthropic error answer, with the headers the chat answer would have.
fn error_response(error: &ApiError) -> Response {
    let message = error.message.clone();
    let status = error.status;
    let mut response = error.clone().into_response();
    *response.body_mut() = full(error_body(status, &message).to_string());
    response
}

/// Rewrites a chat answer (error, plain or stream) into Anthropic's shape. The
/// status, the headers (`retry-after`, …) and the extensions (metrics labels) stay.
/// `input_tokens` (the prompt by the token heuristic) is what a stream's
/// `message_start` reports; an answer marked [`Untranslated`] is already Anthropic's
/// and goes out as it is.
async fn to_anthropic(response: Response, model: &str, input_tokens: u64) -> Response {
    if response.extensions().get::<Untranslated>().is_some() {
        // An Anthropic target's own answer to the client's own body.
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let is_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if parts.status == StatusCode::OK && is_stream {
        let body = messages_stream::adapt(body, model, input_tokens);
        return http::Response::from_parts(parts, body);
    }
    // Plain answers are complete buffers (`full`), so reading them cannot wait long.
    // The spent body is kept until the translation is written: it may carry the
    // request's hold on the buffered-upstream pool (`upstream::buffered`).
    let mut spent = body;
    let mut bytes = Vec::new();
    while let Some(frame) = spent.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(never) => match never {},
        }
    }
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let out = if parts.status.is_success() {
        match from_chat(&value, model) {
            Some(message) => message,
            None => {
                parts.status = StatusCode::BAD_GATEWAY;
                error_body(
                    parts.status,
                    "The upstream answer could not be read as a chat completion.",
                )
            }
        }
    } else {
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("The request failed.");
        error_body(parts.status, message)
    };
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    http::Response::from_parts(parts, keeping(full(out.to_string()), spent))
}

/// Anthropic's `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The stop sequence that ended a chat choice, when the upstream says which: vLLM
/// (and servers following it) put the matched stop string in the choice's
/// `stop_reason` when `finish_reason` is `stop`; OpenAI says nothing (then `None`).
pub fn matched_stop(finish_reason: Option<&str>, choice: &Value) -> Option<String> {
    if finish_reason != Some("stop") {
        return None;
    }
    choice
        .get("stop_reason")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Anthropic's `stop_reason` and `stop_sequence` for a chat choice's end.
pub fn stop_of(finish_reason: Option<&str>, matched: Option<String>) -> (&'static str, Value) {
    match matched {
        Some(sequence) => ("stop_sequence", Value::String(sequence)),
        None => (stop_reason(finish_reason), Value::Null),
    }
}

/// `msg_…` from a chat completion id (`chatcmpl-…` or whatever the upstream sent).
pub fn message_id(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or("");
    let tail = id.strip_prefix("chatcmpl-").unwrap_or(id);
    format!("msg_{tail}")
}

/// A tool call's `arguments` text as a `tool_use` input object.
fn input_of(arguments: Option<&str>) -> Value {
    arguments
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The Anthropic message for a plain chat completion, or `None` if it is not one.
pub fn from_chat(chat: &Value, model: &str) -> Option<Value> {
    let choice = chat.get("choices")?.as_array()?.first()?;
    let message = choice.get("message")?;
    let mut content = Vec::new();
    if let Some(text) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
            "name": function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
            "input": input_of(function.and_then(|f| f.get("arguments")).and_then(Value::as_str)),
        }));
    }
    let usage = chat.get("usage").unwrap_or(&Value::Null);
    let n = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens");
    let mut usage_out = json!({
        "input_tokens": n("/prompt_tokens").saturating_sub(cached),
        "output_tokens": n("/completion_tokens"),
    });
    if cached > 0 {
        usage_out["cache_read_input_tokens"] = cached.into();
    }
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str);
    let (stop_reason, stop_sequence) = stop_of(finish_reason, matched_stop(finish_reason, choice));
    Some(json!({
        "id": message_id(chat.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_out,
    }))
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).with_param(param)
}

/// Parses a Messages body and translates it into a chat request, or the 400 that
/// says what is wrong (the message names the field). The body itself comes back as
/// the [`Original`] for Anthropic targets, which are sent it as it came.
pub fn to_chat(bytes: &[u8]) -> Result<(ChatCompletionRequest, Original), ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ApiError::invalid_json)?;
    let Value::Object(body) = value else {
        return Err(ApiError::invalid_json("the body is not an object"));
    };
    // Set by what only Anthropic runs (server tools and their blocks).
    let mut anthropic_only = false;
    for required in ["model", "max_tokens", "messages"] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(ApiError::bad_request(format!("{required}: Field required"))
                .with_param(required)
                .with_code("missing_required_parameter"));
        }
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("model", "model: must be a non-empty string"))?;
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid("max_tokens", "max_tokens: must be an integer of at least 1"))?;
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(message("system", text_content(text))),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for (j, block) in blocks.iter().enumerate() {
                match (block_type(block), block.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(invalid(
                            format!("system[{j}]"),
                            format!("system[{j}]: system blocks must be text blocks"),
                        ))
                    }
                }
            }
            messages.push(message("system", text_content(&text)));
        }
        Some(_) => {
            return Err(invalid(
                "system",
                "system: must be a string or a list of text blocks",
            ))
        }
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid("messages", "messages: must be a non-empty list"))?;
    for (i, m) in list.iter().enumerate() {
        translate_message(i, m, &mut messages, &mut anthropic_only)?;
    }
    let mut extra = Map::new();
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(invalid(key, format!("{key}: must be a number")));
            }
            extra.insert(key.into(), v.clone());
        }
    }
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {
            if !s.is_empty() {
                extra.insert("stop".into(), Value::Array(s.clone()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "stop_sequences",
                "stop_sequences: must be a list of strings",
            ))
        }
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")) {
        if let Some(user) = user.as_str() {
            extra.insert("user".into(), user.into());
        }
    }
    let has_tools = translate_tools(body.get("tools"), &mut extra, &mut anthropic_only)?;
    translate_tool_choice(body.get("tool_choice"), has_tools, &mut extra)?;
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "stream: must be a boolean")),
    };
    let request = ChatCompletionRequest {
        model: model.to_owned(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens: Some(max_tokens),
        max_completion_tokens: None,
        extra,
    };
    Ok((
        request,
        Original::Messages {
            body,
            headers: Vec::new(),
            anthropic_only,
        },
    ))
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn text_content(text: &str) -> Option<MessageContent> {
    Some(MessageContent::Text(text.to_owned()))
}

fn message(role: &str, content: Option<MessageContent>) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content,
        extra: Map::new(),
    }
}

/// Appends the chat messages for Anthropic message `i` to `out`; sets
/// `anthropic_only` at a server tool's block (which chat cannot carry).
fn translate_message(
    i: usize,
    m: &Value,
    out: &mut Vec<ChatMessage>,
    anthropic_only: &mut bool,
) -> Result<(), ApiError> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant")) => role,
        _ => {
            return Err(invalid(
                format!("messages[{i}].role"),
                format!("messages[{i}].role: must be `user` or `assistant`"),
            ))
        }
    };
    let blocks = match m.get("content") {
        Some(Value::String(text)) => {
            out.push(message(role, text_content(text)));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                format!("messages[{i}].content"),
                format!("messages[{i}].content: must be a string or a list of content blocks"),
            ))
        }
    };
    let mut parts: Vec<Map<String, Value>> = Vec::new();
    let mut tool_results = Vec::new();
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let kind = block_type(block).unwrap_or("");
        match (role, kind) {
            (_, "text") => {
                let t = block.get("text").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!("{at}.text"), format!("{at}.text: must be a string"))
                })?;
                text.push_str(t);
                let mut part = Map::new();
                part.insert("type".into(), "text".into());
                part.insert("text".into(), t.into());
                parts.push(part);
            }
            ("user", "image") => {
                let url = image_url(block.get("source")).ok_or_else(|| {
                    invalid(
                        format!("{at}.source"),
                        format!("{at}.source: must be a base64 source (media_type, data) or a url source"),
                    )
                })?;
                let mut part = Map::new();
                part.insert("type".into(), "image_url".into());
                part.insert("image_url".into(), json!({"url": url}));
                parts.push(part);
            }
            ("user", "tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            format!("{at}.tool_use_id"),
                            format!("{at}.tool_use_id: must be a string"),
                        )
                    })?;
                let content = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => inner
                        .iter()
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect(),
                    Some(_) => {
                        return Err(invalid(
                            format!("{at}.content"),
                            format!("{at}.content: must be a string or a list of blocks"),
                        ))
                    }
                };
                let mut result = message("tool", text_content(&content));
                result.extra.insert("tool_call_id".into(), id.into());
                tool_results.push(result);
            }
            ("assistant", "tool_use") => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(invalid(
                        at.clone(),
                        format!("{at}: tool_use needs a string `id` and `name`"),
                    ));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            ("assistant", "thinking" | "redacted_thinking") => {}
            // A server tool's call and result (`web_search_tool_result`, …): Anthropic
            // ran them; only Anthropic can read them back.
            ("assistant", "server_tool_use") => *anthropic_only = true,
            ("assistant", kind) if kind.ends_with("_tool_result") => *anthropic_only = true,
            _ => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!("{at}.type: `{kind}` blocks are not supported in a {role} message"),
                ))
            }
        }
    }
    if role == "assistant" {
        let content = (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text));
        let mut assistant = message("assistant", content);
        if !calls.is_empty() {
            assistant
                .extra
                .insert("tool_calls".into(), Value::Array(calls));
        }
        out.push(assistant);
        return Ok(());
    }
    // OpenAI wants tool results right after the assistant's call.
    let only_results = parts.is_empty() && !tool_results.is_empty();
    out.append(&mut tool_results);
    if !only_results {
        out.push(message("user", Some(MessageContent::Parts(parts))));
    }
    Ok(())
}

/// An Anthropic image `source` as an OpenAI `image_url.url`.
fn image_url(source: Option<&Value>) -> Option<String> {
    let source = source?;
    match source.get("type").and_then(Value::as_str)? {
        "base64" => {
            let media_type = source.get("media_type").and_then(Value::as_str)?;
            let data = source.get("data").and_then(Value::as_str)?;
            Some(format!("data:{media_type};base64,{data}"))
        }
        "url" => source.get("url").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// `tools` → OpenAI function tools; whether any were given. Server tools (a `type`
/// other than `custom`) have no chat form: they are left out of the translation and
/// set `anthropic_only`.
fn translate_tools(
    tools: Option<&Value>,
    extra: &mut Map<String, Value>,
    anthropic_only: &mut bool,
) -> Result<bool, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools", "tools: must be a list")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        if block_type(tool).is_some_and(|t| t != "custom") {
            *anthropic_only = true;
            continue;
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                invalid(
                    format!("tools[{k}].name"),
                    format!("tools[{k}].name: must be a non-empty string"),
                )
            })?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
            function.insert("description".into(), d.clone());
        }
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| {
                invalid(
                    format!("tools[{k}].input_schema"),
                    format!("tools[{k}].input_schema: must be a JSON schema object"),
                )
            })?;
        function.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": function}));
    }
    let any = !out.is_empty();
    if any {
        extra.insert("tools".into(), Value::Array(out));
    }
    Ok(any)
}

/// `tool_choice` → OpenAI's `tool_choice` (and `parallel_tool_calls`).
fn translate_tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
    extra: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(()),
        Some(c) => c,
    };
    let bad = || {
        invalid(
            "tool_choice.type",
            "tool_choice.type: must be `auto`, `any`, `tool` (with `name`) or `none`",
        )
    };
    let mapped = match block_type(choice).ok_or_else(bad)? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "tool_choice.name: must be a string"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(bad()),
    };
    if !has_tools {
        // OpenAI refuses a tool_choice without tools; without tools there is nothing
        // to choose, so the choice is dropped.
        return Ok(());
    }
    extra.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        extra.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_of(body: Value) -> Result<Value, ApiError> {
        to_chat(body.to_string().as_bytes()).map(|(r, _)| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn a_full_request_translates_to_chat() {
        let chat = chat_of(json!({
            "model": "mock/echo", "max_tokens": 64,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm"},
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]}]}
            ],
            "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "tools": [{"name": "look", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "u1"}, "stream": true
        }))
        .unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "mock/echo", "max_tokens": 64, "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}}]},
                    {"role": "assistant", "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "look", "arguments": "{\"q\":1}"}}]},
                    {"role": "tool", "content": "a cat", "tool_call_id": "toolu_1"}
                ],
                "stop": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                "tools": [{"type": "function", "function": {"name": "look", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": "required", "parallel_tool_calls": false, "user": "u1"
            })
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let param = |body: Value| {
            to_chat(body.to_string().as_bytes())
                .err()
                .and_then(|e| e.param)
        };
        let msgs = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            param(json!({"model": "m", "messages": msgs})).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(json!({"max_tokens": 1, "messages": msgs})).as_deref(),
            Some("model")
        );
        assert_eq!(
            param(json!({"model": "m", "max_tokens": 0, "messages": msgs})).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(json!({"model": "m", "max_tokens": 1, "messages": []})).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]})).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]})).as_deref(),
            Some("messages[0].content[0].source")
        );
        assert_eq!(
            param(json!({"model": "m", "max_tokens": 1, "messages": msgs, "tool_choice": {"type": "maybe"}})).as_deref(),
            Some("tool_choice.type")
        );
        assert!(to_chat(b"[]").is_err());
        assert!(to_chat(b"{").is_err());
    }

    #[test]
    fn server_tools_are_left_out_of_the_translation_and_need_anthropic() {
        let only = |body: Value| match to_chat(body.to_string().as_bytes()) {
            Ok((chat, Original::Messages { anthropic_only, .. })) => (chat, anthropic_only),
            other => panic!("unexpected {other:?}"),
        };
        let msgs = json!([{"role": "user", "content": "hi"}]);
        let (chat, anthropic_only) = only(json!({"model": "m", "max_tokens": 1, "messages": msgs,
            "tools": [{"type": "web_search_20250305", "name": "web_search"},
                      {"name": "f", "input_schema": {"type": "object"}}]}));
        assert!(anthropic_only);
        assert_eq!(chat.extra["tools"].as_array().map(Vec::len), Some(1));
        let (_, anthropic_only) = only(json!({"model": "m", "max_tokens": 1, "messages": [
            {"role": "user", "content": "search"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                {"type": "web_search_tool_result", "tool_use_id": "s", "content": []}]}]}));
        assert!(anthropic_only);
        let (_, anthropic_only) = only(json!({"model": "m", "max_tokens": 1, "messages": msgs,
            "thinking": {"type": "enabled", "budget_tokens": 1024}}));
        assert!(
            !anthropic_only,
            "what chat can do without is not a reason to refuse"
        );
    }

    #[test]
    fn a_chat_answer_becomes_a_message() {
        let chat = json!({
            "id": "chatcmpl-7", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "let me look",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "look", "arguments": "{\"q\":1}"}},
                               {"id": "call_2", "type": "function",
                                "function": {"name": "bad", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 3}}
        });
        assert_eq!(
            from_chat(&chat, "mock/echo").unwrap(),
            json!({
                "id": "msg_7", "type": "message", "role": "assistant", "model": "mock/echo",
                "content": [
                    {"type": "text", "text": "let me look"},
                    {"type": "tool_use", "id": "call_1", "name": "look", "input": {"q": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "bad", "input": {}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 7, "output_tokens": 4, "cache_read_input_tokens": 3}
            })
        );
        assert_eq!(from_chat(&json!({"choices": []}), "m"), None);
        // vLLM names the stop string that matched; OpenAI does not.
        let stopped = |choice: Value| {
            let message = from_chat(&json!({"choices": [choice]}), "m").unwrap();
            (
                message["stop_reason"].clone(),
                message["stop_sequence"].clone(),
            )
        };
        assert_eq!(
            stopped(json!({"finish_reason": "stop", "stop_reason": "###",
                "message": {"role": "assistant", "content": "a"}})),
            (json!("stop_sequence"), json!("###"))
        );
        assert_eq!(
            stopped(json!({"finish_reason": "stop", "stop_reason": 50256,
                "message": {"role": "assistant", "content": "a"}})),
            (json!("end_turn"), Value::Null),
            "a stop token id is not a sequence"
        );
        assert_eq!(
            stopped(
                json!({"finish_reason": "stop", "message": {"role": "assistant", "content": "a"}})
            ),
            (json!("end_turn"), Value::Null)
        );
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("stop")), "end_turn");
    }

    #[test]
    fn error_types_follow_the_status() {
        let body = error_body(StatusCode::TOO_MANY_REQUESTS, "slow down");
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
        assert_eq!(error_type(StatusCode::UNAUTHORIZED), "authentication_error");
        assert_eq!(error_type(StatusCode::FORBIDDEN), "permission_error");
        assert_eq!(error_type(StatusCode::NOT_FOUND), "not_found_error");
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "api_error");
        assert_eq!(
            error_type(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error"
        );
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "invalid_request_error");
    }
}
