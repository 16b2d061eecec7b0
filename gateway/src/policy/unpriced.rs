//! Models without a pricing record: served, counted against request limits, but
//! billed nothing — which an operator who set a spend budget almost never means.
//! Shown as warnings in `GET /admin/api/cluster/status` (every target of the live
//! catalog) and on each record of `GET /admin/api/models`.

use aurora_schema::{Collection, Record};

use super::data::PolicyData;
use crate::state::AppState;

/// The warning for `model`.
pub fn warning(model: &str) -> String {
    format!("no pricing record for model {model}: requests are not billed (spend limits do not apply to it)")
}

/// The warning for the catalog name `model`, if no pricing record exists for it.
pub fn of_model(data: &dyn PolicyData, model: &str) -> Option<String> {
    match data.record(Collection::Pricing, model) {
        Some(Record::Pricing(_)) => None,
        _ => Some(warning(model)),
    }
}

/// One warning per upstream target of the live catalog (config file and replicated
/// models) that has no pricing record, in catalog order. The built-in mock models are
/// left out: they cost nothing real, and a default single-node run should not open
/// with warnings.
pub fn warnings(state: &AppState) -> Vec<String> {
    let catalog = state.catalog.load();
    catalog
        .target_ids()
        .iter()
        .filter(|id| {
            catalog
                .resolve(id)
                .is_some_and(|r| r.targets.iter().any(|(t, _)| t.mock.is_none()))
        })
        .filter_map(|id| of_model(&state.state_view, id))
        .collect()
}
