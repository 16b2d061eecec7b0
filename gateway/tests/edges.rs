//! Issue 10 item 10, the smaller edges, over real HTTP on loopback: failed admin
//! logins counted and limited per client IP (10c), `/metrics` behind the admin token
//! when asked (10d), and the `Host` check of a loopback listener against DNS
//! rebinding (10g). The others are tested where they live: 10a in `admin_api.rs`
//! and `catalog/file.rs`, 10b and 10h in `binary.rs`, 10e in `upstream/openai.rs` and
//! `upstream/anthropic.rs`, 10f in `upstream/failure.rs` and `upstream.rs`.

mod common;

use aurora_gateway::admin::guard::MAX_FAILURES;
use aurora_gateway::config::MetricsAuth;
use bytes::Bytes;
use common::{raw_status, send, TestServer, TOKEN};
use http::Method;

async fn get(server: &TestServer, path: &str, authorization: &str) -> common::Reply {
    send(
        server.addr,
        Method::GET,
        path,
        &[("authorization", authorization)],
        Bytes::new(),
    )
    .await
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn failed_admin_logins_are_counted_and_limited_per_ip() {
    let server = TestServer::start().await;
    let right = format!("Bearer {TOKEN}");
    // A success before any failure is fine and clears nothing.
    assert_eq!(
        get(&server, "/admin/api/cluster/status", &right)
            .await
            .status,
        200
    );
    for i in 0..MAX_FAILURES {
        let path = if i % 2 == 0 {
            "/admin/api/cluster/status"
        } else {
            "/admin/dashboard/cluster"
        };
        let wrong = if i % 2 == 0 {
            "Bearer wrong-token"
        } else {
            // `admin:wrong-token` as HTTP Basic, what a browser sends.
            "Basic YWRtaW46d3JvbmctdG9rZW4="
        };
        assert_eq!(get(&server, path, wrong).await.status, 401, "attempt {i}");
    }
    // Used up: even the right token waits, so guessing cannot go on.
    let limited = get(&server, "/admin/api/cluster/status", &right).await;
    let error = limited.assert_error(429, None, Some("too_many_failed_logins"));
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("failed")));
    let retry: u64 = limited.header("retry-after").parse().expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        get(&server, "/admin/dashboard/cluster", &right)
            .await
            .status,
        429
    );
    // Client routes are not affected.
    assert_eq!(server.get("/v1/models").await.status, 200);

    let text = server.get("/metrics").await.text();
    let half = u64::from(MAX_FAILURES / 2);
    assert_eq!(
        metric(&text, r#"aurora_admin_auth_failures_total{surface="api"}"#),
        half
    );
    assert_eq!(
        metric(
            &text,
            r#"aurora_admin_auth_failures_total{surface="dashboard"}"#
        ),
        half
    );
    assert_eq!(metric(&text, "aurora_admin_auth_limited_total"), 2);
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_require_the_admin_token() {
    // The loopback default: open to a local scraper.
    let open = TestServer::start().await;
    assert_eq!(open.get("/metrics").await.status, 200);
    open.stop().await;

    let guarded = TestServer::start_with(|c| c.gateway.metrics_auth = MetricsAuth::Admin).await;
    let denied = guarded.get("/metrics").await;
    denied.assert_error(401, None, Some("invalid_admin_token"));
    let wrong = get(&guarded, "/metrics", "Bearer nope").await;
    assert_eq!(wrong.status, 401);
    let allowed = get(&guarded, "/metrics", &format!("Bearer {TOKEN}")).await;
    assert_eq!(allowed.status, 200);
    assert!(
        allowed
            .text()
            .contains(r#"aurora_admin_auth_failures_total{surface="metrics"} 1"#),
        "{}",
        allowed.text()
    );
    guarded.stop().await;
}

#[tokio::test]
async fn the_loopback_listener_answers_only_loopback_host_names() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let request = |host: &str| {
        format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    // A rebound name: the browser believes it talks to attacker.example.
    let (status, text) = raw_status(
        server.addr,
        request(&format!("attacker.example:{port}")).as_bytes(),
    )
    .await;
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("invalid_host"), "{text}");
    let (status, _) = raw_status(
        server.addr,
        request("localhost.attacker.example").as_bytes(),
    )
    .await;
    assert_eq!(status, 421);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let (status, text) = raw_status(server.addr, request(&host).as_bytes()).await;
        assert_eq!(status, 200, "{host}: {text}");
    }
    server.stop().await;
}
