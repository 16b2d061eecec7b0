//! Issue 10 item 4: bounded resources at the HTTP edge, over real TCP on loopback.
//! Connection caps (global and per client address, clients bound to 127.0.0.2 and
//! friends), slow headers and slow bodies (408 within the deadline), a client that
//! opens a stream and never reads (dropped after the send timeout, the upstream sees
//! the cancellation), streams cut at their maximum duration and size, and upstream
//! answers over their size bounds. Every deadline is set small, and every wait is
//! bounded, so each test takes a few seconds at most.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_gateway::catalog::Catalog;
use aurora_gateway::http::conn::Refused;
use aurora_gateway::http::limits::Limits;
use aurora_gateway::metrics::Exposition;
use aurora_gateway::ServerConfig;
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply};
use common::{chat, TestServer};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const CHAT: &str = "/v1/chat/completions";
/// Upper bound of every wait in this file: far above the configured deadlines, so a
/// loaded machine does not flake, far below "forever", so a missing bound fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Connects to `server` from `client_ip` (any 127.x address is loopback on Linux).
async fn connect_from(client_ip: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((client_ip, 0)))
        .expect("bind client address");
    socket.connect(server).await.expect("connect")
}

/// Reads until EOF (or `PATIENCE`); returns what arrived and whether EOF came.
async fn read_to_close(stream: &mut TcpStream) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

/// One GET on an open connection; returns the status line's code.
async fn get_health(stream: &mut TcpStream) -> Option<u16> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Writes one byte of `pattern` every 100 ms until the server answers; then stops
/// writing (a write after the server's close could reset the connection before the
/// answer is read) and reads to the close.
async fn trickle_until_answered(stream: &mut TcpStream, pattern: &[u8]) -> (String, bool) {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    for byte in pattern.iter().cycle() {
        assert!(Instant::now() < deadline, "no answer to a slow client");
        let _ = stream.write_all(&[*byte]).await;
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::new(), true),
            Ok(Ok(n)) => {
                let first = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (rest, closed) = read_to_close(stream).await;
                return (first + &rest, closed);
            }
            Err(_) => {}
        }
    }
    unreachable!("the pattern cycles forever")
}

async fn with_limits(limits: Limits) -> TestServer {
    TestServer::start_with(move |c: &mut ServerConfig| c.gateway.limits = limits).await
}

#[tokio::test]
async fn connections_are_capped_per_address_and_in_total() {
    let server = with_limits(Limits {
        max_connections: 3,
        max_connections_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let conns = Arc::clone(&server.state.connections);
    let mut a1 = connect_from([127, 0, 0, 2], server.addr).await;
    let mut a2 = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(get_health(&mut a1).await, Some(200));
    assert_eq!(get_health(&mut a2).await, Some(200));

    // A third from the same address: a 503 and a close, at once, not a queue.
    let started = Instant::now();
    let mut a3 = connect_from([127, 0, 0, 2], server.addr).await;
    let (text, closed) = read_to_close(&mut a3).await;
    assert!(closed, "refused connection closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    assert!(text.contains("too_many_connections"));
    assert_eq!(conns.refused(Refused::PerIp), 1);

    // Another address still gets in, up to the global cap.
    let mut b1 = connect_from([127, 0, 0, 3], server.addr).await;
    assert_eq!(get_health(&mut b1).await, Some(200));
    let mut c1 = connect_from([127, 0, 0, 4], server.addr).await;
    let (text, closed) = read_to_close(&mut c1).await;
    assert!(closed && text.starts_with("HTTP/1.1 503"), "{text:?}");
    assert_eq!(conns.refused(Refused::Global), 1);
    assert_eq!(conns.open(), 3);

    // Closing one frees its slot.
    drop(a1);
    let deadline = Instant::now() + PATIENCE;
    while conns.open() > 2 {
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(get_health(&mut again).await, Some(200));
    let metrics = {
        let mut out = Exposition::new();
        conns.write_metrics(&mut out);
        out.into_string()
    };
    assert!(metrics.contains("aurora_http_connections_refused_total{reason=\"per_ip\"} 1"));
    assert!(metrics.contains("aurora_http_connections_refused_total{reason=\"global\"} 1"));
    drop((a2, b1));
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_get_a_408_within_the_deadline() {
    let server = with_limits(Limits {
        header_read_timeout_ms: 500,
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .await
        .expect("write");
    // One header byte every 100 ms until the server answers.
    let (text, closed) = trickle_until_answered(&mut stream, b"x-slow: ").await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("request_timeout"));
    assert!(closed);
    assert!(started.elapsed() < Duration::from_secs(8));
    let mut out = Exposition::new();
    server.state.connections.write_metrics(&mut out);
    let metrics = out.into_string();
    assert!(metrics.contains("aurora_http_connections_timed_out_total{kind=\"header\"} 1"));
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_without_a_408() {
    let server = with_limits(Limits {
        header_read_timeout_ms: 300,
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(get_health(&mut stream).await, Some(200));
    // Nothing more is sent: the connection is closed, and nothing unasked is written
    // (a client would read it as the answer to its next request).
    let (text, closed) = read_to_close(&mut stream).await;
    assert!(closed, "the idle connection stayed open");
    assert_eq!(text, "");
    let deadline = Instant::now() + PATIENCE;
    while server.state.connections.open() > 0 {
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_gets_a_408_and_the_connection_closes() {
    let server = with_limits(Limits {
        body_read_timeout_ms: 500,
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .expect("write");
    let (text, closed) = trickle_until_answered(&mut stream, b" ").await;
    assert!(closed);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("request_timeout"), "{text:?}");
    assert!(text.to_ascii_lowercase().contains("connection: close"));
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(server.state.metrics.limit_count("body_read_timeout"), 1);
    server.stop().await;
}

/// An upstream that streams `chunk` every `gap` until the gateway hangs up, and counts
/// the streams it saw cancelled.
#[derive(Clone)]
struct EndlessUpstream {
    addr: SocketAddr,
    cancelled: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

impl EndlessUpstream {
    async fn start(chunk: Bytes, gap: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = Self {
            addr: listener.local_addr().expect("addr"),
            cancelled: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(AtomicUsize::new(0)),
        };
        let shared = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let shared = shared.clone();
                            let chunk = chunk.clone();
                            async move {
                                let _ = request.into_body().collect().await;
                                shared.started.fetch_add(1, Ordering::SeqCst);
                                let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
                                tokio::spawn(async move {
                                    while tx.send(chunk.clone()).await.is_ok() {
                                        if !gap.is_zero() {
                                            tokio::time::sleep(gap).await;
                                        }
                                    }
                                    shared.cancelled.fetch_add(1, Ordering::SeqCst);
                                });
                                let mut response = http::Response::new(RxBody(rx));
                                response.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("text/event-stream"),
                                );
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        fake
    }

    fn catalog(&self) -> Catalog {
        common::one_model_catalog(format!("http://{}/v1", self.addr), 0)
    }

    async fn wait_cancelled(&self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.cancelled.load(Ordering::SeqCst) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// A body fed by a channel of data frames.
struct RxBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for RxBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

fn sse_chunk(content_len: usize) -> Bytes {
    let content = "x".repeat(content_len);
    let event = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    Bytes::from(format!("data: {event}\n\n"))
}

async fn upstream_gateway(catalog: Catalog, limits: Limits) -> TestServer {
    TestServer::start_with(move |c: &mut ServerConfig| {
        c.gateway.catalog = catalog;
        c.gateway.limits = limits;
    })
    .await
}

fn stream_request(model: &str) -> Vec<u8> {
    let body = json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "go"}]})
    .to_string();
    format!(
        "POST {CHAT} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_the_upstream_cancelled() {
    let upstream = EndlessUpstream::start(sse_chunk(16 * 1024), Duration::ZERO).await;
    let server = upstream_gateway(
        upstream.catalog(),
        Limits {
            send_timeout_ms: 300,
            ..Limits::default()
        },
    )
    .await;
    // A small receive window fills fast; the client then never reads again.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut client = socket.connect(server.addr).await.expect("connect");
    client
        .write_all(&stream_request("up/m"))
        .await
        .expect("send");
    assert!(
        upstream.wait_cancelled().await,
        "the upstream stream was never cancelled"
    );
    assert_eq!(upstream.started.load(Ordering::SeqCst), 1);
    // The gateway dropped the connection and counted why.
    let conns = Arc::clone(&server.state.connections);
    let deadline = Instant::now() + PATIENCE;
    while conns.open() > 0 {
        assert!(Instant::now() < deadline, "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Exposition::new();
    conns.write_metrics(&mut out);
    let text = out.into_string();
    assert!(
        text.contains("aurora_http_connections_timed_out_total{kind=\"send\"} 1"),
        "{text}"
    );
    drop(client);
    server.stop().await;
}

/// Reads a whole streamed answer (the server ends it); returns the body text.
async fn read_stream(server: &TestServer, model: &str) -> String {
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    client
        .write_all(&stream_request(model))
        .await
        .expect("send");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // Chunked encoding's last chunk: the stream is over.
                    if buf.ends_with(b"\r\n0\r\n\r\n") {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream never ended");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn an_endless_stream_ends_at_the_maximum_duration() {
    let upstream = EndlessUpstream::start(sse_chunk(10), Duration::from_millis(50)).await;
    let server = upstream_gateway(
        upstream.catalog(),
        Limits {
            stream_max_duration_ms: 800,
            ..Limits::default()
        },
    )
    .await;
    let started = Instant::now();
    let text = read_stream(&server, "up/m").await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(text.contains("maximum duration"), "{text}");
    assert!(text.contains("upstream_stream_error"));
    assert!(upstream.wait_cancelled().await);
    assert_eq!(server.state.metrics.limit_count("stream_duration"), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_mock_stream_ends_at_the_maximum_duration_too() {
    let server = with_limits(Limits {
        stream_max_duration_ms: 300,
        ..Limits::default()
    })
    .await;
    // 16 chunks 100 ms apart would take 1.6 s.
    let text = read_stream(&server, "mock/gpt-4o-mini?chunk_ms=100").await;
    assert!(text.contains("maximum duration"), "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(server.state.metrics.limit_count("stream_duration"), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_endless_fast_stream_is_cut_at_its_size_limit() {
    let upstream = EndlessUpstream::start(sse_chunk(1024), Duration::ZERO).await;
    let server = upstream_gateway(
        upstream.catalog(),
        Limits {
            max_stream_bytes: 64 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let text = read_stream(&server, "up/m").await;
    assert!(
        text.contains("exceeded the gateway's size limit"),
        "{}",
        &text[text.len().saturating_sub(400)..]
    );
    assert!(upstream.wait_cancelled().await);
    assert_eq!(server.state.metrics.limit_count("upstream_stream"), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_event_ends_the_stream() {
    let upstream = EndlessUpstream::start(sse_chunk(8 * 1024), Duration::from_millis(10)).await;
    let server = upstream_gateway(
        upstream.catalog(),
        Limits {
            max_sse_event_bytes: 4 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let text = read_stream(&server, "up/m").await;
    assert!(text.contains("oversized event"), "{text}");
    assert!(upstream.wait_cancelled().await);
    assert_eq!(server.state.metrics.limit_count("upstream_event"), 1);
    server.stop().await;
}

fn plain_catalog(fake: &FakeUpstream) -> Catalog {
    common::one_model_catalog(fake.base_url(), 0)
}

fn big_completion(content_len: usize) -> serde_json::Value {
    json!({
        "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1,
        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant",
        "content": "y".repeat(content_len)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
}

#[tokio::test]
async fn a_huge_upstream_body_is_a_502_not_a_memory_spike() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, big_completion(1 << 20))]).await;
    let server = upstream_gateway(
        plain_catalog(&fake),
        Limits {
            max_upstream_body_bytes: 64 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let reply = server.post_json(CHAT, &chat("up/m", "hi")).await;
    reply.assert_error(502, None, Some("upstream_response_too_large"));
    assert_eq!(server.state.metrics.limit_count("upstream_body"), 1);
    assert_eq!(server.state.upstreams.buffered.used(), 0, "released");
    // Within the limit the same upstream answers fine.
    let small = FakeUpstream::start(vec![Reply::Json(200, big_completion(1000))]).await;
    let server2 = upstream_gateway(
        plain_catalog(&small),
        Limits {
            max_upstream_body_bytes: 64 * 1024,
            ..Limits::default()
        },
    )
    .await;
    assert_eq!(
        server2.post_json(CHAT, &chat("up/m", "hi")).await.status,
        200
    );
    server.stop().await;
    server2.stop().await;
}

#[tokio::test]
async fn upstream_bytes_held_together_are_bounded() {
    // Each answer fits its own limit, but not the shared pool.
    let fake = FakeUpstream::start(vec![Reply::Json(200, big_completion(4 * 1024))]).await;
    let server = upstream_gateway(
        plain_catalog(&fake),
        Limits {
            max_buffered_upstream_bytes: 2 * 1024,
            ..Limits::default()
        },
    )
    .await;
    let reply = server.post_json(CHAT, &chat("up/m", "hi")).await;
    reply.assert_error(503, None, Some("upstream_buffer_full"));
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(server.state.metrics.limit_count("upstream_buffered"), 1);
    assert_eq!(server.state.upstreams.buffered.used(), 0);
    server.stop().await;
}
