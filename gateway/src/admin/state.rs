//! `GET /admin/api/state/export[?at=TIME]` and `POST /admin/api/state/import[?dry_run=true]`:
//! the live side of `aurora state export --url` and `aurora state import --url`.
//!
//! * Export without `at` renders this node's in-memory snapshot (what the collection
//!   endpoints list); with `at` (RFC 3339 or unix ms) it reads the point-in-time
//!   history of this node's `node.db` on a read-only connection (see
//!   `aurora_io::store::history`), and refuses (400 `at_out_of_range`) a time it
//!   cannot answer exactly, saying which bound.
//! * Import takes an export document, checks it whole (every record, its digest)
//!   before writing anything, and answers the diff per collection; without `dry_run`
//!   it then writes the added and changed records as they are in the file (auth keys
//!   keep their `secret_hash`, so the clients' keys keep working) and deletes the
//!   records the file does not have, each a committed write (up to 64 in flight, which
//!   the driver commits together), collection by collection, so the node ends with
//!   exactly the file's records (`digest_after` equals the file's digest unless other
//!   writes arrived meanwhile).

use std::sync::Arc;

use aurora_schema::{Collection, Record, RecordId};
use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::error;
use crate::http::body::{json_ok, Response};
use crate::openai::ApiError;
use crate::ops::document::{self, CollectionDiff, Document, Records};
use crate::state::AppState;

/// Largest import document accepted (the whole control-plane state in one body).
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// Collections in the order an import writes them: what keys refer to first.
const WRITE_ORDER: [Collection; 8] = [
    Collection::Providers,
    Collection::Models,
    Collection::Routes,
    Collection::Guardrails,
    Collection::Pricing,
    Collection::Budgets,
    Collection::Workflows,
    Collection::AuthKeys,
];

/// `GET /admin/api/state/export`.
pub async fn export(state: &Arc<AppState>, query: Option<&str>) -> Result<Response, ApiError> {
    let at = match param(query, "at") {
        None => None,
        Some(v) => Some(crate::ops::time::parse_at(&v).map_err(|e| at_error(e.to_string()))?),
    };
    let now = crate::ops::now_ms();
    let source = if state.cluster.advertise_url.is_empty() {
        "node".to_owned()
    } else {
        state.cluster.advertise_url.clone()
    };
    let records = match at {
        None => Records::from_snapshot(&state.state_view.snapshot()),
        Some(at) => {
            let Some(path) = state.cluster.db_path.clone() else {
                return Err(error(
                    StatusCode::CONFLICT,
                    "this server runs without a node file, so it keeps no history for `at`",
                    "no_history",
                ));
            };
            let read = tokio::task::spawn_blocking(move || {
                aurora_io::store::backup::StateFile::open_own(&path)
                    .and_then(|f| f.record_entries(Some(at)))
            })
            .await
            .map_err(|_| ApiError::internal())?;
            match read {
                Ok(entries) => Records::from_entries(entries),
                Err(aurora_io::store::backup::BackupError::At { why, .. }) => {
                    return Err(at_error(why.to_string()))
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the node file for a state export failed");
                    return Err(ApiError::server_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot read this node's file: {e}"),
                        "node_file_unreadable",
                    ));
                }
            }
        }
    };
    Ok(json_ok(&records.document(at, now, source)))
}

#[derive(Serialize)]
struct ImportAnswer {
    object: &'static str,
    dry_run: bool,
    /// The digest of the file's records.
    digest: String,
    digest_before: String,
    /// After the writes (`null` on a dry run).
    digest_after: Option<String>,
    diff: std::collections::BTreeMap<String, CollectionDiff>,
    written: usize,
    deleted: usize,
}

/// `POST /admin/api/state/import`.
pub async fn import(
    state: &Arc<AppState>,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let dry_run = match param(query, "dry_run").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => {
            return Err(ApiError {
                param: Some("dry_run".into()),
                ..error(
                    StatusCode::BAD_REQUEST,
                    "invalid `dry_run`: must be true or false",
                    "invalid_field",
                )
            })
        }
    };
    let (_, wanted) = Document::parse(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the import document is refused, nothing was written: {e}"),
            "invalid_state_document",
        )
    })?;
    for record in wanted.0.iter().flat_map(|m| m.values()) {
        super::records::check_env_prefix(state, record)?;
    }
    let before = Records::from_snapshot(&state.state_view.snapshot());
    let diff = document::diff(&before, &wanted);
    let (mut written, mut deleted) = (0, 0);
    if !dry_run {
        for c in WRITE_ORDER {
            let d = &diff[crate::admin::records::path_name(c)];
            let mut writes = Vec::with_capacity(d.added.len() + d.changed.len());
            for id in d.added.iter().chain(&d.changed) {
                writes.push(Change::Put(Box::new(lookup(&wanted, c, id)?)));
            }
            written += apply(state, writes).await?;
        }
        for c in WRITE_ORDER.into_iter().rev() {
            let mut deletes = Vec::new();
            for id in &diff[crate::admin::records::path_name(c)].removed {
                let id = RecordId::new(id.as_str()).map_err(|_| ApiError::internal())?;
                deletes.push(Change::Delete(c, id));
            }
            deleted += apply(state, deletes).await?;
        }
    }
    let digest_after =
        (!dry_run).then(|| Records::from_snapshot(&state.state_view.snapshot()).digest());
    Ok(json_ok(&ImportAnswer {
        object: "state.import",
        dry_run,
        digest: wanted.digest(),
        digest_before: before.digest(),
        digest_after,
        diff,
        written,
        deleted,
    }))
}

/// Writes that an import makes.
enum Change {
    Put(Box<(RecordId, Record)>),
    Delete(Collection, RecordId),
}

/// Writes in flight at once: the driver commits what is waiting in one transaction,
/// so an import of many records costs a few fsyncs per batch, not one per record.
const IN_FLIGHT: usize = 64;

/// Applies `changes` (one collection's) with up to [`IN_FLIGHT`] at once; returns how
/// many were committed, or the first error (the others in flight still finish).
async fn apply(state: &Arc<AppState>, changes: Vec<Change>) -> Result<usize, ApiError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = 0;
    let mut first_error = None;
    let mut collect = |result: Result<Result<(), ApiError>, tokio::task::JoinError>| match result {
        Ok(Ok(())) => done += 1,
        Ok(Err(e)) => {
            first_error.get_or_insert(e);
        }
        Err(_) => {
            first_error.get_or_insert_with(ApiError::internal);
        }
    };
    for change in changes {
        if tasks.len() >= IN_FLIGHT {
            if let Some(result) = tasks.join_next().await {
                collect(result);
            }
        }
        let state = Arc::clone(state);
        tasks.spawn(async move {
            match change {
                Change::Put(put) => {
                    let (id, record) = *put;
                    super::records::write(&state, id, record).await
                }
                Change::Delete(c, id) => {
                    state.state_view.delete(c, id).await.map_err(|e| match e {
                        crate::cluster::WriteError::Invalid(_) => ApiError::internal(),
                        crate::cluster::WriteError::Driver(e) => {
                            super::node_unavailable("commit the delete", &e)
                        }
                    })
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        collect(result);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

fn lookup(records: &Records, c: Collection, id: &str) -> Result<(RecordId, Record), ApiError> {
    records.0[c as usize]
        .get_key_value(id)
        .map(|(id, r)| (id.clone(), r.clone()))
        .ok_or_else(ApiError::internal)
}

fn at_error(message: String) -> ApiError {
    ApiError {
        param: Some("at".into()),
        ..error(StatusCode::BAD_REQUEST, message, "at_out_of_range")
    }
}

/// The last value of `name` in a query string (percent-decoded for `+`, `%2B`, `%3A`).
fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
        .next_back()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
