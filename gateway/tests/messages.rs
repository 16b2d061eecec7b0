//! `POST /v1/messages` (Anthropic Messages inbound) over real HTTP: plain and streamed
//! answers from the mock, tool use round trips, Anthropic-shaped errors, keys sent as
//! `x-api-key`, the translation both ways against a fake OpenAI-compatible
//! upstream that records what it received (tools, images, tool results, streamed
//! tool-call deltas), and the pass-through to a fake Anthropic upstream: the body as
//! the client wrote it, the answer (plain and streamed) as the upstream wrote it,
//! billed from Anthropic's usage, with fallback to an OpenAI target and redaction
//! never letting the original text out.

mod common;

use aurora_gateway::catalog::{Catalog, Named};
use aurora_gateway::state::AppState;
use aurora_gateway::usage::{UsageLog, UsageRow};
use aurora_schema::{
    Guardrail, GuardrailKind, Provider, ProviderKind, Record, RecordId, Route, RouteTarget,
    RoutingPolicy, Workflow,
};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply as Scripted};
use common::{send, Reply, TestServer};
use http::Method;
use serde_json::{json, Value};

const MESSAGES: &str = "/v1/messages";

async fn post(server: &TestServer, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut all = vec![
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ];
    all.extend_from_slice(headers);
    send(
        server.addr,
        Method::POST,
        MESSAGES,
        &all,
        Bytes::from(body.to_string()),
    )
    .await
}

/// The `(event, data)` pairs of an Anthropic SSE body, checking that every event
/// names its data's `type`.
fn events(body: &str) -> Vec<(String, Value)> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').expect("event and data lines");
            let name = name.strip_prefix("event: ").expect("event line").to_owned();
            let data: Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("data line")).unwrap();
            assert_eq!(data["type"], json!(name));
            (name, data)
        })
        .collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn weather_tools() -> Value {
    json!([{
        "name": "get_weather",
        "description": "Weather of a city",
        "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"]}
    }])
}

#[tokio::test]
async fn plain_and_streamed_answers_have_anthropic_shape() {
    let server = TestServer::start().await;
    let body = json!({
        "model": "mock/echo", "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello there Claude"}]
    });
    let plain = post(&server, &[], &body).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("content-type"), "application/json");
    let v = plain.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "mock/echo");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "hello there Claude"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(v["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0));

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let streamed = post(&server, &[], &stream_body).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-type"), "text/event-stream");
    let got = events(&streamed.text());
    // message_start names the prompt's size at once (the mock counts as Aurora does).
    assert_eq!(
        got[0].1["message"]["usage"]["input_tokens"],
        v["usage"]["input_tokens"]
    );
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(streamed_text(&got), "hello there Claude");
    let delta = &got[got.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], v["usage"]["output_tokens"]);

    // max_tokens cuts the answer: stop_reason max_tokens.
    let mut short = body.clone();
    short["max_tokens"] = json!(1);
    let v = post(&server, &[], &short).await.json();
    assert_eq!(v["stop_reason"], "max_tokens");
    server.stop().await;
}

#[tokio::test]
async fn a_tool_use_round_trip_through_the_mock() {
    let server = TestServer::start().await;
    let ask = json!({"role": "user", "content": "Please use get_weather for Paris"});
    let body = json!({
        "model": "mock/echo", "max_tokens": 100, "tools": weather_tools(),
        "messages": [ask]
    });
    let v = post(&server, &[], &body).await.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let call = v["content"][0].clone();
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "mock"}));
    assert!(call["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("call_")));
    // Deterministic: the same request, the same call.
    assert_eq!(
        post(&server, &[], &body).await.json()["content"],
        v["content"]
    );

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let got = events(&post(&server, &[], &stream_body).await.text());
    let start = got
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .expect("a block");
    assert_eq!(
        start.1["content_block"],
        json!({"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {}})
    );
    let json_text: String = got
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        call["input"]
    );
    assert_eq!(got[got.len() - 2].1["delta"]["stop_reason"], "tool_use");

    // The client sends the result back: the mock answers with text.
    let follow = json!({
        "model": "mock/echo", "max_tokens": 100, "tools": weather_tools(),
        "messages": [ask, {"role": "assistant", "content": v["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}]}]
    });
    let answer = post(&server, &[], &follow).await.json();
    assert_eq!(answer["stop_reason"], "end_turn", "{answer}");
    assert_eq!(answer["content"][0]["type"], "text");

    // tool_choice none: never a call.
    let mut none = body.clone();
    none["tool_choice"] = json!({"type": "none"});
    assert_eq!(
        post(&server, &[], &none).await.json()["stop_reason"],
        "end_turn"
    );
    server.stop().await;
}

#[tokio::test]
async fn errors_have_anthropic_shape_and_status() {
    let server = TestServer::start().await;
    let assert_error = |reply: &Reply, status: u16, kind: &str| {
        assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
        assert_eq!(reply.header("content-type"), "application/json");
        let v = reply.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        v["error"]["message"].as_str().unwrap_or("").to_owned()
    };
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let missing = post(
        &server,
        &[],
        &json!({"model": "mock/echo", "messages": msgs}),
    )
    .await;
    assert!(assert_error(&missing, 400, "invalid_request_error").contains("max_tokens"));
    let unknown = post(
        &server,
        &[],
        &json!({"model": "nope/x", "max_tokens": 5, "messages": msgs}),
    )
    .await;
    assert!(assert_error(&unknown, 404, "not_found_error").contains("nope/x"));
    let broken = send(
        server.addr,
        Method::POST,
        MESSAGES,
        &[("content-type", "application/json")],
        Bytes::from_static(b"{"),
    )
    .await;
    assert_error(&broken, 400, "invalid_request_error");
    let wrong_method = server.get(MESSAGES).await;
    assert_eq!(wrong_method.status, 405);

    // With a key configured: none → 401, x-api-key (the Anthropic SDK's header) → 200.
    server
        .state
        .state_view
        .put(
            RecordId::new("alice").unwrap(),
            Record::AuthKey(common::auth_key("sk-alice-secret")),
        )
        .await
        .expect("record accepted");
    let body = json!({"model": "mock/echo", "max_tokens": 5, "messages": msgs});
    let anonymous = post(&server, &[], &body).await;
    assert_error(&anonymous, 401, "authentication_error");
    let keyed = post(&server, &[("x-api-key", "sk-alice-secret")], &body).await;
    assert_eq!(keyed.status, 200, "{}", keyed.text());
    // No anthropic-version header: still served (2023-06-01 assumed).
    let bare = send(
        server.addr,
        Method::POST,
        MESSAGES,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-alice-secret"),
        ],
        Bytes::from(body.to_string()),
    )
    .await;
    assert_eq!(bare.status, 200, "{}", bare.text());
    server.stop().await;
}

fn upstream_server(fake: &FakeUpstream) -> impl FnOnce(&mut aurora_gateway::config::ServerConfig) {
    let catalog = common::one_model_catalog(fake.base_url(), 0);
    move |c| c.gateway.catalog = catalog
}

#[tokio::test]
async fn tools_images_and_results_reach_an_openai_upstream_translated() {
    let fake = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({
            "id": "chatcmpl-up1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_up", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
        }),
    )])
    .await;
    let server = TestServer::start_with(upstream_server(&fake)).await;
    let body = json!({
        "model": "up/m", "max_tokens": 50, "tools": weather_tools(),
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "stop_sequences": ["###"], "temperature": 0.1,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "weather here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Bergen"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_0", "content": "rain"},
                {"type": "text", "text": "and Oslo?"}]}
        ]
    });
    let reply = post(&server, &[], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["id"], "msg_up1");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "call_up", "name": "get_weather", "input": {"city": "Oslo"}}])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"], json!({"input_tokens": 30, "output_tokens": 9}));

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    let sent = &seen[0].body;
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["stop"], json!(["###"]));
    assert_eq!(sent["temperature"], json!(0.1));
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather",
            "description": "Weather of a city", "parameters": weather_tools()[0]["input_schema"]}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "tool_calls": [{"id": "toolu_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Bergen\"}"}}]},
            {"role": "tool", "content": "rain", "tool_call_id": "toolu_0"},
            {"role": "user", "content": [{"type": "text", "text": "and Oslo?"}]}
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn streamed_upstream_tool_call_deltas_become_input_json_deltas() {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let fake = FakeUpstream::start(vec![Scripted::Sse(vec![
        chunk(json!({"role": "assistant", "content": "Checking."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_s", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}})
        ),
        "data: [DONE]\n\n".to_owned(),
    ])])
    .await;
    let server = TestServer::start_with(upstream_server(&fake)).await;
    let body = json!({
        "model": "up/m", "max_tokens": 50, "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "weather in Oslo?"}]
    });
    let reply = post(&server, &[], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = events(&reply.text());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[0].1["message"]["id"], "msg_s");
    assert_eq!(
        got[3].1["delta"],
        json!({"type": "text_delta", "text": "Checking."})
    );
    assert_eq!(got[5].1["index"], 1);
    assert_eq!(got[5].1["content_block"]["id"], "call_s");
    assert_eq!(
        got[7].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "\"Oslo\"}"})
    );
    assert_eq!(got[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(got[9].1["usage"]["output_tokens"], 8);
    // The upstream was asked for a stream with usage.
    let sent = &fake.seen()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    server.stop().await;
}

#[tokio::test]
async fn a_broken_upstream_stream_ends_with_an_error_event() {
    let fake = FakeUpstream::start(vec![Scripted::SseThenBreak(vec![format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": null}]})
    )])])
    .await;
    let server = TestServer::start_with(upstream_server(&fake)).await;
    let body = json!({
        "model": "up/m", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]
    });
    let reply = post(&server, &[], &body).await;
    let got = events(&reply.text());
    assert_eq!(streamed_text(&got), "half");
    let (name, data) = got.last().expect("events");
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
    server.stop().await;
}

#[tokio::test]
async fn the_mock_calls_a_tool_on_chat_completions_plain_and_streamed() {
    let server = TestServer::start().await;
    let body = json!({
        "model": "mock/gpt-4o-mini",
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["q", "n"]}}}],
        "tool_choice": "required",
        "messages": [{"role": "user", "content": "anything"}]
    });
    let v = server.post_json("/v1/chat/completions", &body).await.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], r#"{"n":1,"q":"mock"}"#);
    assert!(v["usage"]["completion_tokens"]
        .as_u64()
        .is_some_and(|n| n > 0));

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let reply = server.post_json("/v1/chat/completions", &stream).await;
    let chunks: Vec<Value> = common::sse_data(&reply.text())
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["id"], call["id"]);
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "");
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, call["function"]["arguments"].as_str().unwrap());
    assert!(chunks.len() > 3, "arguments come in more than one delta");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    server.stop().await;
}

/// Provider `claude` (Anthropic) at `anthropic` with model `claude/c`, provider `up`
/// (OpenAI-compatible) at `openai` with model `up/m`, and route `mixed`: `claude/c`
/// first, `up/m` as its fallback.
fn mixed_catalog(anthropic: &FakeUpstream, openai: &FakeUpstream) -> Catalog {
    let provider = |kind, fake: &FakeUpstream| Provider {
        kind,
        ..common::openai_provider(fake.base_url(), 5_000, 0)
    };
    Catalog {
        providers: vec![
            Named::new("claude", provider(ProviderKind::Anthropic, anthropic)),
            Named::new("up", provider(ProviderKind::OpenAiCompatible, openai)),
        ],
        models: vec![
            common::model_record("claude/c"),
            common::model_record("up/m"),
        ],
        routes: vec![Named::new(
            "mixed",
            Route {
                targets: vec![RouteTarget {
                    model_id: RecordId::new("claude/c").expect("id"),
                    weight: 1,
                }],
                fallbacks: vec![RecordId::new("up/m").expect("id")],
                retries: 0,
            },
        )],
    }
}

fn usage_log(state: &AppState, dir: &tempfile::TempDir) -> std::sync::Arc<UsageLog> {
    let log = UsageLog::open(&dir.path().join("usage.db"), "node-test").expect("usage log");
    state.policy.attach_usage_log(log);
    state.policy.usage_log().expect("attached")
}

fn rows(log: &UsageLog) -> Vec<UsageRow> {
    assert!(log.flush(std::time::Duration::from_secs(5)));
    log.query(&Default::default()).expect("rows")
}

/// A Messages body with what only Anthropic understands: `cache_control` on blocks,
/// extended `thinking`, `metadata`, a server tool beside a custom one, a thinking
/// block in the history.
fn anthropic_only_body() -> Value {
    json!({
        "model": "claude/c", "max_tokens": 2048,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-42"},
        "tools": [
            {"name": "get_weather", "description": "Weather of a city",
             "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "long document …", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "the user wants…", "signature": "sig=="},
                {"type": "text", "text": "Go on."}]},
            {"role": "user", "content": "What is the weather in Oslo?"}
        ],
        "top_k": 3,
        "vendor_field": {"kept": [1, null]}
    })
}

#[tokio::test]
async fn an_anthropic_upstream_gets_the_body_and_the_client_its_answer_unchanged() {
    let answer = json!({
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Oslo, so…", "signature": "abc"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "oslo weather"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Rain. END"}],
        "stop_reason": "stop_sequence", "stop_sequence": "END",
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 5,
                  "cache_read_input_tokens": 30, "output_tokens": 9,
                  "server_tool_use": {"web_search_requests": 1}}
    });
    let anthropic = FakeUpstream::start(vec![Scripted::Json(200, answer.clone())]).await;
    let openai = FakeUpstream::start(vec![Scripted::Json(500, json!({}))]).await;
    let catalog = mixed_catalog(&anthropic, &openai);
    let mut catalog_with_key = catalog;
    catalog_with_key.providers[0].record.api_key_env =
        Some("AURORA_PROVIDER_TEST_ANTHROPIC_KEY".into());
    let server = TestServer::start_with_env(
        move |c| c.gateway.catalog = catalog_with_key,
        &[("AURORA_PROVIDER_TEST_ANTHROPIC_KEY", "sk-ant-test")],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = usage_log(&server.state, &dir);
    let body = anthropic_only_body();
    let beta = "extended-cache-ttl-2025-04-11";
    let reply = post(&server, &[("anthropic-beta", beta)], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.json(), answer, "the answer is forwarded unchanged");

    let seen = anthropic.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], "sk-ant-test");
    // The headers that say what the body may use go with it.
    assert_eq!(seen[0].headers["anthropic-beta"], beta);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    let mut expected = body.clone();
    expected["model"] = json!("c");
    assert_eq!(seen[0].body, expected, "only the model is replaced");
    assert_eq!(openai.hits(), 0);

    // Billed from Anthropic's usage: the prompt counts cache reads and writes.
    let rows = rows(&log);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].prompt_tokens,
            rows[0].completion_tokens,
            rows[0].status
        ),
        (12 + 5 + 30, 9, 200)
    );
    assert_eq!(rows[0].model, "claude/c");

    // The same through the route: its Anthropic target answers natively.
    let mut routed = body.clone();
    routed["model"] = json!("mixed");
    let reply = post(&server, &[], &routed).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), answer);
    assert_eq!(anthropic.seen()[1].body, expected);
    server.stop().await;
}

#[tokio::test]
async fn an_anthropic_stream_is_forwarded_event_by_event_and_billed() {
    let frame = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let frames = vec![
        frame(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message",
                "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 20, "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        frame("ping", json!({"type": "ping"})),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "text", "text": ""}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "text_delta", "text": "Rain, END"}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        frame(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence",
                "stop_sequence": "END"}, "usage": {"output_tokens": 15}}),
        ),
        frame("message_stop", json!({"type": "message_stop"})),
    ];
    let anthropic = FakeUpstream::start(vec![Scripted::Sse(frames.clone())]).await;
    let openai = FakeUpstream::start(vec![Scripted::Json(500, json!({}))]).await;
    let catalog = mixed_catalog(&anthropic, &openai);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = usage_log(&server.state, &dir);
    let mut body = anthropic_only_body();
    body["stream"] = json!(true);
    let reply = post(&server, &[], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "text/event-stream");
    assert_eq!(
        reply.text(),
        frames.concat(),
        "every event as the upstream sent it"
    );
    let mut expected = body.clone();
    expected["model"] = json!("c");
    assert_eq!(anthropic.seen()[0].body, expected, "`stream` is kept");
    let rows = rows(&log);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].prompt_tokens,
            rows[0].completion_tokens,
            rows[0].status
        ),
        (120, 15, 200)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_broken_anthropic_stream_ends_with_an_anthropic_error_event() {
    let frames = vec![
        format!(
            "event: message_start\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "msg_b", "type": "message",
                "role": "assistant", "model": "c", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}})
        ),
        format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "half"}})
        ),
    ];
    let anthropic = FakeUpstream::start(vec![Scripted::SseThenBreak(frames)]).await;
    let openai = FakeUpstream::start(vec![Scripted::Json(500, json!({}))]).await;
    let catalog = mixed_catalog(&anthropic, &openai);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let body = json!({"model": "claude/c", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&server, &[], &body).await;
    let got = events(&reply.text());
    assert_eq!(streamed_text(&got), "half");
    let (name, data) = got.last().expect("events");
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "api_error");
    server.stop().await;
}

#[tokio::test]
async fn a_failing_anthropic_target_falls_back_to_openai_and_answers_as_messages() {
    let anthropic = FakeUpstream::start(vec![Scripted::Json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )])
    .await;
    let openai = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({"id": "chatcmpl-fb", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "from the fallback"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
    )])
    .await;
    let catalog = mixed_catalog(&anthropic, &openai);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = usage_log(&server.state, &dir);
    let body = json!({
        "model": "mixed", "max_tokens": 64,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]}]
    });
    let reply = post(&server, &[], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_fb");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "from the fallback"}])
    );
    assert_eq!(v["usage"], json!({"input_tokens": 7, "output_tokens": 3}));
    // The Anthropic target got the client's body; the OpenAI one the translation.
    assert_eq!(anthropic.seen()[0].body["thinking"], body["thinking"]);
    let sent = &openai.seen()[0].body;
    assert_eq!(sent["model"], "m");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "be brief"},
               {"role": "user", "content": [{"type": "text", "text": "hello"}]}])
    );
    assert!(sent.get("thinking").is_none());
    let rows = rows(&log);
    assert_eq!(
        (rows[0].prompt_tokens, rows[0].completion_tokens),
        (7, 3),
        "billed as the fallback answered"
    );

    // Server tools need Anthropic: the OpenAI target is skipped, and without an
    // Anthropic one the request is refused.
    let tools = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let only_openai = post(
        &server,
        &[],
        &json!({"model": "up/m", "max_tokens": 5, "tools": tools,
            "messages": [{"role": "user", "content": "search"}]}),
    )
    .await;
    assert_eq!(only_openai.status, 400, "{}", only_openai.text());
    assert_eq!(only_openai.json()["error"]["type"], "invalid_request_error");
    assert_eq!(openai.hits(), 1, "never sent");
    let routed = post(
        &server,
        &[],
        &json!({"model": "mixed", "max_tokens": 5, "tools": tools,
            "messages": [{"role": "user", "content": "search"}]}),
    )
    .await;
    // The Anthropic target failed (or cools after the failure above); the fallback is
    // never tried.
    assert!(routed.status.is_server_error(), "{}", routed.text());
    assert_eq!(routed.json()["type"], "error");
    assert_eq!(openai.hits(), 1, "the fallback cannot serve it");
    server.stop().await;
}

#[tokio::test]
async fn a_redacting_guardrail_never_lets_the_original_text_reach_anthropic() {
    let answer = json!({"id": "msg_r", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "noted"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 9, "output_tokens": 2}});
    let anthropic = FakeUpstream::start(vec![Scripted::Json(200, answer)]).await;
    let openai = FakeUpstream::start(vec![Scripted::Json(500, json!({}))]).await;
    let catalog = mixed_catalog(&anthropic, &openai);
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let id = |s: &str| RecordId::new(s).expect("id");
    for (name, record) in [
        (
            "pii",
            Record::Guardrail(Guardrail {
                kind: GuardrailKind::Redact {
                    emails: true,
                    phone_numbers: false,
                    secrets: false,
                },
                enabled: true,
            }),
        ),
        (
            "default",
            Record::Workflow(Workflow {
                name: "w".into(),
                guardrails: vec![id("pii")],
                routing: RoutingPolicy::Weighted,
            }),
        ),
    ] {
        server
            .state
            .state_view
            .put(id(name), record)
            .await
            .expect("record accepted");
    }
    let secret = "jane@example.com";
    let body = json!({
        "model": "claude/c", "max_tokens": 64,
        "system": [{"type": "text", "text": format!("reply to {secret}"), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": format!("mail {secret} please"), "cache_control": {"type": "ephemeral"}}]}]
    });
    let reply = post(&server, &[("anthropic-beta", "some-beta")], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["content"],
        json!([{"type": "text", "text": "noted"}])
    );
    // The translation is written against 2023-06-01 without betas.
    assert!(anthropic.seen()[0].headers.get("anthropic-beta").is_none());
    let sent = &anthropic.seen()[0].body;
    assert!(
        !sent.to_string().contains(secret),
        "the original text stayed home: {sent}"
    );
    assert_eq!(sent["system"], "reply to [REDACTED_EMAIL]");
    assert_eq!(
        sent["messages"][0]["content"][0]["text"],
        "mail [REDACTED_EMAIL] please"
    );
    // Nothing to redact: the body goes as it came.
    let clean = json!({"model": "claude/c", "max_tokens": 64,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "no address here", "cache_control": {"type": "ephemeral"}}]}]});
    assert_eq!(post(&server, &[], &clean).await.status, 200);
    let mut expected = clean.clone();
    expected["model"] = json!("c");
    assert_eq!(anthropic.seen()[1].body, expected);
    // Server tools cannot be translated, so a rewritten request using them is refused.
    let mut tools = body.clone();
    tools["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let refused = post(&server, &[], &tools).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(anthropic.hits(), 2, "never sent");
    server.stop().await;
}
