//! The admin UI: a static single-page app compiled into the binary (`gateway/ui/`,
//! tabled by `build.rs`), served under `/admin/dashboard`.
//!
//! - `GET /admin/dashboard/assets/<file>`: a file of `gateway/ui/` (`index.html`,
//!   `app.css`, `js/…`), with its content type, `Cache-Control: no-cache` and an ETag
//!   (a hash of the bytes; `If-None-Match` with it answers 304). `no-cache` rather than
//!   a long max-age: the URLs carry no version, so a browser must revalidate to pick up
//!   a new binary's files, and a 304 costs one small round trip.
//! - `GET /admin/dashboard` and `GET /admin/dashboard/<page>` (any path below it made
//!   of `a-z 0-9 - /`): the shell `index.html`; the script picks the page from
//!   `location.pathname`.
//!
//! **What holds:** the shell and the assets contain no data and no secret, so they are
//! served without authentication; every datum comes from `/admin/api/*`, which the
//! script calls with the admin token as a bearer header (kept in session storage,
//! never in a URL or a cookie, so no cross-site request carries it). Every answer of
//! this module, 404s and 304s included, carries the strict [`CSP`]: scripts and
//! styles only from this origin, no inline script, no framing. An asset is found by
//! exact name in the compiled table, so no request path can reach the file system
//! (`..` is just a name that is not in the table).
//!
//! The server-rendered page of [`super::dashboard`] stays for `curl` and scripts: a
//! request to `/admin/dashboard/cluster` that carries an `Authorization` header (Basic
//! or Bearer) or asks `?format=static` gets it (see [`wants_static`]).

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::http::body::{full, Response};

/// One file of `gateway/ui/`.
pub struct Asset {
    /// Relative to `gateway/ui/`, `/`-separated.
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// Quoted, as sent in the `ETag` header.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The policy of every UI answer (see the module docs).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// The prefix of the asset URLs.
pub const ASSETS_PREFIX: &str = "/admin/dashboard/assets/";

/// The file `path` (relative to `gateway/ui/`), if the binary has it.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Whether `path` (below `/admin/dashboard`) names a page of the app: the shell is
/// served for it. Assets are not pages.
pub fn is_page(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/admin/dashboard") else {
        return false;
    };
    if rest.is_empty() || rest == "/" {
        return true;
    }
    let Some(page) = rest.strip_prefix('/') else {
        return false;
    };
    !page.starts_with("assets/")
        && page != "assets"
        && page.len() <= 64
        && !page.contains("//")
        && page
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
}

/// Whether a request for `/admin/dashboard/cluster` wants the server-rendered page of
/// [`super::dashboard`]: it carries credentials itself (`curl -u`, a script with a
/// bearer token) or asks for it with `?format=static`. A browser opening the UI sends
/// neither, and the app sends its token only to `/admin/api/`.
pub fn wants_static(headers: &HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
        || query.is_some_and(|q| q.split('&').any(|pair| pair == "format=static"))
}

/// Serves `GET /admin/dashboard[/<page>]`: the shell.
pub fn shell(headers: &HeaderMap) -> Response {
    match asset("index.html") {
        Some(index) => serve(index, headers),
        None => not_found(),
    }
}

/// Serves `GET /admin/dashboard/assets/<rest>`.
pub fn serve_asset(rest: &str, headers: &HeaderMap) -> Response {
    match asset(rest) {
        Some(found) => serve(found, headers),
        None => not_found(),
    }
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.trim_start_matches("W/") == asset.etag)
        });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, full(bytes::Bytes::new()))
    } else {
        (StatusCode::OK, full(bytes::Bytes::from_static(asset.bytes)))
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    secure(headers, "no-cache");
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(http::header::ETAG, HeaderValue::from_static(asset.etag));
    response
}

/// 404 for a name the binary has no file for (plain text, same headers).
fn not_found() -> Response {
    let mut response = http::Response::new(full("no such file in the admin UI\n"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    secure(headers, "no-store");
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn secure(headers: &mut HeaderMap, cache: &'static str) {
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", cache),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &HeaderMap) -> Response {
        match path.strip_prefix(ASSETS_PREFIX) {
            Some(rest) => serve_asset(rest, headers),
            None if is_page(path) => shell(headers),
            None => not_found(),
        }
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn the_shell_and_the_core_files_are_compiled_in_with_their_content_types() {
        let none = HeaderMap::new();
        for (path, content_type) in [
            ("/admin/dashboard", "text/html; charset=utf-8"),
            ("/admin/dashboard/cluster", "text/html; charset=utf-8"),
            (
                "/admin/dashboard/settings/routing",
                "text/html; charset=utf-8",
            ),
            ("/admin/dashboard/assets/app.css", "text/css; charset=utf-8"),
            (
                "/admin/dashboard/assets/js/app.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "/admin/dashboard/assets/js/pages/registry.js",
                "text/javascript; charset=utf-8",
            ),
        ] {
            let response = get(path, &none);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, "content-type"), content_type, "{path}");
            assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
            assert!(header(&response, "etag").starts_with('"'), "{path}");
        }
    }

    #[test]
    fn every_answer_carries_the_strict_csp() {
        let none = HeaderMap::new();
        let mut etag = HeaderMap::new();
        let index = asset("index.html").expect("index.html");
        etag.insert("if-none-match", HeaderValue::from_static(index.etag));
        for (path, headers, status) in [
            ("/admin/dashboard", &none, 200),
            ("/admin/dashboard/assets/js/api.js", &none, 200),
            ("/admin/dashboard/assets/nope.js", &none, 404),
            ("/admin/dashboard/assets/index.html", &etag, 304),
        ] {
            let response = get(path, headers);
            assert_eq!(response.status().as_u16(), status, "{path}");
            assert_eq!(header(&response, "content-security-policy"), CSP, "{path}");
            assert_eq!(header(&response, "x-frame-options"), "DENY");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        }
        assert!(!CSP.contains("unsafe"), "no inline script or style");
    }

    #[test]
    fn unknown_assets_and_traversal_are_404() {
        let none = HeaderMap::new();
        for rest in [
            "",
            "nope.js",
            "../Cargo.toml",
            "../src/main.rs",
            "js/../../build.rs",
            "/etc/passwd",
            "js/%2e%2e/app.js",
            "js\\app.js",
            "JS/APP.JS",
            "js/app.js\0",
        ] {
            let response = serve_asset(rest, &none);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{rest:?}");
        }
        assert!(ASSETS.iter().all(|a| !a.path.contains("..")));
    }

    #[test]
    fn pages_are_lowercase_paths_below_the_dashboard_and_never_assets() {
        for page in [
            "/admin/dashboard",
            "/admin/dashboard/",
            "/admin/dashboard/cluster",
            "/admin/dashboard/settings/routing",
            "/admin/dashboard/usage-log",
        ] {
            assert!(is_page(page), "{page}");
        }
        for other in [
            "/admin/dashboardx",
            "/admin/dashboard/assets/app.css",
            "/admin/dashboard/assets",
            "/admin/dashboard/../api/keys",
            "/admin/dashboard/a//b",
            "/admin/dashboard/Cluster",
            "/admin/api/keys",
        ] {
            assert!(!is_page(other), "{other}");
        }
    }

    #[test]
    fn a_matching_etag_answers_304_without_a_body_and_another_answers_200() {
        let index = asset("js/app.js").expect("app.js");
        for (value, status) in [
            (index.etag.to_owned(), 304),
            (format!("W/{}", index.etag), 304),
            (format!("\"other\", {}", index.etag), 304),
            ("*".to_owned(), 304),
            ("\"0000000000000000\"".to_owned(), 200),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "if-none-match",
                HeaderValue::from_str(&value).expect("ascii"),
            );
            let response = serve_asset("js/app.js", &headers);
            assert_eq!(response.status().as_u16(), status, "{value}");
            assert_eq!(header(&response, "etag"), index.etag);
            if status == 304 {
                assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(0));
            }
        }
    }

    #[test]
    fn etags_differ_between_files_and_the_shell_holds_no_inline_script() {
        let mut tags: Vec<&str> = ASSETS.iter().map(|a| a.etag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        let index = std::str::from_utf8(asset("index.html").expect("index").bytes).expect("utf-8");
        assert!(index.contains(r#"<script type="module" src="/admin/dashboard/assets/js/app.js">"#));
        assert!(!index.contains("<style"), "no inline style");
        assert_eq!(index.matches("<script").count(), 1, "one external script");
        assert!(!index.contains(" style="), "no style attributes");
    }

    #[test]
    fn the_static_page_is_for_requests_with_credentials_or_format_static() {
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic eDp5"));
        assert!(wants_static(&basic, None));
        assert!(wants_static(&HeaderMap::new(), Some("format=static")));
        assert!(wants_static(&HeaderMap::new(), Some("a=1&format=static")));
        assert!(!wants_static(&HeaderMap::new(), None));
        assert!(!wants_static(&HeaderMap::new(), Some("format=staticx")));
    }
}
