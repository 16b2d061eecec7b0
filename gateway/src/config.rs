//! Start-up configuration of a gateway server.
//!
//! These are plain values, filled in by the binary from its flags and the `gateway:`
//! section of `aurora.yaml` (and later the `CLUSTER_*` environment, issue 5). Keeping parsing out of the
//! library means tests build a server from a struct literal, with no files or env.

use std::net::SocketAddr;
use std::time::Duration;

use crate::catalog::Catalog;
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
    /// Output tokens whose cost is reserved on a key's budget at admission for a
    /// request that sets neither `max_completion_tokens` nor `max_tokens` (see
    /// [`crate::policy::reserve`]); the difference is released when it is settled.
    pub reserve_output_tokens: u32,
}

/// Default output allowance reserved per request without `max_tokens`: the usual
/// output cap of current chat models, so a budget is rarely overrun by a burst.
pub const DEFAULT_RESERVE_OUTPUT_TOKENS: u32 = 4096;

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
            reserve_output_tokens: DEFAULT_RESERVE_OUTPUT_TOKENS,
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
