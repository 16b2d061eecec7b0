//! The policy layer's refusals, in OpenAI's error shape, with a bounded reason label
//! for metrics.

use aurora_schema::Money;
use http::StatusCode;

use super::Rejection;
use crate::openai::errors::INVALID_REQUEST;
use crate::openai::ApiError;

fn error(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> ApiError {
    ApiError {
        status,
        message,
        kind,
        param: None,
        code: Some(code),
        retry_after: None,
    }
}

/// 401: keys exist and none was sent.
pub fn missing_key() -> Rejection {
    Rejection {
        reason: "missing_key",
        error: error(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            "invalid_api_key",
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.".into(),
        ),
    }
}

/// 401: the key matches no auth key. The message does not echo the key.
pub fn unknown_key() -> Rejection {
    Rejection {
        reason: "unknown_key",
        error: error(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            "invalid_api_key",
            "Incorrect API key provided.".into(),
        ),
    }
}

/// 403: the key is disabled.
pub fn key_disabled(id: &str) -> Rejection {
    Rejection {
        reason: "key_disabled",
        error: error(
            StatusCode::FORBIDDEN,
            INVALID_REQUEST,
            "api_key_disabled",
            format!("The API key `{id}` is disabled."),
        ),
    }
}

/// 403: the key has expired.
pub fn key_expired(id: &str) -> Rejection {
    Rejection {
        reason: "key_expired",
        error: error(
            StatusCode::FORBIDDEN,
            INVALID_REQUEST,
            "api_key_expired",
            format!("The API key `{id}` has expired."),
        ),
    }
}

/// 403: the key (or a guardrail, when `guardrail` is set) does not allow the model.
pub fn model_not_allowed(model: &str, guardrail: Option<&str>) -> Rejection {
    let message = match guardrail {
        Some(g) => format!("Blocked by guardrail `{g}`: the model `{model}` is not allowed."),
        None => format!("This API key is not allowed to use the model `{model}`."),
    };
    Rejection {
        reason: "model_not_allowed",
        error: ApiError {
            param: Some("model".into()),
            ..error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "model_not_allowed",
                message,
            )
        },
    }
}

/// 400: a deny-pattern guardrail matched `param`. The pattern itself is not echoed.
pub fn denied_pattern(guardrail: &str, param: String) -> Rejection {
    Rejection {
        reason: "guardrail_denied",
        error: ApiError {
            param: Some(param),
            ..error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "guardrail_denied",
                format!("Blocked by guardrail `{guardrail}`: the input contains a denied pattern."),
            )
        },
    }
}

/// 413: a max-input guardrail refused the input size.
pub fn input_too_large(guardrail: &str, chars: usize, max: u32) -> Rejection {
    Rejection {
        reason: "guardrail_input_too_large",
        error: ApiError {
            param: Some("messages".into()),
            ..error(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                "input_too_large",
                format!("Blocked by guardrail `{guardrail}`: the input is {chars} characters long, more than the limit of {max}."),
            )
        },
    }
}

/// Where a key's rpm or tpm limit was judged: its message says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This node's token bucket (no leases: each node allows the limit).
    ThisNode,
    /// The cluster's quota leases: the rolling minute is spent, or cannot cover the
    /// request's reserved tokens.
    Cluster,
}

/// 429: key `id`'s rpm or tpm limit (`tokens`) of `limit` is reached where `scope`
/// says; `retry_after` seconds until it admits again.
pub fn rate_limited(
    id: &str,
    tokens: bool,
    limit: u32,
    retry_after: u64,
    scope: Scope,
) -> Rejection {
    let (kind, what, reason) = if tokens {
        ("tokens", "tokens per minute", "tpm_limit")
    } else {
        ("requests", "requests per minute", "rpm_limit")
    };
    let place = match scope {
        Scope::ThisNode => "on this node",
        Scope::Cluster => "across the cluster",
    };
    Rejection {
        reason,
        error: ApiError {
            retry_after: Some(retry_after),
            ..error(
                StatusCode::TOO_MANY_REQUESTS,
                kind,
                "rate_limit_exceeded",
                format!("Rate limit reached for API key `{id}`: {limit} {what} {place}. Please try again in {retry_after}s."),
            )
        },
    }
}

/// 429: the key's rpm limit is granted to nodes in slices and this node has none at
/// the moment (it asked, and the grant did not come within the wait).
pub fn rpm_pending(id: &str) -> Rejection {
    lease_retry(
        "rpm_pending",
        format!("API key `{id}`: this node is being granted capacity of the cluster's per-minute rate limits. Please try again in 1s."),
    )
}

/// 429: the key's rpm limit is granted to nodes in slices, this node has none left
/// and cannot reach the lease holder (a partition, a failover in progress).
pub fn rpm_cut_off(id: &str) -> Rejection {
    lease_retry(
        "rpm_cut_off",
        format!("API key `{id}`: this node cannot reach the cluster's lease holder to be granted capacity of the per-minute rate limits. Please try again in 1s."),
    )
}

/// 429: the budget's request limit is granted to nodes in slices and this node has
/// none at the moment (it asked, and the grant did not come within the wait): the
/// cluster may still have room, so come back in a second.
pub fn budget_pending(budget: &str) -> Rejection {
    lease_retry(
        "budget_pending",
        format!("Budget `{budget}`: this node is being granted capacity of the cluster's request limit. Please try again in 1s."),
    )
}

/// 429: the budget's request limit is granted to nodes in slices, this node has none
/// left and cannot reach the lease holder (a partition, a failover in progress).
pub fn budget_cut_off(budget: &str) -> Rejection {
    lease_retry(
        "budget_cut_off",
        format!("Budget `{budget}`: this node cannot reach the cluster's lease holder to be granted capacity of the request limit. Please try again in 1s."),
    )
}

/// A leased request limit's 429: try again in a second.
fn lease_retry(reason: &'static str, message: String) -> Rejection {
    Rejection {
        reason,
        error: ApiError {
            retry_after: Some(1),
            ..error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_exceeded",
                message,
            )
        },
    }
}

/// 402: the budget's spend or request limit for the period is reached.
pub fn budget_exceeded(budget: &str, what: &str, resets_in_s: Option<u64>) -> Rejection {
    let when = match resets_in_s {
        Some(s) => format!(" It resets in {s}s."),
        None => " It does not reset.".into(),
    };
    Rejection {
        reason: "budget_exceeded",
        // No Retry-After: SDKs would sleep and retry for hours; the reset time is in
        // the message for a human.
        error: error(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "insufficient_quota",
            format!("Budget `{budget}` exceeded: {what}.{when}"),
        ),
    }
}

/// 402: the budget's spend limit, leased, cannot cover this request's estimated
/// cost: what is left cluster-wide (`left`, as the counters show it; slices other
/// nodes hold count as spent) is less than the reservation.
pub fn budget_cannot_cover(budget: &str, left: Money, estimate: Money) -> Rejection {
    Rejection {
        reason: "budget_exceeded",
        error: error(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "insufficient_quota",
            format!("Budget `{budget}` cannot cover this request: its estimated cost is {estimate} USD and at most {left} USD of the limit is left. Lower `max_tokens`, or wait for the period to reset."),
        ),
    }
}

/// 403: the key names a budget or workflow that does not exist (here, now). Refused
/// rather than served without the limit or guardrails the operator meant; the
/// message says which record to create or which field to fix. Not a 5xx, so SDKs do
/// not retry a configuration fault in a loop.
pub fn key_misconfigured(key: &str, field: &str, what: &str, missing: &str) -> Rejection {
    Rejection {
        reason: "key_misconfigured",
        error: error(
            StatusCode::FORBIDDEN,
            INVALID_REQUEST,
            "key_misconfigured",
            format!(
                "The API key `{key}` names the {what} `{missing}` (field `{field}`), which does not exist on this node. An operator must create it or change the key's `{field}`; until then the key is refused."
            ),
        ),
    }
}

/// 429: the key already has `max` requests in flight on this node.
pub fn too_many_parallel(key: &str, in_flight: u32, max: u32) -> Rejection {
    Rejection {
        reason: "max_parallel_requests",
        error: ApiError {
            retry_after: Some(1),
            ..error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "too_many_parallel_requests",
                format!("API key `{key}` already has {in_flight} requests in flight on this node (max_parallel_requests = {max}). Retry when one finishes."),
            )
        },
    }
}
