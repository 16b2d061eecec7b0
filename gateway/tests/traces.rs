//! OpenTelemetry traces over real HTTP: a fake OTLP/HTTP collector records the JSON
//! posted to `/v1/traces`, a fake upstream records the `traceparent` it was sent.
//!
//! One test function on purpose: the tracing subscriber is global to the process, so
//! the "off" half must run before the layer is installed.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurora_gateway::telemetry::{Settings, Telemetry};
use bytes::Bytes;
use common::fake::{FakeUpstream, Reply};
use common::{one_model_catalog, TestServer};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const CHAT: &str = "/v1/chat/completions";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The trace of the second, identical request (a cache hit).
const HIT_TRACE_ID: &str = "5cf92f3577b34da6a3ce929d0e0e4737";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Records every body POSTed to `/v1/traces`.
#[derive(Clone, Default)]
struct Collector {
    addr: Option<SocketAddr>,
    posts: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let collector = Collector {
            addr: Some(listener.local_addr().expect("addr")),
            posts: Arc::default(),
        };
        let posts = Arc::clone(&collector.posts);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let posts = Arc::clone(&posts);
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let posts = Arc::clone(&posts);
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            if path == "/v1/traces" {
                                if let Ok(value) = serde_json::from_slice(&body.unwrap_or_default())
                                {
                                    posts.lock().expect("posts").push(value);
                                }
                            }
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        collector
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        let posts = self.posts.lock().expect("posts");
        let mut spans = Vec::new();
        for post in posts.iter() {
            for resource in post["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        spans
    }

    /// Every resource's attributes received so far.
    fn resources(&self) -> Vec<Value> {
        let posts = self.posts.lock().expect("posts");
        posts
            .iter()
            .flat_map(|p| p["resourceSpans"].as_array().cloned().unwrap_or_default())
            .map(|r| r["resource"].clone())
            .collect()
    }
}

/// The value of attribute `key` of an OTLP JSON span or resource, as plain JSON
/// (`intValue` may come as a string: it is an int64).
fn attr(item: &Value, key: &str) -> Option<Value> {
    let found = item["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let value = &found["value"];
    if let Some(s) = value.get("stringValue") {
        return Some(s.clone());
    }
    if let Some(i) = value.get("intValue") {
        let n = i.as_i64().or_else(|| i.as_str()?.parse().ok())?;
        return Some(json!(n));
    }
    if let Some(b) = value.get("boolValue") {
        return Some(b.clone());
    }
    value.get("doubleValue").cloned()
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1_700_000_000,
        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
        "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

fn script() -> Vec<Reply> {
    vec![
        Reply::Json(
            500,
            json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
        ),
        Reply::Json(200, completion()),
    ]
}

async fn gateway(upstream: &FakeUpstream) -> TestServer {
    let catalog = one_model_catalog(upstream.base_url(), 1);
    TestServer::start_with(move |c| {
        c.gateway.catalog = catalog;
        c.gateway.upstream.retry_base_ms = 1;
    })
    .await
}

/// A chat request in the trace `trace_id`, through the response cache.
async fn chat_with_traceparent(server: &TestServer, trace_id: &str) -> common::Reply {
    let traceparent = format!("00-{trace_id}-{CLIENT_SPAN}-01");
    let body = serde_json::to_vec(&common::chat("up/m", "hello")).expect("json");
    common::send(
        server.addr,
        Method::POST,
        CHAT,
        &[
            ("content-type", "application/json"),
            ("traceparent", &traceparent),
            ("x-aurora-cache", "use"),
        ],
        Bytes::from(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_request_exports_its_spans_and_propagates_the_trace_upstream() {
    // Off: no endpoint, no telemetry, no layer; nothing goes upstream either.
    assert!(Telemetry::start(&Settings::default())
        .expect("no endpoint")
        .is_none());
    let upstream = FakeUpstream::start(script()).await;
    let server = gateway(&upstream).await;
    let reply = chat_with_traceparent(&server, TRACE_ID).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "a 500 then a 200");
    assert!(
        seen.iter().all(|s| !s.headers.contains_key("traceparent")),
        "traces off: no traceparent upstream"
    );
    server.stop().await;

    // On.
    let collector = Collector::start().await;
    let telemetry = Telemetry::start(&Settings {
        otlp_endpoint: Some(format!("http://{}", collector.addr.expect("addr"))),
        node_id: Some("node-a".into()),
    })
    .expect("telemetry starts")
    .expect("an endpoint turns traces on");
    tracing_subscriber::registry()
        .with(telemetry.layer())
        .try_init()
        .expect("the only subscriber");

    let upstream = FakeUpstream::start(script()).await;
    let server = gateway(&upstream).await;
    let reply = chat_with_traceparent(&server, TRACE_ID).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-aurora-cache"), "miss");
    // The same request again, in a trace of its own: a hit, no upstream call.
    let hit = chat_with_traceparent(&server, HIT_TRACE_ID).await;
    assert_eq!(hit.header("x-aurora-cache"), "hit");
    server.stop().await;

    let mut spans = Vec::new();
    for _ in 0..100 {
        telemetry.flush();
        spans = collector.spans();
        if spans
            .iter()
            .any(|s| s["name"] == "chat /v1/chat/completions")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ours: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == TRACE_ID).collect();
    let names: Vec<&str> = ours.iter().filter_map(|s| s["name"].as_str()).collect();

    let request = ours
        .iter()
        .find(|s| s["name"] == "chat /v1/chat/completions")
        .unwrap_or_else(|| panic!("a request span in trace {TRACE_ID}: {names:?} of {spans:#?}"));
    assert_eq!(
        request["parentSpanId"], CLIENT_SPAN,
        "the incoming traceparent is the parent"
    );
    assert_eq!(request["kind"], json!(2), "server span: {request}");
    let request_id = request["spanId"].as_str().expect("span id");
    for (key, value) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.model", json!("up/m")),
        ("gen_ai.response.model", json!("m")),
        ("gen_ai.usage.input_tokens", json!(5)),
        ("gen_ai.usage.output_tokens", json!(2)),
        ("http.response.status_code", json!(200)),
    ] {
        assert_eq!(attr(request, key), Some(value), "{key} of {request:#}");
    }
    assert!(attr(request, "aurora.cost_usd").is_some(), "{request:#}");

    let policy: Vec<&&Value> = ours.iter().filter(|s| s["name"] == "policy").collect();
    assert_eq!(policy.len(), 1, "{names:?}");
    assert_eq!(policy[0]["parentSpanId"], request_id);

    let cache: Vec<&&Value> = ours.iter().filter(|s| s["name"] == "cache").collect();
    assert_eq!(cache.len(), 1, "{names:?}");
    assert_eq!(cache[0]["parentSpanId"], request_id);
    assert_eq!(attr(cache[0], "aurora.cache.result"), Some(json!("miss")));
    let hit: Vec<&Value> = spans
        .iter()
        .filter(|s| s["traceId"] == HIT_TRACE_ID)
        .collect();
    let hit_names: Vec<&str> = hit.iter().filter_map(|s| s["name"].as_str()).collect();
    let hit_cache = hit
        .iter()
        .find(|s| s["name"] == "cache")
        .unwrap_or_else(|| panic!("a cache span in the hit's trace: {hit_names:?}"));
    assert_eq!(attr(hit_cache, "aurora.cache.result"), Some(json!("hit")));
    assert!(
        !hit_names.iter().any(|n| n.starts_with("upstream")),
        "a hit calls no upstream: {hit_names:?}"
    );

    let mut attempts: Vec<&&Value> = ours.iter().filter(|s| s["name"] == "upstream up").collect();
    assert_eq!(attempts.len(), 2, "one span per upstream try: {names:?}");
    attempts.sort_by_key(|s| attr(s, "aurora.attempt").and_then(|v| v.as_i64()));
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["parentSpanId"], request_id, "{attempt:#}");
        assert_eq!(attr(attempt, "aurora.attempt"), Some(json!(i)));
        assert_eq!(attr(attempt, "aurora.retry"), Some(json!(i > 0)));
        assert_eq!(attr(attempt, "aurora.fallback"), Some(json!(false)));
        assert_eq!(attr(attempt, "gen_ai.system"), Some(json!("up")));
        assert_eq!(attr(attempt, "server.address"), Some(json!("127.0.0.1")));
    }
    assert_eq!(
        attr(attempts[0], "http.response.status_code"),
        Some(json!(500))
    );
    assert!(attr(attempts[0], "error.type").is_some());
    assert_eq!(
        attr(attempts[1], "http.response.status_code"),
        Some(json!(200))
    );

    // The provider's trace joins ours: each try carried a traceparent naming its span.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for (sent, attempt) in seen.iter().zip(&attempts) {
        let traceparent = sent.headers["traceparent"].to_str().expect("ascii");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(parts[1], TRACE_ID, "{traceparent}");
        assert_eq!(parts[2], attempt["spanId"], "{traceparent}");
    }

    let resource = &collector.resources()[0];
    assert_eq!(attr(resource, "service.name"), Some(json!("aurora")));
    assert_eq!(attr(resource, "aurora.node_id"), Some(json!("node-a")));
    telemetry.shutdown();
}

/// The `aurora` binary wires it: `--otlp-endpoint` installs the layer, the mock answers
/// a chat request, and its spans reach the collector by the time the node has stopped
/// (the exporter is flushed on shutdown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_when_given_an_endpoint() {
    use std::io::BufRead as _;
    let collector = Collector::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--otlp-endpoint")
        .arg(format!("http://{}", collector.addr.expect("addr")))
        .env_remove("RUST_LOG")
        .env_remove("AURORA_ADMIN_TOKEN")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn aurora");
    let stderr = child.stderr.take().expect("stderr");
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "listening" {
                return v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            }
        }
        None
    })
    .await
    .expect("reader")
    .expect("a listening line");
    let body = serde_json::to_vec(&common::chat("mock/gpt-4o-mini", "hello")).expect("json");
    let reply = common::send(
        addr,
        Method::POST,
        CHAT,
        &[("content-type", "application/json")],
        Bytes::from(body),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("waiter")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    let spans = collector.spans();
    let request = spans
        .iter()
        .find(|s| s["name"] == "chat /v1/chat/completions")
        .unwrap_or_else(|| panic!("a request span: {spans:#?}"));
    assert_eq!(
        attr(request, "gen_ai.request.model"),
        Some(json!("mock/gpt-4o-mini"))
    );
    assert_eq!(attr(request, "http.response.status_code"), Some(json!(200)));
    assert!(spans.iter().any(|s| s["name"] == "policy"));
    assert_eq!(
        attr(&collector.resources()[0], "service.name"),
        Some(json!("aurora"))
    );
}
