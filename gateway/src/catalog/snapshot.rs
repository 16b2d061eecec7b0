//! The compiled, read-only form of a [`Catalog`] that requests resolve names against.
//!
//! Compiling once per catalog change (not per request) turns every lookup into one
//! hash-map probe and resolves each provider's API key from its environment variable
//! once, at install time. The key lives only here, in memory, behind a type whose
//! `Debug` prints `[redacted]`, so it cannot reach a log line by accident.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aurora_schema::ProviderKind;

use crate::catalog::records::{public_names, Catalog, CatalogError, MAX_WEIGHT};
use crate::provider::mock::{self, MockModel};

/// An API key read from the environment. Never printed.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// The key, for building one request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A provider ready to be called.
#[derive(Debug)]
pub struct ProviderRuntime {
    /// Record name.
    pub name: Arc<str>,
    /// Protocol.
    pub kind: ProviderKind,
    /// Full endpoint URL (`…/chat/completions` or `…/messages`); empty for mock.
    pub endpoint: String,
    /// The variable the key is read from, for error messages.
    pub api_key_env: Option<String>,
    /// The key, if `api_key_env` is set and the variable exists.
    pub api_key: Option<Secret>,
    /// Per-attempt timeout (the record's `timeout_ms`).
    pub timeout: Duration,
    /// Retries of one target (the record's `max_retries`).
    pub max_retries: u32,
}

/// One concrete place a request can go: a provider and the model id it expects.
#[derive(Debug)]
pub struct Target {
    /// `provider/model`: the catalog name, used for cooldown state and metrics.
    pub id: Arc<str>,
    /// Who serves it.
    pub provider: Arc<ProviderRuntime>,
    /// The model id sent upstream.
    pub upstream_model: String,
    /// Set when the provider is the built-in mock.
    pub mock: Option<&'static MockModel>,
}

/// What a client's model name resolved to.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The catalog name it matched (model, alias or route): a bounded metrics label.
    pub label: Arc<str>,
    /// Weighted targets; one entry for a plain model.
    pub targets: Vec<(Arc<Target>, u32)>,
    /// Tried in order after the targets.
    pub fallbacks: Vec<Arc<Target>>,
}

/// One entry of `GET /v1/models`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The name clients send.
    pub id: Arc<str>,
    /// `owned_by`: the provider, or `aurora` for routes.
    pub owned_by: Arc<str>,
}

/// A validated, compiled catalog.
#[derive(Debug)]
pub struct Snapshot {
    records: Catalog,
    names: HashMap<Arc<str>, Resolved>,
    listed: Vec<Listed>,
    targets: Vec<Arc<str>>,
}

impl Snapshot {
    /// Validates and compiles `records`; `env` looks up API-key variables (the binary
    /// passes `std::env::var`, tests a map).
    pub fn compile(
        records: Catalog,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CatalogError> {
        records.validate()?;
        let mut providers: HashMap<&str, Arc<ProviderRuntime>> = HashMap::new();
        for named in &records.providers {
            let p = &named.record;
            let base = p.base_url.trim_end_matches('/');
            let endpoint = match p.kind {
                ProviderKind::OpenAiCompatible => format!("{base}/chat/completions"),
                ProviderKind::Anthropic => format!("{base}/messages"),
                ProviderKind::Mock => String::new(),
            };
            // The mock needs no key: a replicated mock record naming a variable is
            // served without reading it.
            let api_key_env = p
                .api_key_env
                .as_deref()
                .filter(|_| p.kind != ProviderKind::Mock);
            let api_key = api_key_env.and_then(|var| match env(var) {
                Some(key) if !key.is_empty() => Some(Secret(key.into())),
                _ => {
                    tracing::warn!(
                        provider = named.name,
                        variable = var,
                        "API key variable is unset or empty; requests to this provider will fail"
                    );
                    None
                }
            });
            providers.insert(
                &named.name,
                Arc::new(ProviderRuntime {
                    name: named.name.as_str().into(),
                    kind: p.kind,
                    endpoint,
                    api_key_env: api_key_env.map(str::to_owned),
                    api_key,
                    timeout: Duration::from_millis(u64::from(p.timeout_ms)),
                    max_retries: u32::from(p.max_retries),
                }),
            );
        }

        let mut names: HashMap<Arc<str>, Resolved> = HashMap::new();
        let mut listed = Vec::new();
        let mut targets = Vec::new();
        let mut model_targets: HashMap<&str, Arc<Target>> = HashMap::new();
        let single = |label: &Arc<str>, target: &Arc<Target>| Resolved {
            label: Arc::clone(label),
            targets: vec![(Arc::clone(target), 1)],
            fallbacks: Vec::new(),
        };
        // Built-in models of mock providers first (in their fixed order), unless a
        // record of the same name overrides them below.
        for p in records
            .providers
            .iter()
            .filter(|p| p.record.kind == ProviderKind::Mock)
        {
            for m in mock::MODELS {
                let id: Arc<str> = format!("{}/{}", p.name, m.name).into();
                let Some(provider) = providers.get(p.name.as_str()) else {
                    continue;
                };
                let target = Arc::new(Target {
                    id: Arc::clone(&id),
                    provider: Arc::clone(provider),
                    upstream_model: m.name.to_owned(),
                    mock: Some(m),
                });
                names.insert(Arc::clone(&id), single(&id, &target));
            }
        }
        let served: Vec<_> = records
            .served_models()
            .map(|(_, m)| (m, public_names(m)))
            .collect();
        for (m, public) in &served {
            // `validate` guarantees the provider.
            let Some(provider) = providers.get(m.record.provider_id.as_str()) else {
                continue;
            };
            let upstream = m.record.upstream_model.clone();
            let mock = if provider.kind == ProviderKind::Mock {
                mock::find(&upstream)
            } else {
                None
            };
            let id: Arc<str> = public.id.as_ref().into();
            let target = Arc::new(Target {
                id: Arc::clone(&id),
                provider: Arc::clone(provider),
                upstream_model: upstream,
                mock,
            });
            names.insert(Arc::clone(&id), single(&id, &target));
            for alias in &public.aliases {
                let alias: Arc<str> = (*alias).into();
                names.insert(Arc::clone(&alias), single(&alias, &target));
            }
            model_targets.insert(public.id.as_ref(), target);
        }
        // Listing order: mock built-ins, model records, aliases, routes.
        for p in &records.providers {
            if p.record.kind == ProviderKind::Mock {
                for m in mock::MODELS {
                    let id = format!("{}/{}", p.name, m.name);
                    if !model_targets.contains_key(id.as_str()) {
                        listed.push(Listed {
                            id: id.as_str().into(),
                            owned_by: mock::OWNED_BY.into(),
                        });
                        targets.push(id.into());
                    }
                }
            }
        }
        for (m, public) in &served {
            let owned_by: Arc<str> = m.record.provider_id.as_str().into();
            listed.push(Listed {
                id: public.id.as_ref().into(),
                owned_by: Arc::clone(&owned_by),
            });
            targets.push(public.id.as_ref().into());
            for alias in &public.aliases {
                listed.push(Listed {
                    id: (*alias).into(),
                    owned_by: Arc::clone(&owned_by),
                });
            }
        }
        let lookup = |names: &HashMap<Arc<str>, Resolved>, name: &str| {
            names
                .get(name)
                .and_then(|r| r.targets.first())
                .map(|(t, _)| Arc::clone(t))
        };
        for r in &records.routes {
            let label: Arc<str> = r.name.as_str().into();
            // Weights above the file's limit (only replicated records can have them)
            // are drawn as that limit.
            let route_targets = r
                .record
                .targets
                .iter()
                .filter_map(|t| {
                    lookup(&names, t.model_id.as_str())
                        .map(|target| (target, t.weight.min(MAX_WEIGHT)))
                })
                .collect();
            let fallbacks = r
                .record
                .fallbacks
                .iter()
                .filter_map(|f| lookup(&names, f.as_str()))
                .collect();
            listed.push(Listed {
                id: Arc::clone(&label),
                owned_by: "aurora".into(),
            });
            names.insert(
                Arc::clone(&label),
                Resolved {
                    label,
                    targets: route_targets,
                    fallbacks,
                },
            );
        }
        Ok(Self {
            records,
            names,
            listed,
            targets,
        })
    }

    /// The records this snapshot was compiled from.
    pub fn records(&self) -> &Catalog {
        &self.records
    }

    /// What `name` (a model, alias or route; no `?options`) resolves to.
    pub fn resolve(&self, name: &str) -> Option<&Resolved> {
        self.names.get(name)
    }

    /// The names `GET /v1/models` lists, in order.
    pub fn listed(&self) -> &[Listed] {
        &self.listed
    }

    /// Ids of every concrete target (for pruning cooldown state).
    pub fn target_ids(&self) -> &[Arc<str>] {
        &self.targets
    }
}

#[cfg(test)]
mod tests {
    use aurora_schema::{Model, Provider, RecordId, Route, RouteTarget};

    use super::*;
    use crate::catalog::records::Named;

    fn id(s: &str) -> RecordId {
        RecordId::new(s).expect("id")
    }

    fn catalog() -> Catalog {
        Catalog {
            providers: vec![
                Named::new(
                    "up",
                    Provider {
                        kind: ProviderKind::OpenAiCompatible,
                        base_url: "http://127.0.0.1:9/v1/".into(),
                        api_key_env: Some("UP_KEY".into()),
                        timeout_ms: 1_000,
                        max_retries: 3,
                        cooldown_ms: 0,
                    },
                ),
                Catalog::builtin().providers.remove(0),
            ],
            models: vec![Named::new(
                "up/big",
                Model {
                    provider_id: id("up"),
                    upstream_model: "big-2025".into(),
                    aliases: vec!["big".into()],
                    context_window: None,
                    enabled: true,
                },
            )],
            routes: vec![Named::new(
                "r",
                Route {
                    targets: vec![RouteTarget {
                        model_id: id("big"),
                        weight: 2,
                    }],
                    fallbacks: vec![id("mock/echo")],
                    retries: 0,
                },
            )],
        }
    }

    #[test]
    fn names_aliases_and_routes_resolve() {
        let s = Snapshot::compile(catalog(), &|v| (v == "UP_KEY").then(|| "sk-1".into()))
            .expect("valid");
        let big = s.resolve("big").expect("alias");
        assert_eq!(&*big.label, "big");
        assert_eq!(&*big.targets[0].0.id, "up/big");
        assert_eq!(big.targets[0].0.upstream_model, "big-2025");
        let provider = &big.targets[0].0.provider;
        assert_eq!(provider.endpoint, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(provider.api_key.as_ref().map(Secret::expose), Some("sk-1"));
        assert_eq!(provider.timeout, Duration::from_millis(1_000));
        assert_eq!(provider.max_retries, 3);
        let r = s.resolve("r").expect("route");
        assert_eq!(r.targets[0].1, 2);
        assert_eq!(&*r.fallbacks[0].id, "mock/echo");
        assert!(r.fallbacks[0].mock.is_some());
        assert!(s.resolve("up/other").is_none(), "only catalog models");
        let ids: Vec<&str> = s.listed().iter().map(|l| &*l.id).collect();
        assert_eq!(
            ids,
            [
                "mock/echo",
                "mock/gpt-4o-mini",
                "mock/gpt-4o",
                "up/big",
                "big",
                "r"
            ]
        );
    }

    /// A model whose name does not start with its provider is served as
    /// `provider/upstream_model` with its name as an alias; a disabled one is not
    /// served; a replicated weight above the file's limit is drawn as the limit.
    #[test]
    fn unprefixed_disabled_and_heavy_records() {
        let mut c = catalog();
        c.models[0].name = "large".into();
        c.routes[0].record.targets[0].model_id = id("large");
        c.routes[0].record.targets[0].weight = u32::MAX;
        c.models.push(Named::new(
            "up/off",
            Model {
                provider_id: id("up"),
                upstream_model: "off".into(),
                aliases: Vec::new(),
                context_window: None,
                enabled: false,
            },
        ));
        let s = Snapshot::compile(c, &|_| None).expect("valid");
        assert_eq!(
            &*s.resolve("large").expect("alias").targets[0].0.id,
            "up/big-2025"
        );
        assert!(s.resolve("up/big-2025").is_some());
        assert!(s.resolve("up/off").is_none(), "disabled");
        assert_eq!(s.resolve("r").expect("route").targets[0].1, MAX_WEIGHT);
        assert!(s.target_ids().iter().any(|t| &**t == "up/big-2025"));
    }

    /// The file refuses a mock with a URL or a key variable; a replicated mock record
    /// may carry them (aurora-schema allows it), and they are not used.
    #[test]
    fn a_mock_record_with_a_url_and_a_key_variable_reads_no_key() {
        let mut c = catalog();
        c.providers[1].record.base_url = "http://127.0.0.1:9/v1".into();
        c.providers[1].record.api_key_env = Some("MOCK_KEY".into());
        let read = std::cell::Cell::new(false);
        let s = Snapshot::compile(c, &|v| {
            read.set(read.get() || v == "MOCK_KEY");
            None
        })
        .expect("valid");
        assert!(!read.get(), "the mock's variable is never read");
        let echo = &s.resolve("mock/echo").expect("built-in").targets[0].0;
        assert!(echo.mock.is_some());
        assert!(echo.provider.api_key_env.is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Snapshot::compile(catalog(), &|_| Some("sk-very-secret".into())).expect("valid");
        assert!(!format!("{s:?}").contains("sk-very-secret"));
    }
}
