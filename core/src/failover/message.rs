//! The lease protocol's messages and its fencing token.
//!
//! `LeaseMessage` is postcard-encoded inside the node's wire envelope, so its
//! variants are append-only: postcard encodes the variant index, and a reordered or
//! removed variant would be misread by an older peer.

use core::fmt;
use serde::{Deserialize, Serialize};

use crate::id::NodeId;

use super::roster::Electorate;

/// A fencing token. Each leadership (one node holding the lease without a gap in
/// its renewals) has its own epoch, and a later leadership always has a higher
/// one: a voter never grants an epoch lower than or equal to one it granted to
/// another node. Downstream systems that see an action stamped with epoch `e` can
/// refuse anything stamped lower.
#[derive(
    Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// No epoch: below every leadership's (the floor of a node that never saw one).
    pub const ZERO: Epoch = Epoch(0);

    /// The epoch after `self`.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// One message of the lease protocol. Every variant carries an epoch, so any
/// message teaches its receiver how far the cluster has got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseMessage {
    /// "Promise me the lease for `epoch`." Sent to every member each round; a
    /// holder's renewals keep their epoch and set `holding`. `electorate` is whom
    /// the sender counts: a voter grants only under its own roster version (or,
    /// before any roster exists, as a founder with the same `expected_voters`), and
    /// learns a newer roster from it (see [`Roster`](crate::Roster)). `round` identifies
    /// the request; its high 32 bits are the sender's session (the
    /// node's incarnation at start), so a restarted node never reuses a round id.
    Request {
        /// The epoch asked for (a campaign: above every epoch the sender has seen) or held
        /// (a renewal).
        epoch: Epoch,
        /// Identifies the round; a grant counts only for the round it answers.
        round: u64,
        /// The sender holds the lease for `epoch` and is renewing it.
        holding: bool,
        /// Whom the sender counts: its roster, or the founders at bootstrap.
        electorate: Electorate,
    },
    /// "I promise not to grant another node a lease until my promise, started when
    /// I received round `round`, runs out."
    Grant {
        /// The epoch granted (the request's).
        epoch: Epoch,
        /// The round answered.
        round: u64,
    },
    /// "No." `epoch` is the highest epoch the voter knows; `electorate` whom it
    /// counts (a candidate behind it learns the newer roster); `retry_after_ms`
    /// when asking again may succeed (the rest of its promise to another node, for
    /// instance). `starting`: the voter is in its quiet period after a (re)start,
    /// which tells the leader that a member its membership never saw go has in
    /// fact restarted (its hold-down starts over).
    Reject {
        /// The highest epoch the voter knows.
        epoch: Epoch,
        /// The round refused.
        round: u64,
        /// Whom the voter counts.
        electorate: Electorate,
        /// When asking again may succeed, in ms.
        retry_after_ms: u32,
        /// The voter is in its quiet period after a (re)start.
        starting: bool,
    },
    /// The holder of `epoch` has stopped holding it and asks voters to release
    /// their promise at once and to prefer `to` for the next epoch.
    Handover {
        /// The epoch the sender held.
        epoch: Epoch,
        /// The node voters should grant next.
        to: NodeId,
    },
    /// The sender gives up `epoch` (it abandoned a campaign or resigned): voters
    /// may release their promise to it at once.
    Release {
        /// The epoch given up.
        epoch: Epoch,
    },
}

impl LeaseMessage {
    /// The roster the message carries, if any.
    pub fn roster(&self) -> Option<&super::roster::Roster> {
        match self {
            LeaseMessage::Request { electorate, .. } | LeaseMessage::Reject { electorate, .. } => {
                electorate.roster()
            }
            _ => None,
        }
    }

    /// The epoch the message carries.
    pub fn epoch(&self) -> Epoch {
        match *self {
            LeaseMessage::Request { epoch, .. }
            | LeaseMessage::Grant { epoch, .. }
            | LeaseMessage::Reject { epoch, .. }
            | LeaseMessage::Handover { epoch, .. }
            | LeaseMessage::Release { epoch } => epoch,
        }
    }
}
