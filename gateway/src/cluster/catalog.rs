//! The catalog rebuilt from the replicated `providers`, `models` and `routes`.
//!
//! The catalog a node routes with is the *base* catalog (the YAML `gateway:` section,
//! or the built-in mock provider) with the replicated records laid over it: a
//! replicated record replaces a base record of the same name. Both are the same
//! aurora-schema records, so nothing is converted: a replicated record enters the
//! catalog as it is, under its id (a disabled model is left out, and so is a provider
//! whose `api_key_env` is outside the prefix). Every time one of the
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
use aurora_schema::{Collection, Record};

use crate::catalog::records::{Catalog, Named};
use crate::state::AppState;

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
    // The records as they are, under their ids; a disabled model is left out, so a
    // base model of the same name keeps serving.
    let providers: Vec<_> = snapshot
        .records(Collection::Providers)
        .filter_map(|(id, r)| match r {
            Record::Provider(p)
                if p.api_key_env
                    .as_deref()
                    .is_none_or(|var| crate::config::env_name_allowed(var, env_prefix)) =>
            {
                Some(Named::new(id.as_str(), p.clone()))
            }
            _ => None,
        })
        .collect();
    let models: Vec<_> = snapshot
        .records(Collection::Models)
        .filter_map(|(id, r)| match r {
            Record::Model(m) if m.enabled => Some(Named::new(id.as_str(), m.clone())),
            _ => None,
        })
        .collect();
    let routes: Vec<_> = snapshot
        .records(Collection::Routes)
        .filter_map(|(id, r)| match r {
            Record::Route(rt) => Some(Named::new(id.as_str(), rt.clone())),
            _ => None,
        })
        .collect();

    let mut all = base.clone();
    for p in &providers {
        upsert(&mut all.providers, p.clone());
    }
    for m in &models {
        upsert(&mut all.models, m.clone());
    }
    for r in &routes {
        upsert(&mut all.routes, r.clone());
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
            &|c: &mut Catalog| upsert(&mut c.providers, p.clone()),
            &name,
        );
    }
    for m in models {
        let name = m.name.clone();
        try_add(
            &mut out,
            &|c: &mut Catalog| upsert(&mut c.models, m.clone()),
            &name,
        );
    }
    for r in routes {
        let name = r.name.clone();
        try_add(
            &mut out,
            &|c: &mut Catalog| upsert(&mut c.routes, r.clone()),
            &name,
        );
    }
    out
}

/// `item` in place of the record of the same name, or appended.
fn upsert<T>(list: &mut Vec<Named<T>>, item: Named<T>) {
    match list.iter().position(|x| x.name == item.name) {
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
