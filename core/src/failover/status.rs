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
        /// The leader, or `None` while this node knows of none.
        leader: Option<NodeId>,
        /// The highest epoch of a leadership this node knows of.
        epoch: Epoch,
    },
    /// This node now holds the lease for `epoch`.
    BecameLeader {
        /// The epoch of this leadership (above every earlier one).
        epoch: Epoch,
    },
    /// This node no longer holds the lease.
    SteppedDown {
        /// Why, for people: the lease ran out, handed over, resigned, off the roster.
        reason: String,
    },
    /// A live member's config fingerprint differs from this node's: it takes no
    /// part in leader choice until the configs agree.
    ConfigDrift {
        /// The member whose settings differ.
        node: NodeId,
    },
}

/// Where this node stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverStatus {
    /// The configured mode.
    pub mode: FailoverMode,
    /// The lease holder as this node knows it (itself in `single_node`).
    pub leader: Option<NodeId>,
    /// The highest epoch of a leadership this node knows of; it never goes down.
    pub epoch: Epoch,
    /// Whether this node holds the lease now, on its own clock (always in `single_node`).
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
    /// There is no lease in `single_node` mode.
    SingleNode,
    #[error("this node does not hold the lease")]
    /// Only the lease holder can hand it over.
    NotLeader,
    #[error("{0} already leads")]
    /// The target is the leader already (this node).
    AlreadyLeader(NodeId),
    #[error("{0} is not a live voting member that may lead (unknown, witness, or config drift)")]
    /// The target is unknown, a witness, not live, or has another config fingerprint.
    NotEligible(NodeId),
}
