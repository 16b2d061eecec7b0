//! OpenAI's chat-completion request and response bodies.
//!
//! Requests keep every field they do not model in `extra` (`#[serde(flatten)]`), and
//! serialize back with it, so options Aurora does not interpret (`temperature`,
//! `tools`, `response_format`, vendor extensions, fields OpenAI adds next month) reach
//! an upstream provider unchanged instead of being silently dropped.
//!
//! Responses are built from typed structs whose field order and nulls match OpenAI's
//! (`logprobs: null`, `refusal: null`), because some clients are stricter than the spec.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most completions one request may ask for (OpenAI's bound on `n`).
pub const MAX_CHOICES: u32 = 128;

/// `POST /v1/chat/completions` body.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ChatCompletionRequest {
    /// Model id, e.g. `mock/gpt-4o-mini`.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options; `include_usage` adds a final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Legacy cap on completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Current cap on completion tokens; wins over `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Every other field, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The effective completion-token cap.
    pub fn token_cap(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// How many completions the client asked for (`n`; 1 when absent or not a
    /// positive integer, at most [`MAX_CHOICES`]): each may be as long as the cap.
    pub fn choices(&self) -> u32 {
        self.extra
            .get("n")
            .and_then(Value::as_u64)
            .map_or(1, |n| n.clamp(1, u64::from(MAX_CHOICES)) as u32)
    }
}

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and `choices: []`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other options, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of the conversation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// Text, or a list of content parts; absent (`None`) or `null`
    /// ([`MessageContent::Null`]) for some assistant messages. The two are kept apart so
    /// the message goes upstream as the client wrote it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub content: Option<MessageContent>,
    /// `name`, `tool_calls`, `tool_call_id`, …, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// The message's text: the string content, or its text parts concatenated.
    pub fn text(&self) -> String {
        match &self.content {
            None | Some(MessageContent::Null) => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        }
    }
}

/// Message content: a plain string, or parts such as `{"type":"text","text":…}` and
/// `{"type":"image_url",…}` (kept as raw JSON: only text parts are read here).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum MessageContent {
    /// `"content": "…"`
    Text(String),
    /// `"content": [{…}, …]`
    Parts(Vec<Map<String, Value>>),
    /// `"content": null`, as OpenAI's SDKs send an assistant message that only calls
    /// tools.
    Null,
}

/// A field that is present: `null` too is a value (of `T`), not an absent field.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Token usage of one completion.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens in the answer.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

impl Usage {
    /// Usage with `total_tokens` computed.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// A non-streamed answer (`object: "chat.completion"`).
#[derive(Clone, Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model as the client named it.
    pub model: String,
    /// One choice (the mock does not honour `n`).
    pub choices: Vec<Choice>,
    /// Token usage.
    pub usage: Usage,
}

/// One choice of a non-streamed answer.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    /// Position in `choices`.
    pub index: u32,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// Always null: log-probabilities are not produced.
    pub logprobs: Option<Value>,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// The assistant's answer.
#[derive(Clone, Debug, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text; null when the answer is a tool call.
    pub content: Option<String>,
    /// Always null.
    pub refusal: Option<String>,
    /// The function calls, when the answer is one (absent otherwise, as OpenAI does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// One streamed chunk (`object: "chat.completion.chunk"`).
#[derive(Clone, Debug, Serialize)]
pub struct ChatCompletionChunk {
    /// Same id on every chunk of a stream.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Same on every chunk.
    pub created: u64,
    /// The model as the client named it.
    pub model: String,
    /// One choice, or none on the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Absent unless `include_usage`; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// One choice of a chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkChoice {
    /// Position in `choices`.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Always null.
    pub logprobs: Option<Value>,
    /// Null until the last content chunk.
    pub finish_reason: Option<&'static str>,
}

/// The increment carried by a chunk.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text added by this chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call fragments added by this chunk (OpenAI's `delta.tool_calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// `GET /v1/models` body.
#[derive(Clone, Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<Model>,
}

/// One model.
#[derive(Clone, Debug, Serialize)]
pub struct Model {
    /// Model id.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Owner: the provider's name (`aurora-mock` for the mock, `aurora` for routes).
    pub owned_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = json!({
            "model": "mock/echo",
            "messages": [{"role": "user", "content": "hi", "name": "ann"},
                         {"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "image_url", "image_url": {"url": "x"}}]}],
            "temperature": 0.2,
            "tools": [{"type": "function"}],
            "stream_options": {"include_usage": true, "future": 1},
            "x-vendor": {"nested": [1, 2]}
        });
        let req: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.extra["temperature"], json!(0.2));
        assert_eq!(req.messages[0].extra["name"], json!("ann"));
        assert_eq!(req.messages[1].text(), "a");
        assert!(req.include_usage());
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn a_null_content_stays_null_and_an_absent_one_absent() {
        for message in [
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c"}]}),
            json!({"role": "assistant", "tool_calls": [{"id": "c"}]}),
        ] {
            let parsed: ChatMessage = serde_json::from_value(message.clone()).unwrap();
            assert_eq!(parsed.text(), "");
            assert_eq!(serde_json::to_value(&parsed).unwrap(), message);
        }
    }
}
