//! A scripted fake upstream: a tiny hyper server on 127.0.0.1:0 that answers each
//! request with the next scripted reply (the last one repeats) and records what it
//! was sent, so tests can check both what the gateway forwards and how it reacts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status and JSON body.
    Json(u16, serde_json::Value),
    /// Status, JSON body and extra headers.
    JsonWith(u16, serde_json::Value, Vec<(&'static str, &'static str)>),
    /// A 200 `text/event-stream` with these raw frames, spaced by 5 ms.
    Sse(Vec<String>),
    /// Like `Sse`, then the connection breaks instead of ending cleanly.
    SseThenBreak(Vec<String>),
    /// Waits, then answers.
    Slow(Duration, Box<Reply>),
}

/// What the fake was sent.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

type Body = BoxBody<Bytes, std::io::Error>;

/// A running fake upstream.
#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeUpstream {
    /// Starts a fake answering with `script` in order (the last reply repeats).
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("fake addr");
        let fake = Self {
            addr,
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        fake
    }

    /// Base URL to put in a provider record.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Number of requests received so far.
    pub fn hits(&self) -> usize {
        self.seen.lock().expect("seen lock").len()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        self.seen.lock().expect("seen lock").push(Seen {
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        });
        let reply = {
            let mut script = self.script.lock().expect("script lock");
            if script.len() > 1 {
                script.pop_front()
            } else {
                script.front().cloned()
            }
        };
        let mut reply =
            reply.unwrap_or(Reply::Json(500, serde_json::json!({"error": "no script"})));
        loop {
            match reply {
                Reply::Slow(delay, inner) => {
                    tokio::time::sleep(delay).await;
                    reply = *inner;
                }
                other => return build(other),
            }
        }
    }
}

fn build(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json(status, v) => json(status, &v, &[]),
        Reply::JsonWith(status, v, headers) => json(status, &v, &headers),
        Reply::Sse(frames) => sse(frames, false),
        Reply::SseThenBreak(frames) => sse(frames, true),
        Reply::Slow(..) => json(500, &serde_json::Value::Null, &[]),
    }
}

fn json(status: u16, v: &serde_json::Value, headers: &[(&str, &str)]) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    for (k, val) in headers {
        r.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            val.parse().expect("value"),
        );
    }
    r
}

fn sse(frames: Vec<String>, break_after: bool) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        for frame in frames {
            if tx.send(Ok(Frame::data(Bytes::from(frame)))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if break_after {
            let _ = tx
                .send(Err(std::io::Error::other("scripted connection break")))
                .await;
        }
    });
    let mut r = Response::new(BodyExt::boxed(ChannelBody { rx }));
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("header"));
    r
}

/// A body fed by a channel; an `Err` item breaks the connection.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx)
    }
}
