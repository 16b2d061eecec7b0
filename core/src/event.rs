//! Events the core reports to its driver (and, through it, to logs, metrics and the
//! simulator's checkers).

use crate::id::{Addr, Life, NodeId};
use crate::membership::{LocalChange, MemberChange};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node's view of `node` changed.
    Member { node: NodeId, change: MemberChange },
    /// Something happened to this node itself.
    Local(LocalChange),
    /// Leadership changed, this node became or stopped being leader, or a member's
    /// settings disagree with ours.
    Failover(crate::failover::FailoverEvent),
    /// An application broadcast arrived (each is delivered once per node).
    Broadcast {
        origin: NodeId,
        seq: u64,
        payload: Vec<u8>,
    },
    /// A message claimed `node`, which is bound to another life: "node X presented
    /// an unknown key". Reported once per presented life; every such message is
    /// dropped and counted (`identity_mismatch`).
    IdentityMismatch {
        node: NodeId,
        presented: Life,
        bound: Life,
        from: Addr,
    },
    /// The failover machine addressed a lease message to `to`, which this node's
    /// membership has no address for, so it was not sent (counted in
    /// `NodeMetrics::failover_undeliverable`). Reported once until a message to
    /// `to` gets through again.
    FailoverUndeliverable { to: NodeId },
    /// An unknown `node` in `life` asked to take part and waits for an operator
    /// (`cluster.admission: manual`). Reported once per (id, life).
    AdmissionPending {
        node: NodeId,
        life: Life,
        from: Addr,
    },
}
