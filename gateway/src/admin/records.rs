//! CRUD of the replicated collections.
//!
//! Bodies are the record's own JSON shape (as `aurora_schema` defines
//! it) plus an optional `id`; answers are the same shape with `id` filled in (a `GET`
//! adds read-only fields that are not part of the record: a model's `warnings`, a
//! budget's current `usage`, see `read_json`). Shape
//! errors and validation errors are 400 with `param` naming the field (`targets[0].weight`,
//! `kind.deny_patterns.patterns`), an unknown id is 404 and creating an id that exists
//! is 409. A write is answered only after this node's driver committed it to SQLite;
//! it then spreads to the other nodes by gossip and anti-entropy.
//!
//! The 409 check reads this node's replica: two nodes creating the same id at the same
//! moment both succeed and the later write (by hybrid logical clock) wins everywhere —
//! the register is last-writer-wins by design.

use std::sync::Arc;

use aurora_schema::{Budget, BudgetPeriod, Collection, Money, Record, RecordError, RecordId};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{error, keys, node_unavailable, List};
use crate::cluster::WriteError;
use crate::http::body::{json_ok, json_response, Response};
use crate::openai::ApiError;
use crate::state::AppState;

/// The collection served at `/admin/api/{name}` (`keys` is `auth_keys`).
pub fn collection(name: &str) -> Option<Collection> {
    match name {
        "keys" => Some(Collection::AuthKeys),
        "auth_keys" => None,
        other => other.parse().ok(),
    }
}

/// The path segment of a collection.
pub fn path_name(collection: Collection) -> &'static str {
    match collection {
        Collection::AuthKeys => "keys",
        other => other.name(),
    }
}

/// `GET` (list) and `POST` (create) on `/admin/api/{collection}`.
pub async fn on_collection(
    state: &Arc<AppState>,
    collection: Collection,
    method: &Method,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match *method {
        Method::GET => {
            let snapshot = state.state_view.snapshot();
            let data: Vec<Value> = snapshot
                .records(collection)
                .map(|(id, r)| read_json(state, id, r))
                .collect();
            Ok(json_ok(&List {
                object: "list",
                data,
            }))
        }
        Method::POST if collection == Collection::AuthKeys => keys::create(state, body).await,
        Method::POST => {
            let mut object = json_object(body)?;
            let id = match object.remove("id") {
                Some(Value::String(s)) => parse_id(&s)?,
                Some(Value::Null) | None => generated_id(collection)?,
                Some(_) => return Err(field_error("id", "must be a string")),
            };
            let record = parse_record(collection, Value::Object(object))?;
            check(&record, &id)?;
            check_env_prefix(state, &record)?;
            if state.state_view.record(collection, id.as_str()).is_some() {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!(
                        "{} `{id}` already exists; use PUT to replace it",
                        collection.name()
                    ),
                    "already_exists",
                ));
            }
            write(state, id.clone(), record.clone()).await?;
            Ok(with_status(StatusCode::CREATED, &record_json(&id, &record)))
        }
        _ => Err(not_allowed(method, collection, "GET, POST")),
    }
}

/// `GET`, `PUT` and `DELETE` on `/admin/api/{collection}/{id}`.
pub async fn on_record(
    state: &Arc<AppState>,
    collection: Collection,
    id: &str,
    method: &Method,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no {} with id `{id}`", collection.name()),
            "not_found",
        )
    };
    // An id that breaks the rules cannot exist.
    let id = RecordId::new(id).map_err(|_| not_found())?;
    let current = state.state_view.record(collection, id.as_str());
    match *method {
        Method::GET => {
            let record = current.ok_or_else(not_found)?;
            Ok(json_ok(&read_json(state, &id, &record)))
        }
        Method::PUT => {
            let current = current.ok_or_else(not_found)?;
            let record = if collection == Collection::AuthKeys {
                keys::updated(&current, body)?
            } else {
                let mut object = json_object(body)?;
                match object.remove("id") {
                    Some(Value::String(s)) if s != id.as_str() => {
                        return Err(field_error(
                            "id",
                            "differs from the id in the path (ids cannot be renamed)",
                        ))
                    }
                    _ => {}
                }
                parse_record(collection, Value::Object(object))?
            };
            check(&record, &id)?;
            check_references(state, &record)?;
            check_env_prefix(state, &record)?;
            write(state, id.clone(), record.clone()).await?;
            Ok(json_ok(&record_json(&id, &record)))
        }
        Method::DELETE => {
            current.ok_or_else(not_found)?;
            state
                .state_view
                .delete(collection, id.clone())
                .await
                .map_err(write_error)?;
            Ok(json_ok(&Deleted {
                id: id.as_str(),
                object: path_name(collection),
                deleted: true,
            }))
        }
        _ => Err(not_allowed(method, collection, "GET, PUT, DELETE")),
    }
}

#[derive(Serialize)]
struct Deleted<'a> {
    id: &'a str,
    object: &'static str,
    deleted: bool,
}

/// What a `GET` answers for a record: its JSON shape plus what the node knows about
/// it that is not part of the record (a model's `warnings`, a budget's `usage`).
/// These read-only fields are not accepted back by `PUT` (the records deny unknown
/// fields), so a client sends the record's own fields only.
fn read_json(state: &AppState, id: &RecordId, record: &Record) -> Value {
    let mut json = record_json(id, record);
    match record {
        Record::Model(_) => add_model_warnings(state, id, &mut json),
        Record::Budget(budget) => add_budget_usage(state, id, budget, &mut json),
        _ => {}
    }
    json
}

/// `usage` on a budget record's JSON: the current period's cluster-wide usage as this
/// node sees it, the same amounts its admission compares with the limits
/// ([`crate::cluster::StateView::usage`]: every node's published counters plus what
/// this node recorded and has not published yet; other nodes' unpublished usage
/// arrives with their next flush, so two nodes may differ by about a second of
/// traffic). `spend_usd` is the exact decimal (as `limit` is written), `spend_nanos`
/// the integer; `period_start_ms` and `resets_at_ms` bound the period (`resets_at_ms`
/// is `null` for `total`, which never resets).
fn add_budget_usage(state: &AppState, id: &RecordId, budget: &Budget, json: &mut Value) {
    let Value::Object(map) = json else {
        return;
    };
    let period = budget.period.index(state.state_view.wall_ms());
    let used = state.state_view.usage(id, period);
    let resets_at_ms = match budget.period {
        BudgetPeriod::Total => None,
        _ => budget.period.start_ms(period.saturating_add(1)),
    };
    map.insert(
        "usage".to_owned(),
        serde_json::json!({
            "period_index": period,
            "period_start_ms": budget.period.start_ms(period),
            "resets_at_ms": resets_at_ms,
            "spend_nanos": used.spend_nanos,
            "spend_usd": Money::from_nanos(used.spend_nanos).to_string(),
            "requests": used.requests,
            "tokens": used.tokens,
        }),
    );
    if let Some(leases) = budget_leases(state, id, budget, period) {
        map.insert("leases".to_owned(), leases);
    }
}

/// `leases` on a budget record's JSON, when its limits go through quota leases
/// (docs/quota.md): the current period's slices of `max_requests` (`requests`) and
/// of the spend `limit` in nano-USD (`spend`), as this node's copy of the ledger
/// records them (a voter's copy; every grant given reached a majority of voters, not
/// necessarily this one), per node, and what this node knows is left. `held` is
/// granted and not given back: spent, or still spendable by the node holding it.
fn budget_leases(state: &AppState, id: &RecordId, budget: &Budget, period: u64) -> Option<Value> {
    use crate::policy::leases::Leased;
    let leases = state.policy.leases()?;
    if budget.max_requests.is_none() && budget.limit.is_none() {
        return None;
    }
    let view = state.cluster.view();
    let name = |node: aurora_core::NodeId| {
        if view.node_id == Some(node) {
            return view.node_name.clone();
        }
        view.member(node)
            .map_or_else(|| node.to_string(), |m| m.meta.name.clone())
    };
    let slices = |leased: Leased| {
        let mut by_node: std::collections::BTreeMap<String, u64> = Default::default();
        for (session, slot) in view.quota_ledger.range(leased.key) {
            *by_node.entry(name(session.node)).or_default() += slot.held();
        }
        serde_json::json!({
            "limit": leased.limit.max,
            "held": by_node.values().sum::<u64>(),
            "by_node": by_node
                .into_iter()
                .map(|(node, held)| serde_json::json!({"node": node, "held": held}))
                .collect::<Vec<_>>(),
            "this_node_remaining": leases.remaining(leased),
        })
    };
    let requests = budget.max_requests.map(|max| {
        slices(Leased::budget_requests(
            id.as_str(),
            budget.period,
            period,
            max,
            budget.on_partition,
        ))
    });
    let spend = budget.limit.map(|limit| {
        slices(Leased::budget_spend(
            id.as_str(),
            budget.period,
            period,
            limit.nanos(),
            budget.on_partition,
        ))
    });
    Some(serde_json::json!({
        "on_partition": budget.on_partition,
        "requests": requests,
        "spend_nanos": spend,
    }))
}

/// `warnings` on a model record's JSON: one entry when no pricing record exists
/// under its name (its requests are not billed).
fn add_model_warnings(state: &AppState, id: &RecordId, json: &mut Value) {
    if let Value::Object(map) = json {
        let warnings: Vec<Value> =
            crate::policy::unpriced::of_model(&state.state_view, id.as_str())
                .into_iter()
                .map(Value::String)
                .collect();
        map.insert("warnings".to_owned(), Value::Array(warnings));
    }
}

/// A key whose `budget_id` or `workflow_id` names no record here is refused (400
/// naming the field): the gateway would refuse every request of it. A record that
/// is still replicating to this node when the key arrives elsewhere is the runtime
/// refusal's case (403 `key_misconfigured`).
pub fn check_references(state: &AppState, record: &Record) -> Result<(), ApiError> {
    let Record::AuthKey(key) = record else {
        return Ok(());
    };
    for (field, collection, id) in [
        ("budget_id", Collection::Budgets, &key.budget_id),
        ("workflow_id", Collection::Workflows, &key.workflow_id),
    ] {
        if let Some(id) = id {
            if state.state_view.record(collection, id.as_str()).is_none() {
                return Err(field_error(
                    field,
                    &format!(
                        "names `{id}`, which is not in `{}`; create it first",
                        collection.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Writes through the driver; answers once committed.
pub async fn write(state: &AppState, id: RecordId, record: Record) -> Result<(), ApiError> {
    state.state_view.put(id, record).await.map_err(write_error)
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Invalid(e) => record_error(&e),
        WriteError::Driver(e) => node_unavailable("commit the write", &e),
    }
}

/// Full validation, including the rules that involve the id.
pub fn check(record: &Record, id: &RecordId) -> Result<(), ApiError> {
    record.validate_with_id(id).map_err(|e| record_error(&e))
}

/// A provider may only name an API-key variable under `gateway.provider_env_prefix`
/// (see [`crate::cluster::catalog::refused_providers`]); 400 naming `api_key_env`.
pub fn check_env_prefix(state: &AppState, record: &Record) -> Result<(), ApiError> {
    let prefix = &state.config.provider_env_prefix;
    match record {
        Record::Provider(p) => match &p.api_key_env {
            Some(var) if !crate::config::env_name_allowed(var, prefix) => Err(field_error(
                "api_key_env",
                &format!(
                    "must start with `{prefix}` (gateway.provider_env_prefix): providers may only read variables set aside for them"
                ),
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

fn record_error(e: &RecordError) -> ApiError {
    field_error(e.field(), e.reason())
}

/// A 400 naming `field`.
pub fn field_error(field: &str, reason: &str) -> ApiError {
    ApiError {
        param: Some(field.to_owned()),
        ..error(
            StatusCode::BAD_REQUEST,
            format!("invalid `{field}`: {reason}"),
            "invalid_field",
        )
    }
}

/// The body as a JSON object.
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json("not an object")),
        Err(e) => Err(ApiError::invalid_json(e)),
    }
}

/// Deserializes `value` as `T`; a shape error names the field.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // A missing or unknown field at the top is reported on the object itself;
        // name the field instead.
        let field = if path == "." {
            message
                .split('`')
                .nth(1)
                .map(str::to_owned)
                .unwrap_or_else(|| ".".to_owned())
        } else {
            path
        };
        ApiError {
            param: Some(field.clone()),
            ..error(
                StatusCode::BAD_REQUEST,
                format!("invalid `{field}`: {message}"),
                "invalid_field",
            )
        }
    })
}

fn parse_id(s: &str) -> Result<RecordId, ApiError> {
    RecordId::new(s).map_err(|e| record_error(&e))
}

/// A fresh id: the collection's singular name and 16 random hex digits.
pub fn generated_id(collection: Collection) -> Result<RecordId, ApiError> {
    let stem = match collection {
        Collection::AuthKeys => "key",
        Collection::Providers => "provider",
        Collection::Models => "model",
        Collection::Routes => "route",
        Collection::Guardrails => "guardrail",
        Collection::Workflows => "workflow",
        Collection::Pricing => "pricing",
        Collection::Budgets => "budget",
    };
    let n = getrandom::u64().map_err(|e| {
        tracing::error!(error = %e, "OS random source failed");
        ApiError::internal()
    })?;
    RecordId::new(format!("{stem}-{n:016x}")).map_err(|_| ApiError::internal())
}

/// The typed record of `collection` from its JSON shape.
pub fn parse_record(collection: Collection, value: Value) -> Result<Record, ApiError> {
    Ok(match collection {
        Collection::AuthKeys => Record::AuthKey(from_value(value)?),
        Collection::Providers => Record::Provider(from_value(value)?),
        Collection::Models => Record::Model(from_value(value)?),
        Collection::Routes => Record::Route(from_value(value)?),
        Collection::Guardrails => Record::Guardrail(from_value(value)?),
        Collection::Workflows => Record::Workflow(from_value(value)?),
        Collection::Pricing => Record::Pricing(from_value(value)?),
        Collection::Budgets => Record::Budget(from_value(value)?),
    })
}

/// The record's JSON shape with `id` added.
pub fn record_json(id: &RecordId, record: &Record) -> Value {
    let value = match record {
        Record::AuthKey(r) => serde_json::to_value(r),
        Record::Provider(r) => serde_json::to_value(r),
        Record::Model(r) => serde_json::to_value(r),
        Record::Route(r) => serde_json::to_value(r),
        Record::Guardrail(r) => serde_json::to_value(r),
        Record::Workflow(r) => serde_json::to_value(r),
        Record::Pricing(r) => serde_json::to_value(r),
        Record::Budget(r) => serde_json::to_value(r),
    };
    match value {
        Ok(Value::Object(mut map)) => {
            map.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
            Value::Object(map)
        }
        Ok(other) => other,
        Err(_) => Value::Null,
    }
}

/// A JSON answer with `status`.
pub fn with_status(status: StatusCode, value: &Value) -> Response {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn not_allowed(method: &Method, collection: Collection, allow: &'static str) -> ApiError {
    ApiError::method_not_allowed(
        method,
        &format!("/admin/api/{}", path_name(collection)),
        allow,
    )
}
