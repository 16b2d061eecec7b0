//! Start-up configuration of a gateway server.
//!
//! These are plain values, filled in by the binary from its flags and the `gateway:`
//! section of `aurora.yaml` (the `cluster:` section and the `CLUSTER_*` environment are
//! parsed by `aurora_io::config`). Keeping parsing out of the library means tests build
//! a server from a struct literal, with no files or env.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Catalog, CatalogError};
use crate::http::limits::Limits;
use crate::upstream::policy::UpstreamPolicy;
use crate::usage::retention::Retention;

/// Everything [`crate::Server::bind`] needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (tests do that).
    pub listen: SocketAddr,
    /// Request handling knobs shared with every handler.
    pub gateway: GatewayConfig,
    /// After a shutdown request, how long to keep accepting connections while
    /// `/health/ready` already answers 503, so a load balancer can take the node out
    /// of rotation before connections are refused. 0 in development.
    pub shutdown_grace: Duration,
    /// How long in-flight requests and streams may take to finish once the listener is
    /// closed; connections still open after it are dropped.
    pub drain_timeout: Duration,
}

/// Knobs read on every request.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Defaults for the built-in mock provider's models.
    pub mock: MockDefaults,
    /// The catalog the server starts with (replaceable at run time through
    /// [`crate::catalog::CatalogStore::replace`]).
    pub catalog: Catalog,
    /// Timeouts, retries and cooldown of upstream calls.
    pub upstream: UpstreamPolicy,
    /// Connection caps, client deadlines and upstream body caps (`gateway.limits`).
    pub limits: Limits,
    /// Retention of the usage log (`gateway.usage_log`).
    pub usage_log: Retention,
    /// What admission reserves on a key's budget (`gateway.budgets` in the file).
    pub budgets: BudgetSettings,
    /// Whether a node whose state holds no API key serves clients anonymously.
    pub auth: AuthMode,
    /// The only variables a provider's `api_key_env` may name start with this, so a
    /// record (replicated from any node, or created through the admin API) cannot
    /// make this node send an unrelated secret such as `AWS_SECRET_ACCESS_KEY` to a
    /// URL of the record writer's choosing.
    pub provider_env_prefix: String,
    /// Who may read `/metrics`.
    pub metrics_auth: MetricsAuth,
    /// The response cache (`gateway.cache`).
    pub cache: crate::cache::CacheSettings,
}

/// `gateway.provider_env_prefix` when unset.
pub const DEFAULT_PROVIDER_ENV_PREFIX: &str = "AURORA_PROVIDER_";

/// Checks a `provider_env_prefix`: a non-empty start of an environment variable name
/// (an empty prefix would allow every variable, which is what the setting prevents).
pub fn validate_env_prefix(prefix: &str) -> Result<(), String> {
    let valid = !prefix.is_empty()
        && !prefix.starts_with(|c: char| c.is_ascii_digit())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} must be a non-empty start of a variable name (letters, digits, _)"
        ))
    }
}

/// Whether a provider may read the variable `var` under `prefix` (see
/// [`GatewayConfig::provider_env_prefix`]).
pub fn env_name_allowed(var: &str, prefix: &str) -> bool {
    var.starts_with(prefix)
}

/// `gateway.metrics_auth`: what `/metrics` asks of its caller.
///
/// The series name keys, models, providers and members, and their counters tell an
/// outsider how the gateway is used; on a listener others can reach that is worth
/// the admin token. On loopback a local scraper reads it without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAuth {
    /// Anyone who reaches the listener.
    #[default]
    None,
    /// The admin token, as `Authorization: Bearer` (like the admin API).
    Admin,
}

impl MetricsAuth {
    /// The default: open on a loopback listener, the admin token elsewhere.
    pub fn default_for(listen: SocketAddr) -> MetricsAuth {
        if listen.ip().is_loopback() {
            MetricsAuth::None
        } else {
            MetricsAuth::Admin
        }
    }
}

/// `gateway.auth`: what a node does while no API key exists.
///
/// Why a setting and not "open until the first key": a new or replaced node joining a
/// cluster that has keys holds none until they arrive (forever if its seeds are
/// unreachable), and would serve everyone anonymously, with no budget or limit, in the
/// meantime. So keyless access must be chosen, and it is the default only where nobody
/// else can reach the node ([`AuthMode::default_for`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No key exists: serve anonymously. Once one exists, every request needs one.
    Open,
    /// Every request needs a valid key; with no key at all: 401 naming the reason.
    #[default]
    Keys,
}

impl AuthMode {
    /// The default: `open` only for a lone node whose HTTP listener is loopback,
    /// `keys` for anything reachable from elsewhere or clustered.
    pub fn default_for(listen: SocketAddr, clustered: bool) -> AuthMode {
        if listen.ip().is_loopback() && !clustered {
            AuthMode::Open
        } else {
            AuthMode::Keys
        }
    }

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Keys => "keys",
        }
    }

    /// Parses `open` or `keys`.
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text {
            "open" => Some(AuthMode::Open),
            "keys" => Some(AuthMode::Keys),
            _ => None,
        }
    }
}

/// Default output allowance reserved per request without `max_tokens`: the usual
/// output cap of current chat models, so a budget is rarely overrun by a burst.
pub const DEFAULT_RESERVE_OUTPUT_TOKENS: u32 = 4096;

/// Largest output allowance accepted (a typo such as an extra zero is refused).
pub const MAX_RESERVE_OUTPUT_TOKENS: u32 = 10_000_000;

fn default_reserve_output_tokens() -> u32 {
    DEFAULT_RESERVE_OUTPUT_TOKENS
}

/// `gateway.budgets`: the output tokens whose cost is reserved on a key's budget at
/// admission for a request that sets neither `max_completion_tokens` nor
/// `max_tokens` (see [`crate::policy::reserve`]); the difference is released when the
/// request is settled.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    /// For any model not listed below.
    #[serde(default = "default_reserve_output_tokens")]
    pub reserve_output_tokens: u32,
    /// Per catalog name (model, alias or route, as clients send it; or a target
    /// model of a route): models whose answers run longer or shorter.
    #[serde(default)]
    pub reserve_output_tokens_by_model: BTreeMap<String, u32>,
    /// Budgets' `max_requests` through quota leases in a cluster that elects a
    /// leader (exact cluster-wide, docs/quota.md); `false`: from the replicated
    /// counters, as before (a few percent over under load across nodes).
    #[serde(default = "default_request_leases")]
    pub request_leases: bool,
}

fn default_request_leases() -> bool {
    true
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            reserve_output_tokens: DEFAULT_RESERVE_OUTPUT_TOKENS,
            reserve_output_tokens_by_model: BTreeMap::new(),
            request_leases: default_request_leases(),
        }
    }
}

impl BudgetSettings {
    /// Every allowance from 1 to [`MAX_RESERVE_OUTPUT_TOKENS`]; the error names the
    /// key (relative to `gateway.budgets`).
    pub fn validate(&self) -> Result<(), CatalogError> {
        let bad = |n: u32| !(1..=MAX_RESERVE_OUTPUT_TOKENS).contains(&n);
        let message = |n: u32| format!("must be from 1 to {MAX_RESERVE_OUTPUT_TOKENS}, got {n}");
        if bad(self.reserve_output_tokens) {
            return Err(CatalogError::new(
                "reserve_output_tokens",
                message(self.reserve_output_tokens),
            ));
        }
        for (model, &n) in &self.reserve_output_tokens_by_model {
            if bad(n) {
                return Err(CatalogError::new(
                    format!("reserve_output_tokens_by_model.{model}"),
                    message(n),
                ));
            }
        }
        Ok(())
    }

    /// The allowance of a request to the public name `model` whose targets are
    /// `targets`: the name's own entry, else the largest entry among the targets,
    /// else the default.
    pub fn output_tokens_for<'a>(
        &self,
        model: &str,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> u32 {
        let by = &self.reserve_output_tokens_by_model;
        if let Some(&n) = by.get(model) {
            return n;
        }
        targets
            .into_iter()
            .filter_map(|t| by.get(t).copied())
            .max()
            .unwrap_or(self.reserve_output_tokens)
    }
}

/// Defaults of the mock provider, overridable per request in the model name
/// (see [`crate::provider::mock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockDefaults {
    /// Delay before the answer (before the first chunk when streaming), in ms.
    pub latency_ms: u64,
    /// Delay between streamed chunks, in ms.
    pub chunk_ms: u64,
    /// Completion length of the generating models, in (heuristic) tokens.
    pub completion_tokens: u32,
}

impl Default for MockDefaults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            chunk_ms: 0,
            completion_tokens: 16,
        }
    }
}

/// Default body limit: generous for long prompts and inline images, small enough that
/// one request cannot exhaust memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            mock: MockDefaults::default(),
            catalog: Catalog::builtin(),
            upstream: UpstreamPolicy::default(),
            limits: Limits::default(),
            usage_log: Retention::default(),
            budgets: BudgetSettings::default(),
            auth: AuthMode::Keys,
            provider_env_prefix: DEFAULT_PROVIDER_ENV_PREFIX.to_owned(),
            metrics_auth: MetricsAuth::Admin,
            cache: crate::cache::CacheSettings::default(),
        }
    }
}

impl ServerConfig {
    /// A config with the documented defaults, listening on `listen` (a lone node:
    /// `auth` is [`AuthMode::default_for`] `listen`).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            gateway: GatewayConfig {
                auth: AuthMode::default_for(listen, false),
                metrics_auth: MetricsAuth::default_for(listen),
                ..GatewayConfig::default()
            },
            shutdown_grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_only_for_a_lone_loopback_node() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let v6: SocketAddr = "[::1]:8080".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let lan: SocketAddr = "10.0.0.5:8080".parse().expect("addr");
        assert_eq!(AuthMode::default_for(loopback, false), AuthMode::Open);
        assert_eq!(AuthMode::default_for(v6, false), AuthMode::Open);
        assert_eq!(AuthMode::default_for(loopback, true), AuthMode::Keys);
        assert_eq!(AuthMode::default_for(any, false), AuthMode::Keys);
        assert_eq!(AuthMode::default_for(lan, false), AuthMode::Keys);
        assert_eq!(ServerConfig::new(any).gateway.auth, AuthMode::Keys);
        assert_eq!(ServerConfig::new(loopback).gateway.auth, AuthMode::Open);
    }
}
