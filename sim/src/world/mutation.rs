//! Injected protocol bugs: what the simulator does to a node's packets to prove the
//! checkers catch real bugs.

use super::*;

/// A deliberately injected protocol bug, applied by the simulator to what nodes send,
/// to prove the checkers catch real bugs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Refutations keep the old incarnation: a node "refutes" a suspicion without
    /// overriding it, as if the incarnation rule were ignored.
    RefuteWithoutIncarnation,
    /// A replica that never ships deletes (tombstones are dropped from its
    /// rumours and sync deltas), as if merge ignored them.
    DropTombstones,
    /// A voter that grants every lease request (its refusals become grants), as
    /// if the majority rule were not there.
    GrantEverything,
    /// Quota grantors that give a grant without recording it: no keeper persisted
    /// it, so the next lease holder does not know of it and grants again.
    GrantUnrecorded,
}

/// Applies an injected bug to an outgoing packet.
pub(super) fn mutate(
    m: Mutation,
    cluster: ClusterId,
    sender: NodeId,
    channel: Channel,
    bytes: Vec<u8>,
) -> Vec<u8> {
    let Ok(mut env) = wire::decode(cluster, channel, &bytes) else {
        return bytes;
    };
    match m {
        // Not a packet bug: injected into each node at boot (`World::boot`).
        Mutation::GrantUnrecorded => return bytes,
        Mutation::RefuteWithoutIncarnation => {
            let stale = Incarnation(0);
            match &mut env.message {
                Message::Ping { rumors, .. }
                | Message::Ack { rumors, .. }
                | Message::PingReq { rumors, .. }
                | Message::Gossip { rumors } => {
                    for r in rumors.iter_mut() {
                        if let Rumor::Member(MemberUpdate::Alive {
                            node, incarnation, ..
                        }) = r
                        {
                            if *node == sender {
                                *incarnation = stale;
                            }
                        }
                    }
                }
                Message::PushPull { members, .. } => {
                    for r in members.iter_mut().filter(|r| r.node == sender) {
                        r.incarnation = stale;
                    }
                }
                _ => {}
            }
        }
        Mutation::GrantEverything => {
            if let Message::Lease(LeaseMessage::Reject { epoch, round, .. }) = env.message {
                env.message = Message::Lease(LeaseMessage::Grant { epoch, round });
            }
        }
        Mutation::DropTombstones => match &mut env.message {
            Message::Ping { rumors, .. }
            | Message::Ack { rumors, .. }
            | Message::PingReq { rumors, .. }
            | Message::Gossip { rumors } => {
                rumors.retain(|r| !matches!(r, Rumor::State(e) if e.value.is_none()));
            }
            Message::SyncResponse { delta, .. } | Message::SyncPush { delta } => {
                delta.entries.retain(|e| e.value.is_some());
            }
            _ => {}
        },
    }
    wire::encode(cluster, sender, env.life, &env.message)
}
