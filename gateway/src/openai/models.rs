//! `GET /v1/models` and `GET /v1/models/{id}`: the mock catalog in OpenAI's list shape.
//! Later this lists the models and aliases of the replicated models collection too.

use crate::http::body::{json_ok, Response};
use crate::openai::types::{Model, ModelList};
use crate::openai::ApiError;
use crate::provider::mock;

fn model(m: &mock::MockModel) -> Model {
    Model {
        id: m.id,
        object: "model",
        created: mock::CREATED,
        owned_by: mock::OWNED_BY,
    }
}

/// `GET /v1/models`.
pub fn list() -> Response {
    json_ok(&ModelList {
        object: "list",
        data: mock::MODELS.iter().map(model).collect(),
    })
}

/// `GET /v1/models/{id}`; 404 `model_not_found` for an unknown id.
pub fn get(id: &str) -> Response {
    match mock::MODELS.iter().find(|m| m.id == id) {
        Some(m) => json_ok(&model(m)),
        None => ApiError::model_not_found(id).into_response(),
    }
}
