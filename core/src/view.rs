//! [`NodeView`]: what a driver, the simulator or a fuzzer may read of a [`Node`].
//!
//! Why a view and not the sub-machines: handing out `&Membership`, `&Replica` or
//! `&Failover` made every public method of each one part of the node's contract,
//! and a reader could not tell which of them a driver is meant to use. The view
//! offers exactly what the callers read (the io driver's `ClusterView` and state
//! snapshot, the gateway's cluster status, the simulator's checks, the fuzzer's
//! oracles), and nothing that changes the node: every method takes `&self` of a
//! borrowed node, so reading never moves a timer, a random stream or an output.
//!
//! [`Node`]: crate::Node

use std::collections::BTreeMap;

use crate::config::MemberMeta;
use crate::failover::{Epoch, Failover, FailoverStatus, Roster};
use crate::id::{Incarnation, NodeId, Origin};
use crate::membership::{Member, Membership};
use crate::quota::{Grantor, Keeper};
use crate::state::replica::{Replica, ReplicaStats, SyncLag};
use crate::state::store::Store;
use crate::time::Millis;

/// A read-only look at one node's membership, replicated state and leadership,
/// taken with [`Node::view`](crate::Node::view). Cheap (three references); take a
/// new one after each `handle_*` call rather than keeping one.
#[derive(Copy, Clone, Debug)]
pub struct NodeView<'a> {
    membership: &'a Membership,
    replica: &'a Replica,
    failover: &'a Failover,
    keeper: &'a Keeper,
    grantor: Option<&'a Grantor>,
}

impl<'a> NodeView<'a> {
    pub(crate) fn new(
        membership: &'a Membership,
        replica: &'a Replica,
        failover: &'a Failover,
        (keeper, grantor): (&'a Keeper, Option<&'a Grantor>),
    ) -> NodeView<'a> {
        NodeView {
            keeper,
            grantor,
            membership,
            replica,
            failover,
        }
    }

    // ---- membership ------------------------------------------------------------

    /// The incarnation this node announces (above any it announced before a restart).
    pub fn incarnation(&self) -> Incarnation {
        self.membership.incarnation()
    }

    /// The metadata this node announces (name, role, tier, `bootstrap_expect`, …).
    pub fn meta(&self) -> &'a MemberMeta {
        self.membership.meta()
    }

    /// What this node knows of member `id` (any liveness), `None` if it knows none.
    pub fn member(&self, id: NodeId) -> Option<&'a Member> {
        self.membership.member(id)
    }

    /// How many members this node counts as active, itself included.
    pub fn active_count(&self) -> usize {
        self.membership.active_count()
    }

    /// Whether the node still looks for a cluster to join.
    pub fn is_joining(&self) -> bool {
        self.membership.is_joining()
    }

    /// Whether the node has left: it then refuses commands and ignores state and
    /// lease traffic.
    pub fn has_left(&self) -> bool {
        self.membership.has_left()
    }

    // ---- replicated state ------------------------------------------------------

    /// The replicated store: records, usage, tombstones, its digest and version
    /// vector. Read-only here; only the node writes to it.
    pub fn store(&self) -> &'a Store {
        self.replica.store()
    }

    /// The origin (id, storage life) stamped on this node's writes.
    pub fn origin(&self) -> Origin {
        self.replica.origin()
    }

    /// The highest sequence number used for this origin's writes.
    pub fn own_seq(&self) -> u64 {
        self.replica.own_seq()
    }

    /// The wall clock (ms since the Unix epoch) the node uses for timestamps at
    /// monotonic time `now`.
    pub fn wall(&self, now: Millis) -> u64 {
        self.replica.wall(now)
    }

    /// When this node first completed an anti-entropy exchange with a peer (see
    /// the replica's rule: it then holds at least what that peer had); `None` until.
    pub fn first_sync(&self) -> Option<Millis> {
        self.replica.first_sync()
    }

    /// How far behind each peer this node believed itself at its last sync with it.
    pub fn lag(&self) -> &'a BTreeMap<NodeId, SyncLag> {
        self.replica.lag()
    }

    /// Replication counters (local writes, applied from gossip and sync, resets, …).
    pub fn replica_stats(&self) -> &'a ReplicaStats {
        self.replica.stats()
    }

    // ---- leadership ------------------------------------------------------------

    /// Who leads, with which epoch, whether this node serves, and why.
    pub fn failover_status(&self) -> FailoverStatus {
        self.failover.status()
    }

    /// This node's quota keeper: its fence and its copy of the ledger.
    pub fn quota_keeper(&self) -> &'a Keeper {
        self.keeper
    }

    /// This node's quota grantor, while it holds the lease.
    pub fn quota_grantor(&self) -> Option<&'a Grantor> {
        self.grantor
    }

    /// Whether this node holds the lease at monotonic time `now` (the fencing
    /// question the simulator's leader-safety check asks of every node).
    pub fn holds_lease_at(&self, now: Millis) -> bool {
        self.failover.holds_lease_at(now)
    }

    /// The voter roster this node follows, once there is one.
    pub fn roster(&self) -> Option<&'a Roster> {
        self.failover.roster()
    }

    /// The highest epoch this node has handed to the driver to persist (epochs
    /// only grow; the simulator checks that across restarts).
    pub fn durable_epoch(&self) -> Epoch {
        self.failover.durable_epoch()
    }
}
