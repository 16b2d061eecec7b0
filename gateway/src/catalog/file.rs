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
//!
//! Providers, models and routes are read straight into aurora-schema's records
//! ([`crate::catalog::entry`]): an entry is the record's `name` and its fields. Fields
//! the file may leave out are filled in here, once, when the file is read: a
//! provider's `base_url` with its kind's default, its `timeout_ms` and `max_retries`
//! with the node's `upstream.request_timeout_ms` and `upstream.max_retries` (this
//! file's at start; the running ones on a SIGHUP reload, which does not change
//! `upstream`), a model's provider and upstream id from its `provider/model` name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use aurora_schema::limits::MAX_TIMEOUT_MS;
use aurora_schema::{Model, Provider, ProviderKind, RecordId, Route};

use crate::catalog::entry::Entry;
use crate::catalog::records::{default_base_url, Catalog, CatalogError, Named, MAX_WEIGHT};
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
    /// `gateway.telemetry` (traces; the flag and env var win, see docs/tracing.md).
    pub telemetry: crate::telemetry::FileSettings,
    /// `gateway.cache`, the response cache.
    pub cache: crate::cache::CacheSettings,
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
            telemetry: Default::default(),
            cache: Default::default(),
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
    providers: Option<Vec<Entry<Provider>>>,
    #[serde(default)]
    models: Vec<Entry<Model>>,
    #[serde(default)]
    routes: Vec<Entry<Route>>,
    #[serde(default)]
    budgets: BudgetSettings,
    #[serde(default)]
    auth: Option<AuthMode>,
    #[serde(default)]
    provider_env_prefix: Option<String>,
    #[serde(default)]
    metrics_auth: Option<MetricsAuth>,
    #[serde(default)]
    telemetry: crate::telemetry::FileSettings,
    #[serde(default)]
    cache: crate::cache::CacheSettings,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<GatewayFile, FileError> {
    load_with(path, None)
}

/// [`load`] for a SIGHUP reload: providers that leave out `timeout_ms` or
/// `max_retries` take them from `running`, the node's `gateway.upstream` (which a
/// reload does not change), not from the file's new `upstream`.
pub fn reload(path: &Path, running: &UpstreamPolicy) -> Result<GatewayFile, FileError> {
    load_with(path, Some(running))
}

fn load_with(path: &Path, running: Option<&UpstreamPolicy>) -> Result<GatewayFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_with(&text, running).map_err(|e| match e {
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
    parse_with(text, None)
}

/// [`parse`], with the fields providers leave out taken from `running` instead of
/// the file's `upstream` when it is given (see [`reload`]).
fn parse_with(text: &str, running: Option<&UpstreamPolicy>) -> Result<GatewayFile, ParseError> {
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
    section
        .cache
        .validate()
        .map_err(|e| ParseError::Invalid(e.under("cache").under("gateway")))?;
    let catalog = complete(
        section.providers,
        section.models,
        section.routes,
        running.unwrap_or(&section.upstream),
    )
    .map_err(|e| ParseError::Invalid(e.under("gateway")))?;
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
        if let Some(var) = &p.record.api_key_env {
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
        telemetry: section.telemetry,
        cache: section.cache,
    })
}

/// The catalog of the file's entries, with the fields they left out filled in (see
/// the module docs); the built-in mock provider when there is no `providers` key.
fn complete(
    providers: Option<Vec<Entry<Provider>>>,
    models: Vec<Entry<Model>>,
    routes: Vec<Entry<Route>>,
    upstream: &UpstreamPolicy,
) -> Result<Catalog, CatalogError> {
    let providers = match providers {
        Some(entries) => entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| complete_provider(i, e, upstream))
            .collect::<Result<_, _>>()?,
        None => Catalog::builtin().providers,
    };
    Ok(Catalog {
        providers,
        models: models
            .into_iter()
            .enumerate()
            .map(complete_model)
            .collect::<Result<_, _>>()?,
        routes: routes
            .into_iter()
            .enumerate()
            .map(complete_route)
            .collect::<Result<_, _>>()?,
    })
}

fn complete_provider(
    i: usize,
    entry: Entry<Provider>,
    upstream: &UpstreamPolicy,
) -> Result<Named<Provider>, CatalogError> {
    let Entry {
        name,
        mut record,
        absent,
    } = entry;
    if record.kind == ProviderKind::Mock {
        for (field, set) in [
            ("base_url", !absent.contains(&"base_url")),
            ("api_key_env", record.api_key_env.is_some()),
        ] {
            if set {
                return Err(CatalogError::new(
                    format!("providers[{i}].{field}"),
                    "a mock provider takes no base_url or api_key_env",
                ));
            }
        }
    }
    for field in absent {
        match field {
            "base_url" => {
                record.base_url = default_base_url(record.kind).unwrap_or("").to_owned();
            }
            "timeout_ms" => {
                record.timeout_ms = u32::try_from(upstream.request_timeout_ms)
                    .ok()
                    .filter(|ms| *ms <= MAX_TIMEOUT_MS)
                    .ok_or_else(|| {
                        CatalogError::new(
                            format!("providers[{i}].timeout_ms"),
                            format!(
                                "not set, and upstream.request_timeout_ms ({}) is above a \
                                 provider's limit of {MAX_TIMEOUT_MS}: set it here",
                                upstream.request_timeout_ms
                            ),
                        )
                    })?;
            }
            "max_retries" => {
                // `upstream.validate` keeps it at most 10.
                record.max_retries = u8::try_from(upstream.max_retries).unwrap_or(u8::MAX);
            }
            _ => {}
        }
    }
    Ok(Named::new(name, record))
}

fn complete_model((i, entry): (usize, Entry<Model>)) -> Result<Named<Model>, CatalogError> {
    let Entry {
        name,
        mut record,
        absent,
    } = entry;
    if absent.contains(&"provider_id") {
        let Some((provider, _)) = name.split_once('/') else {
            return Err(CatalogError::new(
                format!("models[{i}].name"),
                format!("{name:?} must be `provider/model`"),
            ));
        };
        // A provider name that is no id is refused at the provider (and again here,
        // naming this model, by `Catalog::validate`).
        record.provider_id = RecordId::new(provider)
            .map_err(|e| CatalogError::new(format!("models[{i}].name"), e.reason()))?;
    }
    if absent.contains(&"upstream_model") {
        let provider = record.provider_id.as_str();
        record.upstream_model = name
            .strip_prefix(provider)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(&name)
            .to_owned();
    }
    Ok(Named::new(name, record))
}

fn complete_route((i, entry): (usize, Entry<Route>)) -> Result<Named<Route>, CatalogError> {
    // The file's limit: far from overflow in any sum, and what the file always took.
    if let Some(j) = entry
        .record
        .targets
        .iter()
        .position(|t| t.weight > MAX_WEIGHT)
    {
        return Err(CatalogError::new(
            format!("routes[{i}].targets[{j}].weight"),
            format!("must be from 1 to {MAX_WEIGHT}"),
        ));
    }
    Ok(Named::new(entry.name, entry.record))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            file.catalog.providers[1].record.kind,
            ProviderKind::Anthropic
        );
        assert_eq!(file.catalog.routes[0].record.targets[1].weight, 1);
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
    fn the_otlp_endpoint_is_read_and_a_misspelt_telemetry_key_is_refused() {
        let file =
            parse("gateway:\n  telemetry: {otlp_endpoint: \"http://c:4318\"}\n").expect("valid");
        assert_eq!(
            file.telemetry.otlp_endpoint.as_deref(),
            Some("http://c:4318")
        );
        assert_eq!(
            parse("gateway: {}\n")
                .expect("valid")
                .telemetry
                .otlp_endpoint,
            None
        );
        assert!(parse("gateway:\n  telemetry: {otlp_endpiont: x}\n").is_err());
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

    /// The file's entries are aurora-schema records: the fields a file may leave out
    /// are filled in from the name, the kind and this file's `upstream` settings.
    #[test]
    fn entries_are_the_schema_records_with_their_gaps_filled() {
        let file = parse(
            r#"
gateway:
  upstream: {request_timeout_ms: 30000, max_retries: 4}
  providers:
    - {name: oai, kind: openai}
    - {name: vllm, kind: open_ai_compatible, base_url: "http://10.0.0.1:8000/v1", timeout_ms: 900, max_retries: 0, cooldown_ms: 5}
    - {name: claude, kind: anthropic}
  models:
    - {name: oai/gpt-4o-mini}
    - {name: claude/sonnet, upstream_model: claude-sonnet-4-5, enabled: false}
  routes:
    - {name: chat, targets: [{model: oai/gpt-4o-mini}]}
"#,
        )
        .expect("valid");
        let [oai, vllm, claude] = &file.catalog.providers[..] else {
            panic!("three providers");
        };
        assert_eq!(oai.name, "oai");
        assert_eq!(
            oai.record,
            Provider {
                kind: ProviderKind::OpenAiCompatible,
                base_url: "https://api.openai.com/v1".into(),
                api_key_env: None,
                timeout_ms: 30_000,
                max_retries: 4,
                cooldown_ms: 0,
            }
        );
        assert_eq!(
            (
                vllm.record.timeout_ms,
                vllm.record.max_retries,
                vllm.record.cooldown_ms
            ),
            (900, 0, 5)
        );
        assert_eq!(claude.record.base_url, "https://api.anthropic.com/v1");
        let models = &file.catalog.models;
        assert_eq!(models[0].record.provider_id.as_str(), "oai");
        assert_eq!(models[0].record.upstream_model, "gpt-4o-mini");
        assert!(!models[1].record.enabled);
        let route = &file.catalog.routes[0].record;
        assert_eq!((route.targets[0].weight, route.retries), (1, 0));
    }

    #[test]
    fn narrower_schema_ranges_are_errors_naming_the_key() {
        for (text, key) in [
            // Above u32 (the file took u64): serde's range error, at the key.
            ("gateway:\n  providers:\n    - {name: o, kind: openai, timeout_ms: 5000000000}\n", "gateway.providers[0].timeout_ms"),
            // Within u32 but above the record's limit.
            ("gateway:\n  providers:\n    - {name: o, kind: openai, timeout_ms: 600001}\n", "gateway.providers[0].timeout_ms"),
            // Above u8 (the file took u32).
            ("gateway:\n  providers:\n    - {name: o, kind: openai, max_retries: 300}\n", "gateway.providers[0].max_retries"),
            ("gateway:\n  providers:\n    - {name: o, kind: openai, max_retries: 11}\n", "gateway.providers[0].max_retries"),
            // Left out, and the node's setting is above a provider's limit.
            ("gateway:\n  upstream: {request_timeout_ms: 1800000}\n  providers:\n    - {name: o, kind: openai}\n", "gateway.providers[0].timeout_ms"),
            ("gateway:\n  providers:\n    - {name: o, kind: openai}\n  models:\n    - {name: gpt}\n", "gateway.models[0].name"),
            ("gateway:\n  routes:\n    - {name: r, targets: [{model: mock/echo, weight: 1000001}]}\n", "gateway.routes[0].targets[0].weight"),
            ("gateway:\n  routes:\n    - {name: r, targets: [{model: mock/echo}], retries: 11}\n", "gateway.routes[0].retries"),
            ("gateway:\n  providers:\n    - {kind: mock}\n", "gateway.providers[0]"),
            ("gateway:\n  providers:\n    - {name: m, kind: mock, base_url: \"\"}\n", "gateway.providers[0].base_url"),
            ("gateway:\n  providers:\n    - {name: m, kind: mock, api_key_env: AURORA_PROVIDER_M}\n", "gateway.providers[0].api_key_env"),
            ("gateway:\n  providers:\n    - {name: a, name: b, kind: mock}\n", "gateway.providers[0]"),
        ] {
            assert_eq!(key_of(text), key, "{text}");
        }
        assert_eq!(
            key_of("gateway:\n  upstream: {request_timeout_ms: 1800000}\n  providers:\n    - {name: o, kind: openai, timeout_ms: 600000}\n"),
            "ok",
            "a provider that sets its own timeout is not bound by the node's"
        );
    }

    /// An unknown key inside an entry is refused by the record's own
    /// `deny_unknown_fields`, at its path and with its line.
    #[test]
    fn an_unknown_key_in_an_entry_has_its_path_and_line() {
        let Err(ParseError::Syntax { key, message }) =
            parse("gateway:\n  models:\n    - name: mock/echo\n      alias: [x]\n")
        else {
            panic!("syntax error expected");
        };
        assert_eq!(key, "gateway.models[0].alias");
        assert!(message.contains("unknown field `alias`"), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    /// A reload keeps the running `upstream` (it changes only at a restart), so the
    /// providers that leave their timeout and retries to it keep the running values.
    #[test]
    fn a_reload_fills_left_out_fields_from_the_running_upstream() {
        let text = "gateway:\n  upstream: {request_timeout_ms: 1000, max_retries: 0}\n  providers:\n    - {name: o, kind: openai}\n";
        let fresh = parse(text).expect("valid");
        assert_eq!(
            (
                fresh.catalog.providers[0].record.timeout_ms,
                fresh.catalog.providers[0].record.max_retries
            ),
            (1_000, 0)
        );
        let reloaded = parse_with(text, Some(&UpstreamPolicy::default())).expect("valid");
        assert_eq!(
            (
                reloaded.catalog.providers[0].record.timeout_ms,
                reloaded.catalog.providers[0].record.max_retries
            ),
            (120_000, 2)
        );
    }
}
