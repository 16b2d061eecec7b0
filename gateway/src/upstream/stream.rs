//! Pumping an upstream stream to the client, translated event by event.
//!
//! The pump owns the upstream body: it reads frames under the attempt's idle timeout,
//! cuts them into SSE events, lets the provider's translator turn each into the
//! client's frames, and sends those into the response channel. Once the first byte
//! has gone to the client there is no retrying or falling back (the client has seen a
//! 200), so a failure from then on — an upstream `error` event, a broken connection,
//! a stall, an end without `[DONE]` — is told to the client as a final
//! `data: {"error":…}` event, the way OpenAI reports mid-stream errors. A client that
//! goes away stops the pump, which drops the upstream connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::mpsc;

use crate::policy::TokenUsage;
use crate::upstream::anthropic::AnthropicStream;
use crate::upstream::openai::OpenAiStream;
use crate::upstream::sse::Parser;
use crate::upstream::UpstreamClock;

/// What a translator wants after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// The stream is complete.
    Done,
    /// The upstream reported an error; an error frame was emitted; stop.
    Error,
}

/// `data: <json>\n\n`.
pub fn data_frame(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// A mid-stream error in OpenAI's shape, as one SSE event.
pub fn error_frame(message: &str) -> Bytes {
    let body = json!({"error": {
        "message": message,
        "type": "server_error",
        "param": null,
        "code": "upstream_stream_error",
    }});
    data_frame(body.to_string().as_bytes())
}

/// The provider-specific half of a stream.
#[derive(Debug)]
pub enum Translator {
    /// Pass-through with usage stripping.
    OpenAi(OpenAiStream),
    /// Anthropic events to OpenAI chunks.
    Anthropic(AnthropicStream),
}

impl Translator {
    fn on_event(&mut self, event: crate::upstream::sse::Event, out: &mut Vec<Bytes>) -> Flow {
        match self {
            Translator::OpenAi(t) => t.on_event(event, out),
            Translator::Anthropic(t) => t.on_event(event, out),
        }
    }

    /// The usage the upstream reported, cached prompt tokens included (so a
    /// streamed request is billed like a plain one).
    fn usage(&self) -> Option<TokenUsage> {
        let (usage, cached) = match self {
            Translator::OpenAi(t) => (t.usage(), t.cached()),
            Translator::Anthropic(t) => (t.usage(), t.cached()),
        };
        usage.map(|u| TokenUsage {
            prompt: u64::from(u.prompt_tokens),
            completion: u64::from(u.completion_tokens),
            cached,
        })
    }
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Complete.
    Done,
    /// An error event was sent to the client.
    Failed,
    /// The client went away.
    ClientGone,
}

/// Copies `body` to `tx` through `translator`; returns how it ended and the usage.
pub async fn pump(
    mut body: Incoming,
    mut translator: Translator,
    tx: &mpsc::Sender<Bytes>,
    idle: Duration,
    clock: Arc<UpstreamClock>,
) -> (End, Option<TokenUsage>) {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let end = loop {
        let waited = Instant::now();
        let frame = tokio::time::timeout(idle, body.frame()).await;
        clock.add(waited.elapsed());
        let failure = match frame {
            Err(_) => Some("The upstream stalled mid-stream (no data within the timeout)."),
            Ok(None) => Some("The upstream closed the stream before it was complete."),
            Ok(Some(Err(_))) => Some("The upstream connection broke mid-stream."),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                match parser.push(&data) {
                    Err(e) => {
                        tracing::warn!(error = %e, "upstream stream event too large");
                        Some("The upstream sent an oversized event.")
                    }
                    Ok(events) => {
                        let mut flow = Flow::Continue;
                        for event in events {
                            flow = translator.on_event(event, &mut out);
                            if flow != Flow::Continue {
                                break;
                            }
                        }
                        for frame in out.drain(..) {
                            if tx.send(frame).await.is_err() {
                                return (End::ClientGone, translator.usage());
                            }
                        }
                        match flow {
                            Flow::Continue => None,
                            Flow::Done => break End::Done,
                            Flow::Error => break End::Failed,
                        }
                    }
                }
            }
        };
        if let Some(message) = failure {
            // Best effort: the client may be gone too.
            let _ = tx.send(error_frame(message)).await;
            break End::Failed;
        }
    };
    (end, translator.usage())
}
