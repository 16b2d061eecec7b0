//! # aurora-gateway
//!
//! The HTTP face of an Aurora node: the OpenAI-compatible client API, the admin API,
//! health and Prometheus metrics, and (in `main.rs`) the `aurora` binary.
//!
//! This is the first slice of issue 6: a single node with the built-in mock provider,
//! so `aurora serve` answers chat completions with no API key and no config. Nothing here
//! reads replicated state yet; the crate is laid out so that auth keys, routing, budgets
//! and the cluster view plug in beside the pieces that exist.
//!
//! One concern per module:
//! - [`config`]: the knobs a server is started with (no parsing of files or env here);
//! - [`server`]: binding, the accept loop and graceful drain;
//! - [`http`]: routing, body types and request-body limits, shared by every handler;
//! - [`openai`]: the OpenAI wire shapes, their error format and the `/v1` handlers;
//! - [`provider`]: model backends; today only the deterministic [`provider::mock`];
//! - [`admin`]: the admin token and the `/admin/api` handlers;
//! - [`health`]: liveness and readiness;
//! - [`metrics`]: counters and histograms with a hand-written Prometheus exposition;
//! - [`state`]: what every request handler shares.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openai;
pub mod provider;
pub mod server;
pub mod state;

pub use admin::token::{AdminToken, TokenError, TokenSource};
pub use config::{GatewayConfig, MockDefaults, ServerConfig};
pub use server::{DrainOutcome, Server, ServerError};
