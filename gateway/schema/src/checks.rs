//! Validation helpers shared by the record families: they return a reason; the
//! caller attaches the field path.

use std::collections::BTreeSet;

use aurora_core::{RecordError, RecordId};

use crate::limits::*;

pub(crate) fn invalid(field: impl Into<String>, reason: &'static str) -> RecordError {
    RecordError::Invalid {
        field: field.into(),
        reason,
    }
}

pub(crate) type Reason = &'static str;

/// A display name: 1 to 1024 bytes, no control characters (which could forge log
/// lines or break the dashboard).
pub(crate) fn check_name(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > MAX_STR {
        return Err("at most 1024 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

pub(crate) fn check_max_str(s: &str) -> Result<(), Reason> {
    if s.len() > MAX_STR {
        return Err("at most 1024 bytes");
    }
    Ok(())
}

/// A list of ids (or names in the id namespace): at most `max` entries, each a valid
/// id, no duplicates.
pub(crate) fn check_id_list<'a>(
    field: &str,
    items: impl ExactSizeIterator<Item = &'a str>,
    max: usize,
    too_many: Reason,
) -> Result<(), RecordError> {
    if items.len() > max {
        return Err(invalid(field, too_many));
    }
    let mut seen = BTreeSet::new();
    for (i, s) in items.enumerate() {
        RecordId::check(s).map_err(|r| invalid(format!("{field}[{i}]"), r))?;
        if !seen.insert(s) {
            return Err(invalid(format!("{field}[{i}]"), "duplicate entry"));
        }
    }
    Ok(())
}

pub(crate) fn check_opt_id(field: &str, id: &Option<RecordId>) -> Result<(), RecordError> {
    match id {
        Some(id) => RecordId::check(id.as_str()).map_err(|r| invalid(field, r)),
        None => Ok(()),
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A base URL, checked by hand (core has no URL parser): `http://` or `https://`
/// (lowercase), a non-empty ASCII host (a name, an IPv4 address or a bracketed IPv6
/// literal), an optional port 1–65535, then any path and query. No whitespace or
/// control characters, no `user:pass@` (credentials would be replicated in clear)
/// and no `#fragment` (never sent to a server).
pub(crate) fn check_url(s: &str) -> Result<(), Reason> {
    if s.len() > MAX_STR {
        return Err("at most 1024 bytes");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('#') {
        return Err("must not have a #fragment");
    }
    if authority.contains('@') {
        return Err("must not contain credentials (name the key's variable in api_key_env)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unterminated IPv6 literal")?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("invalid IPv6 literal");
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 literal")?,
            ),
        };
        (addr, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("must have a host");
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("host must be ASCII letters, digits, '-', '_' and '.' (punycode for IDNs)");
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !ok {
            return Err("port must be 1 to 65535");
        }
    }
    Ok(())
}

/// Variables a provider record may never name: the node's own secrets. An admin
/// client could otherwise point a provider at a server it controls and have every
/// node send it the cluster secret as a bearer token.
pub(crate) const RESERVED_ENV: [&str; 2] = ["AURORA_ADMIN_TOKEN", "CLUSTER_SECRET"];

/// An environment variable name: `[A-Z0-9_]+`, not starting with a digit (POSIX
/// shells cannot set such a name), at most 128 bytes, and none of Aurora's own
/// cluster settings (`CLUSTER_*`) or secrets.
pub(crate) fn check_env_name(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > MAX_ENV_NAME {
        return Err("at most 128 bytes");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(
            "must be the NAME of an environment variable (A-Z, 0-9, _), never the key itself",
        );
    }
    if s.as_bytes()[0].is_ascii_digit() {
        return Err("must not start with a digit");
    }
    if s.starts_with("CLUSTER_") || RESERVED_ENV.contains(&s) {
        return Err("must not name one of Aurora's own variables (CLUSTER_*, AURORA_ADMIN_TOKEN)");
    }
    Ok(())
}

pub(crate) fn default_true() -> bool {
    true
}
