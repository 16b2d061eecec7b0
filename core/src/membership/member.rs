//! What a node knows about one other member.

use crate::config::MemberMeta;
use crate::id::{Addr, Incarnation, NodeId};
use crate::time::Millis;
use crate::wire::{Liveness, MemberRecord};

/// One member as seen from this node.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Its node id.
    pub id: NodeId,
    /// Its gossip address, as last announced.
    pub addr: Addr,
    /// What it announced at its current incarnation.
    pub meta: MemberMeta,
    /// The highest incarnation known of it; only grows.
    pub incarnation: Incarnation,
    /// Alive, suspect, dead or left, at that incarnation.
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

    /// Moves the member to `incarnation`, the one place the rules do so.
    pub(crate) fn advance(&mut self, incarnation: Incarnation) {
        // Holds because every rule drops a claim below the known incarnation as
        // stale before it gets here: what is known of a member never goes back.
        debug_assert!(
            incarnation >= self.incarnation,
            "{} would go back from incarnation {} to {incarnation}",
            self.id,
            self.incarnation
        );
        self.incarnation = incarnation;
    }

    /// The row a push-pull carries for it.
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
    /// Missed a probe; failed unless it refutes in time.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::tests::{addr, id, meta};

    /// What is known of a member never goes back: a rule that tried would trip
    /// the assertion in `advance` (debug builds; the simulator runs them).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "would go back from incarnation #3 to #2")]
    fn moving_a_member_back_trips_the_assertion() {
        let mut m = Member {
            id: id(2),
            addr: addr(2),
            meta: meta(2),
            incarnation: Incarnation(3),
            liveness: Liveness::Alive,
            since: Millis(0),
            heartbeat: 0,
            last_heartbeat: None,
        };
        m.advance(Incarnation(3));
        m.advance(Incarnation(2));
    }
}
