//! The ledger of grants, and the keepers that hold its copies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Persisted, QuotaKey, QuotaMessage, QuotaOut, Session, RETAINED_WINDOWS};
use crate::failover::Epoch;
use crate::id::NodeId;

/// What one holder session got of one key: both amounts cumulative, both only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Capacity granted so far.
    pub allowance: u64,
    /// Capacity given back so far (never above `allowance`).
    pub released: u64,
}

impl Slot {
    /// Whether the slot could be real: nothing given back that was not granted.
    /// Slots from the network are checked with this before they are merged (a
    /// merge of invalid slots would clamp, and clamping is not associative).
    pub fn is_valid(self) -> bool {
        self.released <= self.allowance
    }

    /// Capacity the holder may have spent or may still spend.
    pub fn held(self) -> u64 {
        self.allowance.saturating_sub(self.released)
    }

    /// The larger of each amount: merging two copies of the same slot.
    pub fn merge(self, other: Slot) -> Slot {
        let allowance = self.allowance.max(other.allowance);
        Slot {
            allowance,
            released: self.released.max(other.released).min(allowance),
        }
    }
}

/// One ledger entry: a key, a holder session and its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The key.
    pub key: QuotaKey,
    /// The holder session.
    pub holder: Session,
    /// What it got.
    pub slot: Slot,
}

/// The grants of every key by holder session (see the module docs of [`super`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    slots: BTreeMap<(QuotaKey, Session), Slot>,
}

impl Ledger {
    /// Merges `entry`; returns whether anything grew. An invalid slot (see
    /// [`Slot::is_valid`]) is ignored.
    pub fn merge(&mut self, entry: LedgerEntry) -> bool {
        if !entry.slot.is_valid() {
            return false;
        }
        // An empty slot adds nothing: no entry (an ask of a holder that holds nothing
        // must not make its window the latest).
        if entry.slot == Slot::default() {
            return false;
        }
        let slot = self.slots.entry((entry.key, entry.holder)).or_default();
        let merged = slot.merge(entry.slot);
        let grew = merged != *slot;
        *slot = merged;
        grew
    }

    /// The slot of `holder` for `key`.
    pub fn slot(&self, key: QuotaKey, holder: Session) -> Slot {
        self.slots.get(&(key, holder)).copied().unwrap_or_default()
    }

    /// Capacity of `key` granted and not given back, over every holder session.
    pub fn held(&self, key: QuotaKey) -> u64 {
        self.range(key)
            .map(|(_, s)| s.held())
            .fold(0u64, u64::saturating_add)
    }

    /// The slots of `key`.
    pub fn range(&self, key: QuotaKey) -> impl Iterator<Item = (Session, Slot)> + '_ {
        let low = (
            key,
            Session {
                node: NodeId(0),
                session: 0,
            },
        );
        self.slots
            .range(low..)
            .take_while(move |((k, _), _)| *k == key)
            .map(|((_, s), slot)| (*s, *slot))
    }

    /// Removes the entry of `key` and `holder` (a keeper's disk forgetting it).
    pub fn remove(&mut self, key: QuotaKey, holder: Session) {
        self.slots.remove(&(key, holder));
    }

    /// The latest window of `quota` with an entry.
    pub fn latest(&self, quota: u64) -> Option<u64> {
        let high = (
            QuotaKey {
                quota,
                window: u64::MAX,
            },
            Session {
                node: NodeId(u64::MAX),
                session: u64::MAX,
            },
        );
        self.slots
            .range(..=high)
            .next_back()
            .map(|((k, _), _)| *k)
            .filter(|k| k.quota == quota)
            .map(|k| k.window)
    }

    /// Forgets the entries of `quota` in windows more than [`RETAINED_WINDOWS`]
    /// behind its latest one, and says which (for a keeper to delete them on disk).
    ///
    /// Why a grantor may judge a window from what is left: it refuses windows more
    /// than a span behind its latest, so what it reads is within `2 × MAX_SPAN`
    /// windows of its latest. A keeper of the majority a new grantor collected from
    /// forgot only windows `RETAINED_WINDOWS` behind its own latest, which is at most
    /// the new grantor's (the copies merged include the keeper's): nothing the new
    /// grantor reads was forgotten by any keeper it counted.
    pub fn forget_old(&mut self, quota: u64) -> Vec<(QuotaKey, Session)> {
        let Some(latest) = self.latest(quota) else {
            return Vec::new();
        };
        let Some(first_kept) = latest.checked_sub(RETAINED_WINDOWS - 1) else {
            return Vec::new();
        };
        let low = (
            QuotaKey { quota, window: 0 },
            Session {
                node: NodeId(0),
                session: 0,
            },
        );
        let high = (
            QuotaKey {
                quota,
                window: first_kept,
            },
            Session {
                node: NodeId(0),
                session: 0,
            },
        );
        let old: Vec<(QuotaKey, Session)> = self.slots.range(low..high).map(|(k, _)| *k).collect();
        for k in &old {
            self.slots.remove(k);
        }
        old
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = LedgerEntry> + '_ {
        self.slots.iter().map(|((key, holder), slot)| LedgerEntry {
            key: *key,
            holder: *holder,
            slot: *slot,
        })
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Entries a [`QuotaMessage::Copy`] carries at most; a longer copy goes in parts.
pub const COPY_CHUNK: usize = 256;

/// Names one answer to a collection: the parts of one copy carry the same digest,
/// and a copy with other entries (the keeper recorded more between two answers) has
/// another, so a grantor never puts together parts of two different copies.
pub fn digest(entries: &[LedgerEntry]) -> u64 {
    let mut h = crate::hash::Fnv64::new();
    for e in entries {
        for n in [
            e.key.quota,
            e.key.window,
            e.holder.node.0,
            e.holder.session,
            e.slot.allowance,
            e.slot.released,
        ] {
            h.write(&n.to_le_bytes());
        }
    }
    h.finish()
}

/// A voter's copy of the ledger, and its fence: the highest epoch it answered a
/// collection of. Entries of a lower epoch are refused, so an old grantor cannot
/// get a majority of acknowledgements once a new one has collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keeper {
    fence: Epoch,
    ledger: Ledger,
    /// Grows with every change of the copy: a driver republishes it only then.
    version: u64,
}

impl Keeper {
    /// A keeper with what it persisted: its fence and its entries.
    pub fn restore(fence: Epoch, entries: impl IntoIterator<Item = LedgerEntry>) -> Keeper {
        let mut ledger = Ledger::default();
        for entry in entries {
            ledger.merge(entry);
        }
        // Entries a crash left on disk between forgetting and deleting them.
        let quotas: std::collections::BTreeSet<u64> =
            ledger.entries().map(|e| e.key.quota).collect();
        for quota in quotas {
            let _ = ledger.forget_old(quota);
        }
        Keeper {
            fence,
            ledger,
            version: 0,
        }
    }

    /// The fence.
    pub fn fence(&self) -> Epoch {
        self.fence
    }

    /// The copy.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A number that grows whenever the copy changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Call for a [`QuotaMessage::Record`] or [`QuotaMessage::Collect`] from `from`
    /// (the node checks first that the keeper and the sender are voters of the
    /// roster in their current lives). Answers with what to persist and the reply;
    /// the driver commits the persists before any send after them, so a repeated
    /// record, answered without a persist of its own, is only acknowledged after
    /// the first one's batch (an earlier round) was committed.
    pub fn handle(&mut self, from: NodeId, message: &QuotaMessage) -> QuotaOut {
        let mut out = QuotaOut::default();
        match message {
            QuotaMessage::Record {
                epoch,
                seq,
                entries,
            } => {
                if *epoch < self.fence {
                    out.send(from, QuotaMessage::Fenced { epoch: self.fence });
                    return out;
                }
                self.raise(*epoch, &mut out);
                for entry in entries {
                    if self.ledger.merge(*entry) {
                        self.version += 1;
                        out.persist
                            .push(Persisted::Entry(self.full(entry.key, entry.holder)));
                        for (key, holder) in self.ledger.forget_old(entry.key.quota) {
                            out.persist.push(Persisted::Forget(key, holder));
                        }
                    }
                }
                out.send(
                    from,
                    QuotaMessage::Recorded {
                        epoch: *epoch,
                        seq: *seq,
                    },
                );
            }
            QuotaMessage::Collect { epoch } => {
                if *epoch < self.fence {
                    out.send(from, QuotaMessage::Fenced { epoch: self.fence });
                    return out;
                }
                self.raise(*epoch, &mut out);
                let entries: Vec<LedgerEntry> = self.ledger.entries().collect();
                let parts = entries.len().div_ceil(COPY_CHUNK).max(1);
                let digest = digest(&entries);
                for (i, chunk) in entries
                    .chunks(COPY_CHUNK)
                    .map(<[LedgerEntry]>::to_vec)
                    .chain(entries.is_empty().then(Vec::new))
                    .enumerate()
                {
                    out.send(
                        from,
                        QuotaMessage::Copy {
                            epoch: *epoch,
                            digest,
                            part: i as u32,
                            parts: parts as u32,
                            entries: chunk,
                        },
                    );
                }
            }
            _ => {}
        }
        out
    }

    fn full(&self, key: QuotaKey, holder: Session) -> LedgerEntry {
        LedgerEntry {
            key,
            holder,
            slot: self.ledger.slot(key, holder),
        }
    }

    fn raise(&mut self, epoch: Epoch, out: &mut QuotaOut) {
        if epoch > self.fence {
            self.fence = epoch;
            out.persist.push(Persisted::Fence(epoch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(window: u64) -> QuotaKey {
        QuotaKey { quota: 1, window }
    }

    fn holder(n: u64) -> Session {
        Session {
            node: NodeId(n),
            session: 1,
        }
    }

    proptest::proptest! {
        /// Merging is commutative, associative and idempotent, and never lets
        /// `released` pass `allowance`: any order of delivery gives one ledger.
        #[test]
        fn slots_merge_as_a_semilattice(
            a in (0u64..100, 0u64..100), b in (0u64..100, 0u64..100), c in (0u64..100, 0u64..100)
        ) {
            let s = |(x, y): (u64, u64)| Slot { allowance: x.max(y), released: x.min(y) };
            let (a, b, c) = (s(a), s(b), s(c));
            proptest::prop_assert_eq!(a.merge(b), b.merge(a));
            proptest::prop_assert_eq!(a.merge(b).merge(c), a.merge(b.merge(c)));
            proptest::prop_assert_eq!(a.merge(a), a);
            let m = a.merge(b).merge(c);
            proptest::prop_assert!(m.released <= m.allowance);
        }
    }

    #[test]
    fn held_sums_the_sessions_of_one_key_only() {
        let mut l = Ledger::default();
        let e = |k, h, allowance, released| LedgerEntry {
            key: k,
            holder: h,
            slot: Slot {
                allowance,
                released,
            },
        };
        assert!(l.merge(e(key(1), holder(1), 10, 3)));
        assert!(l.merge(e(key(1), holder(2), 5, 0)));
        assert!(l.merge(e(key(2), holder(1), 50, 0)));
        assert!(
            !l.merge(e(key(1), holder(2), 4, 0)),
            "smaller: nothing grew"
        );
        assert_eq!(l.held(key(1)), 12);
        assert_eq!(l.held(key(2)), 50);
        assert!(
            !l.merge(e(key(1), holder(3), 1, 2)),
            "an invalid slot is ignored"
        );
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn a_keeper_fences_lower_epochs_after_a_collection_and_persists_first() {
        let mut k = Keeper::default();
        let entry = LedgerEntry {
            key: key(1),
            holder: holder(1),
            slot: Slot {
                allowance: 7,
                released: 0,
            },
        };
        let out = k.handle(
            NodeId(1),
            &QuotaMessage::Record {
                epoch: Epoch(3),
                seq: 1,
                entries: vec![entry],
            },
        );
        assert_eq!(
            out.persist,
            vec![Persisted::Fence(Epoch(3)), Persisted::Entry(entry)]
        );
        assert_eq!(
            out.sends,
            vec![(
                NodeId(1),
                QuotaMessage::Recorded {
                    epoch: Epoch(3),
                    seq: 1
                }
            )]
        );
        // A collection at epoch 4 raises the fence and sends the copy.
        let out = k.handle(NodeId(2), &QuotaMessage::Collect { epoch: Epoch(4) });
        assert_eq!(out.persist, vec![Persisted::Fence(Epoch(4))]);
        assert!(
            matches!(&out.sends[..], [(NodeId(2), QuotaMessage::Copy { entries, parts: 1, .. })] if entries == &vec![entry])
        );
        // The old grantor is refused from now on.
        let out = k.handle(
            NodeId(1),
            &QuotaMessage::Record {
                epoch: Epoch(3),
                seq: 2,
                entries: vec![],
            },
        );
        assert_eq!(
            out.sends,
            vec![(NodeId(1), QuotaMessage::Fenced { epoch: Epoch(4) })]
        );
        assert!(out.persist.is_empty());
    }

    /// A keeper forgets windows far behind the latest one of their quota, in
    /// memory and on disk, and only those of that quota.
    #[test]
    fn a_keeper_forgets_windows_long_past_and_says_so() {
        let mut k = Keeper::default();
        let e = |quota, window| LedgerEntry {
            key: QuotaKey { quota, window },
            holder: holder(1),
            slot: Slot {
                allowance: 1,
                released: 0,
            },
        };
        let record = |entries| QuotaMessage::Record {
            epoch: Epoch(1),
            seq: 1,
            entries,
        };
        let _ = k.handle(NodeId(1), &record(vec![e(1, 0), e(1, 1), e(2, 0)]));
        let out = k.handle(NodeId(1), &record(vec![e(1, RETAINED_WINDOWS)]));
        assert_eq!(
            out.persist,
            vec![
                Persisted::Entry(e(1, RETAINED_WINDOWS)),
                Persisted::Forget(e(1, 0).key, holder(1)),
            ]
        );
        assert_eq!(k.ledger().latest(1), Some(RETAINED_WINDOWS));
        assert_eq!(k.ledger().len(), 3, "window 1 is kept, and quota 2");
        // A restored keeper forgets what a crash left on disk.
        let restored = Keeper::restore(Epoch(1), [e(1, 0), e(1, RETAINED_WINDOWS)]);
        assert_eq!(restored.ledger().len(), 1);
    }
}
