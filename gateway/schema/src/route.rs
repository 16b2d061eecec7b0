//! Routes: a public model name spread over weighted targets, with fallbacks.

use serde::{Deserialize, Serialize};

use aurora_core::{RecordError, RecordId};

use crate::checks::*;
use crate::limits::*;

/// One weighted destination of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// A record of the `models` collection (an id, not an alias). Also read as
    /// `model`, the YAML catalog's key.
    #[serde(alias = "model")]
    pub model_id: RecordId,
    /// Share of traffic relative to the other targets; at least 1. Absent in JSON or
    /// YAML: 1 (an even share), the YAML catalog's default.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A public model name that spreads requests over weighted model targets and falls
/// back, in order, to other models when every target failed. The record id is the
/// public name it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// 1 to 32 targets, no model twice (merge their weights instead).
    pub targets: Vec<RouteTarget>,
    /// At most 8 models, no duplicates, none also a target.
    #[serde(default)]
    pub fallbacks: Vec<RecordId>,
    /// Extra attempts over the targets before the fallbacks, at most 10.
    pub retries: u8,
}

impl Route {
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.targets.is_empty() {
            return Err(invalid("targets", "must have at least one target"));
        }
        if self.targets.len() > MAX_ROUTE_TARGETS {
            return Err(invalid("targets", "at most 32 targets"));
        }
        for (i, t) in self.targets.iter().enumerate() {
            RecordId::check(t.model_id.as_str())
                .map_err(|r| invalid(format!("targets[{i}].model_id"), r))?;
            if self.targets[..i].iter().any(|o| o.model_id == t.model_id) {
                return Err(invalid(
                    format!("targets[{i}].model_id"),
                    "duplicate target",
                ));
            }
            if t.weight == 0 {
                return Err(invalid(
                    format!("targets[{i}].weight"),
                    "must be at least 1",
                ));
            }
        }
        check_id_list(
            "fallbacks",
            self.fallbacks.iter().map(RecordId::as_str),
            MAX_FALLBACKS,
            "at most 8 fallbacks",
        )?;
        for (i, f) in self.fallbacks.iter().enumerate() {
            if self.targets.iter().any(|t| &t.model_id == f) {
                return Err(invalid(format!("fallbacks[{i}]"), "is already a target"));
            }
        }
        if self.retries > MAX_RETRIES {
            return Err(invalid("retries", "at most 10"));
        }
        Ok(())
    }

    /// The sum of the weights, in `u64` so that 32 weights of `u32::MAX` cannot
    /// overflow: pick a target by drawing in `0..total_weight()`.
    pub fn total_weight(&self) -> u64 {
        self.targets.iter().map(|t| u64::from(t.weight)).sum()
    }
}

// ---------------------------------------------------------------------------------
