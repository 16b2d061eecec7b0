//! The catalog rebuilt from the replicated `providers`, `models` and `routes`.
//!
//! The catalog a node routes with is the *base* catalog (the YAML `gateway:` section,
//! or the built-in mock provider) with the replicated records laid over it: a
//! replicated record replaces a base record of the same name. Every time one of the
//! three collections changes, the merged catalog is compiled and swapped in through
//! [`AppState::replace_catalog`], the same door a SIGHUP reload uses.
//!
//! Replication cannot keep references intact (a model may arrive before its provider,
//! or its provider may be deleted concurrently on another node), so a record that
//! would make the catalog invalid is left out, with a warning, instead of blocking
//! every other change: first the whole merge is tried; if it fails, records are added
//! one by one (providers, then models, then routes) and those that do not validate are
//! skipped. The one-by-one pass is quadratic in the number of records, which is fine
//! for catalogs of hundreds of models; it runs only when something is inconsistent.

use std::sync::Arc;

use aurora_io::StateSnapshot;
use aurora_schema::{self as rec, Collection, Record};

use crate::catalog::records::MAX_WEIGHT;
use crate::catalog::records::{Catalog, Model, Provider, ProviderKind, Route, RouteTarget};
use crate::state::AppState;

/// The gateway form of a replicated provider named `id`.
pub fn provider(id: &str, p: &rec::Provider) -> Provider {
    let kind = match p.kind {
        rec::ProviderKind::OpenAiCompatible => ProviderKind::Openai,
        rec::ProviderKind::Anthropic => ProviderKind::Anthropic,
        rec::ProviderKind::Mock => ProviderKind::Mock,
    };
    let mock = kind == ProviderKind::Mock;
    Provider {
        name: id.to_owned(),
        kind,
        base_url: (!mock && !p.base_url.is_empty()).then(|| p.base_url.clone()),
        api_key_env: if mock { None } else { p.api_key_env.clone() },
        timeout_ms: Some(u64::from(p.timeout_ms)),
        max_retries: Some(u32::from(p.max_retries)),
    }
}

/// The gateway form of a replicated model named `id`, or `None` when it is disabled.
/// The gateway takes the provider from the `provider/` part of the public name, so a
/// model whose id does not start with its `provider_id` is served as
/// `{provider_id}/{id}`'s alias `id`.
pub fn model(id: &str, m: &rec::Model) -> Option<Model> {
    if !m.enabled {
        return None;
    }
    let prefix = format!("{}/", m.provider_id);
    let (name, mut aliases) = if id.starts_with(&prefix) {
        (id.to_owned(), m.aliases.clone())
    } else {
        let mut aliases = vec![id.to_owned()];
        aliases.extend(m.aliases.iter().cloned());
        (format!("{prefix}{}", m.upstream_model), aliases)
    };
    aliases.retain(|a| a != &name);
    Some(Model {
        name,
        upstream_model: Some(m.upstream_model.clone()),
        aliases,
    })
}

/// The gateway form of a replicated route named `id`.
pub fn route(id: &str, r: &rec::Route) -> Route {
    Route {
        name: id.to_owned(),
        targets: r
            .targets
            .iter()
            .map(|t| RouteTarget {
                model: t.model_id.as_str().to_owned(),
                weight: t.weight.min(MAX_WEIGHT),
            })
            .collect(),
        fallbacks: r.fallbacks.iter().map(|f| f.as_str().to_owned()).collect(),
    }
}

/// Replicated providers whose `api_key_env` is outside `prefix` (see
/// [`crate::config::GatewayConfig::provider_env_prefix`]): any node's admin can
/// write a provider record, and one naming, say, `AWS_SECRET_ACCESS_KEY` with a
/// base URL of its choosing would otherwise make every node send that secret there.
pub fn refused_providers<'a>(
    snapshot: &'a StateSnapshot,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    snapshot
        .records(Collection::Providers)
        .filter_map(move |(id, r)| match r {
            Record::Provider(p) => p
                .api_key_env
                .as_deref()
                .filter(|var| !crate::config::env_name_allowed(var, prefix))
                .map(|var| (id.as_str(), var)),
            _ => None,
        })
}

/// `base` with the replicated providers, models and routes of `snapshot` laid over it.
/// Records that would make the catalog invalid are skipped (and logged), and so are
/// providers whose `api_key_env` is outside `env_prefix` ([`refused_providers`]).
pub fn merge(base: &Catalog, snapshot: &StateSnapshot, env_prefix: &str) -> Catalog {
    for (id, var) in refused_providers(snapshot, env_prefix) {
        tracing::warn!(
            record = id,
            variable = var,
            prefix = env_prefix,
            "replicated provider skipped: its api_key_env is outside gateway.provider_env_prefix"
        );
    }
    let providers: Vec<Provider> = snapshot
        .records(Collection::Providers)
        .filter_map(|(id, r)| match r {
            Record::Provider(p)
                if p.api_key_env
                    .as_deref()
                    .is_none_or(|var| crate::config::env_name_allowed(var, env_prefix)) =>
            {
                Some(provider(id.as_str(), p))
            }
            _ => None,
        })
        .collect();
    let models: Vec<Model> = snapshot
        .records(Collection::Models)
        .filter_map(|(id, r)| match r {
            Record::Model(m) => model(id.as_str(), m),
            _ => None,
        })
        .collect();
    let routes: Vec<Route> = snapshot
        .records(Collection::Routes)
        .filter_map(|(id, r)| match r {
            Record::Route(rt) => Some(route(id.as_str(), rt)),
            _ => None,
        })
        .collect();

    let mut all = base.clone();
    for p in &providers {
        upsert(&mut all.providers, p.clone(), |x| &x.name);
    }
    for m in &models {
        upsert(&mut all.models, m.clone(), |x| &x.name);
    }
    for r in &routes {
        upsert(&mut all.routes, r.clone(), |x| &x.name);
    }
    if all.validate().is_ok() {
        return all;
    }
    // Something dangles: add record by record, keeping only what validates.
    let mut out = base.clone();
    let try_add = |out: &mut Catalog, apply: &dyn Fn(&mut Catalog), what: &str| {
        let mut next = out.clone();
        apply(&mut next);
        match next.validate() {
            Ok(()) => *out = next,
            Err(error) => tracing::warn!(record = what, %error, "replicated record skipped"),
        }
    };
    for p in providers {
        let name = p.name.clone();
        try_add(
            &mut out,
            &|c: &mut Catalog| upsert(&mut c.providers, p.clone(), |x| &x.name),
            &name,
        );
    }
    for m in models {
        let name = m.name.clone();
        try_add(
            &mut out,
            &|c: &mut Catalog| upsert(&mut c.models, m.clone(), |x| &x.name),
            &name,
        );
    }
    for r in routes {
        let name = r.name.clone();
        try_add(
            &mut out,
            &|c: &mut Catalog| upsert(&mut c.routes, r.clone(), |x| &x.name),
            &name,
        );
    }
    out
}

fn upsert<T>(list: &mut Vec<T>, item: T, name: impl Fn(&T) -> &String) {
    match list.iter().position(|x| name(x) == name(&item)) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

/// Rebuilds the catalog from `state`'s base catalog and the current snapshot.
pub fn rebuild(state: &AppState) {
    let snapshot = state.state_view.snapshot();
    let prefix = &state.config.provider_env_prefix;
    state
        .metrics
        .set_providers_refused(refused_providers(&snapshot, prefix).count() as u64);
    let merged = merge(&state.base_catalog(), &snapshot, prefix);
    if let Err(error) = state.replace_catalog(merged) {
        // `merge` only returns validated catalogs; compile can still refuse (e.g. an
        // API-key variable). Keep the running catalog.
        tracing::error!(%error, "catalog from replicated state refused; keeping the running one");
    }
}

/// Watches the replicated store and rebuilds the catalog whenever `providers`,
/// `models` or `routes` changed. Ends when the driver is gone.
pub async fn sync(state: Arc<AppState>) {
    let mut updates = state.state_view.subscribe();
    let mut last: Option<Arc<StateSnapshot>> = None;
    loop {
        let snapshot = updates.borrow_and_update().clone();
        let changed = match &last {
            None => true,
            Some(prev) => [
                Collection::Providers,
                Collection::Models,
                Collection::Routes,
            ]
            .iter()
            .any(|&c| !prev.records[c as usize].ptr_eq(&snapshot.records[c as usize])),
        };
        if changed {
            rebuild(&state);
        }
        last = Some(snapshot);
        if updates.changed().await.is_err() {
            return;
        }
    }
}
