//! `GET /admin/dashboard/cluster`: the cluster as one HTML page for a browser.
//!
//! **Server-rendered, no JavaScript, no external assets.** The page is built from the
//! same [`Status`] and [`NodeRow`]s as `/admin/api/cluster/status` and `/nodes`, and a
//! `<meta http-equiv="refresh" content="30">` reloads it every 30 s. Why not a static
//! page that fetches the JSON: it would have to hold the admin token in JavaScript
//! (storage readable by any script on the page) to set the `Authorization` header;
//! server-side rendering needs no script at all, so the Content-Security-Policy can
//! forbid every script, and everything shown is HTML-escaped in one place ([`escape`]).
//!
//! **Authentication: the admin token, as a bearer token or as the password of HTTP
//! Basic auth** (any user name). A browser cannot put a bearer token on a navigation;
//! on a 401 with `WWW-Authenticate: Basic` it asks for a user name and password itself,
//! keeps them for the session and sends them again on every refresh — no login form, no
//! cookie, no server-side session. Basic is accepted *only here*, not on `/admin/api/`:
//! browsers attach remembered Basic credentials to any request to the origin, a
//! cross-site form POST included, so accepting them on the write API would let any web
//! page the operator visits create keys through the operator's browser (CSRF). This
//! page only reads, and another site cannot read the answer (same-origin policy;
//! framing is refused too). The token crosses the network in clear unless the gateway
//! is behind TLS — exactly as the bearer token of the admin API does.

use std::fmt::Write as _;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::cluster::status::{self, NodeRow, Status};
use crate::http::body::{full, Response};
use crate::state::AppState;

/// Seconds between automatic reloads of the page.
pub const REFRESH_SECS: u32 = 30;

/// The realm the browser shows when it asks for credentials.
const REALM: &str = r#"Basic realm="Aurora admin (password: the admin token)", charset="UTF-8""#;

/// No script of any origin, styles only inline, no framing, no forms, no base URL.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// Serves `GET /admin/dashboard/cluster` (the router has checked the method).
pub fn cluster(state: &Arc<AppState>, headers: &HeaderMap) -> Response {
    if !presents_token(state, headers) {
        return html(StatusCode::UNAUTHORIZED, unauthorized_page(), true);
    }
    let page = render(
        &status::status(&state.cluster),
        &status::nodes(&state.cluster),
    );
    html(StatusCode::OK, page, false)
}

/// Whether `Authorization` holds the admin token, as `Bearer <token>` or as the
/// password of `Basic base64(user:password)`.
pub fn presents_token(state: &AppState, headers: &HeaderMap) -> bool {
    let Some((scheme, value)) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return state.admin_token.verify(value);
    }
    scheme.eq_ignore_ascii_case("basic")
        && basic_password(value).is_some_and(|password| state.admin_token.verify(&password))
}

/// The password of a Basic credential (`base64(user:password)`), if it decodes.
fn basic_password(encoded: &str) -> Option<String> {
    let decoded = String::from_utf8(decode_base64(encoded)?).ok()?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Standard base64 (RFC 4648 §4, padding optional); `None` on any other byte.
/// Hand-written because this is the gateway's only use of base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for &c in chunk {
            bits = (bits << 6) | value(c)?;
        }
        let bytes = (bits << (6 * (4 - chunk.len()))).to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// An HTML answer with the page's security headers; `challenge` adds the Basic
/// challenge that makes a browser ask for credentials.
fn html(status: StatusCode, page: String, challenge: bool) -> Response {
    let mut response = http::Response::new(full(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if challenge {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(REALM),
        );
    }
    response
}

/// `text` with `& < > " '` escaped, safe in element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f}\
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1rem;margin:1.2rem 0 .4rem}\
.muted{color:#666}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:0}\
dt{color:#666}dd{margin:0}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;white-space:nowrap}\
th{background:#f4f4f6}.badge{display:inline-block;padding:0 .4rem;border-radius:.6rem;\
font-size:.75rem;margin-left:.3rem}.leader{background:#1f6feb;color:#fff}\
.self{background:#e5e5ea}.alive{color:#1a7f37}.suspect{color:#9a6700}\
.dead,.left{color:#cf222e}.warn{background:#fff8c5;border:1px solid #d4a72c;\
padding:.5rem .8rem;border-radius:.3rem}.ok{color:#1a7f37}.bad{color:#cf222e}";

/// A whole HTML document; `refresh` adds the automatic reload (not on the 401 page,
/// where it would make the browser ask for credentials again every 30 s).
fn page(title: &str, body: &str, refresh: bool) -> String {
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{refresh}\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

fn unauthorized_page() -> String {
    page(
        "Aurora: sign in",
        "<h1>Aurora cluster</h1>\n<p>This page needs the admin token: enter it as the \
         password (any user name) when the browser asks, or send \
         <code>Authorization: Bearer &lt;token&gt;</code>.</p>\n",
        false,
    )
}

/// The dashboard page for `status` and `nodes` (this node first).
pub fn render(status: &Status, nodes: &[NodeRow]) -> String {
    let this = nodes.first().map_or("", |n| n.name.as_str());
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Aurora cluster</h1>\n<p class=\"muted\">As seen by <b>{}</b>; this page \
         reloads every {REFRESH_SECS} s.</p>\n",
        escape(this)
    );
    summary(&mut body, status, nodes);
    warnings(&mut body, status);
    table(&mut body, nodes);
    page(&format!("Aurora cluster: {this}"), &body, true)
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "<span class=\"ok\">yes</span>"
    } else {
        "<span class=\"bad\">no</span>"
    }
}

fn summary(out: &mut String, status: &Status, nodes: &[NodeRow]) {
    let Some(d) = &status.details else {
        out.push_str(
            "<p>Clustering is <b>off</b>: this node runs alone (mode <code>single_node</code>).</p>\n",
        );
        return;
    };
    let leader = match (&d.leader, nodes.iter().find(|n| n.is_leader)) {
        (_, Some(row)) => format!(
            "{} <span class=\"muted\">{}</span>",
            escape(&row.name),
            escape(&row.numeric_id)
        ),
        (Some(id), None) => escape(id),
        (None, None) => "<span class=\"muted\">none</span>".to_owned(),
    };
    let fail_over = match (&d.failover_reason, d.can_fail_over) {
        (Some(reason), false) => format!("{}: {}", yes_no(false), escape(reason)),
        (_, can) => yes_no(can).to_owned(),
    };
    let _ = write!(
        out,
        "<h2>Summary</h2>\n<dl>\n<dt>Mode</dt><dd><code>{}</code></dd>\n\
         <dt>Alive nodes</dt><dd>{}</dd>\n<dt>Leader</dt><dd>{leader}</dd>\n\
         <dt>Epoch</dt><dd>{}</dd>\n<dt>Can fail over</dt><dd>{fail_over}</dd>\n\
         <dt>This node serves traffic</dt><dd>{}</dd>\n</dl>\n",
        escape(d.mode),
        d.node_count,
        d.epoch,
        yes_no(d.serving),
    );
}

fn warnings(out: &mut String, status: &Status) {
    let Some(d) = &status.details else { return };
    out.push_str("<h2>Drift warnings</h2>\n");
    if d.drift_warnings.is_empty() {
        out.push_str("<p class=\"muted\">None: every alive node runs this node's version and cluster settings.</p>\n");
        return;
    }
    out.push_str("<ul class=\"warn\">\n");
    for w in &d.drift_warnings {
        let _ = writeln!(out, "<li>{}</li>", escape(w));
    }
    out.push_str("</ul>\n");
}

fn table(out: &mut String, nodes: &[NodeRow]) {
    out.push_str(
        "<h2>Nodes</h2>\n<table>\n<thead><tr><th>Name</th><th>ID</th><th>Region</th>\
         <th>Zone</th><th>Advertise URL</th><th>Sync address</th><th>State</th>\
         <th>Last heartbeat</th><th>Sync lag</th></tr></thead>\n<tbody>\n",
    );
    for n in nodes {
        let mut badges = String::new();
        if n.is_leader {
            badges.push_str("<span class=\"badge leader\">leader</span>");
        }
        if n.is_self {
            badges.push_str("<span class=\"badge self\">this node</span>");
        }
        let heartbeat = match (n.is_self, n.last_heartbeat_ms_ago) {
            (true, _) => "—".to_owned(),
            (false, Some(ms)) => format!("{:.1} s ago", ms as f64 / 1000.0),
            (false, None) => "never".to_owned(),
        };
        let lag = if n.is_self {
            "—".to_owned()
        } else {
            format!("{} versions, {} ms", n.sync_lag.versions, n.sync_lag.millis)
        };
        // The configured id, with the core's numeric one beside it when they differ.
        let numeric = if n.numeric_id == n.id {
            String::new()
        } else {
            format!(" <span class=\"muted\">{}</span>", escape(&n.numeric_id))
        };
        let _ = writeln!(
            out,
            "<tr><td>{}{badges}</td><td><code>{}</code>{numeric}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{heartbeat}</td><td>{lag}</td></tr>",
            escape(&n.name),
            escape(&n.id),
            escape(&n.region),
            escape(&n.zone),
            escape(&n.advertise_url),
            escape(&n.sync_addr),
            n.state,
            n.state,
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_standard_text_with_or_without_padding() {
        assert_eq!(
            decode_base64("YWRtaW46c2VjcmV0").as_deref(),
            Some(&b"admin:secret"[..])
        );
        assert_eq!(decode_base64("OnRva2Vu").as_deref(), Some(&b":token"[..]));
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("Y"), None);
        assert_eq!(decode_base64("YQ==="), None);
        assert_eq!(decode_base64("Y-Fh"), None);
    }

    #[test]
    fn basic_password_is_everything_after_the_first_colon() {
        // "user:pa:ss"
        assert_eq!(basic_password("dXNlcjpwYTpzcw==").as_deref(), Some("pa:ss"));
        // "nocolon"
        assert_eq!(basic_password("bm9jb2xvbg=="), None);
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
