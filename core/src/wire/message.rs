//! The messages nodes exchange, as postcard-encoded enums.
//!
//! Variants are only ever appended: postcard encodes the variant index, so reordering
//! them would silently change the meaning of bytes already on the wire.

use serde::{Deserialize, Serialize};

use crate::config::MemberMeta;
use crate::id::{Addr, Incarnation, NodeId};
use crate::state::hlc::Hlc;
use crate::state::store::{Delta, Entry, VersionVector};

/// Correlates a probe with its ack or nack.
pub type Seq = u32;

/// One protocol message. Probes and gossip ride on datagrams; `PushPull` rides on a
/// stream because a full member list can exceed one packet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A direct probe. `heartbeat` is the sender's own heartbeat counter.
    Ping {
        seq: Seq,
        target: NodeId,
        heartbeat: u64,
        rumors: Vec<Rumor>,
    },
    /// The answer to a `Ping` (also relayed back for an indirect probe).
    Ack {
        seq: Seq,
        heartbeat: u64,
        rumors: Vec<Rumor>,
    },
    /// Asks the receiver to probe `target` on the sender's behalf.
    PingReq {
        seq: Seq,
        target: NodeId,
        target_addr: Addr,
        rumors: Vec<Rumor>,
    },
    /// Lifeguard: the relay of a `PingReq` did not hear from the target in time. A
    /// requester that gets no nack either learns its own links are the problem.
    Nack { seq: Seq },
    /// A gossip round: rumours only.
    Gossip { rumors: Vec<Rumor> },
    /// A full membership exchange.
    PushPull {
        kind: PushPullKind,
        heartbeat: u64,
        members: Vec<MemberRecord>,
    },
    /// Anti-entropy, step 1: what I have seen.
    SyncRequest {
        newest: Hlc,
        digest: u64,
        vv: VersionVector,
    },
    /// Step 2: what you lack (a chunk of it if `more`), and what I have seen.
    SyncResponse {
        newest: Hlc,
        digest: u64,
        vv: VersionVector,
        delta: Delta,
        more: bool,
    },
    /// Step 3: what you lack, from the requester.
    SyncPush { delta: Delta },
    /// The failover lease protocol (every message carries the sender's epoch).
    Lease(crate::failover::LeaseMessage),
}

impl Message {
    /// The rumours piggybacked on this message, if it carries any.
    pub fn rumors(&self) -> &[Rumor] {
        match self {
            Message::Ping { rumors, .. }
            | Message::Ack { rumors, .. }
            | Message::PingReq { rumors, .. }
            | Message::Gossip { rumors } => rumors,
            Message::Nack { .. }
            | Message::PushPull { .. }
            | Message::SyncRequest { .. }
            | Message::SyncResponse { .. }
            | Message::SyncPush { .. }
            | Message::Lease(_) => &[],
        }
    }

    /// A short name for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Ping { .. } => "ping",
            Message::Ack { .. } => "ack",
            Message::PingReq { .. } => "ping-req",
            Message::Nack { .. } => "nack",
            Message::Gossip { .. } => "gossip",
            Message::PushPull { .. } => "push-pull",
            Message::SyncRequest { .. } => "sync-request",
            Message::SyncResponse { .. } => "sync-response",
            Message::SyncPush { .. } => "sync-push",
            Message::Lease(_) => "lease",
        }
    }
}

/// Why a full membership exchange was sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushPullKind {
    /// A new node asking a seed for the member list.
    Join,
    /// The periodic anti-entropy exchange.
    Periodic,
    /// The answer to either; never answered itself.
    Reply,
}

/// A piece of news that is spread epidemically by piggybacking on other messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rumor {
    Member(MemberUpdate),
    /// An opaque application broadcast, spread with the same retransmit budget
    /// as membership news but from its own queue, so one never starves the other.
    App(AppRumor),
    /// A replicated write (small ones only; large ones go by anti-entropy).
    State(Entry),
}

/// An application broadcast. `(origin, seq)` identifies it for de-duplication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRumor {
    pub origin: NodeId,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A claim about one member's liveness, ordered by incarnation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MemberUpdate {
    Alive {
        node: NodeId,
        incarnation: Incarnation,
        addr: Addr,
        meta: MemberMeta,
    },
    Suspect {
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
    },
    Dead {
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
    },
    /// The node left on purpose.
    Left {
        node: NodeId,
        incarnation: Incarnation,
    },
}

impl MemberUpdate {
    /// The member this update is about.
    pub fn node(&self) -> NodeId {
        match self {
            MemberUpdate::Alive { node, .. }
            | MemberUpdate::Suspect { node, .. }
            | MemberUpdate::Dead { node, .. }
            | MemberUpdate::Left { node, .. } => *node,
        }
    }
}

/// A member's liveness as one node believes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liveness {
    Alive,
    Suspect,
    Dead,
    Left,
}

/// One row of a push-pull exchange: everything known about a member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub node: NodeId,
    pub incarnation: Incarnation,
    pub liveness: Liveness,
    pub addr: Addr,
    pub heartbeat: u64,
    pub meta: MemberMeta,
}
