//! The catalog: aurora-schema's provider, model and route records under their names,
//! and the rules that involve more than one record.
//!
//! The records are the replicated ones ([`aurora_schema::Provider`], [`Model`],
//! [`Route`]): the YAML `gateway:` section is read straight into them
//! ([`crate::catalog::entry`]) and the replicated collections are laid over it
//! ([`crate::cluster::catalog`]) without any conversion. [`Catalog::validate`] checks
//! each record's own rules (aurora-schema's; replicated records passed them at the
//! door already) and what a request would otherwise trip over at run time: names
//! clients can type, one meaning per name, references that resolve, URLs the gateway
//! can append a path to. The first problem is reported with the path of the field at
//! fault, e.g. `routes[1].targets[0].model: no model or alias named "gpt-5"`.
//!
//! An upstream's API key is named by the environment variable that holds it
//! (`api_key_env`), never stored, so a catalog can be logged and shown without
//! leaking it.

use std::borrow::Cow;

use aurora_schema::{Model, Provider, ProviderKind, RecordError, RecordId, Route};

use crate::provider::mock;

/// A record under its name (the record id of its collection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named<T> {
    /// The record id: a provider's name, a model's public name, a route's name.
    pub name: String,
    /// The record.
    pub record: T,
}

impl<T> Named<T> {
    /// `record` named `name`.
    pub fn new(name: impl Into<String>, record: T) -> Self {
        Self {
            name: name.into(),
            record,
        }
    }
}

/// Every record the gateway routes with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Upstream providers.
    pub providers: Vec<Named<Provider>>,
    /// Models, by convention named `provider/model`, with their aliases.
    pub models: Vec<Named<Model>>,
    /// Routes: a name spread over weighted targets, with fallbacks.
    pub routes: Vec<Named<Route>>,
}

/// Where requests go when a provider of `kind` names no `base_url` in the file.
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OpenAiCompatible => Some("https://api.openai.com/v1"),
        ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
        ProviderKind::Mock => None,
    }
}

/// Largest route weight the file accepts (`catalog::file`); the snapshot draws with
/// larger replicated weights capped to it, as it always has.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Per-attempt timeout of the built-in mock provider record (unused: the mock answers
/// in process); the default of `gateway.upstream.request_timeout_ms`.
const BUILTIN_TIMEOUT_MS: u32 = 120_000;
/// Retries of the built-in mock provider record (unused, as above); the default of
/// `gateway.upstream.max_retries`.
const BUILTIN_MAX_RETRIES: u8 = 2;

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

    /// A record's own validation error, under `at` (e.g. `providers[2]`); the
    /// record's `id` is the catalog's `name`.
    fn record(at: &str, error: &RecordError) -> Self {
        let field = match error.field() {
            "id" => "name",
            field => field,
        };
        Self::new(format!("{at}.{field}"), error.reason())
    }
}

/// The public names of a model: its id (the cooldown and metrics label) and its
/// aliases, all in the one namespace of model, alias and route names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicNames<'a> {
    /// `provider/model`: the record's name when it starts with its provider's name,
    /// otherwise `{provider_id}/{upstream_model}` (and the name is an alias).
    pub id: Cow<'a, str>,
    /// The other names.
    pub aliases: Vec<&'a str>,
}

/// What a model is served as. A replicated model's id need not start with its
/// provider (`fast` of provider `openai`), but the gateway names every target
/// `provider/model`: such a model is served as `{provider_id}/{upstream_model}` with
/// its own name as the first alias.
pub fn public_names(m: &Named<Model>) -> PublicNames<'_> {
    let provider = m.record.provider_id.as_str();
    let prefixed = m
        .name
        .strip_prefix(provider)
        .is_some_and(|rest| rest.starts_with('/'));
    let aliases = m.record.aliases.iter().map(String::as_str);
    if prefixed {
        // An alias equal to the name stays, to be refused as a duplicate name.
        return PublicNames {
            id: Cow::Borrowed(m.name.as_str()),
            aliases: aliases.collect(),
        };
    }
    let id = format!("{provider}/{}", m.record.upstream_model);
    let aliases = std::iter::once(m.name.as_str())
        .chain(aliases)
        .filter(|a| *a != id)
        .collect();
    PublicNames {
        id: Cow::Owned(id),
        aliases,
    }
}

impl Catalog {
    /// The default catalog: the mock provider named `mock` with its built-in models
    /// (`mock/echo`, `mock/gpt-4o-mini`, `mock/gpt-4o`), so a fresh node answers
    /// without any key or config.
    pub fn builtin() -> Self {
        Self {
            providers: vec![Named::new(
                "mock",
                Provider {
                    kind: ProviderKind::Mock,
                    base_url: String::new(),
                    api_key_env: None,
                    timeout_ms: BUILTIN_TIMEOUT_MS,
                    max_retries: BUILTIN_MAX_RETRIES,
                    cooldown_ms: 0,
                },
            )],
            models: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&Named<Provider>> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The models that are served (`enabled`), with their index in `models`.
    pub fn served_models(&self) -> impl Iterator<Item = (usize, &Named<Model>)> {
        self.models
            .iter()
            .enumerate()
            .filter(|(_, m)| m.record.enabled)
    }

    /// Checks every record; the first problem found is returned.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            let r = &p.record;
            check_name(&p.name, false).map_err(|m| CatalogError::new(at("name"), m))?;
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("duplicate provider name {:?}", p.name),
                ));
            }
            // A mock's `base_url` and `api_key_env` are not used (the snapshot reads no
            // key for it); the file refuses them, a replicated record may carry them.
            if r.kind != ProviderKind::Mock {
                check_base_url(&r.base_url).map_err(|m| CatalogError::new(at("base_url"), m))?;
            }
            if let Some(var) = &r.api_key_env {
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
            if r.timeout_ms == 0 {
                return Err(CatalogError::new(at("timeout_ms"), "must be at least 1"));
            }
            if r.max_retries > 10 {
                return Err(CatalogError::new(at("max_retries"), "must be at most 10"));
            }
            check_record(&format!("providers[{i}]"), &p.name, r.validate())?;
        }
        for (i, m) in self.served_models() {
            let at = |field: &str| format!("models[{i}].{field}");
            let r = &m.record;
            let public = public_names(m);
            let Some(p) = self.provider(r.provider_id.as_str()) else {
                // The name carries the provider when it starts with it: say so there.
                let field = if public.id == m.name.as_str() {
                    "name"
                } else {
                    "provider_id"
                };
                return Err(CatalogError::new(
                    at(field),
                    format!("no provider named {:?}", r.provider_id.as_str()),
                ));
            };
            check_name(&m.name, true).map_err(|e| CatalogError::new(at("name"), e))?;
            if r.upstream_model.is_empty() {
                return Err(CatalogError::new(at("upstream_model"), "must not be empty"));
            }
            if p.record.kind == ProviderKind::Mock && mock::find(&r.upstream_model).is_none() {
                return Err(CatalogError::new(
                    at("upstream_model"),
                    format!(
                        "the mock provider has no model {:?}; it has {}",
                        r.upstream_model,
                        mock::MODELS
                            .iter()
                            .map(|m| m.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            check_record(&format!("models[{i}]"), &m.name, r.validate())?;
            if !names.insert(public.id.clone()) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("duplicate model name {:?}", public.id),
                ));
            }
        }
        // Aliases and routes share one namespace with model names: a client's model
        // string must mean exactly one thing.
        for (i, m) in self.served_models() {
            for alias in public_names(m).aliases {
                let at = match m.record.aliases.iter().position(|a| a == alias) {
                    Some(j) => format!("models[{i}].aliases[{j}]"),
                    None => format!("models[{i}].name"),
                };
                check_name(alias, true).map_err(|e| CatalogError::new(&at, e))?;
                if !names.insert(Cow::Borrowed(alias)) {
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
            if !names.insert(Cow::Borrowed(r.name.as_str())) {
                return Err(CatalogError::new(
                    at("name"),
                    format!("{:?} is already a model name, alias or route", r.name),
                ));
            }
            if r.record.targets.is_empty() {
                return Err(CatalogError::new(
                    at("targets"),
                    "needs at least one target",
                ));
            }
            for (j, t) in r.record.targets.iter().enumerate() {
                if !self.names_model(t.model_id.as_str()) {
                    return Err(CatalogError::new(
                        at(&format!("targets[{j}].model")),
                        format!("no model or alias named {:?}", t.model_id.as_str()),
                    ));
                }
                if t.weight == 0 {
                    return Err(CatalogError::new(
                        at(&format!("targets[{j}].weight")),
                        format!("must be from 1 to {MAX_WEIGHT}"),
                    ));
                }
            }
            for (j, f) in r.record.fallbacks.iter().enumerate() {
                if !self.names_model(f.as_str()) {
                    return Err(CatalogError::new(
                        at(&format!("fallbacks[{j}]")),
                        format!("no model or alias named {:?}", f.as_str()),
                    ));
                }
            }
            check_record(&format!("routes[{i}]"), &r.name, r.record.validate())?;
        }
        Ok(())
    }

    /// Whether `name` is a served model's name or alias, or a built-in model of a mock
    /// provider (route targets must be models, never other routes: no cycles).
    fn names_model(&self, name: &str) -> bool {
        self.served_models().any(|(_, m)| {
            let public = public_names(m);
            public.id == name || public.aliases.contains(&name)
        }) || name.split_once('/').is_some_and(|(p, m)| {
            self.provider(p)
                .is_some_and(|p| p.record.kind == ProviderKind::Mock && mock::find(m).is_some())
        })
    }
}

/// The record's own rules (aurora-schema's, `own`) and its name as a record id, under
/// `at`.
fn check_record(at: &str, name: &str, own: Result<(), RecordError>) -> Result<(), CatalogError> {
    RecordId::check(name).map_err(|r| CatalogError::new(format!("{at}.name"), r))?;
    own.map_err(|e| CatalogError::record(at, &e))
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
    use aurora_schema::RouteTarget;

    use super::*;

    fn provider(kind: ProviderKind, base_url: &str) -> Provider {
        Provider {
            kind,
            base_url: base_url.to_owned(),
            api_key_env: None,
            timeout_ms: 1_000,
            max_retries: 0,
            cooldown_ms: 0,
        }
    }

    fn id(s: &str) -> RecordId {
        RecordId::new(s).expect("id")
    }

    fn model(name: &str, aliases: &[&str]) -> Named<Model> {
        let (provider, upstream) = name.split_once('/').expect("provider/model");
        Named::new(
            name,
            Model {
                provider_id: id(provider),
                upstream_model: upstream.to_owned(),
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                context_window: None,
                enabled: true,
            },
        )
    }

    fn target(model: &str, weight: u32) -> RouteTarget {
        RouteTarget {
            model_id: id(model),
            weight,
        }
    }

    fn sample() -> Catalog {
        let mut openai = provider(ProviderKind::OpenAiCompatible, "https://api.openai.com/v1");
        openai.api_key_env = Some("OPENAI_API_KEY".into());
        Catalog {
            providers: vec![
                Named::new("openai", openai),
                Catalog::builtin().providers.remove(0),
            ],
            models: vec![model("openai/gpt-4o", &["smart"])],
            routes: vec![Named::new(
                "chat",
                Route {
                    targets: vec![target("smart", 3), target("mock/echo", 1)],
                    fallbacks: vec![id("openai/gpt-4o")],
                    retries: 0,
                },
            )],
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
        c.providers[0].record.api_key_env = Some("sk-live-123".into());
        assert_eq!(path_of(&c), "providers[0].api_key_env");

        let mut c = sample();
        c.providers[0].record.base_url = "ftp://x".into();
        assert_eq!(path_of(&c), "providers[0].base_url");

        let mut c = sample();
        c.models[0] = model("nobody/gpt", &[]);
        assert_eq!(path_of(&c), "models[0].name");

        let mut c = sample();
        c.models.push(model("mock/nope", &[]));
        assert_eq!(path_of(&c), "models[1].upstream_model");

        let mut c = sample();
        c.models[0].record.aliases.push("openai/gpt-4o".into());
        assert_eq!(path_of(&c), "models[0].aliases[1]");

        let mut c = sample();
        c.routes[0].record.targets[1].weight = 0;
        assert_eq!(path_of(&c), "routes[0].targets[1].weight");

        let mut c = sample();
        c.routes[0].record.targets[0].model_id = id("gpt-5");
        assert_eq!(path_of(&c), "routes[0].targets[0].model");

        let mut c = sample();
        c.routes[0].record.fallbacks[0] = id("chat");
        assert_eq!(
            path_of(&c),
            "routes[0].fallbacks[0]",
            "a route is not a model"
        );

        let mut c = sample();
        c.routes[0].name = "smart".into();
        assert_eq!(path_of(&c), "routes[0].name");

        let mut c = sample();
        c.routes[0].record.targets.clear();
        assert_eq!(path_of(&c), "routes[0].targets");

        let mut c = sample();
        c.providers[0].name = "a/b".into();
        assert_eq!(path_of(&c), "providers[0].name");
    }

    /// The records' own rules (aurora-schema's) hold in the catalog too, at the
    /// record's path; a name must also be a record id.
    #[test]
    fn the_records_own_rules_apply_at_their_path() {
        let mut c = sample();
        c.providers[0].record.timeout_ms = 600_001;
        assert_eq!(path_of(&c), "providers[0].timeout_ms");

        let mut c = sample();
        c.routes[0].record.retries = 11;
        assert_eq!(path_of(&c), "routes[0].retries");

        let mut c = sample();
        c.routes[0].name = "chat+".into();
        assert_eq!(path_of(&c), "routes[0].name");
    }

    /// A replicated model whose id does not start with its provider is served as
    /// `{provider}/{upstream_model}` with its id as an alias; a disabled one is not
    /// served at all, so nothing may route to it.
    #[test]
    fn public_names_and_disabled_models() {
        let mut fast = model("openai/gpt-4o-mini", &["quick"]);
        fast.name = "fast".into();
        let names = public_names(&fast);
        assert_eq!(names.id, "openai/gpt-4o-mini");
        assert_eq!(names.aliases, ["fast", "quick"]);
        let mut c = sample();
        c.models.push(fast);
        c.routes[0].record.targets[0].model_id = id("fast");
        assert_eq!(c.validate(), Ok(()));
        c.models[1].record.enabled = false;
        assert_eq!(path_of(&c), "routes[0].targets[0].model");
        assert_eq!(c.served_models().count(), 1);
    }
}
