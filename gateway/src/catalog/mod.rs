//! The catalog: which providers exist, which models they serve under which names, and
//! how routes spread a model name over weighted targets with fallbacks.
//!
//! Today it comes from the optional `gateway:` section of `aurora.yaml` (or the
//! built-in mock provider when there is none); later every record arrives from the
//! replicated store (providers, models and routes are replicated collections). Both
//! sources go through the same door, [`CatalogStore::replace`], which validates the
//! records, compiles them into a lookup [`Snapshot`] and swaps it in atomically, so a
//! request always sees one consistent catalog and never waits on a lock.
//!
//! - [`records`]: the plain serde records and their validation;
//! - [`snapshot`]: the compiled, read-only form requests resolve model names against;
//! - [`store`]: the atomically replaceable current snapshot;
//! - [`file`]: reading the `gateway:` section of a YAML file.

pub mod file;
pub mod records;
pub mod snapshot;
pub mod store;

pub use records::{Catalog, CatalogError, Model, Provider, ProviderKind, Route, RouteTarget};
pub use snapshot::{Resolved, Snapshot, Target};
pub use store::CatalogStore;
