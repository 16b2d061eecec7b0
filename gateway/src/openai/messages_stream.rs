//! The stream half of `/v1/messages`: OpenAI chat chunks in, Anthropic events out.
//!
//! [`MessagesStream`] reads the `data:` payloads of a chat stream (the mock's or any
//! upstream's, already in OpenAI's shape) and writes Anthropic's event sequence:
//! `message_start` and `ping` before the first content, a `content_block_start` when
//! a text or tool-use block begins (a change from text to a tool call, or from one
//! tool-call `index` to another, closes the open block with `content_block_stop`),
//! `content_block_delta` with `text_delta` for text and `input_json_delta` for the
//! streamed arguments of a tool call, and at `data: [DONE]` the last
//! `content_block_stop`, `message_delta` (`stop_reason`, `usage.output_tokens`) and
//! `message_stop`. A chat `{"error":…}` event, a payload that is not JSON, or a stream
//! that ends without `[DONE]` becomes one Anthropic `error` event, and nothing follows
//! it.
//!
//! [`adapt`] runs the translator over a response body on its own task. It reads the
//! chat stream to its end even after the last event, so the chat side settles the
//! request as answered; if the client goes away it stops and drops the chat stream,
//! which the chat side sees as the client gone (and bills what was sent).

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::http::body::{Body, ChannelBody};
use crate::openai::messages::{matched_stop, message_id, stop_of};
use crate::provider::tokens;
use crate::upstream::sse::Parser;

/// Events buffered between the translator and the socket.
const BUFFER: usize = 16;

/// The block being streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text,
    /// A tool call, by its chat `tool_calls[].index`.
    Tool(u64),
}

/// State of one translated stream.
#[derive(Debug)]
pub struct MessagesStream {
    model: String,
    started: bool,
    open: Option<Open>,
    /// Anthropic index of the next content block.
    next_block: u64,
    finish_reason: Option<String>,
    /// The stop sequence that matched, when the upstream said (vLLM's `stop_reason`).
    stop_sequence: Option<String>,
    input_tokens: u64,
    output_tokens: Option<u64>,
    /// Output tokens by the token heuristic, for a stream without usage.
    estimated: u64,
    done: bool,
}

/// `event: <name>\ndata: <json>\n\n`.
fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Anthropic's `error` event.
pub fn error_event(kind: &str, message: &str) -> Bytes {
    event(
        "error",
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

impl MessagesStream {
    /// A translator for one stream answering as `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            open: None,
            next_block: 0,
            finish_reason: None,
            stop_sequence: None,
            input_tokens: 0,
            output_tokens: None,
            estimated: 0,
            done: false,
        }
    }

    /// Reports `input_tokens` (an estimate of the prompt) in `message_start`: Anthropic
    /// sends the prompt's count there, but a chat stream says it only in its last
    /// chunk, so `message_start` would otherwise say 0. `message_delta` reports the
    /// upstream's count when it came (else this estimate).
    pub fn with_input_tokens(mut self, input_tokens: u64) -> Self {
        self.input_tokens = input_tokens;
        self
    }

    /// Whether the last event (`message_stop` or `error`) went out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn fail(&mut self, message: &str) -> Vec<Bytes> {
        self.done = true;
        vec![error_event("api_error", message)]
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(chunk.get("id").and_then(Value::as_str)),
                "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
            }}),
        ));
        out.push(event("ping", &json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if self.open.take().is_some() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.next_block - 1}),
            ));
        }
    }

    fn open(&mut self, open: Open, block: Value, out: &mut Vec<Bytes>) {
        self.close(out);
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next_block, "content_block": block}),
        ));
        self.next_block += 1;
        self.open = Some(open);
    }

    fn delta(&self, delta: Value) -> Bytes {
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.next_block - 1, "delta": delta}),
        )
    }

    /// The Anthropic events for one chat `data:` payload.
    pub fn on_data(&mut self, data: &str) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        let mut out = Vec::new();
        if data.trim() == "[DONE]" {
            if !self.started {
                self.start(&Value::Null, &mut out);
            }
            self.close(&mut out);
            let output = self.output_tokens.unwrap_or(self.estimated);
            let (stop_reason, stop_sequence) =
                stop_of(self.finish_reason.as_deref(), self.stop_sequence.take());
            out.push(event(
                "message_delta",
                &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": output}}),
            ));
            out.push(event("message_stop", &json!({"type": "message_stop"})));
            self.done = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return self.fail("The upstream stream sent an event that is not JSON.");
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream stream failed.");
            return self.fail(message);
        }
        self.start(&chunk, &mut out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |p: &str| usage.pointer(p).and_then(Value::as_u64).unwrap_or(0);
            let cached = n("/prompt_tokens_details/cached_tokens");
            self.input_tokens = n("/prompt_tokens").saturating_sub(cached);
            self.output_tokens = Some(n("/completion_tokens"));
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            if self.open != Some(Open::Text) {
                self.open(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            }
            self.estimated = self
                .estimated
                .saturating_add(u64::from(tokens::count(text)));
            out.push(self.delta(json!({"type": "text_delta", "text": text})));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let function = call.get("function");
            if self.open != Some(Open::Tool(index)) {
                let block = json!({
                    "type": "tool_use",
                    "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
                    "name": function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
                    "input": {},
                });
                self.open(Open::Tool(index), block, &mut out);
            }
            if let Some(args) = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                self.estimated = self
                    .estimated
                    .saturating_add(u64::from(tokens::count(args)));
                out.push(self.delta(json!({"type": "input_json_delta", "partial_json": args})));
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.stop_sequence = matched_stop(Some(reason), choice);
        }
        out
    }

    /// The events for the end of the chat stream: nothing after `[DONE]` or an error,
    /// an `error` event when it broke off before.
    pub fn on_end(&mut self) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.fail("The upstream stream ended before the answer was complete.")
    }
}

/// A body that streams the Anthropic translation of the chat SSE `body`;
/// `input_tokens` is the prompt's estimate for `message_start` (see
/// [`MessagesStream::with_input_tokens`]).
pub fn adapt(body: Body, model: &str, input_tokens: u64) -> Body {
    let mut translator = MessagesStream::new(model).with_input_tokens(input_tokens);
    let (tx, channel) = ChannelBody::channel(BUFFER);
    tokio::spawn(async move {
        let mut body = body;
        let mut parser = Parser::new();
        loop {
            let out = match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match parser.push(&data) {
                        Ok(events) => events
                            .iter()
                            .flat_map(|e| translator.on_data(&e.data))
                            .collect(),
                        Err(too_large) => translator.fail(&too_large.to_string()),
                    },
                    Err(_trailers) => Vec::new(),
                },
                Some(Err(never)) => match never {},
                None => {
                    for frame in translator.on_end() {
                        let _ = tx.send(frame).await;
                    }
                    return;
                }
            };
            for frame in out {
                if tx.send(frame).await.is_err() {
                    // The client went away: dropping `body` tells the chat side.
                    return;
                }
            }
        }
    });
    BodyExt::boxed(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(stream: &mut MessagesStream, data: &[&str]) -> Vec<(String, Value)> {
        let mut frames: Vec<Bytes> = data.iter().flat_map(|d| stream.on_data(d)).collect();
        frames.extend(stream.on_end());
        frames
            .into_iter()
            .map(|frame| {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                let (name, data) = text.trim_end().split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], json!(name));
                (name, data)
            })
            .collect()
    }

    #[test]
    fn text_then_tool_calls_stream_as_blocks() {
        let mut s = MessagesStream::new("mock/echo");
        let got = events(
            &mut s,
            &[
                r#"{"id":"chatcmpl-9","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
                r#"{"id":"chatcmpl-9","choices":[{"index":0,"delta":{"content":"Hi "}}]}"#,
                r#"{"id":"chatcmpl-9","choices":[{"index":0,"delta":{"content":"there"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
                "[DONE]",
            ],
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(got[0].1["message"]["id"], json!("msg_9"));
        assert_eq!(got[0].1["message"]["model"], json!("mock/echo"));
        assert_eq!(
            got[3].1["delta"],
            json!({"type": "text_delta", "text": "Hi "})
        );
        assert_eq!(
            got[6].1["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "f", "input": {}})
        );
        assert_eq!(got[6].1["index"], json!(1));
        assert_eq!(
            got[8].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "1}"})
        );
        assert_eq!(got[12].1["index"], json!(2));
        assert_eq!(got[13].1["delta"]["stop_reason"], json!("tool_use"));
        assert_eq!(got[13].1["usage"]["output_tokens"], json!(7));
        // Nothing after the end.
        assert!(s.on_data("{}").is_empty());
    }

    #[test]
    fn a_broken_stream_ends_with_one_error_event() {
        let mut s = MessagesStream::new("m");
        let got = events(
            &mut s,
            &[r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#],
        );
        let (name, data) = got.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], json!("api_error"));
        let mut s = MessagesStream::new("m");
        let got = events(
            &mut s,
            &[
                r#"{"error":{"message":"upstream died","type":"server_error"}}"#,
                "[DONE]",
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1["error"]["message"], json!("upstream died"));
        let mut s = MessagesStream::new("m");
        assert_eq!(events(&mut s, &["not json"]).len(), 1);
    }

    #[test]
    fn message_start_reports_the_prompt_estimate_and_message_delta_the_real_count() {
        let mut s = MessagesStream::new("m").with_input_tokens(9);
        let got = events(
            &mut s,
            &[
                r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":1}}"#,
                "[DONE]",
            ],
        );
        assert_eq!(got[0].1["message"]["usage"]["input_tokens"], json!(9));
        let delta = &got[got.len() - 2].1;
        assert_eq!(delta["usage"]["input_tokens"], json!(11));
    }

    #[test]
    fn an_answer_without_usage_reports_the_estimate() {
        let mut s = MessagesStream::new("m");
        let got = events(
            &mut s,
            &[
                r#"{"choices":[{"index":0,"delta":{"content":"one two"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
                "[DONE]",
            ],
        );
        let delta = &got[got.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], json!("max_tokens"));
        assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
        assert_eq!(delta["usage"]["output_tokens"], json!(2));
        // A vLLM stream names the stop string that matched.
        let mut s = MessagesStream::new("m");
        let got = events(
            &mut s,
            &[
                r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}"#,
                "[DONE]",
            ],
        );
        let delta = &got[got.len() - 2].1["delta"];
        assert_eq!(delta["stop_reason"], json!("stop_sequence"));
        assert_eq!(delta["stop_sequence"], json!("END"));
    }
}
