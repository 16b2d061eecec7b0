//! `POST /v1/completions`, OpenAI's legacy text completions, plain and streamed.
//!
//! A completion request is translated into chat — the prompt becomes one user message,
//! every other field is kept — and answered by [`chat::serve_call`], so it shares model
//! lookup, routing, policy, billing and the usage log with chat. The client's body
//! rides along ([`Call::Completions`](crate::upstream::dispatch::Call)): an
//! OpenAI-compatible target is sent it at its `…/completions` endpoint (only `model`
//! replaced, the prompt redacted if the policy redacted it, usage asked for when
//! streaming) and its legacy answer is forwarded unchanged; the mock (by
//! [`crate::provider::mock::complete`]) and Anthropic targets (through the chat
//! translation) answer in chat's shape, which is rewritten into the legacy one:
//! `object: "text_completion"`, `choices[{text, index, logprobs: null, finish_reason}]`,
//! the same `usage`; a stream chunk by chunk (the role-only first chunk dropped, the
//! usage chunk and `data: [DONE]` kept). What is already legacy passes through, so a
//! route mixing kinds answers in one shape. Errors pass through unchanged, in OpenAI's
//! error shape.
//!
//! Fields only the legacy endpoint has and chat cannot honour (`echo`, `suffix`,
//! `logprobs`, `best_of` above 1, token-id prompts, more than one prompt) are refused
//! with a 400 naming the field, rather than silently ignored.

use crate::cache::Directive;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::http::body::{read_limited, Response};
use crate::openai::chat::{self, refuse};
use crate::openai::ApiError;
use crate::state::AppState;

/// Serves one legacy completion request.
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
    let (request, legacy) = match to_chat(&bytes) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let stream = request.is_stream();
    let response = chat::serve_call(
        state,
        &caller,
        request,
        Some(chat::Original::Completions(legacy)),
        Directive::of(&parts.headers),
        started,
    )
    .await;
    if response.status().is_client_error() {
        return name_the_prompt(response).await;
    }
    if response.status() != StatusCode::OK {
        return response;
    }
    if stream {
        return rewrite_stream(response);
    }
    rewrite_plain(response).await
}

/// The chat request equivalent to a completion request body, and the body itself
/// (as parsed, for OpenAI-compatible targets), or the 400 saying what is wrong with it.
pub fn to_chat(
    bytes: &[u8],
) -> Result<
    (
        crate::openai::types::ChatCompletionRequest,
        Map<String, Value>,
    ),
    ApiError,
> {
    let value: Value = serde_json::from_slice(bytes).map_err(ApiError::invalid_json)?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::invalid_json("the body is not an object"));
    };
    let legacy = body.clone();
    for required in ["model", "prompt"] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(ApiError::missing_param(required));
        }
    }
    let unsupported = |param: &str, why: &str| {
        ApiError::bad_request(format!("'{param}' is not supported by Aurora: {why}."))
            .with_param(param)
            .with_code("unsupported_parameter")
    };
    let prompt = match body.remove("prompt") {
        Some(Value::String(p)) => p,
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::String(p)] => p.clone(),
            [Value::String(_), ..] => {
                return Err(unsupported(
                    "prompt",
                    "send one prompt per request (an array of several is not answered)",
                ))
            }
            [] => {
                return Err(
                    ApiError::bad_request("'prompt' must not be empty.").with_param("prompt")
                )
            }
            _ => {
                return Err(unsupported(
                    "prompt",
                    "token-id prompts cannot be translated; send the prompt as text",
                ))
            }
        },
        _ => {
            return Err(
                ApiError::bad_request("'prompt' must be a string or an array of strings.")
                    .with_param("prompt")
                    .with_code("invalid_type"),
            )
        }
    };
    for (param, why) in [
        (
            "suffix",
            "completions are answered as chat, which has no suffix",
        ),
        (
            "logprobs",
            "completions are answered as chat, whose logprobs differ",
        ),
    ] {
        if body.get(param).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(param, why));
        }
    }
    if body.get("echo").is_some_and(|v| v.as_bool() == Some(true)) {
        return Err(unsupported(
            "echo",
            "the prompt is not repeated in the answer",
        ));
    }
    if body
        .get("best_of")
        .is_some_and(|v| v.as_u64().is_some_and(|n| n > 1))
    {
        return Err(unsupported("best_of", "only one candidate is generated"));
    }
    for legacy_only in ["echo", "best_of", "suffix", "logprobs"] {
        body.remove(legacy_only);
    }
    body.insert(
        "messages".to_owned(),
        json!([{"role": "user", "content": prompt}]),
    );
    let chat_bytes = serde_json::to_vec(&body).map_err(ApiError::invalid_json)?;
    Ok((chat::parse(&chat_bytes)?, legacy))
}

/// An error naming a field of the chat translation (`messages…`, from the policy's
/// guardrails) names the client's `prompt` instead; any other error is unchanged.
async fn name_the_prompt(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let renamed = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|mut v| {
            let param = v.pointer_mut("/error/param")?;
            if !param.as_str()?.starts_with("messages") {
                return None;
            }
            *param = Value::String("prompt".to_owned());
            serde_json::to_vec(&v).ok()
        });
    match renamed {
        Some(json) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            http::Response::from_parts(parts, crate::http::body::full(json))
        }
        None => http::Response::from_parts(parts, crate::http::body::full(bytes)),
    }
}

/// Rewrites a plain `chat.completion` response into a `text_completion` one.
async fn rewrite_plain(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // The spent body is kept until the rewrite is written: it may carry the request's
    // hold on the buffered-upstream pool.
    let mut spent = body;
    let bytes = match (&mut spent).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let Ok(chat) = serde_json::from_slice::<Value>(&bytes) else {
        return ApiError::server_error(
            StatusCode::BAD_GATEWAY,
            "The provider's answer is not JSON.",
            "bad_upstream_answer",
        )
        .into_response();
    };
    if is_legacy(&chat) {
        let body = crate::http::body::keeping(crate::http::body::full(bytes), spent);
        return http::Response::from_parts(parts, body);
    }
    let json = match serde_json::to_vec(&plain(&chat)) {
        Ok(json) => json,
        Err(_) => return ApiError::internal().into_response(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = crate::http::body::keeping(crate::http::body::full(json), spent);
    http::Response::from_parts(parts, body)
}

/// The legacy id of a chat id: `chatcmpl-…` becomes `cmpl-…`.
fn legacy_id(chat: &Value) -> Value {
    match chat.get("id").and_then(Value::as_str) {
        Some(id) => Value::String(match id.strip_prefix("chatcmpl-") {
            Some(rest) => format!("cmpl-{rest}"),
            None => id.to_owned(),
        }),
        None => Value::Null,
    }
}

/// The fields every legacy answer and chunk starts with.
fn head(chat: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".to_owned(), legacy_id(chat));
    out.insert("object".to_owned(), "text_completion".into());
    for field in ["created", "model", "system_fingerprint"] {
        if let Some(v) = chat.get(field) {
            out.insert(field.to_owned(), v.clone());
        }
    }
    out
}

fn choice(index: &Value, text: &str, finish_reason: &Value) -> Value {
    json!({"text": text, "index": index, "logprobs": null, "finish_reason": finish_reason})
}

/// Whether `answer` is already in the legacy shape (an OpenAI-compatible target's
/// own answer, forwarded byte for byte).
fn is_legacy(answer: &Value) -> bool {
    answer.get("object").and_then(Value::as_str) == Some("text_completion")
}

/// A `text_completion` body from a `chat.completion` body.
fn plain(chat: &Value) -> Value {
    let mut out = head(chat);
    let choices: Vec<Value> = chat
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let text = c
                .pointer("/message/content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            choice(
                c.get("index").unwrap_or(&json!(0)),
                text,
                c.get("finish_reason").unwrap_or(&Value::Null),
            )
        })
        .collect();
    out.insert("choices".to_owned(), Value::Array(choices));
    if let Some(usage) = chat.get("usage") {
        out.insert("usage".to_owned(), usage.clone());
    }
    Value::Object(out)
}

/// The legacy chunk for one `chat.completion.chunk`, or `None` for a chunk with
/// nothing to say in the legacy dialect (the role-only first chunk).
fn chunk(chat: &Value) -> Option<Value> {
    let choices = chat.get("choices").and_then(Value::as_array)?;
    let mut out = head(chat);
    let mut said = choices.is_empty(); // the usage chunk
    let mapped: Vec<Value> = choices
        .iter()
        .map(|c| {
            let text = c
                .pointer("/delta/content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let finish = c.get("finish_reason").unwrap_or(&Value::Null);
            said |= !text.is_empty() || !finish.is_null();
            choice(c.get("index").unwrap_or(&json!(0)), text, finish)
        })
        .collect();
    if !said {
        return None;
    }
    out.insert("choices".to_owned(), Value::Array(mapped));
    if let Some(usage) = chat.get("usage") {
        out.insert("usage".to_owned(), usage.clone());
    }
    Some(Value::Object(out))
}

/// Rewrites one SSE event (without its blank-line terminator) into `out`.
fn rewrite_event(event: &[u8], out: &mut BytesMut) {
    let text = String::from_utf8_lossy(event);
    let data = text
        .strip_prefix("data: ")
        .or_else(|| text.strip_prefix("data:"));
    let rewritten = data
        .filter(|d| *d != "[DONE]")
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v.get("error").is_none() && !is_legacy(v))
        .map(|v| chunk(&v));
    match rewritten {
        // Not a chat chunk (`[DONE]`, an error event, a comment, a legacy chunk of an
        // OpenAI-compatible target): unchanged.
        None => {
            out.extend_from_slice(event);
            out.extend_from_slice(b"\n\n");
        }
        Some(None) => {}
        Some(Some(legacy)) => {
            if let Ok(json) = serde_json::to_vec(&legacy) {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(b"\n\n");
            }
        }
    }
}

/// Rewrites an SSE body of chat chunks into legacy chunks, event by event. Events
/// may be split across frames: the incomplete tail waits for the next frame.
pub struct StreamRewriter {
    pending: BytesMut,
}

impl StreamRewriter {
    /// A rewriter for one stream.
    pub fn new() -> Self {
        Self {
            pending: BytesMut::new(),
        }
    }

    /// The rewritten complete events of `data` and what was pending before it.
    pub fn feed(&mut self, data: &[u8]) -> Bytes {
        self.pending.extend_from_slice(data);
        let mut out = BytesMut::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let event = self.pending.split_to(end + 2);
            rewrite_event(&event[..end], &mut out);
        }
        out.freeze()
    }
}

impl Default for StreamRewriter {
    fn default() -> Self {
        Self::new()
    }
}

fn rewrite_stream(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let mut rewriter = StreamRewriter::new();
    let body = body
        .map_frame(move |frame| match frame.into_data() {
            Ok(data) => Frame::data(rewriter.feed(&data)),
            Err(frame) => frame,
        })
        .boxed();
    let mut response = http::Response::from_parts(parts, body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_becomes_one_user_message_and_other_fields_stay() {
        let (chat, legacy) = to_chat(
            br#"{"model":"m","prompt":["Say hi"],"max_tokens":5,"temperature":0.2,"stream":true}"#,
        )
        .expect("a request");
        assert_eq!(legacy["prompt"], json!(["Say hi"]));
        assert_eq!(chat.messages.len(), 1);
        assert_eq!(chat.messages[0].role, "user");
        assert_eq!(chat.messages[0].text(), "Say hi");
        assert_eq!(chat.max_tokens, Some(5));
        assert!(chat.is_stream());
        assert_eq!(chat.extra["temperature"], 0.2);
    }

    #[test]
    fn what_chat_cannot_honour_is_refused_by_name() {
        let param = |body: &str| to_chat(body.as_bytes()).err().and_then(|e| e.param);
        assert_eq!(param(r#"{"model":"m"}"#).as_deref(), Some("prompt"));
        assert_eq!(param(r#"{"prompt":"x"}"#).as_deref(), Some("model"));
        for (body, field) in [
            (r#"{"model":"m","prompt":["a","b"]}"#, "prompt"),
            (r#"{"model":"m","prompt":[1,2]}"#, "prompt"),
            (r#"{"model":"m","prompt":[]}"#, "prompt"),
            (r#"{"model":"m","prompt":7}"#, "prompt"),
            (r#"{"model":"m","prompt":"x","echo":true}"#, "echo"),
            (r#"{"model":"m","prompt":"x","suffix":"y"}"#, "suffix"),
            (r#"{"model":"m","prompt":"x","logprobs":2}"#, "logprobs"),
            (r#"{"model":"m","prompt":"x","best_of":3}"#, "best_of"),
            (r#"{"model":"m","prompt":"x","max_tokens":0}"#, "max_tokens"),
        ] {
            assert_eq!(param(body).as_deref(), Some(field), "{body}");
        }
        // Defaults of the legacy-only fields are fine, and do not reach chat.
        let chat =
            to_chat(br#"{"model":"m","prompt":"x","echo":false,"best_of":1,"logprobs":null}"#)
                .expect("a request")
                .0;
        assert!(chat.extra.is_empty());
    }

    #[test]
    fn a_chat_answer_reads_as_a_text_completion() {
        let chat = json!({"id":"chatcmpl-7","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi there","refusal":null},
            "logprobs":null,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}});
        assert_eq!(
            plain(&chat),
            json!({"id":"cmpl-7","object":"text_completion","created":1,"model":"m",
                "choices":[{"text":"hi there","index":0,"logprobs":null,"finish_reason":"stop"}],
                "usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}})
        );
    }

    #[test]
    fn a_chat_stream_reads_as_legacy_chunks_even_split_across_frames() {
        let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m""#;
        let input = format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n\
             data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"hi\"}},\"finish_reason\":null}}]}}\n\n\
             data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}}}\n\n\
             data: {{\"error\":{{\"message\":\"x\"}}}}\n\n\
             data: {{\"object\": \"text_completion\", \"choices\": []}}\n\n\
             data: [DONE]\n\n"
        );
        let mut rewriter = StreamRewriter::new();
        let mut out = Vec::new();
        // Fed in 7-byte pieces: events cross frame boundaries.
        for piece in input.as_bytes().chunks(7) {
            out.extend_from_slice(&rewriter.feed(piece));
        }
        let text = String::from_utf8(out).expect("utf-8");
        // A legacy chunk (an OpenAI-compatible target's) passes byte for byte.
        assert!(text.contains("data: {\"object\": \"text_completion\", \"choices\": []}\n\n"));
        let events: Vec<Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").expect("a data event");
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
            })
            .collect();
        let legacy = |choices: Value| json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":choices});
        let mut usage = legacy(json!([]));
        usage["usage"] = json!({"prompt_tokens":1,"completion_tokens":1,"total_tokens":2});
        assert_eq!(
            events,
            [
                legacy(json!([{"text":"hi","index":0,"logprobs":null,"finish_reason":null}])),
                legacy(json!([{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}])),
                usage,
                json!({"error":{"message":"x"}}),
                json!({"object":"text_completion","choices":[]}),
                Value::String("[DONE]".into()),
            ]
        );
    }
}
