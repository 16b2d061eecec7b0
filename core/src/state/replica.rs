//! The replication state machine: how writes get everywhere.
//!
//! * **Local writes** get the next sequence number of this node and an HLC
//!   timestamp, are merged, persisted (the driver acknowledges the client after the
//!   batch commits) and, when small enough for a datagram, spread as rumours on the
//!   membership gossip, which reaches every node in O(log N) rounds.
//! * **Anti-entropy** runs every `sync_interval` with one random live member:
//!   `SyncRequest(version vector)` is answered by `SyncResponse(what you lack, my
//!   version vector)`, which is answered by `SyncPush(what I lack)`. Each side sends
//!   only entries the other has not seen, and superseded writes only as ranges of
//!   numbers, so a sync costs about what is missing. Responses are chunked
//!   (`sync_chunk_bytes`); a `more` flag asks for the next chunk at once, which is
//!   also how a new node receives its snapshot, without blocking anything.
//! * **Usage counters** accumulate locally and are published as this node's
//!   counter entry at most every `usage_flush`, so a busy gateway writes one entry
//!   per budget per interval, not one per request.
//! * **Clock safety**: a remote timestamp too far in the future is refused (the
//!   entry is dropped and counted), so one bad clock cannot capture every key.
//! * **Tombstones** are collected after `tombstone_ttl`. A node whose newest known
//!   write is older than that when it starts has been away too long: it forgets
//!   what it learnt from others (keeping its own writes) and resyncs from scratch,
//!   so a delete it missed cannot be undone by its stale copy.

use core::time::Duration;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hlc::{Hlc, HlcClock};
use super::record::{RecordId, Schema};
use super::store::{Delta, Entry, Key, Merge, Store, Usage, Value, VersionVector};
use crate::id::{Addr, NodeId, Origin};
use crate::outbox::Outbox;
use crate::persist::{PersistBatch, PersistItem};
use crate::rng::DetRng;
use crate::time::Millis;
use crate::timers::Timers;
use crate::wire::{encoded_len, Channel, Message};

/// Tunables of replication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateTiming {
    /// How often anti-entropy runs with one random member.
    pub sync_interval: Duration,
    /// Largest entry bytes in one sync message.
    pub sync_chunk_bytes: usize,
    /// How far ahead of our wall clock a remote timestamp may be.
    pub max_clock_skew: Duration,
    /// Tombstones older than this are collected.
    pub tombstone_ttl: Duration,
    /// How often accumulated usage is published.
    pub usage_flush: Duration,
    /// Entries up to this size ride on gossip; larger ones only on anti-entropy.
    pub max_rumor_entry: usize,
}

impl Default for StateTiming {
    fn default() -> Self {
        StateTiming {
            sync_interval: Duration::from_secs(1),
            sync_chunk_bytes: 256 * 1024,
            max_clock_skew: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(7 * 24 * 3600),
            usage_flush: Duration::from_millis(500),
            max_rumor_entry: 512,
        }
    }
}

/// How far behind a peer we believe we are, from its last sync message.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncLag {
    /// Writes the peer had that we had not seen.
    pub versions: u64,
    /// How much newer its newest write was than ours, in ms.
    pub millis: u64,
    /// When we last heard (our clock).
    pub at: Millis,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Writes made on this node (`Put`, `Delete`, usage flushes).
    pub local_writes: u64,
    /// Peer entries merged from gossip rumours.
    pub applied_from_gossip: u64,
    /// Peer entries merged from anti-entropy.
    pub applied_from_sync: u64,
    /// Peer entries already seen (a rumour and a sync carrying the same write).
    pub duplicates: u64,
    /// Peer entries refused because their timestamp was too far ahead of our wall clock
    /// (`max_skew`).
    pub refused_clock_skew: u64,
    /// Peer entries refused by the schema or malformed for their key
    /// (`Entry::is_well_formed`).
    pub invalid_entries: u64,
    /// Anti-entropy rounds this node started.
    pub sync_rounds: u64,
    /// Entries sent in anti-entropy responses and pushes.
    pub sync_entries_sent: u64,
    /// Tombstones removed after their TTL.
    pub tombstones_collected: u64,
    /// Usage counters dropped because their period is over or their budget gone.
    pub usage_compacted: u64,
    /// Times this node dropped its replicated state to resync from scratch (away longer
    /// than the tombstone TTL).
    pub resets: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Sync,
    FlushUsage,
    Collect,
}

/// One node's replica of the control-plane state.
#[derive(Clone, Debug)]
pub struct Replica {
    /// This node in its storage life: the origin of its writes.
    origin: Origin,
    /// What a well-formed record is, and which records own usage counters.
    schema: std::sync::Arc<dyn Schema>,
    timing: StateTiming,
    clock: HlcClock,
    store: Store,
    own_seq: u64,
    /// `wall = mono + wall_offset`, set by the driver.
    wall_offset: Option<i64>,
    /// Usage recorded since the last flush, per (budget, period).
    pending_usage: BTreeMap<(RecordId, u64), Usage>,
    lag: BTreeMap<NodeId, SyncLag>,
    timers: Timers<Timer>,
    rng: DetRng,
    stats: ReplicaStats,
    /// Entries to spread on the membership gossip, drained by the node.
    rumors: Vec<Entry>,
    /// When this node first finished an anti-entropy exchange with a peer (see
    /// [`Replica::first_sync`]); `None` until then.
    first_sync: Option<Millis>,
}

impl Replica {
    /// `own_seq` is the highest number persisted for `origin`'s writes. A new
    /// storage life is a new origin whose numbering starts at 1: nothing needs to
    /// be learnt from peers first (see [`Origin`]).
    pub(crate) fn new(
        origin: Origin,
        schema: std::sync::Arc<dyn Schema>,
        timing: StateTiming,
        restored: impl IntoIterator<Item = Entry>,
        own_seq: u64,
        rng: DetRng,
        now: Millis,
    ) -> Replica {
        let mut clock = HlcClock::new(origin, timing.max_clock_skew);
        let mut own_seq = own_seq;
        let mut newest = Hlc::default();
        // Built in bulk (storage hands the entries back in key order).
        let store = Store::from_entries(restored.into_iter().inspect(|e| {
            if e.origin() == origin {
                own_seq = own_seq.max(e.seq);
            }
            newest = newest.max(e.hlc);
        }));
        // Restored entries were ours to begin with: adopt their clocks without the
        // skew check, so our next write orders after them. Observing the newest
        // alone moves the clock exactly as far as observing each would.
        let _ = clock.observe(newest, newest.wall);
        let mut timers = Timers::default();
        timers.set(now + timing.sync_interval, Timer::Sync);
        timers.set(now + timing.usage_flush, Timer::FlushUsage);
        timers.set(now + collect_period(&timing), Timer::Collect);
        Replica {
            origin,
            schema,
            timing,
            clock,
            store,
            own_seq,
            wall_offset: None,
            pending_usage: BTreeMap::new(),
            lag: BTreeMap::new(),
            timers,
            rng,
            stats: ReplicaStats::default(),
            rumors: Vec::new(),
            first_sync: None,
        }
    }

    /// A peer's version vector or entry shows this origin's writes up to `seq`:
    /// new writes are numbered above it (and the floor is persisted). A new life
    /// never needs this (its origin is new); it covers storage restored from an
    /// old backup under the same key, whose persisted numbering is behind.
    fn learn_own_seq(&mut self, seq: u64, out: &mut Outbox) {
        if seq > self.own_seq {
            self.own_seq = seq;
            out.persist(PersistBatch {
                items: vec![PersistItem::OwnSeq(seq)],
            });
        }
    }

    /// What a peer's version vector says of this origin's numbering.
    fn learn_from_vv(&mut self, vv: &VersionVector, out: &mut Outbox) {
        let own = vv
            .iter()
            .find(|(origin, _)| *origin == self.origin)
            .and_then(|(_, ranges)| ranges.iter().map(|r| r.end).max())
            .unwrap_or(0);
        self.learn_own_seq(own, out);
    }

    /// The schema the node was given: what a well-formed record is.
    pub fn schema(&self) -> &dyn Schema {
        &*self.schema
    }

    /// The origin of this node's writes.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// When this node first completed an anti-entropy exchange with a peer: it
    /// received a peer's whole answer to its request (a response with nothing more
    /// to come), or a peer's request whose version vector it already covers. From
    /// then on it holds at least everything that peer had at that moment (records it
    /// refused as invalid or too skewed aside), so a gateway can tell a node that
    /// caught up with its cluster from one that merely started. Never reset: later
    /// lag is [`Replica::lag`]'s business. Observing it changes nothing in the node.
    pub fn first_sync(&self) -> Option<Millis> {
        self.first_sync
    }

    fn note_synced(&mut self, now: Millis) {
        if self.first_sync.is_none() {
            self.first_sync = Some(now);
        }
    }

    /// The replicated store as this node holds it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The counters now.
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// Per peer, how far its newest write was ahead of ours when we last synced with it.
    pub fn lag(&self) -> &BTreeMap<NodeId, SyncLag> {
        &self.lag
    }

    /// The last write number this node used in this life (its next write is one above).
    pub fn own_seq(&self) -> u64 {
        self.own_seq
    }

    /// When the replica's next timer (gossip flush, anti-entropy, usage flush, collection)
    /// is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next()
    }

    /// The wall clock at monotonic time `now` (ms since the Unix epoch).
    pub fn wall(&self, now: Millis) -> u64 {
        (now.0 as i64 + self.wall_offset.unwrap_or(0)).max(0) as u64
    }

    /// Takes the wall clock of a call (every node input carries one, see
    /// [`crate::Now`]). The first reading decides whether this node was away
    /// longer than the tombstone TTL and must resync from scratch; later ones only
    /// move the offset that [`Replica::wall`] adds.
    pub(crate) fn set_wall_clock(&mut self, now: Millis, wall: u64, out: &mut Outbox) {
        let first = self.wall_offset.is_none();
        self.wall_offset = Some(wall as i64 - now.0 as i64);
        if !first || self.store.is_empty() {
            return;
        }
        let horizon = wall.saturating_sub(self.timing.tombstone_ttl.as_millis() as u64);
        if self.store.newest().wall < horizon {
            // Storage forgets too: otherwise the next restart would bring back
            // writes whose deletes the cluster has collected meanwhile.
            let forgotten = self.store.reset_except(self.origin);
            forget(forgotten, out);
            self.stats.resets += 1;
        }
    }

    // ---- local writes ----------------------------------------------------------

    /// Writes `value` (or a tombstone) under `key` as a new version.
    pub(crate) fn write(
        &mut self,
        now: Millis,
        key: Key,
        value: Option<Value>,
        out: &mut Outbox,
    ) -> Entry {
        self.own_seq += 1;
        let entry = Entry {
            key,
            value,
            hlc: self.clock.tick(self.wall(now)),
            seq: self.own_seq,
        };
        self.store.merge(entry.clone());
        self.stats.local_writes += 1;
        out.persist(PersistBatch {
            items: vec![
                PersistItem::Entry(Box::new(entry.clone())),
                PersistItem::OwnSeq(self.own_seq),
            ],
        });
        self.spread(&entry);
        entry
    }

    /// Queues an entry for gossip if it fits comfortably in a datagram; larger
    /// ones travel by anti-entropy only.
    fn spread(&mut self, entry: &Entry) {
        if encoded_len(entry) <= self.timing.max_rumor_entry {
            self.rumors.push(entry.clone());
        }
    }

    /// Entries to gossip, queued since the last call.
    pub(crate) fn take_rumors(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.rumors)
    }

    /// Adds to this node's usage of `budget` in `period`; published at the next
    /// flush.
    pub(crate) fn record_usage(&mut self, budget: RecordId, period: u64, delta: Usage) {
        let slot = self.pending_usage.entry((budget, period)).or_default();
        *slot = slot.saturating_add(delta);
    }

    /// Cluster-wide usage, including what this node has not published yet.
    pub fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        let pending = self
            .pending_usage
            .get(&(budget.clone(), period))
            .copied()
            .unwrap_or_default();
        self.store.usage(budget, period).saturating_add(pending)
    }

    // ---- remote writes ---------------------------------------------------------

    /// Merges a gossiped entry, passing it on when it was new here.
    pub(crate) fn handle_rumor(&mut self, now: Millis, entry: Entry, out: &mut Outbox) {
        for e in self.accept(now, vec![entry], out) {
            self.stats.applied_from_gossip += 1;
            self.spread(&e);
        }
    }

    /// Checks, merges and persists entries from a peer; returns the applied ones.
    fn accept(&mut self, now: Millis, entries: Vec<Entry>, out: &mut Outbox) -> Vec<Entry> {
        let wall = self.wall(now);
        let mut applied = Vec::new();
        for e in entries {
            if !e.is_well_formed(&*self.schema) {
                self.stats.invalid_entries += 1;
                continue;
            }
            if self.clock.observe(e.hlc, wall).is_err() {
                self.stats.refused_clock_skew += 1;
                continue;
            }
            if e.origin() == self.origin {
                // A write of this very life that storage lost (an old backup).
                self.learn_own_seq(e.seq, out);
            }
            match self.store.merge(e.clone()) {
                Merge::Applied => applied.push(e),
                Merge::Superseded => {}
                Merge::Duplicate => self.stats.duplicates += 1,
            }
        }
        if !applied.is_empty() {
            out.persist(PersistBatch {
                items: applied
                    .iter()
                    .map(|e| PersistItem::Entry(Box::new(e.clone())))
                    .collect(),
            });
        }
        applied
    }

    fn accept_delta(&mut self, now: Millis, delta: Delta, out: &mut Outbox) {
        for (origin, range) in &delta.cleared {
            self.store.clear(*origin, *range);
        }
        let applied = self.accept(now, delta.entries, out);
        self.stats.applied_from_sync += applied.len() as u64;
    }

    // ---- anti-entropy ----------------------------------------------------------

    /// `alive` are the members to sync with; `failed` are members declared dead,
    /// tried once in a while: when a partition heals, state then converges without
    /// waiting for membership to notice (which takes a reconnect round).
    pub(crate) fn handle_timeout(
        &mut self,
        now: Millis,
        alive: &[Addr],
        failed: &[Addr],
        out: &mut Outbox,
    ) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Sync => {
                    self.timers
                        .set(now + self.timing.sync_interval, Timer::Sync);
                    let pool = if !failed.is_empty() && (alive.is_empty() || self.rng.chance(0.25))
                    {
                        failed
                    } else {
                        alive
                    };
                    if let Some(&peer) = self.rng.sample(pool, 1).first() {
                        self.stats.sync_rounds += 1;
                        out.send(peer, Channel::Stream, self.sync_request());
                    }
                }
                Timer::FlushUsage => {
                    self.timers
                        .set(now + self.timing.usage_flush, Timer::FlushUsage);
                    self.flush_usage(now, out);
                }
                Timer::Collect => {
                    self.timers
                        .set(now + collect_period(&self.timing), Timer::Collect);
                    let ttl = self.timing.tombstone_ttl.as_millis() as u64;
                    let horizon = self.wall(now).saturating_sub(ttl);
                    let collected = self.store.collect_tombstones(horizon);
                    self.stats.tombstones_collected += collected.len() as u64;
                    forget(collected, out);
                    let compacted = self.store.compact_old_usage(self.wall(now), &*self.schema);
                    self.stats.usage_compacted += compacted.len() as u64;
                    forget(compacted, out);
                }
            }
        }
    }

    /// Publishes accumulated usage as new totals of this node's counters.
    pub(crate) fn flush_usage(&mut self, now: Millis, out: &mut Outbox) {
        let pending = std::mem::take(&mut self.pending_usage);
        for ((budget, period), delta) in pending {
            let key = Key::Usage {
                budget,
                period,
                node: self.origin,
            };
            let total = match self.store.get(&key).and_then(|e| e.value.as_ref()) {
                Some(Value::Usage(u)) => u.saturating_add(delta),
                _ => delta,
            };
            self.write(now, key, Some(Value::Usage(total)), out);
        }
    }

    fn sync_request(&self) -> Message {
        Message::SyncRequest {
            newest: self.store.newest(),
            digest: self.store.digest(),
            vv: self.store.version_vector(),
        }
    }

    pub(crate) fn handle_sync(
        &mut self,
        now: Millis,
        from: Addr,
        sender: NodeId,
        message: Message,
        out: &mut Outbox,
    ) {
        match message {
            Message::SyncRequest { newest, vv, .. } => {
                self.note_lag(now, sender, newest, &vv);
                self.learn_from_vv(&vv, out);
                // `note_lag` just counted what the peer has that we lack.
                if self.lag.get(&sender).is_some_and(|l| l.versions == 0) {
                    self.note_synced(now);
                }
                // Both have seen exactly the same writes: nothing to send either way.
                // (Equal digests would not do: they ignore tombstones, and a missing
                // tombstone is what lets a late copy of a deleted write back in.)
                if vv == self.store.version_vector() {
                    return;
                }
                let (delta, more) = self.store.delta_for(&vv, self.timing.sync_chunk_bytes);
                self.stats.sync_entries_sent += delta.entries.len() as u64;
                let reply = Message::SyncResponse {
                    newest: self.store.newest(),
                    digest: self.store.digest(),
                    vv: self.store.version_vector(),
                    delta,
                    more,
                };
                out.send(from, Channel::Stream, reply);
            }
            Message::SyncResponse {
                newest,
                vv,
                delta,
                more,
                ..
            } => {
                self.note_lag(now, sender, newest, &vv);
                self.learn_from_vv(&vv, out);
                self.accept_delta(now, delta, out);
                if !more {
                    self.note_synced(now);
                }
                let (push, _) = self.store.delta_for(&vv, self.timing.sync_chunk_bytes);
                if !push.is_empty() {
                    self.stats.sync_entries_sent += push.entries.len() as u64;
                    out.send(from, Channel::Stream, Message::SyncPush { delta: push });
                }
                if more {
                    out.send(from, Channel::Stream, self.sync_request());
                }
            }
            Message::SyncPush { delta } => self.accept_delta(now, delta, out),
            _ => {}
        }
    }

    fn note_lag(&mut self, now: Millis, peer: NodeId, newest: Hlc, theirs: &VersionVector) {
        let versions = self.store.behind(theirs);
        let millis = newest.wall.saturating_sub(self.store.newest().wall);
        self.lag.insert(
            peer,
            SyncLag {
                versions,
                millis,
                at: now,
            },
        );
    }
}

/// How often tombstones are swept: a minute, or more often for a short TTL.
fn collect_period(t: &StateTiming) -> Duration {
    (t.tombstone_ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Asks storage to drop `keys`.
fn forget(keys: Vec<Key>, out: &mut Outbox) {
    if !keys.is_empty() {
        out.persist(PersistBatch {
            items: keys
                .into_iter()
                .map(|k| PersistItem::Remove(Box::new(k)))
                .collect(),
        });
    }
}
