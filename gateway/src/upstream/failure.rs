//! What can go wrong with one upstream attempt, and what the client is told.
//!
//! The classification drives everything else: only [`Failure::retryable`] failures
//! (429, 5xx, timeouts, connect errors) are retried on the same target; every failure
//! except a client error moves on to the next target, because another provider may
//! well accept what this one refused for its own reasons (an expired key, an outage);
//! a client error (400, 404, 422, …) is the request's fault and goes back to the
//! client at once, in OpenAI's error shape, since every target would refuse it too.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use crate::http::body::{json_response, Response};
use crate::openai::ApiError;

/// One failed attempt.
#[derive(Debug)]
pub enum Failure {
    /// No connection (refused, DNS, TLS, connect timeout).
    Connect(String),
    /// No answer (or no next chunk) within the attempt's timeout.
    Timeout,
    /// An answer with a non-success status.
    Status {
        /// Upstream status.
        status: StatusCode,
        /// Upstream body (an error document, usually).
        body: Bytes,
        /// The upstream's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// A 200 whose body is not what the protocol promises, or a broken body.
    Protocol(String),
    /// The provider's API-key variable is unset on this node.
    MissingKey(String),
    /// The answer crossed a size bound (`gateway.limits`).
    TooLarge(SizeLimit),
}

/// Which bound on upstream data was crossed (the `limit` label of
/// `aurora_limit_exceeded_total`, with its `upstream_` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeLimit {
    /// `max_upstream_body_bytes`: a non-streamed answer.
    Body,
    /// `max_stream_bytes`: a stream's total.
    Stream,
    /// `max_sse_event_bytes`: one event of a stream.
    Event,
    /// `max_buffered_upstream_bytes`: every request's buffers together.
    Buffered,
}

impl SizeLimit {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            SizeLimit::Body => "upstream_body",
            SizeLimit::Stream => "upstream_stream",
            SizeLimit::Event => "upstream_event",
            SizeLimit::Buffered => "upstream_buffered",
        }
    }
}

impl Failure {
    /// The `kind` label of `aurora_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Timeout => "timeout",
            Failure::Status { status, .. } => match status.as_u16() {
                429 => "rate_limited",
                408 => "timeout",
                401 | 403 => "auth",
                500..=599 => "server_error",
                _ => "client_error",
            },
            Failure::Protocol(_) => "protocol",
            Failure::MissingKey(_) => "config",
            Failure::TooLarge(_) => "too_large",
        }
    }

    /// Worth another attempt on the same target.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind(),
            "connect" | "timeout" | "rate_limited" | "server_error"
        )
    }

    /// The client's fault: answer it now, try nothing else.
    pub fn is_client_error(&self) -> bool {
        self.kind() == "client_error"
    }

    /// A one-line description without secrets or upstream bodies, for logs and for
    /// the final error message.
    pub fn describe(&self) -> String {
        match self {
            Failure::Connect(e) => format!("connect error ({e})"),
            Failure::Timeout => "timed out".to_owned(),
            Failure::Status { status, .. } => format!("HTTP {}", status.as_u16()),
            Failure::Protocol(e) => format!("invalid response ({e})"),
            Failure::MissingKey(var) => format!("API key variable {var} is not set"),
            Failure::TooLarge(SizeLimit::Buffered) => {
                "the gateway is holding too much upstream data".to_owned()
            }
            Failure::TooLarge(_) => "answer larger than the gateway accepts".to_owned(),
        }
    }
}

impl Failure {
    /// What a client may be told: the kind of failure and the upstream status, never
    /// the connect-error chain (it names internal hosts, addresses and resolver
    /// details) or the name of an environment variable. [`Failure::describe`] goes
    /// to the log instead.
    pub fn public_summary(&self) -> String {
        match self {
            Failure::Connect(_) => "could not connect".to_owned(),
            Failure::Timeout => "timed out".to_owned(),
            Failure::Status { status, .. } => format!("HTTP {}", status.as_u16()),
            Failure::Protocol(_) => "invalid response".to_owned(),
            Failure::MissingKey(_) => "provider not configured on this node".to_owned(),
            // Fixed texts with nothing from outside in them.
            Failure::TooLarge(_) => self.describe(),
        }
    }
}

/// The answer when every target failed; `last` decides the status: 504 after a
/// timeout, 503 after rate limiting, 502 otherwise. The details are logged here;
/// the body says only what [`Failure::public_summary`] allows, with a stable code.
pub fn exhausted(last: &Failure, tried: usize) -> ApiError {
    tracing::warn!(
        tried,
        kind = last.kind(),
        last = %last.describe(),
        "every upstream target failed"
    );
    let summary = format!(
        "All {tried} upstream target(s) failed; the last one: {}.",
        last.public_summary()
    );
    match last {
        Failure::Timeout => {
            ApiError::server_error(StatusCode::GATEWAY_TIMEOUT, summary, "upstream_timeout")
        }
        Failure::Status { status, .. } if status.as_u16() == 429 => ApiError::server_error(
            StatusCode::SERVICE_UNAVAILABLE,
            summary,
            "upstream_rate_limited",
        ),
        Failure::TooLarge(SizeLimit::Buffered) => {
            let mut error = ApiError::server_error(
                StatusCode::SERVICE_UNAVAILABLE,
                summary,
                "upstream_buffer_full",
            );
            error.retry_after = Some(1);
            error
        }
        Failure::TooLarge(_) => ApiError::server_error(
            StatusCode::BAD_GATEWAY,
            summary,
            "upstream_response_too_large",
        ),
        _ => ApiError::server_error(StatusCode::BAD_GATEWAY, summary, "upstream_error"),
    }
}

/// The answer when every target is cooling down: 503 with `Retry-After`.
pub fn all_cooling(retry_in: Option<Duration>) -> ApiError {
    let mut error = ApiError::server_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Every upstream target for this model is cooling down after repeated failures; try again shortly.",
        "upstream_unavailable",
    );
    error.retry_after = Some(retry_in.map_or(1, |d| d.as_secs().max(1)));
    error
}

/// An upstream client error, passed to the client with its status, rewritten into
/// OpenAI's shape (Anthropic's `{"type":"error","error":{…}}` included).
pub fn passthrough(status: StatusCode, body: &[u8]) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| error.and_then(|e| e.get(name)).cloned();
    let message = field("message")
        .filter(Value::is_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(500).collect();
            Value::String(if text.trim().is_empty() {
                format!("The upstream answered HTTP {}.", status.as_u16())
            } else {
                text
            })
        });
    let body = json!({"error": {
        "message": message,
        "type": field("type").filter(Value::is_string).unwrap_or_else(|| "invalid_request_error".into()),
        "param": field("param").unwrap_or(Value::Null),
        "code": field("code").unwrap_or(Value::Null),
    }});
    json_response(status, body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Failure {
        Failure::Status {
            status: StatusCode::from_u16(code).expect("status"),
            body: Bytes::new(),
            retry_after: None,
        }
    }

    /// Issue 10 item 10f: the client never sees connect-error chains or variable names.
    #[test]
    fn exhausted_bodies_hide_details() {
        for failure in [
            Failure::Connect(
                "tcp connect error: 10.1.2.3:443: Connection refused (os error 111)".into(),
            ),
            Failure::MissingKey("AURORA_PROVIDER_SECRET_NAME".into()),
            Failure::Protocol("expected value at line 1 column 1: <html>internal</html>".into()),
        ] {
            let error = exhausted(&failure, 1);
            assert_eq!(error.status, StatusCode::BAD_GATEWAY);
            assert_eq!(error.code, Some("upstream_error"));
            for leak in [
                "10.1.2.3",
                "os error",
                "AURORA_PROVIDER_SECRET_NAME",
                "<html>",
            ] {
                assert!(!error.message.contains(leak), "{}", error.message);
            }
        }
    }

    #[test]
    fn classification() {
        assert!(status(429).retryable());
        assert!(status(408).retryable());
        assert!(status(503).retryable());
        assert!(!status(400).retryable() && status(400).is_client_error());
        assert!(!status(401).retryable() && !status(401).is_client_error());
        assert!(Failure::Timeout.retryable());
        assert!(Failure::Connect("refused".into()).retryable());
        assert!(!Failure::Protocol("x".into()).retryable());
        assert_eq!(exhausted(&Failure::Timeout, 2).status, 504);
        assert_eq!(exhausted(&status(429), 1).status, 503);
        assert_eq!(exhausted(&status(500), 1).status, 502);
        let big = Failure::TooLarge(SizeLimit::Body);
        assert!(!big.retryable() && !big.is_client_error());
        assert_eq!(exhausted(&big, 1).code, Some("upstream_response_too_large"));
        assert_eq!(
            exhausted(&Failure::TooLarge(SizeLimit::Buffered), 1).status,
            503
        );
    }
}
