//! `GET /openapi.yaml` over real HTTP, and the spec checked against the router: every
//! path and method it describes is one the node routes (the schema-level checks of the
//! answers are schemathesis's, gateway/tests/openapi/run.sh).

mod common;

use bytes::Bytes;
use common::{send, TestServer, TOKEN};
use http::Method;
use serde_json::{json, Value};

const SPEC: &str = include_str!("../../docs/openapi.yaml");

fn spec() -> Value {
    serde_norway::from_str(SPEC).expect("docs/openapi.yaml is YAML")
}

/// A node with one client key, so client routes are closed (`auth: open` ends with the
/// first key) and `/openapi.yaml` is shown to be anonymous by design, not by default.
async fn closed_server() -> TestServer {
    let server = TestServer::start().await;
    let created = send(
        server.addr,
        Method::POST,
        "/admin/api/keys",
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-type", "application/json"),
        ],
        Bytes::from(json!({"name": "openapi test"}).to_string()),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let chat = server
        .post_json("/v1/chat/completions", &common::chat("mock/echo", "hi"))
        .await;
    assert_eq!(chat.status, 401, "client routes now need a key");
    server
}

#[tokio::test]
async fn the_spec_is_served_to_anyone_as_yaml() {
    let server = closed_server().await;
    let reply = server.get("/openapi.yaml").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "application/yaml");
    assert_eq!(
        reply.text(),
        SPEC,
        "the committed docs/openapi.yaml, byte for byte"
    );
    let served: Value = serde_norway::from_str(&reply.text()).expect("YAML");
    assert_eq!(served["openapi"], "3.1.0");

    let post = server.post_json("/openapi.yaml", &json!({})).await;
    post.assert_error(405, None, Some("method_not_allowed"));
    assert_eq!(post.header("allow"), "GET");
    server.stop().await;
}

/// Every operation of the spec reaches a handler: none answers 404 `unknown_url` or
/// 405 (a path or method the router does not have).
#[tokio::test]
async fn every_operation_of_the_spec_is_routed() {
    let server = closed_server().await;
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    let mut tried = 0;
    for (template, item) in paths {
        let path = template
            .replace("{id}", "mock/echo")
            .replace("{file}", "app.css");
        for (method, operation) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                _ => continue, // `parameters`
            };
            let body = if method == Method::POST || method == Method::PUT {
                Bytes::from_static(b"{}")
            } else {
                Bytes::new()
            };
            let reply = send(
                server.addr,
                method.clone(),
                &path,
                &[
                    ("authorization", &format!("Bearer {TOKEN}")),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await;
            let code = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            assert!(
                reply.status != 405 && code.as_deref() != Some("unknown_url"),
                "{method} {path}: {} {}",
                reply.status,
                reply.text()
            );
            let documented = operation["responses"]
                .as_object()
                .expect("responses")
                .contains_key(reply.status.as_str());
            assert!(
                documented,
                "{method} {path}: status {} is not in the spec",
                reply.status
            );
            tried += 1;
        }
    }
    assert!(tried >= 50, "only {tried} operations tried");
    server.stop().await;
}
