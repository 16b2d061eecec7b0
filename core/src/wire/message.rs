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
        /// Echoed in the `Ack`, so the prober matches the answer to this probe.
        seq: Seq,
        /// Whom the sender means to probe: a ping reaching another node at that address (a
        /// restarted or moved member) is counted as misdirected and not acked.
        target: NodeId,
        /// The sender's own heartbeat counter (grows with every probe round), so the
        /// receiver sees it is alive and progressing.
        heartbeat: u64,
        /// Piggybacked news, within the datagram budget.
        rumors: Vec<Rumor>,
    },
    /// The answer to a `Ping` (also relayed back for an indirect probe).
    Ack {
        /// The `seq` of the `Ping` (or `PingReq`) this answers.
        seq: Seq,
        /// The acking node's own heartbeat counter.
        heartbeat: u64,
        /// Piggybacked news, within the datagram budget.
        rumors: Vec<Rumor>,
    },
    /// Asks the receiver to probe `target` on the sender's behalf.
    PingReq {
        /// Echoed in the relayed `Ack` or the `Nack`.
        seq: Seq,
        /// The member to probe.
        target: NodeId,
        /// Where to reach it, as the requester knows it.
        target_addr: Addr,
        /// Piggybacked news, within the datagram budget.
        rumors: Vec<Rumor>,
    },
    /// Lifeguard: the relay of a `PingReq` did not hear from the target in time. A
    /// requester that gets no nack either learns its own links are the problem.
    Nack {
        /// The `seq` of the `PingReq` whose target stayed silent.
        seq: Seq,
    },
    /// A gossip round: rumours only.
    Gossip {
        /// The news, within the datagram budget.
        rumors: Vec<Rumor>,
    },
    /// A full membership exchange.
    PushPull {
        /// A join, a periodic exchange, or the answer to one.
        kind: PushPullKind,
        /// The sender's own heartbeat counter.
        heartbeat: u64,
        /// Every member the sender knows, itself included (bounded by the decode limits).
        members: Vec<MemberRecord>,
    },
    /// Anti-entropy, step 1: what I have seen.
    SyncRequest {
        /// The newest timestamp the requester has applied (a cheap "nothing new" test).
        newest: Hlc,
        /// The requester's store digest: equal digests end the exchange.
        digest: u64,
        /// Which write numbers of each origin the requester has seen.
        vv: VersionVector,
    },
    /// Step 2: what you lack (a chunk of it if `more`), and what I have seen.
    SyncResponse {
        /// The newest timestamp the responder has applied.
        newest: Hlc,
        /// The responder's store digest.
        digest: u64,
        /// What the responder has seen, so the requester can push what it lacks.
        vv: VersionVector,
        /// Entries the requester lacks, and ranges of numbers it can mark seen (superseded
        /// writes).
        delta: Delta,
        /// More chunks of the delta follow.
        more: bool,
    },
    /// Step 3: what you lack, from the requester.
    SyncPush {
        /// Entries the responder lacks, and ranges it can mark seen.
        delta: Delta,
    },
    /// The failover lease protocol (every message carries the sender's epoch).
    Lease(crate::failover::LeaseMessage),
    /// Quota leases: asks, grants, records and collections (see [`crate::quota`]).
    Quota(crate::quota::QuotaMessage),
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
            | Message::Lease(_)
            | Message::Quota(_) => &[],
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
            Message::Quota(_) => "quota",
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
    /// A claim about a member's liveness (SWIM's dissemination).
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
    /// The member that broadcast it.
    pub origin: NodeId,
    /// Its number among that member's broadcasts (from 1, one per broadcast).
    pub seq: u64,
    /// The application's bytes, at most `MAX_APP_PAYLOAD`.
    pub payload: Vec<u8>,
}

/// A claim about one member's liveness, ordered by incarnation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MemberUpdate {
    /// `node` is alive at `incarnation`, reachable at `addr` with `meta`; only the node
    /// itself raises its incarnation, which is how it refutes a suspicion.
    Alive {
        /// The member.
        node: NodeId,
        /// The incarnation the claim is made at; a claim at a higher one wins.
        incarnation: Incarnation,
        /// Its gossip address.
        addr: Addr,
        /// What it announces.
        meta: MemberMeta,
    },
    /// `from` suspects `node` at `incarnation` (it missed a probe); `node` refutes by
    /// announcing itself alive at a higher incarnation.
    Suspect {
        /// The member suspected.
        node: NodeId,
        /// The incarnation the suspicion is about.
        incarnation: Incarnation,
        /// Who raised it (independent confirmations shorten the suspicion timeout).
        from: NodeId,
    },
    /// `from` declares `node` failed at `incarnation` (its suspicion ran out unrefuted).
    Dead {
        /// The member declared failed.
        node: NodeId,
        /// The incarnation the declaration is about.
        incarnation: Incarnation,
        /// Who declared it.
        from: NodeId,
    },
    /// The node left on purpose.
    Left {
        /// The member that left.
        node: NodeId,
        /// Its incarnation when it left.
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
    /// Answering probes (or not yet suspected).
    Alive,
    /// Missed a probe; failed unless it refutes in time.
    Suspect,
    /// Declared failed; kept for a while so the news spreads, then reaped.
    Dead,
    /// Left on purpose (not a failure).
    Left,
}

/// One row of a push-pull exchange: everything known about a member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub node: NodeId,
    /// The highest incarnation the sender knows of it.
    pub incarnation: Incarnation,
    /// What the sender believes of it at that incarnation.
    pub liveness: Liveness,
    /// Its gossip address.
    pub addr: Addr,
    /// Its last heartbeat counter the sender heard.
    pub heartbeat: u64,
    /// What it announces.
    pub meta: MemberMeta,
}
