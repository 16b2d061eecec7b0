//! Liveness and readiness.
//!
//! `/health` says the process is up and serving HTTP (restart it if not);
//! `/health/ready` says it should receive traffic. They differ during shutdown: a
//! draining node is alive but not ready, so a load balancer stops sending it new
//! requests while the in-flight ones finish. Readiness also needs a running driver and,
//! for a clustered node, state caught up with a peer ([`crate::admission`]), and in
//! active_passive mode this node to be the active one.

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

/// `GET /health/ready`: 200 `{"status":"ready"}`, else 503 with the reason
/// ([`crate::admission::readiness`]): `{"status":"driver_stopped","reason":"…"}` once
/// the io driver is gone; `{"status":"draining"}` once shutdown has begun;
/// `{"status":"syncing"}` while a clustered node has not caught up with a peer; and in
/// active_passive mode `{"status":"standby","active":"<leader's advertise URL>"}` on
/// every node but the lease holder, so a load balancer sends traffic to the active
/// node only.
pub fn ready(state: &AppState) -> Response {
    use crate::admission::NotReady;
    let body = match crate::admission::readiness(state) {
        Ok(()) => return json_ok(&Status { status: "ready" }),
        Err(NotReady::DriverStopped(reason)) => {
            serde_json::json!({ "status": "driver_stopped", "reason": reason })
        }
        Err(NotReady::Standby(active)) => {
            serde_json::json!({ "status": "standby", "active": active })
        }
        Err(other) => serde_json::json!({ "status": other.status() }),
    };
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        body.to_string().into_bytes(),
    )
}
