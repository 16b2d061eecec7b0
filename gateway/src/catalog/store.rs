//! The current catalog, replaceable at run time without blocking requests.
//!
//! Requests take a cheap reference-counted snapshot ([`CatalogStore::load`]) and keep
//! using it to the end, even if the catalog changes meanwhile; a change
//! ([`CatalogStore::replace`]) compiles the new records first and swaps only if they
//! are valid, so a bad update never takes down a working catalog. This is the one
//! entry point for both today's config file and tomorrow's replicated store.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::catalog::records::{Catalog, CatalogError};
use crate::catalog::snapshot::Snapshot;

/// Looks an environment variable up (API keys). Boxed so tests can inject values.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as an [`EnvLookup`].
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// Holds the current [`Snapshot`].
pub struct CatalogStore {
    current: ArcSwap<Snapshot>,
    env: EnvLookup,
}

impl std::fmt::Debug for CatalogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogStore")
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

impl CatalogStore {
    /// A store holding `records`, or the first validation error.
    pub fn new(records: Catalog, env: EnvLookup) -> Result<Self, CatalogError> {
        let snapshot = Snapshot::compile(records, env.as_ref())?;
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            env,
        })
    }

    /// The current snapshot; hold it for the whole request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Validates and compiles `records`, then makes them current. On error the old
    /// catalog stays in place. API-key variables are read again, so a rotated key is
    /// picked up by the next replace.
    pub fn replace(&self, records: Catalog) -> Result<Arc<Snapshot>, CatalogError> {
        let snapshot = Arc::new(Snapshot::compile(records, self.env.as_ref())?);
        self.current.store(Arc::clone(&snapshot));
        tracing::info!(
            providers = snapshot.records().providers.len(),
            models = snapshot.records().models.len(),
            routes = snapshot.records().routes.len(),
            "catalog replaced"
        );
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_replace_keeps_the_old_catalog() {
        let store = CatalogStore::new(Catalog::builtin(), process_env()).expect("builtin");
        let before = store.load();
        let mut bad = Catalog::builtin();
        bad.providers[0].name.clear();
        assert!(store.replace(bad).is_err());
        assert!(Arc::ptr_eq(&before, &store.load()));
        assert!(store.load().resolve("mock/echo").is_some());
        let mut renamed = Catalog::builtin();
        renamed.providers[0].name = "fake".into();
        store.replace(renamed).expect("valid");
        assert!(store.load().resolve("mock/echo").is_none());
        assert!(store.load().resolve("fake/echo").is_some());
        assert!(before.resolve("mock/echo").is_some(), "old snapshot intact");
    }
}
