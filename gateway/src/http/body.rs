//! Response bodies and request-body reading.
//!
//! Responses are either a complete buffer or a stream fed by a channel (SSE); both are
//! boxed into one [`Body`] type so the router can wrap any of them in a
//! [`TrackedBody`] that records metrics when the body ends. Request bodies are read
//! with a hard size limit so an oversized upload costs at most `limit` bytes of memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tokio::sync::mpsc;

use crate::metrics::{Metrics, RequestLabels};
use crate::openai::ApiError;
use crate::state::AppState;

/// The body type every handler answers with.
pub type Body = BoxBody<Bytes, Infallible>;

/// A response before metrics tracking is attached.
pub type Response = http::Response<Body>;

/// A body holding all of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A response with `status` and a JSON body already serialized.
pub fn json_response(status: StatusCode, json: impl Into<Bytes>) -> Response {
    let mut response = http::Response::new(full(json));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 response with `value` serialized as JSON (500 if serialization fails, which
/// for our own types would be a bug).
pub fn json_ok<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(json) => json_response(StatusCode::OK, json),
        Err(error) => {
            tracing::error!(%error, "failed to serialize a response");
            ApiError::internal().into_response()
        }
    }
}

/// Reads the whole request body, refusing more than `limit` bytes and taking at most
/// `deadline` for it.
///
/// A `Content-Length` above the limit is refused before reading anything; a chunked
/// body is cut off as soon as it crosses the limit. A body still arriving at the
/// deadline (slowloris: one byte a second) gets 408; its response closes the
/// connection (see [`ApiError::into_response`]), since the rest of the body would
/// otherwise still have to be read.
pub async fn read_limited<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let Ok(collected) = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await
    else {
        return Err(ApiError::request_timeout());
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::body_too_large(limit))
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "Failed to read the request body: {error}"
        ))),
    }
}

/// A streamed body: each message on the channel is one data frame; the body ends when
/// every sender is dropped. If the client goes away, hyper drops the body, the
/// receiver goes with it, and the producer's next `send` fails, which stops it.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it; `capacity` frames may be buffered.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, Self { rx })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// A body that keeps `hold` (a share of the upstream buffer pool) until it has been
/// sent or dropped, so the pool counts an answer until it has left the node.
pub fn held(response: Response, hold: crate::upstream::buffered::Hold) -> Response {
    response.map(|body| Keeping { body, _kept: hold }.boxed())
}

/// `body`, keeping `spent` (a body already read to its end) alive until `body` is
/// dropped. A plain answer that is rewritten (another dialect's shape) would otherwise
/// let go of what the spent body holds, its share of the buffered-upstream pool
/// ([`held`]), before the rewrite is written.
pub fn keeping(body: Body, spent: Body) -> Body {
    Keeping { body, _kept: spent }.boxed()
}

/// `body`, with `_kept` dropped only when it is: the one wrapper behind [`held`] and
/// [`keeping`].
#[derive(Debug)]
struct Keeping<T> {
    body: Body,
    _kept: T,
}

impl<T: Unpin> http_body::Body for Keeping<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Marks a response with the catalog name its model resolved to, for the metrics label.
#[derive(Clone, Debug)]
pub struct ModelLabel(pub Arc<str>);

/// Marks a response that went upstream with the clock of its upstream time, so the
/// metrics can split total time into upstream time and gateway overhead.
#[derive(Clone, Debug)]
pub struct UpstreamTiming(pub Arc<crate::upstream::UpstreamClock>);

/// Counts a request in [`Metrics`] exactly once: when its body has produced its last
/// frame, or when the body is dropped unfinished (client gone, server stopped).
#[derive(Debug)]
pub struct RequestGuard {
    state: Arc<AppState>,
    labels: RequestLabels,
    started: Instant,
    upstream: Option<Arc<crate::upstream::UpstreamClock>>,
}

impl RequestGuard {
    /// Starts tracking; bumps the in-flight gauge.
    pub fn start(state: Arc<AppState>, route: &'static str, started: Instant) -> Self {
        state.metrics.request_started();
        Self {
            state,
            labels: RequestLabels {
                route,
                model: "".into(),
                status: 0,
            },
            started,
            upstream: None,
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let upstream = self
            .upstream
            .as_ref()
            .and_then(|clock| Some((clock.provider()?, clock.elapsed())));
        let labels = RequestLabels {
            route: self.labels.route,
            model: std::mem::replace(&mut self.labels.model, "".into()),
            status: self.labels.status,
        };
        self.metrics().request_finished(labels, elapsed, upstream);
    }
}

/// A response body that reports to metrics when it ends.
#[derive(Debug)]
pub struct TrackedBody {
    inner: Body,
    guard: Option<RequestGuard>,
}

impl TrackedBody {
    /// Wraps `response`, labelling it with its status and [`ModelLabel`].
    pub fn track(mut response: Response, mut guard: RequestGuard) -> http::Response<TrackedBody> {
        guard.labels.status = response.status().as_u16();
        if let Some(ModelLabel(model)) = response.extensions_mut().remove::<ModelLabel>() {
            guard.labels.model = model;
        }
        if let Some(UpstreamTiming(clock)) = response.extensions_mut().remove::<UpstreamTiming>() {
            guard.upstream = Some(clock);
        }
        response.map(|inner| TrackedBody {
            inner,
            guard: Some(guard),
        })
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Finish as soon as the last frame is handed to hyper, before it reaches the
        // socket, so a client that has read the whole answer sees it counted.
        match &polled {
            Poll::Ready(None) => this.guard = None,
            Poll::Ready(Some(_)) if this.inner.is_end_stream() => this.guard = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
