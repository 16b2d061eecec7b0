//! Reading the `gateway:` section of `aurora.yaml`.
//!
//! The file is optional, and so is every part of the section: with no `providers`
//! the built-in mock provider is used, with no `upstream` the documented defaults.
//! Unknown keys are errors (`deny_unknown_fields`), because a misspelt `fallback:`
//! silently ignored is a production outage waiting for its first upstream failure.
//! Every error names the key at fault (`gateway.routes[0].targets[1].weight`) and,
//! for syntax errors, the line and column.
//!
//! Top-level sections other than `gateway` belong to the cluster driver (issue 5):
//! `cluster` is accepted and left to it; anything else is an error.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::records::{Catalog, CatalogError, Model, Provider, Route};
use crate::config::{AuthMode, BudgetSettings, MetricsAuth};
use crate::http::limits::Limits;
use crate::upstream::policy::UpstreamPolicy;
use crate::usage::retention::Retention;

/// What the gateway takes from the file.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayFile {
    /// Retry, timeout and cooldown settings of this node.
    pub upstream: UpstreamPolicy,
    /// Connection caps, client deadlines and upstream body caps of this node.
    pub limits: Limits,
    /// Retention of this node's usage log.
    pub usage_log: Retention,
    /// The initial catalog.
    pub catalog: Catalog,
    /// What admission reserves on budgets (`gateway.budgets`).
    pub budgets: BudgetSettings,
    /// `gateway.auth`; `None`: the default for the listener (see [`AuthMode`]).
    pub auth: Option<AuthMode>,
    /// `gateway.provider_env_prefix`; `None`: [`crate::config::DEFAULT_PROVIDER_ENV_PREFIX`].
    pub provider_env_prefix: Option<String>,
    /// `gateway.metrics_auth`; `None`: the default for the listener (see [`MetricsAuth`]).
    pub metrics_auth: Option<MetricsAuth>,
}

impl Default for GatewayFile {
    /// What a node runs with when there is no file: the mock provider, default policy.
    fn default() -> Self {
        Self {
            upstream: UpstreamPolicy::default(),
            limits: Limits::default(),
            usage_log: Retention::default(),
            catalog: Catalog::builtin(),
            budgets: BudgetSettings::default(),
            auth: None,
            provider_env_prefix: None,
            metrics_auth: None,
        }
    }
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not readable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid YAML, or a key or value of the wrong shape.
    #[error("{path}: {key}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The key at fault, e.g. `gateway.providers[0].kind`.
        key: String,
        /// What serde said (with line and column).
        message: String,
    },
    /// Well-formed but inconsistent records.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field at fault.
        error: CatalogError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    #[serde(default)]
    gateway: Option<Section>,
    /// Reserved for the cluster driver's settings; not read here.
    #[serde(default)]
    #[allow(dead_code)]
    cluster: Option<serde_norway::Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    upstream: UpstreamPolicy,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    usage_log: Retention,
    #[serde(default)]
    providers: Option<Vec<Provider>>,
    #[serde(default)]
    models: Vec<Model>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    budgets: BudgetSettings,
    #[serde(default)]
    auth: Option<AuthMode>,
    #[serde(default)]
    provider_env_prefix: Option<String>,
    #[serde(default)]
    metrics_auth: Option<MetricsAuth>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<GatewayFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        ParseError::Syntax { key, message } => FileError::Parse {
            path: path.to_owned(),
            key,
            message,
        },
        ParseError::Invalid(error) => FileError::Invalid {
            path: path.to_owned(),
            error,
        },
    })
}

/// [`load`] without the file system.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Syntax or shape; `key` is the path (`.` for the document itself).
    Syntax {
        /// Path of the key.
        key: String,
        /// Message with line and column.
        message: String,
    },
    /// A record that does not validate.
    Invalid(CatalogError),
}

/// Parses the YAML text of a whole config file.
pub fn parse(text: &str) -> Result<GatewayFile, ParseError> {
    // An empty file (or only comments) means "all defaults"; serde would call it EOF.
    let empty = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    let root: Root = if empty {
        Root {
            gateway: None,
            cluster: None,
        }
    } else {
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| ParseError::Syntax {
            key: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?
    };
    let section = root.gateway.unwrap_or_default();
    section
        .upstream
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("upstream").under("gateway")))?;
    section
        .limits
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("limits").under("gateway")))?;
    section
        .usage_log
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("usage_log").under("gateway")))?;
    section
        .budgets
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("budgets").under("gateway")))?;
    let catalog = Catalog {
        providers: section
            .providers
            .unwrap_or_else(|| Catalog::builtin().providers),
        models: section.models,
        routes: section.routes,
    };
    catalog
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("gateway")))?;
    if let Some(prefix) = &section.provider_env_prefix {
        crate::config::validate_env_prefix(prefix).map_err(|message| {
            ParseError::Invalid(CatalogError {
                path: "gateway.provider_env_prefix".into(),
                message,
            })
        })?;
    }
    let prefix = section
        .provider_env_prefix
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_PROVIDER_ENV_PREFIX);
    for (i, p) in catalog.providers.iter().enumerate() {
        if let Some(var) = &p.api_key_env {
            if !crate::config::env_name_allowed(var, prefix) {
                return Err(ParseError::Invalid(CatalogError {
                    path: format!("gateway.providers[{i}].api_key_env"),
                    message: format!(
                        "{var:?} does not start with {prefix:?}: providers may only read \
                         variables with that prefix (gateway.provider_env_prefix)"
                    ),
                }));
            }
        }
    }
    Ok(GatewayFile {
        upstream: section.upstream,
        limits: section.limits,
        usage_log: section.usage_log,
        catalog,
        budgets: section.budgets,
        auth: section.auth,
        provider_env_prefix: section.provider_env_prefix,
        metrics_auth: section.metrics_auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::records::ProviderKind;

    fn key_of(text: &str) -> String {
        match parse(text) {
            Ok(_) => "ok".into(),
            Err(ParseError::Syntax { key, .. }) => key,
            Err(ParseError::Invalid(e)) => e.path,
        }
    }

    #[test]
    fn budget_reservations_parse_and_are_validated() {
        let file = parse(
            "gateway:\n  budgets:\n    reserve_output_tokens: 1000\n    reserve_output_tokens_by_model: {big: 32000}\n",
        )
        .expect("parses");
        assert_eq!(file.budgets.output_tokens_for("big", []), 32_000);
        assert_eq!(file.budgets.output_tokens_for("route", ["big"]), 32_000);
        assert_eq!(file.budgets.output_tokens_for("other", ["x"]), 1_000);
        assert_eq!(
            parse("gateway: {}\n")
                .expect("empty")
                .budgets
                .reserve_output_tokens,
            4096
        );
        assert_eq!(
            key_of("gateway:\n  budgets: {reserve_output_tokens: 0}\n"),
            "gateway.budgets.reserve_output_tokens"
        );
        assert_eq!(
            key_of("gateway:\n  budgets: {reserve_output_tokens_by_model: {m: 20000000}}\n"),
            "gateway.budgets.reserve_output_tokens_by_model.m"
        );
        assert_eq!(
            key_of("gateway:\n  budgets: {reserve: 1}\n"),
            "gateway.budgets.reserve"
        );
    }

    #[test]
    fn empty_and_missing_section_give_the_mock() {
        for text in [
            "",
            "# nothing\n",
            "cluster:\n  anything: 1\n",
            "gateway: {}\n",
        ] {
            let file = parse(text).expect(text);
            assert_eq!(file.catalog, Catalog::builtin(), "{text:?}");
            assert_eq!(file.upstream, UpstreamPolicy::default());
        }
    }

    #[test]
    fn a_full_section_parses() {
        let file = parse(
            r#"
gateway:
  upstream: {max_retries: 1, cooldown_failures: 2}
  providers:
    - {name: oai, kind: openai, api_key_env: AURORA_PROVIDER_OPENAI_API_KEY}
    - {name: claude, kind: anthropic, base_url: "http://127.0.0.1:9/v1", timeout_ms: 500}
  models:
    - {name: oai/gpt-4o-mini, aliases: [fast]}
    - name: claude/sonnet
      upstream_model: claude-sonnet-4-5
  routes:
    - name: chat
      targets: [{model: fast, weight: 3}, {model: claude/sonnet}]
      fallbacks: [oai/gpt-4o-mini]
"#,
        )
        .expect("valid");
        assert_eq!(file.upstream.max_retries, 1);
        assert_eq!(file.upstream.cooldown_failures, 2);
        assert_eq!(file.catalog.providers[1].kind, ProviderKind::Anthropic);
        assert_eq!(file.catalog.routes[0].targets[1].weight, 1);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of("gatway: {}\n"), "gatway");
        assert_eq!(
            key_of("gateway:\n  providers:\n    - {name: a, kind: opnai}\n"),
            "gateway.providers[0].kind"
        );
        assert_eq!(
            key_of("gateway:\n  providers:\n    - {name: a, kind: openai, key: x}\n"),
            "gateway.providers[0].key"
        );
        assert_eq!(
            key_of("gateway:\n  upstream: {max_retries: -1}\n"),
            "gateway.upstream.max_retries"
        );
        assert_eq!(
            key_of("gateway:\n  routes:\n    - {name: r, targets: [{model: nope}]}\n"),
            "gateway.routes[0].targets[0].model"
        );
        assert_eq!(
            key_of("gateway:\n  upstream: {retry_base_ms: 0}\n"),
            "gateway.upstream.retry_base_ms"
        );
        assert_eq!(
            key_of("gateway:\n  limits: {max_connections: 0}\n"),
            "gateway.limits.max_connections"
        );
        assert_eq!(
            key_of("gateway:\n  limits: {max_conections: 5}\n"),
            "gateway.limits.max_conections"
        );
        assert_eq!(
            key_of("gateway:\n  usage_log: {max_bytes: 5}\n"),
            "gateway.usage_log.max_bytes"
        );
        assert_eq!(
            key_of("gateway:\n  limits: {send_timeout_ms: 50}\n  usage_log: {retention_days: 7}\n"),
            "ok"
        );
        let Err(ParseError::Syntax { message, .. }) =
            parse("gateway:\n  providers:\n    - {name: a, kind: opnai}\n")
        else {
            panic!("syntax error expected");
        };
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn gateway_settings_parse_and_bad_values_name_the_key() {
        let file = parse(
            "gateway:\n  auth: keys\n  metrics_auth: admin\n  provider_env_prefix: MY_\n  providers:\n    - {name: o, kind: openai, api_key_env: MY_KEY}\n",
        )
        .expect("valid");
        assert_eq!(file.auth, Some(AuthMode::Keys));
        assert_eq!(file.metrics_auth, Some(MetricsAuth::Admin));
        assert_eq!(file.provider_env_prefix.as_deref(), Some("MY_"));
        assert_eq!(key_of("gateway:\n  auth: maybe\n"), "gateway.auth");
        assert_eq!(
            key_of("gateway:\n  metrics_auth: x\n"),
            "gateway.metrics_auth"
        );
        assert_eq!(
            key_of("gateway:\n  provider_env_prefix: \"\"\n"),
            "gateway.provider_env_prefix"
        );
    }

    #[test]
    fn api_key_env_outside_the_prefix_is_refused() {
        // The default prefix: a provider may not read an unrelated secret.
        assert_eq!(
            key_of("gateway:\n  providers:\n    - {name: o, kind: openai, api_key_env: AWS_SECRET_ACCESS_KEY}\n"),
            "gateway.providers[0].api_key_env"
        );
        assert_eq!(
            key_of("gateway:\n  providers:\n    - {name: o, kind: openai, api_key_env: AURORA_PROVIDER_O}\n"),
            "ok"
        );
    }
}
