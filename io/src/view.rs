//! A read-only snapshot of the cluster for the rest of the process.
//!
//! Why a snapshot behind a `watch` channel: the gateway's health, metrics and dashboard
//! handlers must never wait on the driver (which may be inside an fsync), and the driver
//! must never wait on them. The driver builds an immutable [`ClusterView`] after a batch
//! of work and swaps it in; readers clone an `Arc` and read at leisure.

use std::net::SocketAddr;

use std::collections::BTreeMap;
use std::sync::Arc;

use aurora_core::state::replica::SyncLag;
use aurora_core::state::store::{Key, Store, Usage, Value};
use aurora_core::{Admission, RecordId};
use aurora_core::{Incarnation, Life, Liveness, MemberMeta, Millis, NodeId, Origin};
use aurora_schema::{Collection, Record};

use crate::transport::TransportStats;

/// Where this node is in its own lifecycle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalStatus {
    /// Started, no seed has answered yet.
    #[default]
    Joining,
    Active,
    /// Left gracefully; the driver is stopping or stopped.
    Left,
}

/// One other member as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub id: NodeId,
    /// Gossip address.
    pub addr: SocketAddr,
    pub meta: MemberMeta,
    pub liveness: Liveness,
    pub incarnation: Incarnation,
    pub heartbeat: u64,
    /// When its heartbeat last went up, on this node's clock.
    pub last_heartbeat: Option<Millis>,
}

/// Counters worth showing on /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewMetrics {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Packets the core dropped, by [`aurora_core::DecodeError::label`], then
    /// `identity_mismatch` and `pending_admission`.
    pub decode_dropped: Vec<(&'static str, u64)>,
    /// Lease messages not sent: addressed to a voter with no known address
    /// ([`aurora_core::NodeMetrics::failover_undeliverable`]).
    pub lease_undeliverable: u64,
    /// Quota messages not sent: addressed to a node with no known address
    /// ([`aurora_core::NodeMetrics::quota_undeliverable`]).
    pub quota_undeliverable: u64,
    pub transport: TransportStats,
    /// SQLite transactions committed, and the persist batches they carried.
    pub commits: u64,
    pub persisted_batches: u64,
}

/// The whole snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub node_id: Option<NodeId>,
    pub node_name: String,
    pub addr: Option<SocketAddr>,
    pub incarnation: Incarnation,
    pub status: LocalStatus,
    /// Every other member known, alive or not, ordered by id.
    pub members: Vec<MemberView>,
    pub metrics: ViewMetrics,
    /// The driver's clock when this view was taken.
    pub at: Millis,
    /// How far behind each peer this node believed itself at its last sync with it.
    pub lag: BTreeMap<NodeId, SyncLag>,
    /// Replication counters.
    pub replica: ReplicaCounters,
    /// Leadership as this node sees it (`None` before the driver's first view).
    pub failover: Option<aurora_core::FailoverStatus>,
    /// Whether the node was started with seeds to join (its own address aside): only
    /// then is its state incomplete until [`ClusterView::first_sync`].
    pub joins_peers: bool,
    /// Seed names that have not resolved yet (retried in the background).
    pub seeds_unresolved: usize,
    /// Failed seed resolution attempts since start (the start's included).
    pub seed_resolve_failures: u64,
    /// When the node first completed an anti-entropy exchange with a peer (driver
    /// clock; see [`aurora_core::NodeView::first_sync`]).
    pub first_sync: Option<Millis>,
    /// Why the driver stopped on an error, in the last view it published; `None`
    /// while it runs (or after a clean stop). A panicked driver publishes nothing:
    /// readers see the channel closed instead.
    pub stopped: Option<String>,
    /// This node's storage life (see [`aurora_core::Life`]).
    pub life: Life,
    /// `cluster.admission`.
    pub admission: Admission,
    /// Peers turned away: an id presented with another life than its binding
    /// ("node X presented an unknown key"), or waiting for an operator.
    pub strangers: Vec<StrangerView>,
    /// This node's copy of the quota ledger (empty unless it is a voter): what each
    /// holder session was granted and gave back, per quota key, as recorded here.
    pub quota_ledger: Arc<aurora_core::quota::Ledger>,
}

impl ClusterView {
    /// Whether the node's copy of the replicated state is complete enough to decide
    /// admission: it has no peers to wait for, or it caught up with one. (Its own
    /// write numbering needs no wait: a node with a new disk is a new storage life
    /// whose numbers start afresh.)
    pub fn state_synced(&self) -> bool {
        !self.joins_peers || self.first_sync.is_some()
    }
}

/// Why a stranger is turned away.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StrangerKind {
    /// Its id is bound to `bound`; it presented another life.
    Mismatch { bound: Life },
    /// Unknown id under `cluster.admission: manual`.
    Pending,
}

/// One (node id, life) whose messages this node drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrangerView {
    pub node: NodeId,
    pub life: Life,
    pub kind: StrangerKind,
    pub addr: SocketAddr,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub dropped: u64,
}

impl StrangerView {
    /// The view of a core stranger.
    pub fn of(s: &aurora_core::Stranger, kind: StrangerKind) -> StrangerView {
        StrangerView {
            node: s.node,
            life: s.life,
            kind,
            addr: s.addr,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            dropped: s.dropped,
        }
    }
}

/// Replication counters worth showing on /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounters {
    pub local_writes: u64,
    pub applied_from_gossip: u64,
    pub applied_from_sync: u64,
    pub live_records: u64,
    /// Total SQLite commit time, microseconds, and the slowest commit so far.
    pub commit_micros_total: u64,
    pub commit_micros_max: u64,
    /// Commits by latency bucket (upper bounds in [`COMMIT_BUCKETS_US`]; last: +Inf).
    pub commit_buckets: [u64; COMMIT_BUCKETS_US.len() + 1],
    /// Time spent updating the state snapshot, microseconds, total and max.
    pub publish_micros_total: u64,
    pub publish_micros_max: u64,
    pub publishes: u64,
}

/// Upper bounds (µs) of the SQLite commit latency histogram.
pub const COMMIT_BUCKETS_US: [u64; 8] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000];

impl ReplicaCounters {
    pub(crate) fn observe_commit(&mut self, micros: u64) {
        self.commit_micros_total += micros;
        self.commit_micros_max = self.commit_micros_max.max(micros);
        let i = COMMIT_BUCKETS_US
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(COMMIT_BUCKETS_US.len());
        self.commit_buckets[i] += 1;
    }
}

impl ClusterView {
    /// Members currently alive (not suspect, dead or departed).
    pub fn alive(&self) -> impl Iterator<Item = &MemberView> {
        self.members
            .iter()
            .filter(|m| m.liveness == Liveness::Alive)
    }

    pub fn member(&self, id: NodeId) -> Option<&MemberView> {
        self.members.iter().find(|m| m.id == id)
    }
}

// ---------------------------------------------------------------------------------
// The replicated store, for readers
// ---------------------------------------------------------------------------------

/// Usage counters keyed by (budget, period).
pub type UsageMap = imbl::OrdMap<(RecordId, u64), Usage>;

/// The typed record in `bytes` of `collection`, with its slot in
/// [`StateSnapshot::records`]. `None` for bytes the schema does not read, which the
/// node never merges (it validates every record against the same schema), so a
/// snapshot holds only records the gateway can act on.
fn typed(collection: aurora_core::CollectionId, bytes: &[u8]) -> Option<(usize, Record)> {
    let record = aurora_schema::decode(collection, bytes).ok()?;
    Some((record.collection() as usize, record))
}

/// An immutable copy of the replicated store's live records and usage counters.
///
/// Why persistent maps (`imbl`): a clone is O(1) and an update O(log n) with
/// structural sharing, so the driver publishes a new snapshot after every round that
/// changed the store, at a cost proportional to the *changes* (not to the store's
/// size) and without ever blocking on a reader. A reader holds an `Arc` of the
/// snapshot it looked at, and that snapshot never changes under it.
#[derive(Clone, Debug, Default)]
pub struct StateSnapshot {
    /// Live records of each collection, indexed by `Collection as usize`.
    pub records: [imbl::OrdMap<RecordId, Record>; 8],
    /// Cluster-wide published usage (every node's counter summed, this node's
    /// included as far as it has been flushed into the store).
    pub usage: UsageMap,
    /// This node's own published counters (already inside `usage`).
    pub own_usage: UsageMap,
    /// Bumped by every publish that changed something.
    pub version: u64,
    /// The store's order-independent digest of live state.
    pub digest: u64,
    /// Wall-clock time of the node when the snapshot was taken (Unix ms).
    pub wall_ms: u64,
}

impl StateSnapshot {
    /// Builds a snapshot of the whole store (start-up, a resync): the same maps as
    /// [`StateSnapshot::apply_key`] on every key, in one pass over the registers.
    /// Key order is each collection's id order, and it brings one (budget, period)'s
    /// counters together, so nothing is looked up in the store again and each
    /// cluster-wide sum is added up once.
    pub fn build(store: &Store, own: Origin) -> StateSnapshot {
        let mut snapshot = StateSnapshot::default();
        // The (budget, period) whose counters are being summed, and the sum so far.
        let mut open: Option<((RecordId, u64), Usage)> = None;
        for entry in store.entries() {
            match (&entry.key, &entry.value) {
                (Key::Record(collection, id), Some(Value::Record(bytes))) => {
                    if let Some((slot, record)) = typed(*collection, bytes.as_slice()) {
                        snapshot.records[slot].insert(id.clone(), record);
                    }
                }
                // Tombstones (and a value of the wrong kind, which the store
                // refuses anyway) are not live records.
                (Key::Record(..), _) => {}
                (
                    Key::Usage {
                        budget,
                        period,
                        node,
                    },
                    value,
                ) => {
                    let usage = match value {
                        Some(Value::Usage(u)) => Some(*u),
                        _ => None,
                    };
                    let same = matches!(&open, Some(((b, p), _)) if b == budget && p == period);
                    if !same {
                        snapshot.close_usage(open.take());
                        open = Some(((budget.clone(), *period), Usage::default()));
                    }
                    if let (Some((_, total)), Some(u)) = (&mut open, usage) {
                        *total = total.saturating_add(u);
                    }
                    if let (true, Some(u)) = (*node == own, usage) {
                        snapshot.own_usage.insert((budget.clone(), *period), u);
                    }
                }
            }
        }
        snapshot.close_usage(open);
        snapshot.digest = store.digest();
        snapshot
    }

    /// Publishes one (budget, period)'s summed counters, unless they are zero.
    fn close_usage(&mut self, summed: Option<((RecordId, u64), Usage)>) {
        if let Some((slot, total)) = summed.filter(|(_, total)| !total.is_zero()) {
            self.usage.insert(slot, total);
        }
    }

    /// Refreshes one key from the store's current value.
    pub fn apply_key(&mut self, store: &Store, own: Origin, key: &Key) {
        match key {
            Key::Record(collection, id) => {
                let Some(c) = Collection::from_id(*collection) else {
                    return;
                };
                let map = &mut self.records[c as usize];
                match store
                    .record(*collection, id)
                    .and_then(|bytes| typed(*collection, bytes.as_slice()))
                {
                    Some((_, record)) => {
                        map.insert(id.clone(), record);
                    }
                    None => {
                        map.remove(id);
                    }
                }
            }
            Key::Usage {
                budget,
                period,
                node,
            } => {
                let slot = (budget.clone(), *period);
                let total = store.usage(budget, *period);
                if total.is_zero() {
                    self.usage.remove(&slot);
                } else {
                    self.usage.insert(slot.clone(), total);
                }
                if *node == own {
                    match store.get(key).and_then(|e| e.value.as_ref()) {
                        Some(Value::Usage(u)) => {
                            self.own_usage.insert(slot, *u);
                        }
                        _ => {
                            self.own_usage.remove(&slot);
                        }
                    }
                }
            }
        }
    }

    /// The live record `id` of `collection`.
    pub fn record(&self, collection: Collection, id: &str) -> Option<&Record> {
        self.records[collection as usize].get(id)
    }

    /// Live records of one collection, in id order.
    pub fn records(&self, collection: Collection) -> impl Iterator<Item = (&RecordId, &Record)> {
        self.records[collection as usize].iter()
    }

    /// Live records of all collections.
    pub fn live_records(&self) -> usize {
        self.records.iter().map(imbl::OrdMap::len).sum()
    }

    /// Published cluster-wide usage of `budget` in `period`.
    pub fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        self.usage
            .get(&(budget.clone(), period))
            .copied()
            .unwrap_or_default()
    }

    /// This node's published usage of `budget` in `period`.
    pub fn own_usage(&self, budget: &RecordId, period: u64) -> Usage {
        self.own_usage
            .get(&(budget.clone(), period))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_core::state::store::Entry;
    use aurora_core::Hlc;
    use aurora_schema::{Budget, BudgetPeriod};
    use std::time::Instant;

    fn budget_entry(i: u64, wall: u64) -> Entry {
        Entry {
            key: Key::Record(
                Collection::Budgets.id(),
                RecordId::new(format!("budget-{i}")).expect("id"),
            ),
            value: Some(Value::Record(aurora_schema::encode(&Record::Budget(
                Budget {
                    name: format!("Budget {i}"),
                    limit: None,
                    max_requests: Some(i),
                    period: BudgetPeriod::Daily,
                    on_partition: Default::default(),
                },
            )))),
            hlc: Hlc {
                wall,
                logical: 0,
                origin: Origin::new(NodeId(1), Life(1)),
            },
            seq: wall,
        }
    }

    fn snapshot_cost(n: u64, updates: u64) -> (std::time::Duration, std::time::Duration) {
        let mut store = Store::default();
        for i in 1..=n {
            store.merge(budget_entry(i, i));
        }
        let started = Instant::now();
        let mut snapshot = StateSnapshot::build(&store, Origin::new(NodeId(1), Life(1)));
        let build = started.elapsed();
        assert_eq!(snapshot.live_records(), n as usize);
        // What the driver does per round that changed one key: merge, refresh that key
        // in the persistent maps, publish a clone (readers hold the older ones).
        let mut held = Vec::new();
        let started = Instant::now();
        for u in 0..updates {
            let e = budget_entry(u % n + 1, n + 1 + u);
            let key = e.key.clone();
            store.merge(e);
            snapshot.apply_key(&store, Origin::new(NodeId(1), Life(1)), &key);
            snapshot.version += 1;
            held.push(std::sync::Arc::new(snapshot.clone()));
            if held.len() > 8 {
                held.remove(0);
            }
        }
        (build, started.elapsed() / updates as u32)
    }

    #[test]
    fn incremental_publish_reads_its_changes() {
        let mut store = Store::default();
        store.merge(budget_entry(1, 1));
        let mut snapshot = StateSnapshot::build(&store, Origin::new(NodeId(1), Life(1)));
        let before = snapshot.clone();
        let e = budget_entry(2, 2);
        let key = e.key.clone();
        store.merge(e);
        snapshot.apply_key(&store, Origin::new(NodeId(1), Life(1)), &key);
        assert!(snapshot.record(Collection::Budgets, "budget-2").is_some());
        assert!(before.record(Collection::Budgets, "budget-2").is_none());
        let (_, per_update) = snapshot_cost(2_000, 200);
        assert!(per_update.as_millis() < 50, "{per_update:?}");
    }

    /// What `build` must equal: `apply_key` on every key of the store.
    fn key_by_key(store: &Store, own: Origin) -> StateSnapshot {
        let mut snapshot = StateSnapshot::default();
        for entry in store.entries() {
            snapshot.apply_key(store, own, &entry.key);
        }
        snapshot.digest = store.digest();
        snapshot
    }

    #[test]
    fn a_built_snapshot_equals_refreshing_every_key() {
        let own = Origin::new(NodeId(1), Life(1));
        for seed in 0..50u64 {
            // A small fixed stream: records and tombstones, usage counters of a few
            // budgets, periods and nodes (ours among them), zero and overwritten.
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let mut store = Store::default();
            for seq in 1..=200 {
                let origin = Origin::new(NodeId(1 + next(3)), Life(1));
                let mut e = match next(3) {
                    0 => budget_entry(next(20), seq),
                    _ => {
                        let v = next(4);
                        Entry {
                            key: Key::Usage {
                                budget: RecordId::new(format!("budget-{}", next(4))).expect("id"),
                                period: next(3),
                                node: origin,
                            },
                            value: Some(Value::Usage(Usage {
                                spend_nanos: v,
                                requests: v,
                                tokens: v,
                            })),
                            hlc: Hlc {
                                wall: seq,
                                logical: 0,
                                origin,
                            },
                            seq,
                        }
                    }
                };
                e.hlc.origin = origin;
                if next(5) == 0 {
                    e.value = None;
                }
                store.merge(e);
            }
            let built = StateSnapshot::build(&store, own);
            let want = key_by_key(&store, own);
            assert_eq!(built.records, want.records, "seed {seed}");
            assert_eq!(built.usage, want.usage, "seed {seed}");
            assert_eq!(built.own_usage, want.own_usage, "seed {seed}");
            assert_eq!(built.digest, want.digest, "seed {seed}");
            assert!(!want.usage.is_empty() && !want.own_usage.is_empty());
        }
    }

    /// `cargo test -p aurora-io --release -- --ignored snapshot_cost_100k --nocapture`
    #[test]
    #[ignore = "measurement; run by hand"]
    fn snapshot_cost_100k() {
        let (build, per_update) = snapshot_cost(100_000, 10_000);
        println!("100k records: full build {build:?}, one-key update + publish {per_update:?}");
    }
}
