//! # aurora-gateway
//!
//! The HTTP face of an Aurora node: the OpenAI-compatible client API, the admin API,
//! health and Prometheus metrics, and (in `main.rs`) the `aurora` binary.
//!
//! A single node serves the built-in mock provider by default, so `aurora serve`
//! answers chat completions with no API key and no config; with a catalog (the
//! `gateway:` section of `aurora.yaml`) it proxies OpenAI-compatible and Anthropic
//! upstreams with weighted routes, retries, fallbacks and cooldown. Every `aurora serve`
//! runs a core node through the io driver ([`cluster`]), clustered or alone: auth keys,
//! guardrails, workflows, pricing and budgets are read from its replicated state, and
//! the replicated providers, models and routes are laid over the file's catalog through
//! the same door a SIGHUP reload uses.
//!
//! One concern per module:
//! - [`config`]: the knobs a server is started with (no parsing of files or env here);
//! - [`cluster`]: starting the io driver, the read-only view of the replicated state
//!   ([`cluster::view::StateView`]), the catalog rebuilt from it, and the cluster's
//!   status, node list and metrics;
//! - [`catalog`]: providers, models, aliases and routes; YAML loading; the replaceable
//!   snapshot requests resolve model names against;
//! - [`upstream`]: calling real providers (OpenAI-compatible, Anthropic): pooling,
//!   timeouts, retries, weighted balancing, fallbacks, cooldown, stream translation;
//! - [`server`]: binding, the accept loop and graceful drain;
//! - [`http`]: routing, body types and request-body limits, shared by every handler;
//! - [`openai`]: the OpenAI wire shapes, their error format and the `/v1` handlers;
//! - [`openapi`]: `GET /openapi.yaml`, the embedded `docs/openapi.yaml`;
//! - [`provider`]: the built-in deterministic [`provider::mock`];
//! - [`admin`]: the admin token and the `/admin/api` handlers;
//! - [`admission`]: whether the node may serve clients now (driver alive, state caught
//!   up, keys required); [`health`]: liveness and readiness;
//! - [`metrics`]: counters and histograms with a hand-written Prometheus exposition;
//! - [`cache`]: the cluster-wide response cache (rendezvous owners, coalescing);
//! - [`policy`]: auth keys, guardrails, rate limits, budgets and cost of chat requests;
//! - [`usage`]: the per-request usage log in its own SQLite file, and its admin queries;
//! - [`ops`]: `aurora backup`, `restore` and `state export|import`, and the export
//!   document the admin API shares;
//! - [`state`]: what every request handler shares; [`clock`]: the one wall clock;
//! - operator tools run by the binary: [`dev`] (`aurora dev`, a local cluster of child
//!   processes), [`gameday`] (`aurora gameday`, failover and rolling-restart drills
//!   under load), and [`probe`], their small blocking HTTP client (also `aurora health`,
//!   the image's HEALTHCHECK); [`signals`]: the
//!   stop signals every long-running subcommand waits for.

#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod gameday;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod ops;
pub mod policy;
pub mod probe;
pub mod provider;
pub mod server;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod usage;

pub use admin::token::{AdminToken, TokenError, TokenSource};
pub use config::{GatewayConfig, MockDefaults, ServerConfig};
pub use server::{DrainOutcome, Server, ServerError};
