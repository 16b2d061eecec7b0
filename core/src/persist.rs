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
    /// Committed in one transaction, in order (a later item for the same key wins).
    pub items: Vec<PersistItem>,
}

/// One thing to store. Every kind replaces what is stored under its own key, so replaying
/// batches in order (`Restored::apply`) rebuilds the state.
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
    /// `node` is bound to `life` (see [`Bindings`](crate::Bindings)), or its binding was
    /// released (`None`): a restarted node must keep refusing a life it refused.
    Binding {
        /// The id.
        node: NodeId,
        /// The life it is bound to, or `None`: released.
        life: Option<Life>,
    },
    /// The quota keeper's fence (it only grows): a restarted keeper must keep
    /// refusing the records of grantors older than one it answered a collection of.
    QuotaFence(crate::failover::Epoch),
    /// A quota ledger entry the keeper recorded; replaces the stored one of its key
    /// and holder session (it is never smaller).
    QuotaEntry(crate::quota::LedgerEntry),
    /// A quota ledger entry the keeper forgot (its window is long past): delete the
    /// stored one of this key and holder session.
    QuotaForget {
        /// The key.
        key: crate::quota::QuotaKey,
        /// The holder session.
        holder: crate::quota::Session,
    },
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
    /// The quota keeper's fence persisted.
    pub quota_fence: crate::failover::Epoch,
    /// The quota ledger entries the keeper persisted.
    pub quota: crate::quota::Ledger,
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
                PersistItem::QuotaFence(e) => self.quota_fence = self.quota_fence.max(*e),
                PersistItem::QuotaEntry(entry) => {
                    self.quota.merge(*entry);
                }
                PersistItem::QuotaForget { key, holder } => self.quota.remove(*key, *holder),
            }
        }
    }
}

/// A stored entry that does not decode: the file was written by an incompatible
/// build or damaged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored entry does not decode (written by an incompatible build, or damaged)")]
pub struct StoredEntryError;

/// The types the core stores, and only those: each encodes without error, so the
/// `encode_*` functions below return bytes rather than a `Result` nobody could act
/// on. Private, so nothing outside this module can widen the claim.
///
/// Why it holds: postcard's serializer into a `Vec` fails only on a sequence or
/// map of unknown length or on an error a `Serialize` impl raises itself. These
/// types are derived over integers, strings, `Vec`s, `BTreeMap`s and `Option`s
/// (all of known length); the two hand-written impls inside them (`Record`,
/// `Money`) only delegate to derived forms or `serialize_u64` in a binary format.
/// (Before, a failure became an empty key, so every such key one row, or an empty
/// entry, unreadable on restart: silent loss rather than a loud bug.)
trait Stored: serde::Serialize {}

impl Stored for Key {}
impl Stored for Entry {}
impl Stored for crate::failover::RosterState {}
impl Stored for crate::quota::LedgerEntry {}
impl Stored for (crate::quota::QuotaKey, crate::quota::Session) {}

/// The postcard bytes of a stored value (see [`Stored`] for why this cannot fail).
fn to_bytes(value: &impl Stored) -> Vec<u8> {
    postcard::to_allocvec(value).expect("a Stored type encodes into a Vec without error")
}

/// The stable byte form of a key, for a storage engine's primary key.
pub fn encode_key(key: &Key) -> Vec<u8> {
    to_bytes(key)
}

/// The byte form of an entry, for storage. The format is the wire's (postcard), so
/// the core owns it and a storage engine never needs to know the record types.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    to_bytes(entry)
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StoredEntryError> {
    postcard::from_bytes(bytes).map_err(|_| StoredEntryError)
}

/// The byte form of the failover roster state, for storage (postcard, like entries).
pub fn encode_roster(state: &crate::failover::RosterState) -> Vec<u8> {
    to_bytes(state)
}

/// Decodes what [`encode_roster`] wrote.
pub fn decode_roster(bytes: &[u8]) -> Result<crate::failover::RosterState, StoredEntryError> {
    postcard::from_bytes(bytes).map_err(|_| StoredEntryError)
}

/// The stable byte form of a quota ledger entry's key (its quota key and holder
/// session), for a storage engine's primary key.
pub fn encode_quota_key(key: crate::quota::QuotaKey, holder: crate::quota::Session) -> Vec<u8> {
    to_bytes(&(key, holder))
}

/// The byte form of a quota ledger entry, for storage.
pub fn encode_quota_entry(entry: &crate::quota::LedgerEntry) -> Vec<u8> {
    to_bytes(entry)
}

/// Decodes what [`encode_quota_entry`] wrote.
pub fn decode_quota_entry(bytes: &[u8]) -> Result<crate::quota::LedgerEntry, StoredEntryError> {
    postcard::from_bytes(bytes).map_err(|_| StoredEntryError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::{Epoch, Roster, RosterState, RosterVersion};
    use crate::state::hlc::Hlc;
    use crate::state::record::{CollectionId, RecordId};
    use crate::state::store::{Usage, Value};

    fn origin(n: u64) -> crate::id::Origin {
        crate::id::Origin {
            node: NodeId(n),
            life: Life(1),
        }
    }

    /// What used to be a silent `unwrap_or_default` now encodes for real: keys are
    /// never empty and never collide, and entries and rosters read back as written.
    #[test]
    fn stored_values_encode_to_distinct_non_empty_bytes_that_read_back() {
        let budget = RecordId::new("team-a").expect("valid id");
        let keys = [
            Key::Record(CollectionId(7), budget.clone()),
            Key::Record(CollectionId(0), budget.clone()),
            Key::Usage {
                budget: budget.clone(),
                period: 7,
                node: origin(1),
            },
            Key::Usage {
                budget,
                period: 7,
                node: origin(2),
            },
        ];
        let encoded: Vec<Vec<u8>> = keys.iter().map(encode_key).collect();
        for (i, bytes) in encoded.iter().enumerate() {
            assert!(!bytes.is_empty(), "{:?}", keys[i]);
            assert!(!encoded[..i].contains(bytes), "{:?} collides", keys[i]);
        }
        for (seq, value) in [
            Some(Value::Usage(Usage {
                spend_nanos: u64::MAX,
                requests: 3,
                tokens: 4,
            })),
            None,
        ]
        .into_iter()
        .enumerate()
        {
            let entry = Entry {
                key: keys[2].clone(),
                value,
                hlc: Hlc {
                    wall: 1_700_000_000_000,
                    logical: 2,
                    origin: origin(1),
                },
                seq: seq as u64 + 1,
            };
            assert_eq!(decode_entry(&encode_entry(&entry)), Ok(entry));
        }
        let state = RosterState {
            roster: Some(Roster::new(
                RosterVersion {
                    epoch: Epoch(3),
                    seq: 1,
                },
                [NodeId(1), NodeId(2), NodeId(3)],
            )),
            bootstrapped: true,
        };
        assert_eq!(decode_roster(&encode_roster(&state)), Ok(state));
    }
}
