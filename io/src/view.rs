//! A read-only snapshot of the cluster for the rest of the process.
//!
//! Why a snapshot behind a `watch` channel: the gateway's health, metrics and dashboard
//! handlers must never wait on the driver (which may be inside an fsync), and the driver
//! must never wait on them. The driver builds an immutable [`ClusterView`] after a batch
//! of work and swaps it in; readers clone an `Arc` and read at leisure.

use std::net::SocketAddr;

use aurora_core::{Incarnation, Liveness, MemberMeta, Millis, NodeId};

use crate::transport::TransportStats;

/// Where this node is in its own lifecycle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalStatus {
    /// Started, no seed has answered yet.
    #[default]
    Joining,
    Active,
    /// Left gracefully; the driver is stopping or stopped.
    Left,
}

/// One other member as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub id: NodeId,
    /// Gossip address.
    pub addr: SocketAddr,
    pub meta: MemberMeta,
    pub liveness: Liveness,
    pub incarnation: Incarnation,
    pub heartbeat: u64,
    /// When its heartbeat last went up, on this node's clock.
    pub last_heartbeat: Option<Millis>,
}

/// Counters worth showing on /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewMetrics {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Packets the core dropped, by [`aurora_core::DecodeError::label`].
    pub decode_dropped: Vec<(&'static str, u64)>,
    pub transport: TransportStats,
    /// SQLite transactions committed, and the persist batches they carried.
    pub commits: u64,
    pub persisted_batches: u64,
}

/// The whole snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub node_id: Option<NodeId>,
    pub node_name: String,
    pub addr: Option<SocketAddr>,
    pub incarnation: Incarnation,
    pub status: LocalStatus,
    /// Every other member known, alive or not, ordered by id.
    pub members: Vec<MemberView>,
    pub metrics: ViewMetrics,
    /// The driver's clock when this view was taken.
    pub at: Millis,
}

impl ClusterView {
    /// Members currently alive (not suspect, dead or departed).
    pub fn alive(&self) -> impl Iterator<Item = &MemberView> {
        self.members
            .iter()
            .filter(|m| m.liveness == Liveness::Alive)
    }

    pub fn member(&self, id: NodeId) -> Option<&MemberView> {
        self.members.iter().find(|m| m.id == id)
    }
}
