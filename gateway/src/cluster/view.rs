//! [`StateView`]: how request handlers read the replicated state and record usage.
//!
//! Why a handle around a `watch` of immutable snapshots: the io driver owns the core
//! `Node` in one task and must never wait for a request handler, and a handler must
//! never wait for the driver (which may be inside an fsync). The driver publishes an
//! [`StateSnapshot`] (persistent maps: O(1) to clone, O(log n) to update) after every
//! round that changed the store and *before* it acknowledges that round's writes, so a
//! read after an acknowledged write sees it. Reads here cost one `Arc` clone plus a
//! map lookup; no lock is shared with the driver.
//!
//! Usage is the one value that must also include what this node has recorded but not
//! yet published (the core batches usage into the store every `usage_flush`, 500 ms by
//! default). The view keeps its own running total of what this process recorded, on
//! top of the node's own counter at start-up; since only this node writes its own
//! counter, that total is always at least the published one, and
//! `usage = (cluster total − own published) + own running total` counts every
//! request exactly once.
//!
//! Recording usage is synchronous and takes one lock: the increments are handed to
//! the driver in batches, one command per budget and period every [`USAGE_HANDOFF`]
//! at most, by a task spawned when the first increment after a hand-off arrives.
//! A command per request cost the driver a full round (its timers, its outputs, a
//! publish) for what the core adds to a map and writes once per `usage_flush`
//! anyway; batched, the hand-off adds at most [`USAGE_HANDOFF`] to when the cluster
//! sees the usage and nothing on this node (the running total is updated at once).
//! [`StateView::hand_off_usage`] sends what is waiting now (before leaving the
//! cluster, so a graceful restart loses no usage).
//!
//! A *detached* view ([`StateView::detached`]) has no driver: writes go straight into
//! an in-memory snapshot. Unit tests and tools use it; `aurora serve` never does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aurora_core::state::store::{Key, Usage};
use aurora_core::Command;
use aurora_io::{Commander, DriverError, StateSnapshot};
use aurora_schema::{Collection, Record, RecordId};
use tokio::sync::watch;

/// A write the node did not take.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The record breaks a rule (the core validates again before writing).
    #[error("invalid record: {0}")]
    Invalid(#[from] aurora_schema::RecordError),
    /// The driver stopped or refused the command (storage failure, node left).
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Cheap-to-clone read (and write) access to the replicated state.
#[derive(Clone, Debug)]
pub struct StateView {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: watch::Receiver<Arc<StateSnapshot>>,
    backend: Backend,
    /// This node's own usage at start-up (published counters), per (budget, period).
    base: Arc<StateSnapshot>,
    /// Usage recorded through this view since start-up, and what of it the driver
    /// has not been handed yet.
    local: Mutex<LocalUsage>,
}

/// Longest an increment of usage waits before it is handed to the driver (see the
/// module docs): a small part of the core's `usage_flush` (500 ms by default).
pub const USAGE_HANDOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct LocalUsage {
    /// Per budget (looked up by `&str`: no copy of the id per request), its periods
    /// in the order first recorded (the current one and the past ones of this
    /// process's life).
    budgets: HashMap<RecordId, Vec<(u64, LocalSlot)>>,
    /// Slots with something unsent.
    unsent: usize,
    /// Whether a hand-off task is waiting to send the unsent usage (one at a time).
    handoff_due: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct LocalSlot {
    /// Recorded through this view since start-up.
    recorded: Usage,
    /// Recorded and not yet handed to the driver.
    unsent: Option<Usage>,
}

impl LocalUsage {
    fn recorded(&self, budget: &str, period: u64) -> Usage {
        self.budgets
            .get(budget)
            .and_then(|periods| periods.iter().rev().find(|(p, _)| *p == period))
            .map_or_else(Usage::default, |(_, slot)| slot.recorded)
    }

    fn slot(&mut self, budget: &RecordId, period: u64) -> &mut LocalSlot {
        if !self.budgets.contains_key(budget.as_str()) {
            self.budgets.insert(budget.clone(), Vec::new());
        }
        let periods = self
            .budgets
            .get_mut(budget.as_str())
            .expect("inserted above");
        // From the newest: the current period is the last one pushed, so a budget
        // with hourly periods is not scanned through its past on every request.
        let at = match periods.iter().rposition(|(p, _)| *p == period) {
            Some(at) => at,
            None => {
                periods.push((period, LocalSlot::default()));
                periods.len() - 1
            }
        };
        &mut periods[at].1
    }

    /// Every unsent increment, taken.
    fn take_unsent(&mut self) -> Vec<(RecordId, u64, Usage)> {
        let mut taken = Vec::with_capacity(self.unsent);
        for (budget, periods) in &mut self.budgets {
            for (period, slot) in periods {
                if let Some(usage) = slot.unsent.take() {
                    taken.push((budget.clone(), *period, usage));
                }
            }
        }
        self.unsent = 0;
        taken
    }
}

#[derive(Debug)]
enum Backend {
    Driver(Commander),
    /// No driver: writes update this sender's snapshot directly.
    Detached(watch::Sender<Arc<StateSnapshot>>),
}

impl StateView {
    /// A view backed by a running driver (from `Handle::watch_state` and
    /// `Handle::commander`).
    pub fn new(state: watch::Receiver<Arc<StateSnapshot>>, commander: Commander) -> StateView {
        let base = state.borrow().clone();
        StateView {
            inner: Arc::new(Inner {
                state,
                backend: Backend::Driver(commander),
                base,
                local: Mutex::default(),
            }),
        }
    }

    /// A view without a driver: an empty in-memory store, written directly. For tests
    /// and for code paths that run before (or without) a node.
    pub fn detached() -> StateView {
        let (tx, rx) = watch::channel(Arc::new(StateSnapshot::default()));
        StateView {
            inner: Arc::new(Inner {
                state: rx,
                backend: Backend::Detached(tx),
                base: Arc::new(StateSnapshot::default()),
                local: Mutex::default(),
            }),
        }
    }

    /// Whether writes go to a real node (false for [`StateView::detached`]).
    pub fn is_replicated(&self) -> bool {
        matches!(self.inner.backend, Backend::Driver(_))
    }

    /// The current snapshot; hold it to read several values consistently.
    pub fn snapshot(&self) -> Arc<StateSnapshot> {
        self.inner.state.borrow().clone()
    }

    /// A receiver notified whenever the replicated store changed.
    pub fn subscribe(&self) -> watch::Receiver<Arc<StateSnapshot>> {
        self.inner.state.clone()
    }

    /// The live record `id` of `collection`.
    pub fn record(&self, collection: Collection, id: &str) -> Option<Record> {
        self.snapshot().record(collection, id).cloned()
    }

    /// Every live record of `collection`, in id order.
    pub fn records(&self, collection: Collection) -> Vec<(RecordId, Record)> {
        self.snapshot()
            .records(collection)
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }

    /// Cluster-wide usage of `budget` in `period` (see [`aurora_schema::BudgetPeriod::index`]):
    /// every node's published counter plus what this node recorded and has not
    /// published yet.
    pub fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        let snapshot = self.snapshot();
        let published_own = snapshot.own_usage(budget, period);
        let others = sub(snapshot.usage(budget, period), published_own);
        let recorded = self.local().recorded(budget.as_str(), period);
        let running = self
            .inner
            .base
            .own_usage(budget, period)
            .saturating_add(recorded);
        others.saturating_add(max(running, published_own))
    }

    /// Wall-clock time in Unix milliseconds (the clock budget periods and key expiry
    /// are judged by).
    pub fn wall_ms(&self) -> u64 {
        crate::clock::wall_ms()
    }

    /// Adds to this node's usage of `budget` in `period`. Visible to [`StateView::usage`]
    /// on this node at once; handed to the driver within [`USAGE_HANDOFF`] (by a task on
    /// the current Tokio runtime) and published to the cluster with the node's next
    /// usage flush.
    pub fn record_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        let replicated = matches!(self.inner.backend, Backend::Driver(_));
        let schedule = {
            let mut local = self.local();
            let slot = local.slot(budget, period);
            slot.recorded = slot.recorded.saturating_add(usage);
            let mut first = false;
            if replicated {
                first = slot.unsent.is_none();
                slot.unsent = Some(slot.unsent.unwrap_or_default().saturating_add(usage));
            }
            local.unsent += usize::from(first);
            let schedule = local.unsent > 0 && !local.handoff_due;
            local.handoff_due |= schedule;
            schedule
        };
        if !schedule {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let view = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(USAGE_HANDOFF).await;
                    view.hand_off_usage().await;
                });
            }
            Err(_) => {
                // Left waiting: the next increment recorded on a runtime (or
                // `hand_off_usage`) sends it.
                self.local().handoff_due = false;
                tracing::warn!("usage recorded outside a Tokio runtime waits to be handed off");
            }
        }
    }

    /// Hands every increment of usage still waiting to the driver now (one command per
    /// budget and period). Call before leaving the cluster; the view also calls it
    /// itself, [`USAGE_HANDOFF`] after an increment. A failure is logged (the driver
    /// stopped: nothing can publish the usage any more).
    pub async fn hand_off_usage(&self) {
        let Backend::Driver(commander) = &self.inner.backend else {
            return;
        };
        let unsent = {
            let mut local = self.local();
            local.handoff_due = false;
            local.take_unsent()
        };
        for (budget, period, usage) in unsent {
            let command = Command::RecordUsage {
                budget: budget.clone(),
                period,
                usage,
            };
            if let Err(error) = commander.command(command).await {
                tracing::warn!(%error, %budget, period, "could not record usage");
            }
        }
    }

    /// Increments of usage recorded and not yet handed to the driver (tests and
    /// diagnostics).
    pub fn usage_waiting(&self) -> usize {
        self.local().unsent
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalUsage> {
        self.inner
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates or replaces record `id`; returns once it is committed to this node's
    /// SQLite file (and visible in [`StateView::snapshot`]).
    pub async fn put(&self, id: RecordId, record: Record) -> Result<(), WriteError> {
        record.validate_with_id(&id)?;
        match &self.inner.backend {
            Backend::Driver(commander) => {
                commander.command(aurora_schema::put(id, &record)).await?;
            }
            Backend::Detached(tx) => tx.send_modify(|snapshot| {
                let s = Arc::make_mut(snapshot);
                s.records[record.collection() as usize].insert(id, record);
                s.version += 1;
            }),
        }
        Ok(())
    }

    /// Deletes record `id` of `collection` (a replicated tombstone); returns once it is
    /// committed.
    pub async fn delete(&self, collection: Collection, id: RecordId) -> Result<(), WriteError> {
        match &self.inner.backend {
            Backend::Driver(commander) => {
                commander
                    .command(aurora_schema::delete(collection, id))
                    .await?;
            }
            Backend::Detached(tx) => tx.send_modify(|snapshot| {
                let s = Arc::make_mut(snapshot);
                s.records[collection as usize].remove(&id);
                s.version += 1;
            }),
        }
        Ok(())
    }
}

/// The store key of a record, for callers that speak in keys.
pub fn record_key(collection: Collection, id: RecordId) -> Key {
    Key::Record(collection.id(), id)
}

fn sub(a: Usage, b: Usage) -> Usage {
    Usage {
        spend_nanos: a.spend_nanos.saturating_sub(b.spend_nanos),
        requests: a.requests.saturating_sub(b.requests),
        tokens: a.tokens.saturating_sub(b.tokens),
    }
}

fn max(a: Usage, b: Usage) -> Usage {
    Usage {
        spend_nanos: a.spend_nanos.max(b.spend_nanos),
        requests: a.requests.max(b.requests),
        tokens: a.tokens.max(b.tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_schema::{Budget, BudgetPeriod};

    fn budget() -> Record {
        Record::Budget(Budget {
            name: "team".into(),
            limit: None,
            max_requests: Some(10),
            period: BudgetPeriod::Total,
            on_partition: Default::default(),
        })
    }

    #[tokio::test]
    async fn detached_view_reads_its_writes_and_counts_usage() {
        let view = StateView::detached();
        let id = RecordId::new("team").expect("id");
        view.put(id.clone(), budget()).await.expect("put");
        assert_eq!(view.record(Collection::Budgets, "team"), Some(budget()));
        assert_eq!(view.records(Collection::Budgets).len(), 1);
        let one = Usage {
            spend_nanos: 5,
            requests: 1,
            tokens: 7,
        };
        view.record_usage(&id, 0, one);
        view.record_usage(&id, 0, one);
        assert_eq!(view.usage(&id, 0).requests, 2);
        assert_eq!(view.usage(&id, 1), Usage::default());
        view.delete(Collection::Budgets, id).await.expect("delete");
        assert!(view.record(Collection::Budgets, "team").is_none());
    }
}
