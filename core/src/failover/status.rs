//! What failover reports: events for the driver's logs and checkers, and a status
//! for /health/ready, the dashboard and the admin API.

use serde::{Deserialize, Serialize};

use crate::id::NodeId;
use crate::time::Millis;

use super::config::FailoverMode;
use super::message::Epoch;

/// Something the driver should log, count, or check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailoverEvent {
    /// The leader this node knows of changed (`None`: it knows of none right now).
    LeaderChanged {
        leader: Option<NodeId>,
        epoch: Epoch,
    },
    /// This node now holds the lease for `epoch`.
    BecameLeader { epoch: Epoch },
    /// This node no longer holds the lease.
    SteppedDown { reason: String },
    /// A live member's config fingerprint differs from this node's: it takes no
    /// part in leader choice until the configs agree.
    ConfigDrift { node: NodeId },
}

/// Where this node stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverStatus {
    pub mode: FailoverMode,
    /// The lease holder as this node knows it (itself in `single_node`).
    pub leader: Option<NodeId>,
    /// The highest epoch of a leadership this node knows of; it never goes down.
    pub epoch: Epoch,
    pub this_node_holds_lease: bool,
    /// When this node's lease ends, on its own clock.
    pub lease_until: Option<Millis>,
    /// Whether this node should take traffic: `active_passive`, only the lease
    /// holder; `active_active` and `single_node`, every serving (non-witness) node.
    pub serving: bool,
    /// Whether losing the leader now would leave enough voters to elect another.
    pub can_fail_over: bool,
    /// Why not, when `can_fail_over` is false.
    pub reason: Option<String>,
    /// Live members whose config fingerprint differs from this node's.
    pub drift: Vec<NodeId>,
    /// The voter roster this node follows (empty before it has one; in
    /// `single_node`, always empty).
    pub voters: Vec<NodeId>,
}

/// A switchover the node refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchoverError {
    #[error("single_node mode has no leader to hand over")]
    SingleNode,
    #[error("this node does not hold the lease")]
    NotLeader,
    #[error("{0} already leads")]
    AlreadyLeader(NodeId),
    #[error("{0} is not a live voting member that may lead (unknown, witness, or config drift)")]
    NotEligible(NodeId),
}
