//! `GET /admin/api/cluster/status`, `GET /admin/api/cluster/nodes` and the cluster
//! part of `/metrics`, all read from the driver's latest [`ClusterView`] (never from
//! the driver itself).
//!
//! The admin API answers a [`StatusDocument`]: the [`Status`] the dashboard renders
//! plus the voter roster. The roster is kept out of [`StatusDetails`] so the
//! dashboard (and its fixed test cluster) need not change to carry it.

use aurora_core::{Liveness, NodeId};
use aurora_io::view::COMMIT_BUCKETS_US;
use aurora_io::{ClusterView, LocalStatus};
use serde::Serialize;

use super::ClusterInfo;
use crate::metrics::{Exposition, Kind};

/// The status document. With clustering off only `enabled: false` is serialized.
#[derive(Debug, Serialize)]
pub struct Status {
    pub enabled: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

#[derive(Debug, Serialize)]
pub struct StatusDetails {
    /// `cluster.failover_mode`.
    pub mode: &'static str,
    /// Members alive, this node included.
    pub node_count: usize,
    /// The leader's id as [`shown_id`] names it (`null` while there is none, and
    /// always in single_node mode, where every node is its own leader).
    pub leader: Option<String>,
    /// The leader's advertise URL, for standbys to point clients at.
    pub leader_advertise_url: Option<String>,
    /// The fencing epoch of the current leadership.
    pub epoch: u64,
    /// Whether this node serves traffic (in active_passive only the leader does).
    pub serving: bool,
    /// Whether losing the leader now would still leave a majority to elect another;
    /// `false` with a reason for, e.g., two voting members and no witness.
    pub can_fail_over: bool,
    pub failover_reason: Option<String>,
    pub this_node: ThisNode,
    /// Members whose settings fingerprint or software version differ from this
    /// node's: a rolling upgrade in progress, or a configuration mistake.
    pub drift_warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ThisNode {
    /// The configured `cluster.node_id` (see [`shown_id`]).
    pub id: String,
    /// The core's numeric id, `n` and digits (what logs and older tooling show).
    pub numeric_id: String,
    pub name: String,
    /// `joining`, `active` or `left`.
    pub status: &'static str,
    pub gossip_addr: Option<String>,
    pub incarnation: u64,
}

/// `GET /admin/api/cluster/status`: [`Status`] and, with clustering on, the roster.
#[derive(Debug, Serialize)]
pub struct StatusDocument {
    #[serde(flatten)]
    pub status: Status,
    /// The voter roster this node follows, by id (empty before it has one, and in
    /// `single_node` mode); names and URLs where this node knows the member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voters: Option<Vec<NodeRef>>,
    /// What an operator should fix that is not a cluster fault, e.g. a model without
    /// a pricing record, whose requests are not billed
    /// ([`crate::policy::unpriced`]). Left out when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// This node's storage life and the peers it turns away (with clustering on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,
    /// What replicated state this node holds (with clustering on), so operators and
    /// tests can tell whether nodes converged without listing every collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSummary>,
}

/// A summary of this node's copy of the replicated store.
///
/// Two nodes with the same `digest` hold the same live records and usage counters,
/// each at the same write (the store's order-independent XOR of a hash of every
/// live key and the timestamp of the write it holds). Tombstones are left out, so a
/// node that missed only a delete of something it never had still matches.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    /// 16 hex digits.
    pub digest: String,
    /// Live records over every collection (usage counters not included).
    pub live_records: usize,
}

impl StateSummary {
    pub fn of(snapshot: &aurora_io::view::StateSnapshot) -> StateSummary {
        StateSummary {
            digest: format!("{:016x}", snapshot.digest),
            live_records: snapshot.live_records(),
        }
    }
}

/// Who this node is, and whom it refuses to believe.
#[derive(Debug, Serialize)]
pub struct IdentityStatus {
    /// This node's storage life, 16 hex digits.
    pub life: String,
    /// `cluster.admission`: `auto` or `manual`.
    pub admission: &'static str,
    /// Peers whose messages are dropped: `identity_mismatch` ("node X presented an
    /// unknown key") or `pending_admission` (waiting for `POST cluster/admit`).
    pub strangers: Vec<StrangerRow>,
}

#[derive(Debug, Serialize)]
pub struct StrangerRow {
    pub node: String,
    /// The life it presented.
    pub life: String,
    /// `identity_mismatch` or `pending_admission`.
    pub reason: &'static str,
    /// The life the id is bound to (mismatches only).
    pub bound_life: Option<String>,
    pub addr: String,
    pub dropped: u64,
    pub message: String,
}

/// A node named by id, with what this node knows of it (`null` when it knows
/// nothing: a voter that was never seen, or whose member entry is gone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRef {
    /// As [`shown_id`] names it.
    pub id: String,
    /// The core's numeric id, `n` and digits.
    pub numeric_id: String,
    pub name: Option<String>,
    pub advertise_url: Option<String>,
}

/// One row of `/admin/api/cluster/nodes`.
#[derive(Debug, Serialize)]
pub struct NodeRow {
    /// As [`shown_id`] names it.
    pub id: String,
    /// The core's numeric id, `n` and digits.
    pub numeric_id: String,
    pub name: String,
    pub region: String,
    pub zone: String,
    pub advertise_url: String,
    pub sync_addr: String,
    /// `alive`, `suspect`, `dead` or `left` (this node: `alive`, `joining`, `left`).
    pub state: &'static str,
    pub incarnation: u64,
    /// Since its heartbeat last went up, on this node's clock; `null` if never seen.
    pub last_heartbeat_ms_ago: Option<u64>,
    pub is_leader: bool,
    pub is_self: bool,
    pub sync_lag: Lag,
}

/// How far behind that peer this node was at its last sync with it.
#[derive(Debug, Default, Serialize)]
pub struct Lag {
    pub versions: u64,
    pub millis: u64,
}

fn liveness(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Suspect => "suspect",
        Liveness::Dead => "dead",
        Liveness::Left => "left",
    }
}

fn local_status(s: LocalStatus) -> &'static str {
    match s {
        LocalStatus::Joining => "joining",
        LocalStatus::Active => "active",
        LocalStatus::Left => "left",
    }
}

fn numeric(id: Option<NodeId>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

/// How the API names node `id`: by its configured `cluster.node_id` where this node
/// knows it, else by the core's numeric form (`n` and digits, the hash of the
/// node id). This node knows its own node id; of a member it knows only the metadata
/// that member announces, whose `name` is `cluster.node_name` — by default the node
/// id. A name is shown as the id only when it hashes to that id (so it *is* the node
/// id), which also makes every node name every member alike: a member that set a
/// `node_name` different from its node id is shown as `n…` by every node, itself
/// included. (Carrying the node id in the metadata would change the wire format.)
/// Every field that shows an id has the numeric form beside it (`numeric_id`), and
/// inputs (`switchover`, `forget`, `admit`) take either.
pub fn shown_id(view: &ClusterView, info: &ClusterInfo, id: NodeId) -> String {
    let named = |name: &str| (NodeId::from_name(name) == id).then(|| name.to_owned());
    let known = if view.node_id == Some(id) {
        named(&info.node_id)
    } else {
        view.member(id).and_then(|m| named(&m.meta.name))
    };
    known.unwrap_or_else(|| id.to_string())
}

fn shown(view: &ClusterView, info: &ClusterInfo, id: Option<NodeId>) -> String {
    id.map(|i| shown_id(view, info, i)).unwrap_or_default()
}

/// The status document.
pub fn status(info: &ClusterInfo) -> Status {
    if !info.enabled {
        return Status {
            enabled: false,
            details: None,
        };
    }
    let view = info.view();
    let failover = view.failover.as_ref();
    let leader = failover.and_then(|f| f.leader);
    let mut drift = Vec::new();
    for m in view.alive() {
        if m.meta.config_fingerprint != info.fingerprint {
            drift.push(format!(
                "{} ({}): cluster settings differ from this node's (fingerprint {:016x} vs {:016x})",
                m.meta.name, m.id, m.meta.config_fingerprint, info.fingerprint
            ));
        }
        if m.meta.version != info.version {
            drift.push(format!(
                "{} ({}): version {} differs from this node's {}",
                m.meta.name, m.id, m.meta.version, info.version
            ));
        }
    }
    Status {
        enabled: true,
        details: Some(StatusDetails {
            mode: info.mode,
            node_count: 1 + view.alive().count(),
            leader: leader.map(|id| shown_id(&view, info, id)),
            leader_advertise_url: leader_url(&view, info, leader),
            epoch: failover.map_or(0, |f| f.epoch.0),
            serving: failover.is_none_or(|f| f.serving),
            can_fail_over: failover.is_some_and(|f| f.can_fail_over),
            failover_reason: failover.and_then(|f| f.reason.clone()),
            this_node: ThisNode {
                id: shown(&view, info, view.node_id),
                numeric_id: numeric(view.node_id),
                name: view.node_name.clone(),
                status: local_status(view.status),
                gossip_addr: view.addr.map(|a| a.to_string()),
                incarnation: view.incarnation.0,
            },
            drift_warnings: drift,
        }),
    }
}

/// `GET /admin/api/cluster/settings`: this node's cluster metadata as configured,
/// read-only (the admin UI's Settings → Routing). Present with clustering off too,
/// where it describes the lone node (`enabled: false`, mode `single_node`).
#[derive(Debug, Serialize)]
pub struct Settings {
    pub object: &'static str,
    pub enabled: bool,
    /// The configured `cluster.node_id` and the core's numeric form of it.
    pub node_id: String,
    pub numeric_id: String,
    pub node_name: String,
    pub region: String,
    pub zone: String,
    pub advertise_url: String,
    pub sync_addr: String,
    pub failover_mode: &'static str,
    pub heartbeat_interval_ms: u64,
    pub version: String,
}

/// The settings document.
pub fn settings(info: &ClusterInfo) -> Settings {
    let view = info.view();
    Settings {
        object: "cluster.settings",
        enabled: info.enabled,
        node_id: info.node_id.clone(),
        numeric_id: numeric(view.node_id),
        node_name: view.node_name.clone(),
        region: info.region.clone(),
        zone: info.zone.clone(),
        advertise_url: info.advertise_url.clone(),
        sync_addr: info.sync_addr.clone(),
        failover_mode: info.mode,
        heartbeat_interval_ms: info.heartbeat_interval_ms,
        version: info.version.clone(),
    }
}

/// The status document of the admin API.
pub fn document(info: &ClusterInfo) -> StatusDocument {
    let status = status(info);
    let voters = status.enabled.then(|| {
        let view = info.view();
        view.failover
            .iter()
            .flat_map(|f| f.voters.iter())
            .map(|&id| node_ref(&view, info, id))
            .collect()
    });
    let identity = status.enabled.then(|| identity(&info.view()));
    StatusDocument {
        status,
        voters,
        warnings: Vec::new(),
        identity,
        state: None,
    }
}

/// The identity part of the status document.
fn identity(view: &ClusterView) -> IdentityStatus {
    use aurora_core::Admission;
    use aurora_io::StrangerKind;
    IdentityStatus {
        life: view.life.to_string(),
        admission: match view.admission {
            Admission::Auto => "auto",
            Admission::Manual => "manual",
        },
        strangers: view
            .strangers
            .iter()
            .map(|s| {
                let (reason, bound, message) = match s.kind {
                    StrangerKind::Mismatch { bound } => (
                        "identity_mismatch",
                        Some(bound.to_string()),
                        format!(
                            "node {} presented an unknown key (life {}, bound to {bound}); its messages are dropped. If its disk was lost or its key replaced, forget it on the leader (POST /admin/api/cluster/forget)",
                            s.node, s.life
                        ),
                    ),
                    StrangerKind::Pending => (
                        "pending_admission",
                        None,
                        format!(
                            "node {} (life {}) waits for admission: POST /admin/api/cluster/admit",
                            s.node, s.life
                        ),
                    ),
                };
                StrangerRow {
                    node: s.node.to_string(),
                    life: s.life.to_string(),
                    reason,
                    bound_life: bound,
                    addr: s.addr.to_string(),
                    dropped: s.dropped,
                    message,
                }
            })
            .collect(),
    }
}

/// `id` with its name and advertise URL when this node knows them.
pub fn node_ref(view: &ClusterView, info: &ClusterInfo, id: NodeId) -> NodeRef {
    let (name, advertise_url) = if view.node_id == Some(id) {
        (
            Some(view.node_name.clone()),
            Some(info.advertise_url.clone()),
        )
    } else {
        view.member(id).map_or((None, None), |m| {
            (
                Some(m.meta.name.clone()),
                Some(m.meta.advertise_url.clone()),
            )
        })
    };
    NodeRef {
        id: shown_id(view, info, id),
        numeric_id: id.to_string(),
        name,
        advertise_url,
    }
}

/// The advertise URL of `leader`, from its gossiped metadata (or our own).
fn leader_url(view: &ClusterView, info: &ClusterInfo, leader: Option<NodeId>) -> Option<String> {
    node_ref(view, info, leader?).advertise_url
}

/// The leader's advertise URL when this node is a standby that must not serve
/// (active_passive), for `/health/ready` to name it.
pub fn standby_of(info: &ClusterInfo) -> Option<Option<String>> {
    let view = info.view();
    let f = view.failover.as_ref()?;
    if f.serving {
        return None;
    }
    Some(leader_url(&view, info, f.leader))
}

/// Every member this node knows, itself first.
pub fn nodes(info: &ClusterInfo) -> Vec<NodeRow> {
    let view = info.view();
    let leader = view.failover.as_ref().and_then(|f| f.leader);
    let mut rows = Vec::with_capacity(view.members.len() + 1);
    rows.push(self_row(&view, info));
    for m in &view.members {
        let lag = view.lag.get(&m.id).map_or_else(Lag::default, |l| Lag {
            versions: l.versions,
            millis: l.millis,
        });
        rows.push(NodeRow {
            id: shown_id(&view, info, m.id),
            numeric_id: m.id.to_string(),
            name: m.meta.name.clone(),
            region: m.meta.region.clone(),
            zone: m.meta.zone.clone(),
            advertise_url: m.meta.advertise_url.clone(),
            sync_addr: m.meta.sync_addr.to_string(),
            state: liveness(m.liveness),
            incarnation: m.incarnation.0,
            last_heartbeat_ms_ago: m
                .last_heartbeat
                .map(|at| view.at.since(at).as_millis() as u64),
            is_leader: leader == Some(m.id),
            is_self: false,
            sync_lag: lag,
        });
    }
    rows
}

fn self_row(view: &ClusterView, info: &ClusterInfo) -> NodeRow {
    NodeRow {
        id: shown(view, info, view.node_id),
        numeric_id: numeric(view.node_id),
        name: view.node_name.clone(),
        region: info.region.clone(),
        zone: info.zone.clone(),
        advertise_url: info.advertise_url.clone(),
        sync_addr: info.sync_addr.clone(),
        state: match view.status {
            LocalStatus::Active => "alive",
            other => local_status(other),
        },
        incarnation: view.incarnation.0,
        last_heartbeat_ms_ago: Some(0),
        is_leader: view.node_id.is_some()
            && view.failover.as_ref().and_then(|f| f.leader) == view.node_id,
        is_self: true,
        sync_lag: Lag::default(),
    }
}

/// The cluster's Prometheus series, appended to `/metrics`.
pub fn write_metrics(info: &ClusterInfo, out: &mut Exposition) {
    let view = info.view();
    out.family(
        "aurora_cluster_members",
        "Members this node knows (itself included), by state.",
        Kind::Gauge,
    );
    let mut counts = [0usize; 4];
    for m in &view.members {
        counts[m.liveness as usize] += 1;
    }
    counts[0] += usize::from(view.status == LocalStatus::Active);
    for (i, state) in ["alive", "suspect", "dead", "left"].iter().enumerate() {
        out.sample(&[("state", state)], counts[i]);
    }
    // Leadership as this node sees it: what the alerts on "no leader" and "lease
    // lost" read (deploy/prometheus/aurora-alerts.yaml).
    if let Some(f) = view.failover.as_ref() {
        out.single(
            "aurora_cluster_leader_known",
            "1 while this node knows a lease holder (0 during an election or without a majority).",
            Kind::Gauge,
            u64::from(f.leader.is_some()),
        );
        out.single(
            "aurora_cluster_is_leader",
            "1 while this node holds the failover lease.",
            Kind::Gauge,
            u64::from(f.this_node_holds_lease),
        );
        out.single(
            "aurora_cluster_epoch",
            "Fencing epoch of the current leadership as this node knows it; only grows.",
            Kind::Gauge,
            f.epoch.0,
        );
        out.single(
            "aurora_cluster_can_fail_over",
            "1 when losing the leader now would still leave a majority of voters to elect another.",
            Kind::Gauge,
            u64::from(f.can_fail_over),
        );
        out.single(
            "aurora_cluster_voters",
            "Members on the voter roster this node follows.",
            Kind::Gauge,
            f.voters.len(),
        );
    }
    out.single(
        "aurora_cluster_seeds_unresolved",
        "Seed names that did not resolve yet; retried with backoff while the node runs.",
        Kind::Gauge,
        view.seeds_unresolved,
    );
    let m = &view.metrics;
    let t = &m.transport;
    for (name, help, value) in [
        (
            "aurora_cluster_seed_resolve_failures_total",
            "Failed seed name resolutions since start.",
            view.seed_resolve_failures,
        ),
        (
            "aurora_gossip_messages_sent_total",
            "Cluster messages sent (gossip datagrams and sync streams).",
            m.packets_out,
        ),
        (
            "aurora_gossip_messages_received_total",
            "Cluster messages received.",
            m.packets_in,
        ),
        (
            "aurora_gossip_bytes_sent_total",
            "Cluster message bytes sent (before QUIC framing).",
            m.bytes_out,
        ),
        (
            "aurora_gossip_bytes_received_total",
            "Cluster message bytes received.",
            m.bytes_in,
        ),
        (
            "aurora_cluster_tls_rejected_total",
            "QUIC handshakes refused: the peer does not hold the cluster secret.",
            t.tls_rejected,
        ),
        (
            "aurora_cluster_connect_failures_total",
            "Outgoing QUIC connections that failed.",
            t.connect_failures,
        ),
        (
            "aurora_cluster_identity_mismatch_total",
            "Cluster messages dropped: their sender id is not the node id of the connection's certificate.",
            t.identity_mismatch,
        ),
        (
            "aurora_cluster_identity_refused_total",
            "QUIC connections closed: the peer's certificate names no node id.",
            t.identity_refused,
        ),
    ] {
        out.single(name, help, Kind::Counter, value);
    }
    out.family(
        "aurora_cluster_handshakes_total",
        "Inbound QUIC handshakes held back by the handshake policy, by outcome (retry: a Retry was sent to validate the address).",
        Kind::Counter,
    );
    for (outcome, n) in [
        ("not_allowed", t.peer_not_allowed),
        ("retry", t.retries_sent),
        ("refused_busy", t.handshakes_refused),
        ("timed_out", t.handshake_timeouts),
    ] {
        out.sample(&[("outcome", &outcome)], n);
    }
    out.single(
        "aurora_cluster_handshakes_in_progress",
        "Inbound QUIC handshakes in progress (at most cluster.max_handshakes).",
        Kind::Gauge,
        t.handshakes_in_progress,
    );
    for (name, help, value) in [
        (
            "aurora_cluster_calls_sent_total",
            "Calls this node made to peers (request/reply on a QUIC stream), answered or not.",
            t.calls_sent,
        ),
        (
            "aurora_cluster_calls_failed_total",
            "Calls this node made that got no reply (unreachable, timed out, refused, wrong peer, reply too large).",
            t.calls_failed,
        ),
        (
            "aurora_cluster_calls_received_total",
            "Peers' calls that reached this node.",
            t.calls_received,
        ),
    ] {
        out.single(name, help, Kind::Counter, value);
    }
    out.family(
        "aurora_cluster_calls_unanswered_total",
        "Peers' calls this node did not answer, by reason (refused: no handler or too many in flight; too_large: request over the limit; handler_failed: panicked or past the deadline; abandoned: the caller went away first).",
        Kind::Counter,
    );
    for (reason, n) in [
        ("refused", t.calls_refused),
        ("too_large", t.call_too_large),
        ("handler_failed", t.calls_handler_failed),
        ("abandoned", t.calls_abandoned),
    ] {
        out.sample(&[("reason", &reason)], n);
    }
    out.single(
        "aurora_cluster_calls_in_flight",
        "Peers' calls this node is handling now.",
        Kind::Gauge,
        t.calls_in_flight,
    );
    out.single(
        "aurora_cluster_lease_undeliverable_total",
        "Lease messages not sent: addressed to a voter this node has no address for.",
        Kind::Counter,
        m.lease_undeliverable,
    );
    out.single(
        "aurora_cluster_quota_undeliverable_total",
        "Quota messages (asks, grants, records) not sent: addressed to a node this node has no address for.",
        Kind::Counter,
        m.quota_undeliverable,
    );
    out.family(
        "aurora_cluster_dropped_total",
        "Inbound cluster messages dropped, by reason.",
        Kind::Counter,
    );
    for (reason, n) in &m.decode_dropped {
        out.sample(&[("reason", reason)], n);
    }
    out.family(
        "aurora_sync_lag_versions",
        "Writes a peer had that this node lacked at the last sync with it.",
        Kind::Gauge,
    );
    let peers: Vec<(String, _)> = view
        .lag
        .iter()
        .map(|(&id, lag)| (shown_id(&view, info, id), lag))
        .collect();
    for (peer, lag) in &peers {
        out.sample(&[("peer", peer)], lag.versions);
    }
    out.family(
        "aurora_sync_lag_milliseconds",
        "How much newer a peer's newest write was than this node's at the last sync.",
        Kind::Gauge,
    );
    for (peer, lag) in &peers {
        out.sample(&[("peer", peer)], lag.millis);
    }
    let r = &view.replica;
    out.family(
        "aurora_sqlite_commit_seconds",
        "Latency of the node's SQLite commits (one per driver round that persisted something).",
        Kind::Histogram,
    )
    .histogram(
        &[],
        COMMIT_BUCKETS_US.iter().map(|&us| us as f64 / 1e6),
        &r.commit_buckets,
        r.commit_micros_total as f64 / 1e6,
    );
    out.single(
        "aurora_state_records",
        "Live replicated records on this node.",
        Kind::Gauge,
        r.live_records,
    );
    for (name, help, value) in [
        (
            "aurora_state_writes_local_total",
            "Replicated writes made on this node.",
            r.local_writes,
        ),
        (
            "aurora_state_applied_gossip_total",
            "Replicated writes applied from gossip.",
            r.applied_from_gossip,
        ),
        (
            "aurora_state_applied_sync_total",
            "Replicated writes applied from anti-entropy.",
            r.applied_from_sync,
        ),
        (
            "aurora_state_snapshot_publish_micros_total",
            "Time spent updating the published state snapshot, microseconds.",
            r.publish_micros_total,
        ),
    ] {
        out.single(name, help, Kind::Counter, value);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aurora_core::{Incarnation, MemberMeta, Role};
    use aurora_io::MemberView;

    /// An alive member with id `node_id` announcing `name` (also for other modules' tests).
    pub(crate) fn member(node_id: &str, name: &str) -> MemberView {
        let addr: std::net::SocketAddr = "127.0.0.2:7946".parse().expect("addr");
        MemberView {
            id: NodeId::from_name(node_id),
            addr,
            meta: MemberMeta {
                name: name.into(),
                region: String::new(),
                zone: String::new(),
                advertise_url: String::new(),
                sync_addr: addr,
                promotion_tier: 0,
                capacity: 1,
                role: Role::Serving,
                version: String::new(),
                config_fingerprint: 0,
                bootstrap_expect: 0,
            },
            liveness: Liveness::Alive,
            incarnation: Incarnation(0),
            heartbeat: 0,
            last_heartbeat: None,
        }
    }

    /// A standby's failover status in active_passive at epoch 3 (also for other
    /// modules' tests).
    pub(crate) fn standby(leader: NodeId, voters: &[NodeId]) -> aurora_core::FailoverStatus {
        aurora_core::FailoverStatus {
            mode: aurora_core::FailoverMode::ActivePassive,
            leader: Some(leader),
            epoch: aurora_core::Epoch(3),
            this_node_holds_lease: false,
            lease_until: None,
            serving: false,
            can_fail_over: true,
            reason: None,
            drift: Vec::new(),
            voters: voters.to_vec(),
        }
    }

    /// A node `enterprise-node-1` that knows `node-2` (node_name left at its node id)
    /// and `node-3` (node_name "Node Three", so its node id never reached us).
    fn info() -> ClusterInfo {
        let me = NodeId::from_name("enterprise-node-1");
        let two = NodeId::from_name("node-2");
        let three = NodeId::from_name("node-3");
        let view = ClusterView {
            node_id: Some(me),
            node_name: "Enterprise One".into(),
            status: LocalStatus::Active,
            members: vec![member("node-2", "node-2"), member("node-3", "Node Three")],
            lag: [(two, Default::default()), (three, Default::default())]
                .into_iter()
                .collect(),
            failover: Some(standby(two, &[me, two, three])),
            ..ClusterView::default()
        };
        let (_tx, view) = tokio::sync::watch::channel(std::sync::Arc::new(view));
        ClusterInfo {
            enabled: true,
            node_id: "enterprise-node-1".into(),
            view,
            ..ClusterInfo::detached()
        }
    }

    #[test]
    fn nodes_are_shown_by_their_configured_node_id_where_it_is_known() {
        let info = info();
        let numeric = |name: &str| NodeId::from_name(name).to_string();
        let doc = document(&info);
        let details = doc.status.details.as_ref().expect("details");
        assert_eq!(details.this_node.id, "enterprise-node-1");
        assert_eq!(details.this_node.numeric_id, numeric("enterprise-node-1"));
        assert_eq!(details.this_node.name, "Enterprise One");
        assert_eq!(details.leader.as_deref(), Some("node-2"));
        let voters: Vec<(&str, &str)> = doc
            .voters
            .iter()
            .flatten()
            .map(|v| (v.id.as_str(), v.numeric_id.as_str()))
            .collect();
        let three = numeric("node-3");
        assert_eq!(
            voters,
            [
                ("enterprise-node-1", numeric("enterprise-node-1").as_str()),
                ("node-2", numeric("node-2").as_str()),
                // Its announced name is not its node id: shown by the numeric form.
                (three.as_str(), three.as_str()),
            ]
        );
        let rows: Vec<String> = nodes(&info).into_iter().map(|r| r.id).collect();
        assert_eq!(rows, ["enterprise-node-1", "node-2", three.as_str()]);

        let mut out = Exposition::new();
        write_metrics(&info, &mut out);
        let text = out.into_string();
        assert!(
            text.contains("aurora_sync_lag_versions{peer=\"node-2\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "aurora_sync_lag_milliseconds{{peer=\"{three}\"}} 0"
            )),
            "{text}"
        );
    }

    #[test]
    fn settings_name_this_node_as_configured() {
        let info = ClusterInfo {
            region: "eu-west".into(),
            zone: "eu-west-1a".into(),
            advertise_url: "http://10.0.0.1:8080".into(),
            sync_addr: "10.0.0.1:7947".into(),
            mode: "active_passive",
            heartbeat_interval_ms: 2_500,
            ..info()
        };
        let s = settings(&info);
        assert!(s.enabled);
        assert_eq!(s.node_id, "enterprise-node-1");
        assert_eq!(
            s.numeric_id,
            NodeId::from_name("enterprise-node-1").to_string()
        );
        assert_eq!(s.node_name, "Enterprise One");
        assert_eq!(
            (s.region.as_str(), s.zone.as_str(), s.sync_addr.as_str()),
            ("eu-west", "eu-west-1a", "10.0.0.1:7947")
        );
        assert_eq!(s.advertise_url, "http://10.0.0.1:8080");
        assert_eq!(
            (s.failover_mode, s.heartbeat_interval_ms),
            ("active_passive", 2_500)
        );
        let detached = settings(&ClusterInfo::detached());
        assert!(!detached.enabled);
        assert_eq!(
            (detached.failover_mode, detached.heartbeat_interval_ms),
            ("single_node", 1_000)
        );
    }

    #[test]
    fn peer_call_counters_are_exported() {
        let transport = aurora_io::transport::TransportStats {
            calls_sent: 7,
            calls_failed: 2,
            calls_received: 5,
            calls_refused: 1,
            call_too_large: 3,
            calls_handler_failed: 4,
            calls_abandoned: 6,
            calls_in_flight: 8,
            ..Default::default()
        };
        let view = ClusterView {
            metrics: aurora_io::view::ViewMetrics {
                transport,
                ..Default::default()
            },
            ..ClusterView::default()
        };
        let (_tx, view) = tokio::sync::watch::channel(std::sync::Arc::new(view));
        let info = ClusterInfo {
            view,
            ..ClusterInfo::detached()
        };
        let mut out = Exposition::new();
        write_metrics(&info, &mut out);
        let text = out.into_string();
        for line in [
            "aurora_cluster_calls_sent_total 7",
            "aurora_cluster_calls_failed_total 2",
            "aurora_cluster_calls_received_total 5",
            "aurora_cluster_calls_unanswered_total{reason=\"refused\"} 1",
            "aurora_cluster_calls_unanswered_total{reason=\"too_large\"} 3",
            "aurora_cluster_calls_unanswered_total{reason=\"handler_failed\"} 4",
            "aurora_cluster_calls_unanswered_total{reason=\"abandoned\"} 6",
            "aurora_cluster_calls_in_flight 8",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(ClusterInfo::detached().peer_calls().is_none());
    }

    #[test]
    fn a_name_that_does_not_hash_to_the_id_is_never_shown_as_it() {
        let info = ClusterInfo {
            // A configured id that is not this node's (a detached or test info).
            node_id: "someone-else".into(),
            ..info()
        };
        let view = info.view();
        let me = view.node_id.expect("id");
        assert_eq!(shown_id(&view, &info, me), me.to_string());
        let stranger = NodeId(7);
        assert_eq!(shown_id(&view, &info, stranger), "n7");
    }
}
