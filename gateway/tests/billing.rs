//! Billing that cannot be bypassed, over real HTTP on loopback (issue 10, items 2 and
//! 3): a started answer is always charged — a client that leaves mid-stream, an
//! upstream that breaks mid-stream, a client that leaves a plain request while the
//! upstream is slow — and spend is reserved at admission, so concurrent requests
//! cannot all pass under the limit; per-key `max_parallel_requests`; keys naming a
//! missing budget or workflow are refused; unpriced models are warned about.

mod common;

use std::time::{Duration, Instant};

use aurora_core::state::store::Usage;
use aurora_gateway::catalog::Catalog;
use aurora_gateway::policy::auth;
use aurora_gateway::state::AppState;
use aurora_gateway::usage::UsageLog;
use aurora_schema::{
    AuthKey, Budget, BudgetPeriod, Model as ModelRecord, Money, Pricing, Record, RecordId,
    RoutingPolicy, Workflow,
};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply as Scripted};
use common::{send, Reply, TestServer, TOKEN};
use http::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT: &str = "/v1/chat/completions";
const MOCK: &str = "mock/gpt-4o-mini";
/// 1 USD per million tokens, in and out: a token costs 1,000 nano-USD.
const NANOS_PER_TOKEN: u64 = 1_000;

fn id(s: &str) -> RecordId {
    RecordId::new(s).expect("id")
}

fn key(secret: &str, budget: Option<&str>) -> AuthKey {
    AuthKey {
        name: "test key".into(),
        secret_hash: auth::to_hex(&auth::digest(secret)),
        key_prefix: "sk-aur".into(),
        allowed_models: vec![],
        budget_id: budget.map(id),
        workflow_id: None,
        rpm_limit: None,
        tpm_limit: None,
        expires_at_ms: None,
        disabled: false,
        metadata: Default::default(),
        max_parallel_requests: None,
    }
}

async fn put(state: &AppState, name: &str, record: Record) {
    state
        .state_view
        .put(id(name), record)
        .await
        .expect("record accepted");
}

/// Pricing of 1 USD per million tokens for `model`, and budget `b` of `limit`.
async fn priced_budget(state: &AppState, model: &str, limit: Option<Money>) {
    let usd = Money::from_usd(1).expect("usd");
    put(
        state,
        model,
        Record::Pricing(Pricing {
            input_per_million: usd,
            output_per_million: usd,
            cached_input_per_million: None,
        }),
    )
    .await;
    put(
        state,
        "b",
        Record::Budget(Budget {
            name: "b".into(),
            limit,
            max_requests: None,
            period: BudgetPeriod::Total,
            on_partition: Default::default(),
        }),
    )
    .await;
}

fn usage(state: &AppState) -> Usage {
    state.state_view.usage(&id("b"), 0)
}

/// Polls the budget until `done` holds (generous deadline: a loaded 2-core machine).
async fn wait_usage(state: &AppState, done: impl Fn(&Usage) -> bool) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let u = usage(state);
        if done(&u) || Instant::now() > deadline {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bearer(server: &TestServer, secret: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {secret}");
    send(
        server.addr,
        Method::POST,
        CHAT,
        &[
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ],
        Bytes::from(body.to_string()),
    )
    .await
}

/// Sends `body` on a raw connection, reads until `events` SSE events arrived (0:
/// not even the head), then closes the socket: a client that goes away.
async fn send_then_leave(server: &TestServer, secret: &str, body: &Value, events: usize) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let body = body.to_string();
    let head = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nauthorization: Bearer {secret}\r\ncontent-length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    if events == 0 {
        // Give the server time to admit the request, then leave.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while String::from_utf8_lossy(&seen).matches("data: ").count() < events {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "stream ended early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("first events within 10 s");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(stream);
}

fn usage_log(state: &AppState, dir: &tempfile::TempDir) -> std::sync::Arc<UsageLog> {
    let log = UsageLog::open(&dir.path().join("usage.db"), "node-test").expect("usage log");
    state.policy.attach_usage_log(log);
    state.policy.usage_log().expect("attached")
}

fn fake_catalog(fake: &FakeUpstream) -> Catalog {
    common::one_model_catalog(fake.base_url(), 0)
}

fn delta(content: &str) -> String {
    format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n")
}

/// `hello there`: 4 prompt tokens by the heuristic (2 + 2).
fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_charged_the_estimate() {
    let server = TestServer::start().await;
    let s = &server.state;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = usage_log(s, &dir);
    priced_budget(s, MOCK, Some(Money::from_usd(100).expect("usd"))).await;
    put(s, "k", Record::AuthKey(key("sk-k", Some("b")))).await;
    // 200 words, one every 20 ms: about 4 s if read to the end.
    let body = hello(&format!("{MOCK}?chunk_ms=20&tokens=200"), true);
    send_then_leave(&server, "sk-k", &body, 3).await;
    let charged = wait_usage(s, |u| u.requests == 1).await;
    assert_eq!(charged.requests, 1, "a started stream is counted");
    // The estimate: the prompt (4 tokens) plus the deltas that went by, far less
    // than the 200-word answer.
    assert!(charged.tokens > 4, "{charged:?}");
    assert!(charged.tokens < 150, "{charged:?}");
    assert_eq!(charged.spend_nanos, charged.tokens * NANOS_PER_TOKEN);
    assert!(log.flush(Duration::from_secs(5)));
    let rows = log.query(&Default::default()).expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 499);
    assert_eq!(rows[0].prompt_tokens, 4);
    assert_eq!(
        rows[0].prompt_tokens + rows[0].completion_tokens,
        charged.tokens
    );
    assert_eq!(rows[0].cost_nanos, charged.spend_nanos);
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_billed_estimates_total{status=\"499\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upstream_that_breaks_mid_stream_is_charged_and_debits_tpm() {
    let fake = FakeUpstream::start(vec![Scripted::SseThenBreak(vec![
        delta("one "),
        delta("two "),
        delta("three"),
    ])])
    .await;
    let catalog = fake_catalog(&fake);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let s = &server.state;
    priced_budget(s, "up/m", Some(Money::from_usd(100).expect("usd"))).await;
    put(
        s,
        "k",
        Record::AuthKey(AuthKey {
            tpm_limit: Some(4),
            ..key("sk-k", Some("b"))
        }),
    )
    .await;
    let reply = bearer(&server, "sk-k", &hello("up/m", true)).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().contains("upstream_stream_error"),
        "{}",
        reply.text()
    );
    let charged = wait_usage(s, |u| u.requests == 1).await;
    // 4 prompt tokens + "one two three" (1 + 1 + 2) streamed before the break.
    assert_eq!(
        (charged.requests, charged.tokens, charged.spend_nanos),
        (1, 8, 8 * NANOS_PER_TOKEN)
    );
    // The same 8 tokens came out of the key's 4 tokens per minute: in debt now.
    let limited = bearer(&server, "sk-k", &hello("up/m", true)).await;
    limited.assert_error(429, None, Some("rate_limit_exceeded"));
    server.stop().await;
}

#[tokio::test]
async fn a_plain_request_whose_client_left_is_charged_once_the_upstream_answers() {
    let answer = json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}
    });
    let fake = FakeUpstream::start(vec![Scripted::Slow(
        Duration::from_millis(800),
        Box::new(Scripted::Json(200, answer)),
    )])
    .await;
    let catalog = fake_catalog(&fake);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let s = &server.state;
    priced_budget(s, "up/m", Some(Money::from_usd(100).expect("usd"))).await;
    put(s, "k", Record::AuthKey(key("sk-k", Some("b")))).await;
    // The client leaves while the upstream is still thinking.
    send_then_leave(&server, "sk-k", &hello("up/m", false), 0).await;
    assert_eq!(
        usage(s).requests,
        0,
        "not charged before the upstream answers"
    );
    let charged = wait_usage(s, |u| u.requests == 1).await;
    assert_eq!(
        (charged.requests, charged.tokens, charged.spend_nanos),
        (1, 50, 50 * NANOS_PER_TOKEN),
        "the reported usage, once"
    );
    assert_eq!(fake.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_requests_cannot_all_pass_under_a_spend_limit() {
    let server = TestServer::start().await;
    let s = &server.state;
    // Each request: "hi" (1 prompt token) + max_tokens 10 = at most 11 tokens, 11,000
    // nano-USD. The budget fits exactly 5 such requests.
    let per_request = 11 * NANOS_PER_TOKEN;
    priced_budget(s, MOCK, Some(Money::from_nanos(5 * per_request))).await;
    put(s, "k", Record::AuthKey(key("sk-k", Some("b")))).await;
    let body = json!({"model": format!("{MOCK}?latency_ms=1500"), "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let addr = server.addr;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            send(
                addr,
                Method::POST,
                CHAT,
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer sk-k"),
                ],
                Bytes::from(body.to_string()),
            )
            .await
            .status
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("request task"));
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 402).count();
    assert_eq!(admitted + refused, 20, "{statuses:?}");
    // The bound: ceil(room / smallest reservation) = 5.
    assert!((1..=5).contains(&admitted), "{statuses:?}");
    let spent = usage(s);
    assert!(spent.spend_nanos <= 5 * per_request, "{spent:?}");
    assert_eq!(spent.requests, admitted as u64);
    server.stop().await;
}

#[tokio::test]
async fn max_parallel_requests_refuses_beyond_its_slots_and_frees_them_on_every_exit() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(
        s,
        "k",
        Record::AuthKey(AuthKey {
            max_parallel_requests: Some(2),
            ..key("sk-k", None)
        }),
    )
    .await;
    let slow = json!({"model": format!("{MOCK}?latency_ms=2000"),
                      "messages": [{"role": "user", "content": "hi"}]});
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let addr = server.addr;
        let body = slow.clone();
        tasks.push(tokio::spawn(async move {
            send(
                addr,
                Method::POST,
                CHAT,
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer sk-k"),
                ],
                Bytes::from(body.to_string()),
            )
            .await
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("request task"));
    }
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, limited.len()), (2, 3), "{replies:?}");
    let error = limited[0].assert_error(429, None, Some("too_many_parallel_requests"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_parallel_requests = 2")),
        "{error}"
    );
    assert_eq!(
        s.policy.parallel_in_flight("k"),
        0,
        "slots freed after answers"
    );
    // A client that leaves a stream frees its slot too.
    let stream = hello(&format!("{MOCK}?chunk_ms=20&tokens=200"), true);
    send_then_leave(&server, "sk-k", &stream, 2).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.policy.parallel_in_flight("k") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.policy.parallel_in_flight("k"), 0, "freed on disconnect");
    assert_eq!(
        bearer(&server, "sk-k", &hello(MOCK, false)).await.status,
        200
    );
    server.stop().await;
}

async fn admin(server: &TestServer, method: Method, path: &str, body: Option<&Value>) -> Reply {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", bearer.as_str())];
    let bytes = match body {
        Some(v) => {
            headers.push(("content-type", "application/json"));
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    send(server.addr, method, path, &headers, bytes).await
}

#[tokio::test]
async fn a_key_naming_a_missing_budget_or_workflow_is_refused() {
    let server = TestServer::start().await;
    let s = &server.state;
    // As a replication race delivers it: the key before its budget or workflow.
    put(s, "nobudget", Record::AuthKey(key("sk-nb", Some("gone")))).await;
    put(
        s,
        "noflow",
        Record::AuthKey(AuthKey {
            workflow_id: Some(id("gone-flow")),
            ..key("sk-nw", None)
        }),
    )
    .await;
    let refused = bearer(&server, "sk-nb", &hello(MOCK, false)).await;
    let error = refused.assert_error(403, None, Some("key_misconfigured"));
    let message = error["message"].as_str().unwrap_or("");
    assert!(
        message.contains("`gone`") && message.contains("budget_id"),
        "{message}"
    );
    let refused = bearer(&server, "sk-nw", &hello(MOCK, false)).await;
    let error = refused.assert_error(403, None, Some("key_misconfigured"));
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("workflow_id"),
        "{error}"
    );
    // Once the records exist, the keys work.
    priced_budget(s, MOCK, None).await;
    put(s, "gone", usage_budget()).await;
    put(
        s,
        "gone-flow",
        Record::Workflow(Workflow {
            name: "w".into(),
            guardrails: vec![],
            routing: RoutingPolicy::Weighted,
        }),
    )
    .await;
    assert_eq!(
        bearer(&server, "sk-nb", &hello(MOCK, false)).await.status,
        200
    );
    assert_eq!(
        bearer(&server, "sk-nw", &hello(MOCK, false)).await.status,
        200
    );
    // The admin API refuses to create such keys, naming the field.
    for (field, body) in [
        ("budget_id", json!({"name": "x", "budget_id": "missing"})),
        (
            "workflow_id",
            json!({"name": "x", "workflow_id": "missing"}),
        ),
    ] {
        admin(&server, Method::POST, "/admin/api/keys", Some(&body))
            .await
            .assert_error(400, Some(field), Some("invalid_field"));
    }
    admin(
        &server,
        Method::PUT,
        "/admin/api/keys/noflow",
        Some(&json!({"name": "x", "budget_id": "missing"})),
    )
    .await
    .assert_error(400, Some("budget_id"), Some("invalid_field"));
    // max_parallel_requests goes through the admin API, validated.
    let created = admin(
        &server,
        Method::POST,
        "/admin/api/keys",
        Some(&json!({"name": "p", "budget_id": "gone", "max_parallel_requests": 3})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["max_parallel_requests"], 3);
    admin(
        &server,
        Method::POST,
        "/admin/api/keys",
        Some(&json!({"name": "p", "max_parallel_requests": 0})),
    )
    .await
    .assert_error(400, Some("max_parallel_requests"), Some("invalid_field"));
    server.stop().await;
}

fn usage_budget() -> Record {
    Record::Budget(Budget {
        name: "plenty".into(),
        limit: None,
        max_requests: Some(1_000),
        period: BudgetPeriod::Total,
        on_partition: Default::default(),
    })
}

#[tokio::test]
async fn a_model_without_pricing_is_a_warning_in_status_and_the_model_listing() {
    let fake = FakeUpstream::start(vec![]).await;
    let catalog = fake_catalog(&fake);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let s = &server.state;
    let status = admin(&server, Method::GET, "/admin/api/cluster/status", None).await;
    assert_eq!(status.status, 200, "{}", status.text());
    let warnings = status.json()["warnings"].clone();
    let expected = "no pricing record for model up/m: requests are not billed";
    assert!(
        warnings.as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.starts_with(expected)))),
        "{warnings}"
    );
    priced_budget(s, "up/m", None).await;
    let status = admin(&server, Method::GET, "/admin/api/cluster/status", None).await;
    assert!(
        !status.text().contains(expected),
        "priced now: {}",
        status.text()
    );
    // The replicated model listing carries the warning per model.
    put(
        s,
        "mock/fast",
        Record::Model(ModelRecord {
            provider_id: id("mock"),
            upstream_model: "echo".into(),
            aliases: vec![],
            context_window: None,
            enabled: true,
        }),
    )
    .await;
    let listed = admin(&server, Method::GET, "/admin/api/models", None).await;
    assert_eq!(
        listed.json()["data"][0]["warnings"][0]
            .as_str()
            .map(|w| w.starts_with("no pricing record for model mock/fast")),
        Some(true),
        "{}",
        listed.text()
    );
    server.stop().await;
}
