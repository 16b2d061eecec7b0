//! Operations endpoints over real HTTP: health, readiness during a drain, metrics,
//! and the admin token.

mod common;

use std::time::Duration;

use aurora_gateway::DrainOutcome;
use bytes::Bytes;
use common::{chat, send, sse_data, TestServer, TOKEN};
use http::Method;
use serde_json::json;

/// Waits (bounded) until `n` requests are being served, so shutdown tests do not
/// depend on how fast a loaded machine schedules the client tasks.
async fn wait_for_in_flight(server: &TestServer, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.state.metrics.in_flight() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "requests never became in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn health_and_ready_answer_200() {
    let server = TestServer::start().await;
    let live = server.get("/health").await;
    assert_eq!(
        (live.status.as_u16(), live.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = server.get("/health/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (200, json!({"status": "ready"}))
    );
    assert_eq!(server.stop().await, DrainOutcome::Drained);
}

#[tokio::test]
async fn drain_turns_ready_503_and_lets_in_flight_requests_finish() {
    let mut server = TestServer::start_with(|c| {
        c.shutdown_grace = Duration::from_millis(800);
    })
    .await;
    let addr = server.addr;
    // A slow plain request and a slow stream, both in flight when shutdown begins.
    let slow = tokio::spawn(async move {
        let body = chat("mock/echo?latency_ms=400", "still here").to_string();
        send(
            addr,
            Method::POST,
            "/v1/chat/completions",
            &[],
            Bytes::from(body),
        )
        .await
    });
    let stream = tokio::spawn(async move {
        let mut body = chat("mock/gpt-4o-mini?chunk_ms=40&tokens=10", "stream");
        body["stream"] = json!(true);
        send(
            addr,
            Method::POST,
            "/v1/chat/completions",
            &[],
            Bytes::from(body.to_string()),
        )
        .await
    });
    wait_for_in_flight(&server, 2).await;

    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ready = server.get("/health/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (503, json!({"status": "draining"}))
    );
    let live = server.get("/health").await;
    assert_eq!(live.status, 200, "alive while draining");

    let slow = slow.await.expect("join");
    assert_eq!(slow.status, 200);
    assert_eq!(
        slow.json()["choices"][0]["message"]["content"],
        "still here"
    );
    let stream = stream.await.expect("join");
    assert_eq!(
        sse_data(&stream.text()).last().map(String::as_str),
        Some("[DONE]")
    );
    assert_eq!(server.stop().await, DrainOutcome::Drained);
}

#[tokio::test]
async fn drain_deadline_cuts_requests_that_take_too_long() {
    let mut server = TestServer::start_with(|c| {
        c.drain_timeout = Duration::from_millis(200);
    })
    .await;
    let addr = server.addr;
    let _stuck = tokio::spawn(async move {
        let body = chat("mock/echo?latency_ms=10000", "too slow").to_string();
        send(
            addr,
            Method::POST,
            "/v1/chat/completions",
            &[],
            Bytes::from(body),
        )
        .await
    });
    wait_for_in_flight(&server, 1).await;
    server.begin_stop();
    let started = std::time::Instant::now();
    assert_eq!(server.stop().await, DrainOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn metrics_count_requests_by_model_and_status() {
    let server = TestServer::start().await;
    assert_eq!(
        server
            .post_json("/v1/chat/completions", &chat("mock/gpt-4o-mini", "hi"))
            .await
            .status,
        200
    );
    server
        .post_json("/v1/chat/completions", &chat("nope/model", "hi"))
        .await;
    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.text();
    for line in [
        "# TYPE aurora_http_requests_total counter",
        r#"aurora_http_requests_total{route="/v1/chat/completions",model="mock/gpt-4o-mini",status="200"} 1"#,
        r#"aurora_http_requests_total{route="/v1/chat/completions",model="",status="404"} 1"#,
        "# TYPE aurora_http_request_duration_seconds histogram",
        r#"aurora_http_request_duration_seconds_bucket{route="/v1/chat/completions",le="+Inf"} 2"#,
        r#"aurora_http_request_duration_seconds_count{route="/v1/chat/completions"} 2"#,
        "# TYPE aurora_http_requests_in_flight gauge",
        // The scrape itself is in flight while it renders.
        "aurora_http_requests_in_flight 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // Unknown model names never become label values.
    assert!(!text.contains("nope/model"));
    server.stop().await;
}

#[tokio::test]
async fn admin_status_needs_the_token() {
    let server = TestServer::start().await;
    let path = "/admin/api/cluster/status";

    let reply = server.get(path).await;
    let error = reply.assert_error(401, None, Some("invalid_admin_token"));
    assert_eq!(reply.header("www-authenticate"), "Bearer");
    insta::assert_json_snapshot!("error_admin_unauthorized", json!({"error": error}));

    for auth in ["Bearer wrong", "Bearer ", TOKEN, "Basic dGVzdA=="] {
        let reply = send(
            server.addr,
            Method::GET,
            path,
            &[("authorization", auth)],
            Bytes::new(),
        )
        .await;
        reply.assert_error(401, None, Some("invalid_admin_token"));
    }
    // Without the token, unknown admin paths look the same as known ones.
    server
        .get("/admin/api/keys")
        .await
        .assert_error(401, None, Some("invalid_admin_token"));

    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let reply = send(server.addr, Method::GET, path, &auth, Bytes::new()).await;
    assert_eq!(
        (reply.status.as_u16(), reply.json()),
        (200, json!({"enabled": false}))
    );
    let reply = send(
        server.addr,
        Method::GET,
        "/admin/api/nope",
        &auth,
        Bytes::new(),
    )
    .await;
    reply.assert_error(404, None, Some("unknown_url"));
    let reply = send(server.addr, Method::POST, path, &auth, Bytes::new()).await;
    reply.assert_error(405, None, Some("method_not_allowed"));
    server.stop().await;
}

/// A connection accepted just before the shutdown, whose request arrives just after it
/// began, is answered: closing it unread would reset it, which a client that retries
/// only on "connection refused" counts as a failure (a rolling restart under load
/// showed it). Fails without the pause between the listener's close and the closing of
/// idle connections (`server::JUST_ACCEPTED_GRACE`).
#[tokio::test]
async fn a_request_on_a_connection_accepted_just_before_shutdown_is_answered() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut server = TestServer::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.state.connections.open() < 1 {
        assert!(std::time::Instant::now() < deadline, "never accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.begin_stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.state.is_draining() {
        assert!(std::time::Instant::now() < deadline, "never draining");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let request = format!(
        "GET /health HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        matches!(read, Ok(Ok(_))) && answer.starts_with("HTTP/1.1 200"),
        "{read:?}: {answer:?}"
    );
    assert_eq!(server.stop().await, DrainOutcome::Drained);
}
