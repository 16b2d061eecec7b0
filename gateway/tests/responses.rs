//! `POST /v1/responses` over real HTTP on loopback: the mock's answers (plain and
//! streamed, equal to chat's), the refusals (stateless, built-in tools), the same
//! key check and metrics as chat, and, in front of a scripted fake upstream, the
//! translation both ways: what the upstream is sent (chat shapes: nested tools,
//! tool-call turns, images, `response_format`) and how its tool calls, streamed or
//! not, come back as `function_call` items; a stream that breaks ends `response.failed`.

mod common;

use aurora_gateway::catalog::{Catalog, Named};
use aurora_schema::{Model, ProviderKind, Record, RecordId, Route, RouteTarget};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply as Scripted};
use common::{chat, send, TestServer};
use http::Method;
use serde_json::{json, Value};

const RESPONSES: &str = "/v1/responses";
const MOCK: &str = "mock/gpt-4o-mini";

/// Parses a Responses SSE body: every event has an `event:` line naming the `type`
/// of its data, and the sequence numbers count from 0.
fn events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (head, data) = event
                .split_once('\n')
                .unwrap_or_else(|| panic!("two lines: {event:?}"));
            let kind = head.strip_prefix("event: ").expect("event line");
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data line"))
                .expect("data is JSON");
            assert_eq!(data["type"], kind);
            data
        })
        .collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], json!(i), "{event}");
    }
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

fn deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect()
}

async fn upstream_gateway(fake: &FakeUpstream) -> TestServer {
    let catalog = common::one_model_catalog(fake.base_url(), 0);
    TestServer::start_with(move |c| c.gateway.catalog = catalog).await
}

#[tokio::test]
async fn mock_answers_plain_and_streamed_with_the_text_chat_gives() {
    let server = TestServer::start().await;
    let chat_text = server
        .post_json("/v1/chat/completions", &chat(MOCK, "hello there"))
        .await
        .json()["choices"][0]["message"]["content"]
        .as_str()
        .expect("chat text")
        .to_owned();

    let body = json!({"model": MOCK, "input": "hello there", "metadata": {"team": "a"}});
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "application/json");
    let plain = reply.json();
    // The whole field set, as the openai SDK's `Response` model reads it.
    insta::assert_json_snapshot!("responses_mock_plain", plain, {
        ".id" => "[id]", ".created_at" => "[created_at]", ".output[0].id" => "[id]"
    });
    assert_eq!(plain["object"], "response");
    assert_eq!(plain["status"], "completed");
    assert_eq!(plain["model"], MOCK);
    assert_eq!(plain["metadata"], json!({"team": "a"}));
    assert!(plain["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("resp_")));
    let message = &plain["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], chat_text.as_str());
    let usage = &plain["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = server.post_json(RESPONSES, &streamed).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let events = events(&reply.text());
    let kinds = types(&events);
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(deltas(&events), chat_text);
    let completed = &events.last().expect("events")["response"];
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        chat_text.as_str()
    );
    assert_eq!(
        completed["usage"], plain["usage"],
        "the same usage as plain"
    );
    assert_eq!(completed["metadata"], json!({"team": "a"}));

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("route=\"/v1/responses\""),
        "requests counted under their own route"
    );
    server.stop().await;
}

#[tokio::test]
async fn refusals_are_specific() {
    let server = TestServer::start().await;
    let reply = server
        .post_json(
            RESPONSES,
            &json!({"model": MOCK, "input": "x", "previous_response_id": "resp_123"}),
        )
        .await;
    let error = reply.assert_error(400, Some("previous_response_id"), None);
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not store conversations") && m.contains("input")),
        "{error}"
    );

    let reply = server
        .post_json(
            RESPONSES,
            &json!({"model": MOCK, "input": "x", "tools": [{"type": "web_search_preview"}]}),
        )
        .await;
    let error = reply.assert_error(400, Some("tools[0].type"), None);
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("`web_search_preview`")));

    server
        .post_json(RESPONSES, &json!({"input": "x"}))
        .await
        .assert_error(400, Some("model"), Some("missing_required_parameter"));
    server
        .post_raw(RESPONSES, "{")
        .await
        .assert_error(400, None, Some("invalid_json"));
    // What chat refuses, after translation, is passed on as it is.
    server
        .post_json(RESPONSES, &json!({"model": "nope/nothing", "input": "x"}))
        .await
        .assert_error(404, Some("model"), Some("model_not_found"));
    let reply = server.get(RESPONSES).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), "POST");
    server.stop().await;
}

#[tokio::test]
async fn keys_are_checked_as_for_chat() {
    let server = TestServer::start().await;
    server
        .state
        .state_view
        .put(
            RecordId::new("alice").expect("id"),
            Record::AuthKey(common::auth_key("sk-alice-secret")),
        )
        .await
        .expect("key accepted");
    let body = json!({"model": MOCK, "input": "hi"});
    server
        .post_json(RESPONSES, &body)
        .await
        .assert_error(401, None, Some("invalid_api_key"));
    for header in [
        ("authorization", "Bearer sk-alice-secret"),
        ("x-api-key", "sk-alice-secret"),
    ] {
        let reply = send(
            server.addr,
            Method::POST,
            RESPONSES,
            &[("content-type", "application/json"), header],
            Bytes::from(body.to_string()),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    server.stop().await;
}

#[tokio::test]
async fn an_upstream_is_sent_chat_and_its_tool_calls_come_back_as_items() {
    let fake = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({
            "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                      "prompt_tokens_details": {"cached_tokens": 4}}
        }),
    )])
    .await;
    let server = upstream_gateway(&fake).await;
    let tool = json!({"type": "function", "name": "get_weather", "description": "Weather now",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                      "strict": false});
    let body = json!({
        "model": "up/m",
        "instructions": "Answer briefly.",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather where this was taken, and in Rome?"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"}
            ]},
            {"type": "function_call", "call_id": "call_0", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_0", "output": "-3 C"}
        ],
        "tools": [tool],
        "tool_choice": "required",
        "parallel_tool_calls": true,
        "max_output_tokens": 50,
        "temperature": 0.1,
        "text": {"format": {"type": "json_object"}},
        "store": false
    });
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = &fake.seen()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.body,
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather where this was taken, and in Rome?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}
                ]},
                {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_0", "content": "-3 C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": false}}],
            "tool_choice": "required",
            "parallel_tool_calls": true,
            "max_completion_tokens": 50,
            "temperature": 0.1,
            "response_format": {"type": "json_object"}
        })
    );
    let response = reply.json();
    let output = response["output"].as_array().expect("output");
    assert_eq!(
        output.len(),
        2,
        "no empty message beside the calls: {output:?}"
    );
    for (item, (call_id, city)) in output.iter().zip([("call_1", "Paris"), ("call_2", "Rome")]) {
        assert_eq!(item["type"], "function_call");
        assert_eq!(item["status"], "completed");
        assert_eq!(item["call_id"], call_id);
        assert_eq!(item["name"], "get_weather");
        assert_eq!(item["arguments"], format!("{{\"city\":\"{city}\"}}"));
    }
    assert_eq!(
        response["tools"],
        json!([tool]),
        "tools echoed in Responses shape"
    );
    assert_eq!(response["tool_choice"], "required");
    assert_eq!(
        response["usage"]["input_tokens_details"]["cached_tokens"],
        4
    );
    assert_eq!(response["usage"]["total_tokens"], 29);
    server.stop().await;
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

#[tokio::test]
async fn streamed_tool_calls_from_an_upstream_become_function_call_events() {
    let frames = vec![
        chunk(json!({"role": "assistant", "content": "Checking. "}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13}})
        ),
        "data: [DONE]\n\n".to_owned(),
    ];
    let fake = FakeUpstream::start(vec![Scripted::Sse(frames)]).await;
    let server = upstream_gateway(&fake).await;
    let body = json!({"model": "up/m", "input": "weather in Paris?", "stream": true,
                      "tools": [{"type": "function", "name": "get_weather", "parameters": {}}]});
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(fake.seen()[0].body["stream_options"]["include_usage"], true);
    let events = events(&reply.text());
    assert_eq!(
        types(&events)[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[8]["item"]["type"], "function_call");
    assert_eq!(events[8]["item"]["call_id"], "call_9");
    assert_eq!(events[8]["output_index"], 1);
    assert_eq!(events[11]["arguments"], "{\"city\":\"Paris\"}");
    let completed = &events[13]["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], "Checking. ");
    assert_eq!(completed["output"][1]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(completed["usage"]["total_tokens"], 13);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_response_failed() {
    let frames = vec![chunk(json!({"role": "assistant", "content": "par"}), None)];
    let fake = FakeUpstream::start(vec![Scripted::SseThenBreak(frames)]).await;
    let server = upstream_gateway(&fake).await;
    let body = json!({"model": "up/m", "input": "hi", "stream": true});
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200);
    let events = events(&reply.text());
    let kinds = types(&events);
    assert_eq!(kinds[kinds.len() - 2..], ["error", "response.failed"]);
    let failed = &events.last().expect("events")["response"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    server.stop().await;
}

#[tokio::test]
async fn an_upstream_error_keeps_its_status_and_shape() {
    let fake = FakeUpstream::start(vec![Scripted::Json(
        400,
        json!({"error": {"message": "bad schema for tool", "type": "invalid_request_error",
                         "param": "tools", "code": null}}),
    )])
    .await;
    let server = upstream_gateway(&fake).await;
    let reply = server
        .post_json(RESPONSES, &json!({"model": "up/m", "input": "hi"}))
        .await;
    let error = reply.assert_error(400, Some("tools"), None);
    assert_eq!(error["message"], "bad schema for tool");
    server.stop().await;
}

/// `claude/sonnet` on an Anthropic-kind provider at `fake`.
async fn anthropic_gateway(fake: &FakeUpstream) -> TestServer {
    let mut provider = common::openai_provider(fake.base_url(), 5_000, 0);
    provider.kind = ProviderKind::Anthropic;
    provider.api_key_env = Some("AURORA_PROVIDER_TEST_ANTHROPIC_KEY".into());
    let catalog = Catalog {
        providers: vec![Named::new("claude", provider)],
        models: vec![Named::new(
            "claude/sonnet",
            Model {
                upstream_model: "claude-sonnet-4-5".into(),
                ..common::model_record("claude/sonnet").record
            },
        )],
        routes: Vec::new(),
    };
    TestServer::start_with_env(
        move |c| c.gateway.catalog = catalog,
        &[("AURORA_PROVIDER_TEST_ANTHROPIC_KEY", "sk-ant-test")],
    )
    .await
}

#[tokio::test]
async fn an_anthropic_upstream_answers_through_chat_both_ways() {
    let fake = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Bonjour"},
                        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 30, "output_tokens": 9}
        }),
    )])
    .await;
    let server = anthropic_gateway(&fake).await;
    let body = json!({"model": "claude/sonnet", "instructions": "Answer in French.", "input": "Hello",
                      "tools": [{"type": "function", "name": "lookup",
                                 "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]});
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = &fake.seen()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["system"], "Answer in French.");
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": "Hello"}])
    );
    assert_eq!(seen.body["tools"][0]["name"], "lookup");
    let response = reply.json();
    assert_eq!(response["output"][0]["content"][0]["text"], "Bonjour");
    assert_eq!(response["output"][1]["type"], "function_call");
    assert_eq!(response["output"][1]["call_id"], "toolu_1");
    assert_eq!(response["output"][1]["name"], "lookup");
    let arguments: Value = serde_json::from_str(
        response["output"][1]["arguments"]
            .as_str()
            .expect("arguments"),
    )
    .expect("arguments are JSON");
    assert_eq!(arguments, json!({"q": "x"}));
    assert_eq!(response["usage"]["output_tokens"], 9);
    server.stop().await;
}

#[tokio::test]
async fn a_route_falls_back_and_tokens_are_counted_as_for_chat() {
    let failing = FakeUpstream::start(vec![Scripted::Json(
        500,
        json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
    )])
    .await;
    let working = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({"id": "chatcmpl-b", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "from b"}}],
               "usage": {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}}),
    )])
    .await;
    let catalog = Catalog {
        providers: vec![
            Named::new("a", common::openai_provider(failing.base_url(), 5_000, 0)),
            Named::new("b", common::openai_provider(working.base_url(), 5_000, 0)),
        ],
        models: vec![common::model_record("a/m"), common::model_record("b/m")],
        routes: vec![Named::new(
            "r",
            Route {
                targets: vec![RouteTarget {
                    model_id: RecordId::new("a/m").expect("id"),
                    weight: 1,
                }],
                fallbacks: vec![RecordId::new("b/m").expect("id")],
                retries: 0,
            },
        )],
    };
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let reply = server
        .post_json(RESPONSES, &json!({"model": "r", "input": "hi"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["output"][0]["content"][0]["text"], "from b");
    assert_eq!(
        reply.json()["model"],
        "r",
        "the model as the client named it"
    );
    assert_eq!((failing.hits(), working.hits()), (1, 1));
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_tokens_total{model=\"r\",direction=\"output\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stream_past_its_maximum_duration_ends_with_response_failed() {
    let server = TestServer::start_with(|c| {
        c.gateway.limits = aurora_gateway::http::limits::Limits {
            stream_max_duration_ms: 300,
            ..Default::default()
        }
    })
    .await;
    // 16 chunks 100 ms apart would take 1.6 s.
    let body = json!({"model": "mock/gpt-4o-mini?chunk_ms=100", "input": "hi", "stream": true});
    let reply = server.post_json(RESPONSES, &body).await;
    assert_eq!(reply.status, 200);
    let events = events(&reply.text());
    let kinds = types(&events);
    assert_eq!(kinds[kinds.len() - 2..], ["error", "response.failed"]);
    let error = &events[events.len() - 2];
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum duration")),
        "{error}"
    );
    assert!(!kinds.contains(&"response.completed"));
    assert_eq!(server.state.metrics.limit_count("stream_duration"), 1);
    server.stop().await;
}

/// Starts a streamed `/v1/responses` request on a raw connection, reads until `events`
/// events arrived, then closes the connection (the client goes away).
async fn stream_then_leave(server: &TestServer, body: &Value, events: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let body = body.to_string();
    let head = format!(
        "POST {RESPONSES} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while String::from_utf8_lossy(&seen).matches("data: ").count() < events {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "stream ended early");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("first events within 10 s");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn the_usage_log_has_the_answer_and_a_client_that_left_mid_stream() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = aurora_gateway::usage::UsageLog::open(&dir.path().join("usage.db"), "node-test")
        .expect("usage log");
    server.state.policy.attach_usage_log(log);
    let log = server.state.policy.usage_log().expect("attached");

    let plain = server
        .post_json(RESPONSES, &json!({"model": MOCK, "input": "hello there"}))
        .await
        .json();
    assert!(log.flush(std::time::Duration::from_secs(5)));
    let rows = log.query(&Default::default()).expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 200);
    assert_eq!(rows[0].model, MOCK);
    assert_eq!(json!(rows[0].prompt_tokens), plain["usage"]["input_tokens"]);
    assert_eq!(
        json!(rows[0].completion_tokens),
        plain["usage"]["output_tokens"]
    );

    // 200 words, one every 20 ms: about 4 s if read to the end.
    let body = json!({"model": format!("{MOCK}?chunk_ms=20&tokens=200"), "input": "hello there",
                      "stream": true});
    stream_then_leave(&server, &body, 6).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rows = loop {
        assert!(log.flush(std::time::Duration::from_secs(5)));
        let rows = log.query(&Default::default()).expect("rows");
        if rows.len() == 2 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "the stream is settled once the client left");
    let left = rows
        .iter()
        .find(|r| r.status != 200)
        .expect("the stream's row");
    assert_eq!(left.status, 499, "charged as a client that went away");
    assert!(left.completion_tokens < 150, "{left:?}");
    server.stop().await;
}

/// Chat forwards it (it is a chat completion); it holds no answer to translate.
#[tokio::test]
async fn a_chat_completion_without_a_choice_is_a_502() {
    let fake = FakeUpstream::start(vec![Scripted::Json(
        200,
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": []}),
    )])
    .await;
    let server = upstream_gateway(&fake).await;
    let reply = server
        .post_json(RESPONSES, &json!({"model": "up/m", "input": "hi"}))
        .await;
    reply.assert_error(502, None, Some("upstream_invalid_response"));
    server.stop().await;
}
