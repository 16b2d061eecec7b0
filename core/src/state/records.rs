//! Typed records of the replicated control-plane collections.
//!
//! Every node serves any request from its own copy of these records, so their schema
//! is the contract between the admin API that writes them, the store that replicates
//! them and the gateway that acts on them. The types are deliberately tighter than
//! LiteLLM's or Bifrost's config objects: money is an integer of nano-USD (never a
//! float), ids have a fixed alphabet, every string, list and map is bounded, and an
//! upstream API key can only be *named* (an environment variable), never stored.
//!
//! # Decode, then validate
//!
//! Deserialising a record checks only its shape. [`Record::validate`] (or
//! [`Record::validate_with_id`]) checks every rule and every size limit in one pass
//! over the record's (bounded) contents, stopping at the first fault, so the store
//! can refuse a record that arrived from a peer or from the admin API before it is
//! applied. Errors name the field at fault with a path in the serde shape of the
//! record, e.g. `targets[1].weight` or `kind.deny_patterns.patterns[0]`, so the admin
//! API can hand them to the user as they are.
//!
//! # Wire compatibility
//!
//! All types are postcard-compatible: no `untagged`, no `flatten`, no
//! `skip_serializing_if`. postcard encodes struct fields by position and enum variants
//! by index, so fields and variants must never be reordered or removed; a new variant
//! is appended at the end, and a new field needs a protocol-version bump.
//! `#[serde(default)]` only matters to self-describing formats (JSON, YAML) and is used
//! where the empty value is the natural one.
//!
//! # Money
//!
//! [`Money`] is a `u64` of nano-USD (10⁻⁹ USD): exact, and up to about 18.4 billion
//! USD. In human-readable formats (JSON, YAML) it is a decimal string such as
//! `"0.15"` — a string because JSON numbers are floats to most clients — and in
//! postcard it is the plain integer. [`cost`] rounds once, half-up, to the nano.

use core::fmt;
use core::str::FromStr;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Size limits enforced by `validate`. They bound what one record can cost a node
/// to hold, hash and send, whatever a peer or an admin client hands it.
pub mod limits {
    use super::Money;

    /// Longest string, in bytes, unless a field says otherwise.
    pub const MAX_STR: usize = 1024;
    /// Most elements in a list, unless a field says otherwise.
    pub const MAX_VEC: usize = 256;
    /// Most entries in a map.
    pub const MAX_MAP: usize = 64;
    /// Longest [`super::RecordId`] (and model name or alias), in bytes.
    pub const MAX_ID: usize = 128;
    /// Longest metadata key, in bytes.
    pub const MAX_METADATA_KEY: usize = 128;
    /// Longest auth-key prefix shown to operators, in bytes.
    pub const MAX_KEY_PREFIX: usize = 12;
    /// Longest environment variable name, in bytes.
    pub const MAX_ENV_NAME: usize = 128;
    /// Most weighted targets of a route.
    pub const MAX_ROUTE_TARGETS: usize = 32;
    /// Most fallbacks of a route.
    pub const MAX_FALLBACKS: usize = 8;
    /// Most guardrails bound by one workflow.
    pub const MAX_WORKFLOW_GUARDRAILS: usize = 32;
    /// Longest upstream timeout (10 minutes, enough for long generations).
    pub const MAX_TIMEOUT_MS: u32 = 600_000;
    /// Most retries of a provider or a route.
    pub const MAX_RETRIES: u8 = 10;
    /// Longest cooldown of a failing target (one day).
    pub const MAX_COOLDOWN_MS: u32 = 86_400_000;
    /// Highest price per million tokens (10,000 USD). Real prices are below 1,000 USD;
    /// the cap catches a price entered in nanos instead of USD, which would otherwise
    /// exhaust every budget at the first request.
    pub const MAX_PRICE: Money = Money::from_nanos(10_000 * Money::NANOS_PER_USD);
}

use limits::*;

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// Why a record (or a record id) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// `field` is a path in the serde shape of the record, e.g. `targets[1].weight`,
    /// `metadata["team"]` or `id` for the record's own key.
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: &'static str },
}

impl RecordError {
    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            RecordError::Invalid { field, .. } => field,
        }
    }

    /// Why the field was refused.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Invalid { reason, .. } => reason,
        }
    }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> RecordError {
    RecordError::Invalid {
        field: field.into(),
        reason,
    }
}

/// A string that names no collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown collection: expected one of auth_keys, providers, models, routes, guardrails, workflows, pricing, budgets")]
pub struct ParseCollectionError;

/// A string that is not an exact, non-negative decimal amount of USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty amount")]
    Empty,
    #[error("amounts cannot be negative")]
    Negative,
    #[error("expected a plain decimal such as \"0.15\" (digits, an optional '.' and up to 9 decimals; no sign, exponent, spaces or separators)")]
    Malformed,
    #[error("more than 9 decimals (finer than one nano-USD)")]
    TooPrecise,
    #[error("amount above 18446744073.709551615 USD")]
    Overflow,
}

// ---------------------------------------------------------------------------------
// Collections and ids
// ---------------------------------------------------------------------------------

/// The replicated collections. The order is the postcard variant index and the
/// sort order of store keys: append new collections at the end, never reorder.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    AuthKeys,
    Providers,
    Models,
    Routes,
    Guardrails,
    Workflows,
    Pricing,
    Budgets,
}

impl Collection {
    /// Every collection, in declaration order.
    pub const ALL: [Collection; 8] = [
        Collection::AuthKeys,
        Collection::Providers,
        Collection::Models,
        Collection::Routes,
        Collection::Guardrails,
        Collection::Workflows,
        Collection::Pricing,
        Collection::Budgets,
    ];

    /// The stable name used in SQLite tables, metrics labels and admin paths. It is
    /// also the serde name, so it never changes once released.
    pub const fn name(self) -> &'static str {
        match self {
            Collection::AuthKeys => "auth_keys",
            Collection::Providers => "providers",
            Collection::Models => "models",
            Collection::Routes => "routes",
            Collection::Guardrails => "guardrails",
            Collection::Workflows => "workflows",
            Collection::Pricing => "pricing",
            Collection::Budgets => "budgets",
        }
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Collection {
    type Err = ParseCollectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Collection::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or(ParseCollectionError)
    }
}

/// The key of a record within its collection: 1 to 128 bytes of
/// `[A-Za-z0-9._:/@-]`, not starting or ending with `/`.
///
/// The alphabet covers model names such as `openai/gpt-4o-mini`,
/// `accounts/fireworks/models/llama-v3` or `claude-sonnet-4@20250514` and is safe in
/// URL paths, SQLite keys, log lines and metric labels without escaping. The slash
/// rule keeps `/admin/api/models/{id}` unambiguous.
///
/// [`RecordId::new`] checks the rules; a decoded id is checked by
/// [`RecordId::validate`] or by the `validate` of the record that holds it, the same
/// "decode, then validate" pass as every other field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(String);

impl RecordId {
    /// Builds an id, refusing one that breaks the rules (the error's field is `id`).
    pub fn new(id: impl Into<String>) -> Result<RecordId, RecordError> {
        let id = RecordId(id.into());
        id.validate()?;
        Ok(id)
    }

    /// Checks the rules on any string, e.g. a model name or an alias, which share
    /// the id namespace. The error is the reason, for the caller to attach a field.
    pub fn check(s: &str) -> Result<(), &'static str> {
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.len() > MAX_ID {
            return Err("at most 128 bytes");
        }
        if !s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'-')
        }) {
            return Err("only letters, digits and . _ : / @ - are allowed");
        }
        if s.starts_with('/') || s.ends_with('/') {
            return Err("must not start or end with '/'");
        }
        Ok(())
    }

    /// Checks a decoded id (the error's field is `id`).
    pub fn validate(&self) -> Result<(), RecordError> {
        RecordId::check(&self.0).map_err(|r| invalid("id", r))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RecordId {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordId::new(s)
    }
}

impl TryFrom<String> for RecordId {
    type Error = RecordError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        RecordId::new(s)
    }
}

impl AsRef<str> for RecordId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `RecordId` be searched with a `&str` (a request's model name)
/// without allocating. Sound because the derived `Hash`, `Eq` and `Ord` of this
/// one-field newtype are exactly those of the `String` inside.
impl Borrow<str> for RecordId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------

/// An amount of US dollars in nano-USD (10⁻⁹ USD), exact and never negative.
///
/// A nano is fine enough that every published price is exact and so is the cost of
/// any number of tokens at a price with at most 3 decimals per million tokens (0.15
/// USD per million is 150 nano-USD per token); finer prices are rounded once per
/// request, to the nano (see [`cost`]). A `u64` still holds 18.4 billion USD.
/// Serialised as a decimal string in human-readable formats and as the integer
/// count of nanos in binary ones (see the module docs).
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

/// A price per million tokens, the unit every provider publishes.
pub type Price = Money;

impl Money {
    pub const NANOS_PER_USD: u64 = 1_000_000_000;
    pub const ZERO: Money = Money(0);
    pub const MAX: Money = Money(u64::MAX);

    pub const fn from_nanos(nanos: u64) -> Money {
        Money(nanos)
    }

    /// Whole dollars, or `None` above [`Money::MAX`].
    pub const fn from_usd(usd: u64) -> Option<Money> {
        match usd.checked_mul(Self::NANOS_PER_USD) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The sum, or `None` on overflow (callers decide whether that is an error).
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// The sum, capped at [`Money::MAX`]; right for spend totals, where a cap errs
    /// towards refusing requests rather than wrapping to zero.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The difference, or `None` if `other` is larger.
    pub const fn checked_sub(self, other: Money) -> Option<Money> {
        match self.0.checked_sub(other.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Parses an exact decimal amount of USD: ASCII digits, optionally a `.` and 1 to 9
    /// more digits (`"0.15"`, `"3"`, `"0.000000001"`). Signs, exponents, spaces,
    /// separators, a bare `.5` or `5.`, more than 9 decimals (even trailing zeros)
    /// and amounts above [`Money::MAX`] are refused, so what is stored is exactly
    /// what the operator wrote.
    pub fn from_decimal_str(s: &str) -> Result<Money, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Malformed);
        }
        let frac = frac.unwrap_or("");
        if frac.len() > 9 {
            return Err(MoneyError::TooPrecise);
        }
        let mut whole: u64 = 0;
        for b in int.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let mut nanos: u64 = 0;
        for i in 0..9 {
            let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            nanos = nanos * 10 + digit;
        }
        whole
            .checked_mul(Self::NANOS_PER_USD)
            .and_then(|w| w.checked_add(nanos))
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }
}

/// The shortest exact decimal: `0`, `3`, `0.15`, `0.000000001`. It parses back with
/// [`Money::from_decimal_str`] to the same value.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::NANOS_PER_USD;
        let mut frac = self.0 % Self::NANOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        // Nine digits, then drop the trailing zeros (frac > 0, so one digit stays).
        let mut digits = [b'0'; 9];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        let digits = core::str::from_utf8(&digits[..len]).map_err(|_| fmt::Error)?;
        write!(f, "{whole}.{digits}")
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${self}")
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::from_decimal_str(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Human-readable formats accept only the decimal string: a JSON or YAML number
    /// would arrive as a float (inexact) or as an integer of unclear unit.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;

        impl serde::de::Visitor<'_> for DecimalVisitor {
            type Value = Money;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of USD as a decimal string, such as \"0.15\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                Money::from_decimal_str(v).map_err(E::custom)
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(DecimalVisitor)
        } else {
            u64::deserialize(deserializer).map(Money)
        }
    }
}

/// Rounds an exact amount in units of 10⁻⁶ nano-USD to the nano, half-up, capped at
/// [`Money::MAX`].
fn round_micro_nanos(exact: u128) -> Money {
    let q = exact / 1_000_000;
    let r = exact % 1_000_000;
    let q = if r >= 500_000 { q + 1 } else { q };
    Money(u64::try_from(q).unwrap_or(u64::MAX))
}

/// The cost of `tokens` at a price of `per_million` per million tokens.
///
/// Computed exactly as `tokens × per_million / 10⁶` in `u128` (no intermediate
/// rounding, no overflow), then rounded once to the nano-USD, half-up: a remainder
/// of exactly half a nano rounds up. The rounding error is therefore at most half a
/// nano per call. A result above [`Money::MAX`] (about 18.4 billion USD, only
/// reachable with absurd inputs) is capped at `Money::MAX`, which refuses the
/// request under any budget instead of wrapping to a small amount.
pub fn cost(tokens: u64, per_million: Money) -> Money {
    round_micro_nanos(u128::from(tokens) * u128::from(per_million.0))
}

// ---------------------------------------------------------------------------------
// Validation helpers (they return a reason; the caller attaches the field path)
// ---------------------------------------------------------------------------------

type Reason = &'static str;

/// A display name: 1 to 1024 bytes, no control characters (which could forge log
/// lines or break the dashboard).
fn check_name(s: &str) -> Result<(), Reason> {
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

fn check_max_str(s: &str) -> Result<(), Reason> {
    if s.len() > MAX_STR {
        return Err("at most 1024 bytes");
    }
    Ok(())
}

/// A list of ids (or names in the id namespace): at most `max` entries, each a valid
/// id, no duplicates.
fn check_id_list<'a>(
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

fn check_opt_id(field: &str, id: &Option<RecordId>) -> Result<(), RecordError> {
    match id {
        Some(id) => RecordId::check(id.as_str()).map_err(|r| invalid(field, r)),
        None => Ok(()),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A base URL, checked by hand (core has no URL parser): `http://` or `https://`
/// (lowercase), a non-empty ASCII host (a name, an IPv4 address or a bracketed IPv6
/// literal), an optional port 1–65535, then any path and query. No whitespace or
/// control characters, no `user:pass@` (credentials would be replicated in clear)
/// and no `#fragment` (never sent to a server).
fn check_url(s: &str) -> Result<(), Reason> {
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
const RESERVED_ENV: [&str; 2] = ["AURORA_ADMIN_TOKEN", "CLUSTER_SECRET"];

/// An environment variable name: `[A-Z0-9_]+`, not starting with a digit (POSIX
/// shells cannot set such a name), at most 128 bytes, and none of Aurora's own
/// cluster settings (`CLUSTER_*`) or secrets.
fn check_env_name(s: &str) -> Result<(), Reason> {
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

fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------------------------
// Auth keys
// ---------------------------------------------------------------------------------

/// A client API key. Only the SHA-256 of the secret is replicated: the gateway
/// hashes the presented bearer token and compares digests in constant time. Plain
/// SHA-256 is enough because secrets are long random strings, not passwords.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKey {
    /// Shown to operators; 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret: exactly 64 characters of `[0-9a-f]`.
    pub secret_hash: String,
    /// The first characters of the secret (e.g. `sk-aur-3f9a`), so operators can
    /// tell keys apart: at most 12 bytes of printable ASCII, no spaces.
    pub key_prefix: String,
    /// Public model names this key may call; empty means all. At most 256, each in
    /// the id alphabet, no duplicates.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// The budget charged for this key's requests.
    pub budget_id: Option<RecordId>,
    /// The guardrails and routing policy applied to this key's requests.
    pub workflow_id: Option<RecordId>,
    /// Requests per minute; at least 1 when set.
    pub rpm_limit: Option<u32>,
    /// Tokens per minute; at least 1 when set.
    pub tpm_limit: Option<u32>,
    /// Wall-clock expiry in Unix milliseconds; the key is refused from this instant.
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    /// Free-form labels (team, owner...): at most 64 entries, keys 1 to 128 bytes
    /// without control characters, values at most 1024 bytes.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Most requests of this key in flight at once on one node; at least 1 when set.
    /// Added after the first schema: a key with it set is written as the appended
    /// wire variant `AuthKeyV2` (see [`Record`]), a key without it in the original
    /// layout, so stored entries and older peers keep reading keys that do not use it.
    #[serde(default)]
    pub max_parallel_requests: Option<u32>,
}

impl AuthKey {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        if !is_sha256_hex(&self.secret_hash) {
            return Err(invalid(
                "secret_hash",
                "must be 64 lowercase hex digits (a SHA-256 digest, never the secret)",
            ));
        }
        if self.key_prefix.len() > MAX_KEY_PREFIX {
            return Err(invalid("key_prefix", "at most 12 bytes"));
        }
        if !self.key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "key_prefix",
                "must be printable ASCII without spaces",
            ));
        }
        check_id_list(
            "allowed_models",
            self.allowed_models.iter().map(String::as_str),
            MAX_VEC,
            "at most 256 models",
        )?;
        check_opt_id("budget_id", &self.budget_id)?;
        check_opt_id("workflow_id", &self.workflow_id)?;
        if self.rpm_limit == Some(0) {
            return Err(invalid(
                "rpm_limit",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.tpm_limit == Some(0) {
            return Err(invalid(
                "tpm_limit",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.max_parallel_requests == Some(0) {
            return Err(invalid(
                "max_parallel_requests",
                "must be at least 1 (set `disabled` to block a key)",
            ));
        }
        if self.metadata.len() > MAX_MAP {
            return Err(invalid("metadata", "at most 64 entries"));
        }
        for (k, v) in &self.metadata {
            if k.is_empty() || k.len() > MAX_METADATA_KEY || k.chars().any(char::is_control) {
                return Err(invalid(
                    "metadata",
                    "keys must be 1 to 128 bytes without control characters",
                ));
            }
            check_max_str(v).map_err(|r| invalid(format!("metadata[{k:?}]"), r))?;
        }
        Ok(())
    }

    /// Whether the key has expired at wall-clock time `wall_ms` (expiry is inclusive).
    pub fn is_expired(&self, wall_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| wall_ms >= at)
    }

    /// Whether the key may call the public model name `model` (empty list: any).
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }
}

// ---------------------------------------------------------------------------------
// Providers and models
// ---------------------------------------------------------------------------------

/// The upstream protocol a provider speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `/chat/completions` of OpenAI and the many servers that copy it (vLLM,
    /// Ollama, Groq, ...).
    OpenAiCompatible,
    /// Anthropic's Messages API, translated both ways by the gateway.
    Anthropic,
    /// The gateway's built-in deterministic mock; it needs no URL or key.
    Mock,
}

/// An upstream endpoint. The record id is the provider's name (the `openai` of
/// `openai/gpt-4o-mini`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// `http(s)://host[:port][/path][?query]`; required unless `kind` is `mock`, for
    /// which it may be empty.
    pub base_url: String,
    /// The NAME of the environment variable that holds the upstream key on each
    /// node. The key itself is never replicated.
    pub api_key_env: Option<String>,
    /// Per attempt, 1 to 600,000 ms.
    pub timeout_ms: u32,
    /// Retries per target on 429/5xx/timeouts, at most 10.
    pub max_retries: u8,
    /// How long a failing target is skipped, at most one day; 0 disables cooldown.
    pub cooldown_ms: u32,
}

impl Provider {
    pub fn validate(&self) -> Result<(), RecordError> {
        if !(self.kind == ProviderKind::Mock && self.base_url.is_empty()) {
            check_url(&self.base_url).map_err(|r| invalid("base_url", r))?;
        }
        if let Some(env) = &self.api_key_env {
            check_env_name(env).map_err(|r| invalid("api_key_env", r))?;
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(invalid("timeout_ms", "must be 1 to 600000"));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(invalid("max_retries", "at most 10"));
        }
        if self.cooldown_ms > MAX_COOLDOWN_MS {
            return Err(invalid("cooldown_ms", "at most 86400000 (one day)"));
        }
        Ok(())
    }
}

/// A model clients can name. The record id is its public name (by convention
/// `provider/model`); aliases share the same namespace as model and route names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub provider_id: RecordId,
    /// The id sent upstream (`gpt-4o-mini`, `claude-sonnet-4-5`): 1 to 1024 bytes,
    /// no whitespace or control characters.
    pub upstream_model: String,
    /// Other public names: at most 256, id alphabet, no duplicates, not the model's
    /// own name.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Tokens; at least 1 when known.
    pub context_window: Option<u32>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Model {
    pub fn validate(&self) -> Result<(), RecordError> {
        self.provider_id
            .validate()
            .map_err(|e| invalid("provider_id", e.reason()))?;
        check_max_str(&self.upstream_model).map_err(|r| invalid("upstream_model", r))?;
        if self.upstream_model.is_empty() {
            return Err(invalid("upstream_model", "must not be empty"));
        }
        if self
            .upstream_model
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "upstream_model",
                "must not contain whitespace or control characters",
            ));
        }
        check_id_list(
            "aliases",
            self.aliases.iter().map(String::as_str),
            MAX_VEC,
            "at most 256 aliases",
        )?;
        if self.context_window == Some(0) {
            return Err(invalid("context_window", "must be at least 1"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------

/// One weighted destination of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// A record of the `models` collection (an id, not an alias).
    pub model_id: RecordId,
    /// Share of traffic relative to the other targets; at least 1.
    pub weight: u32,
}

/// A public model name that spreads requests over weighted model targets and falls
/// back, in order, to other models when every target failed. The record id is the
/// public name it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// 1 to 32 targets, no model twice (merge their weights instead).
    pub targets: Vec<RouteTarget>,
    /// At most 8 models, no duplicates, none also a target.
    #[serde(default)]
    pub fallbacks: Vec<RecordId>,
    /// Extra attempts over the targets before the fallbacks, at most 10.
    pub retries: u8,
}

impl Route {
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.targets.is_empty() {
            return Err(invalid("targets", "must have at least one target"));
        }
        if self.targets.len() > MAX_ROUTE_TARGETS {
            return Err(invalid("targets", "at most 32 targets"));
        }
        for (i, t) in self.targets.iter().enumerate() {
            RecordId::check(t.model_id.as_str())
                .map_err(|r| invalid(format!("targets[{i}].model_id"), r))?;
            if self.targets[..i].iter().any(|o| o.model_id == t.model_id) {
                return Err(invalid(
                    format!("targets[{i}].model_id"),
                    "duplicate target",
                ));
            }
            if t.weight == 0 {
                return Err(invalid(
                    format!("targets[{i}].weight"),
                    "must be at least 1",
                ));
            }
        }
        check_id_list(
            "fallbacks",
            self.fallbacks.iter().map(RecordId::as_str),
            MAX_FALLBACKS,
            "at most 8 fallbacks",
        )?;
        for (i, f) in self.fallbacks.iter().enumerate() {
            if self.targets.iter().any(|t| &t.model_id == f) {
                return Err(invalid(format!("fallbacks[{i}]"), "is already a target"));
            }
        }
        if self.retries > MAX_RETRIES {
            return Err(invalid("retries", "at most 10"));
        }
        Ok(())
    }

    /// The sum of the weights, in `u64` so that 32 weights of `u32::MAX` cannot
    /// overflow: pick a target by drawing in `0..total_weight()`.
    pub fn total_weight(&self) -> u64 {
        self.targets.iter().map(|t| u64::from(t.weight)).sum()
    }
}

// ---------------------------------------------------------------------------------
// Guardrails and workflows
// ---------------------------------------------------------------------------------

/// What a guardrail checks. Each kind must do something: a deny list has at least
/// one pattern, a redaction at least one category, an allow list at least one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GuardrailKind {
    /// Refuse a request whose input contains any of the substrings (1 to 256
    /// patterns, each 1 to 1024 bytes). Plain substrings, not regexes: matching
    /// stays linear and a pattern cannot be a ReDoS.
    DenyPatterns {
        patterns: Vec<String>,
        /// Compare after lowercasing both sides.
        #[serde(default)]
        case_insensitive: bool,
    },
    /// Refuse a request whose input is longer than `max` characters (at least 1).
    MaxInputChars { max: u32 },
    /// Rewrite matches of the chosen categories in requests before they go upstream.
    Redact {
        emails: bool,
        phone_numbers: bool,
        /// Strings that look like API keys or tokens.
        secrets: bool,
    },
    /// Refuse any model not in the list (1 to 256 public names, no duplicates).
    AllowedModels { models: Vec<String> },
}

impl GuardrailKind {
    /// Checks the parameters; paths start with `kind.` and the variant's serde name.
    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            GuardrailKind::DenyPatterns { patterns, .. } => {
                const F: &str = "kind.deny_patterns.patterns";
                if patterns.is_empty() {
                    return Err(invalid(F, "must have at least one pattern"));
                }
                if patterns.len() > MAX_VEC {
                    return Err(invalid(F, "at most 256 patterns"));
                }
                for (i, p) in patterns.iter().enumerate() {
                    if p.is_empty() {
                        return Err(invalid(format!("{F}[{i}]"), "must not be empty"));
                    }
                    check_max_str(p).map_err(|r| invalid(format!("{F}[{i}]"), r))?;
                }
            }
            GuardrailKind::MaxInputChars { max } => {
                if *max == 0 {
                    return Err(invalid("kind.max_input_chars.max", "must be at least 1"));
                }
            }
            GuardrailKind::Redact {
                emails,
                phone_numbers,
                secrets,
            } => {
                if !(*emails || *phone_numbers || *secrets) {
                    return Err(invalid(
                        "kind.redact",
                        "must enable at least one of emails, phone_numbers, secrets",
                    ));
                }
            }
            GuardrailKind::AllowedModels { models } => {
                const F: &str = "kind.allowed_models.models";
                if models.is_empty() {
                    return Err(invalid(F, "must list at least one model"));
                }
                check_id_list(
                    F,
                    models.iter().map(String::as_str),
                    MAX_VEC,
                    "at most 256 models",
                )?;
            }
        }
        Ok(())
    }
}

/// A check applied to requests. The record id is its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    pub kind: GuardrailKind,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Guardrail {
    pub fn validate(&self) -> Result<(), RecordError> {
        self.kind.validate()
    }
}

/// How a workflow picks among a route's targets.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// At random, in proportion to the weights.
    Weighted,
    /// In the listed order; the next target only when the previous one failed.
    Ordered,
    /// The target with the fewest requests in flight on this node.
    LeastBusy,
}

/// What an auth key's requests go through: guardrails in order, then routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Applied in this order: at most 32, no duplicates.
    #[serde(default)]
    pub guardrails: Vec<RecordId>,
    pub routing: RoutingPolicy,
}

impl Workflow {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        check_id_list(
            "guardrails",
            self.guardrails.iter().map(RecordId::as_str),
            MAX_WORKFLOW_GUARDRAILS,
            "at most 32 guardrails",
        )
    }
}

// ---------------------------------------------------------------------------------
// Pricing and budgets
// ---------------------------------------------------------------------------------

/// Prices of one model, per million tokens. The record id is the model's id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub input_per_million: Price,
    pub output_per_million: Price,
    /// Input tokens served from the provider's prompt cache; billed at the input
    /// price when unset.
    pub cached_input_per_million: Option<Price>,
}

impl Pricing {
    pub fn validate(&self) -> Result<(), RecordError> {
        const REASON: &str = "at most 10000 USD per million tokens (prices are in USD, not nanos)";
        for (field, price) in [
            ("input_per_million", Some(self.input_per_million)),
            ("output_per_million", Some(self.output_per_million)),
            ("cached_input_per_million", self.cached_input_per_million),
        ] {
            if price.is_some_and(|p| p > MAX_PRICE) {
                return Err(invalid(field, REASON));
            }
        }
        Ok(())
    }

    /// The cost of one request. `input_tokens` are the *uncached* input tokens
    /// (OpenAI's `prompt_tokens − prompt_tokens_details.cached_tokens`; Anthropic's
    /// `input_tokens`), `cached_input_tokens` those read from the cache.
    ///
    /// The three products are summed exactly and rounded once, half-up, so the
    /// result is within half a nano of the true cost (see [`cost`]).
    pub fn cost(&self, input_tokens: u64, cached_input_tokens: u64, output_tokens: u64) -> Money {
        let cached_price = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        let exact = (u128::from(input_tokens) * u128::from(self.input_per_million.0))
            .saturating_add(u128::from(cached_input_tokens) * u128::from(cached_price.0))
            .saturating_add(u128::from(output_tokens) * u128::from(self.output_per_million.0));
        round_micro_nanos(exact)
    }
}

/// The window a budget's spend and request count accumulate over before resetting.
/// Windows are aligned to UTC: hours, days, weeks starting on Monday, calendar months.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    /// Never resets.
    Total,
}

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
/// 1970-01-01 was a Thursday: the Monday-based week containing it began 3 days
/// earlier, on 1969-12-29.
const EPOCH_WEEKDAY_FROM_MONDAY: u64 = 3;

impl BudgetPeriod {
    /// The number of the period that contains the Unix wall-clock time `wall_ms`:
    /// periods since the one containing the epoch (hours, days, Monday-based weeks or
    /// calendar months of 1970-01 onwards, in UTC; always 0 for `Total`).
    ///
    /// Usage counters are keyed by `(budget, period index)`, so every node files a
    /// request under the same key whatever its time zone; nodes whose clocks disagree
    /// near a boundary file it under adjacent periods, which the counters tolerate.
    pub fn index(self, wall_ms: u64) -> u64 {
        match self {
            BudgetPeriod::Hourly => wall_ms / MS_PER_HOUR,
            BudgetPeriod::Daily => wall_ms / MS_PER_DAY,
            BudgetPeriod::Weekly => (wall_ms / MS_PER_DAY + EPOCH_WEEKDAY_FROM_MONDAY) / 7,
            BudgetPeriod::Monthly => {
                let (y, m, _) = civil_from_days(wall_ms / MS_PER_DAY);
                (y - 1970) * 12 + u64::from(m - 1)
            }
            BudgetPeriod::Total => 0,
        }
    }

    /// The first millisecond of period `index` (the inverse of [`BudgetPeriod::index`]),
    /// e.g. for a "resets at" header: period `i` ends where `start_ms(i + 1)` begins.
    /// Week 0 began before the epoch and is reported as 0. `None` when the start is
    /// past `u64::MAX` ms, and for any `Total` index but 0.
    pub fn start_ms(self, index: u64) -> Option<u64> {
        match self {
            BudgetPeriod::Hourly => index.checked_mul(MS_PER_HOUR),
            BudgetPeriod::Daily => index.checked_mul(MS_PER_DAY),
            BudgetPeriod::Weekly => index
                .checked_mul(MS_PER_WEEK)
                .map(|ms| ms.saturating_sub(EPOCH_WEEKDAY_FROM_MONDAY * MS_PER_DAY)),
            BudgetPeriod::Monthly => {
                // u64::MAX ms is about 584.5 million years: beyond this many months the
                // start cannot be represented, and refusing early keeps the
                // arithmetic below far from overflow.
                const MAX_MONTH_INDEX: u64 = 600_000_000 * 12;
                if index > MAX_MONTH_INDEX {
                    return None;
                }
                let days = days_from_civil(1970 + index / 12, (index % 12) as u32 + 1, 1);
                days.checked_mul(MS_PER_DAY)
            }
            BudgetPeriod::Total => (index == 0).then_some(0),
        }
    }
}

/// Civil date (year, month 1–12, day 1–31) of `days` since 1970-01-01, proleptic
/// Gregorian, after Howard Hinnant's `civil_from_days`, restricted to dates from the
/// epoch on so that unsigned arithmetic suffices. Eras are 400-year cycles of
/// 146,097 days starting on March 1, which puts the leap day at the end of a year.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date on or after the epoch (Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
fn days_from_civil(y: u64, m: u32, d: u32) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = u64::from(if m > 2 { m - 3 } else { m + 9 }); // [0, 11]
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// A spending and/or request limit shared by the keys that name it, enforced
/// cluster-wide from the per-node usage counters of the current period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Spend allowed per period; `None` tracks spend without a limit, `Some(ZERO)`
    /// refuses every request.
    pub limit: Option<Money>,
    /// Requests allowed per period; `None` means unlimited.
    pub max_requests: Option<u64>,
    pub period: BudgetPeriod,
}

impl Budget {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))
    }
}

// ---------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------

/// A value of any collection, as the store holds and replicates it. The variant
/// order is the postcard index and matches [`Collection`]: append only.
///
/// # Evolving a record
///
/// postcard has no field defaults, so a field added to a record changes its bytes.
/// The binary form therefore goes through [`super::record_wire`]: a record whose new fields hold
/// their empty value is written exactly as before (stored entries and older peers
/// read it unchanged), and one that uses a new field is written as an appended
/// variant (`AuthKeyV2` at index 8 for [`AuthKey::max_parallel_requests`]), which
/// only builds that know it decode. Human-readable formats (JSON, YAML) keep the
/// plain shape, with `#[serde(default)]` on the new field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    AuthKey(AuthKey),
    Provider(Provider),
    Model(Model),
    Route(Route),
    Guardrail(Guardrail),
    Workflow(Workflow),
    Pricing(Pricing),
    Budget(Budget),
}

impl Record {
    /// The collection this record belongs to.
    pub fn collection(&self) -> Collection {
        match self {
            Record::AuthKey(_) => Collection::AuthKeys,
            Record::Provider(_) => Collection::Providers,
            Record::Model(_) => Collection::Models,
            Record::Route(_) => Collection::Routes,
            Record::Guardrail(_) => Collection::Guardrails,
            Record::Workflow(_) => Collection::Workflows,
            Record::Pricing(_) => Collection::Pricing,
            Record::Budget(_) => Collection::Budgets,
        }
    }

    /// Checks every rule and size limit of the record. Field paths are relative to
    /// the inner record (what the admin API receives at `/admin/api/{collection}`).
    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            Record::AuthKey(r) => r.validate(),
            Record::Provider(r) => r.validate(),
            Record::Model(r) => r.validate(),
            Record::Route(r) => r.validate(),
            Record::Guardrail(r) => r.validate(),
            Record::Workflow(r) => r.validate(),
            Record::Pricing(r) => r.validate(),
            Record::Budget(r) => r.validate(),
        }
    }

    /// [`Record::validate`] plus the rules that involve the record's key: the id
    /// itself (field `id`), a model's aliases differ from its name, and a route
    /// never targets or falls back to its own name (routes do not chain).
    pub fn validate_with_id(&self, id: &RecordId) -> Result<(), RecordError> {
        id.validate()?;
        self.validate()?;
        match self {
            Record::Model(m) => {
                if let Some(i) = m.aliases.iter().position(|a| a == id.as_str()) {
                    return Err(invalid(
                        format!("aliases[{i}]"),
                        "must differ from the model's own name",
                    ));
                }
            }
            Record::Route(r) => {
                if let Some(i) = r.targets.iter().position(|t| &t.model_id == id) {
                    return Err(invalid(
                        format!("targets[{i}].model_id"),
                        "must not be the route itself",
                    ));
                }
                if let Some(i) = r.fallbacks.iter().position(|f| f == id) {
                    return Err(invalid(
                        format!("fallbacks[{i}]"),
                        "must not be the route itself",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The records this one names by id, with their collections. Replication cannot
    /// keep references intact (a concurrent delete wins on another node), so the
    /// gateway must treat a dangling one as missing; the admin API can use this to
    /// warn at write time.
    pub fn references(&self) -> Vec<(Collection, &RecordId)> {
        match self {
            Record::AuthKey(k) => k
                .budget_id
                .iter()
                .map(|id| (Collection::Budgets, id))
                .chain(k.workflow_id.iter().map(|id| (Collection::Workflows, id)))
                .collect(),
            Record::Model(m) => vec![(Collection::Providers, &m.provider_id)],
            Record::Route(r) => r
                .targets
                .iter()
                .map(|t| &t.model_id)
                .chain(&r.fallbacks)
                .map(|id| (Collection::Models, id))
                .collect(),
            Record::Workflow(w) => w
                .guardrails
                .iter()
                .map(|id| (Collection::Guardrails, id))
                .collect(),
            Record::Provider(_) | Record::Guardrail(_) | Record::Pricing(_) | Record::Budget(_) => {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> RecordId {
        RecordId::new(s).unwrap()
    }

    fn usd(s: &str) -> Money {
        Money::from_decimal_str(s).unwrap()
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn auth_key() -> AuthKey {
        AuthKey {
            name: "team-a production".into(),
            secret_hash: HASH.into(),
            key_prefix: "sk-aur-3f9a".into(),
            allowed_models: vec!["chat".into(), "openai/gpt-4o-mini".into()],
            budget_id: Some(id("team-a")),
            workflow_id: Some(id("default")),
            rpm_limit: Some(600),
            tpm_limit: Some(100_000),
            expires_at_ms: Some(1_776_124_800_000),
            disabled: false,
            metadata: BTreeMap::from([("owner".into(), "alice@example.com".into())]),
            max_parallel_requests: None,
        }
    }

    fn provider() -> Provider {
        Provider {
            kind: ProviderKind::OpenAiCompatible,
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            timeout_ms: 120_000,
            max_retries: 2,
            cooldown_ms: 10_000,
        }
    }

    fn model() -> Model {
        Model {
            provider_id: id("openai"),
            upstream_model: "gpt-4o-mini".into(),
            aliases: vec!["fast".into()],
            context_window: Some(128_000),
            enabled: true,
        }
    }

    fn route() -> Route {
        Route {
            targets: vec![
                RouteTarget {
                    model_id: id("openai/gpt-4o-mini"),
                    weight: 3,
                },
                RouteTarget {
                    model_id: id("claude/sonnet"),
                    weight: 1,
                },
            ],
            fallbacks: vec![id("mock/gpt-4o-mini")],
            retries: 1,
        }
    }

    fn guardrails() -> Vec<Guardrail> {
        vec![
            Guardrail {
                kind: GuardrailKind::DenyPatterns {
                    patterns: vec!["ignore previous instructions".into()],
                    case_insensitive: true,
                },
                enabled: true,
            },
            Guardrail {
                kind: GuardrailKind::MaxInputChars { max: 100_000 },
                enabled: true,
            },
            Guardrail {
                kind: GuardrailKind::Redact {
                    emails: true,
                    phone_numbers: false,
                    secrets: true,
                },
                enabled: false,
            },
            Guardrail {
                kind: GuardrailKind::AllowedModels {
                    models: vec!["chat".into(), "fast".into()],
                },
                enabled: true,
            },
        ]
    }

    fn workflow() -> Workflow {
        Workflow {
            name: "default".into(),
            guardrails: vec![id("no-jailbreak"), id("redact-pii")],
            routing: RoutingPolicy::Weighted,
        }
    }

    fn pricing() -> Pricing {
        Pricing {
            input_per_million: usd("0.15"),
            output_per_million: usd("0.6"),
            cached_input_per_million: Some(usd("0.075")),
        }
    }

    fn budget() -> Budget {
        Budget {
            name: "team A monthly".into(),
            limit: Some(usd("250")),
            max_requests: Some(1_000_000),
            period: BudgetPeriod::Monthly,
        }
    }

    /// One valid sample of every record, in collection order.
    fn samples() -> Vec<Record> {
        let mut v = vec![
            Record::AuthKey(auth_key()),
            Record::Provider(provider()),
            Record::Model(model()),
            Record::Route(route()),
        ];
        v.extend(guardrails().into_iter().map(Record::Guardrail));
        v.extend([
            Record::Workflow(workflow()),
            Record::Pricing(pricing()),
            Record::Budget(budget()),
        ]);
        v
    }

    /// Applies `mutate` to a copy of the valid `base` and expects `check` to refuse it
    /// naming `field`.
    #[track_caller]
    fn refused<T: Clone>(
        base: &T,
        check: impl Fn(&T) -> Result<(), RecordError>,
        field: &str,
        mutate: impl FnOnce(&mut T),
    ) {
        let mut r = base.clone();
        mutate(&mut r);
        match check(&r) {
            Err(e) => assert_eq!(e.field(), field, "wrong field for {e}"),
            Ok(()) => panic!("expected `{field}` to be refused"),
        }
    }

    // ----- collections and ids -----

    #[test]
    fn collection_names_are_stable_and_parse_back() {
        let names: Vec<_> = Collection::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "auth_keys",
                "providers",
                "models",
                "routes",
                "guardrails",
                "workflows",
                "pricing",
                "budgets"
            ]
        );
        for c in Collection::ALL {
            assert_eq!(c.name().parse::<Collection>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!("AuthKeys".parse::<Collection>(), Err(ParseCollectionError));
        assert_eq!("auth_key".parse::<Collection>(), Err(ParseCollectionError));
        assert_eq!("".parse::<Collection>(), Err(ParseCollectionError));
    }

    #[test]
    fn record_collection_matches_variant_order() {
        let mut seen = Vec::new();
        for r in samples() {
            if seen.last() != Some(&r.collection()) {
                seen.push(r.collection());
            }
        }
        assert_eq!(seen, Collection::ALL);
    }

    #[test]
    fn record_id_rules() {
        for ok in [
            "a",
            "openai/gpt-4o-mini",
            "accounts/fireworks/models/llama-v3",
            "claude-sonnet-4@20250514",
            "ns:key_1.v2",
            &"x".repeat(128),
        ] {
            assert!(RecordId::new(ok).is_ok(), "{ok:?}");
        }
        for (bad, reason) in [
            ("", "must not be empty"),
            (&"x".repeat(129), "at most 128 bytes"),
            (
                "has space",
                "only letters, digits and . _ : / @ - are allowed",
            ),
            ("é", "only letters, digits and . _ : / @ - are allowed"),
            ("a*", "only letters, digits and . _ : / @ - are allowed"),
            ("/lead", "must not start or end with '/'"),
            ("trail/", "must not start or end with '/'"),
            ("/", "must not start or end with '/'"),
        ] {
            assert_eq!(
                RecordId::new(bad),
                Err(invalid("id", reason)),
                "{bad:?} should be refused"
            );
        }
        let r: RecordId = "a/b".parse().unwrap();
        assert_eq!(r.to_string(), "a/b");
        assert_eq!(
            RecordId::try_from(String::from("a b")).unwrap_err().field(),
            "id"
        );
        // Borrow<str> lets maps be searched by &str.
        let map = BTreeMap::from([(id("k"), 1)]);
        assert_eq!(map.get("k"), Some(&1));
    }

    #[test]
    fn decoded_record_id_is_checked_by_validate() {
        let bad: RecordId =
            postcard::from_bytes(&postcard::to_allocvec("no spaces").unwrap()).unwrap();
        assert_eq!(bad.validate().unwrap_err().field(), "id");
    }

    // ----- money -----

    #[test]
    fn money_parses_exactly() {
        for (s, nanos) in [
            ("0", 0),
            ("0.15", 150_000_000),
            ("0.6", 600_000_000),
            ("3", 3_000_000_000),
            ("0.000000001", 1),
            ("1.000000000", 1_000_000_000),
            ("007.50", 7_500_000_000),
            ("18446744073.709551615", u64::MAX),
        ] {
            assert_eq!(
                Money::from_decimal_str(s),
                Ok(Money::from_nanos(nanos)),
                "{s}"
            );
        }
    }

    #[test]
    fn money_rejects_inexact_or_malformed() {
        use MoneyError::*;
        for (s, err) in [
            ("", Empty),
            ("-1", Negative),
            ("-0.5", Negative),
            ("+1", Malformed),
            ("1e3", Malformed),
            ("1E-3", Malformed),
            ("1.5e2", Malformed),
            (".5", Malformed),
            ("5.", Malformed),
            (".", Malformed),
            (" 1", Malformed),
            ("1 ", Malformed),
            ("1,000", Malformed),
            ("1_000", Malformed),
            ("1.2.3", Malformed),
            ("0x10", Malformed),
            ("NaN", Malformed),
            ("inf", Malformed),
            ("١", Malformed),
            ("0.0000000001", TooPrecise),
            ("0.1500000000", TooPrecise),
            ("18446744073.709551616", Overflow),
            ("18446744074", Overflow),
            ("99999999999999999999999", Overflow),
        ] {
            assert_eq!(Money::from_decimal_str(s), Err(err), "{s:?}");
        }
    }

    #[test]
    fn money_prints_minimal_decimals() {
        for (nanos, s) in [
            (0, "0"),
            (1, "0.000000001"),
            (10, "0.00000001"),
            (150_000_000, "0.15"),
            (1_000_000_000, "1"),
            (1_500_000_000, "1.5"),
            (123_456_789_012, "123.456789012"),
            (u64::MAX, "18446744073.709551615"),
        ] {
            assert_eq!(Money::from_nanos(nanos).to_string(), s);
        }
        assert_eq!(format!("{:?}", usd("0.15")), "$0.15");
    }

    #[test]
    fn money_arithmetic() {
        assert_eq!(usd("0.1").checked_add(usd("0.2")), Some(usd("0.3")));
        assert_eq!(Money::MAX.checked_add(Money::from_nanos(1)), None);
        assert_eq!(Money::MAX.saturating_add(usd("1")), Money::MAX);
        assert_eq!(usd("1").checked_sub(usd("0.25")), Some(usd("0.75")));
        assert_eq!(usd("0.25").checked_sub(usd("1")), None);
        assert_eq!(Money::from_usd(5), Some(usd("5")));
        assert_eq!(Money::from_usd(u64::MAX), None);
        assert!(Money::ZERO.is_zero() && Money::default().is_zero());
    }

    #[test]
    fn money_serde_is_decimal_string_when_human_readable() {
        use serde::de::value::{Error, StrDeserializer, U64Deserializer};
        use serde::de::IntoDeserializer;
        let d: StrDeserializer<Error> = "0.15".into_deserializer();
        assert_eq!(Money::deserialize(d), Ok(usd("0.15")));
        let d: StrDeserializer<Error> = "1e3".into_deserializer();
        assert!(Money::deserialize(d).is_err());
        // A bare number in JSON/YAML is refused: float or unclear unit.
        let d: U64Deserializer<Error> = 15u64.into_deserializer();
        assert!(Money::deserialize(d).is_err());
        // postcard (not human-readable) carries the integer of nanos.
        let bytes = postcard::to_allocvec(&usd("0.15")).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&150_000_000u64).unwrap());
        assert_eq!(postcard::from_bytes::<Money>(&bytes), Ok(usd("0.15")));
    }

    proptest! {
        #[test]
        fn money_display_round_trips(n in any::<u64>()) {
            let m = Money::from_nanos(n);
            prop_assert_eq!(Money::from_decimal_str(&m.to_string()), Ok(m));
        }

        #[test]
        fn money_parse_round_trips(whole in 0u64..18_446_744_073, frac in 0u64..1_000_000_000, width in 1usize..=9) {
            let frac = frac % 10u64.pow(width as u32);
            let s = format!("{whole}.{frac:0width$}");
            let m = Money::from_decimal_str(&s).unwrap();
            prop_assert_eq!(m.nanos(), whole * 1_000_000_000 + frac * 10u64.pow(9 - width as u32));
        }

        #[test]
        fn cost_is_within_half_a_nano(tokens in any::<u64>(), nanos in 0u64..=MAX_PRICE.nanos()) {
            let exact = u128::from(tokens) * u128::from(nanos); // in 1e-6 nano
            let c = u128::from(cost(tokens, Money::from_nanos(nanos)).nanos());
            if c < u128::from(u64::MAX) {
                let scaled = c * 1_000_000;
                // half-up: exact - 0.5 nano <= c < exact + 0.5 nano
                prop_assert!(scaled + 500_000 > exact && scaled <= exact + 500_000);
            }
        }
    }

    // ----- cost -----

    #[test]
    fn cost_is_exact() {
        assert_eq!(cost(1_000_000, usd("0.15")), usd("0.15"));
        assert_eq!(cost(1_000, usd("0.15")), usd("0.00015"));
        assert_eq!(cost(0, usd("10")), Money::ZERO);
        assert_eq!(cost(123, Money::ZERO), Money::ZERO);
        // 1,234,567 tokens at 2.5 USD/M = 3.0864175 USD exactly.
        assert_eq!(cost(1_234_567, usd("2.5")), usd("3.0864175"));
        // The largest inputs fit in u128 without overflow.
        assert_eq!(cost(u64::MAX, Money::from_nanos(1_000_000)), Money::MAX);
        assert_eq!(cost(u64::MAX, Money::MAX), Money::MAX);
    }

    #[test]
    fn cost_rounds_half_up_to_the_nano() {
        // Prices with at most 3 decimals per million are exact per token:
        assert_eq!(cost(1, usd("0.15")).nanos(), 150);
        // 0.00015 USD/M = 0.15 nano per token.
        let p = usd("0.00015");
        assert_eq!(cost(1, p).nanos(), 0); // 0.15 nano
        assert_eq!(cost(3, p).nanos(), 0); // 0.45 nano
        assert_eq!(cost(4, p).nanos(), 1); // 0.60 nano
        assert_eq!(cost(10, p).nanos(), 2); // 1.50 nano: half rounds up
        assert_eq!(cost(1, usd("0.0005")).nanos(), 1); // exactly half
        assert_eq!(cost(1, Money::from_nanos(499_999)).nanos(), 0); // just under half
        assert_eq!(cost(1, Money::from_nanos(1_499_999)).nanos(), 1);
        assert_eq!(cost(1, Money::from_nanos(1_500_000)).nanos(), 2);
    }

    #[test]
    fn pricing_cost_rounds_once() {
        // Sub-nano prices per token: 0.15 nano in, 0.075 cached, 0.6 out.
        let tiny = Pricing {
            input_per_million: usd("0.00015"),
            output_per_million: usd("0.0006"),
            cached_input_per_million: Some(usd("0.000075")),
        };
        // 3 in (0.45) + 1 cached (0.075) = 0.525 -> 1, where per-part rounding gives 0.
        assert_eq!(tiny.cost(3, 1, 0).nanos(), 1);
        assert_eq!(tiny.cost(1, 1, 1).nanos(), 1); // 0.825
        assert_eq!(tiny.cost(2, 0, 0).nanos(), 0); // 0.3
        let p = pricing(); // 0.15 in, 0.075 cached, 0.6 out per million
        assert_eq!(p.cost(1, 1, 1).nanos(), 150 + 75 + 600);
        assert_eq!(
            p.cost(1_000_000, 2_000_000, 500_000),
            usd("0.15")
                .saturating_add(usd("0.15"))
                .saturating_add(usd("0.3"))
        );
        // Without a cached price, cached tokens bill at the input price.
        let plain = Pricing {
            cached_input_per_million: None,
            ..pricing()
        };
        assert_eq!(plain.cost(0, 1_000_000, 0), usd("0.15"));
        assert_eq!(plain.cost(u64::MAX, u64::MAX, u64::MAX), Money::MAX);
    }

    // ----- budget periods -----

    const DAY: u64 = 86_400_000;
    const HOUR: u64 = 3_600_000;

    /// Unix ms of a UTC date, from `date -u -d DATE +%s`.
    fn date_ms(secs: u64) -> u64 {
        secs * 1000
    }

    #[test]
    fn period_index_at_the_epoch() {
        for p in [
            BudgetPeriod::Hourly,
            BudgetPeriod::Daily,
            BudgetPeriod::Weekly,
            BudgetPeriod::Monthly,
            BudgetPeriod::Total,
        ] {
            assert_eq!(p.index(0), 0, "{p:?}");
            assert_eq!(p.start_ms(0), Some(0), "{p:?}");
        }
        assert_eq!(BudgetPeriod::Total.index(u64::MAX), 0);
        assert_eq!(BudgetPeriod::Total.start_ms(1), None);
    }

    #[test]
    fn hourly_and_daily_boundaries() {
        use BudgetPeriod::*;
        assert_eq!(Hourly.index(HOUR - 1), 0);
        assert_eq!(Hourly.index(HOUR), 1);
        assert_eq!(Daily.index(DAY - 1), 0);
        assert_eq!(Daily.index(DAY), 1);
        let d = date_ms(1_776_124_800); // 2026-04-14
        assert_eq!(Daily.index(d) - Daily.index(d - 1), 1);
        assert_eq!(Hourly.start_ms(Hourly.index(d + 1)), Some(d));
        assert_eq!(Hourly.start_ms(u64::MAX), None);
    }

    #[test]
    fn weeks_start_on_monday() {
        use BudgetPeriod::Weekly;
        // 1970-01-01 (Thu) .. 1970-01-04 (Sun) are week 0; Monday 1970-01-05 is week 1.
        let monday = date_ms(345_600);
        assert_eq!(Weekly.index(monday - 1), 0);
        assert_eq!(Weekly.index(monday), 1);
        assert_eq!(Weekly.start_ms(1), Some(monday));
        // Monday 2026-04-13 starts a week; Sunday 2026-04-12 ends the previous one.
        let m = date_ms(1_776_038_400);
        assert_eq!(Weekly.index(m) - Weekly.index(m - 1), 1);
        assert_eq!(Weekly.index(m + 7 * DAY - 1), Weekly.index(m));
        assert_eq!(Weekly.start_ms(Weekly.index(m + 3 * DAY)), Some(m));
    }

    #[test]
    fn months_follow_the_civil_calendar() {
        use BudgetPeriod::Monthly;
        let feb_1970 = 31 * DAY;
        assert_eq!(Monthly.index(feb_1970 - 1), 0);
        assert_eq!(Monthly.index(feb_1970), 1);
        // 2000 is a leap year (divisible by 400): 29 Feb exists, March starts a day later.
        let (feb29_2000, mar1_2000) = (date_ms(951_782_400), date_ms(951_868_800));
        assert_eq!(Monthly.index(feb29_2000), 30 * 12 + 1);
        assert_eq!(Monthly.index(mar1_2000 - 1), 30 * 12 + 1);
        assert_eq!(Monthly.index(mar1_2000), 30 * 12 + 2);
        // 2024 leap year.
        let (feb29_2024, mar1_2024) = (date_ms(1_709_164_800), date_ms(1_709_251_200));
        assert_eq!(Monthly.index(feb29_2024 + DAY - 1), 54 * 12 + 1);
        assert_eq!(Monthly.index(mar1_2024), 54 * 12 + 2);
        // Year end: 2024-12-31T23:59:59.999 is December, 2025-01-01 the next month.
        let jan1_2025 = date_ms(1_735_689_600);
        assert_eq!(Monthly.index(jan1_2025 - 1), 54 * 12 + 11);
        assert_eq!(Monthly.index(jan1_2025), 55 * 12);
        assert_eq!(Monthly.start_ms(55 * 12), Some(jan1_2025));
        // 2100 is not a leap year (divisible by 100, not 400): Feb 28 is followed by Mar 1.
        let (feb28_2100, mar1_2100) = (date_ms(4_107_456_000), date_ms(4_107_542_400));
        assert_eq!(mar1_2100 - feb28_2100, DAY);
        assert_eq!(Monthly.index(mar1_2100 - 1), 130 * 12 + 1);
        assert_eq!(Monthly.index(mar1_2100), 130 * 12 + 2);
        assert_eq!(Monthly.start_ms(130 * 12 + 2), Some(mar1_2100));
        // The far end of u64 milliseconds.
        let last = Monthly.index(u64::MAX);
        assert!(Monthly
            .start_ms(last)
            .is_some_and(|s| Monthly.index(s) == last));
        assert_eq!(Monthly.start_ms(last + 1), None);
        assert_eq!(Monthly.start_ms(u64::MAX), None);
    }

    #[test]
    fn civil_conversions_agree_over_many_years() {
        // Every day from 1970 to past 2400 (two 400-year boundaries' worth of rules).
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..160_000u64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            // Each day advances the date by exactly one.
            let next_expected = if d == 1 {
                assert!(m == prev.1 % 12 + 1, "{days}: {prev:?} -> {:?}", (y, m, d));
                (if m == 1 { prev.0 + 1 } else { prev.0 }, m, 1)
            } else {
                (prev.0, prev.1, prev.2 + 1)
            };
            assert_eq!((y, m, d), next_expected);
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let month_len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!(d <= month_len[m as usize - 1]);
            prev = (y, m, d);
        }
    }

    proptest! {
        #[test]
        fn period_start_is_the_inverse_of_index(wall in any::<u64>()) {
            for p in [BudgetPeriod::Hourly, BudgetPeriod::Daily, BudgetPeriod::Weekly, BudgetPeriod::Monthly] {
                let i = p.index(wall);
                let start = p.start_ms(i).unwrap();
                prop_assert!(start <= wall);
                prop_assert_eq!(p.index(start), i);
                if start > 0 {
                    prop_assert_eq!(p.index(start - 1), i - 1);
                }
                if let Some(next) = p.start_ms(i + 1) {
                    prop_assert!(next > wall);
                }
            }
        }
    }

    // ----- records: valid samples -----

    #[test]
    fn samples_are_valid() {
        for r in samples() {
            assert_eq!(r.validate(), Ok(()), "{r:?}");
        }
        // Minimal records are valid too.
        let minimal_key = AuthKey {
            key_prefix: String::new(),
            allowed_models: vec![],
            budget_id: None,
            workflow_id: None,
            rpm_limit: None,
            tpm_limit: None,
            expires_at_ms: None,
            metadata: BTreeMap::new(),
            max_parallel_requests: None,
            ..auth_key()
        };
        assert_eq!(minimal_key.validate(), Ok(()));
        let mock = Provider {
            kind: ProviderKind::Mock,
            base_url: String::new(),
            api_key_env: None,
            ..provider()
        };
        assert_eq!(mock.validate(), Ok(()));
        let free = Budget {
            limit: None,
            max_requests: None,
            period: BudgetPeriod::Total,
            ..budget()
        };
        assert_eq!(free.validate(), Ok(()));
    }

    // ----- records: one refusal per rule -----

    #[test]
    fn auth_key_rules() {
        let k = auth_key();
        let v = AuthKey::validate;
        refused(&k, v, "name", |k| k.name.clear());
        refused(&k, v, "name", |k| k.name = "x".repeat(1025));
        refused(&k, v, "name", |k| k.name = "evil\nlog line".into());
        refused(&k, v, "secret_hash", |k| {
            k.secret_hash = HASH.to_uppercase()
        });
        refused(&k, v, "secret_hash", |k| {
            k.secret_hash.pop().map(drop).unwrap()
        });
        refused(&k, v, "secret_hash", |k| {
            k.secret_hash = "sk-plain-secret".into()
        });
        refused(&k, v, "key_prefix", |k| {
            k.key_prefix = "sk-aur-3f9a12".into()
        });
        refused(&k, v, "key_prefix", |k| k.key_prefix = "sk aur".into());
        refused(&k, v, "allowed_models", |k| {
            k.allowed_models = (0..257).map(|i| format!("m{i}")).collect()
        });
        refused(&k, v, "allowed_models[1]", |k| {
            k.allowed_models[1] = "bad model".into()
        });
        refused(&k, v, "allowed_models[2]", |k| {
            k.allowed_models.push("chat".into())
        });
        refused(&k, v, "budget_id", |k| {
            k.budget_id = Some(RecordId("/x".into()))
        });
        refused(&k, v, "workflow_id", |k| {
            k.workflow_id = Some(RecordId(String::new()))
        });
        refused(&k, v, "rpm_limit", |k| k.rpm_limit = Some(0));
        refused(&k, v, "tpm_limit", |k| k.tpm_limit = Some(0));
        refused(&k, v, "metadata", |k| {
            k.metadata = (0..65).map(|i| (format!("k{i}"), String::new())).collect()
        });
        refused(&k, v, "metadata", |k| {
            k.metadata.insert(String::new(), "v".into());
        });
        refused(&k, v, "metadata", |k| {
            k.metadata.insert("k".repeat(129), "v".into());
        });
        refused(&k, v, "metadata[\"owner\"]", |k| {
            k.metadata.insert("owner".into(), "v".repeat(1025));
        });
        assert_eq!(
            Record::AuthKey(AuthKey {
                rpm_limit: Some(0),
                ..k.clone()
            })
            .validate(),
            Err(invalid(
                "rpm_limit",
                "must be at least 1 (set `disabled` to block a key)"
            ))
        );
        assert_eq!(
            Record::AuthKey(AuthKey {
                max_parallel_requests: Some(0),
                ..k.clone()
            })
            .validate(),
            Err(invalid(
                "max_parallel_requests",
                "must be at least 1 (set `disabled` to block a key)"
            ))
        );
    }

    #[test]
    fn auth_key_helpers() {
        let k = auth_key();
        let at = k.expires_at_ms.unwrap();
        assert!(!k.is_expired(at - 1));
        assert!(k.is_expired(at));
        assert!(!AuthKey {
            expires_at_ms: None,
            ..k.clone()
        }
        .is_expired(u64::MAX));
        assert!(k.allows_model("chat"));
        assert!(!k.allows_model("mock/gpt-4o"));
        let any = AuthKey {
            allowed_models: vec![],
            ..k
        };
        assert!(any.allows_model("mock/gpt-4o"));
    }

    #[test]
    fn provider_rules() {
        let p = provider();
        let v = Provider::validate;
        for bad in [
            "",
            "api.openai.com/v1",
            "ftp://example.com",
            "HTTPS://example.com",
            "https://",
            "https:///v1",
            "https://:8080/v1",
            "https://exa mple.com",
            "https://example.com/v1 ",
            "https://example.com/\u{7}",
            "https://user:pass@example.com/v1",
            "https://example.com/v1#frag",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:",
            "https://example.com:80a",
            "https://exämple.com",
            "https://[::1",
            "https://[]:80",
            "https://[::1]x",
            "https://[zz::1]",
        ] {
            refused(&p, v, "base_url", |p| p.base_url = bad.into());
        }
        refused(&p, v, "base_url", |p| {
            p.base_url = format!("https://example.com/{}", "a".repeat(1024))
        });
        for good in [
            "http://localhost:8000/v1",
            "https://10.0.0.7:443",
            "http://[::1]:11434/v1",
            "https://[fe80::1]",
            "https://my_host.internal/openai/deployments?api-version=2024-06-01",
            "https://api.groq.com/openai/v1/",
        ] {
            let ok = Provider {
                base_url: good.into(),
                ..p.clone()
            };
            assert_eq!(ok.validate(), Ok(()), "{good}");
        }
        // Only a mock may leave the URL empty; a mock with a URL must still be valid.
        refused(&p, v, "base_url", |p| p.base_url.clear());
        refused(&p, v, "base_url", |p| {
            p.kind = ProviderKind::Mock;
            p.base_url = "nope".into();
        });
        for bad in [
            "",
            "openai_api_key",
            "sk-abc123",
            "OPENAI-KEY",
            "1KEY",
            "CLUSTER_SECRET",
            "CLUSTER_NODE_NAME",
            "AURORA_ADMIN_TOKEN",
        ] {
            refused(&p, v, "api_key_env", |p| p.api_key_env = Some(bad.into()));
        }
        refused(&p, v, "api_key_env", |p| {
            p.api_key_env = Some("K".repeat(129))
        });
        refused(&p, v, "timeout_ms", |p| p.timeout_ms = 0);
        refused(&p, v, "timeout_ms", |p| p.timeout_ms = 600_001);
        refused(&p, v, "max_retries", |p| p.max_retries = 11);
        refused(&p, v, "cooldown_ms", |p| p.cooldown_ms = 86_400_001);
    }

    #[test]
    fn model_rules() {
        let m = model();
        let v = Model::validate;
        refused(&m, v, "provider_id", |m| {
            m.provider_id = RecordId("open ai".into())
        });
        refused(&m, v, "upstream_model", |m| m.upstream_model.clear());
        refused(&m, v, "upstream_model", |m| {
            m.upstream_model = "gpt 4o".into()
        });
        refused(&m, v, "upstream_model", |m| {
            m.upstream_model = "g".repeat(1025)
        });
        refused(&m, v, "aliases", |m| {
            m.aliases = (0..257).map(|i| format!("a{i}")).collect()
        });
        refused(&m, v, "aliases[0]", |m| m.aliases[0] = "fast!".into());
        refused(&m, v, "aliases[1]", |m| m.aliases.push("fast".into()));
        refused(&m, v, "context_window", |m| m.context_window = Some(0));
    }

    #[test]
    fn route_rules() {
        let r = route();
        let v = Route::validate;
        refused(&r, v, "targets", |r| r.targets.clear());
        refused(&r, v, "targets", |r| {
            r.targets = (0..33)
                .map(|i| RouteTarget {
                    model_id: id(&format!("m{i}")),
                    weight: 1,
                })
                .collect()
        });
        refused(&r, v, "targets[1].model_id", |r| {
            r.targets[1].model_id = RecordId("a b".into())
        });
        refused(&r, v, "targets[1].model_id", |r| {
            r.targets[1].model_id = r.targets[0].model_id.clone()
        });
        refused(&r, v, "targets[1].weight", |r| r.targets[1].weight = 0);
        refused(&r, v, "fallbacks", |r| {
            r.fallbacks = (0..9).map(|i| id(&format!("f{i}"))).collect()
        });
        refused(&r, v, "fallbacks[0]", |r| {
            r.fallbacks[0] = RecordId("x/".into())
        });
        refused(&r, v, "fallbacks[1]", |r| {
            r.fallbacks.push(id("mock/gpt-4o-mini"))
        });
        refused(&r, v, "fallbacks[1]", |r| {
            r.fallbacks.push(id("claude/sonnet"))
        });
        refused(&r, v, "retries", |r| r.retries = 11);
        assert_eq!(
            Route {
                targets: vec![RouteTarget {
                    model_id: id("m"),
                    weight: 0
                }],
                ..r.clone()
            }
            .validate(),
            Err(invalid("targets[0].weight", "must be at least 1"))
        );
        let heavy = Route {
            targets: (0..32)
                .map(|i| RouteTarget {
                    model_id: id(&format!("m{i}")),
                    weight: u32::MAX,
                })
                .collect(),
            fallbacks: vec![],
            retries: 0,
        };
        assert_eq!(heavy.validate(), Ok(()));
        assert_eq!(heavy.total_weight(), 32 * u64::from(u32::MAX));
        assert_eq!(r.total_weight(), 4);
    }

    #[test]
    fn guardrail_rules() {
        let [deny, max, redact, allow]: [Guardrail; 4] = guardrails().try_into().unwrap();
        let v = Guardrail::validate;
        let set_patterns = |g: &mut Guardrail, new: Vec<String>| {
            if let GuardrailKind::DenyPatterns { patterns, .. } = &mut g.kind {
                *patterns = new;
            }
        };
        refused(&deny, v, "kind.deny_patterns.patterns", |g| {
            set_patterns(g, vec![])
        });
        refused(&deny, v, "kind.deny_patterns.patterns", |g| {
            set_patterns(g, vec!["p".into(); 257])
        });
        refused(&deny, v, "kind.deny_patterns.patterns[1]", |g| {
            set_patterns(g, vec!["a".into(), String::new()])
        });
        refused(&deny, v, "kind.deny_patterns.patterns[0]", |g| {
            set_patterns(g, vec!["p".repeat(1025)])
        });
        refused(&max, v, "kind.max_input_chars.max", |g| {
            g.kind = GuardrailKind::MaxInputChars { max: 0 }
        });
        refused(&redact, v, "kind.redact", |g| {
            g.kind = GuardrailKind::Redact {
                emails: false,
                phone_numbers: false,
                secrets: false,
            }
        });
        let set_models = |g: &mut Guardrail, new: Vec<String>| {
            g.kind = GuardrailKind::AllowedModels { models: new };
        };
        refused(&allow, v, "kind.allowed_models.models", |g| {
            set_models(g, vec![])
        });
        refused(&allow, v, "kind.allowed_models.models", |g| {
            set_models(g, (0..257).map(|i| format!("m{i}")).collect())
        });
        refused(&allow, v, "kind.allowed_models.models[1]", |g| {
            set_models(g, vec!["a".into(), "b c".into()])
        });
        refused(&allow, v, "kind.allowed_models.models[1]", |g| {
            set_models(g, vec!["a".into(), "a".into()])
        });
    }

    #[test]
    fn workflow_rules() {
        let w = workflow();
        let v = Workflow::validate;
        refused(&w, v, "name", |w| w.name.clear());
        refused(&w, v, "guardrails", |w| {
            w.guardrails = (0..33).map(|i| id(&format!("g{i}"))).collect()
        });
        refused(&w, v, "guardrails[1]", |w| {
            w.guardrails[1] = RecordId("g g".into())
        });
        refused(&w, v, "guardrails[2]", |w| {
            w.guardrails.push(id("no-jailbreak"))
        });
    }

    #[test]
    fn pricing_rules() {
        let p = pricing();
        let v = Pricing::validate;
        let too_much = MAX_PRICE.saturating_add(Money::from_nanos(1));
        refused(&p, v, "input_per_million", |p| {
            p.input_per_million = too_much
        });
        refused(&p, v, "output_per_million", |p| {
            p.output_per_million = too_much
        });
        refused(&p, v, "cached_input_per_million", |p| {
            p.cached_input_per_million = Some(too_much)
        });
        let edge = Pricing {
            input_per_million: MAX_PRICE,
            output_per_million: Money::ZERO,
            cached_input_per_million: None,
        };
        assert_eq!(edge.validate(), Ok(()));
    }

    #[test]
    fn budget_rules() {
        let b = budget();
        refused(&b, Budget::validate, "name", |b| b.name.clear());
        refused(&b, Budget::validate, "name", |b| b.name = "a\u{0}b".into());
    }

    #[test]
    fn validate_with_id_checks_the_key() {
        let m = Record::Model(model());
        assert_eq!(m.validate_with_id(&id("openai/gpt-4o-mini")), Ok(()));
        assert_eq!(
            m.validate_with_id(&RecordId("bad id".into()))
                .unwrap_err()
                .field(),
            "id"
        );
        assert_eq!(
            m.validate_with_id(&id("fast")).unwrap_err().field(),
            "aliases[0]"
        );
        let r = Record::Route(route());
        assert_eq!(r.validate_with_id(&id("chat")), Ok(()));
        assert_eq!(
            r.validate_with_id(&id("claude/sonnet"))
                .unwrap_err()
                .field(),
            "targets[1].model_id"
        );
        assert_eq!(
            r.validate_with_id(&id("mock/gpt-4o-mini"))
                .unwrap_err()
                .field(),
            "fallbacks[0]"
        );
        // The record's own rules still apply.
        let bad = Record::Budget(Budget {
            name: String::new(),
            ..budget()
        });
        assert_eq!(bad.validate_with_id(&id("b")).unwrap_err().field(), "name");
    }

    #[test]
    fn references_name_other_collections() {
        let refs = |r: &Record| -> Vec<(Collection, String)> {
            r.references()
                .into_iter()
                .map(|(c, id)| (c, id.to_string()))
                .collect()
        };
        assert_eq!(
            refs(&Record::AuthKey(auth_key())),
            [
                (Collection::Budgets, "team-a".into()),
                (Collection::Workflows, "default".into())
            ]
        );
        assert_eq!(
            refs(&Record::Model(model())),
            [(Collection::Providers, "openai".into())]
        );
        assert_eq!(
            refs(&Record::Route(route())),
            [
                (Collection::Models, "openai/gpt-4o-mini".into()),
                (Collection::Models, "claude/sonnet".into()),
                (Collection::Models, "mock/gpt-4o-mini".into())
            ]
        );
        assert_eq!(refs(&Record::Workflow(workflow())).len(), 2);
        assert!(refs(&Record::Pricing(pricing())).is_empty());
    }

    // ----- encoding -----

    #[test]
    fn every_record_round_trips_through_postcard() {
        for r in samples() {
            let bytes = postcard::to_allocvec(&r).unwrap();
            assert_eq!(postcard::from_bytes::<Record>(&bytes), Ok(r.clone()));
            // The inner record alone too, as the admin API and store may hold it.
            macro_rules! inner {
                ($($v:ident),*) => {
                    match &r {
                        $(Record::$v(x) => {
                            let b = postcard::to_allocvec(x).unwrap();
                            assert_eq!(&postcard::from_bytes::<$v>(&b).unwrap(), x);
                        })*
                    }
                };
            }
            inner!(AuthKey, Provider, Model, Route, Guardrail, Workflow, Pricing, Budget);
        }
        for c in Collection::ALL {
            let bytes = postcard::to_allocvec(&c).unwrap();
            assert_eq!(postcard::from_bytes::<Collection>(&bytes), Ok(c));
        }
    }

    #[test]
    fn postcard_variant_indices_are_pinned() {
        // Reordering variants would silently change the meaning of stored and
        // replicated bytes; these pins make it a test failure instead.
        assert_eq!(postcard::to_allocvec(&Collection::Budgets).unwrap(), [7]);
        let first: Vec<u8> = samples()
            .iter()
            .map(|r| postcard::to_allocvec(r).unwrap()[0])
            .collect();
        assert_eq!(first, [0, 1, 2, 3, 4, 4, 4, 4, 5, 6, 7]);
        assert_eq!(postcard::to_allocvec(&BudgetPeriod::Total).unwrap(), [4]);
        assert_eq!(
            postcard::to_allocvec(&RoutingPolicy::LeastBusy).unwrap(),
            [2]
        );
        assert_eq!(postcard::to_allocvec(&ProviderKind::Mock).unwrap(), [2]);
        // An unknown variant or truncated bytes are an error, not a panic.
        assert!(postcard::from_bytes::<Record>(&[9]).is_err());
        let bytes = postcard::to_allocvec(&samples()[0]).unwrap();
        assert!(postcard::from_bytes::<Record>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn sample_records_snapshot() {
        insta::assert_debug_snapshot!(samples());
    }
}
