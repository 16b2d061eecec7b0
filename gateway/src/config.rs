//! Start-up configuration of a gateway server.
//!
//! These are plain values, filled in by the binary from its flags and the `gateway:`
//! section of `aurora.yaml` (and later the `CLUSTER_*` environment, issue 5). Keeping parsing out of the
//! library means tests build a server from a struct literal, with no files or env.

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
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            reserve_output_tokens: DEFAULT_RESERVE_OUTPUT_TOKENS,
            reserve_output_tokens_by_model: BTreeMap::new(),
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
        }
    }
}

impl ServerConfig {
    /// A config with the documented defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            gateway: GatewayConfig::default(),
            shutdown_grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }
}
