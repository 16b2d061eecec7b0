//! Liveness and readiness.
//!
//! `/health` says the process is up and serving HTTP (restart it if not);
//! `/health/ready` says it should receive traffic. They differ during shutdown: a
//! draining node is alive but not ready, so a load balancer stops sending it new
//! requests while the in-flight ones finish. Later readiness also waits for state to be
//! loaded and, in active_passive mode, for this node to be the active one.

use http::StatusCode;
use serde::Serialize;

use crate::http::body::{json_ok, json_response, Response};
use crate::state::AppState;

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

/// `GET /health`: 200 `{"status":"ok"}` whenever the server answers at all.
pub fn live() -> Response {
    json_ok(&Status { status: "ok" })
}

/// `GET /health/ready`: 200 `{"status":"ready"}`; 503 `{"status":"draining"}` once
/// shutdown has begun; and in active_passive mode 503 `{"status":"standby",
/// "active": "<leader's advertise URL>"}` on every node but the lease holder, so a
/// load balancer sends traffic to the active node only.
pub fn ready(state: &AppState) -> Response {
    if state.is_draining() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"draining"}"#.to_vec(),
        );
    }
    if let Some(active) = crate::cluster::status::standby_of(&state.cluster) {
        let body = serde_json::json!({ "status": "standby", "active": active });
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            body.to_string().into_bytes(),
        );
    }
    json_ok(&Status { status: "ready" })
}
