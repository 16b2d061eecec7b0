//! `POST /admin/api/cluster/admit`: an operator's word that a node id speaks with a
//! storage life (a key) this node has not bound it to.
//!
//! The body is `{"node": "<node id>", "life": "<16 hex digits>"}`; `life` may be
//! left out when exactly one life of that node is waiting (shown under
//! `identity.strangers` in `GET /admin/api/cluster/status`). It is carried out by
//! the node it is sent to: under `cluster.admission: manual` it admits a pending
//! node; for an id already bound to another life it *replaces the key* (the id's
//! binding moves to the new life). For a voter, admit on the leader: the leader then
//! admits it to the roster, which binds it on every node that follows the roster.
//! A voter whose disk was lost is instead forgotten on the leader (`POST
//! cluster/forget`), which releases its old life everywhere; see docs/operations.md.

use aurora_core::{Command, Life, NodeId};
use aurora_io::ClusterView;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::node_unavailable;
use super::records::{field_error, from_value, json_object};
use crate::cluster::ClusterInfo;
use crate::http::body::{json_ok, Response};
use crate::openai::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdmitBody {
    node: String,
    #[serde(default)]
    life: Option<String>,
}

#[derive(Serialize)]
struct Admitted {
    object: &'static str,
    node: String,
    life: String,
    /// The life the id was bound to before, if another.
    replaced: Option<String>,
}

/// `POST /admin/api/cluster/admit`.
pub async fn admit(info: &ClusterInfo, body: &Bytes) -> Response {
    run(info, body)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn run(info: &ClusterInfo, body: &Bytes) -> Result<Response, ApiError> {
    let AdmitBody { node, life } = from_value(Value::Object(json_object(body)?))?;
    if !info.enabled {
        return Err(field_error("node", "clustering is off on this node"));
    }
    let view = info.view();
    let id = parse_node(&node)?;
    if view.node_id == Some(id) {
        return Err(field_error("node", "names this node itself"));
    }
    let life = match life {
        Some(text) => parse_life(&text)?,
        None => only_waiting_life(&view, id)?,
    };
    let replaced = view
        .strangers
        .iter()
        .find_map(|s| match s.kind {
            aurora_io::StrangerKind::Mismatch { bound } if s.node == id => Some(bound),
            _ => None,
        })
        .filter(|&b| b != life);
    info.command(Command::AdmitMember { node: id, life })
        .await
        .map_err(|e| node_unavailable("admit the member", &e))?;
    Ok(json_ok(&Admitted {
        object: "cluster.admit",
        node: id.to_string(),
        life: life.to_string(),
        replaced: replaced.map(|l| l.to_string()),
    }))
}

/// `n` and digits (as `cluster/nodes` shows it), or a configured `cluster.node_id`.
fn parse_node(text: &str) -> Result<NodeId, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(field_error("node", "must name a node"));
    }
    Ok(text
        .strip_prefix('n')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .map_or_else(|| NodeId::from_name(text), NodeId))
}

fn parse_life(text: &str) -> Result<Life, ApiError> {
    let text = text.trim();
    if text.len() != 16 {
        return Err(field_error("life", "must be 16 hex digits"));
    }
    u64::from_str_radix(text, 16)
        .map(Life)
        .map_err(|_| field_error("life", "must be 16 hex digits"))
}

/// The one life of `id` this node turned away, when there is exactly one.
fn only_waiting_life(view: &ClusterView, id: NodeId) -> Result<Life, ApiError> {
    let mut lives = view
        .strangers
        .iter()
        .filter(|s| s.node == id)
        .map(|s| s.life);
    match (lives.next(), lives.next()) {
        (Some(life), None) => Ok(life),
        (None, _) => Err(field_error(
            "life",
            "is required: this node has turned away no life of that node",
        )),
        (Some(_), Some(_)) => Err(field_error(
            "life",
            "is required: this node turned away several lives of that node (see identity.strangers in GET /admin/api/cluster/status)",
        )),
    }
}
