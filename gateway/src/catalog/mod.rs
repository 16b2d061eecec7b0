//! The catalog: which providers exist, which models they serve under which names, and
//! how routes spread a model name over weighted targets with fallbacks.
//!
//! The records are aurora-schema's providers, models and routes. The base catalog
//! comes from the optional `gateway:` section of `aurora.yaml` (or the built-in mock
//! provider when there is none); the replicated collections are laid over it
//! (`cluster::catalog`). Both go through the same door, [`CatalogStore::replace`],
//! which validates the records, compiles them into a lookup [`Snapshot`] and swaps it
//! in atomically, so a request always sees one consistent catalog and never waits on
//! a lock.
//!
//! - [`records`]: the [`Catalog`] of aurora-schema records under their names, and
//!   the rules between records;
//! - [`entry`]: how a record reads as a YAML entry (its `name` and its fields);
//! - [`snapshot`]: the compiled, read-only form requests resolve model names against;
//! - [`store`]: the atomically replaceable current snapshot;
//! - [`file`]: reading the `gateway:` section of a YAML file.

pub mod entry;
pub mod file;
pub mod records;
pub mod snapshot;
pub mod store;

pub use records::{Catalog, CatalogError, Named};
pub use snapshot::{Resolved, Snapshot, Target};
pub use store::CatalogStore;
