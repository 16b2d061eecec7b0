//! The `Host` check of a loopback listener (DNS rebinding).
//!
//! A page on `http://attacker.example` can make the victim's browser send requests
//! to `attacker.example` after re-pointing that name at 127.0.0.1: the browser
//! thinks it talks to the attacker's origin and lets the page read the answers, and
//! a gateway on loopback would serve them (open mode needs no key). The one thing
//! such a request cannot hide is its `Host` header, which still names the
//! attacker's domain. So a listener bound to loopback answers only requests whose
//! `Host` is `localhost` or a loopback IP literal (with or without a port); an IP
//! literal cannot be re-pointed by DNS. A request without `Host` (not a browser)
//! passes. Other listeners are reached by whatever names the operator's DNS and
//! proxies use, so they do not check.

use std::net::IpAddr;

/// Whether `host` (a `Host` header value) names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, tail)) => (inner, tail.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            // More than one colon without brackets is not a valid Host.
            Some((name, _)) if name.contains(':') => return false,
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The refusal for a request whose `Host` does not name loopback, if it does not.
pub fn check(headers: &http::HeaderMap) -> Option<crate::openai::ApiError> {
    let host = headers.get(http::header::HOST)?;
    let ok = host.to_str().is_ok_and(is_loopback_host);
    (!ok).then(|| crate::openai::ApiError {
        status: http::StatusCode::MISDIRECTED_REQUEST,
        message: "This gateway listens on loopback and answers only requests addressed to localhost, 127.0.0.1 or [::1] (the Host header names another host).".into(),
        kind: crate::openai::errors::INVALID_REQUEST,
        param: None,
        code: Some("invalid_host"),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_and_others_do_not() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.0.0.2:1234",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "10.0.0.1:8080",
            "127.0.0.1:",
            "127.0.0.1:80x",
            "[::1",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
