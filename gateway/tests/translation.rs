//! Tools, tool choice, parallel tool calls, JSON mode and images over real HTTP, against
//! a local fake upstream that records what it was sent: passed through unchanged to an
//! OpenAI-compatible upstream (request and answer), translated both ways for an
//! Anthropic upstream (request, plain answer and the streamed tool-call deltas).

mod common;

use aurora_gateway::catalog::{Catalog, Named};
use aurora_schema::{Model, Provider, ProviderKind};
use common::fake::{FakeUpstream, Reply};
use common::{sse_data, TestServer};
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";

/// One provider `p` of `kind` at `fake`, with one model `p/m` sent upstream as `up-m`.
async fn gateway(kind: ProviderKind, fake: &FakeUpstream) -> TestServer {
    let catalog = Catalog {
        providers: vec![Named::new(
            "p",
            Provider {
                kind,
                base_url: fake.base_url(),
                api_key_env: None,
                timeout_ms: 5_000,
                max_retries: 0,
                cooldown_ms: 0,
            },
        )],
        models: vec![Named::new(
            "p/m",
            Model {
                upstream_model: "up-m".into(),
                ..common::model_record("p/m").record
            },
        )],
        routes: Vec::new(),
    };
    TestServer::start_with(move |c| c.gateway.catalog = catalog).await
}

/// A request using every option that must reach an OpenAI-compatible upstream as sent:
/// two tools, a forced tool choice, parallel calls, a JSON schema answer format, an
/// image part (URL and data URL), an earlier assistant tool call and its result, and
/// fields Aurora has never heard of.
fn rich_request() -> Value {
    json!({
        "model": "p/m",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these pictures, and the weather?"},
                {"type": "image_url", "image_url": {"url": "https://example.test/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"c\": -3}"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Weather now",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}, "strict": true}},
            {"type": "function", "function": {"name": "time",
             "parameters": {"type": "object", "properties": {}}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": true,
            "schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
        "temperature": 0.25,
        "seed": 7,
        "logit_bias": {"50256": -100},
        "x_vendor": {"nested": [1, 2.5, null]}
    })
}

/// An answer with two parallel tool calls and fields of OpenAI's that Aurora does not
/// model (`system_fingerprint`, `service_tier`, token details).
fn tool_call_answer() -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1_700_000_000,
        "model": "up-m-2025", "system_fingerprint": "fp_1", "service_tier": "default",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "time", "arguments": "{}"}}
            ]}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}}
    })
}

#[tokio::test]
async fn openai_upstream_gets_tools_images_and_json_mode_unchanged_and_its_answer_is_forwarded_byte_for_byte(
) {
    let answer = tool_call_answer();
    let fake = FakeUpstream::start(vec![Reply::Json(200, answer.clone())]).await;
    let server = gateway(ProviderKind::OpenAiCompatible, &fake).await;
    let sent = rich_request();
    let reply = server.post_json(CHAT, &sent).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The fake serializes its answer with serde_json; the client gets those bytes.
    assert_eq!(reply.text(), answer.to_string());

    let seen = &fake.seen()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    let mut expected = sent;
    expected["model"] = json!("up-m");
    assert_eq!(
        seen.body, expected,
        "only the model may change on the way out"
    );
    server.stop().await;
}

#[tokio::test]
async fn openai_upstream_streamed_tool_call_deltas_reach_the_client_unchanged() {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1,
               "model": "up-m", "system_fingerprint": "fp_1",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let chunks = [
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                   "function": {"name": "weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                   "function": {"name": "time", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ];
    let usage = json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1,
        "model": "up-m", "choices": [],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}});
    let mut frames: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    frames.push(format!("data: {usage}\n\n"));
    frames.push("data: [DONE]\n\n".into());
    let fake = FakeUpstream::start(vec![Reply::Sse(frames)]).await;
    let server = gateway(ProviderKind::OpenAiCompatible, &fake).await;
    let mut sent = rich_request();
    sent["stream"] = json!(true);
    sent["stream_options"] = json!({"include_usage": true});
    let reply = server.post_json(CHAT, &sent).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = sse_data(&reply.text());
    let mut expected: Vec<String> = chunks.iter().map(Value::to_string).collect();
    expected.push(usage.to_string());
    expected.push("[DONE]".into());
    assert_eq!(
        data, expected,
        "every event forwarded as the upstream sent it"
    );

    let mut expected_body = sent;
    expected_body["model"] = json!("up-m");
    assert_eq!(fake.seen()[0].body, expected_body);
    server.stop().await;
}

#[tokio::test]
async fn anthropic_upstream_gets_tools_and_images_translated_and_its_tool_use_comes_back_as_tool_calls(
) {
    let fake = FakeUpstream::start(vec![Reply::Json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "up-m",
            "content": [{"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Oslo"}},
                        {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 20}
        }),
    )])
    .await;
    let server = gateway(ProviderKind::Anthropic, &fake).await;
    let mut sent = rich_request();
    sent["tool_choice"] = json!("required");
    let reply = server.post_json(CHAT, &sent).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let seen = &fake.seen()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.body,
        json!({
            "model": "up-m", "max_tokens": 4096, "system": "You are terse.", "temperature": 0.25,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"c\": -3}"}
                ]}
            ],
            "tools": [
                {"name": "weather", "description": "Weather now",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}},
                {"name": "time", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any"}
        })
    );

    let answer = reply.json();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([
            {"id": "toolu_a", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "toolu_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
        ])
    );
    assert_eq!(answer["usage"]["prompt_tokens"], 30);
    assert_eq!(answer["usage"]["completion_tokens"], 20);
    server.stop().await;
}

#[tokio::test]
async fn anthropic_streamed_tool_use_becomes_openai_tool_call_deltas() {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let frames = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_2", "type": "message",
                "role": "assistant", "model": "up-m", "content": [], "stop_reason": null,
                "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "Checking."}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block":
                   {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {}}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block":
                   {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                   "stop_sequence": null}, "usage": {"output_tokens": 20}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ];
    let fake = FakeUpstream::start(vec![Reply::Sse(frames)]).await;
    let server = gateway(ProviderKind::Anthropic, &fake).await;
    let mut sent = rich_request();
    sent["stream"] = json!(true);
    sent["stream_options"] = json!({"include_usage": true});
    let reply = server.post_json(CHAT, &sent).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(fake.seen()[0].body["stream"], true);

    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    // Assemble what a client assembles: text, then each call by its index.
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for chunk in &chunks {
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = usize::try_from(call["index"].as_u64().expect("index")).expect("small");
            if index == calls.len() {
                calls.push(Default::default());
            }
            let entry = &mut calls[index];
            if let Some(id) = call["id"].as_str() {
                entry.0 = id.to_owned();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                entry.1 = name.to_owned();
            }
            entry.2 += call["function"]["arguments"].as_str().unwrap_or("");
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(text, "Checking.");
    assert_eq!(
        calls,
        vec![
            (
                "toolu_a".into(),
                "weather".into(),
                "{\"city\":\"Oslo\"}".into()
            ),
            ("toolu_b".into(), "time".into(), "{}".into()),
        ]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert_eq!(usage["prompt_tokens"], 30);
    assert_eq!(usage["completion_tokens"], 20);
    server.stop().await;
}

/// A plain answer rewritten into another dialect keeps the request's share of the
/// buffered-upstream pool until the rewrite is written (here: until the response is
/// dropped unread), as a chat answer does.
#[tokio::test]
async fn rewritten_plain_answers_keep_their_upstream_buffer_share_until_written() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, tool_call_answer())]).await;
    let server = gateway(ProviderKind::OpenAiCompatible, &fake).await;
    let pool = &server.state.upstreams.buffered;
    let post = |path: &str, body: Value| {
        http::Request::post(path)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request")
    };
    let state = &server.state;
    use aurora_gateway::openai::{completions, messages, responses};
    let check = |what: &str, answer: aurora_gateway::http::body::Response| {
        assert_eq!(answer.status(), 200, "{what}");
        assert!(
            pool.used() > 0,
            "{what}: the share is held while the answer is unwritten"
        );
        drop(answer);
        assert_eq!(pool.used(), 0, "{what}: released once the answer is gone");
    };
    let body = json!({"model": "p/m", "input": "hi"});
    check(
        "responses",
        responses::handle(state, post("/v1/responses", body)).await,
    );
    let body = json!({"model": "p/m", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    check(
        "messages",
        messages::handle(state, post("/v1/messages", body)).await,
    );
    let body = json!({"model": "p/m", "prompt": "hi"});
    check(
        "completions",
        completions::handle(state, post("/v1/completions", body)).await,
    );
    server.stop().await;
}
