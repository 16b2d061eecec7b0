//! The catalog's records as plain serde structs, and their validation.
//!
//! These are the shapes the replicated store will hold (one record per provider,
//! model and route, keyed by `name`), so they carry only data: no clients, no
//! secrets. An upstream's API key is named by the environment variable that holds it
//! (`api_key_env`), never stored, so a record can be gossiped, logged and shown by the
//! admin API without leaking it.
//!
//! Validation checks everything a request would otherwise trip over at run time and
//! reports the first problem with the path of the field at fault, e.g.
//! `routes[1].targets[0].model: no model or alias named "gpt-5"`.

use serde::{Deserialize, Serialize};

use crate::provider::mock;

/// Every record the gateway routes with.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Upstream providers.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Models, named `provider/model`, with their aliases.
    #[serde(default)]
    pub models: Vec<Model>,
    /// Routes: a name spread over weighted targets, with fallbacks.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// What protocol a provider speaks.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's `/chat/completions` (OpenAI itself, vLLM, Ollama, Groq, …).
    Openai,
    /// Anthropic's Messages API, translated to and from OpenAI's shapes.
    Anthropic,
    /// The built-in deterministic mock; no network.
    Mock,
}

impl ProviderKind {
    /// The lowercase name used in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Mock => "mock",
        }
    }

    /// Where requests go when the record names no `base_url`.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderKind::Mock => None,
        }
    }
}

/// One upstream provider.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Unique name; the first half of `provider/model` names.
    pub name: String,
    /// Protocol.
    pub kind: ProviderKind,
    /// Base URL including the API version, e.g. `https://api.openai.com/v1`;
    /// `/chat/completions` (OpenAI) or `/messages` (Anthropic) is appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (the key itself is never
    /// stored in a record). Absent: requests are sent without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Per-attempt timeout in ms (to the response headers, and between streamed
    /// chunks); overrides `upstream.request_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries of one target on 429/5xx/timeouts/connect errors; overrides
    /// `upstream.max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// One model a provider serves.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `provider/model`, e.g. `openai/gpt-4o-mini`.
    pub name: String,
    /// The model id sent upstream; defaults to the part of `name` after the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Other names clients may use, e.g. `fast`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A name served by weighted targets, then fallbacks in order.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The model name clients send.
    pub name: String,
    /// Load is spread over these by weight; when one fails, the others are tried.
    pub targets: Vec<RouteTarget>,
    /// Model names tried in order after every target failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// One weighted target of a route.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// A model name or alias.
    pub model: String,
    /// Relative share of the route's traffic (1 to 1,000,000).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Largest accepted route weight: keeps weight sums far from overflow.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A record that does not validate; `path` names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CatalogError {
    /// Field path, e.g. `routes[0].targets[1].weight`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl CatalogError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` in front of its path (e.g. `gateway`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}.{}", self.path);
        self
    }
}

impl Catalog {
    /// The default catalog: the mock provider named `mock` with its built-in models
    /// (`mock/echo`, `mock/gpt-4o-mini`, `mock/gpt-4o`), so a fresh node answers
    /// without any key or config.
    pub fn builtin() -> Self {
        Self {
            providers: vec![Provider {
                name: "mock".to_owned(),
                kind: ProviderKind::Mock,
                base_url: None,
                api_key_env: None,
                timeout_ms: None,
                max_retries: None,
            }],
            models: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Checks every record; the first problem found is returned.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            check_name(&p.name, false).map_err(|m| CatalogError::new(at("name"), m))?;
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("duplicate provider name {:?}", p.name),
                ));
            }
            if p.kind == ProviderKind::Mock {
                for (field, set) in [
                    ("base_url", p.base_url.is_some()),
                    ("api_key_env", p.api_key_env.is_some()),
                ] {
                    if set {
                        return Err(CatalogError::new(
                            at(field),
                            "a mock provider takes no base_url or api_key_env",
                        ));
                    }
                }
            }
            if let Some(url) = &p.base_url {
                check_base_url(url).map_err(|m| CatalogError::new(at("base_url"), m))?;
            }
            if let Some(var) = &p.api_key_env {
                let valid = !var.is_empty()
                    && !var.starts_with(|c: char| c.is_ascii_digit())
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(CatalogError::new(
                        at("api_key_env"),
                        format!(
                            "{var:?} is not an environment variable name (letters, digits, _); \
                             name the variable that holds the key, not the key"
                        ),
                    ));
                }
            }
            if p.timeout_ms == Some(0) {
                return Err(CatalogError::new(at("timeout_ms"), "must be at least 1"));
            }
            if p.max_retries.is_some_and(|n| n > 10) {
                return Err(CatalogError::new(at("max_retries"), "must be at most 10"));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            let at = |field: &str| format!("models[{i}].{field}");
            let Some((provider, model)) = m.name.split_once('/') else {
                return Err(CatalogError::new(
                    at("name"),
                    format!("{:?} must be `provider/model`", m.name),
                ));
            };
            check_name(model, true).map_err(|e| CatalogError::new(at("name"), e))?;
            let Some(p) = self.provider(provider) else {
                return Err(CatalogError::new(
                    at("name"),
                    format!("no provider named {provider:?}"),
                ));
            };
            if let Some(upstream) = &m.upstream_model {
                if upstream.is_empty() {
                    return Err(CatalogError::new(at("upstream_model"), "must not be empty"));
                }
            }
            let upstream = m.upstream_model.as_deref().unwrap_or(model);
            if p.kind == ProviderKind::Mock && mock::find(upstream).is_none() {
                return Err(CatalogError::new(
                    at("upstream_model"),
                    format!(
                        "the mock provider has no model {upstream:?}; it has {}",
                        mock::MODELS
                            .iter()
                            .map(|m| m.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !names.insert(m.name.as_str()) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("duplicate model name {:?}", m.name),
                ));
            }
        }
        // Aliases and routes share one namespace with model names: a client's model
        // string must mean exactly one thing.
        for (i, m) in self.models.iter().enumerate() {
            for (j, alias) in m.aliases.iter().enumerate() {
                let at = format!("models[{i}].aliases[{j}]");
                check_name(alias, true).map_err(|e| CatalogError::new(&at, e))?;
                if !names.insert(alias.as_str()) {
                    return Err(CatalogError::new(
                        at,
                        format!("{alias:?} is already a model name or alias"),
                    ));
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{i}].{field}");
            check_name(&r.name, true).map_err(|e| CatalogError::new(at("name"), e))?;
            if !names.insert(r.name.as_str()) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("{:?} is already a model name, alias or route", r.name),
                ));
            }
            if r.targets.is_empty() {
                return Err(CatalogError::new(
                    at("targets"),
                    "needs at least one target",
                ));
            }
            for (j, t) in r.targets.iter().enumerate() {
                if !self.names_model(&t.model) {
                    return Err(CatalogError::new(
                        at(&format!("targets[{j}].model")),
                        format!("no model or alias named {:?}", t.model),
                    ));
                }
                if !(1..=MAX_WEIGHT).contains(&t.weight) {
                    return Err(CatalogError::new(
                        at(&format!("targets[{j}].weight")),
                        format!("must be from 1 to {MAX_WEIGHT}"),
                    ));
                }
            }
            for (j, f) in r.fallbacks.iter().enumerate() {
                if !self.names_model(f) {
                    return Err(CatalogError::new(
                        at(&format!("fallbacks[{j}]")),
                        format!("no model or alias named {f:?}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `name` is a model name, an alias, or a built-in model of a mock
    /// provider (route targets must be models, never other routes: no cycles).
    fn names_model(&self, name: &str) -> bool {
        self.models
            .iter()
            .any(|m| m.name == name || m.aliases.iter().any(|a| a == name))
            || name.split_once('/').is_some_and(|(p, m)| {
                self.provider(p)
                    .is_some_and(|p| p.kind == ProviderKind::Mock && mock::find(m).is_some())
            })
    }
}

/// Names are what clients type: printable, no spaces, no `?` (it starts the mock's
/// per-request options). Provider names also may not contain `/`.
fn check_name(name: &str, slash_ok: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > 256 {
        return Err("must be at most 256 bytes".to_owned());
    }
    let bad = name
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || c == '?' || (!slash_ok && c == '/'));
    match bad {
        Some(c) => Err(format!(
            "{name:?} contains {c:?}, which is not allowed here"
        )),
        None => Ok(()),
    }
}

fn check_base_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{url:?} must not have a query string"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, kind: ProviderKind) -> Provider {
        Provider {
            name: name.to_owned(),
            kind,
            base_url: None,
            api_key_env: None,
            timeout_ms: None,
            max_retries: None,
        }
    }

    fn model(name: &str, aliases: &[&str]) -> Model {
        Model {
            name: name.to_owned(),
            upstream_model: None,
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn sample() -> Catalog {
        let mut openai = provider("openai", ProviderKind::Openai);
        openai.api_key_env = Some("OPENAI_API_KEY".into());
        Catalog {
            providers: vec![openai, provider("mock", ProviderKind::Mock)],
            models: vec![model("openai/gpt-4o", &["smart"])],
            routes: vec![Route {
                name: "chat".into(),
                targets: vec![
                    RouteTarget {
                        model: "smart".into(),
                        weight: 3,
                    },
                    RouteTarget {
                        model: "mock/echo".into(),
                        weight: 1,
                    },
                ],
                fallbacks: vec!["openai/gpt-4o".into()],
            }],
        }
    }

    fn path_of(c: &Catalog) -> String {
        c.validate()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.path)
    }

    #[test]
    fn builtin_and_sample_are_valid() {
        assert_eq!(Catalog::builtin().validate(), Ok(()));
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = sample();
        c.providers[1].name = "openai".into();
        assert_eq!(path_of(&c), "providers[1].name");

        let mut c = sample();
        c.providers[0].api_key_env = Some("sk-live-123".into());
        assert_eq!(path_of(&c), "providers[0].api_key_env");

        let mut c = sample();
        c.providers[0].base_url = Some("ftp://x".into());
        assert_eq!(path_of(&c), "providers[0].base_url");

        let mut c = sample();
        c.models[0].name = "nobody/gpt".into();
        assert_eq!(path_of(&c), "models[0].name");

        let mut c = sample();
        c.models.push(model("mock/nope", &[]));
        assert_eq!(path_of(&c), "models[1].upstream_model");

        let mut c = sample();
        c.models[0].aliases.push("openai/gpt-4o".into());
        assert_eq!(path_of(&c), "models[0].aliases[1]");

        let mut c = sample();
        c.routes[0].targets[1].weight = 0;
        assert_eq!(path_of(&c), "routes[0].targets[1].weight");

        let mut c = sample();
        c.routes[0].targets[0].model = "gpt-5".into();
        assert_eq!(path_of(&c), "routes[0].targets[0].model");

        let mut c = sample();
        c.routes[0].fallbacks[0] = "chat".into();
        assert_eq!(
            path_of(&c),
            "routes[0].fallbacks[0]",
            "a route is not a model"
        );

        let mut c = sample();
        c.routes[0].name = "smart".into();
        assert_eq!(path_of(&c), "routes[0].name");

        let mut c = sample();
        c.routes[0].targets.clear();
        assert_eq!(path_of(&c), "routes[0].targets");

        let mut c = sample();
        c.providers[0].name = "a/b".into();
        assert_eq!(path_of(&c), "providers[0].name");
    }
}
