//! The admin API under `/admin/api/`, behind the admin token.
//!
//! Only `GET /admin/api/cluster/status` exists yet and it answers
//! `{"enabled": false}`: clustering is not wired into the gateway. The collections'
//! CRUD (keys, providers, models, …) arrives with the replicated store (issue 6, item 8).
//! Authentication runs before path matching, so without the token every admin path
//! looks the same (401).

pub mod token;

use http::{Method, Request};
use serde::Serialize;

use crate::http::body::{json_ok, Response};
use crate::openai::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct ClusterStatus {
    enabled: bool,
}

/// Serves any request under `/admin/api/`.
pub fn handle<B>(state: &AppState, request: &Request<B>) -> Response {
    if !authorized(state, request.headers()) {
        return ApiError::admin_unauthorized().into_response();
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/admin/api/cluster/status") => json_ok(&ClusterStatus { enabled: false }),
        (_, "/admin/api/cluster/status") => {
            let mut response =
                ApiError::method_not_allowed(request.method(), "/admin/api/cluster/status", "GET")
                    .into_response();
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            response
        }
        (method, path) => ApiError::unknown_url(method, path).into_response(),
    }
}

/// Whether the request carries the admin token as `Authorization: Bearer <token>`.
fn authorized(state: &AppState, headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .is_some_and(|token| state.admin_token.verify(token))
}
