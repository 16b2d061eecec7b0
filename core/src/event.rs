//! Events the core reports to its driver (and, through it, to logs, metrics and the
//! simulator's checkers).

use crate::id::NodeId;
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
}
