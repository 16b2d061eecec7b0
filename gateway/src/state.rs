//! What every request handler shares.
//!
//! One `Arc<AppState>` per server: configuration, the replaceable catalog, the
//! upstream client with its cooldown state, metrics, the readiness flag flipped by
//! shutdown, the admin token, the id generator, the read-only view of the replicated
//! state ([`StateView`]), the cluster's status and the policy layer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::admin::token::AdminToken;
use crate::catalog::store::{process_env, EnvLookup};
use crate::catalog::{Catalog, CatalogError, CatalogStore};
use crate::cluster::{ClusterInfo, StateView};
use crate::config::GatewayConfig;
use crate::http::conn::Connections;
use crate::metrics::Metrics;
use crate::upstream::client::{self, ClientError};
use crate::upstream::dispatch::Upstreams;

/// Why the shared state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The starting catalog does not validate.
    #[error("invalid catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The upstream policy or the limits do not validate.
    #[error("invalid gateway settings: {0}")]
    Policy(CatalogError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Shared, immutable-after-start state plus a few atomics.
#[derive(Debug)]
pub struct AppState {
    /// Request handling knobs.
    pub config: GatewayConfig,
    /// Open client connections under the caps of `gateway.limits`.
    pub connections: Arc<Connections>,
    /// Request counters and latency histograms.
    pub metrics: Metrics,
    /// Token that guards `/admin/api`.
    pub admin_token: AdminToken,
    /// Providers, models and routes; replaced as a whole.
    pub catalog: CatalogStore,
    /// The upstream client, cooldown state and policy.
    pub upstreams: Upstreams,
    /// The replicated state (auth keys, budgets, usage...). Detached (in-memory, no
    /// node) unless the server was started with a node; `aurora serve` always is.
    pub state_view: StateView,
    /// Cluster status and members for the admin API and /metrics.
    pub cluster: ClusterInfo,
    /// Auth-key index, rate-limit buckets, budget reservations and the usage log of
    /// this server (see `crate::policy`).
    pub policy: crate::policy::Policy,
    /// Whether the HTTP listener is bound to loopback: then requests must name
    /// loopback in `Host` ([`crate::http::host`]).
    pub loopback_listener: bool,
    /// Failed admin logins per client IP ([`crate::admin::guard`]).
    pub admin_guard: crate::admin::guard::LoginGuard,
    /// The response cache: this node's share of the cluster's answers
    /// ([`crate::cache`]).
    pub cache: Arc<crate::cache::Cache>,
    /// The catalog from the config file (or the built-in mock); the replicated
    /// providers, models and routes are laid over it (see `cluster::catalog`).
    base_catalog: ArcSwap<Catalog>,
    draining: AtomicBool,
    ids: IdGen,
}

impl AppState {
    /// Fresh state: ready, no requests counted; API keys from the process environment.
    pub fn new(config: GatewayConfig, admin_token: AdminToken) -> Result<Self, StateError> {
        Self::with_env(config, admin_token, process_env())
    }

    /// [`AppState::new`] with API-key variables looked up by `env`.
    pub fn with_env(
        config: GatewayConfig,
        admin_token: AdminToken,
        env: EnvLookup,
    ) -> Result<Self, StateError> {
        config
            .upstream
            .validate()
            .map_err(|e| StateError::Policy(e.under("upstream")))?;
        let env = restrict_env(env, config.provider_env_prefix.clone());
        let catalog = CatalogStore::new(config.catalog.clone(), env)?;
        let base_catalog = ArcSwap::from_pointee(config.catalog.clone());
        let client = client::build(config.upstream.connect_timeout())?;
        config
            .limits
            .validate()
            .map_err(|e| StateError::Policy(e.under("limits")))?;
        let upstreams = Upstreams::new(client, config.upstream.clone(), config.limits.clone());
        config
            .cache
            .validate()
            .map_err(|e| StateError::Policy(e.under("cache")))?;
        let cache = Arc::new(crate::cache::Cache::new(config.cache.clone()));
        let connections = Arc::new(Connections::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ));
        Ok(Self {
            config,
            connections,
            metrics: Metrics::new(),
            admin_token,
            catalog,
            upstreams,
            state_view: StateView::detached(),
            cluster: ClusterInfo::detached(),
            policy: crate::policy::Policy::new(),
            loopback_listener: false,
            admin_guard: crate::admin::guard::LoginGuard::new(),
            cache,
            base_catalog,
            draining: AtomicBool::new(false),
            ids: IdGen::new(),
        })
    }

    /// Connects the state to a running node (before it is shared), the response cache
    /// to its peers among them.
    pub fn attach(mut self, state_view: StateView, cluster: ClusterInfo) -> Self {
        self.state_view = state_view;
        self.cluster = cluster;
        crate::cache::link::connect(&self.cache, &self.cluster);
        if self.config.budgets.request_leases {
            if let Some(leases) = crate::policy::leases::Leases::start(&self.cluster) {
                self.policy.attach_leases(leases);
            }
        }
        self
    }

    /// The catalog of the config file that replicated records are laid over.
    pub fn base_catalog(&self) -> Arc<Catalog> {
        self.base_catalog.load_full()
    }

    /// Replaces the base catalog (SIGHUP reload) and rebuilds the running catalog with
    /// the replicated records over it. On error nothing changes.
    pub fn replace_base_catalog(&self, records: Catalog) -> Result<(), CatalogError> {
        records.validate()?;
        let merged = crate::cluster::catalog::merge(
            &records,
            &self.state_view.snapshot(),
            &self.config.provider_env_prefix,
        );
        self.replace_catalog(merged)?;
        self.base_catalog.store(Arc::new(records));
        Ok(())
    }

    /// Replaces the catalog (a SIGHUP reload, or a change of the replicated providers,
    /// models or routes: `cluster::catalog`); cooldown state of targets that no longer
    /// exist is dropped. On error nothing changes.
    pub fn replace_catalog(&self, records: Catalog) -> Result<(), CatalogError> {
        let snapshot = self.catalog.replace(records)?;
        self.upstreams.breakers.retain(snapshot.target_ids());
        Ok(())
    }

    /// Whether shutdown has begun; `/health/ready` answers 503 from then on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as draining (not ready). Idempotent.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// A new completion id (`chatcmpl-…`), unique within this process and, thanks to a
    /// random per-process prefix, across processes with overwhelming probability.
    pub fn next_completion_id(&self) -> String {
        self.ids.next("chatcmpl-")
    }
}

/// `env` limited to variables that start with `prefix` (see
/// [`GatewayConfig::provider_env_prefix`]): whatever a provider record names, this
/// node never reads, let alone sends upstream, any other variable.
fn restrict_env(env: EnvLookup, prefix: String) -> EnvLookup {
    Arc::new(move |name: &str| {
        if crate::config::env_name_allowed(name, &prefix) {
            env(name)
        } else {
            tracing::warn!(
                variable = name,
                prefix = %prefix,
                "api_key_env outside gateway.provider_env_prefix; not read"
            );
            None
        }
    })
}

/// Ids as a random per-process prefix plus a counter: unique without a syscall per
/// request.
#[derive(Debug)]
struct IdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGen {
    fn new() -> Self {
        // A failed OS random source only weakens cross-process uniqueness, so fall back
        // to the clock rather than refusing to start.
        let prefix = getrandom::u64().unwrap_or_else(|_| crate::clock::unix_nanos());
        Self {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{kind}{:016x}{n:08x}", self.prefix)
    }
}
