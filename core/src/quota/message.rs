//! The messages of quota leases (carried inside the wire envelope once the node
//! routes them; every variant that a grantor sends carries its epoch).

use serde::{Deserialize, Serialize};

use super::{LedgerEntry, QuotaKey, QuotaLimit, Session, Slot};
use crate::failover::Epoch;

/// One message between holders, the grantor and keepers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaMessage {
    /// Holder → grantor: `want` more of `key`, whose limit the holder reads as
    /// `limit`; `slot` is the holder's own view of what it got and gave back.
    Ask {
        /// The key.
        key: QuotaKey,
        /// The limit as the holder reads it (used when the grantor has none).
        limit: QuotaLimit,
        /// Who asks.
        holder: Session,
        /// The holder's slot as it knows it.
        slot: Slot,
        /// How much more it would like.
        want: u64,
    },
    /// Holder → grantor: the holder gave back capacity (its `slot.released` grew)
    /// and will never spend it.
    Release {
        /// The key.
        key: QuotaKey,
        /// Who gives back.
        holder: Session,
        /// Its slot, with the new `released`.
        slot: Slot,
    },
    /// Grantor → holder: the holder's slot is now `slot` (recorded at a majority of
    /// keepers before it was sent).
    Grant {
        /// The grantor's epoch.
        epoch: Epoch,
        /// The key.
        key: QuotaKey,
        /// For whom.
        holder: Session,
        /// The slot as recorded.
        slot: Slot,
        /// What the grantor could still grant of the key after this grant (over its
        /// span): with the holder's own unspent slice, the cluster's remaining as of
        /// the grant (less what other holders have not spent yet).
        room: u64,
    },
    /// Grantor → holder: nothing is left of `key` to grant now.
    Exhausted {
        /// The grantor's epoch.
        epoch: Epoch,
        /// The key.
        key: QuotaKey,
        /// To whom.
        holder: Session,
    },
    /// Grantor → holder: another holder needs capacity of `key` and none is left:
    /// give back what is not spent.
    Recall {
        /// The grantor's epoch.
        epoch: Epoch,
        /// The key.
        key: QuotaKey,
    },
    /// Grantor → keeper: persist these entries (numbered `seq` in this epoch).
    Record {
        /// The grantor's epoch.
        epoch: Epoch,
        /// The record's number.
        seq: u64,
        /// The entries (whole slots).
        entries: Vec<LedgerEntry>,
    },
    /// Keeper → grantor: record `seq` of `epoch` is persisted.
    Recorded {
        /// The epoch of the record.
        epoch: Epoch,
        /// Its number.
        seq: u64,
    },
    /// Keeper → grantor: refused, a grantor of `epoch` (higher) has collected.
    Fenced {
        /// The keeper's fence.
        epoch: Epoch,
    },
    /// New grantor → keeper: raise your fence to `epoch` and send your copy.
    Collect {
        /// The new grantor's epoch.
        epoch: Epoch,
    },
    /// Keeper → new grantor: part `part` of `parts` of its copy.
    Copy {
        /// The epoch collected.
        epoch: Epoch,
        /// Names this answer (see [`super::ledger::digest`]): only parts with one
        /// digest make one copy.
        digest: u64,
        /// Which part (from 0).
        part: u32,
        /// How many parts.
        parts: u32,
        /// The entries of this part.
        entries: Vec<LedgerEntry>,
    },
}
