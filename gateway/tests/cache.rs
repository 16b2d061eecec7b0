//! The response cache on one node, over real HTTP against a fake upstream that counts
//! what it was sent: opt-in by header, model and key; `cache-control: no-cache`; plain
//! and streamed answers; what is never stored; identical requests in flight coalesced
//! into one upstream call; a hit logged at zero cost. (Across nodes:
//! `cache_cluster.rs`.)

mod common;

use std::time::Duration;

use aurora_gateway::usage::{Filter, UsageLog};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply};
use common::{send, TestServer};
use http::Method;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const MODEL: &str = "up/m";

fn answer(text: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
}

async fn gateway(
    fake: &FakeUpstream,
    tweak: impl FnOnce(&mut aurora_gateway::cache::CacheSettings),
) -> TestServer {
    let catalog = common::one_model_catalog(fake.base_url(), 0);
    TestServer::start_with(move |c| {
        c.gateway.catalog = catalog;
        tweak(&mut c.gateway.cache);
    })
    .await
}

async fn ask(server: &TestServer, body: &Value, headers: &[(&str, &str)]) -> common::Reply {
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

const USE: [(&str, &str); 1] = [("x-aurora-cache", "use")];

#[tokio::test]
async fn a_request_that_asks_for_the_cache_is_answered_from_it_the_second_time() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, answer("cached words"))]).await;
    let server = gateway(&fake, |_| {}).await;
    let body = common::chat(MODEL, "hello");
    let first = ask(&server, &body, &USE).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-aurora-cache"), "miss");
    let second = ask(&server, &body, &USE).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-aurora-cache"), "hit");
    assert_eq!(second.header("content-type"), "application/json");
    assert_eq!(
        second.body, first.body,
        "the hit is the first answer, byte for byte"
    );
    assert_eq!(fake.hits(), 1, "one upstream call");
    // Field order and the caller's `user` do not matter; the prompt does.
    let reordered = json!({"user": "someone", "messages": [{"content": "hello", "role": "user"}], "model": MODEL});
    assert_eq!(
        ask(&server, &reordered, &USE)
            .await
            .header("x-aurora-cache"),
        "hit"
    );
    let other = ask(&server, &common::chat(MODEL, "hello!"), &USE).await;
    assert_eq!(other.header("x-aurora-cache"), "miss");
    assert_eq!(fake.hits(), 2);
    // Without the header the cache is not used at all: no header, an upstream call.
    let plain = ask(&server, &body, &[]).await;
    assert_eq!(plain.header("x-aurora-cache"), "");
    assert_eq!(fake.hits(), 3);
    // `cache-control: no-cache` wins over `x-aurora-cache: use`.
    let skip = ask(
        &server,
        &body,
        &[("x-aurora-cache", "use"), ("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(skip.header("x-aurora-cache"), "");
    assert_eq!(fake.hits(), 4);
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_cache_lookups_total{result=\"hit\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aurora_cache_lookups_total{result=\"miss\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("aurora_cache_entries 2"), "{metrics}");
}

#[tokio::test]
async fn a_model_listed_in_the_settings_is_cached_without_the_header() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, answer("x"))]).await;
    let server = gateway(&fake, |c| c.models = vec![MODEL.into()]).await;
    let body = common::chat(MODEL, "hi");
    assert_eq!(
        ask(&server, &body, &[]).await.header("x-aurora-cache"),
        "miss"
    );
    assert_eq!(
        ask(&server, &body, &[]).await.header("x-aurora-cache"),
        "hit"
    );
    assert_eq!(
        ask(&server, &body, &[("x-aurora-cache", "skip")])
            .await
            .header("x-aurora-cache"),
        ""
    );
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_whole_and_a_plain_one_is_kept_apart() {
    let frames = vec![
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_owned(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ];
    let fake =
        FakeUpstream::start(vec![Reply::Sse(frames), Reply::Json(200, answer("plain"))]).await;
    let server = gateway(&fake, |_| {}).await;
    let mut body = common::chat(MODEL, "stream please");
    body["stream"] = json!(true);
    let first = ask(&server, &body, &USE).await;
    assert_eq!(first.header("x-aurora-cache"), "miss");
    assert!(
        first.text().ends_with("data: [DONE]\n\n"),
        "{}",
        first.text()
    );
    let second = ask(&server, &body, &USE).await;
    assert_eq!(second.header("x-aurora-cache"), "hit");
    assert_eq!(second.header("content-type"), "text/event-stream");
    assert_eq!(second.body, first.body);
    assert_eq!(fake.hits(), 1);
    // The same prompt unstreamed is another answer.
    body["stream"] = json!(false);
    let plain = ask(&server, &body, &USE).await;
    assert_eq!(plain.header("x-aurora-cache"), "miss");
    assert_eq!(plain.json()["choices"][0]["message"]["content"], "plain");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn tool_calls_errors_and_broken_streams_are_not_stored() {
    let tool = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]});
    let fake = FakeUpstream::start(vec![Reply::Json(200, tool)]).await;
    let server = gateway(&fake, |_| {}).await;
    let body = common::chat(MODEL, "call a tool");
    for _ in 0..2 {
        let r = ask(&server, &body, &USE).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-aurora-cache"), "miss");
    }
    assert_eq!(fake.hits(), 2, "a tool call is not stored");

    let fake = FakeUpstream::start(vec![Reply::Json(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    )])
    .await;
    let server = gateway(&fake, |_| {}).await;
    for _ in 0..2 {
        assert_eq!(ask(&server, &body, &USE).await.status, 400);
    }
    assert_eq!(fake.hits(), 2, "an error is not stored");

    let fake = FakeUpstream::start(vec![Reply::Json(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    )])
    .await;
    let server = gateway(&fake, |c| c.store_errors = true).await;
    assert_eq!(
        ask(&server, &body, &USE).await.header("x-aurora-cache"),
        "miss"
    );
    let again = ask(&server, &body, &USE).await;
    assert_eq!(
        (again.status.as_u16(), again.header("x-aurora-cache")),
        (400, "hit")
    );
    assert_eq!(fake.hits(), 1, "with store_errors a client error is stored");

    let cut = vec!["data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_owned()];
    let fake = FakeUpstream::start(vec![Reply::SseThenBreak(cut)]).await;
    let server = gateway(&fake, |_| {}).await;
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    for _ in 0..2 {
        assert_eq!(
            ask(&server, &stream, &USE).await.header("x-aurora-cache"),
            "miss"
        );
    }
    assert_eq!(fake.hits(), 2, "a broken stream is not stored");
}

#[tokio::test]
async fn identical_requests_in_flight_make_one_upstream_call() {
    let slow = Reply::Slow(
        Duration::from_millis(400),
        Box::new(Reply::Json(200, answer("once"))),
    );
    let fake = FakeUpstream::start(vec![slow]).await;
    let server = gateway(&fake, |_| {}).await;
    let body = common::chat(MODEL, "everyone at once");
    let replies = all_at_once(&server, 40, &body).await;
    assert_eq!(fake.hits(), 1, "40 identical requests, one upstream call");
    let misses = replies
        .iter()
        .filter(|r| r.header("x-aurora-cache") == "miss")
        .count();
    assert_eq!(misses, 1);
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, replies[0].body);
    }
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("aurora_cache_coalesced_total 39"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_fill_that_is_not_stored_releases_its_waiters_to_call_on_their_own() {
    let slow_error = Reply::Slow(
        Duration::from_millis(300),
        Box::new(Reply::Json(
            400,
            json!({"error": {"message": "no", "type": "invalid_request_error"}}),
        )),
    );
    let fake = FakeUpstream::start(vec![slow_error, Reply::Json(200, answer("fine"))]).await;
    let server = gateway(&fake, |_| {}).await;
    let body = common::chat(MODEL, "unlucky");
    let replies = all_at_once(&server, 5, &body).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert!(replies.iter().all(|r| r.header("x-aurora-cache") == "miss"));
    // The first one's 400 was not stored; the others each asked (no waiting on nobody).
    assert!(fake.hits() >= 2 && fake.hits() <= 5, "{}", fake.hits());
}

#[tokio::test]
async fn a_hit_costs_nothing_and_is_logged_as_a_hit() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, answer("worth money"))]).await;
    let server = gateway(&fake, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = UsageLog::open(&dir.path().join("usage.db"), "node-test").expect("usage log");
    server.state.policy.attach_usage_log(log);
    let usd = aurora_schema::Money::from_usd(1).expect("usd");
    server
        .state
        .state_view
        .put(
            aurora_schema::RecordId::new(MODEL).expect("id"),
            aurora_schema::Record::Pricing(aurora_schema::Pricing {
                input_per_million: usd,
                output_per_million: usd,
                cached_input_per_million: None,
            }),
        )
        .await
        .expect("pricing");
    let body = common::chat(MODEL, "what does it cost");
    assert_eq!(
        ask(&server, &body, &USE).await.header("x-aurora-cache"),
        "miss"
    );
    assert_eq!(
        ask(&server, &body, &USE).await.header("x-aurora-cache"),
        "hit"
    );
    let log = server.state.policy.usage_log().expect("log");
    assert!(log.flush(Duration::from_secs(5)));
    let rows = log
        .query(&Filter {
            since_ms: 0,
            until_ms: u64::MAX / 2,
            key: None,
            model: None,
            limit: 10,
        })
        .expect("query");
    assert_eq!(rows.len(), 2);
    let (hit, miss) = (&rows[0], &rows[1]);
    assert_eq!(hit.cache, Some(aurora_gateway::cache::CacheUse::Hit));
    assert_eq!(
        (hit.cost_nanos, hit.prompt_tokens, hit.completion_tokens),
        (0, 0, 0)
    );
    assert_eq!(hit.status, 200);
    assert_eq!(miss.cache, Some(aurora_gateway::cache::CacheUse::Miss));
    assert_eq!(miss.cost_nanos, 7_000, "7 tokens at 1 USD per million");
}

/// `n` copies of `body` with `x-aurora-cache: use`, sent at once on their own
/// connections; the replies in the order they came.
async fn all_at_once(server: &TestServer, n: usize, body: &Value) -> Vec<common::Reply> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (addr, body) = (server.addr, Bytes::from(body.to_string()));
        set.spawn(async move {
            let headers = [("content-type", "application/json"), USE[0]];
            send(addr, Method::POST, CHAT, &headers, body).await
        });
    }
    set.join_all().await
}

async fn put_key(server: &TestServer, id: &str, secret: &str) {
    server
        .state
        .state_view
        .put(
            aurora_schema::RecordId::new(id).expect("id"),
            aurora_schema::Record::AuthKey(common::auth_key(secret)),
        )
        .await
        .expect("key");
}

async fn ask_as(
    server: &TestServer,
    secret: &str,
    body: &Value,
    cache: &[(&str, &str)],
) -> common::Reply {
    let auth = format!("Bearer {secret}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(cache);
    ask(server, body, &headers).await
}

#[tokio::test]
async fn one_key_never_gets_another_keys_answer_unless_the_scope_is_shared() {
    let fake = FakeUpstream::start(vec![Reply::Json(200, answer("mine"))]).await;
    let server = gateway(&fake, |c| c.keys = vec!["alice".into()]).await;
    put_key(&server, "alice", "sk-alice").await;
    put_key(&server, "bob", "sk-bob").await;
    let body = common::chat(MODEL, "same words");
    // alice is listed: cached without the header; bob asks with it.
    assert_eq!(
        ask_as(&server, "sk-alice", &body, &[])
            .await
            .header("x-aurora-cache"),
        "miss"
    );
    assert_eq!(
        ask_as(&server, "sk-alice", &body, &[])
            .await
            .header("x-aurora-cache"),
        "hit"
    );
    assert_eq!(
        ask_as(&server, "sk-bob", &body, &[])
            .await
            .header("x-aurora-cache"),
        ""
    );
    assert_eq!(
        ask_as(&server, "sk-bob", &body, &USE)
            .await
            .header("x-aurora-cache"),
        "miss"
    );
    assert_eq!(fake.hits(), 3, "bob's first cached request is his own miss");

    let fake = FakeUpstream::start(vec![Reply::Json(200, answer("ours"))]).await;
    let server = gateway(&fake, |c| c.scope = aurora_gateway::cache::Scope::Shared).await;
    put_key(&server, "alice", "sk-alice").await;
    put_key(&server, "bob", "sk-bob").await;
    assert_eq!(
        ask_as(&server, "sk-alice", &body, &USE)
            .await
            .header("x-aurora-cache"),
        "miss"
    );
    assert_eq!(
        ask_as(&server, "sk-bob", &body, &USE)
            .await
            .header("x-aurora-cache"),
        "hit"
    );
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn every_endpoint_goes_through_the_cache_and_a_hit_is_in_its_own_dialect() {
    let server = TestServer::start().await;
    let mock = "mock/gpt-4o-mini";
    let cases = [
        (
            "/v1/embeddings",
            json!({"model": mock, "input": ["a", "b"]}),
        ),
        (
            "/v1/completions",
            json!({"model": mock, "prompt": "once upon"}),
        ),
        ("/v1/responses", json!({"model": mock, "input": "tell me"})),
        (
            "/v1/responses",
            json!({"model": mock, "input": "tell me", "stream": true}),
        ),
        (
            "/v1/messages",
            json!({"model": mock, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": mock, "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (path, body) in cases {
        let post = || {
            send(
                server.addr,
                Method::POST,
                path,
                &[("content-type", "application/json"), USE[0]],
                Bytes::from(body.to_string()),
            )
        };
        let first = post().await;
        assert_eq!(first.status, 200, "{path}: {}", first.text());
        assert_eq!(first.header("x-aurora-cache"), "miss", "{path} {body}");
        let second = post().await;
        assert_eq!(second.header("x-aurora-cache"), "hit", "{path} {body}");
        assert_eq!(
            second.header("content-type"),
            first.header("content-type"),
            "{path}"
        );
        // The same answer, in the endpoint's dialect (a Responses or Messages answer is
        // rewritten from the stored chat answer, so only its generated ids may differ).
        let strip_ids = |text: String| -> String {
            text.split('"')
                .filter(|part| {
                    !part.starts_with("resp_")
                        && !part.starts_with("msg_")
                        && !part.starts_with("item_")
                })
                .collect()
        };
        assert_eq!(
            strip_ids(second.text()),
            strip_ids(first.text()),
            "{path} {body}"
        );
    }
}

#[tokio::test]
async fn an_anthropic_answer_passed_through_is_replayed_as_it_was_and_never_to_chat() {
    use aurora_gateway::catalog::{Catalog, Named};
    let native = json!({
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Native words."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 3}
    });
    let frame = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let stream = vec![
        frame(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "usage": {"input_tokens": 12, "output_tokens": 0}}}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Streamed."}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        frame(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        ),
        frame("message_stop", json!({"type": "message_stop"})),
    ];
    let fake =
        FakeUpstream::start(vec![Reply::Json(200, native.clone()), Reply::Sse(stream)]).await;
    let provider = aurora_schema::Provider {
        kind: aurora_schema::ProviderKind::Anthropic,
        ..common::openai_provider(fake.base_url(), 5_000, 0)
    };
    let catalog = Catalog {
        providers: vec![Named::new("claude", provider)],
        models: vec![common::model_record("claude/c")],
        routes: Vec::new(),
    };
    let server = TestServer::start_with(move |c| c.gateway.catalog = catalog).await;
    let post = |path: &'static str, body: Value| {
        let addr = server.addr;
        async move {
            let headers = [("content-type", "application/json"), USE[0]];
            send(
                addr,
                Method::POST,
                path,
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
        }
    };
    let messages = json!({"model": "claude/c", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 64},
                          "messages": [{"role": "user", "content": "hello"}]});
    let first = post("/v1/messages", messages.clone()).await;
    assert_eq!(
        (first.status.as_u16(), first.header("x-aurora-cache")),
        (200, "miss"),
        "{}",
        first.text()
    );
    assert_eq!(first.json(), native);
    let again = post("/v1/messages", messages.clone()).await;
    assert_eq!(again.header("x-aurora-cache"), "hit");
    assert_eq!(
        again.json(),
        native,
        "the native answer, not translated to chat and back"
    );
    assert_eq!(fake.hits(), 1);

    let mut streamed = messages.clone();
    streamed["stream"] = json!(true);
    let first = post("/v1/messages", streamed.clone()).await;
    assert_eq!(first.header("x-aurora-cache"), "miss", "{}", first.text());
    let again = post("/v1/messages", streamed).await;
    assert_eq!(again.header("x-aurora-cache"), "hit");
    assert_eq!(again.body, first.body, "the native event stream, replayed");
    assert_eq!(fake.hits(), 2);

    // The same conversation on chat is another key: it never gets a Messages body.
    let chat = json!({"model": "claude/c", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]});
    let reply = post(CHAT, chat).await;
    assert_eq!(reply.header("x-aurora-cache"), "miss");
    assert_eq!(fake.hits(), 3);
}
