//! What the core asks the driver to make durable, and what it gets back at start-up.
//!
//! The contract: the driver commits each [`PersistBatch`] (in one transaction) before
//! it performs any transmit the core emitted after it. So a node never tells the
//! cluster something it could forget in a crash: an incarnation it announced is
//! always on disk, and after a restart it starts above it.

use crate::id::{Incarnation, Life, NodeId};
use std::collections::BTreeMap;

use crate::state::store::{Entry, Key};

/// Items to commit together.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PersistBatch {
    pub items: Vec<PersistItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistItem {
    /// The node's current incarnation.
    Incarnation(Incarnation),
    /// A replicated write; replaces whatever is stored under its key. (Boxed:
    /// records are large, incarnations are not.)
    Entry(Box<Entry>),
    /// The highest sequence number this node has used for its own writes.
    OwnSeq(u64),
    /// The highest failover epoch this node has seen or granted: a restarted
    /// node must never vote for or claim an epoch at or below it again.
    Epoch(crate::failover::Epoch),
    /// Drop whatever is stored under this key (a collected tombstone, or state
    /// forgotten by a resync from scratch).
    Remove(Box<Key>),
    /// The failover voter roster this node follows; replaces the one stored.
    Roster(Box<crate::failover::RosterState>),
    /// `node` is bound to `life` (see [`crate::identity`]), or its binding was
    /// released (`None`): a restarted node must keep refusing a life it refused.
    Binding { node: NodeId, life: Option<Life> },
}

/// State the driver read back from disk for [`crate::Node::new`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Restored {
    /// The last incarnation this node persisted, if it ever ran before.
    pub incarnation: Option<Incarnation>,
    /// The latest entry stored under each key.
    pub entries: BTreeMap<Key, Entry>,
    /// The highest sequence number this node used for its own writes.
    pub own_seq: u64,
    /// The highest failover epoch persisted.
    pub epoch: Option<crate::failover::Epoch>,
    /// The failover roster state last persisted.
    pub roster: Option<crate::failover::RosterState>,
    /// The id → life bindings persisted.
    pub bindings: BTreeMap<NodeId, Life>,
}

impl Restored {
    /// Applies a batch to the restored image, as the driver's storage would.
    pub fn apply(&mut self, batch: &PersistBatch) {
        for item in &batch.items {
            match item {
                PersistItem::Incarnation(i) => self.incarnation = Some(*i),
                PersistItem::Entry(e) => {
                    self.entries.insert(e.key.clone(), (**e).clone());
                }
                PersistItem::OwnSeq(s) => self.own_seq = self.own_seq.max(*s),
                PersistItem::Epoch(e) => self.epoch = self.epoch.max(Some(*e)),
                PersistItem::Remove(key) => {
                    self.entries.remove(key.as_ref());
                }
                PersistItem::Roster(r) => self.roster = Some((**r).clone()),
                PersistItem::Binding { node, life } => match life {
                    Some(life) => {
                        self.bindings.insert(*node, *life);
                    }
                    None => {
                        self.bindings.remove(node);
                    }
                },
            }
        }
    }
}

/// A stored entry that does not decode: the file was written by an incompatible
/// build or damaged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored entry does not decode (written by an incompatible build, or damaged)")]
pub struct StoredEntryError;

/// The stable byte form of a key, for a storage engine's primary key.
pub fn encode_key(key: &Key) -> Vec<u8> {
    postcard::to_allocvec(key).unwrap_or_default()
}

/// The byte form of an entry, for storage. The format is the wire's (postcard), so
/// the core owns it and a storage engine never needs to know the record types.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    postcard::to_allocvec(entry).unwrap_or_default()
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StoredEntryError> {
    postcard::from_bytes(bytes).map_err(|_| StoredEntryError)
}

/// The byte form of the failover roster state, for storage (postcard, like entries).
pub fn encode_roster(state: &crate::failover::RosterState) -> Vec<u8> {
    postcard::to_allocvec(state).unwrap_or_default()
}

/// Decodes what [`encode_roster`] wrote.
pub fn decode_roster(bytes: &[u8]) -> Result<crate::failover::RosterState, StoredEntryError> {
    postcard::from_bytes(bytes).map_err(|_| StoredEntryError)
}
