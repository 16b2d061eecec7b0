//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
//!
//! Every failure the gateway answers, from a bad body to a wrong admin token, uses
//! this one shape so that OpenAI SDKs surface our message instead of a parse error.
//! `param` names the request field at fault when there is one, which is what makes a
//! 400 actionable.

use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::http::body::{json_response, Response};

/// An error answer: HTTP status plus OpenAI's error object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI's error `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// The request field at fault, e.g. `messages[0].role`.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (503 while every target cools down).
    pub retry_after: Option<u64>,
}

/// OpenAI's type for client errors.
pub const INVALID_REQUEST: &str = "invalid_request_error";

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: INVALID_REQUEST,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// Sets the field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400: the request is malformed; `param` says where.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400: the body is not JSON at all.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!(
            "We could not parse the JSON body of your request ({detail}). The body must be a JSON object."
        ))
        .with_code("invalid_json")
    }

    /// 400: a required field is absent.
    pub fn missing_param(param: &str) -> Self {
        Self::bad_request(format!("Missing required parameter: '{param}'."))
            .with_param(param)
            .with_code("missing_required_parameter")
    }

    /// 404: no model by that name.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 413: the body exceeds the configured limit.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// 408: the request body did not arrive within `gateway.limits.body_read_timeout_ms`.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.",
        )
        .with_code("request_timeout")
    }

    /// 404: no such path.
    pub fn unknown_url(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({method} {path})"),
        )
        .with_code("unknown_url")
    }

    /// 405: the path exists, the method does not; `allow` lists the methods it takes.
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {method} is not allowed on {path}; use {allow}."),
        )
        .with_code("method_not_allowed")
    }

    /// 401: admin token missing or wrong. The message does not say which, so probing
    /// learns nothing.
    pub fn admin_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Missing or invalid admin token. Send it as `Authorization: Bearer <token>`; it is in AURORA_ADMIN_TOKEN or the data directory's admin_token file.",
        )
        .with_code("invalid_admin_token")
    }

    /// 500: a bug on our side; details go to the log, not to the client.
    pub fn internal() -> Self {
        Self {
            kind: "server_error",
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request.",
            )
        }
    }

    /// A 5xx caused by the upstreams (502/503/504), with type `server_error` as
    /// OpenAI uses for failures that are not the client's.
    pub fn server_error(
        status: StatusCode,
        message: impl Into<String>,
        code: &'static str,
    ) -> Self {
        Self {
            kind: "server_error",
            ..Self::new(status, message)
        }
        .with_code(code)
    }

    /// The JSON body, as bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        // Serializing strings and options cannot fail; fall back to a fixed body anyway.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#.to_vec()
        })
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response {
        let mut response = json_response(self.status, self.to_json());
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // The rest of the request body was not read: the connection cannot carry
        // another request, so say it closes.
        if matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_all_four_fields_even_when_null() {
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::bad_request("nope").to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"nope","type":"invalid_request_error","param":null,"code":null}})
        );
    }
}
