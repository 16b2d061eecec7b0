//! The streamed `/v1/responses` answer: chat completion chunks in, Responses events out.
//!
//! A pure state machine (no IO): [`StreamTranslator::on_data`] takes the `data:`
//! payload of one chat SSE event and returns the Responses SSE frames it causes, each
//! `event: <type>\ndata: {…, "sequence_number": n}\n\n` with `n` counting from 0.
//! The sequence a client sees:
//! - `response.created`, `response.in_progress` at once;
//! - for text: `response.output_item.added` (a `message`), `response.content_part.added`,
//!   one `response.output_text.delta` per chunk with text, and when the message ends
//!   `response.output_text.done`, `response.content_part.done`,
//!   `response.output_item.done`;
//! - for each tool call: `response.output_item.added` (a `function_call`),
//!   `response.function_call_arguments.delta`…, `response.function_call_arguments.done`,
//!   `response.output_item.done`; a tool call starting closes the message before it;
//! - `response.completed` (or `response.incomplete` when chat's `finish_reason` was
//!   `length`/`content_filter`) with the whole output and the usage of chat's final
//!   usage chunk, after `data: [DONE]`.
//!
//! A chat `{"error":…}` event, or a stream that ends without `[DONE]`, ends the
//! answer with an `error` event and `response.failed`. Nothing follows a terminal
//! event.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::openai::responses::{function_call_item, message_item, status_of, usage_of, Echo};

/// The `error` event's code when chat's error gave none, the same as chat's own.
const STREAM_ERROR: &str = "upstream_stream_error";

/// The ids of one response, derived from one unique chat completion id, so each
/// response's item ids are unique and tie back to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    /// `resp_…`
    pub response: String,
    /// `msg_…`
    pub message: String,
    suffix: String,
}

impl Ids {
    /// From a `chatcmpl-…` id (any other string is used whole).
    pub fn new(completion_id: &str) -> Self {
        let suffix = completion_id
            .strip_prefix("chatcmpl-")
            .unwrap_or(completion_id)
            .to_owned();
        Self {
            response: format!("resp_{suffix}"),
            message: format!("msg_{suffix}"),
            suffix,
        }
    }

    /// The item id of the `i`-th function call.
    pub fn function(&self, i: usize) -> String {
        format!("fc_{}_{i}", self.suffix)
    }

    /// A `call_id` for the `i`-th call when the upstream gave none.
    pub fn call(&self, i: usize) -> String {
        format!("call_{}_{i}", self.suffix)
    }
}

#[derive(Debug)]
struct ToolCall {
    item_id: String,
    output_index: usize,
    call_id: String,
    name: String,
    arguments: String,
    done: bool,
}

#[derive(Debug, Default)]
struct Message {
    output_index: usize,
    text: String,
    done: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct StreamTranslator {
    echo: Echo,
    ids: Ids,
    created_at: u64,
    sequence: u64,
    message: Option<Message>,
    /// Chat's tool-call `index` → the call.
    calls: BTreeMap<u64, ToolCall>,
    next_output_index: usize,
    finish_reason: Option<String>,
    usage: Option<Value>,
    finished: bool,
}

impl StreamTranslator {
    /// A translator for one answer.
    pub fn new(echo: Echo, ids: Ids, created_at: u64) -> Self {
        Self {
            echo,
            ids,
            created_at,
            sequence: 0,
            message: None,
            calls: BTreeMap::new(),
            next_output_index: 0,
            finish_reason: None,
            usage: None,
            finished: false,
        }
    }

    /// Whether a terminal event went out (nothing more will).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The first two events.
    pub fn start(&mut self) -> Vec<Bytes> {
        let response = Value::Object(
            self.echo
                .skeleton(&self.ids, self.created_at, "in_progress"),
        );
        vec![
            self.event("response.created", json!({"response": response.clone()})),
            self.event("response.in_progress", json!({"response": response})),
        ]
    }

    /// The events for one chat SSE `data:` payload.
    pub fn on_data(&mut self, data: &str) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        if data.trim() == "[DONE]" {
            return self.complete();
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(_) => return self.fail("the upstream stream sent an event that is not JSON"),
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream stream failed");
            let code = error
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or(STREAM_ERROR);
            return self.fail_with(code, message);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage_of(usage));
        }
        let mut out = Vec::new();
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
            self.open_message(&mut out);
            if let Some(message) = self.message.as_mut().filter(|m| !m.done) {
                message.text.push_str(text);
                let output_index = message.output_index;
                out.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": self.ids.message, "output_index": output_index,
                           "content_index": 0, "delta": text, "logprobs": []}),
                ));
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                self.tool_delta(call, &mut out);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        out
    }

    /// The chat stream ended; without `[DONE]` first, that is a broken stream.
    pub fn end(&mut self) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.fail("the upstream stream ended before the answer was complete")
    }

    /// Ends the answer with an `error` event and `response.failed`.
    pub fn fail(&mut self, message: &str) -> Vec<Bytes> {
        self.fail_with(STREAM_ERROR, message)
    }

    /// [`Self::fail`] with the `error` event's `code` (chat's, when it sent one).
    fn fail_with(&mut self, code: &str, message: &str) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let mut response = self.echo.skeleton(&self.ids, self.created_at, "failed");
        response.insert(
            "error".into(),
            json!({"code": "server_error", "message": message}),
        );
        response.insert("output".into(), Value::Array(self.output("incomplete")));
        response.insert("usage".into(), self.usage.clone().unwrap_or(Value::Null));
        vec![
            self.event(
                "error",
                json!({"code": code, "message": message, "param": null}),
            ),
            self.event("response.failed", json!({"response": response})),
        ]
    }

    fn complete(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.message.is_none() && self.calls.is_empty() {
            // An empty answer still has its (empty) message, as the plain answer does.
            self.open_message(&mut out);
        }
        self.close_message(&mut out);
        let open: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.done)
            .map(|(i, _)| *i)
            .collect();
        for index in open {
            self.close_call(index, &mut out);
        }
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        let mut response = self.echo.skeleton(&self.ids, self.created_at, status);
        response.insert("incomplete_details".into(), incomplete);
        response.insert("output".into(), Value::Array(self.output("completed")));
        response.insert("usage".into(), self.usage.clone().unwrap_or(Value::Null));
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        out.push(self.event(kind, json!({"response": response})));
        self.finished = true;
        out
    }

    /// The output items so far, in output order; `status` for the finished ones.
    fn output(&self, status: &str) -> Vec<Value> {
        let mut items: Vec<(usize, Value)> = Vec::new();
        if let Some(m) = &self.message {
            items.push((
                m.output_index,
                message_item(&self.ids.message, status, &m.text),
            ));
        }
        for c in self.calls.values() {
            items.push((
                c.output_index,
                function_call_item(&c.item_id, status, &c.call_id, &c.name, &c.arguments),
            ));
        }
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    fn open_message(&mut self, out: &mut Vec<Bytes>) {
        if self.message.is_some() {
            return;
        }
        let output_index = self.next_output_index;
        self.next_output_index += 1;
        self.message = Some(Message {
            output_index,
            ..Message::default()
        });
        let mut item = message_item(&self.ids.message, "in_progress", "");
        item["content"] = json!([]);
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        ));
        out.push(self.event(
            "response.content_part.added",
            json!({"item_id": self.ids.message, "output_index": output_index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        ));
    }

    fn close_message(&mut self, out: &mut Vec<Bytes>) {
        let Some(message) = self.message.as_mut().filter(|m| !m.done) else {
            return;
        };
        message.done = true;
        let (index, text) = (message.output_index, message.text.clone());
        let id = self.ids.message.clone();
        out.push(self.event(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "text": text,
                   "logprobs": []}),
        ));
        out.push(self.event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
        ));
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": message_item(&id, "completed", &text)}),
        ));
    }

    fn tool_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function").unwrap_or(&Value::Null);
        if !self.calls.contains_key(&index) {
            self.close_message(out);
            // Calls are streamed one after the other; a new one ends the one before.
            let open: Vec<u64> = self
                .calls
                .iter()
                .filter(|(_, c)| !c.done)
                .map(|(i, _)| *i)
                .collect();
            for i in open {
                self.close_call(i, out);
            }
            let n = self.calls.len();
            let output_index = self.next_output_index;
            self.next_output_index += 1;
            let tool = ToolCall {
                item_id: self.ids.function(n),
                output_index,
                call_id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| self.ids.call(n), str::to_owned),
                name: function
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: String::new(),
                done: false,
            };
            let item =
                function_call_item(&tool.item_id, "in_progress", &tool.call_id, &tool.name, "");
            self.calls.insert(index, tool);
            out.push(self.event(
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            ));
        }
        let Some(arguments) = function
            .get("arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Some(tool) = self.calls.get_mut(&index).filter(|t| !t.done) else {
            return;
        };
        tool.arguments.push_str(arguments);
        let (item_id, output_index) = (tool.item_id.clone(), tool.output_index);
        out.push(self.event(
            "response.function_call_arguments.delta",
            json!({"item_id": item_id, "output_index": output_index, "delta": arguments}),
        ));
    }

    fn close_call(&mut self, index: u64, out: &mut Vec<Bytes>) {
        let Some(tool) = self.calls.get_mut(&index).filter(|t| !t.done) else {
            return;
        };
        tool.done = true;
        let item = function_call_item(
            &tool.item_id,
            "completed",
            &tool.call_id,
            &tool.name,
            &tool.arguments,
        );
        let (item_id, output_index, name, arguments) = (
            tool.item_id.clone(),
            tool.output_index,
            tool.name.clone(),
            tool.arguments.clone(),
        );
        out.push(self.event(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": output_index, "name": name,
                   "arguments": arguments}),
        ));
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
    }

    /// One SSE frame: `type` and `sequence_number` added to `fields`.
    fn event(&mut self, kind: &str, mut fields: Value) -> Bytes {
        if let Value::Object(map) = &mut fields {
            let mut ordered = Map::new();
            ordered.insert("type".into(), json!(kind));
            ordered.insert("sequence_number".into(), json!(self.sequence));
            ordered.append(map);
            fields = Value::Object(ordered);
        }
        self.sequence += 1;
        let mut frame = format!("event: {kind}\ndata: ").into_bytes();
        // A `Value` always serializes.
        frame.extend_from_slice(fields.to_string().as_bytes());
        frame.extend_from_slice(b"\n\n");
        Bytes::from(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translator() -> StreamTranslator {
        let echo = crate::openai::responses::to_chat(&json!({"model": "m", "input": "x"}))
            .unwrap()
            .1;
        StreamTranslator::new(echo, Ids::new("chatcmpl-1"), 7)
    }

    fn parse(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).unwrap();
                let (head, data) = text.split_once("\ndata: ").unwrap();
                let v: Value = serde_json::from_str(data.trim_end()).unwrap();
                assert_eq!(head.strip_prefix("event: "), v["type"].as_str());
                v
            })
            .collect()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    fn run(data: &[&str]) -> Vec<Value> {
        let mut t = translator();
        let mut frames = t.start();
        for d in data {
            frames.extend(t.on_data(d));
        }
        frames.extend(t.end());
        let events = parse(&frames);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        events
    }

    #[test]
    fn text_stream_has_the_responses_event_sequence() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[6]["text"], "Hello");
        let done = &events[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["total_tokens"], 5);
        assert_eq!(done["id"], "resp_1");
    }

    #[test]
    fn tool_calls_stream_as_function_call_items() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[5]["arguments"], "{\"x\":1}");
        let output = &events[11]["response"]["output"];
        assert_eq!(output[0]["call_id"], "call_a");
        assert_eq!(output[1]["name"], "g");
        assert_eq!(events[7]["output_index"], 1);
    }

    #[test]
    fn a_broken_or_failed_stream_ends_with_response_failed() {
        let events = run(&[r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#]);
        let kinds = types(&events);
        assert_eq!(kinds[kinds.len() - 2..], ["error", "response.failed"]);
        assert_eq!(events.last().unwrap()["response"]["status"], "failed");

        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"error":{"message":"upstream went away","type":"server_error","code":"stream_timeout"}}"#,
            "[DONE]",
        ]);
        let kinds = types(&events);
        assert_eq!(kinds.last(), Some(&"response.failed"), "nothing after it");
        assert_eq!(
            events[events.len() - 2]["code"],
            "stream_timeout",
            "chat's code kept"
        );
        assert_eq!(
            events.last().unwrap()["response"]["error"]["message"],
            "upstream went away"
        );
    }

    #[test]
    fn length_ends_incomplete_and_empty_answers_still_have_a_message() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"ab"},"finish_reason":"length"}]}"#,
            "[DONE]",
        ]);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );

        let events = run(&["[DONE]"]);
        assert_eq!(
            events.last().unwrap()["response"]["output"][0]["content"][0]["text"],
            ""
        );
    }
}
