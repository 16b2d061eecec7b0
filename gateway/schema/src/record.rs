//! [`Collection`] and [`Record`]: the gateway's replicated collections and a value of
//! any of them.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use aurora_core::{CollectionId, RecordError, RecordId};

use crate::auth::AuthKey;
use crate::billing::{Budget, Pricing};
use crate::checks::invalid;
use crate::guardrail::{Guardrail, Workflow};
use crate::provider::{Model, Provider};
use crate::route::Route;

/// A string that names no collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown collection: expected one of auth_keys, providers, models, routes, guardrails, workflows, pricing, budgets")]
pub struct ParseCollectionError;

/// The replicated collections. The order is the postcard variant index and the
/// sort order of store keys: append new collections at the end, never reorder.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    AuthKeys,
    Providers,
    Models,
    Routes,
    Guardrails,
    Workflows,
    Pricing,
    Budgets,
}

impl Collection {
    /// The collection as the core names it: its index in declaration order (what
    /// the enum's postcard index was when the core held this type).
    pub const fn id(self) -> CollectionId {
        CollectionId(self as u32)
    }

    /// The collection the core's `id` names, if this schema has it.
    pub fn from_id(id: CollectionId) -> Option<Collection> {
        Collection::ALL.get(usize::try_from(id.0).ok()?).copied()
    }

    /// Every collection, in declaration order.
    pub const ALL: [Collection; 8] = [
        Collection::AuthKeys,
        Collection::Providers,
        Collection::Models,
        Collection::Routes,
        Collection::Guardrails,
        Collection::Workflows,
        Collection::Pricing,
        Collection::Budgets,
    ];

    /// The stable name used in SQLite tables, metrics labels and admin paths. It is
    /// also the serde name, so it never changes once released.
    pub const fn name(self) -> &'static str {
        match self {
            Collection::AuthKeys => "auth_keys",
            Collection::Providers => "providers",
            Collection::Models => "models",
            Collection::Routes => "routes",
            Collection::Guardrails => "guardrails",
            Collection::Workflows => "workflows",
            Collection::Pricing => "pricing",
            Collection::Budgets => "budgets",
        }
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Collection {
    type Err = ParseCollectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Collection::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or(ParseCollectionError)
    }
}

/// A value of any collection, as the store holds and replicates it. The variant
/// order is the postcard index and matches [`Collection`]: append only.
///
/// # Evolving a record
///
/// postcard has no field defaults, so a field added to a record changes its bytes.
/// The binary form therefore goes through [`crate::wire`]: a record whose new fields hold
/// their empty value is written exactly as before (stored entries and older peers
/// read it unchanged), and one that uses a new field is written as an appended
/// variant (`AuthKeyV2` at index 8 for [`AuthKey::max_parallel_requests`]), which
/// only builds that know it decode. Human-readable formats (JSON, YAML) keep the
/// plain shape, with `#[serde(default)]` on the new field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    AuthKey(AuthKey),
    Provider(Provider),
    Model(Model),
    Route(Route),
    Guardrail(Guardrail),
    Workflow(Workflow),
    Pricing(Pricing),
    Budget(Budget),
}

impl Record {
    /// The collection this record belongs to.
    pub fn collection(&self) -> Collection {
        match self {
            Record::AuthKey(_) => Collection::AuthKeys,
            Record::Provider(_) => Collection::Providers,
            Record::Model(_) => Collection::Models,
            Record::Route(_) => Collection::Routes,
            Record::Guardrail(_) => Collection::Guardrails,
            Record::Workflow(_) => Collection::Workflows,
            Record::Pricing(_) => Collection::Pricing,
            Record::Budget(_) => Collection::Budgets,
        }
    }

    /// Checks every rule and size limit of the record. Field paths are relative to
    /// the inner record (what the admin API receives at `/admin/api/{collection}`).
    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            Record::AuthKey(r) => r.validate(),
            Record::Provider(r) => r.validate(),
            Record::Model(r) => r.validate(),
            Record::Route(r) => r.validate(),
            Record::Guardrail(r) => r.validate(),
            Record::Workflow(r) => r.validate(),
            Record::Pricing(r) => r.validate(),
            Record::Budget(r) => r.validate(),
        }
    }

    /// [`Record::validate`] plus the rules that involve the record's key: the id
    /// itself (field `id`), a model's aliases differ from its name, and a route
    /// never targets or falls back to its own name (routes do not chain).
    pub fn validate_with_id(&self, id: &RecordId) -> Result<(), RecordError> {
        id.validate()?;
        self.validate()?;
        match self {
            Record::Model(m) => {
                if let Some(i) = m.aliases.iter().position(|a| a == id.as_str()) {
                    return Err(invalid(
                        format!("aliases[{i}]"),
                        "must differ from the model's own name",
                    ));
                }
            }
            Record::Route(r) => {
                if let Some(i) = r.targets.iter().position(|t| &t.model_id == id) {
                    return Err(invalid(
                        format!("targets[{i}].model_id"),
                        "must not be the route itself",
                    ));
                }
                if let Some(i) = r.fallbacks.iter().position(|f| f == id) {
                    return Err(invalid(
                        format!("fallbacks[{i}]"),
                        "must not be the route itself",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The records this one names by id, with their collections. Replication cannot
    /// keep references intact (a concurrent delete wins on another node), so the
    /// gateway must treat a dangling one as missing; the admin API can use this to
    /// warn at write time.
    pub fn references(&self) -> Vec<(Collection, &RecordId)> {
        match self {
            Record::AuthKey(k) => k
                .budget_id
                .iter()
                .map(|id| (Collection::Budgets, id))
                .chain(k.workflow_id.iter().map(|id| (Collection::Workflows, id)))
                .collect(),
            Record::Model(m) => vec![(Collection::Providers, &m.provider_id)],
            Record::Route(r) => r
                .targets
                .iter()
                .map(|t| &t.model_id)
                .chain(&r.fallbacks)
                .map(|id| (Collection::Models, id))
                .collect(),
            Record::Workflow(w) => w
                .guardrails
                .iter()
                .map(|id| (Collection::Guardrails, id))
                .collect(),
            Record::Provider(_) | Record::Guardrail(_) | Record::Pricing(_) | Record::Budget(_) => {
                Vec::new()
            }
        }
    }
}
