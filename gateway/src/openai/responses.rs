//! `POST /v1/responses`: OpenAI's Responses API, stateless, answered through chat.
//!
//! The request is translated into a [`ChatCompletionRequest`] and answered by
//! [`chat::serve`], so a Responses call goes through exactly the same keys,
//! guardrails, limits, budgets, usage log, metrics and routing (aliases, weighted
//! targets, fallbacks) as a chat call; only the two ends differ:
//! - [`to_chat`]: `instructions` becomes a first system message, `input` (a string
//!   or a list of message, `function_call` and `function_call_output` items) becomes
//!   `messages`, flat function tools become chat's `{type, function:{…}}`,
//!   `text.format` becomes `response_format`, `max_output_tokens` becomes
//!   `max_completion_tokens`; a stream asks for `include_usage`, because
//!   `response.completed` carries the usage.
//! - [`from_chat`]: a chat completion becomes a `response` object with a `message`
//!   item and one `function_call` item per tool call; a stream is rewritten event by
//!   event by [`super::responses_stream`].
//!
//! Aurora stores nothing: `store` is accepted and ignored, and a request that names a
//! `previous_response_id` (or a `conversation`, an `item_reference`, `background`) is
//! refused with a 400 that says to send the whole input; so are built-in tools
//! (`web_search`, …), which Aurora does not run, named in the message.
//! An error answer from chat (any non-200) is passed on as it is: it already has
//! OpenAI's error shape and the right status.

use crate::cache::Directive;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::clock::unix_seconds;
use crate::http::body::{full, read_limited, ChannelBody, Response};
use crate::openai::chat;
use crate::openai::responses_stream::{Ids, StreamTranslator};
use crate::openai::types::{ChatCompletionRequest, ChatMessage, MessageContent, StreamOptions};
use crate::openai::ApiError;
use crate::state::AppState;
use crate::upstream::sse::Parser;

/// Translated events buffered between the adapter and the socket.
const STREAM_BUFFER: usize = 16;

/// What the answer echoes of the request (the Responses object repeats its
/// parameters), kept aside while chat answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Echo {
    /// `model` as the client sent it.
    pub model: String,
    /// `instructions`, or null.
    pub instructions: Value,
    /// `metadata`, or null.
    pub metadata: Value,
    /// `tools` as the client sent them (flat), or `[]`.
    pub tools: Value,
    /// `tool_choice`, default `auto`.
    pub tool_choice: Value,
    /// `parallel_tool_calls`, default true.
    pub parallel_tool_calls: bool,
    /// `temperature`, `top_p`, `max_output_tokens`: echoed or null.
    pub temperature: Value,
    /// See `temperature`.
    pub top_p: Value,
    /// See `temperature`.
    pub max_output_tokens: Value,
    /// `text` as sent, default `{"format":{"type":"text"}}`.
    pub text: Value,
    /// `store` as sent (nothing is stored either way), default false.
    pub store: bool,
    /// `user`, or null.
    pub user: Value,
    /// `reasoning` as sent (its `effort` goes to chat as `reasoning_effort`).
    pub reasoning: Value,
}

impl Echo {
    /// The `response` object's fields other than id, status, output and usage.
    pub fn skeleton(&self, ids: &Ids, created_at: u64, status: &str) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("id".into(), json!(ids.response));
        object.insert("object".into(), json!("response"));
        object.insert("created_at".into(), json!(created_at));
        object.insert("status".into(), json!(status));
        object.insert("error".into(), Value::Null);
        object.insert("incomplete_details".into(), Value::Null);
        object.insert("instructions".into(), self.instructions.clone());
        object.insert("max_output_tokens".into(), self.max_output_tokens.clone());
        object.insert("model".into(), json!(self.model));
        object.insert("output".into(), json!([]));
        object.insert(
            "parallel_tool_calls".into(),
            json!(self.parallel_tool_calls),
        );
        object.insert("previous_response_id".into(), Value::Null);
        object.insert("reasoning".into(), self.reasoning.clone());
        object.insert("store".into(), json!(self.store));
        object.insert("temperature".into(), self.temperature.clone());
        object.insert("text".into(), self.text.clone());
        object.insert("tool_choice".into(), self.tool_choice.clone());
        object.insert("tools".into(), self.tools.clone());
        object.insert("top_p".into(), self.top_p.clone());
        object.insert("truncation".into(), json!("disabled"));
        object.insert("usage".into(), Value::Null);
        object.insert("user".into(), self.user.clone());
        object.insert("metadata".into(), self.metadata.clone());
        object
    }
}

/// Serves one `POST /v1/responses`.
pub async fn handle<B>(state: &Arc<AppState>, request: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let caller = match crate::admission::authenticate(state, &parts.headers) {
        Ok(caller) => caller,
        Err(rejection) => return chat::refuse(state, &rejection, None, "", started),
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
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => return ApiError::invalid_json(error).into_response(),
    };
    let (request, echo) = match to_chat(&value) {
        Ok(translated) => translated,
        Err(error) => return error.into_response(),
    };
    let stream = request.is_stream();
    let response = chat::serve(
        state,
        &caller,
        request,
        Directive::of(&parts.headers),
        started,
    )
    .await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let ids = Ids::new(&state.next_completion_id());
    let created_at = unix_seconds();
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if stream {
        let (tx, channel) = ChannelBody::channel(STREAM_BUFFER);
        let translator = StreamTranslator::new(echo, ids, created_at);
        tokio::spawn(adapt_stream(body, translator, tx));
        return http::Response::from_parts(parts, BodyExt::boxed(channel));
    }
    // A plain answer: read it whole (it is already complete upstream-side), rewrite.
    // The spent body is kept until the rewrite is written: it may carry the request's
    // hold on the buffered-upstream pool.
    let mut spent = body;
    let bytes = match (&mut spent).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let rewritten = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|chat| from_chat(&chat, &echo, &ids, created_at))
        .and_then(|response| serde_json::to_vec(&Value::Object(response)).ok());
    match rewritten {
        Some(json) => {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            http::Response::from_parts(parts, crate::http::body::keeping(full(json), spent))
        }
        None => {
            let mut response = ApiError::server_error(
                StatusCode::BAD_GATEWAY,
                "The upstream's answer is not a chat completion Aurora can translate into a response.",
                "upstream_invalid_response",
            )
            .into_response();
            // The model label and upstream timing stay with the answer, for the metrics.
            *response.extensions_mut() = parts.extensions;
            response
        }
    }
}

/// Reads the chat SSE body, writes the Responses events to `tx`. A client that goes
/// away makes `tx` fail: the chat body is dropped, so the chat side sees the client
/// leave and settles as it does for chat.
async fn adapt_stream(
    mut body: crate::http::body::Body,
    mut translator: StreamTranslator,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut parser = Parser::new();
    for event in translator.start() {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    loop {
        let out = match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match parser.push(&data) {
                    Ok(events) => events
                        .iter()
                        .flat_map(|event| translator.on_data(&event.data))
                        .collect(),
                    Err(too_large) => translator.fail(&too_large.to_string()),
                },
                Err(_trailers) => Vec::new(),
            },
            Some(Err(never)) => match never {},
            None => translator.end(),
        };
        let finished = translator.is_finished();
        for event in out {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
    }
}

/// Translates a Responses request into chat, plus what the answer echoes.
pub fn to_chat(value: &Value) -> Result<(ChatCompletionRequest, Echo), ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid_json("the body is not an object"));
    };
    if object
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request(
            "Aurora does not store conversations, so `previous_response_id` cannot be resolved; \
             send the full conversation in `input` instead.",
        )
        .with_param("previous_response_id"));
    }
    if object.get("conversation").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(
            "Aurora does not store conversations, so `conversation` cannot be resolved; send the \
             full conversation in `input` instead.",
        )
        .with_param("conversation"));
    }
    if object.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "Aurora does not store responses, so `background` responses (fetched later by id) \
             are not supported; send the request without it.",
        )
        .with_param("background"));
    }
    let model = match object.get("model") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("model")),
        Some(Value::String(model)) if model.is_empty() => {
            return Err(ApiError::bad_request("'model' must not be empty.").with_param("model"))
        }
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err(invalid_type("model", "a string")),
    };
    let mut messages = Vec::new();
    let instructions = object.get("instructions").cloned().unwrap_or(Value::Null);
    match &instructions {
        Value::Null => {}
        Value::String(text) => messages.push(text_message("system", text)),
        _ => return Err(invalid_type("instructions", "a string")),
    }
    match object.get("input") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("input")),
        Some(Value::String(text)) => messages.push(text_message("user", text)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        Some(_) => return Err(invalid_type("input", "a string or a list of items")),
    }
    if messages.is_empty() {
        return Err(
            ApiError::bad_request("'input' must contain at least one item.").with_param("input"),
        );
    }
    let mut extra = Map::new();
    for field in ["temperature", "top_p"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                extra.insert(field.into(), v.clone());
            }
            Some(_) => return Err(invalid_type(field, "a number")),
        }
    }
    let max_output_tokens = match object.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(0) => {
                return Err(
                    ApiError::bad_request("'max_output_tokens' must be at least 1.")
                        .with_param("max_output_tokens"),
                )
            }
            Some(n) => Some(n),
            None => return Err(invalid_type("max_output_tokens", "a positive integer")),
        },
    };
    let parallel_tool_calls = match object.get("parallel_tool_calls") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid_type("parallel_tool_calls", "a boolean")),
    };
    let tools = match object.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools.clone(),
        Some(_) => return Err(invalid_type("tools", "a list")),
    };
    if !tools.is_empty() {
        let chat_tools = tools
            .iter()
            .enumerate()
            .map(|(i, tool)| chat_tool(tool, i))
            .collect::<Result<Vec<_>, _>>()?;
        extra.insert("tools".into(), Value::Array(chat_tools));
        if let Some(parallel) = parallel_tool_calls {
            extra.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    let tool_choice = object.get("tool_choice").cloned().unwrap_or(Value::Null);
    if !tool_choice.is_null() {
        extra.insert("tool_choice".into(), chat_tool_choice(&tool_choice)?);
    }
    let text = object.get("text").cloned().unwrap_or(Value::Null);
    if let Some(format) = response_format(&text)? {
        extra.insert("response_format".into(), format);
    }
    let user = object.get("user").cloned().unwrap_or(Value::Null);
    // Chat has the same fields under the same names.
    for field in [
        "user",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    ] {
        if let Some(v @ Value::String(_)) = object.get(field) {
            extra.insert(field.into(), v.clone());
        }
    }
    let reasoning = match object.get("reasoning") {
        None | Some(Value::Null) => json!({"effort": null, "summary": null}),
        Some(v @ Value::Object(r)) => {
            if let Some(effort @ Value::String(_)) = r.get("effort") {
                extra.insert("reasoning_effort".into(), effort.clone());
            }
            v.clone()
        }
        Some(_) => return Err(invalid_type("reasoning", "an object")),
    };
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_type("stream", "a boolean")),
    };
    let store = match object.get("store") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_type("store", "a boolean")),
    };
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(invalid_type("metadata", "an object")),
    };
    let request = ChatCompletionRequest {
        model: model.clone(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens: None,
        max_completion_tokens: max_output_tokens,
        extra,
    };
    let echo = Echo {
        model,
        instructions,
        metadata,
        tools: Value::Array(tools),
        tool_choice: if tool_choice.is_null() {
            json!("auto")
        } else {
            tool_choice
        },
        parallel_tool_calls: parallel_tool_calls.unwrap_or(true),
        temperature: object.get("temperature").cloned().unwrap_or(Value::Null),
        top_p: object.get("top_p").cloned().unwrap_or(Value::Null),
        max_output_tokens: max_output_tokens.map_or(Value::Null, |n| json!(n)),
        text: if text.is_null() {
            json!({"format": {"type": "text"}})
        } else {
            text
        },
        store,
        user,
        reasoning,
    };
    Ok((request, echo))
}

fn invalid_type(param: &str, expected: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid value for '{param}': expected {expected}."))
        .with_param(param)
        .with_code("invalid_type")
}

fn text_message(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content: Some(MessageContent::Text(text.to_owned())),
        extra: Map::new(),
    }
}

/// Appends the chat messages for one `input` item.
fn input_item(item: &Value, at: &str, messages: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let Some(item) = item.as_object() else {
        return Err(invalid_type(at, "an object"));
    };
    let kind = match item.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(invalid_type(&format!("{at}.type"), "a string")),
    };
    let string = |field: &str| -> Result<String, ApiError> {
        match item.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(ApiError::missing_param(&format!("{at}.{field}"))),
            Some(_) => Err(invalid_type(&format!("{at}.{field}"), "a string")),
        }
    };
    match kind {
        "message" => {
            let role = string("role")?;
            if !matches!(role.as_str(), "user" | "system" | "developer" | "assistant") {
                return Err(ApiError::bad_request(format!(
                    "Invalid value for '{at}.role': `{role}`; expected user, system, developer or assistant."
                ))
                .with_param(format!("{at}.role")));
            }
            let content = match item.get("content") {
                Some(Value::String(text)) => MessageContent::Text(text.clone()),
                Some(Value::Array(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, part) in parts.iter().enumerate() {
                        out.push(content_part(part, &format!("{at}.content[{j}]"))?);
                    }
                    MessageContent::Parts(out)
                }
                None | Some(Value::Null) => {
                    return Err(ApiError::missing_param(&format!("{at}.content")))
                }
                Some(_) => {
                    return Err(invalid_type(
                        &format!("{at}.content"),
                        "a string or a list of parts",
                    ))
                }
            };
            messages.push(ChatMessage {
                role,
                content: Some(content),
                extra: Map::new(),
            });
        }
        "function_call" => {
            let call = json!({
                "id": string("call_id")?,
                "type": "function",
                "function": {"name": string("name")?, "arguments": string("arguments")?},
            });
            // Consecutive calls (parallel tool calls) belong to one assistant turn.
            match messages.last_mut() {
                Some(last) if last.role == "assistant" => {
                    let calls = last
                        .extra
                        .entry("tool_calls")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(calls) = calls {
                        calls.push(call);
                    }
                }
                _ => messages.push(ChatMessage {
                    role: "assistant".into(),
                    content: None,
                    extra: Map::from_iter([("tool_calls".to_owned(), json!([call]))]),
                }),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                None | Some(Value::Null) => {
                    return Err(ApiError::missing_param(&format!("{at}.output")))
                }
                Some(_) => return Err(invalid_type(&format!("{at}.output"), "a string")),
            };
            messages.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(output)),
                extra: Map::from_iter([("tool_call_id".to_owned(), json!(string("call_id")?))]),
            });
        }
        "item_reference" => {
            return Err(ApiError::bad_request(format!(
                "Aurora does not store conversations, so the `item_reference` at '{at}' cannot be \
                 resolved; send the item itself."
            ))
            .with_param(format!("{at}.type")))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Input items of type `{other}` are not supported by Aurora's /v1/responses; use \
                 message, function_call or function_call_output items."
            ))
            .with_param(format!("{at}.type")))
        }
    }
    Ok(())
}

/// One Responses content part as a chat content part.
fn content_part(part: &Value, at: &str) -> Result<Map<String, Value>, ApiError> {
    let Some(part) = part.as_object() else {
        return Err(invalid_type(at, "an object"));
    };
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    match kind {
        "input_text" | "output_text" | "text" => {
            let Some(text) = part.get("text").and_then(Value::as_str) else {
                return Err(ApiError::missing_param(&format!("{at}.text")));
            };
            out.insert("type".into(), json!("text"));
            out.insert("text".into(), json!(text));
        }
        "refusal" => {
            let text = part.get("refusal").and_then(Value::as_str).unwrap_or("");
            out.insert("type".into(), json!("text"));
            out.insert("text".into(), json!(text));
        }
        "input_image" => {
            let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                return Err(ApiError::bad_request(format!(
                    "'{at}' needs an `image_url` (a URL or a data: URL); Aurora stores no files, \
                     so `file_id` cannot be resolved."
                ))
                .with_param(format!("{at}.image_url")));
            };
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image.insert("detail".into(), detail.clone());
            }
            out.insert("type".into(), json!("image_url"));
            out.insert("image_url".into(), Value::Object(image));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Content parts of type `{other}` are not supported by Aurora's /v1/responses; use \
                 input_text, output_text or input_image."
            ))
            .with_param(format!("{at}.type")))
        }
    }
    Ok(out)
}

/// A flat Responses function tool as chat's nested one; any other tool type is refused.
fn chat_tool(tool: &Value, i: usize) -> Result<Value, ApiError> {
    let at = format!("tools[{i}]");
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "function" {
        return Err(ApiError::bad_request(format!(
            "The tool type `{kind}` is not supported by Aurora: it runs no built-in tools \
             (web_search, file_search, computer use, …); only `function` tools are passed on."
        ))
        .with_param(format!("{at}.type")));
    }
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        return Err(ApiError::missing_param(&format!("{at}.name")));
    };
    let mut function = Map::new();
    function.insert("name".into(), json!(name));
    for field in ["description", "parameters", "strict"] {
        if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
            function.insert(field.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": function}))
}

fn chat_tool_choice(choice: &Value) -> Result<Value, ApiError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok(json!({"type": "function", "function": {"name": name}})),
                None => Err(ApiError::missing_param("tool_choice.name")),
            }
        }
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
            Err(ApiError::bad_request(format!(
                "The tool_choice type `{kind}` is not supported by Aurora; use auto, none, \
                 required or {{\"type\":\"function\",\"name\":…}}."
            ))
            .with_param("tool_choice"))
        }
        _ => Err(invalid_type(
            "tool_choice",
            "auto, none, required or a function choice",
        )),
    }
}

/// `text.format` as chat's `response_format`; `None` for plain text.
fn response_format(text: &Value) -> Result<Option<Value>, ApiError> {
    let format = match text {
        Value::Null => return Ok(None),
        Value::Object(text) => match text.get("format") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(format)) => format,
            Some(_) => return Err(invalid_type("text.format", "an object")),
        },
        _ => return Err(invalid_type("text", "an object")),
    };
    match format.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let mut schema = Map::new();
            for field in ["name", "description", "schema", "strict"] {
                if let Some(v) = format.get(field).filter(|v| !v.is_null()) {
                    schema.insert(field.into(), v.clone());
                }
            }
            if !schema.contains_key("name") {
                return Err(ApiError::missing_param("text.format.name"));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        other => Err(ApiError::bad_request(format!(
            "The text format `{other}` is not supported; use text, json_object or json_schema."
        ))
        .with_param("text.format.type")),
    }
}

/// The Responses `usage` for a chat `usage` object. Every detail field is present
/// (0 when chat did not report it): the openai SDK's `ResponseUsage` requires them.
pub fn usage_of(chat: &Value) -> Value {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let input = n(chat, "prompt_tokens");
    let output = n(chat, "completion_tokens");
    let details = chat.get("prompt_tokens_details").unwrap_or(&Value::Null);
    let (cached, cache_write) = (
        n(details, "cached_tokens"),
        n(details, "cache_write_tokens"),
    );
    let reasoning = chat
        .get("completion_tokens_details")
        .map_or(0, |d| n(d, "reasoning_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": chat.get("total_tokens").and_then(Value::as_u64).unwrap_or(input + output),
    })
}

/// `status` and `incomplete_details` for a chat `finish_reason`.
pub fn status_of(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A `message` output item holding `text`.
pub fn message_item(id: &str, status: &str, text: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    })
}

/// A `function_call` output item.
pub fn function_call_item(id: &str, status: &str, call_id: &str, name: &str, args: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": args,
    })
}

/// A chat completion as a `response` object; `None` if it is not one.
pub fn from_chat(
    chat: &Value,
    echo: &Echo,
    ids: &Ids,
    created_at: u64,
) -> Option<Map<String, Value>> {
    let choice = chat.get("choices")?.as_array()?.first()?;
    let message = choice.get("message")?;
    let text = message.get("content").and_then(Value::as_str).unwrap_or("");
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut output = Vec::new();
    if !text.is_empty() || calls.is_empty() {
        output.push(message_item(&ids.message, "completed", text));
    }
    for (i, call) in calls.iter().enumerate() {
        let function = call.get("function")?;
        let call_id = call
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| ids.call(i), str::to_owned);
        output.push(function_call_item(
            &ids.function(i),
            "completed",
            &call_id,
            function.get("name").and_then(Value::as_str).unwrap_or(""),
            function
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ));
    }
    let (status, incomplete) = status_of(choice.get("finish_reason").and_then(Value::as_str));
    let mut response = echo.skeleton(ids, created_at, status);
    response.insert("incomplete_details".into(), incomplete);
    response.insert("output".into(), Value::Array(output));
    if let Some(usage) = chat.get("usage").filter(|u| u.is_object()) {
        response.insert("usage".into(), usage_of(usage));
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_of(body: Value) -> ChatCompletionRequest {
        to_chat(&body).expect("translates").0
    }

    fn error_of(body: Value) -> ApiError {
        to_chat(&body).expect_err("refused")
    }

    #[test]
    fn a_string_input_with_instructions_becomes_system_then_user() {
        let chat = chat_of(json!({
            "model": "m", "input": "hi", "instructions": "be brief",
            "max_output_tokens": 9, "temperature": 0.5, "top_p": 0.9, "store": true,
            "metadata": {"k": "v"}
        }));
        let value = serde_json::to_value(&chat).unwrap();
        assert_eq!(
            value,
            json!({
                "model": "m",
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "hi"}],
                "max_completion_tokens": 9, "temperature": 0.5, "top_p": 0.9
            }),
            "metadata and store stay with Aurora"
        );
    }

    #[test]
    fn items_translate_to_messages_with_parts_and_tool_calls() {
        let chat = chat_of(json!({
            "model": "m",
            "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}
                ]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "let me look"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"}
            ],
            "stream": true
        }));
        let value = serde_json::to_value(&chat).unwrap();
        assert_eq!(
            value["messages"],
            json!([
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "let me look"}],
                 "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":1}"}}
                 ]},
                {"role": "tool", "content": "one", "tool_call_id": "c1"},
                {"role": "tool", "content": "two", "tool_call_id": "c2"}
            ])
        );
        assert!(chat.is_stream());
        assert!(chat.include_usage(), "response.completed needs the usage");
    }

    #[test]
    fn tools_choice_and_format_take_chat_shapes() {
        let chat = chat_of(json!({
            "model": "m", "input": "x",
            "tools": [{"type": "function", "name": "get_weather", "description": "d",
                       "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": false,
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}
        }));
        assert_eq!(
            chat.extra["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
                    "parameters": {"type": "object"}, "strict": true}}])
        );
        assert_eq!(
            chat.extra["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(chat.extra["parallel_tool_calls"], json!(false));
        assert_eq!(
            chat.extra["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
        );
        let chat = chat_of(
            json!({"model": "m", "input": "x", "reasoning": {"effort": "low"},
                                  "service_tier": "flex", "truncation": "auto"}),
        );
        assert_eq!(chat.extra["reasoning_effort"], json!("low"));
        assert_eq!(chat.extra["service_tier"], json!("flex"));
        assert!(
            !chat.extra.contains_key("truncation"),
            "fields chat lacks stay here"
        );
        let chat = chat_of(
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}),
        );
        assert_eq!(
            chat.extra["response_format"],
            json!({"type": "json_object"})
        );
    }

    #[test]
    fn refusals_name_the_field_and_say_why() {
        let e = error_of(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("previous_response_id"));
        assert!(
            e.message.contains("does not store conversations"),
            "{}",
            e.message
        );
        // A null previous_response_id is what some clients send by default.
        assert!(
            to_chat(&json!({"model": "m", "input": "x", "previous_response_id": null})).is_ok()
        );

        let e = error_of(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        assert!(e.message.contains("`web_search`"), "{}", e.message);

        assert_eq!(
            error_of(json!({"input": "x"})).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            error_of(json!({"model": "m"})).param.as_deref(),
            Some("input")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": []}))
                .param
                .as_deref(),
            Some("input")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}))
                .param
                .as_deref(),
            Some("input[0].role")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": [{"type": "reasoning"}]}))
                .param
                .as_deref(),
            Some("input[0].type")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]}))
                .param.as_deref(),
            Some("input[0].content[0].type")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": "x", "max_output_tokens": 0}))
                .param
                .as_deref(),
            Some("max_output_tokens")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}))
                .param
                .as_deref(),
            Some("tool_choice")
        );
        assert_eq!(
            error_of(json!({"model": "m", "input": "x", "background": true}))
                .param
                .as_deref(),
            Some("background")
        );
        assert!(to_chat(&json!([1])).is_err());
    }

    #[test]
    fn a_chat_completion_becomes_a_response() {
        let echo = to_chat(&json!({"model": "m", "input": "x", "metadata": {"k": "v"}}))
            .unwrap()
            .1;
        let ids = Ids::new("chatcmpl-abc");
        let chat = json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "calling",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                      "prompt_tokens_details": {"cached_tokens": 2}}
        });
        let response = Value::Object(from_chat(&chat, &echo, &ids, 5).unwrap());
        assert_eq!(response["id"], "resp_abc");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["metadata"], json!({"k": "v"}));
        assert_eq!(
            response["output"],
            json!([
                message_item("msg_abc", "completed", "calling"),
                function_call_item("fc_abc_0", "completed", "call_1", "f", "{\"a\":1}")
            ])
        );
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 3,
                   "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
                   "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 7})
        );
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "ab"}}]});
        let response = Value::Object(from_chat(&cut, &echo, &ids, 5).unwrap());
        assert_eq!(response["status"], "incomplete");
        assert_eq!(
            response["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert!(from_chat(&json!({"choices": []}), &echo, &ids, 5).is_none());
    }
}
