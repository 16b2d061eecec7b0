//! What a node knows about one other member.

use crate::config::MemberMeta;
use crate::id::{Addr, Incarnation, NodeId};
use crate::time::Millis;
use crate::wire::{Liveness, MemberRecord};

/// One member as seen from this node.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub id: NodeId,
    pub addr: Addr,
    pub meta: MemberMeta,
    pub incarnation: Incarnation,
    pub liveness: Liveness,
    /// When `liveness` last changed, on this node's clock.
    pub since: Millis,
    /// The highest heartbeat counter heard from or about the member.
    pub heartbeat: u64,
    /// When that counter last went up, on this node's clock.
    pub last_heartbeat: Option<Millis>,
}

impl Member {
    /// Alive or suspect: still taking part, still probed.
    pub fn is_active(&self) -> bool {
        matches!(self.liveness, Liveness::Alive | Liveness::Suspect)
    }

    pub fn record(&self) -> MemberRecord {
        MemberRecord {
            node: self.id,
            incarnation: self.incarnation,
            liveness: self.liveness,
            addr: self.addr,
            heartbeat: self.heartbeat,
            meta: self.meta.clone(),
        }
    }
}

/// A change in this node's view of a member, reported as an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberChange {
    /// First seen, or back after being dead or gone.
    Joined,
    Suspected,
    /// A suspicion was refuted.
    AliveAgain,
    /// Declared dead after its suspicion timed out.
    Failed,
    /// Left on purpose.
    Left,
    /// New metadata or address.
    Updated,
    /// Removed from the member list some time after it died or left.
    Reaped,
}

/// This node's own lifecycle.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalChange {
    /// A seed answered: this node is part of the cluster.
    Joined,
    /// Someone suspected or declared this node dead; it announced a new incarnation.
    Refuted(Incarnation),
    /// The graceful leave has been gossiped; the driver may stop the node.
    Left,
}
