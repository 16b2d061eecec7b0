//! Test harness: an in-process server on 127.0.0.1:0 and a tiny HTTP/1.1 client, so
//! every test goes through real sockets, real hyper parsing and the real router.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod browser;
pub mod cluster;
pub mod dev;
pub mod fake;
pub mod netns;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_gateway::state::AppState;
use aurora_gateway::{AdminToken, DrainOutcome, Server, ServerConfig};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin token every test server uses.
pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A running server; `stop` shuts it down the way a signal would.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<DrainOutcome>,
}

impl TestServer {
    /// Starts a server with the default config.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its config.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_with_env(tweak, &[]).await
    }

    /// Starts a server whose upstream API-key variables are `env` (name, value) pairs
    /// instead of the process environment.
    pub async fn start_with_env(
        tweak: impl FnOnce(&mut ServerConfig),
        env: &[(&str, &str)],
    ) -> Self {
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        tweak(&mut config);
        let vars: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup: aurora_gateway::catalog::store::EnvLookup =
            Arc::new(move |name: &str| vars.get(name).cloned());
        let server = Server::bind_with_env(config, AdminToken::new(TOKEN), lookup)
            .await
            .expect("bind 127.0.0.1:0");
        let addr = server.local_addr();
        let state = server.state();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            state,
            stop: Some(tx),
            task,
        }
    }

    /// Asks the server to shut down without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and waits for the drain to finish.
    pub async fn stop(mut self) -> DrainOutcome {
        self.begin_stop();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task does not panic")
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        send(
            self.addr,
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.into(),
        )
        .await
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an OpenAI-shaped error with this status, param and code, and returns
    /// the error object.
    pub fn assert_error(
        &self,
        status: u16,
        param: Option<&str>,
        code: Option<&str>,
    ) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), "application/json");
        let v = self.json();
        let error = v["error"].clone();
        let mut keys: Vec<&str> = error
            .as_object()
            .expect("error is an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["code", "message", "param", "type"],
            "exactly OpenAI's four"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(error["param"].as_str(), param, "param of {v}");
        assert_eq!(error["code"].as_str(), code, "code of {v}");
        error
    }
}

/// One request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("valid request");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Writes `raw` bytes to a fresh connection and reads until the server closes it or
/// a full response head plus body arrived; returns the status code.
pub async fn raw_status(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything; ignore that.
    let _ = stream.write_all(raw).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Parses an SSE body into its `data:` payloads, checking the framing on the way.
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without data: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// A minimal valid chat body.
pub fn chat(model: &str, content: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}]
    })
}

/// An OpenAI-compatible provider record at `base_url`, without a key.
pub fn openai_provider(
    base_url: String,
    timeout_ms: u32,
    max_retries: u8,
) -> aurora_schema::Provider {
    aurora_schema::Provider {
        kind: aurora_schema::ProviderKind::OpenAiCompatible,
        base_url,
        api_key_env: None,
        timeout_ms,
        max_retries,
        cooldown_ms: 0,
    }
}

/// The model `name` (`provider/model`), served upstream as the part after the slash.
pub fn model_record(name: &str) -> aurora_gateway::catalog::Named<aurora_schema::Model> {
    let (provider, upstream) = name.split_once('/').expect("provider/model");
    aurora_gateway::catalog::Named::new(
        name,
        aurora_schema::Model {
            provider_id: aurora_schema::RecordId::new(provider).expect("id"),
            upstream_model: upstream.to_owned(),
            aliases: Vec::new(),
            context_window: None,
            enabled: true,
        },
    )
}

/// Provider `up` at `base_url` (the default policy's 120 s timeout, `max_retries`)
/// and its model `up/m`.
pub fn one_model_catalog(base_url: String, max_retries: u8) -> aurora_gateway::catalog::Catalog {
    aurora_gateway::catalog::Catalog {
        providers: vec![aurora_gateway::catalog::Named::new(
            "up",
            openai_provider(base_url, 120_000, max_retries),
        )],
        models: vec![model_record("up/m")],
        routes: Vec::new(),
    }
}

/// An enabled auth key record for `secret` (stored as its SHA-256, as the node keeps
/// it), with no limits and every model allowed: the usual key of a test.
pub fn auth_key(secret: &str) -> aurora_schema::AuthKey {
    use aurora_gateway::policy::auth;
    aurora_schema::AuthKey {
        name: "test key".into(),
        secret_hash: auth::to_hex(&auth::digest(secret)),
        key_prefix: "sk-aur".into(),
        allowed_models: vec![],
        budget_id: None,
        workflow_id: None,
        rpm_limit: None,
        tpm_limit: None,
        expires_at_ms: None,
        disabled: false,
        metadata: Default::default(),
        max_parallel_requests: None,
    }
}
