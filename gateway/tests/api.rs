//! The OpenAI-compatible API over real HTTP: `/v1/chat/completions` (plain, streamed,
//! every error status) and `/v1/models`.

mod common;

use common::{chat, raw_status, sse_data, TestServer};
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn chat_completion_has_openai_shape() {
    let server = TestServer::start().await;
    let reply = server
        .post_json(CHAT, &chat("mock/gpt-4o-mini", "Hello, Aurora!"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "application/json");
    let v = reply.json();
    assert!(v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(v["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
    let usage = &v["usage"];
    assert_eq!(usage["completion_tokens"], 16, "the default length");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + 16)
    );
    insta::assert_json_snapshot!("chat_completion", v, {".id" => "[id]", ".created" => "[created]"});
    server.stop().await;
}

#[tokio::test]
async fn same_request_same_answer_and_ids_differ() {
    let server = TestServer::start().await;
    let body = chat("mock/gpt-4o?tokens=40", "determinism");
    let a = server.post_json(CHAT, &body).await.json();
    let b = server.post_json(CHAT, &body).await.json();
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"]["completion_tokens"], 40);
    assert_ne!(a["id"], b["id"]);
    server.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_accepted_and_echo_echoes() {
    let server = TestServer::start().await;
    let body = json!({
        "model": "mock/echo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "ping pong"}], "name": "ann"}
        ],
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "x_vendor_option": {"anything": [1, 2, 3]}
    });
    let v = server.post_json(CHAT, &body).await.json();
    assert_eq!(v["model"], "mock/echo");
    assert_eq!(v["choices"][0]["message"]["content"], "ping pong");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // "be brief" = 1 + 2 tokens, "ping pong" = 1 + 1 (4-chars-per-token rule).
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    );
    server.stop().await;
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_length() {
    let server = TestServer::start().await;
    let mut body = chat("mock/gpt-4o-mini", "long please");
    body["max_tokens"] = json!(5);
    let v = server.post_json(CHAT, &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let words = v["choices"][0]["message"]["content"]
        .as_str()
        .map(|s| s.split(' ').count());
    assert_eq!(words, Some(5));
    server.stop().await;
}

fn chunks(reply: &common::Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn streaming_matches_the_plain_answer_and_has_no_usage_unless_asked() {
    let server = TestServer::start().await;
    let body = chat("mock/gpt-4o-mini?tokens=6", "stream me");
    let plain = server.post_json(CHAT, &body).await.json();

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = chunks(&server.post_json(CHAT, &streamed).await);
    assert_eq!(
        streamed_text(&chunks),
        plain["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("?")
    );
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id, "one id per stream");
        assert!(c.get("usage").is_none(), "no usage unless asked: {c}");
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    insta::assert_json_snapshot!("stream_chunks", chunks, {"[].id" => "[id]", "[].created" => "[created]"});
    server.stop().await;
}

#[tokio::test]
async fn streaming_with_include_usage_ends_with_a_usage_chunk() {
    let server = TestServer::start().await;
    let mut body = chat("mock/echo", "count these words");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = chunks(&server.post_json(CHAT, &body).await);
    let (last, rest) = chunks.split_last().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        // count(5 chars) = 2, these = 2, words = 2.
        json!({"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12})
    );
    for c in rest {
        assert!(c["usage"].is_null() && c.get("usage").is_some(), "{c}");
    }
    assert_eq!(streamed_text(rest), "count these words");
    server.stop().await;
}

#[tokio::test]
async fn bad_json_is_400() {
    let server = TestServer::start().await;
    let error =
        server
            .post_raw(CHAT, "{\"model\": ")
            .await
            .assert_error(400, None, Some("invalid_json"));
    assert_eq!(error["type"], "invalid_request_error");
    server
        .post_raw(CHAT, "[1, 2]")
        .await
        .assert_error(400, None, Some("invalid_json"));
    server.stop().await;
}

#[tokio::test]
async fn missing_fields_are_400_naming_the_field() {
    let server = TestServer::start().await;
    let reply = server.post_json(CHAT, &json!({"model": "mock/echo"})).await;
    reply.assert_error(400, Some("messages"), Some("missing_required_parameter"));
    insta::assert_json_snapshot!("error_missing_messages", reply.json());
    server
        .post_json(
            CHAT,
            &json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .assert_error(400, Some("model"), Some("missing_required_parameter"));
    server
        .post_json(
            CHAT,
            &json!({"model": "mock/echo", "messages": [{"content": "x"}]}),
        )
        .await
        .assert_error(400, Some("messages[0].role"), Some("invalid_type"));
    server
        .post_json(CHAT, &json!({"model": "mock/echo", "messages": "hi"}))
        .await
        .assert_error(400, Some("messages"), Some("invalid_type"));
    server
        .post_json(CHAT, &json!({"model": "mock/echo", "messages": []}))
        .await
        .assert_error(400, Some("messages"), None);
    server
        .post_json(CHAT, &chat("mock/echo?tokens=zero", "x"))
        .await
        .assert_error(400, Some("model"), None);
    server.stop().await;
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let server = TestServer::start().await;
    let reply = server.post_json(CHAT, &chat("openai/gpt-5", "hi")).await;
    reply.assert_error(404, Some("model"), Some("model_not_found"));
    insta::assert_json_snapshot!("error_model_not_found", reply.json());
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_declared_or_chunked() {
    let server = TestServer::start_with(|c| c.gateway.max_body_bytes = 1024).await;
    let big = chat("mock/echo", &"x".repeat(2000));
    server
        .post_json(CHAT, &big)
        .await
        .assert_error(413, None, Some("request_too_large"));

    // Chunked: no Content-Length, so the limit must cut the stream itself.
    let chunk = "y".repeat(800);
    let raw = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let (status, text) = raw_status(server.addr, raw.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("request_too_large"));

    // A body under the limit still works.
    let small = server.post_json(CHAT, &chat("mock/echo", "small")).await;
    assert_eq!(small.status, 200, "{}", small.text());
    server.stop().await;
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_404() {
    let server = TestServer::start().await;
    let reply = server.get(CHAT).await;
    reply.assert_error(405, None, Some("method_not_allowed"));
    assert_eq!(reply.header("allow"), "POST");
    let reply = server.post_raw("/v1/models", "{}").await;
    reply.assert_error(405, None, Some("method_not_allowed"));
    assert_eq!(reply.header("allow"), "GET");
    let reply = server.get("/v1/nothing-here").await;
    reply.assert_error(404, None, Some("unknown_url"));
    insta::assert_json_snapshot!("error_unknown_url", reply.json());
    server.stop().await;
}

#[tokio::test]
async fn models_are_listed_in_openai_shape() {
    let server = TestServer::start().await;
    let reply = server.get("/v1/models").await;
    assert_eq!(reply.status, 200);
    let v = reply.json();
    insta::assert_json_snapshot!("models", v);
    // Every listed model answers a completion.
    for model in v["data"].as_array().into_iter().flatten() {
        let id = model["id"].as_str().unwrap_or_default();
        let r = server.post_json(CHAT, &chat(id, "hi")).await;
        assert_eq!(r.status, 200, "{id}: {}", r.text());
    }
    let one = server.get("/v1/models/mock/echo").await;
    assert_eq!(one.json()["id"], "mock/echo");
    server.get("/v1/models/mock/nope").await.assert_error(
        404,
        Some("model"),
        Some("model_not_found"),
    );
    server.stop().await;
}
