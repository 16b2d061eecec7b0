//! The replicated store: one last-writer-wins register per key, ordered by HLC.
//!
//! Every write is an [`Entry`]: a key, a value or a tombstone, the HLC timestamp of
//! the write and the origin's sequence number. Merging keeps, per key, the entry
//! with the highest timestamp; because that is a maximum over a total order, merge
//! is commutative, associative and idempotent (the property tests check it), so
//! replicas that have seen the same writes hold the same state, whatever the order.
//!
//! Alongside the registers the store keeps, per origin, the set of sequence numbers
//! it has applied or learnt were superseded ([`SeqSet`]). Anti-entropy compares
//! these sets: a peer is sent exactly the entries it lacks, and for numbers whose
//! write has since been overwritten, only the fact that they are "cleared".
//!
//! Deletes are tombstones. They are collected after a TTL; a node that was away
//! longer than that must resync from scratch (see `Replica`), never resurrect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use super::record::{CollectionId, RecordBytes, RecordId, Schema};
use super::seqset::{SeqRange, SeqSet};
use crate::hash::Fnv64;
use crate::id::{Life, NodeId, Origin};

/// Usage one node has recorded against a budget in one period. Only that node
/// writes it, and only ever upwards, so the newest entry is also the largest: a
/// grow-only counter per node, summed across nodes for the cluster total.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Spend in nano-USD.
    pub spend_nanos: u64,
    /// Requests counted (what one is, is the schema's business).
    pub requests: u64,
    /// Tokens counted.
    pub tokens: u64,
}

impl Usage {
    /// The field-wise sum, saturating at `u64::MAX` (a counter never wraps back to a small
    /// value).
    pub fn saturating_add(self, o: Usage) -> Usage {
        Usage {
            spend_nanos: self.spend_nanos.saturating_add(o.spend_nanos),
            requests: self.requests.saturating_add(o.requests),
            tokens: self.tokens.saturating_add(o.tokens),
        }
    }

    /// Whether nothing was recorded (every field 0).
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// What a register is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// A record of a collection, under its id: the schema's bytes, last writer wins.
    Record(CollectionId, RecordId),
    /// One node's usage of one budget in one period, counted per storage life
    /// (an [`Origin`]): a node that lost its disk starts a new counter rather than
    /// overwriting its earlier life's total with a smaller one.
    Usage {
        /// The budget record it counts against.
        budget: RecordId,
        /// The budget's period index (`Schema::period_index` of the wall time).
        period: u64,
        /// The counting node's (id, life): the one writer of this register.
        node: Origin,
    },
}

/// What a register holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// A record in the schema's encoding.
    Record(RecordBytes),
    /// A usage counter (only under a `Key::Usage`).
    Usage(Usage),
}

/// One write: the unit that is gossiped, synced and persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The register written.
    pub key: Key,
    /// `None` is a tombstone.
    pub value: Option<Value>,
    /// When, and by which origin: the order that decides which write wins.
    pub hlc: Hlc,
    /// The origin's sequence number for this write (the origin is `hlc.origin`).
    pub seq: u64,
}

impl Entry {
    /// The (node, life) that made this write (`hlc.origin`).
    pub fn origin(&self) -> Origin {
        self.hlc.origin
    }

    /// Whether an entry from a peer may be merged: the value is of the key's kind
    /// (a record of the key's collection, as `schema` judges it, or usage under a
    /// usage key), and ids and records pass validation. Decoding alone checks none
    /// of this.
    pub fn is_well_formed(&self, schema: &dyn Schema) -> bool {
        match (&self.key, &self.value) {
            (Key::Record(collection, id), Some(Value::Record(record))) => {
                schema.validate(*collection, id, record.as_slice()).is_ok()
            }
            (Key::Record(_, id), None) => id.validate().is_ok(),
            (Key::Usage { budget, .. }, Some(Value::Usage(_)) | None) => budget.validate().is_ok(),
            (Key::Record(..), Some(Value::Usage(_)))
            | (Key::Usage { .. }, Some(Value::Record(_))) => false,
        }
    }
}

/// What merging one entry did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The entry is now the key's value.
    Applied,
    /// A newer write to the key was already here; the entry only marks its
    /// sequence number as seen.
    Superseded,
    /// Already seen.
    Duplicate,
}

/// A version vector: per origin, the sequence numbers seen.
pub type VersionVector = Vec<(Origin, Vec<SeqRange>)>;

/// What a peer lacks: entries, and sequence numbers whose writes were superseded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Entries the peer has not seen, latest per key.
    pub entries: Vec<Entry>,
    /// Numbers the peer can mark seen without an entry: their writes were superseded here.
    pub cleared: Vec<(Origin, SeqRange)>,
}

impl Delta {
    /// Whether the delta carries nothing (the exchange is done).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.cleared.is_empty()
    }
}

/// The replicated store: per key the winning entry, per origin the write numbers seen, and
/// the digest of the live state. Merge is commutative, associative and idempotent, so
/// replicas that saw the same writes hold the same state.
#[derive(Clone, Debug, Default)]
pub struct Store {
    registers: BTreeMap<Key, Entry>,
    seen: BTreeMap<Origin, SeqSet>,
    /// XOR of the fingerprints of all live registers.
    digest: u64,
    live: usize,
    newest: Hlc,
}

impl Store {
    /// The store that merging `entries` one by one, in their order, builds.
    ///
    /// Start-up restores what storage holds: one entry per key, in key order, each
    /// (origin, seq) once. That case is built in bulk: the register map from the
    /// sorted entries in one pass, each origin's sequence numbers sorted once, the
    /// digest in the same pass. Anything else (a key out of order or repeated, a
    /// number that occurs twice) is merged one by one, so the result never depends
    /// on which path was taken.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Store {
        let mut entries = entries.into_iter();
        let mut sorted: Vec<(Key, Entry)> = Vec::with_capacity(entries.size_hint().0);
        let mut seqs: BTreeMap<Origin, Vec<u64>> = BTreeMap::new();
        let mut bulk = Store::default();
        while let Some(entry) = entries.next() {
            if sorted.last().is_some_and(|(last, _)| *last >= entry.key) {
                let earlier = sorted.into_iter().map(|(_, e)| e);
                return Store::merged(earlier.chain([entry]).chain(entries));
            }
            seqs.entry(entry.origin()).or_default().push(entry.seq);
            bulk.newest = bulk.newest.max(entry.hlc);
            if entry.value.is_some() {
                bulk.digest ^= Self::fingerprint(&entry);
                bulk.live += 1;
            }
            sorted.push((entry.key.clone(), entry));
        }
        for (origin, seqs) in seqs {
            let count = seqs.len() as u64;
            let set = SeqSet::from_seqs(seqs);
            if set.count() != count {
                // A number occurs twice: which entry counts depends on the order.
                return Store::merged(sorted.into_iter().map(|(_, e)| e));
            }
            bulk.seen.insert(origin, set);
        }
        // Keys strictly increase, so this is a bulk build, not n inserts.
        bulk.registers = sorted.into_iter().collect();
        bulk
    }

    fn merged(entries: impl IntoIterator<Item = Entry>) -> Store {
        let mut store = Store::default();
        for e in entries {
            store.merge(e);
        }
        store
    }

    /// Merges one entry. The invariant after any sequence of merges: each key holds
    /// the entry with the highest HLC ever merged for it.
    pub fn merge(&mut self, entry: Entry) -> Merge {
        let origin = entry.origin();
        // A number already seen was applied, superseded or collected before:
        // merging it again must change nothing (a collected tombstone's key is
        // gone, so the register alone could not tell).
        if !self.seen.entry(origin).or_default().insert(entry.seq) {
            return Merge::Duplicate;
        }
        self.newest = self.newest.max(entry.hlc);
        let added = entry.value.is_some().then(|| Self::fingerprint(&entry));
        let removed = match self.registers.get_mut(&entry.key) {
            Some(cur) if cur.hlc >= entry.hlc => return Merge::Superseded,
            Some(cur) => {
                let old = cur.value.is_some().then(|| Self::fingerprint(cur));
                *cur = entry;
                old
            }
            None => {
                self.registers.insert(entry.key.clone(), entry);
                None
            }
        };
        for (fp, live) in [(removed, -1isize), (added, 1)] {
            if let Some(fp) = fp {
                self.digest ^= fp;
                self.live = self.live.saturating_add_signed(live);
            }
        }
        Merge::Applied
    }

    /// A hash of (key, timestamp): the timestamp names the write, so the value
    /// need not be hashed. Length prefixes keep different keys apart.
    fn fingerprint(e: &Entry) -> u64 {
        let mut h = Fnv64::new();
        let text = |h: &mut Fnv64, s: &[u8]| {
            h.write_u64(s.len() as u64);
            h.write(s);
        };
        match &e.key {
            Key::Record(collection, id) => {
                // The collection as 4 bytes of text: no usage key starts so (its
                // text is "usage", 5 bytes).
                text(&mut h, &collection.0.to_le_bytes());
                text(&mut h, id.as_str().as_bytes());
            }
            Key::Usage {
                budget,
                period,
                node,
            } => {
                text(&mut h, b"usage");
                text(&mut h, budget.as_str().as_bytes());
                h.write_u64(*period);
                h.write_u64(node.node.0);
                h.write_u64(node.life.0);
            }
        }
        h.write_u64(e.hlc.wall);
        h.write_u64(u64::from(e.hlc.logical));
        h.write_u64(e.hlc.origin.node.0);
        h.write_u64(e.hlc.origin.life.0);
        h.finish()
    }

    fn unaccount(&mut self, e: &Entry) {
        if e.value.is_some() {
            self.digest ^= Self::fingerprint(e);
            self.live -= 1;
        }
    }

    /// Marks sequence numbers as seen without an entry (their writes were
    /// superseded at the peer that told us).
    pub fn clear(&mut self, origin: Origin, range: SeqRange) {
        self.seen.entry(origin).or_default().insert_range(range);
    }

    /// The entry that won for `key`, tombstone included.
    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.registers.get(key)
    }

    /// The live record `id` of `collection`.
    pub fn record(&self, collection: CollectionId, id: &RecordId) -> Option<&RecordBytes> {
        match self
            .registers
            .get(&Key::Record(collection, id.clone()))?
            .value
            .as_ref()?
        {
            Value::Record(r) => Some(r),
            Value::Usage(_) => None,
        }
    }

    /// Live records of one collection, by id.
    pub fn records(
        &self,
        collection: CollectionId,
    ) -> impl Iterator<Item = (&RecordId, &RecordBytes)> {
        self.registers
            .iter()
            .filter_map(move |(k, e)| match (k, &e.value) {
                (Key::Record(c, id), Some(Value::Record(r))) if *c == collection => Some((id, r)),
                _ => None,
            })
    }

    /// Every register, tombstones included, in key order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.registers.values()
    }

    /// The cluster-wide usage of `budget` in `period`: the sum of every node's
    /// counter.
    pub fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        let lo = Key::Usage {
            budget: budget.clone(),
            period,
            node: Origin::first_of(NodeId(0)),
        };
        let hi = Key::Usage {
            budget: budget.clone(),
            period,
            node: Origin::new(NodeId(u64::MAX), Life(u64::MAX)),
        };
        self.registers
            .range(lo..=hi)
            .filter_map(|(_, e)| match e.value {
                Some(Value::Usage(u)) => Some(u),
                _ => None,
            })
            .fold(Usage::default(), Usage::saturating_add)
    }

    /// An order-independent hash of the live state: equal on two replicas exactly
    /// when they hold the same live writes (tombstones do not count, so when each
    /// replica collects them does not matter).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Live registers (tombstones not counted).
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Registers, tombstones included.
    pub fn len(&self) -> usize {
        self.registers.len()
    }

    /// Whether it holds no register at all.
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
    }

    /// The newest timestamp merged.
    pub fn newest(&self) -> Hlc {
        self.newest
    }

    /// Per origin, the ranges of write numbers seen (applied or cleared): what anti-entropy
    /// sends to learn what it lacks.
    pub fn version_vector(&self) -> VersionVector {
        self.seen
            .iter()
            .map(|(&origin, set)| (origin, set.ranges().collect()))
            .collect()
    }

    /// How many writes this store has seen that a peer with `theirs` has not.
    pub fn ahead_of(&self, theirs: &VersionVector) -> u64 {
        let theirs: BTreeMap<Origin, SeqSet> = to_sets(theirs);
        let empty = SeqSet::new();
        self.seen
            .iter()
            .map(|(o, mine)| {
                mine.minus(theirs.get(o).unwrap_or(&empty))
                    .iter()
                    .map(|r| r.end - r.start + 1)
                    .sum::<u64>()
            })
            .sum()
    }

    /// How many writes a peer with `theirs` has seen that this store has not.
    pub fn behind(&self, theirs: &VersionVector) -> u64 {
        let empty = SeqSet::new();
        to_sets(theirs)
            .iter()
            .map(|(o, set)| {
                set.minus(self.seen.get(o).unwrap_or(&empty))
                    .iter()
                    .map(|r| r.end - r.start + 1)
                    .sum::<u64>()
            })
            .sum()
    }

    /// What a peer with version vector `theirs` lacks, up to about `budget` bytes
    /// of entries; `true` in the second place when more remains.
    pub fn delta_for(&self, theirs: &VersionVector, budget: usize) -> (Delta, bool) {
        let theirs = to_sets(theirs);
        let empty = SeqSet::new();
        let missing: BTreeMap<Origin, Vec<SeqRange>> = self
            .seen
            .iter()
            .map(|(&o, mine)| (o, mine.minus(theirs.get(&o).unwrap_or(&empty))))
            .filter(|(_, m)| !m.is_empty())
            .collect();
        let mut delta = Delta::default();
        if missing.is_empty() {
            return (delta, false);
        }
        // The live entries the peer lacks, in (origin, seq) order. A scan of the
        // registers rather than an index: it runs only when a peer lacks
        // something, and saves an index update on every merge.
        let mut live: Vec<&Entry> = self
            .registers
            .values()
            .filter(|e| missing.get(&e.origin()).is_some_and(|rs| covers(rs, e.seq)))
            .collect();
        live.sort_by_key(|e| (e.origin(), e.seq));
        let mut live = live.into_iter().peekable();
        let mut used = 0;
        for (&origin, ranges) in &missing {
            for &missing in ranges {
                // Live entries in the range are sent; the numbers between them
                // belong to superseded writes, of which the peer only needs to
                // know that they are done.
                let mut cursor = missing.start;
                while let Some(entry) =
                    live.next_if(|e| e.origin() == origin && e.seq <= missing.end)
                {
                    let seq = entry.seq;
                    let size = crate::wire::encoded_len(entry);
                    if used + size > budget && !delta.entries.is_empty() {
                        return (delta, true);
                    }
                    if seq > cursor {
                        let start = cursor;
                        delta.cleared.push((
                            origin,
                            SeqRange {
                                start,
                                end: seq - 1,
                            },
                        ));
                    }
                    used += size;
                    delta.entries.push(entry.clone());
                    cursor = seq + 1;
                }
                if cursor <= missing.end {
                    let end = missing.end;
                    delta
                        .cleared
                        .push((origin, SeqRange { start: cursor, end }));
                }
            }
        }
        (delta, false)
    }

    /// Merges a delta; returns the entries that were applied (to re-gossip and
    /// persist).
    pub fn merge_delta(&mut self, delta: Delta) -> Vec<Entry> {
        for (origin, range) in delta.cleared {
            self.clear(origin, range);
        }
        delta
            .entries
            .into_iter()
            .filter(|e| self.merge(e.clone()) == Merge::Applied)
            .collect()
    }

    /// Drops tombstones written before `horizon_wall` (wall-clock ms) and returns
    /// their keys. Their sequence numbers stay seen, so the delete is never asked
    /// for again.
    pub fn collect_tombstones(&mut self, horizon_wall: u64) -> Vec<Key> {
        let dead: Vec<Key> = self
            .registers
            .iter()
            .filter(|(_, e)| e.value.is_none() && e.hlc.wall < horizon_wall)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &dead {
            self.registers.remove(key);
        }
        dead
    }

    /// Drops the usage counters `keep` rejects (old periods no longer count
    /// against any budget) and returns their keys.
    pub fn compact_usage(&mut self, keep: impl Fn(&RecordId, u64) -> bool) -> Vec<Key> {
        let old: Vec<Key> = self
            .registers
            .keys()
            .filter(|k| matches!(k, Key::Usage { budget, period, .. } if !keep(budget, *period)))
            .cloned()
            .collect();
        for key in &old {
            if let Some(e) = self.registers.remove(key) {
                self.unaccount(&e);
            }
        }
        old
    }

    /// Drops the usage counters that can no longer count against a budget, as of
    /// the wall-clock time `wall_ms`: those of a period before the previous one
    /// (the previous is kept, for nodes whose clocks straddle the boundary) and
    /// those of a deleted budget. Counters of a budget this store has not seen at
    /// all are kept: the record may simply not have arrived yet.
    ///
    /// Every node runs this on its own (no leader needed): the rule depends only
    /// on the budget records and the clock, so all nodes drop the same keys within
    /// the clock-skew bound, and the dropped writes' numbers stay seen, so no peer
    /// sends them again.
    pub fn compact_old_usage(&mut self, wall_ms: u64, schema: &dyn Schema) -> Vec<Key> {
        let Some(owner) = schema.usage_owner() else {
            return Vec::new();
        };
        let periods: BTreeMap<RecordId, Option<u64>> = self
            .registers
            .iter()
            .filter_map(|(k, e)| match (k, &e.value) {
                (Key::Record(c, id), Some(Value::Record(r))) if *c == owner => {
                    // A record the schema cannot place keeps its counters.
                    Some((
                        id.clone(),
                        Some(schema.period_index(r.as_slice(), wall_ms)?),
                    ))
                }
                (Key::Record(c, id), None) if *c == owner => Some((id.clone(), None)),
                _ => None,
            })
            .collect();
        self.compact_usage(|budget, period| match periods.get(budget) {
            None => true,
            Some(None) => false,
            Some(Some(current)) => period.saturating_add(1) >= *current,
        })
    }

    /// Forgets everything learnt from other origins (a resync from scratch),
    /// keeping this node's own writes so nothing it acknowledged is lost. Returns
    /// the keys forgotten, for storage to drop too.
    pub fn reset_except(&mut self, own: Origin) -> Vec<Key> {
        let (mine, theirs): (Vec<&Entry>, Vec<&Entry>) =
            self.registers.values().partition(|e| e.origin() == own);
        let forgotten: Vec<Key> = theirs.into_iter().map(|e| e.key.clone()).collect();
        let mine: Vec<Entry> = mine.into_iter().cloned().collect();
        let own_seen = self.seen.remove(&own);
        *self = Store::default();
        for e in mine {
            self.merge(e);
        }
        // Keep the record of our superseded numbers too, so peers never re-send them.
        for r in own_seen.iter().flat_map(SeqSet::ranges) {
            self.clear(own, r);
        }
        forgotten
    }
}

/// Whether sorted, disjoint `ranges` contain `seq`.
fn covers(ranges: &[SeqRange], seq: u64) -> bool {
    let i = ranges.partition_point(|r| r.end < seq);
    ranges.get(i).is_some_and(|r| r.start <= seq)
}

fn to_sets(vv: &VersionVector) -> BTreeMap<Origin, SeqSet> {
    vv.iter()
        .map(|(o, ranges)| (*o, SeqSet::from_ranges(ranges)))
        .collect()
}

#[cfg(test)]
mod tests;
