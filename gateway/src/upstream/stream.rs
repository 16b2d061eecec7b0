//! Pumping an upstream stream to the client, translated event by event.
//!
//! The pump owns the upstream body: it reads frames under the attempt's idle timeout,
//! cuts them into SSE events, lets the provider's translator turn each into the
//! client's frames, and sends those into the response channel. Once the first byte
//! has gone to the client there is no retrying or falling back (the client has seen a
//! 200), so a failure from then on — an upstream `error` event, a broken connection,
//! a stall, an end without `[DONE]` — is told to the client as a final
//! `data: {"error":…}` event, the way OpenAI reports mid-stream errors (or, for an
//! Anthropic stream passed through to a Messages client, as Anthropic's `error`
//! event: the client sees one dialect). A client that
//! goes away stops the pump, which drops the upstream connection.
//!
//! A stream is bounded ([`StreamBounds`], from `gateway.limits`): it ends with an
//! error event once it has lasted `stream_max_duration_ms` or the upstream has sent
//! `max_stream_bytes`, or when one event exceeds `max_sse_event_bytes` or the shared
//! buffer pool is full. A client that stops reading is dropped by the connection's
//! send timeout ([`crate::http::conn::EdgeIo`]); the pump then sees the channel
//! closed and drops the upstream request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::policy::TokenUsage;
use crate::upstream::anthropic::{AnthropicStream, NativeStream};
use crate::upstream::buffered::Hold;
use crate::upstream::failure::SizeLimit;
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
    /// Anthropic events forwarded unchanged to a `/v1/messages` client.
    Native(NativeStream),
}

impl Translator {
    fn on_event(&mut self, event: crate::upstream::sse::Event, out: &mut Vec<Bytes>) -> Flow {
        match self {
            Translator::OpenAi(t) => t.on_event(event, out),
            Translator::Anthropic(t) => t.on_event(event, out),
            Translator::Native(t) => t.on_event(event, out),
        }
    }

    /// How an error the gateway reports mid-stream is written in the client's
    /// dialect: OpenAI's `data: {"error":…}`, or Anthropic's `error` event.
    fn error_frame(&self) -> fn(&str) -> Bytes {
        match self {
            Translator::OpenAi(_) | Translator::Anthropic(_) => error_frame,
            Translator::Native(_) => NativeStream::error_frame,
        }
    }

    /// Completion tokens streamed so far by the token heuristic: what is billed
    /// when the stream ends before the upstream reported usage.
    pub fn streamed_tokens(&self) -> u64 {
        match self {
            Translator::OpenAi(t) => t.streamed_tokens(),
            Translator::Anthropic(t) => t.streamed_tokens(),
            Translator::Native(t) => t.streamed_tokens(),
        }
    }

    /// The usage the upstream reported, cached prompt tokens included (so a
    /// streamed request is billed like a plain one).
    pub fn usage(&self) -> Option<TokenUsage> {
        let (usage, cached) = match self {
            Translator::OpenAi(t) => (t.usage(), t.cached()),
            Translator::Anthropic(t) => (t.usage(), t.cached()),
            Translator::Native(t) => (t.usage(), t.cached()),
        };
        usage.map(|u| TokenUsage {
            prompt: u64::from(u.prompt_tokens),
            completion: u64::from(u.completion_tokens),
            cached,
        })
    }
}

/// What a stream may take (see the module docs).
#[derive(Debug)]
pub struct StreamBounds<'a> {
    /// When the stream is cut off.
    pub deadline: tokio::time::Instant,
    /// Most bytes the upstream may send.
    pub max_bytes: u64,
    /// Largest single event, bytes.
    pub max_event: usize,
    /// The stream's share of the buffer pool (its unfinished event).
    pub hold: Hold,
    /// Where crossed bounds are counted.
    pub metrics: &'a Metrics,
}

/// The final event of a stream cut off by `stream_max_duration_ms`.
pub const MAX_DURATION_MESSAGE: &str = "The stream reached the gateway's maximum duration.";

/// Why [`send_bounded`] did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The client went away (the body's receiver is gone).
    ClientGone,
    /// The stream's deadline passed; the error event was queued if there was room,
    /// and counted.
    MaxDuration,
}

/// Sends `frame` unless the stream's deadline passes first.
pub async fn send_bounded(
    tx: &mpsc::Sender<Bytes>,
    frame: Bytes,
    deadline: tokio::time::Instant,
    metrics: &Metrics,
) -> Result<(), Stopped> {
    send_bounded_as(tx, frame, deadline, metrics, error_frame).await
}

/// [`send_bounded`], writing the deadline's error event with `error` (the client's
/// dialect).
async fn send_bounded_as(
    tx: &mpsc::Sender<Bytes>,
    frame: Bytes,
    deadline: tokio::time::Instant,
    metrics: &Metrics,
    error: fn(&str) -> Bytes,
) -> Result<(), Stopped> {
    let sent = if tokio::time::Instant::now() >= deadline {
        None
    } else {
        tokio::time::timeout_at(deadline, tx.send(frame)).await.ok()
    };
    match sent {
        Some(Ok(())) => Ok(()),
        Some(Err(_)) => Err(Stopped::ClientGone),
        None => {
            metrics.limit_exceeded("stream_duration");
            let _ = tx.try_send(error(MAX_DURATION_MESSAGE));
            Err(Stopped::MaxDuration)
        }
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

/// Copies `body` to `tx` through `translator` within `bounds`; returns how it ended.
/// The usage and the tokens streamed stay readable in `translator` (billing reads
/// them after).
pub async fn pump(
    mut body: Incoming,
    translator: &mut Translator,
    tx: &mpsc::Sender<Bytes>,
    idle: Duration,
    clock: Arc<UpstreamClock>,
    mut bounds: StreamBounds<'_>,
) -> End {
    let mut parser = Parser::with_limit(bounds.max_event);
    let error = translator.error_frame();
    let mut out = Vec::new();
    let mut received = 0u64;
    let metrics = bounds.metrics;
    let exceeded = |limit: SizeLimit, message: &'static str| {
        metrics.limit_exceeded(limit.label());
        tracing::warn!(limit = limit.label(), "upstream stream cut off at a bound");
        Some(message)
    };
    let end = loop {
        let waited = Instant::now();
        let wait_until = (tokio::time::Instant::now() + idle).min(bounds.deadline);
        let frame = tokio::time::timeout_at(wait_until, body.frame()).await;
        clock.add(waited.elapsed());
        let failure = match frame {
            Err(_) if tokio::time::Instant::now() >= bounds.deadline => {
                metrics.limit_exceeded("stream_duration");
                Some(MAX_DURATION_MESSAGE)
            }
            Err(_) => Some("The upstream stalled mid-stream (no data within the timeout)."),
            Ok(None) => Some("The upstream closed the stream before it was complete."),
            Ok(Some(Err(_))) => Some("The upstream connection broke mid-stream."),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                received = received.saturating_add(data.len() as u64);
                let pushed = if received > bounds.max_bytes {
                    Err(exceeded(
                        SizeLimit::Stream,
                        "The upstream stream exceeded the gateway's size limit.",
                    ))
                } else if bounds
                    .hold
                    .resize((parser.buffered() + data.len()) as u64)
                    .is_err()
                {
                    Err(exceeded(
                        SizeLimit::Buffered,
                        "The gateway is holding too much upstream data; try again later.",
                    ))
                } else {
                    let pushed = parser.push(&data).map_err(|_| {
                        exceeded(SizeLimit::Event, "The upstream sent an oversized event.")
                    });
                    // Shrinking never fails.
                    let _ = bounds.hold.resize(parser.buffered() as u64);
                    pushed
                };
                match pushed {
                    Err(failure) => failure,
                    Ok(events) => {
                        let mut flow = Flow::Continue;
                        for event in events {
                            flow = translator.on_event(event, &mut out);
                            if flow != Flow::Continue {
                                break;
                            }
                        }
                        for frame in out.drain(..) {
                            match send_bounded_as(tx, frame, bounds.deadline, metrics, error).await
                            {
                                Ok(()) => {}
                                Err(Stopped::ClientGone) => return End::ClientGone,
                                Err(Stopped::MaxDuration) => return End::Failed,
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
            let _ = tx.send(error(message)).await;
            break End::Failed;
        }
    };
    end
}
