//! What the policy layer reads from (and writes to) the replicated state.
//!
//! Why a trait and not the cluster's `StateView` directly: the policy code (auth,
//! guardrails, budgets) is tested without a cluster, against [`MemoryData`], and the
//! reads it needs are few and explicit here — a record by id, a whole collection (to
//! index auth keys by hash), a change counter, the cluster-wide usage of a budget in
//! a period, the wall clock, and one write: this node's usage.
//!
//! Contract of [`PolicyData::usage`]: the cluster-wide total *including everything
//! this node has passed to [`PolicyData::record_usage`]*, even if it has not been
//! flushed to the replicated store yet. An implementation over a store that flushes
//! periodically must add its own unflushed amounts (see the `StateView`
//! implementation), otherwise a single node could overshoot a budget by its own
//! request rate × flush interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use aurora_core::state::store::Usage;
use aurora_schema::{Collection, Record, RecordId};

/// The reads and the one write the policy layer needs.
pub trait PolicyData: Send + Sync + 'static {
    /// The live record `id` of `collection`, if any.
    fn record(&self, collection: Collection, id: &str) -> Option<Record>;

    /// Every live record of `collection`.
    fn records(&self, collection: Collection) -> Vec<(RecordId, Record)>;

    /// A number that changes whenever any record changes, so derived indexes (auth
    /// keys by hash) are rebuilt only then; `None` if the source cannot tell, in which
    /// case indexes are rebuilt on a miss, at most every [`super::auth::REBUILD_EVERY`].
    fn version(&self) -> Option<u64>;

    /// Cluster-wide usage of `budget` in period `period` (see the module docs).
    fn usage(&self, budget: &RecordId, period: u64) -> Usage;

    /// Cluster-wide usage of `budget` in `period` as published to the replicated
    /// store: [`PolicyData::usage`] less what this node has not flushed yet. Enough
    /// where only usage from well before matters (admission with quota leases
    /// refuses what the counters show spent before the leases judged), and cheaper.
    fn published_usage(&self, budget: &RecordId, period: u64) -> Usage {
        self.usage(budget, period)
    }

    /// This node's own usage of `budget` in `period` as far as it has been published
    /// to the cluster (flushed into the replicated store), if the source publishes in
    /// batches; `None` otherwise. The pacer times this node's flushes with it
    /// (see [`super::pacing`]).
    fn own_published(&self, budget: &RecordId, period: u64) -> Option<Usage> {
        let _ = (budget, period);
        None
    }

    /// Wall-clock time, Unix milliseconds (key expiry, budget periods).
    fn wall_ms(&self) -> u64;

    /// Adds `usage` to this node's counter of `budget` in `period`. Must not block
    /// (implementations queue the replication), and must make the increment visible
    /// to [`PolicyData::usage`] on this node before returning.
    fn record_usage(&self, budget: &RecordId, period: u64, usage: Usage);
}

/// An in-memory [`PolicyData`]: records in a map, usage summed in a map, a settable
/// clock. For tests and for a node that runs without a cluster.
#[derive(Debug, Default)]
pub struct MemoryData {
    inner: Mutex<MemoryInner>,
    /// 0 means "use the system clock".
    clock_ms: AtomicU64,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: BTreeMap<(Collection, RecordId), Record>,
    usage: BTreeMap<(RecordId, u64), Usage>,
    version: u64,
}

impl MemoryData {
    /// Empty: no records, no usage, system clock.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts or replaces a record.
    pub fn put(&self, id: &str, record: Record) -> Result<(), aurora_schema::RecordError> {
        let id = RecordId::new(id)?;
        let mut inner = self.lock();
        inner.records.insert((record.collection(), id), record);
        inner.version += 1;
        Ok(())
    }

    /// Removes a record; whether it existed.
    pub fn delete(&self, collection: Collection, id: &str) -> bool {
        let mut inner = self.lock();
        let removed = inner
            .records
            .retain_len_change(|(c, i), _| !(*c == collection && i.as_str() == id));
        if removed {
            inner.version += 1;
        }
        removed
    }

    /// Pins the clock at `ms` (0 returns to the system clock).
    pub fn set_clock_ms(&self, ms: u64) {
        self.clock_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets a budget's usage, as if the counters read differently (another node's
    /// usage arrived, or a resync forgot it for a moment).
    pub fn set_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        self.lock().usage.insert((budget.clone(), period), usage);
    }

    /// Adds usage as if another node had recorded it.
    pub fn add_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        let mut inner = self.lock();
        let slot = inner.usage.entry((budget.clone(), period)).or_default();
        *slot = slot.saturating_add(usage);
    }
}

/// `BTreeMap::retain` that says whether anything went.
trait RetainLen<K, V> {
    fn retain_len_change(&mut self, keep: impl FnMut(&K, &mut V) -> bool) -> bool;
}

impl<K: Ord, V> RetainLen<K, V> for BTreeMap<K, V> {
    fn retain_len_change(&mut self, keep: impl FnMut(&K, &mut V) -> bool) -> bool {
        let before = self.len();
        self.retain(keep);
        self.len() != before
    }
}

impl PolicyData for MemoryData {
    fn record(&self, collection: Collection, id: &str) -> Option<Record> {
        let id = RecordId::new(id).ok()?;
        self.lock().records.get(&(collection, id)).cloned()
    }

    fn records(&self, collection: Collection) -> Vec<(RecordId, Record)> {
        self.lock()
            .records
            .iter()
            .filter(|((c, _), _)| *c == collection)
            .map(|((_, id), r)| (id.clone(), r.clone()))
            .collect()
    }

    fn version(&self) -> Option<u64> {
        Some(self.lock().version)
    }

    fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        self.lock()
            .usage
            .get(&(budget.clone(), period))
            .copied()
            .unwrap_or_default()
    }

    fn wall_ms(&self) -> u64 {
        match self.clock_ms.load(Ordering::Relaxed) {
            0 => crate::clock::wall_ms(),
            ms => ms,
        }
    }

    fn record_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        self.add_usage(budget, period, usage);
    }
}
