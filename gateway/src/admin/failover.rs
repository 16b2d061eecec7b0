//! `POST /admin/api/cluster/switchover` and `POST /admin/api/cluster/forget`: the
//! operator's two levers on failover.
//!
//! - **Switchover** (`{"to": "<node id>"}`) hands the lease to another voter, for
//!   planned maintenance of the leader: the leader stops holding at once and tells the
//!   voters to grant only `to`, so the cluster is without a leader for about one round
//!   trip instead of a lease length after a crash.
//! - **Forget** (`{"node": "<node id>"}`) takes a member that is gone for good off the
//!   voter roster. Until then it counts towards the majority, so with one of three
//!   voters gone a second failure stops elections.
//!
//! Both are carried out by the lease holder only (the core changes the roster only
//! there, and only the holder has a lease to hand over). A node that is not the
//! holder answers 409 `not_leader` naming the leader (id, name, advertise URL, in a
//! top-level `leader` object beside OpenAI's `error`) instead of forwarding: the
//! caller retries there with its own credentials, the admin token never travels
//! between nodes, and the answer always comes from the node that did the work.
//!
//! A node is named as `GET /admin/api/cluster/nodes` shows it (`n` and a number) or
//! by its configured `cluster.node_id`, from which that id is derived.
//!
//! Forget refuses a member this node sees alive or suspect: a running member would
//! simply be admitted again. It refuses this node itself (stop it and forget it from
//! the new leader) and a node not on the roster (there is nothing to take off).
//!
//! A body that is not what is expected is a 400 naming the field before anything
//! else is looked at.
//!
//! Both answer once the driver carried the command out, after waiting (at most
//! [`SETTLE`]) for this node to see the result — `to` leading at a higher epoch, or
//! the roster without the node — and say whether it did (`completed`, `removed`).

use std::time::Duration;

use aurora_core::SwitchoverError;
use aurora_core::{Command, CommandError, Liveness, NodeId};
use aurora_io::{ClusterView, DriverError};
use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::records::{field_error, from_value, json_object};
use super::{error, node_unavailable};
use crate::cluster::status::{node_ref, NodeRef};
use crate::cluster::ClusterInfo;
use crate::http::body::{full, json_ok, Response};
use crate::openai::ApiError;

/// How long an answer waits for this node to see the change take effect.
pub const SETTLE: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchoverBody {
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetBody {
    node: String,
}

/// The answer to a switchover.
#[derive(Serialize)]
struct SwitchedOver {
    object: &'static str,
    /// This node, which held the lease and handed it over.
    leader_before: Option<NodeRef>,
    to: NodeRef,
    /// The epoch of the leadership that ended.
    epoch_before: u64,
    /// The leader and epoch this node knows as it answers.
    leader: Option<NodeRef>,
    epoch: u64,
    /// Whether this node saw `to` lead at a higher epoch within [`SETTLE`].
    completed: bool,
}

/// The answer to a forget.
#[derive(Serialize)]
struct Forgotten {
    object: &'static str,
    node: NodeRef,
    /// Whether the roster this node follows dropped it within [`SETTLE`].
    removed: bool,
    voters: Vec<NodeRef>,
}

/// Why a request was refused.
enum Refusal {
    Api(ApiError),
    /// 409: only the lease holder does this; `leader` is who does, if known.
    NotLeader {
        leader: Option<NodeRef>,
    },
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Api(e)
    }
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(e) => e.into_response(),
            Refusal::NotLeader { leader } => not_leader_response(leader),
        }
    }
}

/// `POST /admin/api/cluster/switchover`.
pub async fn switchover(info: &ClusterInfo, body: &Bytes) -> Response {
    run_switchover(info, body)
        .await
        .unwrap_or_else(Refusal::into_response)
}

/// `POST /admin/api/cluster/forget`.
pub async fn forget(info: &ClusterInfo, body: &Bytes) -> Response {
    run_forget(info, body)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn run_switchover(info: &ClusterInfo, body: &Bytes) -> Result<Response, Refusal> {
    let SwitchoverBody { to: typed } = parse(body)?;
    require_elections(info)?;
    let before = info.view();
    let to = resolve(&before, &typed, "to")?;
    let epoch_before = epoch(&before);
    info.command(Command::Switchover { to })
        .await
        .map_err(|e| switchover_refused(info, e, &typed))?;
    let led_by_to = |v: &ClusterView| leader(v) == Some(to) && epoch(v) > epoch_before;
    let after = info.settle(SETTLE, led_by_to).await;
    Ok(json_ok(&SwitchedOver {
        object: "cluster.switchover",
        leader_before: before.node_id.map(|id| node_ref(&before, info, id)),
        to: node_ref(&after, info, to),
        epoch_before,
        leader: leader(&after).map(|id| node_ref(&after, info, id)),
        epoch: epoch(&after),
        completed: led_by_to(&after),
    }))
}

async fn run_forget(info: &ClusterInfo, body: &Bytes) -> Result<Response, Refusal> {
    let ForgetBody { node: typed } = parse(body)?;
    require_elections(info)?;
    let view = info.view();
    let node = resolve(&view, &typed, "node")?;
    check_forgettable(info, &view, node, &typed)?;
    info.command(Command::ForgetMember { node })
        .await
        .map_err(|e| node_unavailable("forget the member", &e))?;
    let after = info.settle(SETTLE, |v| !on_roster(v, node)).await;
    Ok(json_ok(&Forgotten {
        object: "cluster.forget",
        node: node_ref(&view, info, node),
        removed: !on_roster(&after, node),
        voters: voters(&after)
            .iter()
            .map(|&id| node_ref(&after, info, id))
            .collect(),
    }))
}

/// The refusals of a forget, in order: this node itself, not the leader, not on
/// the roster, still running.
fn check_forgettable(
    info: &ClusterInfo,
    view: &ClusterView,
    node: NodeId,
    typed: &str,
) -> Result<(), Refusal> {
    let named = describe(&node_ref(view, info, node), typed);
    if view.node_id == Some(node) {
        return Err(conflict(
            format!("{named} is this node, which is running; stop it, then send the forget to the node that leads after it"),
            "cannot_forget_self",
        )
        .into());
    }
    require_leader(info, view)?;
    if !on_roster(view, node) {
        return Err(field_error(
            "node",
            &format!("{named} is not on the voter roster (see `voters` in GET /admin/api/cluster/status); there is nothing to forget"),
        )
        .into());
    }
    if let Some(state) = running(view, node) {
        return Err(conflict(
            format!("{named} is {state} as this node sees it; a running member would be admitted again. Stop it for good and wait until GET /admin/api/cluster/nodes shows it `dead`"),
            "member_alive",
        )
        .into());
    }
    Ok(())
}

/// The body as `T`; a missing, unknown or mistyped field is a 400 naming it.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    from_value(Value::Object(json_object(body)?))
}

/// The node `text` names: an id as `cluster/nodes` shows it (`n` and digits), or a
/// member's configured `cluster.node_id`. When `text` reads both ways, the reading
/// this node knows wins (the shown form if it knows neither).
fn resolve(view: &ClusterView, text: &str, field: &str) -> Result<NodeId, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(field_error(
            field,
            "must name a node, by its id as GET /admin/api/cluster/nodes shows it",
        ));
    }
    let configured = NodeId::from_name(text);
    let shown = text
        .strip_prefix('n')
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .map(NodeId);
    Ok(match shown {
        Some(id) if knows(view, id) || !knows(view, configured) => id,
        _ => configured,
    })
}

fn knows(view: &ClusterView, id: NodeId) -> bool {
    view.node_id == Some(id) || view.member(id).is_some() || on_roster(view, id)
}

fn voters(view: &ClusterView) -> &[NodeId] {
    view.failover.as_ref().map_or(&[], |f| &f.voters)
}

fn on_roster(view: &ClusterView, id: NodeId) -> bool {
    voters(view).contains(&id)
}

fn leader(view: &ClusterView) -> Option<NodeId> {
    view.failover.as_ref().and_then(|f| f.leader)
}

fn epoch(view: &ClusterView) -> u64 {
    view.failover.as_ref().map_or(0, |f| f.epoch.0)
}

/// `alive` or `suspect` when this node sees `id` so (it may still be running).
fn running(view: &ClusterView, id: NodeId) -> Option<&'static str> {
    match view.member(id)?.liveness {
        Liveness::Alive => Some("alive"),
        Liveness::Suspect => Some("suspect"),
        Liveness::Dead | Liveness::Left => None,
    }
}

/// `node-2 (n123)`: the node's name, or else what the caller `typed` when that is not
/// the id itself, and the numeric id.
fn describe(node: &NodeRef, typed: &str) -> String {
    let typed = typed.trim();
    let id = &node.numeric_id;
    match &node.name {
        Some(name) => format!("{name} ({id})"),
        None if typed != id && !typed.is_empty() => format!("{typed} ({id})"),
        None => id.clone(),
    }
}

fn conflict(message: String, code: &'static str) -> ApiError {
    error(StatusCode::CONFLICT, message, code)
}

/// 409 when the nodes elect no leader.
fn require_elections(info: &ClusterInfo) -> Result<(), ApiError> {
    if info.elects() {
        return Ok(());
    }
    Err(conflict(
        format!("this node runs in {} mode: there is no leader and no voter roster. Switchover and forget need clustering on with failover_mode active_passive or active_active", info.mode),
        "single_node",
    ))
}

/// `Err(NotLeader)` unless this node holds the lease in `view`.
fn require_leader(info: &ClusterInfo, view: &ClusterView) -> Result<(), Refusal> {
    if view
        .failover
        .as_ref()
        .is_some_and(|f| f.this_node_holds_lease)
    {
        return Ok(());
    }
    Err(not_leader(info, view))
}

fn not_leader(info: &ClusterInfo, view: &ClusterView) -> Refusal {
    let leader = leader(view)
        .filter(|&id| view.node_id != Some(id))
        .map(|id| node_ref(view, info, id));
    Refusal::NotLeader { leader }
}

fn switchover_refused(info: &ClusterInfo, e: DriverError, typed: &str) -> Refusal {
    let DriverError::Command(CommandError::Switchover(refused)) = e else {
        return node_unavailable("hand the lease over", &e).into();
    };
    let view = info.view();
    let named = |id| describe(&node_ref(&view, info, id), typed);
    match refused {
        SwitchoverError::SingleNode => Refusal::Api(conflict(
            "this node runs in single_node mode: there is no leader to hand over".into(),
            "single_node",
        )),
        SwitchoverError::NotLeader => not_leader(info, &view),
        SwitchoverError::AlreadyLeader(id) => Refusal::Api(
            conflict(
                format!("{} already leads; there is nothing to hand over", named(id)),
                "already_leader",
            )
            .with_param("to"),
        ),
        SwitchoverError::NotEligible(id) => Refusal::Api(field_error(
            "to",
            &format!("{} is not a live voting member that may lead (unknown, not alive, a witness, or its cluster settings differ); see GET /admin/api/cluster/nodes", named(id)),
        )),
    }
}

/// 409 `not_leader`, with the leader as a top-level `leader` object beside OpenAI's
/// `error` (`null` while no leader is known; `Retry-After` then says when to retry).
fn not_leader_response(leader: Option<NodeRef>) -> Response {
    let error = match &leader {
        Some(l) => {
            let at = l
                .advertise_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| format!(" at {u}"))
                .unwrap_or_default();
            conflict(
                format!("this node does not hold the lease; send the request to the leader, {}{at}", describe(l, "")),
                "not_leader",
            )
        }
        None => ApiError {
            retry_after: Some(1),
            ..conflict(
                "this node does not hold the lease and knows of no leader right now (an election may be under way); retry in a few seconds".into(),
                "not_leader",
            )
        },
    };
    with_member(error, "leader", &leader)
}

/// `error`'s response with one more top-level member beside `error`: OpenAI clients
/// read only `error`, scripts can read the rest.
fn with_member(error: ApiError, key: &str, value: &impl Serialize) -> Response {
    let mut body: Map<String, Value> = serde_json::from_slice(&error.to_json()).unwrap_or_default();
    body.insert(
        key.to_owned(),
        serde_json::to_value(value).unwrap_or(Value::Null),
    );
    let (parts, _) = error.into_response().into_parts();
    Response::from_parts(parts, full(serde_json::to_vec(&body).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn view(voters: &[NodeId]) -> ClusterView {
        ClusterView {
            node_id: Some(NodeId(1)),
            node_name: "node-1".into(),
            failover: Some(crate::cluster::status::tests::standby(NodeId(2), voters)),
            ..ClusterView::default()
        }
    }

    #[test]
    fn a_node_is_named_by_its_shown_id_or_its_configured_id() {
        let node_2 = NodeId::from_name("node-2");
        let v = view(&[NodeId(1), node_2]);
        assert_eq!(resolve(&v, "n1", "to"), Ok(NodeId(1)));
        assert_eq!(resolve(&v, &format!(" {node_2} "), "to"), Ok(node_2));
        assert_eq!(resolve(&v, "node-2", "to"), Ok(node_2));
        // Unknown either way: the shown form, so the error names what was typed.
        assert_eq!(resolve(&v, "n77", "to"), Ok(NodeId(77)));
        assert_eq!(resolve(&v, "n+7", "to"), Ok(NodeId::from_name("n+7")));
        // A configured id that looks like a shown one, known only as configured.
        let tricky = NodeId::from_name("n5");
        assert_eq!(resolve(&view(&[tricky]), "n5", "to"), Ok(tricky));
        let empty = resolve(&v, "  ", "node").expect_err("empty");
        assert_eq!(
            (empty.status, empty.param.as_deref()),
            (StatusCode::BAD_REQUEST, Some("node"))
        );
    }

    #[test]
    fn messages_name_a_node_as_known_or_as_typed() {
        let unknown = NodeRef {
            id: "n9".into(),
            numeric_id: "n9".into(),
            name: None,
            advertise_url: None,
        };
        assert_eq!(describe(&unknown, "node-9"), "node-9 (n9)");
        assert_eq!(describe(&unknown, " n9 "), "n9");
        let known = NodeRef {
            id: "node-2".into(),
            name: Some("node-2".into()),
            ..unknown
        };
        // Shown by its configured id, described with the numeric one beside it.
        assert_eq!(describe(&known, "n9"), "node-2 (n9)");
        assert_eq!(describe(&known, "node-2"), "node-2 (n9)");
    }

    async fn body_json(response: Response) -> Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn not_leader_names_the_leader_beside_the_openai_error() {
        let leader = NodeRef {
            id: "node-2".into(),
            numeric_id: "n2".into(),
            name: Some("node-2".into()),
            advertise_url: Some("http://127.0.0.2:8080".into()),
        };
        let response = not_leader_response(Some(leader));
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.headers().get(http::header::RETRY_AFTER).is_none());
        let v = body_json(response).await;
        assert_eq!(v["error"]["code"], "not_leader");
        assert_eq!(
            v["error"]["message"],
            "this node does not hold the lease; send the request to the leader, node-2 (n2) at http://127.0.0.2:8080"
        );
        assert_eq!(
            v["leader"],
            serde_json::json!({"id": "node-2", "numeric_id": "n2", "name": "node-2", "advertise_url": "http://127.0.0.2:8080"})
        );

        let response = not_leader_response(None);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        let v = body_json(response).await;
        assert_eq!(v["leader"], Value::Null);
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn only_dead_or_departed_members_may_be_forgotten() {
        let mut v = view(&[NodeId(1), NodeId(2)]);
        assert_eq!(running(&v, NodeId(2)), None, "unknown member: not running");
        let member = |liveness| aurora_io::MemberView {
            id: NodeId(2),
            liveness,
            ..crate::cluster::status::tests::member("node-2", "node-2")
        };
        for (liveness, expected) in [
            (Liveness::Alive, Some("alive")),
            (Liveness::Suspect, Some("suspect")),
            (Liveness::Dead, None),
            (Liveness::Left, None),
        ] {
            v.members = vec![member(liveness)];
            assert_eq!(running(&v, NodeId(2)), expected);
        }
    }
}
