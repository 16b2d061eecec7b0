//! The admin API under `/admin/api/`, behind the admin token.
//!
//! - `GET /admin/api/cluster/status`, `GET /admin/api/cluster/nodes`,
//!   `GET /admin/api/cluster/settings` (this node's configured metadata)
//!   ([`crate::cluster::status`]);
//! - `POST /admin/api/cluster/switchover`, `POST /admin/api/cluster/forget`, sent to
//!   the leader ([`failover`]); `POST /admin/api/cluster/admit` ([`identity`]);
//! - `POST /admin/api/cluster/fault`, only on a node started with
//!   `--allow-fault-injection` (403 `fault_injection_disabled` otherwise) ([`fault`]);
//! - for each replicated collection (`keys` is `auth_keys`; `providers`, `models`,
//!   `routes`, `guardrails`, `workflows`, `pricing`, `budgets`): `GET` list, `POST`
//!   create, `GET`/`PUT`/`DELETE` `/{id}` ([`records`]); `POST /admin/api/keys`
//!   generates the key's secret and answers it once ([`keys`]).
//!
//! - `GET /admin/api/usage`, `/usage/summary`, `/usage/series`: the usage log
//!   ([`crate::usage::admin`]); `GET /admin/api/metrics/history?resolution=10s|1m&since=`:
//!   the short history of the node's own API metrics ([`crate::metrics::history`]).
//!
//! - `GET /admin/api/state/export[?at=TIME]` and `POST /admin/api/state/import[?dry_run=true]`:
//!   the whole replicated state as one document, and loading one ([`state`]).
//!
//! The admin UI (a static app under `/admin/dashboard`, which calls this API with the
//! token) is served by [`ui`]. The server-rendered HTML page `/admin/dashboard/cluster`
//! for `curl` and scripts is in [`dashboard`] (same token, also accepted there as HTTP
//! Basic credentials).
//!
//! Authentication runs before path matching, so without the token every admin path
//! looks the same (401). Every write goes through the node's driver and is answered
//! only after the driver committed it to SQLite.

pub mod dashboard;
pub mod failover;
pub mod fault;
pub mod guard;
pub mod identity;
pub mod keys;
pub mod records;
pub mod state;
pub mod token;
pub mod ui;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};

use aurora_io::DriverError;

use crate::http::body::{json_ok, read_limited, Response};
use crate::openai::errors::INVALID_REQUEST;
use crate::openai::ApiError;
use crate::state::AppState;

/// Serves any request under `/admin/api/`.
pub async fn handle<B>(state: &Arc<AppState>, request: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !authorized(state, request.headers()) {
        return ApiError::admin_unauthorized().into_response();
    }
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let rest = path.strip_prefix("/admin/api/").unwrap_or_default();
    if crate::usage::admin::routes().contains(&path.as_str()) {
        // The usage queries scan SQLite (a day's series can take a second): on a
        // blocking thread, so they never hold a runtime worker that proxied requests
        // and health checks need.
        let state = Arc::clone(state);
        let query = parts.uri.query().map(str::to_owned);
        let served = tokio::task::spawn_blocking(move || {
            crate::usage::admin::handle(&state, &method, &path, query.as_deref())
        })
        .await;
        return match served {
            Ok(Some(response)) => response,
            Ok(None) => ApiError::internal().into_response(),
            Err(error) => {
                tracing::error!(%error, "a usage query failed");
                ApiError::internal().into_response()
            }
        };
    }
    match rest {
        "cluster/status" => only_get(&method, &path, || {
            let mut document = crate::cluster::status::document(&state.cluster);
            document.warnings = crate::policy::unpriced::warnings(state);
            if document.status.enabled {
                let snapshot = state.state_view.snapshot();
                document.state = Some(crate::cluster::status::StateSummary::of(&snapshot));
            }
            json_ok(&document)
        }),
        "metrics/history" => only_get(&method, &path, || {
            metrics_history(state, parts.uri.query()).unwrap_or_else(ApiError::into_response)
        }),
        "cluster/settings" => only_get(&method, &path, || {
            json_ok(&crate::cluster::status::settings(&state.cluster))
        }),
        "cluster/nodes" => only_get(&method, &path, || {
            json_ok(&List {
                object: "list",
                data: crate::cluster::status::nodes(&state.cluster),
            })
        }),
        "state/export" => {
            if method != Method::GET {
                return not_allowed(&method, &path, "GET");
            }
            state::export(state, parts.uri.query())
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        "state/import" => {
            if method != Method::POST {
                return not_allowed(&method, &path, "POST");
            }
            let body = match read_limited(
                &parts.headers,
                body,
                state::MAX_IMPORT_BYTES,
                state.config.limits.body_read_timeout(),
            )
            .await
            {
                Ok(bytes) => bytes,
                Err(error) => return error.into_response(),
            };
            state::import(state, parts.uri.query(), &body)
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        "cluster/switchover" | "cluster/forget" | "cluster/admit" | "cluster/fault" => {
            if method != Method::POST {
                return not_allowed(&method, &path, "POST");
            }
            let body = match read_limited(
                &parts.headers,
                body,
                state.config.max_body_bytes,
                state.config.limits.body_read_timeout(),
            )
            .await
            {
                Ok(bytes) => bytes,
                Err(error) => return error.into_response(),
            };
            match rest {
                "cluster/switchover" => failover::switchover(&state.cluster, &body).await,
                "cluster/admit" => identity::admit(&state.cluster, &body).await,
                "cluster/fault" => fault::inject(state.cluster.faults.as_ref(), &body),
                _ => failover::forget(&state.cluster, &body).await,
            }
        }
        _ => {
            let (name, id) = match rest.split_once('/') {
                Some((name, id)) => (name, Some(id)),
                None => (rest, None),
            };
            let Some(collection) = records::collection(name) else {
                return ApiError::unknown_url(&method, &path).into_response();
            };
            let body = if method == Method::POST || method == Method::PUT {
                match read_limited(
                    &parts.headers,
                    body,
                    state.config.max_body_bytes,
                    state.config.limits.body_read_timeout(),
                )
                .await
                {
                    Ok(bytes) => bytes,
                    Err(error) => return error.into_response(),
                }
            } else {
                Bytes::new()
            };
            let result = match id {
                None | Some("") => records::on_collection(state, collection, &method, &body).await,
                Some(id) => records::on_record(state, collection, id, &method, &body).await,
            };
            match result {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        }
    }
}

/// `GET /admin/api/metrics/history`: `resolution` `10s` (default; the last hour) or
/// `1m` (the last day), `since` in Unix ms (default: all that is kept).
fn metrics_history(state: &AppState, query: Option<&str>) -> Result<Response, ApiError> {
    use crate::metrics::history::{Resolution, COARSE_MS, FINE_MS};
    let mut resolution = Resolution::Fine;
    let mut since_ms = 0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "resolution" => {
                resolution = match value {
                    "" | "10s" => Resolution::Fine,
                    "1m" | "60s" => Resolution::Coarse,
                    _ => {
                        return Err(ApiError::bad_request("'resolution' must be `10s` or `1m`.")
                            .with_param("resolution"))
                    }
                }
            }
            "since" if !value.is_empty() => {
                since_ms = value.parse().map_err(|_| {
                    ApiError::bad_request("'since' must be Unix milliseconds.").with_param("since")
                })?;
            }
            _ => {}
        }
    }
    #[derive(serde::Serialize)]
    struct History {
        object: &'static str,
        resolution_ms: u64,
        data: Vec<crate::metrics::history::Point>,
    }
    Ok(json_ok(&History {
        object: "metrics.history",
        resolution_ms: match resolution {
            Resolution::Fine => FINE_MS,
            Resolution::Coarse => COARSE_MS,
        },
        data: state.metrics.history.points(resolution, since_ms),
    }))
}

/// `{"object": "list", "data": [...]}`, the list shape of OpenAI's API.
#[derive(serde::Serialize)]
pub struct List<T: serde::Serialize> {
    pub object: &'static str,
    pub data: Vec<T>,
}

fn only_get(method: &Method, path: &str, ok: impl FnOnce() -> Response) -> Response {
    if method == Method::GET {
        return ok();
    }
    not_allowed(method, path, "GET")
}

/// 405 with `Allow: allow`.
fn not_allowed(method: &Method, path: &str, allow: &'static str) -> Response {
    let mut response = ApiError::method_not_allowed(method, path, allow).into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 503: the driver stopped or failed while it was to `what` (logged).
pub fn node_unavailable(what: &str, e: &DriverError) -> ApiError {
    tracing::error!(error = %e, "admin command failed: could not {what}");
    ApiError::server_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the node could not {what}: {e}"),
        "node_unavailable",
    )
}

/// An admin error in OpenAI's shape.
pub fn error(status: StatusCode, message: impl Into<String>, code: &'static str) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        kind: INVALID_REQUEST,
        param: None,
        code: Some(code),
        retry_after: None,
    }
}

/// Whether the request carries the admin token as `Authorization: Bearer <token>`.
pub fn authorized(state: &AppState, headers: &http::HeaderMap) -> bool {
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
