//! Maps method and path to a handler, and wraps every answer for metrics.
//!
//! A hand-written `match` instead of a router crate: the route table is small, fixed
//! and easier to read as code, and it gives each route a `&'static str` pattern for
//! the metrics label. Unknown paths get 404 and known paths with the wrong method 405
//! (with `Allow`), both in OpenAI's error shape.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request};
use hyper::body::Incoming;

use crate::http::body::{RequestGuard, Response, TrackedBody};
use crate::openai::ApiError;
use crate::state::AppState;
use crate::{admin, admission, health, openai};

/// A matched route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/messages` (Anthropic Messages inbound)
    Messages,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/completions` (legacy)
    Completions,
    /// `GET /v1/models`
    Models,
    /// `GET /v1/models/{id}`; ids contain `/`, so the rest of the path is the id.
    Model(String),
    /// `GET /health`
    Health,
    /// `GET /health/ready`
    Ready,
    /// `GET /metrics`
    Metrics,
    /// `GET /openapi.yaml`, the API's OpenAPI spec (anonymous: documentation).
    OpenApi,
    /// `GET /admin/dashboard/cluster`, the HTML cluster page (it checks the admin token
    /// itself, also as HTTP Basic credentials).
    Dashboard,
    /// `GET /admin/dashboard` and `/admin/dashboard/<page>`: the admin UI's shell
    /// (no data, no token; see [`admin::ui`]).
    UiShell,
    /// `GET /admin/dashboard/assets/<file>`: a file of the admin UI.
    UiAsset(String),
    /// Anything under `/admin/api/`; the token is checked before the path, so an
    /// unauthenticated caller cannot tell which admin paths exist.
    Admin,
}

impl Route {
    /// The pattern used as the metrics `route` label.
    pub fn label(&self) -> &'static str {
        match self {
            Route::ChatCompletions => "/v1/chat/completions",
            Route::Messages => "/v1/messages",
            Route::Responses => "/v1/responses",
            Route::Embeddings => "/v1/embeddings",
            Route::Completions => "/v1/completions",
            Route::Models => "/v1/models",
            Route::Model(_) => "/v1/models/{id}",
            Route::Health => "/health",
            Route::Ready => "/health/ready",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.yaml",
            Route::Dashboard => "/admin/dashboard/cluster",
            Route::UiShell => "/admin/dashboard",
            Route::UiAsset(_) => "/admin/dashboard/assets",
            Route::Admin => "/admin/api",
        }
    }
}

/// Why no route matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path.
    NotFound,
    /// The path exists but takes only `allow`.
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
}

/// Matches `method` and `path` (without query) against the route table.
pub fn route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let (route, allow) = match path {
        "/v1/chat/completions" => (Route::ChatCompletions, "POST"),
        "/v1/messages" => (Route::Messages, "POST"),
        "/v1/responses" => (Route::Responses, "POST"),
        "/v1/embeddings" => (Route::Embeddings, "POST"),
        "/v1/completions" => (Route::Completions, "POST"),
        "/v1/models" => (Route::Models, "GET"),
        "/health" => (Route::Health, "GET"),
        "/health/ready" => (Route::Ready, "GET"),
        "/metrics" => (Route::Metrics, "GET"),
        "/openapi.yaml" => (Route::OpenApi, "GET"),
        "/admin/dashboard/cluster" => (Route::Dashboard, "GET"),
        _ => {
            if let Some(id) = path.strip_prefix("/v1/models/").filter(|id| !id.is_empty()) {
                (Route::Model(id.to_owned()), "GET")
            } else if let Some(rest) = path.strip_prefix(admin::ui::ASSETS_PREFIX) {
                (Route::UiAsset(rest.to_owned()), "GET")
            } else if admin::ui::is_page(path) {
                (Route::UiShell, "GET")
            } else if path.starts_with("/admin/api/") {
                // Admin routes check their own methods after authentication.
                return Ok(Route::Admin);
            } else {
                return Err(NoRoute::NotFound);
            }
        }
    };
    if method.as_str() == allow {
        Ok(route)
    } else {
        Err(NoRoute::MethodNotAllowed { allow })
    }
}

/// Serves one request: route, run the handler, attach metrics tracking.
pub async fn dispatch(
    state: Arc<AppState>,
    request: Request<Incoming>,
) -> Result<http::Response<TrackedBody>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let routed = route(&method, &path);
    let label = routed.as_ref().map_or("unmatched", Route::label);
    // Counted from here, so the in-flight gauge covers the handler (mock latency,
    // later the upstream call) as well as the body.
    let guard = RequestGuard::start(Arc::clone(&state), label, started);
    let host_refused = if state.loopback_listener {
        crate::http::host::check(request.headers())
    } else {
        None
    };
    let response = match (host_refused, routed) {
        (Some(refused), _) => refused.into_response(),
        (None, Ok(route)) => match admin_gate(&state, &route, &request) {
            Some(refused) => refused,
            None => {
                let span = crate::telemetry::request_span(route.label(), request.headers());
                let response =
                    tracing::Instrument::instrument(handle(&state, route, request), span.clone())
                        .await;
                crate::telemetry::record_status(&span, response.status().as_u16());
                response
            }
        },
        (None, Err(NoRoute::NotFound)) => ApiError::unknown_url(&method, &path).into_response(),
        (None, Err(NoRoute::MethodNotAllowed { allow })) => {
            let mut response = ApiError::method_not_allowed(&method, &path, allow).into_response();
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
            response
        }
    };
    if response.status() == http::StatusCode::REQUEST_TIMEOUT {
        // Only a request body past `body_read_timeout_ms` answers 408.
        state.metrics.limit_exceeded("body_read_timeout");
    }
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        handler_us = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(TrackedBody::track(response, guard))
}

/// The admin token's gate for the routes that take it (the admin API, the dashboard,
/// `/metrics` with `gateway.metrics_auth: admin`): a client IP that failed too often
/// gets 429 (see [`crate::admin::guard`]), a wrong token is counted, and a missing or
/// wrong token on `/metrics` is answered here (the admin handlers answer their own
/// 401s). `None`: go on to the handler.
fn admin_gate(state: &AppState, route: &Route, request: &Request<Incoming>) -> Option<Response> {
    use crate::config::MetricsAuth;
    use crate::metrics::AdminSurface;
    let headers = request.headers();
    let (surface, ok) = match route {
        Route::Admin => (AdminSurface::Api, admin::authorized(state, headers)),
        Route::Dashboard => (
            AdminSurface::Dashboard,
            admin::dashboard::presents_token(state, headers),
        ),
        Route::Metrics if state.config.metrics_auth == MetricsAuth::Admin => {
            (AdminSurface::Metrics, admin::authorized(state, headers))
        }
        _ => return None,
    };
    let ip = request
        .extensions()
        .get::<crate::http::ClientAddr>()
        .map(|a| a.0.ip());
    let now = Instant::now();
    if let Some(ip) = ip {
        if let Err(retry_after) = state.admin_guard.check(ip, now) {
            state.metrics.admin_auth_limited();
            return Some(
                ApiError {
                    status: http::StatusCode::TOO_MANY_REQUESTS,
                    message:
                        "Too many failed admin logins from this address; wait before trying again."
                            .into(),
                    kind: crate::openai::errors::INVALID_REQUEST,
                    param: None,
                    code: Some("too_many_failed_logins"),
                    retry_after: Some(retry_after),
                }
                .into_response(),
            );
        }
    }
    if ok {
        if let Some(ip) = ip {
            state.admin_guard.succeeded(ip);
        }
        return None;
    }
    // Only a presented credential is a guess; a request without one (a browser's
    // first visit to the dashboard) is answered 401 but not counted.
    if headers.contains_key(http::header::AUTHORIZATION) {
        state.metrics.admin_auth_failure(surface);
        if let Some(ip) = ip {
            state.admin_guard.failed(ip, now);
        }
    }
    (surface == AdminSurface::Metrics).then(|| ApiError::admin_unauthorized().into_response())
}

/// The handlers with a future of any size are boxed: hyper moves the future of every
/// request into place, and an inline chat handler made it 4 KB for every route
/// (1.5 KB boxed; docs/benchmarks-gateway.md).
async fn handle(state: &Arc<AppState>, route: Route, request: Request<Incoming>) -> Response {
    match route {
        Route::ChatCompletions => Box::pin(openai::chat::handle(state, request)).await,
        Route::Messages => Box::pin(openai::messages::handle(state, request)).await,
        Route::Responses => Box::pin(openai::responses::handle(state, request)).await,
        Route::Embeddings => Box::pin(openai::embeddings::handle(state, request)).await,
        Route::Completions => Box::pin(openai::completions::handle(state, request)).await,
        // A node that cannot serve its state answers no client route (see `admission`).
        Route::Models | Route::Model(_) => match (admission::unavailable(state), route) {
            (Some(refused), _) => refused.error.into_response(),
            (None, Route::Model(id)) => openai::models::get(state, &id),
            (None, _) => openai::models::list(state),
        },
        Route::Health => health::live(),
        Route::Ready => health::ready(state),
        Route::Metrics => crate::metrics::endpoint(state),
        Route::OpenApi => crate::openapi::serve(),
        // The UI's cluster page has the same path as the server-rendered one; a request
        // with credentials or `?format=static` (curl, scripts) gets the latter.
        Route::Dashboard if admin::ui::wants_static(request.headers(), request.uri().query()) => {
            admin::dashboard::cluster(state, request.headers())
        }
        Route::Dashboard | Route::UiShell => admin::ui::shell(request.headers()),
        Route::UiAsset(rest) => admin::ui::serve_asset(&rest, request.headers()),
        Route::Admin => Box::pin(admin::handle(state, request)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Ok(Route::ChatCompletions)
        );
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Err(NoRoute::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route(&Method::POST, "/v1/embeddings"),
            Ok(Route::Embeddings)
        );
        assert_eq!(
            route(&Method::POST, "/v1/completions"),
            Ok(Route::Completions)
        );
        assert_eq!(
            route(&Method::GET, "/v1/embeddings"),
            Err(NoRoute::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route(&Method::GET, "/v1/models/mock/echo"),
            Ok(Route::Model("mock/echo".into()))
        );
        assert_eq!(route(&Method::POST, "/v1/responses"), Ok(Route::Responses));
        assert_eq!(route(&Method::GET, "/v1/models/"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/nope"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/openapi.yaml"), Ok(Route::OpenApi));
        assert_eq!(
            route(&Method::POST, "/openapi.yaml"),
            Err(NoRoute::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route(&Method::DELETE, "/admin/api/cluster/status"),
            Ok(Route::Admin)
        );
        assert_eq!(
            route(&Method::POST, "/admin/api/cluster/switchover"),
            Ok(Route::Admin)
        );
        assert_eq!(
            route(&Method::GET, "/admin/dashboard/cluster"),
            Ok(Route::Dashboard)
        );
        assert_eq!(
            route(&Method::POST, "/admin/dashboard/cluster"),
            Err(NoRoute::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(route(&Method::GET, "/admin/dashboard"), Ok(Route::UiShell));
        assert_eq!(
            route(&Method::GET, "/admin/dashboard/settings/routing"),
            Ok(Route::UiShell)
        );
        assert_eq!(
            route(&Method::GET, "/admin/dashboard/assets/js/app.js"),
            Ok(Route::UiAsset("js/app.js".into()))
        );
        assert_eq!(
            route(&Method::POST, "/admin/dashboard/assets/app.css"),
            Err(NoRoute::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route(&Method::GET, "/admin/dashboard/A"),
            Err(NoRoute::NotFound)
        );
    }
}
