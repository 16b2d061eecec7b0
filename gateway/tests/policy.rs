//! The policy layer over real HTTP on loopback: auth keys (401/403), model lists,
//! guardrails (400/413, redaction seen by a fake upstream), rate limits (429 with
//! Retry-After), budgets (402), cost of plain and streamed answers charged to the
//! budget, and the usage log with its admin queries. Records go into the server's
//! (detached) replicated-state view, exactly where the admin API puts them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_gateway::catalog::Catalog;
use aurora_gateway::state::AppState;
use aurora_gateway::usage::UsageLog;
use aurora_schema::{
    AuthKey, Budget, BudgetPeriod, Guardrail, GuardrailKind, Money, Pricing, Record, RecordId,
    RoutingPolicy, Workflow,
};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply as Scripted};
use common::{chat, send, sse_data, Reply, TestServer};
use http::Method;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const MOCK: &str = "mock/gpt-4o-mini";

fn id(s: &str) -> RecordId {
    RecordId::new(s).expect("id")
}

fn key(secret: &str) -> AuthKey {
    common::auth_key(secret)
}

async fn put(state: &AppState, name: &str, record: Record) {
    state
        .state_view
        .put(id(name), record)
        .await
        .expect("record accepted");
}

async fn call(server: &TestServer, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(
        server.addr,
        Method::POST,
        CHAT,
        &all,
        Bytes::from(body.to_string()),
    )
    .await
}

async fn bearer(server: &TestServer, secret: &str, body: &Value) -> Reply {
    let value = format!("Bearer {secret}");
    call(server, &[("authorization", value.as_str())], body).await
}

fn usage_log(state: &AppState, dir: &tempfile::TempDir) -> Arc<UsageLog> {
    let log = UsageLog::open(&dir.path().join("usage.db"), "node-test").expect("usage log");
    state.policy.attach_usage_log(log);
    state.policy.usage_log().expect("attached")
}

#[tokio::test]
async fn open_without_keys_then_every_request_needs_one() {
    let server = TestServer::start().await;
    // First run: no key exists, no credentials needed (and any are ignored).
    server.post_json(CHAT, &chat(MOCK, "hi")).await.json();
    assert_eq!(
        bearer(&server, "whatever", &chat(MOCK, "hi")).await.status,
        200
    );

    put(
        &server.state,
        "alice",
        Record::AuthKey(key("sk-alice-secret")),
    )
    .await;
    let missing = server.post_json(CHAT, &chat(MOCK, "hi")).await;
    missing.assert_error(401, None, Some("invalid_api_key"));
    assert_eq!(missing.header("www-authenticate"), "Bearer");
    insta::assert_json_snapshot!("error_401_missing_key", missing.json());
    let unknown = bearer(&server, "sk-wrong", &chat(MOCK, "hi")).await;
    unknown.assert_error(401, None, Some("invalid_api_key"));
    assert!(
        !unknown.text().contains("sk-wrong"),
        "the key is never echoed"
    );
    insta::assert_json_snapshot!("error_401_unknown_key", unknown.json());

    assert_eq!(
        bearer(&server, "sk-alice-secret", &chat(MOCK, "hi"))
            .await
            .status,
        200
    );
    let via_header = call(
        &server,
        &[("x-api-key", "sk-alice-secret")],
        &chat(MOCK, "hi"),
    )
    .await;
    assert_eq!(via_header.status, 200, "{}", via_header.text());

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_policy_rejections_total{status=\"401\",reason=\"missing_key\"} 1")
    );
    assert!(
        metrics.contains("aurora_policy_rejections_total{status=\"401\",reason=\"unknown_key\"} 1")
    );
    assert!(metrics.contains("aurora_key_requests_total{key=\"alice\",status=\"200\"} 2"));
    server.stop().await;
}

#[tokio::test]
async fn disabled_expired_and_model_not_allowed_are_403() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(
        s,
        "off",
        Record::AuthKey(AuthKey {
            disabled: true,
            ..key("sk-off")
        }),
    )
    .await;
    put(
        s,
        "old",
        Record::AuthKey(AuthKey {
            expires_at_ms: Some(1_000),
            ..key("sk-old")
        }),
    )
    .await;
    put(
        s,
        "narrow",
        Record::AuthKey(AuthKey {
            allowed_models: vec!["mock/echo".into()],
            ..key("sk-narrow")
        }),
    )
    .await;
    let disabled = bearer(&server, "sk-off", &chat(MOCK, "hi")).await;
    disabled.assert_error(403, None, Some("api_key_disabled"));
    insta::assert_json_snapshot!("error_403_disabled", disabled.json());
    let expired = bearer(&server, "sk-old", &chat(MOCK, "hi")).await;
    expired.assert_error(403, None, Some("api_key_expired"));
    insta::assert_json_snapshot!("error_403_expired", expired.json());
    let model = bearer(&server, "sk-narrow", &chat(MOCK, "hi")).await;
    model.assert_error(403, Some("model"), Some("model_not_allowed"));
    insta::assert_json_snapshot!("error_403_model_not_allowed", model.json());
    assert_eq!(
        bearer(&server, "sk-narrow", &chat("mock/echo", "hi"))
            .await
            .status,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn rpm_limit_answers_429_with_retry_after() {
    let server = TestServer::start().await;
    put(
        &server.state,
        "k",
        Record::AuthKey(AuthKey {
            rpm_limit: Some(2),
            ..key("sk-rl")
        }),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            bearer(&server, "sk-rl", &chat(MOCK, "hi")).await.status,
            200
        );
    }
    let limited = bearer(&server, "sk-rl", &chat(MOCK, "hi")).await;
    limited.assert_error(429, None, Some("rate_limit_exceeded"));
    // 2 per minute refill one every 30 s.
    assert_eq!(limited.header("retry-after"), "30");
    insta::assert_json_snapshot!("error_429_rpm", limited.json());

    // Tokens per minute: the first answer's tokens put the key in debt.
    put(
        &server.state,
        "t",
        Record::AuthKey(AuthKey {
            tpm_limit: Some(10),
            ..key("sk-tpm")
        }),
    )
    .await;
    assert_eq!(
        bearer(&server, "sk-tpm", &chat(MOCK, "hi")).await.status,
        200
    );
    let tokens = bearer(&server, "sk-tpm", &chat(MOCK, "hi")).await;
    tokens.assert_error(429, None, Some("rate_limit_exceeded"));
    assert_eq!(tokens.json()["error"]["type"], "tokens");
    assert!(tokens
        .header("retry-after")
        .parse::<u64>()
        .is_ok_and(|s| s >= 1));
    server.stop().await;
}

#[tokio::test]
async fn budget_request_and_spend_limits_answer_402() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(
        s,
        "three",
        Record::Budget(Budget {
            name: "three requests".into(),
            limit: None,
            max_requests: Some(3),
            period: BudgetPeriod::Daily,
            on_partition: Default::default(),
        }),
    )
    .await;
    put(
        s,
        "k",
        Record::AuthKey(AuthKey {
            budget_id: Some(id("three")),
            ..key("sk-b")
        }),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(bearer(&server, "sk-b", &chat(MOCK, "hi")).await.status, 200);
    }
    let over = bearer(&server, "sk-b", &chat(MOCK, "hi")).await;
    over.assert_error(402, None, Some("insufficient_quota"));
    assert_eq!(over.header("retry-after"), "");
    insta::assert_json_snapshot!("error_402_budget", over.json(), {".error.message" => "[message with reset time]"});

    // Spend: the mock model priced at 1 USD per million output tokens; a budget of
    // one nano-USD is spent by the first answer.
    put(
        s,
        MOCK,
        Record::Pricing(Pricing {
            input_per_million: Money::ZERO,
            output_per_million: Money::from_usd(1).expect("usd"),
            cached_input_per_million: None,
        }),
    )
    .await;
    put(
        s,
        "tiny",
        Record::Budget(Budget {
            name: "tiny".into(),
            limit: Some(Money::from_nanos(1)),
            max_requests: None,
            period: BudgetPeriod::Total,
            on_partition: Default::default(),
        }),
    )
    .await;
    put(
        s,
        "spender",
        Record::AuthKey(AuthKey {
            budget_id: Some(id("tiny")),
            ..key("sk-s")
        }),
    )
    .await;
    assert_eq!(bearer(&server, "sk-s", &chat(MOCK, "hi")).await.status, 200);
    let spent = s.state_view.usage(&id("tiny"), 0);
    // 16 completion tokens × 1 USD / 10⁶ = 16 µUSD = 16,000 nano-USD.
    assert_eq!((spent.requests, spent.spend_nanos), (1, 16_000));
    let broke = bearer(&server, "sk-s", &chat(MOCK, "hi")).await;
    broke.assert_error(402, None, Some("insufficient_quota"));
    assert!(broke.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("does not reset"));
    server.stop().await;
}

/// `GET /admin/api/budgets/{id}` (and the list) shows the current period's usage, the
/// amounts admission compares with the limits: what the admin UI draws as a bar.
#[tokio::test]
async fn budget_get_shows_the_current_periods_usage() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(
        s,
        MOCK,
        Record::Pricing(Pricing {
            input_per_million: Money::ZERO,
            output_per_million: Money::from_usd(1).expect("usd"),
            cached_input_per_million: None,
        }),
    )
    .await;
    for (name, period) in [("day", BudgetPeriod::Daily), ("ever", BudgetPeriod::Total)] {
        put(
            s,
            name,
            Record::Budget(Budget {
                name: name.into(),
                limit: Some(Money::from_usd(1).expect("usd")),
                max_requests: Some(10),
                period,
                on_partition: Default::default(),
            }),
        )
        .await;
    }
    put(
        s,
        "k",
        Record::AuthKey(AuthKey {
            budget_id: Some(id("day")),
            ..key("sk-u")
        }),
    )
    .await;
    let admin = format!("Bearer {}", common::TOKEN);
    let get = |path: &'static str| {
        let admin = admin.clone();
        async move {
            let reply = send(
                server.addr,
                Method::GET,
                path,
                &[("authorization", admin.as_str())],
                Bytes::new(),
            )
            .await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            reply.json()
        }
    };

    let fresh = get("/admin/api/budgets/day").await["usage"].clone();
    assert_eq!(fresh["requests"], json!(0), "{fresh}");
    assert_eq!(fresh["spend_usd"], json!("0"), "{fresh}");

    assert_eq!(bearer(&server, "sk-u", &chat(MOCK, "hi")).await.status, 200);
    let before = s.state_view.wall_ms();
    let usage = get("/admin/api/budgets/day").await["usage"].clone();
    let after = s.state_view.wall_ms();
    // 16 completion tokens at 1 USD per million (as in the test above).
    assert_eq!(usage["requests"], json!(1), "{usage}");
    assert_eq!(usage["spend_nanos"], json!(16_000), "{usage}");
    assert_eq!(usage["spend_usd"], json!("0.000016"), "{usage}");
    assert!(usage["tokens"].as_u64().is_some_and(|t| t >= 16), "{usage}");
    let index = usage["period_index"].as_u64().expect("period_index");
    assert!(
        [
            BudgetPeriod::Daily.index(before),
            BudgetPeriod::Daily.index(after)
        ]
        .contains(&index),
        "{usage}"
    );
    let start = usage["period_start_ms"].as_u64().expect("start");
    let reset = usage["resets_at_ms"]
        .as_u64()
        .expect("a daily budget resets");
    assert_eq!(reset - start, 86_400_000, "{usage}");
    assert!(start <= after && before < reset, "{usage}");

    // The list carries the same; a `total` budget never resets.
    let list = get("/admin/api/budgets").await;
    let data = list["data"].as_array().expect("data");
    let of = |name: &str| {
        data.iter()
            .find(|b| b["id"] == json!(name))
            .unwrap_or_else(|| panic!("{name} in {list}"))["usage"]
            .clone()
    };
    assert_eq!(of("day")["spend_usd"], json!("0.000016"));
    let ever = of("ever");
    assert_eq!(ever["requests"], json!(0), "{ever}");
    assert_eq!(ever["period_index"], json!(0), "{ever}");
    assert_eq!(ever["resets_at_ms"], Value::Null, "{ever}");
    server.stop().await;
}

fn guardrail(kind: GuardrailKind) -> Record {
    Record::Guardrail(Guardrail {
        kind,
        enabled: true,
    })
}

fn workflow(rails: &[&str]) -> Record {
    Record::Workflow(Workflow {
        name: "w".into(),
        guardrails: rails.iter().map(|r| id(r)).collect(),
        routing: RoutingPolicy::Weighted,
    })
}

#[tokio::test]
async fn guardrails_refuse_with_400_and_413() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(
        s,
        "no-jailbreak",
        guardrail(GuardrailKind::DenyPatterns {
            patterns: vec!["ignore previous instructions".into()],
            case_insensitive: true,
        }),
    )
    .await;
    put(
        s,
        "short",
        guardrail(GuardrailKind::MaxInputChars { max: 20 }),
    )
    .await;
    put(
        s,
        "only-echo",
        guardrail(GuardrailKind::AllowedModels {
            models: vec!["mock/echo".into()],
        }),
    )
    .await;
    // The `default` workflow applies to anonymous requests too.
    put(s, "default", workflow(&["no-jailbreak", "short"])).await;
    let denied = server
        .post_json(CHAT, &chat(MOCK, "Ignore previous instructions!"))
        .await;
    denied.assert_error(400, Some("messages[0].content"), Some("guardrail_denied"));
    assert!(denied.text().contains("no-jailbreak"));
    insta::assert_json_snapshot!("error_400_guardrail", denied.json());
    let long = server
        .post_json(
            CHAT,
            &chat(MOCK, "this message is longer than twenty characters"),
        )
        .await;
    long.assert_error(413, Some("messages"), Some("input_too_large"));
    insta::assert_json_snapshot!("error_413_guardrail", long.json());
    assert_eq!(
        server.post_json(CHAT, &chat(MOCK, "fine")).await.status,
        200
    );

    put(s, "strict", workflow(&["only-echo"])).await;
    put(
        s,
        "k",
        Record::AuthKey(AuthKey {
            workflow_id: Some(id("strict")),
            ..key("sk-w")
        }),
    )
    .await;
    let refused = bearer(&server, "sk-w", &chat(MOCK, "hi")).await;
    refused.assert_error(403, Some("model"), Some("model_not_allowed"));
    assert!(refused.text().contains("only-echo"));
    // The key's own workflow replaces `default`: no length limit for it.
    let echo = bearer(
        &server,
        "sk-w",
        &chat("mock/echo", "a long message, not refused here"),
    )
    .await;
    assert_eq!(echo.status, 200, "{}", echo.text());
    server.stop().await;
}

fn fake_catalog(fake: &FakeUpstream) -> Catalog {
    // The default policy's retries (2), as when the provider left them to it.
    common::one_model_catalog(fake.base_url(), 2)
}

fn completion(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached}}
    })
}

fn stream_frames() -> Vec<String> {
    vec![
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}],\"usage\":null}\n\n".into(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":2000,\"completion_tokens\":500,\"total_tokens\":2500}}\n\n".into(),
        "data: [DONE]\n\n".into(),
    ]
}

#[tokio::test]
async fn redaction_reaches_the_upstream_and_cost_is_charged_plain_and_streamed() {
    let fake = FakeUpstream::start(vec![
        Scripted::Json(200, completion(1_000, 100, 400)),
        Scripted::Sse(stream_frames()),
    ])
    .await;
    let catalog = fake_catalog(&fake);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = usage_log(&server.state, &dir);
    let s = &server.state;
    put(
        s,
        "pii",
        guardrail(GuardrailKind::Redact {
            emails: true,
            phone_numbers: true,
            secrets: true,
        }),
    )
    .await;
    put(s, "pii-only", workflow(&["pii"])).await;
    put(
        s,
        "up/m",
        Record::Pricing(Pricing {
            input_per_million: Money::from_decimal_str("2.5").expect("price"),
            output_per_million: Money::from_decimal_str("10").expect("price"),
            cached_input_per_million: Some(Money::from_decimal_str("1.25").expect("price")),
        }),
    )
    .await;
    put(
        s,
        "team",
        Record::Budget(Budget {
            name: "team".into(),
            limit: Some(Money::from_usd(100).expect("usd")),
            max_requests: None,
            period: BudgetPeriod::Monthly,
            on_partition: Default::default(),
        }),
    )
    .await;
    put(
        s,
        "bob",
        Record::AuthKey(AuthKey {
            budget_id: Some(id("team")),
            workflow_id: Some(id("pii-only")),
            ..key("sk-bob")
        }),
    )
    .await;

    let body = json!({"model": "up/m", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Mail jane.doe@example.com or call +1 415 555 2671; my key is sk-proj-abcdefghijklmnop1234."}
    ]});
    let plain = bearer(&server, "sk-bob", &body).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let seen = fake.seen();
    assert_eq!(
        seen[0].body["messages"][1]["content"],
        "Mail [REDACTED_EMAIL] or call [REDACTED_PHONE]; my key is [REDACTED_SECRET]."
    );
    assert_eq!(seen[0].body["messages"][0]["content"], "You are helpful.");
    let period = BudgetPeriod::Monthly.index(s.state_view.wall_ms());
    // 600 × 2.5 + 400 × 1.25 + 100 × 10 per million = 0.003 USD.
    let after_plain = s.state_view.usage(&id("team"), period);
    assert_eq!(
        (
            after_plain.requests,
            after_plain.spend_nanos,
            after_plain.tokens
        ),
        (1, 3_000_000, 1_100)
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = bearer(&server, "sk-bob", &streamed).await;
    assert_eq!(reply.status, 200);
    let events = sse_data(&reply.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "usage stripped: client did not ask"
    );
    assert_eq!(
        fake.seen()[1].body["messages"][1]["content"],
        "Mail [REDACTED_EMAIL] or call [REDACTED_PHONE]; my key is [REDACTED_SECRET]."
    );
    // The stream is settled when it ends, just after the client saw [DONE].
    let expected = 3_000_000 + 2_000 * 2_500 + 500 * 10_000;
    let mut total = s.state_view.usage(&id("team"), period);
    for _ in 0..100 {
        if total.requests == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        total = s.state_view.usage(&id("team"), period);
    }
    assert_eq!((total.requests, total.spend_nanos), (2, expected));

    // The usage log has both rows, with the costs and the node name.
    assert!(log.flush(Duration::from_secs(5)));
    let rows = log.query(&Default::default()).expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].cost_nanos, 3_000_000);
    assert_eq!(
        (
            rows[1].prompt_tokens,
            rows[1].completion_tokens,
            rows[1].cached_tokens
        ),
        (1_000, 100, 400)
    );
    assert_eq!(rows[0].cost_nanos, 10_000_000);
    assert!(rows.iter().all(|r| r.key_id.as_deref() == Some("bob")
        && r.model == "up/m"
        && r.provider.as_deref() == Some("up")
        && r.node.as_deref() == Some("node-test")
        && r.status == 200));
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_cost_nanousd_total{model=\"up/m\"} 13000000"),
        "{metrics}"
    );
    assert!(metrics.contains("aurora_usage_log_rows_total{result=\"written\"} 2"));
    server.stop().await;
}

#[tokio::test]
async fn usage_log_rows_and_summary_through_the_admin_handlers() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = usage_log(&server.state, &dir);
    let s = &server.state;
    put(s, "alice", Record::AuthKey(key("sk-a"))).await;
    put(s, "bob", Record::AuthKey(key("sk-b"))).await;
    put(
        s,
        MOCK,
        Record::Pricing(Pricing {
            input_per_million: Money::from_usd(1).expect("usd"),
            output_per_million: Money::from_usd(2).expect("usd"),
            cached_input_per_million: None,
        }),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            bearer(&server, "sk-a", &chat(MOCK, "hello there"))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        bearer(&server, "sk-b", &chat("mock/echo", "hi"))
            .await
            .status,
        200
    );
    assert_eq!(
        bearer(&server, "sk-nope", &chat(MOCK, "hi")).await.status,
        401
    );

    let admin = |path: &str, query: Option<&str>| {
        let response =
            aurora_gateway::usage::admin::handle(s, &Method::GET, path, query).expect("usage path");
        let status = response.status();
        (status, response)
    };
    let body = |response: aurora_gateway::http::body::Response| async move {
        use http_body_util::BodyExt;
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice::<Value>(&bytes).expect("json")
    };
    let (status, rows) = admin("/admin/api/usage", Some("key=alice&limit=2"));
    assert_eq!(status, 200);
    let rows = body(rows).await;
    assert_eq!(rows["object"], "list");
    assert_eq!(rows["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(rows["data"][0]["key_id"], "alice");
    assert_eq!(rows["data"][0]["model"], MOCK);
    assert_eq!(rows["data"][0]["node"], "node-test");
    let cost = rows["data"][0]["cost_nanos"].as_u64().expect("cost");
    assert!(cost > 0);
    insta::assert_json_snapshot!("usage_row", rows["data"][0], {
        ".time_ms" => "[time]", ".latency_ms" => "[latency]"
    });

    let (_, summary) = admin("/admin/api/usage/summary", Some("group_by=key"));
    let summary = body(summary).await;
    let group = |name: Value| {
        summary["data"]
            .as_array()
            .and_then(|d| d.iter().find(|g| g["group"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(group(json!("alice"))["requests"], 3);
    assert_eq!(group(json!("alice"))["cost_nanos"].as_u64(), Some(3 * cost));
    assert_eq!(group(json!("bob"))["requests"], 1);
    assert_eq!(
        group(Value::Null),
        Value::Null,
        "a 401 is a counter, not a usage row"
    );
    let (_, by_model) = admin("/admin/api/usage/summary", Some("group_by=model"));
    let by_model = body(by_model).await;
    assert_eq!(by_model["group_by"], "model");
    let (status, bad) = admin("/admin/api/usage/summary", Some("group_by=day"));
    assert_eq!(status, 400);
    assert_eq!(body(bad).await["error"]["param"], "group_by");
    let (status, _) = admin("/admin/api/usage", Some("limit=0"));
    assert_eq!(status, 400);
    assert!(
        aurora_gateway::usage::admin::handle(s, &Method::GET, "/admin/api/keys", None).is_none()
    );
    server.stop().await;
}

/// Issue 13 (overview): the series of the usage log through the admin handler, after
/// real requests: the totals match the summary, a refused request is an error in its
/// bucket, bad parameters answer 400 naming the parameter.
#[tokio::test]
async fn usage_series_through_the_admin_handler() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = usage_log(&server.state, &dir);
    let s = &server.state;
    put(s, "alice", Record::AuthKey(key("sk-a"))).await;
    let mut limited = key("sk-b");
    limited.allowed_models = vec![MOCK.into()];
    put(s, "bob", Record::AuthKey(limited)).await;
    put(
        s,
        MOCK,
        Record::Pricing(Pricing {
            input_per_million: Money::from_usd(1).expect("usd"),
            output_per_million: Money::from_usd(2).expect("usd"),
            cached_input_per_million: None,
        }),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            bearer(&server, "sk-a", &chat(MOCK, "hello there"))
                .await
                .status,
            200
        );
    }
    assert_eq!(bearer(&server, "sk-b", &chat(MOCK, "hi")).await.status, 200);
    // Refused after authentication: a row with status 403.
    assert_eq!(
        bearer(&server, "sk-b", &chat("mock/echo", "hi"))
            .await
            .status,
        403
    );
    // Refused before: no row.
    assert_eq!(
        bearer(&server, "sk-nope", &chat(MOCK, "hi")).await.status,
        401
    );

    let get = |query: &str| {
        let response = aurora_gateway::usage::admin::handle(
            s,
            &Method::GET,
            "/admin/api/usage/series",
            Some(query),
        )
        .expect("usage path");
        async move {
            use http_body_util::BodyExt;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("json"),
            )
        }
    };
    // A request's row is queued when its answer is settled, which may be just after
    // the client read the answer: wait for the last one.
    let mut tries = 0;
    let (status, series) = loop {
        let (status, series) = get("window=15m&bucket=1m&group_by=key").await;
        tries += 1;
        if series["total"]["total"]["requests"] == 5 || tries == 50 {
            break (status, series);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["object"], "usage.series");
    assert_eq!(series["bucket_ms"], 60_000);
    assert_eq!(series["group_by"], "key");
    let buckets = series["buckets"].as_array().expect("buckets").len();
    assert!((15..=16).contains(&buckets), "{buckets} buckets");
    let total = &series["total"]["total"];
    assert_eq!(total["requests"], 5, "{series}");
    assert_eq!(total["errors"], 1);
    let points = series["total"]["points"].as_array().expect("points");
    assert_eq!(points.len(), buckets);
    let sum = |field: &str| {
        points
            .iter()
            .map(|p| p[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(sum("requests"), 5);
    assert_eq!(
        sum("cost_nanos"),
        total["cost_nanos"].as_u64().expect("cost")
    );
    assert!(total["cost_nanos"].as_u64().expect("cost") > 0);
    assert!(total["latency_p50_ms"].is_u64());
    assert!(total["latency_p99_ms"].as_u64() >= total["latency_p50_ms"].as_u64());
    let group = |name: &str| {
        series["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|s| s["group"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(group("alice")["total"]["requests"], 3);
    assert_eq!(group("bob")["total"]["requests"], 2);
    assert_eq!(group("bob")["total"]["errors"], 1);
    // The summary agrees on the spend.
    let summary = s.policy.usage_log().expect("log").summary(
        aurora_gateway::usage::GroupBy::Key,
        0,
        u64::MAX,
    );
    let spent: u64 = summary.expect("summary").iter().map(|r| r.cost_nanos).sum();
    assert_eq!(total["cost_nanos"].as_u64(), Some(spent));
    assert_eq!(
        total["cost_usd"],
        aurora_schema::Money::from_nanos(spent).to_string()
    );

    for (query, param) in [
        ("bucket=1s&window=1h", "bucket"),
        ("bucket=0s", "bucket"),
        ("bucket=5parsecs", "bucket"),
        ("window=forever", "window"),
        ("since=10&until=10", "since"),
        ("until=-1", "until"),
        ("group_by=day", "group_by"),
        ("groups=0", "groups"),
        ("groups=21", "groups"),
    ] {
        let (status, body) = get(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
    server.stop().await;
}

/// Issue 13 (overview): what the usage log cannot show, the metrics history does: a
/// burst of 401s is no row, but it is in `GET /admin/api/metrics/history` (over HTTP,
/// behind the admin token), as requests and errors of its interval.
#[tokio::test]
async fn metrics_history_shows_the_401s_the_usage_log_does_not_hold() {
    let server = TestServer::start().await;
    let s = &server.state;
    put(s, "alice", Record::AuthKey(key("sk-a"))).await;
    // Samples around the burst; the sampler's own (every 10 s) may fall in between,
    // so the points after `t0` add up to the burst, however they are split.
    let mut t0 = 0;
    s.metrics.history.record_taken(|| {
        t0 = aurora_gateway::clock::wall_ms();
        s.metrics.sample(t0)
    });
    assert_eq!(bearer(&server, "sk-a", &chat(MOCK, "hi")).await.status, 200);
    for _ in 0..4 {
        assert_eq!(
            bearer(&server, "sk-nope", &chat(MOCK, "hi")).await.status,
            401
        );
    }
    // The metrics count a request when its body ended: wait for the five (up to
    // 10 s: under the full test suite's load one second was not always enough).
    for _ in 0..1000 {
        if s.metrics.sample(0).requests >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.metrics.sample(0).requests, 5, "the burst was counted");
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.metrics
        .history
        .record_taken(|| s.metrics.sample(aurora_gateway::clock::wall_ms()));
    let auth = format!("Bearer {}", common::TOKEN);
    let reply = send(
        server.addr,
        Method::GET,
        &format!("/admin/api/metrics/history?resolution=10s&since={}", t0 + 1),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "metrics.history");
    assert_eq!(body["resolution_ms"], 10_000);
    let points = body["data"].as_array().expect("points");
    assert!(!points.is_empty(), "{body}");
    let sum = |field: &str| {
        points
            .iter()
            .map(|p| p[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!((sum("requests"), sum("errors")), (5, 4), "{body}");
    assert!(points.iter().any(|p| p["latency_p50_ms"].is_number()));

    let unauthorized = send(
        server.addr,
        Method::GET,
        "/admin/api/metrics/history",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(unauthorized.status, 401);
    let bad = send(
        server.addr,
        Method::GET,
        "/admin/api/metrics/history?resolution=1y",
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    bad.assert_error(400, Some("resolution"), None);
    server.stop().await;
}

/// Issue 10 item 4(g): a flood of junk keys grows no file. 1000 requests with unknown
/// keys leave the usage table as it was and show up only in the rejection counter.
#[tokio::test]
async fn a_flood_of_bad_keys_is_counted_not_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start().await;
    put(
        &server.state,
        "alice",
        Record::AuthKey(key("sk-alice-secret")),
    )
    .await;
    let log = usage_log(&server.state, &dir);
    assert_eq!(
        bearer(&server, "sk-alice-secret", &chat(MOCK, "hi"))
            .await
            .status,
        200
    );
    assert!(log.flush(Duration::from_secs(10)));
    let rows_before = log.rows().expect("rows");
    assert_eq!(rows_before, 1);
    let rejected = |text: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.starts_with(
                    "aurora_policy_rejections_total{status=\"401\",reason=\"unknown_key\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let counted_before = rejected(&server.state.metrics.render());
    let body = Bytes::from(chat(MOCK, "hi").to_string());
    // Keep-alive connections, so the flood is bounded by requests, not by sockets.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let addr = server.addr;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            for i in 0..125 {
                let request = http::Request::post(CHAT)
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer sk-junk-{worker}-{i}"))
                    .body(http_body_util::Full::new(body.clone()))
                    .expect("request");
                let response = sender.send_request(request).await.expect("response");
                assert_eq!(response.status(), 401);
                use http_body_util::BodyExt;
                let _ = response.into_body().collect().await;
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the flood finishes")
            .expect("worker");
    }
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(log.rows().expect("rows"), rows_before, "no row per 401");
    assert_eq!(
        rejected(&server.state.metrics.render()) - counted_before,
        1000,
        "every 401 counted"
    );
    server.stop().await;
}
