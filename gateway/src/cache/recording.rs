//! Recording an answer as it goes to its client, and deciding whether it may be kept.
//!
//! The filler's response body is wrapped: each frame is passed on at once (a stream
//! reaches its client at the upstream's pace, not after it ended) and copied into a
//! buffer bounded by `max_entry_bytes`. When the body ends, the copy is stored at the
//! owner if it is fit to keep ([`fit_to_keep`]); a body that is not fit, or one the
//! client stopped reading before its end, abandons the fill instead, and a body over
//! the bound abandons it as soon as it is over, so the requests waiting on it go on
//! at once rather than at its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use serde_json::Value;

use super::settings::CacheSettings;
use super::{Answer, CacheUse, Filler};
use crate::http::body::{Body, Response};
use crate::openai::chat::Untranslated;

/// Client errors an upstream gives the same way for the same request, stored with
/// `store_errors`.
const STORABLE_ERRORS: [u16; 4] = [400, 404, 413, 422];

/// Wraps `response`'s body (see the module docs) and marks it a miss.
pub fn record(response: Response, filler: Filler) -> Response {
    let (mut parts, body) = response.into_parts();
    CacheUse::Miss.mark_headers(&mut parts.headers);
    let status = parts.status.as_u16();
    let settings = filler.cache.settings();
    if status != 200 && !(settings.store_errors && STORABLE_ERRORS.contains(&status)) {
        filler.finish(None);
        return http::Response::from_parts(parts, body);
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let limit = usize::try_from(settings.max_entry_bytes).unwrap_or(usize::MAX);
    let untranslated = parts.extensions.get::<Untranslated>().is_some();
    let body = Recording {
        inner: body,
        copy: Some(Vec::new()),
        limit,
        head: Some((status, content_type)),
        untranslated,
        filler: Some(filler),
    };
    http::Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
}

struct Recording {
    inner: Body,
    /// `None` once over the limit.
    copy: Option<Vec<u8>>,
    limit: usize,
    head: Option<(u16, String)>,
    untranslated: bool,
    filler: Option<Filler>,
}

impl Recording {
    fn end(&mut self) {
        let Some(filler) = self.filler.take() else {
            return;
        };
        let answer = match (self.copy.take(), self.head.take()) {
            (Some(body), Some((status, content_type))) => {
                let body = Bytes::from(body);
                fit_to_keep(status, &content_type, &body, filler.cache.settings()).then_some(
                    Answer {
                        status,
                        content_type,
                        body,
                        untranslated: self.untranslated,
                    },
                )
            }
            _ => None,
        };
        filler.finish(answer);
    }
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(copy)) = (frame.data_ref(), this.copy.as_mut()) {
                    if copy.len() + data.len() > this.limit {
                        this.copy = None;
                        if let Some(filler) = this.filler.take() {
                            filler.finish(None);
                        }
                    } else {
                        copy.extend_from_slice(data);
                    }
                }
                // hyper stops polling a body that says it has ended (a plain answer
                // is one frame), so the end is noticed here, not only at `None`.
                if this.inner.is_end_stream() {
                    this.end();
                }
            }
            Poll::Ready(None) => this.end(),
            Poll::Ready(Some(Err(never))) => match *never {},
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Frames taken from a dropped plain body at most (a plain answer is one frame).
const DRAIN_FRAMES: usize = 16;

impl Drop for Recording {
    /// A stream whose reader stopped after its last event (the Responses and Messages
    /// adapters stop at `[DONE]`) is complete all the same: [`fit_to_keep`] checks that
    /// it ended properly. A plain answer whose client left before it was sent (the
    /// request ran to its end without it) is taken as far as it is ready now, and
    /// kept if that is all of it. Any other body dropped before its end (the stream
    /// was cut) abandons the fill, by dropping the filler.
    fn drop(&mut self) {
        if self.filler.is_none() {
            return;
        }
        let is_stream = self
            .head
            .as_ref()
            .is_some_and(|(_, content_type)| content_type.starts_with("text/event-stream"));
        if is_stream {
            self.end();
            return;
        }
        // Polled with a waker that does nothing: only what is ready now is taken, and
        // nothing waits.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..DRAIN_FRAMES {
            if self.filler.is_none() {
                return;
            }
            match http_body::Body::poll_frame(Pin::new(&mut *self), &mut cx) {
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }
}

/// Whether a complete answer may be stored: a plain JSON answer or a stream that ended
/// properly (`[DONE]`, or Anthropic's `message_stop`) without an error event, with no
/// tool call unless `store_tool_calls`; a client error only with `store_errors`
/// (checked before recording).
pub fn fit_to_keep(status: u16, content_type: &str, body: &[u8], settings: &CacheSettings) -> bool {
    if status != 200 {
        return settings.store_errors && STORABLE_ERRORS.contains(&status);
    }
    if content_type.starts_with("text/event-stream") {
        return stream_fit_to_keep(body, settings.store_tool_calls);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => settings.store_tool_calls || !calls_a_tool(&value),
        Err(_) => false,
    }
}

fn stream_fit_to_keep(body: &[u8], store_tool_calls: bool) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let mut ended = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut name = None;
        let mut data = String::new();
        for line in event.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if ended || name == Some("error") {
            return false; // an event after the end, or an error
        }
        if data == "[DONE]" || name == Some("message_stop") {
            ended = true;
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&data) else {
            return false;
        };
        if value.get("error").is_some()
            || value.get("type").and_then(Value::as_str) == Some("error")
        {
            return false;
        }
        if !store_tool_calls && calls_a_tool(&value) {
            return false;
        }
    }
    ended
}

/// Whether an answer, plain or one stream event, in OpenAI's or Anthropic's shape,
/// calls a tool.
fn calls_a_tool(value: &Value) -> bool {
    let non_empty = |v: Option<&Value>| {
        v.is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()) && !v.is_null())
    };
    let chat = value
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| {
            choices.iter().any(|c| {
                non_empty(c.pointer("/message/tool_calls"))
                    || non_empty(c.pointer("/delta/tool_calls"))
                    || c.get("finish_reason").and_then(Value::as_str) == Some("tool_calls")
            })
        });
    let tool_use = |v: &Value| v.get("type").and_then(Value::as_str) == Some("tool_use");
    let anthropic = value
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|blocks| blocks.iter().any(tool_use))
        || value.get("content_block").is_some_and(tool_use);
    chat || anthropic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CacheSettings {
        CacheSettings::default()
    }

    #[test]
    fn plain_answers_are_kept_unless_they_call_a_tool() {
        let s = settings();
        let text = br#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
        assert!(fit_to_keep(200, "application/json", text, &s));
        let tool = br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]},"finish_reason":"tool_calls"}]}"#;
        assert!(!fit_to_keep(200, "application/json", tool, &s));
        let anthropic = br#"{"type":"message","content":[{"type":"tool_use","id":"t"}]}"#;
        assert!(!fit_to_keep(200, "application/json", anthropic, &s));
        let with_tools = CacheSettings {
            store_tool_calls: true,
            ..settings()
        };
        assert!(fit_to_keep(200, "application/json", tool, &with_tools));
        assert!(!fit_to_keep(200, "application/json", b"not json", &s));
        assert!(!fit_to_keep(400, "application/json", b"{}", &s));
        let errors = CacheSettings {
            store_errors: true,
            ..settings()
        };
        assert!(fit_to_keep(400, "application/json", b"{}", &errors));
        assert!(!fit_to_keep(429, "application/json", b"{}", &errors));
        assert!(!fit_to_keep(500, "application/json", b"{}", &errors));
    }

    #[test]
    fn streams_are_kept_only_when_they_ended_properly() {
        let s = settings();
        let chunk = r#"data: {"choices":[{"delta":{"content":"hi"}}]}"#;
        let done = format!("{chunk}\n\ndata: [DONE]\n\n");
        assert!(fit_to_keep(200, "text/event-stream", done.as_bytes(), &s));
        let cut = format!("{chunk}\n\n");
        assert!(!fit_to_keep(200, "text/event-stream", cut.as_bytes(), &s));
        let broken =
            format!("{chunk}\n\ndata: {{\"error\":{{\"message\":\"upstream broke\"}}}}\n\n");
        assert!(!fit_to_keep(
            200,
            "text/event-stream",
            broken.as_bytes(),
            &s
        ));
        let tool = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\ndata: [DONE]\n\n";
        assert!(!fit_to_keep(200, "text/event-stream", tool.as_bytes(), &s));
        let anthropic = "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert!(fit_to_keep(
            200,
            "text/event-stream",
            anthropic.as_bytes(),
            &s
        ));
        let anthropic_error = "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"type\":\"error\"}\n\n";
        assert!(!fit_to_keep(
            200,
            "text/event-stream",
            anthropic_error.as_bytes(),
            &s
        ));
        let anthropic_tool = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"content_block\":{\"type\":\"tool_use\"}}\n\nevent: message_stop\ndata: {}\n\n";
        assert!(!fit_to_keep(
            200,
            "text/event-stream",
            anthropic_tool.as_bytes(),
            &s
        ));
    }
}
