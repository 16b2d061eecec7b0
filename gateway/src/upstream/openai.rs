//! OpenAI-compatible upstreams: the request goes out nearly as it came in.
//!
//! Only two things change on the way out: `model` becomes the target's upstream id,
//! and a streamed request always asks for `stream_options.include_usage`, so the
//! gateway learns the token counts it meters and bills. On the way back a plain answer
//! is forwarded byte for byte (only its `usage` is read), and a stream is forwarded
//! event by event, except that when the client did not ask for usage the gateway
//! drops the usage-only chunk and the `"usage": null` the upstream adds to every other
//! chunk, so the client sees exactly what it would have seen from OpenAI.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::openai::types::{ChatCompletionRequest, StreamOptions, Usage};
use crate::provider::tokens;
use crate::upstream::failure::Failure;
use crate::upstream::sse::Event;
use crate::upstream::stream::{data_frame, Flow};

/// The outgoing body for `request` sent to `upstream_model`.
pub fn request_body(
    request: &ChatCompletionRequest,
    upstream_model: &str,
) -> Result<Bytes, Failure> {
    let mut out = request.clone();
    upstream_model.clone_into(&mut out.model);
    if out.is_stream() {
        let options = out
            .stream_options
            .get_or_insert_with(StreamOptions::default);
        options.include_usage = Some(true);
    }
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))
}

/// The outgoing body of a request forwarded as the client sent it (embeddings):
/// only `model` becomes `upstream_model`; every other field goes out unchanged.
pub fn passthrough_body(
    request: &serde_json::Map<String, Value>,
    upstream_model: &str,
) -> Result<Bytes, Failure> {
    let mut out = request.clone();
    out.insert("model".to_owned(), Value::String(upstream_model.to_owned()));
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))
}

/// The outgoing body of a legacy completion: the client's `legacy` body with `model`
/// replaced, `prompt` set to the admitted one (the text of `chat`'s user message, so
/// redacted when the policy redacted), and a stream asking for usage as chat does.
pub fn legacy_completion_body(
    legacy: &serde_json::Map<String, Value>,
    chat: &ChatCompletionRequest,
    upstream_model: &str,
) -> Result<Bytes, Failure> {
    let mut out = legacy.clone();
    out.insert("model".to_owned(), Value::String(upstream_model.to_owned()));
    if let Some(prompt) = chat.messages.iter().find(|m| m.role == "user") {
        out.insert("prompt".to_owned(), Value::String(prompt.text()));
    }
    if chat.is_stream() {
        let options = out
            .entry("stream_options")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !options.is_object() {
            *options = Value::Object(serde_json::Map::new());
        }
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
    }
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default, deserialize_with = "super::lenient_count")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "super::lenient_count")]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsIn>,
}

#[derive(Deserialize)]
struct PromptDetailsIn {
    #[serde(default, deserialize_with = "super::lenient_count")]
    cached_tokens: u64,
}

impl UsageIn {
    /// Prompt tokens read from the provider's cache (billed at their own rate).
    fn cached(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens)
    }
}

impl From<UsageIn> for Usage {
    fn from(u: UsageIn) -> Self {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Usage::new(clamp(u.prompt_tokens), clamp(u.completion_tokens))
    }
}

#[derive(Deserialize)]
struct PlainIn {
    #[serde(default)]
    usage: Option<UsageIn>,
    /// Required, so a body without it is rejected as not a chat completion.
    #[serde(rename = "choices")]
    _choices: serde::de::IgnoredAny,
}

/// Checks a plain answer and reads its usage; the bytes are forwarded unchanged.
pub fn read_plain(body: &[u8]) -> Result<Option<Usage>, Failure> {
    let parsed: PlainIn = serde_json::from_slice(body)
        .map_err(|e| Failure::Protocol(format!("not a chat.completion: {e}")))?;
    Ok(parsed.usage.map(Usage::from))
}

#[derive(Deserialize)]
struct EmbeddingsIn {
    #[serde(default)]
    usage: Option<UsageIn>,
    /// Required, so a body without it is rejected as not an embeddings list.
    #[serde(rename = "data")]
    _data: serde::de::IgnoredAny,
}

/// Checks an embeddings answer and reads its usage (input tokens only); the bytes
/// are forwarded unchanged.
pub fn read_embeddings(body: &[u8]) -> Result<Option<Usage>, Failure> {
    let parsed: EmbeddingsIn = serde_json::from_slice(body)
        .map_err(|e| Failure::Protocol(format!("not an embeddings list: {e}")))?;
    Ok(parsed
        .usage
        .map(|u| Usage::new(Usage::from(u).prompt_tokens, 0)))
}

/// Stream state: whether the client wants usage, and the usage seen so far.
#[derive(Debug)]
pub struct OpenAiStream {
    client_wants_usage: bool,
    usage: Option<Usage>,
    /// Cached prompt tokens of the usage chunk.
    cached: u64,
    /// Completion tokens streamed so far, by the token heuristic (the estimate
    /// billed when the stream ends before its usage chunk).
    streamed: u64,
}

impl OpenAiStream {
    /// A translator for one stream.
    pub fn new(client_wants_usage: bool) -> Self {
        Self {
            client_wants_usage,
            usage: None,
            cached: 0,
            streamed: 0,
        }
    }

    /// Completion tokens streamed so far, by the token heuristic.
    pub fn streamed_tokens(&self) -> u64 {
        self.streamed
    }

    /// Usage reported by the upstream, if any yet.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Cached prompt tokens reported with the usage (0 if none).
    pub fn cached(&self) -> u64 {
        self.cached
    }

    /// Handles one upstream event, pushing the frames for the client into `out`.
    pub fn on_event(&mut self, event: Event, out: &mut Vec<Bytes>) -> Flow {
        if event.data == "[DONE]" {
            out.push(Bytes::from_static(b"data: [DONE]\n\n"));
            return Flow::Done;
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(&event.data) else {
            out.push(data_frame(event.data.as_bytes()));
            return Flow::Continue;
        };
        if chunk.get("error").is_some() {
            out.push(data_frame(event.data.as_bytes()));
            return Flow::Error;
        }
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
            // Chat chunks carry `delta`, legacy completion chunks `text`.
            let tokens: u64 = choices
                .iter()
                .map(|c| match c.get("delta") {
                    Some(delta) => tokens::of_message_value(delta),
                    None => c
                        .get("text")
                        .and_then(Value::as_str)
                        .map_or(0, |t| u64::from(tokens::count(t))),
                })
                .sum();
            self.streamed = self.streamed.saturating_add(tokens);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            if let Ok(u) = serde_json::from_value::<UsageIn>(usage.clone()) {
                self.cached = u.cached();
                self.usage = Some(u.into());
            }
        }
        if self.client_wants_usage {
            out.push(data_frame(event.data.as_bytes()));
            return Flow::Continue;
        }
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if usage_only {
            return Flow::Continue;
        }
        if let Some(object) = chunk.as_object_mut() {
            if object.remove("usage").is_some() {
                if let Ok(json) = serde_json::to_vec(&chunk) {
                    out.push(data_frame(&json));
                    return Flow::Continue;
                }
            }
        }
        out.push(data_frame(event.data.as_bytes()));
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> Event {
        Event {
            event: String::new(),
            data: data.to_owned(),
        }
    }

    /// Issue 10 item 10e: counts an upstream cannot be trusted with (negative, beyond
    /// `u64`, fractional) are read as bounded numbers, not refused or wrapped.
    #[test]
    fn hostile_token_counts_are_clamped() {
        let usage = |u: &str| {
            read_plain(format!(r#"{{"choices":[],"usage":{u}}}"#).as_bytes())
                .expect("a chat completion")
                .expect("usage")
        };
        let u = usage(r#"{"prompt_tokens":-5,"completion_tokens":1e30}"#);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (0, u32::MAX));
        let u = usage(r#"{"prompt_tokens":18446744073709551615,"completion_tokens":2.9}"#);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (u32::MAX, 2));
        assert_eq!(u.total_tokens, u32::MAX);
    }

    #[test]
    fn embeddings_go_out_with_only_the_model_replaced() {
        let body = serde_json::json!({"model": "alias", "input": ["a", "b"], "dimensions": 8,
            "encoding_format": "base64", "user": "u1"});
        let map = body.as_object().expect("an object").clone();
        let out: Value = serde_json::from_slice(
            &passthrough_body(&map, "text-embedding-3-small").expect("body"),
        )
        .expect("json");
        let mut expected = body;
        expected["model"] = "text-embedding-3-small".into();
        assert_eq!(out, expected);
        let usage = read_embeddings(
            br#"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#,
        )
        .expect("a list");
        assert_eq!(usage, Some(Usage::new(7, 0)));
        assert!(read_embeddings(br#"{"choices":[]}"#).is_err());
    }

    #[test]
    fn forced_usage_is_stripped_when_not_asked() {
        let mut s = OpenAiStream::new(false);
        let mut out = Vec::new();
        s.on_event(
            ev(r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#),
            &mut out,
        );
        s.on_event(
            ev(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#),
            &mut out,
        );
        assert_eq!(s.on_event(ev("[DONE]"), &mut out), Flow::Done);
        let text: Vec<String> = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(
            text,
            [
                "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
                "data: [DONE]\n\n"
            ]
        );
        assert_eq!(s.usage(), Some(Usage::new(3, 5)));
    }

    #[test]
    fn streamed_cached_prompt_tokens_are_kept_for_billing() {
        let mut s = OpenAiStream::new(false);
        let mut out = Vec::new();
        s.on_event(
            ev(r#"{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":800}}}"#),
            &mut out,
        );
        assert_eq!(s.usage(), Some(Usage::new(1000, 5)));
        assert_eq!(s.cached(), 800);
        // Without details, nothing is cached.
        let mut plain = OpenAiStream::new(false);
        plain.on_event(
            ev(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#),
            &mut out,
        );
        assert_eq!(plain.cached(), 0);
    }

    #[test]
    fn asked_usage_is_forwarded_verbatim() {
        let mut s = OpenAiStream::new(true);
        let mut out = Vec::new();
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        s.on_event(ev(usage), &mut out);
        assert_eq!(out, [data_frame(usage.as_bytes())]);
    }

    #[test]
    fn request_forces_include_usage_and_renames_the_model() {
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "alias", "messages": [{"role": "user", "content": "x"}],
            "stream": true, "temperature": 0.5
        }))
        .expect("request");
        let body: Value =
            serde_json::from_slice(&request_body(&req, "gpt-4o").expect("body")).expect("json");
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["temperature"], 0.5);
    }
}
