//! `GET /v1/models` and `GET /v1/models/{id}`: every name the catalog answers to
//! (the mock's built-in models, model records, their aliases, routes) in OpenAI's list
//! shape, read from the current catalog snapshot.

use crate::catalog::snapshot::Listed;
use crate::http::body::{json_ok, Response};
use crate::openai::types::{Model, ModelList};
use crate::openai::ApiError;
use crate::provider::mock;
use crate::state::AppState;

fn model(m: &Listed) -> Model {
    Model {
        id: m.id.to_string(),
        object: "model",
        // Records carry no creation time yet; a fixed one keeps listings stable.
        created: mock::CREATED,
        owned_by: m.owned_by.to_string(),
    }
}

/// `GET /v1/models`.
pub fn list(state: &AppState) -> Response {
    let snapshot = state.catalog.load();
    json_ok(&ModelList {
        object: "list",
        data: snapshot.listed().iter().map(model).collect(),
    })
}

/// `GET /v1/models/{id}`; 404 `model_not_found` for an unknown id.
pub fn get(state: &AppState, id: &str) -> Response {
    let snapshot = state.catalog.load();
    match snapshot.listed().iter().find(|m| &*m.id == id) {
        Some(m) => json_ok(&model(m)),
        None => ApiError::model_not_found(id).into_response(),
    }
}
