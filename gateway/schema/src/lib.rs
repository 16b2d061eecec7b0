//! # aurora-schema
//!
//! The gateway's replicated records, outside the protocol core. `aurora-core`
//! replicates opaque bytes under a (collection, id) key; this crate says what those
//! bytes are: the typed records of each collection, their validation, their
//! encodings, and the [`GatewaySchema`] that a node is built with so a malformed
//! record from a peer is refused before it is merged.
//!
//! Every node serves any request from its own copy of these records, so their schema
//! is the contract between the admin API that writes them, the store that replicates
//! them and the gateway that acts on them. The types are deliberately tighter than
//! LiteLLM's or Bifrost's config objects: money is an integer of nano-USD (never a
//! float), ids have a fixed alphabet, every string, list and map is bounded, and an
//! upstream API key can only be *named* (an environment variable), never stored.
//!
//! One concern per module:
//! - [`record`] holds [`Collection`] (the collections, as the core's [`CollectionId`]s)
//!   and [`Record`] (a value of any of them); [`wire`]: their serde forms and how a
//!   record gains a field; [`schema`]: bytes to records and back, [`GatewaySchema`];
//! - one module per record family: [`auth`], [`provider`] (providers and models),
//!   [`route`], [`guardrail`] (guardrails and workflows), [`billing`] (pricing and
//!   budgets);
//! - [`money`] (exact nano-USD amounts), [`calendar`] (budget periods on the UTC
//!   civil calendar), [`limits`] (size limits), `checks` (shared validation).
//!
//! # Decode, then validate
//!
//! Deserialising a record checks only its shape. [`Record::validate`] (or
//! [`Record::validate_with_id`]) checks every rule and every size limit in one pass
//! over the record's (bounded) contents, stopping at the first fault, so the store
//! can refuse a record that arrived from a peer or from the admin API before it is
//! applied. Errors name the field at fault with a path in the serde shape of the
//! record, e.g. `targets[1].weight` or `kind.deny_patterns.patterns[0]`, so the admin
//! API can hand them to the user as they are.
//!
//! # Wire compatibility
//!
//! All types are postcard-compatible: no `untagged`, no `flatten`, no
//! `skip_serializing_if`. postcard encodes struct fields by position and enum variants
//! by index, so fields and variants must never be reordered or removed; a new variant
//! is appended at the end, and a new field goes through [`wire`].
//! `#[serde(default)]` only matters to self-describing formats (JSON, YAML) and is used
//! where the empty value is the natural one. A record's bytes are opaque to the core,
//! so changing a record here is not a protocol change (but every node must know a
//! record's encoding before any node writes it, see `docs/operations.md`).

#![forbid(unsafe_code)]

pub mod auth;
pub mod billing;
pub mod calendar;
mod checks;
pub mod guardrail;
pub mod limits;
pub mod money;
pub mod provider;
pub mod record;
pub mod route;
pub mod schema;
pub mod wire;

pub use aurora_core::{CollectionId, RecordBytes, RecordError, RecordId};
pub use auth::AuthKey;
pub use billing::{Budget, Pricing};
pub use calendar::BudgetPeriod;
pub use guardrail::{Guardrail, GuardrailKind, RoutingPolicy, Workflow};
pub use money::{cost, Money, MoneyError, Price};
pub use provider::{Model, Provider, ProviderKind};
pub use record::{Collection, ParseCollectionError, Record};
pub use route::{Route, RouteTarget};
pub use schema::{decode, delete, encode, put, GatewaySchema, SchemaError};

#[cfg(test)]
mod tests;
