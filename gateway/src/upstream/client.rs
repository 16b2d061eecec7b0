//! The pooled HTTP client every upstream call goes through.
//!
//! One client per process, shared by all providers, so connections are pooled per
//! host (keep-alive) across requests and survive catalog replacements. HTTPS uses
//! rustls with the webpki root certificates (no system store needed); plain `http://`
//! is allowed for local upstreams (vLLM, Ollama, mocks). The connect timeout is set on
//! the connector; per-attempt timeouts are applied by the caller, since they differ by
//! provider.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client type.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for upstream calls: {0}")]
pub struct ClientError(String);

/// Idle pooled connections are closed after this long (below common upstream
/// keep-alive limits, so the gateway closes first and never reuses a dying socket).
pub const POOL_IDLE: Duration = Duration::from_secs(60);

/// Builds the client with `connect_timeout`.
pub fn build(connect_timeout: Duration) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ClientError(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(512)
        .build(https))
}
