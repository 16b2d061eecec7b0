//! Whether this node may answer clients now, and whether it says so to a load balancer.
//!
//! A node's answers are only as good as its copy of the replicated state. Two
//! situations make that copy untrustworthy, and in both the node refuses client
//! requests with 503 and `/health/ready` says 503 with the reason:
//!
//! * **The driver stopped** (a failed SQLite commit, a full disk, a panic): the copy is
//!   frozen, so a key revoked on another node would stay valid here. The process then
//!   drains and exits non-zero (`main.rs`).
//! * **A clustered node has not caught up yet**: it was started with seeds and has not
//!   completed an anti-entropy exchange with a peer (or does not yet know its own
//!   write numbering). Until then it may hold none of the cluster's keys, budgets or
//!   guardrails, and must not serve with what little it has.
//!
//! With `gateway.auth: keys` (the default for anything but a lone loopback node, see
//! [`crate::config::AuthMode`]) a node whose state holds no key refuses every request
//! with 401 `no_api_keys_configured` instead of serving anonymously.

use http::StatusCode;

use crate::config::AuthMode;
use crate::openai::errors::INVALID_REQUEST;
use crate::openai::ApiError;
use crate::policy::{Caller, Rejection};
use crate::state::AppState;

/// Why the node is not ready, most severe first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// The io driver is gone; the text is its error.
    DriverStopped(String),
    /// Shutdown has begun.
    Draining,
    /// Clustered, seeded, and not yet caught up with a peer.
    Syncing,
    /// active_passive: another node holds the lease (its URL, if known).
    Standby(Option<String>),
}

impl NotReady {
    /// The `status` of the `/health/ready` body.
    pub fn status(&self) -> &'static str {
        match self {
            NotReady::DriverStopped(_) => "driver_stopped",
            NotReady::Draining => "draining",
            NotReady::Syncing => "syncing",
            NotReady::Standby(_) => "standby",
        }
    }
}

/// Why the node cannot serve its state now, for client requests and readiness alike
/// (draining and standby are readiness-only: requests that still arrive are served).
fn state_unusable(state: &AppState) -> Option<NotReady> {
    if let Some(reason) = state.cluster.driver_stopped() {
        return Some(NotReady::DriverStopped(reason));
    }
    if !state.cluster.view().state_synced() {
        return Some(NotReady::Syncing);
    }
    None
}

/// What `/health/ready` reports: `Ok` when ready.
pub fn readiness(state: &AppState) -> Result<(), NotReady> {
    if let Some(driver) = state.cluster.driver_stopped().map(NotReady::DriverStopped) {
        return Err(driver);
    }
    if state.is_draining() {
        return Err(NotReady::Draining);
    }
    if let Some(unusable) = state_unusable(state) {
        return Err(unusable);
    }
    if let Some(active) = crate::cluster::status::standby_of(&state.cluster) {
        return Err(NotReady::Standby(active));
    }
    Ok(())
}

/// The 503 for a client request while the node cannot serve its state, if it cannot.
pub fn unavailable(state: &AppState) -> Option<Rejection> {
    let (reason, code, message) = match state_unusable(state)? {
        NotReady::DriverStopped(_) => (
            "driver_stopped",
            "node_unavailable",
            "This node lost its storage and is shutting down; retry on another node."
                .to_owned(),
        ),
        _ => (
            "syncing",
            "node_syncing",
            "This node has not caught up with its cluster yet (it cannot check API keys until it has); retry shortly or on another node."
                .to_owned(),
        ),
    };
    Some(Rejection {
        reason,
        error: ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
            kind: "server_error",
            param: None,
            code: Some(code),
            retry_after: Some(1),
        },
    })
}

/// Who is calling, or why the request is refused: the node must be able to serve
/// its state (503), then the key is checked ([`crate::policy::Policy::authenticate`]),
/// and in `keys` mode an absent key collection is a 401, not an open door.
pub fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Result<Caller, Rejection> {
    if let Some(refused) = unavailable(state) {
        return Err(refused);
    }
    let caller = state.policy.authenticate(&state.state_view, headers)?;
    if caller == Caller::Anonymous && state.config.auth == AuthMode::Keys {
        return Err(no_keys_configured());
    }
    Ok(caller)
}

/// 401: `gateway.auth` is `keys` and no API key exists yet.
pub fn no_keys_configured() -> Rejection {
    Rejection {
        reason: "no_keys_configured",
        error: ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "No API keys are configured on this gateway, and it does not serve without one (gateway.auth: keys). Create a key with the admin API.".into(),
            kind: INVALID_REQUEST,
            param: None,
            code: Some("no_api_keys_configured"),
            retry_after: None,
        },
    }
}
