//! Events the core reports to its driver (and, through it, to logs, metrics and the
//! simulator's checkers).

use crate::id::{Addr, Life, NodeId};
use crate::membership::{LocalChange, MemberChange};

/// Something the driver should know of, in the order it happened (an
/// [`Output::Event`](crate::Output::Event)). The node's own state never depends on
/// how the driver handles one; a driver's may (io takes its joined and left status
/// from `Local`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node's view of `node` changed.
    Member {
        /// The member.
        node: NodeId,
        /// What changed (joined, suspected, failed, …).
        change: MemberChange,
    },
    /// Something happened to this node itself.
    Local(LocalChange),
    /// Leadership changed, this node became or stopped being leader, or a member's
    /// settings disagree with ours.
    Failover(crate::failover::FailoverEvent),
    /// An application broadcast arrived (each is delivered once per node).
    Broadcast {
        /// The member that broadcast it.
        origin: NodeId,
        /// Its number among that member's broadcasts.
        seq: u64,
        /// The application's bytes.
        payload: Vec<u8>,
    },
    /// A message claimed `node`, which is bound to another life: "node X presented
    /// an unknown key". Reported once per presented life; every such message is
    /// dropped and counted (`identity_mismatch`).
    IdentityMismatch {
        /// The id the message claimed.
        node: NodeId,
        /// The life it presented.
        presented: Life,
        /// The life that id is bound to.
        bound: Life,
        /// Where it came from.
        from: Addr,
    },
    /// A quota message for this node's holder (a grant, an exhaustion or a recall,
    /// see [`crate::quota::Holder::handle`]), from the grantor `from`.
    Quota {
        /// The grantor that sent it (this node's own id when it is the grantor).
        from: NodeId,
        /// The message.
        message: crate::quota::QuotaMessage,
    },
    /// The failover machine addressed a lease message to `to`, which this node's
    /// membership has no address for, so it was not sent (counted in
    /// `NodeMetrics::failover_undeliverable`). Reported once until a message to
    /// `to` gets through again.
    FailoverUndeliverable {
        /// The voter the message was for.
        to: NodeId,
    },
    /// An unknown `node` in `life` asked to take part and waits for an operator
    /// (`cluster.admission: manual`). Reported once per (id, life).
    AdmissionPending {
        /// The id it presented.
        node: NodeId,
        /// The life it presented.
        life: Life,
        /// Where it came from.
        from: Addr,
    },
}
