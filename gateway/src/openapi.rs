//! `GET /openapi.yaml`: the OpenAPI 3.1 description of this build's HTTP API.
//!
//! The document is `docs/openapi.yaml`, embedded at compile time, so what a node
//! serves always describes the binary that serves it. It is documentation: served to
//! anyone, no key or admin token, also on a node that cannot serve client traffic.
//! `gateway/tests/openapi/run.sh` runs schemathesis with it against a live node.

use http::{HeaderValue, StatusCode};

use crate::http::body::{full, Response};

/// The spec, as committed in `docs/openapi.yaml`.
pub const SPEC: &str = include_str!("../../docs/openapi.yaml");

/// The media type of YAML (RFC 9512).
pub const CONTENT_TYPE: &str = "application/yaml";

/// 200 with the spec.
pub fn serve() -> Response {
    let mut response = http::Response::new(full(SPEC));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_openapi_3_1_and_describes_every_routed_path() {
        assert!(SPEC.starts_with("openapi: 3.1."), "not OpenAPI 3.1");
        // Each fixed path of the router is in the spec (the lead adds new routes' paths
        // there too; this keeps them from being forgotten).
        for path in [
            "/v1/chat/completions",
            "/v1/models",
            "/v1/models/{id}",
            "/health",
            "/health/ready",
            "/metrics",
            "/openapi.yaml",
            "/admin/dashboard/cluster",
            "/admin/dashboard",
            "/admin/api/cluster/status",
            "/admin/api/usage/series",
            "/admin/api/state/import",
        ] {
            assert!(SPEC.contains(&format!("\n  {path}:\n")), "{path} missing");
        }
        for collection in aurora_schema::Collection::ALL {
            let name = crate::admin::records::path_name(collection);
            assert!(
                SPEC.contains(&format!("\n  /admin/api/{name}:\n"))
                    && SPEC.contains(&format!("\n  /admin/api/{name}/{{id}}:\n")),
                "collection {name} missing"
            );
        }
    }

    #[test]
    fn served_as_yaml() {
        let response = serve();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
