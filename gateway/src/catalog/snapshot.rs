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

use crate::catalog::records::{Catalog, CatalogError, ProviderKind};
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
    /// Per-attempt timeout override.
    pub timeout: Option<Duration>,
    /// Retry-count override.
    pub max_retries: Option<u32>,
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
        for p in &records.providers {
            let base = p
                .base_url
                .as_deref()
                .or(p.kind.default_base_url())
                .unwrap_or("")
                .trim_end_matches('/');
            let endpoint = match p.kind {
                ProviderKind::Openai => format!("{base}/chat/completions"),
                ProviderKind::Anthropic => format!("{base}/messages"),
                ProviderKind::Mock => String::new(),
            };
            let api_key = p.api_key_env.as_deref().and_then(|var| match env(var) {
                Some(key) if !key.is_empty() => Some(Secret(key.into())),
                _ => {
                    tracing::warn!(
                        provider = p.name,
                        variable = var,
                        "API key variable is unset or empty; requests to this provider will fail"
                    );
                    None
                }
            });
            providers.insert(
                &p.name,
                Arc::new(ProviderRuntime {
                    name: p.name.as_str().into(),
                    kind: p.kind,
                    endpoint,
                    api_key_env: p.api_key_env.clone(),
                    api_key,
                    timeout: p.timeout_ms.map(Duration::from_millis),
                    max_retries: p.max_retries,
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
            .filter(|p| p.kind == ProviderKind::Mock)
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
        for m in &records.models {
            // `validate` guarantees the slash and the provider.
            let Some((provider_name, model)) = m.name.split_once('/') else {
                continue;
            };
            let Some(provider) = providers.get(provider_name) else {
                continue;
            };
            let upstream = m.upstream_model.clone().unwrap_or_else(|| model.to_owned());
            let mock = if provider.kind == ProviderKind::Mock {
                mock::find(&upstream)
            } else {
                None
            };
            let id: Arc<str> = m.name.as_str().into();
            let target = Arc::new(Target {
                id: Arc::clone(&id),
                provider: Arc::clone(provider),
                upstream_model: upstream,
                mock,
            });
            names.insert(Arc::clone(&id), single(&id, &target));
            for alias in &m.aliases {
                let alias: Arc<str> = alias.as_str().into();
                names.insert(Arc::clone(&alias), single(&alias, &target));
            }
            model_targets.insert(m.name.as_str(), target);
        }
        // Listing order: mock built-ins, model records, aliases, routes.
        for p in &records.providers {
            if p.kind == ProviderKind::Mock {
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
        for m in &records.models {
            let owned_by: Arc<str> = m.name.split('/').next().unwrap_or("").into();
            listed.push(Listed {
                id: m.name.as_str().into(),
                owned_by: Arc::clone(&owned_by),
            });
            targets.push(m.name.as_str().into());
            for alias in &m.aliases {
                listed.push(Listed {
                    id: alias.as_str().into(),
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
            let route_targets = r
                .targets
                .iter()
                .filter_map(|t| lookup(&names, &t.model).map(|target| (target, t.weight)))
                .collect();
            let fallbacks = r
                .fallbacks
                .iter()
                .filter_map(|f| lookup(&names, f))
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
    use super::*;
    use crate::catalog::records::{Model, Provider, Route, RouteTarget};

    fn catalog() -> Catalog {
        Catalog {
            providers: vec![
                Provider {
                    name: "up".into(),
                    kind: ProviderKind::Openai,
                    base_url: Some("http://127.0.0.1:9/v1/".into()),
                    api_key_env: Some("UP_KEY".into()),
                    timeout_ms: None,
                    max_retries: None,
                },
                Catalog::builtin().providers.remove(0),
            ],
            models: vec![Model {
                name: "up/big".into(),
                upstream_model: Some("big-2025".into()),
                aliases: vec!["big".into()],
            }],
            routes: vec![Route {
                name: "r".into(),
                targets: vec![RouteTarget {
                    model: "big".into(),
                    weight: 2,
                }],
                fallbacks: vec!["mock/echo".into()],
            }],
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
        assert_eq!(
            big.targets[0].0.provider.endpoint,
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(
            big.targets[0]
                .0
                .provider
                .api_key
                .as_ref()
                .map(Secret::expose),
            Some("sk-1")
        );
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

    #[test]
    fn secrets_do_not_print() {
        let s = Snapshot::compile(catalog(), &|_| Some("sk-very-secret".into())).expect("valid");
        assert!(!format!("{s:?}").contains("sk-very-secret"));
    }
}
